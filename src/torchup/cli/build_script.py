"""``torchup build-script torch==X.Y.Z``: a bash script that builds that torch from
source for a Python no wheel fits, and installs it there.

The target is ``--python`` (a Python here, as every command picks it) with the
accelerator detected here, or the machine a profile describes (``--for``, or the
flags): its recorded Python path and GPUs. The script is written (``-o``; ``-`` for
stdout) through a temporary sibling renamed into place; an existing file is kept unless
``--force``; ``--json`` prints the path and the decisions.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from torchup.cli import options as o

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    p.add_argument(
        "requirement",
        metavar="REQUIREMENT",
        help="the torch release to build, pinned exactly: torch==2.5.1",
    )
    o.common(p)
    o.target_options(p)
    p.add_argument(
        "--build", choices=("auto", "cpu", "cuda", "rocm"), default="auto",
        help="what to build for (default auto: the accelerator detected or profiled)",
    )  # fmt: skip
    p.add_argument(
        "--repository", metavar="URL", type=o.given,
        help="the PyTorch git repository the script clones by default (TORCH_REPO "
        "overrides it when the script runs)",
    )  # fmt: skip
    p.add_argument(
        "-o", "--output", metavar="FILE", type=o.given, default="build-torch.sh",
        help="where to write it (default: build-torch.sh; - for stdout)",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing file")


def _target(args: argparse.Namespace) -> tuple[str, Accelerator]:
    """The Python to build for and its accelerator: a profile's, or this machine's."""
    profile = o.target_profile(args)
    if profile is not None:
        return profile.python.executable, profile.accelerator
    from torchup.hardware.accelerators import detect
    from torchup.interpreters.discover import default_interpreter, select

    interp = select(args.python) if args.python else default_interpreter()
    return interp.executable, detect()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from torchup._paths import write_output
    from torchup.export.buildscript import DEFAULT_REPOSITORY, build_script, exact_torch_version

    version = exact_torch_version(args.requirement)  # before any probing: a typo is quick
    python, accelerator = _target(args)
    made = build_script(
        torch_version=version,
        python=python,
        accelerator=accelerator,
        build=None if args.build == "auto" else args.build,
        repository=args.repository or DEFAULT_REPOSITORY,
    )
    for warning in made.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    if args.output == "-":
        sys.stdout.write(made.text)
        return 0
    write_output(Path(args.output), made.text, force=args.force)
    if args.json:
        o.emit_json({"ok": True, **made.to_dict(), "path": args.output})
    elif not args.quiet:
        print(f"wrote {args.output}")
        print(made.summary.replace("build-torch.sh", shlex.quote(args.output)))
    return 0
