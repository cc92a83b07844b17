"""The pages of a static package index, as text. Pure.

A wheelhouse (:mod:`torchup.export.wheelhouse`) is a folder that any static file server
(``python -m http.server -d DIR``, nginx, S3) serves as a package index that pip and uv
read unchanged::

    DIR/simple/index.html             PEP 503 root: one link per project
    DIR/simple/index.json             the same as PEP 691 JSON
    DIR/simple/<project>/index.html   PEP 503 project page (<project> PEP 503-normalised)
    DIR/simple/<project>/index.json   the same as PEP 691 JSON
    DIR/files/<file>                  the wheels and sdists
    DIR/files/<wheel>.metadata        PEP 658 / 714: the wheel's METADATA

Why HTML at ``index.html``: PEP 691 picks HTML or JSON by content negotiation, which a
static host cannot do (PEP 691's FAQ on static hosting: one URL serves one format).
pip and uv ask for ``simple/<project>/`` with an ``Accept`` header that lists
``text/html`` too, and a static server answers a folder URL with its ``index.html``
(``text/html``), so HTML is the one format both read from any static host, and from
``file://`` (pip and uv read a folder's ``index.html``). The JSON twins are for a server
configured to negotiate (nginx ``map $http_accept``, Apache MultiViews) and for tools
that read PEP 691 by URL; neither installer asks for them.

Links are relative to the page (``../../files/<file>``), so the folder can be moved,
copied or served under any prefix. Every link carries ``#sha256=``, and each wheel's
PEP 658 metadata file is announced with both ``data-dist-info-metadata`` (PEP 658, read
by older pip) and ``data-core-metadata`` (PEP 714, read by newer pip and uv).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from packaging.utils import canonicalize_name

__all__ = [
    "FILES_DIR",
    "SIMPLE_DIR",
    "IndexEntry",
    "project_html",
    "project_json",
    "root_html",
    "root_json",
]

#: the folders of the layout, relative to the wheelhouse
SIMPLE_DIR = "simple"
FILES_DIR = "files"
#: PEP 629 / 691 API version these pages follow (1.1: PEP 700's ``size`` and ``versions``)
API_VERSION = "1.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexEntry:
    """One file as a project page lists it."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int
    requires_python: str | None = None
    #: sha256 of the PEP 658 ``<file>.metadata`` beside it, ``None`` when there is none
    metadata_sha256: str | None = None


def _href(filename: str) -> str:
    """The link from ``simple/<project>/`` to the file under ``files/``.

    >>> _href("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
    '../../files/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl'
    """
    return f"../../{FILES_DIR}/{quote(filename, safe='')}"


def project_html(name: str, entries: Sequence[IndexEntry]) -> str:
    """The PEP 503 page of project ``name``.

    >>> e = IndexEntry(project="a", version="1", filename="a-1-py3-none-any.whl",
    ...                sha256="ab", size=3, requires_python=">=3.8", metadata_sha256="cd")
    >>> link = project_html("a", [e]).splitlines()[8]
    >>> link.startswith('<a href="../../files/a-1-py3-none-any.whl#sha256=ab" ')
    True
    >>> 'data-requires-python="&gt;=3.8"' in link, 'data-core-metadata="sha256=cd"' in link
    (True, True)
    """
    title = html.escape(canonicalize_name(name))
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        f"<title>Links for {title}</title>",
        "</head>",
        f"<body>\n<h1>Links for {title}</h1>",
    ]
    for e in sorted(entries, key=lambda e: e.filename):
        attrs = [f'href="{html.escape(_href(e.filename))}#sha256={e.sha256}"']
        if e.requires_python:
            attrs.append(f'data-requires-python="{html.escape(e.requires_python)}"')
        if e.metadata_sha256:
            meta = f"sha256={e.metadata_sha256}"
            attrs += [f'data-dist-info-metadata="{meta}"', f'data-core-metadata="{meta}"']
        lines.append(f"<a {' '.join(attrs)}>{html.escape(e.filename)}</a><br>")
    lines += ["</body>", "</html>"]
    return "\n".join(lines) + "\n"


def project_json(name: str, entries: Sequence[IndexEntry]) -> str:
    """The PEP 691 JSON page of project ``name`` (URLs relative to the page, as PEP 691
    allows).

    >>> e = IndexEntry(project="a", version="1", filename="a-1.tar.gz", sha256="ab", size=3)
    >>> json.loads(project_json("A", [e]))["files"][0]["url"]
    '../../files/a-1.tar.gz'
    """
    files = []
    for e in sorted(entries, key=lambda e: e.filename):
        item: dict[str, object] = {
            "filename": e.filename,
            "url": _href(e.filename),
            "hashes": {"sha256": e.sha256},
            "size": e.size,
        }
        if e.requires_python:
            item["requires-python"] = e.requires_python
        if e.metadata_sha256:
            item["core-metadata"] = {"sha256": e.metadata_sha256}
            item["dist-info-metadata"] = {"sha256": e.metadata_sha256}
        files.append(item)
    versions = sorted({e.version for e in entries})
    doc = {
        "meta": {"api-version": API_VERSION},
        "name": canonicalize_name(name),
        "files": files,
        "versions": versions,
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def root_html(projects: Iterable[str]) -> str:
    """The PEP 503 root page: a link per (normalised) project.

    >>> 'href="typing-extensions/"' in root_html(["typing_extensions"])
    True
    """
    names = sorted({canonicalize_name(p) for p in projects})
    links = [f'<a href="{html.escape(quote(n))}/">{html.escape(n)}</a><br>' for n in names]
    head = (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "<title>Simple index</title>\n</head>\n<body>"
    )
    return "\n".join([head, *links, "</body>", "</html>"]) + "\n"


def root_json(projects: Iterable[str]) -> str:
    """The PEP 691 JSON root page.

    >>> json.loads(root_json(["B", "a"]))["projects"]
    [{'name': 'a'}, {'name': 'b'}]
    """
    names = sorted({canonicalize_name(p) for p in projects})
    doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"
