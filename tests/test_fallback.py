"""``auto`` with the PyTorch index unreachable: PyPI's build is planned, and installed
only where the machine can use it.

PyPI's torch for Linux x86_64 is a CUDA build (torch 2.13.0 pins CUDA 13.0 through
``cuda-toolkit``, its real METADATA in tests/data/metadata), with GBs of ``nvidia-*``
and ``cuda-*`` wheels. The local index server serves the captured PyPI pages and that
metadata on 127.0.0.1; nothing listens at the PyTorch index URL. Detection is set with
torchup's own overrides, standing in for the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from indexserver import IndexServer
from test_plan import env, pyenv

__all__ = ["env"]  # the module-scoped fixture, shared with test_plan

UNREACHABLE = "http://127.0.0.1:9/whl"  # nothing listens: the PyTorch index "is down"
NO_GPU = {"TORCHUP_GPU_ARCHS": "none"}
AMPERE = {"TORCHUP_GPU_ARCHS": "8.6"}


def torchup(
    server: IndexServer, env: dict[str, str], cwd: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "torchup", *args]
    argv += ["--python", pyenv("3.11"), "--index-url", server.pypi_url]
    argv += ["--torch-index-url", UNREACHABLE]
    return subprocess.run(
        argv, env={**env, **extra}, cwd=cwd, capture_output=True, text=True, check=False
    )


def test_plan_without_a_gpu_warns_that_pypis_build_is_cuda(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    proc = torchup(index_server, env, tmp_path, "plan", "torch==2.13.0", "--json", **NO_GPU)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["backend"]["name"] == "pypi"
    assert doc["packages"][0]["filename"].startswith("torch-2.13.0-cp311-cp311-manylinux")
    assert doc["fallback"]["cuda"] == "13.0"
    assert doc["fallback"]["usable"] is False
    [warning] = [w for w in doc["warnings"] if "PyTorch index could not be read" in w]
    assert "a CUDA 13.0 build" in warning
    assert "the CPU build is only on the PyTorch index" in warning


def test_install_without_a_gpu_stops_before_anything_is_made(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    venv = tmp_path / "v"
    proc = torchup(
        index_server, env, tmp_path, "install", "torch==2.13.0", "--venv", str(venv), **NO_GPU
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "PyPI's torch is a CUDA 13.0 build" in proc.stderr
    assert "the CPU build lives only on the PyTorch index" in proc.stderr
    assert "torchup install torch==2.13.0 --backend cpu --torch-index-url URL" in proc.stderr
    assert "torchup install torch==2.13.0 --backend pypi" in proc.stderr
    assert not venv.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_install_json_error_is_one_document(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    venv = tmp_path / "v"
    args = ("install", "torch==2.13.0", "--venv", str(venv), "--dry-run", "--json")
    proc = torchup(index_server, env, tmp_path, *args, **NO_GPU)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert "--backend pypi" in json.dumps(doc)


def test_backend_pypi_takes_the_cuda_build_knowingly(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    venv = tmp_path / "v"
    args = ("install", "torch==2.13.0", "--venv", str(venv), "--backend", "pypi", "--dry-run")
    proc = torchup(index_server, env, tmp_path, *args, **NO_GPU)
    assert proc.returncode == 0, proc.stderr
    assert "torch===2.13.0" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("driver", "says"),
    [
        ("580.65.06", "which needs NVIDIA driver >= 580.65.06: this driver runs it"),
        ("550.54.14", "this machine does not run it (driver 550.54.14 < 580.65.06)"),
    ],
)
def test_with_a_gpu_the_fallback_names_the_cuda_and_whether_the_driver_runs_it(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path, driver: str, says: str
) -> None:
    gpu = {**AMPERE, "TORCHUP_CUDA_DRIVER_VERSION": driver}
    proc = torchup(index_server, env, tmp_path, "plan", "torch==2.13.0", "--json", **gpu)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    [warning] = [w for w in doc["warnings"] if "PyTorch index could not be read" in w]
    assert "PyPI's torch, a CUDA 13.0 build" in warning
    assert says in warning
    assert doc["fallback"]["verdict"]["variant"] == "cu130"
    # where a GPU is detected the fallback stays: install goes ahead (here a dry run)
    venv = tmp_path / "v"
    args = ("install", "torch==2.13.0", "--venv", str(venv), "--dry-run")
    proc = torchup(index_server, env, tmp_path, *args, **gpu)
    assert proc.returncode == 0, proc.stderr
