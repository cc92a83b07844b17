"""The exceptions torchup raises: one root, a few subclasses per stage.

Each exception keeps its fields and formats its own message, so the CLI can print
``str(exc)`` (what went wrong, why, and what fixes it) and exit with ``exit_code``
without ever showing a traceback for an expected failure.
"""

from __future__ import annotations

__all__ = [
    "IndexFetchError",
    "InterpreterError",
    "PythonNotFoundError",
    "RunnerError",
    "TorchupError",
    "UsageError",
]


class TorchupError(Exception):
    """Root of every expected torchup failure.

    ``exit_code`` is 1 for an expected failure (nothing fits, a fetch failed) and 2 for
    bad usage. ``hint`` is the command or action that fixes it, when one is known.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(TorchupError):
    """The command line or an argument value is malformed (exit 2)."""

    exit_code = 2


class RunnerError(TorchupError):
    """A subprocess could not be started, timed out, or failed."""

    def __init__(
        self,
        message: str,
        *,
        cmd: tuple[str, ...] = (),
        returncode: int | None = None,
        output: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.cmd = cmd
        self.returncode = returncode
        self.output = output


class InterpreterError(TorchupError):
    """An interpreter could not be probed (missing, broken, timed out, printed junk)."""


class PythonNotFoundError(UsageError):
    """``--python SPEC`` matched no interpreter on this machine."""

    def __init__(self, spec: str, found: list[str]) -> None:
        listing = "\n".join(f"    {line}" for line in found) or "    (none)"
        super().__init__(
            f"no Python matches --python {spec!r}; found:\n{listing}",
            hint="pass a version (3.11, 3.13t), an executable path, a venv or conda prefix, "
            "or a conda env name; `torchup pythons` lists them",
        )
        self.spec = spec
        self.found = found


class IndexFetchError(TorchupError):
    """An index page or file could not be fetched or parsed."""

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        hint: str | None = None,
        lasting: bool = True,
        unreachable: bool = False,
    ) -> None:
        super().__init__(f"cannot read {url}: {reason}", hint=hint)
        self.url = url
        self.reason = reason
        #: false when another reader may well succeed: refused credentials (an
        #: installer may have its own, from netrc or a keyring) or an offline cache miss
        self.lasting = lasting
        #: the host could not be reached at all (no DNS answer, refused, connect timeout)
        self.unreachable = unreachable


class ProfileError(UsageError):
    """A machine profile (``--for FILE``) or the ``--platform`` flags describing one
    cannot be used: not JSON, from a newer torchup, missing facts, or malformed."""
