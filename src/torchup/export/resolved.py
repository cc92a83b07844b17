"""uv's resolutions, remembered for a while: the same compile command, the same pins of
the same files and the same uv within :data:`MAX_AGE` seconds give uv's earlier answer
without starting uv again.

This is the freshness rule torchup's page cache already follows (a page is reused for
600 s when its server sends no ``max-age``) and that uv applies to the pages it caches:
within that window a second ``uv pip compile`` would read the same cached pages and give
the same answer. What the answer depends on is in the key: uv's executable (path, size,
mtime), every argument, the pins, the sha256 of each planned file, and the ``UV_*``,
``SSL_*`` and proxy variables uv is run with. Never remembered:

- a command with credentials in a URL (the key would be a hash of a secret);
- a command with a local source (a find-links folder, a ``file://`` index): a folder
  changes without any validator to say so, and uv reads it afresh each time anyway;
- ``--refresh`` (``torchup lock --refresh``, ``lock --check``): uv is always run.

A cache entry that cannot be read or written is ignored: it only saves time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["MAX_AGE", "cache_key", "recall", "remember"]

log = logging.getLogger(__name__)

#: seconds an answer is reused (the page cache's default freshness)
MAX_AGE = 600.0
_SOURCE_FLAGS = ("--index-url", "--extra-index-url", "--find-links", "--default-index")


def _remote(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and not parts.username and not parts.password


def cache_key(
    argv: Sequence[str], stdin: str, env: Mapping[str, str], files: Sequence[str | None] = ()
) -> str | None:
    """The key of this resolution, or ``None`` when it must not be remembered.

    >>> argv = ["/no/such/uv", "pip", "compile", "-", "--index-url", "https://i/simple"]
    >>> cache_key(argv, "torch==2.8.0\\n", {}) is None  # no such uv: nothing to key on
    True
    >>> cache_key([*argv, "--find-links", "/opt/wheels"], "", {}) is None
    True
    """
    if "--refresh" in argv:
        return None
    for flag, value in pairwise(argv):
        if flag in _SOURCE_FLAGS and not _remote(value):
            return None
    try:
        st = os.stat(argv[0])
    except OSError:
        return None
    keep = sorted(
        (k, v)
        for k, v in env.items()
        if k.startswith(("UV_", "SSL_")) or k.lower() in ("http_proxy", "https_proxy", "no_proxy")
    )
    blob = json.dumps([argv[0], st.st_size, st.st_mtime_ns, list(argv[1:]), stdin, list(files),
                       keep])  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


def _entry(cache: Path, key: str) -> Path:
    return cache / "lock" / "resolved" / f"{key}.toml"


def recall(cache: Path, key: str, *, max_age: float = MAX_AGE) -> tuple[str, float] | None:
    """uv's answer for ``key`` and when it goes stale (epoch seconds) if it is younger
    than ``max_age`` seconds, else ``None``."""
    path = _entry(cache, key)
    try:
        written = path.stat().st_mtime
        age = time.time() - written
        if not 0 <= age < max_age:
            return None
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    log.info("uv's lock for the same command and pins, from %.0f s ago (%s)", age, path)
    return text, written + max_age


def remember(cache: Path, key: str, text: str) -> None:
    """Keep uv's answer for ``key`` (a temporary sibling renamed into place)."""
    import tempfile

    path = _entry(cache, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("could not remember uv's lock in %s: %s", path.parent, exc)
