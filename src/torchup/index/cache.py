"""torchup's on-disk cache: index pages (parsed), wheel metadata, local file hashes.

Layout under the cache directory (``TORCHUP_CACHE_DIR`` or the platform default)::

    pages/<key of redacted URL + id>.json     parsed files + HTTP validators
    pages/<key of redacted URL + id>.body.gz  the page as received (to re-parse)
    metadata/<key of URL + sha256 + id>       a wheel's METADATA bytes (immutable)
    filehashes/<key of path>.json             sha256 of a local file by size + mtime
    unreachable-hosts.json                    hosts that could not be reached just now
    credential-salt                           random salt of the ids (mode 0600)

A ``<key>`` is 64 bits of zlib checksums (crc32 + adler32) of the text: not a
cryptographic hash, so every entry also stores its full text (page URL, metadata key,
file path) and one that does not match is treated as missing. This keeps ``hashlib``
(and OpenSSL behind it) out of a warm run; files named by the sha256 of older
torchup versions are simply never read again.

Credentials are kept apart: ``id`` is the :class:`CredentialIds` name of the
credentials a request is sent with (empty for none), so what one user (or an anonymous
request) was shown is never served to another. The id is a salted PBKDF2 of
``user:password``, never the secret; URLs are stored redacted. A refusal (401, 403)
is never stored: :meth:`PageCache.save` keeps only pages and "not found" answers.

Pages are stored *parsed* (a compact JSON list) so that a warm run never parses HTML:
loading the torch page costs a ``json.loads``. Each entry records :data:`PARSER_VERSION`;
when the parser changes, the body sidecar is re-parsed instead of refetched. Writes are
atomic (temporary file + ``os.replace``), so concurrent runs never see half an entry;
an unreadable entry is treated as missing. Cache failures (read-only disk...) are
logged and never fail a fetch.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torchup.index.pages import DistFile

__all__ = [
    "CACHE_FORMAT",
    "PARSER_VERSION",
    "BlobCache",
    "CachedPage",
    "CredentialIds",
    "FileHashCache",
    "PageCache",
    "UnreachableHosts",
    "atomic_write",
    "server_lifetime",
]

log = logging.getLogger(__name__)

#: Layout version of a page entry. 3: keyed by credential id too; entries of format 2
#: were keyed by URL alone, whatever credentials fetched them, so they are never read.
CACHE_FORMAT = 3
#: Bump whenever :func:`torchup.index.pages.parse_project_page` output changes.
PARSER_VERSION = "1"

Reparse = Callable[[bytes, str, str, str], tuple[DistFile, ...]]
#: ``(user, password)`` as sent in HTTP Basic auth.
Credentials = tuple[str, str]

# PBKDF2 rounds for a credential id: about 20 ms once per credentials and process (a
# warm run with a private index pays it once), and as much for every password guessed
# against a copied cache. Changing it renames every credentialed entry.
_ID_ROUNDS = 100_000


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread; O_EXCL guards against a stale leftover.
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: how long a host that could not be reached is not asked again (seconds): long enough
#: for the commands of one script or session, short enough to follow a network that
#: comes back
UNREACHABLE_TTL = 60.0


def _key(text: str) -> str:
    """A file name for ``text``: 64 bits of checksum (see the module docstring).

    >>> _key("https://pypi.org/simple/torch/")
    'b2bf0135af3b0b3b'
    """
    data = text.encode("utf-8")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def server_lifetime(headers: Mapping[str, str]) -> tuple[float | None, float]:
    """``(lifetime, age)`` from ``Cache-Control`` and ``Age`` (RFC 9111).

    ``lifetime`` is ``None`` when the server says nothing, ``0`` for ``no-cache`` /
    ``no-store`` (torchup still stores such pages for ``--offline``, but always
    revalidates them online).

    >>> server_lifetime({"cache-control": "max-age=600, public, must-revalidate"})
    (600.0, 0.0)
    >>> server_lifetime({"cache-control": "no-cache,no-store,must-revalidate", "age": "5"})
    (0.0, 5.0)
    """
    lifetime: float | None = None
    for directive in headers.get("cache-control", "").split(","):
        name, _, value = directive.strip().partition("=")
        name = name.lower()
        if name in ("no-cache", "no-store"):
            lifetime = 0.0
            break
        if name == "max-age":
            try:
                lifetime = max(0.0, float(value.strip().strip('"')))
            except ValueError:
                continue
    try:
        age = max(0.0, float(headers.get("age", "0")))
    except ValueError:
        age = 0.0
    return lifetime, age


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedPage:
    """One cached page: its files and what is needed to revalidate it.

    ``status`` is 200, or 404/410 for "project not on this index" (cached too).
    ``max_age`` is the server's lifetime, ``None`` when it gave none.
    """

    url: str
    status: int
    content_type: str
    etag: str | None
    last_modified: str | None
    fetched_at: float
    max_age: float | None
    files: tuple[DistFile, ...]

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.fetched_at)

    def fresh_until(self, client_max_age: float) -> float:
        """When the page goes stale (epoch seconds): its server's lifetime after it was
        fetched, at most ``client_max_age``."""
        limit = client_max_age if self.max_age is None else min(self.max_age, client_max_age)
        return self.fetched_at + limit

    def is_fresh(self, client_max_age: float, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.fresh_until(client_max_age)


def _row(f: DistFile) -> list[Any]:
    return [
        f.filename,
        f.url,
        f.hashes,
        f.requires_python,
        f.yanked,
        f.metadata_hashes,
        f.size,
        f.variant_dir,
    ]


def _from_row(row: list[Any], index: str) -> DistFile:
    filename, url, hashes, requires_python, yanked, metadata, size, variant = row
    if not (isinstance(filename, str) and isinstance(url, str) and isinstance(hashes, dict)):
        raise ValueError("bad row")
    return DistFile(
        filename=filename,
        url=url,
        index=index,
        hashes=hashes,
        requires_python=requires_python,
        yanked=yanked,
        metadata_hashes=metadata,
        size=size,
        variant_dir=variant,
    )


class CredentialIds:
    """Names for credentials in cache keys, safe to write to disk.

    :meth:`of` is a PBKDF2-SHA256 of ``user:password`` (the bytes HTTP Basic auth
    sends) salted with ``<root>/credential-salt``: equal for equal credentials, across
    runs sharing the cache, and it neither is nor reveals the secret. The salt is made
    by the first run that needs one; a cache where it can be neither read nor made
    gets a salt for this process only, so its credentialed entries are never found
    again (a miss, never a mix-up). Thread-safe; ids are remembered per process.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / "credential-salt"
        self._salt: bytes | None = None
        self._ids: dict[Credentials, str] = {}
        self._lock = threading.Lock()

    def of(self, auth: Credentials | None) -> str:
        """``""`` for no credentials (no file read, no hashlib), else their id."""
        if auth is None:
            return ""
        with self._lock:
            found = self._ids.get(auth)
            if found is None:
                import hashlib  # only here: an anonymous warm run never needs OpenSSL

                if self._salt is None:
                    self._salt = self._read_salt()
                secret = f"{auth[0]}:{auth[1]}".encode()
                found = hashlib.pbkdf2_hmac("sha256", secret, self._salt, _ID_ROUNDS).hex()[:32]
                self._ids[auth] = found
            return found

    def _read_salt(self) -> bytes:
        for _attempt in (1, 2):
            try:
                salt = self.path.read_bytes()
            except FileNotFoundError:
                salt = b""
            except OSError as exc:
                log.warning("cannot read %s (%s): credentialed pages go uncached", self.path, exc)
                break
            if salt:
                return salt
            if not self._make_salt():
                break
        return os.urandom(16)

    def _make_salt(self) -> bool:
        """Publish a new salt unless another run did first; false when it cannot."""
        tmp = self.path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-salt")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)  # left by a crashed run with our pid and thread
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            log.warning("cannot write %s (%s): credentialed pages go uncached", self.path, exc)
            return False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(16))
            try:
                # link, not replace: runs making a salt at the same time agree on the
                # first one, and a reader never sees a half-written file
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another run's salt: read that one
            except OSError:
                # no hard links here: a run that loses this race keys its entries by a
                # salt no later run has (a miss, never a mix-up)
                os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write %s (%s): credentialed pages go uncached", self.path, exc)
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True


def _keyed(text: str, auth_id: str) -> str:
    # An anonymous entry keeps the plain key: the file of an older layout is replaced in
    # place instead of left behind.
    return f"{text}\n{auth_id}" if auth_id else text


class PageCache:
    """Parsed index pages keyed by redacted URL and credential id; see the module docstring."""

    def __init__(self, root: Path, *, reparse: Reparse) -> None:
        self.root = root / "pages"
        self._reparse = reparse

    def _paths(self, url: str, auth_id: str) -> tuple[Path, Path]:
        key = _key(_keyed(url, auth_id))
        return self.root / f"{key}.json", self.root / f"{key}.body.gz"

    def load(self, url: str, *, auth_id: str = "") -> CachedPage | None:
        """The entry for ``url`` fetched with the credentials named ``auth_id`` (see
        :class:`CredentialIds`; ``""`` for none), or ``None`` when missing or unreadable.
        """
        meta_path, body_path = self._paths(url, auth_id)
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s unreadable: %s", meta_path, exc)
            return None
        try:
            doc = json.loads(raw)
            if doc["format"] != CACHE_FORMAT or doc["url"] != url or doc["auth"] != auth_id:
                return None
            page = CachedPage(
                url=url,
                status=int(doc["status"]),
                content_type=str(doc["content_type"]),
                etag=doc["etag"],
                last_modified=doc["last_modified"],
                fetched_at=float(doc["fetched_at"]),
                max_age=None if doc["max_age"] is None else float(doc["max_age"]),
                files=(),
            )
            if doc["parser"] == PARSER_VERSION:
                index = str(doc["index"])
                return replace(page, files=tuple(_from_row(r, index) for r in doc["files"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring corrupt cache entry %s (%s)", meta_path, exc)
            return None
        # Written by another parser version: re-parse the stored body.
        if page.status != 200:
            return page
        import gzip

        try:
            body = gzip.decompress(body_path.read_bytes())
            files = self._reparse(body, page.content_type, url, str(doc["index"]))
        except Exception as exc:  # any failure just means "not cached"
            log.warning("cannot re-parse cached %s (%s)", url, exc)
            return None
        page = replace(page, files=files)
        self._write_meta(page, str(doc["index"]), auth_id)
        return page

    def save(self, page: CachedPage, body: bytes | None, *, index: str, auth_id: str = "") -> None:
        """Store ``page`` (and its raw ``body``, when there is one) as fetched with the
        credentials named ``auth_id``. ``page.url`` must be redacted.
        """
        import gzip

        if page.status not in (200, 404, 410):
            # A refusal (401, 403) says nothing about the page, only about the request;
            # storing it would answer the next request without asking the server.
            log.debug("not caching HTTP %d for %s", page.status, page.url)
            return
        _meta_path, body_path = self._paths(page.url, auth_id)
        try:
            if body is not None:
                atomic_write(body_path, gzip.compress(body, compresslevel=5, mtime=0))
            self._write_meta(page, index, auth_id)
        except OSError as exc:
            log.warning("cannot write the page cache under %s: %s", self.root, exc)

    def _write_meta(self, page: CachedPage, index: str, auth_id: str) -> None:
        meta_path, _ = self._paths(page.url, auth_id)
        doc = {
            "format": CACHE_FORMAT,
            "parser": PARSER_VERSION,
            "url": page.url,
            "auth": auth_id,
            "index": index,
            "status": page.status,
            "content_type": page.content_type,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "fetched_at": page.fetched_at,
            "max_age": page.max_age,
            "files": [_row(f) for f in page.files],
        }
        try:
            atomic_write(meta_path, json.dumps(doc, separators=(",", ":")).encode("utf-8"))
        except OSError as exc:
            log.warning("cannot write the page cache under %s: %s", self.root, exc)


class BlobCache:
    """Immutable byte blobs by key (wheel METADATA).

    A file holds ``b"<key length> <data length>\\n<key><data>"``; both are checked on
    read, so a file-name collision, a truncated or foreign (older) file reads as missing.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name

    def get(self, key: str) -> bytes | None:
        try:
            raw = (self.root / _key(key)).read_bytes()
        except OSError:
            return None
        want = key.encode("utf-8")
        head, newline, rest = raw.partition(b"\n")
        size = b"%d %d" % (len(want), len(rest) - len(want))
        if newline and head == size and rest.startswith(want):
            return rest[len(want) :]
        log.debug("ignoring cache entry %s (not for %r, or damaged)", _key(key), key)
        return None

    def put(self, key: str, data: bytes) -> None:
        want = key.encode("utf-8")
        try:
            atomic_write(self.root / _key(key), b"%d %d\n%s%s" % (len(want), len(data), want, data))
        except OSError as exc:
            log.warning("cannot write the cache under %s: %s", self.root, exc)


class FileHashCache:
    """sha256 of local files, recomputed only when size or mtime changes."""

    def __init__(self, root: Path) -> None:
        self.root = root / "filehashes"

    def sha256(self, path: Path) -> str:
        """Hash ``path`` (streamed, 1 MiB at a time) or return the cached digest."""
        st = path.stat()
        where = str(path.resolve())
        entry = self.root / f"{_key(where)}.json"
        try:
            doc = json.loads(entry.read_bytes())
            if (
                doc["path"] == where
                and doc["size"] == st.st_size
                and doc["mtime_ns"] == st.st_mtime_ns
            ):
                return str(doc["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        import hashlib  # only here: it loads OpenSSL, which a warm run never needs

        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        value = digest.hexdigest()
        doc = {"path": where, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": value}
        try:
            atomic_write(entry, json.dumps(doc).encode("utf-8"))
        except OSError as exc:
            log.warning("cannot write the hash cache under %s: %s", self.root, exc)
        return value


class UnreachableHosts:
    """Hosts that could not be reached a moment ago (the name does not exist, or the
    connect timed out), remembered across runs for ``ttl`` seconds; a host that answers
    anything is forgotten. Keys are ``scheme://host[:port]``, never user-info.

    A page of such a host is answered with that failure instead of a request, so a
    machine that cannot reach the PyTorch index does not pay the failed connect (and
    the HTTP client it needs) on every command: a firewall that drops packets costs
    the connect timeout each time. Kept in one small JSON file, rewritten atomically;
    an unreadable file reads as empty.
    """

    def __init__(self, root: Path, *, ttl: float = UNREACHABLE_TTL) -> None:
        self.path = root / "unreachable-hosts.json"
        self.ttl = ttl
        self._lock = threading.Lock()
        #: the file as this process read or wrote it: read once, not for every page
        self._seen: dict[str, Any] | None = None

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _known(self) -> dict[str, Any]:
        if self._seen is None:
            self._seen = self._read()
        return self._seen

    def _age(self, entry: Any, now: float) -> tuple[float, str] | None:
        if not isinstance(entry, dict):
            return None
        try:
            ago, reason = now - float(entry["at"]), str(entry["reason"])
        except (TypeError, KeyError, ValueError):
            return None
        return (ago, reason) if 0 <= ago < self.ttl else None

    def recent(self, host: str, now: float | None = None) -> tuple[float, str] | None:
        """``(seconds ago, reason)`` of ``host``'s failure within the ttl, else ``None``."""
        return self._age(self._known().get(host), time.time() if now is None else now)

    def forget(self, host: str) -> None:
        """Drop ``host``'s entry (it answered); free when this process knows of none."""
        if host in self._known():
            self._write(lambda doc: doc.pop(host, None))

    def remember(self, host: str, reason: str, now: float | None = None) -> None:
        """Record that ``host`` could not be reached (and drop expired entries)."""
        at = time.time() if now is None else now

        def add(doc: dict[str, Any]) -> None:
            for h in [h for h, e in doc.items() if self._age(e, at) is None]:
                del doc[h]
            doc[host] = {"at": at, "reason": reason}

        self._write(add)

    def _write(self, change: Callable[[dict[str, Any]], object]) -> None:
        """Apply ``change`` to the file as it is now (another run may have written it)."""
        with self._lock:
            doc = self._read()
            change(doc)
            self._seen = doc
            try:
                atomic_write(self.path, json.dumps(doc).encode("utf-8"))
            except OSError as exc:
                log.warning("cannot write %s: %s", self.path, exc)
