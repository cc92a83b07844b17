"""Start-up before and after a change, in one run: the same interpreter runs the
``src/`` of git revision ``--before`` and of the working tree, interleaved.

Run: ``.venv/bin/python bench/startup.py --before REV [--runs N] [--out FILE]``

Measured for each tree:
- ``python -X importtime -m torchup plan --help``: the summed self time of every module
  imported (what ``-X importtime`` reports; process start-up not included), and how many
  of torchup's own modules load;
- the wall-clock median of ``python -m torchup plan --help`` (whole process);
- the wall-clock median of a warm ``torchup plan torch==2.8.0 --backend cpu`` for
  CPython 3.11 against the local index server (tests/indexserver.py), the plan
  benchmark's torchup row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from indexserver import IndexServer  # noqa: E402


def export(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def importtime(src: Path, env: dict[str, str]) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "torchup", "plan", "--help"],
        env={**env, "PYTHONPATH": str(src)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    total, ours = 0, 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|")
        total += int(self_us)
        ours += name.strip().startswith("torchup")
    return total / 1000, ours


def wall(argv: list[str], src: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, env={**env, "PYTHONPATH": str(src)}, capture_output=True, check=True)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    py311 = sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob(
        "versions/3.11.*/bin/python"))[-1]  # fmt: skip
    server = IndexServer.start()
    rows: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": export(args.before, Path(tmp) / "before"), "after": ROOT / "src"}
        env = {
            "PATH": os.environ["PATH"],
            "HOME": tmp,
            "PIP_CONFIG_FILE": os.devnull,
            "TORCHUP_CACHE_DIR": str(Path(tmp) / "cache"),
            "TORCHUP_GPU_ARCHS": "none",
        }
        plan = [sys.executable, "-m", "torchup", "plan", "torch==2.8.0", "--python", str(py311),
                "--backend", "cpu", "--index-url", server.pypi_url,
                "--torch-index-url", server.torch_url]  # fmt: skip
        for src in trees.values():  # warm the page cache and the interpreter cache
            wall(plan, src, env)
        for _ in range(args.runs):
            for name, src in trees.items():
                row = rows.setdefault(name, {"imports": [], "modules": [], "help": [], "plan": []})
                ms, ours = importtime(src, env)
                row["imports"].append(ms)
                row["modules"].append(ours)
                row["help"].append(
                    wall([sys.executable, "-m", "torchup", "plan", "--help"], src, env)
                )
                row["plan"].append(wall(plan, src, env))
    server.close()
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in rows.items()}
    lines = [
        f"Start-up, `{args.before}` (before) against the working tree (after), "
        f"{args.runs} interleaved runs each, medians, Python {sys.version.split()[0]}:",
        "",
        "| | before | after | after / before |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, label, unit, scale in (
        ("imports", "`-X importtime` self time, `plan --help`", "ms", 1),
        ("modules", "torchup modules imported by `plan --help`", "", 1),
        ("help", "`python -m torchup plan --help`, wall", "ms", 1000),
        ("plan", "warm `torchup plan torch==2.8.0 --backend cpu`, wall", "ms", 1000),
    ):
        b, a = med["before"][key] * scale, med["after"][key] * scale
        lines.append(f"| {label} | {b:.1f} {unit} | {a:.1f} {unit} | {a / b:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
