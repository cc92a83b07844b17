"""A small TOML writer for the documents :mod:`torchup.export.pylock` writes. Pure.

Only what a PEP 751 lock needs: strings, integers, booleans, offset date-times
(``upload-time``), arrays, tables and arrays of tables; ``None`` values are left out
(TOML has no null). Keys listed in ``inline`` are written as inline tables or arrays
of inline tables (PEP 751's ``wheels``, ``sdist`` and ``hashes``, as uv writes them),
everything else as ``[table]`` / ``[[array.of.tables]]`` sections. Reading is :mod:`tomllib`'s job.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["dumps"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dumps(doc: Mapping[str, Any], *, inline: Collection[str] = ()) -> str:
    """``doc`` as TOML text.

    >>> print(dumps({"a": 1, "t": {"s": "x"}, "p": [{"w": [{"u": "v"}]}]}, inline={"w"}), end="")
    a = 1
    <BLANKLINE>
    [t]
    s = "x"
    <BLANKLINE>
    [[p]]
    w = [{ u = "v" }]
    """
    out: list[str] = []
    _table(out, (), doc, frozenset(inline))
    return "\n".join(out).lstrip("\n") + "\n"


def _table(
    out: list[str], path: tuple[str, ...], table: Mapping[str, Any], inline: frozenset[str]
) -> None:
    later: list[tuple[str, Any]] = []
    for key, value in table.items():
        if value is None:
            continue
        if key not in inline and (_is_table(value) or _is_table_array(value)):
            later.append((key, value))
        else:
            out.append(f"{_key(key)} = {_value(value)}")
    for key, value in later:
        sub = (*path, key)
        name = ".".join(_key(k) for k in sub)
        if _is_table(value):
            out += ["", f"[{name}]"]
            _table(out, sub, value, inline)
        else:
            for item in value:
                out += ["", f"[[{name}]]"]
                _table(out, sub, item, inline)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(_is_table(v) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes (\" \\ \n \t \uXXXX ...) are all valid in a TOML basic string
    return json.dumps(text, ensure_ascii=True)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime.datetime):
        # a TOML offset date-time, as tomllib reads it back: UTC written as Z
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        items = [f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list | tuple):
        items = [_value(v) for v in value if v is not None]
        if len(items) > 1 and any(isinstance(v, Mapping) for v in value):
            return "[\n" + "".join(f"    {i},\n" for i in items) + "]"
        return "[" + ", ".join(items) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")
