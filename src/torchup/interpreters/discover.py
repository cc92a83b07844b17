"""Find every Python on the machine and learn each one's exact wheel tags.

Each interpreter is queried once, by running ``torchup.interpreters.probe`` inside it (stdlib
only, parses on 2.7 and 3.6+), and its wheel tags are computed here, in torchup, by
:mod:`torchup.interpreters.tags`. Facts and tags are cached per executable path + stat + probe
hash in ``cache_dir()/interpreters/`` (the tags also per ``packaging`` version and
``tags.py`` hash), so a warm :func:`discover` starts no subprocess and computes no tags.

Where interpreters are looked for, in order (the first source that finds an
interpreter is the one recorded):

1. ``VIRTUAL_ENV``, then ``CONDA_PREFIX`` (the active environment);
2. the nearest ``.venv`` in the working directory or its parents;
3. ``PATH``: ``python``, ``python3``, ``python3.X``, ``python3.Xt``, ``pypy3`` ... in
   each directory (``shims`` directories of pyenv and friends are skipped: a shim is
   a launcher whose target depends on the directory it runs in);
4. pyenv: ``$PYENV_ROOT/versions/*/bin/python`` (every version, not only the global);
5. conda: the base of ``CONDA_EXE``, ``~/.conda/environments.txt``, ``<base>/envs``,
   ``envs_dirs`` (``CONDA_ENVS_PATH`` and ``.condarc``), ``~/.conda/envs``;
6. uv-managed Pythons in ``UV_PYTHON_INSTALL_DIR`` or uv's data directory;
7. on Windows, the PEP 514 registry, else ``py --list-paths``.

Two paths are the same interpreter when they resolve to the same file AND report the
same ``sys.prefix``; so a venv stays distinct from the base Python it links to.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from packaging import __version__ as _packaging_version

from torchup._paths import cache_dir
from torchup.errors import InterpreterError, PythonNotFoundError, RunnerError, UsageError
from torchup.interpreters.locate import (
    Candidate,
    active,
    candidates,
    conda_prefixes,
    dot_venv,
    first_on_path,
    is_shim,
    is_under,
    pyenv_root,
    python_in,
    uv_python_dir,
    version_tuple,
)
from torchup.interpreters.tags import ProbeFacts, compute_tags, parse_facts, parse_tags
from torchup.runner import not_there, run

if TYPE_CHECKING:
    from packaging.tags import Tag

__all__ = [
    "Interpreter",
    "Kind",
    "default_interpreter",
    "describe",
    "discover",
    "examined",
    "externally_managed",
    "probe",
    "select",
    "supported_tags",
    "tag_set",
]

log = logging.getLogger(__name__)

Kind = Literal["system", "venv", "conda", "pyenv", "uv", "unknown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Interpreter:
    """One Python installation, as probed by running it.

    ``tags`` are the wheel tags it accepts, most preferred first, as ``str(Tag)``,
    computed with ``packaging.tags`` from facts probed in that interpreter.
    ``markers`` is its PEP 508 marker environment. ``error`` is set (and the facts
    left empty) when the probe failed.
    """

    executable: str
    version: str = ""
    implementation: str = ""
    architecture: str = ""
    free_threaded: bool = False
    kind: Kind = "unknown"
    source: str = ""
    prefix: str = ""
    externally_managed: bool = False
    tags: tuple[str, ...] = ()
    markers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "version": self.version,
            "implementation": self.implementation,
            "architecture": self.architecture,
            "free_threaded": self.free_threaded,
            "kind": self.kind,
            "source": self.source,
            "prefix": self.prefix,
            "externally_managed": self.externally_managed,
            "tags": list(self.tags),
            "error": self.error,
        }


# Discovery order (see the module docstring); lower ranks win dedupe and sort first.
_RANK = {
    "VIRTUAL_ENV": 0,
    "CONDA_PREFIX": 1,
    ".venv": 2,
    "PATH": 3,
    "pyenv": 4,
    "conda": 5,
    "uv": 6,
    "registry": 7,
    "py launcher": 8,
    "--python": 9,
}
_NEWEST_FIRST = frozenset({"pyenv", "uv", "registry", "py launcher"})
# 2: entries also hold the computed tags and the "tagger" key they were computed under.
_CACHE_FORMAT = 2


# --- public API -------------------------------------------------------------------


def discover(
    *, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 10.0
) -> list[Interpreter]:
    """Every Python on this machine, deduplicated, in discovery order.

    Sorted by source (active venv/conda, .venv, PATH, pyenv, conda, uv, Windows), PATH
    order kept, pyenv and uv newest first. Broken interpreters are included with
    ``error`` set; nothing raises for one bad interpreter.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    cands = candidates(env, cwd)
    found = _probe_all(cands, env=env, timeout=timeout)
    seen: set[tuple[str, str | None]] = set()
    unique: list[tuple[int, Interpreter]] = []
    for index, (cand, interp) in enumerate(zip(cands, found, strict=True)):
        # candidates() resolved the path already (a shim's target it could not know).
        real = cand.real if interp.executable == str(cand.path) else ""
        # normcase: Windows paths differ in case only and are still the same file.
        real = real or os.path.normcase(os.path.realpath(interp.executable))
        key = (real, os.path.normcase(interp.prefix) or None)
        if key not in seen:
            seen.add(key)
            unique.append((index, interp))
    unique.sort(key=lambda pair: _order_key(pair[1], pair[0]))
    return [interp for _, interp in unique]


def probe(
    executable: str | Path,
    *,
    source: str = "--python",
    env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Interpreter:
    """Probe one interpreter (cached); a failure comes back as ``error``, never raised.

    A shim (a launcher in a ``shims`` directory) is probed uncached, and the
    interpreter it ran is what is returned as ``executable``.
    """
    env = os.environ if env is None else env
    path = Path(executable).expanduser()
    if path.parent == Path() and not path.exists():  # a bare command name
        from shutil import which

        hit = which(str(path), path=env.get("PATH", ""))
        path = Path(hit) if hit else path
    return _probe_all([Candidate(Path(os.path.abspath(path)), source)], env=env, timeout=timeout)[0]


def select(
    spec: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 10.0,
    found: Sequence[Interpreter] | None = None,
) -> Interpreter:
    """Resolve ``--python SPEC`` to one working interpreter.

    SPEC may be a version (``3``, ``3.10``, ``3.10.13``, ``3.13t`` for free-threaded;
    ``python3.11``, ``cpython3.12``, ``pypy3.10`` also work), an executable path, a venv
    or conda prefix directory, or a conda env name (``base`` for the root).

    For a version, the best match among :func:`discover`'s results is a non-venv
    interpreter (the installation itself, not an environment derived from it), then
    CPython, then the newest patch release, then discovery order. Without ``t`` a
    GIL build is preferred and a free-threaded one used only when nothing else
    matches; with ``t`` only free-threaded builds match.

    ``found`` is a :func:`discover` result (for the same ``env`` and ``cwd``) to use
    instead of discovering again, for a caller that needs that list anyway.

    Raises :class:`PythonNotFoundError` (listing what was found) when nothing
    matches, and :class:`InterpreterError` when SPEC names an existing path that is
    not a working Python.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    text = spec.strip()
    version = _VERSION_SPEC.fullmatch(text)
    if version:
        if found is None:
            found = discover(env=env, cwd=cwd, timeout=timeout)
        best = _best_version_match(found, version)
        if best is None:
            raise PythonNotFoundError(spec, [describe(i) for i in found])
        return best
    path = Path(text).expanduser()
    path = path if path.is_absolute() else cwd / path
    if text and path.exists():
        return _working(_probe_path(path, spec, env, timeout), spec)
    if text and not ("/" in text or os.sep in text or text.startswith((".", "~"))):
        for prefix, name in conda_prefixes(env):
            if name == text and (exe := python_in(prefix)):
                return _working(probe(exe, source="conda", env=env, timeout=timeout), spec)
    if found is None:
        found = discover(env=env, cwd=cwd, timeout=timeout)
    raise PythonNotFoundError(spec, [describe(i) for i in found])


def default_interpreter(
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 10.0,
    found: Sequence[Interpreter] | None = None,
) -> Interpreter:
    """The Python torchup acts on when no ``--python`` is given; ``source`` says why.

    In order: the active ``VIRTUAL_ENV``, the active ``CONDA_PREFIX``, the nearest
    ``.venv`` in ``cwd`` or its parents, then the first ``python3`` (else ``python``)
    on ``PATH``; a pyenv shim is resolved to the interpreter it would run.

    ``found`` is a :func:`discover` result (for the same ``env`` and ``cwd``): the
    chosen interpreter is taken from it when it is there (same executable and
    source), else probed as usual.

    Raises :class:`InterpreterError` when none exists or the chosen one is broken.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    chosen = next(iter(active(env)), None) or dot_venv(cwd)
    if chosen is None:
        chosen = first_on_path(env, cwd)
    if chosen is None:
        raise InterpreterError(
            "no Python found: no active VIRTUAL_ENV or CONDA_PREFIX, no .venv here, "
            "and no python3 or python on PATH",
            hint="pass --python with a version or path; `torchup pythons` lists what exists",
        )
    known = (
        i for i in found or () if i.executable == str(chosen.path) and i.source == chosen.source
    )
    interp = next(known, None) or _probe_all([chosen], env=env, timeout=timeout)[0]
    if interp.error:
        raise InterpreterError(
            f"the Python from {interp.source} ({interp.executable}) does not work: {interp.error}",
            hint="pass --python to choose another; `torchup pythons` lists them",
        )
    return interp


def examined(
    python: str | None,
    venv: str | None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Interpreter:
    """The Python a command that examines an existing environment acts on (``verify``,
    ``doctor``): ``--python SPEC`` (:func:`select`), else ``--venv PATH``, else
    :func:`default_interpreter`.

    Raises :class:`UsageError` when both are given or the venv has no Python, and
    :class:`InterpreterError` when the interpreter does not work.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    if python and venv:
        raise UsageError("--venv and --python name different targets", hint="pass one of them")
    if python:
        return select(python, env=env, cwd=cwd)
    if not venv:
        return default_interpreter(env=env, cwd=cwd)
    prefix = Path(venv) if Path(venv).is_absolute() else cwd / venv
    exe = python_in(prefix)
    if exe is None:
        raise UsageError(
            f"--venv {venv!r}: no bin/python in {prefix}",
            hint="pass an existing venv; `torchup install --venv PATH` creates one",
        )
    interp = probe(exe, source="--venv", env=env)
    if interp.error:
        raise InterpreterError(f"{exe} does not work: {interp.error}", hint=_broken_venv(prefix))
    return interp


def _broken_venv(prefix: Path) -> str | None:
    """How to mend a venv whose Python does not start: its base Python (``home`` in
    ``pyvenv.cfg``) gone, as after an upgrade removed it."""
    try:
        cfg = (prefix / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    keys = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in cfg.splitlines())}
    home = keys.get("home")
    if not home or Path(home).is_dir():
        return None
    version = ".".join((keys.get("version") or keys.get("version_info") or "3").split(".")[:2])
    return (
        f"its base Python's folder {home} (pyvenv.cfg's home) is gone: make the venv again "
        f"with a Python that exists (python{version} -m venv --clear {prefix}, which empties "
        f"it), then torchup install --venv {prefix}"
    )


def describe(interp: Interpreter) -> str:
    """One line: version, executable and where it came from.

    >>> describe(Interpreter(executable="/x/bin/python", version="3.11.7",
    ...     kind="pyenv", source="pyenv"))
    '3.11.7  /x/bin/python  (pyenv)'
    """
    version = (interp.version + ("t" if interp.free_threaded else "")) or "?"
    details = [interp.source or interp.kind]
    if interp.kind not in ("unknown", interp.source):
        details.append(interp.kind)
    if interp.externally_managed:
        details.append("externally managed")
    if interp.error:
        details.append(f"broken: {interp.error}")
    return f"{version}  {interp.executable}  ({', '.join(details)})"


def supported_tags(interp: Interpreter) -> list[Tag]:
    """``interp.tags`` as :class:`packaging.tags.Tag` objects, most preferred first."""
    return list(parse_tags(interp.tags))


def tag_set(interp: Interpreter) -> frozenset[Tag]:
    """``interp.tags`` as a frozenset, for fast membership tests (cached per tag tuple)."""
    return _tag_set(interp.tags)


def externally_managed(
    facts: ProbeFacts, *, isfile: Callable[[str], bool] = os.path.isfile
) -> bool:
    """PEP 668: an ``EXTERNALLY-MANAGED`` file in the stdlib dir, outside a venv.

    ``isfile`` is the filesystem check (injectable for tests).
    """
    if facts.in_venv or not facts.stdlib:
        return False
    return bool(isfile(os.path.join(facts.stdlib, "EXTERNALLY-MANAGED")))


# --- selection --------------------------------------------------------------------


def is_version_spec(spec: str) -> bool:
    """Whether ``--python SPEC`` names a version (``3.10``, ``3.13t``, ``python3.9``).

    >>> is_version_spec("3.13t"), is_version_spec("/usr/bin/python3")
    (True, False)
    """
    return _VERSION_SPEC.fullmatch(spec.strip()) is not None


_VERSION_SPEC = re.compile(
    r"(?:(?P<impl>python|cpython|pypy|py)-?)?(?P<ver>\d+(?:\.\d+){0,2})(?P<t>t)?", re.IGNORECASE
)


def _best_version_match(found: Sequence[Interpreter], match: re.Match[str]) -> Interpreter | None:
    want = version_tuple(match["ver"])
    impl = (match["impl"] or "").lower()
    want_impl = {"cpython": "cpython", "pypy": "pypy"}.get(impl)
    ft = bool(match["t"])
    ok = [
        i
        for i in found
        if not i.error
        and version_tuple(i.version)[: len(want)] == want
        and (want_impl is None or i.implementation == want_impl)
        and (i.free_threaded or not ft)
    ]
    if not ok:
        return None
    from packaging.version import InvalidVersion, Version

    def newest(i: Interpreter) -> Version:
        try:
            return Version(i.version)
        except InvalidVersion:
            return Version("0")

    # Stable sorts, least important key first; the first discovered wins ties.
    ok.sort(key=newest, reverse=True)
    ok.sort(key=lambda i: (i.free_threaded != ft, i.kind == "venv", i.implementation != "cpython"))
    return ok[0]


def _probe_path(path: Path, spec: str, env: Mapping[str, str], timeout: float) -> Interpreter:
    exe = python_in(path) if path.is_dir() else path
    if exe is None:
        raise InterpreterError(
            f"--python {spec!r} is a directory with no Python in it",
            hint="pass a venv or conda prefix (with bin/python), or the executable itself",
        )
    return probe(exe, source="--python", env=env, timeout=timeout)


def _working(interp: Interpreter, spec: str) -> Interpreter:
    if interp.error:
        raise InterpreterError(
            f"--python {spec!r} ({interp.executable}) is not a working Python: {interp.error}",
            hint=f"check that it runs: {interp.executable} -c 'import sys; print(sys.version)'",
        )
    return interp


# --- probing and the cache --------------------------------------------------------


class _Probed(NamedTuple):
    """A working interpreter's probed facts and its wheel tags (``str(Tag)``, in order)."""

    facts: ProbeFacts
    tags: tuple[str, ...]


@lru_cache(maxsize=1)
def _probe_source() -> tuple[str, str]:
    """The probe script's text and its hash (part of every cache key)."""
    text = Path(__file__).with_name("probe.py").read_text(encoding="utf-8")
    return text, _checksum(text.encode())


@lru_cache(maxsize=1)
def _tagger() -> str:
    """What cached tags were computed with (part of their cache key): the installed
    ``packaging``, whose tag order changes between releases (``tags._LINUX_FIRST``),
    and the hash of ``tags.py``."""
    code = Path(__file__).with_name("tags.py").read_bytes()
    return f"packaging {_packaging_version}, tags.py {_checksum(code)}"


def _checksum(data: bytes) -> str:
    """64 bits of checksum: enough to name cache files (each entry also stores its full
    key), and zlib is already loaded where hashlib would pull in OpenSSL at start-up."""
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


@lru_cache(maxsize=16)
def _tag_set(tags: tuple[str, ...]) -> frozenset[Tag]:
    return frozenset(parse_tags(tags))


def _tag_strings(facts: ProbeFacts) -> tuple[str, ...]:
    return tuple(str(tag) for tag in compute_tags(facts))


def _stat_key(path: Path) -> list[int] | None:
    try:
        st, lst = path.stat(), path.lstat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino, lst.st_mtime_ns]


def _cache_file(directory: Path, exe: str) -> Path:
    return directory / f"{_checksum(exe.encode('utf-8', 'surrogateescape'))}.json"


def _cache_load(
    file: Path, exe: str, stat: list[int]
) -> tuple[dict[str, Any], ProbeFacts, tuple[str, ...] | None] | None:
    """The cached (raw facts, facts, tags) of ``exe`` as of ``stat``, or None on a miss
    or a corrupt entry. ``tags`` is None when they were computed under another
    :func:`_tagger`: the facts still hold, the tags are to be computed again."""
    try:
        entry = json.loads(file.read_bytes())
        if (
            entry["format"] == _CACHE_FORMAT
            and entry["executable"] == exe
            and entry["stat"] == stat
            and entry["probe"] == _probe_source()[1]
        ):
            raw = entry["facts"]
            facts = parse_facts(raw)
            if entry["tagger"] != _tagger():
                return raw, facts, None
            tags = entry["tags"]
            # Only this module writes entries, atomically: checking the types catches
            # a damaged entry; parsing each of ~900 tags would double the cost of a hit.
            if not (isinstance(tags, list) and set(map(type, tags)) == {str}):
                raise ValueError(f"malformed tags {str(tags)[:40]!r}")
            return raw, facts, tuple(tags)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("ignoring unreadable interpreter cache %s: %s", file, exc)
    return None


def _cache_store(
    file: Path, exe: str, stat: list[int], raw: Mapping[str, Any], tags: tuple[str, ...]
) -> None:
    entry = {"format": _CACHE_FORMAT, "executable": exe, "stat": stat}
    entry.update(probe=_probe_source()[1], tagger=_tagger(), facts=raw, tags=tags)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.{id(raw)}.tmp")
        tmp.write_text(json.dumps(entry), encoding="utf-8")
        os.replace(tmp, file)
    except OSError as exc:
        log.debug("cannot write interpreter cache %s: %s", file, exc)


def _run_probe(exe: str, env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run the probe in ``exe``; return its raw facts or raise InterpreterError(reason)."""
    source, _ = _probe_source()
    marker = f"--torchup-{os.urandom(12).hex()}--"
    # SYSTEM_VERSION_COMPAT=0: a macOS Python built against an old SDK otherwise
    # reports macOS 10.16 instead of the real version (as packaging.tags notes).
    child_env = {**env, "SYSTEM_VERSION_COMPAT": "0"}
    try:
        # stdin="" : a "python" that turns out to be interactive must not grab the terminal.
        cmd = [exe, "-E", "-s", "-c", source, marker]
        done = run(cmd, env=child_env, timeout=timeout, check=False, stdin="")
    except RunnerError as exc:
        raise InterpreterError(exc.message) from exc
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        # First and last lines: a launcher's complaint comes first, a traceback's cause last.
        said = " / ".join(lines if len(lines) <= 2 else [lines[0], "...", lines[-1]])
        raise InterpreterError(f"exited with status {done.returncode}: {said}".rstrip(": "))
    start = done.stdout.find(marker)
    end = done.stdout.find(marker, start + len(marker)) if start >= 0 else -1
    if end < 0:
        junk = " ".join(done.stdout.split())[:80]
        raise InterpreterError(f"printed no probe result (not a Python?): {junk!r}")
    try:
        raw = json.loads(done.stdout[start + len(marker) : end])
    except ValueError as exc:
        raise InterpreterError(f"printed a malformed probe result: {exc}") from exc
    if not isinstance(raw, dict):
        raise InterpreterError("printed a malformed probe result")
    return raw


def _probe_one(
    cand: Candidate, env: Mapping[str, str], timeout: float, cache: Path, *, cached_only: bool
) -> _Probed | str | None:
    """Facts and tags for one candidate, or an error string; None when cached_only misses."""
    exe = str(cand.path)
    # A shim's target depends on where it runs, so its answer is never cached.
    stat = None if is_shim(cand.path) else _stat_key(cand.path)
    file = _cache_file(cache, exe)
    if stat is not None:
        hit = _cache_load(file, exe, stat)
        if hit is not None:
            raw, facts, tags = hit
            if tags is None:  # computed by another packaging or tags.py: the facts hold
                tags = _tag_strings(facts)
                _cache_store(file, exe, stat, raw, tags)
            return _Probed(facts, tags)
        if cached_only:
            return None
    elif not cand.path.exists():
        return not_there(exe)
    elif cached_only:
        return None
    try:
        raw = _run_probe(exe, env, timeout)
        facts = parse_facts(raw)
    except InterpreterError as exc:
        return exc.message
    except ValueError as exc:
        return f"printed an incomplete probe result: {exc}"
    tags = _tag_strings(facts)
    if stat is not None:
        _cache_store(file, exe, stat, raw, tags)
    return _Probed(facts, tags)


def _probe_all(
    candidates: list[Candidate], *, env: Mapping[str, str], timeout: float
) -> list[Interpreter]:
    """Probe every candidate: cache hits first, misses concurrently in threads."""
    if not candidates:
        return []
    cache = cache_dir(env) / "interpreters"
    results: list[_Probed | str | None] = [
        _probe_one(c, env, timeout, cache, cached_only=True) for c in candidates
    ]
    misses = [i for i, r in enumerate(results) if r is None]
    if len(misses) == 1:
        results[misses[0]] = _probe_one(
            candidates[misses[0]], env, timeout, cache, cached_only=False
        )
    elif misses:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(misses))) as pool:
            done = pool.map(
                lambda i: _probe_one(candidates[i], env, timeout, cache, cached_only=False),
                misses,
            )
            for index, result in zip(misses, done, strict=True):
                results[index] = result
    roots = _managed_roots(env)
    return [_build(c, r, roots) for c, r in zip(candidates, results, strict=True)]


def _build(
    cand: Candidate, result: _Probed | str | None, roots: Sequence[tuple[Kind, str]]
) -> Interpreter:
    if not isinstance(result, _Probed):
        return Interpreter(executable=str(cand.path), source=cand.source, error=result or "unknown")
    facts = result.facts
    executable = facts.executable if is_shim(cand.path) and facts.executable else str(cand.path)
    return Interpreter(
        executable=executable,
        version=facts.version,
        implementation=facts.implementation,
        architecture=facts.machine,
        free_threaded=facts.free_threaded,
        kind=_kind(facts, roots),
        source=cand.source,
        prefix=facts.prefix,
        externally_managed=externally_managed(facts),
        tags=result.tags,
        markers=dict(facts.markers),
    )


def _managed_roots(env: Mapping[str, str]) -> tuple[tuple[Kind, str], ...]:
    """Where pyenv and uv keep their Pythons, resolved once per probe run for _kind."""
    pyenv = pyenv_root(env)
    roots: tuple[tuple[Kind, Path | None], ...] = (
        ("pyenv", pyenv / "versions" if pyenv else None),
        ("uv", uv_python_dir(env)),
    )
    return tuple((kind, os.path.realpath(root)) for kind, root in roots if root is not None)


def _kind(facts: ProbeFacts, roots: Sequence[tuple[Kind, str]]) -> Kind:
    if os.path.isdir(os.path.join(facts.prefix, "conda-meta")):
        return "conda"
    if facts.in_venv:
        return "venv"
    base = os.path.realpath(facts.base_prefix)
    for kind, root in roots:
        if is_under(base, root):
            return kind
    return "system"


def _order_key(interp: Interpreter, index: int) -> tuple[int, tuple[int, ...], int]:
    newest: tuple[int, ...] = ()
    if interp.source in _NEWEST_FIRST:
        newest = (1,) if interp.error else (0, *(-n for n in version_tuple(interp.version)))
    return (_RANK.get(interp.source, len(_RANK)), newest, index)
