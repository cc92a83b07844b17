"""Fetch one locked file into a folder: resumable, hash-checked as it streams.

:func:`fetch_file` is the I/O edge of :mod:`torchup.export.wheelhouse`:

- a complete file already at ``dest`` with the right sha256 is kept (nothing fetched);
- an ``http(s)://`` URL is streamed through an :class:`~torchup.index.http.HttpSession`
  (its URL policy, credentials, redirects and error wording) into ``<dest>.part``; a
  ``.part`` left by an earlier run or a broken connection is continued with an HTTP
  ``Range: bytes=N-`` request (a server that answers ``200`` instead is read from the
  start), and a connection that breaks after bytes arrived is resumed the same way, up
  to ``attempts`` times;
- a ``file://`` URL or a local path is copied, hash-checked the same way;
- the bytes are hashed as they arrive; on a mismatch the partial file is deleted and
  :class:`HashMismatchError` names the file, the expected and the actual sha256 (a
  resumed file that fails is first fetched once more from the start: the ``.part`` may
  be a different file's);
- a full disk (``ENOSPC``) deletes the partial file and raises :class:`NoSpaceError`.

Only ``dest`` and ``<dest>.part`` are ever written; ``dest`` appears (``os.replace``)
only once its hash is right. URLs in messages are redacted. httpx is imported only
when an HTTP file is fetched.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import urlsplit

from torchup.errors import TorchupError
from torchup.index.http import status_error, transport_error
from torchup.index.pages import redact
from torchup.index.urls import file_url_to_path

if TYPE_CHECKING:
    import httpx

    from torchup.index.http import HttpSession

__all__ = [
    "FetchCancelled",
    "Fetched",
    "HashMismatchError",
    "NoSpaceError",
    "WheelhouseError",
    "fetch_file",
    "local_source",
    "sha256_of",
]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
FetchState = Literal["downloaded", "resumed", "reused", "copied"]


class WheelhouseError(TorchupError):
    """A wheelhouse cannot be built (bad lock, folder, file, hash, or disk)."""


class HashMismatchError(WheelhouseError):
    """A file's bytes are not the ones the lock names (or not its size)."""

    def __init__(self, filename: str, source: str, expected: str, got: str) -> None:
        super().__init__(
            f"{filename}: sha256 mismatch (from {redact(source)}): the lock says "
            f"{expected}, the file is {got}; the partial file was deleted",
            hint="the file changed after the lock was made, or was altered on the way; "
            "if the change is expected, make the lock again (torchup lock) and rerun",
        )
        self.filename = filename
        self.source = redact(source)
        self.expected = expected
        self.got = got


class SizeMismatchError(HashMismatchError):
    """A file whose length, as its server states it or as it arrives, is not the lock's
    (known before its bytes are: a length that is wrong cannot give the locked hash)."""

    def __init__(self, filename: str, source: str, size: int, served: str) -> None:
        WheelhouseError.__init__(
            self,
            f"{filename}: the lock says {size} bytes, and {redact(source)} {served}; the "
            "partial file was deleted",
            hint="the file changed after the lock was made, or the server is not giving "
            "it whole; if the change is expected, make the lock again (torchup lock)",
        )
        self.filename = filename
        self.source = redact(source)
        self.expected = f"{size} bytes"
        self.got = served


class NoSpaceError(WheelhouseError):
    """The wheelhouse's disk is full (or would be)."""

    def __init__(self, directory: Path, *, needed: int | None, free: int | None) -> None:
        need = f"; it needs {_size(needed)} more" if needed is not None else ""
        have = f" and {_size(free)} is free" if free is not None else ""
        super().__init__(
            f"no space left on the disk of {str(directory)!r}{need}{have}; "
            "partial files were removed",
            hint="free some space there, or build the wheelhouse in a folder on another disk",
        )
        self.directory = directory
        self.needed = needed
        self.free = free


def _size(n: int | None) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    >>> _size(3 * 1024**3)
    '3.0 GiB'
    """
    value = float(n or 0)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """What :func:`fetch_file` did: ``fetched`` bytes transferred now, ``reused`` bytes
    that were already on disk (a complete file, or the ``.part`` a download resumed)."""

    path: Path
    state: FetchState
    fetched: int
    reused: int


class FetchCancelled(Exception):
    """Raised by :func:`fetch_file` once ``cancelled`` is set (another file failed): the
    ``.part`` is kept for the next run."""


def local_source(source: str, base: Path) -> Path | None:
    """The local path ``source`` names (a ``file://`` URL, or a path relative to
    ``base``), or ``None`` for a remote URL.

    >>> local_source("files/a.whl", Path("/l"))
    PosixPath('/l/files/a.whl')
    >>> local_source("https://h/a.whl", Path("/l")) is None
    True
    """
    scheme = urlsplit(source).scheme.lower()
    if scheme == "file":
        return file_url_to_path(source)
    if len(scheme) > 1:  # "c:" is a Windows drive, not a scheme
        return None
    return base / source


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(
    source: str,
    dest: Path,
    *,
    sha256: str,
    size: int | None,
    session: HttpSession,
    base: Path,
    on_bytes: Callable[[int], None] = lambda n: None,
    cancelled: threading.Event | None = None,
    attempts: int = 3,
) -> Fetched:
    """Put the file ``source`` names at ``dest``, only with sha256 ``sha256``.

    ``base`` is what a relative path is relative to (the lock's folder, PEP 751);
    ``on_bytes(n)`` is told of every ``n`` bytes that arrive; ``cancelled``, once set,
    stops a download between chunks (its ``.part`` kept). Raises
    :class:`HashMismatchError`, :class:`NoSpaceError`, :class:`WheelhouseError`, or
    :class:`~torchup.errors.IndexFetchError` for a file the server will not give.
    """
    stop = cancelled or threading.Event()
    part = dest.with_name(dest.name + ".part")
    try:
        if dest.is_file():
            if _matches(dest, sha256, size):
                return Fetched(path=dest, state="reused", fetched=0, reused=dest.stat().st_size)
            # kept until the locked file has arrived whole and replaced it: a lock that
            # names bytes no source gives must not take a good wheelhouse's file away
            log.warning("%s on disk is not the locked file; fetching the locked one", dest.name)
        local = local_source(source, base)
        if local is not None:
            return _copy(
                local, source, dest, part=part, sha256=sha256, size=size,
                on_bytes=on_bytes, stop=stop,
            )  # fmt: skip
        return _download(
            source, dest, part=part, sha256=sha256, size=size, session=session,
            on_bytes=on_bytes, stop=stop, attempts=attempts,
        )  # fmt: skip
    except FetchCancelled:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            part.unlink(missing_ok=True)
            raise NoSpaceError(dest.parent, needed=None, free=None) from None
        raise WheelhouseError(
            f"{dest.name}: cannot write {str(exc.filename or dest)!r}: {exc.strerror or exc}",
            hint="check that the wheelhouse folder is writable",
        ) from None
    finally:
        _drop_if_empty(part)  # a refused or unreachable file leaves nothing to continue


def _drop_if_empty(part: Path) -> None:
    try:
        if part.stat().st_size == 0:
            part.unlink()
    except OSError:
        pass


def _matches(path: Path, sha256: str, size: int | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    return sha256_of(path) == sha256


class _Sink:
    """The ``.part`` file being written, its running hash and byte counts."""

    def __init__(self, part: Path, filename: str, source: str, sha256: str, size: int | None):
        self.part = part
        self.filename = filename
        self.source = source
        self.sha256 = sha256
        self.size = size
        self.digest = hashlib.sha256()
        self.written = 0
        #: set once the file is (re)started from byte 0: no earlier ``.part`` is in it
        self.from_scratch = False
        #: the file's length as the last response gave it (Content-Length of a 200, the
        #: total of a 206's Content-Range), when it said
        self.served_size: int | None = None
        #: the last response was the file from its start (a 200), not a range of it
        self.whole = False
        self.out: BinaryIO | None = None

    def open(self, *, keep: bool) -> int:
        """Open the ``.part`` (continuing it when ``keep``); the bytes kept."""
        self.close()
        self.digest = hashlib.sha256()
        self.written = 0
        if keep and self.part.is_file():
            kept = self.part.stat().st_size
            if self.size is None or kept < self.size:
                with self.part.open("rb") as f:
                    while chunk := f.read(CHUNK):
                        self.digest.update(chunk)
                self.written = kept
                self.out = self.part.open("ab")
                return kept
        self.out = self.part.open("wb")
        self.from_scratch = True
        return 0

    def write(self, chunk: bytes) -> None:
        assert self.out is not None
        self.written += len(chunk)
        if self.size is not None and self.written > self.size:
            self.fail_size(f"sends more ({self.written} bytes so far)")
        self.digest.update(chunk)
        self.out.write(chunk)

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None

    def fail_size(self, served: str) -> None:
        """Delete the ``.part`` and raise :class:`SizeMismatchError` (``served``: what
        the server gives, as a phrase)."""
        assert self.size is not None
        self.close()
        self.part.unlink(missing_ok=True)
        raise SizeMismatchError(self.filename, self.source, self.size, served)

    def finish(self, dest: Path) -> bool:
        """Close; rename to ``dest`` when the hash is right (True), else delete (False)."""
        self.close()
        if self.digest.hexdigest() == self.sha256 and (
            self.size is None or self.written == self.size
        ):
            os.replace(self.part, dest)
            return True
        self.part.unlink(missing_ok=True)
        return False


def _copy(
    local: Path,
    source: str,
    dest: Path,
    *,
    part: Path,
    sha256: str,
    size: int | None,
    on_bytes: Callable[[int], None],
    stop: threading.Event,
) -> Fetched:
    sink = _Sink(part, dest.name, source, sha256, size)
    try:
        src = local.open("rb")
    except OSError as exc:
        raise WheelhouseError(
            f"{dest.name}: cannot read {str(local)!r}: {exc.strerror or exc}",
            hint="the lock names a local file that is not there; make the lock again",
        ) from None
    with src:
        sink.open(keep=False)
        try:
            while chunk := src.read(CHUNK):
                if stop.is_set():
                    raise FetchCancelled
                sink.write(chunk)
                on_bytes(len(chunk))
        finally:
            sink.close()
    if not sink.finish(dest):
        raise HashMismatchError(dest.name, source, sha256, sink.digest.hexdigest())
    return Fetched(path=dest, state="copied", fetched=sink.written, reused=0)


def _download(
    url: str,
    dest: Path,
    *,
    part: Path,
    sha256: str,
    size: int | None,
    session: HttpSession,
    on_bytes: Callable[[int], None],
    stop: threading.Event,
    attempts: int,
) -> Fetched:
    sink = _Sink(part, dest.name, url, sha256, size)
    fetched = 0
    resumed_from = sink.open(keep=True)
    fresh_retry = resumed_from > 0  # a resumed file that fails its hash: once afresh
    for attempt in range(1, attempts + 1):
        try:
            got = _stream(session, url, sink, on_bytes, stop)
        except _Broken as broken:
            sink.close()
            fetched += broken.got
            if broken.got == 0 or attempt == attempts:
                raise broken.error from None
            log.info("%s: connection broke after %d bytes; resuming", dest.name, sink.written)
            sink.open(keep=True)
            continue
        except BaseException:
            sink.close()
            raise
        fetched += got
        if size is not None and sink.written < size and got:
            if sink.whole and sink.served_size is None:
                # the whole file, its end marked by the connection closing (no
                # Content-Length): that is all the server has, asked again or not
                sink.fail_size(f"gives {sink.written}")
            # a range that ended early without an error: resume
            if attempt == attempts:
                break
            log.info("%s: the response ended at %d bytes; resuming", dest.name, sink.written)
            sink.open(keep=True)
            continue
        if sink.finish(dest):
            reused = 0 if sink.from_scratch else resumed_from
            state: FetchState = "resumed" if reused else "downloaded"
            return Fetched(path=dest, state=state, fetched=fetched, reused=reused)
        if not fresh_retry:
            raise HashMismatchError(dest.name, url, sha256, sink.digest.hexdigest())
        log.warning("%s: the resumed file fails its hash; downloading it afresh", dest.name)
        fresh_retry = False
        resumed_from = 0
        sink.open(keep=False)
    sink.close()
    raise WheelhouseError(
        f"{dest.name}: the download from {redact(url)} kept breaking off "
        f"({attempts} attempts); the partial file is kept",
        hint="run the same command again: it continues where this one stopped",
    )


class _Broken(Exception):
    """The connection broke after ``got`` bytes (``error`` says how)."""

    def __init__(self, got: int, error: TorchupError) -> None:
        super().__init__(str(error))
        self.got = got
        self.error = error


def _stream(
    session: HttpSession,
    url: str,
    sink: _Sink,
    on_bytes: Callable[[int], None],
    stop: threading.Event,
) -> int:
    """GET ``url`` into ``sink`` from ``sink.written`` on; the bytes received."""
    import httpx

    offset = sink.written
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response, final_url = session.send(url, headers)
    got = 0
    try:
        if offset and response.status_code == 200:
            sink.open(keep=False)  # the server ignores Range: it sends the whole file
        elif offset and not _continues(response, offset):
            if response.status_code not in (206, 416):
                raise status_error(final_url, response)
            response.close()  # 416 or another range: the .part is not this file's start
            sink.open(keep=False)
            return _stream(session, url, sink, on_bytes, stop)
        elif response.status_code not in (200, 206):
            raise status_error(final_url, response)
        sink.served_size = _served_size(response)
        sink.whole = response.status_code == 200
        if sink.size is not None and sink.served_size not in (None, sink.size):
            sink.fail_size(f"says it is {sink.served_size}")  # before a byte of it comes
        for chunk in response.iter_bytes(CHUNK):
            if stop.is_set():
                raise FetchCancelled
            sink.write(chunk)
            got += len(chunk)
            on_bytes(len(chunk))
    except httpx.HTTPError as exc:
        raise _Broken(got, transport_error(url, exc)) from None
    finally:
        response.close()
    return got


def _served_size(response: httpx.Response) -> int | None:
    """The whole file's length as ``response`` states it, if it does."""
    if response.status_code == 206:
        total = str(response.headers.get("content-range", "")).rpartition("/")[2].strip()
    else:
        total = str(response.headers.get("content-length", "")).strip()
    return int(total) if total.isdigit() else None


def _continues(response: httpx.Response, offset: int) -> bool:
    """Whether ``response`` is the rest of the file from ``offset`` (a 206 that says so)."""
    if response.status_code != 206:
        return False
    value = str(response.headers.get("content-range", ""))
    unit, _, spec = value.partition(" ")
    return unit == "bytes" and spec.partition("-")[0].strip() == str(offset)
