"""``torchup lock``: the plan, pinned with every dependency and hash, as a PEP 751
``pylock.toml`` (and, with ``--requirements-txt``, pip's hash-pinned form); ``--check``
says whether an existing lock still installs and what a fresh one would change."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from torchup.cli import options as o
from torchup.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from torchup.choose.plan import Plan

__all__ = ["add_arguments", "find_resolver", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    o.common(p)
    o.plan_options(p)
    o.target_options(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=o.given,
        default="pylock.toml",
        help="where to write the lock (default: pylock.toml; - for stdout); with --check, "
        "the lock to check",
    )
    p.add_argument(
        "--requirements-txt",
        metavar="FILE",
        type=o.given,
        help="also write the hash-pinned requirements form, for pip install --require-hashes -r",
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument(
        "--refresh",
        action="store_true",
        help="ask every index again (uv --refresh): no page or resolution younger than "
        "10 minutes is reused",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="check the lock (-o) instead: are its files still there with the same hashes, "
        "and what would a fresh lock change (exit 1 if anything would)",
    )


def find_resolver() -> str:
    """uv, which resolves the dependencies; a usage error naming the fix without it."""
    from torchup.envs.installers import find_uv

    found = find_uv(os.environ)
    if found is None:
        raise UsageError(
            "torchup lock needs uv to resolve the dependencies, and found none beside "
            "torchup or on PATH",
            hint="pip install uv (in torchup's environment), then run the command again",
        )
    return found


def run(args: argparse.Namespace) -> int:
    uv = find_resolver()
    if args.check:
        return _check(args, uv)
    with _Warnings.counted() as warned:
        return _lock(args, uv, warned)


class _Warnings(logging.Handler):
    """Counts the warnings torchup logs (an unreadable page cache, metadata that could
    not be read): what a replay would not print again."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    @classmethod
    @contextmanager
    def counted(cls) -> Iterator[_Warnings]:
        """Count torchup's logged warnings while the block runs, ``-q`` or not: the
        ``torchup`` logger lets them through to the counter, and the root handlers keep
        showing only what they showed before."""
        logger = logging.getLogger("torchup")
        own, shown = logger.level, logger.getEffectiveLevel()
        handlers = {h: h.level for h in logging.getLogger().handlers}
        for handler, level in handlers.items():
            handler.setLevel(max(level, shown))
        counter = cls()
        logger.addHandler(counter)
        logger.setLevel(min(shown, logging.WARNING))
        try:
            yield counter
        finally:
            logger.removeHandler(counter)
            logger.setLevel(own)
            for handler, level in handlers.items():
                handler.setLevel(level)


def _lock(args: argparse.Namespace, uv: str, warned: _Warnings) -> int:
    from pathlib import Path

    from torchup.export.lock import lock, lock_text, make_lock_with_freshness
    from torchup.render.export import render_lock
    from torchup.render.text import render_plan

    to_stdout = args.output == "-"
    output = None if to_stdout else Path(args.output)
    extra = Path(args.requirements_txt) if args.requirements_txt else None
    for path in (output, extra):  # before planning: a refusal should cost nothing
        if path is not None and path.exists() and not args.force:
            raise UsageError(
                f"{path} exists", hint="pass --force to replace it, or -o another path"
            )
    plan = o.plan_target(args, args.requirements)
    for warning in plan.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    if not plan.ok:  # the plan's own explanation says why, and what would fit
        if args.json:
            o.emit_json(plan.to_dict())
        else:
            print(render_plan(plan))
        return 1
    if output is None:
        made, command, warnings, until = make_lock_with_freshness(
            plan, uv=uv, offline=args.offline, refresh=args.refresh
        )
        text = lock_text(made, command)
        sys.stdout.write(text)
        for warning in warnings:
            print(f"torchup: warning: {warning}", file=sys.stderr)
        if not warnings and not warned.count:
            _remember(args, plan, uv, until, [], text)
        return 0
    result = lock(
        plan,
        output=output,
        uv=uv,
        requirements=extra,
        force=args.force,
        offline=args.offline,
        refresh=args.refresh,
    )
    for warning in result.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    text = ""
    if args.json:
        text = o.json_text({"ok": True, **result.to_dict()})
    elif not args.quiet:
        text = render_lock(result) + "\n"
    sys.stdout.write(text)
    if not result.warnings and not warned.count:
        _remember(args, plan, uv, result.fresh_until, result.written, text)
    return 0


def _remember(  # noqa: PLR0917 (what a replay depends on)
    args: argparse.Namespace,
    plan: Plan,
    uv: str,
    until: float,
    written: Sequence[tuple[Path, bytes]],
    stdout: str,
) -> None:
    """Keep this run's answer for :mod:`torchup.cli.replay`, when it depends on nothing
    but its arguments, environment and files: not a Python found by discovery, not an
    accelerator found by detection, nothing read afresh each time, no warning."""
    pending = getattr(args, "replay", None)
    python = args.python or ""
    elsewhere = args.for_profile is not None or args.python_version is not None
    by_path = os.sep in python or bool(os.altsep and os.altsep in python)
    # the path is the interpreter itself (or a link to it), not a launcher such as a
    # pyenv shim, which picks a Python by .python-version files and PYENV_VERSION
    by_path = by_path and os.path.realpath(python) == os.path.realpath(plan.python.executable)
    if (
        pending is None
        or args.refresh
        or args.verbose
        or plan.warnings
        or not (elsewhere or (by_path and plan.accelerator is None))
    ):
        return
    import torchup
    from torchup.index.sources import pip_config_files

    netrc = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    configs = pip_config_files(env=os.environ, prefix=plan.python.prefix or None)
    data = os.path.join(os.path.dirname(torchup.__file__ or ""), "data")
    # a uv that appears earlier on PATH would be the one found next time
    uvs = [os.path.join(d, "uv") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    inputs = [uv, plan.python.executable, netrc, *(str(path) for _, path in configs), *uvs,
              *(os.path.join(data, name) for name in sorted(os.listdir(data)))]  # fmt: skip
    outputs = [(str(path), data, bool(args.force)) for path, data in written]
    pending.record(until=until, inputs=inputs, outputs=outputs, stdout=stdout)


def _check(args: argparse.Namespace, uv: str) -> int:
    from pathlib import Path

    from torchup.export.lockcheck import check_lock
    from torchup.render.export import render_lock_check

    if args.requirements:
        raise UsageError(
            "--check plans the requirements the lock records; it takes none of its own",
            hint=f"torchup lock --check -o {args.output}",
        )
    if args.output == "-" or args.requirements_txt:
        raise UsageError("--check reads a lock file (-o FILE) and writes nothing")
    result = check_lock(
        Path(args.output),
        plan_fn=lambda reqs: o.plan_target(args, reqs),
        uv=uv,
        offline=args.offline,
    )
    if args.json:
        o.emit_json({"ok": result.up_to_date, **result.to_dict()})
    elif not args.quiet or not result.up_to_date:
        print(render_lock_check(result))
    return 0 if result.up_to_date else 1
