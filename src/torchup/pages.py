"""Pure parsers for index pages: PEP 691 JSON, PEP 503 HTML, PyTorch index layout.

(Interface fixed here; implementation in progress.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DistFile"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DistFile:
    """One file offered by an index page or a find-links folder.

    ``filename`` is percent-decoded (``%2B`` -> ``+``); ``url`` is absolute with the
    hash fragment removed; ``hashes`` maps algorithm -> hex digest (from PEP 691
    ``hashes`` or a ``#sha256=`` fragment); ``yanked`` is ``None`` when not yanked, else
    the reason (``""`` when none was given); ``metadata_hashes`` is ``None`` when no
    PEP 658/714 metadata file is advertised, else its hashes (possibly empty).
    ``index`` is the (redacted) URL of the page or folder it was listed on;
    ``variant_dir`` is the PyTorch index variant directory (``cpu``, ``cu126``,
    ``rocm6.2.4``, ``xpu``) the file was listed under, when known.
    """

    filename: str
    url: str
    index: str
    hashes: dict[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    yanked: str | None = None
    metadata_hashes: dict[str, str] | None = None
    size: int | None = None
    variant_dir: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "url": self.url,
            "index": self.index,
            "sha256": self.sha256,
            "requires_python": self.requires_python,
            "yanked": self.yanked,
        }
