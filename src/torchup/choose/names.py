"""Names that look like a PyTorch package but are not one. Pure.

``torchup plan troch`` would otherwise plan ``troch`` from PyPI: a name one keystroke
from a PyTorch package is how typosquatted packages get installed. A requirement whose
name is one edit (insertion, deletion, substitution, or a swap of two neighbours) from
torch, torchvision, torchaudio, torchtext or torchdata, or a known wrong name for one of
them, is refused unless the user names it in ``allow``. Real projects that happen to be
that close (``torchx``, PyTorch's own job launcher) are not flagged.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.utils import canonicalize_name

__all__ = ["FAMILY_NAMES", "near_family_name"]

FAMILY_NAMES = ("torch", "torchvision", "torchaudio", "torchtext", "torchdata")

# Wrong names people type for the real ones. PyPI's ``pytorch`` is a placeholder whose
# install fails with "the package named for PyTorch is torch".
_WRONG_NAMES = {
    "pytorch": "torch",
    "py-torch": "torch",
    "torch-vision": "torchvision",
    "pytorch-vision": "torchvision",
    "pytorchvision": "torchvision",
    "torch-audio": "torchaudio",
    "pytorch-audio": "torchaudio",
    "torch-text": "torchtext",
    "torch-data": "torchdata",
}

# Real projects one edit from a family name: not typos of it.
_REAL_NEIGHBOURS = frozenset({"torchx"})


def one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by exactly one insertion, deletion, substitution or
    swap of adjacent characters (optimal string alignment distance 1).

    >>> [one_edit_apart("troch", "torch"), one_edit_apart("torc", "torch"),
    ...  one_edit_apart("torchh", "torch"), one_edit_apart("porch", "torch")]
    [True, True, True, True]
    >>> one_edit_apart("torch", "torch"), one_edit_apart("otrhc", "torch")
    (False, False)
    """
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) != 2:
            return len(diff) == 1
        i, j = diff
        return j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    return short[i:] == long[i + 1 :]


def near_family_name(name: str, allow: Iterable[str] = ()) -> str | None:
    """The PyTorch package ``name`` was probably meant to be, or ``None``.

    >>> near_family_name("troch"), near_family_name("Torch_Vision"), near_family_name("pytorch")
    ('torch', 'torchvision', 'torch')
    >>> near_family_name("torch"), near_family_name("torchx"), near_family_name("numpy")
    (None, None, None)
    >>> near_family_name("troch", allow=["Troch"]) is None
    True
    """
    canonical = canonicalize_name(name)
    if canonical in FAMILY_NAMES or canonical in _REAL_NEIGHBOURS:
        return None
    if canonical in {canonicalize_name(a) for a in allow}:
        return None
    if canonical in _WRONG_NAMES:
        return _WRONG_NAMES[canonical]
    return next((f for f in FAMILY_NAMES if one_edit_apart(canonical, f)), None)
