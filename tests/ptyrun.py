"""Run a command with one of its streams on a pseudo-terminal, as a user's shell would.

For the output that changes on a terminal (colour, a redrawn progress bar). The other
stream is captured. The terminal's side is read after the command exits: enough for
outputs under the pty's buffer (tens of KiB on Linux), which these tests' are.
"""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Mapping, Sequence
from typing import Literal


def on_a_pty(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stream: Literal["stdout", "stderr"] = "stdout",
    timeout: float = 120,
) -> tuple[subprocess.CompletedProcess[str], str]:
    """``(the finished process, what the terminal got)``; the other stream is in it."""
    leader, follower = pty.openpty()
    other = "stderr" if stream == "stdout" else "stdout"
    try:
        proc = subprocess.run(
            list(argv), env=dict(env), text=True, check=False, timeout=timeout,
            **{stream: follower, other: subprocess.PIPE},  # type: ignore[call-overload]
        )  # fmt: skip
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        return proc, b"".join(chunks).decode()
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
