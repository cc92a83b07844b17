"""Accelerator detection: parsers on captured real outputs, and the detection chain run
against fake /proc and /sys trees, fake vendor tools on PATH, and a fake NVML library
compiled from tests/fakes/fake_nvml.c (the real ctypes path, another driver)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from torchup.errors import UsageError
from torchup.hardware import amd as _amd
from torchup.hardware import nvidia as _nvidia
from torchup.hardware.accelerators import Accelerator, detect, parse_gpu_archs
from torchup.runner import Completed

DATA = Path(__file__).parent / "data" / "detect"
NV = DATA / "nvidia"
AMD = DATA / "amd"


def text(path: Path) -> str:
    return path.read_text()


# -- parsers on captured outputs ------------------------------------------------------


def test_nvidia_smi_query_with_two_mixed_gpus() -> None:
    facts = _nvidia.parse_nvidia_smi_csv(text(NV / "smi-query-2gpu.txt"))
    assert facts.driver == "570.86.15"
    assert [(g.index, g.name, g.arch) for g in facts.gpus] == [
        (0, "NVIDIA TITAN V", "7.0"),
        (1, "NVIDIA RTX 5880 Ada Generation", "8.9"),
    ]


def test_nvidia_smi_query_with_one_field() -> None:
    facts = _nvidia.parse_nvidia_smi_csv(text(NV / "smi-query-1gpu.txt"))
    assert facts.driver is None
    assert [g.arch for g in facts.gpus] == ["8.9"]


def test_nvidia_smi_tables_one_and_eight_gpus() -> None:
    one = _nvidia.parse_nvidia_smi_table(text(NV / "smi-table-1gpu.txt"))
    assert (one.driver, one.cuda) == ("550.40.07", "12.4")
    assert [(g.name, g.memory_mib) for g in one.gpus] == [("NVIDIA GeForce RTX 4070", 12282)]
    eight = _nvidia.parse_nvidia_smi_table(text(NV / "smi-table-8gpu.txt"))
    assert eight.driver == "550.90.07"
    assert [g.index for g in eight.gpus] == list(range(8))
    assert {g.name for g in eight.gpus} == {"NVIDIA H100 80GB HBM3"}
    assert {g.memory_mib for g in eight.gpus} == {81559}


@pytest.mark.parametrize(
    "name", ["smi-fail-driver", "smi-fail-mismatch", "smi-fail-nodevices", "smi-query-old"]
)
def test_nvidia_smi_failures_are_not_tables(name: str) -> None:
    first = text(NV / f"{name}.txt").splitlines()[0]
    with pytest.raises(_nvidia.ProbeFailed) as info:
        _nvidia.parse_nvidia_smi_csv(text(NV / f"{name}.txt"))
    assert str(info.value) == first
    with pytest.raises(_nvidia.ProbeFailed):
        _nvidia.parse_nvidia_smi_table(text(NV / f"{name}.txt"))


def test_proc_driver_versions_proprietary_and_open() -> None:
    assert _nvidia.parse_proc_driver_version(text(NV / "proc-version-proprietary.txt")) == "384.98"
    assert _nvidia.parse_proc_driver_version(text(NV / "proc-version-open.txt")) == "565.57.01"
    info = text(NV / "proc-gpu-information.txt")
    assert _nvidia.parse_proc_gpu_information(info) == "NVIDIA L4"


def test_rocm_tool_outputs() -> None:
    assert _amd.parse_rocminfo(text(AMD / "rocminfo-1gpu.txt")) == [
        ("gfx1201", "AMD Radeon AI PRO R9700")
    ]
    assert _amd.parse_rocm_agent_enumerator(text(AMD / "rocm-agent-enumerator.txt")) == [
        "gfx803",
        "gfx902",
    ]
    assert _amd.parse_amd_smi_version(text(AMD / "amd-smi-version.txt")) == "7.0.2"


def test_gpu_archs_override_is_validated() -> None:
    assert parse_gpu_archs("8.0,12.0") == ["8.0", "12.0"]
    with pytest.raises(UsageError, match="not a GPU architecture"):
        parse_gpu_archs("ampere")
    with pytest.raises(UsageError, match="mixes NVIDIA and AMD"):
        parse_gpu_archs("8.6,gfx1100")


# -- the chain, with fakes passed in ---------------------------------------------------


def tool(bindir: Path, name: str, body: str) -> Path:
    """A fake vendor tool: a shell script on a private PATH."""
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def smi_printing(bindir: Path, capture: str, status: int = 0) -> None:
    """nvidia-smi that prints a captured output for any query."""
    tool(bindir, "nvidia-smi", f"cat '{NV / capture}'\nexit {status}\n")


def base_env(bindir: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{bindir}:/usr/bin:/bin", **extra}


def no_tools(cmd: Sequence[str]) -> Completed:
    raise AssertionError(f"no tool may run: {cmd}")


def proc_tree(root: Path, version_file: str, *, gpus: Sequence[str] = ()) -> Path:
    nv = root / "proc/driver/nvidia"
    nv.mkdir(parents=True)
    (nv / "version").write_text(text(NV / version_file))
    for bus in gpus:
        (nv / "gpus" / bus).mkdir(parents=True)
        (nv / "gpus" / bus / "information").write_text(text(NV / "proc-gpu-information.txt"))
    return root


def test_nothing_found_is_cpu_with_every_step_recorded(tmp_path: Path) -> None:
    accel = detect(env=base_env(tmp_path / "bin"), root=tmp_path, nvml_libraries=[])
    assert accel.kind == "cpu"
    probes = [s.probe for s in accel.steps]
    assert probes[:3] == ["nvml", "proc", "nvidia-smi"]
    assert {"kfd", "rocm_agent_enumerator", "rocminfo", "intel"} <= set(probes)
    assert not any(s.ok for s in accel.steps)
    assert "not loaded" in next(s.detail for s in accel.steps if s.probe == "proc")


def test_proc_gives_the_driver_and_nvidia_smi_the_compute_capabilities(tmp_path: Path) -> None:
    root = proc_tree(tmp_path / "root", "proc-version-open.txt", gpus=["0000:70:00.0"])
    bindir = tmp_path / "bin"
    smi_printing(bindir, "smi-query-2gpu.txt")
    accel = detect(env=base_env(bindir), root=root, nvml_libraries=[])
    assert accel.kind == "cuda"
    assert (accel.driver, accel.driver_source) == ("565.57.01", "/proc/driver/nvidia/version")
    assert [(g.name, g.arch, g.source) for g in accel.gpus] == [
        ("NVIDIA TITAN V", "7.0", "nvidia-smi"),
        ("NVIDIA RTX 5880 Ada Generation", "8.9", "nvidia-smi"),
    ]
    assert [s.probe for s in accel.steps if s.ok] == ["proc", "nvidia-smi"]
    assert not accel.warnings


def test_proc_alone_names_gpus_but_warns_that_archs_are_unknown(tmp_path: Path) -> None:
    root = proc_tree(tmp_path / "root", "proc-version-proprietary.txt", gpus=["0000:70:00.0"])
    accel = detect(env=base_env(tmp_path / "bin"), root=root, nvml_libraries=[], run=no_tools)
    assert accel.kind == "cuda"
    assert accel.driver == "384.98"
    assert [(g.name, g.arch) for g in accel.gpus] == [("NVIDIA L4", None)]
    assert any("compute capability unknown for NVIDIA L4" in w for w in accel.warnings)


def test_sys_module_version_when_proc_is_missing(tmp_path: Path) -> None:
    mod = tmp_path / "sys/module/nvidia"
    mod.mkdir(parents=True)
    (mod / "version").write_text("550.54.14\n")
    bindir = tmp_path / "bin"
    smi_printing(bindir, "smi-query-1gpu.txt")
    accel = detect(env=base_env(bindir), root=tmp_path, nvml_libraries=[])
    assert (accel.driver, accel.driver_source) == ("550.54.14", "/sys/module/nvidia/version")
    assert [g.arch for g in accel.gpus] == ["8.9"]


@pytest.mark.parametrize(
    ("capture", "status", "said"),
    [
        ("smi-fail-driver.txt", 9, "couldn't communicate with the NVIDIA driver"),
        ("smi-fail-mismatch.txt", 18, "Driver/library version mismatch"),
        ("smi-fail-nodevices.txt", 6, "No devices were found"),
    ],
)
def test_nvidia_smi_failures_are_recorded(
    tmp_path: Path, capture: str, status: int, said: str
) -> None:
    bindir = tmp_path / "bin"
    smi_printing(bindir, capture, status)
    accel = detect(env=base_env(bindir), root=tmp_path, nvml_libraries=[])
    assert accel.kind == "cpu"
    step = next(s for s in accel.steps if s.probe == "nvidia-smi")
    assert not step.ok
    assert said in step.detail
    assert f"status {status}" in step.detail


def test_old_nvidia_smi_is_asked_again_without_compute_cap(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    tool(
        bindir,
        "nvidia-smi",
        'case "$1" in *compute_cap*) '
        f"cat '{NV / 'smi-query-old.txt'}'; exit 2;; esac\n"
        'echo "index, name, driver_version, memory.total [MiB]"\n'
        'echo "0, Tesla T4, 470.256.02, 15109 MiB"\n',
    )
    accel = detect(env=base_env(bindir), root=tmp_path, nvml_libraries=[])
    assert accel.driver == "470.256.02"
    assert [(g.name, g.arch, g.memory_mib) for g in accel.gpus] == [("Tesla T4", None, 15109)]
    assert any("TORCHUP_GPU_ARCHS" in w for w in accel.warnings)


def test_a_hanging_nvidia_smi_is_bounded(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    tool(bindir, "nvidia-smi", "sleep 30\n")

    def run(cmd: Sequence[str]) -> Completed:
        from torchup.runner import run as real_run

        return real_run(cmd, env=base_env(bindir), timeout=0.5, check=False)

    accel = detect(env=base_env(bindir), root=tmp_path, nvml_libraries=[], run=run)
    step = next(s for s in accel.steps if s.probe == "nvidia-smi")
    assert "did not finish within 0.5 s" in step.detail


# -- NVML through ctypes, against a compiled stand-in ----------------------------------


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the NVML stand-in")
    out = tmp_path_factory.mktemp("nvml") / "libnvidia-ml.so.1"
    src = Path(__file__).parent / "fakes" / "fake_nvml.c"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


def nvml_config(monkeypatch: pytest.MonkeyPatch, path: Path, lines: Sequence[str]) -> None:
    """What the NVML stand-in answers (it reads the file in nvmlInit, in this process)."""
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("FAKE_NVML_CONFIG", str(path))


def test_nvml_answers_first_and_completely(
    tmp_path: Path, fake_nvml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml_config(
        monkeypatch,
        tmp_path / "nvml.txt",
        [
            "driver 580.65.06",
            "cuda 13000",
            "gpu 6 1 11811160064 NVIDIA GeForce GTX 1080 Ti",
            "gpu 12 0 34190917632 NVIDIA GeForce RTX 5090",
        ],
    )
    accel = detect(
        env=base_env(tmp_path / "bin"),
        root=tmp_path,
        nvml_libraries=["/nonexistent/libnvidia-ml.so.1", str(fake_nvml)],
        run=no_tools,
    )
    assert accel.kind == "cuda"
    assert (accel.driver, accel.cuda) == ("580.65.06", "13.0")
    assert accel.driver_source == f"NVML ({fake_nvml})"
    assert [(g.name, g.arch, g.memory_mib) for g in accel.gpus] == [
        ("NVIDIA GeForce GTX 1080 Ti", "6.1", 11264),
        ("NVIDIA GeForce RTX 5090", "12.0", 32607),
    ]
    assert [s.probe for s in accel.steps] == ["nvml"]


def test_nvml_driver_not_loaded_falls_through_to_the_next_probe(
    tmp_path: Path, fake_nvml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml_config(monkeypatch, tmp_path / "nvml.txt", ["init 9"])
    bindir = tmp_path / "bin"
    smi_printing(bindir, "smi-query-2gpu.txt")
    accel = detect(env=base_env(bindir), root=tmp_path, nvml_libraries=[str(fake_nvml)])
    nvml = accel.steps[0]
    assert (nvml.probe, nvml.ok) == ("nvml", False)
    assert "Driver Not Loaded (9)" in nvml.detail
    assert accel.driver == "570.86.15"


# -- overrides, visibility --------------------------------------------------------------


def test_overrides_stand_in_for_detection_and_run_nothing(tmp_path: Path) -> None:
    env = base_env(
        tmp_path / "bin", TORCHUP_GPU_ARCHS="sm_86,12.0", TORCHUP_CUDA_DRIVER_VERSION="575.51.03"
    )
    accel = detect(env=env, root=tmp_path, nvml_libraries=["/must/not/load"], run=no_tools)
    assert accel.kind == "cuda"
    assert (accel.driver, accel.driver_source) == ("575.51.03", "TORCHUP_CUDA_DRIVER_VERSION")
    assert [(g.arch, g.source) for g in accel.gpus] == [
        ("8.6", "TORCHUP_GPU_ARCHS"),
        ("12.0", "TORCHUP_GPU_ARCHS"),
    ]
    assert [s.probe for s in accel.steps] == ["TORCHUP_GPU_ARCHS", "TORCHUP_CUDA_DRIVER_VERSION"]


def test_driver_override_keeps_detected_gpus(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    smi_printing(bindir, "smi-query-2gpu.txt")
    env = base_env(bindir, TORCHUP_CUDA_DRIVER_VERSION="535.104.05")
    accel = detect(env=env, root=tmp_path, nvml_libraries=[])
    assert (accel.driver, accel.driver_source) == ("535.104.05", "TORCHUP_CUDA_DRIVER_VERSION")
    assert [g.arch for g in accel.gpus] == ["7.0", "8.9"]


def test_gpu_archs_none_means_cpu_and_a_bad_driver_is_a_usage_error(tmp_path: Path) -> None:
    accel = detect(env=base_env(tmp_path, TORCHUP_GPU_ARCHS="none"), root=tmp_path, run=no_tools)
    assert (accel.kind, accel.source) == ("cpu", "TORCHUP_GPU_ARCHS=none")
    with pytest.raises(UsageError, match="not a driver version"):
        detect(env=base_env(tmp_path, TORCHUP_CUDA_DRIVER_VERSION="latest"), root=tmp_path)


@pytest.mark.parametrize("value", ["", "-1", "NoDevFiles", "-1,0"])
def test_visible_devices_that_hide_every_gpu_are_reported(tmp_path: Path, value: str) -> None:
    env = base_env(tmp_path, TORCHUP_GPU_ARCHS="8.6", CUDA_VISIBLE_DEVICES=value)
    accel = detect(env=env, root=tmp_path, run=no_tools)
    assert accel.visible_devices == (("CUDA_VISIBLE_DEVICES", value),)
    assert any("hides every GPU" in w for w in accel.warnings)


def test_visible_devices_that_select_a_gpu_are_reported_without_warning(tmp_path: Path) -> None:
    env = base_env(tmp_path, TORCHUP_GPU_ARCHS="8.6", CUDA_VISIBLE_DEVICES="1")
    accel = detect(env=env, root=tmp_path, run=no_tools)
    assert accel.to_dict()["visible_devices"] == {"CUDA_VISIBLE_DEVICES": "1"}
    assert not any("hides" in w for w in accel.warnings)


# -- AMD, Intel, Apple ------------------------------------------------------------------


def kfd_tree(root: Path, targets: Sequence[int]) -> None:
    """A KFD topology: node 0 a CPU, then one GPU node per gfx_target_version
    (constructed; the property names and encoding are the amdgpu driver's)."""
    nodes = root / "sys/class/kfd/kfd/topology/nodes"
    for number, target in enumerate([0, *targets]):
        node = nodes / str(number)
        node.mkdir(parents=True)
        simd = 0 if target == 0 else 192
        (node / "properties").write_text(
            f"cpu_cores_count {24 if target == 0 else 0}\nsimd_count {simd}\n"
            f"gfx_target_version {target}\nvendor_id 4098\ndevice_id {0x744C if target else 0}\n"
        )


def test_kfd_topology_gives_gfx_targets_and_rocm_version(tmp_path: Path) -> None:
    kfd_tree(tmp_path, [110000, 90010])
    info = tmp_path / "opt/rocm-6.2.4/.info"
    info.mkdir(parents=True)
    (info / "version").write_text("6.2.4-120\n")
    accel = detect(env=base_env(tmp_path / "bin"), root=tmp_path, nvml_libraries=[])
    assert accel.kind == "rocm"
    assert [g.arch for g in accel.gpus] == ["gfx1100", "gfx90a"]
    assert (accel.rocm, accel.rocm_source) == ("6.2.4", "/opt/rocm-6.2.4/.info/version")


def test_rocminfo_when_there_is_no_kfd_tree(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    tool(bindir, "rocminfo", f"cat '{AMD / 'rocminfo-1gpu.txt'}'\n")
    tool(bindir, "amd-smi", f"cat '{AMD / 'amd-smi-version.txt'}'\n")
    accel = detect(env=base_env(bindir), root=tmp_path, nvml_libraries=[])
    assert accel.kind == "rocm"
    assert [(g.name, g.arch) for g in accel.gpus] == [("AMD Radeon AI PRO R9700", "gfx1201")]
    assert (accel.rocm, accel.rocm_source) == ("7.0.2", "amd-smi version")


def test_rocm_agent_enumerator_and_hsa_override(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    tool(bindir, "rocm_agent_enumerator", f"cat '{AMD / 'rocm-agent-enumerator.txt'}'\n")
    env = base_env(bindir, HSA_OVERRIDE_GFX_VERSION="9.0.0")
    accel = detect(env=env, root=tmp_path, nvml_libraries=[])
    assert [g.arch for g in accel.gpus] == ["gfx900", "gfx900"]
    assert any("HSA_OVERRIDE_GFX_VERSION=9.0.0" in w for w in accel.warnings)


def test_intel_gpu_bound_to_its_driver_is_xpu(tmp_path: Path) -> None:
    src = DATA / "intel/sysfs/bus/pci/devices/0000:03:00.0"
    dev = tmp_path / "sys/bus/pci/devices/0000:03:00.0"
    dev.mkdir(parents=True)
    for name in ("vendor", "device", "class"):
        shutil.copy(src / name, dev / name)
    driver = tmp_path / "sys/bus/pci/drivers" / text(src / "driver").strip()
    driver.mkdir(parents=True)
    accel = detect(env=base_env(tmp_path), root=tmp_path, nvml_libraries=[], system="linux")
    assert accel.kind == "cpu", "no driver bound: not usable"
    (dev / "driver").symlink_to(driver)
    accel = detect(env=base_env(tmp_path), root=tmp_path, nvml_libraries=[], system="linux")
    assert accel.kind == "xpu"
    assert accel.gpus[0].name == "Intel GPU 0x56a5 at 0000:03:00.0 (i915)"


def test_apple_silicon_is_mps(tmp_path: Path) -> None:
    accel = detect(
        env=base_env(tmp_path), root=tmp_path, nvml_libraries=[], system="darwin", machine="arm64"
    )
    assert (accel.kind, accel.source) == ("mps", "macOS on arm64")
    intel_mac = detect(
        env=base_env(tmp_path), root=tmp_path, nvml_libraries=[], system="darwin", machine="x86_64"
    )
    assert intel_mac.kind == "cpu"


# -- the command ------------------------------------------------------------------------


def torchup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchup", *args],
        env={**env, "HOME": env.get("HOME", "/nonexistent")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_detect_json_and_text(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        TORCHUP_GPU_ARCHS="6.1",
        TORCHUP_CUDA_DRIVER_VERSION="580.65.06",
        CUDA_VISIBLE_DEVICES="",
    )
    proc = torchup(env, "detect", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == 1
    assert doc["kind"] == "cuda"
    assert doc["driver"] == {"version": "580.65.06", "source": "TORCHUP_CUDA_DRIVER_VERSION"}
    assert doc["gpus"][0]["arch"] == "6.1"
    assert doc["backend"] == {"name": "auto", "source": "default"}
    assert "hides every GPU" in proc.stderr
    proc = torchup({**env, "TORCHUP_BACKEND": "cu126"}, "detect")
    assert proc.returncode == 0
    assert "driver       580.65.06  (TORCHUP_CUDA_DRIVER_VERSION)" in proc.stdout
    assert "backend      cu126 (TORCHUP_BACKEND" in proc.stdout
    bad = torchup({**env, "TORCHUP_GPU_ARCHS": "volta"}, "detect")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "TORCHUP_GPU_ARCHS has 'volta'" in bad.stderr


def test_accelerator_to_dict_round_trips_through_json() -> None:
    accel = Accelerator(kind="cpu", source="no GPU found")
    assert json.loads(json.dumps(accel.to_dict()))["kind"] == "cpu"
