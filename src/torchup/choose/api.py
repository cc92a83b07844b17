"""The library's entry points: :func:`plan` and :func:`pythons`.

This is the edge that wires the stages together: it finds the interpreter, reads the
pip sources and the PyTorch index (concurrently, cached), then hands plain values to
the pure core (:mod:`~torchup.choose.compat`, :mod:`~torchup.choose.resolve`, :mod:`~torchup.plan`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from torchup.choose import companions
from torchup.choose.backends import Backend, requested_backend, resolve_backend, variant_rule
from torchup.choose.compat import Candidate
from torchup.choose.fallback import fallback_warning, pypi_fallback
from torchup.choose.family import (
    TORCH,
    HardwareChoice,
    kind_of,
    resolve_family,
    resolve_on_hardware,
)
from torchup.choose.localwheel import local_candidate, naming_the_files, split_local_wheels
from torchup.choose.names import near_family_name
from torchup.choose.plan import (
    AltPython,
    Plan,
    PypiFallback,
    build_plan,
    install_command,
    planned_package,
)
from torchup.choose.reading import (
    Gathered,
    candidates_of,
    gather_pages,
    hash_local_choices,
    index_client,
    sources_for,
)
from torchup.choose.resolve import MetadataLookup, Outcome, VariantRule
from torchup.errors import InterpreterError, TorchupError, UsageError
from torchup.index.pages import redact
from torchup.index.sources import Sources
from torchup.interpreters.discover import (
    Interpreter,
    default_interpreter,
    discover,
    is_version_spec,
    select,
)

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator
    from torchup.index.client import IndexClient

__all__ = ["parse_requirements", "plan", "pythons"]

log = logging.getLogger(__name__)


def parse_requirements(texts: Sequence[str], allow_names: Sequence[str] = ()) -> list[Requirement]:
    """Parse PEP 508 strings; raise :class:`UsageError` naming the bad one, or one whose
    name is a near miss of a PyTorch package (``troch``) unless ``allow_names`` has it.

    torch is added when only companions are asked for, since they are paired to it.
    """
    reqs: list[Requirement] = []
    for text in texts or ("torch",):
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise UsageError(
                f"invalid requirement {text!r}: {exc}",
                hint="write a PEP 508 requirement, e.g. 'torch==2.5.1' or 'torchvision>=0.20'",
            ) from None
        meant = near_family_name(req.name, allow_names)
        if meant is not None:
            raise UsageError(
                f"{req.name!r} is not a PyTorch package but looks like one: did you mean "
                f"{meant}? (a name a keystroke from a PyTorch package is how typosquatted "
                "packages get installed)",
                hint=f"ask for {meant}, or pass --allow-name {req.name} if you mean "
                f"{req.name!r} itself",
            )
        reqs.append(req)
    for r in reqs:
        if r.url:
            raise UsageError(
                f"{str(r)!r} is a direct reference; torchup plans from indexes",
                hint=f"install it with pip directly, or ask for a version: '{r.name}==X.Y.Z'",
            )
    names = [canonicalize_name(r.name) for r in reqs]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        both = " and ".join(repr(str(r)) for r in reqs if canonicalize_name(r.name) == twice)
        raise UsageError(
            f"{twice} is named twice ({both})",
            hint=f"combine the specifiers into one, e.g. '{twice}>=2.4,<2.6'",
        )
    if TORCH not in names and any(n in companions.COMPANIONS for n in names):
        reqs.insert(0, Requirement("torch"))
    reqs.sort(key=lambda r: canonicalize_name(r.name) != TORCH)
    return reqs


def _plain_builds_only(outcomes: Sequence[Outcome], got: Gathered, variant: str) -> list[Outcome]:
    """Say why a family member has "no files" when pip's sources do list it: only its
    plain builds are there (a plain build is not a ``variant`` build, so it was not read
    as a candidate at all)."""
    out = []
    for o in outcomes:
        name = canonicalize_name(o.requirement.name)
        plain = [
            d
            for d in got.pip.get(name, [])  # find-links files are listed for every project
            if "+" not in d.filename and canonicalize_name(d.filename.split("-")[0]) == name
        ]
        if not o.ok and o.message.startswith("no files for") and plain:
            out.append(
                replace(
                    o,
                    message=f"no {variant} build of {name} on the sources read: the PyTorch "
                    f"index's {variant} directory lists none, and pip's sources list only plain "
                    f"builds of it ({len(plain)} files), which are not {variant} builds "
                    "(`--backend pypi` plans the whole family from pip's sources)",
                )
            )
        else:
            out.append(o)
    return out


def _metadata_lookup(client: IndexClient) -> MetadataLookup:
    memo: dict[str, Sequence[str] | None] = {}

    def lookup(cand: Candidate) -> Sequence[str] | None:
        key = cand.dist.url
        if key not in memo:
            try:
                meta = client.get_metadata(cand.dist)
                memo[key] = tuple(meta.get_all("Requires-Dist") or ())
            except TorchupError as exc:
                log.warning("metadata of %s unreadable: %s", cand.dist.filename, exc)
                memo[key] = None
        return memo[key]

    return lookup


def _alternatives(
    res: _Resolved,
    *,
    reqs: Sequence[Requirement],
    target: Interpreter,
    sources: Sources,
    found: Callable[[], list[Interpreter]],
) -> list[AltPython]:
    """When the request does not fit ``target``, the other Pythons on this machine for
    which it resolves (``found`` lists them, and is only called then)."""
    if all(o.ok for o in res.outcomes):
        return []
    torch_root = sources.torch_index_url.url.rstrip("/") if res.variant_backend else None
    alts: list[AltPython] = []
    seen: set[tuple[str, bool]] = set()
    for py in found():
        if py.error or not py.tags or py.executable == target.executable:
            continue
        if py.externally_managed:
            continue  # its pip refuses to install (PEP 668); suggesting it would mislead
        outcomes = resolve_family(reqs, res.cands, py, res.rule, res.metadata)
        if not outcomes or not all(o.ok for o in outcomes):
            continue
        key = (py.version, py.free_threaded)
        if key in seen:
            continue
        seen.add(key)
        packages = [planned_package(o) for o in outcomes]
        variant = next((p.variant for p in packages if canonicalize_name(p.name) == TORCH), None)
        variant_index = f"{torch_root}/{variant}" if torch_root and variant else None
        cmd = install_command(
            py.executable,
            packages,
            variant_index=variant_index,
            sources=sources,
            requirements=reqs,
        )
        alts.append(
            AltPython(
                executable=py.executable,
                version=py.version,
                command=cmd,
                packages=tuple(p.pin for p in packages),
            )
        )
    alts.sort(key=lambda a: Version(a.version), reverse=True)
    return alts


@dataclass(frozen=True, slots=True, kw_only=True)
class _Choice:
    """The backend asked for and chosen so far (``hardware``: a GPU's builds to pick from)."""

    name: str
    origin: str
    backend: Backend
    accel: Accelerator | None
    hardware: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _Read:
    """The pages read, the choice and sources they leave, and what to say about them."""

    got: Gathered
    projects: Sequence[NormalizedName]
    choice: _Choice
    sources: Sources
    unreadable: str | None
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Resolved:
    """The candidates, the outcomes, the backend they settle on and (GPU) why."""

    backend: Backend
    cands: dict[NormalizedName, list[Candidate]]
    metadata: MetadataLookup
    rule: VariantRule
    outcomes: list[Outcome]
    hw: HardwareChoice | None
    variant_backend: bool


def plan(
    requirements: Sequence[str] = ("torch",),
    *,
    python: str | Interpreter | None = None,
    backend: str | None = None,
    torch_index_url: str | None = None,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str] = (),
    offline: bool = False,
    accelerator: Accelerator | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    allow_names: Sequence[str] = (),
    elsewhere: bool = False,
) -> Plan:
    """Plan a PyTorch install for one Python, or explain why nothing fits.

    ``python`` is a SPEC (see :func:`~torchup.interpreters.discover.select`) or an already probed
    :class:`Interpreter`. With the ``auto`` backend the machine's accelerator is detected
    (or ``accelerator`` is used) and the newest build that runs on it is chosen. Raises
    :class:`UsageError` for malformed input and :class:`TorchupError` subclasses for
    failures that leave nothing to plan (interpreter broken, no source readable). A
    request that cannot be met returns a plan with ``ok`` false and its problems. A name
    a keystroke from a PyTorch package's (``troch``) is a :class:`UsageError` unless
    ``allow_names`` has it (:mod:`torchup.choose.names`). ``elsewhere``: ``python`` and
    ``accelerator`` describe another machine (:mod:`torchup.profiles`), so no Python of
    this one is offered instead. A requirement may be a wheel file's path (or ``file:``
    URL), planned as that file alone (:mod:`torchup.choose.localwheel`); ``auto`` then
    takes it as the build it is instead of detecting the accelerator.
    """
    env = dict(os.environ) if env is None else env
    texts, wheels = split_local_wheels(requirements, cwd=cwd or Path.cwd())
    reqs = parse_requirements(texts, allow_names)
    # Discovery runs at most once: for a version SPEC, and for the other Pythons that
    # could install a request that does not fit this one.
    everything = cache(lambda: discover(env=env, cwd=cwd))
    py = _interpreter(python, env=env, cwd=cwd, everything=everything)
    sources = sources_for(
        env,
        prefix=py.prefix or None,
        index_url=index_url,
        extra_index_urls=extra_index_urls,
        find_links=(*find_links, *dict.fromkeys(w.folder for w in wheels.values())),
        torch_index_url=torch_index_url,
    )
    first = _choose_backend(backend, accelerator, env=env, py=py, wheels=bool(wheels))
    projects = list(dict.fromkeys(canonicalize_name(r.name) for r in reqs))
    with index_client(sources, env=env, offline=offline) as client:
        read = _read_sources(client, sources, first, projects, offline=offline)
        local = {p: local_candidate(w, client.file_hashes.sha256) for p, w in wheels.items()}
        res = _resolve(client, read, reqs, py, local)
        res = replace(res, outcomes=hash_local_choices(res.outcomes, client.file_hashes.sha256))
        found: Callable[[], list[Interpreter]] = (lambda: []) if elsewhere else everything
        alts = _alternatives(res, reqs=reqs, target=py, sources=read.sources, found=found)
        fallback = None
        if read.unreadable is not None:
            fallback = pypi_fallback(read.unreadable, res.outcomes, res.metadata, first.accel, py)
        fresh_until = client.fresh_until
    made = replace(
        _assemble(
            py=py, reqs=reqs, accel=first.accel, read=read, res=res, alts=alts, fallback=fallback
        ),
        fresh_until=fresh_until,
    )
    return naming_the_files(made, wheels) if wheels else made


def _assemble(
    *,
    py: Interpreter,
    reqs: Sequence[Requirement],
    accel: Accelerator | None,
    read: _Read,
    res: _Resolved,
    alts: list[AltPython],
    fallback: PypiFallback | None,
) -> Plan:
    """The plan: the resolved outcomes with the index to install them from, the other
    Pythons, and every warning (the PyPI fallback's first)."""
    sources, chosen = read.sources, res.backend
    root = sources.torch_index_url.url.rstrip("/")
    variant_index = f"{root}/{chosen.variant}" if chosen.variant is not None else None
    warnings = [
        *(accel.warnings if accel is not None else ()),
        *read.warnings,
        *(res.hw.warnings if res.hw is not None else ()),
    ]
    if fallback is not None:
        warnings.insert(0, fallback_warning(fallback))
    return build_plan(
        fallback=fallback,
        python=py,
        backend=chosen,
        sources=sources,
        requirements=reqs,
        outcomes=res.outcomes,
        variant_index=variant_index,
        alternative_pythons=alts,
        warnings=warnings,
        accelerator=accel,
        release=res.hw.release if res.hw is not None else None,
        verdicts=res.hw.verdicts if res.hw is not None else (),
    )


def _interpreter(
    python: str | Interpreter | None,
    *,
    env: Mapping[str, str],
    cwd: Path | None,
    everything: Callable[[], list[Interpreter]],
) -> Interpreter:
    """The Python to plan for: ``python`` itself, the one its SPEC selects, or the
    default; raise :class:`InterpreterError` when it cannot be used."""
    if isinstance(python, Interpreter):
        py = python
    elif python:
        py = select(
            python, env=env, cwd=cwd, found=everything() if is_version_spec(python) else None
        )
    else:
        py = default_interpreter(env=env, cwd=cwd)
    if py.error:
        raise InterpreterError(
            f"{py.executable} cannot be used: {py.error}",
            hint="pick another one with --python; `torchup pythons` lists them",
        )
    return py


def _choose_backend(
    backend: str | None,
    accelerator: Accelerator | None,
    *,
    env: Mapping[str, str],
    py: Interpreter,
    wheels: bool = False,
) -> _Choice:
    """The backend asked for and what it means here (``auto`` detects the accelerator
    unless given one, or takes a local wheel as ``wheels`` says one is named); raise
    :class:`UsageError` for ``mps`` off Apple silicon."""
    name, origin = requested_backend(backend, env)
    if name == "auto" and wheels:  # the wheel is the build; companions as pip finds them
        source = f"{origin}: auto; a local wheel is installed as it was built"
        chosen = Backend(name="pypi", variant=None, source=source)
        return _Choice(name=name, origin=origin, backend=chosen, accel=None, hardware=False)
    on_apple = (
        py.markers.get("sys_platform") == "darwin" and py.markers.get("platform_machine") == "arm64"
    )
    if name == "auto" and accelerator is None:
        from torchup.hardware.accelerators import detect

        accelerator = detect(env=env)
    accel = accelerator if name == "auto" else None
    hardware = accel is not None and accel.kind in ("cuda", "rocm", "xpu")
    if accel is not None and accel.kind == "mps" and on_apple:
        chosen = Backend(name="mps", variant="cpu", source=f"{origin}: auto, {accel.describe()}")
    elif accel is not None and not hardware:
        chosen = Backend(name="cpu", variant="cpu", source=f"{origin}: auto, {accel.describe()}")
    else:
        chosen = resolve_backend(name, origin)
    if chosen.name == "mps" and not on_apple:
        raise UsageError(
            f"--backend mps needs macOS on Apple silicon; Python {py.version} at "
            f"{py.executable} runs on {py.markers.get('sys_platform')} "
            f"{py.markers.get('platform_machine')}",
            hint="use --backend auto, cpu, cuXYZ, rocmX.Y or xpu here",
        )
    return _Choice(name=name, origin=origin, backend=chosen, accel=accel, hardware=hardware)


def _read_pages(
    client: IndexClient, sources: Sources, choice: _Choice, projects: Sequence[str]
) -> Gathered:
    """Read the pages ``choice`` needs: on a GPU, every variant directory the PyTorch
    index offers for its kind, and cpu; otherwise the chosen variant's (if any)."""
    variants: list[str] = [choice.backend.variant] if choice.backend.variant else []
    root_error: str | None = None
    if choice.hardware and choice.accel is not None:
        try:
            offered = client.variants(sources.torch_index_url.url)
        except TorchupError as exc:
            offered, root_error = (), exc.message
        variants = [v for v in offered if kind_of(v) == choice.accel.kind]
        variants.append("cpu")
    got = gather_pages(
        client,
        sources,
        variants if root_error is None else [],
        projects,
        hash_folders=False,
    )
    if root_error is not None:
        got.torch_index_errors.append(root_error)
    return got


def _read_sources(
    client: IndexClient,
    sources: Sources,
    choice: _Choice,
    projects: Sequence[NormalizedName],
    *,
    offline: bool,
) -> _Read:
    """Read the pages (:func:`_read_pages`) and take stock: when a variant was wanted
    and the PyTorch index could not be read, auto falls back to pip's sources and an
    explicit backend warns; the sources that could not be read are dropped."""
    got = _read_pages(client, sources, choice, projects)
    chosen, hardware = choice.backend, choice.hardware
    warnings: list[str] = []
    reachable = any(got.torch_index.get(p) for p in projects) or not got.torch_index_errors
    unreadable: str | None = None  # why auto fell back to PyPI's build
    if (hardware or chosen.variant is not None) and not reachable:
        why = got.torch_index_errors[0]
        if choice.name == "auto":
            unreadable = why
            chosen = Backend(
                name="pypi",
                variant=None,
                source=f"{choice.origin}: auto, PyTorch index unreachable",
            )
            hardware = False
        else:
            warnings.append(
                f"the PyTorch index could not be read ({why}); using pip's sources only"
            )
    if (
        chosen.variant is not None
        and not hardware
        and reachable
        and not any(got.torch_index.get(p) for p in projects)
    ):
        warnings.append(_offered(client, sources, chosen.variant))
    warnings += [f"skipped a source: {e}" for e in got.pip_errors]
    sources = sources.without(got.unread)  # not handed to the installer either
    if reachable:
        warnings += [f"the PyTorch index: {e}" for e in got.torch_index_errors]
    if offline and got.oldest_cache_age is not None:
        warnings.append(
            f"offline: planned from cached pages up to {_age(got.oldest_cache_age)} old"
        )
    return _Read(
        got=got,
        projects=projects,
        choice=replace(choice, backend=chosen, hardware=hardware),
        sources=sources,
        unreadable=unreadable,
        warnings=tuple(warnings),
    )


def _resolve(
    client: IndexClient,
    read: _Read,
    reqs: Sequence[Requirement],
    py: Interpreter,
    local: Mapping[NormalizedName, Candidate],
) -> _Resolved:
    """Resolve the request from the pages read: on a GPU, the newest build that runs
    on it (which settles the backend); otherwise under the chosen backend's rule. A
    ``local`` wheel is its project's only candidate, whatever its variant.
    Raise :class:`TorchupError` when the markers exclude every requirement."""
    choice, got, projects = read.choice, read.got, read.projects
    chosen, accel = choice.backend, choice.accel
    variant_backend = choice.hardware or chosen.variant is not None
    labelled = variant_backend and chosen.name != "mps"
    cands = {
        p: [local[p]]
        if p in local
        else candidates_of(got, p, torch_index=variant_backend, labelled_only=labelled)
        for p in projects
    }
    metadata = _metadata_lookup(client)
    hw: HardwareChoice | None = None
    if choice.hardware and accel is not None:
        hw = resolve_on_hardware(reqs, cands, py, accel, metadata)
        rule = hw.rule
        outcomes = hw.outcomes
        picked = hw.variant or ("cpu" if hw.fell_back_to_cpu else None)
        chosen = Backend(
            name=picked or accel.kind,
            variant=picked,
            source=f"{choice.origin}: auto, {accel.describe()}",
        )
    else:
        rule = _as_built(variant_rule(chosen), local)
        outcomes = resolve_family(reqs, cands, py, rule, metadata)
    if variant_backend and chosen.variant is not None:
        outcomes = _plain_builds_only(outcomes, got, chosen.variant)
    if not outcomes:
        raise TorchupError(
            f"no requirement applies to Python {py.version}: their markers exclude it",
            hint="check the markers, or pick another Python with --python",
        )
    return _Resolved(
        backend=chosen,
        cands=cands,
        metadata=metadata,
        rule=rule,
        outcomes=outcomes,
        hw=hw,
        variant_backend=variant_backend,
    )


def _as_built(rule: VariantRule, local: Mapping[NormalizedName, Candidate]) -> VariantRule:
    """``rule``, but a local wheel is accepted as the build it is (its variant is the
    user's choice, made by naming the file)."""
    if not local:
        return rule
    urls = {c.dist.url for c in local.values()}
    return lambda cand: None if cand.dist.url in urls else rule(cand)


def _offered(client: IndexClient, sources: Sources, variant: str) -> str:
    """Say which variants the PyTorch index offers when ``variant`` has no files there."""
    root = redact(sources.torch_index_url.url)
    try:
        offered = client.variants(sources.torch_index_url.url)
    except TorchupError as exc:
        return f"the PyTorch index at {root} lists no {variant} files (and its variants: {exc})"
    if variant in offered:
        return f"the PyTorch index at {root} has {variant} builds, but none of these packages"
    listing = ", ".join(offered) or "none"
    return f"the PyTorch index at {root} offers no {variant} builds; it offers: {listing}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def pythons(
    *, python: str | None = None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> list[Interpreter]:
    """Every Python on this machine (or the one ``python`` names), probed."""
    env = dict(os.environ) if env is None else env
    if python:
        return [select(python, env=env, cwd=cwd)]
    return discover(env=env, cwd=cwd)
