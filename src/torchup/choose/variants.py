"""Which accelerator variants of torch can run on the detected hardware. Pure.

Two questions per variant and torch release, answered from cited tables in
``data/`` (sources in ``data/README.md``):

- can the NVIDIA driver run its CUDA? The strict answer is NVIDIA's minimum driver
  for that toolkit (Table 3 of the CUDA release notes); CUDA minor-version
  compatibility (Table 2) lets a driver as old as the major family's floor run it
  with a limited feature set, so it is only a fallback;
- does it hold kernels for every GPU? A cubin built for X.y runs on X.z with z >= y
  (sm_60 kernels run on a 6.1 card); a ``+PTX`` entry is JIT-compiled for any newer
  architecture. For ROCm, the gfx target must be in the variant's list.

:func:`hardware_rule` turns the answers into a :data:`~torchup.choose.resolve.VariantRule`,
so every rejected file carries its reason ("cu130: driver 550.54.14 < 580.65.06").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from torchup.choose.compat import Candidate
from torchup.choose.resolve import VariantRule

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator
    from torchup.hardware.nvidia import Gpu

__all__ = [
    "ArchList",
    "Verdict",
    "arch_list",
    "cuda_of",
    "cuda_of_requirements",
    "cuda_releases",
    "cuda_variants",
    "driver_floors",
    "hardware_rule",
    "judge",
    "platform_key",
    "runs_on",
    "variant_of_cuda",
]

_DATA = Path(__file__).parents[1] / "data"


@cache
def _load(name: str) -> Any:
    return json.loads((_DATA / name).read_text("utf-8"))


# --- CUDA versions and drivers --------------------------------------------------------


def cuda_of(variant: str | None) -> tuple[int, int] | None:
    """The CUDA version a ``cuXYZ`` variant is built with (the last digit is the minor).

    >>> cuda_of("cu118"), cuda_of("cu92"), cuda_of("cu130"), cuda_of("cpu")
    ((11, 8), (9, 2), (13, 0), None)
    """
    match = re.fullmatch(r"cu([0-9]+)([0-9])", variant or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


# The runtime a CUDA build of torch pins: nvidia-cuda-runtime-cu11/-cu12 up to 2.10,
# cuda-toolkit[cudart,...] from 2.11 (their METADATA, captured in tests/data/metadata/).
_CUDA_RUNTIME = re.compile(r"nvidia-cuda-runtime(-cu[0-9]+)?|cuda-toolkit")


def cuda_of_requirements(requires: Sequence[str]) -> str | None:
    """The CUDA version a torch build pins in its ``Requires-Dist``, or ``None`` (a CPU
    build, or no CUDA runtime pinned).

    >>> cuda_of_requirements(["filelock", "nvidia-cuda-runtime-cu12==12.4.127"])
    '12.4'
    >>> cuda_of_requirements(["cuda-toolkit[cudart,nvrtc]==13.0.3; platform_system == 'Linux'"])
    '13.0'
    >>> cuda_of_requirements(["sympy>=1.13.3", "pyyaml; extra == 'pyyaml'"]) is None
    True
    """
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if not _CUDA_RUNTIME.fullmatch(req.name.lower().replace("_", "-")):
            continue
        for spec in req.specifier:
            version = _version(spec.version) if spec.operator in ("==", "===") else None
            if version is not None:
                return f"{version.major}.{version.minor}"
    return None


def variant_of_cuda(cuda: str) -> str:
    """``13.0`` -> ``cu130``, the PyTorch index's name for that CUDA's builds.

    >>> variant_of_cuda("12.4"), variant_of_cuda("13.0")
    ('cu124', 'cu130')
    """
    major, _, minor = cuda.partition(".")
    return f"cu{major}{minor}"


def _os(system: str) -> str:
    return "windows" if system == "win32" else "linux"


@dataclass(frozen=True, slots=True, kw_only=True)
class Floors:
    """Minimum drivers for one CUDA variant: ``strict`` (the toolkit's own minimum) and
    ``minor`` (the major family's minor-version-compatibility floor), with sources."""

    cuda: str
    strict: str | None
    minor: str | None
    source: str


def driver_floors(variant: str, system: str = "linux") -> Floors | None:
    """The driver floors of a ``cuXYZ`` variant, or ``None`` when not a CUDA variant or
    the toolkit is not in the table.

    >>> f = driver_floors("cu126")
    >>> f.strict, f.minor
    ('560.28.03', '525.60.13')
    """
    cuda = cuda_of(variant)
    if cuda is None:
        return None
    doc = _load("cuda_drivers.json")
    column = _os(system)
    name = f"{cuda[0]}.{cuda[1]}"
    row = next((r for r in doc["toolkits"] if r["cuda"] == name), None)
    compat = next((r for r in doc["minor_compat"] if int(r["major"]) == cuda[0]), None)
    minor = compat.get(column) if compat else None
    strict = row.get(column) if row else None
    if row is None and compat is None:
        return None
    # NVIDIA publishes no Windows minimum for 13.x (the driver is no longer bundled);
    # the family floor is then the only published requirement.
    return Floors(
        cuda=name,
        strict=strict or minor,
        minor=minor,
        source=(row or {}).get("source", "") or (compat or {}).get("source", ""),
    )


def _version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


# --- GPU architectures ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchEntry:
    major: int
    minor: int
    ptx: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchList:
    """The architectures compiled into one variant of one torch release."""

    text: str
    entries: tuple[ArchEntry, ...]
    release: str
    source: str
    confidence: str


def parse_arch_list(text: str) -> tuple[ArchEntry, ...]:
    """Parse ``TORCH_CUDA_ARCH_LIST`` syntax.

    >>> parse_arch_list("7.5;9.0a;12.0+PTX")[-1]
    ArchEntry(major=12, minor=0, ptx=True)
    """
    entries = []
    for item in re.split(r"[;\s]+", text.strip()):
        match = re.fullmatch(r"([0-9]+)\.([0-9]+)[a-z]?(\+PTX)?", item)
        if match:
            entries.append(ArchEntry(int(match.group(1)), int(match.group(2)), bool(match[3])))
    return tuple(entries)


def runs_on(entries: Sequence[ArchEntry], capability: str) -> bool:
    """Whether kernels in ``entries`` run on a GPU of compute ``capability`` (``"6.1"``).

    >>> runs_on(parse_arch_list("5.0;6.0;7.0"), "6.1")     # sm_60 cubin on a 6.1 card
    True
    >>> runs_on(parse_arch_list("7.0;7.5;9.0"), "12.0")    # no PTX: nothing for Blackwell
    False
    >>> runs_on(parse_arch_list("9.0;12.0+PTX"), "12.1")
    True
    """
    major, minor = (int(p) for p in capability.split(".")[:2])
    for e in entries:
        if e.major == major and e.minor <= minor:
            return True  # binary compatibility within a major architecture
        if e.ptx and (e.major, e.minor) <= (major, minor):
            return True  # PTX is JIT-compiled for any newer architecture
    return False


def platform_key(markers: Mapping[str, str]) -> str:
    """The arch-table platform for an interpreter's environment markers.

    >>> platform_key({"sys_platform": "win32", "platform_machine": "AMD64"})
    'windows_amd64'
    """
    system = markers.get("sys_platform", "")
    machine = markers.get("platform_machine", "").lower()
    if system == "win32":
        return "windows_amd64"
    if machine in ("aarch64", "arm64"):
        return "linux_aarch64"
    return "linux_x86_64"


def _release_key(key: str) -> tuple[int, int] | None:
    match = re.match(r"([0-9]+)\.([0-9]+)", key)
    return (int(match.group(1)), int(match.group(2))) if match else None


def arch_list(release: Version, variant: str, platform: str = "linux_x86_64") -> ArchList | None:
    """The architectures of ``variant`` in torch ``release``, or ``None`` when unknown.

    A release missing from the table borrows the nearest earlier release's list for
    the same variant (then the nearest later one), marked ``inferred``.
    """
    releases: dict[str, Any] = _load("cuda_archs.json")["releases"]
    want = (release.major, release.minor)
    rows: list[tuple[tuple[int, int], str, dict[str, Any]]] = []
    used = platform
    for used in dict.fromkeys((platform, "linux_x86_64")):  # Linux lists stand in last
        for key, by_platform in releases.items():
            rk = _release_key(key)
            entry = (by_platform.get(used) or {}).get(variant) if rk else None
            if rk and isinstance(entry, dict) and entry.get("archs"):
                rows.append((rk, key, entry))
        if rows:
            break
    if not rows:
        return None
    exact = [r for r in rows if r[0] == want]
    earlier = sorted((r for r in rows if r[0] < want), reverse=True)
    later = sorted(r for r in rows if r[0] > want)
    rk, key, entry = (exact or earlier or later)[0]
    confidence = entry.get("confidence", "source")
    if rk != want or used != platform:
        confidence = f"inferred from {key}" + (f" {used}" if used != platform else "")
    return ArchList(
        text=entry["archs"],
        entries=parse_arch_list(entry["archs"]),
        release=key,
        source=entry.get("source", ""),
        confidence=confidence,
    )


def cuda_releases() -> list[Version]:
    """The torch releases (``X.Y``) the cited architecture table covers, newest first.

    >>> Version("2.5") in cuda_releases()
    True
    """
    releases: dict[str, Any] = _load("cuda_archs.json")["releases"]
    return sorted((Version(key) for key in releases), reverse=True)


def cuda_variants(release: Version, platform: str = "linux_x86_64") -> list[str]:
    """The CUDA variants the table lists for ``release`` (``X.Y``) on ``platform``
    (else Linux x86-64), newest CUDA first.

    >>> cuda_variants(Version("2.5.1"))
    ['cu124', 'cu121', 'cu118']
    """
    row = _load("cuda_archs.json")["releases"].get(f"{release.major}.{release.minor}", {})
    names = list((row.get(platform) or row.get("linux_x86_64") or {}).keys())
    return sorted(names, key=lambda v: cuda_of(v) or (0, 0), reverse=True)


def rocm_archs(variant: str) -> tuple[str, ...] | None:
    """The gfx targets of a ROCm variant, or ``None`` when not in the table."""
    row = _load("rocm_archs.json")["variants"].get(variant)
    return tuple(row["archs"]) if row else None


# --- verdicts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """Whether ``variant`` of torch ``release`` runs here; ``minor_compat`` when only
    through CUDA minor-version compatibility; ``notes`` for facts not checkable."""

    variant: str
    release: str
    ok: bool
    reason: str = ""
    minor_compat: bool = False
    minor_reason: str = ""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "release": self.release,
            "ok": self.ok,
            "reason": self.reason,
            "minor_compat": self.minor_compat,
            "notes": list(self.notes),
        }


_VENDOR = {"cuda": "NVIDIA", "rocm": "AMD", "xpu": "Intel"}


def _gpu_label(gpu: Gpu) -> str:
    return f"{gpu.sm} ({gpu.name})"


def judge(variant: str, release: Version, accel: Accelerator, platform: str) -> Verdict:
    """Can ``variant`` of torch ``release`` run on ``accel``? Reasons read like
    ``driver 550.54.14 < 580.65.06`` or ``no kernels for sm_61 (GTX 1080 Ti)``."""
    rel = f"{release.major}.{release.minor}"
    kind = accel.kind
    if variant == "cpu" or variant is None:
        return _judge_cpu(rel, kind)
    if variant == "xpu":
        ok = kind == "xpu"
        return Verdict(
            variant=variant, release=rel, ok=ok, reason="" if ok else "no Intel GPU here"
        )
    if variant.startswith("rocm"):
        return _judge_rocm(variant, rel, accel)
    if cuda_of(variant) is None:
        return Verdict(variant=variant, release=rel, ok=False, reason="unknown variant")
    if kind != "cuda":
        return Verdict(variant=variant, release=rel, ok=False, reason="no NVIDIA GPU here")
    return _judge_cuda(variant, release, accel, platform)


def _judge_cpu(rel: str, kind: str) -> Verdict:
    """The CPU build runs anywhere, but on a GPU machine it is not what was wanted."""
    if kind in ("cpu", "mps"):
        return Verdict(variant="cpu", release=rel, ok=True)
    return Verdict(
        variant="cpu",
        release=rel,
        ok=False,
        reason=f"CPU only; this machine has {_VENDOR.get(kind, kind)} GPUs",
    )


def _judge_rocm(variant: str, rel: str, accel: Accelerator) -> Verdict:
    """A ROCm variant runs on AMD GPUs whose gfx targets are all in its list."""
    if accel.kind != "rocm":
        return Verdict(variant=variant, release=rel, ok=False, reason="no AMD GPU here")
    targets = rocm_archs(variant)
    if targets is None:
        return Verdict(
            variant=variant,
            release=rel,
            ok=True,
            notes=(f"{variant}'s gfx targets are not in torchup's table; not checked",),
        )
    missing = [g for g in accel.gpus if g.arch and g.arch not in targets]
    if missing:
        return Verdict(
            variant=variant,
            release=rel,
            ok=False,
            reason="no kernels for " + ", ".join(_gpu_label(g) for g in missing),
        )
    return Verdict(variant=variant, release=rel, ok=True)


def _judge_cuda(variant: str, release: Version, accel: Accelerator, platform: str) -> Verdict:
    """A CUDA variant on NVIDIA GPUs: the driver must meet its strict minimum (or, for
    ``minor_compat``, the family floor) and its kernels must run on every GPU."""
    rel = f"{release.major}.{release.minor}"
    notes: list[str] = []
    floors = driver_floors(variant, accel.system)
    minor_compat, too_old = _driver_check(floors, accel)
    if too_old and floors is not None:
        return Verdict(
            variant=variant,
            release=rel,
            ok=False,
            reason=f"driver {accel.driver} < {floors.strict}",
        )
    if floors is None:
        notes.append(f"no driver minimum known for {variant}; driver not checked")
    archs = arch_list(release, variant, platform)
    if archs is None:
        notes.append(f"GPU architectures of torch {rel} {variant} unknown; kernels not checked")
    else:
        if archs.confidence != "source":
            notes.append(
                f"architectures of torch {rel} {variant} ({archs.text}) {archs.confidence}"
            )
        missing = [g for g in accel.gpus if g.arch and not runs_on(archs.entries, g.arch)]
        if missing:
            return Verdict(
                variant=variant,
                release=rel,
                ok=False,
                reason="no kernels for " + ", ".join(_gpu_label(g) for g in missing),
                notes=tuple(notes),
            )
    minor_reason = ""
    if minor_compat and floors is not None:
        minor_reason = f"driver {accel.driver} < {floors.strict} (CUDA {floors.cuda})"
        notes.append(
            f"{minor_reason}; runs through CUDA minor-version compatibility "
            f"(driver >= {floors.minor})"
        )
    return Verdict(
        variant=variant,
        release=rel,
        ok=True,
        minor_compat=minor_compat,
        minor_reason=minor_reason,
        notes=tuple(notes),
    )


def _driver_check(floors: Floors | None, accel: Accelerator) -> tuple[bool, bool]:
    """``(minor_compat, too_old)`` of the driver against ``floors``: below the strict
    minimum but at the family floor is minor-version compatibility; below both, too old.
    An unknown driver or floor is neither."""
    driver = _version(accel.driver)
    strict, minor = (_version(floors.strict), _version(floors.minor)) if floors else (None, None)
    if driver is None or floors is None or strict is None or driver >= strict:
        return False, False
    if minor is not None and driver >= minor:
        return True, False
    return False, True


def hardware_rule(
    accel: Accelerator, platform: str, *, allow_minor_compat: bool = False
) -> VariantRule:
    """A variant rule that accepts the files whose variant runs on ``accel``.

    Without ``allow_minor_compat`` a CUDA variant must meet its strict driver minimum.
    """
    memo: dict[tuple[str | None, tuple[int, int]], Verdict] = {}

    def rule(cand: Candidate) -> str | None:
        key = (cand.variant, (cand.version.major, cand.version.minor))
        if key not in memo:
            memo[key] = judge(cand.variant or "cpu", cand.version, accel, platform)
        verdict = memo[key]
        name = cand.variant or "unlabelled"
        if not verdict.ok:
            return f"{name}: {verdict.reason}"
        if verdict.minor_compat and not allow_minor_compat:
            return f"{name}: {verdict.minor_reason}"
        return None

    return rule
