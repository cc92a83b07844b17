"""What both in-target probes need, sent ahead of each of them (see
:func:`torchup.check.probe_source`): run BY the target Python, never imported by torchup.

Standard library only; parses and runs on Python 2.7 and 3.6+ (no f-strings, no
annotations; type comments keep mypy informed). It comes first, so it also takes the
working directory off ``sys.path`` before anything else is imported: with ``-c`` that
is the first entry, and a stray ``json.py`` or ``torch/`` there must not shadow the
real one.
"""

import sys

if __name__ == "__main__":
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".")]

import codecs
import os
import re

TEXT = (str, type(b"".decode("ascii")))  # and unicode on Python 2.7


def normalize(name):
    # type: (str) -> str
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_text(path, limit=1 << 20):
    # type: (str, int) -> str | None
    """At most ``limit`` characters of a UTF-8 file (bad bytes replaced), or None."""
    try:
        with codecs.open(path, "r", "utf-8", "replace") as f:
            return f.read(limit)  # unicode on Python 2.7: str() would encode it
    except Exception:  # IOError and OSError are unrelated classes on Python 2.7
        return None


def headers(text):
    # type: (object) -> dict[str, list[str]]
    """RFC 822 headers of a METADATA/PKG-INFO file (up to the first blank line)."""
    out = {}  # type: dict[str, list[str]]
    if not isinstance(text, TEXT):
        return out
    key = None
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t" and key is not None:
            out[key][-1] += " " + line.strip()
            continue
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        out.setdefault(key, []).append(value.strip())
    return out


def listdir(path):
    # type: (str) -> list[str]
    """The sorted entries of a folder; none when it cannot be read."""
    try:
        return sorted(os.listdir(path))
    except Exception:
        return []
