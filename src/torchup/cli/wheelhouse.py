"""``torchup wheelhouse DIR``: every file of a lock (``--lock``) or of a plan, fetched
into DIR and written as a static index that pip and uv install from with no other
source (``python -m http.server -d DIR`` or any static host serves it)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from torchup.cli import options as o

if TYPE_CHECKING:
    from pathlib import Path

    from torchup.export.wheelhouse import Wheelhouse
    from torchup.index.sources import Sources

__all__ = ["add_arguments", "run"]


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= jobs <= 64:
        raise argparse.ArgumentTypeError("must be from 1 to 64")
    return jobs


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    p.add_argument("directory", metavar="DIR", type=o.given, help="the folder to fill")
    o.common(p)
    o.plan_options(p)
    o.target_options(p)
    p.add_argument(
        "--lock",
        metavar="FILE",
        type=o.given,
        help="the pylock.toml to fetch (default: plan REQUIREMENT... and lock it here)",
    )
    p.add_argument(
        "--base-url",
        metavar="URL",
        type=_base_url,
        help="where DIR will be served (https://mirror.example/torch): the rewritten "
        "DIR/pylock.toml points there (default: paths relative to it)",
    )
    p.add_argument(
        "--jobs", metavar="N", type=_jobs, default=8, help="files fetched at once (default 8)"
    )


def _base_url(value: str) -> str:
    from torchup.export.wheelhouse import base_url_problem

    if problem := base_url_problem(o.given(value)):
        raise argparse.ArgumentTypeError(problem)
    return value


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from torchup.render.export import render_wheelhouse

    if args.lock is not None:  # the index options give the credentials of their hosts
        o.refuse_planning(
            args,
            does="--lock fetches what the lock holds",
            hint=f"torchup wheelhouse {args.directory} --lock {args.lock}, or drop --lock",
            taken=("torch_index_url", "index_url", "extra_index_url", "find_links"),
        )
    if args.lock is not None:
        # a lock's URLs carry no credentials: the indexes named on the command line, else
        # pip's configured ones, give them (and pip's CA bundle and trusted hosts), as
        # they do to pip for an index URL without any
        import os

        from torchup.choose.reading import sources_for

        sources = sources_for(
            os.environ,
            prefix=None,
            index_url=args.index_url,
            extra_index_urls=args.extra_index_url,
            find_links=args.find_links,
            torch_index_url=args.torch_index_url,
        )
        house: Wheelhouse | None = _build(args, Path(args.lock), sources=sources)
    else:
        house = _from_plan(args)
    if house is None:
        return 1
    for warning in house.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    if args.json:
        o.emit_json({"ok": True, **house.to_dict()})
    elif not args.quiet:
        print(render_wheelhouse(house))
    return 0


def _from_plan(args: argparse.Namespace) -> Wheelhouse | None:
    """Plan, lock in a temporary folder, and build from that lock (``None``: the plan
    did not fit, and its explanation was printed)."""
    import tempfile
    from pathlib import Path

    from torchup.cli.lock import find_resolver
    from torchup.export.lock import lock_text, make_lock
    from torchup.render.text import render_plan

    uv = find_resolver()
    plan = o.plan_target(args, args.requirements)
    for warning in plan.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    if not plan.ok:
        if args.json:
            o.emit_json(plan.to_dict())
        else:
            print(render_plan(plan))
        return None
    made, command, warnings = make_lock(plan, uv=uv, offline=args.offline)
    for warning in warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="torchup-lock-") as tmp:
        path = Path(tmp) / "pylock.toml"
        path.write_text(lock_text(made, command), encoding="utf-8")
        return _build(args, path, sources=plan.sources)


def _build(args: argparse.Namespace, lock_path: Path, *, sources: Sources | None) -> Wheelhouse:
    from pathlib import Path

    from torchup.cli.progress import progress_for
    from torchup.export._probe import session_for
    from torchup.export.pylock import read_lock
    from torchup.export.wheelhouse import build_wheelhouse

    files = [f for _, f in read_lock(lock_path).files()]
    total = sum(f.size or 0 for f in files)
    session = session_for(sources, read_timeout=60.0)
    try:
        with progress_for(total, len(files), quiet=args.json or args.quiet) as shown:
            return build_wheelhouse(
                lock_path,
                Path(args.directory),
                session=session,
                jobs=args.jobs,
                progress=shown.update,
                base_url=args.base_url,
            )
    finally:
        session.close()
