"""Machine profiles: recorded by the standalone script with real Pythons, read back
through the same tag and detection code as this machine, and built from flags.

The script runs with real pyenv interpreters where torchup is not importable; its
accelerator facts are recorded from fake /proc, /sys and vendor-tool trees (the ones
tests/test_accelerators.py uses) and replayed through :func:`detect`, which must then
answer exactly what ``detect`` answers on the tree itself.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gpucheck import SmiGpu, variant_runs
from indexserver import IndexServer
from test_plan import cli, local_indexes
from torchup.errors import ProfileError, UsageError
from torchup.hardware.accelerators import detect
from torchup.interpreters.discover import probe
from torchup.profiles import PROFILE_FORMAT, from_flags, load, node_script, parse_platform, record
from torchup.profiles.profile import read

DETECT = Path(__file__).parent / "data" / "detect"
PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
VERSIONS = ("2.7.18", "3.6.15", "3.8.18", "3.11.7", "3.13.0")


def pyenv(version: str) -> Path:
    exe = PYENV / version / "bin" / "python"
    if not exe.exists():
        pytest.skip(f"pyenv Python {version} is not installed")
    return exe


def run_script(python: Path, tmp_path: Path, **env: str) -> dict:
    """The standalone script, as a user runs it on a node: a file, a bare Python, no
    torchup anywhere on its path."""
    script = tmp_path / "torchup-profile.py"
    script.write_text(node_script())
    base = {"PATH": env.pop("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **env}
    done = subprocess.run(
        [str(python), "-s", "-E", str(script)],
        capture_output=True,
        text=True,
        env=base,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_script_runs_without_torchup_and_gives_the_tags_discovery_gives(
    version: str, tmp_path: Path
) -> None:
    exe = pyenv(version)
    doc = run_script(exe, tmp_path)
    assert doc["torchup_profile"] == PROFILE_FORMAT
    profile = read(doc, source="node.json")
    here = probe(str(exe), env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert profile.python.tags == here.tags
    assert profile.python.version == version
    assert profile.python.executable == str(exe)
    assert profile.python.source == f"profile node.json ({doc['name']})"
    assert profile.accelerator.kind == "cpu"


def test_record_with_this_machines_python_is_the_script(tmp_path: Path) -> None:
    exe = pyenv("3.12.1")
    recorded = record(str(exe), env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    alone = run_script(exe, tmp_path)
    assert recorded["python"] == alone["python"]
    assert read(recorded, source="r").python.tags == read(alone, source="a").python.tags


# -- the accelerator, recorded and replayed ---------------------------------------------


def tool(bindir: Path, name: str, body: str) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def nvidia_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    nv = root / "proc/driver/nvidia"
    (nv / "gpus/0000:70:00.0").mkdir(parents=True)
    shutil.copy(DETECT / "nvidia/proc-version-open.txt", nv / "version")
    shutil.copy(DETECT / "nvidia/proc-gpu-information.txt", nv / "gpus/0000:70:00.0/information")
    bindir = tmp_path / "bin"
    tool(bindir, "nvidia-smi", f"cat '{DETECT / 'nvidia/smi-query-2gpu.txt'}'\n")
    return root, bindir


def old_smi_tree(tmp_path: Path) -> tuple[Path, Path]:
    """An nvidia-smi that rejects compute_cap: detect asks again without it."""
    root, bindir = nvidia_tree(tmp_path)
    tool(
        bindir,
        "nvidia-smi",
        'case "$1" in *compute_cap*) echo \'Field "compute_cap" is not a valid field\'; exit 2;; '
        f"esac\ncat '{DETECT / 'nvidia/smi-query-old.txt'}'\n",
    )
    return root, bindir


def amd_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    node = root / "sys/class/kfd/kfd/topology/nodes/1"
    node.mkdir(parents=True)
    (root / "sys/class/kfd/kfd/topology/nodes/0").mkdir()
    (root / "sys/class/kfd/kfd/topology/nodes/0/properties").write_text("cpu_cores_count 16\n")
    node.joinpath("properties").write_text("gfx_target_version 90402\ndevice_id 29856\n")
    (root / "opt/rocm-6.3.1/.info").mkdir(parents=True)
    (root / "opt/rocm-6.3.1/.info/version").write_text("6.3.1-48\n")
    return root, tmp_path / "bin"


def intel_tree(tmp_path: Path) -> tuple[Path, Path]:
    """The captured Arc A380's PCI files, bound (a symbolic link) to its driver."""
    root = tmp_path / "root"
    src = DETECT / "intel/sysfs/bus/pci/devices/0000:03:00.0"
    dev = root / "sys/bus/pci/devices/0000:03:00.0"
    dev.mkdir(parents=True)
    for name in ("vendor", "device", "class"):
        shutil.copy(src / name, dev / name)
    driver = root / "sys/bus/pci/drivers" / (src / "driver").read_text().strip()
    driver.mkdir(parents=True)
    (dev / "driver").symlink_to(driver)
    return root, tmp_path / "bin"


@pytest.mark.parametrize("tree", [nvidia_tree, old_smi_tree, amd_tree, intel_tree])
def test_a_replayed_recording_detects_what_detect_detects(tree, tmp_path: Path) -> None:
    root, bindir = tree(tmp_path)
    bindir.mkdir(exist_ok=True)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": "1"}
    here = detect(env=env, root=root, nvml_libraries=[])
    doc = run_script(pyenv("3.11.7"), tmp_path, TORCHUP_PROFILE_ROOT=str(root), **env)
    replayed = read(doc, source="node.json").accelerator
    assert here.kind != "cpu"
    # every fact and every step's finding, but the tool's path (a stand-in on replay)
    want, got = here.to_dict(), replayed.to_dict()
    for d in (want, got):
        d["steps"] = [(s["probe"], s["ok"]) for s in d["steps"]]
    assert got == want


def test_the_scripts_tool_query_is_detects() -> None:
    from torchup.hardware.nvidia import SMI_FIELDS
    from torchup.profiles import node_probe

    assert node_probe.SMI_FIELDS == SMI_FIELDS


# -- from flags --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.7.18", "3.6.15", "3.8.18", "3.11.7", "3.13.0"])
def test_flags_give_the_tags_of_a_real_python_on_that_platform(
    version: str, tmp_path: Path
) -> None:
    exe = pyenv(version)
    doc = run_script(exe, tmp_path)
    real = read(doc, source="real").python
    glibc = doc["python"]["glibc"]  # what the Python itself reads (confstr)
    tag = f"manylinux_{glibc.replace('.', '_')}_{real.architecture}"
    flagged = from_flags(python_version=version.rsplit(".", 1)[0], platform=tag).python
    assert flagged.tags == real.tags


def test_gpu_and_driver_flags_stand_in_for_the_hardware() -> None:
    h100 = from_flags(
        python_version="3.12", platform="manylinux_2_28_x86_64", gpu="sm_90", driver="550.54.15"
    )
    assert h100.accelerator.kind == "cuda"
    assert h100.accelerator.driver == "550.54.15"
    assert [g.arch for g in h100.accelerator.gpus] == ["9.0"]
    assert "cp312-cp312-manylinux_2_28_x86_64" in h100.python.tags
    assert "cp312-cp312-manylinux_2_29_x86_64" not in h100.python.tags
    mi300 = from_flags(
        python_version="3.12", platform="manylinux_2_28_x86_64", gpu="gfx942", rocm="6.3"
    )
    assert (mi300.accelerator.kind, mi300.accelerator.rocm) == ("rocm", "6.3")
    mac = from_flags(python_version="3.12", platform="macosx_14_0_arm64")
    assert mac.accelerator.kind == "mps"
    assert mac.python.tags[0] == "cp312-cp312-macosx_14_0_arm64"
    assert "cp312-cp312-macosx_11_0_arm64" in mac.python.tags
    assert from_flags(python_version="3.13t", platform="win_amd64").python.tags[0] == (
        "cp313-cp313t-win_amd64"
    )
    arm = from_flags(python_version="3.12", platform="aarch64-manylinux_2_28")
    assert arm.accelerator.kind == "cpu"
    assert "cp312-abi3-manylinux2014_aarch64" in arm.python.tags


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"python_version": "3.12", "platform": "solaris_sparc"}, "not a platform tag"),
        ({"python_version": "twelve", "platform": "win_amd64"}, "not a CPython version"),
        ({"python_version": "3.12t", "platform": "win_amd64"}, "start at 3.13t"),
        ({"python_version": "3.12", "platform": "win_amd64", "driver": "550.54"}, "--gpu"),
        ({"python_version": "3.12", "platform": "win_amd64", "gpu": "sm_9x"}, "TORCHUP_GPU_ARCHS"),
    ],
)
def test_bad_flags_are_usage_errors(kwargs: dict, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        from_flags(**kwargs)
    assert said in str(caught.value)
    assert caught.value.exit_code == 2


def test_parse_platform_reads_pip_and_uv_forms() -> None:
    assert parse_platform("manylinux2014_aarch64")["glibc"] == "2.17"
    assert parse_platform("musllinux_1_2_x86_64")["musl"] == "1.2"
    assert parse_platform("x86_64-manylinux_2_28") == parse_platform("manylinux_2_28_x86_64")


# -- bad profiles ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No user pip config, a private cache, and a torchup that must not probe or detect
    anything of this machine's for a plan made for another."""
    home = tmp_path_factory.mktemp("home")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYENV_ROOT": str(PYENV.parent),  # this machine's Pythons stay discoverable
        "PIP_CONFIG_FILE": os.devnull,
        "TORCHUP_CACHE_DIR": str(home / "cache"),
    }


def good_document(tmp_path: Path) -> dict:
    return run_script(pyenv("3.11.7"), tmp_path)


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda d: "{not json", "not JSON"),
        (lambda d: json.dumps([1, 2]), "not a torchup profile"),
        (lambda d: json.dumps({**d, "torchup_profile": PROFILE_FORMAT + 1}), "newer torchup"),
        (lambda d: json.dumps({**d, "torchup_profile": "one"}), "not a format number"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "python"}), "lacks python"),
        (
            lambda d: json.dumps({**d, "python": {"version": "3.11.7"}}),
            "the Python's facts are incomplete",
        ),
        (
            lambda d: json.dumps({**d, "accelerator_facts": {"files": {"/../../etc/passwd": "x"}}}),
            "not a recorded system file",
        ),
    ],
)
def test_a_bad_profile_is_a_clear_usage_error(spoil, said: str, tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text(spoil(good_document(tmp_path)))
    with pytest.raises(ProfileError) as caught:
        load(path)
    assert said in caught.value.message
    assert caught.value.exit_code == 2


def test_a_missing_profile_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the profile") as caught:
        load(tmp_path / "nope.json")
    assert "torchup profile" in str(caught.value)


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("the recorded trees are Linux /proc and /sys")


# -- the example profiles, planned for ---------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "profiles"


def test_the_examples_are_what_their_generator_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = {p.name: p.read_text() for p in EXAMPLES.glob("*.json")}
    assert written == module.documents()


def plan_for(server: IndexServer, env: dict[str, str], *args: str) -> dict:
    done = cli(env, "plan", *args, *local_indexes(server), "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def smi_of(profile_path: Path) -> list[SmiGpu]:
    """The GPUs as the node's own nvidia-smi said (read here, not by torchup)."""
    doc = json.loads(profile_path.read_text())
    (answer,) = doc["accelerator_facts"]["tools"]
    rows = list(csv.DictReader(io.StringIO(answer["stdout"]), skipinitialspace=True))
    return [SmiGpu(r["name"], r["driver_version"], r["compute_cap"]) for r in rows]


def torch_file(doc: dict) -> str:
    torch = next(p for p in doc["packages"] if p["name"] == "torch")
    return str(torch["filename"])


def test_h100_node_gets_a_cuda_build_its_driver_and_arch_run(
    index_server: IndexServer, plan_env: dict[str, str]
) -> None:
    path = EXAMPLES / "h100-driver550.json"
    doc = plan_for(index_server, plan_env, "torch", "--for", str(path))
    assert doc["ok"], doc["problems"]
    assert variant_runs(doc, smi_of(path)) == []
    assert "-cp312-cp312-manylinux" in torch_file(doc)
    assert "x86_64" in torch_file(doc)
    assert doc["python"]["executable"] == "/usr/bin/python3.12"
    assert doc["python"]["source"] == f"profile {path} (h100-driver550)"


def test_nothing_fits_the_node_and_no_python_of_this_machine_is_offered(
    index_server: IndexServer, plan_env: dict[str, str]
) -> None:
    path = EXAMPLES / "h100-driver550.json"
    doc = plan_for(index_server, plan_env, "torch==1.11.0", "--for", str(path))
    assert not doc["ok"]
    assert doc["alternatives"]["versions"], "the nearest versions for the node's Python"
    assert doc["alternatives"]["pythons"] == []  # this machine's Pythons are not the node's
    here = plan_for(index_server, plan_env, "torch==1.11.0", "--python", str(pyenv("3.12.1")))
    assert here["alternatives"]["pythons"], "on this machine another Python would do"
    assert here["alternatives"]["build_script"] == []


def test_when_nothing_fits_the_node_the_plan_offers_a_build_script_that_runs(
    index_server: IndexServer, plan_env: dict[str, str], tmp_path: Path
) -> None:
    path = EXAMPLES / "h100-driver550.json"
    done = cli(plan_env, "plan", "torch==1.11.0", "--for", str(path), *local_indexes(index_server))
    assert done.returncode == 1
    command = ["torchup", "build-script", "torch==1.11.0", "--for", str(path)]
    assert "build it from source for this Python" in done.stdout
    assert " ".join([*command, "-o", "build-torch.sh"]) in done.stdout
    doc = plan_for(index_server, plan_env, "torch==1.11.0", "--for", str(path))
    assert doc["alternatives"]["build_script"] == [*command, "-o", "build-torch.sh"]
    script = tmp_path / "build-torch.sh"
    built = cli(plan_env, *command[1:], "-o", str(script))
    assert built.returncode == 0, built.stderr
    assert "v1.11.0" in script.read_text()


def test_v100_node_with_driver_470_gets_a_build_that_still_runs_there(
    index_server: IndexServer, plan_env: dict[str, str]
) -> None:
    path = EXAMPLES / "v100-driver470.json"
    doc = plan_for(index_server, plan_env, "torch", "--for", str(path))
    assert doc["ok"], doc["problems"]
    assert variant_runs(doc, smi_of(path)) == []
    assert "cp310" in torch_file(doc)


def test_arm_server_gets_the_cpu_build_for_aarch64(
    index_server: IndexServer, plan_env: dict[str, str]
) -> None:
    doc = plan_for(index_server, plan_env, "torch", "--for", str(EXAMPLES / "arm-cpu.json"))
    assert doc["ok"], doc["problems"]
    assert doc["backend"]["name"] == "cpu"
    assert torch_file(doc).endswith("aarch64.whl")


def test_mac_gets_mps_and_a_macos_wheel(
    index_server: IndexServer, plan_env: dict[str, str]
) -> None:
    doc = plan_for(index_server, plan_env, "torch", "--for", str(EXAMPLES / "mac-m2.json"))
    assert doc["ok"], doc["problems"]
    assert doc["backend"]["name"] == "mps"
    assert "macosx" in torch_file(doc)
    assert "arm64" in torch_file(doc)


def test_flags_plan_what_the_same_machines_profile_plans(
    index_server: IndexServer, plan_env: dict[str, str]
) -> None:
    by_file = plan_for(
        index_server, plan_env, "torch", "--for", str(EXAMPLES / "h100-driver550.json")
    )
    flags = ("--python-version", "3.12", "--platform", "manylinux_2_35_x86_64")
    by_flags = plan_for(
        index_server, plan_env, "torch", *flags, "--gpu", "sm_90", "--driver", "550.54.15"
    )
    assert [p["filename"] for p in by_flags["packages"]] == [
        p["filename"] for p in by_file["packages"]
    ]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--for", "x.json", "--python", "3.11"), "--python picks a Python on this machine"),
        (("--for", "x.json", "--gpu", "sm_90"), "would contradict it"),
        (("--platform", "win_amd64"), "needs --python-version and --platform"),
        (("--for", "missing.json"), "cannot read the profile"),
    ],
)
def test_contradicting_target_options_are_usage_errors(
    args: tuple[str, ...], said: str, plan_env: dict[str, str]
) -> None:
    done = cli(plan_env, "plan", "torch", *args)
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_profile_command_writes_a_profile_that_plans_read(
    tmp_path: Path, plan_env: dict[str, str]
) -> None:
    out = tmp_path / "node.json"
    done = cli(plan_env, "profile", "--python", str(pyenv("3.11.7")), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert load(out).python.version == "3.11.7"
    again = cli(plan_env, "profile", "--python", str(pyenv("3.11.7")), "-o", str(out))
    assert again.returncode == 2
    assert "exists" in again.stderr
    script = tmp_path / "torchup-profile.py"
    assert cli(plan_env, "profile", "--script", "-o", str(script)).returncode == 0
    assert script.read_text() == node_script()
