"""``torchup install``: a verified PyTorch in an environment, all or nothing."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from torchup.cli import options as o

if TYPE_CHECKING:
    from torchup.envs.installing import InstallResult

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    o.common(p)
    o.plan_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--venv", metavar="PATH", type=o.given, help="the venv to install into (created if missing)"
    )
    where.add_argument(
        "--conda-env", metavar="NAME", type=o.given, help="an existing conda env (its own pip)"
    )
    where.add_argument(
        "--system",
        action="store_true",
        help="install into the Python itself, even when it is externally managed (PEP 668)",
    )
    p.add_argument(
        "--installer",
        choices=("auto", "uv", "pip"),
        default="auto",
        help="uv where available (auto), or the target's own pip",
    )
    p.add_argument(
        "--lock",
        metavar="FILE",
        type=o.given,
        help="install exactly this pylock.toml (hash-checked, no index), instead of a plan",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would run; change nothing")
    p.add_argument(
        "--no-verify", action="store_true", help="skip running torch in the result (not advised)"
    )
    p.add_argument(
        "--force-incompatible",
        action="store_true",
        help="when no torch wheel fits this Python, try the nearest one built for another "
        "Python anyway: installed aside, kept only if verify passes",
    )
    p.add_argument(
        "--reinstall",
        action="store_true",
        help="replace the torch family's files even when the same versions are installed "
        "(repairs a damaged install; dependencies are left alone)",
    )


#: plan options that mean nothing for ``--lock`` (the lock already decided)
_NOT_WITH_LOCK = {
    "requirements": "requirements",
    "backend": "--backend",
    "torch_index_url": "--torch-index-url",
    "index_url": "--index-url",
    "extra_index_url": "--extra-index-url",
    "find_links": "--find-links",
    "force_incompatible": "--force-incompatible",
    "reinstall": "--reinstall",
    "offline": "--offline",
    "allow_name": "--allow-name",
}


def run(args: argparse.Namespace) -> int:
    from torchup.render.text import render_install

    result = _from_lock(args) if args.lock is not None else _from_plan(args)
    if args.json:
        o.emit_json(result.to_dict())
    elif not args.quiet or not result.ok:
        print(render_install(result))
    for warning in result.plan.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return 0 if result.ok else 1


def _from_lock(args: argparse.Namespace) -> InstallResult:
    from torchup.envs.fromlock import install_lock
    from torchup.errors import UsageError

    given = [flag for dest, flag in _NOT_WITH_LOCK.items() if getattr(args, dest, None)]
    if given:
        raise UsageError(
            f"--lock installs what the lock holds; {', '.join(given)} would make a new plan",
            hint="drop them, or make a new lock with `torchup lock ...`",
        )
    return install_lock(
        args.lock,
        python=args.python,
        venv=args.venv,
        conda_env=args.conda_env,
        system=args.system,
        installer=args.installer,
        dry_run=args.dry_run,
        verify=not args.no_verify,
        echo=not args.json and not args.quiet,
    )


def _from_plan(args: argparse.Namespace) -> InstallResult:
    from torchup.envs.installing import install

    return install(
        args.requirements,
        python=args.python,
        venv=args.venv,
        conda_env=args.conda_env,
        system=args.system,
        installer=args.installer,
        dry_run=args.dry_run,
        verify=not args.no_verify,
        force_incompatible=args.force_incompatible,
        reinstall=args.reinstall,
        echo=not args.json and not args.quiet,
        **o.plan_kwargs(args),
    )
