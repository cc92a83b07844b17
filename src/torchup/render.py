"""Human-readable text for plans and interpreter lists (the CLI prints what this returns)."""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Sequence

from .interpreters import Interpreter
from .pages import redact
from .plan import Plan
from .resolve import Outcome, Rejection

__all__ = ["render_plan", "render_pythons"]

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
    listed = [src.torch_index_url] if plan.backend.variant else []
    listed += [*src.index_urls(), *src.find_links]
    read = [f"{redact(s.url)} ({s.origin})" for s in listed]
    out.append("sources  " + ("\n         ".join(read) if read else "(none)"))
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
