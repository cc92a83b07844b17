"""``torchup profile``: record this machine and one of its Pythons for plans made elsewhere."""

from __future__ import annotations

import argparse
import sys

from torchup.cli import options as o

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    o.common(p)
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write the profile to FILE (default: stdout)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing FILE")
    p.add_argument(
        "--script",
        action="store_true",
        help="write the standalone profile script instead, for a machine without torchup: "
        "`python3 torchup-profile.py > node.json` there (Python 2.7 or 3.6+)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from torchup._paths import write_output
    from torchup.interpreters.discover import default_interpreter, select
    from torchup.profiles import node_script, record
    from torchup.profiles.profile import read

    if args.script:
        text = node_script()
        what = "the profile script: run `python3 FILE > node.json` on the machine"
    else:
        py = select(args.python) if args.python else default_interpreter()
        doc = record(py.executable)
        profile = read(doc, source=py.executable)  # checks that it reads back
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        what = profile.describe()
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    write_output(Path(args.output), text, force=args.force)
    if args.json:
        o.emit_json({"schema": 1, "ok": True, "path": args.output, "summary": what})
    elif not args.quiet:
        print(f"wrote {args.output}: {what}")
    return 0
