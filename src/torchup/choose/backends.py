"""Backend names (``--backend``) and which files each one accepts. Pure.

A backend is what the user asks for: ``auto``, ``cpu``, ``cuXYZ``, ``rocmX.Y[.Z]``,
``xpu``, ``mps`` or ``pypi``. A *variant* is a directory of the PyTorch index and the
local version label of its wheels (``+cu126``); which variants exist is read from the
index, never listed here. ``pypi`` plans from pip's own sources alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from torchup.choose.compat import Candidate, describe_variant
from torchup.choose.resolve import VariantRule
from torchup.errors import UsageError

__all__ = ["Backend", "parse_backend", "requested_backend", "variant_rule"]

# The shapes of variant names the PyTorch index uses (pytorch/test-infra
# s3_management/manage_v2.py); which of them exist is discovered from the index.
_VARIANT = re.compile(r"^(cpu|xpu|cu[0-9]{2,4}|rocm[0-9]+\.[0-9]+(\.[0-9]+)?)$")
_SPECIAL = ("auto", "pypi", "mps")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    """The backend a plan uses: ``name`` as resolved, ``variant`` the index directory
    read (``None`` for ``pypi``), and ``source`` where the choice came from."""

    name: str
    variant: str | None
    source: str

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "variant": self.variant, "source": self.source}


def parse_backend(text: str) -> str:
    """Validate a backend name; raise :class:`UsageError` for a malformed one.

    >>> parse_backend("CU126")
    'cu126'
    """
    name = text.strip().lower()
    if name in _SPECIAL or _VARIANT.match(name):
        return name
    raise UsageError(
        f"unknown backend {text!r}",
        hint="use auto, cpu, cuXYZ (e.g. cu126), rocmX.Y (e.g. rocm6.4), xpu, mps or pypi",
    )


def requested_backend(flag: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The backend asked for and where: ``--backend`` > ``TORCHUP_BACKEND`` > ``auto``."""
    if flag:
        return parse_backend(flag), "--backend"
    if env.get("TORCHUP_BACKEND"):
        return parse_backend(env["TORCHUP_BACKEND"]), "TORCHUP_BACKEND"
    return "auto", "default"


def resolve_backend(name: str, source: str) -> Backend:
    """Turn a requested backend into the variant to read.

    ``auto`` means ``cpu`` until accelerator detection lands; ``mps`` reads the ``cpu``
    directory, whose macOS wheels are the MPS builds.
    """
    if name == "auto":
        return Backend(name="cpu", variant="cpu", source=f"{source}: auto")
    if name == "pypi":
        return Backend(name="pypi", variant=None, source=source)
    if name == "mps":
        return Backend(name="mps", variant="cpu", source=source)
    return Backend(name=name, variant=name, source=source)


def variant_rule(backend: Backend) -> VariantRule:
    """Which files a backend accepts.

    A wheel's local label decides its variant wherever it was found; an unlabelled
    wheel counts as the directory it was listed in, or as a plain build.
    ``pypi`` accepts every build, as pip would; ``mps`` accepts plain and cpu builds.
    """
    if backend.variant is None:
        return lambda cand: None
    want = backend.variant
    accepted = {want, None} if backend.name == "mps" else {want}

    def rule(cand: Candidate) -> str | None:
        if cand.variant in accepted:
            return None
        return f"variant {describe_variant(cand.variant)}, not {backend.name}"

    return rule
