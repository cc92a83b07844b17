"""``torchup lock`` run again with nothing changed: the answer of the last run, written
again without planning, reading an index or starting uv.

A lock made from the same inputs while its pages are still fresh is the lock a new run
would make: the plan would read the same pages from the cache (a page is reused until
its server's ``max-age``, at most 10 minutes) and uv's answer is remembered for the same
window (:mod:`torchup.export.resolved`). What remaking it would cost is Python's start-up
and the planner's imports, about 100 ms, which a Makefile or a build script that runs
``torchup lock`` on every build pays each time; replaying costs what Python's start-up
does (bench/lock.py measures both against uv).

A run is replayed only when all of these are as they were:

- the key: torchup's version and the Python it runs on, every argument, the working
  folder, and the environment (all of it but the shell's bookkeeping: ``_``, ``PWD``,
  ``OLDPWD``, ``SHLVL``);
- files, by size, mtime and inode (or absence): each argument that names a file
  (``--python``, ``--for``), pip's configuration files for the target, ``~/.netrc``,
  uv's executable, the target interpreter, and every module the first run imported
  (torchup's code and its dependencies);
- time: the first of the plan's pages or of uv's remembered answer has not gone stale.

Never remembered (each run is made afresh): ``--check``, ``--refresh``, ``-v``; a Python
found by discovery (``--python 3.12``, or none) or by a launcher (a pyenv shim reads
``.python-version`` files), or an accelerator found by detection (``auto`` on this
machine), which depend on what is installed, not on files named here;
local sources (find-links folders, ``file://`` indexes) and URLs with credentials, for
which uv's answer is not remembered either; a run with a warning; a failure.

An entry is a :mod:`marshal` file in ``<cache>/replay/``: marshal and no json, pathlib
or platformdirs, whose imports cost more than the whole replay. Only an entry owned by
this user and writable by no one else is read (marshal is not meant for data someone
else made). An entry that cannot be read, or does not match, is a miss; one that cannot
be written is not kept.
"""

from __future__ import annotations

import marshal
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Pending", "cache_root"]

_FORMAT = 1
#: no entry is valid for longer: the page cache's and uv's answers' longest freshness
_LONGEST = 600.0
#: an input whose mtime is this near the run's start may have changed after it was read
_RACY_NS = 2_000_000_000
#: what a shell changes between two runs of the same command
_NOISE = frozenset({"_", "PWD", "OLDPWD", "SHLVL"})

Stat = tuple[int, int, int] | None


def _stat(path: str) -> Stat:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def cache_root(env: Mapping[str, str]) -> str | None:
    """torchup's cache folder, found without importing platformdirs: ``TORCHUP_CACHE_DIR``,
    else the XDG rule on Linux and ``~/Library/Caches`` on macOS; ``None`` elsewhere.
    :meth:`Pending.record` keeps an entry only where this agrees with
    :func:`torchup._paths.cache_dir`."""
    override = env.get("TORCHUP_CACHE_DIR")
    if override:
        return os.path.abspath(override)
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~/Library/Caches"), "torchup")
    if sys.platform.startswith("linux"):
        base = env.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
        return os.path.join(base, "torchup")
    return None


def _named_files(argv: Sequence[str]) -> list[str]:
    """The arguments that name a file (``--opt=FILE`` included), as absolute paths."""
    found = []
    for token in argv:
        for value in (token, token.partition("=")[2] if token.startswith("--") else ""):
            if value and os.path.isfile(value):
                found.append(os.path.abspath(value))
    return found


class Pending:
    """One ``torchup lock`` command line: its key, the files its arguments named before
    it ran, and where its entry lives. :meth:`replay` answers it from the entry;
    :meth:`record` keeps a successful run's answer."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> None:
        from torchup import __version__

        env = os.environ if env is None else env
        cwd = os.getcwd() if cwd is None else cwd
        kept = sorted((k, v) for k, v in env.items() if k not in _NOISE)
        self.env = env
        self.began = time.time_ns()
        key = (_FORMAT, __version__, sys.executable, sys.version, tuple(argv), cwd, tuple(kept))
        # only a digest is kept: the environment holds secrets (tokens, passwords); repr,
        # not marshal, whose bytes for equal values differ between runs
        self.key = _digest(repr(key).encode())
        self.named = {path: _stat(path) for path in _named_files(argv)}
        root = cache_root(env)
        self.path: str | None = None
        if root is not None:
            self.path = os.path.join(root, "replay", f"{self.key[:32]}.marshal")

    def replay(self) -> int | None:
        """Write the remembered answer (its files, then its output) and return its exit
        code; ``None`` when there is none that holds now, and nothing was written."""
        if self.path is None:
            return None
        try:
            with open(self.path, "rb") as handle:
                if not _own(os.fstat(handle.fileno())):
                    return None
                key, until, inputs, outputs, stdout = marshal.load(handle)
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if key != self.key or not time.time() < until:
            return None
        if any(_stat(path) != seen for path, seen in inputs):
            return None
        for path, _, force in outputs:
            if (os.path.lexists(path) and not force) or not os.path.isdir(os.path.dirname(path)):
                return None  # the run itself says what is wrong
        if not _write_all([(path, data) for path, data, _ in outputs]):
            return None  # the run itself reports it
        sys.stdout.write(stdout)
        return 0

    def record(
        self,
        *,
        until: float,
        inputs: Iterable[str],
        outputs: Sequence[tuple[str, bytes, bool]],
        stdout: str,
    ) -> bool:
        """Keep this successful run's answer until ``until`` (epoch seconds): the files it
        wrote (``(path, bytes written, force)``: the bytes as the run wrote them, not as
        the file holds them now, which another program may have changed) and what it
        printed, valid while ``inputs`` (files, besides the ones its arguments named and
        the modules it imported) are unchanged. Returns whether it was kept."""
        from torchup._paths import cache_dir

        until = min(until, time.time() + _LONGEST)
        if not time.time() < until:
            return False
        if self.path is None or os.path.dirname(os.path.dirname(self.path)) != os.path.abspath(
            cache_dir(self.env)
        ):
            return False  # replay would look elsewhere than torchup's cache
        written = [(os.path.abspath(path), data, force) for path, data, force in outputs]
        modules = (getattr(m, "__file__", None) for m in list(sys.modules.values()))
        files = dict.fromkeys([*inputs, *(m for m in modules if isinstance(m, str))])
        seen = {**{path: _stat(path) for path in files}, **self.named}
        for path, _, _ in written:
            seen.pop(path, None)  # an output, not an input
        # changed while the run read it (or so near its start that a coarse mtime cannot
        # tell, as git treats "racy" entries): which version it read is unknown
        if any(st is not None and st[1] >= self.began - _RACY_NS for st in seen.values()):
            return False
        try:
            entry = marshal.dumps((self.key, until, tuple(seen.items()), tuple(written), stdout))
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            _write(self.path, entry, mode=0o600)
        except (OSError, ValueError):
            return False
        _prune(os.path.dirname(self.path), keep=self.path)
        return True


def _prune(folder: str, *, keep: str, age: float = _LONGEST) -> None:
    """Remove the entries no replay can use any more (older than ``age`` seconds): a
    command line run with a different environment each time leaves one per run."""
    now = time.time()
    try:
        with os.scandir(folder) as entries:
            found = list(entries)
    except OSError:
        return
    for entry in found:
        try:
            if entry.path != keep and now - entry.stat().st_mtime > age:
                os.unlink(entry.path)
        except OSError:
            continue  # gone already (another run pruned it), or not an entry


def _own(st: os.stat_result) -> bool:
    """An entry this user wrote and no one else can change: marshal is not meant for
    data someone else made, and the answer is written out as this user's lock."""
    if os.name != "posix":
        return True
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _digest(data: bytes) -> str:
    try:  # CPython's own module: hashlib would load OpenSSL, a few ms of start-up
        from _blake2 import blake2b
    except ImportError:
        from hashlib import blake2b
    return blake2b(data).hexdigest()


def _write_all(files: Sequence[tuple[str, bytes]]) -> bool:
    """Write every ``(path, data)``, all or none as far as a file system allows: each
    to its temporary sibling first, and only then each renamed over its path (a lock
    is never replaced without its requirements file). False when one could not be
    written, with nothing renamed."""
    staged: list[tuple[str, str]] = []
    try:
        for path, data in files:
            staged.append((_stage(path, data), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError:
        for tmp, _ in staged:
            _unlink(tmp)
        return False
    return True


def _write(path: str, data: bytes, *, mode: int = 0o644) -> None:
    """``data`` to a new temporary sibling (``mode``), synced, renamed over ``path``:
    what :func:`torchup._paths.replace_with` does, without its imports."""
    tmp = _stage(path, data, mode=mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def _stage(path: str, data: bytes, *, mode: int = 0o644) -> str:
    """``data`` in a new temporary sibling of ``path`` (``mode``, synced), whose name is
    returned; a failure leaves none. The name is random and the file is created, never
    opened if it exists (a link planted there is not followed)."""
    name = f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp"
    tmp = os.path.join(os.path.dirname(path), name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 (contextlib is one more import)
        os.unlink(path)
    except OSError:
        pass  # gone already (renamed, or never made)
