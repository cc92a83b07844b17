"""Where an install goes, and how it is made all-or-nothing. Edge module (filesystem).

:func:`resolve_target` decides the environment: ``--venv PATH``, ``--conda-env NAME``,
``--system``, else the active ``VIRTUAL_ENV`` / ``CONDA_PREFIX``, else ``./.venv``.

:class:`Staging` makes the change atomic from the user's point of view:

- a **new** venv is created at a hidden sibling path, installed into and verified
  there, then its paths are rewritten and it is renamed into place;
- an **existing** venv is copied aside with hard links (cheap, even for GBs of torch),
  the copy is installed into and verified, then the two are swapped by renames. The
  original is never written to, so a failure, Ctrl-C or a kill leaves it as it was;
- a conda env or a system Python (``--system``) cannot be copied (their files embed
  their prefix), so their ``site-packages`` (purelib, and platlib where it is apart, as
  ``/usr/lib64`` on Fedora) is copied aside with hard links before an in-place install
  and restored from that copy when install or verify fails; the files outside it that
  the installed distributions' RECORDs list (scripts in ``bin/``, data files) are kept
  aside by name, and on failure one the install added is removed and one it replaced
  or removed put back (a folder it made for them may stay, empty).

Leftovers of a killed run (``.<name>.torchup-*``) are removed by the next run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torchup.errors import TorchupError, UsageError

__all__ = ["Busy", "Staging", "Target", "activation", "resolve_target"]

log = logging.getLogger(__name__)

TargetKind = Literal["venv", "conda", "system"]
_MARK = ".torchup-"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """The environment an install goes to. ``exists`` is false for a venv torchup
    will create; ``source`` says how it was chosen."""

    kind: TargetKind
    path: Path
    exists: bool
    source: str
    executable: str | None = None  # the target's python, when it exists

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "exists": self.exists,
            "source": self.source,
        }


def venv_python(prefix: Path) -> Path:
    """The interpreter of a venv or conda prefix."""
    if os.name == "nt":
        for candidate in (prefix / "Scripts" / "python.exe", prefix / "python.exe"):
            if candidate.exists():
                return candidate
        return prefix / "Scripts" / "python.exe"
    return prefix / "bin" / "python"


def is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def is_conda(path: Path) -> bool:
    return (path / "conda-meta").is_dir()


def resolve_target(
    *,
    venv: str | None,
    conda_env: Path | None,
    system: bool,
    env: Mapping[str, str],
    cwd: Path,
) -> Target:
    """Decide the target environment. Raises :class:`UsageError` for contradictions."""
    chosen = [
        flag
        for flag, on in (("--venv", venv), ("--conda-env", conda_env), ("--system", system))
        if on
    ]
    if len(chosen) > 1:
        raise UsageError(
            f"{' and '.join(chosen)} name different targets", hint="pass only one of them"
        )
    # resolved: a symlink to an environment names that environment, which is what is
    # changed (and locked); the link itself stays
    if venv:
        return _venv_target(_real(cwd / venv, "--venv"), "--venv")
    if conda_env is not None:
        return _conda_target(_real(conda_env, "--conda-env"), "--conda-env")
    if system:
        return Target(kind="system", path=Path("/"), exists=True, source="--system")
    if env.get("VIRTUAL_ENV"):
        return _venv_target(_real(Path(env["VIRTUAL_ENV"]), "VIRTUAL_ENV"), "VIRTUAL_ENV")
    if env.get("CONDA_PREFIX"):
        return _conda_target(_real(Path(env["CONDA_PREFIX"]), "CONDA_PREFIX"), "CONDA_PREFIX")
    return _venv_target(_real(cwd / ".venv", "./.venv"), "default ./.venv")


def _real(path: Path, what: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UsageError(
            f"{what} {path} cannot be resolved: {exc}", hint="fix or remove the symlink"
        ) from None


def _conda_target(prefix: Path, source: str) -> Target:
    if not is_conda(prefix):
        what = "a virtual environment" if is_venv(prefix) else "a Python installation"
        raise UsageError(
            f"{source} names {prefix}, which is {what}, not a conda environment (no conda-meta/)",
            hint="pass --venv for a venv, --conda-env with a conda env's name or prefix, "
            "or --system to install into a Python installation itself",
        )
    return Target(
        kind="conda", path=prefix, exists=True, source=source, executable=str(venv_python(prefix))
    )


def _venv_target(path: Path, source: str) -> Target:
    problem = name_problem(path)
    if problem is not None:
        raise UsageError(
            f"{path} cannot be a venv: {problem}",
            hint="pass --venv with a shorter name",
        )
    if path.exists() and not is_venv(path):
        if is_conda(path):
            return Target(
                kind="conda",
                path=path,
                exists=True,
                source=source,
                executable=str(venv_python(path)),
            )
        raise UsageError(
            f"{path} exists and is not a virtual environment (no pyvenv.cfg)",
            hint="pass --venv with a new or existing venv path; torchup never replaces "
            "a directory it did not create",
        )
    exists = path.exists()
    return Target(
        kind="venv",
        path=path,
        exists=exists,
        source=source,
        executable=str(venv_python(path)) if exists else None,
    )


# Every sibling torchup makes is ``.STEM.torchup-WHAT-XXXXXXXX`` (WHAT: new, copy, old,
# backup, failed) or ``.STEM.torchup.lock``: 25 bytes around STEM at most. A name too
# long for that is shortened to a prefix and a hash of the whole name, so a 255-byte
# venv name still has room and two long names that share a prefix never share a stem.
_NAME_MAX = 255
_SIBLING_EXTRA = len(f".{_MARK}backup-") + 8


def _stem(path: Path) -> str:
    """The part of ``path``'s name that its siblings' names carry.

    >>> _stem(Path("/p/.venv"))
    '.venv'
    >>> s = _stem(Path("/p/" + "v" * 250)); len(s.encode()) + _SIBLING_EXTRA, s[-9] == "~"
    (255, True)
    """
    raw = path.name.encode("utf-8", "surrogateescape")
    if len(raw) + _SIBLING_EXTRA <= _NAME_MAX:
        return path.name
    import hashlib  # lazy: only for names this long; a plan's start-up does not load it

    digest = hashlib.sha256(raw).hexdigest()[:8]
    keep = raw[: _NAME_MAX - _SIBLING_EXTRA - len(digest) - 1]
    return keep.decode("utf-8", "ignore") + "~" + digest


def name_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a new environment's path on its file system, or ``None``."""
    limit = _NAME_MAX
    with contextlib.suppress(OSError, ValueError):  # the nearest existing folder's limit
        existing = next(p for p in path.parents if p.exists())
        limit = os.pathconf(existing, "PC_NAME_MAX")
    size = len(path.name.encode("utf-8", "surrogateescape"))
    if size > limit:
        return (
            f"its name is {size} bytes long, and the file system allows at most {limit} (NAME_MAX)"
        )
    return None


def _sibling(path: Path, what: str) -> Path:
    return path.parent / f".{_stem(path)}{_MARK}{what}-{os.urandom(4).hex()}"


def _leftovers(path: Path) -> list[Path]:
    """Siblings named ``.NAME.torchup-*`` (matched by prefix: NAME may hold ``*`` or
    ``[``, which a glob would read as a pattern and match other targets' folders)."""
    head = f".{_stem(path)}{_MARK}"
    try:
        return [p for p in path.parent.iterdir() if p.name.startswith(head)]
    except OSError:
        return []


def clean_leftovers(path: Path) -> list[Path]:
    """Clear what a killed run left beside ``path`` (``.NAME.torchup-*``). Call it only
    while holding :class:`_Lock`, so no running install's staging is taken. A run
    killed between the two renames of a commit left the original only at
    ``.NAME.torchup-old-*``: when ``path`` is missing, that is put back, not deleted."""
    removed = []
    stale = _leftovers(path)
    olds = [p for p in stale if p.name.startswith(f".{_stem(path)}{_MARK}old-")]
    if olds and not os.path.lexists(path):
        back = max(olds, key=lambda p: p.stat().st_mtime)
        log.warning("putting back %s from %s (a run was killed while swapping)", path, back)
        os.replace(back, path)
        stale.remove(back)
    for item in stale:
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        removed.append(item)
    return removed


class Busy(TorchupError):
    """Another torchup run is changing the same environment."""


# How long a run waits for the installer an earlier, killed run left running (it holds
# that run's lock through the inherited descriptor; see runner.stream).
_ORPHAN_WAIT = 120.0


def _flock_or_wait_for_orphans(fd: int) -> None:
    """Take the lock; if it is held but the pid written in it is gone, what holds it is
    a child that run left behind (where no parent-death signal killed it): wait for it
    to finish, up to :data:`_ORPHAN_WAIT`, rather than clear its files under it. Raises
    the ``OSError`` of a lock held by a live run."""
    import fcntl
    import time

    deadline = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            if not holder.isdigit() or _alive(int(holder)):
                raise
            if deadline is None:
                deadline = time.monotonic() + _ORPHAN_WAIT
                log.warning("waiting for what the killed torchup run %s left running", holder)
            elif time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lock:
    """An exclusive, non-blocking lock on what a run changes (a venv, or a conda env's
    or system Python's ``site-packages``), held while it is changed:
    ``.NAME.torchup.lock`` beside it (outside the leftovers' pattern), removed on
    release. After locking, the file must still be the one at that path, or a run that
    just released and removed it would let two runs in. ``held`` is false where no
    lock could be taken (no ``fcntl``, a folder torchup may not write to): then nothing
    that another run may be using is cleared."""

    def __init__(self, path: Path) -> None:
        self.file = path.parent / f".{_stem(path)}.torchup.lock"
        self.target = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        try:
            import fcntl  # noqa: F401 (only to learn whether advisory locks exist here)
        except ImportError:  # Windows: no advisory locks here; leftovers are kept
            return
        import errno

        for _ in range(3):
            try:  # never through a symlink: that would write the pid into its target
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:  # the staging beside it could not be made either
                raise TorchupError(
                    f"cannot create the lock file {self.file}: {exc.strerror or exc}",
                    hint="remove whatever is at that path, or pick a writable location "
                    "with a shorter name",
                ) from None
            try:
                _flock_or_wait_for_orphans(fd)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)  # a file system without locks (some NFS): go unlocked
                    log.warning("cannot lock %s (%s); leftovers are kept", self.target, exc)
                    return
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise Busy(
                    f"another torchup run (pid {holder}) is changing {self.target}",
                    hint="wait for it to finish, then run this again",
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self._fd = fd
                return
            os.close(fd)  # released and removed under us: lock the new file
        raise Busy(f"cannot lock {self.file}", hint="run this again")

    @property
    def fd(self) -> int | None:
        """The descriptor holding the lock: an installer that inherits it keeps the lock
        held while it runs, so a run killed mid-install is not raced by the next one."""
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            self.file.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _link_copy(src: Path, dst: Path) -> None:
    """Copy a tree with hard links (symlinks kept as links); falls back to copies
    across file systems."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=link)


def _rewrite_prefix(root: Path, old: str, new: str) -> None:
    """Rewrite ``old`` to ``new`` in the text files of a venv that embed its path
    (script shebangs, activate scripts, pyvenv.cfg). Files are replaced, not edited in
    place, so a hard-linked original is never touched."""
    candidates = [root / "pyvenv.cfg"]
    for scripts in ("bin", "Scripts"):
        folder = root / scripts
        if folder.is_dir():
            candidates += [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
    needle = old.encode()
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if needle not in data or b"\0" in data[:4096]:
            continue
        fresh = path.with_name(path.name + _MARK + "tmp")
        fresh.write_bytes(data.replace(needle, new.encode()))
        shutil.copymode(path, fresh)
        os.replace(fresh, path)


class Staging:
    """An all-or-nothing change to ``target``; use as a context manager.

    ``work`` is the prefix to install into. Call :meth:`commit` after install and
    verify succeed; leaving the block without it (an error, Ctrl-C) undoes everything.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.committed = False
        self._site: Path | None = None  # a conda env's or system's site-packages
        self._backup: Path | None = None  # its complete snapshot
        self._platlib: tuple[Path, Path] | None = None  # platlib, where not purelib
        self._outside: _Outside | None = None  # the files installs own outside them
        self._sites: list[Path] = []  # purelib, and platlib where it is apart
        self._lock: _Lock | None = None
        self._made: list[Path] = []  # parent folders this run created, deepest first
        path = target.path
        if target.kind == "venv":
            self.work = _sibling(path, "new" if not target.exists else "copy")
        else:
            self.work = path

    def __enter__(self) -> Staging:
        try:
            if self.target.kind == "venv":
                self._made = _make_parents(self.target.path.parent)
                self._lock = _Lock(self.target.path)
            else:
                sites = _site_packages(self.target)
                self._site = sites[0] if sites else None
                self._sites = sites
                self._lock = _Lock(self._site) if self._site is not None else None
            if self._lock is not None:
                self._lock.acquire()
            self._stage()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _stage(self) -> None:
        if self.target.kind == "venv":
            if self._lock is not None and self._lock.held:
                clean_leftovers(self.target.path)
            if self.target.exists:
                log.info("copying %s aside (hard links) to install into", self.target.path)
                _link_copy(self.target.path, self.work)
        elif self._site is not None:
            # a killed run's snapshot is kept: it may be the only good copy left
            self._backup = _snapshot(self._site)
            if len(self._sites) > 1:  # platlib apart (/usr/lib64/... on Fedora)
                self._platlib = (self._sites[1], _snapshot(self._sites[1]))
            # scripts (bin/torchrun) and data files land beside the prefix, not in a
            # site-packages: what the RECORDs list there is kept aside by name
            self._outside = _Outside.take(self._sites, _sibling(self._site, "outside"))

    @property
    def lock_fds(self) -> tuple[int, ...]:
        """What an installer should inherit so the lock outlives a killed run while the
        installer still runs (see :func:`_flock_or_wait_for_orphans`)."""
        fd = self._lock.fd if self._lock is not None else None
        return (fd,) if fd is not None else ()

    @property
    def python(self) -> Path:
        return (
            venv_python(self.work)
            if self.target.kind == "venv"
            else Path(self.target.executable or "")
        )

    def commit(self) -> None:
        """Put the staged environment in place."""
        path = self.target.path
        if self.target.kind == "venv":
            _rewrite_prefix(self.work, str(self.work), str(path))
            if self.target.exists:
                old = _sibling(path, "old")
                try:
                    os.replace(path, old)
                    os.replace(self.work, path)
                except BaseException:
                    if old.exists() and not os.path.lexists(path):
                        os.replace(old, path)  # the original goes back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.work, path)
        else:
            for kept in (self._backup, self._platlib[1] if self._platlib else None):
                if kept is not None:
                    shutil.rmtree(kept, ignore_errors=True)
            if self._outside is not None:
                self._outside.drop()
        self.committed = True

    def __exit__(self, *exc: object) -> None:
        try:
            self._undo()
        finally:
            if self._lock is not None:
                self._lock.release()
        if not self.committed:
            for folder in self._made:  # only if still empty: never anything else's
                try:
                    folder.rmdir()
                except OSError:
                    break

    def _undo(self) -> None:
        if self.committed:
            return
        if self.target.kind == "venv":
            shutil.rmtree(self.work, ignore_errors=True)
            return
        # what the failed install's RECORDs list outside the site-packages, read before
        # the snapshots (which list only what was there before) are put back
        made = self._outside.listed_now(self._sites) if self._outside is not None else set()
        if self._backup is not None and self._site is not None:
            _restore(self._site, self._backup)
        if self._platlib is not None:
            _restore(*self._platlib)
        if self._outside is not None:
            self._outside.restore(made)


def _snapshot(site: Path) -> Path:
    """A hard-linked copy of ``site`` beside it; none is left when it fails."""
    backup = _sibling(site, "backup")
    log.info("snapshotting %s", site)
    try:
        _link_copy(site, backup)
    except BaseException:
        shutil.rmtree(backup, ignore_errors=True)  # partial: never restored from
        raise
    return backup


def _restore(site: Path, backup: Path) -> None:
    """Put ``site`` back from its snapshot ``backup``."""
    log.warning("restoring %s from its snapshot", site)
    trash = _sibling(site, "failed")
    os.replace(site, trash)
    try:
        os.replace(backup, site)
    except BaseException:
        os.replace(trash, site)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _outside_files(sites: Sequence[Path]) -> set[Path]:
    """The files the distributions in ``sites`` own outside them, as their RECORDs list
    them: console scripts (``../../../bin/torchrun``), headers and data files."""
    roots = [os.path.join(os.path.abspath(s), "") for s in sites]
    found: set[Path] = set()
    for site in sites:
        for record in site.glob("*.dist-info/RECORD"):
            try:
                lines = record.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                # RECORD is CSV: "path,hash,size"; a path holding a comma is quoted
                name = line[1:].partition('",')[0] if line.startswith('"') else line.split(",")[0]
                if not name:
                    continue
                path = os.path.normpath(os.path.join(site, name))
                if not any(os.path.join(path, "").startswith(r) for r in roots):
                    found.add(Path(path))
    return found


class _Outside:
    """The files outside the site-packages that an install may replace or add (scripts,
    data), kept aside as hard links before it runs: undone, a file it added is removed
    and one it replaced or removed is put back."""

    def __init__(self, folder: Path, kept: dict[Path, Path]) -> None:
        self.folder = folder
        self.kept = kept  # original path -> its hard link under folder

    @classmethod
    def take(cls, sites: Sequence[Path], folder: Path) -> _Outside:
        kept: dict[Path, Path] = {}
        try:
            for n, path in enumerate(sorted(_outside_files(sites))):
                if not path.is_file():
                    continue
                folder.mkdir(exist_ok=True)
                link = folder / str(n)
                try:
                    os.link(path, link)
                except OSError:
                    shutil.copy2(path, link)
                kept[path] = link
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder, kept)

    def listed_now(self, sites: Sequence[Path]) -> set[Path]:
        return _outside_files(sites)

    def restore(self, listed: set[Path]) -> None:
        """Remove what the failed install added (``listed`` now, not kept before) and
        put back each kept file as it was."""
        for path in sorted(listed - self.kept.keys()):
            log.warning("removing %s (the failed install wrote it)", path)
            with contextlib.suppress(OSError):
                path.unlink()
        for path, link in self.kept.items():
            try:
                same = os.path.samestat(path.stat(), link.stat())
            except OSError:
                same = False
            if not same:
                with contextlib.suppress(OSError):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(link, path)
        self.drop()

    def drop(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for i in range(len(missing) - 1, -1, -1):
        try:
            missing[i].mkdir(exist_ok=True)
        except OSError as exc:
            for undo in missing[i + 1 :]:  # deepest first
                try:
                    undo.rmdir()
                except OSError:
                    break
            raise TorchupError(f"cannot create {missing[i]}: {exc.strerror or exc}") from exc
    return missing


def _site_packages(target: Target) -> list[Path]:
    """The target's purelib, then its platlib where that is another folder (both
    existing folders); empty when it has no Python or neither exists."""
    if target.executable is None:
        return []
    from torchup.runner import run

    code = "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])"
    lines = run([target.executable, "-c", code], timeout=30).stdout.splitlines()
    if not lines or not Path(lines[0].strip()).is_dir():
        return []
    purelib = Path(lines[0].strip()).resolve()
    platlib = Path(lines[1].strip()).resolve() if len(lines) > 1 else purelib
    apart = platlib.is_dir() and not (
        platlib.is_relative_to(purelib) or purelib.is_relative_to(platlib)
    )
    return [purelib, platlib] if apart else [purelib]


def activation(prefix: Path, system: str | None = None) -> dict[str, str]:
    """How to activate and deactivate the environment, per shell."""
    import shlex
    import sys

    if is_conda(prefix) and not is_venv(prefix):
        return {
            "conda": f"conda activate {shlex.quote(str(prefix))}",
            "deactivate": "conda deactivate",
        }
    if (system or sys.platform) == "win32":
        scripts = prefix / "Scripts"
        return {
            "PowerShell": f"{scripts / 'Activate.ps1'}",
            "cmd": f"{scripts / 'activate.bat'}",
            "bash": f"source {(scripts / 'activate').as_posix()}",
            "deactivate": "deactivate",
        }
    bin_dir = prefix / "bin"
    # venv writes Activate.ps1, uv activate.ps1: on Linux those are different files
    ps1 = next((n for n in ("Activate.ps1", "activate.ps1") if (bin_dir / n).exists()), None)
    ps1_path = str(bin_dir / (ps1 or "Activate.ps1")).replace("'", "''")
    return {
        "bash/zsh": f"source {shlex.quote(str(bin_dir / 'activate'))}",
        "fish": f"source {shlex.quote(str(bin_dir / 'activate.fish'))}",
        "PowerShell": f"& '{ps1_path}'",
        "deactivate": "deactivate",
    }
