"""``--force-incompatible``: a stand-in plan, its files fetched and renamed, and what to
say when the forced install fails.

The choice of what to force lives in :mod:`torchup.choose.forcing`; this module does the
parts that touch the network and the disk for :func:`torchup.envs.installing.install`.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from torchup.errors import TorchupError

if TYPE_CHECKING:
    from torchup.choose.forcing import ForcedWheel
    from torchup.choose.plan import Plan

__all__ = ["fetch_forced", "instead", "stand_in_plan", "why_forced_failed"]

log = logging.getLogger(__name__)


def stand_in_plan(
    failed: Plan,
    requirements: Sequence[str],
    plan_kw: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
) -> Plan | str:
    """The plan for the nearest Python the rejected wheels were built for, shown as
    ``failed.python``'s; or why there is none."""
    from torchup.choose import forcing
    from torchup.choose.api import plan

    py = failed.python
    pretend = forcing.stand_in_tags(py.version, py.free_threaded, py.tags, failed.problems)
    if pretend is None:
        return (
            "nothing fits this Python, and --force-incompatible has nothing to try: none of "
            "the rejected files is a CPython wheel for this platform"
        )
    trial = plan(requirements, python=forcing.stand_in(py, pretend), env=env, cwd=cwd, **plan_kw)
    if not trial.ok:
        why = "; ".join(o.message for o in trial.problems) or "no files"
        return f"nothing fits this Python, not even as Python {pretend.version} ({why})"
    note = (
        f"--force-incompatible: installing wheels built for {pretend.tag} into Python "
        f"{py.version}; they are kept only if torch runs"
    )
    # no "install with" line: pip would refuse these files for this Python
    return replace(trial, python=py, commands=(), warnings=(*trial.warnings, note))


def fetch_forced(
    result: Plan, tmp: Path, env: Mapping[str, str], *, download: bool
) -> tuple[dict[str, Path], list[str], tuple[ForcedWheel, ...]]:
    """Download the plan's files (hash-checked), renamed for this Python where needed.

    Returns the local file per package, the family's dependencies that apply to this
    Python (from each file's ``Requires-Dist``), and what was forced. With ``download``
    false (a dry run) nothing is fetched but metadata. Raises :class:`TorchupError`.
    """
    import zipfile

    from packaging.markers import default_environment
    from packaging.utils import parse_wheel_filename

    from torchup._paths import cache_dir
    from torchup.choose.family import FAMILY
    from torchup.choose.forcing import ForcedWheel, retag, unloadable_modules
    from torchup.index.client import IndexClient
    from torchup.index.metadata import local_metadata, parse_metadata
    from torchup.index.pages import DistFile

    py = result.python
    accepted = set(py.tags)
    marker_env = {k: str(v) for k, v in default_environment().items()}
    marker_env.update(py.markers, extra="")
    folder = tmp / "wheels"
    folder.mkdir()
    sources = result.sources
    every = [s.url for s in (*sources.index_urls(), *sources.find_links, sources.torch_index_url)]
    files: dict[str, Path] = {}
    deps: dict[str, None] = {}
    forced: list[ForcedWheel] = []
    with IndexClient(
        cache_dir=cache_dir(env),
        trusted_hosts=sources.trusted_hosts,
        credentials=every,
        verify=sources.cert.url if sources.cert else True,
    ) as client:
        for p in result.packages:
            if not p.sha256:
                raise TorchupError(
                    f"{p.filename} has no sha256 on its index; --force-incompatible installs "
                    "only files whose hash the index publishes"
                )
            tags = parse_wheel_filename(p.filename)[3]
            fits = any(str(t) in accepted for t in tags)
            name = p.filename if fits else retag(p.filename, py.tags)
            path = folder / name
            dist = p.dist or DistFile(filename=p.filename, url=p.url, index=p.index)
            unloadable: list[str] = []
            if download:
                log.info("downloading %s", p.filename)
                client.download(dist.url, path, sha256=p.sha256)
                meta = parse_metadata(local_metadata(path, p.filename))  # checks the zip
                with zipfile.ZipFile(path) as wheel:
                    unloadable = unloadable_modules(wheel.namelist(), py.version, py.free_threaded)
            else:  # a dry run: the metadata alone, as planning reads it
                meta = client.get_metadata(dist)
            for line in meta.get_all("Requires-Dist") or []:
                req = Requirement(line)
                if canonicalize_name(req.name) in FAMILY:
                    continue
                if req.marker is None or req.marker.evaluate(marker_env):
                    req.marker = None
                    deps[str(req)] = None
            files[p.name] = path
            if not fits:
                forced.append(
                    ForcedWheel(
                        name=p.name,
                        filename=p.filename,
                        installed_as=name,
                        built_for=", ".join(sorted({f"{t.interpreter}-{t.abi}" for t in tags})),
                        unloadable=tuple(unloadable),
                    )
                )
    return files, list(deps), tuple(forced)


def why_forced_failed(forced: Sequence[ForcedWheel], python: Any) -> str:
    """The likely cause of a forced install's failure, from the files it installed."""
    said = []
    for f in forced:
        if f.unloadable:
            shown = ", ".join(f.unloadable[:2]) + (" ..." if len(f.unloadable) > 2 else "")
            said.append(
                f"{f.filename} is built for {f.built_for}: CPython {python.version} does not "
                f"load its compiled modules ({shown}), it imports only modules named for "
                "its own version, abi3 or bare .so"
            )
    return ("; forced: " + "; ".join(said)) if said else ""


def instead(failed: Plan) -> str:
    """What fits instead of a forced install, from the plan that did not fit."""
    said = []
    if failed.alternative_versions:
        said.append(
            f"versions that fit Python {failed.python.version}: "
            + ", ".join(failed.alternative_versions[:3])
        )
    for alt in failed.alternative_pythons[:2]:
        said.append(f"Python {alt.version} can install the request: {shlex.join(alt.command)}")
    return ("; instead: " + "; ".join(said)) if said else ""
