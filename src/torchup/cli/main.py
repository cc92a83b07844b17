"""The ``torchup`` command line: parse arguments, call the library, print, exit.

Exit codes: 0 success, 1 expected failure (nothing fits, a source failed), 2 usage or
internal error. ``--json`` prints exactly one document on stdout; warnings and errors
go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from torchup import __version__
from torchup.cli.options import emit_json, error_doc
from torchup.errors import TorchupError

if TYPE_CHECKING:
    from torchup.cli.replay import Pending

__all__ = ["main"]


class _UsageExit(Exception):
    """A command line argparse rejected (after it printed the usage and the error)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise _UsageExit(message, f"see `{self.prog} --help`")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: children stopped, changes undone."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the command ``argv`` names (its first word) gets its options,
    the others are listed with their help (they are not imported)."""
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = _Parser(
        prog="torchup",
        description="Put a working PyTorch into a chosen Python, or say exactly why it "
        "can't and what will.",
    )
    parser.add_argument("--version", action="version", version=f"torchup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in _COMMANDS.items():
        p = sub.add_parser(name, help=summary)
        if name == chosen:
            _command(name).add_arguments(p)
    return parser


#: The subcommands, in the order ``--help`` lists them, with their one-line help. Each
#: is a module of this package with ``add_arguments(parser)`` and ``run(args)``; only the
#: one being run is imported (start-up is measured: docs/benchmarks.md). A new command
#: is one more module and one more line here.
_COMMANDS: dict[str, str] = {
    "pythons": "list every Python on this machine and its wheel tags",
    "detect": "show the accelerator found (NVIDIA, AMD, Intel, Apple or none)",
    "plan": "choose the torch files for a Python, or explain why none fit",
    "profile": "record a machine (a Python and its GPUs) for plans made elsewhere (--for)",
    "lock": "pin the plan and all its dependencies, with hashes, in a PEP 751 pylock.toml",
    "wheelhouse": "fetch every file of a lock or a plan into DIR, as an index pip and uv use "
    "offline",
    "export": "write a Dockerfile or a conda environment.yml for a lock or a plan",
    "build-script": "write a bash script that builds torch from source when no wheel fits",
    "matrix": "which torch has files for which Python and which build, from the live indexes",
    "install": "create or update an environment with a verified PyTorch, all or nothing",
    "verify": "run torch in an environment and check it works here",
    "doctor": "find out why an existing PyTorch setup is broken, and how to fix it",
}


def _command(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(f"torchup.cli.{name.replace('-', '_')}")


def main(argv: Sequence[str] | None = None, *, replay: Pending | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code.
    ``replay`` is the command line's :class:`~torchup.cli.replay.Pending` entry, which
    ``torchup lock`` fills when it succeeds (:func:`torchup.cli.main`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    wants_json = any(a == "--json" or (len(a) > 3 and "--json".startswith(a)) for a in argv)
    try:
        args = _parser(argv).parse_args(argv)
    except _UsageExit as exc:
        if wants_json:
            emit_json(error_doc("UsageError", *exc.args))
        return 2
    wants_json = bool(getattr(args, "json", False))  # as parsed (--jso abbreviates it)
    args.replay = replay
    level = (
        logging.WARNING
        if args.verbose == 0
        else logging.INFO
        if args.verbose == 1
        else logging.DEBUG
    )
    if args.quiet:
        level = logging.ERROR
    logging.basicConfig(
        level=level, format="torchup: %(levelname)s: %(message)s", stream=sys.stderr
    )
    import signal
    import threading

    # SIGTERM (a service manager, `kill`) and SIGHUP (the terminal closed) undo like
    # Ctrl-C; only the main thread may set handlers, and an embedding program gets its
    # own handlers back afterwards
    stops = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {int(s): signal.signal(s, _terminate) for s in stops}
    try:
        return int(_command(args.command).run(args))
    except TorchupError as exc:
        print(f"torchup: error: {exc}", file=sys.stderr)
        if wants_json:
            emit_json(error_doc(type(exc).__name__, exc.message, exc.hint))
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`torchup plan | head`): not an error worth a message.
        # Point stdout at devnull so the flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
        print("torchup: " + ("terminated" if terminated else "interrupted"), file=sys.stderr)
        if wants_json:
            emit_json(error_doc("Interrupted", "stopped; nothing was left half-done", None))
        return 128 + int(exc.args[0]) if terminated else 130  # 143 for SIGTERM
    except Exception as exc:  # an internal bug: say so briefly, details with -v
        if args.verbose:
            raise
        print(
            f"torchup: internal error: {type(exc).__name__}: {exc}\n"
            "  please report it with the output of the same command run with -v",
            file=sys.stderr,
        )
        return 2
    finally:
        for number, handler in previous.items():  # None: set outside Python, use default
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
