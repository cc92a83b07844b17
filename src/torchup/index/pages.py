"""Pure parsers for index pages: PEP 691 JSON, PEP 503 HTML, PyTorch index layout.

Nothing here does I/O: :mod:`torchup.index.client` fetches bytes and hands them over with the
response's content type and URL.

URLs and credentials: every URL this module stores (``DistFile.url``, ``DistFile.index``)
and every URL in its errors goes through :func:`redact` first, so a password in an
index URL never reaches a plan, a log line or the cache. The fetcher keeps the real
credentials per host and puts them back on the wire (pip does the same); a redacted
``user:****@`` URL is therefore still a usable address for :mod:`torchup.index.client`.

The PyTorch index (written by pytorch/test-infra ``s3_management/manage_v2.py``) is
static PEP 503 HTML. Its root ``/whl/`` lists *projects* only (``<a href="torch/">``);
the variants show in two places: the directory of a per-variant project page
(``/whl/cu126/torch/``) and the directory part of every href on the combined page
``/whl/torch/`` (``/whl/cu126/torch-2.5.1%2Bcu126-...whl``, sometimes absolute on
another host). :func:`parse_variants` therefore reads a combined project page (or any
page whose hrefs or sub-directories are variant directories) and never relies on a
built-in list of variants.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit, urlunsplit

from torchup.errors import IndexFetchError

__all__ = [
    "DIST_EXTENSIONS",
    "JSON_MEDIA_TYPE",
    "VARIANT_RE",
    "DistFile",
    "PageParseError",
    "parse_project_page",
    "parse_variants",
    "redact",
    "strip_credentials",
    "variant_dir_of_url",
    "variant_of",
    "variant_sort_key",
]

#: PEP 691 JSON media type (version 1).
JSON_MEDIA_TYPE = "application/vnd.pypi.simple.v1+json"

#: File names an index page may list that torchup treats as distributions.
DIST_EXTENSIONS = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar")

#: A PyTorch index variant directory, as ``manage_v2.py``'s ACCEPTED_SUBDIR_PATTERNS
#: writes them (``cu126``, ``rocm6.2``, ``rocm6.2.4``, ``cpu``, ``xpu``). Legacy
#: directories it excludes (``cpu-cxx11-abi``, ``cu118_full``...) do not match.
VARIANT_RE = re.compile(r"cu[0-9]+|rocm[0-9]+\.[0-9]+(?:\.[0-9]+)?|cpu|xpu")

_SIMPLE_VERSIONED = re.compile(r"application/vnd\.pypi\.simple\.v(\d+)\+(json|html)")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: ``hashlib.algorithms_guaranteed`` (the same in every CPython 3.6+), spelled out so
#: that parsing never imports hashlib and OpenSSL with it.
_HASH_NAMES = frozenset({
    "blake2b", "blake2s", "md5", "sha1", "sha224", "sha256", "sha384", "sha512",
    "sha3_224", "sha3_256", "sha3_384", "sha3_512", "shake_128", "shake_256",
})  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class DistFile:
    """One file offered by an index page or a find-links folder.

    ``filename`` is percent-decoded (``%2B`` -> ``+``); ``url`` is absolute with the
    hash fragment removed; ``hashes`` maps algorithm -> hex digest (from PEP 691
    ``hashes`` or a ``#sha256=`` fragment); ``yanked`` is ``None`` when not yanked, else
    the reason (``""`` when none was given); ``metadata_hashes`` is ``None`` when no
    PEP 658/714 metadata file is advertised, else its hashes (possibly empty).
    ``index`` is the (redacted) URL of the page or folder it was listed on;
    ``variant_dir`` is the PyTorch index variant directory (``cpu``, ``cu126``,
    ``rocm6.2.4``, ``xpu``) the file was listed under, when known.
    """

    filename: str
    url: str
    index: str
    hashes: dict[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    yanked: str | None = None
    metadata_hashes: dict[str, str] | None = None
    size: int | None = None
    variant_dir: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "url": self.url,
            "index": self.index,
            "sha256": self.sha256,
            "requires_python": self.requires_python,
            "yanked": self.yanked,
        }


class PageParseError(IndexFetchError):
    """An index page's body is not a usable PEP 503/691 page (wrong type, garbage,
    truncated, wrong JSON shape, unsupported API version)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            redact(url),
            reason,
            hint="check that the URL is a PEP 503/691 simple-index page; "
            "a proxy or captive portal may be answering instead of the index",
        )


# -- URLs ----------------------------------------------------------------------------


def strip_credentials(url: str) -> str:
    """``url`` without user-info, the form written into locks.

    >>> strip_credentials("https://user:s3cret@example.org/simple/")
    'https://example.org/simple/'
    >>> strip_credentials("/opt/wheels")
    '/opt/wheels'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact(url: str) -> str:
    """Hide the password (or a lone token) in ``url``'s user-info, as pip does.

    >>> redact("https://user:s3cret@example.org/simple/")
    'https://user:****@example.org/simple/'
    >>> redact("https://token@example.org/simple/")
    'https://****@example.org/simple/'
    >>> redact("https://example.org/simple/")
    'https://example.org/simple/'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # Not parseable as a URL (bad IPv6 brackets...): blank out anything that looks
        # like user-info rather than risk echoing a secret.
        return re.sub(r"//[^/@]*@", "//****@", url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    safe = f"{user}:****" if sep else "****"
    return urlunsplit(parts._replace(netloc=f"{safe}@{hostport}"))


def variant_dir_of_url(url: str) -> str | None:
    """The variant directory a file URL lives in (its parent directory), if any.

    >>> variant_dir_of_url("https://h/whl/cu126/torch-2.6.0%2Bcu126-cp312-cp312-linux_x86_64.whl")
    'cu126'
    >>> variant_dir_of_url("https://h/packages/f5/3b/torch-2.6.0-cp312-cp312-win_amd64.whl") is None
    True
    """
    segments = urlsplit(url).path.split("/")
    if len(segments) >= 2 and VARIANT_RE.fullmatch(segments[-2]):
        return segments[-2]
    return None


def _variant_of_page(base_url: str) -> str | None:
    """``<root>/<variant>/<project>/`` -> ``<variant>``."""
    segments = [s for s in urlsplit(base_url).path.split("/") if s]
    if len(segments) >= 2 and VARIANT_RE.fullmatch(segments[-2]):
        return segments[-2]
    return None


def variant_sort_key(variant: str) -> tuple[int, tuple[int, ...], str]:
    """Order variants cpu, cuXYZ (ascending), rocmX.Y[.Z] (ascending), xpu, others.

    >>> sorted(["xpu", "cu130", "rocm6.2.4", "cpu", "cu126", "rocm6.2"], key=variant_sort_key)
    ['cpu', 'cu126', 'cu130', 'rocm6.2', 'rocm6.2.4', 'xpu']
    """
    if variant == "cpu":
        return (0, (), variant)
    if m := re.fullmatch(r"cu([0-9]+)", variant):
        return (1, (int(m.group(1)),), variant)
    if m := re.fullmatch(r"rocm([0-9.]+)", variant):
        return (2, tuple(int(p) for p in m.group(1).split(".") if p.isdigit()), variant)
    if variant == "xpu":
        return (3, (), variant)
    return (4, (), variant)


def variant_of(dist: DistFile) -> str | None:
    """The accelerator variant of a file: its local version label, else its variant dir.

    ``None`` means the plain build (PyPI's default, or an unlabelled file outside any
    PyTorch variant directory).

    >>> variant_of(DistFile(filename="torch-2.5.1+cu124-cp312-cp312-linux_x86_64.whl",
    ...                     url="u", index="i"))
    'cu124'
    >>> variant_of(DistFile(filename="torch-2.5.1-cp312-cp312-linux_aarch64.whl",
    ...                     url="u", index="i", variant_dir="cu124"))
    'cu124'
    >>> variant_of(DistFile(filename="torch-2.5.1-cp312-cp312-win_amd64.whl", url="u", index="i"))
    """
    if "+" not in dist.filename:
        return dist.variant_dir  # no local version label without a "+": skip the parse
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if dist.filename.endswith(".whl"):
            version = parse_wheel_filename(dist.filename)[1]
        else:
            version = parse_sdist_filename(dist.filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return dist.variant_dir
    return version.local or dist.variant_dir


# -- content types -------------------------------------------------------------------


def _page_format(content_type: str, url: str) -> str:
    """``"json"`` or ``"html"`` for a response's Content-Type; raise otherwise."""
    media = content_type.split(";", 1)[0].strip().lower()
    if m := _SIMPLE_VERSIONED.fullmatch(media):
        if m.group(1) != "1":
            raise PageParseError(
                url, f"the index answered with API version {m.group(1)} ({media}); torchup reads v1"
            )
        return m.group(2)
    if media in _HTML_TYPES:
        return "html"
    if media == "application/json":
        return "json"
    shown = media or "(none)"
    raise PageParseError(
        url, f"unexpected content type {shown!r}; expected a PEP 503 HTML or PEP 691 JSON page"
    )


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _decode(content: bytes, content_type: str, url: str) -> str:
    if not content.strip():
        raise PageParseError(url, "the page is empty")
    if b"\x00" in content:
        raise PageParseError(url, "the body is binary, not an index page")
    try:
        return content.decode(_charset(content_type))
    except (UnicodeDecodeError, LookupError) as exc:
        raise PageParseError(url, f"the body is not valid text ({exc})") from None


# -- PEP 503 HTML --------------------------------------------------------------------


class _LinkCollector:
    """Anchors (with attributes), ``<base href>``, the PEP 629 version meta tag.

    Fed by an ``html.parser.HTMLParser`` made in :func:`_collect` (imported there, as
    only a page fetched or re-parsed needs it; a cached page is JSON).
    """

    def __init__(self) -> None:
        self.anchors: list[dict[str, str | None]] = []
        self.base_href: str | None = None
        self.api_version: str | None = None
        self.saw_html_open = False
        self.saw_html_close = False
        self.open_anchor = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
            self.open_anchor = True
        elif tag == "base" and self.base_href is None:
            self.base_href = dict(attrs).get("href")
        elif tag == "meta":
            a = dict(attrs)
            if a.get("name") == "pypi:repository-version":
                self.api_version = a.get("content")
        elif tag == "html":
            self.saw_html_open = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self.open_anchor = False
        elif tag == "html":
            self.saw_html_close = True


def _collect(text: str, url: str) -> _LinkCollector:
    from html.parser import HTMLParser

    links = _LinkCollector()

    class _Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            links.handle_starttag(tag, attrs)

        def handle_endtag(self, tag: str) -> None:
            links.handle_endtag(tag)

    parser = _Parser(convert_charrefs=True)
    parser.feed(text)
    # Whatever html.parser could not consume is an unfinished tag, and an anchor never
    # closed or an <html> never closed means the body stopped early: the page was cut.
    truncated = "<" in parser.rawdata or links.open_anchor
    parser.close()
    if truncated or (links.saw_html_open and not links.saw_html_close):
        raise PageParseError(url, "the page ends in the middle of its HTML (truncated)")
    if links.api_version is not None:
        major = links.api_version.split(".", 1)[0]
        if major != "1":
            raise PageParseError(
                url, f"the index declares API version {links.api_version!r}; torchup reads 1.x"
            )
    return links


def _is_dist(filename: str) -> bool:
    return filename.lower().endswith(DIST_EXTENSIONS)


def _fragment_hashes(fragment: str) -> dict[str, str]:
    name, sep, value = fragment.partition("=")
    name = name.lower()
    if sep and value and name in _HASH_NAMES:
        return {name: value.lower()}
    return {}


def _metadata_attr(value: str | None) -> dict[str, str] | None:
    """PEP 658/714 attribute: ``"true"`` -> ``{}``, ``"sha256=..."`` -> hashes."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() == "true":
        return {}
    name, sep, digest = value.partition("=")
    if sep and digest:
        return {name.lower(): digest.lower()}
    return None


def _parse_html(text: str, url: str, index: str, variant_dir: str | None) -> tuple[DistFile, ...]:
    parser = _collect(text, url)
    base = urljoin(url, parser.base_href) if parser.base_href else url
    page_variant = variant_dir or _variant_of_page(url)
    files: list[DistFile] = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        target, fragment = urldefrag(urljoin(base, href.strip()))
        filename = unquote(posixpath.basename(urlsplit(target).path))
        if not _is_dist(filename):
            continue
        metadata = _metadata_attr(attrs.get("data-core-metadata"))
        if metadata is None:
            metadata = _metadata_attr(attrs.get("data-dist-info-metadata"))
        yanked = (attrs["data-yanked"] or "") if "data-yanked" in attrs else None
        files.append(
            DistFile(
                filename=filename,
                url=redact(target),
                index=index,
                hashes=_fragment_hashes(fragment),
                requires_python=attrs.get("data-requires-python") or None,
                yanked=yanked,
                metadata_hashes=metadata,
                variant_dir=variant_dir or variant_dir_of_url(target) or page_variant,
            )
        )
    if not files and parser.anchors:
        raise PageParseError(
            url,
            f"the HTML page has {len(parser.anchors)} link(s) but none to a distribution "
            "file; it does not look like a project page of a simple index",
        )
    return tuple(files)


# -- PEP 691 JSON --------------------------------------------------------------------


def _str_dict(value: object, what: str, url: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise PageParseError(url, f"{what} must map strings to strings")
    return {k.lower(): v.lower() for k, v in value.items()}


def _json_metadata(entry: dict[str, Any], url: str) -> dict[str, str] | None:
    for key in ("core-metadata", "dist-info-metadata"):  # PEP 714 name first
        if key in entry:
            value = entry[key]
            if value is True:
                return {}
            if value is False or value is None:
                return None
            return _str_dict(value, f"{key!r}", url)
    return None


def _parse_json(text: str, url: str, index: str, variant_dir: str | None) -> tuple[DistFile, ...]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PageParseError(url, f"the JSON is invalid or truncated ({exc})") from None
    if not isinstance(doc, dict):
        raise PageParseError(url, "the JSON page is not an object")
    meta = doc.get("meta", {})
    version = meta.get("api-version") if isinstance(meta, dict) else None
    if version is not None and str(version).split(".", 1)[0] != "1":
        raise PageParseError(url, f"the index declares API version {version!r}; torchup reads 1.x")
    entries = doc.get("files")
    if not isinstance(entries, list):
        raise PageParseError(url, "the JSON page has no 'files' list (not a PEP 691 project page)")
    page_variant = variant_dir or _variant_of_page(url)
    files: list[DistFile] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PageParseError(url, f"files[{n}] is not an object")
        filename, href = entry.get("filename"), entry.get("url")
        if not isinstance(filename, str) or not isinstance(href, str) or not filename:
            raise PageParseError(url, f"files[{n}] lacks a 'filename' or 'url' string")
        filename = unquote(filename)
        if not _is_dist(filename):
            continue
        target, fragment = urldefrag(urljoin(url, href))
        hashes = _str_dict(entry.get("hashes", {}), f"files[{n}].hashes", url)
        if not hashes:
            hashes = _fragment_hashes(fragment)
        yanked = entry.get("yanked", False)
        requires_python = entry.get("requires-python")
        size = entry.get("size")
        files.append(
            DistFile(
                filename=filename,
                url=redact(target),
                index=index,
                hashes=hashes,
                requires_python=requires_python if isinstance(requires_python, str) else None,
                yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
                metadata_hashes=_json_metadata(entry, url),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                variant_dir=variant_dir or variant_dir_of_url(target) or page_variant,
            )
        )
    return tuple(files)


# -- entry points --------------------------------------------------------------------


def parse_project_page(
    content: bytes,
    content_type: str,
    base_url: str,
    *,
    index: str | None = None,
    variant_dir: str | None = None,
) -> tuple[DistFile, ...]:
    """Parse one project page (PEP 691 JSON or PEP 503 HTML) into its files.

    ``base_url`` is the page's URL (relative hrefs resolve against it, or against a
    ``<base href>``); ``index`` is what to record as each file's ``index`` (default: the
    redacted ``base_url``); ``variant_dir`` forces the variant directory, which
    otherwise comes from each href's directory (``/whl/cu126/torch-...``) or the page's
    (``/whl/cu126/torch/``). Only distribution files (wheels, sdists) are returned. An
    HTML page with links but none to a distribution is rejected, an empty one is not.

    Raises :class:`PageParseError` for a wrong content type, garbage, a truncated page
    (ending inside a tag or an open anchor, or opening ``<html>`` without closing it),
    JSON of the wrong shape, or an API major version other than 1.

    >>> page = b'<a href="/whl/cpu/torch-2.4.1%2Bcpu-cp312-cp312-linux_x86_64.whl#sha256=88">x</a>'
    >>> [f.filename for f in parse_project_page(page, "text/html", "https://h/whl/cpu/torch/")]
    ['torch-2.4.1+cpu-cp312-cp312-linux_x86_64.whl']
    """
    fmt = _page_format(content_type, base_url)
    text = _decode(content, content_type, base_url)
    where = index if index is not None else redact(base_url)
    if fmt == "json":
        return _parse_json(text, base_url, where, variant_dir)
    return _parse_html(text, base_url, where, variant_dir)


def parse_variants(content: bytes, content_type: str, base_url: str) -> tuple[str, ...]:
    """The variant directories a PyTorch-layout page shows, in :func:`variant_sort_key` order.

    Give it the combined project page (``<root>/torch/``): each href's parent directory
    that matches :data:`VARIANT_RE` is a variant. Links to sub-directories named like a
    variant (``<a href="cu126/">``, as a mirror's directory listing shows) count too.
    The real root page ``<root>/`` lists projects only, so it yields ``()``.

    >>> page = b'<a href="/whl/cu126/torch-2.6.0%2Bcu126-cp312-cp312-win_amd64.whl">t</a>'
    >>> parse_variants(page, "text/html", "https://h/whl/torch/")
    ('cu126',)
    """
    fmt = _page_format(content_type, base_url)
    text = _decode(content, content_type, base_url)
    hrefs: list[str] = []
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PageParseError(base_url, f"the JSON is invalid or truncated ({exc})") from None
        entries = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise PageParseError(base_url, "the JSON page has no 'files' list")
        hrefs = [e["url"] for e in entries if isinstance(e, dict) and isinstance(e.get("url"), str)]
        base = base_url
    else:
        parser = _collect(text, base_url)
        base = urljoin(base_url, parser.base_href) if parser.base_href else base_url
        hrefs = [href for a in parser.anchors if (href := a.get("href"))]
    found: set[str] = set()
    for href in hrefs:
        path = urlsplit(urljoin(base, href.strip())).path
        if path.endswith("/"):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if VARIANT_RE.fullmatch(name):
                found.add(name)
        elif (variant := variant_dir_of_url(path)) is not None:
            found.add(variant)
    return tuple(sorted(found, key=variant_sort_key))
