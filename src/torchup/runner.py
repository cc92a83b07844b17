"""The one place torchup starts subprocesses.

``run`` cleans the environment of variables that would make a target interpreter
misbehave, captures output, enforces a timeout, and turns every failure into a
:class:`~torchup.errors.RunnerError` that keeps the original error and output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torchup.errors import RunnerError

__all__ = ["Completed", "clean_env", "not_there", "run", "stream"]

# Variables that leak the calling interpreter's state into a target interpreter
# (PYTHONHOME/PYTHONPATH point at the wrong stdlib; __PYVENV_LAUNCHER__ is macOS's
# framework trampoline and makes a venv report the base interpreter).
_DROP = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    """The result of a finished subprocess."""

    cmd: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def clean_env(env: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Return a copy of ``env`` (default ``os.environ``) fit for running a target Python."""
    base = dict(os.environ if env is None else env)
    for key in _DROP:
        base.pop(key, None)
    base["PYTHONUTF8"] = "1"
    base["PYTHONIOENCODING"] = "utf-8"
    base.update(extra)
    return base


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    cwd: str | None = None,
    check: bool = True,
    stdin: str | None = None,
    started: Callable[[], object] | None = None,
) -> Completed:
    """Run ``cmd`` and return its captured output; ``started`` is called once it runs
    (work to overlap with it).

    Raises :class:`RunnerError` when the program is missing, times out, or (with
    ``check``) exits non-zero; the error keeps the command, exit code and output.
    """
    import subprocess  # lazy: a warm plan starts no process and need not import it

    argv = tuple(str(part) for part in cmd)
    try:
        # its own process group, so a timeout stops what it started too (a hung
        # `python3.x` wrapper script and its children), not only the first process
        proc = subprocess.Popen(
            argv,
            env=clean_env(env),
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=os.name == "posix",
        )
    except FileNotFoundError as exc:
        raise RunnerError(not_there(argv[0]), cmd=argv) from exc
    except PermissionError as exc:
        raise RunnerError(f"{argv[0]!r} is not executable", cmd=argv) from exc
    except OSError as exc:
        raise RunnerError(f"cannot run {argv[0]!r}: {exc.strerror or exc}", cmd=argv) from exc
    try:
        if started is not None:
            started()
        stdout, stderr = proc.communicate(input=stdin, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = _stop_group(proc)
        raise RunnerError(
            f"{argv[0]!r} did not finish within {timeout:g} s", cmd=argv, output=out
        ) from exc
    except BaseException:  # Ctrl-C, SIGTERM: the group is ours to stop
        _stop_group(proc)
        raise
    done = Completed(cmd=argv, returncode=proc.returncode, stdout=stdout, stderr=stderr)
    if check and proc.returncode != 0:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        raise RunnerError(
            f"{argv[0]!r} exited with status {proc.returncode}: " + " / ".join(tail),
            cmd=argv,
            returncode=proc.returncode,
            output=stdout + stderr,
        )
    return done


def _stop_group(proc: Any) -> str:
    """Kill ``proc`` and every process in its group, reap it, and return what it had
    written to stdout."""
    import signal
    import subprocess

    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        out, _ = proc.communicate(timeout=5)
        return out or ""
    except subprocess.TimeoutExpired:  # a grandchild left the group, holding the pipe
        proc.kill()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return ""


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when torchup dies (Linux's
    parent-death signal, PR_SET_PDEATHSIG), or ``None`` where there is none.

    Everything it calls is resolved here, in the parent, so the child between fork and
    exec runs no import and takes no lock. The signal follows the *thread* that forked
    the child, so :func:`stream` must be called from a thread that outlives it (the
    main thread does). If torchup died before the call took effect, the child's parent
    is no longer ours and it kills itself.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, kill, getppid, pid = os.getpid(), os.kill, os.getppid, os.getpid
    set_pdeathsig, sigkill = 1, int(signal.SIGKILL)  # PR_SET_PDEATHSIG, from <linux/prctl.h>

    def arm() -> None:
        prctl(set_pdeathsig, sigkill, 0, 0, 0)
        if getppid() != parent:
            kill(pid(), sigkill)

    return arm


def stream(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600.0,
    echo: bool = True,
    keep_fds: Sequence[int] = (),
) -> Completed:
    """Run ``cmd`` showing its output live on our stderr (progress bars included) and
    keep it for error messages. stdout stays free for ``--json``.

    No child outlives torchup: on Linux it is killed when torchup dies (even by
    ``kill -9``; see :func:`_die_with_parent`). ``keep_fds`` are inherited by the child,
    so a lock held through one of them stays held while the child lives: elsewhere,
    where no parent-death signal exists, the next run waits for an orphan to finish
    instead of racing it. Ctrl-C stops the child (and its process group) before the
    :class:`KeyboardInterrupt` propagates. Raises :class:`RunnerError` when the program
    is missing or runs past ``timeout``.
    """
    import subprocess
    import threading

    argv = tuple(str(part) for part in cmd)
    try:
        proc = subprocess.Popen(
            argv,
            env=clean_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=tuple(keep_fds),
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 (resolved in the parent; see there)
            start_new_session=os.name == "posix",  # its own group: stopped as a whole
        )
    except OSError as exc:
        raise RunnerError(f"cannot run {argv[0]!r}: {exc.strerror or exc}", cmd=argv) from exc
    assert proc.stdout is not None
    kept = bytearray()
    # A child that hangs silently never returns from read1; the watchdog kills it.
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]  # a BufferedReader
            kept += chunk
            del kept[:-65536]
            if echo:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
        returncode = proc.wait()
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        timed_out = watchdog.finished.is_set()  # set once it has fired
        watchdog.cancel()
    if timed_out and returncode < 0:
        raise RunnerError(f"{argv[0]!r} did not finish within {timeout:g} s", cmd=argv)
    text = kept.decode("utf-8", errors="replace")
    return Completed(cmd=argv, returncode=returncode, stdout=text, stderr="")


def not_there(program: str) -> str:
    """Why ``program`` could not be started: a link whose target is gone (a venv's
    python, once its base Python was removed) says so, not "does not exist"."""
    if os.path.islink(program):
        target = os.path.realpath(program)
        return f"{program!r} is a link to {target!r}, which does not exist"
    return f"{program!r} does not exist"
