"""A real threaded HTTP index server on 127.0.0.1 for torchup's tests.

Routes (``<p>`` a project, ``<f>`` a wheel file name, ``<v>`` a variant directory):

- ``/pypi/simple/<p>/``: the captured PyPI page (tests/data/pypi), PEP 691 JSON or HTML
  by the ``Accept`` header as PyPI negotiates, with ``ETag``/``Cache-Control: max-age=600``
  like PyPI; file URLs point at ``/files/pypi/<f>``.
- ``/bare/simple/<p>/``: the same HTML with no validators and no cache headers (like
  the PyPI mirror reachable from the build machine).
- ``/whl/``, ``/whl/<v>/``, ``/whl/<p>/``, ``/whl/<v>/<p>/``: the PyTorch-layout index from
  tests/data/torchindex.json.gz, rendered the way test-infra's ``manage_v2.py`` does
  (torch and torchaudio hrefs absolute on ``localhost`` = "another host", torchvision
  hrefs relative; ``#sha256=`` of the served wheels; PEP 658 attributes on torch >= 2.6).
- ``/files/pypi/<f>``, ``/whl/<v>/<f>``: small generated wheels (valid zips with real
  METADATA from tests/data/metadata where captured), with Range support (206), and
  ``<f>.metadata`` (PEP 658) files.
- ``/fault/...``: error cases (see :meth:`_Handler._fault`); ``/auth/...``: the PyPI
  pages and files behind HTTP Basic ``user:s3cret``; ``/redirect/...`` and
  ``/redirect-out/``: redirects inside and to a non-local http host.

Every request is logged (:attr:`IndexServer.requests`) so tests can assert what was
(not) fetched: "no full GET of a wheel", "the second run made no request".
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

DATA = Path(__file__).resolve().parent / "data"
PROJECTS = ("torch", "torchvision", "torchaudio")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
AUTH = ("user", "s3cret")
#: Projects whose hrefs on the PyTorch index are absolute on another host.
ABSOLUTE_HREF_PROJECTS = frozenset({"torch", "torchaudio"})
_FILES_HOST = re.compile(r"https://files\.pythonhosted\.org/packages/[^\"#]*/([^/\"#]+)")
_NON_CUDA_DEPS = re.compile(r"^Requires-Dist: (nvidia-|cuda-|triton\b).*\n", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the server saw it (header names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int
    body_bytes: int

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


# -- generated wheels -----------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def make_wheel(
    filename: str,
    metadata: bytes,
    *,
    filler: int = 0,
    blob: int = 0,
    files: dict[str, bytes] | None = None,
) -> bytes:
    """A small valid wheel: package files, then dist-info METADATA, WHEEL, RECORD.

    ``filler`` extra tiny modules make the central directory and RECORD larger than
    the 64 KiB tail a range reader fetches first, and ``blob`` bytes of incompressible
    "library" come first, as in a real torch wheel. ``files`` replaces the generated
    package with these members (name -> bytes).
    """
    _name, _version, _build, tags = parse_wheel_filename(filename)
    dist, ver = filename.split("-")[:2]
    info = f"{dist}-{ver}.dist-info"
    pkg = dist.lower()
    members: list[tuple[str, bytes]] = list((files or {}).items())
    if not files:
        if blob:
            members.append((f"{pkg}/lib/libstub.so", random.Random(filename).randbytes(blob)))
        members.append((f"{pkg}/__init__.py", f'__version__ = "{ver}"\n'.encode()))
        members += [(f"{pkg}/_gen/m{i:04d}.py", f"VALUE = {i}\n".encode()) for i in range(filler)]
    wheel = "Wheel-Version: 1.0\nGenerator: torchup-tests (1.0)\nRoot-Is-Purelib: false\n"
    wheel += "".join(f"Tag: {t}\n" for t in sorted(str(t) for t in tags))
    members += [(f"{info}/METADATA", metadata), (f"{info}/WHEEL", wheel.encode())]
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in members)
    members.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return buf.getvalue()


def _companion_pins() -> dict[tuple[str, str], str]:
    """(project, version) -> torch version, from the generated index's spec."""
    spec = json.loads(gzip.decompress((DATA / "torchindex.json.gz").read_bytes()))
    pins = {}
    for torch_version, row in spec["_meta"]["torch_versions"].items():
        for project in ("torchvision", "torchaudio"):
            pins[(project, row[project])] = torch_version
    return pins


def wheel_metadata(filename: str, variant: str | None) -> bytes:
    """METADATA for a generated wheel: the captured real one for its public version
    (Version set to the file's own, CUDA dependencies dropped from non-CUDA torch
    builds), else a minimal real-shaped one."""
    name, version, _build, _tags = parse_wheel_filename(filename)
    captured = DATA / "metadata" / f"{name}-{version.public}.METADATA"
    if captured.is_file():
        text = captured.read_text()
    else:
        text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        pin = _companion_pins().get((str(name), version.public))
        if pin is not None:
            text += f"Requires-Dist: torch=={pin}\n"
    text = re.sub(r"^Version: .*$", f"Version: {version}", text, count=1, flags=re.MULTILINE)
    if name == "torch" and variant is not None and not variant.startswith("cu"):
        text = _NON_CUDA_DEPS.sub("", text)
        if variant.startswith("rocm"):
            text += 'Requires-Dist: pytorch-triton-rocm; platform_system == "Linux"\n'
        elif variant == "xpu":
            text += 'Requires-Dist: pytorch-triton-xpu; platform_system == "Linux"\n'
    return text.encode()


# -- the server -----------------------------------------------------------------------


@dataclass
class _State:
    base: str
    other_host: str
    pypi_html: dict[str, bytes] = field(default_factory=dict)
    pypi_json: dict[str, bytes] = field(default_factory=dict)
    torch_files: list[tuple[str, str, str]] = field(default_factory=list)  # (project, v, f)
    wheels: dict[tuple[str, str | None], bytes] = field(default_factory=dict)
    pages: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's 5 drops concurrent clients' SYNs (1 s retry)
    daemon_threads = True
    block_on_close = False
    owner: IndexServer


class IndexServer:
    """Start with :meth:`start`; ``url``, ``pypi_url``, ``torch_url``, ``requests``."""

    def __init__(self, httpd: _HTTPServer, state: _State) -> None:
        self._httpd = httpd
        self._state = state
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self.slow_delay = 3.0
        self._stall = threading.Event()  # set: wheels stop after their first KiB
        self._go_on = threading.Event()
        port = httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self.other_host_url = f"http://localhost:{port}"
        self.pypi_url = f"{self.url}/pypi/simple"
        self.torch_url = f"{self.url}/whl"
        self._thread = threading.Thread(target=httpd.serve_forever, daemon=True)

    @classmethod
    def start(cls, *, exclude: Callable[[str, str, str], bool] | None = None) -> IndexServer:
        """Start serving; ``exclude(project, variant, filename)`` drops PyTorch-index files
        (an index where a companion is missing from one variant, say)."""
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        port = httpd.server_address[1]
        state = _State(base=f"http://127.0.0.1:{port}", other_host=f"http://localhost:{port}")
        for project in PROJECTS:
            html = gzip.decompress((DATA / "pypi" / f"{project}.simple.html.gz").read_bytes())
            doc = gzip.decompress((DATA / "pypi" / f"{project}.v1.json.gz").read_bytes())
            repl = rf"{state.base}/files/pypi/\1"
            state.pypi_html[project] = _FILES_HOST.sub(repl, html.decode()).encode()
            state.pypi_json[project] = _FILES_HOST.sub(repl, doc.decode()).encode()
        spec = json.loads(gzip.decompress((DATA / "torchindex.json.gz").read_bytes()))
        state.torch_files = [
            (e["project"], e["variant"], e["filename"])
            for e in spec["files"]
            if exclude is None or not exclude(e["project"], e["variant"], e["filename"])
        ]
        server = cls(httpd, state)
        httpd.owner = server
        server._thread.start()
        return server

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def stall_wheels(self) -> None:
        """From now on every whole-wheel download sends its headers and first KiB, then
        waits (up to a minute) for :meth:`resume_wheels`: an installer caught mid-download."""
        self._go_on.clear()
        self._stall.set()

    def resume_wheels(self) -> None:
        self._stall.clear()
        self._go_on.set()

    # -- log ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._log_lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self._log.append(entry)

    # -- content --------------------------------------------------------------------------

    def variants(self) -> list[str]:
        return sorted({v for _p, v, _f in self._state.torch_files})

    def torch_index_files(self, project: str, variant: str | None = None) -> list[str]:
        return sorted(
            f for p, v, f in self._state.torch_files if p == project and variant in (None, v)
        )

    def wheel(self, filename: str, variant: str | None = None) -> bytes:
        """The bytes served for ``filename`` (memoized; generated deterministically)."""
        key = (filename, variant)
        with self._state.lock:
            data = self._state.wheels.get(key)
        if data is None:
            big = (
                filename.startswith("torch-") and "cp311-cp311" in filename and "x86_64" in filename
            )
            label = parse_wheel_filename(filename)[1].local or variant
            meta = wheel_metadata(filename, label)
            data = make_wheel(filename, meta, filler=1200 if big else 0, blob=1 << 20 if big else 0)
            with self._state.lock:
                self._state.wheels[key] = data
        return data

    def metadata(self, filename: str, variant: str | None = None) -> bytes:
        label = parse_wheel_filename(filename)[1].local or variant
        return wheel_metadata(filename, label)

    def pep658(self, project: str, filename: str) -> bool:
        version = parse_wheel_filename(filename)[1]
        return project == "torch" and Version(version.public) >= Version("2.6")

    def torch_page(self, project: str | None, variant: str | None) -> bytes:
        """A PyTorch-index page: root, variant root, combined or per-variant project."""
        key = f"{variant}/{project}"
        with self._state.lock:
            cached = self._state.pages.get(key)
        if cached is not None:
            return cached
        files = [(p, v, f) for p, v, f in self._state.torch_files if variant in (None, v)]
        out = ["<!DOCTYPE html>", "<html>", "  <body>"]
        if project is None:
            for name in sorted({p for p, _v, _f in files}):
                out.append(f'    <a href="{name}/">{name}</a><br/>')
        else:
            out.append(f"    <h1>Links for {project}</h1>")
            keys = sorted(
                (f"whl/{v}/{f.replace('+', '%2B')}", v, f) for p, v, f in files if p == project
            )
            for key, v, f in keys:
                base = self._state.other_host if project in ABSOLUTE_HREF_PROJECTS else ""
                sha = hashlib.sha256(self.wheel(f, v)).hexdigest()
                attrs = ""
                if self.pep658(project, f):
                    msha = hashlib.sha256(self.metadata(f, v)).hexdigest()
                    attrs = (
                        f' data-dist-info-metadata="sha256={msha}"'
                        f' data-core-metadata="sha256={msha}"'
                    )
                out.append(f'    <a href="{base}/{key}#sha256={sha}"{attrs}>{f}</a><br/>')
        out += ["  </body>", "</html>", "<!--TIMESTAMP 1735689600-->"]
        page = "\n".join(out).encode()
        with self._state.lock:
            self._state.pages[key] = page
        return page


def _accept_json(accept: str) -> str:
    """PEP 691 negotiation: the best of JSON v1, HTML v1, text/html by q-value."""
    best, best_q = "text/html", -1.0
    preference = {JSON_TYPE: 3, HTML_V1_TYPE: 2, "text/html": 1}
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in preference and (q, preference[media]) > (best_q, preference.get(best, 0)):
            best, best_q = media, q
    return best


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "torchup-test-index/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    server: _HTTPServer

    @property
    def owner(self) -> IndexServer:
        return self.server.owner

    # -- plumbing -----------------------------------------------------------------------

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        self._log(status, len(body))  # before replying: a test may look as soon as it has the reply
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _log(self, status: int, size: int) -> None:
        self.owner._record(
            LoggedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                status=status,
                body_bytes=size,
            )
        )

    def _page(self, body: bytes, content_type: str, *, validators: bool = True,
              cache: str | None = "max-age=600, public") -> None:  # fmt: skip
        headers = {"Content-Type": content_type, "Vary": "Accept"}
        if cache:
            headers["Cache-Control"] = cache
        if validators:
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            headers["ETag"] = etag
            headers["Last-Modified"] = LAST_MODIFIED
            if self.headers.get("If-None-Match") == etag:
                self._reply(304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
                return
        elif self.headers.get("If-Modified-Since") == LAST_MODIFIED:
            self._reply(304)
            return
        self._reply(200, body, headers)

    def _file(self, data: bytes, *, honour_range: bool = True) -> None:
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        spec = self.headers.get("Range")
        if not spec and self.owner._stall.is_set():
            self._stalled(data, headers)
            return
        if not spec or not honour_range:
            self._reply(200, data, headers)
            return
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
        total = len(data)
        if not m or (not m.group(1) and not m.group(2)):
            self._reply(416, b"", {"Content-Range": f"bytes */{total}"})
            return
        if not m.group(1):
            start, end = max(0, total - int(m.group(2))), total - 1
        else:
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
        if start >= total or start > end:
            self._reply(416, b"", {"Content-Range": f"bytes */{total}"})
            return
        headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        self._reply(206, data[start : end + 1], headers)

    def _stalled(self, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self._log(200, len(data))
        try:
            cut = min(1024, len(data) // 2)
            self.wfile.write(data[:cut])
            self.wfile.flush()
            self.owner._go_on.wait(60)
            self.wfile.write(data[cut:])
        except OSError:  # the client is gone (killed mid-download)
            self.close_connection = True

    def _authorized(self) -> bool:
        expected = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
        if self.headers.get("Authorization") == expected:
            return True
        self._reply(401, b"login required", {"WWW-Authenticate": 'Basic realm="test"'})
        return False

    # -- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        parts = [unquote(p) for p in path.split("/") if p]
        try:
            self._route(path, parts)
        except Exception as exc:  # pragma: no cover - a server bug must be visible
            self._reply(599, f"test server error: {exc!r}".encode())

    do_HEAD = do_GET

    def _route(self, path: str, parts: list[str]) -> None:
        owner = self.owner
        if parts[:2] in (["pypi", "simple"], ["bare", "simple"]) and len(parts) == 3:
            project = canonicalize_name(parts[2])
            if project not in PROJECTS or not path.endswith("/"):
                self._reply(404, b"Not Found", {"Content-Type": "text/plain"})
                return
            state = owner._state
            if parts[0] == "bare":
                self._page(state.pypi_html[project], "text/html", validators=False, cache=None)
                return
            media = _accept_json(self.headers.get("Accept", "text/html"))
            body = state.pypi_json[project] if media == JSON_TYPE else state.pypi_html[project]
            self._page(body, media)
            return
        if parts[:2] == ["files", "pypi"] and len(parts) == 3:
            self._serve_file(parts[2], None)
            return
        if parts and parts[0] == "whl":
            self._whl(parts[1:], path)
            return
        if parts and parts[0] == "fault":
            self._fault(parts[1:])
            return
        if parts and parts[0] == "auth":
            if not self._authorized():
                return
            if len(parts) == 3 and parts[1] == "simple":
                project = canonicalize_name(parts[2])
                html = owner._state.pypi_html.get(project)
                if html is None:
                    self._reply(404)
                    return
                body = html.replace(f"{owner.url}/files/pypi/".encode(), b"/auth/files/pypi/")
                self._page(body, "text/html")
                return
            if parts[1:3] == ["files", "pypi"] and len(parts) == 4:
                self._serve_file(parts[3], None)
                return
        if parts and parts[0] == "redirect":
            self._reply(301, b"", {"Location": "/pypi/" + "/".join(parts[1:]) + "/"})
            return
        if parts and parts[0] == "redirect-out":
            self._reply(302, b"", {"Location": "http://example.invalid/simple/torch/"})
            return
        self._reply(404, b"Not Found", {"Content-Type": "text/plain"})

    def _serve_file(self, name: str, variant: str | None, *, honour_range: bool = True) -> None:
        owner = self.owner
        if name.endswith(".metadata"):
            self._reply(200, owner.metadata(name[: -len(".metadata")], variant),
                        {"Content-Type": "application/octet-stream"})  # fmt: skip
            return
        if not name.endswith(".whl"):
            self._reply(404)
            return
        self._file(owner.wheel(name, variant), honour_range=honour_range)

    def _whl(self, parts: list[str], path: str) -> None:
        owner = self.owner
        variants = set(owner.variants())

        def page(project: str | None, variant: str | None) -> None:
            body = owner.torch_page(project, variant)
            self._page(body, "text/html", cache="max-age=600, public, must-revalidate")

        if not parts:
            page(None, None)
        elif len(parts) == 1 and parts[0] in variants:
            page(None, parts[0])
        elif len(parts) == 1 and parts[0] in PROJECTS and path.endswith("/"):
            page(parts[0], None)
        elif len(parts) == 2 and parts[0] in variants and parts[1] in PROJECTS:
            page(parts[1], parts[0])
        elif len(parts) == 2 and parts[0] in variants:
            self._serve_file(parts[1], parts[0])
        else:
            self._reply(404, b"Not Found", {"Content-Type": "text/plain"})

    def _fault(self, parts: list[str]) -> None:
        """``/fault/<kind>/...``: 500, slow, octet, notindex, truncated, cut-html,
        garbage-json, shape-json, v2-json, norange (files ignoring Range; its
        ``simple/<p>/`` page links there), badmeta (PEP 658 hash that does not match).
        """
        owner = self.owner
        kind = parts[0] if parts else ""
        torch_html = owner._state.pypi_html["torch"]
        if kind == "500":
            self._reply(500, b"Internal Server Error", {"Content-Type": "text/plain"})
        elif kind == "slow":
            time.sleep(owner.slow_delay)
            self._page(torch_html, "text/html")
        elif kind == "octet":
            self._reply(
                200, b"\x00\x01\x02 not a page", {"Content-Type": "application/octet-stream"}
            )
        elif kind == "notindex":
            body = b'<html><body><h1>Welcome</h1><a href="/login">Log in</a></body></html>'
            self._reply(200, body, {"Content-Type": "text/html"})
        elif kind == "truncated":
            # Promise the whole page, send half, hang up.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(torch_html)))
            self.end_headers()
            self._log(200, len(torch_html) // 2)
            self.wfile.write(torch_html[: len(torch_html) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif kind == "cut-html":
            cut = torch_html[: torch_html.index(b"<a ", len(torch_html) // 2) + 40]
            self._reply(200, cut, {"Content-Type": "text/html"})
        elif kind == "garbage-json":
            self._reply(200, b'{"meta": {"api-version": "1.1"}, "files": [{"filename": "torch-',
                        {"Content-Type": JSON_TYPE})  # fmt: skip
        elif kind == "shape-json":
            self._reply(200, b'{"meta": {"api-version": "1.1"}, "files": {"torch": 1}}',
                        {"Content-Type": JSON_TYPE})  # fmt: skip
        elif kind == "v2-json":
            self._reply(200, b'{"meta": {"api-version": "2.0"}, "files": []}',
                        {"Content-Type": "application/vnd.pypi.simple.v2+json"})  # fmt: skip
        elif kind == "norange" and parts[1:2] == ["simple"]:
            body = torch_html.replace(f"{owner.url}/files/pypi/".encode(), b"/fault/norange/files/")
            self._page(body, "text/html")
        elif kind == "norange" and parts[1:2] == ["files"] and len(parts) == 3:
            self._serve_file(parts[2], None, honour_range=False)
        elif kind == "badmeta" and parts[1:2] == ["simple"]:
            body = torch_html.replace(
                b'">torch-', b'" data-core-metadata="sha256=' + b"0" * 64 + b'">torch-'
            )
            self._page(body, "text/html")
        else:
            self._reply(404)
