"""``torchup install``: plan, stage, install, verify, and only then put in place.

The order of events, each step able to stop the whole without leaving anything half
done (see :mod:`torchup.envs.staging`):

1. decide the target (``--venv`` / ``--conda-env`` / ``--system`` / active env /
   ``./.venv``) and its Python; for a new venv without ``--python``, the newest Python
   on the machine whose plan succeeds;
2. plan; a request that cannot be met stops here, having created nothing;
3. stage: a new venv is created aside, an existing one copied aside (hard links), a
   conda env or system Python snapshotted;
4. install the torch family pinned with hashes, then let the installer resolve their
   dependencies from the plan's sources (:mod:`torchup.envs.installers`);
5. verify by running torch in the staged environment; any failure undoes step 3.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from torchup.choose.plan import Plan
from torchup.envs import staging as envs
from torchup.envs.forced import fetch_forced, instead, stand_in_plan, why_forced_failed
from torchup.envs.installers import InstallerChoice, choose_installer, install_commands
from torchup.envs.steps import local_family_files, run_installer
from torchup.errors import TorchupError, UsageError
from torchup.index.pages import redact

if TYPE_CHECKING:
    from torchup.check.doctor_facts import Fix
    from torchup.choose.forcing import ForcedWheel

__all__ = ["InstallResult", "apply_fix", "install"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallResult:
    """What ``install`` did (or, with ``dry_run``, would do)."""

    ok: bool
    target: envs.Target
    plan: Plan
    installer: InstallerChoice
    python_source: str
    commands: tuple[tuple[str, ...], ...] = ()
    dry_run: bool = False
    verify: Any = None  # a torchup.check.verify.VerifyReport when verification ran
    message: str = ""
    activation: Mapping[str, str] = field(default_factory=dict)
    #: files installed under a tag they were not built for (``--force-incompatible``)
    forced: tuple[ForcedWheel, ...] = ()
    #: the hash-pinned requirements file the commands read, as (path, text); the file
    #: lives only while the commands run
    requirements_file: tuple[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "ok": self.ok,
            "dry_run": self.dry_run,
            "target": self.target.to_dict(),
            "python_source": self.python_source,
            "installer": {"name": self.installer.name, "source": self.installer.source},
            "plan": self.plan.to_dict(),
            "commands": [list(c) for c in self.commands],
            "verify": self.verify.to_dict() if self.verify is not None else None,
            "message": self.message,
            "activation": dict(self.activation),
            "forced": [f.to_dict() for f in self.forced],
            "requirements_file": (
                dict(zip(("path", "text"), self.requirements_file, strict=True))
                if self.requirements_file
                else None
            ),
        }


def _pick_python(
    requirements: Sequence[str], plan_kw: Mapping[str, Any], env: Mapping[str, str], cwd: Path
) -> tuple[Plan, str]:
    """The newest Python on this machine whose plan succeeds (base interpreters only)."""
    from packaging.version import Version

    from torchup.choose.api import plan
    from torchup.interpreters.discover import discover

    found = [
        py
        for py in discover(env=env, cwd=cwd)
        if not py.error
        and py.kind not in ("venv", "conda")
        and not py.externally_managed
        and not py.free_threaded
    ]
    found.sort(key=lambda py: Version(py.version), reverse=True)
    first: Plan | None = None
    for py in found:
        result = plan(requirements, python=py.executable, env=env, cwd=cwd, **plan_kw)
        if result.ok:
            return (
                result,
                f"the newest Python on this machine that can install the request ({py.version})",
            )
        first = first or result
    if first is None:
        raise TorchupError(
            "no usable Python found on this machine to create a venv from",
            hint="install one (e.g. `uv python install 3.12`) or pass --python",
        )
    return first, "the newest Python on this machine (nothing fits any of them)"


def _refuse_an_unusable_fallback(result: Plan, requirements: Sequence[str]) -> None:
    """``auto`` with the PyTorch index unreadable planned PyPI's torch; on a machine
    that cannot use that build (a CUDA build and no NVIDIA GPU) installing it would pull
    GBs for nothing, so stop and name the two commands that work. ``plan`` only warns."""
    fallback = result.fallback
    if fallback is None or not fallback.cuda_build or fallback.verdict is not None:
        return
    reqs = shlex.join(requirements or ("torch",))
    raise TorchupError(
        f"the PyTorch index could not be read ({fallback.reason}), and PyPI's torch is "
        f"{fallback.describe()} with GBs of nvidia-*/cuda-* wheels that this machine "
        f"cannot use ({result.accelerator.describe() if result.accelerator else 'no GPU'}); "
        "the CPU build lives only on the PyTorch index",
        hint=(
            f"torchup install {reqs} --backend cpu --torch-index-url URL (a reachable "
            f"PyTorch index or mirror of it), or torchup install {reqs} --backend pypi "
            "to take the CUDA build knowingly"
        ),
    )


def _extras(reqs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in reqs:
        req = Requirement(text)
        if req.extras:
            out[canonicalize_name(req.name)] = f"[{','.join(sorted(req.extras))}]"
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    """What ``install`` settled before staging: where, with which installer, what plan."""

    target: envs.Target
    plan: Plan
    installer: InstallerChoice
    python_source: str
    #: said before every message (why a conda env gets its own pip)
    note: str = ""
    #: the plan that did not fit, when ``plan`` is a stand-in (``--force-incompatible``)
    failed: Plan | None = None
    forced: tuple[ForcedWheel, ...] = ()
    pinned: tuple[str, str] | None = None


def _outcome(
    req: _Request,
    ok: bool,
    message: str,
    commands: tuple[tuple[str, ...], ...] = (),
    *,
    dry: bool = False,
    report: Any = None,
) -> InstallResult:
    """The result of ``install`` for ``req``: the activation only once ``ok``."""
    target = req.target
    return InstallResult(
        ok=ok,
        target=target,
        plan=req.plan,
        installer=req.installer,
        python_source=req.python_source,
        commands=commands,
        dry_run=dry,
        verify=report,
        message=req.note + message,
        activation=envs.activation(target.path) if ok and target.kind != "system" else {},
        forced=req.forced,
        requirements_file=req.pinned,
    )


def install(
    requirements: Sequence[str] = ("torch",),
    *,
    python: str | None = None,
    venv: str | None = None,
    conda_env: str | None = None,
    system: bool = False,
    installer: str = "auto",
    backend: str | None = None,
    dry_run: bool = False,
    verify: bool = True,
    force_incompatible: bool = False,
    reinstall: bool = False,
    torch_index_url: str | None = None,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str] = (),
    offline: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    echo: bool = True,
    allow_names: Sequence[str] = (),
) -> InstallResult:
    """Install a verified PyTorch into the target environment, all or nothing.

    Returns a result with ``ok`` false when the request cannot be met (nothing was
    created) or when install or verification failed (everything was undone). With
    ``force_incompatible``, a request that no wheel for this Python meets is tried with
    the nearest Python's wheels, kept only if verification passes (:mod:`torchup.choose.forcing`).
    ``reinstall`` replaces the torch family's files even when the same versions are
    installed (repairs a damaged install). Raises
    :class:`UsageError` for contradictory or unsafe requests (an externally managed
    Python without ``system``) and :class:`TorchupError` for other expected failures.
    """
    from torchup.choose.api import parse_requirements
    from torchup.choose.localwheel import split_local_wheels

    env = dict(os.environ) if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    # bad or near-miss names, missing wheel files: before anything
    parse_requirements(split_local_wheels(requirements, cwd=cwd)[0], allow_names)
    target, choice = _resolve_target(
        venv=venv, conda_env=conda_env, system=system, installer=installer, env=env, cwd=cwd
    )
    plan_kw: dict[str, Any] = {
        "backend": backend,
        "torch_index_url": torch_index_url,
        "index_url": index_url,
        "extra_index_urls": tuple(extra_index_urls),
        "find_links": tuple(find_links),
        "offline": offline,
        "allow_names": tuple(allow_names),
    }
    req = _plan_request(requirements, target, choice, python, plan_kw, env, cwd)
    if not req.plan.ok and force_incompatible:
        stand_in = _stand_in_request(req, requirements, plan_kw, env, cwd, verify=verify)
        if isinstance(stand_in, InstallResult):
            return stand_in
        req = stand_in
    if not req.plan.ok:
        return _nothing_fits(req, force_incompatible=force_incompatible)
    return _install_staged(
        req, dry_run=dry_run, verify=verify, reinstall=reinstall, env=env, echo=echo
    )


def _resolve_target(
    *,
    venv: str | None,
    conda_env: str | None,
    system: bool,
    installer: str,
    env: Mapping[str, str],
    cwd: Path,
) -> tuple[envs.Target, InstallerChoice]:
    """The target as the flags name it (before planning) and the installer for it."""
    from torchup.interpreters.discover import select

    choice = choose_installer(installer, env)
    conda_prefix: Path | None = None
    if conda_env:
        try:
            conda_py = select(conda_env, env=env, cwd=cwd)
        except TorchupError as exc:
            raise UsageError(
                f"--conda-env {conda_env!r}: no conda env by that name or prefix "
                f"({exc.message.replace('--python', 'as a Python')})",
                hint="`conda env list` shows the envs; pass a name or a prefix",
            ) from None
        conda_prefix = Path(conda_py.prefix)
    target = envs.resolve_target(venv=venv, conda_env=conda_prefix, system=system, env=env, cwd=cwd)
    if target.kind == "conda" and installer == "auto":
        choice = InstallerChoice(
            name="pip", uv=None, source="--installer auto: a conda env gets its own pip"
        )
    return target, choice


def _plan_request(  # noqa: PLR0917 (private, called once)
    requirements: Sequence[str],
    target: envs.Target,
    choice: InstallerChoice,
    python: str | None,
    plan_kw: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
) -> _Request:
    """Plan for the target's Python, refuse what must not be installed, and settle the
    target (``--system`` is the planned Python's prefix). Raises :class:`UsageError`."""
    result, python_source = _plan_for(requirements, target, python, plan_kw, env, cwd)
    _refuse_an_unusable_fallback(result, requirements)
    target = _settled_target(target, result)
    why_pip = (
        "conda env: installing with its own pip, since the pytorch conda channel's last "
        "release was torch 2.5 (pytorch/pytorch#138506). "
        if target.kind == "conda" and choice.name == "pip"
        else ""
    )
    return _Request(
        target=target, plan=result, installer=choice, python_source=python_source, note=why_pip
    )


def _plan_for(  # noqa: PLR0917 (private, called once)
    requirements: Sequence[str],
    target: envs.Target,
    python: str | None,
    plan_kw: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
) -> tuple[Plan, str]:
    """The plan and where its Python came from: an existing env's own, ``--python`` or
    the default for the system, else the newest Python whose plan succeeds."""
    from torchup.choose.api import plan
    from torchup.interpreters.discover import select

    if target.exists and target.kind != "system":
        assert target.executable is not None
        result = plan(requirements, python=target.executable, env=env, cwd=cwd, **plan_kw)
        python_source = f"the {target.kind} at {target.path} ({target.source})"
        if python and result.python.version != select(python, env=env, cwd=cwd).version:
            raise UsageError(
                f"{target.path} uses Python {result.python.version}, not the one --python "
                f"{python!r} names",
                hint="pass --venv with a new path to create a venv from that Python",
            )
        return result, python_source
    if python or target.kind == "system":
        result = plan(requirements, python=python, env=env, cwd=cwd, **plan_kw)
        return result, f"--python {python}" if python else "the default Python"
    return _pick_python(requirements, plan_kw, env, cwd)


def _settled_target(target: envs.Target, result: Plan) -> envs.Target:
    """``--system`` as the planned Python's prefix; refuses (:class:`UsageError`) an
    externally managed Python (PEP 668) as anything but a venv's base."""
    py = result.python
    if target.kind == "system":
        return envs.Target(
            kind="system",
            path=Path(py.prefix or "/"),
            exists=True,
            source="--system",
            executable=py.executable,
        )
    if py.externally_managed and target.kind != "venv":  # a venv from it is fine
        raise UsageError(
            f"Python {py.version} at {py.executable} is externally managed (PEP 668); "
            "installing into it could break the system's packages",
            hint="install into a venv (the default: ./.venv), or pass --system if you mean it",
        )
    return target


def _stand_in_request(
    req: _Request,
    requirements: Sequence[str],
    plan_kw: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
    *,
    verify: bool,
) -> _Request | InstallResult:
    """``--force-incompatible``: ``req`` with the nearest Python's plan as a stand-in, or
    the result saying there is none. Raises :class:`UsageError` without ``verify``."""
    if not verify:
        raise UsageError(
            "--force-incompatible keeps a forced install only if running it proves it "
            "works, so it cannot be combined with --no-verify",
            hint="drop --no-verify",
        )
    trial = stand_in_plan(req.plan, requirements, plan_kw, env, cwd)
    if isinstance(trial, str):
        return _outcome(req, False, f"{trial}; nothing was created or changed")
    return replace(req, plan=trial, failed=req.plan)


def _nothing_fits(req: _Request, *, force_incompatible: bool) -> InstallResult:
    """The result for a plan that did not fit, naming ``--force-incompatible`` if it
    could try."""
    tried = ""
    if not force_incompatible and any(
        r.reason.startswith("built for ") for o in req.plan.problems for r in o.rejected
    ):
        tried = (
            " (--force-incompatible would try the nearest Python's wheel anyway, kept "
            "only if torch then runs; it rarely does)"
        )
    return _outcome(req, False, f"nothing fits this Python; nothing was created or changed{tried}")


def _install_staged(
    req: _Request,
    *,
    dry_run: bool,
    verify: bool,
    reinstall: bool,
    env: Mapping[str, str],
    echo: bool,
) -> InstallResult:
    """Stage, run the installer, verify and commit; leaving the staging block without
    the commit (a failure, an error, Ctrl-C) undoes everything, the lock held till then."""
    target = req.target
    with tempfile.TemporaryDirectory(prefix="torchup-") as tmp:
        hashes = Path(tmp) / "torch-family.txt"
        staging = envs.Staging(target)
        files: dict[str, Path] = {}
        deps: list[str] = []
        if req.failed is not None:
            try:
                files, deps, forced = fetch_forced(req.plan, Path(tmp), env, download=not dry_run)
            except TorchupError as exc:
                return _outcome(req, False, f"{exc.message}; nothing was created or changed")
            req = replace(req, forced=forced)
        local = local_family_files(req.plan, req.installer) if not files else {}
        text, steps = _commands(
            req.installer, staging, req.plan, req.plan.variant_index, hashes,
            files, deps, reinstall, {name: path for name, (path, _) in local.items()},
        )  # fmt: skip
        shown, pinned = _as_shown(steps, text, hashes, staging.work, target.path)
        req = replace(req, pinned=pinned)
        if dry_run:
            return _outcome(req, True, "dry run: nothing was created or changed", shown, dry=True)
        hashes.write_text(text)
        failure, report = _run_staged(req, staging, steps, shown, local=local, verify=verify,
                                     env=env, echo=echo)  # fmt: skip
    if failure is not None:
        return failure
    return _outcome(req, True, f"installed into {target.path}", shown, report=report)


def _run_staged(
    req: _Request,
    staging: envs.Staging,
    steps: Sequence[tuple[str, ...]],
    shown: tuple[tuple[str, ...], ...],
    *,
    local: Mapping[str, tuple[Path, str]],
    verify: bool,
    env: Mapping[str, str],
    echo: bool,
) -> tuple[InstallResult | None, Any]:
    """Run the installer into ``staging``, verify there and commit: ``(None, the verify
    report)``, or the failed result when the installer or verify failed, everything
    undone by leaving the staging block without the commit (an error and Ctrl-C too).
    ``local`` files are hash-checked while the installer runs."""
    with staging:
        failed = run_installer(steps, local, staging, env, echo)
        if failed is not None:
            return _outcome(req, False, failed, shown), None
        report = None
        if verify:
            report, failed = _verify_staged(req, staging, env)
            if failed is not None:
                said = f"verification failed ({failed}); everything was undone"
                return _outcome(req, False, said, shown, report=report), report
        staging.commit()
    return None, report


def _as_shown(
    steps: Sequence[Sequence[str]], text: str, hashes: Path, work: Path, path: Path
) -> tuple[tuple[tuple[str, ...], ...], tuple[str, str] | None]:
    """The commands, and the requirements file they read (``None`` when none does), as
    the user should read them: the final path, and no credentials."""
    shown = tuple(
        tuple(redact(a) if "://" in a else a.replace(str(work), str(path)) for a in map(str, c))
        for c in steps
    )
    if not any(str(hashes) in c for c in shown):
        return shown, None
    lines = (redact(line) if "://" in line else line for line in text.splitlines())
    return shown, (str(hashes), "\n".join(lines) + "\n")


def _verify_staged(
    req: _Request, staging: envs.Staging, env: Mapping[str, str]
) -> tuple[Any, str | None]:
    """Run torch in the staged environment: the report, shown at the target's path, and
    what failed (``None`` when nothing did)."""
    from torchup.check.verify import verify as run_verify

    report = run_verify(str(staging.python), accelerator=req.plan.accelerator, env=env)
    # as the user should read it: the target's path, not the staging one;
    # after a forced failure the plan's alternatives are the fix
    report = _relocated(report, staging.work, req.target.path, fixes=not req.forced)
    if report.ok:
        return report, None
    failed = "; ".join(f"{c.id}: {c.detail}" for c in report.checks if c.status == "fail")
    failed += why_forced_failed(req.forced, req.plan.python)
    if req.forced and req.failed is not None:  # a forced install always has the failed plan
        failed += instead(req.failed)
    return report, failed


def _commands(  # noqa: PLR0917 (private, called once)
    choice: InstallerChoice,
    staging: envs.Staging,
    result: Plan,
    variant_index: str | None,
    hashes: Path,
    files: Mapping[str, Path],
    dependencies: Sequence[str],
    reinstall: bool,
    checked: Mapping[str, Path],
) -> tuple[str, list[tuple[str, ...]]]:
    """The hash-pinned requirements text and the commands to run, in order."""
    target = staging.target
    create = _create_step(choice, staging, result.python.executable)
    steps = [create] if create else []
    python = str(staging.python)
    first, second, text = install_commands(
        choice,
        python,
        result.packages,
        checked=checked,
        sources=result.sources,
        variant_index=variant_index,
        hashes_file=hashes,
        extras=_extras(result.requirements),
        break_system_packages=target.kind == "system" and result.python.externally_managed,
        files=files,
        dependencies=dependencies,
        reinstall=reinstall,
    )
    return text, [*steps, first, *([second] if second else [])]


def _create_step(
    choice: InstallerChoice, staging: envs.Staging, base: str
) -> tuple[str, ...] | None:
    """The command that creates a new venv from ``base`` at the staged path (``None``
    when the target exists): built at a hidden sibling, so the prompt is named for the
    final folder."""
    target = staging.target
    if target.kind != "venv" or target.exists:
        return None
    prompt = f"--prompt={target.path.name}"  # one token: a name may start with -
    if choice.name == "uv":
        assert choice.uv is not None
        return (choice.uv, "venv", "--quiet", prompt, "--python", base, str(staging.work))
    return (base, "-m", "venv", prompt, str(staging.work))


def _relocated(report: Any, old: Path, new: Path, *, fixes: bool) -> Any:
    """``report`` with the staging prefix ``old`` shown as the target's ``new``."""

    def moved(text: str | None) -> str | None:
        return None if text is None else text.replace(str(old), str(new))

    checks = tuple(
        replace(c, detail=moved(c.detail) or "", fix=moved(c.fix) if fixes else None)
        for c in report.checks
    )
    return replace(report, python=moved(report.python), checks=checks)


def apply_fix(
    fix: Fix,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    echo: bool = False,
) -> InstallResult:
    """Apply a fix that :func:`torchup.doctor` found, with :func:`install` (all or
    nothing: a failed install or verification leaves the environment as it was). Raises
    :class:`UsageError` for a fix that is advice only."""
    if not fix.automatic or fix.install is None:
        raise UsageError(
            f"{fix.command!r} is advice torchup does not apply itself",
            hint="run it yourself if it is what you want",
        )
    kwargs = dict(fix.install)
    requirements = kwargs.pop("requirements")
    return install(requirements, env=env, cwd=cwd, echo=echo, **kwargs)
