"""Where Pythons live on disk: the candidate executables for ``torchup.interpreters.discover``.

Pure lookups in the filesystem and environment (no interpreter is run here, except
``py --list-paths`` on Windows when the PEP 514 registry lists nothing). The order of
sources is documented in :mod:`torchup.interpreters.discover`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from torchup.errors import RunnerError
from torchup.runner import run

__all__ = [
    "Candidate",
    "candidates",
    "conda_prefixes",
    "dot_venv",
    "first_on_path",
    "is_shim",
    "is_under",
    "pyenv_root",
    "python_in",
    "uv_python_dir",
    "version_tuple",
]

log = logging.getLogger(__name__)

WINDOWS = os.name == "nt"
# python, python3, python3.13, python3.13t, pypy3, pypy3.10 (with .exe on Windows).
_EXE_NAME = re.compile(
    r"(?:python|pypy)(?:\d+(?:\.\d+)?t?)?" + (r"\.exe" if WINDOWS else ""), re.IGNORECASE
)


class Candidate(NamedTuple):
    """An executable that may be a Python, and the source that found it.

    ``real`` is ``path`` resolved and normcased when :func:`candidates` has already
    computed it (so :func:`~torchup.interpreters.discover.discover` need not resolve it again),
    else empty.
    """

    path: Path
    source: str
    real: str = ""


def candidates(env: Mapping[str, str], cwd: Path) -> list[Candidate]:
    """All candidate executables in discovery order, without obvious duplicates.

    Paths that resolve to the same file collapse to the first one, unless one of
    them sits in a venv (``pyvenv.cfg`` beside its ``bin``): a venv's python links to
    its base but is a different interpreter. The final dedupe, on probed sys.prefix,
    is in :func:`discover`.
    """
    sources: list[Iterator[Candidate]] = [
        active(env),
        iter(filter(None, [dot_venv(cwd)])),
        _on_path(env),
        _pyenv(env),
        (Candidate(exe, "conda") for p, _ in conda_prefixes(env) if (exe := python_in(p))),
        _uv(env),
        _windows(env),
    ]
    seen: set[tuple[str, str | None]] = set()
    out: list[Candidate] = []
    for source in sources:
        for cand in source:
            venv = cand.path.parent.parent
            real = os.path.normcase(os.path.realpath(cand.path))
            key = (real, str(venv) if (venv / "pyvenv.cfg").is_file() else None)
            if key not in seen:
                seen.add(key)
                out.append(cand._replace(real=real))
    return out


def is_shim(path: Path) -> bool:
    """A launcher in a ``shims`` directory (pyenv, asdf): its target depends on context."""
    return path.parent.name == "shims"


def is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading numbers of a version-ish string: ``"3.11.7"`` -> ``(3, 11, 7)``."""
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def python_in(prefix: Path) -> Path | None:
    """The interpreter inside a venv/conda/installation prefix, if any."""
    names = ("Scripts/python.exe", "python.exe") if WINDOWS else ("bin/python", "bin/python3")
    # A dangling link (a venv whose base Python was removed) is returned too, so that
    # it is reported as broken instead of silently skipped.
    return next((prefix / n for n in names if _file_or_link(prefix / n)), None)


def _file_or_link(path: Path) -> bool:
    return path.is_file() or path.is_symlink()


def _home(env: Mapping[str, str]) -> Path | None:
    home = env.get("HOME") or env.get("USERPROFILE")
    return Path(home) if home else None


def active(env: Mapping[str, str]) -> Iterator[Candidate]:
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if (prefix := env.get(var)) and (exe := python_in(Path(prefix))):
            yield Candidate(exe, var)
        elif prefix:
            log.debug("%s=%s has no Python in it; ignored", var, prefix)


def dot_venv(cwd: Path) -> Candidate | None:
    for directory in (cwd, *cwd.parents):
        if (exe := python_in(directory / ".venv")) is not None:
            return Candidate(exe, ".venv")
    return None


def _path_dirs(env: Mapping[str, str]) -> list[Path]:
    dirs = [Path(d) for d in env.get("PATH", "").split(os.pathsep) if d]
    # Shims are launchers (pyenv, pyenv-virtualenv, asdf), not interpreters; WindowsApps
    # holds the Microsoft Store's install-on-first-use stubs.
    return [d for d in dirs if d.name.lower() not in ("shims", "windowsapps")]


def _on_path(env: Mapping[str, str]) -> Iterator[Candidate]:
    listed: set[tuple[int, int, str | None]] = set()
    for directory in _path_dirs(env):
        try:
            # A directory on PATH twice, or under two names (/bin -> /usr/bin on a
            # merged-/usr system), only repeats candidates that candidates() drops, so
            # it is listed once; the venv part mirrors candidates()' key.
            st = os.stat(directory)
            venv = directory.parent
            seen = (st.st_dev, st.st_ino, str(venv) if (venv / "pyvenv.cfg").is_file() else None)
            if seen in listed:
                continue
            listed.add(seen)
            with os.scandir(directory) as it:
                # Match before sorting: /usr/bin has a thousand names, a handful of Pythons.
                entries = [e for e in it if _EXE_NAME.fullmatch(e.name)]
        except OSError:
            continue
        entries.sort(key=lambda e: e.name)
        for entry in entries:
            if entry.is_file():
                yield Candidate(Path(entry.path), "PATH")


def first_on_path(env: Mapping[str, str], cwd: Path) -> Candidate | None:
    """The first ``python3`` (else ``python``) on PATH, through pyenv shims."""
    suffix = ".exe" if WINDOWS else ""
    dirs = [Path(d) for d in env.get("PATH", "").split(os.pathsep) if d]
    for name in (f"python3{suffix}", f"python{suffix}"):
        for directory in dirs:
            exe = directory / name
            if not exe.is_file():
                continue
            if is_shim(exe):
                real = _resolve_pyenv_shim(name, env, cwd)
                return Candidate(real, "PATH") if real else Candidate(exe, "PATH")
            return Candidate(exe, "PATH")
    return None


def pyenv_root(env: Mapping[str, str]) -> Path | None:
    if root := env.get("PYENV_ROOT"):
        return Path(root)
    home = _home(env)
    return home / ".pyenv" if home else None


def _pyenv_versions(env: Mapping[str, str], cwd: Path) -> list[str]:
    """The version names pyenv would use here: PYENV_VERSION, .python-version, global."""
    if env.get("PYENV_VERSION"):
        return env["PYENV_VERSION"].split(":")
    files = [d / ".python-version" for d in (cwd, *cwd.parents)]
    if (root := pyenv_root(env)) is not None:
        files.append(root / "version")
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError:
            continue
        names = [w for line in text.splitlines() if not line.startswith("#") for w in line.split()]
        if names:
            return names
    return ["system"]


def _resolve_pyenv_shim(name: str, env: Mapping[str, str], cwd: Path) -> Path | None:
    """What ``pyenv which NAME`` would answer, without running pyenv (so: no subprocess)."""
    root = pyenv_root(env)
    if root is None:
        return None
    versions_dir = root / "versions"
    for version in _pyenv_versions(env, cwd):
        if version == "system":
            for directory in _path_dirs(env):
                if (directory / name).is_file() and not is_under(str(directory), str(root)):
                    return directory / name
            continue
        home = versions_dir / version
        if not home.is_dir():  # pyenv accepts a prefix: "3.11" means the newest 3.11.x
            matches = [d for d in _subdirs(versions_dir) if d.name.startswith(version + ".")]
            home = max(matches, key=lambda d: version_tuple(d.name), default=home)
        if (home / "bin" / name).is_file():
            return home / "bin" / name
    return None


def _subdirs(directory: Path) -> list[Path]:
    try:
        return sorted(
            (Path(e.path) for e in os.scandir(directory) if e.is_dir() and e.name[0] != "."),
            key=lambda p: p.name,
        )
    except OSError:
        return []


def _pyenv(env: Mapping[str, str]) -> Iterator[Candidate]:
    root = pyenv_root(env)
    for home in _subdirs(root / "versions") if root else []:
        if exe := python_in(home):
            yield Candidate(exe, "pyenv")


def uv_python_dir(env: Mapping[str, str]) -> Path | None:
    """uv's managed-Python directory (uv's storage reference: XDG data dir / APPDATA)."""
    if env.get("UV_PYTHON_INSTALL_DIR"):
        return Path(env["UV_PYTHON_INSTALL_DIR"])
    if WINDOWS:
        appdata = env.get("APPDATA")
        return Path(appdata) / "uv" / "data" / "python" if appdata else None
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]) / "uv" / "python"
    home = _home(env)
    return home / ".local" / "share" / "uv" / "python" if home else None


def _uv(env: Mapping[str, str]) -> Iterator[Candidate]:
    root = uv_python_dir(env)
    for home in _subdirs(root) if root else []:
        if home.is_symlink():  # uv's minor-version links (cpython-3.12-...) repeat a real one
            continue
        exe = home / "python.exe" if WINDOWS else home / "bin" / "python3"
        if exe.is_file():
            yield Candidate(exe, "uv")


def conda_prefixes(env: Mapping[str, str]) -> list[tuple[Path, str]]:
    """Conda installations and environments as (prefix, name); a root is named ``base``."""
    home = _home(env)
    roots: list[Path] = []
    for var in ("CONDA_EXE", "CONDA_PYTHON_EXE"):
        if value := env.get(var):
            exe = Path(value)
            # <root>/bin/conda, <root>/Scripts/conda.exe, <root>/bin/python, <root>/python.exe
            roots.append(exe.parent if exe.name.lower() == "python.exe" else exe.parent.parent)
    listed: list[Path] = []
    if home is not None:
        try:
            text = (home / ".conda" / "environments.txt").read_text(encoding="utf-8")
            listed = [Path(line.strip()) for line in text.splitlines() if line.strip()]
        except OSError:
            pass
    envs_dirs = [root / "envs" for root in roots] + [
        Path(d) for var in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS") for d in _split(env.get(var))
    ]
    envs_dirs += _condarc_envs_dirs(env, home)
    if home is not None:
        envs_dirs.append(home / ".conda" / "envs")
    in_dirs = [p for d in envs_dirs for p in _subdirs(d) if (p / "conda-meta").is_dir()]
    out: dict[Path, str] = {}
    for prefix in [*roots, *listed, *in_dirs]:
        if prefix not in out:
            is_root = prefix in roots or (prefix / "condabin").is_dir()
            out[prefix] = "base" if is_root else prefix.name
    return list(out.items())


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(os.pathsep) if part]


def _condarc_envs_dirs(env: Mapping[str, str], home: Path | None) -> list[Path]:
    """``envs_dirs`` from the user's .condarc: a block list or an inline [a, b] list."""
    files = [Path(env["CONDARC"])] if env.get("CONDARC") else []
    if home is not None:
        files += [home / ".condarc", home / ".config" / "conda" / ".condarc"]
    dirs: list[Path] = []
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        in_block = False
        for line in lines:
            if line.startswith("envs_dirs:"):
                inline = line.partition(":")[2].strip()
                if inline.startswith("["):
                    dirs += [
                        Path(p.strip(" '\"")) for p in inline.strip("[]").split(",") if p.strip()
                    ]
                in_block = not inline
            elif in_block and line.strip().startswith("- "):
                dirs.append(Path(line.strip()[2:].strip(" '\"")).expanduser())
            elif in_block and line.strip() and not line.startswith((" ", "\t")):
                in_block = False
    return dirs


def _windows(env: Mapping[str, str]) -> Iterator[Candidate]:
    """PEP 514 registry entries, else ``py --list-paths`` (Windows only)."""
    if sys.platform != "win32":
        return
    import winreg

    def subkeys(key: Any) -> list[str]:  # a winreg.HKEYType
        names: list[str] = []
        while True:
            try:
                names.append(winreg.EnumKey(key, len(names)))
            except OSError:
                return names

    found: list[Path] = []
    views = (
        (winreg.HKEY_CURRENT_USER, 0),
        (winreg.HKEY_LOCAL_MACHINE, winreg.KEY_WOW64_64KEY),
        (winreg.HKEY_LOCAL_MACHINE, winreg.KEY_WOW64_32KEY),
    )
    for hive, view in views:
        try:
            root = winreg.OpenKey(hive, r"Software\Python", 0, winreg.KEY_READ | view)
        except OSError:
            continue
        with root:
            for company in subkeys(root):
                if company == "PyLauncher":  # the launcher's own settings, not a Python
                    continue
                with winreg.OpenKey(root, company) as company_key:
                    tags = subkeys(company_key)
                for tag in tags:
                    try:
                        key = winreg.OpenKey(root, rf"{company}\{tag}\InstallPath")
                    except OSError:
                        continue
                    with key:
                        try:
                            exe = Path(winreg.QueryValueEx(key, "ExecutablePath")[0])
                        except OSError:
                            exe = Path(winreg.QueryValueEx(key, "")[0]) / "python.exe"
                    if exe.is_file():
                        found.append(exe)
    if found:
        yield from (Candidate(exe, "registry") for exe in found)
        return
    try:
        listing = run(["py", "--list-paths"], env=env, timeout=10).stdout
    except RunnerError:
        return
    for line in listing.splitlines():
        # " -V:3.12 *        C:\Python312\python.exe" or " -3.9-64        C:\...\python.exe"
        if m := re.match(r"\s*-\S+\s+(?:\*\s+)?(.+\.exe)\s*$", line, re.IGNORECASE):
            yield Candidate(Path(m.group(1)), "py launcher")
