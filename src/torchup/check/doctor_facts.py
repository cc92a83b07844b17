"""The facts ``torchup doctor`` judges and the values it reports. Pure.

:mod:`torchup.doctor` gathers these from the target interpreter, ``PATH`` and the
machine; :mod:`torchup.check.doctor_checks` judges them. Nothing here starts a process or
reads a file.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from torchup.check.verify import Status, VerifyReport, build_kind, variant_of

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator
    from torchup.interpreters.discover import Interpreter

__all__ = [
    "PYTHON_SUPPORT",
    "Command",
    "Dist",
    "Facts",
    "Finding",
    "Fix",
    "SiteFacts",
    "Target",
    "TorchBuild",
    "parse_version_py",
    "python_support",
    "torch_build",
]

#: CPython X.Y (``t``: free-threaded) -> (first, last) torch release with wheels for it
#: on PyPI; first ``None``: since the earliest releases; last ``None``: the newest
#: release torchup knows (NEWEST_TORCH) still has them. Sources: PyPI's torch file
#: listings (captured for 1.4.0-2.15.0 in tests/data/pypi/torch.legacy.json.gz; a test
#: checks this table against them) and PyTorch's release notes for the releases
#: outside the capture (1.7.1 added 3.9, 2.2.0 3.12, 2.9.0 3.14 and 3.14t).
PYTHON_SUPPORT: Mapping[str, tuple[str | None, str | None]] = {
    "2.7": (None, "1.4.0"),
    "3.5": (None, "1.4.0"),
    "3.6": (None, "1.10.2"),
    "3.7": (None, "1.13.1"),
    "3.8": ("1.4.0", "2.4.1"),
    "3.9": ("1.7.1", "2.8.0"),
    "3.10": ("1.10.2", "2.14.1"),
    "3.11": ("1.13.0", None),
    "3.12": ("2.2.0", None),
    "3.13": ("2.5.0", None),
    "3.14": ("2.9.0", None),
    "3.15": ("2.15.0", None),
    "3.13t": ("2.7.0", "2.12.0"),
    "3.14t": ("2.9.0", None),
    "3.15t": ("2.15.0", None),
}
NEWEST_TORCH = "2.15.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One check's verdict: ``summary`` says what is wrong (or right), ``evidence`` how
    doctor knows, ``fix`` the command that mends it (None when nothing needs mending)."""

    id: str
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Fix:
    """A command that mends the findings ``mends``. An ``automatic`` fix is applied by
    ``torchup doctor --fix`` through :func:`torchup.envs.installing.install`, with
    ``install`` as its keyword arguments; the others are advice the user runs."""

    mends: tuple[str, ...]
    command: str
    automatic: bool = False
    install: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        install = dict(self.install) if self.install is not None else None
        if install is not None:
            install["requirements"] = list(install["requirements"])
        return {
            "mends": list(self.mends),
            "command": self.command,
            "automatic": self.automatic,
            "install": install,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Dist:
    """An installed distribution of the torch family (or an ``nvidia-*`` library wheel),
    as its metadata folder says. ``version_py`` holds the literal assignments of the
    package's ``version.py`` (:func:`parse_version_py`)."""

    name: str
    version: str | None
    dir: str
    path: str
    requires: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    installer: str | None = None
    package: bool = False
    version_py: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteFacts:
    """What the doctor probe read on disk in the target (:mod:`torchup.check.doctor_probe`).

    ``dists`` are in ``sys.path`` order (the first torch is the one imported);
    ``user_site_dists`` are those in a user site this Python does not read;
    ``leftovers`` are ``(path, why)``; ``shadows`` are ``(path, where, metadata)``;
    ``resolves`` is what ``import torch`` loads with the working directory and
    ``PYTHONPATH`` in front, ``resolves_here`` what it loads without them.
    """

    executable: str
    base_executable: str | None = None
    in_venv: bool = False
    user_site: str | None = None
    user_site_enabled: bool = False
    dists: tuple[Dist, ...] = ()
    user_site_dists: tuple[Dist, ...] = ()
    leftovers: tuple[tuple[str, str], ...] = ()
    shadows: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    resolves: str | None = None
    resolves_here: str | None = None

    def family(self, name: str) -> list[Dist]:
        return [d for d in self.dists if d.name == name]

    def in_user_site(self, dist: Dist) -> bool:
        return bool(self.user_site) and same_path(dist.dir, self.user_site or "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """``python``/``python3``/``pip``/``pip3`` on PATH and the Python it belongs to.

    ``prefix`` is that Python's ``sys.prefix``; for a pip whose first line names no
    Python (a pyenv shim), ``location`` is the folder ``pip --version`` reports
    instead. ``how`` says which of the two it was.
    """

    name: str
    path: str | None
    prefix: str | None = None
    version: str | None = None
    location: str | None = None
    how: str = ""
    error: str | None = None

    def owner(self) -> str:
        return f"Python {self.version or '?'} ({self.prefix or self.location or '?'})"


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchBuild:
    """The torch that ``import torch`` gets: its version and build facts, and where they
    came from (``import torch`` itself, else its ``torch/version.py`` read from disk)."""

    version: str | None
    build: Mapping[str, Any]
    source: str
    dist: Dist | None = None

    @property
    def kind(self) -> str:
        return build_kind(self.build)

    @property
    def variant(self) -> str | None:
        return variant_of(self.version, self.build)

    @property
    def release(self) -> Version | None:
        version = parse_version(self.version)
        return Version(version.public) if version is not None else None

    def describe(self) -> str:
        """``CUDA 12.8``, ``ROCm (HIP 6.4)``, ``XPU`` or ``CPU-only``."""
        if self.kind == "cuda":
            return f"CUDA {self.build.get('cuda')}"
        if self.kind == "rocm":
            return f"ROCm (HIP {self.build.get('hip')})"
        return "XPU" if self.kind == "xpu" else "CPU-only"

    def line(self) -> str:
        said = ", ".join(f"{k} = {self.build.get(k)!r}" for k in ("cuda", "hip") if k in self.build)
        return f"torch {self.version}: a {self.describe()} build ({said}; from {self.source})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where an install fix goes: a venv or conda prefix, or a Python itself."""

    kind: str  # "venv", "conda" or "system"
    path: str
    executable: str

    def args(self) -> tuple[str, ...]:
        if self.kind == "venv":
            return ("--venv", self.path)
        if self.kind == "conda":
            return ("--conda-env", self.path)
        return ("--python", self.executable, "--system")

    def install_kwargs(self) -> dict[str, Any]:
        if self.kind == "venv":
            return {"venv": self.path}
        if self.kind == "conda":
            return {"conda_env": self.path}
        return {"python": self.executable, "system": True}


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """Everything the checks judge. ``report`` is the import of torch and its
    companions in the target (None when it could not run: ``import_skipped`` says why);
    ``others`` are the other Pythons here with torch, as ``(executable, version, torch
    version)``, None when not looked for; ``library_dirs`` are the LD_LIBRARY_PATH
    entries with the CUDA/cuDNN libraries in each."""

    python: Interpreter
    target: Target
    site: SiteFacts
    accelerator: Accelerator
    report: VerifyReport | None = None
    import_skipped: str | None = None
    commands: tuple[Command, ...] = ()
    cwd: str = ""
    pythonpath: tuple[str, ...] = ()
    ld_library_path: str | None = None
    library_dirs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    others: tuple[tuple[str, str, str], ...] | None = None
    platform: str = "linux_x86_64"


# --- helpers --------------------------------------------------------------------------


def parse_version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def same_path(a: str, b: str) -> bool:
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def is_under(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def parse_version_py(text: str | None) -> dict[str, str | None]:
    """The literal assignments of a torch-family ``version.py``, read without importing it.

    >>> parse_version_py("__version__ = '2.9.0+cu128'\\ncuda: Optional[str] = '12.8'\\n"
    ...                  "hip: Optional[str] = None\\nfrom x import y\\n")
    {'__version__': '2.9.0+cu128', 'cuda': '12.8', 'hip': None}
    """
    out: dict[str, str | None] = {}
    for line in (text or "").splitlines():
        match = re.match(r"^(__version__|cuda|hip|rocm|xpu)\s*(?::[^=]*)?=\s*(.+?)\s*$", line)
        if not match:
            continue
        try:
            value = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            continue  # computed when imported (torchvision's cuda): not a literal
        if value is None or isinstance(value, str):
            out[match.group(1)] = value
    return out


def import_status(report: VerifyReport | None) -> tuple[str, str]:
    """``("pass" | "fail" | "not-run", detail)`` of ``import torch`` in the target."""
    if report is None:
        return "not-run", ""
    check = next((c for c in report.checks if c.id == "import-torch"), None)
    if check is None:
        return "fail", "; ".join(f"{c.id}: {c.detail}" for c in report.checks) or "no result"
    return check.status, check.detail


def torch_build(site: SiteFacts, report: VerifyReport | None) -> TorchBuild | None:
    """The torch in the target: from the import when it worked, else from disk."""
    dists = site.family("torch")
    dist = dists[0] if dists else None
    if report is not None and report.torch and import_status(report)[0] == "pass":
        return TorchBuild(
            version=report.torch, build=report.build, source="import torch", dist=dist
        )
    if dist is None:
        return None
    written = dist.version_py
    build = {key: written.get(key) for key in ("cuda", "hip", "xpu")}
    version = written.get("__version__") or dist.version
    return TorchBuild(version=version, build=build, source="torch/version.py", dist=dist)


def python_support(version: str, implementation: str, free_threaded: bool) -> tuple[Status, str]:
    """Whether any torch release has wheels for this Python (:data:`PYTHON_SUPPORT`).

    >>> python_support("3.12.1", "cpython", False)
    ('pass', 'torch 2.2.0 and newer have wheels for CPython 3.12')
    >>> python_support("2.7.18", "cpython", False)[0], python_support("3.4.10", "cpython", False)[0]
    ('warn', 'fail')
    >>> python_support("3.10.4", "pypy", False)
    ('fail', 'PyTorch publishes wheels for CPython only, not pypy')
    """
    if implementation != "cpython":
        return "fail", f"PyTorch publishes wheels for CPython only, not {implementation}"
    parts = re.findall(r"[0-9]+", version)[:2]
    if len(parts) < 2:
        return "warn", f"cannot read the Python version {version!r}"
    key = ".".join(parts) + ("t" if free_threaded else "")
    row = PYTHON_SUPPORT.get(key)
    current = [k for k, (_, last) in PYTHON_SUPPORT.items() if last is None and "t" not in k]
    if row is None:
        newest = max(current, key=_minor_key)
        if _minor_key(key) > _minor_key(newest):
            return "warn", (
                f"CPython {key} is newer than every torch release torchup knows "
                f"(torch {NEWEST_TORCH} has wheels up to CPython {newest})"
            )
        return "fail", f"no torch release has wheels for CPython {key}"
    first, last = row
    if last is not None:
        return "warn", (
            f"the last torch with wheels for CPython {key} is {last}; torch {NEWEST_TORCH} "
            f"needs CPython {min(current, key=_minor_key)} or newer"
        )
    since = f"torch {first} and newer have" if first else "every torch release has"
    return "pass", f"{since} wheels for CPython {key}"


def release_supports(release: Version, version: str, free_threaded: bool) -> bool:
    """Whether torch ``release`` has wheels for this CPython (:data:`PYTHON_SUPPORT`).

    >>> release_supports(Version("2.13.0"), "3.12.1", False)
    True
    >>> release_supports(Version("2.13.0"), "3.9.18", False)
    False
    """
    parts = re.findall(r"[0-9]+", version)[:2]
    row = PYTHON_SUPPORT.get(".".join(parts) + ("t" if free_threaded else ""))
    if row is None:
        return False
    first, last = (parse_version(v) for v in row)
    return (first is None or release >= first) and (last is None or release <= last)


def _minor_key(key: str) -> tuple[int, ...]:
    return tuple(int(p) for p in key.rstrip("t").split("."))
