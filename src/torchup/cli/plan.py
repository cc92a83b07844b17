"""``torchup plan``: the files for a Python (this machine's, or another machine's with
``--for``), or why none fit."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from torchup.cli import options as o

if TYPE_CHECKING:
    from torchup.cli.options import Subparsers

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("plan", help="choose the torch files for a Python, or explain why none fit")
    o.common(p)
    o.plan_options(p)
    o.target_options(p)


def run(args: argparse.Namespace) -> int:
    from torchup.render.text import render_plan

    result = o.plan_target(args, args.requirements)
    if args.json:
        o.emit_json(result.to_dict())
    elif not args.quiet or not result.ok:
        print(render_plan(result))
    for warning in result.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return 0 if result.ok else 1
