"""Project-wide checks: lint, types, and a lean start-up."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # the lock carries tomli for 3.10 (pytest and mypy need it there too)
    import tomli as tomllib

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
        "import sys, torchup.cli.main, torchup.choose.api; "
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
        "torchup.hardware.accelerators",
        "torchup.hardware.nvidia",
        "torchup.choose.forcing",
        "torchup.check.verify",
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


# --- the test dependencies come from the lock ----------------------------------------


def _locked() -> dict[str, list[tuple[str, str, int]]]:
    """name -> [(version, marker, number of hashes)] from uv's hash-pinned requirements/test.txt."""
    pins: dict[str, list[tuple[str, str, int]]] = {}
    last: list[tuple[str, str, int]] = []
    for line in (ROOT / "requirements" / "test.txt").read_text().splitlines():
        if line.strip().startswith("--hash=sha256:"):
            version, marker, hashes = last[-1]
            last[-1] = (version, marker, hashes + 1)
        elif line and line[0] not in " #":
            spec, _, marker = line.rstrip(" \\").partition(" ; ")
            name, _, version = spec.partition("==")
            last = pins.setdefault(canonicalize_name(name), [])
            last.append((version, marker.strip(), 0))
    return pins


def test_every_declared_dependency_is_locked_within_its_range() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    declared = [
        *project["dependencies"],
        *project["optional-dependencies"]["test"],
        *pyproject["build-system"]["requires"],
    ]
    locked = _locked()
    for text in declared:
        req = Requirement(text)
        pins = locked.get(canonicalize_name(req.name))
        assert pins, f"{req.name} is declared but not in requirements/test.txt"
        for version, _, hashes in pins:
            assert req.specifier.contains(version, prereleases=True), (text, version)
            assert hashes, f"{req.name}=={version} has no --hash"


def test_the_running_suite_is_installed_from_the_lock() -> None:
    """Every locked package that applies here is installed at exactly its pin."""
    for name, pins in _locked().items():
        wanted = [v for v, marker, _ in pins if not marker or Marker(marker).evaluate()]
        if wanted:
            installed = importlib.metadata.version(name)
            assert installed == wanted[0], (
                f"{name} {installed} is installed, the lock pins {wanted[0]}: "
                "install with the README's test command"
            )


@pytest.mark.network
def test_the_suite_passes_with_the_newest_dependencies() -> None:
    """The scheduled check (bench/newest_deps.py): the next break is seen before users see it."""
    proc = _run("bench/newest_deps.py", "-q", "-x", "-m", "not network")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.network
def test_the_oldest_supported_python_installs_torchup_and_reads_a_lock(tmp_path: Path) -> None:
    """Python 3.10 has no tomllib: the tomli dependency (for 3.10 only) reads the lock.
    From PyPI: this machine's local mirror has tomli for CPython 3.11 only."""
    python = sorted(Path.home().glob(".pyenv/versions/3.10.*/bin/python"))
    if not python:
        pytest.skip("needs a pyenv CPython 3.10")
    venv = tmp_path / "v"
    subprocess.run([str(python[-1]), "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)],
                   check=True, env=env)  # fmt: skip
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "x"\nversion = "1.0"\n'
        '[[packages.wheels]]\nname = "x-1.0-py3-none-any.whl"\n'
        'url = "https://example.invalid/x-1.0-py3-none-any.whl"\n'
        f'hashes = {{sha256 = "{"0" * 64}"}}\n'
    )
    code = (
        "import sys; from pathlib import Path; from torchup.export.pylock import read_lock; "
        "print([p.name for p in read_lock(Path(sys.argv[1])).packages])"
    )
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(lock)],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['x']"
