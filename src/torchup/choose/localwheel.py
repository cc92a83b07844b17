"""Wheel files named instead of requirements: ``torchup install ./dist/torch-2.5.1-....whl``.

pip and uv install a wheel given by its path; torchup plans one the same way, so that a
wheel built here (``torchup build-script``'s) goes in through the same transaction as an
index's: planned for the target's tags, its dependencies resolved, verified, undone on
failure. A path (or a ``file:`` URL, or ``torch @ file:///...``) ending in ``.whl`` becomes
the exact pin of the file's name and version, and that file becomes the project's only
candidate: a file of the same version elsewhere (PyPI's, the PyTorch index's) is never
taken instead of it. Its folder is a find-links location, so pip finds it by the pin and
its sha256, which torchup computes.

:func:`split_local_wheels` is pure but for looking at the path; :func:`local_candidate`
hashes the file with the hasher it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from torchup.choose.compat import Candidate, make_candidates
from torchup.choose.plan import Plan, exact_pin
from torchup.errors import UsageError
from torchup.index.pages import DistFile
from torchup.index.urls import file_url_to_path

__all__ = ["LocalWheel", "local_candidate", "naming_the_files", "split_local_wheels"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalWheel:
    """A wheel file on this disk that the request names by its path."""

    project: NormalizedName
    version: Version
    #: absolute, symlinks resolved
    path: Path

    @property
    def pin(self) -> str:
        """The exact requirement that only this file's version meets."""
        return exact_pin(self.project, str(self.version))

    @property
    def folder(self) -> str:
        """Its folder, as the find-links location the file is listed under."""
        return str(self.path.parent)


def split_local_wheels(
    texts: Sequence[str], *, cwd: Path
) -> tuple[list[str], dict[NormalizedName, LocalWheel]]:
    """``texts`` with each wheel path replaced by its exact pin, and the wheels by project.

    A text is a wheel path when it ends in ``.whl``: a path (relative to ``cwd``, ``~``
    expanded), a ``file:`` URL, or ``NAME @ file:...``. Raises :class:`UsageError` when the
    file is missing, its name is not a wheel's, or ``NAME`` is not the wheel's project.

    >>> split_local_wheels(["torch>=2"], cwd=Path("/"))
    (['torch>=2'], {})
    """
    out: list[str] = []
    wheels: dict[NormalizedName, LocalWheel] = {}
    for text in texts:
        wheel = _local_wheel(text.strip(), cwd)
        if wheel is None:
            out.append(text)
            continue
        if wheel.project in wheels:
            raise UsageError(
                f"two {wheel.project} wheels are named: {wheels[wheel.project].path} and "
                f"{wheel.path}",
                hint="name one: pip and uv install one version of a project",
            )
        wheels[wheel.project] = wheel
        out.append(wheel.pin)
    return out, wheels


#: ``NAME`` or ``NAME[extras]`` before a direct reference's ``@``
_NAME = re.compile(r"\s*[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:\[[^\]]*\]\s*)?")


def _local_wheel(text: str, cwd: Path) -> LocalWheel | None:
    before, at, after = text.partition("@")
    named, location = (before.strip(), after.strip()) if at and _NAME.fullmatch(before) else (
        "", text.strip())  # fmt: skip
    if not location.lower().endswith(".whl"):
        return None
    if "[" in named:
        raise UsageError(
            f"{text!r}: extras of a wheel file are not planned",
            hint="name the wheel alone and the extras' packages as requirements beside it",
        )
    scheme = urlsplit(location).scheme.lower()
    if scheme not in ("", "file") and len(scheme) > 1:  # c: is a Windows drive, not a scheme
        return None  # a remote direct reference: parse_requirements refuses it, saying why
    try:
        path = file_url_to_path(location) if scheme == "file" else Path(location).expanduser()
        path = (cwd / path).resolve()
        found = path.is_file()
    except (OSError, RuntimeError, ValueError) as exc:  # ~nobody/, a NUL in the URL
        raise UsageError(
            f"{text!r} is not a usable wheel path: {exc}",
            hint="give the path of an existing .whl, or a file:// URL to one",
        ) from None
    if not found:
        raise UsageError(
            f"{text!r}: no such wheel file ({path})",
            hint="build or download it first, or give the path of an existing .whl",
        )
    try:
        project, version, _build, _tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise UsageError(
            f"{text!r} is not a wheel's file name: {exc}",
            hint="a wheel is named NAME-VERSION-PYTHON-ABI-PLATFORM.whl (PEP 427); keep "
            "the name the build gave it",
        ) from None
    if named and canonicalize_name(named.strip()) != project:
        raise UsageError(
            f"{text!r}: the file is a {project} wheel, not {named.strip()}",
            hint=f"write '{project} @ {location}', or name the right file",
        )
    return LocalWheel(project=project, version=version, path=path)


def local_candidate(wheel: LocalWheel, sha256: Callable[[Path], str]) -> Candidate:
    """The candidate for ``wheel``, its sha256 from ``sha256`` (a cached hasher)."""
    try:
        digest, size = sha256(wheel.path), wheel.path.stat().st_size
    except OSError as exc:
        raise UsageError(
            f"cannot read the wheel {wheel.path}: {exc.strerror or exc}",
            hint="check that the file is readable",
        ) from None
    dist = DistFile(
        filename=wheel.path.name,
        url=wheel.path.as_uri(),
        index=wheel.folder,
        hashes={"sha256": digest},
        size=size,
    )
    (cand,), _ = make_candidates([dist], wheel.project)
    return cand


def naming_the_files(made: Plan, wheels: Mapping[NormalizedName, LocalWheel]) -> Plan:
    """``made`` with its shown commands naming each wheel file instead of its pin: pip
    given ``torch===2.5.1 --find-links DIR`` prefers an index's file of that version
    with a more specific tag (``manylinux_2_28`` over a local build's ``linux_x86_64``),
    so a command to copy names the file itself. (``torchup install`` pins by hash.)"""
    files = {w.pin: str(w.path) for w in wheels.values()}

    def named(argv: Sequence[str]) -> tuple[str, ...]:
        return tuple(files.get(arg, arg) for arg in argv)

    return replace(
        made,
        commands=tuple(named(c) for c in made.commands),
        alternative_pythons=tuple(
            replace(a, command=named(a.command)) for a in made.alternative_pythons
        ),
    )
