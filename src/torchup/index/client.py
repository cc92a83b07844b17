"""Read index pages, find-links locations and wheel metadata: the I/O edge.

:class:`IndexClient` is the facade over the parts that do the work: one ``httpx.Client``
in :class:`~torchup.index.http.HttpSession` (imported on first network use, so a warm
run from the cache never imports httpx), pages read through the on-disk cache of
:mod:`torchup.index.cache` by :class:`~torchup.index.pagereader.PageReader`,
:mod:`torchup.index.findlinks` and :mod:`torchup.index.downloads`. Parsing is
:mod:`torchup.index.pages`; metadata is :mod:`torchup.index.metadata`.

Policy:

- Schemes: ``https://`` and ``file://`` always; ``http://`` only to loopback hosts
  (127.0.0.1, localhost, ::1) or hosts in pip's ``trusted-host``. Redirects are
  followed by hand (at most 5) and each hop is checked the same way.
- Timeouts: connect 5 s, read 15 s; one retry on a failed connect (refused, reset),
  none on a connect timeout or a DNS failure, so an unreachable index fails in seconds.
- Credentials (``https://user:pass@host/...``) are remembered per host and sent only
  to that host (a URL's own user-info wins); every URL stored or shown is
  :func:`~torchup.index.pages.redact`-ed. The cache keeps what each set of credentials was
  shown apart (:class:`~torchup.index.cache.CredentialIds`), and a 401/403 is an error
  for this request only: never cached, never answered from an older copy online.
- Fetch errors are returned per page in :class:`PageResult`, never raised, so a
  planner can fall back and explain. A 404/410 project page means "not on this
  index": an empty result, not an error.
- Cache: fresh entries (age below the server's ``max-age`` and the client's
  ``max_age``) make no request; stale ones are revalidated with ``If-None-Match`` /
  ``If-Modified-Since``; ``offline=True`` serves any age and never touches the
  network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from torchup.index import downloads, findlinks
from torchup.index.cache import (
    BlobCache,
    CredentialIds,
    FileHashCache,
    PageCache,
    UnreachableHosts,
)
from torchup.index.http import (
    LOOPBACK_HOSTS,
    MAX_REDIRECTS,  # noqa: F401 (moved there; still importable here)
    HttpSession,
    check_url,
)
from torchup.index.pagereader import (
    ACCEPT,
    MAX_PAGE_BYTES,  # noqa: F401 (moved there; likewise)
    PageReader,
    PageResult,
    reparse,
)
from torchup.index.pages import DistFile, variant_sort_key

if TYPE_CHECKING:
    import ssl
    from types import TracebackType

    import httpx

    from torchup.index.metadata import CoreMetadata

__all__ = [
    "ACCEPT",
    "LOOPBACK_HOSTS",
    "IndexClient",
    "PageResult",
    "check_url",
]


class IndexClient:
    """Fetches pages, find-links locations and metadata; a context manager.

    ``cache_dir`` defaults to :func:`torchup._paths.cache_dir`; ``max_age`` caps how
    long a cached page is used without revalidation (seconds); ``trusted_hosts`` are
    pip's ``trusted-host`` entries (``host`` or ``host:port``); ``credentials`` are
    URLs whose user-info should be remembered (page URLs passed in are remembered
    too); ``transport`` replaces httpx's network layer (tests); ``verify`` is an
    ``ssl.SSLContext``, ``False``, or a CA bundle path (pip's ``cert``).
    """

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        offline: bool = False,
        max_age: float = 600.0,
        trusted_hosts: Sequence[str] = (),
        credentials: Sequence[str] = (),
        transport: httpx.BaseTransport | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        verify: ssl.SSLContext | bool | str = True,
        max_workers: int = 8,
    ) -> None:
        if cache_dir is None:
            from torchup._paths import cache_dir as default_cache_dir

            cache_dir = default_cache_dir()
        self.cache_dir = cache_dir
        self.pages = PageCache(cache_dir, reparse=reparse)
        self.credential_ids = CredentialIds(cache_dir)
        self.metadata_cache = BlobCache(cache_dir, "metadata")
        self.file_hashes = FileHashCache(cache_dir)
        self._session = HttpSession(
            trusted_hosts=trusted_hosts,
            transport=transport,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            verify=verify,
        )
        self._reader = PageReader(
            self._session,
            self.pages,
            self.credential_ids,
            offline=offline,
            max_age=max_age,
            max_workers=max_workers,
            unreachable=UnreachableHosts(cache_dir),
        )
        for url in credentials:
            self._session.remember(url)

    # -- settings: kept by the part that uses them, so a change here takes effect there --

    @property
    def offline(self) -> bool:
        return self._reader.offline

    @offline.setter
    def offline(self, value: bool) -> None:
        self._reader.offline = value

    @property
    def max_age(self) -> float:
        return self._reader.max_age

    @max_age.setter
    def max_age(self, value: float) -> None:
        self._reader.max_age = value

    @property
    def max_workers(self) -> int:
        return self._reader.max_workers

    @max_workers.setter
    def max_workers(self, value: int) -> None:
        self._reader.max_workers = max(1, value)

    @property
    def trusted_hosts(self) -> tuple[str, ...]:
        return self._session.trusted_hosts

    @trusted_hosts.setter
    def trusted_hosts(self, value: Sequence[str]) -> None:
        self._session.trusted_hosts = tuple(h.lower() for h in value)

    @property
    def connect_timeout(self) -> float:
        return self._session.connect_timeout

    @connect_timeout.setter
    def connect_timeout(self, value: float) -> None:
        self._session.connect_timeout = value

    @property
    def read_timeout(self) -> float:
        return self._session.read_timeout

    @read_timeout.setter
    def read_timeout(self, value: float) -> None:
        self._session.read_timeout = value

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def fresh_until(self) -> float:
        """When the first page read so far goes stale (epoch seconds; ``0.0`` once a
        local source or a failure was read): until then the same reads give the same
        files, from the cache, without a request."""
        return self._reader.fresh_until

    def cache_identity(self, url: str) -> str:
        """The cache's name for the credentials ``url`` is fetched with (``""``: none)."""
        return self.credential_ids.of(self._session.auth_for(url))

    # -- pages -------------------------------------------------------------------------

    def fetch_page(self, url: str) -> PageResult:
        """Read one project page; fetch and parse failures land in :class:`PageResult`."""
        return self._reader.fetch_page(url)

    def fetch_pages(self, urls: Sequence[str]) -> list[PageResult]:
        """Read several pages concurrently; results are in the order of ``urls``."""
        return self._reader.fetch_pages(urls)

    def variants(self, torch_index_url: str, project: str = "torch") -> tuple[str, ...]:
        """The variant directories the PyTorch index offers for ``project``.

        Read from the combined page ``<root>/<project>/`` (cached like any page), whose
        hrefs carry each file's variant directory; never a built-in list. Raises
        :class:`IndexFetchError` when the page cannot be read.
        """
        from torchup.index.sources import project_url

        files = self._reader.files_of(project_url(torch_index_url, project))
        found = {f.variant_dir for f in files if f.variant_dir}
        return tuple(sorted(found, key=variant_sort_key))

    def find_links(self, location: str, *, with_hashes: bool = True) -> tuple[DistFile, ...]:
        """Files offered by a find-links location: a folder, an HTML file, or a page URL.

        Folders are listed (not recursively) and never read whole; with ``with_hashes``
        each file's sha256 is computed once and cached by path, size and mtime.
        Raises :class:`IndexFetchError` when the location is missing or unreadable.
        """
        hashes = self.file_hashes if with_hashes else None
        if urlsplit(location).scheme.lower() not in ("http", "https"):
            self._reader.note(0.0)  # a folder or a file: nothing says when it changes
        return findlinks.find_links(location, read_page=self._reader.files_of, hashes=hashes)

    # -- files and metadata ------------------------------------------------------------

    def get_bytes(self, url: str, *, max_bytes: int) -> bytes | None:
        """A whole (small) file, or ``None`` on 404/410. Raises :class:`IndexFetchError`."""
        return downloads.get_bytes(self._session, url, max_bytes=max_bytes)

    def get_range(self, url: str, start: int | None, length: int) -> tuple[bytes, int]:
        """``(bytes, total file size)`` for ``length`` bytes at ``start`` (``None``: the
        last ``length`` bytes). A server that ignores ``Range`` is cut off at once.
        """
        return downloads.get_range(self._session, url, start, length)

    def download(self, url: str, dest: Path, *, sha256: str) -> Path:
        """Save the file at ``url`` as ``dest``, only if its sha256 is ``sha256``.

        The bytes are hashed as they arrive and written to a temporary name beside
        ``dest``, renamed only when the hash matches, so a partial or tampered file never
        appears under ``dest``. ``file://`` URLs are copied. Raises
        :class:`IndexFetchError` (including on a hash mismatch).
        """
        return downloads.download(self._session, url, dest, sha256=sha256)

    def get_metadata(self, dist: DistFile) -> CoreMetadata:
        """Core metadata of a wheel, without downloading it (see :mod:`torchup.index.metadata`).

        The result reads like an ``email.message.Message``: ``get_all("Requires-Dist")``,
        ``meta["Version"]``.
        """
        from torchup.index.metadata import fetch_metadata

        return fetch_metadata(self, dist)
