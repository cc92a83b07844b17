"""Resolve torch and its companions together for one interpreter. Pure.

:func:`resolve_family` chooses torch under a variant rule and pairs torchvision and
torchaudio to it. :func:`resolve_on_hardware` is ``--backend auto`` on a machine with
a GPU: among the variants read from the PyTorch index it takes the newest torch that
has a build the driver can run (strict driver minimum first, CUDA minor-version
compatibility as a fallback) with kernels for every GPU, and whose companions are
published for that same build; or it explains why none is, and what would be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from torchup.choose import companions
from torchup.choose.compat import Candidate, TargetTags, fits, target_tags
from torchup.choose.resolve import (
    MetadataLookup,
    Outcome,
    VariantRule,
    choose,
    pair,
    public,
    torch_requirement,
)
from torchup.choose.variants import (
    Verdict,
    cuda_of,
    driver_floors,
    hardware_rule,
    judge,
    platform_key,
)
from torchup.interpreters.discover import Interpreter

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from torchup.hardware.accelerators import Accelerator

__all__ = [
    "FAMILY",
    "TORCH",
    "HardwareChoice",
    "any_variant",
    "kind_of",
    "label",
    "resolve_family",
    "resolve_on_hardware",
    "variant_order",
]

TORCH = canonicalize_name("torch")
#: Packages built per accelerator variant; every other package is a plain dependency.
FAMILY = frozenset({TORCH, *companions.COMPANIONS})

Pools = Mapping[NormalizedName, list[Candidate]]

# How many (torch version, variant) builds to give up on because a companion is missing
# before explaining with the first one.
_BUILD_ATTEMPTS = 12


def label(py: Interpreter) -> str:
    """``Python 3.10.13`` (and ``(free-threaded)``), as messages name a target."""
    return f"Python {py.version}" + (" (free-threaded)" if py.free_threaded else "")


def any_variant(cand: Candidate) -> str | None:
    """Variant rule for packages outside the torch family: any build will do."""
    return None


def resolve_family(
    reqs: Sequence[Requirement],
    cands: Pools,
    py: Interpreter,
    rule: VariantRule,
    metadata: MetadataLookup,
) -> list[Outcome]:
    """Choose torch (and other packages) for ``py`` under ``rule``, then pair the
    companions to the chosen torch (same variant, their own ``Requires-Dist``)."""
    target: TargetTags = target_tags(py.tags, py.version)
    outcomes: list[Outcome] = []
    torch_choice: Candidate | None = None
    env = {**py.markers, "extra": ""}
    reqs = [r for r in reqs if r.marker is None or r.marker.evaluate(env)]
    reqs = [_narrow_torch(r, reqs, cands, target, rule, metadata, py) for r in reqs]
    for req in reqs:
        name = canonicalize_name(req.name)
        pool = cands.get(name, [])
        if name in companions.COMPANIONS:
            if torch_choice is None:
                continue  # torch itself failed; its problem explains this one too
            outcomes.append(
                pair(
                    req,
                    pool,
                    target,
                    torch_choice,
                    markers=py.markers,
                    metadata=metadata,
                    predicted=companions.predicted(name, torch_choice.version),
                    label=label(py),
                )
            )
            continue
        use = rule if name in FAMILY else any_variant
        outcome = choose(req, pool, target, use, label=label(py))
        outcomes.append(outcome)
        if name == TORCH:
            torch_choice = outcome.choice
    return outcomes


def _narrow_torch(  # noqa: PLR0917 (a private helper called once, in order)
    req: Requirement,
    reqs: Sequence[Requirement],
    cands: Pools,
    target: TargetTags,
    rule: VariantRule,
    metadata: MetadataLookup,
    py: Interpreter,
) -> Requirement:
    """Give an unversioned torch the pin of a versioned companion, as pip's resolver would.

    ``torchvision==0.20.1`` alone must plan torch 2.5.1, not the newest torch and then
    fail to pair; the pin comes from that companion's own ``Requires-Dist: torch``.
    """
    if canonicalize_name(req.name) != TORCH or req.specifier:
        return req
    for other in reqs:
        name = canonicalize_name(other.name)
        if name not in companions.COMPANIONS or not other.specifier:
            continue
        pick = choose(other, cands.get(name, []), target, rule, label=label(py)).choice
        requires = metadata(pick) if pick is not None else None
        treq = torch_requirement(requires or (), py.markers)
        if treq is not None and treq.specifier:
            narrowed = Requirement(str(req))
            narrowed.specifier = treq.specifier
            return narrowed
    return req


def _torch_choice(outcomes: Sequence[Outcome]) -> Candidate | None:
    for o in outcomes:
        if canonicalize_name(o.requirement.name) == TORCH:
            return o.choice
    return None


def _with_companions(
    reqs: Sequence[Requirement],
    cands: Pools,
    py: Interpreter,
    rule: VariantRule,
    metadata: MetadataLookup,
) -> list[Outcome]:
    """:func:`resolve_family`, moving on to the next build of torch while a requested
    companion has no file for the chosen one (torchvision not published for cu129)."""
    first = resolve_family(reqs, cands, py, rule, metadata)
    outcomes = first
    skipped: dict[tuple[Version, str | None], str] = {}
    for _ in range(_BUILD_ATTEMPTS):
        torch = _torch_choice(outcomes)
        if torch is None or all(o.ok for o in outcomes):
            return outcomes if torch is not None else first
        missing = ", ".join(o.requirement.name for o in outcomes if not o.ok)
        skipped[(public(torch.version), torch.variant)] = (
            f"{torch.variant or 'this build'}: no {missing} to go with torch {torch.version}"
        )

        def rule_without(cand: Candidate, base: VariantRule = rule) -> str | None:
            key = (public(cand.version), cand.variant)
            return skipped.get(key) if key in skipped else base(cand)

        outcomes = resolve_family(reqs, cands, py, rule_without, metadata)
    return first


def variant_order(variant: str | None) -> tuple[int, tuple[int, ...]]:
    """Sort key: newer CUDA/ROCm first within a kind (use with ``reverse=True``)."""
    if variant is None or variant in ("cpu", "xpu"):
        return (0, ())
    cuda = cuda_of(variant)
    if cuda is not None:
        return (2, cuda)
    if variant.startswith("rocm"):
        parts = tuple(int(p) for p in variant[4:].split(".") if p.isdigit())
        return (1, parts)
    return (0, ())


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareChoice:
    """What auto detection chose: the outcomes, the variant of the chosen torch (or
    ``None`` when nothing fits), the rule used (for other Pythons), the per-variant
    verdicts for the torch release in question, and what to tell the user."""

    outcomes: list[Outcome]
    variant: str | None
    rule: VariantRule
    release: str | None
    verdicts: tuple[Verdict, ...]
    warnings: tuple[str, ...]
    fell_back_to_cpu: bool = False


def _verdicts(
    release: Version | None,
    pool: Sequence[Candidate],
    target: TargetTags,
    accel: Accelerator,
    platform: str,
) -> tuple[Verdict, ...]:
    if release is None:
        return ()
    variants = {
        c.variant for c in pool if public(c.version) == release and fits(c, target) and c.variant
    }
    ordered = sorted(variants, key=variant_order, reverse=True)
    return tuple(judge(v, release, accel, platform) for v in ordered)


def _cpu_rule(cand: Candidate) -> str | None:
    return None if cand.variant in ("cpu", None) else f"{cand.variant}: not the CPU build"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Search:
    """What every step of :func:`resolve_on_hardware` reads: its arguments, the
    interpreter's arch-table platform and tags, torch's pool and the torch specifier."""

    reqs: Sequence[Requirement]
    cands: Pools
    py: Interpreter
    accel: Accelerator
    metadata: MetadataLookup
    platform: str
    target: TargetTags
    torch_pool: Sequence[Candidate]
    spec: SpecifierSet | None


def resolve_on_hardware(
    reqs: Sequence[Requirement],
    cands: Pools,
    py: Interpreter,
    accel: Accelerator,
    metadata: MetadataLookup,
) -> HardwareChoice:
    """Choose the newest torch build (and companions) that runs on ``accel``.

    Order: strict driver minima; then CUDA minor-version compatibility (said in a
    warning); then, when only the driver stands in the way, the CPU build with the
    driver upgrade that would unlock CUDA; otherwise the failed outcomes, with the
    oldest torch that has kernels for these GPUs.
    """
    platform = platform_key(py.markers)
    torch_req = next((r for r in reqs if canonicalize_name(r.name) == TORCH), None)
    s = _Search(
        reqs=reqs,
        cands=cands,
        py=py,
        accel=accel,
        metadata=metadata,
        platform=platform,
        target=target_tags(py.tags, py.version),
        torch_pool=cands.get(TORCH, []),
        spec=torch_req.specifier if torch_req is not None else None,
    )
    strict = hardware_rule(accel, platform)
    outcomes = _with_companions(reqs, cands, py, strict, metadata)
    lenient = hardware_rule(accel, platform, allow_minor_compat=True)
    if all(o.ok for o in outcomes):
        return _done(
            s, outcomes, strict, _newer_through_minor_compat(outcomes, cands, py, lenient, accel)
        )
    relaxed = _with_companions(reqs, cands, py, lenient, metadata)
    if all(o.ok for o in relaxed):
        return _done(s, relaxed, lenient, _minor_compat_warning(relaxed, accel))

    # Nothing runs on the GPUs. Which builds of the requested torch fit this Python?
    gpu_builds = [
        c
        for c in s.torch_pool
        if _requested(s, c) and fits(c, s.target) and kind_of(c.variant) == accel.kind
    ]
    driver_only = [
        c for c in gpu_builds if (lenient(c) or "").split(": ", 1)[-1].startswith("driver")
    ]
    if not gpu_builds or len(driver_only) == len(gpu_builds):
        warning = _cpu_warning(accel, gpu_builds, platform)
        cpu = _with_companions(reqs, cands, py, _cpu_rule, metadata)
        choice = _done(s, cpu, _cpu_rule, (warning,))
        return dataclasses.replace(choice, fell_back_to_cpu=True)
    # Builds exist and the driver could run some, but none has kernels for these GPUs.
    return _done(s, _no_kernels(s, relaxed, gpu_builds, lenient), lenient, ())


def _requested(s: _Search, cand: Candidate) -> bool:
    return s.spec is None or s.spec.contains(cand.version, prereleases=None)


def _newest_requested(s: _Search) -> Version | None:
    versions = [public(c.version) for c in s.torch_pool if _requested(s, c) and fits(c, s.target)]
    return max(versions, default=None)


def _done(
    s: _Search, outcomes: list[Outcome], rule: VariantRule, warnings: Sequence[str]
) -> HardwareChoice:
    """The choice for ``outcomes``, with the verdicts for the chosen torch's release (or,
    when none was chosen, the newest requested one's)."""
    torch = _torch_choice(outcomes)
    release = public(torch.version) if torch is not None else _newest_requested(s)
    verdicts = _verdicts(release, s.torch_pool, s.target, s.accel, s.platform)
    return HardwareChoice(
        outcomes=outcomes,
        variant=torch.variant if torch is not None and all(o.ok for o in outcomes) else None,
        rule=rule,
        release=str(release) if release is not None else None,
        verdicts=verdicts,
        warnings=tuple(warnings),
    )


def _minor_compat_warning(relaxed: Sequence[Outcome], accel: Accelerator) -> tuple[str, ...]:
    """Say that the chosen build runs only through CUDA minor-version compatibility."""
    torch = _torch_choice(relaxed)
    assert torch is not None
    floors = driver_floors(torch.variant or "", accel.system)
    need = f" {floors.strict}" if floors and floors.strict else " its toolkit's minimum"
    return (
        f"no build meets its strict driver minimum; torch {torch.version} needs driver"
        f"{need} and runs on driver {accel.driver} only through CUDA minor-version "
        "compatibility (some features, such as PTX JIT of newer code, do not work); "
        f"upgrading the driver to >={need.strip()} removes the limit",
    )


def _no_kernels(
    s: _Search,
    relaxed: Sequence[Outcome],
    gpu_builds: Sequence[Candidate],
    lenient: VariantRule,
) -> list[Outcome]:
    """``relaxed`` with torch's failure explained: no build has kernels for every GPU
    here, and the oldest torch that does (if any)."""
    with_kernels = [
        c
        for c in s.torch_pool
        if fits(c, s.target) and lenient(c) is None and not c.version.is_prerelease
    ]
    oldest = min(
        with_kernels, key=lambda c: (public(c.version), variant_order(c.variant)), default=None
    )
    gpus = ", ".join(f"{g.sm} ({g.name})" for g in s.accel.gpus)
    versions = sorted({public(c.version) for c in gpu_builds}, reverse=True)[:2]
    message = (
        f"no {s.accel.kind} build of torch {', '.join(map(str, versions))} runs on every GPU "
        f"here ({gpus})"
    )
    if oldest is not None:
        message += (
            f"; the oldest torch with kernels for them is {public(oldest.version)} "
            f"({oldest.variant})"
        )
    else:
        message += (
            "; no torch build on this index has kernels for them all (plan for some of "
            "the GPUs with TORCHUP_GPU_ARCHS, or the CPU build with --backend cpu)"
        )
    return [
        dataclasses.replace(o, message=message)
        if not o.ok and canonicalize_name(o.requirement.name) == TORCH
        else o
        for o in relaxed
    ]


def _newer_through_minor_compat(
    outcomes: Sequence[Outcome],
    cands: Pools,
    py: Interpreter,
    lenient: VariantRule,
    accel: Accelerator,
) -> tuple[str, ...]:
    """Say so when a newer torch would run only through minor-version compatibility."""
    torch = _torch_choice(outcomes)
    req = next((o.requirement for o in outcomes if o.choice is torch), None)
    if torch is None or req is None:
        return ()
    best = choose(req, cands.get(TORCH, []), target_tags(py.tags, py.version), lenient, label="")
    newer = best.choice
    if newer is None or public(newer.version) <= public(torch.version):
        return ()
    floors = driver_floors(newer.variant or "", accel.system)
    need = floors.strict if floors else "a newer driver"
    return (
        f"torch {public(newer.version)} ({newer.variant}) needs NVIDIA driver >= {need}; "
        f"driver {accel.driver} runs it only through CUDA minor-version compatibility. "
        f"Ask for it with 'torch=={public(newer.version)}', or upgrade the driver",
    )


def kind_of(variant: str | None) -> str:
    """The accelerator kind a variant is built for: cuda, rocm, xpu or cpu."""
    if variant is None or variant == "cpu":
        return "cpu"
    if cuda_of(variant) is not None:
        return "cuda"
    if variant.startswith("rocm"):
        return "rocm"
    return variant


def _cpu_warning(accel: Accelerator, gpu_builds: Sequence[Candidate], platform: str) -> str:
    gpus = ", ".join(f"{g.name} ({g.sm})" for g in accel.gpus) or f"{accel.kind} hardware"
    if not gpu_builds:
        return (
            f"the PyTorch index has no {accel.kind} build of the requested torch for this "
            f"Python; planning the CPU build, which will not use {gpus}"
        )
    # The smallest driver upgrade that unlocks a build with kernels for these GPUs.
    unlocks: list[tuple[Version, str, Candidate]] = []  # (driver floor, its text, build)
    for c in gpu_builds:
        floors = driver_floors(c.variant or "", accel.system)
        unknown_driver = dataclasses.replace(accel, driver=None)
        verdict = judge(c.variant or "", c.version, unknown_driver, platform)
        if floors is not None and floors.strict is not None and verdict.ok:
            unlocks.append((Version(floors.strict), floors.strict, c))
    if not unlocks:
        return (
            f"NVIDIA driver {accel.driver} is too old for every CUDA build of the requested "
            f"torch, and none has kernels for {gpus}; planning the CPU build"
        )
    # the lowest driver floor; among the builds it unlocks, the newest torch
    lowest = min(u[0] for u in unlocks)
    _, floor, cand = max((u for u in unlocks if u[0] == lowest), key=lambda u: public(u[2].version))
    return (
        f"NVIDIA driver {accel.driver} is too old for every CUDA build of the requested "
        f"torch; planning the CPU build, which will not use {gpus}. Upgrading the driver "
        f"to >= {floor} would unlock {cand.variant} (torch {public(cand.version)})"
    )
