"""``--backend auto`` end to end on (faked) GPU machines: the real local PyTorch-layout
index over HTTP, real interpreters, and detection replaced by an ``Accelerator`` value
(library) or by the override variables a container build would set (CLI).

The worked cases are the issue's: GTX 1080 Ti + driver 580 + torch 2.8.0 -> cu126;
RTX 5090 + driver 580 + torch 2.8.0 -> cu129; RTX 5090 + torch 2.6.0 -> explained, with
2.7.0 (cu128) named; no GPU -> cpu; a driver too old for every CUDA build -> cpu with
the upgrade; mixed GPUs; companions missing from a variant.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import torchup
from indexserver import IndexServer
from test_plan import cli, local_indexes, pins, pyenv, run_plan
from torchup.hardware.accelerators import Accelerator, Gpu

PY = "3.11"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
        "PIP_CONFIG_FILE": os.devnull,
        "TORCHUP_CACHE_DIR": str(home / "cache"),
    }


def nvidia(driver: str, *gpus: tuple[str, str]) -> Accelerator:
    return Accelerator(
        kind="cuda",
        source="test",
        driver=driver,
        driver_source="nvidia-smi",
        gpus=tuple(
            Gpu(vendor="nvidia", index=i, name=n, arch=a, memory_mib=None, source="nvidia-smi")
            for i, (n, a) in enumerate(gpus)
        ),
    )


GTX_1080_TI = ("NVIDIA GeForce GTX 1080 Ti", "6.1")
RTX_5090 = ("NVIDIA GeForce RTX 5090", "12.0")


def on(server: IndexServer, env: dict[str, str], accel: Accelerator, *reqs: str) -> torchup.Plan:
    return run_plan(server, env, *reqs, python=pyenv(PY), accelerator=accel)


def verdicts(result: torchup.Plan) -> dict[str, str]:
    return {v.variant: ("ok" if v.ok else v.reason) for v in result.verdicts}


def test_gtx_1080_ti_gets_cu126_and_every_rejection_says_why(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    result = on(index_server, env, nvidia("580.65.06", GTX_1080_TI), "torch==2.8.0", "torchvision")
    assert result.ok, result.problems
    assert pins(result) == ["torch==2.8.0+cu126", "torchvision==0.23.0+cu126"]
    assert result.backend.name == "cu126"
    assert "GTX 1080 Ti (sm_61)" in result.backend.source
    assert verdicts(result) == {
        "cu129": "no kernels for sm_61 (NVIDIA GeForce GTX 1080 Ti)",
        "cu128": "no kernels for sm_61 (NVIDIA GeForce GTX 1080 Ti)",
        "cu126": "ok",
        "cpu": "CPU only; this machine has NVIDIA GPUs",
    }
    (command,) = result.commands
    assert command[command.index("--index-url") + 1] == f"{index_server.torch_url}/cu126"


def test_rtx_5090_gets_cu129_for_torch_2_8(index_server: IndexServer, env: dict[str, str]) -> None:
    result = on(index_server, env, nvidia("580.65.06", RTX_5090), "torch==2.8.0", "torchaudio")
    assert result.ok, result.problems
    assert pins(result) == ["torch==2.8.0+cu129", "torchaudio==2.8.0+cu129"]
    assert verdicts(result)["cu126"] == "no kernels for sm_120 (NVIDIA GeForce RTX 5090)"


def test_rtx_5090_with_torch_2_6_is_explained_with_the_oldest_torch_that_has_kernels(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    result = on(index_server, env, nvidia("580.65.06", RTX_5090), "torch==2.6.0")
    assert not result.ok
    (problem,) = result.problems
    assert problem.message == (
        "no cuda build of torch 2.6.0 runs on every GPU here (sm_120 (NVIDIA GeForce RTX "
        "5090)); the oldest torch with kernels for them is 2.7.0 (cu128)"
    )
    reasons = {r.reason for r in problem.rejected}
    for variant in ("cu118", "cu124", "cu126"):
        assert f"{variant}: no kernels for sm_120 (NVIDIA GeForce RTX 5090)" in reasons
    assert result.alternative_versions[0] == "torch==2.7.0"


def test_no_gpu_plans_the_cpu_build(index_server: IndexServer, env: dict[str, str]) -> None:
    result = on(index_server, env, Accelerator(kind="cpu", source="no GPU found"), "torch==2.8.0")
    assert result.ok
    assert pins(result) == ["torch==2.8.0+cpu"]
    assert result.backend.source == "default: auto, no accelerator (no GPU found)"


def test_driver_too_old_for_any_cuda_build_plans_cpu_with_the_upgrade(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    # 2.8.0's builds are all CUDA 12.x: the 12.x minor-compat floor is 525.60.13.
    result = on(index_server, env, nvidia("470.82.01", ("Tesla T4", "7.5")), "torch==2.8.0")
    assert result.ok
    assert pins(result) == ["torch==2.8.0+cpu"]
    assert any(
        "NVIDIA driver 470.82.01 is too old for every CUDA build" in w
        and "Upgrading the driver to >= 560.28.03 would unlock cu126 (torch 2.8.0)" in w
        for w in result.warnings
    ), result.warnings


def test_minor_version_compatibility_is_a_fallback_and_said(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    accel = nvidia("550.54.14", ("NVIDIA GeForce RTX 4090", "8.9"))
    pinned = on(index_server, env, accel, "torch==2.13.0")
    assert pins(pinned) == ["torch==2.13.0+cu126"]
    assert any("only through CUDA minor-version compatibility" in w for w in pinned.warnings)
    # Unpinned, a build that meets its strict minimum wins, and the newer one is named.
    free = on(index_server, env, accel, "torch")
    assert pins(free) == ["torch==2.7.0+cu118"]
    assert any(
        "torch 2.13.0 (cu126) needs NVIDIA driver >= 560.28.03" in w for w in free.warnings
    ), free.warnings


def test_mixed_gpus_take_the_build_that_covers_all_or_explain(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    pascal_and_ampere = nvidia("580.65.06", GTX_1080_TI, ("NVIDIA A100-SXM4-80GB", "8.0"))
    result = on(index_server, env, pascal_and_ampere, "torch==2.8.0")
    assert pins(result) == ["torch==2.8.0+cu126"]
    pascal_and_blackwell = nvidia("580.65.06", GTX_1080_TI, RTX_5090)
    result = on(index_server, env, pascal_and_blackwell, "torch==2.8.0")
    assert not result.ok
    (problem,) = result.problems
    assert "no torch build on this index has kernels for them all" in problem.message
    assert verdicts(result) == {
        "cu129": "no kernels for sm_61 (NVIDIA GeForce GTX 1080 Ti)",
        "cu128": "no kernels for sm_61 (NVIDIA GeForce GTX 1080 Ti)",
        "cu126": "no kernels for sm_120 (NVIDIA GeForce RTX 5090)",
        "cpu": "CPU only; this machine has NVIDIA GPUs",
    }


def test_rocm_and_xpu(index_server: IndexServer, env: dict[str, str]) -> None:
    amd = Accelerator(
        kind="rocm",
        source="kfd",
        gpus=(
            Gpu(
                vendor="amd",
                index=0,
                name="RX 7900 XTX",
                arch="gfx1100",
                memory_mib=None,
                source="kfd",
            ),
        ),
    )
    result = on(index_server, env, amd, "torch==2.8.0", "torchvision")
    assert pins(result) == ["torch==2.8.0+rocm6.4", "torchvision==0.23.0+rocm6.4"]
    intel = Accelerator(
        kind="xpu",
        source="sysfs",
        gpus=(Gpu(vendor="intel", index=0, name="Arc", arch=None, memory_mib=None, source="s"),),
    )
    assert pins(on(index_server, env, intel, "torch==2.8.0")) == ["torch==2.8.0+xpu"]


@pytest.fixture(scope="module")
def no_torchvision_in_cu129() -> Iterator[IndexServer]:
    """An index where torchvision was not published for cu129 (torch and torchaudio were)."""
    server = IndexServer.start(
        exclude=lambda project, variant, _f: project == "torchvision" and variant == "cu129"
    )
    try:
        yield server
    finally:
        server.close()


def test_companions_missing_from_a_variant_move_to_the_best_variant_that_has_them(
    no_torchvision_in_cu129: IndexServer, env: dict[str, str]
) -> None:
    accel = nvidia("580.65.06", RTX_5090)
    result = on(no_torchvision_in_cu129, env, accel, "torch==2.8.0", "torchvision")
    assert result.ok, result.problems
    assert pins(result) == ["torch==2.8.0+cu128", "torchvision==0.23.0+cu128"]
    alone = on(no_torchvision_in_cu129, env, accel, "torch==2.8.0")
    assert pins(alone) == ["torch==2.8.0+cu129"]


def test_cli_auto_with_override_variables_end_to_end(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    gpu_env = {**env, "TORCHUP_GPU_ARCHS": "6.1", "TORCHUP_CUDA_DRIVER_VERSION": "580.65.06"}
    args = (
        "plan",
        "torch==2.8.0",
        "torchvision",
        "--python",
        pyenv(PY),
        *local_indexes(index_server),
    )
    proc = cli(gpu_env, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [p["version"] for p in doc["packages"]] == ["2.8.0+cu126", "0.23.0+cu126"]
    assert doc["backend"]["name"] == "cu126"
    assert doc["accelerator"]["driver"] == {
        "version": "580.65.06",
        "source": "TORCHUP_CUDA_DRIVER_VERSION",
    }
    assert doc["variants"]["torch"] == "2.8.0"
    assert {v["variant"]: v["ok"] for v in doc["variants"]["verdicts"]} == {
        "cu129": False,
        "cu128": False,
        "cu126": True,
        "cpu": False,
    }
    text = cli(gpu_env, *args)
    assert text.returncode == 0
    assert "builds of torch 2.8.0 on this hardware:" in text.stdout
    assert "  cu128  no kernels for sm_61 (GPU 0)" in text.stdout
    assert "  cu126  runs  <- chosen" in text.stdout
    # --backend beats detection
    forced = cli(gpu_env, *args, "--backend", "cu129", "--json")
    assert [p["version"] for p in json.loads(forced.stdout)["packages"]] == [
        "2.8.0+cu129",
        "0.23.0+cu129",
    ]
    # a 5090 asking for 2.6.0: exit 1 with the explanation
    old = cli(
        {**gpu_env, "TORCHUP_GPU_ARCHS": "12.0"},
        "plan",
        "torch==2.6.0",
        "--python",
        pyenv(PY),
        *local_indexes(index_server),
    )
    assert old.returncode == 1
    assert "the oldest torch with kernels for them is 2.7.0 (cu128)" in old.stdout
