"""Human-readable text for plans and interpreter lists (the CLI prints what this returns)."""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torchup.choose.plan import Plan
from torchup.choose.resolve import Outcome, Rejection
from torchup.index.pages import redact
from torchup.interpreters.discover import Interpreter

__all__ = [
    "render_accelerator",
    "render_doctor",
    "render_install",
    "render_plan",
    "render_pythons",
    "render_verify",
]

if TYPE_CHECKING:
    from torchup.check.doctor import DoctorReport
    from torchup.check.verify import VerifyReport
    from torchup.envs.installing import InstallResult
    from torchup.hardware.accelerators import Accelerator

_EXAMPLES = 2


def _python_line(py: Interpreter) -> str:
    flavour = f"{py.implementation} {py.architecture}".strip()
    ft = " free-threaded" if py.free_threaded else ""
    return f"{py.version} {flavour}{ft}  {py.executable}  ({py.kind}, found via {py.source})"


def _group(rejected: Sequence[Rejection]) -> list[str]:
    by_reason: dict[str, list[str]] = defaultdict(list)
    for r in rejected:
        by_reason[r.reason].append(r.filename)
    lines = []
    for reason, files in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = ", ".join(files[:_EXAMPLES]) + (", ..." if len(files) > _EXAMPLES else "")
        count = f"{len(files)} file" + ("s" if len(files) != 1 else "")
        lines.append(f"      {reason}  [{count}: {shown}]")
    return lines


def _problem_lines(problem: Outcome) -> list[str]:
    lines = [f"  {problem.requirement}: {problem.message}"]
    if problem.rejected:
        lines.append("    files considered, and why they do not fit:")
        lines += _group(problem.rejected)
    return lines


def render_plan(plan: Plan) -> str:
    """The plan (or the explanation) as text, one fact per line."""
    out = [
        f"python   {_python_line(plan.python)}",
        f"backend  {plan.backend.name}  ({plan.backend.source})",
    ]
    src = plan.sources
    listed = [src.torch_index_url] if plan.backend.name != "pypi" else []
    listed += [*src.index_urls(), *src.find_links]
    read = [f"{redact(s.url)} ({s.origin})" for s in listed]
    out.append("sources  " + ("\n         ".join(read) if read else "(none)"))
    out.append("")
    if plan.verdicts:
        chosen = plan.backend.variant if plan.ok else None
        out.append(f"builds of torch {plan.release} on this hardware:")
        vwidth = max(len(v.variant) for v in plan.verdicts)
        for v in plan.verdicts:
            if v.ok and v.minor_compat:
                why = "runs only through CUDA minor-version compatibility"
            else:
                why = "runs" if v.ok else v.reason
            mark = "  <- chosen" if v.variant == chosen else ""
            out.append(f"  {v.variant:<{vwidth}}  {why}{mark}")
        out.append("")
    width = max((len(p.name) for p in plan.packages), default=0)
    for p in plan.packages:
        out.append(f"  {p.name:<{width}}  {p.version}  {p.filename}")
        pad = " " * (width + 4)
        out.append(f"{pad}from {p.index}")
        out.append(f"{pad}url {p.url}")
        out.append(f"{pad}sha256 {p.sha256 or '(not published by the index)'}")
        if p.paired_by:
            out.append(f"{pad}paired with torch by {p.paired_by}")
    if plan.ok:
        if plan.commands:  # none for a forced plan: pip would refuse its files
            out += ["", "install with:"] + [f"  {shlex.join(c)}" for c in plan.commands]
    else:
        out += ["nothing fits:"] if not plan.packages else ["", "nothing fits:"]
        for problem in plan.problems:
            out += _problem_lines(problem)
        if plan.alternative_versions:
            out.append(
                f"  nearest versions that fit Python {plan.python.version}: "
                + ", ".join(plan.alternative_versions)
            )
        if plan.alternative_pythons:
            out.append("  Pythons on this machine that can install the request:")
            for alt in plan.alternative_pythons:
                out.append(f"    {alt.version}: {shlex.join(alt.command)}")
        elif plan.problems and any(o.rejected for o in plan.problems):
            out.append("  no other Python on this machine can install the request either")
        if plan.build_script:
            out.append("  build it from source for this Python (hours, ~15-30 GB):")
            out.append(f"    {shlex.join(plan.build_script)}")
    return "\n".join(out)


def render_pythons(pythons: Sequence[Interpreter]) -> str:
    """A table of interpreters: version, kind, source, executable, and errors."""
    rows = []
    for py in pythons:
        if py.error:
            rows.append(("broken", "", py.source, py.executable, py.error))
            continue
        version = py.version + ("t" if py.free_threaded else "")
        note = "externally managed (PEP 668)" if py.externally_managed else ""
        rows.append((version, py.kind, py.source, py.executable, note))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(lines)


def render_accelerator(accel: Accelerator, backend: tuple[str, str] | None = None) -> str:
    """What detection found, each fact with its source, and every probe tried."""
    out = [f"accelerator  {accel.kind}  ({accel.source})"]
    if backend is not None and backend[0] != "auto":
        out.append(f"backend      {backend[0]} ({backend[1]}; plan uses it instead of detection)")
    if accel.kind == "cuda":
        out.append(
            f"driver       {accel.driver or 'unknown'}  ({accel.driver_source or 'not found'})"
        )
        if accel.cuda:
            out.append(f"cuda         {accel.cuda} (highest CUDA the driver supports)")
    if accel.kind == "rocm":
        out.append(f"rocm         {accel.rocm or 'unknown'}  ({accel.rocm_source or 'not found'})")
    for gpu in accel.gpus:
        memory = f"  {gpu.memory_mib} MiB" if gpu.memory_mib else ""
        out.append(f"gpu {gpu.index:<8} {gpu.name}  {gpu.sm}{memory}  ({gpu.source})")
    for key, value in accel.visible_devices:
        out.append(f"visible      {key}={value!r}")
    out.append("probes")
    for step in accel.steps:
        out.append(f"  {step.probe:<22} {'ok' if step.ok else 'no'}  {step.detail}")
    return "\n".join(out)


def render_verify(report: VerifyReport, *, quiet: bool = False) -> str:
    """One line per check (``quiet``: only those not passing): status, id, detail,
    time; then the fixes."""
    imported = any(c.id == "import-torch" and c.status == "pass" for c in report.checks)
    build = ", ".join(f"{k} {v}" for k, v in report.build.items() if v) or (
        "CPU" if imported else "not imported"
    )
    out = [f"python  {report.python}", f"torch   {report.torch or 'not importable'}  ({build})"]
    width = max((len(c.id) for c in report.checks), default=0)
    for c in report.checks:
        if quiet and c.status == "pass":
            continue
        took = f"  {c.seconds * 1000:.0f} ms" if c.seconds is not None else ""
        out.append(f"  {c.status:<4}  {c.id:<{width}}  {c.detail}{took}")
    fixes = [c.fix for c in report.checks if c.fix and c.status != "pass"]
    if fixes:
        out.append("fix:")
        out += [f"  {f}" for f in dict.fromkeys(fixes)]
    out.append("verified" if report.ok else "verification FAILED")
    return "\n".join(out)


def render_install(result: InstallResult) -> str:
    """The plan, the commands run (or that would run), the verification, and how to
    activate the environment."""
    t = result.target
    out = [f"target   {t.kind} {t.path}  ({t.source}{'' if t.exists else ', new'})"]
    out.append(f"via      {result.installer.name}  ({result.installer.source})")
    out.append(f"python   chosen as {result.python_source}")
    out.append(render_plan(result.plan))
    if result.commands:
        out.append("")
        out.append("would run:" if result.dry_run else "ran:")
        out += [f"  {shlex.join(c)}" for c in result.commands]
        if result.requirements_file is not None:
            path, text = result.requirements_file
            out.append(f"  with {path}:")
            out += [f"    {line}" for line in text.splitlines()]
    if result.verify is not None:
        out += ["", render_verify(result.verify)]
    out += ["", result.message]
    if result.ok and result.activation:
        out.append("once installed, activate it with:" if result.dry_run else "activate it with:")
        width = max(len(k) for k in result.activation)
        out += [f"  {k:<{width}}  {v}" for k, v in result.activation.items()]
    return "\n".join(out)


_ROW = 96  # the table's summary column is cut here; the details below have it whole


def render_doctor(report: DoctorReport, *, quiet: bool = False, verbose: bool = False) -> str:
    """A short table of every check, most severe first, then each problem's evidence and
    fix, then the fixes (``--fix`` applies the automatic one). ``quiet`` leaves out the
    passing checks, ``verbose`` adds their evidence."""
    py = report.python
    torch = report.torch or "not installed"
    if report.variant:
        torch += f" ({report.variant})"
    out = [
        f"python   {py.version}  {py.executable}  ({py.kind}, {py.source})",
        f"torch    {torch}" + (f"  {report.location}" if report.location else ""),
        f"machine  {report.accelerator.describe()}",
    ]
    from torchup.check.doctor_checks import ordered

    rows = [f for f in ordered(report.checks) if not quiet or f.status != "pass"]
    width = max((len(f.id) for f in rows), default=0)
    out += [""] if rows else []
    for f in rows:
        summary = f.summary if len(f.summary) <= _ROW else f.summary[: _ROW - 3] + "..."
        out.append(f"  {f.status:<4}  {f.id:<{width}}  {summary}")
    for f in ordered(report.checks):
        if f.status == "pass" and not (verbose and f.evidence):
            continue
        out += ["", f"{f.id} ({f.status}): {f.summary}"]
        out += [f"  {line}" for line in f.evidence]
        if f.fix:
            out.append(f"  fix: {f.fix}")
    automatic = [x for x in report.fixes if x.automatic]
    advice = [x for x in report.fixes if not x.automatic]
    if report.fixes:
        out += ["", "fixes:"]
    for x in automatic:
        out.append(f"  torchup doctor --fix runs: {x.command}")
        out.append(f"    (through torchup install, undone if it fails; mends {', '.join(x.mends)})")
    for x in advice:
        out.append(f"  run it yourself: {x.command}  ({', '.join(x.mends)})")
    counts = {s: sum(f.status == s for f in report.checks) for s in ("fail", "warn", "pass")}
    out += ["", f"{counts['fail']} failed, {counts['warn']} warned, {counts['pass']} passed"]
    return "\n".join(out)
