"""Find every Python on the machine and learn each one's exact wheel tags.

(Interface fixed here; implementation in progress.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Interpreter", "Kind"]

Kind = Literal["system", "venv", "conda", "pyenv", "uv", "unknown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Interpreter:
    """One Python installation, as probed by running it.

    ``tags`` are the wheel tags it accepts, most preferred first, as ``str(Tag)``,
    computed with ``packaging.tags`` from facts probed in that interpreter.
    ``markers`` is its PEP 508 marker environment. ``error`` is set (and the facts
    left empty) when the probe failed.
    """

    executable: str
    version: str = ""
    implementation: str = ""
    architecture: str = ""
    free_threaded: bool = False
    kind: Kind = "unknown"
    source: str = ""
    prefix: str = ""
    externally_managed: bool = False
    tags: tuple[str, ...] = ()
    markers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "version": self.version,
            "implementation": self.implementation,
            "architecture": self.architecture,
            "free_threaded": self.free_threaded,
            "kind": self.kind,
            "source": self.source,
            "prefix": self.prefix,
            "externally_managed": self.externally_managed,
            "tags": list(self.tags),
            "error": self.error,
        }
