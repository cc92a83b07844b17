"""Read project pages through the on-disk cache: fresh entries make no request, stale
ones are revalidated, ``offline`` never touches the network, ``file://`` pages are read
from disk and never cached.

:class:`PageReader` answers what it can without the network first, then fetches the
rest (concurrently for several pages). Fetch errors are returned per page in
:class:`PageResult`, never raised; a 404/410 means "not on this index": no files, no
error. Parsing is :func:`torchup.index.pages.parse_project_page`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from torchup.errors import IndexFetchError
from torchup.index.cache import CachedPage, server_lifetime
from torchup.index.findlinks import list_folder
from torchup.index.http import check_url, netloc, status_error
from torchup.index.pages import DistFile, parse_project_page, redact
from torchup.index.urls import file_url_to_path

if TYPE_CHECKING:
    from torchup.index.cache import CredentialIds, Credentials, PageCache, UnreachableHosts
    from torchup.index.http import HttpSession

__all__ = ["ACCEPT", "MAX_PAGE_BYTES", "PageReader", "PageResult", "file_page", "reparse"]

log = logging.getLogger(__name__)

#: PEP 691 content negotiation: JSON preferred, HTML accepted.
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
MAX_PAGE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class PageResult:
    """What reading one page gave: files, or the error that stopped it.

    ``url`` is redacted. ``from_cache`` is true when the files come from the cache
    (fresh, revalidated with a 304, or offline); ``age_seconds`` is then how long ago
    the page was last confirmed by the server. ``file://`` pages are never cached.
    """

    url: str
    files: tuple[DistFile, ...] = ()
    from_cache: bool = False
    age_seconds: float | None = None
    error: IndexFetchError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "files": len(self.files),
            "from_cache": self.from_cache,
            "age_seconds": self.age_seconds,
            "error": str(self.error) if self.error else None,
        }


class _Pending(NamedTuple):
    """What fetching one page needs once the cache could not answer."""

    cached: CachedPage | None  # to revalidate (If-None-Match / If-Modified-Since)
    auth: Credentials | None  # sent to the page's host
    auth_id: str  # their cache name (CredentialIds.of)


_NOTHING = _Pending(None, None, "")


def reparse(body: bytes, content_type: str, url: str, index: str) -> tuple[DistFile, ...]:
    """How :class:`~torchup.index.cache.PageCache` re-reads a stored body."""
    return parse_project_page(body, content_type, url, index=index)


def _host_key(url: str) -> str:
    """What :class:`~torchup.index.cache.UnreachableHosts` remembers: scheme and host
    (with its port, when the URL names one), never the user-info.

    >>> _host_key("https://user:pw@Host.example:8443/simple/")
    'https://host.example:8443'
    """
    return f"{urlsplit(url).scheme.lower()}://{netloc(url)}"


def file_page(url: str) -> PageResult:
    """A ``file://`` project page: ``<dir>/index.html``, else the directory's files."""
    shown = redact(url)
    path = file_url_to_path(url)
    if path.is_dir():
        index_html = path / "index.html"
        if index_html.is_file():
            base = url if url.endswith("/") else url + "/"
            body = index_html.read_bytes()
            return PageResult(
                url=shown, files=parse_project_page(body, "text/html", base, index=shown)
            )
        return PageResult(url=shown, files=list_folder(path, shown, None))
    if path.is_file():
        files = parse_project_page(path.read_bytes(), "text/html", url, index=shown)
        return PageResult(url=shown, files=files)
    return PageResult(url=shown)  # like a 404: the project is not on this index


class PageReader:
    """Project pages for :class:`~torchup.index.client.IndexClient`, cached in ``pages``
    under the :class:`~torchup.index.cache.CredentialIds` name of the credentials each
    is fetched with; requests go through ``session``.

    :attr:`fresh_until` is when the first of the pages read so far goes stale (epoch
    seconds; ``0.0`` once a local page or a failure was read, which no freshness covers):
    until then, reading them again gives the same files without a request.
    """

    def __init__(
        self,
        session: HttpSession,
        pages: PageCache,
        credential_ids: CredentialIds,
        *,
        offline: bool,
        max_age: float,
        max_workers: int,
        unreachable: UnreachableHosts | None = None,
    ) -> None:
        self.session = session
        self.pages = pages
        self.credential_ids = credential_ids
        self.offline = offline
        self.max_age = max_age
        self.max_workers = max(1, max_workers)
        self.unreachable = unreachable
        self._until: list[float] = []  # appended to by the fetching threads

    @property
    def fresh_until(self) -> float:
        return min(self._until, default=math.inf)

    def note(self, until: float) -> None:
        """A page read here stays what it is until ``until`` (see :attr:`fresh_until`)."""
        self._until.append(until)

    def fetch_page(self, url: str) -> PageResult:
        """Read one project page; fetch and parse failures land in :class:`PageResult`."""
        done, todo = self._without_network(url)
        return done if done is not None else self._fetch_remote(url, todo)

    def files_of(self, url: str) -> tuple[DistFile, ...]:
        """The files of the page at ``url``; raises its :class:`IndexFetchError`."""
        result = self.fetch_page(url)
        if result.error is not None:
            raise result.error
        return result.files

    def fetch_pages(self, urls: Sequence[str]) -> list[PageResult]:
        """Read several pages concurrently; results are in the order of ``urls``."""
        results: dict[str, PageResult] = {}
        pending: dict[str, _Pending] = {}
        for url in dict.fromkeys(urls):
            done, todo = self._without_network(url)
            if done is not None:
                results[url] = done
            else:
                pending[url] = todo
        if len(pending) == 1:
            (url, todo), = pending.items()  # fmt: skip
            results[url] = self._fetch_remote(url, todo)
        elif pending:
            from concurrent.futures import ThreadPoolExecutor

            workers = min(self.max_workers, len(pending))
            with ThreadPoolExecutor(workers, thread_name_prefix="torchup-fetch") as pool:
                futures = {u: pool.submit(self._fetch_remote, u, t) for u, t in pending.items()}
                for url, future in futures.items():
                    results[url] = future.result()
        return [results[url] for url in urls]

    def _without_network(self, url: str) -> tuple[PageResult | None, _Pending]:
        """A result that needs no request (policy error, file://, cache hit, offline),
        else what the request needs: the cached entry to revalidate and the credentials.
        """
        shown = redact(url)
        try:
            check_url(url, self.session.trusted_hosts)
            if urlsplit(url).scheme.lower() == "file":
                self.note(0.0)  # a folder changes with nothing to say so
                return file_page(url), _NOTHING
        except IndexFetchError as exc:
            self.note(0.0)
            return PageResult(url=shown, error=exc), _NOTHING
        self.session.remember(url)
        # Fixed here, not when the request goes out: a later URL of the same batch may
        # remember other credentials for this host, and the entry read must be the one
        # these credentials wrote.
        auth = self.session.auth_for(url)
        auth_id = self.credential_ids.of(auth)
        cached = self.pages.load(shown, auth_id=auth_id)
        now = time.time()
        if cached is not None and (self.offline or cached.is_fresh(self.max_age, now)):
            log.debug("cache hit %s (%.0f s old)", shown, cached.age(now))
            self.note(cached.fresh_until(self.max_age))
            return PageResult(
                url=shown, files=cached.files, from_cache=True, age_seconds=cached.age(now)
            ), _NOTHING
        if self.offline:
            error = IndexFetchError(
                shown,
                "not in the cache (offline)",
                hint="run once without --offline to fill the cache",
                lasting=False,
            )
            self.note(0.0)
            return PageResult(url=shown, error=error), _NOTHING
        failed = self._recently_unreachable(url, shown, now)
        if failed is not None:
            self.note(0.0)
            return PageResult(url=shown, error=failed), _NOTHING
        return None, _Pending(cached, auth, auth_id)

    def _recently_unreachable(self, url: str, shown: str, now: float) -> IndexFetchError | None:
        """The failure of ``url``'s host within :attr:`UnreachableHosts.ttl`, not retried."""
        if self.unreachable is None:
            return None
        seen = self.unreachable.recent(_host_key(url), now)
        if seen is None:
            return None
        ago, reason = seen
        left = max(1, round(self.unreachable.ttl - ago))
        return IndexFetchError(
            shown,
            f"{reason}, {ago:.0f} s ago (asked again in {left} s)",
            hint="check the URL and the network; --offline plans from the cache",
            unreachable=True,
        )

    def _fetch_remote(self, url: str, todo: _Pending) -> PageResult:
        shown = redact(url)
        try:
            return self._download(url, shown, todo)
        except IndexFetchError as exc:
            self.note(0.0)
            log.info("cannot read %s: %s", shown, exc.reason)
            if exc.unreachable and self.unreachable is not None:
                self.unreachable.remember(_host_key(exc.url), exc.reason)
            return PageResult(url=shown, error=exc)

    def _download(self, url: str, shown: str, todo: _Pending) -> PageResult:
        """Fetch (or revalidate) the page and store what the server said."""
        cached = todo.cached
        headers = {"Accept": ACCEPT}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        log.info("fetching %s", shown)
        response, final_url = self.session.send_as(url, headers, todo.auth)
        if self.unreachable is not None:
            self.unreachable.forget(_host_key(url))  # it answered: reachable again
        try:
            status = response.status_code
            lifetime, age = server_lifetime(response.headers)
            fetched_at = time.time() - age
            if status == 304 and cached is not None:
                page = replace(
                    cached,
                    url=shown,
                    etag=response.headers.get("etag") or cached.etag,
                    last_modified=response.headers.get("last-modified") or cached.last_modified,
                    fetched_at=fetched_at,
                    max_age=lifetime,
                )
                self.pages.save(page, None, index=shown, auth_id=todo.auth_id)
                self.note(page.fresh_until(self.max_age))
                return PageResult(url=shown, files=page.files, from_cache=True, age_seconds=age)
            if status in (404, 410):
                body: bytes | None = None
            elif status == 200:
                body = self.session.read(response, final_url, MAX_PAGE_BYTES)
            else:
                # Nothing is stored and the cached copy is not served: a 401/403 means
                # these credentials are refused now (only --offline, which never asks,
                # still reads what they were once shown).
                raise status_error(final_url, response)
        finally:
            response.close()
        content_type = response.headers.get("content-type", "")
        files: tuple[DistFile, ...] = ()
        if body is not None:
            files = parse_project_page(body, content_type, final_url, index=shown)
        page = CachedPage(
            url=shown,
            status=status,
            content_type=content_type,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            fetched_at=fetched_at,
            max_age=lifetime,
            files=files,
        )
        self.pages.save(page, body, index=shown, auth_id=todo.auth_id)
        self.note(page.fresh_until(self.max_age))
        return PageResult(url=shown, files=files)
