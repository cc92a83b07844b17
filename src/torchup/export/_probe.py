"""Is a file still where a lock says, and how big is it? Reads headers only.

A streamed GET whose body is never read (some file hosts answer HEAD differently from
GET), through :class:`~torchup.index.http.HttpSession` with the plan's credentials for
their hosts; a ``file://`` URL or a local path is looked at on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from torchup.errors import TorchupError
from torchup.index.pages import redact

if TYPE_CHECKING:
    from torchup.index.http import HttpSession
    from torchup.index.sources import Sources

__all__ = ["load_sizes", "probe_all", "save_sizes", "session_for"]


def _local_path(url: str, base: Path | None) -> Path | None:
    """The file a ``file:`` URL or a path names; a relative path is relative to ``base``
    (a lock's folder, PEP 751), else to the working folder."""
    if url.startswith("file:"):
        return Path(unquote(urlsplit(url).path))
    if "://" not in url:
        return base / url if base is not None else Path(url)
    return None


def session_for(sources: Sources | None, *, read_timeout: float = 15.0) -> HttpSession:
    """A session that sends the plan's credentials to their hosts (the lock has none)."""
    from torchup.index.http import HttpSession

    if sources is None:
        return HttpSession(read_timeout=read_timeout)
    session = HttpSession(
        trusted_hosts=sources.trusted_hosts,
        verify=sources.cert.url if sources.cert else True,
        read_timeout=read_timeout,
    )
    for src in (*sources.index_urls(), *sources.find_links, sources.torch_index_url):
        session.remember(src.url)
    return session


def _probe(session: HttpSession, url: str, base: Path | None) -> tuple[int | None, str]:
    """``(size, "")`` for a file that is there, ``(None, why)`` for one that is not, and
    ``(None, "")`` for one that is there whose server gives no length.

    Only the response's headers are read (a streamed GET, closed at once): some file
    hosts answer HEAD differently from GET, and a wheel is never downloaded."""
    path = _local_path(url, base)
    if path is not None:
        try:
            return path.stat().st_size, ""
        except OSError as exc:
            return None, f"{path}: {exc.strerror or exc}"
    try:
        response, _final = session.send(url, {"Accept-Encoding": "identity"})
    except TorchupError as exc:
        return None, exc.message
    try:
        if response.status_code != 200:
            return None, f"HTTP {response.status_code} from {redact(url)}"
        length = response.headers.get("content-length")
        if length is None or not length.isdigit():
            return None, ""  # there (pip and uv fetch it), of a length not said
        return int(length), ""
    finally:
        response.close()


def probe_all(
    session: HttpSession, urls: Sequence[str], *, base: Path | None = None
) -> list[tuple[int | None, str]]:
    """:func:`_probe` of each of ``urls``, concurrently; a relative path is relative to
    ``base``."""
    from concurrent.futures import ThreadPoolExecutor

    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        return list(pool.map(lambda u: _probe(session, u, base), urls))


def load_sizes(path: Path) -> dict[str, int]:
    """The file sizes remembered by sha256 (empty when there are none or they are
    unreadable: they are only a cache)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and type(v) is int and v >= 0}


def save_sizes(path: Path, sizes: Mapping[str, int]) -> None:
    """Remember ``sizes`` (sha256 -> bytes) with those already there; a failure to write
    is logged, never raised (the lock is right either way)."""
    import logging
    import tempfile

    merged = {**load_sizes(path), **sizes}
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sizes.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(merged, handle, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        logging.getLogger(__name__).info("cannot remember file sizes in %s: %s", path, exc)
