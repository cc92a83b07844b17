"""Choose a file for each requirement, or say per file why none fits. Pure.

:func:`choose` picks the newest version that has a file fitting the target, as pip
would (highest version, then the most preferred tag). :func:`pair` picks a companion
(torchvision, torchaudio) built for an already chosen torch: same variant, and a
``Requires-Dist: torch`` in its own metadata that the chosen torch satisfies. Metadata
comes from a callable passed in, so this module stays free of I/O.

Rejections are data (:class:`Rejection`), so "nothing fits" explains itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from torchup.choose.compat import (
    Candidate,
    TargetTags,
    describe_variant,
    fits,
    python_span,
    reject_reason,
    tag_rank,
)

__all__ = [
    "MetadataLookup",
    "Outcome",
    "Rejection",
    "VariantRule",
    "choose",
    "pair",
]

#: Returns a wheel's ``Requires-Dist`` lines, or ``None`` when its metadata is unreadable.
MetadataLookup = Callable[[Candidate], Sequence[str] | None]

#: Returns why a candidate's variant is not wanted, or ``None`` when it is.
VariantRule = Callable[[Candidate], str | None]

# How many companion versions to try against their metadata before giving up.
_PAIR_ATTEMPTS = 6
# How many of the requested versions' files to list when nothing fits.
_REJECTED_VERSIONS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A file that was considered and why it cannot be used."""

    filename: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"filename": self.filename, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The result for one requirement: a chosen file, or the evidence that none fits.

    ``nearest`` lists versions that do fit this target, nearest to those requested
    first; ``paired_by`` says how a companion was matched to torch.
    """

    requirement: Requirement
    choice: Candidate | None
    rejected: tuple[Rejection, ...] = ()
    nearest: tuple[Version, ...] = ()
    message: str = ""
    paired_by: str | None = None

    @property
    def ok(self) -> bool:
        return self.choice is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requirement": str(self.requirement),
            "message": self.message,
            "rejected": [r.to_dict() for r in self.rejected],
        }


def _fitting(
    cands: Iterable[Candidate], target: TargetTags, variant_rule: VariantRule
) -> tuple[list[Candidate], dict[Version, list[Candidate]]]:
    """Split ``cands`` into those that fit and the others, by release.

    Reasons are not computed here: only the rejected files of the releases a message
    shows need them (:func:`_rejections_for`), and most plans show none.
    """
    ok: list[Candidate] = []
    rejected: dict[Version, list[Candidate]] = defaultdict(list)
    for cand in cands:
        if fits(cand, target) and variant_rule(cand) is None:
            ok.append(cand)
        else:
            rejected[public(cand.version)].append(cand)
    return ok, rejected


@lru_cache(maxsize=4096)
def public(version: Version) -> Version:
    """``version`` without its local label: ``2.5.1+cpu`` and ``2.5.1`` are one release."""
    return Version(version.public) if version.local else version


def _best_per_version(ok: Iterable[Candidate], target: TargetTags) -> dict[Version, Candidate]:
    best: dict[Version, Candidate] = {}
    for cand in ok:
        cur = best.get(cand.version)
        if cur is None or tag_rank(cand, target) < tag_rank(cur, target):
            best[cand.version] = cand
    return best


def _nearest(
    fits: Iterable[Version], requested: Sequence[Version], limit: int = 3
) -> list[Version]:
    """Versions in ``fits`` closest to ``requested``: nearest newer, nearest older, ..."""
    fits = sorted(set(fits))
    if not requested:
        return sorted(fits, reverse=True)[:limit]
    lo, hi = min(requested), max(requested)
    newer = [v for v in fits if v > hi]
    older = [v for v in reversed(fits) if v < lo]
    out: list[Version] = []
    while (newer or older) and len(out) < limit:
        if newer:
            out.append(newer.pop(0))
        if older and len(out) < limit:
            out.append(older.pop(0))
    return out


def _rejections_for(
    versions: Sequence[Version],
    rejected: Mapping[Version, list[Candidate]],
    target: TargetTags,
    variant_rule: VariantRule,
) -> tuple[Rejection, ...]:
    return tuple(
        Rejection(
            filename=c.dist.filename,
            reason=reject_reason(c, target) or variant_rule(c) or "not chosen",
        )
        for v in versions
        for c in rejected.get(v, ())
    )


def choose(
    req: Requirement,
    cands: Sequence[Candidate],
    target: TargetTags,
    variant_rule: VariantRule,
    *,
    label: str,
) -> Outcome:
    """Pick the newest version of ``req`` with a file that fits ``target``.

    ``label`` names the target in messages ("Python 3.10.13"). When nothing fits, the
    outcome lists every file of the newest requested versions with its reason and the
    versions nearest to the request that would fit.
    """
    # prereleases=None: only when the specifier names one, as pip does without --pre.
    matching = [c for c in cands if req.specifier.contains(c.version, prereleases=None)]
    ok, rejected = _fitting(matching, target, variant_rule)
    if ok:
        best = max(ok, key=lambda c: (c.version, -tag_rank(c, target)))
        return Outcome(requirement=req, choice=best)

    all_ok, _ = _fitting(cands, target, variant_rule)
    fit_versions = {public(c.version) for c in all_ok if not c.version.is_prerelease}
    requested = sorted({public(c.version) for c in matching}, reverse=True)
    nearest = _nearest(fit_versions, requested)
    shown = requested[:_REJECTED_VERSIONS]
    reasons = _rejections_for(shown, rejected, target, variant_rule)
    if not cands:
        message = f"no files for {req.name} on the sources read"
    elif not requested:
        newest = max(public(c.version) for c in cands)
        message = f"no release of {req.name} matches {str(req.specifier)!r} (newest is {newest})"
    else:
        which = ", ".join(str(v) for v in shown)
        message = f"no file of {req.name} {which} fits {label}"
        span = python_span([c for c in matching if public(c.version) in shown])
        if span and all(r.reason.startswith("built for") for r in reasons):
            message += f" ({which} has {span} wheels only)"
    return Outcome(
        requirement=req,
        choice=None,
        rejected=reasons,
        nearest=tuple(nearest),
        message=message,
    )


def same_variant(torch: Candidate) -> VariantRule:
    """Rule: a companion must be the same variant as the chosen torch."""

    def rule(cand: Candidate) -> str | None:
        if cand.variant == torch.variant:
            return None
        return (
            f"variant {describe_variant(cand.variant)}, but torch is "
            f"{torch.version} ({describe_variant(torch.variant)})"
        )

    return rule


def torch_requirement(
    requires_dist: Sequence[str], markers: Mapping[str, str]
) -> Requirement | None:
    """The ``torch`` requirement among ``requires_dist`` whose marker holds here."""
    env = {**markers, "extra": ""}
    for line in requires_dist:
        try:
            r = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(r.name) != "torch":
            continue
        if r.marker is None or r.marker.evaluate(env):
            return r
    return None


def pair(
    req: Requirement,
    cands: Sequence[Candidate],
    target: TargetTags,
    torch: Candidate,
    *,
    markers: Mapping[str, str],
    metadata: MetadataLookup,
    predicted: Version | None,
    label: str,
) -> Outcome:
    """Pick the version of companion ``req`` that was built for ``torch``.

    Candidates must be the same variant as ``torch`` and fit ``target``; they are tried
    with the ``predicted`` version (from the cited table) first, then newest first.
    A candidate is accepted when its ``Requires-Dist: torch`` admits ``torch.version``;
    when its metadata is unreadable, only the predicted version is accepted.
    """
    matching = [c for c in cands if req.specifier.contains(c.version, prereleases=None)]
    rule = same_variant(torch)
    ok, rejected = _fitting(matching, target, rule)
    best = _best_per_version(ok, target)
    order = sorted(best, reverse=True)
    if predicted is not None and predicted in best:
        order.remove(predicted)
        order.insert(0, predicted)
    tried: list[Rejection] = []
    torch_v = torch.version
    for version in order[:_PAIR_ATTEMPTS]:
        cand = best[version]
        requires = metadata(cand)
        if requires is None:
            if version == predicted:
                return Outcome(
                    requirement=req,
                    choice=cand,
                    paired_by="table (metadata unreadable)",
                )
            tried.append(Rejection(filename=cand.dist.filename, reason="metadata unreadable"))
            continue
        treq = torch_requirement(requires, markers)
        if treq is None:
            if predicted is None or version == predicted:
                return Outcome(requirement=req, choice=cand, paired_by="metadata (no torch pin)")
            tried.append(
                Rejection(
                    filename=cand.dist.filename,
                    reason=f"metadata pins no torch; the table pairs {predicted} with {torch_v}",
                )
            )
            continue
        # A local label on torch (+cpu) never decides a companion's pin.
        if treq.specifier.contains(public(torch_v), prereleases=True):
            return Outcome(
                requirement=req, choice=cand, paired_by=f"metadata (Requires-Dist: {treq})"
            )
        tried.append(
            Rejection(filename=cand.dist.filename, reason=f"built for {treq}, not torch {torch_v}")
        )
    requested = [predicted] if predicted is not None else sorted(rejected, reverse=True)[:1]
    shown = tried + list(_rejections_for(requested, rejected, target, rule))
    target_desc = f"torch {torch_v} ({describe_variant(torch.variant)})"
    if not cands:
        message = f"no files for {req.name} on the sources read"
    else:
        message = f"no {req.name} built for {target_desc} fits {label}"
    return Outcome(requirement=req, choice=None, rejected=tuple(shown), message=message)
