"""A PyTorch-layout index written to a folder and served by ``http.server`` on
127.0.0.1: for tests that need files of their own (a cp39 C-extension torch, a
tampered hash, variant routing), where tests/indexserver.py serves generated data.

Layout as the PyTorch index has it: ``<root>/whl/<variant>/<file>`` with
``<root>/whl/<variant>/torch/index.html`` and the combined ``<root>/whl/torch/``
page; ``%2B`` in hrefs, ``#sha256=`` fragments, PEP 658 ``.metadata`` files.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Served:
    url: str  # the index root: .../whl
    requested: list[str] = field(default_factory=list)
    #: (path, User-Agent) of every request
    agents: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class File:
    filename: str
    data: bytes
    metadata: str
    sha256: str | None = None  # what the page claims (default: the real hash)


def publish(root: Path, files: Mapping[str, Sequence[File]], project: str = "torch") -> None:
    """Write every variant's files and pages, and the combined page, under ``root/whl``."""
    combined = []
    for variant, entries in files.items():
        folder = root / "whl" / variant
        (folder / project).mkdir(parents=True, exist_ok=True)
        links = []
        for f in entries:
            (folder / f.filename).write_bytes(f.data)
            (folder / f"{f.filename}.metadata").write_text(f.metadata)
            sha = f.sha256 or hashlib.sha256(f.data).hexdigest()
            meta = hashlib.sha256(f.metadata.encode()).hexdigest()
            quoted = f.filename.replace("+", "%2B")
            attrs = f'data-dist-info-metadata="sha256={meta}" data-core-metadata="sha256={meta}"'
            links.append(f'<a href="/whl/{variant}/{quoted}#sha256={sha}" {attrs}>{f.filename}</a>')
        page = "<!DOCTYPE html>\n<html><body>\n" + "<br/>\n".join(links) + "\n</body></html>\n"
        (folder / project / "index.html").write_text(page)
        combined += links
    (root / "whl" / project).mkdir(parents=True, exist_ok=True)
    (root / "whl" / project / "index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n" + "<br/>\n".join(combined) + "\n</body></html>\n"
    )


@contextmanager
def serve(root: Path, *, max_age: int | None = None, latency: float = 0.0) -> Iterator[Served]:
    """Serve ``root`` on 127.0.0.1; the result logs every path requested. ``max_age``:
    every answer says ``Cache-Control: max-age=N``, as PyPI's do (600). ``latency``:
    seconds each answer waits before it starts, as a server across a network would
    (requests in parallel wait in parallel)."""
    served = Served(url="")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def send_response(self, code: int, message: str | None = None) -> None:
            if latency:
                time.sleep(latency)
            super().send_response(code, message)

        def end_headers(self) -> None:
            if max_age is not None:
                self.send_header("Cache-Control", f"max-age={max_age}")
            super().end_headers()

        def log_message(self, format: str, *args: object) -> None:
            served.requested.append(self.path)
            served.agents.append((self.path, self.headers.get("User-Agent", "")))

        def send_head(self) -> Any:
            """A folder's ``index.json`` (PEP 691) to a client that asks for JSON."""
            page = Path(self.translate_path(self.path)) / "index.json"
            if _JSON in self.headers.get("Accept", "") and page.is_file():
                body = page.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", _JSON)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return io.BytesIO(body)
            return super().send_head()

    class Server(http.server.ThreadingHTTPServer):
        # uv opens dozens of connections at once; socketserver's backlog of 5 drops the
        # rest's SYNs, which the kernel retries after a second: a stall no real index has
        request_queue_size = 128
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that hangs up early (uv does) is not the test's business

    httpd = Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    served.url = f"http://127.0.0.1:{httpd.server_port}/whl"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def serve_in_a_process(root: Path, *, latency: float = 0.0) -> Iterator[str]:
    """:func:`serve` in a process of its own, for benchmarks: a server thread in the
    measuring process would share its GIL with the code measured. Yields the URL."""
    import subprocess
    import sys

    server = subprocess.Popen(
        [sys.executable, __file__, str(root), str(latency)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    import sys

    with serve(Path(sys.argv[1]), latency=float(sys.argv[2])) as served:
        print(served.url, flush=True)
        while True:
            time.sleep(3600)
