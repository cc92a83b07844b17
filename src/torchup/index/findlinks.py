"""Find-links locations: a local folder of distributions, a local HTML file, or a page URL.

A folder is listed, not read: only its entries whose names end in one of
:data:`~torchup.index.pages.DIST_EXTENSIONS` are offered, not recursively, each with
its sha256 when asked (computed once and cached by path, size and mtime in
:class:`~torchup.index.cache.FileHashCache`). A page URL is read by the caller's
``read_page`` (the index client's page reader, cached like any page).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from torchup.errors import IndexFetchError
from torchup.index.pages import DIST_EXTENSIONS, DistFile, parse_project_page, redact
from torchup.index.urls import file_url_to_path

if TYPE_CHECKING:
    from torchup.index.cache import FileHashCache

__all__ = ["find_links", "list_folder"]

ReadPage = Callable[[str], tuple[DistFile, ...]]


def find_links(
    location: str, *, read_page: ReadPage, hashes: FileHashCache | None
) -> tuple[DistFile, ...]:
    """Files offered by the find-links ``location`` (an ``http(s)://`` or ``file://``
    URL, or a path); ``hashes`` gives a folder's files their sha256 (``None``: none).

    Raises :class:`IndexFetchError` when the location is missing or unreadable.
    """
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        return read_page(location)
    path = file_url_to_path(location) if scheme == "file" else Path(location).expanduser()
    shown = redact(location)
    if path.is_dir():
        return list_folder(path, shown, hashes)
    if path.is_file():
        body = path.read_bytes()
        return parse_project_page(body, "text/html", path.resolve().as_uri(), index=shown)
    raise IndexFetchError(
        shown,
        "no such file or directory",
        hint="fix or remove this find-links entry (pip config list; PIP_FIND_LINKS)",
    )


def list_folder(path: Path, shown: str, hashes: FileHashCache | None) -> tuple[DistFile, ...]:
    """The distributions directly in the folder ``path``, by name; ``shown`` is the
    location as the files' ``index`` records it. Raises :class:`IndexFetchError` when
    the folder cannot be listed.
    """
    files: list[DistFile] = []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        raise IndexFetchError(shown, f"cannot list the folder: {exc}") from None
    for entry in entries:
        if not entry.name.lower().endswith(DIST_EXTENSIONS) or not entry.is_file():
            continue
        file_path = Path(entry.path).resolve()
        sha256 = {"sha256": hashes.sha256(file_path)} if hashes is not None else {}
        files.append(
            DistFile(
                filename=entry.name,
                url=file_path.as_uri(),
                index=shown,
                hashes=sha256,
                size=entry.stat().st_size,
            )
        )
    return tuple(files)
