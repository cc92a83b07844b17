"""Text for what the exports made: a lock, a lock check, a wheelhouse. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from torchup.index.pages import redact

if TYPE_CHECKING:
    from torchup.export.lock import LockResult
    from torchup.export.lockcheck import LockCheck
    from torchup.export.pylock import Lock
    from torchup.export.wheelhouse import Wheelhouse

__all__ = ["megabytes", "render_lock", "render_lock_check", "render_wheelhouse"]

_FAMILY = frozenset({"torch", "torchvision", "torchaudio"})
_SHOWN_DEPENDENCIES = 6


def megabytes(size: int) -> str:
    """``size`` bytes for people: ``812.4 MB``, ``12.0 kB``.

    >>> megabytes(812_400_000), megabytes(12_000), megabytes(7)
    ('812.4 MB', '12.0 kB', '7 B')
    """
    if size >= 1_000_000_000:
        return f"{size / 1e9:.2f} GB"
    if size >= 1_000_000:
        return f"{size / 1e6:.1f} MB"
    if size >= 1_000:
        return f"{size / 1e3:.1f} kB"
    return f"{size} B"


def _summary(lock: Lock) -> list[str]:
    """The family's files one per line, then the dependencies in one line."""
    family = [p for p in lock.packages if canonicalize_name(p.name) in _FAMILY]
    rest = [p for p in lock.packages if canonicalize_name(p.name) not in _FAMILY]
    width = max((len(p.name) for p in family), default=0)
    lines = []
    for p in family:
        files = ", ".join(f.filename for f in p.files)
        lines.append(f"  {p.name:<{width}}  {files}")
        if p.index:
            lines.append(f"  {'':<{width}}  from {redact(p.index)}")
    if rest:
        named = ", ".join(f"{p.name} {p.version}" for p in rest[:_SHOWN_DEPENDENCIES])
        more = f", ... {len(rest) - _SHOWN_DEPENDENCIES} more" if len(rest) > 6 else ""
        lines.append(f"  + {len(rest)} dependencies: {named}{more}")
    return lines


def _made_for(lock: Lock) -> str:
    made = lock.made_for
    if made is None:
        return ""
    torch = lock.package("torch")
    label = torch.version.partition("+")[2] if torch is not None else ""
    build = made.variant or (f"{label} (from pip's sources)" if label else "from pip's sources")
    return f" for Python {made.python_version} ({made.tag}), torch build {build}"


def render_lock(result: LockResult) -> str:
    """What ``torchup lock`` wrote, and the commands that install it."""
    lock = result.lock
    files = [f for _, f in lock.files()]
    size = sum(f.size or 0 for f in files)
    lines = [
        f"wrote {result.path}: {len(lock.packages)} packages, {len(files)} files "
        f"({megabytes(size)}){_made_for(lock)}",
        *_summary(lock),
    ]
    if result.requirements_path is not None:
        lines.append(
            f"wrote {result.requirements_path}: pip install --require-hashes "
            f"-r {result.requirements_path}"
        )
    lines.append(f"install it: torchup install --lock {result.path}")
    lines.append(f"files for a machine offline: torchup wheelhouse DIR --lock {result.path}")
    return "\n".join(lines)


def render_lock_check(check: LockCheck) -> str:
    """``torchup lock --check``: does it still install, and what would a fresh lock change."""
    lines = []
    where = f" into {check.fit.target}" if check.fit is not None else ""
    if check.still_installs:
        lines.append(f"{check.path} still installs{where}: every file is where it says, as it says")
    else:
        lines.append(f"{check.path} does not install{where} as it is:")
        lines += [f"  - {f.filename}: {f.reason}" for f in check.files if not f.ok]
        lines += [f"  - {r}" for r in (check.fit.reasons if check.fit is not None else ())]
    if check.fresh_error is not None:
        lines.append(f"no fresh lock to compare with: {check.fresh_error}")
    elif check.changes:
        lines.append("a fresh lock would change:")
        lines += [f"  - {c.describe()}" for c in check.changes]
    else:
        lines.append("a fresh lock would be the same")
    if not check.up_to_date:
        lines.append(f"make it again: torchup lock --force -o {check.path} (same target options)")
    return "\n".join(lines)


def render_wheelhouse(house: Wheelhouse) -> str:
    """What ``torchup wheelhouse`` made, and how a machine without internet uses it."""
    total = sum(f.size for f in house.files)
    fetched = sum(1 for f in house.files if f.state in ("downloaded", "resumed", "copied"))
    reused = sum(1 for f in house.files if f.state == "reused")
    lines = [
        f"wrote {house.directory}: {len(house.files)} files ({megabytes(total)}) of "
        f"{len(house.projects)} projects; {fetched} fetched ({megabytes(house.bytes_downloaded)}), "
        f"{reused} already there",
        f"  index: {house.directory}/simple/ (PEP 503 pages, PEP 691 JSON, PEP 658 metadata)",
    ]
    served = house.index_url.startswith(("http://", "https://"))  # --base-url was given
    index = redact(house.index_url) if served else "http://HOST:8000/simple/"
    root = index.removesuffix("simple/").rstrip("/")
    lines += [
        f"  lock:  {house.lock} (points at {root + '/files/' if served else 'the files here'})",
        "serve it: python -m http.server -d "
        + str(house.directory)
        + " 8000"
        + (f" (or any static host, as {root}/)" if served else ""),
        "install from it, offline:",
        f"  torchup install --lock {house.lock}",
        f"  pip install --index-url {index} " + " ".join(_pins(house)),
        f"  uv pip install --index-url {index} " + " ".join(_pins(house)),
    ]
    lines += [f"warning: {w}" for w in house.warnings]
    return "\n".join(lines)


def _pins(house: Wheelhouse) -> list[str]:
    """The family's pins as the wheelhouse holds them (what a user types to install)."""
    family = {f.project: f"{f.project}=={f.version}" for f in house.files
              if canonicalize_name(f.project) in _FAMILY}  # fmt: skip
    if family:
        return list(family.values())
    # a lock without torch: everything it holds, each at its version
    return list({f.project: f"{f.project}=={f.version}" for f in house.files}.values())
