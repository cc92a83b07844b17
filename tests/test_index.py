"""torchup.index.client / httpcache / metadata against a real local HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexserver import AUTH, IndexServer, make_wheel
from torchup.errors import IndexFetchError
from torchup.index import cache as httpcache
from torchup.index.cache import CACHE_FORMAT, PARSER_VERSION, BlobCache, FileHashCache
from torchup.index.client import IndexClient, PageResult, check_url
from torchup.index.metadata import (
    central_directory_span,
    member_data,
    parse_central_directory,
    parse_metadata,
    pick_metadata_member,
)
from torchup.index.pages import PageParseError, variant_of

DATA = Path(__file__).resolve().parent / "data"
TV_WHEEL = "torchvision-0.20.1-cp311-cp311-manylinux1_x86_64.whl"
TORCH_WHEEL = "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl"


@pytest.fixture
def log(index_server: IndexServer) -> IndexServer:
    index_server.reset_log()
    return index_server


def client(cache: Path, **kw: Any) -> IndexClient:
    return IndexClient(cache_dir=cache, **kw)


def one(c: IndexClient, url: str) -> PageResult:
    [result] = c.fetch_pages([url])
    return result


# -- pages -----------------------------------------------------------------------------


def test_json_page_is_negotiated_and_parsed(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        res = one(c, f"{log.pypi_url}/torch/")
    assert res.ok
    assert not res.from_cache
    assert res.age_seconds is None
    [req] = log.requests
    assert req.headers["accept"].startswith("application/vnd.pypi.simple.v1+json")
    assert req.status == 200
    assert len(res.files) > 100
    assert all(f.size for f in res.files)
    assert res.files[0].url.startswith(f"{log.url}/files/pypi/")


def test_html_page_gives_the_same_files(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        via_json, via_html = c.fetch_pages(
            [f"{log.pypi_url}/torch/", f"{log.url}/bare/simple/torch/"]
        )
    assert via_html.ok
    assert [(f.filename, f.sha256) for f in via_json.files] == [
        (f.filename, f.sha256) for f in via_html.files
    ]


def test_fresh_cache_makes_no_request(log: IndexServer, cache_env: Path) -> None:
    urls = [f"{log.pypi_url}/torch/", f"{log.pypi_url}/torchvision/", f"{log.torch_url}/cpu/torch/"]
    with client(cache_env) as c:
        first = c.fetch_pages(urls)
    assert len(log.requests) == 3
    log.reset_log()
    with client(cache_env) as c:
        second = c.fetch_pages(urls)
    assert log.requests == []
    assert all(r.from_cache and r.age_seconds is not None for r in second)
    assert [r.files for r in second] == [r.files for r in first]


def test_warm_fetch_of_torch_and_torchvision_is_fast(log: IndexServer, cache_env: Path) -> None:
    urls = [f"{log.pypi_url}/torch/", f"{log.pypi_url}/torchvision/"]
    with client(cache_env) as c:
        c.fetch_pages(urls)
    start = time.perf_counter()
    with client(cache_env) as c:
        results = c.fetch_pages(urls)
    elapsed = time.perf_counter() - start
    assert all(r.from_cache for r in results)
    assert elapsed < 0.3, elapsed


def test_stale_page_is_revalidated_with_etag(log: IndexServer, cache_env: Path) -> None:
    url = f"{log.pypi_url}/torchvision/"
    with client(cache_env) as c:
        first = one(c, url)
    log.reset_log()
    with client(cache_env, max_age=0) as c:
        second = one(c, url)
    [req] = log.requests
    assert req.status == 304
    assert req.headers.get("if-none-match")
    assert second.from_cache
    assert second.files == first.files


def test_page_without_validators_uses_the_default_lifetime(
    log: IndexServer, cache_env: Path
) -> None:
    url = f"{log.url}/bare/simple/torchaudio/"
    with client(cache_env) as c:
        one(c, url)
        assert one(c, url).from_cache
    assert len(log.requests) == 1
    with client(cache_env, max_age=0) as c:
        again = one(c, url)
    assert not again.from_cache
    assert len(again.files) > 10
    last = log.requests[-1]
    assert last.status == 200
    assert "if-none-match" not in last.headers


def test_offline_serves_the_cache_with_its_age(log: IndexServer, cache_env: Path) -> None:
    url = f"{log.pypi_url}/torch/"
    with client(cache_env) as c:
        online = one(c, url)
    [entry] = (cache_env / "pages").glob("*.json")
    doc = json.loads(entry.read_text())
    doc["fetched_at"] -= 3600
    entry.write_text(json.dumps(doc))
    log.reset_log()
    with client(cache_env, offline=True) as c:
        offline = one(c, url)
    assert log.requests == []
    assert offline.from_cache
    assert offline.files == online.files
    assert offline.age_seconds is not None
    assert 3590 < offline.age_seconds < 3700


def test_offline_without_cache_is_an_error(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env, offline=True) as c:
        res = one(c, f"{log.pypi_url}/torch/")
    assert log.requests == []
    assert res.error is not None
    assert "not in the cache" in res.error.reason
    assert not res.error.lasting  # online, the page may well be there
    assert res.error.hint
    assert "without --offline" in res.error.hint


def test_corrupt_cache_entry_is_refetched(log: IndexServer, cache_env: Path) -> None:
    url = f"{log.pypi_url}/torchaudio/"
    with client(cache_env) as c:
        good = one(c, url)
    for entry in (cache_env / "pages").glob("*.json"):
        entry.write_bytes(b'{"format": 1, "files": [[')
    with client(cache_env, offline=True) as c:
        assert one(c, url).error is not None
    log.reset_log()
    with client(cache_env) as c:
        again = one(c, url)
    assert len(log.requests) == 1
    assert again.files == good.files
    assert not again.from_cache


def test_old_parser_entry_is_reparsed_from_the_stored_body(
    log: IndexServer, cache_env: Path
) -> None:
    url = f"{log.pypi_url}/torchaudio/"
    with client(cache_env) as c:
        good = one(c, url)
    [entry] = (cache_env / "pages").glob("*.json")
    doc = json.loads(entry.read_text())
    doc["parser"], doc["files"] = PARSER_VERSION + "-old", []
    entry.write_text(json.dumps(doc))
    log.reset_log()
    with client(cache_env) as c:
        again = one(c, url)
    assert log.requests == []
    assert again.files == good.files
    assert json.loads(entry.read_text())["parser"] == PARSER_VERSION


def test_entry_of_an_older_layout_is_refetched(log: IndexServer, cache_env: Path) -> None:
    url = f"{log.pypi_url}/torchaudio/"
    with client(cache_env) as c:
        good = one(c, url)
    [entry] = (cache_env / "pages").glob("*.json")
    doc = json.loads(entry.read_text())
    assert doc["format"] == CACHE_FORMAT
    doc["format"] = 1
    entry.write_text(json.dumps(doc))
    # torchup <= 0.1 named entries by sha256: such files are left alone, never read.
    old = cache_env / "pages" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"
    old.write_text(json.dumps({**doc, "files": []}))
    with client(cache_env) as c:
        again = one(c, url)
    assert not again.from_cache
    assert again.files == good.files
    assert json.loads(entry.read_text())["format"] == CACHE_FORMAT


def test_cache_file_name_collisions_read_as_missing(
    log: IndexServer, cache_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpcache, "_key", lambda text: "same")
    first, second = f"{log.pypi_url}/torchaudio/", f"{log.pypi_url}/torchvision/"
    with client(cache_env) as c:
        one(c, first)
        one(c, second)  # overwrites the first one's entry
    assert [p.name for p in (cache_env / "pages").glob("*.json")] == ["same.json"]
    with client(cache_env, offline=True) as c:
        assert one(c, second).from_cache
        assert "not in the cache" in str(one(c, first).error)

    blobs = BlobCache(cache_env, "metadata")
    blobs.put("url-a\nsha-a", b"Name: a\n")
    blobs.put("url-b\nsha-b", b"Name: b\n")
    assert blobs.get("url-a\nsha-a") is None
    assert blobs.get("url-b\nsha-b") == b"Name: b\n"

    hashes = FileHashCache(cache_env)
    a, b = tmp_path / "a.whl", tmp_path / "b.whl"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    for path in (a, b, a):  # each lookup finds the other file's entry and recomputes
        assert hashes.sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_project_is_empty_not_an_error(log: IndexServer, cache_env: Path) -> None:
    url = f"{log.pypi_url}/no-such-project/"
    with client(cache_env) as c:
        res = one(c, url)
        assert res.ok
        assert res.files == ()
        assert one(c, url).from_cache  # the 404 is cached too
    assert len(log.requests) == 1


def test_results_keep_the_order_of_the_urls(log: IndexServer, cache_env: Path) -> None:
    urls = [f"{log.torch_url}/{v}/torch/" for v in ("xpu", "cpu", "cu126", "rocm6.3", "cu118")]
    urls.append(f"{log.pypi_url}/torch/")
    with client(cache_env) as c:
        results = c.fetch_pages(urls)
    assert [r.url for r in results] == urls
    for url, res in zip(urls[:-1], results, strict=False):
        variant = url.rstrip("/").split("/")[-2]
        assert res.ok
        assert res.files
        assert {f.variant_dir for f in res.files} == {variant}
        assert {f.index for f in res.files} == {url}


def test_variants_are_discovered_from_the_combined_page(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        found = c.variants(log.torch_url)
        assert c.variants(log.torch_url + "/", "torchaudio")
    expected = {v for v in log.variants() if log.torch_index_files("torch", v)}
    assert set(found) == expected
    assert found[0] == "cpu"
    assert found[-1] == "xpu"
    assert [r.path for r in log.requests] == ["/whl/torch/", "/whl/torchaudio/"]
    with client(cache_env) as c, pytest.raises(IndexFetchError, match="HTTP 500"):
        c.variants(f"{log.url}/fault/500")


def test_redirects_are_followed(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        res = one(c, f"{log.url}/redirect/simple/torch")
    assert res.ok
    assert len(res.files) > 100
    assert [r.status for r in log.requests] == [301, 200]


# -- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "error", "fragment"),
    [
        ("/fault/500/simple/torch/", IndexFetchError, "HTTP 500"),
        ("/fault/octet/simple/torch/", PageParseError, "unexpected content type"),
        ("/fault/notindex/simple/torch/", PageParseError, "none to a distribution"),
        ("/fault/truncated/simple/torch/", IndexFetchError, "truncated"),
        ("/fault/cut-html/simple/torch/", PageParseError, "truncated"),
        ("/fault/garbage-json/simple/torch/", PageParseError, "invalid or truncated"),
        ("/fault/shape-json/simple/torch/", PageParseError, "'files' list"),
        ("/fault/v2-json/simple/torch/", PageParseError, "API version 2"),
        ("/auth/simple/torch/", IndexFetchError, "HTTP 401"),
    ],
)  # fmt: skip
def test_fetch_errors_are_returned_with_a_reason(
    log: IndexServer, cache_env: Path, path: str, error: type[Exception], fragment: str
) -> None:
    start = time.monotonic()
    with client(cache_env) as c:
        res = one(c, log.url + path)
    assert time.monotonic() - start < 5
    assert isinstance(res.error, error), res
    assert fragment in res.error.reason
    assert res.files == ()
    assert str(res.error).startswith(f"cannot read {log.url}{path}")
    # refused credentials may be the installer's to supply (netrc, keyring): not lasting
    assert res.error.lasting == (not path.startswith("/auth/"))


def test_server_errors_come_with_a_hint(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        res = one(c, f"{log.url}/fault/500/simple/torch/")
    assert res.error is not None
    assert res.error.hint
    assert "--offline" in res.error.hint


def test_refused_port_fails_fast(cache_env: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    start = time.monotonic()
    with client(cache_env) as c:
        res = one(c, f"http://127.0.0.1:{port}/simple/torch/")
    assert time.monotonic() - start < 3
    assert res.error is not None
    assert "connection refused" in res.error.reason


def test_read_timeout_is_bounded(log: IndexServer, cache_env: Path) -> None:
    start = time.monotonic()
    with client(cache_env, read_timeout=0.5) as c:
        res = one(c, f"{log.url}/fault/slow/simple/torch/")
    assert time.monotonic() - start < 2.5
    assert res.error is not None
    assert "did not answer in time" in res.error.reason


class _DnsFailure(httpx.BaseTransport):
    calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)


def test_dns_failure_is_explained_and_not_retried(cache_env: Path) -> None:
    transport = _DnsFailure()
    with client(cache_env, transport=transport) as c:
        res = one(c, "https://no-such-host.invalid/simple/torch/")
    assert res.error is not None
    assert "DNS lookup failed" in res.error.reason
    assert transport.calls == 1


def _serve_on(port: int, requests: list[str]) -> Any:
    """A real index server on ``port`` listing one torch wheel; ``requests`` logs paths."""
    import http.server
    import threading

    page = f'<a href="/f/{TORCH_WHEEL}#sha256={"ab" * 32}">{TORCH_WHEEL}</a>'.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Answers(httpx.BaseTransport):
    """A host that is up: every page is one torch wheel; ``calls`` counts requests."""

    calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        page = f'<a href="/f/{TORCH_WHEEL}#sha256={"ab" * 32}">{TORCH_WHEEL}</a>'
        return httpx.Response(200, headers={"Content-Type": "text/html"}, text=page)


class _TimesOut(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)


def test_an_unreachable_host_is_not_asked_again_for_a_minute(cache_env: Path) -> None:
    """Each run that reads the PyTorch index from a machine that cannot reach it paid
    the failed connect (a firewall's timeout: seconds) and the HTTP client it needs; the
    failure is now remembered in the cache for a minute, across runs, and said as such."""
    url = "https://idx.example/simple/torch/"
    with client(cache_env, transport=_TimesOut()) as c:
        first = one(c, url)
    assert first.error is not None
    assert first.error.unreachable
    up = _Answers()  # the host answers now, but within the minute:
    with client(cache_env, transport=up) as c:  # a new client, as in the next torchup run
        again = one(c, url)
        other = one(c, "https://idx.example/simple/torchvision/")
        elsewhere = one(c, "https://idx.example:8443/simple/torch/")  # another port
    assert up.calls == 1  # only the other port was asked
    assert again.error is not None
    assert again.error.reason.startswith("the connection timed out, ")
    assert "s ago (asked again in " in again.error.reason
    assert other.error is not None  # the host, not the page, is remembered
    assert elsewhere.error is None
    memory = cache_env / "unreachable-hosts.json"
    doc = json.loads(memory.read_text())
    assert list(doc) == ["https://idx.example"]
    doc["https://idx.example"]["at"] -= httpcache.UNREACHABLE_TTL  # a minute later
    memory.write_text(json.dumps(doc))
    with client(cache_env, transport=up) as c:
        later = one(c, url)
    assert later.error is None
    assert [f.filename for f in later.files] == [TORCH_WHEEL]
    assert up.calls == 2


def test_a_refused_port_or_a_resolver_hiccup_is_not_remembered(cache_env: Path) -> None:
    """A refused connection fails in a millisecond and a "temporary failure in name
    resolution" may pass at once: asked again on the next run (a real server that starts
    listening on the refused port answers it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/simple/torch/"
    with client(cache_env) as c:
        assert one(c, url).error is not None
    requests: list[str] = []
    server = _serve_on(port, requests)
    try:
        with client(cache_env) as c:
            assert one(c, url).error is None
        assert requests == ["/simple/torch/"]
    finally:
        server.shutdown()
        server.server_close()

    class _Hiccup(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    with client(cache_env, transport=_Hiccup()) as c:
        res = one(c, "https://hiccup.example/simple/torch/")
    assert res.error is not None
    assert res.error.reason.startswith("DNS lookup failed")
    assert not res.error.unreachable
    assert not (cache_env / "unreachable-hosts.json").exists()
    memory = httpcache.UnreachableHosts(cache_env)
    memory.remember("https://up.example", "the connection timed out")
    memory.forget("https://up.example")  # what a page read does when the host answers
    assert memory.recent("https://up.example") is None


def test_answers_that_are_not_about_reaching_the_host_are_not_remembered(
    log: IndexServer, cache_env: Path
) -> None:
    with client(cache_env) as c:
        for path in ("/fault/500/simple/torch/", "/auth/simple/torch/"):
            res = one(c, log.url + path)
            assert res.error is not None
            assert not res.error.unreachable
    with client(cache_env, read_timeout=0.3) as c:
        slow = one(c, f"{log.url}/fault/slow/simple/torch/")
    assert slow.error is not None
    assert not slow.error.unreachable  # it answered the connect: a slow page, not a lost host
    assert not (cache_env / "unreachable-hosts.json").exists()
    memory = httpcache.UnreachableHosts(cache_env)
    memory.path.parent.mkdir(parents=True, exist_ok=True)
    memory.path.write_text("not json")  # a damaged file reads as empty
    assert memory.recent("example.invalid") is None
    memory.remember("example.invalid", "DNS lookup failed", now=1000.0)
    assert memory.recent("example.invalid", now=1030.0) == (30.0, "DNS lookup failed")
    assert memory.recent("example.invalid", now=1061.0) is None


def test_a_dns_failure_is_remembered_too(cache_env: Path) -> None:
    transport = _DnsFailure()
    with client(cache_env, transport=transport) as c:
        assert one(c, "https://no-such-host.invalid/simple/torch/").error is not None
        res = one(c, "https://no-such-host.invalid/simple/torchvision/")
    assert transport.calls == 1
    assert res.error is not None
    assert res.error.reason.startswith("DNS lookup failed")


def test_plain_http_to_other_hosts_is_refused(cache_env: Path) -> None:
    with client(cache_env, transport=_DnsFailure()) as c:
        res = one(c, "http://user:secret@pypi.example/simple/torch/")
    assert res.error is not None
    assert "plain http://" in res.error.reason
    assert "secret" not in str(res.error)
    assert "user:****@pypi.example" in str(res.error)
    assert res.error.hint
    assert "trusted-host pypi.example" in res.error.hint
    check_url("http://pypi.example:8080/simple/", ["pypi.example:8080"])
    check_url("http://[::1]:8080/simple/")
    with pytest.raises(IndexFetchError, match="unsupported URL scheme"):
        check_url("ftp://pypi.example/simple/")


def test_redirect_to_plain_http_elsewhere_is_refused(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        res = one(c, f"{log.url}/redirect-out/")
    assert res.error is not None
    assert "plain http://" in res.error.reason
    assert res.error.url == "http://example.invalid/simple/torch/"


def test_credentials_are_used_per_host_and_redacted(log: IndexServer, cache_env: Path) -> None:
    user, password = AUTH
    url = f"http://{user}:{password}@127.0.0.1:{log.url.rsplit(':', 1)[1]}/auth/simple/torchvision/"
    with client(cache_env) as c:
        res = one(c, url)
        assert res.ok
        assert res.url == url.replace(password, "****")
        tv = next(f for f in res.files if f.filename == TV_WHEEL)
        assert f"{user}:****@" in tv.url
        assert password not in tv.url
        assert password not in tv.index
        meta = c.get_metadata(tv)  # credentials re-applied from the page's host
    assert "torch (==2.5.1)" in (meta.get_all("Requires-Dist") or [])
    assert all("authorization" in r.headers for r in log.requests)
    assert password not in (cache_env / "pages").glob("*.json").__next__().read_text()


def test_credentials_never_appear_in_errors(log: IndexServer, cache_env: Path) -> None:
    port = log.url.rsplit(":", 1)[1]
    with client(cache_env) as c:
        res = one(c, f"http://al:pa55word@127.0.0.1:{port}/fault/500/simple/torch/")
    assert res.error is not None
    assert "pa55word" not in str(res.error)
    assert "al:****@" in str(res.error)


# -- metadata --------------------------------------------------------------------------


def test_metadata_from_pep658_file_with_hash_check(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        [page] = c.fetch_pages([f"{log.torch_url}/cpu/torch/"])
        dist = next(
            f for f in page.files if f.filename == "torch-2.6.0+cpu-cp311-cp311-linux_x86_64.whl"
        )
        assert dist.metadata_hashes
        log.reset_log()
        meta = c.get_metadata(dist)
    assert meta["Version"] == "2.6.0+cpu"
    requires = meta.get_all("Requires-Dist") or []
    assert "filelock" in requires
    assert not any(r.startswith("nvidia-") for r in requires)
    [req] = log.requests
    assert req.path.endswith(".whl.metadata")
    assert req.status == 200


def test_pep658_hash_mismatch_is_an_error(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        page = one(c, f"{log.url}/fault/badmeta/simple/torch/")
        dist = next(f for f in page.files if f.filename == TORCH_WHEEL)
        assert dist.metadata_hashes == {"sha256": "0" * 64}
        with pytest.raises(IndexFetchError, match="metadata hash mismatch"):
            c.get_metadata(dist)


def test_metadata_by_range_requests_small_wheel(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        page = one(c, f"{log.pypi_url}/torchvision/")
        dist = next(f for f in page.files if f.filename == TV_WHEEL)
        log.reset_log()
        meta = c.get_metadata(dist)
    assert "torch (==2.5.1)" in (meta.get_all("Requires-Dist") or [])
    assert meta["Requires-Python"] == ">=3.8"
    assert [(r.range, r.status) for r in log.requests] == [("bytes=-65536", 206)]


def test_metadata_by_range_requests_never_downloads_the_wheel(
    log: IndexServer, cache_env: Path
) -> None:
    wheel = log.wheel(TORCH_WHEEL)
    assert len(wheel) > 3 * 65536  # central directory and METADATA lie outside the tail
    with client(cache_env) as c:
        page = one(c, f"{log.pypi_url}/torch/")
        dist = next(f for f in page.files if f.filename == TORCH_WHEEL)
        log.reset_log()
        meta = c.get_metadata(dist)
    expected = parse_metadata(log.metadata(TORCH_WHEEL))
    assert meta.get_all("Requires-Dist") == expected.get_all("Requires-Dist")
    assert any(r.startswith("nvidia-cudnn-cu12") for r in meta.get_all("Requires-Dist") or [])
    assert meta["Version"] == "2.5.1"
    requests = log.requests
    assert len(requests) == 3
    assert all(r.range and r.status == 206 for r in requests)
    assert sum(r.body_bytes for r in requests) < len(wheel) / 2
    # Cached on disk: another client (or an offline one) makes no request.
    log.reset_log()
    with client(cache_env, offline=True) as c:
        assert c.get_metadata(dist)["Name"] == "torch"
    assert log.requests == []


def test_server_ignoring_range_is_cut_off(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        page = one(c, f"{log.url}/fault/norange/simple/torch/")
        dist = next(f for f in page.files if f.filename == TORCH_WHEEL)
        with pytest.raises(IndexFetchError, match="ignores HTTP range requests"):
            c.get_metadata(dist)


@pytest.mark.parametrize("damage", ["truncated", "raw METADATA", "another key", "empty"])
def test_damaged_metadata_entry_is_refetched(
    log: IndexServer, cache_env: Path, damage: str
) -> None:
    with client(cache_env) as c:
        dist = next(
            f for f in one(c, f"{log.pypi_url}/torchvision/").files if f.filename == TV_WHEEL
        )
        requires = c.get_metadata(dist).get_all("Requires-Dist")
    [entry] = (cache_env / "metadata").iterdir()
    raw = entry.read_bytes()
    metadata = log.metadata(TV_WHEEL)
    assert raw.endswith(metadata)
    key = raw[raw.index(b"\n") + 1 : -len(metadata)]
    assert key == f"{dist.url}\n{dist.sha256}".encode()
    entry.write_bytes(
        {
            "truncated": raw[:-1],
            "raw METADATA": metadata,  # what torchup <= 0.1 stored
            "another key": b"%d %d\n%s%s" % (len(key), len(metadata), key[::-1], metadata),
            "empty": b"",
        }[damage]
    )
    with (
        client(cache_env, offline=True) as c,
        pytest.raises(IndexFetchError, match="not in the cache"),
    ):
        c.get_metadata(dist)
    with client(cache_env) as c:
        assert c.get_metadata(dist).get_all("Requires-Dist") == requires
    assert entry.read_bytes() == raw  # fetched again and stored again


_EDGE_METADATA = [
    b"Name: a\nRequires-Dist: x;\n  extra == 'y'\nrequires-dist: z\r\n\r\nBody: no\n",
    b"From someone\nName: a\n:nameless\nX: 1\n\tfolded\nnot a field\nY: 2\n",
    b" continuation first\nName: b\nVersion:1\rSummary:  padded \t\nFrom x\n",
    b"",
    b"\nName: after the blank line\n",
]


@pytest.mark.parametrize(
    "data",
    _EDGE_METADATA + [p.read_bytes() for p in sorted((DATA / "metadata").iterdir())],
)
def test_metadata_parser_reads_like_email(data: bytes) -> None:
    import email.parser
    import email.policy

    expected = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        data, headersonly=True
    )
    meta = parse_metadata(data)
    assert meta.items() == [(k, str(v)) for k, v in expected.items()]
    for name in ("Requires-Dist", "requires-dist", "Name", "Provides-Extra"):
        assert meta.get_all(name) == expected.get_all(name)
        assert meta[name] == expected[name]
        assert (name in meta) == (name in expected)


def test_metadata_values_are_utf8() -> None:
    meta = parse_metadata("Name: démo\nAuthor: Jürgen\n".encode())
    assert meta["author"] == "Jürgen"
    assert meta.get("Summary", "none") == "none"
    assert meta.get_all("Summary", []) == []
    assert list(meta) == ["Name", "Author"]
    assert len(meta) == 2


def test_warm_reads_need_no_hashlib_html_email_or_httpx(log: IndexServer, cache_env: Path) -> None:
    """A warm plan reads pages and metadata from the cache without these imports."""
    urls = [f"{log.torch_url}/cpu/torch/", f"{log.pypi_url}/torchvision/"]
    with client(cache_env) as c:
        _torch, tv = c.fetch_pages(urls)
        dist = next(f for f in tv.files if f.filename == TV_WHEEL)
        c.get_metadata(dist)
    script = """if True:
        import json, sys
        from pathlib import Path
        from torchup.index.client import IndexClient
        from torchup.index.pages import DistFile
        cache, urls, dist = json.loads(sys.argv[1])
        with IndexClient(cache_dir=Path(cache)) as c:
            assert all(r.from_cache for r in c.fetch_pages(urls))
            assert c.get_metadata(DistFile(**dist)).get_all("Requires-Dist")
        heavy = ["hashlib", "_hashlib", "ssl", "html.parser", "email", "httpx", "gzip",
                 "concurrent.futures", "zipfile", "configparser", "urllib.request"]
        print(json.dumps([m for m in heavy if m in sys.modules]))
    """
    fields = {"filename": dist.filename, "url": dist.url, "index": dist.index}
    arg = json.dumps([str(cache_env), urls, {**fields, "hashes": dist.hashes}])
    done = subprocess.run(
        [sys.executable, "-c", script, arg], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []


def test_offline_metadata_not_cached_is_an_error(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        dist = next(
            f for f in one(c, f"{log.pypi_url}/torchaudio/").files if f.filename.endswith(".whl")
        )
    with (
        client(cache_env, offline=True) as c,
        pytest.raises(IndexFetchError, match="not in the cache"),
    ):
        c.get_metadata(dist)


def _zip64(archive: bytes) -> bytes:
    """Rewrite ``archive``'s end record as zip64 (EOCD fields 0xFFFF..., real values in
    a zip64 EOCD record + locator), as writers do for > 65535 entries or > 4 GiB."""
    eocd = archive.rindex(b"PK\x05\x06")
    _sig, _d, _cd, n_disk, n_total, cd_size, cd_offset, _c = struct.unpack_from(
        "<4s4H2LH", archive, eocd
    )
    body = archive[:eocd]
    rec64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n_disk, n_total, cd_size, cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(body), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + rec64 + locator + end


@pytest.mark.parametrize("zip64", [False, True])
@pytest.mark.parametrize("tail", [64, 600, 1 << 20])
def test_central_directory_reader(zip64: bool, tail: int) -> None:
    archive = make_wheel("demo-1.0-py3-none-any.whl", b"Name: demo\n", filler=20)
    if zip64:
        archive = _zip64(archive)
        assert zipfile.ZipFile(io.BytesIO(archive)).namelist()  # still a valid zip
    reads: list[tuple[int, int]] = []

    def read(start: int, length: int) -> bytes:
        reads.append((start, length))
        return archive[start : start + length]

    tail_start = max(0, len(archive) - tail)
    offset, size = central_directory_span(archive[tail_start:], tail_start, read)
    members = parse_central_directory(archive[offset : offset + size])
    names = [m.name for m in members]
    assert names == zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert pick_metadata_member(names, "demo-1.0-py3-none-any.whl") == "demo-1.0.dist-info/METADATA"
    assert bool(reads) == (zip64 and tail < 100)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_damaged_member_fails_its_crc_check(method: int) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nVersion: 1.0\n" * 20)
    archive = buf.getvalue()
    offset, size = central_directory_span(archive, 0, lambda s, n: archive[s : s + n])
    [member] = parse_central_directory(archive[offset : offset + size])

    def read(data: bytes) -> Callable[[int, int], bytes]:
        return lambda start, length: data[start : start + length]

    assert member_data(member, read(archive)).startswith(b"Name: demo")
    damaged = bytearray(archive)
    damaged[30 + len(member.name) + 5] ^= 0x01  # one bit inside the member's data
    with pytest.raises(ValueError, match=r"CRC|inflate"):
        member_data(member, read(bytes(damaged)))


def test_not_a_zip_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="end-of-central-directory"):
        central_directory_span(b"\x00" * 100, 0, lambda s, n: b"")


# -- find-links and file:// indexes ------------------------------------------------------


def test_find_links_folder_lists_and_hashes_once(tmp_path: Path, cache_env: Path) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    names = [
        "torch-2.5.1+cpu-cp311-cp311-linux_x86_64.whl",
        "torchvision-0.20.1-cp311-cp311-linux_x86_64.whl",
    ]
    for name in names:
        (folder / name).write_bytes(
            make_wheel(name, f"Name: {name.split('-')[0]}\nVersion: x\n".encode())
        )
    (folder / "README.txt").write_text("not a distribution")
    (folder / "sub").mkdir()
    with client(cache_env) as c:
        files = c.find_links(str(folder))
        assert [f.filename for f in files] == sorted(names)
        for f in files:
            assert f.sha256 == hashlib.sha256((folder / f.filename).read_bytes()).hexdigest()
            assert f.size == (folder / f.filename).stat().st_size
            assert f.index == str(folder)
        assert files[0].url.endswith("torch-2.5.1%2Bcpu-cp311-cp311-linux_x86_64.whl")
        assert variant_of(files[0]) == "cpu"
        assert c.get_metadata(files[0])["Name"] == "torch"
        # Rewriting a file changes size/mtime: the hash is recomputed, not served stale.
        target = folder / names[1]
        target.write_bytes(target.read_bytes() + b"\0")
        os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
        again = {f.filename: f.sha256 for f in c.find_links(folder.as_uri())}
    assert again[names[1]] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert len(list((cache_env / "filehashes").glob("*.json"))) == 2


def test_find_links_missing_folder_raises(cache_env: Path) -> None:
    with client(cache_env) as c, pytest.raises(IndexFetchError, match="no such file"):
        c.find_links("/nonexistent/wheels")


def test_find_links_html_page(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        files = c.find_links(f"{log.torch_url}/cu126/torch/")
    assert files
    assert all(variant_of(f) == "cu126" for f in files)


@pytest.mark.skipif(not Path("/opt/wheels").is_dir(), reason="no /opt/wheels here")
def test_find_links_of_the_machine_wheels_folder(cache_env: Path) -> None:
    with client(cache_env) as c:
        files = c.find_links("/opt/wheels", with_hashes=False)
        torch = [f for f in files if f.filename.startswith("torch-")]
        if not torch:
            pytest.skip("no torch wheel in /opt/wheels")
        dist = torch[0]
        assert "+" in dist.filename
        assert "%2B" in dist.url
        assert dist.size
        assert dist.size > 10**6
        assert variant_of(dist) == dist.filename.split("-")[1].partition("+")[2]
        meta = c.get_metadata(dist)  # zipfile reads the central directory, not 190 MB
    assert meta["Name"] == "torch"
    assert meta["Version"] == dist.filename.split("-")[1]


def test_file_index_pages(tmp_path: Path, cache_env: Path) -> None:
    simple = tmp_path / "simple"
    (simple / "torch").mkdir(parents=True)
    (simple / "torch" / "index.html").write_text(
        '<a href="../../files/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=30">t</a>'
    )
    (simple / "listed").mkdir()
    (simple / "listed" / "listed-1.0-py3-none-any.whl").write_bytes(b"PK")
    base = simple.as_uri()
    with client(cache_env) as c:
        torch, listed, missing = c.fetch_pages(
            [f"{base}/torch/", f"{base}/listed/", f"{base}/nope/"]
        )
    [f] = torch.files
    assert f.url == (tmp_path / "files" / f.filename).as_uri()
    assert f.sha256 == "30"
    assert [x.filename for x in listed.files] == ["listed-1.0-py3-none-any.whl"]
    assert missing.ok
    assert missing.files == ()
    assert not (cache_env / "pages").exists()  # local pages are not cached


@pytest.mark.skipif(not Path("/opt/pypi-more/simple/torch").is_dir(), reason="no local index here")
def test_machine_file_index(cache_env: Path) -> None:
    with client(cache_env) as c:
        res = one(c, "file:///opt/pypi-more/simple/torch/")
    assert res.ok
    assert res.files
    assert all(f.url.startswith("file:///opt/pypi-more/files/") for f in res.files)


# -- live PyPI (opt-in) ----------------------------------------------------------------------


@pytest.mark.network
def test_live_pypi_page_and_range_metadata(cache_env: Path) -> None:
    with client(cache_env) as c:
        page = one(c, "https://pypi.org/simple/torchvision/")
        assert page.ok, page.error
        dist = next(f for f in page.files if f.filename == TV_WHEEL)
        meta = c.get_metadata(dist)
    assert meta["Name"] == "torchvision"
    assert "torch (==2.5.1)" in (meta.get_all("Requires-Dist") or [])


def test_cache_dir_layout_is_documented(log: IndexServer, cache_env: Path) -> None:
    with client(cache_env) as c:
        one(c, f"{log.pypi_url}/torch/")
    assert {p.suffix for p in (cache_env / "pages").iterdir()} == {".json", ".gz"}
    shutil.rmtree(cache_env)
