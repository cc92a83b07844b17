"""``torchup export dockerfile|conda``: the decision as a file another system deploys
with, from a lock (``--lock``) or from a plan for this machine or another (``--for``).

Each writes its file (``-o``; ``-`` for stdout) through a temporary sibling renamed into
place, keeps an existing one unless ``--force``, and says what it wrote (``--json``:
the path and a summary).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from torchup.cli import options as o
from torchup.errors import UsageError

if TYPE_CHECKING:
    from torchup.choose.plan import Plan
    from torchup.export.pylock import Lock

__all__ = ["add_arguments", "run"]


def _source_options(p: argparse.ArgumentParser) -> None:
    o.common(p)
    o.plan_options(p)
    o.target_options(p)
    p.add_argument("--force", action="store_true", help="replace existing files")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    docker = kinds.add_parser("dockerfile", help="a Dockerfile that installs the lock, checked")
    _source_options(docker)
    docker.add_argument(
        "--lock", metavar="FILE", type=o.given, help="the pylock.toml (default: plan and lock)"
    )
    docker.add_argument(
        "-o", "--output", metavar="FILE", type=o.given, default="Dockerfile",
        help="where to write it (default: Dockerfile; - for stdout); requirements.txt is "
        "written beside it",
    )  # fmt: skip
    docker.add_argument(
        "--base", metavar="IMAGE", type=o.given, help="base image (python:X.Y-slim)"
    )
    docker.add_argument("--digest", metavar="sha256:HEX", type=o.given, help="pin the base")
    docker.add_argument(
        "--wheelhouse", metavar="DIR", type=o.given,
        help="install from this folder of the build context (torchup wheelhouse DIR/files), "
        "with no index: a build that needs no network",
    )  # fmt: skip
    conda = kinds.add_parser("conda", help="a conda environment.yml (conda-forge Python, pip)")
    _source_options(conda)
    conda.add_argument(
        "--lock", metavar="FILE", type=o.given, help="pin every package of this pylock.toml"
    )
    conda.add_argument(
        "-o", "--output", metavar="FILE", type=o.given, default="environment.yml",
        help="where to write it (default: environment.yml; - for stdout)",
    )  # fmt: skip
    conda.add_argument("--name", metavar="NAME", type=o.given, help="the environment's name")


def run(args: argparse.Namespace) -> int:
    if args.lock is not None:
        o.refuse_planning(
            args,
            does="--lock exports what the lock holds",
            hint="pass --lock, or the request and its options, not both",
        )
    _writable(args)  # before planning and locking: a refusal should cost nothing
    return _dockerfile(args) if args.kind == "dockerfile" else _conda(args)


def _writable(args: argparse.Namespace) -> None:
    """Refuse an ``-o`` that is a folder, or a file there without ``--force``."""
    from pathlib import Path

    if args.output == "-":
        return
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"{out} is a folder", hint="pass -o with a file's path")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists", hint="pass --force to replace it")


def _planned(args: argparse.Namespace) -> Plan | None:
    """The plan for the request, or ``None`` when it does not fit (its explanation was
    printed)."""
    from torchup.render.text import render_plan

    plan = o.plan_target(args, args.requirements)
    for warning in plan.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    if plan.ok:
        return plan
    if args.json:
        o.emit_json(plan.to_dict())
    else:
        print(render_plan(plan))
    return None


def _lock(args: argparse.Namespace) -> Lock | None:
    """The lock ``--lock`` names, or one made from the plan (``None``: it did not fit)."""
    from pathlib import Path

    from torchup.export.pylock import read_lock

    if args.lock is not None:
        return read_lock(Path(args.lock))
    from torchup.cli.lock import find_resolver
    from torchup.export.lock import make_lock

    uv = find_resolver()
    plan = _planned(args)
    if plan is None:
        return None
    made, _command, warnings = make_lock(plan, uv=uv, offline=args.offline)
    for warning in warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return made


def _write(args: argparse.Namespace, files: dict[str, str], summary: dict[str, Any]) -> int:
    """Write ``files`` (the first is the ``-o`` one; the rest beside it), or print the
    first when ``-o -`` (the rest then go to the current folder); then say so."""
    from pathlib import Path

    from torchup._paths import write_outputs

    main, *rest = files
    folder = Path(".") if args.output == "-" else Path(args.output).parent
    targets = {name: folder / name for name in rest}
    for path in ([] if args.output == "-" else [Path(args.output)]) + list(targets.values()):
        if path.exists() and not args.force:  # every refusal before any write
            raise UsageError(f"{path} exists", hint="pass --force to replace it")
    written_too = [(path, files[name]) for name, path in targets.items()]
    if args.output == "-":
        write_outputs(written_too, force=True)
        sys.stdout.write(files[main])
        for path in targets.values():
            print(f"torchup: wrote {path}", file=sys.stderr)
        return 0
    # all or none: never a Dockerfile beside another one's requirements.txt
    write_outputs([(Path(args.output), files[main]), *written_too], force=True)
    written = [args.output, *map(str, targets.values())]
    if args.json:
        o.emit_json({"ok": True, **summary, "path": args.output, "files": written})
    elif not args.quiet:
        print(f"wrote {', '.join(written)}")
        print(summary["summary"])
    return 0


def _dockerfile(args: argparse.Namespace) -> int:
    from torchup.export.dockerfile import check_options, dockerfile

    check_options(base=args.base, digest=args.digest, wheelhouse=args.wheelhouse)
    lock = _lock(args)
    if lock is None:
        return 1
    if args.wheelhouse is not None:
        _check_wheelhouse(args, lock)
    made = dockerfile(lock, base=args.base, digest=args.digest, wheelhouse=args.wheelhouse)
    return _write(args, {"Dockerfile": made.dockerfile, **made.files}, made.to_dict())


def _check_wheelhouse(args: argparse.Namespace, lock: Lock) -> None:
    """Refuse a ``--wheelhouse`` that is not, beside the Dockerfile, a folder of every
    file the lock holds: the build would fail with pip's "no matching distribution"."""
    from pathlib import Path

    context = Path(".") if args.output == "-" else Path(args.output).parent
    folder = context / args.wheelhouse
    if not folder.is_dir():
        raise UsageError(
            f"the wheelhouse {folder} is not there (it is read from the build context, "
            "the Dockerfile's folder)",
            hint=f"make it: torchup wheelhouse {folder.parent / 'house'} --lock pylock.toml, "
            "then --wheelhouse house/files",
        )
    if (folder / "files").is_dir() and (folder / ".torchup-wheelhouse.json").exists():
        raise UsageError(
            f"{folder} is a wheelhouse; the files pip installs are in its files/ folder",
            hint=f"pass --wheelhouse {args.wheelhouse.rstrip('/')}/files",
        )
    missing = [f.filename for _, f in lock.files() if not (folder / f.filename).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise UsageError(
            f"the wheelhouse {folder} lacks {len(missing)} of the lock's files: {shown}",
            hint=f"fetch them: torchup wheelhouse DIR --lock {args.lock or 'pylock.toml'}",
        )


def _conda(args: argparse.Namespace) -> int:
    """From a lock: every package pinned with its hash; from a plan: the pins and index
    lines ``torchup install --conda-env`` gives the env's pip (no lock is made)."""
    from torchup.export.conda import conda_environment, conda_environment_from_lock

    if args.lock is not None:
        made = conda_environment_from_lock(_read_lock(args.lock), name=args.name)
    else:
        plan = _planned(args)
        if plan is None:
            return 1
        made = conda_environment(plan, name=args.name)
    for warning in made.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return _write(args, {"environment.yml": made.text}, made.to_dict())


def _read_lock(path: str) -> Lock:
    from pathlib import Path

    from torchup.export.pylock import read_lock

    return read_lock(Path(path))
