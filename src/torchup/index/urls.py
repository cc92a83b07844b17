"""URL helpers every index module needs (kept apart so none of them imports another
for one function)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from torchup.errors import IndexFetchError

__all__ = ["file_url_to_path"]


def file_url_to_path(url: str) -> Path:
    """``file:///opt/wheels/x%2By.whl`` -> ``/opt/wheels/x+y.whl``."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise IndexFetchError(url, "file:// URLs on another host are not supported")
    if os.name == "nt":  # pragma: no cover - drive letters and backslashes
        from nturl2path import url2pathname

        return Path(url2pathname(parts.path))
    return Path(unquote(parts.path))
