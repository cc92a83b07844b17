"""The real CPU torch in a venv, built offline: shared by the verify and doctor tests.

The wheel ``torch==2.13.0+cpu`` comes from pip's configured find-links folder and its
dependencies from the machine's local package index, installed with uv (else pip);
never from the internet, and never a CUDA torch. ``conftest.torch_venv`` builds it once
per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
PYTHON311 = PYENV_VERSIONS / "3.11.7" / "bin" / "python"
WHEELS = Path("/opt/wheels")  # pip's configured find-links folder on this machine
LOCAL_INDEX = Path("/opt/pypi/simple")  # a PEP 503 index of the dependencies, on disk
LOCAL_FILES = Path("/opt/pypi/files")  # the same files, flat, for pip --find-links
TORCH_PIN = "torch==2.13.0+cpu"


def quiet_env() -> dict[str, str]:
    """os.environ without installer settings that could point at a remote index, and
    with bytecode writing on, so the first import of torch caches its .pyc files."""
    drop = ("PIP_", "UV_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def torch_wheel() -> Path | None:
    found = sorted(WHEELS.glob("torch-2.13.0+cpu-cp311-*.whl"))
    return found[0] if found else None


def available() -> bool:
    return PYTHON311.exists() and torch_wheel() is not None and LOCAL_INDEX.is_dir()


def uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv")


def build(root: Path) -> Path:
    """A CPython 3.11 venv at ``root/torch-venv`` with the real CPU torch; its python.

    The installer's cache (~750 MB) is removed once the install is done.
    """
    venv = root / "torch-venv"
    env = quiet_env()
    uv_path = uv()
    if uv_path:
        subprocess.run(
            [uv_path, "venv", "--no-config", "-q", "--python", str(PYTHON311), str(venv)],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        cmd = [
            uv_path, "pip", "install", "--no-config", "--offline", "-q",
            "--python", str(venv / "bin" / "python"),
            "--index-url", LOCAL_INDEX.as_uri(), "--find-links", str(WHEELS),
            "--cache-dir", str(root / "uv-cache"),
            TORCH_PIN,
        ]  # fmt: skip
    else:
        subprocess.run(
            [str(PYTHON311), "-m", "venv", "--without-pip", str(venv)],
            check=True, capture_output=True,
        )  # fmt: skip
        env["PIP_CONFIG_FILE"] = os.devnull
        cmd = [
            str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
            "--find-links", str(WHEELS), "--find-links", str(LOCAL_FILES),
            TORCH_PIN,
        ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    shutil.rmtree(root / "uv-cache", ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv / "bin" / "python"
