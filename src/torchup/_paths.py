"""Where torchup keeps its cache (``TORCHUP_CACHE_DIR`` overrides the platform default),
and how it writes a file it hands to the user: whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from torchup.errors import TorchupError, UsageError

__all__ = ["cache_dir", "replace_with", "write_output"]


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
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{path} exists", hint="pass --force to replace it, or -o another path")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: no folder {path.parent}")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        replace_with(path, raw)
    except OSError as exc:
        raise TorchupError(f"cannot write {path}: {exc.strerror or exc}") from None


def replace_with(path: Path, raw: bytes, *, durable: bool = True) -> None:
    """Write ``raw`` to a temporary sibling of ``path`` (mode 0644) and rename it over
    ``path``: a reader sees the old file or the new one, and a failure (an error, Ctrl-C)
    leaves no temporary file. ``durable`` syncs the bytes to disk before the rename.
    Raises :class:`OSError`."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
