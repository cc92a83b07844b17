"""Project-wide checks: lint, types, and a lean start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_is_clean() -> None:
    proc = _run("-m", "ruff", "check", "src", "tests", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean() -> None:
    proc = _run("-m", "mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_import_stays_lean() -> None:
    # httpx and the index client load only when a page must really be fetched.
    code = (
        "import sys, torchup.cli, torchup.api; "
        "print(sorted(m for m in ('httpx', 'platformdirs') if m in sys.modules))"
    )
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
