"""``torchup plan``: the files for a Python (this machine's, or another machine's with
``--for``), or why none fit."""

from __future__ import annotations

import argparse
import sys

from torchup.cli import options as o

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    o.common(p)
    o.plan_options(p)
    o.target_options(p)


def run(args: argparse.Namespace) -> int:
    from torchup.render.text import render_plan

    result = o.plan_target(args, args.requirements, wheel_files=True)
    if args.json:
        o.emit_json(result.to_dict())
    elif not args.quiet or not result.ok:
        print(render_plan(result))
    for warning in result.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return 0 if result.ok else 1
