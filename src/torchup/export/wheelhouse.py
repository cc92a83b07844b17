"""A wheelhouse: every file of a PEP 751 lock in one folder that serves as a package index.

:func:`build_wheelhouse` reads a ``pylock.toml`` (validated by :mod:`packaging.pylock`
where the installed packaging has it, see :func:`~torchup.export.pylock.parse_lock`),
downloads every file it lists into ``DIR/files/`` (a thread pool; resumable with HTTP
``Range``; hash-checked as the bytes stream, see :mod:`torchup.export.fetch`; ``file://``
URLs and local paths copied the same way), and writes ``DIR`` as a static index that
pip and uv use unchanged, served by any static file server or read as ``file://``:

    DIR/simple/index.html, DIR/simple/<project>/index.html   PEP 503 (what pip and uv read)
    DIR/simple/index.json, DIR/simple/<project>/index.json   PEP 691 twins (for servers
                                                              that negotiate)
    DIR/files/<file>, DIR/files/<wheel>.metadata              files, PEP 658 metadata
    DIR/pylock.toml                                           the lock, pointing here
    DIR/.torchup-wheelhouse.json                              the marker (what torchup made)

so that ``python -m http.server -d DIR`` and ``pip install --index-url
http://HOST:PORT/simple/ ...`` or ``uv pip install --index-url ...`` install the
locked files with nothing else reachable. The layout, and why HTML sits at
``index.html`` (a static server cannot negotiate PEP 691's JSON), is explained in
:mod:`torchup.export.static_index`.

The rewritten ``DIR/pylock.toml`` keeps the original lock (markers, dependencies, tool
tables) with each file's location replaced: ``path = "files/<file>"`` (PEP 751: relative
to the lock's folder), or, given ``base_url``, ``url = "<base_url>/files/<file>"`` and
``index = "<base_url>/simple/"``. The original URLs and indexes are dropped, and no
credentials are ever written.

Safety: ``DIR`` must not exist, be empty, or hold the marker of a torchup wheelhouse;
anything else is refused (:class:`WheelhouseDirError`). Only paths under ``DIR`` are
written, each atomically (a temporary sibling, then ``os.replace``); a file name from the
lock that is not a plain wheel or sdist name is refused before anything is written.
The index and the lock are written only once every file is there with its hash, so a
failed run leaves no page naming a missing file (a previous complete wheelhouse in
``DIR`` stays as it was, plus the new files and ``.part`` files a rerun continues). A
rerun of a complete wheelhouse downloads nothing.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from torchup.errors import UsageError
from torchup.export import _toml, static_index
from torchup.export.fetch import (
    FetchCancelled,
    Fetched,
    FetchState,
    HashMismatchError,
    NoSpaceError,
    WheelhouseError,
    fetch_file,
    local_source,
    sha256_of,
)
from torchup.export.housedir import (
    MARKER,
    WheelhouseDirError,
    check_space,
    claim,
    prune,
    write_atomic,
    write_marker,
)
from torchup.export.pylock import (
    LockedFile,
    LockError,
    _loads,
    filename_of,
    parse_lock,
    strip_credentials,
)
from torchup.index.pages import redact

if TYPE_CHECKING:
    from torchup.index.http import HttpSession

__all__ = [
    "MARKER",
    "FileProgress",
    "HashMismatchError",
    "LockError",
    "NoSpaceError",
    "Wheelhouse",
    "WheelhouseDirError",
    "WheelhouseError",
    "WheelhouseFile",
    "build_wheelhouse",
]

log = logging.getLogger(__name__)

SCHEMA = 1
_SUFFIXES = (".whl", ".tar.gz", ".zip")
_INLINE = ("wheels", "sdist", "hashes")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileProgress:
    """One step of one file, for a progress display.

    ``event`` is ``"start"`` (``done`` bytes already on disk), ``"bytes"`` (more
    arrived) or ``"done"`` (``state`` says how). ``total`` is the lock's size, if given.
    """

    filename: str
    event: Literal["start", "bytes", "done"]
    done: int
    total: int | None
    state: FetchState | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelhouseFile:
    """One file of the wheelhouse and how it got there."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int
    #: where the lock said it was (redacted)
    source: str
    state: FetchState
    fetched: int
    metadata: bool
    #: the lock's requires-python for the package, else the wheel METADATA's
    requires_python: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source,
            "state": self.state,
            "bytes_fetched": self.fetched,
            "metadata": self.metadata,
            "requires_python": self.requires_python,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Wheelhouse:
    """What :func:`build_wheelhouse` made."""

    directory: Path
    #: the rewritten lock, ``DIR/pylock.toml``
    lock: Path
    #: the index to install from: ``<base_url>/simple/``, else ``DIR/simple/`` as file://
    index_url: str
    files: tuple[WheelhouseFile, ...]
    projects: tuple[str, ...]
    bytes_downloaded: int
    bytes_reused: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "directory": str(self.directory),
            "lock": str(self.lock),
            "index_url": redact(self.index_url),
            "projects": list(self.projects),
            "files": [f.to_dict() for f in self.files],
            "bytes_downloaded": self.bytes_downloaded,
            "bytes_reused": self.bytes_reused,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Item:
    """One file to fetch, with the package it belongs to."""

    project: str
    version: str
    requires_python: str | None
    file: LockedFile


# -- the entry point -------------------------------------------------------------------


def build_wheelhouse(
    lock_path: Path,
    directory: Path,
    *,
    session: HttpSession | None = None,
    jobs: int = 8,
    progress: Callable[[FileProgress], None] | None = None,
    base_url: str | None = None,
) -> Wheelhouse:
    """Download every file of the lock at ``lock_path`` into ``directory`` and write it
    as a static index with the lock rewritten to point there (see the module docstring).

    ``session`` fetches HTTP files (default: a new :class:`~torchup.index.http.HttpSession`,
    closed at the end); ``jobs`` files are fetched at once; ``progress`` is called with a
    :class:`FileProgress` for each step, one call at a time (from the worker threads,
    under a lock); ``base_url`` is where ``directory`` will be served, for the rewritten
    lock's URLs (default: paths relative to the lock).

    Raises :class:`~torchup.export.pylock.LockError` (not TOML, not PEP 751, malformed),
    :class:`WheelhouseDirError`, :class:`HashMismatchError`, :class:`NoSpaceError`,
    :class:`WheelhouseError`, or :class:`~torchup.errors.IndexFetchError`.
    """
    if base_url is not None and (problem := base_url_problem(base_url)):
        raise UsageError(problem, hint="e.g. --base-url https://mirror.example/torch")
    text = _read_lock(lock_path)
    items = _items(text, lock_path)  # validated first: every LockError before any write
    raw = _loads(text, str(lock_path))
    directory = directory.absolute()
    previous = claim(directory)
    files_dir = directory / static_index.FILES_DIR
    check_space(files_dir, [i.file for i in items])
    files_dir.mkdir(parents=True, exist_ok=True)
    names = [i.file.filename for i in items]
    write_marker(directory, previous + names, complete=False)
    own = session is None
    if session is None:
        from torchup.index.http import HttpSession

        session = HttpSession(read_timeout=60.0)
    try:
        fetched = _fetch_all(
            items, files_dir, session=session, base=lock_path.parent, jobs=jobs,
            progress=progress,
        )  # fmt: skip
    finally:
        if own:
            session.close()
    warnings: list[str] = []
    pairs = zip(items, fetched, strict=True)
    done = tuple(_finish(item, f, files_dir, warnings) for item, f in pairs)
    projects = _write_index(directory, items, done)
    new_lock = directory / "pylock.toml"
    write_atomic(new_lock, _rewrite_lock(raw, base_url).encode())
    prune(directory, previous, names, projects)
    write_marker(directory, names, complete=True, projects=projects)
    index_url = (
        strip_credentials(base_url.rstrip("/")) + "/simple/"
        if base_url
        else (directory / static_index.SIMPLE_DIR).as_uri() + "/"
    )
    return Wheelhouse(
        directory=directory,
        lock=new_lock,
        index_url=index_url,
        files=done,
        projects=projects,
        bytes_downloaded=sum(f.fetched for f in fetched),
        bytes_reused=sum(f.reused for f in fetched),
        warnings=tuple(warnings),
    )


# -- the lock --------------------------------------------------------------------------


def _read_lock(path: Path) -> str:
    """The lock's text; :class:`LockError` when unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LockError(
            f"cannot read the lock {str(path)!r}: {exc.strerror or exc}",
            hint="give the path of a pylock.toml (torchup lock writes one)",
        ) from None
    except UnicodeDecodeError as exc:
        raise LockError(f"the lock {str(path)!r} is not UTF-8 text: {exc}") from None


def _items(text: str, lock_path: Path) -> list[_Item]:
    """Every distinct file of the lock, checked to be a plain file name."""
    lock = parse_lock(text, where=str(lock_path))
    items: dict[str, _Item] = {}
    for pkg in lock.packages:
        for f in pkg.files:
            _check_name(f.filename, str(lock_path))
            seen = items.get(f.filename)
            if seen is not None and seen.file.sha256 != f.sha256:
                raise LockError(
                    f"{str(lock_path)!r} lists {f.filename} twice with different sha256 "
                    f"({seen.file.sha256} and {f.sha256})",
                    hint="the lock was damaged or edited by hand; make it again",
                )
            items.setdefault(
                f.filename,
                _Item(
                    project=pkg.name,
                    version=pkg.version,
                    requires_python=pkg.requires_python,
                    file=f,
                ),
            )
    return list(items.values())


def _check_name(filename: str, where: str) -> None:
    """Refuse a file name that could write outside ``files/`` or is not a distribution.

    >>> _check_name("a-1.0-py3-none-any.whl", "l")
    >>> _check_name("../../etc/x.whl", "l")
    Traceback (most recent call last):
    ...
    torchup.export.pylock.LockError: 'l' names a file '../../etc/x.whl', which is not a \
plain wheel or sdist file name
      hint: the lock was damaged or edited by hand; make it again
    """
    plain = (
        filename
        and "/" not in filename
        and "\\" not in filename
        and not filename.startswith(".")
        and filename.lower().endswith(_SUFFIXES)
    )
    if not plain:
        raise LockError(
            f"{where!r} names a file {filename!r}, which is not a plain wheel or sdist file name",
            hint="the lock was damaged or edited by hand; make it again",
        )


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be where a wheelhouse is served, or ``None``: files are named
    ``<url>/files/<file>``, so it must be an ``http(s)://`` URL with a host (or a
    ``file://`` one) without a query or fragment.

    >>> base_url_problem("https://mirror.example/wh/") is None
    True
    >>> base_url_problem("mirror.example/wh")
    "'mirror.example/wh' is not an http://, https:// or file:// URL"
    """
    from urllib.parse import urlsplit

    shown = redact(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return f"{shown!r} is not a valid URL: {exc}"
    if parts.scheme.lower() not in ("http", "https", "file"):
        return f"{shown!r} is not an http://, https:// or file:// URL"
    if parts.scheme.lower() != "file" and not host:
        return f"{shown!r} has no host"
    if parts.query or parts.fragment:
        return f"{shown!r} has a query or fragment: the files' URLs are made from its path"
    return None


def _location(filename: str, base_url: str | None) -> dict[str, str]:
    """Where the rewritten lock says a file is.

    >>> _location("a+b.whl", None)
    {'path': 'files/a+b.whl'}
    >>> _location("a+b.whl", "https://u:p@h/wh/")
    {'url': 'https://h/wh/files/a%2Bb.whl'}
    """
    if base_url:
        root = strip_credentials(base_url.rstrip("/"))
        return {"url": f"{root}/{static_index.FILES_DIR}/{quote(filename, safe='')}"}
    return {"path": f"{static_index.FILES_DIR}/{filename}"}


def _rewrite_lock(raw: Mapping[str, Any], base_url: str | None) -> str:
    """The lock's text with every file pointing into the wheelhouse."""
    doc = {k: _plain(v) for k, v in raw.items()}
    doc["created-by"] = "torchup"
    index = strip_credentials(base_url.rstrip("/")) + "/simple/" if base_url else None
    for pkg in doc.get("packages", []):
        pkg.pop("index", None)
        if index:
            pkg["index"] = index
        entries = list(pkg.get("wheels") or [])
        if isinstance(pkg.get("sdist"), dict):
            entries.append(pkg["sdist"])
        for entry in entries:
            filename = entry.get("name") or filename_of(entry.get("url") or entry.get("path"))
            entry.pop("url", None)
            entry.pop("path", None)
            entry["name"] = filename
            entry.update(_location(filename, base_url))
    header = "# written by torchup wheelhouse: every file is in this folder's files/\n"
    return header + _toml.dumps(doc, inline=_INLINE)


def _plain(value: Any) -> Any:
    """``value`` as plain TOML values: a date or time in a tool table becomes its text;
    a file's ``upload-time`` stays the offset date-time PEP 751 has it as."""
    import datetime

    if isinstance(value, dict):
        return {k: v if k == "upload-time" else _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return value


# -- fetching --------------------------------------------------------------------------


def _fetch_all(
    items: Sequence[_Item],
    files_dir: Path,
    *,
    session: HttpSession,
    base: Path,
    jobs: int,
    progress: Callable[[FileProgress], None] | None,
) -> list[Fetched]:
    """Fetch every item on ``jobs`` threads; the first failure stops the rest."""
    lock = threading.Lock()
    stop = threading.Event()

    def tell(event: FileProgress) -> None:
        if progress is not None:
            with lock:
                progress(event)

    def one(item: _Item) -> Fetched:
        if stop.is_set():  # queued behind a failure that a worker met before the caller saw
            raise FetchCancelled
        try:
            return fetch_one(item)
        except FetchCancelled:
            raise
        except BaseException:
            stop.set()  # here, not when the caller looks: this worker's next item is next
            raise

    def fetch_one(item: _Item) -> Fetched:
        f = item.file
        dest = files_dir / f.filename
        part = dest.with_name(dest.name + ".part")
        done = [part.stat().st_size if part.is_file() else 0]
        tell(FileProgress(filename=f.filename, event="start", done=done[0], total=f.size))

        def on_bytes(n: int) -> None:
            done[0] += n
            tell(FileProgress(filename=f.filename, event="bytes", done=done[0], total=f.size))

        result = fetch_file(
            f.url, dest, sha256=f.sha256, size=f.size, session=session, base=base,
            on_bytes=on_bytes, cancelled=stop,
        )  # fmt: skip
        size = dest.stat().st_size
        tell(FileProgress(filename=f.filename, event="done", done=size, total=size,
                          state=result.state))  # fmt: skip
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(items) or 1)))
    futures: list[Future[Fetched]] = [pool.submit(one, item) for item in items]
    try:
        # the first failure (or Ctrl-C) stops the rest at once: the downloads running
        # end at their next chunk (their .part kept), the queued ones never start
        wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    if any(fu.done() and fu.exception() is not None for fu in futures):
        stop.set()
    pool.shutdown(wait=True, cancel_futures=True)
    errors = [e for fu in futures if not fu.cancelled() and (e := fu.exception()) is not None]
    real = [e for e in errors if not isinstance(e, FetchCancelled)]
    if real or errors:
        raise (real or errors)[0]
    return [fu.result() for fu in futures]


def _finish(item: _Item, fetched: Fetched, files_dir: Path, warnings: list[str]) -> WheelhouseFile:
    """The wheelhouse entry for a fetched file, with its PEP 658 metadata file written."""
    f = item.file
    metadata = False
    requires_python = item.requires_python
    if f.filename.endswith(".whl"):
        data, why = _wheel_metadata(files_dir / f.filename)
        if data is not None:
            write_atomic(files_dir / f"{f.filename}.metadata", data)
            metadata = True
            requires_python = requires_python or _requires_python(data)
        else:
            warnings.append(f"{f.filename}: no PEP 658 metadata file ({why})")
    local = local_source(f.url, Path("."))
    return WheelhouseFile(
        project=item.project,
        version=item.version,
        filename=f.filename,
        sha256=f.sha256,
        size=(files_dir / f.filename).stat().st_size,
        source=str(local) if local is not None and "://" not in f.url else redact(f.url),
        state=fetched.state,
        fetched=fetched.fetched,
        metadata=metadata,
        requires_python=requires_python,
    )


def _wheel_metadata(path: Path) -> tuple[bytes | None, str]:
    """The wheel's ``*.dist-info/METADATA`` (``None`` and why, when it has none)."""
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        return None, f"not a valid wheel name: {exc}"
    wanted = f"{canonicalize_name(name)}-{version}"
    try:
        with zipfile.ZipFile(path) as zf:
            found = [n for n in zf.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]  # fmt: skip
            best = [n for n in found if _dist_info_key(n) == wanted] or found
            if len(best) != 1:
                return None, f"{len(found)} .dist-info/METADATA files in the wheel"
            return zf.read(best[0]), ""
    except (zipfile.BadZipFile, OSError, KeyError) as exc:
        return None, f"cannot read the wheel as a zip: {exc}"


def _requires_python(metadata: bytes) -> str | None:
    """The ``Requires-Python`` of core metadata (for ``data-requires-python``).

    >>> _requires_python(b"Metadata-Version: 2.1\\nName: a\\nRequires-Python: >=3.9\\n\\nbody")
    '>=3.9'
    """
    from email.parser import BytesHeaderParser

    value = BytesHeaderParser().parsebytes(metadata).get("Requires-Python")
    return str(value).strip() or None if value is not None else None


def _dist_info_key(member: str) -> str:
    """``Foo_Bar-1.0.dist-info/METADATA`` -> ``foo-bar-1.0``."""
    stem = member.split("/", 1)[0].removesuffix(".dist-info")
    name, _, version = stem.rpartition("-")
    return f"{canonicalize_name(name)}-{version}"


# -- the index -------------------------------------------------------------------------


def _write_index(
    directory: Path, items: Sequence[_Item], done: Sequence[WheelhouseFile]
) -> tuple[str, ...]:
    """Write every project page and the root page; the projects, normalised."""
    files_dir = directory / static_index.FILES_DIR
    by_project: dict[str, list[static_index.IndexEntry]] = {}
    for item, wf in zip(items, done, strict=True):
        meta = files_dir / f"{wf.filename}.metadata"
        entry = static_index.IndexEntry(
            project=item.project,
            version=item.version,
            filename=wf.filename,
            sha256=wf.sha256,
            size=wf.size,
            requires_python=wf.requires_python,
            metadata_sha256=sha256_of(meta) if wf.metadata else None,
        )
        by_project.setdefault(canonicalize_name(item.project), []).append(entry)
    simple = directory / static_index.SIMPLE_DIR
    for project, entries in sorted(by_project.items()):
        page = simple / project
        write_atomic(page / "index.html", static_index.project_html(project, entries).encode())
        write_atomic(page / "index.json", static_index.project_json(project, entries).encode())
    projects = tuple(sorted(by_project))
    write_atomic(simple / "index.html", static_index.root_html(projects).encode())
    write_atomic(simple / "index.json", static_index.root_json(projects).encode())
    return projects
