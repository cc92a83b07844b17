"""Benchmark ``torchup matrix`` against the real indexes (network; opt-in by running it).

Every torch release x the three projects' pages (torch, torchvision, torchaudio) from
PyPI and, where it is reachable, every variant directory of the PyTorch index, fetched
concurrently; then the same command again from the cache. Each case runs the command as
a process (start-up included) with a private cache, a fresh one for ``cold``.
``pip index versions torch`` (one page, no table) is timed in the same run as the
yardstick the guide asks for.

Goal (issue 17): cold <= 5 s, warm <= 0.3 s.

    python bench/matrix.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--torch-index-url", help="another PyTorch index (a mirror, a folder)")
    args = parser.parse_args()
    matrix = [str(BIN / "torchup"), "matrix", "--json"]
    if args.torch_index_url:
        matrix += ["--torch-index-url", args.torch_index_url]
    pip = [sys.executable, "-m", "pip", "index", "versions", "torch", "--no-cache-dir"]
    cold: list[float] = []
    warm: list[float] = []
    pips: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "HOME": home, "PIP_CONFIG_FILE": os.devnull,
                   "TORCHUP_CACHE_DIR": str(Path(home) / "cache")}  # fmt: skip
            cold.append(timed(matrix, env))
            warm.append(timed(matrix, env))
            pips.append(timed(pip, env))
    cold_s, warm_s, pip_s = (statistics.median(x) for x in (cold, warm, pips))
    print(f"runs: {args.runs} (medians)")
    for name, value, goal in (("cold", cold_s, 5.0), ("warm", warm_s, 0.3)):
        verdict = "met" if value <= goal else "MISSED"
        print(f"torchup matrix {name}  {value:6.2f} s  goal <= {goal} s  {verdict}")
    print(f"pip index versions   {pip_s:6.2f} s  (one page, no table)")
    print(f"ratios: cold {cold_s / pip_s:.2f}x pip, warm {warm_s / pip_s:.2f}x pip")


if __name__ == "__main__":
    main()
