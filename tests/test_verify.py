"""``torchup verify`` against real interpreters and a real torch.

One venv per session (``conftest.torch_venv``, built by tests/realtorch.py) gets the
real CPU wheel ``torch==2.13.0+cpu`` from pip's configured find-links folder, installed
offline (uv, else pip) with its dependencies from the machine's local package index,
never from the internet. The other targets are real venvs made with ``python -m venv
--without-pip`` holding hand-written fakes: a ``torch`` that hangs or kills its
interpreter, a ``torchvision`` whose installed metadata pins another torch. The judging
functions are pure and tested directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from realtorch import PYTHON311
from realtorch import quiet_env as _quiet_env
from torchup.check.verify import (
    SeenDevice,
    VerifyReport,
    build_kind,
    companion_check,
    hardware_checks,
    verify,
)
from torchup.errors import InterpreterError
from torchup.hardware.accelerators import Accelerator, Gpu

CPU = Accelerator(kind="cpu", source="test")
RTX_4090 = Gpu(
    vendor="nvidia", index=0, name="NVIDIA GeForce RTX 4090", arch="8.9", memory_mib=24564,
    source="test",
)  # fmt: skip
CUDA = Accelerator(
    kind="cuda", source="test", gpus=(RTX_4090,), driver="580.65.06", driver_source="test"
)


def _base_python() -> Path:
    return PYTHON311 if PYTHON311.exists() else Path(sys.executable)


def _venv(path: Path, base: Path | None = None) -> Path:
    """A venv at ``path`` made by ``base`` (default CPython 3.11); its python."""
    subprocess.run(
        [str(base or _base_python()), "-m", "venv", "--without-pip", str(path)],
        check=True,
        capture_output=True,
    )
    return path / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3*/site-packages")
    return site


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture(scope="session")
def env() -> dict[str, str]:
    return _quiet_env()


@pytest.fixture(scope="session")
def torch_report(torch_venv: Path, env: dict[str, str]) -> VerifyReport:
    return verify(str(torch_venv), accelerator=CPU, env=env)


def _check(report: VerifyReport, check_id: str) -> dict[str, object]:
    found = [c.to_dict() for c in report.checks if c.id == check_id]
    assert found, f"no check {check_id!r} in {[c.id for c in report.checks]}"
    return found[0]


# --- end to end with the real torch ---------------------------------------------------


def test_real_torch_passes_with_tensor_math_and_autograd(torch_report: VerifyReport) -> None:
    report = torch_report
    assert report.ok, [c for c in report.checks if c.status != "pass"]
    assert report.torch == "2.13.0+cpu"
    assert report.local == "cpu"
    assert report.build["cuda"] is None
    assert report.build["hip"] is None
    assert [d.id for d in report.devices] == ["cpu"]
    for check_id in ("import-torch", "devices", "tensor-op", "autograd", "matmul:cpu"):
        check = _check(report, check_id)
        assert check["status"] == "pass", check
        assert isinstance(check["seconds"], float)
    assert _check(report, "build-matches-hardware")["status"] == "pass"
    assert "[5, 7, 9]" in str(_check(report, "autograd")["detail"])
    assert report.companions == {}  # neither companion is installed


def test_report_json_shape(torch_report: VerifyReport) -> None:
    doc = json.loads(json.dumps(torch_report.to_dict()))
    assert doc["schema"] == 1
    assert doc["ok"] is True
    assert doc["torch"] == {"version": "2.13.0+cpu", "local": "cpu"}
    assert set(doc) == {
        "schema", "ok", "python", "torch", "build", "devices", "companions", "checks", "seconds",
    }  # fmt: skip
    assert set(doc["checks"][0]) == {"id", "status", "detail", "seconds", "fix"}
    assert Path(doc["python"]).parent.parent.name == "torch-venv"


def test_imports_only_skips_the_computations(torch_venv: Path, env: dict[str, str]) -> None:
    report = verify(str(torch_venv), accelerator=CPU, env=env, computations=False)
    assert [(c.id, c.status) for c in report.checks] == [
        ("import-torch", "pass"), ("devices", "pass"), ("build-matches-hardware", "pass"),
    ]  # fmt: skip
    assert report.torch == "2.13.0+cpu"


def test_cpu_build_on_a_gpu_machine_fails_with_the_fix(
    torch_venv: Path, env: dict[str, str]
) -> None:
    report = verify(str(torch_venv), accelerator=CUDA, env=env)
    assert not report.ok
    check = _check(report, "cpu-build-on-gpu")
    assert check["status"] == "fail"
    assert "RTX 4090" in str(check["detail"])
    venv = torch_venv.parent.parent
    assert check["fix"] == f"torchup install torch --backend auto --venv {venv}"
    # the rest still ran and still proves the CPU build itself works
    assert _check(report, "autograd")["status"] == "pass"
    assert [c.id for c in report.checks if c.status == "fail"] == ["cpu-build-on-gpu"]


def test_companion_pinned_to_another_torch_fails(
    torch_venv: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # A venv that sees the real torch through a .pth file, plus a fake torchvision whose
    # metadata pins torch 2.12.0 and whose C++ operator is missing (as the real mismatch
    # looks), and a fake torchaudio that fits.
    python = _venv(tmp_path / "overlay")
    site = _site_packages(tmp_path / "overlay")
    (site / "real_torch.pth").write_text(f"{_site_packages(torch_venv.parent.parent)}\n")
    _write(
        site,
        {
            "torchvision/__init__.py": """
                __version__ = "0.27.0+cpu"
                from . import ops
            """,
            "torchvision/ops.py": """
                def nms(boxes, scores, threshold):
                    raise RuntimeError("operator torchvision::nms does not exist")
            """,
            "torchvision-0.27.0+cpu.dist-info/METADATA": """
                Metadata-Version: 2.1
                Name: torchvision
                Version: 0.27.0+cpu
                Requires-Dist: numpy
                Requires-Dist: torch==2.12.0
            """,
            "torchaudio/__init__.py": """
                __version__ = "2.11.0+cpu"
            """,
            "torchaudio/functional.py": """
                def gain(waveform, gain_db):
                    return waveform * (10.0 ** (gain_db / 20.0))
            """,
            "torchaudio-2.11.0+cpu.dist-info/METADATA": """
                Metadata-Version: 2.1
                Name: torchaudio
                Version: 2.11.0+cpu
                Requires-Dist: torch>=2.11
            """,
        },
    )
    report = verify(str(python), accelerator=CPU, env=env)
    assert report.torch == "2.13.0+cpu"
    assert report.companions == {"torchaudio": "2.11.0+cpu", "torchvision": "0.27.0+cpu"}
    pairing = _check(report, "torchvision-matches-torch")
    assert pairing["status"] == "fail"
    assert "requires torch==2.12.0" in str(pairing["detail"])
    overlay = tmp_path / "overlay"
    assert pairing["fix"] == (
        f"torchup install torch==2.13.0 torchvision --backend cpu --venv {overlay}"
    )
    nms = _check(report, "torchvision-nms:cpu")
    assert nms["status"] == "fail"
    assert "torchvision::nms does not exist" in str(nms["detail"])
    assert _check(report, "import-torchvision")["status"] == "pass"
    assert _check(report, "torchaudio-matches-torch")["status"] == "pass"
    assert _check(report, "torchaudio-gain")["status"] == "pass"
    ids = [c.id for c in report.checks]
    assert ids.index("torchvision-matches-torch") == ids.index("import-torchvision") - 1
    assert not report.ok


# --- targets without a working torch --------------------------------------------------


def test_venv_without_torch_is_a_failed_check(tmp_path: Path, env: dict[str, str]) -> None:
    python = _venv(tmp_path / "bare")
    report = verify(str(python), accelerator=CPU, env=env)
    assert not report.ok
    assert report.torch is None
    check = _check(report, "import-torch")
    assert check["status"] == "fail"
    assert "No module named 'torch'" in str(check["detail"])
    # into the venv examined: `--python` alone would install into ./.venv instead
    assert check["fix"] == f"torchup install torch --venv {tmp_path / 'bare'}"
    assert [c.id for c in report.checks] == ["import-torch"]


def test_without_an_accelerator_detection_runs(tmp_path: Path, env: dict[str, str]) -> None:
    python = _venv(tmp_path / "bare")
    report = verify(str(python), env=env)
    assert _check(report, "import-torch")["status"] == "fail"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import os\nos._exit(3)\n", "exited with status 3"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "died of SIGSEGV"),
        # the crash's own frame is named, not the probe's way into it
        ("import ctypes\nctypes.string_at(0)\n", 'torch/__init__.py", line 2'),
        ("import os\nprint('hello from torch')\nos._exit(0)\n", "hello from torch"),
    ],
    ids=["exit", "segfault", "segfault-in-torch", "junk"],
)
def test_torch_that_kills_the_interpreter_is_a_failed_check(
    tmp_path: Path, env: dict[str, str], body: str, expected: str
) -> None:
    python = _venv(tmp_path / "crash")
    _write(_site_packages(tmp_path / "crash"), {"torch/__init__.py": body})
    report = verify(str(python), accelerator=CPU, env=env, timeout=60)
    check = _check(report, "import-torch")
    assert check["status"] == "fail"
    assert expected in str(check["detail"])
    assert check["fix"] == f"torchup install torch --venv {tmp_path / 'crash'}"
    assert not report.ok


def test_torch_that_hangs_is_stopped_at_the_timeout(tmp_path: Path, env: dict[str, str]) -> None:
    python = _venv(tmp_path / "hang")
    _write(
        _site_packages(tmp_path / "hang"), {"torch/__init__.py": "import time\ntime.sleep(120)\n"}
    )
    began = time.monotonic()
    report = verify(str(python), accelerator=CPU, env=env, timeout=3)
    assert time.monotonic() - began < 30
    check = _check(report, "import-torch")
    assert check["status"] == "fail"
    assert "did not finish within 3 s" in str(check["detail"])


def test_a_missing_or_broken_interpreter_raises(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(InterpreterError, match="does not exist"):
        verify(str(tmp_path / "no-python"), accelerator=CPU, env=env)
    broken = tmp_path / "python3"
    broken.write_text("#!/bin/sh\necho 'error: cannot find libpython' >&2\nexit 127\n")
    broken.chmod(0o755)
    with pytest.raises(InterpreterError, match="cannot find libpython"):
        verify(str(broken), accelerator=CPU, env=env)
    # a Python too old to parse the probe (older than 2.7 and 3.6; see test_verify_old)
    ancient = tmp_path / "python1.5"
    ancient.write_text("#!/bin/sh\necho 'SyntaxError: invalid syntax' >&2\nexit 1\n")
    ancient.chmod(0o755)
    with pytest.raises(InterpreterError, match=r"does not parse there .*Python 2\.7 or 3\.6\+"):
        verify(str(ancient), accelerator=CPU, env=env)


# --- judging the facts ----------------------------------------------------------------

CUDA_128 = {
    "cuda": "12.8",
    "hip": None,
    "xpu": None,
    "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"],
}
GPU0 = SeenDevice(id="cuda:0", name="NVIDIA GeForce RTX 4090", arch="8.9")
CPU0 = SeenDevice(id="cpu", name="x86_64")


def _ids(checks: list[object]) -> list[tuple[str, str]]:
    return [(c.id, c.status) for c in checks]  # type: ignore[attr-defined]


def test_build_kind() -> None:
    assert build_kind(CUDA_128) == "cuda"
    assert build_kind({"cuda": None, "hip": "6.4.43482", "xpu": None}) == "rocm"
    assert build_kind({"xpu": "20250101"}) == "xpu"
    assert build_kind({}) == "cpu"


def test_cuda_build_covering_the_gpu_passes() -> None:
    checks = hardware_checks(CUDA_128, [CPU0, GPU0], CUDA, python="py")
    assert _ids(checks) == [("build-matches-hardware", "pass")]
    assert "sm_89" in checks[0].detail


def test_cuda_build_with_no_visible_gpu_warns() -> None:
    checks = hardware_checks(CUDA_128, [CPU0], CPU, python="py")
    assert _ids(checks) == [("gpu-build-no-gpu", "warn")]
    assert checks[0].fix is None


def test_gpus_hidden_by_cuda_visible_devices_warn_with_the_unset() -> None:
    hidden = Accelerator(
        kind="cuda",
        source="test",
        gpus=(RTX_4090,),
        visible_devices=(("CUDA_VISIBLE_DEVICES", "-1"),),
    )
    checks = hardware_checks(CUDA_128, [CPU0], hidden, python="py")
    assert _ids(checks) == [("gpu-build-no-gpu", "warn")]
    assert checks[0].fix == "unset CUDA_VISIBLE_DEVICES"


def test_cuda_build_that_cannot_reach_the_detected_gpu_fails() -> None:
    build = {**CUDA_128, "device_warnings": "The NVIDIA driver on your system is too old"}
    checks = hardware_checks(build, [CPU0], CUDA, python="/venv/bin/python")
    assert _ids(checks) == [("gpu-not-usable", "fail")]
    assert "driver on your system is too old" in checks[0].detail
    assert checks[0].fix == "torchup install torch --backend auto --python /venv/bin/python"


def test_gpu_without_kernels_in_the_arch_list_fails_with_the_arch() -> None:
    pascal = SeenDevice(id="cuda:0", name="NVIDIA GeForce GTX 1080 Ti", arch="6.1")
    checks = hardware_checks(CUDA_128, [CPU0, pascal], CUDA, python="py")
    assert _ids(checks) == [("gpu-arch-unsupported", "fail")]
    assert "sm_61" in checks[0].detail
    assert "GTX 1080 Ti" in checks[0].detail
    # PTX for 12.0 is JIT-compiled for a newer architecture
    newer = SeenDevice(id="cuda:0", name="future", arch="12.1")
    assert _ids(hardware_checks(CUDA_128, [newer], CUDA, python="py"))[0][1] == "pass"


def test_rocm_gfx_targets_are_compared_without_features() -> None:
    build = {"cuda": None, "hip": "6.4.43482", "arch_list": ["gfx90a", "gfx942", "gfx1100"]}
    amd = Accelerator(kind="rocm", source="test")
    mi210 = SeenDevice(id="cuda:0", name="AMD Instinct MI210", arch="gfx90a:sramecc+:xnack-")
    navi = SeenDevice(id="cuda:0", name="AMD Radeon RX 6800", arch="gfx1030")
    assert _ids(hardware_checks(build, [mi210], amd, python="py"))[0][1] == "pass"
    assert _ids(hardware_checks(build, [navi], amd, python="py")) == [
        ("gpu-arch-unsupported", "fail")
    ]


def test_cuda_build_on_an_amd_machine_fails() -> None:
    amd = Accelerator(kind="rocm", source="test")
    assert _ids(hardware_checks(CUDA_128, [CPU0], amd, python="py")) == [
        ("gpu-build-mismatch", "fail")
    ]


def test_cpu_build_on_a_mac_without_mps_warns() -> None:
    mac = Accelerator(kind="mps", source="test")
    checks = hardware_checks({"mps": False, "mps_built": True}, [CPU0], mac, python="py")
    assert _ids(checks) == [("mps-unavailable", "warn")]
    checks = hardware_checks({"mps": True}, [CPU0], mac, python="py")
    assert _ids(checks) == [("build-matches-hardware", "pass")]


def test_companion_pin_admits_local_and_prerelease_torch() -> None:
    facts = {"dist_version": "0.28.0+cu128", "requires": ["torch==2.13.0"]}
    assert companion_check("torchvision", facts, "2.13.0+cu128", {}, python="py").status == "pass"
    nightly = {"dist_version": "0.29.0.dev20260101", "requires": ["torch==2.14.0.dev20260101"]}
    check = companion_check("torchvision", nightly, "2.14.0.dev20260101+cpu", {}, python="py")
    assert check.status == "pass"


def test_companion_of_another_variant_fails() -> None:
    facts = {"dist_version": "0.28.0+cu128", "requires": ["torch==2.13.0"]}
    check = companion_check("torchvision", facts, "2.13.0+cpu", {}, python="/v/bin/python")
    assert check.status == "fail"
    assert "cu128 build" in check.detail
    assert check.fix == (
        "torchup install torch==2.13.0 torchvision --backend cpu --python /v/bin/python"
    )
    venv = companion_check(
        "torchvision", facts, "2.13.0+cpu", {}, python="/v/bin/python", target=("--venv", "/v")
    )
    assert venv.fix == "torchup install torch==2.13.0 torchvision --backend cpu --venv /v"
    # no label: the CUDA version torchvision reports, against torch's build facts
    plain = {"dist_version": "0.28.0", "requires": ["torch==2.13.0"], "cuda": "12.8"}
    assert companion_check("torchvision", plain, "2.13.0+cpu", {}, python="py").status == "fail"
    cuda_build = {"cuda": "12.8"}
    assert companion_check("torchvision", plain, "2.13.0", cuda_build, python="py").status == (
        "pass"
    )


def test_companion_without_a_pin_falls_back_to_the_table() -> None:
    paired = {"dist_version": "0.20.1", "requires": []}
    assert companion_check("torchvision", paired, "2.5.1", {}, python="py").status == "pass"
    check = companion_check("torchvision", paired, "2.6.0", {}, python="py")
    assert check.status == "warn"
    assert "pairing table gives torchvision 0.21.0" in check.detail


def test_companion_shadowed_by_another_copy_fails() -> None:
    facts = {"dist_version": "0.28.0", "module_version": "0.20.0", "requires": ["torch==2.13.0"]}
    check = companion_check("torchvision", facts, "2.13.0", {}, python="py")
    assert check.status == "fail"
    assert "shadows" in check.detail


def test_pypi_companion_labels_its_variant_in_its_version_only() -> None:
    # PyPI's torchvision 0.28.0: metadata "0.28.0", torchvision.__version__ "0.28.0+cu130".
    facts = {"dist_version": "0.28.0", "module_version": "0.28.0+cu130", "requires": [
        "torch (==2.13.0)"]}  # fmt: skip
    check = companion_check("torchvision", facts, "2.13.0+cpu", {}, python="py")
    assert check.status == "fail"
    assert check.detail.startswith("torchvision 0.28.0 is a cu130 build, torch 2.13.0+cpu is")
    assert "shadows" not in check.detail  # the same release, not another copy
    fits = companion_check("torchvision", facts, "2.13.0", {"cuda": "13.0"}, python="py")
    assert fits.status == "pass"
