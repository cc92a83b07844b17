"""``torchup matrix``: which torch has a file for which Python and which build.

Rows are torch releases (newest first), columns CPython versions (``3.13t`` for a
free-threaded build), and each cell the variants (``cpu``, ``cu126``, ``rocm6.3`` ...,
``pypi`` for PyPI's own build) with a file for the column's interpreter on the
platform. A file belongs in a cell when :func:`~torchup.choose.compat.fits` says so for
that column's wheel tags: the very test ``plan`` chooses with, so the newest torch of
each column is what ``plan`` would choose for that Python (one code path).

:func:`build_matrix` is pure; :func:`read_matrix` is the edge that reads the pages
(every variant directory of the PyTorch index and pip's sources, concurrently, cached)
and the Pythons of this machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from torchup.choose import companions
from torchup.choose.compat import Candidate, TargetTags, fits, target_tags
from torchup.choose.family import variant_order
from torchup.choose.resolve import public

if TYPE_CHECKING:
    from torchup.choose.reading import Gathered
    from torchup.hardware.accelerators import Accelerator
    from torchup.index.client import IndexClient
    from torchup.interpreters.discover import Interpreter

__all__ = ["SCHEMA", "Column", "Matrix", "Row", "build_matrix", "read_matrix"]

SCHEMA = 1
COMPANIONS = ("torchvision", "torchaudio")
#: the name of PyPI's own (unlabelled) torch build in a cell
PYPI = "pypi"
#: the CPython columns shown when none are asked for and no file names one
DEFAULT_PYTHONS = ("2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """A CPython the matrix has a column for, with the wheel tags it accepts."""

    name: str
    target: TargetTags
    #: the interpreter of this machine the tags are from, else ``None`` (computed tags)
    here: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One torch release: per column, per variant, the files that fit."""

    torch: Version
    cells: Mapping[str, Mapping[str, tuple[Candidate, ...]]]
    #: companion -> its release built for this torch (``None``: none found)
    companions: Mapping[str, str | None] = field(default_factory=dict)
    #: companion -> how that was decided (``metadata (Requires-Dist: torch==2.5.1)``...)
    paired_by: Mapping[str, str] = field(default_factory=dict)
    #: variants whose build runs on the accelerator (empty: none known to)
    runs_here: frozenset[str] = frozenset()

    @property
    def minor(self) -> str:
        return f"{self.torch.major}.{self.torch.minor}"

    def variants(self, column: str) -> tuple[str, ...]:
        return tuple(sorted(self.cells.get(column, {}), key=_variant_key))

    def to_dict(self) -> dict[str, Any]:
        return {
            "torch": str(self.torch),
            "minor": self.minor,
            "companions": dict(self.companions),
            "paired_by": dict(self.paired_by),
            "runs_here": sorted(self.runs_here, key=_variant_key),
            "cells": {
                column: {
                    variant: [_file(c) for c in files]
                    for variant, files in sorted(cell.items(), key=lambda kv: _variant_key(kv[0]))
                }
                for column, cell in self.cells.items()
            },
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Matrix:
    """The whole table and what it was read for."""

    platform: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    variants: tuple[str, ...]
    accelerator: str | None = None
    warnings: tuple[str, ...] = ()

    def newest(self, column: str, variant: str | None = None) -> Version | None:
        """The newest torch with a file for ``column`` (of ``variant``, if given)."""
        for row in self.rows:
            cell = row.cells.get(column, {})
            if cell and (variant is None or variant in cell):
                return row.torch
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "platform": self.platform,
            "accelerator": self.accelerator,
            "pythons": [{"name": c.name, "here": c.here} for c in self.columns],
            "variants": list(self.variants),
            "rows": [r.to_dict() for r in self.rows],
            "warnings": list(self.warnings),
        }


def _file(cand: Candidate) -> dict[str, Any]:
    dist = cand.dist
    return {
        "filename": dist.filename,
        "url": dist.url,
        "size": dist.size,
        "sha256": dist.hashes.get("sha256"),
    }


def _variant_key(variant: str) -> tuple[int, tuple[int, ...]]:
    return (99, ()) if variant == PYPI else variant_order(variant)


def build_matrix(
    torch: Sequence[Candidate],
    columns: Sequence[Column],
    *,
    platform: str,
    requirement: Requirement | None = None,
    pairs: Mapping[tuple[str, Version], tuple[str | None, str]] | None = None,
    runs: Callable[[str, Version], bool] | None = None,
    accelerator: str | None = None,
    warnings: Sequence[str] = (),
) -> Matrix:
    """The matrix of ``torch``'s files for ``columns``. Pure.

    ``requirement`` filters the releases (``torch>=2.0``); ``pairs`` maps ``(companion,
    torch release)`` to the companion release built for it and how that was decided
    (:func:`companion_pairs`); ``runs(variant, release)`` says whether a build runs on
    the accelerator.
    """
    releases: dict[Version, dict[str, dict[str, list[Candidate]]]] = {}
    for cand in torch:
        release = public(cand.version)
        if release.is_prerelease or (
            requirement is not None
            and not requirement.specifier.contains(release, prereleases=False)
        ):
            continue
        row = releases.setdefault(release, {})
        for column in columns:
            if fits(cand, column.target):
                variant = cand.variant or PYPI
                row.setdefault(column.name, {}).setdefault(variant, []).append(cand)
    rows = [
        _row(release, cells, pairs or {}, runs)
        for release, cells in sorted(releases.items(), reverse=True)
        if cells
    ]
    seen = {v for row in rows for cell in row.cells.values() for v in cell}
    return Matrix(
        platform=platform,
        columns=tuple(columns),
        rows=tuple(rows),
        variants=tuple(sorted(seen, key=_variant_key)),
        accelerator=accelerator,
        warnings=tuple(warnings),
    )


def _row(
    release: Version,
    cells: Mapping[str, Mapping[str, list[Candidate]]],
    pairs: Mapping[tuple[str, Version], tuple[str | None, str]],
    runs: Callable[[str, Version], bool] | None,
) -> Row:
    found = {name: pairs.get((name, release), (None, "no release found")) for name in COMPANIONS}
    variants = {v for cell in cells.values() for v in cell}
    return Row(
        torch=release,
        cells={c: {v: tuple(files) for v, files in cell.items()} for c, cell in cells.items()},
        companions={name: version for name, (version, _how) in found.items()},
        paired_by={name: how for name, (_version, how) in found.items()},
        runs_here=frozenset(v for v in variants if runs is not None and runs(v, release)),
    )


def companion_pairs(
    releases: Sequence[Version],
    offered: Mapping[str, Sequence[Candidate]],
    requires: Callable[[Candidate], Sequence[str] | None],
) -> dict[tuple[str, Version], tuple[str | None, str]]:
    """For each torch release, each companion's release built for it, as ``plan``
    pairs them (:func:`~torchup.choose.resolve.pair`): the version the cited table
    predicts, accepted when one of its files' ``Requires-Dist: torch`` admits the
    release (or, metadata unreadable, on the table's word). ``requires`` reads a file's
    Requires-Dist (``None``: unreadable)."""
    return _judge_offers(_table_offers(releases, offered), requires)


#: (companion, torch release) -> the companion release the table predicts and its wheel
_Offers = Mapping[tuple[str, Version], tuple[Version | None, Candidate | None]]


def _table_offers(
    releases: Sequence[Version], offered: Mapping[str, Sequence[Candidate]]
) -> _Offers:
    """For each companion and torch release, the companion release the cited table
    predicts and the first wheel of it ``offered`` (``None``: none predicted, or none
    on offer): the files :func:`_judge_offers` reads the Requires-Dist of."""
    out: dict[tuple[str, Version], tuple[Version | None, Candidate | None]] = {}
    for name in COMPANIONS:
        by_version: dict[Version, Candidate] = {}
        for offer in offered.get(name, ()):
            if offer.is_wheel:
                by_version.setdefault(public(offer.version), offer)
        for release in releases:
            predicted = companions.predicted(name, release)
            cand = by_version.get(predicted) if predicted is not None else None
            out[(name, release)] = (predicted, cand)
    return out


def _judge_offers(
    offers: _Offers, requires: Callable[[Candidate], Sequence[str] | None]
) -> dict[tuple[str, Version], tuple[str | None, str]]:
    """The pairs of :func:`companion_pairs` from the table's ``offers``: each wheel's
    ``Requires-Dist: torch`` (``requires``) must admit its torch release."""
    from torchup.choose.resolve import torch_requirement

    out: dict[tuple[str, Version], tuple[str | None, str]] = {}
    for (name, release), (predicted, cand) in offers.items():
        if cand is None:
            out[(name, release)] = (None, "the table's release is not on the index")
            continue
        lines = requires(cand)
        if lines is None:
            out[(name, release)] = (str(predicted), "table (metadata unreadable)")
            continue
        treq = torch_requirement(lines, {})
        if treq is None or treq.specifier.contains(release, prereleases=True):
            how = f"metadata (Requires-Dist: {treq})" if treq else "metadata (no torch pin)"
            out[(name, release)] = (str(predicted), how)
        else:
            out[(name, release)] = (None, f"{name} {predicted} is built for {treq}")
    return out


# -- the edge ----------------------------------------------------------------------------


def column_of(py: Interpreter, *, here: bool) -> Column:
    """The column for an interpreter (its name ``3.12``, ``3.13t``)."""
    major_minor = ".".join(py.version.split(".")[:2])
    name = major_minor + ("t" if py.free_threaded else "")
    return Column(
        name=name,
        target=target_tags(tuple(py.tags), py.version),
        here=py.executable if here else None,
    )


def columns_for(
    names: Sequence[str], *, platform: str, found: Sequence[Interpreter]
) -> list[Column]:
    """A column per CPython in ``names``: the tags of a Python of this machine with that
    version (``found``), else the tags a CPython of that version has on ``platform``."""
    from torchup.profiles.profile import from_flags

    mine: dict[str, Interpreter] = {}
    for py in found:
        if py.error is None and py.implementation == "cpython" and py.tags:
            mine.setdefault(column_of(py, here=True).name, py)
    columns = []
    for name in names:
        local = mine.get(name)
        if local is not None:
            columns.append(column_of(local, here=True))
        else:
            columns.append(column_of(from_flags(python_version=name, platform=platform).python,
                                     here=False))  # fmt: skip
    return columns


def read_matrix(
    requirements: Sequence[str] = ("torch",),
    *,
    pythons: Sequence[str] | None = None,
    backends: Sequence[str] | None = None,
    platform: str | None = None,
    accelerator: Accelerator | None = None,
    torch_index_url: str | None = None,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str] = (),
    offline: bool = False,
    env: Mapping[str, str] | None = None,
) -> Matrix:
    """Read every torch file from the PyTorch index (each variant directory) and pip's
    sources, and tabulate them for the CPythons ``pythons`` (default: those this
    machine has and the usual ones) on ``platform`` (default: this machine's).

    ``backends`` keeps only those variants (``cpu``, ``cu126``, ``pypi`` ...). With no
    ``accelerator`` the machine's is detected; with ``platform`` given (another machine)
    nothing of this one is used unless ``accelerator`` is passed.
    """
    from torchup.choose.reading import candidates_of, gather_pages, index_client, sources_for
    from torchup.errors import TorchupError, UsageError

    env = dict(os.environ) if env is None else env
    requirement = _torch_requirement(requirements)
    sources = sources_for(
        env,
        prefix=None,
        index_url=index_url,
        extra_index_urls=extra_index_urls,
        find_links=find_links,
        torch_index_url=torch_index_url,
    )
    warnings: list[str] = []
    with index_client(sources, env=env, offline=offline) as client:
        try:
            variants = list(client.variants(sources.torch_index_url.url))
        except TorchupError as exc:
            variants = []
            warnings.append(f"the PyTorch index could not be read ({exc.message}); PyPI only")
        if backends:
            unknown = set(backends) - {*variants, PYPI}
            if unknown and variants:
                raise UsageError(
                    f"no such build on the PyTorch index: {', '.join(sorted(unknown))}",
                    hint=f"builds offered: {', '.join([*variants, PYPI])}",
                )
            variants = [v for v in variants if v in backends]
        got = gather_pages(client, sources, variants, ["torch", *COMPANIONS])
        warnings += [f"skipped a source: {e}" for e in got.pip_errors]
        cands = candidates_of(got, "torch", torch_index=True, labelled_only=False)
        if backends:
            cands = [c for c in cands if (c.variant or PYPI) in backends]
        releases = sorted({public(c.version) for c in cands if not c.version.is_prerelease
                           and (requirement is None or requirement.specifier.contains(
                               public(c.version), prereleases=False))})  # fmt: skip
        offered = {name: _predicted_files(got, name, releases) for name in COMPANIONS}
        offers = _table_offers(releases, offered)
        pairs = _judge_offers(offers, _concurrent_requires(client, offers))
    return _tabulate(
        cands,
        requirement=requirement,
        pythons=pythons,
        platform=platform,
        accelerator=accelerator,
        pairs=pairs,
        env=env,
        warnings=warnings,
    )


def _predicted_files(got: Gathered, name: str, releases: Sequence[Version]) -> list[Candidate]:
    """The companion's files of the releases the table pairs with ``releases`` (its
    pages list thousands of files; only these are parsed)."""
    from torchup.choose.compat import make_candidates

    wanted = {str(v) for r in releases if (v := companions.predicted(name, r)) is not None}
    prefixes = tuple(f"{name}-{v}{sep}" for v in wanted for sep in ("-", "+", "%2B"))
    files = [
        dist
        for pool in (got.torch_index.get(name, []), got.pip.get(name, []))
        for dist in pool
        if dist.filename.startswith(prefixes)
    ]
    unique = list({d.filename: d for d in reversed(files)}.values())[::-1]
    return make_candidates(unique, name)[0]


def _concurrent_requires(
    client: IndexClient, offers: _Offers
) -> Callable[[Candidate], Sequence[str] | None]:
    """A Requires-Dist reader whose answers for the wheels in ``offers`` (the files
    :func:`_judge_offers` asks about) were read beforehand, eight at a time (cached
    like ``plan``'s)."""
    from concurrent.futures import ThreadPoolExecutor

    from torchup.errors import TorchupError

    wanted: dict[str, Candidate] = {}
    for _predicted, cand in offers.values():
        if cand is not None:
            wanted.setdefault(cand.dist.url, cand)

    def read(cand: Candidate) -> Sequence[str] | None:
        try:
            return tuple(client.get_metadata(cand.dist).get_all("Requires-Dist") or ())
        except TorchupError:
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(zip(wanted, pool.map(read, wanted.values()), strict=True))
    return lambda cand: answers.get(cand.dist.url)


def _torch_requirement(requirements: Sequence[str]) -> Requirement | None:
    from packaging.requirements import InvalidRequirement

    from torchup.errors import UsageError

    combined: Requirement | None = None
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise UsageError(f"{text!r} is not a requirement: {exc}") from None
        if canonicalize_name(req.name) != "torch":
            raise UsageError(
                f"matrix rows are torch releases; {req.name!r} cannot filter them",
                hint="filter with a torch requirement: 'torch>=2.0'",
            )
        if combined is None:
            combined = req
        else:
            combined.specifier &= req.specifier
    return combined


def _tabulate(
    cands: Sequence[Candidate],
    *,
    requirement: Requirement | None,
    pythons: Sequence[str] | None,
    platform: str | None,
    accelerator: Accelerator | None,
    pairs: Mapping[tuple[str, Version], tuple[str | None, str]],
    env: Mapping[str, str],
    warnings: list[str],
) -> Matrix:
    """The columns, the accelerator rule and the pure table."""
    from torchup.choose.variants import judge
    from torchup.interpreters.discover import discover

    found = [] if platform is not None else discover(env=env)
    here_platform = platform or _platform_of(found)
    names = list(pythons) if pythons else _default_pythons(cands, found)
    columns = columns_for(names, platform=here_platform, found=found)
    if accelerator is None and platform is None:
        from torchup.hardware.accelerators import detect

        accelerator = detect(env=env)
    accel = accelerator

    def runs(variant: str, release: Version) -> bool:
        if accel is None or variant == PYPI:
            return False
        return judge(variant, release, accel, _judge_platform(here_platform)).ok

    return build_matrix(
        cands,
        columns,
        platform=here_platform,
        requirement=requirement,
        pairs=pairs,
        runs=runs,
        accelerator=accel.kind if accel is not None else None,
        warnings=warnings,
    )


def _platform_of(found: Sequence[Interpreter]) -> str:
    """This machine's most specific platform tag, from a CPython 3 found here."""
    for py in found:
        for tag in py.tags if py.error is None and py.version.startswith("3") else ():
            platform = tag.split("-")[2]
            if platform.startswith(("manylinux_", "macosx_", "win")):
                return platform
    import sysconfig

    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _judge_platform(platform: str) -> str:
    """The key the arch tables use (:func:`~torchup.choose.variants.platform_key`)."""
    if platform.startswith("win"):
        return "windows_amd64"
    return "linux_aarch64" if platform.endswith(("aarch64", "arm64")) else "linux_x86_64"


def _default_pythons(cands: Sequence[Candidate], found: Sequence[Interpreter]) -> list[str]:
    """The usual CPythons, the free-threaded ones that have files, and this machine's."""
    names = set(DEFAULT_PYTHONS)
    for cand in cands:
        for tag in cand.tags:
            if tag.abi.startswith("cp") and tag.abi.endswith("t") and tag.interpreter[2:]:
                digits = tag.interpreter[2:]
                names.add(f"{digits[0]}.{digits[1:]}t")
    for py in found:
        if py.error is None and py.implementation == "cpython":
            names.add(".".join(py.version.split(".")[:2]) + ("t" if py.free_threaded else ""))
    return sorted(names, key=lambda n: (tuple(int(p) for p in n.rstrip("t").split(".")), n))
