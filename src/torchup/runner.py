"""The one place torchup starts subprocesses.

``run`` cleans the environment of variables that would make a target interpreter
misbehave, captures output, enforces a timeout, and turns every failure into a
:class:`~torchup.errors.RunnerError` that keeps the original error and output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import RunnerError

__all__ = ["Completed", "clean_env", "run", "stream"]

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
) -> Completed:
    """Run ``cmd`` and return its captured output.

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
        raise RunnerError(f"{argv[0]!r} does not exist", cmd=argv) from exc
    except PermissionError as exc:
        raise RunnerError(f"{argv[0]!r} is not executable", cmd=argv) from exc
    except OSError as exc:
        raise RunnerError(f"cannot run {argv[0]!r}: {exc.strerror or exc}", cmd=argv) from exc
    try:
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


def stream(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600.0,
    echo: bool = True,
) -> Completed:
    """Run ``cmd`` showing its output live on our stderr (progress bars included) and
    keep it for error messages. stdout stays free for ``--json``.

    Ctrl-C stops the child before the :class:`KeyboardInterrupt` propagates. Raises
    :class:`RunnerError` when the program is missing or runs past ``timeout``.
    """
    import subprocess
    import sys
    import threading

    argv = tuple(str(part) for part in cmd)
    try:
        proc = subprocess.Popen(
            argv, env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
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
        proc.kill()
        proc.wait()
        raise
    finally:
        timed_out = watchdog.finished.is_set()  # set once it has fired
        watchdog.cancel()
    if timed_out and returncode < 0:
        raise RunnerError(f"{argv[0]!r} did not finish within {timeout:g} s", cmd=argv)
    text = kept.decode("utf-8", errors="replace")
    return Completed(cmd=argv, returncode=returncode, stdout=text, stderr="")
