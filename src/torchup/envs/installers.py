"""The installer commands: the target's own ``python -m pip``, or ``uv pip install
--python TARGET``. Building the argv is pure; :func:`find_uv` looks on disk.

The torch family is always hash-checked; its dependencies resolve as the installer
normally does, from the same sources the plan used:

- pip's hash-checking mode is all or nothing, so pip runs twice: the torch-family files
  alone, pinned to version + local label and their sha256, ``--no-deps
  --require-hashes``; then the same pins without hashes, so that their dependencies
  resolve (the pins are already satisfied, so nothing is fetched twice);
- uv checks the hashes it is given without demanding them for every dependency
  (``--verify-hashes``), so uv runs once, with the hash-pinned file. uv reads no pip
  configuration, so every source the plan used is passed to it.

A forced install (``--force-incompatible``) is two steps with either installer: the
local files ``--no-deps``, then their dependencies by name, since no resolver accepts
the forced files' Python tags or ``Requires-Python``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torchup.choose.plan import PlannedPackage, exact_pin, pip_arguments
from torchup.errors import UsageError
from torchup.index.sources import Sources

__all__ = ["InstallerChoice", "choose_installer", "find_uv", "install_commands"]

Name = Literal["pip", "uv"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallerChoice:
    name: Name
    uv: str | None
    source: str


def find_uv(env: Mapping[str, str]) -> str | None:
    """uv from the ``uv`` package installed beside torchup, else on ``PATH``."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

        found = str(find_uv_bin())
        if Path(found).exists():
            return found
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv", path=env.get("PATH", os.defpath))


def choose_installer(flag: str, env: Mapping[str, str]) -> InstallerChoice:
    """``auto`` is uv where available, else pip; ``uv`` without uv is a usage error."""
    if flag not in ("auto", "uv", "pip"):
        raise UsageError(f"unknown installer {flag!r}", hint="use --installer auto, uv or pip")
    if flag == "pip":
        return InstallerChoice(name="pip", uv=None, source="--installer pip")
    uv = find_uv(env)
    if uv is not None:
        return InstallerChoice(name="uv", uv=uv, source=f"--installer {flag}: {uv}")
    if flag == "uv":
        raise UsageError(
            "--installer uv, but uv is neither installed beside torchup nor on PATH",
            hint="pip install uv, or use --installer pip",
        )
    return InstallerChoice(name="pip", uv=None, source="--installer auto: uv not found")


def _source_args(
    sources: Sources, variant_index: str | None, packages: Sequence[PlannedPackage], *, uv: bool
) -> list[str]:
    """Index arguments. pip gets those of :func:`~torchup.choose.plan.pip_arguments`
    (pip reads its own config for the rest); uv gets every source, the variant
    directory first."""
    if not uv:
        # the real URLs: pip given "user:****@" sends those stars (what is shown of this
        # command is redacted where it is shown)
        return list(
            pip_arguments(packages, variant_index=variant_index, sources=sources,
                          credentials="keep")[1]
        )  # fmt: skip
    indexes = ([variant_index] if variant_index else []) + [s.url for s in sources.index_urls()]
    args: list[str] = []
    if sources.no_index:
        args.append("--no-index")
    elif indexes:
        args += ["--index-url", indexes[0]]
        args += [a for u in indexes[1:] for a in ("--extra-index-url", u)]
    args += [a for s in sources.find_links for a in ("--find-links", s.url)]
    return args


def install_commands(
    installer: InstallerChoice,
    python: str,
    packages: Sequence[PlannedPackage],
    *,
    sources: Sources,
    variant_index: str | None,
    hashes_file: Path,
    extras: Mapping[str, str] | None = None,
    break_system_packages: bool = False,
    files: Mapping[str, Path] | None = None,
    dependencies: Sequence[str] | None = None,
    reinstall: bool = False,
    checked: Mapping[str, Path] | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...] | None, str]:
    """The install commands (the second ``None`` when one does it all) and the
    requirements text to write to ``hashes_file``.

    ``files`` maps a package name to a local copy of its (already hash-checked) file,
    installed from that path with the same hash (``--force-incompatible``); then the
    second command installs ``dependencies`` (their ``Requires-Dist``) instead of the
    pins, since no resolver accepts the forced files, and is ``None`` when there are
    none. ``reinstall`` replaces the family's files even when the same versions are
    installed (a damaged install), never their dependencies. ``checked`` maps a package
    to a local file whose sha256 the caller has checked: uv is given that exact file
    (``torch @ file:///...``) instead of a pin and a hash to verify again.

    >>> from torchup.index.sources import Sources, Source
    >>> s = Sources(index_url=None, extra_index_urls=(), find_links=(), trusted_hosts=(),
    ...             no_index=False, torch_index_url=Source(url="https://t/whl", origin="default"))
    >>> p = PlannedPackage(name="torch", version="2.5.1+cpu", local="cpu", variant="cpu",
    ...     filename="f.whl", url="u", sha256="ab" * 32, index="https://t/whl/cpu/torch/")
    >>> one, two, text = install_commands(InstallerChoice(name="pip", uv=None, source=""),
    ...     "/py", [p], sources=s, variant_index="https://t/whl/cpu", hashes_file=Path("r.txt"))
    >>> one[4:10]
    ('--no-deps', '--require-hashes', '-r', 'r.txt', '--index-url', 'https://t/whl/cpu')
    >>> text.split()[0], two[4]
    ('torch==2.5.1+cpu', 'torch==2.5.1+cpu')
    """
    extras = extras or {}
    files = files or {}
    lines = _requirement_lines(installer, packages, extras, files, checked or {})
    if files:
        wanted = list(dependencies or ())
    else:
        wanted = [exact_pin(p.name, p.version, extras.get(p.name, "")) for p in packages]
    sources_args = _source_args(sources, variant_index, packages, uv=installer.name == "uv")
    head, tail = _head_and_tail(installer, python, break_system_packages=break_system_packages)
    again = _reinstall_args(installer, packages, reinstall=reinstall)
    if installer.name == "uv" and not files:
        one = (*head, "--verify-hashes", *again, "-r", str(hashes_file), *sources_args, *tail)
        return one, None, "\n".join(lines) + "\n"
    first = (*head, "--no-deps", "--require-hashes", *again, "-r", str(hashes_file))
    first += (*sources_args, *tail)
    second = (*head, *wanted, *sources_args, *tail) if wanted else None
    return first, second, "\n".join(lines) + "\n"


def _requirement_lines(
    installer: InstallerChoice,
    packages: Sequence[PlannedPackage],
    extras: Mapping[str, str],
    files: Mapping[str, Path],
    checked: Mapping[str, Path],
) -> list[str]:
    """The requirements file's lines: per package its pin (or forced local file) and
    sha256, or for uv the exact file the caller checked."""
    lines = []
    for p in packages:
        if p.name in checked and installer.name == "uv" and not files:
            lines.append(f"{p.name}{extras.get(p.name, '')} @ {checked[p.name].as_uri()}")
            continue
        line = (
            str(files[p.name])
            if p.name in files
            else exact_pin(p.name, p.version, extras.get(p.name, ""))
        )
        if p.sha256:
            line += f" --hash=sha256:{p.sha256}"
        lines.append(line)
    return lines


def _head_and_tail(
    installer: InstallerChoice, python: str, *, break_system_packages: bool
) -> tuple[list[str], list[str]]:
    """What every install command starts and ends with, for this installer."""
    if installer.name == "uv":
        assert installer.uv is not None
        head = [installer.uv, "pip", "install", "--python", python]
        tail = ["--index-strategy", "unsafe-best-match"]
        if break_system_packages:
            tail += ["--system", "--break-system-packages"]
    else:
        head = [python, "-m", "pip", "install"]
        tail = ["--break-system-packages"] if break_system_packages else []
    return head, tail


def _reinstall_args(
    installer: InstallerChoice, packages: Sequence[PlannedPackage], *, reinstall: bool
) -> list[str]:
    """The arguments that replace the family's files even at the same versions."""
    if reinstall and installer.name == "uv":
        return [arg for p in packages for arg in ("--reinstall-package", p.name)]
    if reinstall:
        return ["--force-reinstall"]  # the first call has --no-deps: the family alone
    return []
