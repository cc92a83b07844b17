"""``torchup install`` end to end: real venvs, real uv and pip, the real CPU torch
2.13.0 wheel from pip's configured find-links folder, and the local index server's
small generated wheels for what must fail.

Every source is local (the machine's file:// mirrors and /opt/wheels, the server on
127.0.0.1): nothing is downloaded from the internet, and never a CUDA torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import localindex
from indexserver import IndexServer, make_wheel
from localindex import File
from test_plan import pyenv

WHEELS = Path("/opt/wheels")
MIRRORS = ("file:///opt/pypi/simple", "file:///opt/pypi-more/simple")
REAL_TORCH = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
UNREACHABLE = "http://127.0.0.1:9/whl"  # nothing listens: the PyTorch index "is down"

needs_local_torch = pytest.mark.skipif(
    not (WHEELS / REAL_TORCH).is_file() or not Path("/opt/pypi/simple").is_dir(),
    reason="needs the machine's local CPU torch wheel and package mirrors",
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return local_env(tmp_path)


def local_env(tmp_path: Path) -> dict[str, str]:
    """No internet index: pip and uv read only the machine's local mirrors."""
    conf = tmp_path / "pip.conf"
    conf.write_text(
        f"[global]\nindex-url = {MIRRORS[0]}\nextra-index-url = {MIRRORS[1]}\n"
        f"find-links = {WHEELS}\n"
    )
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
        "PIP_CONFIG_FILE": str(conf),
        "TORCHUP_CACHE_DIR": str(tmp_path / "cache"),
        "TORCHUP_GPU_ARCHS": "none",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
    }


def torchup(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchup", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def freeze(python: Path) -> str:
    return subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"], "PIP_CONFIG_FILE": os.devnull},
    ).stdout


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}"))


@needs_local_torch
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_fresh_venv_with_real_torch_verified(
    tmp_path: Path, env: dict[str, str], installer: str
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    proc = torchup(
        env,
        work,
        "install",
        "torch==2.13.0",
        "--python",
        pyenv("3.11"),
        "--backend",
        "cpu",
        "--torch-index-url",
        UNREACHABLE,
        "--installer",
        installer,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert doc["target"] == {
        "kind": "venv",
        "path": str(work / ".venv"),
        "exists": False,
        "source": "default ./.venv",
    }
    assert doc["installer"]["name"] == installer
    checks = {c["id"]: c["status"] for c in doc["verify"]["checks"]}
    assert checks["import-torch"] == "pass"
    assert checks["tensor-op"] == "pass"
    assert checks["autograd"] == "pass"
    assert doc["verify"]["torch"]["version"] == "2.13.0+cpu"
    # the torch file is hash-checked: pip in a --no-deps step of its own, uv in its one
    # step (it checks the hashes given without demanding them of every dependency)
    hashed = [c for c in doc["commands"] if "-r" in c]
    assert len(hashed) == 1
    if installer == "pip":
        assert {"--no-deps", "--require-hashes"} <= set(hashed[0])
        assert len(doc["commands"]) == 3  # venv, the torch family, its dependencies
    else:
        assert "--verify-hashes" in hashed[0]
        assert len(doc["commands"]) == 2  # venv, everything
    # the venv works where it was moved to: the interpreter and a console script
    python = work / ".venv" / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__, torch.ones(2).sum().item())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["2.13.0+cpu", "2.0"]
    torchrun = work / ".venv" / "bin" / "torchrun"
    assert torchrun.read_text().splitlines()[0] == f"#!{python}"
    assert siblings(work / ".venv") == []
    assert "source " + str(work / ".venv" / "bin" / "activate") in doc["activation"]["bash/zsh"]


def test_an_impossible_request_creates_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    work = tmp_path / "project"
    work.mkdir()
    proc = torchup(
        env, work, "install", "torch==1.10.0", "--python", pyenv("3.11"), "--backend", "pypi"
    )
    assert proc.returncode == 1
    assert "nothing fits" in proc.stdout
    assert "nothing was created or changed" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert list(work.iterdir()) == []


def test_dry_run_shows_the_commands_and_changes_nothing(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    args = ["install", "torch==2.8.0", "torchvision", "--python", pyenv("3.11")]
    args += ["--backend", "cu126", "--torch-index-url", index_server.torch_url]
    args += ["--installer", "pip", "--dry-run", "--json"]
    proc = torchup(env, work, *args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True
    create, first, second = doc["commands"]
    assert create == [pyenv("3.11"), "-m", "venv", "--prompt=.venv", str(work / ".venv")]
    assert first[:4] == [str(work / ".venv/bin/python"), "-m", "pip", "install"]
    assert first[first.index("--index-url") + 1] == f"{index_server.torch_url}/cu126"
    assert second[4:6] == ["torch==2.8.0+cu126", "torchvision==0.23.0+cu126"]
    # the hash-pinned file the first command reads is shown, since it lives only while
    # the commands run
    pinned = doc["requirements_file"]
    assert first[first.index("-r") + 1] == pinned["path"]
    sha = {p["name"]: p["sha256"] for p in doc["plan"]["packages"]}
    assert pinned["text"].splitlines() == [
        f"torch==2.8.0+cu126 --hash=sha256:{sha['torch']}",
        f"torchvision==0.23.0+cu126 --hash=sha256:{sha['torchvision']}",
    ]
    assert list(work.iterdir()) == []
    text = torchup(env, work, *args[:-1]).stdout
    assert re.search(r"\n  with /\S+/torch-family\.txt:\n    torch==2\.8\.0\+cu126 --hash", text)
    assert "once installed, activate it with:" in text
    assert list(work.iterdir()) == []


def test_not_a_venv_is_never_touched(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    proc = torchup(env, tmp_path, "install", "torch", "--venv", "data", "--dry-run")
    assert proc.returncode == 2
    assert "is not a virtual environment" in proc.stderr
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"


def test_system_python_needs_the_flag_and_then_breaks_system_packages_explicitly(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    system = Path("/usr/bin/python3")
    if not any((system.parent.parent / "lib").glob("python3*/EXTERNALLY-MANAGED")):
        pytest.skip("no externally managed system Python here")
    proc = torchup(
        env,
        tmp_path,
        "install",
        "torch==2.8.0",
        "--python",
        str(system),
        "--system",
        "--backend",
        "cpu",
        "--torch-index-url",
        index_server.torch_url,
        "--installer",
        "pip",
        "--dry-run",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    if doc["plan"]["python"]["executable"] != str(system):
        pytest.skip("the system Python resolved elsewhere")
    assert all("--break-system-packages" in c for c in doc["commands"])


def existing_venv(path: Path) -> Path:
    subprocess.run([pyenv("3.11"), "-m", "venv", "--without-pip", str(path)], check=True)
    site = next((path / "lib").glob("python3.*/site-packages"))
    dist = site / "marker-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: marker\nVersion: 1.0\n")
    (dist / "RECORD").write_text("")
    (site / "marker.py").write_text("VALUE = 1\n")
    return path / "bin" / "python"


def listing(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if "__pycache__" not in p.parts}


def stand_in_install(venv: Path, server: IndexServer) -> list[str]:
    """Install the index server's generated torch 2.8.0, a stand-in that installs but is
    not torch (so verification fails), into ``venv`` with uv."""
    return ["install", "torch==2.8.0", "--venv", str(venv), "--backend", "cpu",
            "--torch-index-url", server.torch_url, "--installer", "uv"]  # fmt: skip


def test_failed_verification_in_an_existing_venv_changes_nothing(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    venv = tmp_path / "env"
    python = existing_venv(venv)
    before = listing(venv)
    # The index's generated torch is a stand-in that installs but is not torch.
    proc = torchup(env, tmp_path, *stand_in_install(venv, index_server))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verification failed" in proc.stdout
    assert "everything was undone" in proc.stdout
    assert listing(venv) == before
    assert siblings(venv) == []
    assert subprocess.run([str(python), "-c", "import marker"], check=False).returncode == 0


def test_an_install_killed_midway_leaves_the_environment_intact(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    venv = tmp_path / "env"
    existing_venv(venv)
    before = listing(venv)
    args = [sys.executable, "-m", "torchup", *stand_in_install(venv, index_server)]
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not siblings(venv) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert siblings(venv), "the copy aside never appeared"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)  # torchup and the installer it started, as a
    proc.wait()  # closed terminal or an OOM kill of the group would
    assert listing(venv) == before
    # the next run clears what the killed one left
    again = torchup(env, tmp_path, *stand_in_install(venv, index_server))
    assert again.returncode == 1  # the stand-in torch fails verification again
    assert siblings(venv) == []
    assert listing(venv) == before


def test_without_python_the_newest_python_that_can_install_the_request_is_chosen(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    pyenv("3.9")
    proc = torchup(
        env,
        tmp_path,
        "install",
        "torch==1.10.0",
        "--backend",
        "cpu",
        "--torch-index-url",
        index_server.torch_url,
        "--installer",
        "pip",
        "--dry-run",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["plan"]["python"]["version"] == "3.9.18"
    assert doc["python_source"] == (
        "the newest Python on this machine that can install the request (3.9.18)"
    )
    assert doc["commands"][0][:3] == [pyenv("3.9"), "-m", "venv"]


@needs_local_torch
def test_ctrl_c_stops_cleanly_and_undoes_everything(tmp_path: Path, env: dict[str, str]) -> None:
    work = tmp_path / "project"
    work.mkdir()
    args = [
        sys.executable, "-m", "torchup", "install", "torch==2.13.0", "--python", pyenv("3.11"),
        "--backend", "cpu", "--torch-index-url", UNREACHABLE, "--installer", "pip",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not siblings(work / ".venv") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # inside the install
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "torchup: interrupted" in err
    assert "Traceback" not in err
    assert list(work.iterdir()) == []


def test_a_silent_hung_installer_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    from torchup.errors import RunnerError
    from torchup.runner import stream

    began = time.monotonic()
    with pytest.raises(RunnerError, match=r"did not finish within 0\.5 s"):
        stream(["sleep", "30"], timeout=0.5, echo=False)
    assert time.monotonic() - began < 10


def test_credentials_never_appear_in_the_commands_shown(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    secret_index = index_server.pypi_url.replace("http://", "http://me:s3cret@")
    proc = torchup(
        env,
        tmp_path,
        "install",
        "torch==2.8.0",
        "--python",
        pyenv("3.11"),
        "--backend",
        "cpu",
        "--torch-index-url",
        index_server.torch_url,
        "--index-url",
        secret_index,
        "--installer",
        "uv",
        "--dry-run",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr
    commands = json.loads(proc.stdout)["commands"]
    assert any("--extra-index-url" in c for c in commands)


@pytest.fixture
def conda_env(tmp_path: Path) -> Path:
    """A conda environment as conda lays it out: a whole Python installation in the
    prefix, with ``conda-meta/``. (No conda on this machine: the Python is CPython
    3.10 hard-linked from pyenv, its site-packages a real copy, so nothing installed
    here can reach the original.)"""
    source = Path(pyenv("3.10")).parent.parent
    prefix = tmp_path / "miniconda3" / "envs" / "ml"
    prefix.parent.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(source), str(prefix)], check=True)
    site = next((prefix / "lib").glob("python3.*/site-packages"))
    shutil.rmtree(site)
    shutil.copytree(next((source / "lib").glob("python3.*/site-packages")), site, symlinks=True)
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "history").write_text("==> 2026-11-22 00:00:00 <==\n")
    (site / "marker.py").write_text("VALUE = 1\n")
    return prefix


def test_a_conda_env_gets_its_own_pip_and_is_restored_when_the_install_fails(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer, conda_env: Path
) -> None:
    site = next((conda_env / "lib").glob("python3.*/site-packages"))
    before = listing(site)
    common = ["torch==2.8.0", "--conda-env", str(conda_env), "--backend", "cpu",
              "--torch-index-url", index_server.torch_url]  # fmt: skip
    dry = torchup(env, tmp_path, "install", *common, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr[-3000:]
    doc = json.loads(dry.stdout)
    assert doc["target"]["kind"] == "conda"
    assert doc["installer"]["name"] == "pip"  # auto picks the env's own pip, not uv
    assert "pytorch conda channel's last release was torch 2.5" in doc["message"]
    python = str(conda_env / "bin" / "python")
    assert all(c[:4] == [python, "-m", "pip", "install"] for c in doc["commands"])
    # The torch family installs (step 1), then its dependencies cannot all be found
    # (the local mirrors have no MarkupSafe for CPython 3.10), or, were they found, the
    # stand-in torch would fail verification: either way the env's site-packages is put
    # back from its snapshot, torch's files and all.
    proc = torchup(env, tmp_path, "install", *common)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        "No matching distribution found for MarkupSafe" in proc.stdout
        and "nothing was changed" in proc.stdout
    ) or "everything was undone" in proc.stdout
    assert "[notice]" not in proc.stdout  # pip's upgrade nag is not the reason
    assert "Successfully installed torch-2.8.0+cpu" in proc.stderr  # step 1 did install
    assert listing(site) == before
    assert sorted(p.name for p in site.parent.iterdir() if ".torchup-" in p.name) == []
    assert subprocess.run([python, "-c", "import marker"], check=False).returncode == 0


def test_an_install_into_a_conda_env_leaves_the_user_sites_torch_alone(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer, conda_env: Path
) -> None:
    """The user site is shared by every Python of its version: pip, seeing a torch there
    as installed, would uninstall it (--reinstall) or call it satisfied. The installer
    runs with the user site off, so only the env changes."""
    user_site = Path(env["HOME"]) / ".local" / "lib" / "python3.10" / "site-packages"
    (user_site / "torch").mkdir(parents=True)
    (user_site / "torch" / "__init__.py").write_text('__version__ = "2.8.0+cpu"\n')
    dist = user_site / "torch-2.8.0+cpu.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.8.0+cpu\n")
    (dist / "RECORD").write_text("torch/__init__.py,,\ntorch-2.8.0+cpu.dist-info/METADATA,,\n")
    (dist / "INSTALLER").write_text("pip\n")
    before = listing(user_site)
    proc = torchup(env, tmp_path, "install", "torch==2.8.0", "--conda-env", str(conda_env),
                   "--backend", "cpu", "--torch-index-url", index_server.torch_url,
                   "--installer", "pip", "--reinstall")  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Successfully installed torch-2.8.0+cpu" in proc.stderr  # into the env
    assert "Uninstalling torch" not in proc.stderr
    assert listing(user_site) == before


def routing_wheels() -> dict[str, list[File]]:
    """torch 2.8.0 and torchvision 0.23.0 built three ways, as small wheels with
    the real metadata shapes (torchvision pins its torch) and no dependencies."""
    out: dict[str, list[File]] = {}
    for variant in ("cpu", "cu126", "cu128"):
        files = []
        for name, version, pin in (("torch", "2.8.0", None), ("torchvision", "0.23.0", "2.8.0")):
            filename = f"{name}-{version}+{variant}-cp311-cp311-manylinux_2_28_x86_64.whl"
            meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}+{variant}\n"
            meta += f"Requires-Dist: torch=={pin}\n" if pin else ""
            files.append(File(filename, make_wheel(filename, meta.encode()), meta))
        out[variant] = files
    return out


@pytest.mark.parametrize(
    ("driver", "variant"),
    [("560.35.03", "cu126"), ("570.86.10", "cu128"), ("470.57.02", "cpu")],
)
def test_auto_routes_the_whole_family_to_the_variant_the_driver_runs(
    tmp_path: Path, env: dict[str, str], driver: str, variant: str
) -> None:
    root = tmp_path / "site"
    for project in ("torch", "torchvision"):
        localindex.publish(
            root, {v: [f for f in fs if f.filename.startswith(project + "-")]
                   for v, fs in routing_wheels().items()}, project=project,
        )  # fmt: skip
    venv = tmp_path / "v"
    run_env = {**env, "TORCHUP_GPU_ARCHS": "8.6", "TORCHUP_CUDA_DRIVER_VERSION": driver}
    with localindex.serve(root) as served:
        proc = torchup(
            run_env, tmp_path, "install", "torch==2.8.0", "torchvision", "--python",
            pyenv("3.11"), "--venv", str(venv), "--torch-index-url", served.url,
            "--installer", "uv", "--no-verify", "--json",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["plan"]["backend"]["name"] == variant
    # what the installer fetched, and what the venv now holds, is that variant's build
    fetched = {p for p in served.requested if p.endswith(".whl")}
    assert fetched == {
        f"/whl/{variant}/{f.filename.replace('+', '%2B')}" for f in routing_wheels()[variant]
    }
    site = next((venv / "lib").glob("python3.*/site-packages"))
    assert sorted(p.name for p in site.glob("torch*.dist-info")) == [
        f"torch-2.8.0+{variant}.dist-info",
        f"torchvision-0.23.0+{variant}.dist-info",
    ]
