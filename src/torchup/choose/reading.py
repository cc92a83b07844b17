"""Reading what a plan (and the matrix) chooses from: pip's sources with the command
line's options over them, the index client every page is read with, every page of the
requested projects at once, and the candidates per project they give.

The edge between :mod:`torchup.index` and the pure core: :func:`~torchup.choose.api.plan`
and :func:`~torchup.choose.matrix.read_matrix` both read through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from torchup.choose.compat import Candidate, make_candidates
from torchup.choose.family import FAMILY
from torchup.errors import IndexFetchError, TorchupError
from torchup.index.pages import DistFile
from torchup.index.sources import Sources, pip_sources, project_url, variant_project_url
from torchup.index.urls import file_url_to_path

if TYPE_CHECKING:
    from torchup.choose.resolve import Outcome
    from torchup.index.client import IndexClient

__all__ = [
    "Gathered",
    "candidates_of",
    "gather_pages",
    "hash_local_choices",
    "index_client",
    "sources_for",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Gathered:
    """Files per project, split by where they came from, and what went wrong."""

    torch_index: dict[str, list[DistFile]] = field(default_factory=dict)
    pip: dict[str, list[DistFile]] = field(default_factory=dict)
    torch_index_errors: list[str] = field(default_factory=list)
    pip_errors: list[str] = field(default_factory=list)
    #: extra indexes and find-links locations no page could be read from: unreachable
    #: or failing (not a 404, not refused credentials, not an offline cache miss)
    unread: set[str] = field(default_factory=set)
    oldest_cache_age: float | None = None


def gather_pages(
    client: IndexClient,
    sources: Sources,
    variants: Sequence[str],
    projects: Sequence[str],
    *,
    hash_folders: bool = True,
) -> Gathered:
    """Read every page of ``projects`` concurrently: each of ``variants``' directories of
    the PyTorch index for the torch family, pip's indexes for everything, then the
    find-links locations. A page that cannot be read is an error in the result.
    ``hash_folders`` false: a find-links folder's files come without their sha256, for
    a caller that hashes only the files it chooses (:func:`hash_local_choices`)."""
    got = Gathered()
    jobs: list[tuple[str, str, str, str]] = []  # (kind, project, url, source)
    for project in projects:
        for variant in variants if project in FAMILY else ():
            url = variant_project_url(sources.torch_index_url.url, variant, project)
            jobs.append(("torch", project, url, sources.torch_index_url.url))
        for src in sources.index_urls():
            jobs.append(("pip", project, project_url(src.url, project), src.url))
    results = client.fetch_pages([url for _, _, url, _ in jobs])
    read: set[str] = set()
    down: set[str] = set()
    for (kind, project, _url, source), res in zip(jobs, results, strict=True):
        bucket = got.torch_index if kind == "torch" else got.pip
        bucket.setdefault(project, []).extend(res.files)
        if res.error is not None and kind == "torch":
            got.torch_index_errors.append(res.error.message)
        elif res.error is not None:
            got.pip_errors.append(res.error.message)
            if res.error.lasting:
                down.add(source)
            else:
                read.add(source)  # it answered (refused credentials, ...) or may later
        else:
            read.add(source)
        if res.from_cache and res.age_seconds is not None:
            got.oldest_cache_age = max(got.oldest_cache_age or 0.0, res.age_seconds)
    got.unread = down - read
    for link in sources.find_links:
        try:
            files = client.find_links(link.url, with_hashes=hash_folders)
        except TorchupError as exc:
            got.pip_errors.append(exc.message)
            if not isinstance(exc, IndexFetchError) or exc.lasting:
                got.unread.add(link.url)
            continue
        for project in projects:  # make_candidates keeps each project's own files
            got.pip.setdefault(project, []).extend(files)
    return got


def hash_local_choices(outcomes: Sequence[Outcome], sha256: Callable[[Path], str]) -> list[Outcome]:
    """``outcomes`` with a sha256 for each chosen local file that has none (``sha256``:
    a cached hasher). A find-links folder is listed unhashed: hashing all it holds, every
    project's files and every version, costs seconds per GB on a first plan, and only
    the chosen files go into commands and locks. Raises :class:`IndexFetchError` when a
    chosen file can no longer be read."""
    out: list[Outcome] = []
    for outcome in outcomes:
        cand = outcome.choice
        if cand is None or cand.dist.sha256 or not cand.dist.url.startswith("file:"):
            out.append(outcome)
            continue
        path = file_url_to_path(cand.dist.url)
        try:
            digest = sha256(path)
        except OSError as exc:
            raise IndexFetchError(
                str(path),
                str(exc.strerror or exc),
                hint="check that the file is still there and readable",
            ) from None
        dist = replace(cand.dist, hashes={**cand.dist.hashes, "sha256": digest})
        out.append(replace(outcome, choice=replace(cand, dist=dist)))
    return out


def candidates_of(
    got: Gathered, project: str, *, torch_index: bool, labelled_only: bool
) -> list[Candidate]:
    """Candidates for ``project``: the PyTorch index's first (if ``torch_index``), then pip's
    (``labelled_only``: a family member's variant builds only); one per file name."""
    seen: set[str] = set()
    files: list[DistFile] = []
    pip_files = got.pip.get(project, [])
    if labelled_only and project in FAMILY:
        # Only a local label (+cpu) makes a file from pip's sources a variant build, so
        # unlabelled ones cannot be chosen; skipping them saves parsing ~1000 names.
        pip_files = [d for d in pip_files if "+" in d.filename]
    pools = [pip_files]
    if torch_index:
        pools.insert(0, got.torch_index.get(project, []))
    for pool in pools:
        for dist in pool:
            if dist.filename not in seen:
                seen.add(dist.filename)
                files.append(dist)
    cands, bad = make_candidates(files, project)
    for dist, why in bad:
        log.info("skipping %s: %s", dist.filename, why)
    return cands


def sources_for(
    env: Mapping[str, str],
    *,
    prefix: str | None,
    index_url: str | None,
    extra_index_urls: Sequence[str],
    find_links: Sequence[str],
    torch_index_url: str | None,
) -> Sources:
    """pip's sources for a target (``prefix``: its ``sys.prefix``, ``None``: unknown),
    with the command line's index and find-links options over pip's configuration."""
    return pip_sources(
        env=env,
        prefix=prefix,
        overrides={
            "index_url": index_url,
            "extra_index_urls": tuple(extra_index_urls),
            "find_links": tuple(find_links),
            "torch_index_url": torch_index_url,
        },
    )


def index_client(sources: Sources, *, env: Mapping[str, str], offline: bool) -> IndexClient:
    """The client every page is read with: torchup's cache (``offline``: only it), pip's
    trusted hosts and CA bundle from ``sources``."""
    from torchup._paths import cache_dir
    from torchup.index.client import IndexClient

    return IndexClient(
        cache_dir=cache_dir(env),
        offline=offline,
        trusted_hosts=sources.trusted_hosts,
        # pip's own CA bundle setting (cert / PIP_CERT), so torchup trusts what pip trusts
        verify=sources.cert.url if sources.cert else True,
    )
