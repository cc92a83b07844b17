"""The matrix in a terminal: at most 100 columns, colour only where it is wanted.

A cell is a short code for its builds: ``C`` a CPU build, the newest CUDA build's
number (``126`` for cu126) with ``+`` when older CUDA builds are there too, ``R`` ROCm,
``X`` XPU, ``P`` PyPI's own build. ``--json`` lists every build and file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TextIO

from torchup.choose.matrix import PYPI, Column, Matrix, Row

__all__ = ["cell_code", "render_matrix", "wants_colour"]

WIDTH = 100
_GREEN, _BOLD, _RESET = "\x1b[32m", "\x1b[1m", "\x1b[0m"


def wants_colour(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Colour on a terminal, never with ``NO_COLOR`` set (no-color.org) or ``TERM=dumb``."""
    if "NO_COLOR" in env or env.get("TERM") == "dumb":
        return False
    return stream.isatty()


def cell_code(variants: Sequence[str]) -> str:
    """The short code of a cell's builds.

    >>> cell_code(["cpu", "cu118", "cu121", "rocm6.1", "pypi"])
    'C121+RP'
    >>> cell_code(["cu126"]), cell_code([])
    ('126', '')
    """
    cuda = sorted(int(m.group(1)) for v in variants if (m := re.fullmatch(r"cu(\d+)", v)))
    code = "C" if "cpu" in variants else ""
    if cuda:
        code += f"{cuda[-1]}" + ("+" if len(cuda) > 1 else "")
    code += "R" if any(v.startswith("rocm") for v in variants) else ""
    code += "X" if "xpu" in variants else ""
    return code + ("P" if PYPI in variants else "")


def _folded(matrix: Matrix, show_all: bool) -> list[tuple[Row, int]]:
    """The rows to show with how many patch releases each stands for: every release
    with ``show_all``, else the newest of each minor."""
    if show_all:
        return [(row, 1) for row in matrix.rows]
    shown: dict[str, list[Row]] = {}
    for row in matrix.rows:
        shown.setdefault(row.minor, []).append(row)
    return [(rows[0], len(rows)) for rows in shown.values()]


def render_matrix(matrix: Matrix, *, show_all: bool = False, colour: bool = False) -> str:
    """The table: a row per torch minor (newest patch; ``show_all``: every release),
    a column per CPython (``*`` marks a Python of this machine), the paired
    torchvision/torchaudio, and the cells whose builds run here in green."""
    rows = _folded(matrix, show_all)
    columns = [c for c in matrix.columns if any(c.name in r.cells for r, _n in rows)]
    codes = {(id(r), c.name): cell_code(r.variants(c.name)) for r, _n in rows for c in columns}
    cell_w = max([len(c.name) + 1 for c in columns] + [len(v) for v in codes.values()] + [3])
    head_w = max([len(_label(r, n)) for r, n in rows] + [5])
    pair_w = max([len(_pairs(r)) for r, _n in rows] + [8])
    room = (WIDTH - head_w - pair_w - 2) // (cell_w + 1)
    columns = _fitting_columns(columns, room)
    left_out = [c.name for c in matrix.columns if c not in columns]
    out = [
        f"torch files for {matrix.platform}"
        + (f", builds that run on this machine's {matrix.accelerator} in green" if colour else ""),
        "",
    ]
    header = (
        "torch".ljust(head_w)
        + " "
        + " ".join((c.name + ("*" if c.here else "")).ljust(cell_w) for c in columns)
    )
    out.append(header + " " + "vision/audio")
    for row, count in rows:
        cells = []
        for c in columns:
            code = codes[(id(row), c.name)] or "."
            text = code.ljust(cell_w)
            if colour and code != "." and set(row.variants(c.name)) & row.runs_here:
                text = f"{_GREEN}{_BOLD}{text}{_RESET}"
            cells.append(text)
        out.append(_label(row, count).ljust(head_w) + " " + " ".join(cells) + " " + _pairs(row))
    out += ["", _legend(left_out, show_all)]
    out += [f"warning: {w}" for w in matrix.warnings]
    return "\n".join(line.rstrip() for line in out)


def _label(row: Row, count: int) -> str:
    return str(row.torch) + (f" (+{count - 1})" if count > 1 else "")


def _pairs(row: Row) -> str:
    vision = row.companions.get("torchvision") or "-"
    audio = row.companions.get("torchaudio") or "-"
    return f"{vision} / {audio}"


def _fitting_columns(columns: Sequence[Column], room: int) -> list[Column]:
    """At most ``room`` columns: free-threaded ones not on this machine go first, then
    the oldest Pythons."""
    keep = list(columns)
    for column in [c for c in reversed(columns) if c.name.endswith("t") and not c.here]:
        if len(keep) <= room:
            break
        keep.remove(column)
    return keep[max(0, len(keep) - room) :]


def _legend(left_out: Sequence[str], show_all: bool) -> str:
    lines = [
        "C cpu, 126 newest CUDA build (cu126; + older ones too), R ROCm, X XPU, "
        "P PyPI's build, . none",
        "* a Python on this machine"
        + ("" if show_all else "; (+N) patch releases folded under the newest: --all shows them"),
    ]
    if left_out:
        lines.append(f"not shown (no file, or no room): {', '.join(left_out)}; --python picks")
    return "\n".join(lines)


def colour_default() -> bool:
    import sys

    return wants_colour(sys.stdout, os.environ)
