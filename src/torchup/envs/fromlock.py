"""``torchup install --lock pylock.toml``: install exactly a PEP 751 lock, all or nothing.

The order of events, each step able to stop the whole without leaving anything half
done (the same transaction as :func:`torchup.envs.installing.install`):

1. read the lock (:func:`~torchup.export.pylock.read_lock`);
2. decide the target (``--venv`` / ``--conda-env`` / ``--system`` / active env /
   ``./.venv``) and its Python: an existing env's own, ``--python``, else a Python on
   this machine of the version the lock was made for;
3. refuse a lock that does not fit that Python or this machine, with every reason
   (:func:`~torchup.export.fit.lock_fits`), before anything is created;
4. choose each package's file: packages whose marker does not apply (PEP 751's
   lock-file context: no extras, the lock's default groups) are left out; of a
   package's wheels the one whose tags the interpreter ranks best (:func:`chosen_files`);
   a package with only an sdist for this Python is refused, since its build
   requirements could not be fetched;
5. stage, install those files as hash-pinned direct references with ``--no-deps
   --no-index`` (nothing but the lock's files can be fetched), verify, and only then
   commit; a failure undoes everything.

A lock-relative path (``path = "files/..."``, as :mod:`torchup.export.wheelhouse`
writes them) is resolved against the lock's folder (PEP 751: a path is relative to the
lock file).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from packaging.utils import canonicalize_name

from torchup.choose.backends import Backend
from torchup.choose.plan import Plan, PlannedPackage
from torchup.envs import staging as envs
from torchup.envs.installers import InstallerChoice
from torchup.envs.installing import (
    InstallResult,
    _as_shown,
    _create_step,
    _outcome,
    _Request,
    _resolve_target,
    _run_staged,
    _settled_target,
)
from torchup.errors import TorchupError, UsageError
from torchup.export.pylock import FAMILY, Lock, LockedFile, LockedPackage, LockError
from torchup.index.pages import VARIANT_RE, redact
from torchup.index.sources import Source, Sources

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator
    from torchup.interpreters.discover import Interpreter

__all__ = [
    "chosen_files",
    "direct_requirements",
    "file_url",
    "install_lock",
    "lock_install_command",
    "plan_of_lock",
]

log = logging.getLogger(__name__)

#: ``accelerator="detect"``: run :func:`torchup.hardware.accelerators.detect`
Detect = Literal["detect"]
Chosen = tuple[tuple[LockedPackage, LockedFile], ...]


def install_lock(
    lock_path: Path | str,
    *,
    python: str | None = None,
    venv: str | None = None,
    conda_env: str | None = None,
    system: bool = False,
    installer: str = "auto",
    accelerator: Accelerator | Detect | None = "detect",
    dry_run: bool = False,
    verify: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    echo: bool = True,
) -> InstallResult:
    """Install exactly the files of the lock at ``lock_path`` into the target, verified.

    ``accelerator`` is the machine the lock's torch build is judged against (default:
    detected, honouring the ``TORCHUP_*`` overrides; ``None`` skips that check). Returns
    a result with ``ok`` false when the installer or verification failed (everything
    was undone). Raises :class:`~torchup.export.pylock.LockError` for an unreadable or
    malformed lock, :class:`~torchup.export.fit.LockUnfitError` (every reason) for a lock
    made for another Python or machine, :class:`UsageError` for contradictory or unsafe
    targets (PEP 668) and :class:`TorchupError` when no Python fits; nothing was created
    in those cases.
    """
    from torchup.export.fit import lock_fits
    from torchup.export.pylock import read_lock

    env = dict(os.environ) if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    lock = read_lock(cwd / lock_path)
    if lock.package("torch") is None:
        raise LockError(
            f"the lock {lock.path} holds no torch: torchup installs a PyTorch lock, and "
            "verifies torch in it",
            hint="make the lock with `torchup lock torch ...`, or install this one with "
            "uv pip sync / pip install -r",
        )
    target, choice = _resolve_target(
        venv=venv, conda_env=conda_env, system=system, installer=installer, env=env, cwd=cwd
    )
    py, python_source = _lock_interpreter(lock, target, python, env, cwd)
    if accelerator == "detect":
        from torchup.hardware.accelerators import detect

        accelerator = detect(env=env)
    fit = lock_fits(lock, py, accelerator)
    fit.check()  # before anything is created
    files = chosen_files(lock, py)
    _no_sdists(files, py)
    plan = plan_of_lock(lock, py, accelerator, files=files, warnings=fit.notes)
    target = _settled_target(target, plan)
    note = "conda env: installing with its own pip. " if target.kind == "conda" else ""
    req = _Request(
        target=target, plan=plan, installer=choice, python_source=python_source, note=note
    )
    return _install_staged(req, lock, files, dry_run=dry_run, verify=verify, env=env, echo=echo)


# -- the interpreter -------------------------------------------------------------------


def _lock_interpreter(
    lock: Lock, target: envs.Target, python: str | None, env: Mapping[str, str], cwd: Path
) -> tuple[Interpreter, str]:
    """The Python the lock goes into, and where it came from: an existing env's own,
    ``--python``, the default for ``--system``, else one of the lock's version."""
    from torchup.interpreters.discover import default_interpreter, select

    if target.exists and target.kind != "system":
        assert target.executable is not None
        py = _usable(select(target.executable, env=env, cwd=cwd))
        if python and select(python, env=env, cwd=cwd).version != py.version:
            raise UsageError(
                f"{target.path} uses Python {py.version}, not the one --python {python!r} names",
                hint="pass --venv with a new path to create a venv from that Python",
            )
        return py, f"the {target.kind} at {target.path} ({target.source})"
    if python:
        return _usable(select(python, env=env, cwd=cwd)), f"--python {python}"
    if target.kind == "system":
        return _usable(default_interpreter(env=env, cwd=cwd)), "the default Python"
    return _python_for_lock(lock, env, cwd)


def _usable(py: Interpreter) -> Interpreter:
    if py.error:
        raise TorchupError(
            f"{py.executable} cannot be used: {py.error}",
            hint="pick another one with --python; `torchup pythons` lists them",
        )
    return py


def _python_for_lock(lock: Lock, env: Mapping[str, str], cwd: Path) -> tuple[Interpreter, str]:
    """A Python on this machine of the major.minor (and free-threadedness) the lock was
    made for; for a lock without ``[tool.torchup]``, the newest one it fits."""
    from packaging.version import Version

    from torchup.errors import PythonNotFoundError
    from torchup.export.fit import lock_fits
    from torchup.interpreters.discover import discover, select

    where = str(lock.path) if lock.path is not None else "the lock"
    made = lock.made_for
    if made is not None:
        release = Version(made.python_version).release
        spec = ".".join(map(str, release[:2])) + ("t" if made.free_threaded else "")
        try:
            py = _usable(select(spec, env=env, cwd=cwd))
        except PythonNotFoundError:
            raise TorchupError(
                f"the lock {where} was made for Python {made.python_version}"
                f"{' (free-threaded)' if made.free_threaded else ''}, and no Python {spec} "
                "is on this machine to create the venv from",
                hint=f"install one (e.g. `uv python install {spec}`) or pass --python",
            ) from None
        return py, f"the Python the lock was made for ({made.python_version}): {py.version}"
    found = [
        py for py in discover(env=env, cwd=cwd) if not py.error and py.kind not in ("venv", "conda")
    ]
    found.sort(key=lambda py: Version(py.version), reverse=True)
    for py in found:
        if lock_fits(lock, py, None).ok:
            return py, f"the newest Python on this machine the lock fits ({py.version})"
    raise TorchupError(
        f"no Python on this machine fits the lock {where} (requires-python "
        f"{lock.requires_python or 'not given'}, and its wheels' tags)",
        hint="pass --python with the Python the lock was made for",
    )


# -- which files (pure) ----------------------------------------------------------------


def _rank(file: LockedFile, rank: Mapping[str, int]) -> int | None:
    """How the interpreter ranks ``file``'s best tag (lower is better; ``None``: none
    of them, or not a wheel)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    if file.kind != "wheel":
        return None
    try:
        tags = parse_wheel_filename(file.filename)[3]
    except InvalidWheelFilename:
        return None
    return min((rank[str(t)] for t in tags if str(t) in rank), default=None)


def chosen_files(lock: Lock, interpreter: Interpreter) -> Chosen:
    """Per package that applies to ``interpreter`` (by its marker), the file to install:
    the wheel whose tags rank best in ``interpreter.tags`` (earlier is better), else the
    sdist. Raises :class:`LockError` for a package with neither (a lock that
    :func:`~torchup.export.fit.lock_fits` accepted always has one)."""
    rank = {tag: i for i, tag in enumerate(interpreter.tags)}
    out: list[tuple[LockedPackage, LockedFile]] = []
    for pkg in lock.packages:
        if not lock.applies(pkg, interpreter.markers):
            log.info("%s %s: its marker %r does not apply here", pkg.name, pkg.version, pkg.marker)
            continue
        ranked = [(r, f) for f in pkg.files if (r := _rank(f, rank)) is not None]
        sdist = next((f for f in pkg.files if f.kind == "sdist"), None)
        if ranked:
            out.append((pkg, min(ranked, key=lambda pair: pair[0])[1]))
        elif sdist is not None:
            out.append((pkg, sdist))
        else:
            names = ", ".join(f.filename for f in pkg.files)
            raise LockError(
                f"{pkg.name} {pkg.version}: none of its files ({names}) installs into "
                f"Python {interpreter.version} at {interpreter.executable}",
                hint="make a lock for this Python (torchup lock --python ...)",
            )
    return tuple(out)


def _no_sdists(files: Chosen, py: Interpreter) -> None:
    """Refuse a lock that would build a package here: the install reads no index
    (``--no-index``: nothing but the lock's files), so an sdist's build requirements
    (setuptools, ...) cannot be fetched, and the build would fail after the environment
    was staged."""
    sdists = [f"{pkg.name} {pkg.version} ({f.filename})" for pkg, f in files if f.kind == "sdist"]
    if sdists:
        raise LockError(
            f"the lock has no wheel for Python {py.version} at {py.executable} of "
            f"{', '.join(sdists)}, only a source distribution: torchup installs a lock's "
            "files and nothing else, so the build requirements it would need cannot be "
            "fetched",
            hint="make the lock where wheels exist for this Python (torchup lock --python "
            "...), or build the wheel (pip wheel --no-deps) and lock that",
        )


def file_url(file: LockedFile, folder: Path | None) -> str:
    """Where ``file`` is fetched from: its URL, or a path (relative to the lock's
    ``folder``) as a ``file://`` URI.

    >>> file_url(LockedFile(filename="a.whl", url="files/a.whl", sha256=""), Path("/h"))
    'file:///h/files/a.whl'
    >>> file_url(LockedFile(filename="a.whl", url="https://x/a.whl", sha256=""), None)
    'https://x/a.whl'
    """
    if "://" in file.url:
        return file.url
    path = Path(file.url)
    if not path.is_absolute():
        path = (folder or Path.cwd()) / path
    return Path(os.path.abspath(path)).as_uri()


def direct_requirements(files: Chosen, folder: Path | None) -> str:
    """The requirements file that installs exactly ``files``: one hash-pinned direct
    reference per package.

    >>> pkg = LockedPackage(name="idna", version="3.10", files=())
    >>> f = LockedFile(filename="idna-3.10-py3-none-any.whl", url="https://x/i.whl",
    ...                sha256="ab" * 32)
    >>> direct_requirements(((pkg, f),), None).split()[:3]
    ['idna', '@', 'https://x/i.whl']
    """
    lines = [f"{pkg.name} @ {file_url(f, folder)} --hash=sha256:{f.sha256}" for pkg, f in files]
    return "\n".join(lines) + "\n"


def plan_of_lock(
    lock: Lock,
    interpreter: Interpreter,
    accelerator: Accelerator | None,
    *,
    files: Chosen | None = None,
    warnings: Sequence[str] = (),
) -> Plan:
    """The plan a lock stands for: its torch-family files (``files`` as
    :func:`chosen_files` chose them), its backend and sources as ``[tool.torchup]``
    records them. Nothing is read from an index (``no_index``); the recorded index is
    kept for the record."""
    files = chosen_files(lock, interpreter) if files is None else files
    where = str(lock.path) if lock.path is not None else "the lock"
    folder = lock.path.parent if lock.path is not None else None
    made = lock.made_for
    packages = tuple(
        _planned(pkg, f, folder) for pkg, f in files if canonicalize_name(pkg.name) in FAMILY
    )
    recorded = made.sources if made is not None else {}
    origin = f"recorded in {where} (not read: the lock names every file)"
    index_url = recorded.get("index_url")
    sources = Sources(
        index_url=Source(url=index_url, origin=origin) if isinstance(index_url, str) else None,
        extra_index_urls=tuple(
            Source(url=str(u), origin=origin) for u in recorded.get("extra_index_urls", ())
        ),
        find_links=(),
        trusted_hosts=(),
        no_index=True,
        torch_index_url=Source(url=where, origin="--lock"),
    )
    backend = Backend(
        name=(made.backend if made is not None else "") or "lock",
        variant=made.variant if made is not None else None,
        source=f"the lock {where}",
    )
    return Plan(
        python=interpreter,
        backend=backend,
        sources=sources,
        packages=packages,
        requirements=made.requirements if made is not None else (),
        accelerator=accelerator,
        release=made.release if made is not None else None,
        warnings=tuple(warnings),
    )


def _planned(pkg: LockedPackage, file: LockedFile, folder: Path | None) -> PlannedPackage:
    local = pkg.version.partition("+")[2] or None
    return PlannedPackage(
        name=pkg.name,
        version=pkg.version,
        local=local,
        variant=local if local and VARIANT_RE.fullmatch(local) else None,
        filename=file.filename,
        url=redact(file_url(file, folder)),
        sha256=file.sha256,
        index=redact(pkg.index) if pkg.index else "",
    )


# -- the transaction -------------------------------------------------------------------


def lock_install_command(
    installer: InstallerChoice,
    python: str,
    requirements: Path,
    *,
    break_system_packages: bool,
    existing: bool = False,
) -> tuple[str, ...]:
    """The one command that installs the requirements file of direct references: no
    dependencies resolved, no index read, every file's hash required. Into an
    ``existing`` environment pip is told ``--force-reinstall``: given a file of a
    version already installed, it keeps what is there ("already installed with the
    same version") whatever build that is, and the lock's hashes would go unchecked.
    (uv compares the installed file's origin with the one asked for, and replaces it.)

    >>> lock_install_command(InstallerChoice(name="pip", uv=None, source=""), "/py",
    ...                      Path("r.txt"), break_system_packages=False)[3:]
    ('install', '--no-deps', '--require-hashes', '--no-index', '-r', 'r.txt')
    """
    flags: tuple[str, ...] = (
        "--no-deps",
        "--require-hashes",
        "--no-index",
        "-r",
        str(requirements),
    )
    if installer.name == "uv":
        assert installer.uv is not None
        head: tuple[str, ...] = (installer.uv, "pip", "install", "--python", python)
        tail: tuple[str, ...] = ("--system", "--break-system-packages")
    else:
        head, tail = (python, "-m", "pip", "install"), ("--break-system-packages",)
        if existing:
            flags = (*flags, "--force-reinstall")
    return (*head, *flags, *(tail if break_system_packages else ()))


def _install_staged(
    req: _Request,
    lock: Lock,
    files: Chosen,
    *,
    dry_run: bool,
    verify: bool,
    env: Mapping[str, str],
    echo: bool,
) -> InstallResult:
    """Stage, install the lock's files, verify and commit; leaving the staging block
    without the commit (a failure, an error, Ctrl-C) undoes everything."""
    target = req.target
    py = req.plan.python
    folder = lock.path.parent if lock.path is not None else None
    with tempfile.TemporaryDirectory(prefix="torchup-") as tmp:
        pinned = Path(tmp) / "pylock-files.txt"
        staging = envs.Staging(target)
        text = direct_requirements(files, folder)
        create = _create_step(req.installer, staging, py.executable)
        install = lock_install_command(
            req.installer,
            str(staging.python),
            pinned,
            break_system_packages=target.kind == "system" and py.externally_managed,
            existing=target.kind != "venv" or target.exists,
        )
        steps = [*([create] if create else []), install]
        shown, file = _as_shown(steps, text, pinned, staging.work, target.path)
        req = replace(req, pinned=file)
        if dry_run:
            return _outcome(req, True, "dry run: nothing was created or changed", shown, dry=True)
        pinned.write_text(text)
        failure, report = _run_staged(req, staging, steps, shown, local={}, verify=verify,
                                     env=env, echo=echo)  # fmt: skip
    if failure is not None:
        return failure
    where = lock.path if lock.path is not None else "the lock"
    return _outcome(req, True, f"installed {where} into {target.path}", shown, report=report)
