"""The command line: parse, call the library, render; exit codes.

:func:`main` is the ``torchup`` command. A ``torchup lock`` that was run moments ago
with nothing changed is answered by :mod:`torchup.cli.replay` before anything else is
imported; every other command goes to :func:`torchup.cli.main.main`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torchup`` command with ``argv`` (default ``sys.argv[1:]``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    pending = None
    if argv[:1] == ["lock"]:
        import os

        from torchup.cli.replay import Pending

        try:
            pending = Pending(argv)
            code = pending.replay()
            if code is not None:
                sys.stdout.flush()
                return code
        except BrokenPipeError:  # as torchup.cli.main does: the reader went away
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except KeyboardInterrupt:  # the files are whole or not written (replay._write)
            print("torchup: interrupted", file=sys.stderr)
            return 130
    from torchup.cli.main import main as run

    return run(argv, replay=pending)
