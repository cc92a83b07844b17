"""Benchmark :func:`torchup.export.wheelhouse.build_wheelhouse` against ``pip download``
of the same pins, same local server, same run.

A generated closure (``--wheels`` wheels of ``--mb`` MiB of incompressible bytes each,
as in a real torch wheel) is served from a folder on 127.0.0.1 by tests/test_wheelhouse.py's
``FileServer`` (a threaded server with HTTP Range), with PEP 503 pages. The lock is
written by hand (PEP 751: url, size, sha256 of each file). Then, interleaved, ``--runs``
times:

- ``wheelhouse cold``: ``build_wheelhouse(lock, fresh DIR)`` in this process (``--jobs``
  threads; hashing, PEP 658 metadata, pages and the rewritten lock included);
- ``wheelhouse-proc cold``: the same in a fresh ``python -c`` process, so that it pays
  the interpreter's start and imports as pip does;
- ``pip cold``: ``python -m pip download --no-deps --no-cache-dir -d fresh DIR`` of the
  same ``name==version`` pins from the same index, as a subprocess;
- ``... warm``: the same again into the folder the cold run filled
  (a rerun: the wheelhouse must transfer 0 bytes).

The bytes each case made the server send are counted from the server's log.

    python bench/wheelhouse.py [--runs 5] [--wheels 12] [--mb 4] [--jobs 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from indexserver import make_wheel  # noqa: E402
from test_wheelhouse import FileServer  # noqa: E402
from torchup.export import _toml  # noqa: E402
from torchup.export.wheelhouse import build_wheelhouse  # noqa: E402


def publish(root: Path, wheels: int, mib: int) -> list[tuple[str, str, bytes]]:
    """``wheels`` generated wheels under root/files, PEP 503 pages under root/simple."""
    (root / "files").mkdir(parents=True)
    made = []
    for i in range(wheels):
        name, version = f"bench_pkg{i:02d}", "1.0"
        filename = f"{name}-{version}-py3-none-any.whl"
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        data = make_wheel(filename, meta, blob=mib << 20)
        (root / "files" / filename).write_bytes(data)
        page = root / "simple" / name.replace("_", "-") / "index.html"
        page.parent.mkdir(parents=True)
        sha = hashlib.sha256(data).hexdigest()
        page.write_text(f'<a href="/files/{filename}#sha256={sha}">{filename}</a>')
        made.append((name, version, data))
    return made


def write_lock(path: Path, url: str, made: list[tuple[str, str, bytes]]) -> None:
    packages = [
        {"name": name.replace("_", "-"), "version": version, "wheels": [{
            "name": f"{name}-{version}-py3-none-any.whl",
            "url": f"{url}/files/{name}-{version}-py3-none-any.whl",
            "size": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}]}
        for name, version, data in made
    ]  # fmt: skip
    doc = {"lock-version": "1.0", "created-by": "bench", "packages": packages}
    path.write_text(_toml.dumps(doc, inline=("wheels", "hashes")))


def served_bytes(server: FileServer, sizes: dict[str, int]) -> int:
    """What the server sent for files since its log was last cleared."""
    total = 0
    for entry in server.file_requests():
        name = entry.path.rsplit("/", 1)[-1]
        if entry.status == 200 and not entry.path.startswith("HEAD"):
            total += sizes.get(name, 0)
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--wheels", type=int, default=12)
    parser.add_argument("--mb", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="torchup-bench-wheelhouse-") as tmp:
        work = Path(tmp)
        made = publish(work / "site", args.wheels, args.mb)
        sizes = {f"{n}-{v}-py3-none-any.whl": len(d) for n, v, d in made}
        server = FileServer(work / "site")
        try:
            lock = work / "pylock.toml"
            write_lock(lock, server.url, made)
            times, sent = run(work, server, lock=lock, made=made, sizes=sizes, args=args)
        finally:
            server.close()
    report(times, sent, sum(sizes.values()), args)
    return 0


def run(
    work: Path,
    server: FileServer,
    *,
    lock: Path,
    made: list[tuple[str, str, bytes]],
    sizes: dict[str, int],
    args: argparse.Namespace,
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    env = {"PATH": os.environ["PATH"], "HOME": str(work / "home"), "PIP_CONFIG_FILE": os.devnull,
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
    pins = [f"{n}=={v}" for n, v, _ in made]
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-cache-dir",
           "--index-url", f"{server.url}/simple/", *pins]  # fmt: skip

    def wheelhouse(dest: Path) -> None:
        build_wheelhouse(lock, dest, jobs=args.jobs)

    script = (
        "import sys; from pathlib import Path; from torchup.export.wheelhouse import "
        "build_wheelhouse as b; "
        "b(Path(sys.argv[1]), Path(sys.argv[2]), jobs=int(sys.argv[3]))"
    )
    proc_env = {**env, "PYTHONPATH": str(ROOT / "src")}

    def wheelhouse_proc(dest: Path) -> None:
        cmd = [sys.executable, "-c", script, str(lock), str(dest), str(args.jobs)]
        subprocess.run(cmd, env=proc_env, check=True, capture_output=True)

    def pip_download(dest: Path) -> None:
        subprocess.run([*pip, "-d", str(dest)], env=env, check=True, capture_output=True)

    cases = {"wheelhouse": wheelhouse, "wheelhouse-proc": wheelhouse_proc, "pip": pip_download}
    times: dict[str, list[float]] = {}
    sent: dict[str, list[int]] = {}
    for run_no in range(args.runs):
        for name, fn in cases.items():
            dest = work / f"{name}-{run_no}"
            for state in ("cold", "warm"):
                server.log.clear()
                began = time.perf_counter()
                fn(dest)
                times.setdefault(f"{name} {state}", []).append(time.perf_counter() - began)
                sent.setdefault(f"{name} {state}", []).append(served_bytes(server, sizes))
            shutil.rmtree(dest)
    return times, sent


def report(
    times: dict[str, list[float]], sent: dict[str, list[int]], total: int,
    args: argparse.Namespace,
) -> None:  # fmt: skip
    med = {k: statistics.median(v) for k, v in times.items()}
    pip_version = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True,
                                 text=True, check=False).stdout.split(" from ")[0]  # fmt: skip
    print(f"{args.wheels} wheels, {total / 2**20:.1f} MiB in all; median of {args.runs} runs, "
          f"seconds; wheelhouse --jobs {args.jobs}; {pip_version}")  # fmt: skip
    for key in sorted(med):
        served = sorted(set(sent[key]))
        print(f"  {key:21} {med[key]:7.3f} s   bytes served: {', '.join(map(str, served))}")
    for state in ("cold", "warm"):
        for name in ("wheelhouse", "wheelhouse-proc"):
            ratio = med[f"{name} {state}"] / med[f"pip {state}"]
            print(f"  {name} / pip download, {state}: {ratio:.2f}x")
    warm = set(sent["wheelhouse warm"])
    print(f"  a wheelhouse rerun downloads {'0 bytes' if warm == {0} else warm}")


if __name__ == "__main__":
    sys.exit(main())
