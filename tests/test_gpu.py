"""The GPU check: what only a machine with an NVIDIA GPU can show, and the check itself.

Tests marked ``gpu`` run with ``TORCHUP_GPU_TESTS=1`` on a machine with ``nvidia-smi``
(``bash bench/gpu_check.sh`` runs them in one call of well under 5 minutes): ``torchup
detect --json`` and torchup's ctypes NVML reading against the machine's own
``nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv``; ``plan
--backend auto`` against the generated PyTorch-layout index chooses a variant this driver
and these compute capabilities run (judged from the cited tables by tests/gpucheck.py's
own rules, not by torchup's); and, where torch is already installed, ``verify`` runs
its CUDA checks. Without a GPU they skip with their reason.

The unmarked tests run everywhere: they give the same comparisons a fake ``nvidia-smi``,
the compiled NVML stand-in and real plans for GPUs given by override, and show that each
comparison passes on agreement and fails on each kind of disagreement.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gpucheck
from gpucheck import SmiGpu
from indexserver import IndexServer
from test_accelerators import fake_nvml, nvml_config  # noqa: F401 (fixture)
from test_plan import pyenv
from torchup.hardware import nvidia as _nvidia
from torchup.hardware.accelerators import detect

H100 = SmiGpu("NVIDIA H100 80GB HBM3", "550.54.15", "9.0")
V100 = SmiGpu("Tesla V100-SXM2-32GB", "470.256.02", "7.0")


def fake_smi(bindir: Path, gpus: list[SmiGpu], *, driver: str | None = None) -> Path:
    """An ``nvidia-smi`` that answers any ``--query-gpu`` field list from ``gpus`` (in
    the asked order, with the header under ``--format=csv``); ``driver`` overrides the
    driver it reports to anything but the check's own query (a disagreement)."""
    bindir.mkdir(parents=True, exist_ok=True)
    table = [
        {"name": g.name, "driver_version": g.driver, "compute_cap": g.compute_cap,
         "index": str(i), "memory.total": "81559 MiB", "compute_mode": "Default"}
        for i, g in enumerate(gpus)
    ]  # fmt: skip
    script = bindir / "nvidia-smi"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"table, other = {table!r}, {driver!r}\n"
        "args = sys.argv[1:]\n"
        "query = next(a.split('=', 1)[1] for a in args if a.startswith('--query-gpu='))\n"
        "fields = query.split(',')\n"
        "mine = query == 'name,driver_version,compute_cap'\n"
        "if not any(a.startswith('--format=csv') and 'noheader' in a for a in args):\n"
        "    print(', '.join(fields))\n"
        "for row in table:\n"
        "    if other and not mine: row = {**row, 'driver_version': other}\n"
        "    print(', '.join(row.get(f, '[N/A]') for f in fields))\n"
    )
    script.chmod(0o755)
    return bindir


# -- the check, checked -----------------------------------------------------------------


def test_detection_agrees_with_a_matching_nvidia_smi_and_not_with_another(tmp_path: Path) -> None:
    bindir = fake_smi(tmp_path / "bin", [H100, H100])
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    smi = gpucheck.nvidia_smi(str(bindir / "nvidia-smi"))
    assert smi == [H100, H100]
    accel = detect(env=env, root=tmp_path, nvml_libraries=[])
    assert gpucheck.detect_agrees(accel.to_dict(), smi) == []
    # torchup reading another driver than nvidia-smi's own query reports: caught
    other = fake_smi(tmp_path / "other", [H100, H100], driver="535.104.05")
    accel = detect(env={"PATH": f"{other}:/usr/bin:/bin"}, root=tmp_path, nvml_libraries=[])
    assert gpucheck.detect_agrees(accel.to_dict(), smi) == [
        "detect says driver 535.104.05, nvidia-smi says 550.54.15"
    ]
    # fewer GPUs, and no GPU at all: caught
    assert gpucheck.detect_agrees(accel.to_dict(), [H100]) != []
    none = detect(env={"PATH": "/usr/bin:/bin"}, root=tmp_path, nvml_libraries=[])
    assert gpucheck.detect_agrees(none.to_dict(), smi)[0] == "detect says 'cpu', not 'cuda'"


def test_nvml_reading_is_compared_with_nvidia_smi(
    tmp_path: Path,
    fake_nvml: Path,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nvml_config(
        monkeypatch,
        tmp_path / "nvml.txt",
        ["driver 550.54.15", "cuda 12040", "gpu 9 0 85520809984 NVIDIA H100 80GB HBM3"],
    )
    facts = _nvidia.nvml_facts([str(fake_nvml)])
    assert gpucheck.nvml_agrees(facts, [H100]) == []
    assert gpucheck.nvml_agrees(facts, [V100]) == [
        "NVML says driver 550.54.15, nvidia-smi says 470.256.02",
        "NVML sees GPUs [('NVIDIA H100 80GB HBM3', '9.0')], "
        "nvidia-smi [('Tesla V100-SXM2-32GB', '7.0')]",
    ]


def _plan(server: IndexServer, env: dict[str, str], python: str, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "torchup", "plan", "torch", "--python", python,
         "--backend", "auto", "--index-url", server.pypi_url,
         "--torch-index-url", server.torch_url, "--json", *extra],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def plan_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("gpu-home")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
        "PIP_CONFIG_FILE": os.devnull,
        "TORCHUP_CACHE_DIR": str(home / "cache"),
    }


H100_580 = SmiGpu("NVIDIA H100 80GB HBM3", "580.65.06", "9.0")


@pytest.mark.parametrize(("gpu", "older"), [(H100_580, H100), (V100, None)])
def test_the_variant_judgement_follows_the_driver_and_the_arch(
    index_server: IndexServer, plan_env: dict[str, str], gpu: SmiGpu, older: SmiGpu | None
) -> None:
    """A plan made for a GPU (by override) passes the check for that GPU (the V100 node's
    driver 470 runs cu118 through minor version compatibility); the H100 plan for driver
    580 (CUDA 13) judged for the same GPU with driver 550 fails it, naming the driver."""
    env = {**plan_env, "TORCHUP_GPU_ARCHS": gpu.compute_cap,
           "TORCHUP_CUDA_DRIVER_VERSION": gpu.driver}  # fmt: skip
    doc = _plan(index_server, env, pyenv("3.11"))
    assert gpucheck.variant_runs(doc, [gpu]) == [], doc["packages"]
    if older is not None:
        problems = gpucheck.variant_runs(doc, [older])
        assert problems, doc["packages"]
        assert "needs driver >=" in problems[0], problems
    ancient = SmiGpu(gpu.name, "418.87.01", gpu.compute_cap)  # below every CUDA 11 and 12
    assert "needs driver >=" in gpucheck.variant_runs(doc, [ancient])[0]


def test_the_variant_judgement_rejects_a_cpu_plan_and_missing_kernels() -> None:
    cpu = {"packages": [{"name": "torch", "version": "2.8.0+cpu"}]}
    assert gpucheck.variant_runs(cpu, [H100]) == [
        "plan chose 2.8.0+cpu (not a CUDA build) on a machine with an NVIDIA GPU"
    ]
    blackwell = SmiGpu("NVIDIA GeForce RTX 5090", "580.65.06", "12.0")
    cu126 = {"packages": [{"name": "torch", "version": "2.8.0+cu126"}]}
    (problem,) = gpucheck.variant_runs(cu126, [blackwell])
    assert problem.startswith("2.8.0+cu126 (")
    assert "has no kernels for NVIDIA GeForce RTX 5090" in problem
    assert gpucheck.arch_runs("5.0;6.0;7.0;7.5;8.0;8.6;9.0+PTX", "12.0")
    assert gpucheck.arch_runs("7.0;8.0", "7.5")  # 7.0's kernels run on 7.5
    assert not gpucheck.arch_runs("8.0;8.6", "7.5")
    assert not gpucheck.arch_runs("9.0", "12.0")  # no PTX: nothing for a newer major


def test_verify_of_a_cpu_torch_is_no_cuda_verification(torch_venv: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "torchup", "verify", "--python", str(torch_venv), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    problems = gpucheck.verify_ran_cuda(json.loads(done.stdout))
    assert any("no passing matmul on a CUDA device" in p for p in problems), problems


def test_the_gpu_check_script_skips_with_its_reason_here(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: the script would run the real check")
    script = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.sh"
    env = {**os.environ, "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no nvidia-smi on PATH" in done.stdout
    assert "skipped" in done.stdout
    assert "failed" not in done.stdout


# -- on a real GPU machine ---------------------------------------------------------------


def _smi() -> list[SmiGpu]:
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no nvidia-smi on PATH: this machine has no NVIDIA driver to check against")
    return gpucheck.nvidia_smi()


@pytest.mark.gpu
def test_detect_agrees_with_nvidia_smi() -> None:
    smi = _smi()
    done = subprocess.run(
        [sys.executable, "-m", "torchup", "detect", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    doc = json.loads(done.stdout)
    print(json.dumps({"nvidia-smi": [g.__dict__ for g in smi], "detect": doc}, indent=1))
    assert gpucheck.detect_agrees(doc, smi) == []


@pytest.mark.gpu
def test_nvml_through_ctypes_agrees_with_nvidia_smi() -> None:
    smi = _smi()
    facts = _nvidia.nvml_facts(_nvidia.NVML_LIBRARIES.get(sys.platform, ()))
    assert gpucheck.nvml_agrees(facts, smi) == []


@pytest.mark.gpu
def test_plan_auto_chooses_a_variant_this_machine_runs(
    index_server: IndexServer, plan_env: dict[str, str]
) -> None:
    smi = _smi()
    doc = _plan(index_server, plan_env, sys.executable)
    print(json.dumps({"packages": doc["packages"], "backend": doc["backend"]}, indent=1))
    assert gpucheck.variant_runs(doc, smi) == []


def _pythons_with_torch() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "torchup", "pythons", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = []
    for entry in json.loads(done.stdout or "{}").get("pythons", []):
        probe = subprocess.run(
            [entry["executable"], "-c", "import torch"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            found.append(entry["executable"])
    return found


@pytest.mark.gpu
def test_verify_runs_its_cuda_checks_where_torch_is_present() -> None:
    _smi()
    pythons = _pythons_with_torch()
    if not pythons:
        pytest.skip("no Python on this machine has torch installed")
    for python in pythons:
        done = subprocess.run(
            [sys.executable, "-m", "torchup", "verify", "--python", python, "--json"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        doc = json.loads(done.stdout)
        print(json.dumps({"python": python, "verify": doc}, indent=1))
        assert gpucheck.verify_ran_cuda(doc) == [], python
