"""What compute hardware this machine has: :func:`detect` returns an :class:`Accelerator`.

Detection is an ordered chain; the first complete answer wins and every step's result
(or failure) is kept in :attr:`Accelerator.steps`:

1. overrides, for containers and CI where the build machine is not the run machine:
   ``TORCHUP_GPU_ARCHS`` (``8.0,12.0``, ``sm_86``, ``gfx1100`` or ``none``) stands in
   for the GPUs, ``TORCHUP_CUDA_DRIVER_VERSION`` for the NVIDIA driver;
2. NVIDIA: NVML, then ``/proc``/``/sys`` (driver), then ``nvidia-smi`` (see
   :mod:`torchup.hardware.nvidia`);
3. AMD: the KFD topology, ``rocm_agent_enumerator``, ``rocminfo`` (see :mod:`torchup.hardware.amd`);
4. Intel: a display device bound to i915/xe -> ``xpu``;
5. Apple: macOS on arm64 -> ``mps``;
6. otherwise ``cpu``.

``--backend``/``TORCHUP_BACKEND`` bypass detection altogether (:mod:`torchup.choose.backends`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torchup.errors import UsageError
from torchup.hardware import amd as _amd
from torchup.hardware import nvidia as _nvidia
from torchup.hardware.nvidia import Gpu, NvidiaFacts, ProbeFailed
from torchup.runner import Completed
from torchup.runner import run as _run

__all__ = ["Accelerator", "Gpu", "Kind", "Step", "detect", "parse_gpu_archs"]

Kind = Literal["cuda", "rocm", "xpu", "mps", "cpu"]
Run = Callable[[Sequence[str]], Completed]

#: Variables that decide which GPUs a process sees at run time.
VISIBILITY = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")
_TOOL_TIMEOUT = 10.0  # a wedged driver can make nvidia-smi hang; bound it


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One probe tried: ``ok`` with what it found, or the reason it did not answer."""

    probe: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class Accelerator:
    """The machine's compute hardware, with where each fact came from."""

    kind: Kind
    source: str
    gpus: tuple[Gpu, ...] = ()
    driver: str | None = None
    driver_source: str | None = None
    cuda: str | None = None
    rocm: str | None = None
    rocm_source: str | None = None
    visible_devices: tuple[tuple[str, str], ...] = ()
    steps: tuple[Step, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    system: str = sys.platform

    def describe(self) -> str:
        """One line: ``NVIDIA driver 580.65.06 (NVML), NVIDIA GeForce GTX 1080 Ti (sm_61)``."""
        if self.kind == "cpu":
            return f"no accelerator ({self.source})"
        if self.kind == "mps":
            return f"Apple MPS ({self.source})"
        parts = []
        if self.kind == "cuda":
            driver = self.driver or "unknown"
            parts.append(f"NVIDIA driver {driver} ({self.driver_source or 'not found'})")
        elif self.kind == "rocm" and self.rocm:
            parts.append(f"ROCm {self.rocm} ({self.rocm_source})")
        parts += [f"{g.name} ({g.sm})" for g in self.gpus]
        return ", ".join(parts) or self.kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "driver": {"version": self.driver, "source": self.driver_source},
            "cuda_driver_api": self.cuda,
            "rocm": {"version": self.rocm, "source": self.rocm_source},
            "gpus": [g.to_dict() for g in self.gpus],
            "visible_devices": dict(self.visible_devices),
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
        }


_NV_ARCH = re.compile(r"^(?:sm_?)?([0-9]+)\.?([0-9])$")
_DRIVER = re.compile(r"^[0-9]{2,4}(\.[0-9]{1,3}){0,2}$")


def parse_gpu_archs(text: str) -> list[str]:
    """Parse ``TORCHUP_GPU_ARCHS``: NVIDIA compute capabilities or AMD gfx targets.

    >>> parse_gpu_archs("8.0, sm_120,86")
    ['8.0', '12.0', '8.6']
    >>> parse_gpu_archs("gfx1100")
    ['gfx1100']
    >>> parse_gpu_archs("none")
    []
    """
    if text.strip().lower() in ("none", "cpu"):
        return []
    archs: list[str] = []
    for item in (t.strip().lower() for t in text.split(",")):
        if not item:
            continue
        nv = _NV_ARCH.match(item)
        if nv:
            archs.append(f"{int(nv.group(1))}.{nv.group(2)}")
        elif re.fullmatch(r"gfx[0-9a-f]{3,5}", item):
            archs.append(item)
        else:
            raise UsageError(
                f"TORCHUP_GPU_ARCHS has {item!r}, which is not a GPU architecture",
                hint="use compute capabilities (TORCHUP_GPU_ARCHS=8.6,12.0), AMD gfx "
                "targets (gfx1100) or none",
            )
    if len({a.startswith("gfx") for a in archs}) > 1:
        raise UsageError(
            f"TORCHUP_GPU_ARCHS={text!r} mixes NVIDIA and AMD architectures",
            hint="one build runs on one vendor's GPUs; list only one vendor's",
        )
    return archs


def _visible(env: Mapping[str, str]) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    shown = tuple((k, env[k]) for k in VISIBILITY if k in env)
    warnings = []
    for key, value in shown:
        first = value.split(",")[0].strip()
        # CUDA stops at the first invalid entry, so "-1,0" hides every GPU too.
        if first in ("", "-1", "NoDevFiles") or first.startswith("-"):
            warnings.append(
                f"{key}={value!r} hides every GPU from PyTorch at run time; "
                f"unset it (`unset {key}`) to use them"
            )
    return shown, warnings


def _hsa_override(env: Mapping[str, str]) -> str | None:
    """``HSA_OVERRIDE_GFX_VERSION=10.3.0`` makes ROCm treat every GPU as gfx1030."""
    value = env.get("HSA_OVERRIDE_GFX_VERSION", "").strip()
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)\.([0-9]+)", value)
    if not match:
        return None
    major, minor, step = (int(g) for g in match.groups())
    return f"gfx{major}{minor:x}{step:x}"


class _Chain:
    """Collects the steps of the probes that ran."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def attempt(self, probe: str, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except ProbeFailed as exc:
            self.steps.append(Step(probe=probe, ok=False, detail=str(exc)))
            return None
        self.steps.append(Step(probe=probe, ok=True, detail=_summary(result)))
        return result


def _summary(result: Any) -> str:
    if isinstance(result, NvidiaFacts):
        gpus = ", ".join(f"{g.name} ({g.sm})" for g in result.gpus) or "no GPU listed"
        return f"driver {result.driver or 'unknown'}; {gpus}"
    if isinstance(result, list) and all(isinstance(g, Gpu) for g in result):
        return ", ".join(f"{g.name} ({g.sm})" for g in result)
    return str(result)


def _nvidia_chain(
    chain: _Chain, root: Path, run: Run, libraries: Sequence[str], smi: str | None
) -> tuple[str | None, str | None, str | None, tuple[Gpu, ...]]:
    """Driver, its source, CUDA driver API version and GPUs: first complete answer wins."""
    driver = driver_source = cuda = None
    gpus: tuple[Gpu, ...] = ()

    def complete() -> bool:
        return driver is not None and bool(gpus) and all(g.arch for g in gpus)

    probes: list[tuple[str, Callable[[], NvidiaFacts]]] = [
        ("nvml", lambda: _nvidia.nvml_facts(libraries)),
        ("proc", lambda: _nvidia.proc_facts(root)),
    ]
    if smi:
        probes.append(("nvidia-smi", lambda: _nvidia.smi_facts(smi, run)))
    for probe, fn in probes:
        if complete():
            break
        facts: NvidiaFacts | None = chain.attempt(probe, fn)
        if facts is None:
            continue
        if driver is None and facts.driver:
            driver, driver_source = facts.driver, facts.source
        cuda = cuda or facts.cuda
        better = facts.gpus and (not gpus or (all(g.arch for g in facts.gpus)))
        if better:
            gpus = facts.gpus
    if not smi and not complete():
        chain.steps.append(Step(probe="nvidia-smi", ok=False, detail="not found on PATH"))
    return driver, driver_source, cuda, gpus


def _which(name: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=env.get("PATH", os.defpath))


def _tool_runner(env: Mapping[str, str]) -> Run:
    """Start the vendor tools with ``env``, bounded by :data:`_TOOL_TIMEOUT`."""

    def run(cmd: Sequence[str]) -> Completed:
        return _run(cmd, env=env, timeout=_TOOL_TIMEOUT, check=False)

    return run


def _read_overrides(env: Mapping[str, str]) -> tuple[list[str] | None, str | None]:
    """``TORCHUP_GPU_ARCHS`` parsed and ``TORCHUP_CUDA_DRIVER_VERSION`` checked.

    Raises :class:`UsageError` for a malformed value (the architectures are read first).
    """
    archs_text = env.get("TORCHUP_GPU_ARCHS")
    archs = parse_gpu_archs(archs_text) if archs_text is not None else None
    driver_env = env.get("TORCHUP_CUDA_DRIVER_VERSION", "").strip() or None
    if driver_env is not None and not _DRIVER.match(driver_env):
        raise UsageError(
            f"TORCHUP_CUDA_DRIVER_VERSION={driver_env!r} is not a driver version",
            hint="use the version nvidia-smi prints, e.g. TORCHUP_CUDA_DRIVER_VERSION=550.54.14",
        )
    return archs, driver_env


def _override_gpus(archs: Sequence[str]) -> tuple[Gpu, ...]:
    """The GPUs ``TORCHUP_GPU_ARCHS`` stands in for, one per architecture."""
    if not archs:
        return ()
    vendor = "amd" if archs[0].startswith("gfx") else "nvidia"
    return tuple(
        Gpu(
            vendor=vendor,
            index=i,
            name=f"GPU {i}",
            arch=a,
            memory_mib=None,
            source="TORCHUP_GPU_ARCHS",
        )
        for i, a in enumerate(archs)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Detection:
    """What one :func:`detect` call probes with, and the steps and warnings it collects."""

    env: Mapping[str, str]
    root: Path
    run: Run
    libraries: tuple[str, ...]
    system: str
    machine: str
    archs: list[str] | None
    archs_text: str | None
    driver_env: str | None
    override_gpus: tuple[Gpu, ...]
    chain: _Chain
    visible: tuple[tuple[str, str], ...]
    warnings: list[str]

    def result(self, *, kind: Kind, source: str, **facts: Any) -> Accelerator:
        """The answer, with every step and warning collected so far."""
        return Accelerator(
            kind=kind,
            source=source,
            steps=tuple(self.chain.steps),
            warnings=tuple(self.warnings),
            visible_devices=self.visible,
            system=self.system,
            **facts,
        )


def _probe_overrides(ctx: _Detection) -> Accelerator | None:
    """Step 1: ``TORCHUP_GPU_ARCHS=none`` answers ``cpu``; other overrides are recorded."""
    if ctx.archs == []:
        ctx.chain.steps.append(Step(probe="TORCHUP_GPU_ARCHS", ok=True, detail="none"))
        return ctx.result(kind="cpu", source="TORCHUP_GPU_ARCHS=none")
    if ctx.override_gpus:
        ctx.chain.steps.append(
            Step(probe="TORCHUP_GPU_ARCHS", ok=True, detail=ctx.archs_text or "")
        )
    if ctx.driver_env:
        ctx.chain.steps.append(
            Step(probe="TORCHUP_CUDA_DRIVER_VERSION", ok=True, detail=ctx.driver_env)
        )
    return None


def _nvidia_warnings(driver: str | None, gpus: tuple[Gpu, ...]) -> list[str]:
    """What a CUDA answer could not check: an unknown driver, GPUs or architectures."""
    warnings = []
    if driver is None:
        warnings.append(
            "NVIDIA driver version unknown; CUDA builds are chosen as if the driver "
            "were current (set TORCHUP_CUDA_DRIVER_VERSION to the run machine's)"
        )
    if not gpus:
        warnings.append(
            "no NVIDIA GPU listed; GPU architectures are not checked "
            "(set TORCHUP_GPU_ARCHS, e.g. TORCHUP_GPU_ARCHS=8.6)"
        )
    elif any(g.arch is None for g in gpus):
        warnings.append(
            "compute capability unknown for "
            + ", ".join(g.name for g in gpus if g.arch is None)
            + " (found via "
            + gpus[0].source
            + "); set TORCHUP_GPU_ARCHS to check kernels"
        )
    return warnings


def _probe_nvidia(ctx: _Detection) -> Accelerator | None:
    """Step 2: NVIDIA (:func:`_nvidia_chain`), unless the override names AMD GPUs."""
    override_gpus = ctx.override_gpus
    if override_gpus and override_gpus[0].vendor != "nvidia":
        return None
    driver: str | None
    driver_source: str | None
    cuda: str | None
    gpus: tuple[Gpu, ...]
    if ctx.driver_env and override_gpus:
        driver, driver_source, cuda, gpus = ctx.driver_env, "TORCHUP_CUDA_DRIVER_VERSION", None, ()
    else:
        smi = _which("nvidia-smi", ctx.env)
        driver, driver_source, cuda, gpus = _nvidia_chain(
            ctx.chain, ctx.root, ctx.run, ctx.libraries, smi
        )
        if ctx.driver_env:
            driver, driver_source = ctx.driver_env, "TORCHUP_CUDA_DRIVER_VERSION"
    if override_gpus:
        gpus = override_gpus
    if not (gpus or ctx.driver_env or override_gpus):
        return None
    ctx.warnings.extend(_nvidia_warnings(driver, gpus))
    source = "TORCHUP_GPU_ARCHS" if override_gpus else (gpus[0].source if gpus else "")
    return ctx.result(
        kind="cuda",
        source=source or driver_source or "TORCHUP_CUDA_DRIVER_VERSION",
        gpus=tuple(gpus),
        driver=driver,
        driver_source=driver_source,
        cuda=cuda,
    )


def _amd_gpus(ctx: _Detection) -> list[Gpu] | None:
    """The override's AMD GPUs, else the first of KFD, ``rocm_agent_enumerator``, ``rocminfo``."""
    amd: list[Gpu] | None = list(ctx.override_gpus) if ctx.override_gpus else None
    if amd is None:
        amd = ctx.chain.attempt("kfd", lambda: _amd.kfd_gpus(ctx.root))
    for tool in ("rocm_agent_enumerator", "rocminfo"):
        if amd is not None:
            break
        path = _which(tool, ctx.env)
        if path is None:
            ctx.chain.steps.append(Step(probe=tool, ok=False, detail="not found on PATH"))
            continue
        amd = ctx.chain.attempt(tool, functools.partial(_amd.tool_gpus, tool, path, ctx.run))
    return amd


def _apply_hsa_override(ctx: _Detection, amd: list[Gpu]) -> list[Gpu]:
    """``amd`` as ROCm will run them under ``HSA_OVERRIDE_GFX_VERSION``, with a warning."""
    override = _hsa_override(ctx.env)
    if not override:
        return amd
    ctx.warnings.append(
        f"HSA_OVERRIDE_GFX_VERSION={ctx.env['HSA_OVERRIDE_GFX_VERSION']} makes ROCm run "
        f"every GPU as {override}; builds are checked for {override}"
    )
    return [
        Gpu(
            vendor=g.vendor,
            index=g.index,
            name=g.name,
            arch=override,
            memory_mib=g.memory_mib,
            source=f"{g.source}, HSA_OVERRIDE_GFX_VERSION",
        )
        for g in amd
    ]


def _probe_amd(ctx: _Detection) -> Accelerator | None:
    """Step 3: AMD GPUs (:func:`_amd_gpus`), with the ROCm version installed."""
    amd = _amd_gpus(ctx)
    if not amd:
        return None
    amd = _apply_hsa_override(ctx, amd)
    rocm, rocm_source = _amd.rocm_version(ctx.root, _which("amd-smi", ctx.env), ctx.run)
    return ctx.result(
        kind="rocm",
        source=amd[0].source,
        gpus=tuple(amd),
        rocm=rocm,
        rocm_source=rocm_source,
    )


def _probe_intel(ctx: _Detection) -> Accelerator | None:
    """Step 4: on Linux, a display device bound to i915/xe -> ``xpu``."""
    if ctx.system != "linux":
        return None
    intel = ctx.chain.attempt("intel", lambda: _amd.intel_gpus(ctx.root))
    if not intel:
        return None
    return ctx.result(kind="xpu", source=intel[0].source, gpus=tuple(intel))


def _probe_apple(ctx: _Detection) -> Accelerator | None:
    """Step 5: macOS on arm64 -> ``mps``."""
    if ctx.system == "darwin" and ctx.machine == "arm64":
        return ctx.result(kind="mps", source="macOS on arm64")
    return None


#: The chain :func:`detect` walks, in the module docstring's order; step 6 is ``cpu``.
_PROBES: tuple[Callable[[_Detection], Accelerator | None], ...] = (
    _probe_overrides,
    _probe_nvidia,
    _probe_amd,
    _probe_intel,
    _probe_apple,
)


def detect(
    *,
    env: Mapping[str, str] | None = None,
    root: Path = Path("/"),
    run: Run | None = None,
    nvml_libraries: Sequence[str] | None = None,
    system: str | None = None,
    machine: str | None = None,
) -> Accelerator:
    """Detect the accelerator; never raises for missing hardware or tools.

    ``root`` is where ``/proc``, ``/sys`` and ``/opt`` are read from, ``run`` starts
    the vendor tools (found on ``env``'s ``PATH``), ``nvml_libraries`` are the NVML
    files tried in order; tests pass fakes for all of them. Raises :class:`UsageError`
    only for malformed override variables.
    """
    env = dict(os.environ) if env is None else env
    system = system or sys.platform
    if machine is None:
        import platform

        machine = platform.machine()
    libraries = (
        tuple(nvml_libraries)
        if nvml_libraries is not None
        else _nvidia.NVML_LIBRARIES.get(system, ())
    )
    visible, warnings = _visible(env)
    archs, driver_env = _read_overrides(env)
    detection = _Detection(
        env=env,
        root=root,
        run=_tool_runner(env) if run is None else run,
        libraries=libraries,
        system=system,
        machine=machine,
        archs=archs,
        archs_text=env.get("TORCHUP_GPU_ARCHS"),
        driver_env=driver_env,
        override_gpus=_override_gpus(archs or ()),
        chain=_Chain(),
        visible=visible,
        warnings=warnings,
    )
    for probe in _PROBES:
        found = probe(detection)
        if found is not None:
            return found
    return detection.result(kind="cpu", source="no GPU found")
