"""``torchup wheelhouse`` (the library): real servers, real pip, real uv, real venvs.

Small generated wheels are served from a folder by a real threaded HTTP server on
127.0.0.1 (:class:`FileServer`: HTTP Range, Basic auth on ``/private/``, and faults on
demand: a connection cut mid-file, a server that is down, one that ignores Range). Locks
are made by real ``uv pip compile --format pylock.toml`` against it, or written by hand
(PEP 751). The wheelhouse is then served by a real ``python -m http.server -d DIR``
subprocess and installed from by real pip and real uv into fresh venvs, with no other
source. The end-to-end test does the same for the real CPU torch 2.13.0 from pip's
find-links folder plus its real dependencies from the machine's local index, offline,
and runs ``torchup.verify`` in both venvs. Nothing is downloaded from the internet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import realtorch
from indexserver import make_wheel
from torchup.export import _toml
from torchup.export.housedir import MARKER
from torchup.export.pylock import parse_lock
from torchup.export.wheelhouse import (
    FileProgress,
    HashMismatchError,
    LockError,
    NoSpaceError,
    WheelhouseDirError,
    build_wheelhouse,
)
from torchup.index.http import HttpSession
from torchup.index.pages import parse_project_page

UV = realtorch.uv()
needs_uv = pytest.mark.skipif(UV is None, reason="needs uv")
PY = str(realtorch.PYTHON311) if realtorch.PYTHON311.exists() else sys.executable
BIG = "beta-1.2-py3-none-any.whl"
#: (filename, Requires-Dist, incompressible bytes): the generated closure of ``alpha``
WHEELS = [
    ("alpha-1.0-py3-none-any.whl", ("beta>=1.0", "gamma-pkg"), 0),
    (BIG, (), 3 << 20),
    ("gamma_pkg-0.1+cpu-py3-none-any.whl", (), 0),
]


# -- a file server with Range and faults -----------------------------------------------


@dataclass
class Logged:
    path: str
    range: str | None
    status: int


@dataclass
class Faults:
    #: filename -> bytes to send before cutting the connection (once)
    cut_after: dict[str, int] = field(default_factory=dict)
    #: answer 503 to everything
    down: bool = False
    ignore_range: bool = False
    #: filename -> the Content-Length to state instead of the true one (the body is whole)
    stated_length: dict[str, int] = field(default_factory=dict)
    #: filenames sent 10 bytes short, with no Content-Length (the close ends the body)
    short_unstated: set[str] = field(default_factory=set)
    #: filenames sent whole, with no Content-Length (the close ends the body)
    unstated: set[str] = field(default_factory=set)


class FileServer:
    """Serve ``root`` on 127.0.0.1 with Range support; ``/private/...`` needs Basic
    ``user:s3cret`` and serves ``root/...``; every request is logged."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = Faults()
        self.log: list[Logged] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

            def do_HEAD(self) -> None:  # uv asks before reading a wheel's zip by ranges
                server.head(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up early is not the test's business

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def file_requests(self) -> list[Logged]:
        return [e for e in self.log if "/files/" in e.path]

    def _answer(self, h: BaseHTTPRequestHandler, status: int, body: bytes = b"") -> None:
        self.log.append(Logged(h.path, h.headers.get("Range"), status))
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def head(self, h: BaseHTTPRequestHandler) -> None:
        target = self.root / h.path.split("?")[0].lstrip("/")
        self.log.append(Logged("HEAD " + h.path, None, 200 if target.is_file() else 404))
        h.send_response(200 if target.is_file() else 404)
        h.send_header("Content-Length", str(target.stat().st_size if target.is_file() else 0))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        if self.faults.down:
            return self._answer(h, 503)
        if path.startswith("/private/"):
            good = "Basic " + base64.b64encode(b"user:s3cret").decode()
            if h.headers.get("Authorization") != good:
                return self._answer(h, 401)
            path = path.removeprefix("/private")
        from urllib.parse import unquote

        target = self.root / unquote(path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return self._answer(h, 404)
        data = target.read_bytes()
        wanted = h.headers.get("Range")
        if wanted and not self.faults.ignore_range and wanted.startswith("bytes="):
            start = int(wanted[6:].split("-")[0])
            if start >= len(data):
                return self._answer(h, 416)
            self.log.append(Logged(h.path, wanted, 206))
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            h.send_header("Content-Length", str(len(data) - start))
            h.end_headers()
            h.wfile.write(data[start:])
            return None
        self.log.append(Logged(h.path, wanted, 200))
        h.send_response(200)
        kind = "text/html" if target.name == "index.html" else "application/octet-stream"
        h.send_header("Content-Type", kind)
        if target.name in self.faults.short_unstated | self.faults.unstated:
            h.end_headers()
            h.wfile.write(data[:-10] if target.name in self.faults.short_unstated else data)
            return None
        h.send_header("Content-Length", str(self.faults.stated_length.get(target.name, len(data))))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        cut = self.faults.cut_after.pop(target.name, None)
        if cut is not None:
            h.wfile.write(data[:cut])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        h.wfile.write(data)
        return None


# -- the site, locks, installers -------------------------------------------------------


def metadata(filename: str, requires: tuple[str, ...]) -> bytes:
    name, version = filename.split("-")[:2]
    head = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.8\n"
    return (head + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode()


def publish(root: Path) -> dict[str, bytes]:
    """The generated wheels under ``root/files`` and PEP 503 pages under ``root/simple``."""
    (root / "files").mkdir(parents=True)
    made = {}
    for filename, requires, blob in WHEELS:
        data = make_wheel(filename, metadata(filename, requires), blob=blob)
        (root / "files" / filename).write_bytes(data)
        made[filename] = data
        project = filename.split("-")[0].replace("_", "-")
        sha = hashlib.sha256(data).hexdigest()
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True)
        href = f"/files/{filename.replace('+', '%2B')}#sha256={sha}"
        page.write_text(f'<!DOCTYPE html><html><body><a href="{href}">{filename}</a></body></html>')
    return made


@dataclass
class Site:
    root: Path
    server: FileServer
    wheels: dict[str, bytes]

    def lock(self, path: Path, *, base: str | None = None, sizes: bool = True,
             sha: dict[str, str] | None = None) -> Path:  # fmt: skip
        """A hand-written PEP 751 lock of the generated wheels (``base``: their URL prefix)."""
        packages = []
        for filename, data in self.wheels.items():
            name, version = filename.split("-")[:2]
            wheel: dict[str, Any] = {
                "name": filename,
                "url": f"{base or self.server.url}/files/{filename.replace('+', '%2B')}",
                "size": len(data) if sizes else None,
                "hashes": {"sha256": (sha or {}).get(filename, hashlib.sha256(data).hexdigest())},
            }
            packages.append({"name": name.replace("_", "-"), "version": version,
                             "requires-python": ">=3.8", "wheels": [wheel]})  # fmt: skip
        doc = {"lock-version": "1.0", "created-by": "tests", "packages": packages}
        path.write_text(_toml.dumps(doc, inline=("wheels", "hashes")))
        return path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "site"
    wheels = publish(root)
    server = FileServer(root)
    try:
        yield Site(root, server, wheels)
    finally:
        server.close()


def quiet_env(tmp: Path) -> dict[str, str]:
    env = realtorch.quiet_env()
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", HOME=str(tmp / "home"),
               UV_CACHE_DIR=str(tmp / "uv-cache"), PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")  # fmt: skip
    return env


def uv_lock(site: Site, tmp: Path, requirement: str = "alpha") -> Path:
    """A lock made by real ``uv pip compile --format pylock.toml`` against the site."""
    assert UV is not None
    out = tmp / "pylock.toml"
    cmd = [UV, "pip", "compile", "--no-config", "-q", "--format", "pylock.toml",
           "--python-version", "3.11", "--index-url", f"{site.server.url}/simple", "-",
           "-o", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, input=requirement, capture_output=True, text=True,
                          env=quiet_env(tmp), check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[str]

    def requested(self) -> str:
        """What the server logged (its stderr), once it has stopped."""
        return self.proc.communicate(timeout=10)[1] if self.proc.poll() is not None else ""


@contextmanager
def http_server(directory: Path) -> Iterator[Served]:
    """``python -m http.server -d DIR`` as a real subprocess."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "-d", str(directory),
         str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}", proc)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield served
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pip_install(tmp: Path, index: str, *reqs: str) -> Path:
    venv = tmp / "pip-venv"
    subprocess.run([PY, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--index-url", index, *reqs],
        capture_output=True, text=True, env=quiet_env(tmp), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


def uv_install(tmp: Path, *args: str) -> Path:
    assert UV is not None
    venv = tmp / "uv-venv"
    env = quiet_env(tmp)
    subprocess.run([UV, "venv", "--no-config", "-q", "--python", PY, str(venv)],
                   check=True, capture_output=True, env=env)  # fmt: skip
    python = venv / "bin" / "python"
    proc = subprocess.run([UV, "pip", "install", "--no-config", "-q", "--python",
                           str(python), *args], capture_output=True, text=True, env=env,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# -- building and installing -----------------------------------------------------------


@needs_uv
def test_wheelhouse_of_a_uv_lock_installs_with_pip_and_uv(site: Site, tmp_path: Path) -> None:
    lock = uv_lock(site, tmp_path)
    house = tmp_path / "house"
    events: list[FileProgress] = []
    made = build_wheelhouse(lock, house, progress=events.append)

    assert made.projects == ("alpha", "beta", "gamma-pkg")
    assert made.bytes_downloaded == sum(len(d) for d in site.wheels.values())
    assert made.bytes_reused == 0
    assert {f.state for f in made.files} == {"downloaded"}
    for filename, data in site.wheels.items():
        assert (house / "files" / filename).read_bytes() == data
        meta = (house / "files" / f"{filename}.metadata").read_bytes()
        assert meta == metadata(filename, dict((w[0], w[1]) for w in WHEELS)[filename])
    assert {e.filename for e in events if e.event == "done"} == set(site.wheels)
    big = [e for e in events if e.filename == BIG]
    assert big[0].event == "start"
    assert big[-1].done == big[-1].total == len(site.wheels[BIG])

    # the pages read back, in both formats, by torchup's own index parser
    base = "http://127.0.0.1/simple/gamma-pkg/"
    page = house / "simple" / "gamma-pkg"
    for body, kind in ((page / "index.html", "text/html"),
                       (page / "index.json", "application/vnd.pypi.simple.v1+json")):  # fmt: skip
        (dist,) = parse_project_page(body.read_bytes(), kind, base)
        assert dist.filename == "gamma_pkg-0.1+cpu-py3-none-any.whl"
        assert dist.url == "http://127.0.0.1/files/gamma_pkg-0.1%2Bcpu-py3-none-any.whl"
        assert dist.sha256 == hashlib.sha256(site.wheels[dist.filename]).hexdigest()
        assert dist.metadata_hashes
        assert dist.requires_python == ">=3.8"
        assert body.stat().st_mode & 0o777 == 0o644  # a web server running as another user reads it
    # the rewritten lock is PEP 751 (packaging.pylock agrees) and points into the folder
    relocked = parse_lock(made.lock.read_text())
    assert {f.url for _, f in relocked.files()} == {f"files/{n}" for n in site.wheels}
    assert "127.0.0.1" not in made.lock.read_text()

    site.server.close()  # from here on, only the wheelhouse is reachable
    with http_server(house) as served:
        url = served.url
        python = pip_install(tmp_path, f"{url}/simple/", "alpha")
        check = "import alpha, beta, gamma_pkg; print(gamma_pkg.__version__)"
        out = subprocess.run(
            [str(python), "-c", check], capture_output=True, text=True, check=False
        )
        assert out.stdout.strip() == "0.1+cpu", out.stderr
        python = uv_install(tmp_path, "--index-url", f"{url}/simple/", "alpha")
        out = subprocess.run(
            [str(python), "-c", check], capture_output=True, text=True, check=False
        )
        assert out.stdout.strip() == "0.1+cpu", out.stderr
    log = served.requested()
    assert '"GET /simple/gamma-pkg/ HTTP/1.1" 200' in log  # the folder, answered by index.html
    assert '.whl.metadata HTTP/1.1" 200' in log  # PEP 658 read: metadata before any wheel
    # uv also installs the rewritten lock itself, its paths relative to the lock
    shutil.rmtree(tmp_path / "uv-venv")
    python = uv_install(tmp_path, "--offline", "-r", str(made.lock))
    out = subprocess.run([str(python), "-c", check], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "0.1+cpu", out.stderr


def test_rerun_downloads_nothing_and_touches_nothing(site: Site, tmp_path: Path) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    build_wheelhouse(lock, house)
    before = {p: p.stat().st_mtime_ns for p in (house / "files").iterdir()}
    site.server.log.clear()
    again = build_wheelhouse(lock, house)
    assert again.bytes_downloaded == 0
    assert again.bytes_reused == sum(len(d) for d in site.wheels.values())
    assert {f.state for f in again.files} == {"reused"}
    assert site.server.file_requests() == []
    assert {p: p.stat().st_mtime_ns for p in (house / "files").iterdir()} == before
    assert json.loads((house / MARKER).read_text())["complete"] is True


def test_a_cut_connection_resumes_with_range_in_the_same_run(site: Site, tmp_path: Path) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    site.server.faults.cut_after[BIG] = 1 << 20
    made = build_wheelhouse(lock, tmp_path / "house")
    got = [e for e in site.server.file_requests() if e.path.endswith(BIG)]
    assert [(e.range, e.status) for e in got] == [(None, 200), (f"bytes={1 << 20}-", 206)]
    assert (tmp_path / "house" / "files" / BIG).read_bytes() == site.wheels[BIG]
    assert made.bytes_downloaded == sum(len(d) for d in site.wheels.values())


def test_a_server_that_stops_mid_file_is_continued_by_the_next_run(
    site: Site, tmp_path: Path
) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    site.server.faults.cut_after[BIG] = 1 << 20

    def stop_after_cut(event: FileProgress) -> None:
        if event.filename == BIG and event.done >= 1 << 20:
            site.server.faults.down = True  # the server goes away with the connection

    with pytest.raises(Exception, match="503") as failed:
        build_wheelhouse(lock, house, progress=stop_after_cut, jobs=1)
    assert failed.value.__class__.__name__ == "IndexFetchError"
    part = house / "files" / f"{BIG}.part"
    assert part.stat().st_size == 1 << 20
    assert not (house / "simple").exists()
    assert not (house / "pylock.toml").exists()

    site.server.faults.down = False
    site.server.log.clear()
    made = build_wheelhouse(lock, house)
    big = next(f for f in made.files if f.filename == BIG)
    assert big.state == "resumed"
    assert big.fetched == len(site.wheels[BIG]) - (1 << 20)
    got = [e for e in site.server.file_requests() if e.path.endswith(BIG)]
    assert [(e.range, e.status) for e in got] == [(f"bytes={1 << 20}-", 206)]
    assert (house / "files" / BIG).read_bytes() == site.wheels[BIG]
    assert not part.exists()


def test_a_server_ignoring_range_is_read_from_the_start(site: Site, tmp_path: Path) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    (house / "files").mkdir(parents=True)
    (house / MARKER).write_text('{"tool": "torchup", "files": []}')
    (house / "files" / f"{BIG}.part").write_bytes(site.wheels[BIG][:1000])
    site.server.faults.ignore_range = True
    made = build_wheelhouse(lock, house)
    assert (house / "files" / BIG).read_bytes() == site.wheels[BIG]
    assert next(f for f in made.files if f.filename == BIG).state == "downloaded"


def test_a_stale_part_of_another_file_is_fetched_again_afresh(site: Site, tmp_path: Path) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    (house / "files").mkdir(parents=True)
    (house / MARKER).write_text('{"tool": "torchup", "files": []}')
    (house / "files" / f"{BIG}.part").write_bytes(b"x" * 5000)
    build_wheelhouse(lock, house)
    assert (house / "files" / BIG).read_bytes() == site.wheels[BIG]
    got = [e.range for e in site.server.file_requests() if e.path.endswith(BIG)]
    assert got == ["bytes=5000-", None]


# -- refusals --------------------------------------------------------------------------


def test_a_tampered_file_fails_naming_both_hashes_and_leaves_nothing(
    site: Site, tmp_path: Path
) -> None:
    wrong = "0" * 64
    lock = site.lock(tmp_path / "pylock.toml", base=f"http://user:s3cret@127.0.0.1:"
                     f"{site.server.httpd.server_port}/private", sha={BIG: wrong})  # fmt: skip
    house = tmp_path / "house"
    with pytest.raises(HashMismatchError) as failed:
        build_wheelhouse(lock, house, jobs=1)
    text = str(failed.value)
    real = hashlib.sha256(site.wheels[BIG]).hexdigest()
    assert BIG in text
    assert wrong in text
    assert real in text
    assert "s3cret" not in text
    assert "user:****@" in text
    assert failed.value.exit_code == 1
    assert failed.value.hint
    files = house / "files"
    assert not (files / BIG).exists()
    assert not (files / f"{BIG}.part").exists()
    assert not (house / "simple").exists()
    assert not (house / "pylock.toml").exists()


ALPHA = WHEELS[0][0]
GAMMA = WHEELS[2][0]


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_lock_naming_other_bytes_leaves_a_complete_wheelhouse_as_it_was(
    site: Site, tmp_path: Path
) -> None:
    house = tmp_path / "house"
    build_wheelhouse(site.lock(tmp_path / "good.toml"), house)
    before = contents(house)
    other = site.lock(tmp_path / "other.toml", sha={ALPHA: "0" * 64})
    with pytest.raises(HashMismatchError):
        build_wheelhouse(other, house)
    marker = house / MARKER  # says a build is under way, until one completes
    after = contents(house)
    assert after.pop(MARKER) != before.pop(MARKER)
    assert json.loads(marker.read_text())["complete"] is False
    assert after == before  # alpha's good file is still there, and the pages naming it


def test_the_first_failure_stops_the_files_queued_after_it(site: Site, tmp_path: Path) -> None:
    lock = site.lock(tmp_path / "pylock.toml", sha={ALPHA: "0" * 64})
    with pytest.raises(HashMismatchError):
        build_wheelhouse(lock, tmp_path / "house", jobs=1)
    assert [e.path.rpartition("/")[2] for e in site.server.file_requests()] == [ALPHA]


def test_ctrl_c_stops_the_download_at_once_and_keeps_its_part(site: Site, tmp_path: Path) -> None:
    import signal

    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    interrupted = []

    def ctrl_c_in_the_big_file(event: FileProgress) -> None:
        if event.filename == BIG and event.event == "bytes" and not interrupted:
            interrupted.append(event.done)
            os.kill(os.getpid(), signal.SIGINT)  # to the main thread, as a terminal does

    with pytest.raises(KeyboardInterrupt):
        build_wheelhouse(lock, house, jobs=1, progress=ctrl_c_in_the_big_file)
    fetched = [e.path.rpartition("/")[2] for e in site.server.file_requests()]
    assert fetched == [ALPHA, BIG]  # gamma, queued, never started
    part = house / "files" / f"{BIG}.part"
    assert 0 < part.stat().st_size < len(site.wheels[BIG])  # kept, for the next run
    assert not (house / "simple").exists()


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("stated", "the lock says {size} bytes, and {url} says it is {wrong}"),
        ("unstated", "the lock says {size} bytes, and {url} gives {short}"),
    ],
)
def test_a_file_of_another_length_fails_naming_both_lengths(
    site: Site, tmp_path: Path, fault: str, says: str
) -> None:
    size = len(site.wheels[GAMMA])
    if fault == "stated":
        site.server.faults.stated_length[GAMMA] = size + 10
    else:
        site.server.faults.short_unstated.add(GAMMA)
    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    with pytest.raises(HashMismatchError) as failed:
        build_wheelhouse(lock, house)
    url = f"{site.server.url}/files/{GAMMA.replace('+', '%2B')}"
    assert says.format(size=size, url=url, wrong=size + 10, short=size - 10) in str(failed.value)
    assert not (house / "files" / f"{GAMMA}.part").exists()
    asked = [e for e in site.server.file_requests() if url.endswith(e.path)]
    assert len(asked) == 1  # asked once: the length says it all


def test_a_file_served_with_no_length_is_there_for_a_check(site: Site, tmp_path: Path) -> None:
    """``lock --check`` asks only for the headers: a server that states no length (as
    pip, uv and the wheelhouse all accept) has the file, of a length not said."""
    from torchup.export._probe import probe_all

    site.server.faults.unstated.add(GAMMA)
    gamma = f"{site.server.url}/files/{GAMMA.replace('+', '%2B')}"
    missing = f"{site.server.url}/files/nothing-1.0-py3-none-any.whl"
    session = HttpSession()
    try:
        got = probe_all(session, [gamma, missing])
    finally:
        session.close()
    assert got == [(None, ""), (None, f"HTTP 404 from {missing}")]
    made = build_wheelhouse(site.lock(tmp_path / "pylock.toml"), tmp_path / "house")
    assert {f.filename for f in made.files} >= {GAMMA}


def test_the_summary_names_where_the_wheelhouse_will_be_served(site: Site, tmp_path: Path) -> None:
    from torchup.render.export import render_wheelhouse

    lock = site.lock(tmp_path / "pylock.toml")
    here = render_wheelhouse(build_wheelhouse(lock, tmp_path / "here"))
    # no torch in this lock: its own packages are what to install, not a torch
    pins = "alpha==1.0 beta==1.2 gamma-pkg==0.1+cpu"
    assert f"  pip install --index-url http://HOST:8000/simple/ {pins}" in here
    assert "torch" not in here.replace("torchup", "")
    there = render_wheelhouse(
        build_wheelhouse(lock, tmp_path / "there", base_url="https://u:tok@mirror.example/wh/")
    )
    assert f"  uv pip install --index-url https://mirror.example/wh/simple/ {pins}" in there
    assert "points at https://mirror.example/wh/files/" in there
    assert "HOST" not in there
    assert "tok" not in there


def test_credentials_in_urls_work_and_are_never_written(site: Site, tmp_path: Path) -> None:
    port = site.server.httpd.server_port
    lock = site.lock(tmp_path / "pylock.toml", base=f"http://user:s3cret@127.0.0.1:{port}/private")
    made = build_wheelhouse(lock, tmp_path / "house", base_url="https://u:pw@mirror.example/wh/")
    text = made.lock.read_text()
    assert "s3cret" not in text
    assert "pw@" not in text
    assert 'url = "https://mirror.example/wh/files/gamma_pkg-0.1%2Bcpu-py3-none-any.whl"' in text
    assert 'index = "https://mirror.example/wh/simple/"' in text
    assert "s3cret" not in json.dumps(made.to_dict())
    assert made.index_url == "https://mirror.example/wh/simple/"


def test_a_lock_fetches_from_a_private_index_with_pip_configs_credentials(
    site: Site, tmp_path: Path
) -> None:
    """A lock's URLs carry no credentials; `wheelhouse --lock` sends the ones of pip's
    configured index to its host, as pip does, and writes them nowhere."""
    port = site.server.httpd.server_port
    lock = site.lock(tmp_path / "pylock.toml", base=f"http://127.0.0.1:{port}/private")
    env = {**quiet_env(tmp_path), "TORCHUP_CACHE_DIR": str(tmp_path / "cache")}

    def wheelhouse(name: str, conf: str, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "torchup", "wheelhouse", str(tmp_path / name),
                "--lock", str(lock), "--json", *extra]  # fmt: skip
        return subprocess.run(argv, env={**env, "PIP_CONFIG_FILE": conf}, capture_output=True,
                              text=True, check=False, timeout=120)  # fmt: skip

    refused = wheelhouse("without", os.devnull)
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stdout + refused.stderr
    # nothing was fetched, so no .part is left to continue (the folder's marker stays)
    assert listing(tmp_path / "without") == [".torchup-wheelhouse.json", "files"]
    assert listing(tmp_path / "without" / "files") == []
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nindex-url = http://user:s3cret@127.0.0.1:{port}/private/simple\n")
    made = wheelhouse("with", str(conf))
    assert made.returncode == 0, made.stdout + made.stderr
    assert listing(tmp_path / "with" / "files") == sorted(
        [*site.wheels, *(f"{n}.metadata" for n in site.wheels)]
    )
    written = [p.read_bytes() for p in (tmp_path / "with").rglob("*") if p.is_file()]
    assert not [b for b in written if b"s3cret" in b]
    assert "s3cret" not in made.stdout + made.stderr
    # the index named on the command line gives them as well, over pip's configuration
    private = f"http://user:s3cret@127.0.0.1:{port}/private/simple"
    given = wheelhouse("given", os.devnull, "--index-url", private)
    assert given.returncode == 0, given.stdout + given.stderr
    assert listing(tmp_path / "given" / "files") == listing(tmp_path / "with" / "files")
    assert "s3cret" not in given.stdout + given.stderr
    # options that would plan are refused, not ignored
    planning = wheelhouse("planning", os.devnull, "--backend", "cu126", "--offline")
    assert planning.returncode == 2
    assert "--backend, --offline would make a new plan" in planning.stdout
    assert not (tmp_path / "planning").exists()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("this is [not toml", "not TOML"),
        ('name = "x"\n', "no lock-version"),
        ('lock-version = "2.0"\ncreated-by = "x"\npackages = []\n', "does not know"),
        (b"\xff\xfe".decode("latin-1"), "not TOML"),
    ],
)
def test_a_file_that_is_not_a_pep751_lock_is_refused(
    tmp_path: Path, content: str, said: str
) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(content)
    with pytest.raises(LockError, match=said) as failed:
        build_wheelhouse(lock, tmp_path / "house")
    assert failed.value.hint or "does not know" not in said
    assert not (tmp_path / "house").exists()


def test_a_file_name_that_leaves_the_folder_is_refused(site: Site, tmp_path: Path) -> None:
    doc = {"lock-version": "1.0", "created-by": "x", "packages": [{
        "name": "evil", "version": "1",
        "wheels": [{"name": "../../evil-1-py3-none-any.whl", "url": f"{site.server.url}/x",
                    "hashes": {"sha256": "0" * 64}}]}]}  # fmt: skip
    lock = tmp_path / "pylock.toml"
    lock.write_text(_toml.dumps(doc, inline=("wheels", "hashes")))
    # packaging.pylock refuses it where installed; torchup's own check does elsewhere
    with pytest.raises(LockError, match=r"'\.\./\.\./evil-1-py3-none-any\.whl'"):
        build_wheelhouse(lock, tmp_path / "house")
    assert not (tmp_path / "house").exists()
    assert site.server.log == []


def test_a_folder_with_foreign_files_is_refused_and_left_alone(site: Site, tmp_path: Path) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    house.mkdir()
    (house / "notes.txt").write_text("mine")
    with pytest.raises(WheelhouseDirError, match=r"notes\.txt") as failed:
        build_wheelhouse(lock, house)
    assert failed.value.exit_code == 2
    assert listing(house) == ["notes.txt"]
    assert site.server.log == []
    with pytest.raises(WheelhouseDirError, match="not a folder"):
        build_wheelhouse(lock, house / "notes.txt")
    with pytest.raises(WheelhouseDirError, match="does not exist"):
        build_wheelhouse(lock, tmp_path / "missing" / "house")


def test_a_lock_too_big_for_the_disk_is_refused_before_any_download(
    site: Site, tmp_path: Path
) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    huge = lock.read_text().replace(f"size = {len(site.wheels[BIG])}", f"size = {1 << 60}")
    lock.write_text(huge)
    with pytest.raises(NoSpaceError, match=r"needs 1048576.0 TiB more and .* is free") as failed:
        build_wheelhouse(lock, tmp_path / "house")
    assert failed.value.hint
    assert site.server.log == []
    assert not (tmp_path / "house").exists()


_ENOSPC_SCRIPT = """
import sys
from pathlib import Path
from torchup.export.wheelhouse import NoSpaceError, build_wheelhouse
try:
    build_wheelhouse(Path(sys.argv[1]), Path(sys.argv[2]) / "house")
except NoSpaceError as exc:
    print("NoSpaceError:", exc)
print("left:", sorted(p.name for p in (Path(sys.argv[2]) / "house" / "files").iterdir()))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_full_disk_fails_clearly_and_removes_the_partial_file(site: Site, tmp_path: Path) -> None:
    lock = site.lock(tmp_path / "pylock.toml", sizes=False)  # no sizes: no early refusal
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(_ENOSPC_SCRIPT)
    # a real 1 MiB tmpfs in a private mount namespace: the 3 MiB wheel cannot fit
    inner = f"mount -t tmpfs -o size=1m none {disk} && {sys.executable} {script} {lock} {disk}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", inner], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd() / "src")},
                          check=False)  # fmt: skip
    if "mount" in proc.stderr and proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert "NoSpaceError: no space left on the disk of" in proc.stdout, proc.stdout + proc.stderr
    assert "hint: free some space" in proc.stdout
    left = proc.stdout.split("left:")[1]
    assert ".part" not in left
    assert BIG not in left


# -- local files, progress, rebuilding -------------------------------------------------


def test_file_urls_and_relative_paths_are_copied_hash_checked(site: Site, tmp_path: Path) -> None:
    lock = site.lock(site.root / "pylock.toml")
    text = lock.read_text()
    for filename in site.wheels:
        quoted = filename.replace("+", "%2B")
        remote = f'url = "{site.server.url}/files/{quoted}"'
        local = (
            f'url = "{(site.root / "files" / filename).as_uri()}"'
            if filename == BIG
            else f'path = "files/{filename}"'  # PEP 751: relative to the lock's folder
        )
        text = text.replace(remote, local)
    lock.write_text(text)
    made = build_wheelhouse(lock, tmp_path / "house")
    assert {f.state for f in made.files} == {"copied"}
    assert site.server.log == []
    assert made.bytes_downloaded == sum(len(d) for d in site.wheels.values())
    tampered = text.replace(hashlib.sha256(site.wheels[BIG]).hexdigest(), "1" * 64)
    lock.write_text(tampered)
    with pytest.raises(HashMismatchError, match="1" * 64):
        build_wheelhouse(lock, tmp_path / "house2")
    left = sorted(p.name for p in (tmp_path / "house2" / "files").iterdir())
    assert BIG not in left
    assert f"{BIG}.part" not in left


def test_a_rebuild_from_another_lock_drops_what_it_no_longer_lists(
    site: Site, tmp_path: Path
) -> None:
    lock = site.lock(tmp_path / "pylock.toml")
    house = tmp_path / "house"
    build_wheelhouse(lock, house)
    (house / "extra.txt").write_text("the user's own")
    smaller = site.lock(tmp_path / "pylock.small.toml")
    doc_text = smaller.read_text()
    start = doc_text.index('[[packages]]\nname = "beta"')
    end = doc_text.index("[[packages]]", start + 1)
    smaller.write_text(doc_text[:start] + doc_text[end:])
    made = build_wheelhouse(smaller, house, session=HttpSession())
    assert made.projects == ("alpha", "gamma-pkg")
    assert not (house / "files" / BIG).exists()
    assert not (house / "files" / f"{BIG}.metadata").exists()
    assert not (house / "simple" / "beta").exists()
    assert "beta" not in (house / "simple" / "index.html").read_text()
    assert (house / "extra.txt").read_text() == "the user's own"


# -- the real thing: torch 2.13.0+cpu ------------------------------------------------------


@needs_uv
@pytest.mark.skipif(not realtorch.available(), reason="needs CPython 3.11.7, the torch "
                    "2.13.0+cpu wheel and the machine's local index")  # fmt: skip
def test_a_torch_wheelhouse_installs_and_verifies_with_pip_and_uv(tmp_path: Path) -> None:
    import torchup

    assert UV is not None
    lock = tmp_path / "pylock.toml"
    cmd = [UV, "pip", "compile", "--no-config", "--offline", "-q", "--format", "pylock.toml",
           "--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28",
           "--index-url", realtorch.LOCAL_INDEX.as_uri(), "--find-links", str(realtorch.WHEELS),
           "-", "-o", str(lock)]  # fmt: skip
    proc = subprocess.run(cmd, input=realtorch.TORCH_PIN, capture_output=True, text=True,
                          env=quiet_env(tmp_path), check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    house = tmp_path / "house"
    made = build_wheelhouse(lock, house)
    assert "torch" in made.projects
    assert "sympy" in made.projects
    assert all(f.metadata for f in made.files if f.filename.endswith(".whl"))
    assert build_wheelhouse(lock, house).bytes_downloaded == 0
    with http_server(house) as served:
        url = served.url
        pythons = [
            pip_install(tmp_path, f"{url}/simple/", realtorch.TORCH_PIN),
            uv_install(tmp_path, "--index-url", f"{url}/simple/", realtorch.TORCH_PIN),
        ]
    shutil.rmtree(tmp_path / "uv-cache", ignore_errors=True)
    for python in pythons:
        report = torchup.verify(str(python), env=realtorch.quiet_env())
        assert report.ok, report.to_dict()


def test_the_rewritten_lock_keeps_each_files_upload_time() -> None:
    """PEP 751's upload-time (PyPI's JSON gives it, uv writes it) survives the rewrite as
    an offset date-time, as tomllib and packaging.pylock read it."""
    import datetime

    import tomllib

    from torchup.export.wheelhouse import _rewrite_lock

    when = datetime.datetime(2026, 11, 15, 21, 30, 44, tzinfo=datetime.UTC)
    wheel = {"url": "https://x/a-1.0-py3-none-any.whl", "upload-time": when, "size": 3,
             "hashes": {"sha256": "ab" * 32}}  # fmt: skip
    raw = {"lock-version": "1.0", "created-by": "uv",
           "packages": [{"name": "a", "version": "1.0", "wheels": [wheel]}]}  # fmt: skip
    text = _rewrite_lock(raw, None)
    (back,) = tomllib.loads(text)["packages"][0]["wheels"]
    assert back["upload-time"] == when
    assert back["path"] == "files/a-1.0-py3-none-any.whl"
    assert parse_lock(text).packages[0].files[0].filename == "a-1.0-py3-none-any.whl"
