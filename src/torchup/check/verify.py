"""Prove that an environment's torch works, by running it: ``torchup verify``.

:func:`verify` runs :mod:`torchup.check.verify_probe` with the target interpreter. The
probe imports torch and each installed companion, reports build facts and the devices
torch sees, and runs small computations whose answers it checks (a tensor op, an
autograd backward pass, a matmul on every device, ``torchvision.ops.nms``, a
torchaudio op). This module then judges the facts with ``packaging``:

- the build against what detection found (:func:`hardware_checks`): a CPU build on a
  GPU machine fails with the fix command, a GPU build with no visible GPU warns, a GPU
  whose architecture is not among ``torch.cuda.get_arch_list()`` fails;
- each companion against torch (:func:`companion_check`): its installed metadata's
  ``Requires-Dist: torch`` pin must admit the installed torch, and its variant (local
  label, or the CUDA version it was built with) must be torch's.

A failure's fix is a ``torchup install`` command for the environment examined: ``--venv
PREFIX`` or ``--conda-env PREFIX`` where the target Python is a venv or a conda env,
else ``--python EXE``; with ``--backend`` naming torch's own variant where a reinstall
should keep the build (``--backend auto`` where the build itself is wrong).

A torch that crashes the interpreter, hangs past ``timeout`` or prints junk is a failed
check, named after the step that was running; only an interpreter that cannot run the
probe at all raises :class:`~torchup.errors.InterpreterError`.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torchup.check.verify_run import run_probe
from torchup.choose.companions import COMPANIONS, predicted
from torchup.choose.variants import ArchEntry, runs_on

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator

__all__ = [
    "SeenDevice",
    "Status",
    "VerifyCheck",
    "VerifyReport",
    "build_kind",
    "companion_check",
    "hardware_checks",
    "hiding",
    "install_fix",
    "own_backend",
    "variant_of",
    "verify",
]


Status = Literal["pass", "warn", "fail"]
SCHEMA = 1
_STATUSES: dict[str, Status] = {status: status for status in get_args(Status)}
_GPU_KINDS = ("cuda", "rocm", "xpu")
# Local labels that name a build variant; anything else (``+git1a2b3c``) says nothing.
_VARIANT = re.compile(r"^(cpu|xpu|cu[0-9]+|rocm[0-9]+(?:\.[0-9]+)*)(?:$|\.)")
_NV_ARCH = re.compile(r"^(sm|compute)_([0-9]+)([0-9])[a-z]?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyCheck:
    """One check: what was proved (``pass``), doubted (``warn``) or disproved (``fail``).

    ``seconds`` is how long the check ran in the target (None for a judgement made
    here); ``fix`` is the command or action that mends a failure, when one is known.
    """

    id: str
    status: Status
    detail: str
    seconds: float | None = None
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "detail": self.detail,
            "seconds": self.seconds,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SeenDevice:
    """A device torch sees: ``cpu``, ``cuda:0`` (ROCm too), ``xpu:0`` or ``mps``.

    ``arch`` is the compute capability (``"8.6"``) or the gfx target, when known.
    """

    id: str
    name: str
    arch: str | None = None
    memory_mib: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arch": self.arch, "memory_mib": self.memory_mib}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """What running torch in ``python`` proved. ``ok`` when no check failed.

    ``build`` holds the probe's build facts: ``cuda``, ``hip``, ``xpu`` (versions or
    None), ``mps`` (available), ``mps_built``, ``cudnn``, ``arch_list``,
    ``cuda_available``, ``debug``, ``git_version`` and ``device_warnings``, as far as
    the probe got. ``companions`` maps each installed companion to its version.
    """

    python: str
    torch: str | None
    local: str | None
    build: Mapping[str, Any]
    devices: tuple[SeenDevice, ...]
    companions: Mapping[str, str | None]
    checks: tuple[VerifyCheck, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "python": self.python,
            "torch": {"version": self.torch, "local": self.local},
            "build": dict(self.build),
            "devices": [device.to_dict() for device in self.devices],
            "companions": dict(self.companions),
            "checks": [check.to_dict() for check in self.checks],
            "seconds": self.seconds,
        }


def verify(
    python: str,
    *,
    accelerator: Accelerator | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    computations: bool = True,
) -> VerifyReport:
    """Run torch in ``python`` and report one check per fact proved or disproved.

    ``accelerator`` is what detection found (default: :func:`torchup.hardware.accelerators.detect`
    with ``env``); ``env`` is the environment the target runs with (default
    ``os.environ``, cleaned by :func:`torchup.runner.run`); ``timeout`` bounds the whole
    run. Without ``computations`` only the imports and the device query run (what
    ``torchup doctor`` needs). Failed checks are data in the report, never exceptions.
    Raises :class:`InterpreterError` when ``python`` cannot run the probe at all
    (missing, not executable, not Python 2.7 or 3.6+, dies or hangs before the probe
    starts).
    """
    env = dict(os.environ if env is None else env)
    if accelerator is None:
        from torchup.hardware.accelerators import detect

        accelerator = detect(env=env)
    began = time.perf_counter()
    doc = run_probe(python, env, timeout, computations=computations)
    exe = str(doc.get("executable") or python)
    facts: Mapping[str, Any] = doc.get("facts") or {}
    torch_version = facts.get("torch_version") or facts.get("torch_dist_version")
    build: Mapping[str, Any] = facts.get("build") or {}
    devices = tuple(_device(d) for d in facts.get("devices") or () if isinstance(d, dict))
    where = _install_target(exe, facts.get("environment"))
    own = own_backend(torch_version, build)

    probe_checks = [
        _probe_check(raw, torch_version, target=where, backend=own)
        for raw in doc.get("checks") or ()
    ]
    hardware: list[VerifyCheck] = []
    if build and "devices" in facts:
        hardware = hardware_checks(build, devices, accelerator, python=exe, target=where)
    pairing = {
        name: companion_check(name, facts[name], torch_version, build, python=exe, target=where)
        for name in sorted(COMPANIONS)
        if isinstance(facts.get(name), dict)
    }
    checks: list[VerifyCheck] = []
    for check in probe_checks:
        checks.extend(c for name, c in pairing.items() if check.id == f"import-{name}")
        checks.append(check)
        if check.id == "devices":
            checks.extend(hardware)
    return VerifyReport(
        python=exe,
        torch=torch_version,
        local=_local(torch_version),
        build=build,
        devices=devices,
        companions={name: _companion_version(facts[name]) for name in pairing},
        checks=tuple(checks),
        seconds=round(time.perf_counter() - began, 3),
    )


# --- judging the facts (pure) ---------------------------------------------------------


def build_kind(build: Mapping[str, Any]) -> str:
    """Which GPU runtime a torch build targets, from its build facts.

    >>> build_kind({"cuda": "12.8", "hip": None})
    'cuda'
    >>> build_kind({"cuda": None, "hip": "6.4.43482", "xpu": None})
    'rocm'
    >>> build_kind({"cuda": None, "hip": None, "xpu": None})
    'cpu'
    """
    if build.get("hip"):
        return "rocm"  # ROCm builds answer through torch.cuda and may set version.cuda
    if build.get("cuda"):
        return "cuda"
    if build.get("xpu"):
        return "xpu"
    return "cpu"


def hardware_checks(
    build: Mapping[str, Any],
    devices: Sequence[SeenDevice],
    accelerator: Accelerator,
    *,
    python: str,
    target: Sequence[str] | None = None,
) -> list[VerifyCheck]:
    """Judge torch's build and the devices it sees against what detection found.

    Ids: ``cpu-build-on-gpu`` (fail), ``gpu-build-mismatch`` (fail: a CUDA build on an
    AMD machine, ...), ``gpu-not-usable`` (fail: detection found the build's GPU but
    torch sees none, e.g. a driver too old), ``gpu-build-no-gpu`` (warn: a GPU build on
    a machine where no GPU is visible), ``gpu-arch-unsupported`` (fail: no kernels for
    a GPU's architecture), ``mps-unavailable`` (warn), else ``build-matches-hardware``.
    A failure's fix reinstalls torch with ``--backend auto`` into ``target`` (the
    ``torchup install`` arguments naming the environment; default ``--python PYTHON``).

    >>> from torchup.hardware.accelerators import Accelerator
    >>> gpu = Accelerator(kind="cuda", source="nvml")
    >>> [c.id for c in hardware_checks({"cuda": None}, [], gpu, python="py")]
    ['cpu-build-on-gpu']
    """
    kind = build_kind(build)
    what = _build_name(build)
    gpus = [d for d in devices if d.id != "cpu"]
    auto = install_fix(["torch"], "auto", target or ("--python", python))
    machine = accelerator.describe()
    if kind == "cpu":
        if accelerator.kind in _GPU_KINDS:
            detail = (
                f"torch is a CPU-only build, but this machine has {machine}; "
                "PyTorch cannot use the GPU"
            )
            return [_judged("cpu-build-on-gpu", "fail", detail, auto)]
        if accelerator.kind == "mps" and not build.get("mps"):
            why = "" if build.get("mps_built") else " (this torch was built without MPS)"
            detail = f"this Mac has Apple MPS, but torch.backends.mps is not available{why}"
            return [_judged("mps-unavailable", "warn", detail, None)]
        seen = "; MPS available" if build.get("mps") else ""
        detail = f"CPU-only build{seen}; detection found {machine}"
        return [_judged("build-matches-hardware", "pass", detail, None)]
    if accelerator.kind in _GPU_KINDS and accelerator.kind != kind:
        detail = f"torch is a {what} build, but this machine has {machine}"
        return [_judged("gpu-build-mismatch", "fail", detail, auto)]
    if not gpus:
        hidden = hiding(accelerator)
        said = build.get("device_warnings")
        if accelerator.kind == kind and accelerator.gpus and not hidden:
            detail = (
                f"torch is a {what} build and detection found {machine}, but PyTorch sees no GPU"
            )
            detail += f": {said}" if said else ""
            return [_judged("gpu-not-usable", "fail", detail, auto)]
        if hidden:
            reason = ", ".join(f"{key}={value!r} hides every GPU" for key, value in hidden)
        else:
            reason = f"detection found {machine}"
        detail = f"torch is a {what} build, but PyTorch sees no GPU ({reason}); it runs on the CPU"
        fix = f"unset {hidden[0][0]}" if hidden else None
        return [_judged("gpu-build-no-gpu", "warn", detail, fix)]
    arch_list = [str(a) for a in build.get("arch_list") or ()]
    missing = [d for d in gpus if not _covered(d, arch_list, kind)]
    if missing:
        names = ", ".join(f"{d.id} {d.name} ({_arch_name(d)})" for d in missing)
        detail = (
            f"torch {what} has kernels for {' '.join(arch_list)}; none runs on {names}, "
            "so GPU work there fails with 'no kernel image is available'"
        )
        return [_judged("gpu-arch-unsupported", "fail", detail, auto)]
    names = ", ".join(f"{d.id} {d.name} ({_arch_name(d)})" for d in gpus)
    detail = f"{what} build; PyTorch sees {names}"
    if arch_list:
        detail += f"; kernels for {' '.join(arch_list)}"
    return [_judged("build-matches-hardware", "pass", detail, None)]


def companion_check(
    name: str,
    facts: Mapping[str, Any],
    torch_version: str | None,
    build: Mapping[str, Any],
    *,
    python: str,
    target: Sequence[str] | None = None,
) -> VerifyCheck:
    """Whether companion ``name`` (facts from the probe) was built for the installed torch.

    The companion's installed metadata pin (``Requires-Dist: torch==2.5.1``) must admit
    ``torch_version``; without a pin the cited pairing table stands in (a mismatch then
    warns). Its variant (local label, or the CUDA version it reports) must be torch's
    (local label, or derived from ``build``). Id: ``<name>-matches-torch``. A failure's
    fix reinstalls this torch release and ``name`` with torch's own ``--backend`` into
    ``target`` (the ``torchup install`` arguments naming the environment; default
    ``--python PYTHON``).

    >>> facts = {"dist_version": "0.20.1+cpu", "requires": ["torch==2.5.1"]}
    >>> companion_check("torchvision", facts, "2.5.1+cpu", {}, python="py").status
    'pass'
    >>> companion_check("torchvision", facts, "2.6.0+cpu", {}, python="py").status
    'fail'
    """
    check_id = f"{name}-matches-torch"
    version = _companion_version(facts)
    torch = _version(torch_version)
    if torch is None:
        return _judged(check_id, "warn", "torch's version is unknown; not compared", None)
    fix = install_fix(
        [f"torch=={torch.public}", name],
        own_backend(torch_version, build),
        target or ("--python", python),
    )
    failures: list[str] = []
    doubts: list[str] = []
    pins = _torch_pins(facts.get("requires") or ())
    if pins:
        basis = "its metadata requires " + ", ".join(str(pin) for pin in pins)
        for pin in pins:
            if not pin.specifier.contains(torch, prereleases=True):
                failures.append(f"{name} {version} requires {pin}, but torch {torch} is installed")
    else:
        expected = predicted(name, torch)
        own = _version(version)
        if expected is None or own is None:
            basis = "its metadata has no torch pin and the pairing table has no entry"
            doubts.append(f"cannot tell which torch {name} {version} was built for")
        elif Version(own.public) != expected:
            basis = f"no torch pin in its metadata; the pairing table gives {name} {expected}"
            doubts.append(f"{name} {version} is not the release paired with torch {torch}")
        else:
            basis = "no torch pin in its metadata; the pairing table agrees"
    module_version, dist_version = facts.get("module_version"), facts.get("dist_version")
    # PyPI's torchvision says 0.28.0 in its metadata and 0.28.0+cu130 in __version__:
    # only the public parts must agree; the module's label still names the variant.
    if module_version and dist_version and _public(module_version) != _public(dist_version):
        failures.append(
            f"the imported {name} is {module_version} but the installed metadata says "
            f"{dist_version} (another copy shadows it)"
        )
    theirs = (
        _variant(_local(version))
        or _variant(_local(module_version))
        or _cuda_variant(facts.get("cuda"))
    )
    ours = _variant(torch.local) or _build_variant(build)
    if theirs and ours and theirs != ours:
        failures.append(f"{name} {version} is a {theirs} build, torch {torch} is a {ours} build")
    if failures or doubts:
        status: Status = "fail" if failures else "warn"
        return _judged(check_id, status, "; ".join(failures + doubts) + f" ({basis})", fix)
    variant = f", variant {theirs}" if theirs else ""
    return _judged(check_id, "pass", f"{name} {version} fits torch {torch}: {basis}{variant}", None)


def _probe_check(
    raw: Any, torch_version: str | None, *, target: Sequence[str], backend: str | None
) -> VerifyCheck:
    """A check the probe ran; a failed import gets the reinstall of the same build."""
    if not isinstance(raw, dict):
        return VerifyCheck(id="probe", status="fail", detail=f"malformed check {raw!r}")
    check_id = str(raw.get("id", "probe"))
    status = _STATUSES.get(str(raw.get("status")), "fail")
    seconds = raw.get("seconds")
    fix = None
    torch = _version(torch_version)
    # installed but not importing: the installer would call the same pins satisfied
    again = torch is not None
    pin = f"torch=={torch.public}" if torch else "torch"
    if status == "fail" and check_id == "import-torch":
        fix = install_fix([pin], backend, target, reinstall=again)
    elif status == "fail" and check_id.startswith("import-"):
        fix = install_fix([pin, check_id.removeprefix("import-")], backend, target, reinstall=again)
    return VerifyCheck(
        id=check_id,
        status=status,
        detail=str(raw.get("detail", "")),
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        fix=fix,
    )


# --- the fix commands (pure) ----------------------------------------------------------


def _install_target(python: str, environment: Any) -> tuple[str, ...]:
    """The ``torchup install`` arguments that name the environment ``python`` is in.

    ``environment`` is the probe's fact (``prefix``, ``in_venv``, ``conda``). A conda env
    is ``--conda-env PREFIX`` and a venv ``--venv PREFIX``: ``install --python EXE``
    alone would install into the active environment or ``./.venv``, not there. Any
    other Python (or no fact) is that Python itself, ``--python EXE --system`` (as
    ``torchup doctor`` says it).

    >>> _install_target("/p/.venv/bin/python", {"prefix": "/p/.venv", "in_venv": True})
    ('--venv', '/p/.venv')
    >>> _install_target("/c/envs/ml/bin/python", {"prefix": "/c/envs/ml", "conda": True})
    ('--conda-env', '/c/envs/ml')
    >>> _install_target("/usr/bin/python3", {"prefix": "/usr", "in_venv": False})
    ('--python', '/usr/bin/python3', '--system')
    """
    prefix = environment.get("prefix") if isinstance(environment, dict) else None
    if isinstance(prefix, str) and prefix:
        # a venv made from a conda Python has no conda-meta of its own: it is a venv
        if environment.get("conda"):
            return ("--conda-env", prefix)
        if environment.get("in_venv"):
            return ("--venv", prefix)
    return ("--python", python, "--system")


def own_backend(torch_version: str | None, build: Mapping[str, Any]) -> str | None:
    """The ``--backend`` that reinstalls the same build of torch (``verify``'s and
    ``doctor``'s fixes): PyPI for a release without a local label, else its variant
    (:func:`variant_of`); None when torch's version is unknown.

    >>> own_backend("2.8.0+cu126", {}), own_backend("2.13.0", {"cuda": "13.0"})
    ('cu126', 'pypi')
    >>> own_backend(None, {}) is None
    True
    """
    version = _version(torch_version)
    if version is None:
        return None
    if version.local is None:
        return "pypi"
    return variant_of(torch_version, build)


def install_fix(
    requirements: Sequence[str],
    backend: str | None,
    target: Sequence[str],
    *,
    reinstall: bool = False,
) -> str:
    """The ``torchup install`` command line; ``target`` names the environment.

    >>> install_fix(["torch"], "cpu", ("--venv", "/p/my env"))
    "torchup install torch --backend cpu --venv '/p/my env'"
    >>> install_fix(["torch==2.13.0"], "cpu", ("--venv", "/p"), reinstall=True)
    'torchup install torch==2.13.0 --backend cpu --reinstall --venv /p'
    """
    argv = ["torchup", "install", *requirements]
    if backend:
        argv += ["--backend", backend]
    if reinstall:
        argv.append("--reinstall")
    return shlex.join([*argv, *target])


# --- small helpers --------------------------------------------------------------------


def _judged(check_id: str, status: Status, detail: str, fix: str | None) -> VerifyCheck:
    return VerifyCheck(id=check_id, status=status, detail=detail, fix=fix)


def _device(raw: Mapping[str, Any]) -> SeenDevice:
    memory = raw.get("memory_mib")
    arch = raw.get("arch")
    return SeenDevice(
        id=str(raw.get("id", "?")),
        name=str(raw.get("name", "")),
        arch=str(arch) if arch is not None else None,
        memory_mib=memory if isinstance(memory, int) else None,
    )


def _version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def _local(text: str | None) -> str | None:
    version = _version(text)
    return version.local if version is not None else None


def _public(text: str) -> str:
    version = _version(text)
    return version.public if version is not None else text


def _companion_version(facts: Mapping[str, Any]) -> str | None:
    value = facts.get("dist_version") or facts.get("module_version")
    return str(value) if value else None


def _torch_pins(requires: Sequence[str]) -> list[Requirement]:
    pins = []
    for text in requires:
        try:
            req = Requirement(str(text))
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) != "torch":
            continue
        if req.marker is not None and "extra" in str(req.marker):
            continue  # only an optional feature needs it
        pins.append(req)
    return pins


def variant_of(version: str | None, build: Mapping[str, Any]) -> str | None:
    """A torch's build variant: its local label, else what its build facts say.

    >>> variant_of("2.9.0+cu128", {}), variant_of("2.9.0", {"cuda": "12.8"})
    ('cu128', 'cu128')
    >>> variant_of("2.13.0", {"cuda": None}), variant_of(None, {})
    ('cpu', None)
    """
    return _variant(_local(version)) or (_build_variant(build) if build else None)


def _variant(local: str | None) -> str | None:
    """The variant a local label names: ``cu128``, ``rocm6.4``, ``cpu``, ``xpu``."""
    match = _VARIANT.match(local or "")
    return match.group(1) if match else None


def _cuda_variant(cuda: Any) -> str | None:
    match = re.match(r"^([0-9]+)\.([0-9]+)", str(cuda)) if cuda else None
    return f"cu{match.group(1)}{match.group(2)}" if match else None


def _build_variant(build: Mapping[str, Any]) -> str | None:
    kind = build_kind(build) if build else None
    if kind == "cuda":
        return _cuda_variant(build.get("cuda"))
    if kind == "rocm":
        match = re.match(r"^([0-9]+\.[0-9]+)", str(build.get("hip")))
        return f"rocm{match.group(1)}" if match else None
    return kind


def _build_name(build: Mapping[str, Any]) -> str:
    kind = build_kind(build)
    if kind == "cuda":
        return f"CUDA {build.get('cuda')}"
    if kind == "rocm":
        return f"ROCm (HIP {build.get('hip')})"
    if kind == "xpu":
        return "XPU"
    return "CPU-only"


def hiding(accelerator: Accelerator) -> list[tuple[str, str]]:
    """The visibility variables that hide every GPU (CUDA stops at the first bad entry).

    >>> from torchup.hardware.accelerators import Accelerator
    >>> hidden = (("CUDA_VISIBLE_DEVICES", "-1"),)
    >>> hiding(Accelerator(kind="cuda", source="t", visible_devices=hidden))
    [('CUDA_VISIBLE_DEVICES', '-1')]
    """
    found = []
    for key, value in accelerator.visible_devices:
        first = value.split(",")[0].strip()
        if first in ("", "-1", "NoDevFiles") or first.startswith("-"):
            found.append((key, value))
    return found


def _arch_name(device: SeenDevice) -> str:
    arch = device.arch or "unknown arch"
    if re.fullmatch(r"[0-9]+\.[0-9]", arch):
        return "sm_" + arch.replace(".", "")
    return arch


def _covered(device: SeenDevice, arch_list: Sequence[str], kind: str) -> bool:
    """Whether ``arch_list`` (``torch.cuda.get_arch_list()``) has kernels for ``device``;
    True when either is unknown, since nothing can be proved then."""
    if not arch_list or not device.arch:
        return True
    if kind == "rocm":
        return device.arch.split(":")[0] in {a.split(":")[0] for a in arch_list}
    if kind != "cuda" or not re.fullmatch(r"[0-9]+\.[0-9]+", device.arch):
        return True
    entries = []
    for item in arch_list:
        match = _NV_ARCH.match(item)
        if match:
            ptx = match.group(1) == "compute"
            entries.append(ArchEntry(int(match.group(2)), int(match.group(3)), ptx))
    return not entries or runs_on(entries, device.arch)
