"""The wheelhouse folder itself: may torchup write it, the marker, atomic writes, free
space, and clearing what an earlier build made that the lock no longer lists.

A folder is torchup's when it holds :data:`MARKER` (a JSON file naming torchup and the
files it wrote); :func:`claim` refuses any other non-empty folder. Every write goes
through :func:`write_atomic` (a temporary sibling, then ``os.replace``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from torchup import __version__
from torchup.export import static_index
from torchup.export.fetch import NoSpaceError, WheelhouseError

__all__ = [
    "MARKER",
    "WheelhouseDirError",
    "check_space",
    "claim",
    "prune",
    "write_atomic",
    "write_marker",
]

MARKER = ".torchup-wheelhouse.json"
SCHEMA = 1
#: what a build may leave in files/ beside the locked files (ours to clear)
_OURS_SUFFIXES = (".part", ".tmp")


class WheelhouseDirError(WheelhouseError):
    """``DIR`` holds files torchup did not make (or is not a folder): refused (exit 2)."""

    exit_code = 2


class _Sized(Protocol):
    """A file to fetch, as :func:`check_space` sees it."""

    @property
    def filename(self) -> str: ...
    @property
    def size(self) -> int | None: ...


def claim(directory: Path) -> list[str]:
    """Make sure ``directory`` may be written: the files a previous build listed."""
    if directory.exists() and not directory.is_dir():
        raise WheelhouseDirError(
            f"{str(directory)!r} exists and is not a folder",
            hint="give a new or empty folder, or an existing torchup wheelhouse",
        )
    if not directory.exists():
        if not directory.parent.is_dir():
            raise WheelhouseDirError(
                f"the folder {str(directory.parent)!r} (where the wheelhouse would go) "
                "does not exist",
                hint=f"create it first: mkdir -p {directory.parent}",
            )
        return []
    marker = directory / MARKER
    if marker.is_file():
        try:
            doc = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = None
        if isinstance(doc, dict) and doc.get("tool") == "torchup":
            files = doc.get("files", [])
            return [str(f) for f in files if isinstance(f, str)] if isinstance(files, list) else []
    entries = sorted(p.name for p in directory.iterdir())
    if not entries:
        return []
    shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} in all)" if len(entries) > 5 else "")
    raise WheelhouseDirError(
        f"{str(directory)!r} is not empty and is not a torchup wheelhouse "
        f"(no {MARKER}); it holds: {shown}",
        hint="give a new or empty folder; torchup only writes into a folder it made",
    )


def write_marker(
    directory: Path, files: Sequence[str], *, complete: bool, projects: Sequence[str] = ()
) -> None:
    doc = {
        "tool": "torchup",
        "schema": SCHEMA,
        "version": __version__,
        "complete": complete,
        "files": sorted(set(files)),
        "projects": list(projects),
    }
    write_atomic(directory / MARKER, (json.dumps(doc, indent=1) + "\n").encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary sibling and ``os.replace``; a file that already
    holds ``data`` is left as it is (a rerun rewrites nothing)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    import errno

    from torchup._paths import replace_with

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_with(path, data, durable=False)  # the index is rewritten whole on a rerun
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NoSpaceError(path.parent, needed=len(data), free=None) from None
        raise WheelhouseError(
            f"cannot write {str(path)!r}: {exc.strerror or exc}",
            hint="check that the wheelhouse folder is writable",
        ) from None


def check_space(files_dir: Path, files: Sequence[_Sized]) -> None:
    """Refuse before downloading when the lock's sizes do not fit the free space."""
    needed = 0
    for f in files:
        size = f.size
        if size is None:
            continue
        dest = files_dir / f.filename
        if dest.is_file() and dest.stat().st_size == size:
            continue
        part = dest.with_name(dest.name + ".part")
        have = part.stat().st_size if part.is_file() else 0
        needed += max(size - have, 0)
    there = next(p for p in (files_dir, *files_dir.parents) if p.is_dir())
    free = shutil.disk_usage(there).free
    if needed > free:
        raise NoSpaceError(files_dir.parent, needed=needed, free=free)


def prune(
    directory: Path, previous: Iterable[str], names: Sequence[str], projects: Sequence[str]
) -> None:
    """Remove what an earlier build made that this lock no longer lists."""
    keep = set(names)
    files_dir = directory / static_index.FILES_DIR
    for name in set(previous) - keep:
        if "/" in name or name.startswith("."):
            continue
        for stale in (files_dir / name, files_dir / f"{name}.metadata"):
            stale.unlink(missing_ok=True)
    for entry in files_dir.iterdir():
        if entry.name.endswith(_OURS_SUFFIXES) and entry.is_file():
            entry.unlink(missing_ok=True)
    simple = directory / static_index.SIMPLE_DIR
    wanted = {canonicalize_name(p) for p in projects}
    for entry in simple.iterdir():
        if entry.is_dir() and entry.name not in wanted and (entry / "index.html").is_file():
            shutil.rmtree(entry)
