"""The page and metadata caches keep credentials apart (torchup.index.cache, torchup.index.client).

A real server on 127.0.0.1 checks HTTP Basic auth and shows each user a page of their
own, so a page served from the wrong cache entry is visible in its file names, and a
request that should have reached the server is in its log.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from torchup.errors import IndexFetchError
from torchup.index.cache import CachedPage, CredentialIds, PageCache
from torchup.index.client import IndexClient, PageResult

USERS = {"alice": "alice-pw-7Qz9", "bob": "bob-pw-3Kx1"}
WRONG = "not-alices-pw-5Rt"


def _metadata(who: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: demo\nVersion: 1.0+{who}\n".encode()


@dataclass
class AuthServer:
    """``/private/...`` for allowed users only (401 without valid credentials, 403 for a
    known user not allowed); ``/public/...`` for anyone. A page lists one wheel,
    ``demo-1.0+<who>``, ``who`` being the user or ``anon``; its PEP 658 metadata is
    ``<wheel>.metadata``.
    """

    url: str = ""
    allowed: set[str] = field(default_factory=lambda: set(USERS))
    #: (path, user or None, status) of every request
    seen: list[tuple[str, str | None, int]] = field(default_factory=list)

    def users_seen(self, path_part: str) -> list[str | None]:
        return [user for path, user, _ in self.seen if path_part in path]

    def url_as(self, user: str | None, path: str, password: str | None = None) -> str:
        if user is None:
            return f"{self.url}{path}"
        secret = USERS[user] if password is None else password
        return self.url.replace("http://", f"http://{user}:{secret}@") + path


def _handler(server: AuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _user(self) -> str | None:
            """The Basic-auth user, ``None`` for none; ``""`` for a wrong password."""
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user if USERS.get(user) == password else ""

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            user = self._user()
            area, _, rest = self.path.lstrip("/").partition("/")
            status, body, headers = self._answer(area, rest, user)
            server.seen.append((self.path, user, status))
            self._reply(status, body, headers)

        def _answer(
            self, area: str, rest: str, user: str | None
        ) -> tuple[int, bytes, dict[str, str]]:
            if area == "private" and not user:
                return 401, b"login required", {"WWW-Authenticate": 'Basic realm="test"'}
            if area == "private" and user not in server.allowed:
                return 403, b"forbidden", {}
            if area not in ("private", "public"):
                return 404, b"", {}
            who = user or "anon"
            wheel = f"demo-1.0+{who}-py3-none-any.whl"
            if rest == "simple/demo/":
                meta = hashlib.sha256(_metadata(who)).hexdigest()
                href = f"/{area}/files/{wheel.replace('+', '%2B')}#sha256={'0' * 64}"
                link = f'<a href="{href}" data-core-metadata="sha256={meta}">{wheel}</a>'
                page = f"<!DOCTYPE html>\n<html><body>\n{link}\n</body></html>\n"
                headers = {"Content-Type": "text/html", "ETag": f'"{who}"'}
                return 200, page.encode(), {**headers, "Cache-Control": "max-age=600"}
            if rest.replace("%2B", "+") == f"files/{wheel}.metadata":
                return 200, _metadata(who), {"Content-Type": "application/octet-stream"}
            return 404, b"", {}

    return Handler


@pytest.fixture
def server() -> Iterator[AuthServer]:
    state = AuthServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


PAGE = "/private/simple/demo/"


def fetch(cache: Path, url: str, **kw: Any) -> PageResult:
    with IndexClient(cache_dir=cache, **kw) as c:
        [result] = c.fetch_pages([url])
    return result


def versions(result: PageResult) -> list[str]:
    return [f.filename.split("-")[1] for f in result.files]


def error_of(result: PageResult) -> IndexFetchError:
    assert result.error is not None, result
    return result.error


def page_entries(cache: Path) -> list[Path]:
    return sorted((cache / "pages").glob("*")) if (cache / "pages").exists() else []


# -- pages -----------------------------------------------------------------------------


def test_a_page_fetched_as_alice_is_served_to_neither_bob_nor_anonymous(
    server: AuthServer, cache_env: Path
) -> None:
    assert versions(fetch(cache_env, server.url_as("alice", PAGE))) == ["1.0+alice"]
    server.allowed = {"alice"}
    server.seen.clear()

    bob = fetch(cache_env, server.url_as("bob", PAGE))
    anonymous = fetch(cache_env, server.url_as(None, PAGE))

    assert "HTTP 403" in error_of(bob).reason
    assert "HTTP 401" in error_of(anonymous).reason
    assert server.users_seen(PAGE) == ["bob", None]  # both asked the server, which refused
    for who in ("bob", None):
        offline = fetch(cache_env, server.url_as(who, PAGE), offline=True)
        assert "not in the cache" in error_of(offline).reason
    alice = fetch(cache_env, server.url_as("alice", PAGE), offline=True)
    assert alice.from_cache
    assert versions(alice) == ["1.0+alice"]


def test_an_anonymous_page_is_not_served_to_a_credentialed_request(
    server: AuthServer, cache_env: Path
) -> None:
    public = "/public/simple/demo/"
    assert versions(fetch(cache_env, server.url_as(None, public))) == ["1.0+anon"]
    alice = fetch(cache_env, server.url_as("alice", public))
    assert not alice.from_cache
    assert versions(alice) == ["1.0+alice"]
    assert server.users_seen(public) == [None, "alice"]
    # and each is then answered from its own entry
    assert versions(fetch(cache_env, server.url_as(None, public), offline=True)) == ["1.0+anon"]
    alice = fetch(cache_env, server.url_as("alice", public), offline=True)
    assert versions(alice) == ["1.0+alice"]


def test_credentials_remembered_for_the_host_key_the_entry(
    server: AuthServer, cache_env: Path
) -> None:
    """A URL without user-info fetched with the host's remembered credentials is not
    the anonymous entry of that URL (pip config gives the index URL with credentials;
    the page URLs torchup derives have none of their own)."""
    bare = server.url_as(None, PAGE)
    with_alice = fetch(cache_env, bare, credentials=[server.url_as("alice", "/private/")])
    assert versions(with_alice) == ["1.0+alice"]
    server.seen.clear()
    anonymous = fetch(cache_env, bare)
    assert "HTTP 401" in error_of(anonymous).reason
    assert server.users_seen(PAGE) == [None]


def test_two_users_in_one_batch_each_get_their_own_page(
    server: AuthServer, cache_env: Path
) -> None:
    """Both URLs name the same host: the credentials of each are fixed when its cache
    entry is looked up, not when the request goes out after the other was remembered."""
    urls = [server.url_as("alice", PAGE), server.url_as("bob", PAGE)]
    for offline in (False, True):
        with IndexClient(cache_dir=cache_env, offline=offline) as c:
            alice, bob = c.fetch_pages(urls)
        assert (versions(alice), versions(bob)) == (["1.0+alice"], ["1.0+bob"])
        assert alice.from_cache == bob.from_cache == offline
    assert len([p for p in page_entries(cache_env) if p.suffix == ".json"]) == 2


# -- refusals ----------------------------------------------------------------------------


def test_a_refusal_is_never_cached(server: AuthServer, cache_env: Path) -> None:
    wrong = fetch(cache_env, server.url_as("alice", PAGE, password=WRONG))
    assert "HTTP 401" in error_of(wrong).reason
    assert not error_of(wrong).lasting  # other credentials (an installer's own) may get in
    server.allowed = set()
    forbidden = fetch(cache_env, server.url_as("bob", PAGE))
    assert "HTTP 403" in error_of(forbidden).reason
    assert not error_of(forbidden).lasting
    assert page_entries(cache_env) == []

    server.allowed = {"alice"}
    server.seen.clear()
    good = fetch(cache_env, server.url_as("alice", PAGE))
    assert good.ok
    assert not good.from_cache
    assert server.seen == [(PAGE, "alice", 200)]


def test_the_page_cache_refuses_to_store_a_refusal(cache_env: Path) -> None:
    cache = PageCache(cache_env, reparse=lambda *_: ())
    for status in (401, 403):
        page = CachedPage(
            url="https://index.example/simple/demo/",
            status=status,
            content_type="text/plain",
            etag=None,
            last_modified=None,
            fetched_at=0.0,
            max_age=None,
            files=(),
        )
        cache.save(page, b"login required", index=page.url, auth_id="some-id")
        assert cache.load(page.url, auth_id="some-id") is None
    assert not (cache_env / "pages").exists()


def test_credentials_refused_now_are_an_error_online_not_the_old_copy(
    server: AuthServer, cache_env: Path
) -> None:
    url = server.url_as("alice", PAGE)
    assert fetch(cache_env, url).ok
    server.allowed = set()  # alice's access is revoked
    refused = fetch(cache_env, url, max_age=0)  # stale: revalidated
    assert "HTTP 403" in error_of(refused).reason
    assert refused.files == ()
    assert not refused.from_cache
    # --offline never asks, and reads what these same credentials were once shown
    assert versions(fetch(cache_env, url, offline=True)) == ["1.0+alice"]


# -- metadata ----------------------------------------------------------------------------


def test_metadata_fetched_as_alice_is_served_to_neither_bob_nor_anonymous(
    server: AuthServer, cache_env: Path
) -> None:
    alice_root = server.url_as("alice", "/private/")
    with IndexClient(cache_dir=cache_env, credentials=[alice_root]) as c:
        [dist] = c.fetch_page(server.url_as(None, PAGE)).files
        assert c.get_metadata(dist)["Version"] == "1.0+alice"
    server.allowed = {"alice"}
    server.seen.clear()
    metadata = "/private/files/demo-1.0%2Balice-py3-none-any.whl.metadata"

    bob_root = server.url_as("bob", "/")
    with (
        IndexClient(cache_dir=cache_env, credentials=[bob_root]) as c,
        pytest.raises(IndexFetchError, match="HTTP 403"),
    ):
        c.get_metadata(dist)
    with IndexClient(cache_dir=cache_env) as c, pytest.raises(IndexFetchError, match="HTTP 401"):
        c.get_metadata(dist)
    assert server.seen == [(metadata, "bob", 403), (metadata, None, 401)]
    with (
        IndexClient(cache_dir=cache_env, offline=True) as c,
        pytest.raises(IndexFetchError, match="not in the cache"),
    ):
        c.get_metadata(dist)
    with IndexClient(cache_dir=cache_env, offline=True, credentials=[alice_root]) as c:
        assert c.get_metadata(dist)["Version"] == "1.0+alice"


# -- secrets on disk and in messages -------------------------------------------------------


def _everything_under(root: Path) -> bytes:
    data = b""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            raw = path.read_bytes()
            data += path.name.encode() + b"\n" + raw + b"\n"
            if path.suffix == ".gz":
                data += gzip.decompress(raw) + b"\n"
    return data


def test_no_secret_is_written_under_the_cache_dir(server: AuthServer, cache_env: Path) -> None:
    for user in USERS:
        with IndexClient(cache_dir=cache_env) as c:
            [dist] = c.fetch_page(server.url_as(user, PAGE)).files
            c.get_metadata(dist)
    fetch(cache_env, server.url_as("alice", PAGE, password=WRONG))
    stored = _everything_under(cache_env)
    assert (cache_env / "metadata").is_dir()
    assert (cache_env / "credential-salt").is_file()

    for user, password in [*USERS.items(), ("alice", WRONG)]:
        wire = f"{user}:{password}".encode()
        # the secret, as sent on the wire, and as an unsalted hash would name it
        unsalted = hashlib.sha256(wire).hexdigest()[:32].encode()
        assert not [form for form in (password.encode(), base64.b64encode(wire), unsalted)
                    if form in stored]  # fmt: skip
    ids = {json.loads(p.read_bytes())["auth"] for p in (cache_env / "pages").glob("*.json")}
    assert len(ids) == 2
    assert "" not in ids


def test_credential_ids_are_stable_salted_and_private(tmp_path: Path) -> None:
    alice = ("alice", USERS["alice"])
    first = CredentialIds(tmp_path / "a")
    assert first.of(None) == ""
    assert not (tmp_path / "a").exists()  # no credentials, no salt
    assert first.of(alice) == CredentialIds(tmp_path / "a").of(alice)  # across runs
    assert first.of(alice) != first.of(("alice", WRONG))
    assert first.of(alice) != CredentialIds(tmp_path / "b").of(alice)  # another salt
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / "a" / "credential-salt").stat().st_mode) == 0o600


def test_an_unwritable_cache_gets_ids_no_later_run_matches(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "cache"
    not_a_dir.write_bytes(b"")  # no salt can be read or made under it
    alice = ("alice", USERS["alice"])
    first, second = CredentialIds(not_a_dir), CredentialIds(not_a_dir)
    assert first.of(alice) == first.of(alice)
    assert first.of(alice) != second.of(alice)


def test_refused_credentials_are_redacted_in_errors(server: AuthServer, cache_env: Path) -> None:
    result = fetch(cache_env, server.url_as("alice", PAGE, password=WRONG))
    assert result.error is not None
    shown = [str(result.error), result.error.url, json.dumps(result.to_dict()), result.url]
    assert not [text for text in shown if WRONG in text]
    assert "alice:****@" in str(result.error)
    wrong = server.url_as("bob", "/private/files/x.metadata", password=WRONG)
    with IndexClient(cache_dir=cache_env) as c, pytest.raises(IndexFetchError) as caught:
        c.get_bytes(wrong, max_bytes=9)
    assert WRONG not in str(caught.value)
    assert "bob:****@" in str(caught.value)
