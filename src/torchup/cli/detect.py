"""``torchup detect``: the accelerator this machine has, and the backend a plan would use."""

from __future__ import annotations

import argparse
import os
import sys

from torchup.cli import options as o

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    o.output_options(p, quiet_help="print only warnings")


def run(args: argparse.Namespace) -> int:
    from torchup.choose.backends import requested_backend
    from torchup.hardware.accelerators import detect
    from torchup.render.text import render_accelerator

    accel = detect()
    backend = requested_backend(None, os.environ)
    if args.json:
        doc = {"schema": 1, "backend": {"name": backend[0], "source": backend[1]}}
        o.emit_json({**doc, **accel.to_dict()})
    elif not args.quiet:
        print(render_accelerator(accel, backend))
    for warning in accel.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return 0
