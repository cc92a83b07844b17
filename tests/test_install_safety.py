"""`torchup install` never changes the wrong thing: symlinked venvs, conda prefixes that
are not conda envs, externally managed base Pythons, concurrent runs, SIGTERM, nested
new paths, the prompt of a venv built aside, and repairs (``--reinstall``).

Real venvs, real uv and pip, the index server's generated torch 2.8.0 (a stand-in that
installs but is not torch, so ``--no-verify`` where the install must succeed).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexserver import IndexServer
from test_install import (
    UNREACHABLE,
    existing_venv,
    listing,
    local_env,
    siblings,
    torchup,
)
from test_plan import pyenv


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return local_env(tmp_path)


def stand_in(venv: Path, server: IndexServer, *extra: str) -> list[str]:
    """Install the index server's stand-in torch 2.8.0+cpu from CPython 3.11 into
    ``venv``; ``extra`` adds or overrides options (the installer: ``auto``, so uv)."""
    return ["install", "torch==2.8.0", "--python", pyenv("3.11"), "--venv", str(venv),
            "--backend", "cpu", "--torch-index-url", server.torch_url, *extra]  # fmt: skip


def installed(venv: Path) -> list[str]:
    return sorted(p.name for p in venv.glob("lib/python3.*/site-packages/torch-*.dist-info"))


def test_a_symlink_to_a_venv_installs_into_that_venv(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    real = tmp_path / "real"
    existing_venv(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    proc = torchup(env, tmp_path, *stand_in(link, index_server), "--no-verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert link.is_symlink()
    assert link.resolve() == real
    assert installed(real) == ["torch-2.8.0+cpu.dist-info"]
    assert siblings(real) == []
    assert siblings(link) == []
    # the venv's scripts name the real path, not a staging one
    assert "torchup-" not in (real / "bin" / "activate").read_text()


@pytest.mark.parametrize("kind", ["venv", "python"])
def test_a_conda_env_must_be_a_conda_env(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer, kind: str
) -> None:
    if kind == "venv":
        prefix = tmp_path / "v"
        existing_venv(prefix)
        before = listing(prefix)
    else:
        prefix = Path(pyenv("3.11")).parent.parent
    for how in (["--conda-env", str(prefix)], []):
        run_env = env if how else {**env, "CONDA_PREFIX": str(prefix)}
        proc = torchup(
            run_env, tmp_path, "install", "torch==2.8.0", *how, "--backend", "cpu",
            "--torch-index-url", index_server.torch_url, "--dry-run",
        )  # fmt: skip
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "not a conda environment (no conda-meta/)" in proc.stderr
        assert "Traceback" not in proc.stderr
    if kind == "venv":
        assert listing(prefix) == before


def test_a_venv_is_made_from_an_externally_managed_python(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    system = Path("/usr/bin/python3")
    if not any((system.parent.parent / "lib").glob("python3*/EXTERNALLY-MANAGED")):
        pytest.skip("no externally managed system Python here")
    venv = tmp_path / "sysvenv"
    proc = torchup(
        env, tmp_path, "install", "torch==2.8.0", "--python", str(system), "--venv", str(venv),
        "--backend", "cpu", "--torch-index-url", index_server.torch_url, "--installer", "uv",
        "--no-verify", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["plan"]["python"]["executable"] == str(system)
    assert (venv / "pyvenv.cfg").is_file()
    assert installed(venv) == ["torch-2.8.0+cpu.dist-info"]
    # the system Python itself was not touched, and without --system it never is
    assert (
        "torch"
        not in subprocess.run(
            [str(system), "-m", "pip", "list"], capture_output=True, text=True, check=False
        ).stdout.split()
    )


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_new_venv_is_prompted_with_its_own_name(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer, installer: str
) -> None:
    venv = tmp_path / "myproject"
    args = stand_in(venv, index_server)
    proc = torchup(env, tmp_path, *args, "--installer", installer, "--no-verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prompt = myproject" in (venv / "pyvenv.cfg").read_text().replace("'", "")
    for script in (venv / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            assert b"torchup-" not in script.read_bytes(), script


def test_a_failed_install_at_a_new_nested_path_removes_the_folders_it_made(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    (tmp_path / "keep").mkdir()
    venv = tmp_path / "keep" / "a" / "b" / "venv"
    args = stand_in(venv, index_server)
    proc = torchup(env, tmp_path, *args, "--installer", "uv")  # the stand-in fails verify
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "everything was undone" in proc.stdout
    assert list((tmp_path / "keep").iterdir()) == []


def test_a_second_run_on_the_same_venv_waits_its_turn(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    venv = tmp_path / "v"
    existing_venv(venv)
    before = listing(venv)
    # another run holds the lock and is installing into its staged copy
    other = tmp_path / ".v.torchup-copy-0badf00d"
    (other / "bin").mkdir(parents=True)
    lock = os.open(tmp_path / ".v.torchup.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(lock, str(os.getpid()).encode())  # a live run's pid
        proc = torchup(env, tmp_path, *stand_in(venv, index_server), "--no-verify")
    finally:
        os.close(lock)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"another torchup run (pid {os.getpid()}) is changing {venv}" in proc.stderr
    assert other.is_dir()  # its staging is not taken as a leftover
    assert listing(venv) == before
    # once the other run is gone, the next run clears its leftovers and installs
    proc = torchup(env, tmp_path, *stand_in(venv, index_server), "--no-verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert siblings(venv) == []


def _processes_naming(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_undoes_like_ctrl_c_and_stops_the_installer(
    tmp_path: Path, env: dict[str, str], stop: signal.Signals, code: int
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    args = [
        sys.executable, "-m", "torchup", "install", "torch==2.13.0", "--python", pyenv("3.11"),
        "--backend", "cpu", "--torch-index-url", UNREACHABLE, "--installer", "pip", "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not siblings(work / ".venv") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    staging = siblings(work / ".venv")
    assert staging, "the install never started"
    time.sleep(1.0)  # inside the install
    proc.send_signal(stop)  # to torchup alone, as `kill PID` does
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "torchup: terminated" in err
    assert "Traceback" not in err
    assert json.loads(out)["ok"] is False
    assert list(work.iterdir()) == []
    time.sleep(0.5)
    assert _processes_naming(staging[0]) == []


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_reinstall_repairs_a_damaged_install_of_the_same_version(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer, installer: str
) -> None:
    venv = tmp_path / "v"
    args = stand_in(venv, index_server, "--no-verify", "--installer", installer)
    assert torchup(env, tmp_path, *args).returncode == 0
    site = next(venv.glob("lib/python3.*/site-packages"))
    record = next(site.glob("torch-2.8.0*.dist-info")) / "RECORD"
    module = next(
        site / line.split(",")[0]
        for line in record.read_text().splitlines()
        if line.startswith("torch/") and line.split(",")[0].endswith(".py")
    )
    module.unlink()  # a damaged install: metadata says 2.8.0, a file is gone
    proc = torchup(env, tmp_path, *args)  # the installer calls it satisfied
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not module.exists()
    proc = torchup(env, tmp_path, *args, "--reinstall")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert module.exists()
    assert siblings(venv) == []


def test_a_source_planning_could_not_read_is_not_handed_to_the_installer(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    down = "http://user:s3cret@127.0.0.1:9/simple"  # nothing listens there
    venv = tmp_path / "v"
    args = stand_in(venv, index_server, "--no-verify")
    proc = torchup(env, tmp_path, *args, "--extra-index-url", down, "--installer", "uv", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert not any("127.0.0.1:9" in arg for cmd in doc["commands"] for arg in cmd)
    assert "skipped a source: cannot read http://user:****@127.0.0.1:9/simple/torch/" in (
        proc.stderr
    )
    assert "s3cret" not in proc.stdout + proc.stderr
    assert installed(venv) == ["torch-2.8.0+cpu.dist-info"]


def test_an_installer_failure_names_what_failed(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    # the main index stays in the command even when unreadable (dropping it would send
    # the installer to PyPI instead); uv then fails, and says which URL
    down = "http://user:s3cret@127.0.0.1:9/simple"
    args = stand_in(tmp_path / "v", index_server, "--no-verify")
    proc = torchup(env, tmp_path, *args, "--index-url", down, "--installer", "uv", "-q")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    message = proc.stdout.strip().splitlines()[-1]
    assert "uv exited with status" in message
    assert "127.0.0.1:9" in message
    assert "s3cret" not in proc.stdout + proc.stderr
    assert not (tmp_path / "v").exists()


def test_the_pip_installer_in_a_venv_without_pip_says_what_to_do(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    venv = tmp_path / "v"
    python = existing_venv(venv)  # made --without-pip
    before = listing(venv)
    proc = torchup(env, tmp_path, *stand_in(venv, index_server, "--installer", "pip", "-q"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "No module named pip" in proc.stdout
    assert f"pass --installer uv, or add pip with `{python} -m ensurepip`" in proc.stdout
    assert listing(venv) == before


@pytest.mark.parametrize("what", ["symlink", "folder"])
def test_a_lock_path_that_is_not_a_plain_file_stops_the_run(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer, what: str
) -> None:
    venv = tmp_path / "v"
    existing_venv(venv)
    before = listing(venv)
    victim = tmp_path / "victim.txt"
    victim.write_text("important data\n")
    lock = tmp_path / ".v.torchup.lock"
    if what == "symlink":  # never written through: the pid would overwrite the victim
        lock.symlink_to(victim)
    else:
        lock.mkdir()
    proc = torchup(env, tmp_path, *stand_in(venv, index_server), "--no-verify")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cannot create the lock file {lock}" in proc.stderr
    assert victim.read_text() == "important data\n"
    assert listing(venv) == before


def test_activation_lines_quote_the_path_and_a_missing_conda_env_says_so(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    venv = tmp_path / "my env"
    args = stand_in(venv, index_server, "--dry-run")
    proc = torchup(env, tmp_path, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    shells = json.loads(proc.stdout)["activation"]
    assert shells["bash/zsh"] == f"source '{venv}/bin/activate'"
    assert shells["PowerShell"] == f"& '{venv}/bin/Activate.ps1'"
    proc = torchup(env, tmp_path, "install", "torch", "--conda-env", "nonexist", "--dry-run")
    assert proc.returncode == 2
    assert "--conda-env 'nonexist': no conda env by that name or prefix" in proc.stderr
    assert "--python" not in proc.stderr
