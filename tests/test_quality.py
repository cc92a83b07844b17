"""Project-wide checks: lint, types, and a lean start-up."""

from __future__ import annotations

import os
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


def test_a_plan_for_a_chosen_backend_loads_no_probes(tmp_path: Path) -> None:
    # With --backend given, install's planning path never loads the accelerator probes,
    # the forcing or verify code, or the HTTP client (a file:// index, offline).
    from test_plan import pyenv

    wheel = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    page = tmp_path / "whl" / "cpu" / "torch"
    page.mkdir(parents=True)
    (page.parent / wheel).write_bytes(b"")
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    href = f"../{wheel.replace('+', '%2B')}#sha256={empty}"
    (page / "index.html").write_text(f'<a href="{href}">{wheel}</a>\n')
    (tmp_path / "none").mkdir()  # an empty PyPI
    argv = [
        "torchup", "install", "torch", "--python", pyenv("3.11"), "--backend", "cpu",
        "--torch-index-url", (tmp_path / "whl").as_uri(),
        "--index-url", (tmp_path / "none").as_uri(),
        "--venv", str(tmp_path / "v"), "--dry-run", "--offline", "-q",
    ]  # fmt: skip
    heavy = (
        "httpx",
        "torchup.accelerators",
        "torchup._nvidia",
        "torchup.forcing",
        "torchup.verify",
    )
    code = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n    runpy.run_module('torchup', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "TORCHUP_CACHE_DIR": str(tmp_path / "cache"),
        "PIP_CONFIG_FILE": os.devnull,
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout
    assert not (tmp_path / "v").exists()
