"""Does one file fit one interpreter? Pure functions, every "no" with its reason.

A :class:`Candidate` is an index file with its wheel name parsed once (PEP 427/425,
PEP 440 local label). :func:`reject_reason` returns ``None`` when the file installs on
the target, else the first reason it cannot, in the order pip would discover them:
not a wheel, yanked (PEP 592), Requires-Python (PEP 345/503), Python/ABI tag, platform
tag (PEP 425).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from torchup.index.pages import DistFile, variant_of

__all__ = [
    "Candidate",
    "TargetTags",
    "describe_variant",
    "fits",
    "make_candidates",
    "reject_reason",
    "target_tags",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """An index file with its name parsed: project, version, variant and wheel tags.

    ``variant`` is the accelerator build the file is (its local label, else the
    PyTorch index directory it was listed in, else ``None`` for a plain build such as
    PyPI's default). ``tags`` is empty for a source distribution.
    """

    project: NormalizedName
    version: Version
    variant: str | None
    tags: frozenset[Tag]
    dist: DistFile

    @property
    def is_wheel(self) -> bool:
        return bool(self.tags)


@dataclass(frozen=True, slots=True)
class TargetTags:
    """An interpreter's accepted tags, indexed for fast checks.

    ``rank`` maps each tag, as ``str(Tag)``, to its preference (0 is best). The tags
    are already in packaging's canonical form, so a wheel tag fits when its string is
    a key: no tag is parsed on the path that finds a fit.
    """

    tags: tuple[str, ...]
    rank: dict[str, int]
    python_version: Version


@lru_cache(maxsize=64)
def target_tags(tags: tuple[str, ...], python_version: str) -> TargetTags:
    """Index ``tags`` (``str(Tag)``, most preferred first) of a Python ``python_version``.

    >>> t = target_tags(("cp310-cp310-linux_x86_64", "py3-none-any"), "3.10.13")
    >>> t.rank["py3-none-any"]
    1
    """
    rank: dict[str, int] = {}
    for text in tags:
        rank.setdefault(text, len(rank))
    return TargetTags(tags=tags, rank=rank, python_version=Version(python_version))


@lru_cache(maxsize=64)
def _accepted_pythons(tags: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """The ``(interpreter, abi)`` pairs among ``tags``; parsed only to explain a reject."""
    return frozenset((t.interpreter, t.abi) for text in tags for t in parse_tag(text))


def make_candidates(
    files: Iterable[DistFile], project: str
) -> tuple[list[Candidate], list[tuple[DistFile, str]]]:
    """Parse the files of ``project``; others (other projects, bad names) are dropped.

    Returns the candidates and the files whose names could not be parsed, with why.
    """
    want = canonicalize_name(project)
    out: list[Candidate] = []
    bad: list[tuple[DistFile, str]] = []
    for dist in files:
        name = dist.filename
        try:
            if name.endswith(".whl"):
                proj, version, _build, tags = parse_wheel_filename(name)
            else:
                proj, version = parse_sdist_filename(name)
                tags = frozenset()
        except (InvalidWheelFilename, InvalidSdistFilename) as exc:
            if canonicalize_name(name.split("-", 1)[0]) == want:
                bad.append((dist, f"unparsable file name ({exc})"))
            continue
        if proj != want:
            continue
        out.append(
            Candidate(project=proj, version=version, variant=variant_of(dist), tags=tags, dist=dist)
        )
    return out, bad


def fits(cand: Candidate, target: TargetTags) -> bool:
    """Whether ``cand`` installs on ``target``: :func:`reject_reason` without the reason."""
    if not cand.tags or cand.dist.yanked is not None:
        return False
    if not any(str(tag) in target.rank for tag in cand.tags):
        return False
    return _requires_python_ok(cand.dist.requires_python, target.python_version)


@lru_cache(maxsize=256)
def _requires_python_ok(requires_python: str | None, version: Version) -> bool:
    if not requires_python:
        return True
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True  # pip ignores an invalid Requires-Python, so do we
    return spec.contains(version, prereleases=True)


def reject_reason(cand: Candidate, target: TargetTags) -> str | None:
    """Why ``cand`` cannot be installed on ``target``, or ``None`` when it can."""
    if not cand.is_wheel:
        return "source distribution: torchup plans wheels only (a torch build takes hours)"
    if cand.dist.yanked is not None:
        return "yanked" + (f": {cand.dist.yanked}" if cand.dist.yanked else "")
    rp = cand.dist.requires_python
    if not _requires_python_ok(rp, target.python_version):
        return f"Requires-Python {rp} excludes Python {target.python_version}"
    if any(str(tag) in target.rank for tag in cand.tags):
        return None
    wheel_pythons = sorted({f"{t.interpreter}-{t.abi}" for t in cand.tags})
    pythons = _accepted_pythons(target.tags)
    if not any((t.interpreter, t.abi) in pythons for t in cand.tags):
        return f"built for {', '.join(wheel_pythons)}, not this Python {target.python_version}"
    platforms = sorted({t.platform for t in cand.tags})
    return f"platform {', '.join(platforms)} does not run here"


def tag_rank(cand: Candidate, target: TargetTags) -> int:
    """The best (lowest) preference of any of ``cand``'s tags; large when none fits."""
    return min((target.rank.get(str(t), 1 << 30) for t in cand.tags), default=1 << 30)


def describe_variant(variant: str | None) -> str:
    """Human name of a variant; ``None`` is the plain (unlabelled) build."""
    return variant if variant is not None else "plain build (no local label)"


def python_span(cands: Sequence[Candidate]) -> str:
    """Summarise the CPython versions ``cands`` were built for, e.g. ``cp36-cp39``.

    >>> python_span([])
    ''
    """
    minors = sorted(
        {
            int(t.interpreter[2:])
            for c in cands
            for t in c.tags
            if t.interpreter.startswith("cp") and t.interpreter[2:].isdigit()
        }
    )
    if not minors:
        return ""
    lo, hi = f"cp{minors[0]}", f"cp{minors[-1]}"
    return lo if lo == hi else f"{lo}-{hi}"
