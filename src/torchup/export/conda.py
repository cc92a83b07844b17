"""A conda environment file (``environment.yml``) for a plan or a lock. Pure.

The file describes the environment ``torchup install --conda-env NAME`` makes: Python
and pip from conda-forge, then the torch family with that env's own pip, from the
PyTorch index. The ``pytorch`` conda channel's last torch was 2.5
(pytorch/pytorch#138506), so torch is not a conda dependency here.

The ``pip:`` lines come from :func:`~torchup.choose.plan.pip_arguments`, the function
that builds install's pip command (one source of truth), or for a lock from
:func:`~torchup.export.pylock.requirements_text`, one requirement per line.

How conda reads it (conda/env/env.py, conda/env/installers/pip.py): the keys are
``name``, ``channels``, ``dependencies`` (required), ``prefix`` and ``variables``;
a dependency is a conda match spec string or the one ``{"pip": [...]}`` mapping. conda
writes the pip list, joined by newlines, to a ``condaenv.*.requirements.txt`` beside the
environment file (else in a temporary folder) and runs ``PREFIX/bin/python -m pip
install -U -r FILE --exists-action=b`` from that folder. So each line is a line of a
pip requirements file: ``--index-url URL`` options and ``--hash=sha256:...``
per-requirement options work; a line continuation (``\\``) does not, since every item
is one line.

The YAML is written by hand (no YAML library): block style, strings plain where YAML
1.1 and 1.2 both read them as that string, else double-quoted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torchup.choose.plan import pip_arguments
from torchup.errors import TorchupError, UsageError
from torchup.index.pages import redact, strip_credentials

if TYPE_CHECKING:
    from torchup.choose.plan import Plan
    from torchup.export.pylock import Lock

__all__ = [
    "CHANNELS",
    "SCHEMA",
    "CondaExport",
    "CondaExportError",
    "conda_environment",
    "conda_environment_from_lock",
    "yaml_scalar",
]

SCHEMA = 1
#: conda-forge only: ``nodefaults`` keeps a user's default channels out of the solve
CHANNELS = ("conda-forge", "nodefaults")
#: the last torch release the ``pytorch`` conda channel published (pytorch/pytorch#138506)
LAST_CONDA_CHANNEL_TORCH = (2, 5)
_CHANNEL_NOTE = (
    "The pytorch conda channel's last torch was 2.5 (pytorch/pytorch#138506), so torch",
    "comes from the PyTorch index with pip inside the env, as `torchup install --conda-env`",
    "installs it.",
)
#: pip options whose value follows as the next argument
_VALUED = frozenset({"--index-url", "--extra-index-url", "--find-links"})
#: what conda refuses in an env name (conda/base/context.py validate_prefix_name)
_BAD_NAME = re.compile(r"[/\\:#\s]")


class CondaExportError(TorchupError):
    """The plan or lock cannot be written as a conda environment file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CondaExport:
    """An ``environment.yml``: its ``text`` and the values it was written from."""

    text: str
    name: str | None
    #: ``X.Y``, the conda-forge Python it asks for
    python: str
    free_threaded: bool
    #: the conda dependencies before the ``pip:`` mapping (``python=3.11``, ``pip``)
    dependencies: tuple[str, ...]
    #: the ``pip:`` section, one requirements-file line each
    pip_lines: tuple[str, ...]
    summary: str
    warnings: tuple[str, ...] = ()
    channels: tuple[str, ...] = CHANNELS

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "python": self.python,
            "free_threaded": self.free_threaded,
            "channels": list(self.channels),
            "dependencies": list(self.dependencies),
            "pip": list(self.pip_lines),
            "summary": self.summary,
            "warnings": list(self.warnings),
        }


def conda_environment(plan: Plan, *, name: str | None = None) -> CondaExport:
    """The environment file for what ``torchup install --conda-env`` installs from
    ``plan``: the same pins (version and local label, exact) and index arguments.

    Hashes are not written: pip's hash checking is all or nothing, and the family's
    dependencies are not pinned in a plan (:func:`conda_environment_from_lock` pins and
    hashes every package). Raises :class:`CondaExportError` for a plan with problems or
    for a Python conda-forge does not provide that way, :class:`UsageError` for a name
    conda refuses.
    """
    if not plan.ok:
        raise CondaExportError(
            "the plan has problems, so there is no environment to write: "
            + "; ".join(o.message for o in plan.problems),
            hint="`torchup plan` says why; export a request that plans",
        )
    py = plan.python
    if py.implementation != "cpython":
        raise CondaExportError(
            f"conda export writes conda-forge's CPython, and the plan is for "
            f"{py.implementation or 'an unknown implementation'} {py.version} "
            f"({py.executable})",
            hint="plan for a CPython (--python 3.X)",
        )
    pins, index_args = pip_arguments(
        plan.packages,
        variant_index=plan.variant_index,
        sources=plan.sources,
        requirements=[Requirement(r) for r in plan.requirements],
        credentials="strip",  # a file to keep: pip finds them in its keyring or netrc
    )
    lines = (*_option_lines(index_args), *pins)
    torch = next((p for p in plan.packages if canonicalize_name(p.name) == "torch"), None)
    warnings = [
        *_unwritten_sources(plan, index_args),
        *_local_sources(index_args),
        *_conda_channel_had(torch.version if torch else None),
    ]
    family = ", ".join(pins)
    source = (
        f"the PyTorch index ({redact(plan.variant_index)})"
        if plan.variant_index
        else "pip's sources"
    )
    summary = f"{_python_words(py.version, py.free_threaded)}; with pip: {family} from {source}"
    made_for = (
        f"made for {py.implementation} {py.version} ({py.tags[0] if py.tags else '?'}), "
        f"torch build {plan.backend.variant or plan.backend.name}"
    )
    return _export(
        name=name,
        version=py.version,
        free_threaded=py.free_threaded,
        pip_lines=lines,
        summary=summary,
        warnings=warnings,
        notes=(made_for,),
    )


def conda_environment_from_lock(lock: Lock, *, name: str | None = None) -> CondaExport:
    """The environment file for ``lock``: every locked package pinned with its sha256,
    the index lines the lock records (:func:`~torchup.export.pylock.requirements_text`,
    each requirement joined onto one line, as conda's pip section needs).

    Raises :class:`CondaExportError` when the lock says nothing of its Python (neither
    ``[tool.torchup]`` nor a ``requires-python`` of one ``X.Y``) or is for another
    implementation than CPython.
    """
    from torchup.export.pylock import requirements_text

    version, free_threaded = _lock_python(lock)
    lines = tuple(_joined_lines(requirements_text(lock)))
    torch = lock.package("torch")
    warnings = [
        *_local_sources(_option_tokens(lines)),
        *_conda_channel_had(torch.version if torch is not None else None),
    ]
    count = len(lock.packages)
    summary = (
        f"{_python_words(version, free_threaded)}; with pip, hash-checked: {count} "
        f"package{'s' if count != 1 else ''}"
        + (f" (torch {torch.version})" if torch is not None else "")
    )
    where = f"from {lock.path}" if lock.path is not None else "from a lock"
    return _export(
        name=name,
        version=version,
        free_threaded=free_threaded,
        pip_lines=lines,
        summary=summary,
        warnings=warnings,
        notes=(f"{where}, every package pinned by sha256",),
    )


def _export(
    *,
    name: str | None,
    version: str,
    free_threaded: bool,
    pip_lines: Sequence[str],
    summary: str,
    warnings: Sequence[str],
    notes: Sequence[str],
) -> CondaExport:
    """The :class:`CondaExport` for these values, its text rendered."""
    if name is not None and (not name or _BAD_NAME.search(name)):
        raise UsageError(
            f"{name!r} cannot name a conda env (no spaces, '/', '\\', ':' or '#')",
            hint="pass another --name, or none and `conda env create -n NAME -f FILE`",
        )
    python = _major_minor(version)
    dependencies = [f"python={python}"]
    if free_threaded:
        # conda-forge's metapackage: it pins python_abi to the free-threaded ABI (cp313t)
        dependencies.append(f"python-freethreading={python}")
    dependencies.append("pip")
    export = CondaExport(
        text="",
        name=name,
        python=python,
        free_threaded=free_threaded,
        dependencies=tuple(dependencies),
        pip_lines=tuple(pip_lines),
        summary=summary,
        warnings=tuple(dict.fromkeys(warnings)),
    )
    return _with_text(export, notes)


def _with_text(export: CondaExport, notes: Sequence[str]) -> CondaExport:
    """``export`` with its YAML text: comments, then name, channels, dependencies."""
    from dataclasses import replace

    from torchup import __version__

    create = "conda env create -f environment.yml" + ("" if export.name else " -n NAME")
    head = [
        f"conda environment file written by torchup {__version__}: {create}",
        f"Python {export.python} and pip from conda-forge, then the torch family with pip.",
        *_CHANNEL_NOTE,
        *notes,
    ]
    out = [f"# {line}" for line in head]
    if export.name is not None:
        out.append(f"name: {yaml_scalar(export.name)}")
    out.append("channels:")
    out += [f"  - {yaml_scalar(c)}" for c in export.channels]
    out.append("dependencies:")
    out += [f"  - {yaml_scalar(d)}" for d in export.dependencies]
    out.append("  - pip:")
    out += [f"      - {yaml_scalar(line)}" for line in export.pip_lines]
    return replace(export, text="\n".join(out) + "\n")


_PLAIN = re.compile(r"[A-Za-z0-9_./~(-][\x20-\x7e]*")
#: plain scalars YAML 1.1 or 1.2 might read as something other than a string: booleans,
#: null, and anything number-like (ints, floats, 0x/0o/0b, 1.1's sexagesimals and
#: dates), broadly: quoting a string that needed none changes nothing
_NOT_A_STRING = re.compile(
    r"(?i)(y|n|yes|no|true|false|on|off|null|~|[-+]?\.(inf|nan)|[-+]?\.?[0-9][0-9a-z_.:+-]*)"
)


def yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar in block context: plain when every YAML reader takes
    it for that very string, else double-quoted (a JSON string is a valid YAML one).

    >>> yaml_scalar("torch==2.13.0+cpu"), yaml_scalar("--index-url https://h/whl/cpu")
    ('torch==2.13.0+cpu', '--index-url https://h/whl/cpu')
    >>> yaml_scalar("3.10"), yaml_scalar("yes"), yaml_scalar("a #b"), yaml_scalar("k: v")
    ('"3.10"', '"yes"', '"a #b"', '"k: v"')
    """
    plain = (
        _PLAIN.fullmatch(value) is not None
        and _NOT_A_STRING.fullmatch(value) is None
        and not value.endswith((" ", ":"))
        and ": " not in value
        and " #" not in value
        and not value.startswith(("- ", "---", "..."))
        and value != "-"
    )
    return value if plain else _double_quoted(value)


def _double_quoted(value: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, the rest escaped
    (YAML 1.2 section 5.1: a stream holds only printable characters)."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif _printable(code):
            out.append(ch)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def _printable(code: int) -> bool:
    """Whether a character may stand as it is in a double-quoted scalar: printable, and
    no line break of YAML 1.1 (NEL, LS, PS) or byte order mark."""
    if code in (0x85, 0x2028, 0x2029, 0xFEFF):
        return False
    ranges = ((0x20, 0x7E), (0xA0, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF))
    return any(low <= code <= high for low, high in ranges)


def _option_lines(args: Sequence[str]) -> list[str]:
    """pip arguments as requirements-file lines: ``--index-url URL`` on one line, the
    value shell-quoted (pip splits an option line with :func:`shlex.split`)."""
    lines: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in _VALUED and i + 1 < len(args):
            lines.append(f"{args[i]} {shlex.quote(args[i + 1])}")
            i += 2
        else:
            lines.append(args[i])
            i += 1
    return lines


def _option_tokens(lines: Sequence[str]) -> list[str]:
    """The option arguments of requirements-file lines (the inverse of
    :func:`_option_lines`)."""
    return [tok for line in lines if line.startswith("--") for tok in shlex.split(line)]


def _joined_lines(text: str) -> list[str]:
    """A requirements file's logical lines: continuations joined, comments dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def _unwritten_sources(plan: Plan, index_args: Sequence[str]) -> list[str]:
    """Warnings for the sources the plan read that pip is not told (pip's own
    configuration on this machine), which another machine's pip will not have."""
    written = {a.rstrip("/") for a in index_args}
    read = [*plan.sources.index_urls(), *plan.sources.find_links]
    return [
        f"{redact(s.url)} (from {s.origin}) is not written: install reads it from pip's "
        "configuration, which the machine creating the env must have too"
        for s in read
        if s.origin != "default" and strip_credentials(s.url).rstrip("/") not in written
    ]


def _local_sources(index_args: Sequence[str]) -> list[str]:
    """Warnings for sources that are folders on this machine."""
    values = [index_args[i + 1] for i, a in enumerate(index_args[:-1]) if a in _VALUED]
    return [
        f"{v} is a folder on this machine: the env can be created only where it exists"
        for v in values
        if v.startswith(("file:", "/", ".", "~")) or re.match(r"[A-Za-z]:[\\/]", v)
    ]


def _conda_channel_had(version: str | None) -> list[str]:
    """A note when the pytorch conda channel also had this torch (2.5 and older)."""
    try:
        release = Version(version).release[:2] if version else None
    except InvalidVersion:
        return []
    if release is None or release > LAST_CONDA_CHANNEL_TORCH:
        return []
    return [
        f"torch {version} was also on the pytorch conda channel (its last release was "
        "2.5, pytorch/pytorch#138506); this file installs it with pip, as `torchup "
        "install --conda-env` does, not from -c pytorch"
    ]


def _lock_python(lock: Lock) -> tuple[str, bool]:
    """The ``X.Y`` Python and free-threading a lock is for. Raises
    :class:`CondaExportError`."""
    made = lock.made_for
    if made is not None:
        if made.implementation not in ("cpython", "CPython", ""):
            raise CondaExportError(
                f"the lock is for {made.implementation} {made.python_version}; conda "
                "export writes conda-forge's CPython",
                hint="lock for a CPython (--python 3.X)",
            )
        return made.python_version, made.free_threaded
    found = re.fullmatch(r"\s*==\s*(\d+\.\d+)(\.\*)?\s*", lock.requires_python or "")
    if found is None:
        raise CondaExportError(
            "the lock names no one Python (no [tool.torchup] table, requires-python "
            f"{lock.requires_python!r})",
            hint="lock with `torchup lock`, which records the Python it locks for",
        )
    return found.group(1), False


def _major_minor(version: str) -> str:
    """``3.11.7`` -> ``3.11``. Raises :class:`CondaExportError` for no version."""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None:
        raise CondaExportError(f"no Python version to ask conda for ({version!r})")
    return f"{found.group(1)}.{found.group(2)}"


def _python_words(version: str, free_threaded: bool) -> str:
    kind = " (free-threaded)" if free_threaded else ""
    return f"Python {_major_minor(version)}{kind} and pip from conda-forge"
