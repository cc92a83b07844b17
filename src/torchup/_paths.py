"""Where torchup keeps its cache (``TORCHUP_CACHE_DIR`` overrides the platform default),
and how it writes a file it hands to the user: whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from torchup.errors import TorchupError, UsageError

__all__ = ["cache_dir", "replace_with", "write_output", "write_outputs"]


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Return torchup's cache directory; ``TORCHUP_CACHE_DIR`` wins over platformdirs."""
    env = os.environ if env is None else env
    override = env.get("TORCHUP_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir  # lazy: keeps start-up lean

    return Path(user_cache_dir("torchup", appauthor=False))


def write_output(path: Path, data: str | bytes, *, force: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary sibling renamed over it, so a
    reader never sees half a file and a failure leaves the old one. An existing
    ``path`` is a :class:`UsageError` unless ``force``."""
    write_outputs([(path, data)], force=force)


def write_outputs(files: Sequence[tuple[Path, str | bytes]], *, force: bool = False) -> None:
    """Write each ``(path, data)`` as :func:`write_output` does, and the set as one: every
    file is written to its temporary sibling (and synced) before any is renamed over its
    path, so a failure while writing (no space left, Ctrl-C) replaces none of them, not
    the first alone. An existing path is a :class:`UsageError` unless ``force``, and a
    missing folder one in any case, both checked before anything is written."""
    for given, _ in files:
        path = Path(given)
        if path.exists() and not force:
            raise UsageError(
                f"{path} exists", hint="pass --force to replace it, or -o another path"
            )
        if not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: no folder {path.parent}")
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            raw = data.encode("utf-8") if isinstance(data, str) else data
            try:
                staged.append((_stage(Path(path), raw), Path(path)))
            except OSError as exc:
                raise TorchupError(f"cannot write {path}: {exc.strerror or exc}") from None
        for tmp, path in staged:  # renames within one folder: they fail next to never
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise TorchupError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise


def replace_with(path: Path, raw: bytes, *, durable: bool = True) -> None:
    """Write ``raw`` to a temporary sibling of ``path`` (mode 0644) and rename it over
    ``path``: a reader sees the old file or the new one, and a failure (an error, Ctrl-C)
    leaves no temporary file. ``durable`` syncs the bytes to disk before the rename.
    Raises :class:`OSError`."""
    tmp = _stage(path, raw, durable=durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stage(path: Path, raw: bytes, *, durable: bool = True) -> str:
    """``raw`` in a new temporary sibling of ``path`` (mode 0644, synced when
    ``durable``), whose name is returned; a failure leaves none. Raises :class:`OSError`."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp
