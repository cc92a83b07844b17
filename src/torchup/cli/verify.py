"""``torchup verify``: run torch in an environment and judge it against this machine."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from torchup.cli import options as o

if TYPE_CHECKING:
    from torchup.cli.options import Subparsers

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("verify", help="run torch in an environment and check it works here")
    o.common(p)
    p.add_argument(
        "--venv", metavar="PATH", type=o.given, help="the venv to check (instead of --python)"
    )


def run(args: argparse.Namespace) -> int:
    from torchup.check.verify import verify
    from torchup.interpreters.discover import examined
    from torchup.render.text import render_verify

    report = verify(examined(args.python, args.venv).executable)
    if args.json:
        o.emit_json(report.to_dict())
    else:
        print(render_verify(report, quiet=args.quiet))
    return 0 if report.ok else 1
