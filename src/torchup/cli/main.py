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
from typing import Any, NoReturn

from torchup import __version__
from torchup.cli import (
    detect,
    doctor,
    install,
    lock,
    plan,
    profile,
    pythons,
    verify,
    wheelhouse,
)
from torchup.cli.options import emit_json, error_doc
from torchup.errors import TorchupError

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


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="torchup",
        description="Put a working PyTorch into a chosen Python, or say exactly why it "
        "can't and what will.",
    )
    parser.add_argument("--version", action="version", version=f"torchup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS.values():
        command.add_parser(sub)
    return parser


#: The subcommands, in the order ``--help`` lists them: each module's ``add_parser``
#: adds its options and ``run`` carries it out. A new command is one more module here.
_COMMANDS: dict[str, ModuleType] = {
    "pythons": pythons,
    "detect": detect,
    "plan": plan,
    "profile": profile,
    "lock": lock,
    "wheelhouse": wheelhouse,
    "install": install,
    "verify": verify,
    "doctor": doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    wants_json = any(a == "--json" or (len(a) > 3 and "--json".startswith(a)) for a in argv)
    try:
        args = _parser().parse_args(argv)
    except _UsageExit as exc:
        if wants_json:
            emit_json(error_doc("UsageError", *exc.args))
        return 2
    wants_json = bool(getattr(args, "json", False))  # as parsed (--jso abbreviates it)
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
        return int(_COMMANDS[args.command].run(args))
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
