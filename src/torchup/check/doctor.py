"""``torchup doctor``: find out why an existing PyTorch setup is broken, and how to fix it.

:func:`doctor` examines one Python (the active one by default) and the machine, and
returns a :class:`DoctorReport`: one :class:`Finding` per check (ids in
:data:`~torchup.check.doctor_checks.CHECKS`), each with its evidence and the command that
fixes it, and the fixes as data. It changes nothing; :func:`apply` runs an automatic
fix through :func:`torchup.envs.installing.install`, which rolls back on failure.

What it gathers (this module is the I/O edge; the checks in
:mod:`torchup.check.doctor_checks` are pure), concurrently:

1. the target interpreter: version, wheel tags, kind, PEP 668
   (:mod:`torchup.interpreters.discover`);
2. what is installed, read from disk by :mod:`torchup.check.doctor_probe` run in the target
   (it parses on Python 2.7 and 3.6+ and never imports torch): the torch family's
   metadata, leftovers, the user site, ``torch.py``/``torch/`` in the working
   directory or on ``PYTHONPATH``;
3. ``import torch`` and its companions in a subprocess of the target, bounded by
   ``timeout`` (:func:`torchup.check.verify.verify` without the computations): a crash or a
   hang is a finding, not an error;
4. ``python``, ``python3``, ``pip`` and ``pip3`` on ``env["PATH"]`` and the Python each
   belongs to (a script's first line, else ``pip --version``);
5. the accelerator (:func:`torchup.hardware.accelerators.detect`, unless given) and the
   CUDA/cuDNN libraries in each ``LD_LIBRARY_PATH`` entry;
6. when torch is missing, the other Pythons on the machine that have it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchup.check import probe_source
from torchup.check.doctor_checks import CHECKS, CUDA_LIBRARY, ordered, run_checks
from torchup.check.doctor_facts import (
    Command,
    Dist,
    Facts,
    Finding,
    Fix,
    SiteFacts,
    Target,
    parse_version_py,
    same_path,
    torch_build,
)
from torchup.errors import InterpreterError, RunnerError
from torchup.runner import run

if TYPE_CHECKING:
    from torchup.check.verify import VerifyReport
    from torchup.hardware.accelerators import Accelerator
    from torchup.interpreters.discover import Interpreter

__all__ = ["CHECKS", "DoctorReport", "Finding", "Fix", "doctor"]

log = logging.getLogger(__name__)

SCHEMA = 1
_PROBE_TIMEOUT = 30.0  # the metadata probe and `pip --version` read files only
_PIP_VERSION = re.compile(r"^pip \S+ from (.+?) \(python ([0-9.]+)\)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorReport:
    """What :func:`doctor` found. ``ok`` when no check failed.

    ``checks`` has every check in :data:`CHECKS` order (:meth:`problems` sorts the
    ones that did not pass, most severe first); ``fixes`` mend what did not pass: at
    most one ``automatic`` reinstall, and advice.
    """

    python: Interpreter
    torch: str | None
    variant: str | None
    location: str | None
    accelerator: Accelerator
    checks: tuple[Finding, ...]
    fixes: tuple[Fix, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def problems(self) -> list[Finding]:
        """The checks that warn or fail, most severe first."""
        return [f for f in ordered(self.checks) if f.status != "pass"]

    def to_dict(self) -> dict[str, Any]:
        py = self.python
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "python": {
                "executable": py.executable,
                "version": py.version,
                "implementation": py.implementation,
                "kind": py.kind,
                "prefix": py.prefix,
                "source": py.source,
                "externally_managed": py.externally_managed,
            },
            "torch": {"version": self.torch, "variant": self.variant, "location": self.location},
            "accelerator": {
                "kind": self.accelerator.kind,
                "source": self.accelerator.source,
                "summary": self.accelerator.describe(),
            },
            "checks": [check.to_dict() for check in self.checks],
            "fixes": [fix.to_dict() for fix in self.fixes],
            "seconds": self.seconds,
        }


def doctor(
    python: str | None = None,
    venv: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    accelerator: Accelerator | None = None,
    timeout: float = 120.0,
) -> DoctorReport:
    """Examine a Python and the machine; report every check with evidence and fixes.

    ``python`` is a ``--python`` SPEC and ``venv`` a venv path (at most one; default
    the active venv, ``./.venv``, or ``python3`` on PATH). ``env`` is the user's
    environment (default ``os.environ``): its ``PATH``, ``PYTHONPATH``,
    ``LD_LIBRARY_PATH`` and visibility variables are examined, and it is the
    environment the target runs in. ``cwd`` is the working directory searched for a
    shadowing ``torch.py``. ``accelerator`` replaces detection; ``timeout`` bounds
    ``import torch``. Changes nothing. Raises :class:`UsageError` for contradictory
    targets and :class:`InterpreterError` when the target does not run at all.
    """
    env = dict(os.environ if env is None else env)
    cwd = Path.cwd() if cwd is None else cwd
    began = time.perf_counter()
    from torchup.interpreters.discover import examined

    interp = examined(python, venv, env=env, cwd=cwd)
    if accelerator is None:
        from torchup.hardware.accelerators import detect

        accelerator = detect(env=env)
    accel = accelerator
    # relative entries are relative to where the user runs Python, not to the probe's
    # folder (it runs elsewhere)
    pythonpath = tuple(
        os.path.join(cwd, p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p
    )
    # The import of torch takes seconds; everything else runs beside it.
    with ThreadPoolExecutor(max_workers=6) as pool:
        imported = pool.submit(_import, interp, accel, env, timeout)
        on_disk = pool.submit(_read_site, interp.executable, env, str(cwd), pythonpath)
        commands = [
            pool.submit(_command, name, env) for name in ("python", "python3", "pip", "pip3")
        ]
        site_facts = on_disk.result()
        report, skipped = imported.result()
        found = tuple(c.result() for c in commands)
    others = None
    if not site_facts.family("torch") and (report is None or report.torch is None):
        others = _others_with_torch(interp, env, cwd)
    from torchup.choose.variants import platform_key

    facts = Facts(
        python=interp,
        target=_fix_target(interp),
        site=site_facts,
        accelerator=accel,
        report=report,
        import_skipped=skipped,
        commands=found,
        cwd=str(cwd),
        pythonpath=pythonpath,
        ld_library_path=env.get("LD_LIBRARY_PATH"),
        library_dirs=_library_dirs(env.get("LD_LIBRARY_PATH")),
        others=others,
        platform=platform_key(interp.markers),
    )
    findings, fixes = run_checks(facts)
    tb = torch_build(site_facts, report)
    return DoctorReport(
        python=interp,
        torch=tb.version if tb is not None else None,
        variant=tb.variant if tb is not None else None,
        location=site_facts.resolves_here,
        accelerator=accel,
        checks=tuple(findings),
        fixes=tuple(fixes),
        seconds=round(time.perf_counter() - began, 3),
    )


# --- the target -----------------------------------------------------------------------


def _fix_target(interp: Interpreter) -> Target:
    if interp.kind in ("venv", "conda"):
        return Target(kind=interp.kind, path=interp.prefix, executable=interp.executable)
    return Target(kind="system", path=interp.prefix, executable=interp.executable)


# --- what is installed (the doctor probe) ---------------------------------------------


def _read_site(exe: str, env: Mapping[str, str], cwd: str, pythonpath: Sequence[str]) -> SiteFacts:
    """Run the doctor probe in ``exe``. Raises :class:`InterpreterError` when it cannot."""
    marker = f"--torchup-{os.urandom(12).hex()}--"
    args = json.dumps({"cwd": cwd, "pythonpath": list(pythonpath)})
    try:
        # A neutral working directory: the probe examines the user's one from ARGS.
        done = run(
            [exe, "-c", probe_source("doctor_probe.py"), marker, args],
            env=env,
            timeout=_PROBE_TIMEOUT,
            cwd=tempfile.gettempdir(),
            check=False,
            stdin="",
        )
    except RunnerError as exc:
        raise InterpreterError(f"cannot examine {exe}: {exc.message}") from exc
    start = done.stdout.find(marker)
    end = done.stdout.find(marker, start + len(marker)) if start >= 0 else -1
    try:
        raw = json.loads(done.stdout[start + len(marker) : end]) if end >= 0 else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InterpreterError(f"cannot examine {exe}: {said[0]}")
    return parse_site(raw)


def parse_site(raw: Mapping[str, Any]) -> SiteFacts:
    """The doctor probe's document as :class:`SiteFacts` (unknown fields ignored)."""

    def text(value: Any) -> str | None:
        return str(value) if value is not None else None

    def items(key: str) -> list[Mapping[str, Any]]:
        return [d for d in raw.get(key) or () if isinstance(d, dict)]

    def dists(key: str) -> tuple[Dist, ...]:
        return tuple(
            Dist(
                name=str(d.get("name")),
                version=text(d.get("version")),
                dir=str(d.get("dir")),
                path=str(d.get("path")),
                requires=tuple(str(r) for r in d.get("requires") or ()),
                tags=tuple(str(t) for t in d.get("tags") or ()),
                installer=text(d.get("installer")),
                package=bool(d.get("package")),
                version_py=parse_version_py(text(d.get("version_py"))),
            )
            for d in items(key)
        )

    return SiteFacts(
        executable=str(raw.get("executable")),
        base_executable=text(raw.get("base_executable")),
        in_venv=bool(raw.get("in_venv")),
        user_site=text(raw.get("user_site")),
        user_site_enabled=bool(raw.get("user_site_enabled")),
        dists=dists("dists"),
        user_site_dists=dists("user_site_dists"),
        leftovers=tuple((str(d.get("path")), str(d.get("why"))) for d in items("leftovers")),
        shadows=tuple(
            (str(d.get("path")), str(d.get("where")), tuple(map(str, d.get("metadata") or ())))
            for d in items("shadows")
        ),
        resolves=text(raw.get("resolves")),
        resolves_here=text(raw.get("resolves_here")),
    )


def _import(
    interp: Interpreter, accel: Accelerator, env: Mapping[str, str], timeout: float
) -> tuple[VerifyReport | None, str | None]:
    """Import torch and its companions in the target; or why that was not tried."""
    from torchup.check.verify import verify

    try:
        return verify(
            interp.executable, accelerator=accel, env=env, timeout=timeout, computations=False
        ), None
    except InterpreterError as exc:
        return None, exc.message


# --- PATH, libraries, other Pythons ---------------------------------------------------


def _command(name: str, env: Mapping[str, str]) -> Command:
    """``name`` on ``env``'s PATH and the Python it belongs to."""
    from torchup.interpreters.discover import probe

    found = shutil.which(name, path=env.get("PATH", ""))
    if found is None:
        return Command(name=name, path=None)
    python = found if name.startswith("python") else _shebang_python(found, env)
    if python is not None:
        interp = probe(python, source="PATH", env=env, timeout=_PROBE_TIMEOUT)
        how = "running it" if python == found else f"its first line ({python})"
        return Command(
            name=name,
            path=found,
            prefix=interp.prefix or None,
            version=interp.version or None,
            how=how,
            error=interp.error,
        )
    return _pip_version(name, found, env)


def _shebang_python(path: str, env: Mapping[str, str]) -> str | None:
    """The Python a script's first line runs (``#!/usr/bin/env python3`` too, and pip's
    ``/bin/sh`` launcher for long paths), or None (a shim, a binary)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024).decode("utf-8", "replace")
    except OSError:
        return None
    if not head.startswith("#!"):
        return None
    words = head[2:].splitlines()[0].split()
    launcher = re.search(r"^'''exec' \"?([^\"\s]+)\"?", head, re.MULTILINE)
    if launcher:
        return launcher.group(1)
    if len(words) >= 2 and os.path.basename(words[0]) == "env":
        words = words[1:]
        if re.match(r"^(python|pypy)", words[0]):
            return shutil.which(words[0], path=env.get("PATH", ""))
    if words and re.match(r"^(python|pypy)", os.path.basename(words[0])):
        return words[0]
    return None


def _pip_version(name: str, path: str, env: Mapping[str, str]) -> Command:
    """Ask a pip that names no Python (a pyenv shim) where it lives."""
    try:
        done = run([path, "--version"], env=env, timeout=_PROBE_TIMEOUT, check=False, stdin="")
    except RunnerError as exc:
        return Command(name=name, path=path, how="pip --version", error=exc.message)
    match = _PIP_VERSION.search(done.stdout)
    if match is None:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return Command(name=name, path=path, how="pip --version", error=said[0])
    return Command(
        name=name,
        path=path,
        location=match.group(1),
        version=match.group(2),
        how="pip --version",
    )


def _library_dirs(value: str | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for directory in (value or "").split(os.pathsep):
        if not directory:
            continue
        try:
            names = sorted(n for n in os.listdir(directory) if CUDA_LIBRARY.match(n))
        except OSError:
            names = []
        out.append((directory, tuple(names)))
    return tuple(out)


def _others_with_torch(
    target: Interpreter, env: Mapping[str, str], cwd: Path
) -> tuple[tuple[str, str, str], ...]:
    """The other Pythons on this machine with a torch in their own site-packages."""
    from torchup.interpreters.discover import discover

    out = []
    for interp in discover(env=env, cwd=cwd):
        if interp.error or not interp.prefix:
            continue
        if same_path(interp.prefix, target.prefix) and same_path(
            interp.executable, target.executable
        ):
            continue
        version = _installed_torch(interp)
        if version is not None:
            out.append((interp.executable, interp.version, version))
    return tuple(out)


def _installed_torch(interp: Interpreter) -> str | None:
    major_minor = ".".join(interp.version.split(".")[:2]) + ("t" if interp.free_threaded else "")
    prefix = Path(interp.prefix)
    for site in (
        prefix / "lib" / f"python{major_minor}" / "site-packages",
        prefix / "Lib" / "site-packages",
    ):
        for dist in sorted(site.glob("torch-*.dist-info")):
            return dist.name[len("torch-") : -len(".dist-info")]
    return None
