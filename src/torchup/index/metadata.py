"""A wheel's core metadata without downloading the wheel.

In order of preference:

1. the on-disk cache (metadata of a given URL + sha256 never changes), per set of
   credentials like the page cache (what one user could read is not served to another);
2. a local file (``file://``): ``zipfile`` reads only the central directory and the
   one member;
3. the PEP 658/714 ``<url>.metadata`` file when the page advertises it, its hash
   checked against the advertised one (a mismatch is an error, not a fallback);
4. HTTP range requests on the wheel: the last 64 KiB (``Range: bytes=-65536``) hold
   the end-of-central-directory record (zip64 too); the central directory names
   ``*.dist-info/METADATA`` and its offset; one more range fetches that member, which
   is inflated and CRC-checked. A server that ignores ``Range`` is detected on the
   first response and the connection dropped, so a whole wheel is never downloaded.

The zip arithmetic is pure (:func:`central_directory_span`, :func:`parse_central_directory`,
:func:`member_data`) over a ``read(start, length)`` callable.

The result is a :class:`CoreMetadata`: the header fields of the METADATA file, read by
:func:`parse_metadata` (a few lines of code instead of the ``email`` package, whose
import alone costs more than a warm plan's whole metadata step). ``hashlib`` and
``zipfile`` are imported only where a hash is checked or a local wheel is opened.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, overload
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from torchup.errors import IndexFetchError
from torchup.index.cache import BlobCache
from torchup.index.pages import DistFile, redact

__all__ = [
    "TAIL_BYTES",
    "CoreMetadata",
    "MetadataFetcher",
    "ZipMember",
    "central_directory_span",
    "fetch_metadata",
    "local_metadata",
    "member_data",
    "parse_central_directory",
    "parse_metadata",
    "pick_metadata_member",
    "remote_wheel_metadata",
]

#: Bytes fetched from the end of a wheel first (EOCD + usually the central directory).
TAIL_BYTES = 64 * 1024
#: Refuse central directories / METADATA files larger than this.
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
MAX_METADATA = 16 * 1024 * 1024

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_METADATA_NAME = re.compile(r"[^/]+\.dist-info/METADATA")
# zip compression methods (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_STORED = 0
_DEFLATED = 8
# A header-block line as email.feedparser sees it: a field, a continuation, or an
# mbox "From " line; anything else (the blank line first of all) ends the headers.
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")

Read = Callable[[int, int], bytes]
_T = TypeVar("_T")


class MetadataFetcher(Protocol):
    """What :func:`fetch_metadata` needs from the index client."""

    offline: bool
    metadata_cache: BlobCache

    def get_bytes(self, url: str, *, max_bytes: int) -> bytes | None: ...

    def get_range(self, url: str, start: int | None, length: int) -> tuple[bytes, int]: ...

    def cache_identity(self, url: str) -> str:
        """The cache's name for the credentials ``url`` is fetched with (``""``: none)."""
        ...


class _ZipError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ZipMember:
    """One central-directory entry."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int


# -- pure zip arithmetic -------------------------------------------------------------


def central_directory_span(tail: bytes, tail_start: int, read: Read) -> tuple[int, int]:
    """``(offset, size)`` of the central directory from the archive's last bytes.

    ``tail`` is the archive from ``tail_start`` to the end; ``read(start, length)``
    fetches other bytes (needed only when a zip64 record lies before the tail).
    Raises ``ValueError`` when no end-of-central-directory record is found.
    """
    pos = len(tail) - 22
    while pos >= 0:
        pos = tail.rfind(_EOCD, 0, pos + 4)
        if pos < 0:
            break
        comment_len = struct.unpack_from("<H", tail, pos + 20)[0]
        if pos + 22 + comment_len <= len(tail):
            break
        pos -= 1
    if pos < 0:
        raise _ZipError("no end-of-central-directory record (not a zip archive?)")
    _sig, _disk, _cd_disk, _n_disk, n_total, cd_size, cd_offset, _clen = struct.unpack_from(
        "<4s4H2LH", tail, pos
    )
    if n_total != 0xFFFF and cd_size != 0xFFFFFFFF and cd_offset != 0xFFFFFFFF:
        return cd_offset, cd_size
    # zip64: the locator sits just before the EOCD and points at the zip64 EOCD record.
    loc = pos - 20
    if loc < 0 or tail[loc : loc + 4] != _EOCD64_LOCATOR:
        raise _ZipError("zip64 archive without a zip64 end-of-central-directory locator")
    _sig, _disk, eocd64_offset, _disks = struct.unpack_from("<4sLQL", tail, loc)
    if eocd64_offset >= tail_start:
        record = tail[eocd64_offset - tail_start : eocd64_offset - tail_start + 56]
    else:
        record = read(eocd64_offset, 56)
    if len(record) < 56 or record[:4] != _EOCD64:
        raise _ZipError("bad zip64 end-of-central-directory record")
    cd_size64, cd_offset64 = struct.unpack_from("<QQ", record, 40)
    return int(cd_offset64), int(cd_size64)


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, i)
        if tag == 0x0001:
            fields = extra[i + 4 : i + 4 + length]
            j = 0
            if size == 0xFFFFFFFF and j + 8 <= len(fields):
                size = struct.unpack_from("<Q", fields, j)[0]
                j += 8
            if csize == 0xFFFFFFFF and j + 8 <= len(fields):
                csize = struct.unpack_from("<Q", fields, j)[0]
                j += 8
            if offset == 0xFFFFFFFF and j + 8 <= len(fields):
                offset = struct.unpack_from("<Q", fields, j)[0]
            break
        i += 4 + length
    return size, csize, offset


def parse_central_directory(data: bytes) -> list[ZipMember]:
    """Every entry of a central directory (zip64 sizes and offsets resolved)."""
    members: list[ZipMember] = []
    i = 0
    while i + 46 <= len(data) and data[i : i + 4] == _CENTRAL:
        (_s, _vm, _vn, flags, method, _t, _d, crc, csize, size, nlen, elen, clen, _ds, _ia, _ea,
         offset) = struct.unpack_from("<4s6H3L5H2L", data, i)  # fmt: skip
        raw_name = data[i + 46 : i + 46 + nlen]
        extra = data[i + 46 + nlen : i + 46 + nlen + elen]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        size, csize, offset = _zip64_extra(extra, size, csize, offset)
        members.append(ZipMember(name, method, flags, crc, csize, size, offset))
        i += 46 + nlen + elen + clen
    if not members and data:
        raise _ZipError("the central directory is unreadable")
    return members


def pick_metadata_member(names: Sequence[str], wheel_filename: str) -> str | None:
    """The ``<name>-<version>.dist-info/METADATA`` of the wheel (else the only one).

    >>> pick_metadata_member(["torch/__init__.py", "torch-2.5.1+cpu.dist-info/METADATA"],
    ...                      "torch-2.5.1+cpu-cp312-cp312-linux_x86_64.whl")
    'torch-2.5.1+cpu.dist-info/METADATA'
    """
    candidates = [n for n in names if _METADATA_NAME.fullmatch(n)]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    project = canonicalize_name(wheel_filename.split("-", 1)[0])
    for name in candidates:
        if canonicalize_name(name.split("-", 1)[0]) == project:
            return name
    return candidates[0]


def member_data(member: ZipMember, read: Read) -> bytes:
    """The uncompressed bytes of ``member`` (stored or deflated), CRC-checked."""
    if member.size > MAX_METADATA or member.compressed_size > MAX_METADATA:
        raise _ZipError(f"{member.name} is implausibly large ({member.size} bytes)")
    guess = 30 + len(member.name.encode()) + 256 + member.compressed_size
    blob = read(member.header_offset, guess)
    if blob[:4] != _LOCAL:
        raise _ZipError("bad local file header")
    nlen, elen = struct.unpack_from("<HH", blob, 26)
    start = 30 + nlen + elen
    if start + member.compressed_size > len(blob):
        blob += read(member.header_offset + len(blob), start + member.compressed_size - len(blob))
    raw = blob[start : start + member.compressed_size]
    if member.method == _STORED:
        data = raw
    elif member.method == _DEFLATED:
        try:
            inflater = zlib.decompressobj(-15)
            data = inflater.decompress(raw, MAX_METADATA + 1) + inflater.flush()
        except zlib.error as exc:
            raise _ZipError(f"cannot inflate {member.name}: {exc}") from None
    else:
        raise _ZipError(f"{member.name} uses unsupported compression method {member.method}")
    if len(data) != member.size or zlib.crc32(data) != member.crc:
        raise _ZipError(f"{member.name} fails its CRC check (damaged download?)")
    return data


class CoreMetadata:
    """The header fields of a METADATA file, in order, names as written.

    Reads like the ``email.message.Message`` it replaces: ``get_all(name)`` (``None``
    when absent), ``get(name)`` / ``meta[name]`` (the first value, ``None`` when
    absent), ``name in meta``; names compare case-insensitively.

    >>> meta = parse_metadata(b"Name: demo\\nRequires-Dist: torch (==2.5.1)\\n\\nbody")
    >>> meta["name"], meta.get_all("Requires-Dist"), meta.get_all("Provides-Extra")
    ('demo', ['torch (==2.5.1)'], None)
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Sequence[tuple[str, str]]) -> None:
        self._fields = tuple(fields)

    @overload
    def get_all(self, name: str) -> list[str] | None: ...
    @overload
    def get_all(self, name: str, failobj: _T) -> list[str] | _T: ...
    def get_all(self, name: str, failobj: object = None) -> object:
        lowered = name.lower()
        values = [v for k, v in self._fields if k.lower() == lowered]
        return values or failobj

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, failobj: _T) -> str | _T: ...
    def get(self, name: str, failobj: object = None) -> object:
        lowered = name.lower()
        return next((v for k, v in self._fields if k.lower() == lowered), failobj)

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (k for k, _v in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def __repr__(self) -> str:
        return f"CoreMetadata({list(self._fields)!r})"


def parse_metadata(data: bytes) -> CoreMetadata:
    """Core metadata bytes -> its header fields (``meta.get_all("Requires-Dist")``...).

    Follows ``email.parser.BytesParser(policy=compat32).parsebytes(data, headersonly=True)``
    line for line: the headers end at the first line that is not a field (the blank
    line); a continuation line (leading space or tab) is appended to its field as is;
    mbox ``From `` lines and fields without a name are dropped. Values are decoded as
    UTF-8 (the core metadata encoding) where ``email`` would keep undecoded bytes.
    """
    fields: list[tuple[str, str]] = []
    name: str | None = None
    parts: list[str] = []
    for raw in data.splitlines(keepends=True):  # bytes: splits on \r\n, \r, \n only
        line = raw.decode("utf-8", "replace")
        if not _HEADER_LINE.match(line):
            break
        if line[0] in " \t":
            if name is not None:
                parts.append(line)
            continue
        if name is not None:
            fields.append((name, "".join(parts).rstrip("\r\n")))
            name = None
        if line.startswith("From "):
            continue
        key, _, value = line.partition(":")
        if key:
            name, parts = key, [value.lstrip(" \t")]
    if name is not None:
        fields.append((name, "".join(parts).rstrip("\r\n")))
    return CoreMetadata(fields)


# -- fetching ------------------------------------------------------------------------


def remote_wheel_metadata(
    url: str, filename: str, get_range: Callable[[str, int | None, int], tuple[bytes, int]]
) -> bytes:
    """METADATA of a remote wheel through range requests (see the module docstring)."""
    tail, total = get_range(url, None, TAIL_BYTES)
    tail_start = total - len(tail)

    def read(start: int, length: int) -> bytes:
        end = min(start + length, total)
        if start >= tail_start:
            return tail[start - tail_start : end - tail_start]
        return get_range(url, start, end - start)[0]

    try:
        cd_offset, cd_size = central_directory_span(tail, tail_start, read)
        if cd_size > MAX_CENTRAL_DIRECTORY or cd_offset + cd_size > total:
            raise _ZipError(f"implausible central directory ({cd_size} bytes at {cd_offset})")
        members = parse_central_directory(read(cd_offset, cd_size))
        name = pick_metadata_member([m.name for m in members], filename)
        if name is None:
            raise _ZipError("the wheel has no *.dist-info/METADATA")
        member = next(m for m in members if m.name == name)
        return member_data(member, read)
    except ValueError as exc:
        raise IndexFetchError(redact(url), f"cannot read the wheel's metadata: {exc}") from None


def local_metadata(path: Path, filename: str) -> bytes:
    """METADATA of a wheel on disk (reads the central directory and one member)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            name = pick_metadata_member(zf.namelist(), filename)
            if name is None:
                raise IndexFetchError(str(path), "the wheel has no *.dist-info/METADATA")
            return zf.read(name)
    except (OSError, zipfile.BadZipFile) as exc:
        raise IndexFetchError(str(path), f"cannot read the wheel: {exc}") from None


def _check_hashes(url: str, data: bytes, expected: dict[str, str]) -> None:
    import hashlib  # only here: it loads OpenSSL, which a warm run never needs

    for algorithm, digest in expected.items():
        if algorithm not in hashlib.algorithms_guaranteed:
            continue
        actual = hashlib.new(algorithm, data).hexdigest()
        if actual != digest.lower():
            raise IndexFetchError(
                redact(url),
                f"metadata hash mismatch: the index advertises {algorithm}={digest}, "
                f"the file has {algorithm}={actual}",
                hint="the index is inconsistent; retry later or tell its maintainers",
            )


def fetch_metadata(client: MetadataFetcher, dist: DistFile) -> CoreMetadata:
    """Core metadata of ``dist`` (a wheel); see the module docstring for the order.

    The cache keeps the METADATA bytes as received; a warm call reads one small file
    and runs :func:`parse_metadata` on it.

    Raises :class:`IndexFetchError` when it cannot be read (offline and not cached,
    an sdist, a server ignoring ``Range``, a hash mismatch, a damaged archive).
    """
    parts = urlsplit(dist.url)
    if parts.scheme == "file":
        from torchup.index.urls import file_url_to_path

        return parse_metadata(local_metadata(file_url_to_path(dist.url), dist.filename))
    key = f"{parts._replace(netloc=parts.netloc.rpartition('@')[2]).geturl()}\n{dist.sha256 or ''}"
    auth_id = client.cache_identity(dist.url)
    # An anonymous entry keeps the key older versions gave every entry. One of those
    # fetched with credentials is served only for this URL and sha256, a wheel this
    # request found on a page it read itself (pages of that layout are never read).
    if auth_id:
        key += f"\n{auth_id}"
    cached = client.metadata_cache.get(key)
    if cached is not None:
        return parse_metadata(cached)
    if client.offline:
        raise IndexFetchError(
            dist.url,
            "its metadata is not in the cache (offline)",
            hint="run once without --offline to fill the cache",
        )
    data: bytes | None = None
    if dist.metadata_hashes is not None:
        data = client.get_bytes(dist.url + ".metadata", max_bytes=MAX_METADATA)
        if data is not None:
            _check_hashes(dist.url + ".metadata", data, dist.metadata_hashes)
    if data is None:
        if not dist.filename.endswith(".whl"):
            raise IndexFetchError(
                dist.url, "the metadata of a source distribution cannot be read without building it"
            )
        data = remote_wheel_metadata(dist.url, dist.filename, client.get_range)
    client.metadata_cache.put(key, data)
    return parse_metadata(data)
