"""``torchup lock --check``: does a lock still install, and what would a fresh one change.

Each file of the lock is asked for (headers only: :mod:`torchup.export._probe`), and
the lock's recorded requirements are planned and locked again, in memory, with uv
revalidating every page it cached (``--refresh``); the two locks are compared
(:func:`~torchup.export.pylock.diff_locks`), and a file the fresh lock lists under the
same name with another sha256 no longer installs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from torchup.errors import TorchupError
from torchup.export._probe import probe_all, session_for
from torchup.export.fit import LockFit, lock_fits
from torchup.export.lock import SCHEMA, make_lock
from torchup.export.pylock import FAMILY, Change, Lock, LockError, diff_locks, read_lock
from torchup.index.pages import redact

if TYPE_CHECKING:
    from torchup.choose.plan import Plan
    from torchup.index.sources import Sources

__all__ = ["FileState", "LockCheck", "check_lock"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileState:
    """Whether one locked file is still where the lock says, as the lock says."""

    package: str
    filename: str
    url: str
    ok: bool
    size: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "filename": self.filename,
            "url": redact(self.url),
            "ok": self.ok,
            "size": self.size,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LockCheck:
    """``torchup lock --check``: does the lock still install, and what would change."""

    path: Path
    files: tuple[FileState, ...]
    changes: tuple[Change, ...]
    #: why no fresh lock could be made to compare with (``None``: it was made)
    fresh_error: str | None = None
    #: whether the lock fits the Python and machine checked for (``None``: unknown,
    #: when the requirements could not even be planned)
    fit: LockFit | None = None

    @property
    def still_installs(self) -> bool:
        return all(f.ok for f in self.files) and (self.fit is None or self.fit.ok)

    @property
    def up_to_date(self) -> bool:
        return self.still_installs and not self.changes and self.fresh_error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "path": str(self.path),
            "still_installs": self.still_installs,
            "up_to_date": self.up_to_date,
            "files": [f.to_dict() for f in self.files],
            "changes": [c.to_dict() for c in self.changes],
            "fresh_error": self.fresh_error,
            "fit": self.fit.to_dict() if self.fit is not None else None,
        }


def _states(old: Lock, fresh: Lock | None, sources: Sources | None) -> tuple[FileState, ...]:
    """Each file of ``old``: still there with its size, and (where ``fresh`` lists the
    same file, as its index now gives it) with its sha256. A path is relative to the
    lock's folder (PEP 751), wherever the check runs."""
    now = {f.filename: f.sha256 for _, f in fresh.files()} if fresh is not None else {}
    entries = old.files()
    session = session_for(sources)
    base = old.path.parent if old.path is not None else None
    try:
        probed = probe_all(session, [f.url for _, f in entries], base=base)
    finally:
        session.close()
    states = []
    for (pkg, f), (size, missing) in zip(entries, probed, strict=True):
        why = missing
        if size is not None and f.size is not None and size != f.size:
            why = f"its size is now {size} bytes, not {f.size}"
        elif size is not None and now.get(f.filename, f.sha256) != f.sha256:
            why = f"its index now gives sha256 {now[f.filename]}, not {f.sha256}"
        states.append(FileState(package=pkg.name, filename=f.filename, url=f.url,
                                ok=not why, size=size, reason=why))  # fmt: skip
    return tuple(states)


def check_lock(
    lock_path: Path,
    *,
    plan_fn: Callable[[Sequence[str]], Plan],
    uv: str,
    env: Mapping[str, str] | None = None,
    offline: bool = False,
    timeout: float = 600.0,
) -> LockCheck:
    """Check the lock at ``lock_path`` against the sources as they are now.

    ``plan_fn(requirements)`` plans the lock's recorded requirements for the same
    target (the CLI passes the same ``--python``/``--for``/``--backend``); that plan is
    locked afresh in memory and compared. Raises :class:`LockError` when the lock
    cannot be read or holds no torch to plan; a fresh lock that cannot be made is
    reported, not raised.
    """
    old = read_lock(lock_path)
    made = old.made_for
    reqs = made.requirements if made is not None else tuple(
        p.name for p in old.packages if canonicalize_name(p.name) in FAMILY
    )  # fmt: skip
    if not reqs:
        raise LockError(
            f"the lock {lock_path} holds no torch: `torchup lock --check` plans the torch "
            "family a lock holds, and there is none to plan",
            hint="check it with the tool that made it (uv pip compile, pip lock)",
        )
    fresh: Lock | None = None
    fresh_error: str | None = None
    sources: Sources | None = None
    fit: LockFit | None = None
    try:
        plan = plan_fn(reqs)
        sources = plan.sources
        fit = lock_fits(old, plan.python, plan.accelerator)
        fresh = make_lock(
            plan, uv=uv, env=env, offline=offline, refresh=not offline, timeout=timeout
        )[0]
    except TorchupError as exc:
        fresh_error = str(exc)
    return LockCheck(
        path=lock_path,
        files=_states(old, fresh, sources),
        changes=diff_locks(old, fresh) if fresh is not None else (),
        fresh_error=fresh_error,
        fit=fit,
    )
