"""Run :mod:`torchup.check.verify_probe` in the target and read back what it said.

The probe prints one JSON document between random markers when it finishes, and writes
a line per fact and per check to a progress log as it goes, so a torch that segfaults
the interpreter or hangs still leaves the steps that ran and the one that was running
(:func:`run_probe` salvages them). Only an interpreter that cannot run the probe at all
raises :class:`~torchup.errors.InterpreterError`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torchup.check import probe_source
from torchup.errors import InterpreterError, RunnerError
from torchup.runner import Completed, run

log = logging.getLogger(__name__)


def run_probe(
    python: str, env: Mapping[str, str], timeout: float, *, computations: bool = True
) -> dict[str, Any]:
    """The probe's document, salvaged from its progress log when it died or hung."""
    marker = f"--torchup-{os.urandom(12).hex()}--"
    done: Completed | None = None
    error: RunnerError | None = None
    with tempfile.TemporaryDirectory(prefix="torchup-verify-") as tmp:
        progress = Path(tmp) / "progress.jsonl"
        mode = "compute" if computations else "imports-only"
        cmd = [python, "-c", probe_source("verify_probe.py"), marker, str(progress), mode]
        try:
            # stdin="": a "python" that turns out to be interactive must not wait on it.
            done = run(cmd, env=env, timeout=timeout, cwd=tmp, check=False, stdin="")
        except RunnerError as exc:
            error = exc
        records = _read_log(progress)
    if not any("hello" in r for r in records):
        reason = error.message if error else _said(done)
        raise InterpreterError(
            f"{python!r} cannot run the verify probe: {reason}",
            hint="pass a working Python 2.7 or 3.6+ (`torchup pythons` lists them)",
        )
    doc = _parse_output(done.stdout, marker) if done is not None else None
    if doc is not None:
        if done is not None and done.returncode != 0:
            detail = f"every check ran, then the interpreter {_death(done)}"
            doc["checks"].append({"id": "clean-exit", "status": "warn", "detail": detail})
        return doc
    log.debug("verify probe in %s left no result; salvaging its progress log", python)
    doc = _salvage(records)
    if error is not None:
        reason = f"did not finish within {timeout:g} s; torchup stopped it"
    elif done is not None and done.returncode != 0:
        reason = f"the interpreter {_death(done)}"
    else:
        junk = " ".join((done.stdout if done else "").split())[-120:]
        reason = f"the interpreter exited before the check finished, printing {junk!r}"
    running = doc.pop("running", None) or "probe"
    doc["checks"].append({"id": running, "status": "fail", "detail": reason})
    return doc


def _read_log(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(record, dict):
            records.append(record)
    return records


def _salvage(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rebuild the probe's document from its log; ``running`` is the unfinished check."""
    facts: dict[str, Any] = {}
    checks: list[Any] = []
    running: str | None = None
    executable = None
    for record in records:
        if "hello" in record:
            executable = record["hello"]
        elif "fact" in record and isinstance(record["fact"], list) and len(record["fact"]) == 2:
            facts[str(record["fact"][0])] = record["fact"][1]
        elif "start" in record:
            running = str(record["start"])
        elif "done" in record:
            checks.append(record["done"])
            running = None
    return {"executable": executable, "facts": facts, "checks": checks, "running": running}


def _parse_output(stdout: str, marker: str) -> dict[str, Any] | None:
    start = stdout.find(marker)
    end = stdout.find(marker, start + len(marker)) if start >= 0 else -1
    if end < 0:
        return None
    try:
        doc = json.loads(stdout[start + len(marker) : end])
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        return None
    return doc


def _said(done: Completed | None) -> str:
    if done is None:
        return "no output"
    if done.returncode != 0 and "SyntaxError" in done.stderr:
        return "the probe does not parse there (it needs Python 2.7 or 3.6+)"
    if done.returncode != 0:
        return _death(done)
    junk = " ".join(done.stdout.split())[:80]
    return f"printed no verify result (not a Python?): {junk!r}"


def _death(done: Completed) -> str:
    """``died of SIGSEGV: <last stderr line>`` or ``exited with status 1: ...``."""
    code = done.returncode
    if code < 0:
        try:
            what = f"died of {signal.Signals(-code).name}"
        except ValueError:
            what = f"died of signal {-code}"
    else:
        what = f"exited with status {code}"
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    # faulthandler lists the frames most recent first: those are the crash's (torch's
    # own), not the last ones (the probe's way in)
    marker = next((i for i, ln in enumerate(lines) if "most recent call first" in ln), None)
    if marker is not None:
        frames = [ln for ln in lines[marker + 1 :] if ln.startswith("File ")]
        if frames:
            return f"{what}: {' / '.join(frames[:3])}"
    return f"{what}: {' / '.join(lines[-3:])}" if lines else what
