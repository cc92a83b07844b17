"""Where torchup keeps its cache (``TORCHUP_CACHE_DIR`` overrides the platform default)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Return torchup's cache directory; ``TORCHUP_CACHE_DIR`` wins over platformdirs."""
    env = os.environ if env is None else env
    override = env.get("TORCHUP_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir  # lazy: keeps start-up lean

    return Path(user_cache_dir("torchup", appauthor=False))
