"""The verify probe: run BY the target Python, never imported by torchup.

torchup reads this file's text and runs it as ``python -c SOURCE MARKER LOG [MODE]``.
It imports torch and each installed companion, records build facts and the devices
torch sees, and runs small computations whose results it checks (a tensor op, an
autograd backward pass, a matmul on every device, ``torchvision.ops.nms``, a torchaudio
op); with MODE ``imports-only`` (``torchup doctor``) it stops after the imports and
the device query. It prints one JSON document between two copies of MARKER.

Every step is also appended to the file LOG as one JSON line, flushed as it happens:
``{"hello": ...}`` when the probe starts, ``{"start": ID}`` before each check,
``{"done": CHECK}`` after it and ``{"fact": [KEY, VALUE]}`` for each fact. When torch
crashes the interpreter or hangs and is killed, that log is all that is left, and it
names the check that was running.

The probe only reports: each check's own pass/fail (did the computation give the right
answer) and raw facts (among them the environment: ``sys.prefix``, whether it is a venv
or a conda env). Judging the facts (a CPU build on a GPU machine, a torchvision built
for another torch, which ``torchup install`` command mends a failure) happens in
:mod:`torchup.verify`, with ``packaging``.

Constraints: standard library plus torch and its companions, never torchup; it must
parse and run on Python 2.7 and 3.6+, because torchup installs torch into them (torch
1.4 was the last release for 2.7, 1.10 for 3.6, 1.13 for 3.7). So: no f-strings, no
annotations (type comments keep mypy informed), no ``@``, no ``*`` unpacking in
literals, and the installed metadata is read from ``sys.path`` with the standard
library where ``importlib.metadata`` (3.8+) is missing. The computations use only
torch APIs that torch 1.0 already had.
"""
# ruff: noqa: UP032 -- str.format, not f-strings: this file must parse on Python 2.7

import codecs
import functools
import importlib
import json
import os
import platform
import sys
import time
import warnings

MYPY = False
if MYPY:  # never runs (no typing in Python 2.7); mypy takes MYPY as true
    # torchup sends probe_helpers.py ahead of this text; type checkers read it here
    from collections.abc import Callable  # noqa: F401 -- used in the type comments
    from typing import Any  # noqa: F401 -- used in the type comments

    from torchup.check.probe_helpers import headers, listdir, normalize, read_text

FORMAT = 1
_MAX_TEXT = 600  # an exception message can hold a whole library path list
_clock = getattr(time, "perf_counter", time.time)  # Python 2.7 has no perf_counter


class Failed(Exception):
    """A computation ran but gave the wrong answer."""


def describe(exc):
    # type: (BaseException) -> str
    try:
        text = "{}: {}".format(type(exc).__name__, exc)
    except Exception:  # a non-ASCII unicode message on Python 2.7
        text = "{}: {!r}".format(type(exc).__name__, exc.args)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def warned(caught):
    # type: (list[Any]) -> str
    """The messages of recorded warnings, de-duplicated, as one clause."""
    seen = []  # type: list[str]
    for item in caught:
        message = " ".join(str(item.message).split())
        if message not in seen:
            seen.append(message)
    return "; ".join(seen)


class Probe:
    """Runs checks, records facts, and mirrors both into the log file."""

    def __init__(self, log_path):
        # type: (str | None) -> None
        self.facts = {}  # type: dict[str, Any]
        self.checks = []  # type: list[dict[str, Any]]
        self.log = None  # type: Any
        if log_path:
            # codecs: Python 2.7's json.dumps gives byte strings, which io.open refuses
            self.log = codecs.open(log_path, "a", "utf-8")  # noqa: SIM115 -- kept open

    def note(self, record):
        # type: (dict[str, Any]) -> None
        if self.log is not None:
            self.log.write(json.dumps(record, default=str) + "\n")
            self.log.flush()

    def fact(self, key, value):
        # type: (str, Any) -> None
        self.facts[key] = value
        self.note({"fact": [key, value]})

    def check(self, check_id, fn):
        # type: (str, Callable[[], Any]) -> Any
        """Run ``fn`` as check ``check_id``; it returns ``(detail, value)`` or raises.

        Returns ``value``, or None when the check failed.
        """
        self.note({"start": check_id})
        start = _clock()
        status, value = "pass", None
        try:
            detail, value = fn()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a package's import counts too
            status, detail = "fail", str(exc) if isinstance(exc, Failed) else describe(exc)
        record = {
            "id": check_id,
            "status": status,
            "detail": detail,
            "seconds": round(_clock() - start, 4),
        }
        self.checks.append(record)
        self.note({"done": record})
        return value


def import_module(name):
    # type: (str) -> tuple[str, Any]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(name)
    version = getattr(module, "__version__", None)
    detail = "{} {} from {}".format(name, version, getattr(module, "__file__", "?"))
    said = warned(caught)
    if said:
        detail += " (warned: {})".format(said)
    return detail, module


# --- installed metadata ----------------------------------------------------------------


def environment():
    # type: () -> dict[str, Any]
    """Where this Python installs to: its prefix, and whether that is a venv or conda env."""
    base = getattr(sys, "base_prefix", getattr(sys, "real_prefix", sys.prefix))
    return {
        "prefix": sys.prefix,
        "base_prefix": base,
        "in_venv": hasattr(sys, "real_prefix") or base != sys.prefix,
        "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
    }


def egg_requires(text):
    # type: (str | None) -> list[str]
    """An egg-info ``requires.txt`` as ``Requires-Dist`` lines (what importlib.metadata
    makes of it): ``[extra]`` and ``[:marker]`` sections become markers."""
    found = []  # type: list[str]
    section = ""
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        extra, _, marker = section.partition(":")
        markers = ["({})".format(marker)] if marker else []
        if extra:
            markers.append('extra == "{}"'.format(extra))
        found.append(line + ("; " + " and ".join(markers) if markers else ""))
    return found


def scan_metadata(name):
    # type: (str) -> dict[str, Any] | None
    """The first ``*.dist-info``/``*.egg-info`` of distribution NAME on sys.path,
    searched in the order importlib.metadata searches; None when there is none."""
    wanted = normalize(name)
    for directory in sys.path:
        for entry in listdir(directory or "."):
            stem, _, suffix = entry.rpartition(".")
            if suffix not in ("dist-info", "egg-info") or normalize(stem.split("-")[0]) != wanted:
                continue
            path = os.path.join(directory, entry)
            if os.path.isfile(path):  # a distutils egg-info is the PKG-INFO file itself
                meta, requires = headers(read_text(path)), None
            else:
                meta_name = "METADATA" if suffix == "dist-info" else "PKG-INFO"
                meta = headers(read_text(os.path.join(path, meta_name)))
                requires = read_text(os.path.join(path, "requires.txt"))
            named = stem.split("-")  # torch-1.4.0-py2.7 for an egg-info
            version = (meta.get("version") or [""])[0] or (named[1] if len(named) > 1 else None)
            pins = meta.get("requires-dist") or egg_requires(requires)
            return {"version": version, "requires": pins}
    return None


def distribution(name):
    # type: (str) -> dict[str, Any] | None
    """Installed distribution NAME's version and requirements, or None when missing."""
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7 and older
        return scan_metadata(name)
    try:
        dist = metadata.distribution(name)
    except Exception:
        return None
    return {"version": dist.version, "requires": list(dist.requires or [])}


def module_origin(name):
    # type: (str) -> tuple[bool, str | None]
    """Whether ``import NAME`` finds a top-level module, and the file it would load."""
    try:
        from importlib.util import find_spec
    except ImportError:  # Python 2.7: look where its importer looks
        for directory in sys.path:
            for tail in (os.path.join(name, "__init__.py"), name + ".py"):
                path = os.path.join(directory or ".", tail)
                if os.path.isfile(path):
                    return True, path
        return False, None
    try:
        spec = find_spec(name)
    except Exception:
        return False, None
    return spec is not None, getattr(spec, "origin", None)


def dist_facts(name):
    # type: (str) -> dict[str, Any] | None
    """What the installed distribution's metadata says, or None when not installed."""
    found, origin = module_origin(name)
    dist = distribution(name)
    if not found and dist is None:
        return None
    return {
        "dist_version": dist["version"] if dist is not None else None,
        "requires": dist["requires"] if dist is not None else [],
        "origin": origin,
    }


# --- torch ------------------------------------------------------------------------------


def build_facts(torch):
    # type: (Any) -> dict[str, Any]
    version = getattr(torch, "version", None)
    xpu_module = getattr(torch, "xpu", None)
    xpu = getattr(version, "xpu", None)
    if xpu is None and xpu_module is not None and hasattr(xpu_module, "_is_compiled"):
        xpu = "unknown" if xpu_module._is_compiled() else None
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    cudnn = None
    try:  # noqa: SIM105 -- Python 2.7 has no contextlib.suppress
        cudnn = torch.backends.cudnn.version()
    except Exception:
        pass
    return {
        "cuda": getattr(version, "cuda", None),
        "hip": getattr(version, "hip", None),
        "xpu": xpu,
        "mps_built": bool(mps is not None and mps.is_built()),
        "cudnn": cudnn,
        "debug": bool(getattr(version, "debug", False)),
        "git_version": getattr(version, "git_version", None),
    }


def devices(torch, build):
    # type: (Any, dict[str, Any]) -> tuple[str, list[dict[str, Any]]]
    """The devices torch sees; torch's own warnings (an old driver) go in the detail."""
    found = [{"id": "cpu", "name": platform.machine(), "arch": None}]  # type: list[dict[str, Any]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():  # ROCm builds answer through torch.cuda too
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                if build.get("hip"):
                    arch = getattr(props, "gcnArchName", None)
                else:
                    arch = "{}.{}".format(props.major, props.minor)
                found.append(
                    {
                        "id": "cuda:{}".format(index),
                        "name": props.name,
                        "arch": arch,
                        "memory_mib": props.total_memory // (1 << 20),
                    }
                )
            arch_list = getattr(torch.cuda, "get_arch_list", None)  # torch 1.7 and newer
            if arch_list is not None:
                build["arch_list"] = list(arch_list())
        xpu = getattr(torch, "xpu", None)
        if xpu is not None and xpu.is_available():
            for index in range(xpu.device_count()):
                name = xpu.get_device_name(index)
                found.append({"id": "xpu:{}".format(index), "name": name})
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        build["mps"] = bool(mps is not None and mps.is_available())
        if build["mps"]:
            found.append({"id": "mps", "name": "Apple MPS"})
    build["cuda_available"] = any(d["id"].startswith("cuda:") for d in found)
    detail = ", ".join("{} {}".format(d["id"], d["name"]) for d in found)
    said = warned(caught)
    if said:
        build["device_warnings"] = said
        detail += " (warned: {})".format(said)
    return detail, found


def tensor_op(torch):
    # type: (Any) -> tuple[str, None]
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    total = float((t * 2 + 1).sum())
    if total != 144.0:
        raise Failed("(2 * arange(12) + 1).sum() gave {!r}, expected 144.0".format(total))
    return "(2 * arange(12) + 1).sum() == 144", None


def autograd(torch):
    # type: (Any) -> tuple[str, None]
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum() + 3 * x.sum()
    y.backward()
    grad = x.grad.tolist()
    if grad != [5.0, 7.0, 9.0]:
        raise Failed("d/dx sum(x^2 + 3x) at [1, 2, 3] gave {!r}, expected [5, 7, 9]".format(grad))
    return "d/dx sum(x^2 + 3x) at [1, 2, 3] == [5, 7, 9]", None


def matmul(torch, device):
    # type: (Any, str) -> tuple[str, None]
    a = torch.arange(1.0, 7.0, device=device).reshape(2, 3)
    small = torch.mm(a, a.t()).cpu().tolist()
    if small != [[14.0, 32.0], [32.0, 77.0]]:
        raise Failed(
            "mm(a, a.t()) on {} gave {!r}, expected [[14, 32], [32, 77]]".format(device, small)
        )
    ones = torch.ones(64, 64, device=device)
    total = float(torch.mm(ones, ones).sum().cpu())
    if total != 64.0**3:
        raise Failed("mm(ones(64, 64), ones(64, 64)) on {} summed to {!r}".format(device, total))
    return "2x3 and 64x64 products on {} are exact".format(device), None


def nms(torch, torchvision, device):
    # type: (Any, Any, str) -> tuple[str, None]
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]],
        device=device,
    )
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    keep = torchvision.ops.nms(boxes, scores, 0.5).cpu().tolist()
    if keep != [0, 2]:
        raise Failed("nms on {} kept {!r}, expected [0, 2]".format(device, keep))
    return "nms on {} keeps boxes [0, 2] of 3".format(device), None


def audio_gain(torch):
    # type: (Any) -> tuple[str, None]
    functional = importlib.import_module("torchaudio.functional")
    out = functional.gain(torch.ones(1, 8), 20.0)
    values = out.tolist()[0]
    if any(abs(v - 10.0) > 1e-4 for v in values):
        raise Failed("functional.gain(ones, 20 dB) gave {!r}, expected 10.0 each".format(values))
    return "functional.gain(ones, 20 dB) == 10.0 each", None


def companion(probe, torch, name, ids, compute):
    # type: (Probe, Any, str, list[str], bool) -> None
    """Import companion NAME where installed; with ``compute``, run its op on each of
    the device ``ids`` (``cpu`` first)."""
    facts = dist_facts(name)
    if facts is None:
        return
    probe.fact(name, facts)
    module = probe.check("import-" + name, lambda: import_module(name))
    if module is None:
        return
    facts["module_version"] = getattr(module, "__version__", None)
    facts["cuda"] = getattr(getattr(module, "version", None), "cuda", None)
    probe.fact(name, facts)
    if not compute:
        return
    if name == "torchvision":
        for device in ids:
            probe.check("torchvision-nms:" + device, functools.partial(nms, torch, module, device))
    elif name == "torchaudio":
        probe.check("torchaudio-gain", lambda: audio_gain(torch))


def run(probe, compute=True):
    # type: (Probe, bool) -> None
    """Import torch and its companions; with ``compute``, also run the computations."""
    probe.fact("environment", environment())
    dist = distribution("torch")
    probe.fact("torch_dist_version", dist["version"] if dist is not None else None)
    torch = probe.check("import-torch", lambda: import_module("torch"))
    if torch is None:
        return
    probe.fact("torch_version", str(getattr(torch, "__version__", "")) or None)
    build = build_facts(torch)
    probe.fact("build", build)  # again below, with what the device query adds
    found = probe.check("devices", lambda: devices(torch, build))
    probe.fact("build", build)
    probe.fact("devices", found or [])
    ids = [d["id"] for d in found or [{"id": "cpu"}]]
    if compute:
        probe.check("tensor-op", lambda: tensor_op(torch))
        probe.check("autograd", lambda: autograd(torch))
        for device in ids:
            probe.check("matmul:" + device, functools.partial(matmul, torch, device))
    for name in ("torchvision", "torchaudio"):
        companion(probe, torch, name, ids, compute)


def main():
    # type: () -> None
    if sys.version_info < (2, 7):  # noqa: UP036 -- a check on the target, not on torchup
        sys.stderr.write("torchup verify needs Python 2.7 or 3.6+\n")
        sys.exit(3)
    marker = sys.argv[1] if len(sys.argv) > 1 else "--torchup-verify--"
    probe = Probe(sys.argv[2] if len(sys.argv) > 2 else None)
    compute = (sys.argv[3] if len(sys.argv) > 3 else "compute") != "imports-only"
    probe.note({"hello": sys.executable, "version": platform.python_version()})
    try:
        import faulthandler

        faulthandler.enable()  # a segfault in torch leaves a traceback on stderr
    except Exception:  # Python 2.7 has no faulthandler
        pass
    run(probe, compute)
    doc = {"format": FORMAT, "executable": sys.executable, "facts": probe.facts}
    doc["checks"] = probe.checks
    text = json.dumps(doc, default=str, sort_keys=True)
    sys.stdout.write("\n" + marker + text + marker + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
