"""Fetching files over an :class:`~torchup.index.http.HttpSession`: a whole small file,
a byte range (for reading a wheel's metadata in place), or a download checked against
its sha256.

All raise :class:`IndexFetchError`; ``hashlib`` is imported only by :func:`download`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from torchup.errors import IndexFetchError
from torchup.index.http import status_error, transport_error
from torchup.index.pages import redact
from torchup.index.urls import file_url_to_path

if TYPE_CHECKING:
    from pathlib import Path

    from torchup.index.http import HttpSession

__all__ = ["content_range_total", "download", "get_bytes", "get_range"]

CHUNK = 1 << 20


def get_bytes(session: HttpSession, url: str, *, max_bytes: int) -> bytes | None:
    """A whole (small) file, or ``None`` on 404/410."""
    response, final_url = session.send(url, {})
    try:
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise status_error(final_url, response)
        return session.read(response, final_url, max_bytes)
    finally:
        response.close()


def get_range(session: HttpSession, url: str, start: int | None, length: int) -> tuple[bytes, int]:
    """``(bytes, total file size)`` for ``length`` bytes at ``start`` (``None``: the
    last ``length`` bytes). A server that ignores ``Range`` is cut off at once.
    """
    spec = f"bytes=-{length}" if start is None else f"bytes={start}-{start + length - 1}"
    response, final_url = session.send(url, {"Range": spec, "Accept-Encoding": "identity"})
    try:
        if response.status_code == 200:
            size = response.headers.get("content-length", "unknown")
            raise IndexFetchError(
                redact(url),
                f"the server ignores HTTP range requests; torchup will not download the "
                f"whole wheel ({size} bytes) just to read its metadata",
                hint="use an index that supports Range or publishes PEP 658 metadata",
            )
        if response.status_code != 206:
            raise status_error(final_url, response)
        total = content_range_total(response.headers.get("content-range", ""))
        data = session.read(response, final_url, length)
    finally:
        response.close()
    if total is None:
        raise IndexFetchError(redact(url), "a range response without a usable Content-Range")
    return data, total


def download(session: HttpSession, url: str, dest: Path, *, sha256: str) -> Path:
    """Save the file at ``url`` as ``dest``, only if its sha256 is ``sha256``.

    The bytes are hashed as they arrive and written to a temporary name beside
    ``dest``, renamed only when the hash matches, so a partial or tampered file never
    appears under ``dest``. ``file://`` URLs are copied. Raises
    :class:`IndexFetchError` (including on a hash mismatch).
    """
    import hashlib
    import shutil

    digest = hashlib.sha256()
    part = dest.with_name(dest.name + ".part")
    try:
        with part.open("wb") as out:
            if urlsplit(url).scheme == "file":
                _copy_to(url, out, digest)
            else:
                _stream_to(session, url, out, digest)
        got = digest.hexdigest()
        if got != sha256.lower():
            raise IndexFetchError(
                redact(url),
                f"sha256 mismatch: the index says {sha256}, the file is {got}",
                hint="the file changed after the index was read; run again, and report "
                "it to the index's owner if it persists",
            )
        shutil.move(part, dest)
    except OSError as exc:
        raise IndexFetchError(redact(url), f"cannot save it as {dest}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return dest


def _copy_to(url: str, out: BinaryIO, digest: Any) -> None:
    """Copy the ``file://`` URL's file into ``out``, hashing it on the way."""
    with file_url_to_path(url).open("rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)


def _stream_to(session: HttpSession, url: str, out: BinaryIO, digest: Any) -> None:
    """Stream the body at ``url`` into ``out``, hashing it on the way."""
    import httpx

    response, final_url = session.send(url, {"Accept-Encoding": "identity"})
    try:
        if response.status_code != 200:
            raise status_error(final_url, response)
        for chunk in response.iter_bytes(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    except httpx.HTTPError as exc:
        raise transport_error(url, exc) from None
    finally:
        response.close()


def content_range_total(value: str) -> int | None:
    """The total size in a ``Content-Range`` header (``None`` when it gives none).

    >>> content_range_total("bytes 100-199/2000")
    2000
    >>> content_range_total("bytes 0-9/*") is None
    True
    """
    _, _, total = value.rpartition("/")
    return int(total) if total.strip().isdigit() else None
