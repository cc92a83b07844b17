"""PEP 751 lock files as values: read, write, compare, and "does it fit here". Pure.

A lock (``pylock.toml``, https://peps.python.org/pep-0751/) lists every file an
install needs, each with its URL, size and sha256. torchup's locks carry a
``[tool.torchup]`` table saying what they were made for (:class:`MadeFor`): the
interpreter (version, most specific wheel tag, uv's platform name), the accelerator,
the torch variant chosen, the requirements, the sources and the index each torch-family
file was listed on. :func:`lock_fits` reads it back to refuse a lock made for another
machine, naming the tag or the variant that does not fit.

Credentials are never written: every URL in a lock or a requirements file is
credential-free (:func:`strip_credentials`); pip and uv find the password for a host
in netrc or a keyring, as they do for an index URL without one. Messages show URLs
through :func:`~torchup.index.pages.redact`.

Reading needs :mod:`tomllib` (Python 3.11+) or ``tomli`` (a dependency on 3.10); when the installed
``packaging`` has :mod:`packaging.pylock`, a lock is also validated by it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from torchup.errors import TorchupError
from torchup.export import _toml
from torchup.index.pages import redact, strip_credentials

__all__ = [
    "FAMILY",
    "LOCK_VERSION",
    "Change",
    "FamilyFile",
    "Lock",
    "LockError",
    "LockMismatchError",
    "LockedFile",
    "LockedPackage",
    "MadeFor",
    "diff_locks",
    "filename_of",
    "parse_lock",
    "read_lock",
    "render_lock",
    "requirements_text",
    "strip_credentials",
]

#: The PEP 751 version torchup writes; it reads any 1.x (PEP 751: a newer minor
#: version must still be readable by a reader of an older one).
LOCK_VERSION = "1.0"
FAMILY = ("torch", "torchvision", "torchaudio")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INLINE = ("wheels", "sdist", "hashes")


class LockError(TorchupError):
    """A lock file is unreadable, not PEP 751, malformed, or cannot be made."""


class LockMismatchError(LockError):
    """The resolver's lock does not hold the files the plan chose (never swapped silently)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LockedFile:
    """One file of a locked package (a PEP 751 ``wheels`` entry or the ``sdist``)."""

    filename: str
    url: str
    sha256: str
    size: int | None = None
    kind: Literal["wheel", "sdist"] = "wheel"

    def to_toml(self) -> dict[str, Any]:
        return {
            "name": self.filename,
            "url": self.url,
            "size": self.size,
            "hashes": {"sha256": self.sha256},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "url": redact(self.url),
            "size": self.size,
            "sha256": self.sha256,
            "kind": self.kind,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LockedPackage:
    """One ``[[packages]]`` entry."""

    name: str
    version: str
    files: tuple[LockedFile, ...]
    marker: str | None = None
    requires_python: str | None = None
    index: str | None = None

    def to_toml(self) -> dict[str, Any]:
        wheels = [f.to_toml() for f in self.files if f.kind == "wheel"]
        sdist = next((f.to_toml() for f in self.files if f.kind == "sdist"), None)
        return {
            "name": self.name,
            "version": self.version,
            "marker": self.marker,
            "requires-python": self.requires_python,
            "index": self.index,
            "wheels": wheels or None,
            "sdist": sdist,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "marker": self.marker,
            "requires_python": self.requires_python,
            "index": redact(self.index) if self.index else None,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyFile:
    """A torch-family file as the plan chose it, and the index page it was listed on."""

    name: str
    version: str
    filename: str
    sha256: str | None
    index: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "index": self.index,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MadeFor:
    """What a lock was made for: the ``[tool.torchup]`` table."""

    torchup: str
    requirements: tuple[str, ...]
    python_version: str
    implementation: str
    free_threaded: bool
    #: uv's ``--python-platform`` value the lock was resolved for
    platform: str
    #: the interpreter's most specific wheel tag, and how many it accepts
    tag: str
    tag_count: int
    markers: Mapping[str, str]
    backend: str
    variant: str | None
    release: str | None
    accelerator: Mapping[str, Any] | None
    #: ``index_url``, ``extra_index_urls``, ``find_links``, ``no_index`` (credential-free)
    sources: Mapping[str, Any]
    files: tuple[FamilyFile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "torchup": self.torchup,
            "requirements": list(self.requirements),
            "python": {
                "version": self.python_version,
                "implementation": self.implementation,
                "free_threaded": self.free_threaded,
                "platform": self.platform,
                "tag": self.tag,
                "tag_count": self.tag_count,
                "markers": dict(self.markers),
            },
            "backend": self.backend,
            "variant": self.variant,
            "release": self.release,
            "accelerator": dict(self.accelerator) if self.accelerator is not None else None,
            "sources": dict(self.sources),
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock:
    """A PEP 751 lock as read or made (``path`` is where it was read from, if anywhere)."""

    packages: tuple[LockedPackage, ...]
    lock_version: str = LOCK_VERSION
    created_by: str = "torchup"
    requires_python: str | None = None
    environments: tuple[str, ...] = ()
    #: the dependency groups an installer installs when asked for none (PEP 751)
    default_groups: tuple[str, ...] = ()
    made_for: MadeFor | None = None
    path: Path | None = None

    def package(self, name: str) -> LockedPackage | None:
        wanted = canonicalize_name(name)
        return next((p for p in self.packages if canonicalize_name(p.name) == wanted), None)

    def applies(self, pkg: LockedPackage, markers: Mapping[str, str]) -> bool:
        """Whether ``pkg`` is installed where ``markers`` hold, as PEP 751 says an
        installer asked for no extras and the default groups decides: its marker
        evaluated in the lock-file context (``extras`` empty, ``dependency_groups`` the
        lock's ``default-groups``). True when the markers are unknown; raises
        :class:`LockError` for a marker that cannot be evaluated."""
        from packaging.markers import (
            InvalidMarker,
            Marker,
            UndefinedComparison,
            UndefinedEnvironmentName,
        )

        if not pkg.marker or not markers.get("python_full_version"):
            return True
        env: dict[str, str | frozenset[str]] = {**markers, "extras": frozenset()}
        env["dependency_groups"] = frozenset(self.default_groups)
        try:
            return Marker(pkg.marker).evaluate(env, context="lock_file")
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
            raise LockError(
                f"the marker of {pkg.name} {pkg.version} in the lock cannot be evaluated: {exc}",
                hint="the lock was damaged or edited by hand; make it again",
            ) from None

    def applying(self, markers: Mapping[str, str]) -> tuple[LockedPackage, ...]:
        """The packages installed where ``markers`` hold (:meth:`applies`)."""
        return tuple(p for p in self.packages if self.applies(p, markers))

    def files(self) -> list[tuple[LockedPackage, LockedFile]]:
        return [(p, f) for p in self.packages for f in p.files]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lock_version": self.lock_version,
            "created_by": self.created_by,
            "requires_python": self.requires_python,
            "environments": list(self.environments),
            "packages": [p.to_dict() for p in self.packages],
            "made_for": self.made_for.to_dict() if self.made_for is not None else None,
            "path": str(self.path) if self.path is not None else None,
        }


# -- URLs ------------------------------------------------------------------------------


def filename_of(url: str) -> str:
    """The percent-decoded last path segment of ``url`` (``%2B`` -> ``+``)."""
    return unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])


# -- reading ---------------------------------------------------------------------------


def read_lock(path: Path) -> Lock:
    """Read and validate the lock at ``path``; raise :class:`LockError` saying what is wrong
    (unreadable, not TOML, not PEP 751, an unknown lock-version, a malformed file entry)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LockError(
            f"cannot read the lock {str(path)!r}: {exc.strerror or exc}",
            hint="check the path; `torchup lock` writes pylock.toml",
        ) from None
    except UnicodeDecodeError as exc:
        raise LockError(f"the lock {str(path)!r} is not UTF-8 text: {exc}") from None
    return replace(parse_lock(text, where=str(path)), path=path)


def _loads(text: str, where: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise LockError(
                "reading a lock needs Python 3.11+ (tomllib) or the tomli package",
                hint="pip install tomli, or run torchup with Python 3.11 or newer",
            ) from None
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(
            f"{where!r} is not a PEP 751 lock: it is not TOML ({exc})",
            hint="a lock is the pylock.toml that `torchup lock` or `uv pip compile "
            "--format pylock.toml` writes",
        ) from None
    return doc


def parse_lock(text: str, *, where: str = "the lock") -> Lock:
    """Parse lock text (see :func:`read_lock`); ``where`` names it in errors.

    >>> parse_lock('lock-version = "1.0"\\ncreated-by = "x"\\npackages = []\\n').packages
    ()
    """
    doc = _loads(text, where)
    version = doc.get("lock-version")
    if not isinstance(version, str):
        raise LockError(
            f"{where!r} is not a PEP 751 lock: it has no lock-version",
            hint='a PEP 751 lock starts with lock-version = "1.0"',
        )
    if not re.fullmatch(r"1(\.\d+)?", version):
        raise LockError(
            f"{where!r} has lock-version {version!r}, which torchup does not know "
            f"(it reads 1.x, writes {LOCK_VERSION})",
            hint="make the lock again with this torchup, or upgrade torchup",
        )
    _validate_with_packaging(doc, where)
    packages = doc.get("packages", [])
    if not isinstance(packages, list):
        raise LockError(f"{where!r}: packages is not an array of tables")
    environments = doc.get("environments", [])
    groups = doc.get("default-groups", [])
    tool = doc.get("tool", {})
    table = tool.get("torchup") if isinstance(tool, dict) else None
    return Lock(
        packages=tuple(_package(p, where, i) for i, p in enumerate(packages)),
        lock_version=version,
        created_by=str(doc.get("created-by", "")),
        requires_python=_opt_str(doc.get("requires-python")),
        environments=tuple(str(e) for e in environments) if isinstance(environments, list) else (),
        default_groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        made_for=_made_for(table, where) if isinstance(table, dict) else None,
    )


def _validate_with_packaging(doc: dict[str, Any], where: str) -> None:
    """PEP 751's own rules, checked by packaging.pylock where this packaging has it."""
    try:
        from packaging import pylock
    except ImportError:  # packaging < 25.1
        return
    try:
        pylock.Pylock.from_dict(doc)
    except pylock.PylockUnsupportedVersionError as exc:
        raise LockError(f"{where!r}: {exc}", hint="upgrade torchup") from None
    except pylock.PylockValidationError as exc:
        raise LockError(f"{where!r} is not a valid PEP 751 lock: {exc}") from None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _package(raw: Any, where: str, number: int) -> LockedPackage:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise LockError(f"{where!r}: package #{number + 1} has no name")
    name = raw["name"]
    files: list[LockedFile] = []
    wheels = raw.get("wheels") or []
    for wheel in wheels if isinstance(wheels, list) else []:
        files.append(_file(wheel, "wheel", name, where))
    if isinstance(raw.get("sdist"), dict):
        files.append(_file(raw["sdist"], "sdist", name, where))
    if not files:
        named = {"archive": "an archive", "vcs": "a VCS checkout", "directory": "a directory"}
        kinds = [v for k, v in named.items() if k in raw]
        what = f"{kinds[0]} and no wheel or sdist" if kinds else "no wheels and no sdist"
        raise LockError(
            f"{where!r}: package {name!r} has {what}; torchup locks list index files only",
            hint="make the lock again with `torchup lock`",
        )
    return LockedPackage(
        name=name,
        version=str(raw.get("version", "")),
        files=tuple(files),
        marker=_opt_str(raw.get("marker")),
        requires_python=_opt_str(raw.get("requires-python")),
        index=_opt_str(raw.get("index")),
    )


def _file(raw: Any, kind: Literal["wheel", "sdist"], package: str, where: str) -> LockedFile:
    if not isinstance(raw, dict):
        raise LockError(f"{where!r}: a {kind} of {package!r} is not a table")
    url = raw.get("url") or raw.get("path")
    if not isinstance(url, str):
        raise LockError(f"{where!r}: a {kind} of {package!r} has no url")
    named = raw.get("name")
    filename = named if isinstance(named, str) else filename_of(url)
    hashes = raw.get("hashes")
    sha = hashes.get("sha256") if isinstance(hashes, dict) else None
    if not isinstance(sha, str):
        raise LockError(
            f"{where!r}: {filename} ({package}) has no sha256 hash",
            hint="every file in a lock needs its sha256; make the lock again",
        )
    if not _SHA256.fullmatch(sha.lower()):
        raise LockError(
            f"{where!r}: the sha256 of {filename} ({package}) is malformed: {sha!r} "
            "(64 hex digits expected)",
            hint="the lock was damaged or edited by hand; make it again",
        )
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise LockError(f"{where!r}: the size of {filename} ({package}) is not a byte count")
    return LockedFile(filename=filename, url=url, sha256=sha.lower(), size=size, kind=kind)


_KINDS: dict[type, str] = {str: "a string", int: "an integer", bool: "true or false",
                          list: "an array", dict: "a table"}  # fmt: skip


def _field(table: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    """``table[key]`` (``default`` when absent; ``key`` may be dotted, ``python.tag``),
    which must be of ``kind``; a :class:`LockError` naming it otherwise (a hand-edited
    table, not a crash)."""
    value = table.get(key.rpartition(".")[2], default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise LockError(
        f"{where}: [tool.torchup] {key} is {_KINDS.get(type(value), type(value).__name__)}, "
        f"not {_KINDS[kind]}",
        hint="the table was edited by hand; make the lock again with `torchup lock`",
    )


def _made_for(table: dict[str, Any], where: str) -> MadeFor:
    python = table.get("python", {})
    if not isinstance(python, dict) or not isinstance(python.get("version"), str):
        raise LockError(f"{where!r}: [tool.torchup] has no python.version")
    at = repr(where)
    files = tuple(
        FamilyFile(
            name=str(f.get("name", "")),
            version=str(f.get("version", "")),
            filename=str(f.get("filename", "")),
            sha256=_opt_str(f.get("sha256")),
            index=str(f.get("index", "")),
        )
        for f in _field(table, "files", list, [], at)
        if isinstance(f, dict)
    )
    requirements = _field(table, "requirements", list, [], at)
    if not all(isinstance(r, str) for r in requirements):
        raise LockError(
            f"{at}: [tool.torchup] requirements holds more than strings",
            hint="the table was edited by hand; make the lock again with `torchup lock`",
        )
    markers = _field(python, "python.markers", dict, {}, at)
    accel = table.get("accelerator")
    sources = table.get("sources")
    return MadeFor(
        torchup=str(table.get("version", "")),
        requirements=tuple(requirements),
        python_version=python["version"],
        implementation=str(python.get("implementation", "")),
        free_threaded=_field(python, "python.free-threaded", bool, False, at),
        platform=str(python.get("platform", "")),
        tag=str(python.get("tag", "")),
        tag_count=_field(python, "python.tag-count", int, 0, at),
        markers={str(k): str(v) for k, v in markers.items()},
        backend=str(table.get("backend", "")),
        variant=_opt_str(table.get("variant")),
        release=_opt_str(table.get("release")),
        accelerator=accel if isinstance(accel, dict) else None,
        sources=sources if isinstance(sources, dict) else {},
        files=files,
    )


# -- writing ---------------------------------------------------------------------------


def _made_for_table(made: MadeFor) -> dict[str, Any]:
    return {
        "version": made.torchup,
        "requirements": list(made.requirements),
        "backend": made.backend,
        "variant": made.variant,
        "release": made.release,
        "python": {
            "version": made.python_version,
            "implementation": made.implementation,
            "free-threaded": made.free_threaded,
            "platform": made.platform,
            "tag": made.tag,
            "tag-count": made.tag_count,
            "markers": dict(made.markers),
        },
        "sources": dict(made.sources),
        "files": [f.to_dict() for f in made.files],
        "accelerator": _no_nulls(made.accelerator) if made.accelerator is not None else None,
    }


def _no_nulls(value: Any) -> Any:
    """TOML has no null: leave ``None`` out of tables, and out of arrays."""
    if isinstance(value, Mapping):
        return {str(k): _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_no_nulls(v) for v in value if v is not None]
    return value


def render_lock(lock: Lock, *, header: Sequence[str] = ()) -> str:
    """The lock as PEP 751 TOML text (``header``: comment lines to put first)."""
    doc: dict[str, Any] = {
        "lock-version": lock.lock_version,
        "environments": list(lock.environments) or None,
        "requires-python": lock.requires_python,
        "created-by": lock.created_by,
        "packages": [p.to_toml() for p in lock.packages],
    }
    if lock.made_for is not None:
        doc["tool"] = {"torchup": _made_for_table(lock.made_for)}
    comments = "".join(f"# {line}\n" for line in header)
    return comments + _toml.dumps(doc, inline=_INLINE)


def requirements_text(lock: Lock, *, header: Sequence[str] = ()) -> str:
    """The lock as a hash-pinned requirements file for ``pip install --require-hashes -r``.

    Index lines come from the sources recorded in ``[tool.torchup]`` (credential-free);
    the torch family is pinned exactly (:func:`~torchup.choose.plan.exact_pin`), every
    file by its sha256, so pip can install no other file.
    """
    from torchup.choose.plan import exact_pin

    lines = [f"# {line}" for line in header]
    sources = lock.made_for.sources if lock.made_for is not None else {}
    if sources.get("no_index"):
        lines.append("--no-index")
    elif sources.get("index_url"):
        lines.append(f"--index-url {sources['index_url']}")
    # an extra index equal to the index (pip's config often repeats it) is said once
    seen = {sources.get("index_url")}
    extras = [u for u in dict.fromkeys(sources.get("extra_index_urls", [])) if u not in seen]
    lines += [f"--extra-index-url {u}" for u in extras]
    lines += [f"--find-links {u}" for u in dict.fromkeys(sources.get("find_links", []))]
    for pkg in sorted(lock.packages, key=lambda p: canonicalize_name(p.name)):
        family = canonicalize_name(pkg.name) in FAMILY
        pin = exact_pin(pkg.name, pkg.version) if family else f"{pkg.name}=={pkg.version}"
        marker = f" ; {pkg.marker}" if pkg.marker else ""
        hashes = sorted({f.sha256 for f in pkg.files})
        lines.append(f"{pin}{marker} \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "")
                  for i, h in enumerate(hashes)]  # fmt: skip
    return "\n".join(lines) + "\n"


# -- comparing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """How one package differs between two locks."""

    name: str
    kind: Literal["added", "removed", "version", "files"]
    old: str | None
    new: str | None
    detail: str = ""

    def describe(self) -> str:
        if self.kind == "added":
            return f"{self.name} {self.new} would be added"
        if self.kind == "removed":
            return f"{self.name} {self.old} would be removed"
        if self.kind == "version":
            return f"{self.name} {self.old} -> {self.new}"
        return f"{self.name} {self.old}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "detail": self.detail,
            "text": self.describe(),
        }


def diff_locks(old: Lock, new: Lock) -> tuple[Change, ...]:
    """What ``new`` changes from ``old``, per package name, sorted by name."""
    before = {canonicalize_name(p.name): p for p in old.packages}
    after = {canonicalize_name(p.name): p for p in new.packages}
    changes: list[Change] = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None and b is not None:
            changes.append(Change(name=name, kind="added", old=None, new=b.version))
        elif b is None and a is not None:
            changes.append(Change(name=name, kind="removed", old=a.version, new=None))
        elif a is not None and b is not None and a.version != b.version:
            changes.append(Change(name=name, kind="version", old=a.version, new=b.version))
        elif a is not None and b is not None:
            detail = _file_changes(a, b)
            if detail:
                changes.append(
                    Change(name=name, kind="files", old=a.version, new=b.version, detail=detail)
                )
    return tuple(changes)


def _file_changes(a: LockedPackage, b: LockedPackage) -> str:
    old = {f.filename: f.sha256 for f in a.files}
    new = {f.filename: f.sha256 for f in b.files}
    both = sorted(old.keys() & new.keys())
    parts = [f"{n} sha256 {old[n][:12]}... -> {new[n][:12]}..." for n in both if old[n] != new[n]]
    parts += [f"{n} would be added" for n in sorted(new.keys() - old.keys())]
    parts += [f"{n} would be removed" for n in sorted(old.keys() - new.keys())]
    return "; ".join(parts)
