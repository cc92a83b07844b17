"""``install --force-incompatible``: try a wheel built for another Python, on trial.

When no torch wheel fits an interpreter because of its Python tags (torch 1.10.0 has
cp36-cp39 wheels only; 2.15 needs 3.11+), the hand-written recipe is to install the
nearest wheel anyway (``pip install torch-...-cp39-....whl --no-deps --force-reinstall``,
which pip in fact refuses: it checks a wheel file's tags too). torchup does it as an
experiment whose result is decided by running it:

1. :func:`stand_in_tags` picks the nearest CPython whose wheels exist for the request on
   this platform, from the files the failed plan rejected, and :func:`stand_in` builds
   an :class:`~torchup.interpreters.discover.Interpreter` that accepts that Python's tags; the
   request is planned for it as usual (companions paired, hashes from the index);
2. the chosen files are downloaded with their hashes checked and renamed to a tag this
   interpreter accepts (:func:`retag`): the bytes, and so the hashes, are unchanged;
3. they are installed into a staged copy of the environment and verified; only a
   verified result is kept (:mod:`torchup.envs.installing`).

A compiled module is named for the CPython that builds it
(``_C.cpython-39-x86_64-linux-gnu.so``), and CPython 3.10 imports only
``.cpython-310-*``, ``.abi3`` and bare ``.so`` names, so a forced cp39 torch fails at
``import torch``; :func:`unloadable_modules` names those files, which becomes the
reason given when verification fails.

This module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from packaging.tags import compatible_tags, cpython_tags, parse_tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

if TYPE_CHECKING:
    from torchup.choose.resolve import Outcome
    from torchup.interpreters.discover import Interpreter

__all__ = [
    "ForcedWheel",
    "StandIn",
    "retag",
    "stand_in",
    "stand_in_tags",
    "unloadable_modules",
]

_CP = re.compile(r"^cp([23])([0-9]+)(t?)$")
# PEP 3149 names (``.cpython-39-x86_64-linux-gnu.so``, ``.cpython-313t-darwin.so``)
# and Windows ones (``.cp39-win_amd64.pyd``).
_MODULE_TAG = re.compile(r"\.(?:cpython-|cp)([23])([0-9]+)(t?)[-.][^/]*\.(?:so|pyd)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class StandIn:
    """The CPython a forced install pretends to be: ``cp39`` / ``cp39`` for 3.9."""

    interpreter: str
    abi: str
    version: str

    @property
    def tag(self) -> str:
        return f"{self.interpreter}-{self.abi}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ForcedWheel:
    """A file installed under a tag it was not built for."""

    name: str
    filename: str
    installed_as: str
    built_for: str
    unloadable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filename": self.filename,
            "installed_as": self.installed_as,
            "built_for": self.built_for,
            "unloadable": list(self.unloadable),
        }


def _platforms(tags: Sequence[str]) -> list[str]:
    """The platform parts of ``tags``, most preferred first, ``any`` left out."""
    out: dict[str, None] = {}
    for text in tags:
        platform = text.rsplit("-", 1)[-1]
        if platform != "any":
            out.setdefault(platform, None)
    return list(out)


def stand_in_tags(
    python_version: str, free_threaded: bool, tags: Sequence[str], problems: Iterable[Outcome]
) -> StandIn | None:
    """The CPython nearest ``python_version`` that the rejected wheels were built for.

    Only wheels for this platform count (a macOS wheel stays a macOS wheel whatever it
    is called); the nearest minor version wins, the older one on a tie. ``None`` when
    no rejected file is a CPython wheel for this platform.

    >>> from packaging.requirements import Requirement
    >>> from torchup.choose.resolve import Outcome, Rejection
    >>> o = Outcome(requirement=Requirement("torch==1.10.0"), choice=None, rejected=(
    ...     Rejection(filename="torch-1.10.0-cp39-cp39-manylinux1_x86_64.whl", reason=""),
    ...     Rejection(filename="torch-1.10.0-cp38-cp38-manylinux1_x86_64.whl", reason=""),
    ...     Rejection(filename="torch-1.10.0-cp311-cp311-win_amd64.whl", reason="")))
    >>> stand_in_tags("3.10.13", False, ["cp310-cp310-manylinux1_x86_64"], [o])
    StandIn(interpreter='cp39', abi='cp39', version='3.9')
    """
    here = set(_platforms(tags))
    major, minor = Version(python_version).release[:2]
    found: dict[tuple[int, int], StandIn] = {}
    for outcome in problems:
        for rejection in outcome.rejected:
            try:
                _, _, _, wheel_tags = parse_wheel_filename(rejection.filename)
            except InvalidWheelFilename:
                continue
            for tag in wheel_tags:
                match = _CP.match(tag.interpreter)
                if match is None or tag.platform not in here or tag.abi != tag.interpreter:
                    continue
                if bool(match.group(3)) != free_threaded:
                    continue
                key = (int(match.group(1)), int(match.group(2)))
                found[key] = StandIn(
                    interpreter=tag.interpreter, abi=tag.abi, version=f"{key[0]}.{key[1]}"
                )
    if not found:
        return None
    best = min(found, key=lambda k: (abs((k[0] - major) * 100 + k[1] - minor), k))
    return found[best]


def stand_in(py: Interpreter, pretend: StandIn) -> Interpreter:
    """``py`` as a planner sees it when it accepts ``pretend``'s wheels on its platform."""
    major, minor = (int(p) for p in pretend.version.split("."))
    platforms = _platforms(py.tags)
    tags = [
        *cpython_tags((major, minor), abis=[pretend.abi], platforms=platforms),
        *compatible_tags((major, minor), pretend.interpreter, platforms),
    ]
    markers = {
        **py.markers,
        "python_version": pretend.version,
        "python_full_version": f"{pretend.version}.0",
    }
    return replace(py, version=pretend.version, tags=tuple(map(str, tags)), markers=markers)


def retag(filename: str, tags: Sequence[str]) -> str:
    """``filename`` renamed to the most preferred of ``tags`` on its own platform.

    >>> retag("torch-1.10.0+cpu-cp39-cp39-linux_x86_64.whl",
    ...       ["cp310-cp310-manylinux_2_17_x86_64", "cp310-cp310-linux_x86_64"])
    'torch-1.10.0+cpu-cp310-cp310-linux_x86_64.whl'
    """
    name_version = filename[: -len(".whl")].rsplit("-", 3)[0]  # name-version[-build]
    platforms = {t.platform for t in parse_wheel_filename(filename)[3]}
    for text in tags:
        for tag in parse_tag(text):
            if tag.platform in platforms and tag.abi != "none":
                return f"{name_version}-{tag.interpreter}-{tag.abi}-{tag.platform}.whl"
    raise ValueError(f"no tag of this Python runs {filename!r}'s platform")


def unloadable_modules(names: Iterable[str], python_version: str, free_threaded: bool) -> list[str]:
    """The compiled modules among ``names`` that this CPython will not import.

    >>> unloadable_modules(["torch/_C.cpython-39-x86_64-linux-gnu.so", "torch/lib/libc10.so",
    ...                     "a/b.abi3.so", "torch/__init__.py"], "3.10.13", False)
    ['torch/_C.cpython-39-x86_64-linux-gnu.so']
    """
    major, minor = Version(python_version).release[:2]
    out = []
    for name in names:
        match = _MODULE_TAG.search(name)
        if match is None:
            continue
        built = (int(match.group(1)), int(match.group(2)), bool(match.group(3)))
        if built != (major, minor, free_threaded):
            out.append(name)
    return out
