"""Does a lock fit this interpreter and this machine? Pure (``install --lock`` asks).

A lock is refused with every reason found: the Python version (``requires-python``,
``environments``), each package's wheel tags against the interpreter's, and the torch
build's variant judged against the accelerator the way planning judges it
(:func:`~torchup.choose.variants.judge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torchup.export.pylock import Lock, LockedPackage, LockError

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator
    from torchup.interpreters.discover import Interpreter

__all__ = ["LockFit", "LockUnfitError", "lock_fits"]


class LockUnfitError(LockError):
    """A lock made for another interpreter or accelerator than the one at hand."""

    def __init__(self, fit: LockFit) -> None:
        reasons = "\n".join(f"  - {r}" for r in fit.reasons)
        super().__init__(
            f"the lock {fit.where} does not fit {fit.target}:\n{reasons}",
            hint="make a lock for this Python and machine (torchup lock --python ...), "
            "or use the lock where it was made for",
        )
        self.fit = fit


@dataclass(frozen=True, slots=True, kw_only=True)
class LockFit:
    """Whether a lock installs into one interpreter on one machine, and if not why."""

    where: str
    target: str
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.reasons

    def check(self) -> None:
        """Raise :class:`LockUnfitError` unless the lock fits."""
        if not self.ok:
            raise LockUnfitError(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "where": self.where,
            "target": self.target,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }


def lock_fits(lock: Lock, interpreter: Interpreter, accelerator: Accelerator | None) -> LockFit:
    """Whether ``lock`` installs into ``interpreter`` and runs on ``accelerator``.

    Checked: ``requires-python`` and ``environments``; each package that applies here
    (by its marker) has a wheel whose tags the interpreter accepts, or an sdist; and,
    for a CUDA/ROCm/XPU torch, that this machine runs that variant (the same judgement
    planning makes: :func:`~torchup.choose.variants.judge`). ``accelerator`` ``None``
    skips the last check (noted). A CPU lock fits a GPU machine, with a note.
    """
    from torchup.choose.variants import judge, platform_key

    py = interpreter
    target = f"Python {py.version} at {py.executable}"
    where = str(lock.path) if lock.path is not None else "lock"
    reasons, notes = _python_reasons(lock, py)
    reasons += _tag_reasons(lock, py)
    made = lock.made_for
    # the torch installed here: a lock may hold one per platform, told apart by markers
    torch = _applying(lock, py, "torch")
    if torch is None and lock.package("torch") is not None:
        markers = " / ".join(
            repr(p.marker) for p in lock.packages if p.name == "torch" and p.marker
        )
        reasons.append(f"none of its torch entries applies to this interpreter ({markers})")
    variant = made.variant if made is not None else None
    if torch is not None and "+" in torch.version:
        variant = torch.version.rpartition("+")[2]
    if accelerator is None:
        notes.append("no accelerator given: the torch build was not judged against the hardware")
    elif torch is not None and variant and variant != "cpu":
        from packaging.version import InvalidVersion, Version

        try:
            release = Version(torch.version)
        except InvalidVersion:
            release = None
        if release is not None:
            verdict = judge(variant, release, accelerator, platform_key(py.markers))
            if not verdict.ok:
                reasons.append(
                    f"it holds the {variant} build of torch {torch.version}, which does not "
                    f"run here: {verdict.reason} ({accelerator.describe()})"
                )
    elif torch is not None and accelerator.kind in ("cuda", "rocm", "xpu"):
        notes.append(f"it holds a CPU torch; this machine has a GPU ({accelerator.describe()})")
    return LockFit(where=where, target=target, reasons=tuple(reasons), notes=tuple(notes))


def _marker_env(py: Interpreter) -> dict[str, str] | None:
    env = dict(py.markers)
    return env if env.get("python_full_version") else None


def _python_reasons(lock: Lock, py: Interpreter) -> tuple[list[str], list[str]]:
    from packaging.markers import InvalidMarker, Marker
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    reasons: list[str] = []
    notes: list[str] = []
    if lock.requires_python:
        try:
            spec = SpecifierSet(lock.requires_python)
        except InvalidSpecifier:
            reasons.append(f"its requires-python {lock.requires_python!r} is malformed")
        else:
            if not spec.contains(py.version, prereleases=True):
                reasons.append(
                    f"it requires Python {lock.requires_python}; this is Python {py.version}"
                )
    env = _marker_env(py)
    if lock.environments and env is None:
        notes.append("the interpreter's markers are unknown: environments not checked")
    elif lock.environments and env is not None:
        try:
            fits = any(Marker(e).evaluate(env) for e in lock.environments)
        except InvalidMarker as exc:
            reasons.append(f"its environments are malformed: {exc}")
        else:
            if not fits:
                listing = " or ".join(repr(e) for e in lock.environments)
                reasons.append(f"it was made for {listing}, not this interpreter")
    return reasons, notes


def _applying(lock: Lock, py: Interpreter, name: str) -> LockedPackage | None:
    """The first package named ``name`` whose marker holds for ``py``."""
    from packaging.utils import canonicalize_name

    wanted = canonicalize_name(name)
    return next((p for p in lock.applying(py.markers) if canonicalize_name(p.name) == wanted), None)


def _tag_reasons(lock: Lock, py: Interpreter) -> list[str]:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    accepted = set(py.tags)
    if not accepted:
        return []
    first = py.tags[0]
    reasons = []
    for pkg in lock.applying(py.markers):
        if any(f.kind == "sdist" for f in pkg.files):
            continue
        built_for: list[str] = []
        fits = False
        for f in pkg.files:
            try:
                tags = parse_wheel_filename(f.filename)[3]
            except InvalidWheelFilename:
                continue
            fits = fits or any(str(t) in accepted for t in tags)
            built_for += sorted(str(t) for t in tags)
        if not fits:
            names = ", ".join(f.filename for f in pkg.files)
            reasons.append(
                f"{pkg.name} {pkg.version} ({names}) is built for {', '.join(built_for)}; "
                f"Python {py.version} accepts none of that (its most specific tag is "
                f"{first}, of {len(py.tags)})"
            )
    return reasons
