"""torchup.runner.run: a real child process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from torchup.errors import RunnerError
from torchup.runner import run


def test_started_is_called_while_the_program_runs_and_not_when_it_cannot_start(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "go"
    # the child finishes only once `started` made the file: it is called while it runs
    wait = f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)"
    code = f"import os, time\n{wait}\nprint('go')"
    done = run([sys.executable, "-c", code], started=flag.touch, timeout=30)
    assert done.stdout.strip() == "go"
    calls: list[int] = []
    with pytest.raises(RunnerError, match="does not exist"):
        run([str(tmp_path / "missing")], started=lambda: calls.append(1))
    assert calls == []
