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
answer) and raw facts. Judging the facts (a CPU build on a GPU machine, a torchvision
built for another torch) happens in :mod:`torchup.verify`, with ``packaging``.

Constraints: standard library plus torch and its companions, never torchup; it must
parse and run on Python 3.8+ (annotations stay strings thanks to the ``__future__``
import, so ``X | None`` and ``list[str]`` are fine in them and nowhere else).
"""

from __future__ import annotations

import sys

# With ``-c`` the first sys.path entry is the working directory; drop it before any
# other import so a stray torch/ or json.py there cannot shadow the real one.
if __name__ == "__main__":
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".")]

import contextlib
import functools
import importlib
import json
import platform
import time
import warnings
from collections.abc import Callable
from typing import IO, Any

FORMAT = 1
_MAX_TEXT = 600  # an exception message can hold a whole library path list


class Failed(Exception):
    """A computation ran but gave the wrong answer."""


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def warned(caught: list[Any]) -> str:
    """The messages of recorded warnings, de-duplicated, as one clause."""
    seen: list[str] = []
    for item in caught:
        message = " ".join(str(item.message).split())
        if message not in seen:
            seen.append(message)
    return "; ".join(seen)


class Probe:
    """Runs checks, records facts, and mirrors both into the log file."""

    def __init__(self, log_path: str | None) -> None:
        self.facts: dict[str, Any] = {}
        self.checks: list[dict[str, Any]] = []
        self.log: IO[str] | None = None
        if log_path:
            self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 -- kept open

    def note(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps(record, default=str) + "\n")
            self.log.flush()

    def fact(self, key: str, value: Any) -> None:
        self.facts[key] = value
        self.note({"fact": [key, value]})

    def check(self, check_id: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` as check ``check_id``; it returns ``(detail, value)`` or raises.

        Returns ``value``, or None when the check failed.
        """
        self.note({"start": check_id})
        start = time.perf_counter()
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
            "seconds": round(time.perf_counter() - start, 4),
        }
        self.checks.append(record)
        self.note({"done": record})
        return value


def import_module(name: str) -> tuple[str, Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(name)
    version = getattr(module, "__version__", None)
    detail = f"{name} {version} from {getattr(module, '__file__', '?')}"
    said = warned(caught)
    if said:
        detail += f" (warned: {said})"
    return detail, module


def dist_facts(name: str) -> dict[str, Any] | None:
    """What the installed distribution's metadata says, or None when not installed."""
    from importlib import metadata, util

    try:
        spec = util.find_spec(name)
    except Exception:
        spec = None
    try:
        dist: Any = metadata.distribution(name)
    except Exception:
        dist = None
    if spec is None and dist is None:
        return None
    return {
        "dist_version": dist.version if dist is not None else None,
        "requires": list(dist.requires or []) if dist is not None else [],
        "origin": getattr(spec, "origin", None),
    }


def build_facts(torch: Any) -> dict[str, Any]:
    version = getattr(torch, "version", None)
    xpu_module = getattr(torch, "xpu", None)
    xpu = getattr(version, "xpu", None)
    if xpu is None and xpu_module is not None and hasattr(xpu_module, "_is_compiled"):
        xpu = "unknown" if xpu_module._is_compiled() else None
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    cudnn = None
    with contextlib.suppress(Exception):
        cudnn = torch.backends.cudnn.version()
    return {
        "cuda": getattr(version, "cuda", None),
        "hip": getattr(version, "hip", None),
        "xpu": xpu,
        "mps_built": bool(mps is not None and mps.is_built()),
        "cudnn": cudnn,
        "debug": bool(getattr(version, "debug", False)),
        "git_version": getattr(version, "git_version", None),
    }


def devices(torch: Any, build: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The devices torch sees; torch's own warnings (an old driver) go in the detail."""
    found: list[dict[str, Any]] = [{"id": "cpu", "name": platform.machine(), "arch": None}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():  # ROCm builds answer through torch.cuda too
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                if build.get("hip"):
                    arch = getattr(props, "gcnArchName", None)
                else:
                    arch = f"{props.major}.{props.minor}"
                found.append(
                    {
                        "id": f"cuda:{index}",
                        "name": props.name,
                        "arch": arch,
                        "memory_mib": props.total_memory // (1 << 20),
                    }
                )
            build["arch_list"] = list(torch.cuda.get_arch_list())
        xpu = getattr(torch, "xpu", None)
        if xpu is not None and xpu.is_available():
            for index in range(xpu.device_count()):
                found.append({"id": f"xpu:{index}", "name": xpu.get_device_name(index)})
        mps = getattr(torch.backends, "mps", None)
        build["mps"] = bool(mps is not None and mps.is_available())
        if build["mps"]:
            found.append({"id": "mps", "name": "Apple MPS"})
    build["cuda_available"] = any(d["id"].startswith("cuda:") for d in found)
    detail = ", ".join(f"{d['id']} {d['name']}" for d in found)
    said = warned(caught)
    if said:
        build["device_warnings"] = said
        detail += f" (warned: {said})"
    return detail, found


def tensor_op(torch: Any) -> tuple[str, None]:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    total = float((t * 2 + 1).sum())
    if total != 144.0:
        raise Failed(f"(2 * arange(12) + 1).sum() gave {total!r}, expected 144.0")
    return "(2 * arange(12) + 1).sum() == 144", None


def autograd(torch: Any) -> tuple[str, None]:
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum() + 3 * x.sum()
    y.backward()
    grad = x.grad.tolist()
    if grad != [5.0, 7.0, 9.0]:
        raise Failed(f"d/dx sum(x^2 + 3x) at [1, 2, 3] gave {grad!r}, expected [5, 7, 9]")
    return "d/dx sum(x^2 + 3x) at [1, 2, 3] == [5, 7, 9]", None


def matmul(torch: Any, device: str) -> tuple[str, None]:
    a = torch.arange(1.0, 7.0, device=device).reshape(2, 3)
    small = (a @ a.T).cpu().tolist()
    if small != [[14.0, 32.0], [32.0, 77.0]]:
        raise Failed(f"a @ a.T on {device} gave {small!r}, expected [[14, 32], [32, 77]]")
    ones = torch.ones(64, 64, device=device)
    total = float((ones @ ones).sum().cpu())
    if total != 64.0**3:
        raise Failed(f"ones(64, 64) @ ones(64, 64) on {device} summed to {total!r}")
    return f"2x3 and 64x64 products on {device} are exact", None


def nms(torch: Any, torchvision: Any, device: str) -> tuple[str, None]:
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]],
        device=device,
    )
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    keep = torchvision.ops.nms(boxes, scores, 0.5).cpu().tolist()
    if keep != [0, 2]:
        raise Failed(f"nms on {device} kept {keep!r}, expected [0, 2]")
    return f"nms on {device} keeps boxes [0, 2] of 3", None


def audio_gain(torch: Any) -> tuple[str, None]:
    functional = importlib.import_module("torchaudio.functional")
    out = functional.gain(torch.ones(1, 8), 20.0)
    values = out.tolist()[0]
    if any(abs(v - 10.0) > 1e-4 for v in values):
        raise Failed(f"functional.gain(ones, 20 dB) gave {values!r}, expected 10.0 each")
    return "functional.gain(ones, 20 dB) == 10.0 each", None


def companion(probe: Probe, torch: Any, name: str, gpus: list[str], compute: bool) -> None:
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
        for device in ["cpu", *gpus]:
            probe.check("torchvision-nms:" + device, functools.partial(nms, torch, module, device))
    elif name == "torchaudio":
        probe.check("torchaudio-gain", lambda: audio_gain(torch))


def run(probe: Probe, compute: bool = True) -> None:
    """Import torch and its companions; with ``compute``, also run the computations."""
    from importlib import metadata

    try:
        probe.fact("torch_dist_version", metadata.version("torch"))
    except Exception:
        probe.fact("torch_dist_version", None)
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
    gpus = [d for d in ids if d != "cpu"]
    for name in ("torchvision", "torchaudio"):
        companion(probe, torch, name, gpus, compute)


def main() -> None:
    # The target may be older than torchup's own floor: 3.7 has no importlib.metadata.
    if sys.version_info < (3, 8):  # noqa: UP036 -- a check on the target, not on torchup
        sys.stderr.write("torchup verify needs Python 3.8 or newer\n")
        sys.exit(3)
    marker = sys.argv[1] if len(sys.argv) > 1 else "--torchup-verify--"
    probe = Probe(sys.argv[2] if len(sys.argv) > 2 else None)
    compute = (sys.argv[3] if len(sys.argv) > 3 else "compute") != "imports-only"
    probe.note({"hello": sys.executable, "version": platform.python_version()})
    try:
        import faulthandler

        faulthandler.enable()  # a segfault in torch leaves a traceback on stderr
    except Exception:
        pass
    run(probe, compute)
    doc = {"format": FORMAT, "executable": sys.executable, "facts": probe.facts}
    doc["checks"] = probe.checks
    text = json.dumps(doc, default=str, sort_keys=True)
    sys.stdout.write("\n" + marker + text + marker + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
