"""Download progress for ``torchup wheelhouse``: a bar on a terminal, lines otherwise.

On a terminal, ``rich``'s progress bar when it is installed, else one line redrawn in
place (bytes so far of the lock's total, files done, the file in flight); when stderr
is not a terminal (a CI log, a pipe) one plain line per finished file, and nothing
under ``--json`` or ``-q``. All output goes to stderr, so stdout stays the result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from torchup.render.export import megabytes

if TYPE_CHECKING:
    from torchup.export.wheelhouse import FileProgress

__all__ = ["Progress", "progress_for"]

_REDRAW_EVERY = 0.1  # seconds


class Progress:
    """The display as a context manager; :attr:`update` is what the fetcher calls."""

    def __init__(self, total: int, count: int, *, mode: str, stream: TextIO) -> None:
        self.total, self.count, self.mode, self.stream = total, count, mode, stream
        self.done_bytes: dict[str, int] = {}
        self.finished = 0
        self._drawn = 0.0
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.mode == "rich":
            from rich.progress import (  # type: ignore[import-not-found,unused-ignore]
                BarColumn,
                DownloadColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), transient=False,
            )  # fmt: skip
            self._rich.__enter__()
            self._task = self._rich.add_task("wheelhouse", total=self.total or None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
        elif self.mode == "bar":
            self._draw("", force=True)
            self.stream.write("\n")
            self.stream.flush()

    def update(self, event: FileProgress) -> None:
        if self.mode == "none":
            return
        self.done_bytes[event.filename] = event.done
        if event.event == "done":
            self.finished += 1
            if self.mode == "lines":
                size = megabytes(event.done) if event.done else "0 B"
                self.stream.write(
                    f"torchup: [{self.finished}/{self.count}] {event.filename} ({size}, "
                    f"{event.state})\n"
                )
                self.stream.flush()
        if self._rich is not None:
            self._rich.update(
                self._task,
                completed=sum(self.done_bytes.values()),
                description=f"[{self.finished}/{self.count}] files",
            )
        elif self.mode == "bar":
            self._draw(event.filename)

    def _draw(self, current: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < _REDRAW_EVERY:
            return
        self._drawn = now
        got = sum(self.done_bytes.values())
        share = got / self.total if self.total else 0.0
        bar = "#" * int(share * 24)
        line = (
            f"[{bar:<24}] {megabytes(got)} / {megabytes(self.total)}  "
            f"{self.finished}/{self.count} files  {current[:40]}"
        )
        self.stream.write("\r" + line.ljust(100)[:100])
        self.stream.flush()


def progress_for(total: int, count: int, *, quiet: bool, stream: TextIO | None = None) -> Progress:
    """The display that suits where stderr goes: ``rich`` or a redrawn line on a
    terminal, plain lines otherwise, nothing when ``quiet`` (``--json``, ``-q``)."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        mode = "none"
    elif not stream.isatty():
        mode = "lines"
    else:
        try:
            import rich.progress  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
        except ImportError:
            mode = "bar"
        else:
            mode = "rich"
    return Progress(total, count, mode=mode, stream=stream)


#: what :func:`torchup.export.wheelhouse.build_wheelhouse` takes as ``progress``
Callback = Callable[["FileProgress"], None]
