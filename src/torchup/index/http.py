"""The HTTP edge of the index client: URL policy, credentials, redirects, retry, errors.

:class:`HttpSession` wraps one ``httpx.Client``, imported on first use so that a warm
run answered from the cache never imports httpx. The policy is the one described in
:mod:`torchup.index.client`: which schemes and hosts may be fetched
(:func:`check_url`), redirects followed by hand and checked hop by hop, one retry on a
failed connect, credentials remembered per host and sent only to that host, and every
URL in an error :func:`~torchup.index.pages.redact`-ed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from torchup import __version__
from torchup.errors import IndexFetchError
from torchup.index.pages import redact

if TYPE_CHECKING:
    import ssl

    import httpx

    from torchup.index.cache import Credentials

__all__ = [
    "LOOPBACK_HOSTS",
    "MAX_REDIRECTS",
    "HttpSession",
    "check_url",
    "describe_transport_error",
    "netloc",
    "split_auth",
    "status_error",
    "transport_error",
]

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REDIRECTS = 5


def check_url(url: str, trusted_hosts: Sequence[str] = ()) -> None:
    """Raise :class:`IndexFetchError` unless torchup may fetch ``url``.

    ``https://`` and ``file://`` always; ``http://`` only to loopback hosts or hosts in
    ``trusted_hosts`` (pip's ``trusted-host``: ``host`` or ``host:port``).

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


def split_auth(url: str) -> tuple[str, Credentials | None]:
    """``(url without user-info, (user, password) or None)``.

    >>> split_auth("https://al%40ice:s3cr%3At@host.example/simple/")
    ('https://host.example/simple/', ('al@ice', 's3cr:t'))
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), (unquote(user), unquote(password))


def netloc(url: str) -> str:
    """The lower-cased ``host[:port]`` of ``url``, without user-info.

    >>> netloc("https://user:pw@Host.Example:8443/simple/")
    'host.example:8443'
    """
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2].lower()


def describe_transport_error(exc: Exception) -> tuple[str, str | None]:
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


def transport_error(url: str, exc: Exception) -> IndexFetchError:
    """The :class:`IndexFetchError` for an httpx transport exception met reading ``url``."""
    import httpx

    reason, hint = describe_transport_error(exc)
    # the failures worth not repeating for a while: a name that does not exist (not a
    # resolver's "temporary failure") and a connect that timed out (seconds each time)
    transient = "temporary failure" in str(exc).lower()
    unreachable = isinstance(exc, httpx.ConnectTimeout) or (
        reason.startswith("DNS lookup failed") and not transient
    )
    return IndexFetchError(redact(url), reason, hint=hint, unreachable=unreachable)


def status_error(url: str, response: httpx.Response) -> IndexFetchError:
    """The :class:`IndexFetchError` for a response whose status the caller cannot use.

    A 401/403 is not lasting (``lasting=False``): these credentials are refused now.
    """
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


class HttpSession:
    """One lazily made ``httpx.Client`` plus the credentials remembered per host.

    ``transport`` replaces httpx's network layer (tests); ``verify`` is an
    ``ssl.SSLContext``, ``False``, or a CA bundle path (pip's ``cert``). Thread-safe:
    pages are fetched from a thread pool.
    """

    def __init__(
        self,
        *,
        trusted_hosts: Sequence[str] = (),
        transport: httpx.BaseTransport | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        verify: ssl.SSLContext | bool | str = True,
    ) -> None:
        self.trusted_hosts = tuple(h.lower() for h in trusted_hosts)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._transport = transport
        self._verify = verify
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._credentials: dict[str, Credentials] = {}

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def client(self) -> httpx.Client:
        """The ``httpx.Client``, made (and httpx imported) on first use."""
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

    # -- credentials -------------------------------------------------------------------

    def remember(self, url: str) -> None:
        """Keep ``url``'s user-info (if any, and not redacted) for its host."""
        _, auth = split_auth(url)
        if auth is not None and "****" not in auth:
            with self._lock:
                self._credentials[netloc(url)] = auth

    def auth_for(self, url: str) -> Credentials | None:
        """The credentials a request for ``url`` is sent with: its own user-info, else
        those remembered for its host (a redacted ``user:****@`` URL has none of its own).
        """
        _, own = split_auth(url)
        if own is not None and "****" not in own:
            return own
        with self._lock:
            return self._credentials.get(netloc(url))

    # -- sending -----------------------------------------------------------------------

    def send(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, str]:
        """GET ``url`` (streamed), following redirects by hand; returns (response, final URL).

        The caller closes the response. Raises :class:`IndexFetchError`.
        """
        return self.send_as(url, headers, self.auth_for(url))

    def send_as(
        self, url: str, headers: dict[str, str], auth: Credentials | None
    ) -> tuple[httpx.Response, str]:
        """:meth:`send` with ``auth`` for ``url``'s host, the one its cache entry is
        keyed by; a redirect to another host gets that host's credentials.
        """
        client = self.client()
        origin = netloc(url)
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(url, self.trusted_hosts)
            clean, _ = split_auth(url)
            hop_auth = auth if netloc(url) == origin else self.auth_for(url)
            request = client.build_request("GET", clean, headers=headers)
            response = self._send_once(client, request, url, hop_auth)
            if response.is_redirect and "location" in response.headers:
                location = response.headers["location"]
                response.close()
                url = urljoin(url, location)
                continue
            return response, url
        raise IndexFetchError(redact(url), f"more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _send_once(
        client: httpx.Client, request: httpx.Request, url: str, auth: Credentials | None
    ) -> httpx.Response:
        """Send one request; retry once on a failed connect (refused, reset), never on
        a connect timeout or a DNS failure, so an unreachable index fails in seconds.
        """
        import httpx

        for attempt in (1, 2):
            try:
                return client.send(request, stream=True, auth=auth)
            except httpx.ConnectTimeout as exc:
                raise transport_error(url, exc) from None
            except httpx.ConnectError as exc:
                reason, _ = describe_transport_error(exc)
                if attempt == 2 or reason.startswith("DNS"):
                    raise transport_error(url, exc) from None
                log.debug("retrying %s after %s", redact(url), exc)
            except httpx.HTTPError as exc:
                raise transport_error(url, exc) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    @staticmethod
    def read(response: httpx.Response, url: str, max_bytes: int) -> bytes:
        """The whole body of ``response``, refused past ``max_bytes``."""
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
            raise transport_error(url, exc) from None
        return b"".join(chunks)
