"""``torchup pythons``: every Python on this machine, with its wheel tags."""

from __future__ import annotations

import argparse

from torchup.cli import options as o

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    o.common(p)
    p.add_argument("--tags", action="store_true", help="also print each Python's wheel tags")


def run(args: argparse.Namespace) -> int:
    from torchup.choose.api import pythons
    from torchup.render.text import render_pythons

    found = pythons(python=args.python)
    if args.json:
        o.emit_json({"schema": 1, "pythons": [p.to_dict() for p in found]})
    else:
        print(render_pythons(found))
        if args.tags:
            for py in found:
                print(f"\n{py.executable}:\n  " + "\n  ".join(py.tags[:20]))
                if len(py.tags) > 20:
                    print(f"  ... {len(py.tags) - 20} more (--json lists all)")
    return 0
