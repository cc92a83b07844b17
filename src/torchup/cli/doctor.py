"""``torchup doctor``: why an existing setup is broken, and (``--fix``) the safe repairs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from torchup.cli import options as o
from torchup.errors import TorchupError

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    o.common(p)
    p.add_argument(
        "--venv", metavar="PATH", type=o.given, help="the venv to examine (instead of --python)"
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="after showing the fixes, apply the ones torchup can do safely: a reinstall "
        "through torchup install, undone if it fails (the others stay advice)",
    )


def run(args: argparse.Namespace) -> int:
    from torchup.check.doctor import doctor
    from torchup.envs.installing import apply_fix
    from torchup.render.text import render_doctor

    report = doctor(python=args.python, venv=args.venv)
    shown = {"quiet": args.quiet, "verbose": args.verbose > 0}
    if not args.json:
        print(render_doctor(report, **shown))
    applied: list[dict[str, Any]] = []
    automatic = [fix for fix in report.fixes if fix.automatic] if args.fix else []
    if args.fix and not automatic and not report.ok and not args.json:
        print("\n--fix: nothing here that torchup can fix by itself; see the fixes above")
    for fix in automatic:
        if not args.json:
            print(f"\n--fix: {fix.command}")
        try:
            result = apply_fix(fix, echo=not args.json and not args.quiet)
        except TorchupError as exc:
            ok, message = False, str(exc)
        else:
            problems = [f"{p.requirement}: {p.message}" for p in result.plan.problems]
            ok, message = result.ok, "; ".join([result.message, *problems])
            for warning in result.plan.warnings:
                print(f"torchup: warning: {warning}", file=sys.stderr)
        applied.append({"command": fix.command, "ok": ok, "message": message})
        if not args.json:
            print(message)
    if automatic:
        report = doctor(python=args.python, venv=args.venv)
        if not args.json:
            print("\nafter the fix:\n" + render_doctor(report, **shown))
    if args.json:
        o.emit_json({**report.to_dict(), "applied": applied})
    return 0 if report.ok else 1
