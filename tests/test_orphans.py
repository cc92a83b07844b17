"""No child outlives torchup: after ``kill -9`` of torchup mid-install, the installer it
started dies with it (Linux's parent-death signal), and the next run on the same target
clears what the killed run left and installs. Where no such signal exists, the installer
holds the killed run's lock through the descriptor it inherited, and the next run waits
for it rather than clear files under it.

Real uv and pip downloading the index server's stand-in torch from a server that stalls
mid-file; a real process holding a real lock for the waiting case.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexserver import IndexServer
from test_install import existing_venv, local_env, siblings, torchup
from test_install_safety import installed, stand_in

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="reads /proc and relies on Linux's PR_SET_PDEATHSIG",
)


def _children_of(pid: int) -> list[int]:
    """Every live process whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"  # a zombie has stopped running


@pytest.fixture
def stalling_server() -> Iterator[IndexServer]:
    server = IndexServer.start()
    try:
        yield server
    finally:
        server.resume_wheels()
        server.close()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_kill_9_of_torchup_kills_the_installer_and_the_next_run_installs(
    tmp_path: Path, stalling_server: IndexServer, installer: str
) -> None:
    """The installer is caught mid-download (the server stalls the wheel), so it would
    wait on its socket for its own timeout if nothing killed it."""
    env = local_env(tmp_path)
    venv = tmp_path / "v"
    existing_venv(venv)
    if installer == "pip":
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "ensurepip"], check=True, capture_output=True
        )
    args = [*stand_in(venv, stalling_server), "--installer", installer, "--no-verify"]
    stalling_server.stall_wheels()
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchup", *args],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        children = _wait_for_download(stalling_server, proc)
        proc.send_signal(signal.SIGKILL)  # torchup gets no chance to stop anything
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(pid) for pid in children), f"{installer} outlived torchup"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert siblings(venv), "the killed run left its staging behind (as kill -9 must)"
    stalling_server.resume_wheels()
    # the next run clears the killed run's leftovers and installs
    done = torchup(env, tmp_path, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert siblings(venv) == []
    assert installed(venv) == ["torch-2.8.0+cpu.dist-info"]


def _wait_for_download(server: IndexServer, proc: subprocess.Popen[bytes]) -> list[int]:
    """Wait until torchup's installer is downloading the stalled wheel; its children."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any(r.path.endswith(".whl") and not r.range for r in server.requests):
            children = _children_of(proc.pid)
            assert children, "the wheel is being fetched, but not by torchup's child"
            time.sleep(0.3)  # well inside the download
            return children
        time.sleep(0.05)
    err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"the installer never started downloading the wheel: {err[-2000:]}")


def test_the_next_run_waits_for_what_a_killed_run_left_holding_its_lock(
    tmp_path: Path, index_server: IndexServer
) -> None:
    """The case without a parent-death signal: the killed run's pid is gone, but a child
    it started still holds the lock it inherited. The next run waits for that child to
    finish instead of clearing files under it, then installs."""
    env = local_env(tmp_path)
    venv = tmp_path / "v"
    existing_venv(venv)
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs: the killed torchup
    lock = os.open(tmp_path / ".v.torchup.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(lock, str(dead.pid).encode())
    marker = tmp_path / "orphan-finished"
    orphan = subprocess.Popen(
        [sys.executable, "-c",
         f"import time, pathlib; time.sleep(2); pathlib.Path({str(marker)!r}).touch()"],
        pass_fds=(lock,),
    )  # fmt: skip
    os.close(lock)  # only the orphan holds it now
    try:
        done = torchup(env, tmp_path, *stand_in(venv, index_server), "--no-verify")
    finally:
        orphan.wait(timeout=30)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"waiting for what the killed torchup run {dead.pid} left running" in done.stderr
    # the install ran after the orphan's end, not under it
    (dist_info,) = venv.glob("lib/python3.11/site-packages/torch-2.8.0*.dist-info")
    assert dist_info.stat().st_mtime >= marker.stat().st_mtime
    assert siblings(venv) == []
