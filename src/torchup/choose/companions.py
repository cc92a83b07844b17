"""Which torchvision / torchaudio release goes with which torch: the cited fallback table.

Pairing is decided by each companion wheel's own ``Requires-Dist: torch==X``
(:func:`torchup.choose.resolve.pair`); this table only orders the candidates, so the right one
is usually read first, and stands in when metadata cannot be read. Sources are cited in
``data/companions.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

__all__ = ["COMPANIONS", "predicted"]

COMPANIONS: frozenset[NormalizedName] = frozenset(
    {canonicalize_name("torchvision"), canonicalize_name("torchaudio")}
)


@dataclass(frozen=True, slots=True)
class _Data:
    pairs: dict[str, dict[Version, Version]]
    torchvision_minor_offset: int
    torchaudio_stable_abi_from: Version


@lru_cache(maxsize=1)
def _data() -> _Data:
    doc = json.loads((Path(__file__).parents[1] / "data" / "companions.json").read_text("utf-8"))
    pairs: dict[str, dict[Version, Version]] = {name: {} for name in COMPANIONS}
    for row in doc["pairs"]:
        torch = Version(row["torch"])
        for name in COMPANIONS:
            if row.get(name):
                pairs[name][torch] = Version(row[name])
    rules = doc["rules"]
    return _Data(
        pairs=pairs,
        torchvision_minor_offset=int(rules["torchvision_minor_offset_2x"]),
        torchaudio_stable_abi_from=Version(rules["torchaudio_stable_abi_from"]),
    )


def predicted(companion: str, torch: Version) -> Version | None:
    """The companion release the cited table pairs with ``torch`` (local label ignored).

    Beyond the table's rows, its documented rules apply: torchvision
    ``0.(minor + offset).patch`` for torch 2.x, and the stable-ABI torchaudio for every
    torch from that release on.

    >>> str(predicted("torchvision", Version("2.5.1+cpu")))
    '0.20.1'
    >>> str(predicted("torchvision", Version("2.15.0")))
    '0.30.0'
    >>> str(predicted("torchaudio", Version("2.14.0")))
    '2.11.0'
    """
    data = _data()
    name = canonicalize_name(companion)
    public = Version(torch.public)
    row = data.pairs.get(name, {}).get(public)
    if row is not None:
        return row
    if name == "torchvision" and public.major == 2:
        return Version(f"0.{public.minor + data.torchvision_minor_offset}.{public.micro}")
    if name == "torchaudio" and public >= data.torchaudio_stable_abi_from:
        return data.torchaudio_stable_abi_from
    return None
