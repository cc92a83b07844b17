"""The plan: what would be installed, from where, with which command; or why not. Pure.

:func:`build_plan` turns the resolver's outcomes into a :class:`Plan` value, which the
CLI renders (``to_dict()`` is the ``--json`` document, schema pinned by a test).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from torchup.choose.backends import Backend
from torchup.choose.resolve import Outcome
from torchup.choose.variants import Verdict
from torchup.index.pages import DistFile, redact, strip_credentials
from torchup.index.sources import Sources
from torchup.interpreters.discover import Interpreter

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator

__all__ = [
    "SCHEMA",
    "AltPython",
    "Plan",
    "PlannedPackage",
    "PypiFallback",
    "build_plan",
    "build_script_command",
    "exact_pin",
    "install_command",
    "pip_arguments",
    "torch_to_build",
]

SCHEMA = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedPackage:
    """One file the plan installs."""

    name: str
    version: str
    local: str | None
    variant: str | None
    filename: str
    url: str
    sha256: str | None
    index: str
    paired_by: str | None = None
    #: the index entry it came from (unredacted URL, PEP 658 hashes); not serialised
    dist: DistFile | None = field(default=None, compare=False, repr=False)

    @property
    def pin(self) -> str:
        """The exact requirement that installs this file, local label included."""
        return exact_pin(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "local": self.local,
            "variant": self.variant,
            "filename": self.filename,
            "url": self.url,
            "sha256": self.sha256,
            "index": self.index,
            "paired_by": self.paired_by,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AltPython:
    """Another Python on this machine that can install the request."""

    executable: str
    version: str
    command: tuple[str, ...]
    packages: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "version": self.version,
            "command": list(self.command),
            "packages": list(self.packages),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PypiFallback:
    """``auto`` could not read the PyTorch index and planned PyPI's build instead.

    ``cuda`` is the CUDA version PyPI's torch file is built with (read from the runtime
    its metadata pins), ``None`` for a CPU build; ``known`` is false when its metadata
    could not be read (then a Linux file is taken for a CUDA build, as PyPI's Linux
    x86_64 torch has been since 1.x). ``verdict`` says whether this machine's GPU and
    driver run it (``None`` on a machine without one).
    """

    reason: str
    #: PyPI's torch file that was planned (``None``: none fits the request)
    torch: str | None
    cuda: str | None = None
    known: bool = True
    verdict: Verdict | None = None

    @property
    def cuda_build(self) -> bool:
        return self.torch is not None and (self.cuda is not None or not self.known)

    @property
    def usable(self) -> bool:
        """Whether this machine can use the build (a CUDA build needs a GPU that runs it)."""
        if not self.cuda_build:
            return True
        return self.verdict is not None and self.verdict.ok

    def describe(self) -> str:
        """``a CUDA 13.0 build`` / ``a CPU build`` / ``a CUDA build (metadata unread)``."""
        if self.cuda is not None:
            return f"a CUDA {self.cuda} build"
        return "a CPU build" if self.known else "a CUDA build (its metadata could not be read)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "torch": self.torch,
            "cuda": self.cuda,
            "known": self.known,
            "usable": self.usable,
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A plan (``ok``) or an explanation of why nothing fits (``problems``)."""

    python: Interpreter
    backend: Backend
    sources: Sources
    packages: tuple[PlannedPackage, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()
    problems: tuple[Outcome, ...] = ()
    alternative_versions: tuple[str, ...] = ()
    alternative_pythons: tuple[AltPython, ...] = ()
    warnings: tuple[str, ...] = ()
    requirements: tuple[str, ...] = field(default=())
    accelerator: Accelerator | None = None
    #: The PyTorch index directory the torch family is installed from (None: pip's sources)
    variant_index: str | None = None
    release: str | None = None
    verdicts: tuple[Verdict, ...] = ()
    #: set when ``auto`` fell back to PyPI's build because the PyTorch index was unreadable
    fallback: PypiFallback | None = None
    #: when torch has files but none fits and no other Python here would do: the
    #: ``torchup build-script`` command that builds it from source for this Python
    build_script: tuple[str, ...] = ()
    #: when the first index page it was made from goes stale (epoch seconds): until then
    #: the same request gives the same plan from the cache; ``0.0`` when it was made from a
    #: local source or despite a failure, or is not known (not serialised)
    fresh_until: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.packages)

    def to_dict(self) -> dict[str, Any]:
        py = self.python
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "requirements": list(self.requirements),
            "python": {
                "executable": py.executable,
                "version": py.version,
                "implementation": py.implementation,
                "free_threaded": py.free_threaded,
                "kind": py.kind,
                "source": py.source,
            },
            "backend": self.backend.to_dict(),
            "accelerator": self.accelerator.to_dict() if self.accelerator else None,
            "variants": {
                "torch": self.release,
                "verdicts": [v.to_dict() for v in self.verdicts],
            },
            "sources": self.sources.to_dict(),
            "packages": [p.to_dict() for p in self.packages],
            "commands": [list(c) for c in self.commands],
            "problems": [o.to_dict() for o in self.problems],
            "alternatives": {
                "versions": list(self.alternative_versions),
                "pythons": [a.to_dict() for a in self.alternative_pythons],
                "build_script": list(self.build_script),
            },
            "warnings": list(self.warnings),
            "fallback": self.fallback.to_dict() if self.fallback is not None else None,
        }


def exact_pin(name: str, version: str, extras: str = "") -> str:
    """A requirement that only this version's files satisfy, whatever else is on offer.

    PEP 440 ignores a candidate's local label when the pin has none, so ``torch==2.13.0``
    is satisfied by a ``2.13.0+cpu`` build in a find-links folder (pip and uv both prefer
    it: it sorts higher). A version without a label is therefore pinned with arbitrary
    equality (``===``, a string match); one with a label is already exact with ``==``.

    >>> exact_pin("torch", "2.13.0"), exact_pin("torch", "2.13.0+cpu", "[opt]")
    ('torch===2.13.0', 'torch[opt]==2.13.0+cpu')
    """
    operator = "==" if "+" in version else "==="
    return f"{name}{extras}{operator}{version}"


def planned_package(outcome: Outcome) -> PlannedPackage:
    """The :class:`PlannedPackage` for a successful outcome."""
    cand = outcome.choice
    assert cand is not None, "planned_package() needs a chosen file"
    local = cand.version.local
    return PlannedPackage(
        name=cand.project,
        version=str(cand.version),
        local=local,
        variant=cand.variant,
        filename=cand.dist.filename,
        url=redact(cand.dist.url),
        sha256=cand.dist.sha256,
        index=cand.dist.index,
        paired_by=outcome.paired_by,
        dist=cand.dist,
    )


def install_command(
    executable: str,
    packages: Sequence[PlannedPackage],
    *,
    variant_index: str | None,
    sources: Sources,
    requirements: Sequence[Requirement] = (),
) -> tuple[str, ...]:
    """The target's own ``python -m pip install`` for ``packages``: the pins and index
    arguments of :func:`pip_arguments`.

    >>> from torchup.index.sources import Sources, Source
    >>> s = Sources(index_url=None, extra_index_urls=(), find_links=(), trusted_hosts=(),
    ...             no_index=False, torch_index_url=Source(url="https://t/whl", origin="default"))
    >>> install_command("/py", [], variant_index=None, sources=s)
    ('/py', '-m', 'pip', 'install')
    """
    pins, index_args = pip_arguments(
        packages, variant_index=variant_index, sources=sources, requirements=requirements
    )
    return (executable, "-m", "pip", "install", *pins, *index_args)


def pip_arguments(
    packages: Sequence[PlannedPackage],
    *,
    variant_index: str | None,
    sources: Sources,
    requirements: Sequence[Requirement] = (),
    credentials: Literal["redact", "strip", "keep"] = "redact",
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(pins, index arguments)``: what pip is given to install ``packages``, shared by
    :func:`install_command`, the installers and the exports (one source of truth).
    ``credentials`` says what becomes of a password in a URL: ``redact`` (``****``, for
    what is shown), ``strip`` (the user-info gone, for a file written to be used
    elsewhere, where pip finds them in its keyring or netrc) or ``keep`` (the command
    torchup itself runs).

    Pins are exact (:func:`exact_pin`: ``torch==2.5.1+cpu``, ``torch===2.5.1``) so no
    other build can satisfy them, with the extras ``requirements`` ask for. When a file
    comes from a PyTorch index directory, that directory becomes the ``--index-url`` and
    pip's own index stays an ``--extra-index-url`` so that torch's ordinary dependencies
    resolve from where they always do. Sources given as flags to torchup are passed on;
    pip reads its own configuration for the rest.

    >>> from torchup.index.sources import Sources, Source
    >>> s = Sources(index_url=None, extra_index_urls=(), find_links=(), trusted_hosts=(),
    ...             no_index=False, torch_index_url=Source(url="https://t/whl", origin="default"))
    >>> p = PlannedPackage(name="torch", version="2.5.1+cpu", local="cpu", variant="cpu",
    ...     filename="f.whl", url="u", sha256=None, index="https://t/whl/cpu/torch/")
    >>> pins, args = pip_arguments([p], variant_index="https://t/whl/cpu", sources=s)
    >>> pins, args[:2]
    (('torch==2.5.1+cpu',), ('--index-url', 'https://t/whl/cpu'))
    >>> args[2:]
    ('--extra-index-url', 'https://pypi.org/simple')
    """
    extras = {
        canonicalize_name(r.name): f"[{','.join(sorted(r.extras))}]"
        for r in requirements
        if r.extras
    }
    pins = tuple(
        exact_pin(p.name, p.version, extras.get(canonicalize_name(p.name), "")) for p in packages
    )
    argv: list[str] = []
    ways: dict[str, Callable[[str], str]] = {
        "redact": redact,
        "strip": strip_credentials,
        "keep": lambda url: url,
    }
    shown = ways[credentials]
    pip_indexes = sources.index_urls()
    if variant_index is not None and _uses(variant_index, packages):
        argv += ["--index-url", shown(variant_index)]
        argv += [arg for s in pip_indexes[:1] for arg in ("--extra-index-url", shown(s.url))]
    elif pip_indexes and pip_indexes[0].origin == "--index-url":
        argv += ["--index-url", shown(pip_indexes[0].url)]
    # Sources given as flags to torchup must reach pip too; pip reads its own config.
    argv += [
        arg
        for s in pip_indexes[1:]
        if s.origin == "--extra-index-url"
        for arg in ("--extra-index-url", shown(s.url))
    ]
    argv += [
        arg
        for s in sources.find_links
        if s.origin == "--find-links"
        for arg in ("--find-links", shown(s.url))
    ]
    return pins, tuple(argv)


def torch_to_build(problems: Sequence[Outcome]) -> str | None:
    """``torch==X.Y.Z``: the newest release the request allows whose files exist but none
    fits (so a build from source is what is left), or ``None``.

    >>> from torchup.choose.resolve import Rejection
    >>> r = [Rejection(filename=f"torch-{v}-cp39-cp39-linux_x86_64.whl", reason="tags")
    ...      for v in ("2.4.1", "2.5.1+cpu", "2.5.1")]
    >>> torch_to_build([Outcome(requirement=Requirement("torch<3"), choice=None, rejected=r)])
    'torch==2.5.1'
    """
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    for o in problems:
        if canonicalize_name(o.requirement.name) != "torch":
            continue
        versions = []
        for r in o.rejected:
            try:
                versions.append(parse_wheel_filename(r.filename)[1])
            except InvalidWheelFilename:
                continue
        allowed = [v for v in versions if o.requirement.specifier.contains(v, prereleases=True)]
        if allowed:
            return f"torch=={max(allowed).public}"
    return None


def build_script_command(requirement: str, target: Sequence[str]) -> tuple[str, ...]:
    """The ``torchup build-script`` argv for ``requirement`` and the target options
    (``--python EXE``, ``--for FILE`` ...).

    >>> build_script_command("torch==2.5.1", ("--python", "/py"))
    ('torchup', 'build-script', 'torch==2.5.1', '--python', '/py', '-o', 'build-torch.sh')
    """
    return ("torchup", "build-script", requirement, *target, "-o", "build-torch.sh")


def _uses(variant_index: str | None, packages: Sequence[PlannedPackage]) -> bool:
    """Whether any planned file was listed under the ``variant_index`` directory."""
    if not variant_index:
        return False
    shown = redact(variant_index).rstrip("/") + "/"
    return any(p.index.startswith(shown) for p in packages)


def build_plan(
    *,
    python: Interpreter,
    backend: Backend,
    sources: Sources,
    requirements: Sequence[Requirement],
    outcomes: Sequence[Outcome],
    variant_index: str | None,
    alternative_pythons: Sequence[AltPython] = (),
    warnings: Sequence[str] = (),
    accelerator: Accelerator | None = None,
    release: str | None = None,
    verdicts: Sequence[Verdict] = (),
    fallback: PypiFallback | None = None,
) -> Plan:
    """Assemble the plan from the outcomes of every requirement."""
    problems = tuple(o for o in outcomes if not o.ok)
    packages = tuple(planned_package(o) for o in outcomes if o.ok)
    commands: tuple[tuple[str, ...], ...] = ()
    if not problems and packages:
        commands = (
            install_command(
                python.executable,
                packages,
                variant_index=variant_index,
                sources=sources,
                requirements=requirements,
            ),
        )
    versions: list[str] = []
    for o in problems:
        versions += [f"{o.requirement.name}=={v}" for v in o.nearest]
    build = None if alternative_pythons else torch_to_build(problems)
    return Plan(
        python=python,
        backend=backend,
        sources=sources,
        packages=packages,
        commands=commands,
        problems=problems,
        alternative_versions=tuple(versions),
        alternative_pythons=tuple(alternative_pythons),
        build_script=build_script_command(build, ("--python", python.executable)) if build else (),
        warnings=tuple(dict.fromkeys(warnings)),
        requirements=tuple(str(r) for r in requirements),
        accelerator=accelerator,
        variant_index=variant_index if _uses(variant_index, packages) else None,
        release=release,
        verdicts=tuple(verdicts),
        fallback=fallback,
    )
