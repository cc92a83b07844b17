"""The checks of ``torchup doctor``: plain facts in, one :class:`Finding` each. Pure.

Each check returns a stable id, a status, a one-line summary, the evidence, and the
command that fixes it (see :data:`CHECKS`). The GPU checks reuse
:mod:`torchup.verify` (``hardware_checks``, ``companion_check``, ``hiding``) and the
cited tables of :mod:`torchup.choose.variants` (driver floors, architecture lists).
:func:`run_checks` runs them all; :mod:`torchup.check.doctor_fixes` turns what did not pass
into :class:`Fix` values: one reinstall through ``torchup install`` for everything a
reinstall mends, and advice for the rest.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence

from packaging.tags import parse_tag
from packaging.version import Version

from torchup.check.doctor_facts import (
    Command,
    Dist,
    Facts,
    Finding,
    Fix,
    SiteFacts,
    TorchBuild,
    import_status,
    is_under,
    parse_version,
    python_support,
    same_path,
    torch_build,
)
from torchup.check.doctor_fixes import fix_commands, install_plans, plan_fixes, runnable_build
from torchup.check.verify import (
    SeenDevice,
    Status,
    companion_check,
    hardware_checks,
    hiding,
    variant_of,
)

__all__ = ["CHECKS", "CUDA_LIBRARY", "ordered", "run_checks"]

#: Every check, in the order of the issue that defined them (the JSON order).
CHECKS = (
    "pip-mismatch",
    "torch-missing",
    "torch-import",
    "python-unsupported",
    "cpu-build-on-gpu",
    "driver-too-old",
    "arch-unsupported",
    "companion-mismatch",
    "multiple-torch",
    "shadowed-import",
    "user-site",
    "gpu-hidden",
    "library-path",
    "externally-managed",
)
_SEVERITY = {"fail": 0, "warn": 1, "pass": 2}
_COMPANIONS = ("torchvision", "torchaudio")

#: What an import error means, by the text torch or the dynamic loader prints.
_COMPANION_SIGNS = (
    ("does not exist", "its C++ operators do not register with this torch: it was built "
     "for another torch version or variant"),
    ("libc10_cuda.so", "it was built for a CUDA torch, and this torch has no CUDA libraries"),
    ("libtorch_cuda.so", "it was built for a CUDA torch, and this torch has no CUDA libraries"),
    ("undefined symbol", "it was built against another torch's C++ ABI"),
)  # fmt: skip
_TORCH_SIGNS = (
    ("Failed to load PyTorch C extensions", "its compiled core (torch._C) does not load "
     "in this Python (built for another Python? see python-unsupported)"),
    ("No module named 'torch._C'", "its compiled core does not load in this Python "
     "(built for another Python? see python-unsupported)"),
    ("did not finish within", "importing torch hangs"),
    ("died of", "importing torch crashes the interpreter"),
)  # fmt: skip
CUDA_LIBRARY = re.compile(
    r"^lib(cudart|cudnn|cublas|cublasLt|cufft|curand|cusolver|cusparse|nccl|nvrtc|nvJitLink"
    r"|cupti)\.so\.([0-9]+)"
)


def _finding(
    check_id: str,
    status: Status,
    summary: str,
    evidence: Sequence[str] = (),
    fix: str | None = None,
) -> Finding:
    return Finding(
        id=check_id,
        status=status,
        summary=summary,
        evidence=tuple(evidence),
        fix=fix if status != "pass" else None,
    )


def check_pip_mismatch(commands: Sequence[Command]) -> Finding:
    """``pip`` on PATH installs into another Python than the one ``python`` or
    ``python3`` runs (or ``pip3`` than ``python3``): what pip installs, python cannot
    import."""
    by = {c.name: c for c in commands if c.path}
    evidence: list[str] = []
    wrong: list[tuple[Command, Command]] = []
    unknown: list[str] = []
    for pip_name, python_name in (("pip", "python"), ("pip", "python3"), ("pip3", "python3")):
        pip, python = by.get(pip_name), by.get(python_name)
        if pip is None or python is None:
            continue
        for c in (pip, python):
            line = f"{c.name} on PATH: {c.path} -> " + (c.error or f"{c.owner()}, by {c.how}")
            if line not in evidence:
                evidence.append(line)
        if pip.error or python.error or not python.prefix or not (pip.prefix or pip.location):
            unknown.append(f"{pip_name} and {python_name}")
        elif not (
            same_path(pip.prefix, python.prefix)
            if pip.prefix
            else is_under(pip.location or "", python.prefix)
        ):
            wrong.append((pip, python))
    if wrong:
        pip, python = wrong[0]
        summary = (
            f"`{pip.name}` installs into {pip.owner()}, but `{python.name}` is "
            f"{python.owner()}: what {pip.name} installs, {python.name} cannot import"
        )
        # no command fixes a PATH: what helps is never typing a bare pip (`python -m
        # pip` is always that python's own), or putting the right bin folder first
        evidence.append(
            f"use `{python.name} -m pip` instead of `{pip.name}` (it is always "
            f"{python.name}'s own pip), or put {os.path.dirname(python.path or '')} before "
            f"{os.path.dirname(pip.path or '')} on PATH (then `hash -r`)"
        )
        return _finding("pip-mismatch", "fail", summary, evidence)
    if unknown:
        summary = "cannot tell which Python " + ", ".join(unknown) + " on PATH belong to"
        return _finding("pip-mismatch", "warn", summary, evidence)
    if not evidence:
        return _finding("pip-mismatch", "pass", "no pip and python pair on PATH to compare")
    summary = "pip and python on PATH belong to the same Python"
    return _finding("pip-mismatch", "pass", summary, evidence)


def check_torch_missing(facts: Facts, fix: str) -> Finding:
    """torch is not importable here; which other Pythons on the machine have it."""
    status, detail = import_status(facts.report)
    dists = facts.site.family("torch")
    if status == "pass" and dists:
        return _finding(
            "torch-missing", "pass", f"torch {dists[0].version} is installed and imports"
        )
    if status == "pass":
        return _finding("torch-missing", "pass", "torch imports, with no installed metadata")
    if dists:
        said = "its import fails (see torch-import)" if status == "fail" else "not imported"
        return _finding("torch-missing", "pass", f"torch {dists[0].version} is installed; {said}")
    py = facts.python
    evidence = [f"no torch distribution on the sys.path of {py.executable}"]
    if status == "fail":
        evidence.append(f"import torch: {detail}")
    for exe, version, torch in facts.others or ():
        evidence.append(f"torch {torch} is installed for Python {version}: {exe}")
    if facts.others == ():
        evidence.append("none of the other Pythons torchup finds (`torchup pythons`) has torch")
    summary = f"torch is not installed for Python {py.version} ({py.executable})"
    return _finding("torch-missing", "fail", summary, evidence, fix)


def check_torch_import(facts: Facts, fix: str) -> Finding:
    """torch is installed, but ``import torch`` fails, crashes or hangs."""
    status, detail = import_status(facts.report)
    dists = facts.site.family("torch")
    if not dists and status != "pass":
        return _finding("torch-import", "pass", "torch is not installed (see torch-missing)")
    if status == "not-run":
        return _finding("torch-import", "warn", f"import torch not tried: {facts.import_skipped}")
    if status == "pass":
        checks = facts.report.checks if facts.report is not None else ()
        devices = next((c for c in checks if c.id == "devices" and c.status == "fail"), None)
        if devices is not None:
            summary = "torch imports, but asking it for its devices fails"
            return _finding("torch-import", "warn", summary, [devices.detail], fix)
        said = [detail] if detail != _plain(detail) else []
        return _finding("torch-import", "pass", f"import torch works: {_plain(detail)}", said)
    meaning = next((m for sign, m in _TORCH_SIGNS if sign in detail), None)
    summary = f"torch {dists[0].version if dists else ''} is installed, but import torch fails"
    summary += f": {meaning}" if meaning else ""
    return _finding("torch-import", "fail", summary, [f"import torch: {detail}"], fix)


def check_python_unsupported(facts: Facts, fix: str) -> Finding:
    """The installed torch was built for another Python (its WHEEL tags), or no torch
    release supports this Python at all."""
    py = facts.python
    dists = facts.site.family("torch")
    dist = dists[0] if dists else None
    if dist is not None and not (dist.tags and py.tags):
        summary = f"torch {dist.version} has no WHEEL tags to compare (conda or source install)"
        return _finding("python-unsupported", "pass", summary)
    if dist is not None:
        accepted = set(py.tags)
        built = [str(tag) for text in dist.tags for tag in parse_tag(text)]
        fits = next((tag for tag in built if tag in accepted), None)
        if fits is not None:
            summary = f"torch {dist.version} is built for this Python ({fits})"
            return _finding("python-unsupported", "pass", summary)
        evidence = [
            f"{dist.path}/WHEEL: Tag: {', '.join(dist.tags)}",
            f"Python {py.version} at {py.executable} accepts {py.tags[0]} and "
            f"{len(py.tags) - 1} other tags, none of these",
        ]
        summary = f"torch {dist.version} was built for another Python, not Python {py.version}"
        return _finding("python-unsupported", "fail", summary, evidence, fix)
    status, summary = python_support(py.version, py.implementation, py.free_threaded)
    evidence = [
        f"Python {py.version} ({py.implementation}) at {py.executable}",
        "`torchup install torch` without --python uses the newest Python on this machine "
        "that torch supports",
    ]
    return _finding("python-unsupported", status, summary, evidence, "torchup install torch")


def check_cpu_build_on_gpu(facts: Facts, tb: TorchBuild | None, fix: str) -> Finding:
    """A CPU build (or another vendor's GPU build) while a usable GPU is present."""
    accel = facts.accelerator
    if tb is None:
        return _finding("cpu-build-on-gpu", "pass", "torch is not installed")
    verdict = hardware_checks(tb.build, _devices(facts), accel, python=facts.python.executable)
    evidence = [tb.line(), f"detection: {accel.describe()}"]
    if verdict and verdict[0].id in ("cpu-build-on-gpu", "gpu-build-mismatch"):
        return _finding("cpu-build-on-gpu", "fail", verdict[0].detail, evidence, fix)
    summary = f"a {tb.describe()} build; detection found {accel.describe()}"
    return _finding("cpu-build-on-gpu", "pass", summary, evidence)


def check_driver_too_old(facts: Facts, tb: TorchBuild | None, fix: str) -> Finding:
    """The CUDA build needs a newer NVIDIA driver than the one installed (names both)."""
    from torchup.choose.variants import driver_floors

    accel = facts.accelerator
    if tb is None or tb.kind != "cuda" or accel.kind != "cuda":
        return _finding("driver-too-old", "pass", "no CUDA torch on an NVIDIA machine to compare")
    variant = variant_of(None, tb.build) or "unknown CUDA"
    floors = driver_floors(variant, accel.system)
    driver = parse_version(accel.driver)
    if floors is None or floors.strict is None or driver is None:
        said = f"driver {accel.driver or 'unknown'}, {variant}"
        return _finding("driver-too-old", "pass", f"not compared ({said} not in torchup's table)")
    evidence = [
        tb.line(),
        f"NVIDIA's minimum driver for CUDA {floors.cuda} is {floors.strict}, {floors.minor} "
        f"through minor-version compatibility ({floors.source})",
        f"this machine's driver: {accel.driver} ({accel.driver_source})",
    ]
    if tb.build.get("device_warnings"):
        evidence.append(f"torch warned: {tb.build['device_warnings']}")
    if driver >= Version(floors.strict):
        summary = f"driver {accel.driver} runs CUDA {floors.cuda} (needs {floors.strict})"
        return _finding("driver-too-old", "pass", summary, evidence)
    evidence.append(f"or upgrade the NVIDIA driver to {floors.strict} or newer")
    if floors.minor and driver >= Version(floors.minor):
        summary = (
            f"torch {tb.version} needs NVIDIA driver {floors.strict} for CUDA {floors.cuda}; "
            f"driver {accel.driver} runs it only through minor-version compatibility "
            "(PTX JIT compilation and some libraries fail)"
        )
        return _finding("driver-too-old", "warn", summary, evidence, fix)
    summary = (
        f"torch {tb.version} needs NVIDIA driver {floors.strict} or newer (CUDA "
        f"{floors.cuda}); this machine has {accel.driver}"
    )
    return _finding("driver-too-old", "fail", summary, evidence, fix)


def check_arch_unsupported(facts: Facts, tb: TorchBuild | None, fix: str) -> Finding:
    """The build has no kernels for a GPU that is present ("no kernel image is
    available"), with the variant or torch release that has them."""
    from torchup.choose.variants import arch_list, rocm_archs, runs_on

    accel = facts.accelerator
    gpus = [g for g in accel.gpus if g.arch]
    if tb is None or tb.kind not in ("cuda", "rocm") or accel.kind != tb.kind or not gpus:
        return _finding("arch-unsupported", "pass", "no GPU build and GPU pair to compare")
    devices = _devices(facts)
    if tb.build.get("arch_list") and any(d.id != "cpu" for d in devices):
        # torch sees the GPUs: its own arch list is the authority
        verdict = hardware_checks(tb.build, devices, accel, python=facts.python.executable)
        arches = "torch.cuda.get_arch_list(): " + " ".join(tb.build["arch_list"])
        if verdict and verdict[0].id == "gpu-arch-unsupported":
            return _finding("arch-unsupported", "fail", verdict[0].detail, [tb.line(), arches], fix)
        return _finding("arch-unsupported", "pass", "torch has kernels for every GPU it sees")
    release, variant = tb.release, tb.variant or ""
    if tb.kind == "rocm":
        targets = rocm_archs(variant)
        listed = " ".join(targets) if targets else None
        missing = [g for g in gpus if targets is not None and g.arch not in targets]
        source = "torchup's ROCm table"
    else:
        table = arch_list(release, variant, facts.platform) if release else None
        listed = table.text if table else None
        missing = [g for g in gpus if table and not runs_on(table.entries, g.arch or "")]
        source = f"{table.source}; {table.confidence}" if table else ""
    if listed is None:
        summary = f"torch {tb.version}'s architectures are not in torchup's tables; not checked"
        return _finding("arch-unsupported", "pass", summary)
    evidence = [tb.line(), f"torch {release} {variant} has kernels for {listed} ({source})"]
    if not missing:
        names = ", ".join(f"{g.name} ({g.sm})" for g in gpus)
        return _finding("arch-unsupported", "pass", f"kernels for {names}", evidence)
    names = ", ".join(f"{g.name} ({g.sm})" for g in missing)
    evidence.append(f"detection: {accel.describe()}")
    better = runnable_build(facts, release, other_releases=True)
    if better:
        evidence.append(f"torch {better[0]} {better[1]} has kernels for {names}")
    summary = (
        f"torch {tb.version} has no kernels for {names}: GPU work fails with "
        "'no kernel image is available for execution on the device'"
    )
    return _finding("arch-unsupported", "fail", summary, evidence, fix)


def check_companion_mismatch(facts: Facts, tb: TorchBuild | None, fix: str) -> Finding:
    """torchvision/torchaudio built for another torch version or variant: their
    metadata pins and labels (:func:`torchup.check.verify.companion_check`), and their import."""
    site, report = facts.site, facts.report
    present = [(name, site.family(name)[0]) for name in _COMPANIONS if site.family(name)]
    if not present:
        summary = "neither torchvision nor torchaudio is installed"
        return _finding("companion-mismatch", "pass", summary)
    if tb is None or tb.version is None:
        return _finding("companion-mismatch", "pass", "torch is not installed (see torch-missing)")
    checks = {c.id: c for c in report.checks} if report is not None else {}
    worst: Status = "pass"
    summaries: list[str] = []
    evidence: list[str] = []
    for name, dist in present:
        written = dist.version_py.get("__version__")
        said = {"dist_version": dist.version, "requires": list(dist.requires)}
        pairing = companion_check(
            name, {**said, "module_version": written}, tb.version, tb.build, python=""
        )
        pins = [r for r in dist.requires if re.match(r"^torch(?![-_.a-z0-9])", r)]
        line = f"{dist.path}: Version {dist.version}, Requires-Dist {', '.join(pins) or 'none'}"
        evidence.append(line + (f"; version.py: {written}" if written != dist.version else ""))
        status, summary = pairing.status, pairing.detail
        for check_id in (f"import-{name}", f"{name}-nms:cpu"):
            check = checks.get(check_id)
            if check is None or check.status != "fail":
                continue
            evidence.append(f"{check_id}: {check.detail}")
            meaning = next((m for sign, m in _COMPANION_SIGNS if sign in check.detail), None)
            if meaning:
                evidence.append(f"so {name}: {meaning}")
            if status == "fail":
                summary += f"; {check_id.replace('-', ' ', 1)} fails: {_plain(check.detail)}"
            else:
                summary = f"{name} {dist.version} does not work with torch {tb.version}: "
                summary += meaning or _plain(check.detail)
            status = "fail"
        if status != "pass":
            summaries.append(summary)
        worst = status if _SEVERITY[status] < _SEVERITY[worst] else worst
    if worst == "pass":
        names = ", ".join(f"{n} {d.version}" for n, d in present)
        return _finding("companion-mismatch", "pass", f"{names} fit torch {tb.version}", evidence)
    return _finding("companion-mismatch", worst, "; ".join(summaries), evidence, fix)


def check_multiple_torch(facts: Facts, reinstall: str) -> Finding:
    """More than one torch distribution, or leftover files, on ``sys.path``."""
    site = facts.site
    dists = [d for d in site.family("torch") if not site.in_user_site(d)]
    evidence = [f"{d.path} (torch {d.version})" for d in dists]
    evidence += [f"{path}: {why}" for path, why in site.leftovers]
    if len(dists) > 1:
        if len({d.dir for d in dists}) == 1:
            # Two metadata folders and one torch/ folder: the one version.py names is live.
            live = next((d for d in dists if d.version == d.version_py.get("__version__")), None)
            live = live or dists[0]
            stale = [d.path for d in dists if d is not live] + [p for p, _ in site.leftovers]
            evidence.append(f"torch/version.py says {live.version}: the other metadata is stale")
            fix = shlex.join(["rm", "-rf", *stale])
        else:
            prefix = facts.python.prefix or ""
            stray = [d for d in dists if prefix and not is_under(d.dir, prefix)]
            if stray and len(stray) < len(dists):
                # the env's own torch stays; pip will not uninstall one outside the env
                # ("outside environment"), so the stray one's folders go by name
                for d in stray:
                    evidence.append(
                        f"{d.dir} is outside this environment ({prefix}): on sys.path by a "
                        ".pth file or PYTHONPATH"
                    )
                paths = [p for d in stray for p in (os.path.join(d.dir, "torch"), d.path)]
                fix = shlex.join(["rm", "-rf", *dict.fromkeys(paths)])
            else:
                uninstall = f"{shlex.quote(facts.python.executable)} -m pip uninstall -y torch"
                fix = " && ".join([uninstall] * len(dists) + [reinstall])
        versions = ", ".join(str(d.version) for d in dists)
        summary = (
            f"{len(dists)} torch distributions on sys.path ({versions}): pip and import torch "
            "may each see a different one"
        )
        return _finding("multiple-torch", "fail", summary, evidence, fix)
    if site.leftovers:
        fix = shlex.join(["rm", "-rf", *(path for path, _ in site.leftovers)])
        summary = "leftovers of an interrupted install or uninstall next to torch"
        return _finding("multiple-torch", "warn", summary, evidence, fix)
    if dists:
        return _finding("multiple-torch", "pass", f"one torch distribution: {dists[0].path}")
    return _finding("multiple-torch", "pass", "no torch distribution outside the user site")


def check_shadowed_import(facts: Facts) -> Finding:
    """A ``torch.py`` or ``torch/`` package in the working directory or on PYTHONPATH
    that ``import torch`` finds before the real package."""
    site = facts.site
    if not site.shadows:
        places = [f"the working directory ({facts.cwd})"]
        places += [f"PYTHONPATH entry {p}" for p in facts.pythonpath]
        return _finding("shadowed-import", "pass", "no torch.py or torch/ in " + ", ".join(places))
    evidence = []
    for path, where, metadata in site.shadows:
        line = f"{path} (in {where})"
        if metadata:
            line += f"; a torch installed outside this Python ({', '.join(metadata)})"
        evidence.append(line)
    if site.resolves:
        real = site.resolves_here or "nothing: torch is not installed here"
        evidence.append(f"import torch loads {site.resolves}, not {real}")
    path, where, _ = site.shadows[0]
    if where == "PYTHONPATH":
        rest = [p for p in facts.pythonpath if not is_under(path, p)]
        fix = (
            f"export PYTHONPATH={shlex.quote(os.pathsep.join(rest))}"
            if rest
            else "unset PYTHONPATH"
        )
    elif path.endswith(".py"):
        fix = shlex.join(["mv", path, os.path.join(os.path.dirname(path), "my_torch.py")])
    else:
        evidence.append(
            f"run Python outside {os.path.dirname(path)}: its torch/ package (a PyTorch source "
            "checkout?) is imported instead of the installed one"
        )
        fix = 'cd "$HOME"'
    summary = f"{path} hides the real torch: import torch loads it (from {where})"
    return _finding("shadowed-import", "fail", summary, evidence, fix)


def check_user_site(facts: Facts) -> Finding:
    """torch installed in the user site (``~/.local``) leaking into a venv or a
    system Python, or hiding the torch installed in it."""
    site = facts.site
    family = ("torch", *_COMPANIONS)
    mine = [d for d in site.dists if d.name in family and site.in_user_site(d)]
    mine += [d for d in site.user_site_dists if d.name in family]
    if not mine:
        return _finding("user-site", "pass", f"no torch in the user site ({site.user_site})")
    names = ", ".join(f"{d.name} {d.version}" for d in mine)
    evidence = [d.path for d in mine]
    if not site.user_site_enabled:
        summary = (
            f"{names} in the user site is not read by this Python (a venv without system "
            "site packages, or PYTHONNOUSERSITE)"
        )
        return _finding("user-site", "pass", summary, evidence)
    evidence.append("or export PYTHONNOUSERSITE=1 to make Python ignore the user site")
    fix = _user_site_fix(site, mine)
    others = [d for d in site.family("torch") if not site.in_user_site(d)]
    here = site.resolves_here or ""
    if others and here and not is_under(here, site.user_site or ""):
        # a venv reads its own site-packages first: the user site's torch is never the
        # one imported here, but pip (and other Pythons of this version) still see it
        evidence.append(f"import torch loads {here}")
        summary = (
            f"{names} in the user site {site.user_site} is shadowed here by "
            f"{others[0].path} (torch {others[0].version}); other Pythons of this "
            "version still import it"
        )
        return _finding("user-site", "warn", summary, evidence, fix)
    evidence.append(f"this Python reads the user site {site.user_site} before its site-packages")
    if others:
        evidence.append(f"it hides {others[0].path} (torch {others[0].version})")
        summary = f"{names} in the user site hides the torch installed in this Python"
        return _finding("user-site", "fail", summary, evidence, fix)
    if site.in_venv:
        summary = f"{names} from the user site {site.user_site} leaks into this venv"
        return _finding("user-site", "fail", summary, evidence, fix)
    summary = (
        f"{names} is installed in the user site {site.user_site}: every Python of this "
        "version run by this user, and venvs made with --system-site-packages, get it"
    )
    return _finding("user-site", "warn", summary, evidence, fix)


def _user_site_fix(site: SiteFacts, dists: Sequence[Dist]) -> str:
    """Remove ``dists`` from the user site: the base Python's pip (a venv's own refuses
    "outside environment"), else, where the base is unknown (a venv of Python 3.6 or
    3.7 has no ``sys._base_executable``), their folders."""
    names = " ".join(dict.fromkeys(d.name for d in dists))
    base = site.base_executable or (None if site.in_venv else site.executable)
    if base is not None:
        return f"{shlex.quote(base)} -m pip uninstall -y {names}"
    paths = [p for d in dists for p in (os.path.join(d.dir, d.name), d.path)]
    return shlex.join(["rm", "-rf", *dict.fromkeys(paths)])


def check_gpu_hidden(facts: Facts, tb: TorchBuild | None) -> Finding:
    """``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES`` hide every GPU."""
    accel = facts.accelerator
    hidden = hiding(accel)
    shown = ", ".join(f"{k}={v!r}" for k, v in accel.visible_devices)
    if not hidden:
        summary = "no visibility variable hides the GPUs" + (f" ({shown})" if shown else "")
        return _finding("gpu-hidden", "pass", summary)
    if not accel.gpus:
        return _finding("gpu-hidden", "pass", f"{shown} would hide GPUs, but none was found")
    evidence = [f"{key}={value!r}" for key, value in hidden] + [f"detection: {accel.describe()}"]
    uses = tb is not None and tb.kind == accel.kind
    who = f"torch's {tb.describe()} build" if tb is not None and uses else "PyTorch"
    summary = f"{hidden[0][0]}={hidden[0][1]!r} hides every GPU: {who} sees none"
    fix = "unset " + " ".join(key for key, _ in hidden)
    return _finding("gpu-hidden", "fail" if uses else "warn", summary, evidence, fix)


def check_library_path(facts: Facts, tb: TorchBuild | None) -> Finding:
    """``LD_LIBRARY_PATH`` puts a system CUDA/cuDNN in front of the wheels' own."""
    if not facts.ld_library_path:
        return _finding("library-path", "pass", "LD_LIBRARY_PATH is not set")
    found = [(d, libs) for d, libs in facts.library_dirs if libs]
    if not found:
        return _finding("library-path", "pass", "LD_LIBRARY_PATH has no CUDA or cuDNN library")
    evidence = [f"LD_LIBRARY_PATH entry {d}: {', '.join(libs)}" for d, libs in found]
    if tb is None or tb.kind != "cuda":
        what = "not installed" if tb is None else f"a {tb.describe()} build"
        summary = f"torch is {what}; it does not load the CUDA libraries on LD_LIBRARY_PATH"
        return _finding("library-path", "pass", summary, evidence)
    wants = _built_with(tb, facts.site)
    wheels = [f"{d.name} {d.version}" for d in facts.site.dists if d.name.startswith("nvidia-")]
    built = ", ".join(f"{k} {v}" for k, v in sorted(wants.items()))
    evidence.append(f"torch {tb.version} is built with {built}; its own copies: " + (
        ", ".join(wheels) or "in torch/lib"
    ))  # fmt: skip
    clashes = []
    for directory, libs in found:
        for lib in libs:
            match = CUDA_LIBRARY.match(lib)
            family = "cudnn" if match and match.group(1) == "cudnn" else "cuda"
            if match and family in wants and wants[family] != match.group(2):
                clashes.append(f"{directory}/{lib} (torch needs {family} {wants[family]})")
    keep = [d for d in facts.ld_library_path.split(os.pathsep) if d and d not in dict(found)]
    fix = f"export LD_LIBRARY_PATH={shlex.quote(os.pathsep.join(keep))}" if keep else None
    fix = fix or "unset LD_LIBRARY_PATH"
    if clashes:
        summary = (
            "LD_LIBRARY_PATH puts another CUDA/cuDNN in front of the one torch is built "
            "with: " + "; ".join(clashes)
        )
        return _finding("library-path", "fail", summary, evidence, fix)
    summary = (
        "LD_LIBRARY_PATH has CUDA libraries of the same major version, loaded before "
        "torch's own; another minor release can break it ('undefined symbol')"
    )
    return _finding("library-path", "warn", summary, evidence, fix)


def check_externally_managed(facts: Facts) -> Finding:
    """Installing into this Python needs a venv (PEP 668)."""
    py = facts.python
    if not py.externally_managed:
        kind = "a venv" if py.kind == "venv" else f"a {py.kind} Python"
        return _finding("externally-managed", "pass", f"{kind}, not externally managed")
    summary = (
        f"Python {py.version} at {py.executable} is externally managed (PEP 668): pip "
        "refuses to install into it, so torch goes into a venv"
    )
    evidence = [
        "its standard library holds an EXTERNALLY-MANAGED file and it is not a venv",
        "torchup install creates ./.venv from it and installs there",
    ]
    fix = shlex.join(["torchup", "install", "torch", "--python", py.executable])
    return _finding("externally-managed", "warn", summary, evidence, fix)


# --- wiring ---------------------------------------------------------------------------


def run_checks(facts: Facts) -> tuple[list[Finding], list[Fix]]:
    """Every check in :data:`CHECKS` order, and the fixes for what is not passing."""
    tb = torch_build(facts.site, facts.report)
    installs = install_plans(facts, tb)
    command = fix_commands(installs, facts)
    findings = [
        check_pip_mismatch(facts.commands),
        check_torch_missing(facts, command["torch-missing"]),
        check_torch_import(facts, command["torch-import"]),
        check_python_unsupported(facts, command["python-unsupported"]),
        check_cpu_build_on_gpu(facts, tb, command["cpu-build-on-gpu"]),
        check_driver_too_old(facts, tb, command["driver-too-old"]),
        check_arch_unsupported(facts, tb, command["arch-unsupported"]),
        check_companion_mismatch(facts, tb, command["companion-mismatch"]),
        check_multiple_torch(facts, command["torch-import"]),
        check_shadowed_import(facts),
        check_user_site(facts),
        check_gpu_hidden(facts, tb),
        check_library_path(facts, tb),
        check_externally_managed(facts),
    ]
    return findings, plan_fixes(findings, facts, installs)


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """Most severe first; the check order within a status."""
    return sorted(findings, key=lambda f: (_SEVERITY[f.status], CHECKS.index(f.id)))


def _plain(detail: str) -> str:
    """A probe check's detail without the warnings it caught (kept in the evidence)."""
    return detail.partition(" (warned: ")[0]


def _devices(facts: Facts) -> list[SeenDevice]:
    return list(facts.report.devices) if facts.report is not None else []


def _built_with(tb: TorchBuild, site: SiteFacts) -> dict[str, str]:
    """The CUDA and cuDNN major versions torch is built with (cuDNN 9.1.0 is 90100)."""
    out: dict[str, str] = {}
    if tb.build.get("cuda"):
        out["cuda"] = str(tb.build["cuda"]).split(".")[0]
    cudnn = tb.build.get("cudnn")
    wheel = next((d for d in site.dists if d.name.startswith("nvidia-cudnn")), None)
    if isinstance(cudnn, int) and cudnn > 0:
        out["cudnn"] = str(cudnn // 10000 if cudnn >= 10000 else cudnn // 1000)
    elif wheel is not None and wheel.version:
        out["cudnn"] = wheel.version.split(".")[0]
    return out
