"""``torchup verify``: run torch in an environment and judge it against this machine."""

from __future__ import annotations

import argparse

from torchup.cli import options as o

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
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
