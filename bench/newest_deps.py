"""The scheduled check: does the suite still pass with the newest dependencies?

The suite itself installs from the hash-pinned lock (``requirements/test.txt``), so a new
release of a dependency cannot break it. This script is the early warning for the day
the lock is refreshed or a user installs torchup with today's releases: it builds a
throwaway venv with the newest releases of everything torchup and its tests declare,
shows what differs from the lock, and runs the suite there.

    python bench/newest_deps.py [PYTEST ARGS...]      # exit status: pytest's

Needs PyPI (run it on a schedule, or with ``TORCHUP_NETWORK_TESTS=1 pytest -m network``,
which runs it). Two checks are left out here because they hold only on the lock: that
the running packages are the locked ones, and that the newest tag oracle is the locked
packaging. To move the lock forward, run the command in the lock's header and commit it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_ONLY = (
    "--deselect=tests/test_quality.py::test_the_running_suite_is_installed_from_the_lock",
    "--deselect=tests/test_interpreters.py::test_the_oracle_of_new_pythons_is_the_locked_packaging",
)


def locked_versions() -> dict[str, str]:
    """The lock's pins that apply to this Python (its markers evaluated here)."""
    from packaging.markers import Marker

    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / "test.txt").read_text().splitlines():
        if line and line[0] not in " #":
            spec, _, marker = line.rstrip(" \\").partition(" ; ")
            name, _, version = spec.partition("==")
            if not marker or Marker(marker).evaluate():
                pins[name.lower().replace("_", "-")] = version
    return pins


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="torchup-newest-") as tmp:
        venv = Path(tmp) / "venv"
        python = venv / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--upgrade", "-e", f"{ROOT}[test]"],
            check=True,
        )
        listed = subprocess.run(
            [str(python), "-m", "pip", "list", "--format", "json"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        newest = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed)}
        locked = locked_versions()
        moved = sorted(n for n in locked if n in newest and newest[n] != locked[n])
        for name in moved:
            print(f"newer than the lock: {name} {locked[name]} -> {newest[name]}")
        if not moved:
            print("every locked package is still the newest release")
        args = argv or ["-q", "-m", "not network"]
        return subprocess.run(
            [str(python), "-m", "pytest", "-p", "no:cacheprovider", *LOCK_ONLY, *args],
            cwd=ROOT, check=False,
        ).returncode  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
