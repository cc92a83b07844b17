"""Which torchvision / torchaudio release goes with which torch: the cited fallback table.

Pairing is decided by each companion wheel's own ``Requires-Dist: torch==X``
(:func:`torchup.resolve.pair`); this table only orders the candidates, so the right one
is usually read first, and stands in when metadata cannot be read. Sources are cited in
``data/companions.json``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

__all__ = ["COMPANIONS", "predicted"]

COMPANIONS: frozenset[NormalizedName] = frozenset(
    {canonicalize_name("torchvision"), canonicalize_name("torchaudio")}
)


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[Version, Version]]:
    doc = json.loads((Path(__file__).parent / "data" / "companions.json").read_text("utf-8"))
    table: dict[str, dict[Version, Version]] = {name: {} for name in COMPANIONS}
    for row in doc["pairs"]:
        torch = Version(row["torch"])
        for name in COMPANIONS:
            if row.get(name):
                table[name][torch] = Version(row[name])
    return table


def predicted(companion: str, torch: Version) -> Version | None:
    """The companion release the cited table pairs with ``torch`` (local label ignored).

    Beyond the table, the documented rules apply: torchvision ``0.(minor+15).patch`` for
    torch 2.x, and torchaudio 2.11.0 (stable ABI) for every torch from 2.11.

    >>> str(predicted("torchvision", Version("2.5.1+cpu")))
    '0.20.1'
    >>> str(predicted("torchvision", Version("2.15.0")))
    '0.30.0'
    >>> str(predicted("torchaudio", Version("2.14.0")))
    '2.11.0'
    """
    name = canonicalize_name(companion)
    public = Version(torch.public)
    row = _table().get(name, {}).get(public)
    if row is not None:
        return row
    if name == "torchvision" and public.major == 2:
        return Version(f"0.{public.minor + 15}.{public.micro}")
    if name == "torchaudio" and public >= Version("2.11"):
        return Version("2.11.0")
    return None
