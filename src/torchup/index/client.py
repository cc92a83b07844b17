"""Read index pages, find-links locations and wheel metadata: the I/O edge.

:class:`IndexClient` wraps one ``httpx.Client`` (imported on first network use, so a
warm run from the cache never imports httpx) and the on-disk cache of
:mod:`torchup.index.cache`. Parsing is :mod:`torchup.index.pages`; metadata is
:mod:`torchup.index.metadata`.

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

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from torchup import __version__
from torchup.errors import IndexFetchError
from torchup.index.cache import (
    BlobCache,
    CachedPage,
    CredentialIds,
    Credentials,
    FileHashCache,
    PageCache,
    server_lifetime,
)
from torchup.index.pages import (
    DIST_EXTENSIONS,
    DistFile,
    parse_project_page,
    redact,
    variant_sort_key,
)
from torchup.index.urls import file_url_to_path

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

log = logging.getLogger(__name__)

#: PEP 691 content negotiation: JSON preferred, HTML accepted.
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_PAGE_BYTES = 128 * 1024 * 1024
MAX_REDIRECTS = 5


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


def check_url(url: str, trusted_hosts: Sequence[str] = ()) -> None:
    """Raise :class:`IndexFetchError` unless torchup may fetch ``url`` (module docstring).

    >>> check_url("https://index.example/simple/torch/")
    >>> check_url("http://127.0.0.1:8080/simple/")
    >>> check_url("http://mirror.example/simple/", ["mirror.example"])
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:  # bad IPv6 brackets, a port that is not a number...
        raise IndexFetchError(
            redact(url), f"not a valid URL ({exc})", hint="check the index URL's spelling"
        ) from None
    if scheme in ("https", "file"):
        return
    if scheme == "http":
        hostport = f"{host}:{port}" if port else host
        if host in LOOPBACK_HOSTS or host in trusted_hosts or hostport in trusted_hosts:
            return
        raise IndexFetchError(
            redact(url),
            "plain http:// to a non-local host is refused (packages and credentials "
            "would travel unencrypted and could be tampered with)",
            hint=f"use https://, or trust the host explicitly: "
            f"pip config set global.trusted-host {host}",
        )
    raise IndexFetchError(
        redact(url), f"unsupported URL scheme {scheme!r}", hint="use an https:// or file:// URL"
    )


def _split_auth(url: str) -> tuple[str, Credentials | None]:
    """``(url without user-info, (user, password) or None)``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), (unquote(user), unquote(password))


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2].lower()


def _describe_transport_error(exc: Exception) -> tuple[str, str | None]:
    """(reason, hint) for an httpx transport exception."""
    import httpx

    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "the connection timed out", "check the network, a proxy (HTTPS_PROXY) or a firewall"
    if isinstance(exc, httpx.TimeoutException):
        return "the server did not answer in time (read timeout)", "retry later, or use --offline"
    if isinstance(exc, httpx.ConnectError):
        if any(s in low for s in ("name or service not known", "nodename nor servname",
                                  "getaddrinfo failed", "temporary failure in name resolution",
                                  "no address associated", "name resolution")):  # fmt: skip
            return "DNS lookup failed (the host name does not resolve)", (
                "check the URL's spelling and the network/DNS; --offline plans from the cache"
            )
        if "refused" in low:
            return "connection refused (nothing is listening there)", "check the URL and its port"
        if "certificate" in low or "ssl" in low:
            return f"TLS verification failed ({text})", (
                "set pip's cert (pip config set global.cert /path/ca.pem) or SSL_CERT_FILE"
            )
        return f"cannot connect ({text})", None
    if isinstance(exc, httpx.RemoteProtocolError):
        return (
            f"the server broke off the response (truncated: {text})",
            "retry; if it persists, the index or a proxy is cutting responses short",
        )
    return f"{type(exc).__name__}: {text}", None


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
        self.offline = offline
        self.max_age = max_age
        self.trusted_hosts = tuple(h.lower() for h in trusted_hosts)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_workers = max(1, max_workers)
        self.pages = PageCache(cache_dir, reparse=self._reparse)
        self.credential_ids = CredentialIds(cache_dir)
        self.metadata_cache = BlobCache(cache_dir, "metadata")
        self.file_hashes = FileHashCache(cache_dir)
        self._transport = transport
        self._verify = verify
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._credentials: dict[str, Credentials] = {}
        for url in credentials:
            self._remember(url)

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
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                verify = self._verify
                if isinstance(verify, str):
                    import ssl

                    verify = ssl.create_default_context(cafile=verify)
                self._client = httpx.Client(
                    transport=self._transport,
                    verify=verify,
                    timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
                    headers={"User-Agent": f"torchup/{__version__}"},
                    follow_redirects=False,
                    trust_env=True,
                )
            return self._client

    # -- credentials and sending ---------------------------------------------------------

    def _remember(self, url: str) -> None:
        _, auth = _split_auth(url)
        if auth is not None and "****" not in auth:
            with self._lock:
                self._credentials[_netloc(url)] = auth

    def _auth_for(self, url: str) -> Credentials | None:
        """The credentials a request for ``url`` is sent with: its own user-info, else
        those remembered for its host (a redacted ``user:****@`` URL has none of its own).
        """
        _, own = _split_auth(url)
        if own is not None and "****" not in own:
            return own
        with self._lock:
            return self._credentials.get(_netloc(url))

    def cache_identity(self, url: str) -> str:
        """The cache's name for the credentials ``url`` is fetched with (``""``: none)."""
        return self.credential_ids.of(self._auth_for(url))

    def _send(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, str]:
        """GET ``url`` (streamed), following redirects by hand; returns (response, final URL).

        The caller closes the response. Raises :class:`IndexFetchError`.
        """
        return self._send_as(url, headers, self._auth_for(url))

    def _send_as(
        self, url: str, headers: dict[str, str], auth: Credentials | None
    ) -> tuple[httpx.Response, str]:
        """:meth:`_send` with ``auth`` for ``url``'s host, the one its cache entry is
        keyed by; a redirect to another host gets that host's credentials.
        """
        import httpx

        client = self._http()
        origin = _netloc(url)
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(url, self.trusted_hosts)
            clean, _ = _split_auth(url)
            hop_auth = auth if _netloc(url) == origin else self._auth_for(url)
            request = client.build_request("GET", clean, headers=headers)
            for attempt in (1, 2):
                try:
                    response = client.send(request, stream=True, auth=hop_auth)
                    break
                except httpx.ConnectTimeout as exc:
                    reason, hint = _describe_transport_error(exc)
                    raise IndexFetchError(redact(url), reason, hint=hint) from None
                except httpx.ConnectError as exc:
                    reason, hint = _describe_transport_error(exc)
                    if attempt == 2 or reason.startswith("DNS"):
                        raise IndexFetchError(redact(url), reason, hint=hint) from None
                    log.debug("retrying %s after %s", redact(url), exc)
                except httpx.HTTPError as exc:
                    reason, hint = _describe_transport_error(exc)
                    raise IndexFetchError(redact(url), reason, hint=hint) from None
            if response.is_redirect and "location" in response.headers:
                location = response.headers["location"]
                response.close()
                url = urljoin(url, location)
                continue
            return response, url
        raise IndexFetchError(redact(url), f"more than {MAX_REDIRECTS} redirects")

    def _read(self, response: httpx.Response, url: str, max_bytes: int) -> bytes:
        import httpx

        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise IndexFetchError(redact(url), f"the response exceeds {max_bytes} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            reason, hint = _describe_transport_error(exc)
            raise IndexFetchError(redact(url), reason, hint=hint) from None
        return b"".join(chunks)

    @staticmethod
    def _status_error(url: str, response: httpx.Response) -> IndexFetchError:
        status = response.status_code
        what = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status in (401, 403):
            return IndexFetchError(
                redact(url),
                f"{what}: the index refused access",
                hint="a private index needs credentials in its URL (https://user:token@host/...)",
                lasting=False,
            )
        if status >= 500:
            return IndexFetchError(
                redact(url),
                f"{what}: the index has a server error",
                hint="retry later; --offline plans from the cache",
            )
        return IndexFetchError(redact(url), f"unexpected {what}")

    # -- pages ----------------------------------------------------------------------------

    @staticmethod
    def _reparse(body: bytes, content_type: str, url: str, index: str) -> tuple[DistFile, ...]:
        return parse_project_page(body, content_type, url, index=index)

    def fetch_page(self, url: str) -> PageResult:
        """Read one project page; fetch and parse failures land in :class:`PageResult`."""
        done, todo = self._without_network(url)
        return done if done is not None else self._fetch_remote(url, todo)

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
        nothing = _Pending(None, None, "")
        try:
            check_url(url, self.trusted_hosts)
            if urlsplit(url).scheme.lower() == "file":
                return self._file_page(url), nothing
        except IndexFetchError as exc:
            return PageResult(url=shown, error=exc), nothing
        self._remember(url)
        # Fixed here, not when the request goes out: a later URL of the same batch may
        # remember other credentials for this host, and the entry read must be the one
        # these credentials wrote.
        auth = self._auth_for(url)
        auth_id = self.credential_ids.of(auth)
        cached = self.pages.load(shown, auth_id=auth_id)
        now = time.time()
        if cached is not None and (self.offline or cached.is_fresh(self.max_age, now)):
            log.debug("cache hit %s (%.0f s old)", shown, cached.age(now))
            return PageResult(
                url=shown, files=cached.files, from_cache=True, age_seconds=cached.age(now)
            ), nothing
        if self.offline:
            error = IndexFetchError(
                shown,
                "not in the cache (offline)",
                hint="run once without --offline to fill the cache",
                lasting=False,
            )
            return PageResult(url=shown, error=error), nothing
        return None, _Pending(cached, auth, auth_id)

    def _fetch_remote(self, url: str, todo: _Pending) -> PageResult:
        shown = redact(url)
        try:
            return self._download(url, shown, todo)
        except IndexFetchError as exc:
            log.info("cannot read %s: %s", shown, exc.reason)
            return PageResult(url=shown, error=exc)

    def _download(self, url: str, shown: str, todo: _Pending) -> PageResult:
        cached = todo.cached
        headers = {"Accept": ACCEPT}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        log.info("fetching %s", shown)
        response, final_url = self._send_as(url, headers, todo.auth)
        try:
            status = response.status_code
            lifetime, age = server_lifetime(response.headers)
            fetched_at = time.time() - age
            if status == 304 and cached is not None:
                page = CachedPage(
                    url=shown,
                    status=cached.status,
                    content_type=cached.content_type,
                    etag=response.headers.get("etag") or cached.etag,
                    last_modified=response.headers.get("last-modified") or cached.last_modified,
                    fetched_at=fetched_at,
                    max_age=lifetime,
                    files=cached.files,
                )
                self.pages.save(page, None, index=shown, auth_id=todo.auth_id)
                return PageResult(url=shown, files=page.files, from_cache=True, age_seconds=age)
            if status in (404, 410):
                body: bytes | None = None
                files: tuple[DistFile, ...] = ()
            elif status == 200:
                body = self._read(response, final_url, MAX_PAGE_BYTES)
            else:
                # Nothing is stored and the cached copy is not served: a 401/403 means
                # these credentials are refused now (only --offline, which never asks,
                # still reads what they were once shown).
                raise self._status_error(final_url, response)
        finally:
            response.close()
        content_type = response.headers.get("content-type", "")
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
        return PageResult(url=shown, files=files)

    def _file_page(self, url: str) -> PageResult:
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
            return PageResult(url=shown, files=self._folder(path, shown, with_hashes=False))
        if path.is_file():
            files = parse_project_page(path.read_bytes(), "text/html", url, index=shown)
            return PageResult(url=shown, files=files)
        return PageResult(url=shown)  # like a 404: the project is not on this index

    def variants(self, torch_index_url: str, project: str = "torch") -> tuple[str, ...]:
        """The variant directories the PyTorch index offers for ``project``.

        Read from the combined page ``<root>/<project>/`` (cached like any page), whose
        hrefs carry each file's variant directory; never a built-in list. Raises
        :class:`IndexFetchError` when the page cannot be read.
        """
        from torchup.index.sources import project_url

        result = self.fetch_page(project_url(torch_index_url, project))
        if result.error is not None:
            raise result.error
        found = {f.variant_dir for f in result.files if f.variant_dir}
        return tuple(sorted(found, key=variant_sort_key))

    # -- find-links -------------------------------------------------------------------------

    def find_links(self, location: str, *, with_hashes: bool = True) -> tuple[DistFile, ...]:
        """Files offered by a find-links location: a folder, an HTML file, or a page URL.

        Folders are listed (not recursively) and never read whole; with ``with_hashes``
        each file's sha256 is computed once and cached by path, size and mtime.
        Raises :class:`IndexFetchError` when the location is missing or unreadable.
        """
        scheme = urlsplit(location).scheme.lower()
        if scheme in ("http", "https"):
            result = self.fetch_page(location)
            if result.error is not None:
                raise result.error
            return result.files
        path = file_url_to_path(location) if scheme == "file" else Path(location).expanduser()
        shown = redact(location)
        if path.is_dir():
            return self._folder(path, shown, with_hashes=with_hashes)
        if path.is_file():
            body = path.read_bytes()
            return parse_project_page(body, "text/html", path.resolve().as_uri(), index=shown)
        raise IndexFetchError(
            shown,
            "no such file or directory",
            hint="fix or remove this find-links entry (pip config list; PIP_FIND_LINKS)",
        )

    def _folder(self, path: Path, shown: str, *, with_hashes: bool) -> tuple[DistFile, ...]:
        files: list[DistFile] = []
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            raise IndexFetchError(shown, f"cannot list the folder: {exc}") from None
        for entry in entries:
            if not entry.name.lower().endswith(DIST_EXTENSIONS) or not entry.is_file():
                continue
            file_path = Path(entry.path).resolve()
            hashes = {"sha256": self.file_hashes.sha256(file_path)} if with_hashes else {}
            files.append(
                DistFile(
                    filename=entry.name,
                    url=file_path.as_uri(),
                    index=shown,
                    hashes=hashes,
                    size=entry.stat().st_size,
                )
            )
        return tuple(files)

    # -- files and metadata ----------------------------------------------------------------

    def get_bytes(self, url: str, *, max_bytes: int) -> bytes | None:
        """A whole (small) file, or ``None`` on 404/410. Raises :class:`IndexFetchError`."""
        response, final_url = self._send(url, {})
        try:
            if response.status_code in (404, 410):
                return None
            if response.status_code != 200:
                raise self._status_error(final_url, response)
            return self._read(response, final_url, max_bytes)
        finally:
            response.close()

    def get_range(self, url: str, start: int | None, length: int) -> tuple[bytes, int]:
        """``(bytes, total file size)`` for ``length`` bytes at ``start`` (``None``: the
        last ``length`` bytes). A server that ignores ``Range`` is cut off at once.
        """
        spec = f"bytes=-{length}" if start is None else f"bytes={start}-{start + length - 1}"
        response, final_url = self._send(url, {"Range": spec, "Accept-Encoding": "identity"})
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
                raise self._status_error(final_url, response)
            total = _content_range_total(response.headers.get("content-range", ""))
            data = self._read(response, final_url, length)
        finally:
            response.close()
        if total is None:
            raise IndexFetchError(redact(url), "a range response without a usable Content-Range")
        return data, total

    def download(self, url: str, dest: Path, *, sha256: str) -> Path:
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
                    with file_url_to_path(url).open("rb") as src:
                        while chunk := src.read(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
                else:
                    self._download_to(url, out, digest)
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

    def _download_to(self, url: str, out: Any, digest: Any) -> None:
        import httpx

        response, final_url = self._send(url, {"Accept-Encoding": "identity"})
        try:
            if response.status_code != 200:
                raise self._status_error(final_url, response)
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        except httpx.HTTPError as exc:
            reason, hint = _describe_transport_error(exc)
            raise IndexFetchError(redact(url), reason, hint=hint) from None
        finally:
            response.close()

    def get_metadata(self, dist: DistFile) -> CoreMetadata:
        """Core metadata of a wheel, without downloading it (see :mod:`torchup.index.metadata`).

        The result reads like an ``email.message.Message``: ``get_all("Requires-Dist")``,
        ``meta["Version"]``.
        """
        from torchup.index.metadata import fetch_metadata

        return fetch_metadata(self, dist)


class _Pending(NamedTuple):
    """What fetching one page needs once the cache could not answer."""

    cached: CachedPage | None  # to revalidate (If-None-Match / If-Modified-Since)
    auth: Credentials | None  # sent to the page's host
    auth_id: str  # their cache name (CredentialIds.of)


def _content_range_total(value: str) -> int | None:
    """``bytes 100-199/2000`` -> 2000."""
    _, _, total = value.rpartition("/")
    return int(total) if total.strip().isdigit() else None
