"""Benchmark ``torchup lock torch torchvision torchaudio`` against bare ``uv pip compile
--format pylock.toml`` of the same pins, same local servers, same run.

The sources are tests/test_lock.py's: a PyTorch-layout index with a generated CPU
torch 2.8.0, torchvision 0.23.0 and torchaudio 2.8.0, and an index of stand-ins for
their dependencies (PEP 691 JSON with sizes as PyPI serves it, or with ``--pages html``
PEP 503 HTML alone, as a plain mirror does), served on 127.0.0.1 by ``http.server`` in
a process of its own (in this one, its threads would share the GIL with ``make_lock``).
The plan is made once; then, interleaved, for each case:

- ``uv``: ``uv pip compile`` with exactly the command line torchup runs
  (:func:`torchup.export.lock.compile_command`), as a subprocess;
- ``lock``: :func:`torchup.export.lock.make_lock` in this process (uv, the check against
  the plan, the sizes the HTML pages do not give), the plan given;
- ``plan+lock``: ``torchup.plan()`` then ``make_lock``, what ``torchup lock`` does,
  reported beside them (a planning step uv does not have);
- ``torchup lock``: the command itself, as a process (Python's start-up and imports
  included), against ``uv pip compile`` as a process;
- ``python+uv``: ``python -c pass`` then bare uv: the floor of any Python program that
  runs uv, so the least the command could take.

Cold: a fresh uv cache (and torchup cache) each run. Warm: the caches of a previous run.
Goal (issue 15): lock <= 1.1x uv cold, <= 1.0x warm.

    python bench/lock.py [--runs 7] [--pages json|html]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import localindex  # noqa: E402
import torchup  # noqa: E402
from test_lock import DEPENDENCIES, publish_family, publish_simple  # noqa: E402
from torchup.export.lock import compile_command, make_lock  # noqa: E402

BIN = Path(sys.executable).parent
UV = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
#: the command as users run it: the console script beside this Python
TORCHUP = BIN / ("torchup.exe" if os.name == "nt" else "torchup")
PY = str(sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob(
    "versions/3.11.*/bin/python"))[-1])  # fmt: skip
REQS = ["torch==2.8.0", "torchvision", "torchaudio"]


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--pages",
        choices=("json", "html"),
        default="json",
        help="the dependency index's pages: PEP 691 JSON with sizes, as PyPI serves them "
        "(default), or PEP 503 HTML only, as a plain mirror does (no sizes: torchup asks)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="milliseconds each answer of the servers waits before it starts, as an index "
        "across a network does (default 0: 127.0.0.1's own, the case least kind to torchup)",
    )
    args = parser.parse_args()
    if UV is None:
        print("uv is needed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="torchup-bench-lock-") as tmp:
        root = Path(tmp) / "site"
        publish_family(root)
        publish_simple(root, DEPENDENCIES, json_pages=args.pages == "json")
        with localindex.serve_in_a_process(root, latency=args.latency / 1000) as url:
            simple = url.removesuffix("/whl") + "/simple"
            times = run(Path(tmp), url, simple, args.runs)
    print(f"dependency pages: {args.pages}; latency {args.latency:g} ms")
    report(times, args.runs)
    return 0


def run(tmp: Path, torch_url: str, simple: str, runs: int) -> dict[str, list[float]]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp / "home"), "PIP_CONFIG_FILE": os.devnull}
    counter = iter(range(10**6))

    def env(warm: bool) -> dict[str, str]:
        tag = "warm" if warm else f"cold{next(counter)}"
        return {**base, "UV_CACHE_DIR": str(tmp / f"uv-{tag}"),
                "TORCHUP_CACHE_DIR": str(tmp / f"tu-{tag}")}  # fmt: skip

    def planned(e: dict[str, str]) -> torchup.Plan:
        return torchup.plan(REQS, python=PY, backend="cpu", torch_index_url=torch_url,
                            index_url=simple, env=e)  # fmt: skip

    assert UV is not None
    plan = planned(env(True))
    argv, stdin = compile_command(plan, uv=UV)

    def bare(e: dict[str, str]) -> None:
        subprocess.run(argv, input=stdin, env=e, capture_output=True, text=True, check=True)

    def locked(e: dict[str, str]) -> None:
        make_lock(plan, uv=UV, env=e)

    def both(e: dict[str, str]) -> None:
        make_lock(planned(e), uv=UV, env=e)

    out = tmp / "pylock.toml"
    cli = [str(TORCHUP), "lock", *REQS, "--python", PY, "--backend", "cpu",
           "--torch-index-url", torch_url, "--index-url", simple, "-o", str(out), "--force",
           "-q"]  # fmt: skip

    def command(e: dict[str, str]) -> None:
        subprocess.run(cli, env=e, capture_output=True, text=True, check=True)

    def floor(e: dict[str, str]) -> None:  # the least a Python program that runs uv takes
        subprocess.run([sys.executable, "-c", "pass"], env=e, check=True)
        bare(e)

    cases = {"uv": bare, "lock": locked, "plan+lock": both, "torchup lock": command,
             "python+uv": floor}  # fmt: skip
    for fn in cases.values():  # warm every cache (and this process's imports) once
        fn(env(True))
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, fn in cases.items():
            times.setdefault(f"{name} cold", []).append(timed(lambda fn=fn: fn(env(False))))
            times.setdefault(f"{name} warm", []).append(timed(lambda fn=fn: fn(env(True))))
    return times


def report(times: dict[str, list[float]], runs: int) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    version = subprocess.run(
        [UV or "uv", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"median of {runs} runs [fastest, slowest], seconds ({version})")
    for key in sorted(med):
        print(f"  {key:18} {med[key]:.3f}  [{min(times[key]):.3f}, {max(times[key]):.3f}]")
    print("ratios: the median of each round's ratio (a round times every case once, one "
          "after another, so a slower moment of the machine slows both sides)")  # fmt: skip
    for state, goal in (("cold", 1.1), ("warm", 1.0)):
        for name in ("lock", "plan+lock", "torchup lock", "python+uv"):
            rounds = zip(times[f"{name} {state}"], times[f"uv {state}"], strict=True)
            ratio = statistics.median(ours / theirs for ours, theirs in rounds)
            verdict = "meets" if ratio <= goal else "misses"
            print(f"  {name} / uv, {state}: {ratio:.2f}x  ({verdict} the goal <= {goal}x)")


if __name__ == "__main__":
    sys.exit(main())
