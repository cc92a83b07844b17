"""The fixes of ``torchup doctor``: which reinstall mends what, and advice. Pure.

A failing check that a reinstall mends (:data:`INSTALL_PRIORITY`) gets a ``torchup
install`` command for the whole family (torch and the companions installed beside
it); :func:`plan_fixes` keeps one of them, the most thorough, as the automatic fix
``--fix`` applies, and every other command as advice. The builds proposed come from the
cited tables of :mod:`torchup.choose.variants`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from packaging.version import Version

from torchup.check.doctor_facts import (
    Facts,
    Finding,
    Fix,
    SiteFacts,
    TorchBuild,
    release_supports,
)
from torchup.check.verify import install_fix, own_backend

__all__ = [
    "INSTALL_PRIORITY",
    "REINSTALL",
    "fix_commands",
    "install_plans",
    "plan_fixes",
    "runnable_build",
]

#: Checks a reinstall mends, most thorough fix first: the first failing one is the
#: fix applied, and it mends the others (each reinstalls the whole torch family). A
#: driver too old for the build comes first: no build of another variant or release
#: is chosen around it (auto plans the CPU build and names the driver upgrade).
INSTALL_PRIORITY = (
    "driver-too-old",
    "arch-unsupported",
    "cpu-build-on-gpu",
    "python-unsupported",
    "torch-missing",
    "torch-import",
    "companion-mismatch",
)
_COMPANIONS = ("torchvision", "torchaudio")
#: Checks whose reinstall keeps the installed versions: the installer would call them
#: satisfied and change nothing, so the family's files are replaced (``--reinstall``).
REINSTALL = frozenset({"torch-import"})

Install = tuple[list[str], str | None]  # requirements, --backend


def install_plans(facts: Facts, tb: TorchBuild | None) -> dict[str, Install]:
    """The reinstall that mends each check in :data:`INSTALL_PRIORITY`."""
    site = facts.site
    own = own_backend(tb.version, tb.build) if tb is not None else None
    release = tb.release if tb is not None else None
    py = facts.python
    fits = release is not None and release_supports(release, py.version, py.free_threaded)
    return {
        "torch-missing": (_family("torch", site), None),
        "torch-import": (_family(_pin(tb), site), own),
        "python-unsupported": (_family(_pin(tb) if fits else "torch", site), own),
        "cpu-build-on-gpu": _hardware_fix(facts, tb, other_releases=False),
        "driver-too-old": _hardware_fix(facts, tb, other_releases=False),
        "arch-unsupported": _hardware_fix(facts, tb, other_releases=True),
        "companion-mismatch": (_family(_pin(tb), site), own),
    }


def fix_commands(installs: dict[str, Install], facts: Facts) -> dict[str, str]:
    """The ``torchup install`` command that mends each check."""
    return {
        k: install_fix(r, b, facts.target.args(), reinstall=k in REINSTALL)
        for k, (r, b) in installs.items()
    }


def plan_fixes(
    findings: Sequence[Finding], facts: Facts, installs: dict[str, Install]
) -> list[Fix]:
    """One install for the failing findings a reinstall mends (the most thorough of
    their commands; automatic for a venv or conda env, never for a Python itself), then
    every other command as advice, each once."""
    command = fix_commands(installs, facts)
    mended = [f.id for f in findings if f.status == "fail" and f.fix == command.get(f.id)]
    fixes: list[Fix] = []
    chosen = next((k for k in INSTALL_PRIORITY if k in mended), None)
    if chosen is not None:
        requirements, backend = installs[chosen]
        mends = tuple(k for k in INSTALL_PRIORITY if k in mended)
        reinstall = any(k in REINSTALL for k in mends)
        kwargs: dict[str, Any] = {"requirements": tuple(requirements), "backend": backend}
        kwargs.update(facts.target.install_kwargs())
        if reinstall:
            kwargs["reinstall"] = True
        automatic = facts.target.kind in ("venv", "conda")
        line = install_fix(requirements, backend, facts.target.args(), reinstall=reinstall)
        fixes.append(Fix(mends=mends, command=line, automatic=automatic, install=kwargs))
    for finding in findings:
        if finding.status == "pass" or not finding.fix or finding.id in mended:
            continue
        if not any(f.command == finding.fix for f in fixes):
            fixes.append(Fix(mends=(finding.id,), command=finding.fix))
    return fixes


def _family(torch: str, site: SiteFacts) -> list[str]:
    return [torch] + [name for name in _COMPANIONS if site.family(name)]


def _pin(tb: TorchBuild | None) -> str:
    release = tb.release if tb is not None else None
    return f"torch=={release}" if release is not None else "torch"


def runnable_build(
    facts: Facts, release: Version | None, *, other_releases: bool
) -> tuple[str, str] | None:
    """The newest (release, variant) whose driver floor and kernels fit this machine:
    ``release`` first, then (``other_releases``) the newest release in the table."""
    from torchup.choose.variants import cuda_releases, cuda_variants, judge

    if release is None or facts.accelerator.kind != "cuda":
        return None
    here = Version(f"{release.major}.{release.minor}")
    releases = [here]
    if other_releases:
        releases += [r for r in cuda_releases() if r != here]
    for rel in releases:
        for variant in cuda_variants(rel, facts.platform):
            verdict = judge(variant, rel, facts.accelerator, facts.platform)
            if verdict.ok and not verdict.minor_compat:
                return (str(release) if rel == here else f"{rel}.*", variant)
    return None


def _hardware_fix(
    facts: Facts, tb: TorchBuild | None, *, other_releases: bool
) -> tuple[list[str], str | None]:
    """Reinstall a build that runs here (:func:`runnable_build`), else ``--backend auto``,
    whose plan is then the CPU build and names the driver upgrade."""
    better = runnable_build(
        facts, tb.release if tb is not None else None, other_releases=other_releases
    )
    if better is None:
        return _family(_pin(tb), facts.site), "auto"
    return _family(f"torch=={better[0]}", facts.site), better[1]
