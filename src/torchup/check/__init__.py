"""Run torch in the target and judge it: verify, and doctor (facts, checks, fixes) with
their in-target probe scripts.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["probe_source"]


@cache
def probe_source(script: str) -> str:
    """What ``python -c`` runs in the target for ``script`` (``verify_probe.py`` or
    ``doctor_probe.py``): the shared ``probe_helpers.py``, then the script. Both are
    stdlib-only files in this folder; the helpers come first, so their functions are
    defined before the script uses them and the working directory leaves ``sys.path``
    before the script imports anything."""
    here = Path(__file__).parent
    helpers = (here / "probe_helpers.py").read_text(encoding="utf-8")
    return helpers + "\n\n" + (here / script).read_text(encoding="utf-8")
