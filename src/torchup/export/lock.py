"""``torchup lock``: a PEP 751 ``pylock.toml`` for a :class:`~torchup.choose.plan.Plan`.

torchup does not resolve dependencies itself: uv does, with the torch family pinned to
the plan's files and only the plan's sources::

    uv pip compile - --format pylock.toml --no-config --no-header --quiet
        --python-version 3.11.7 --python-platform x86_64-manylinux_2_28
        --index-strategy unsafe-best-match
        --index-url <the variant index> --extra-index-url <pip's index> ...
        --find-links ...                     (stdin: torch==2.8.0+cpu, torchvision==...)

``--index-strategy unsafe-best-match`` is pip's rule (every index is read and the best
version wins), so the lock holds what the plan's own ``pip install`` command would
install. uv's result is then checked against the plan: every torch-family package in
it must be the plan's exact file (same file name, same sha256), else
:class:`~torchup.export.pylock.LockMismatchError`; it is never silently swapped.

Files whose size the index did not give (PEP 503 HTML pages carry none) are asked for
with a header-only request; a ``file://`` or local path is looked at on disk. URLs are
written credential-free (see :mod:`torchup.export.pylock`).

:func:`torchup.export.lockcheck.check_lock` answers ``torchup lock --check``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from torchup import __version__
from torchup.errors import RunnerError, UsageError
from torchup.export._probe import load_sizes, probe_all, save_sizes, session_for
from torchup.export.pylock import (
    FAMILY,
    FamilyFile,
    Lock,
    LockedFile,
    LockError,
    LockMismatchError,
    MadeFor,
    filename_of,
    parse_lock,
    render_lock,
    requirements_text,
    strip_credentials,
)
from torchup.index.pages import redact

if TYPE_CHECKING:
    from torchup.choose.plan import Plan
    from torchup.index.http import HttpSession
    from torchup.index.sources import Sources
    from torchup.interpreters.discover import Interpreter

__all__ = [
    "SCHEMA",
    "LockResult",
    "check_agrees",
    "compile_command",
    "lock",
    "lock_text",
    "make_lock",
    "make_lock_with_freshness",
    "python_platform",
]

log = logging.getLogger(__name__)

SCHEMA = 1
#: uv's ``--python-platform`` manylinux values (uv 0.13), newest first
_UV_MANYLINUX = (40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 28, 17)
#: uv settings that may pass through: where its cache is and how it talks, never sources
_UV_KEEP = ("UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS",
            "UV_KEYRING_PROVIDER", "UV_NO_CACHE", "UV_OFFLINE")  # fmt: skip
#: the markers written into [tool.torchup]: the target's, not the host's kernel
_MARKERS = ("implementation_name", "os_name", "platform_machine", "platform_system",
            "platform_python_implementation", "python_full_version", "python_version",
            "sys_platform")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class LockResult:
    """What :func:`lock` wrote: the lock, where, and the resolver command (redacted)."""

    path: Path
    lock: Lock
    requirements_path: Path | None
    command: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    #: until when the same plan gives this lock again (epoch seconds; 0.0: it is made
    #: afresh each time); not serialised
    fresh_until: float = 0.0
    #: each file written, with its bytes as written (what a replay writes again); not
    #: serialised
    written: tuple[tuple[Path, bytes], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "path": str(self.path),
            "requirements_path": str(self.requirements_path) if self.requirements_path else None,
            "command": list(self.command),
            "warnings": list(self.warnings),
            "lock": self.lock.to_dict(),
        }


# -- the uv command --------------------------------------------------------------------


def python_platform(py: Interpreter) -> str:
    """uv's ``--python-platform`` name for the interpreter, from its markers and tags.

    On Linux the newest manylinux level among its tags (``x86_64-manylinux_2_28``), or
    musl. Raises :class:`LockError` for a platform uv cannot resolve for.
    """
    system = py.markers.get("sys_platform", "")
    machine = py.markers.get("platform_machine", "").lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64",
            "x86": "i686", "i686": "i686", "i386": "i686"}.get(machine)  # fmt: skip
    if system == "darwin" and arch in ("x86_64", "aarch64"):
        return f"{arch}-apple-darwin"
    if system == "win32" and arch is not None:
        return f"{arch}-pc-windows-msvc"
    if system == "linux" and arch in ("x86_64", "aarch64"):
        if any("musllinux" in t for t in py.tags):
            return f"{arch}-unknown-linux-musl"
        levels = [int(t.split("_")[2]) for t in _platforms(py) if t.startswith("manylinux_2_")]
        glibc = max(levels, default=17)
        level = next((v for v in _UV_MANYLINUX if v <= glibc), 17)
        return f"{arch}-manylinux_2_{level}"
    raise LockError(
        f"uv cannot resolve for {system or 'an unknown OS'} {machine or '?'} "
        f"(Python {py.version} at {py.executable})",
        hint="lock on (or for) linux x86_64/aarch64, macOS or Windows",
    )


def _platforms(py: Interpreter) -> set[str]:
    return {t.split("-")[2] for t in py.tags if t.count("-") == 2}


def _index_args(plan: Plan) -> tuple[list[str], dict[str, Any]]:
    """The source arguments for uv (real URLs: uv needs the credentials) and the same
    sources credential-free, as recorded in the lock and its requirements form."""
    sources = plan.sources
    indexes = [plan.variant_index] if plan.variant_index else []
    indexes += [s.url for s in sources.index_urls() if s.url not in indexes]
    links = [s.url for s in sources.find_links]
    args: list[str] = []
    if sources.no_index:
        args.append("--no-index")
    elif indexes:
        args += ["--index-url", indexes[0]]
        args += [a for u in indexes[1:] for a in ("--extra-index-url", u)]
    args += [a for u in links for a in ("--find-links", u)]
    args += [a for h in sources.trusted_hosts for a in ("--allow-insecure-host", h)]
    recorded = {
        "no_index": sources.no_index,
        "index_url": strip_credentials(indexes[0]) if indexes and not sources.no_index else None,
        "extra_index_urls": [strip_credentials(u) for u in indexes[1:]]
        if not sources.no_index
        else [],
        "find_links": [strip_credentials(u) for u in links],
    }
    return args, recorded


def _pins(plan: Plan) -> list[str]:
    """The requirements handed to uv: each planned file pinned exactly (extras kept),
    then any requested requirement the plan did not pin, as asked."""
    from packaging.requirements import Requirement

    from torchup.choose.plan import exact_pin

    asked = {canonicalize_name(r.name): r for r in map(Requirement, plan.requirements)}
    pins = []
    for p in plan.packages:
        req = asked.pop(canonicalize_name(p.name), None)
        extras = f"[{','.join(sorted(req.extras))}]" if req is not None and req.extras else ""
        pins.append(exact_pin(p.name, p.version, extras))
    return pins + [str(r) for r in asked.values()]


def compile_command(
    plan: Plan, *, uv: str, offline: bool = False, refresh: bool = False
) -> tuple[list[str], str]:
    """The ``uv pip compile`` argv and the requirements it reads on stdin (``refresh``:
    uv revalidates every page it has cached, for a check of the index as it is now)."""
    py = plan.python
    argv = [uv, "pip", "compile", "-", "--format", "pylock.toml", "--no-config",
            "--no-header", "--quiet", "--python-version", py.version,
            "--python-platform", python_platform(py),
            "--index-strategy", "unsafe-best-match"]  # fmt: skip
    argv += _index_args(plan)[0]
    if offline:
        argv.append("--offline")
    if refresh:
        argv.append("--refresh")
    return argv, "".join(f"{pin}\n" for pin in _pins(plan))


def _uv_env(env: Mapping[str, str], sources: Sources, py: Interpreter) -> dict[str, str]:
    """``env`` without uv settings that add sources or change the resolution (only the
    plan's sources count); pip's CA bundle, when it has one, for uv too; for macOS the
    target's version as ``MACOSX_DEPLOYMENT_TARGET`` (uv otherwise assumes an old macOS
    of its own, and a lock for a newer Mac misses the wheels built for it)."""
    out = {k: v for k, v in env.items() if not k.startswith("UV_") or k in _UV_KEEP}
    out.pop("MACOSX_DEPLOYMENT_TARGET", None)
    if sources.cert is not None:
        out["SSL_CERT_FILE"] = sources.cert.url
    macos = macos_version(py)
    if macos is not None:
        out["MACOSX_DEPLOYMENT_TARGET"] = macos
    return out


def macos_version(py: Interpreter) -> str | None:
    """The newest macOS version among a macOS interpreter's tags (``14.0``), else ``None``.

    >>> from torchup.interpreters.discover import Interpreter
    >>> macos_version(Interpreter(executable="p", version="3.12.1", tags=(
    ...     "cp312-cp312-macosx_14_0_arm64", "cp312-cp312-macosx_11_0_arm64")))
    '14.0'
    """
    found = {tuple(int(n) for n in t.split("macosx_")[1].split("_")[:2])
             for t in py.tags if "-macosx_" in t}  # fmt: skip
    return ".".join(map(str, max(found))) if found else None


def _redact_text(text: str) -> str:
    """Every URL's password in free text hidden, as :func:`redact` does for one URL.

    >>> _redact_text("failed: http://u:pw@h/simple/x/ (401)")
    'failed: http://u:****@h/simple/x/ (401)'
    """
    import re

    return re.sub(r"(://[^/@\s:]+):[^@\s/]+@", r"\1:****@", text)


def _run_uv(
    argv: Sequence[str],
    stdin: str,
    env: Mapping[str, str],
    timeout: float,
    started: Callable[[], object] | None = None,
) -> str:
    from torchup.runner import run

    shown = " ".join(redact(a) for a in argv)
    try:
        return run(argv, env=env, stdin=stdin, timeout=timeout, started=started).stdout
    except RunnerError as exc:
        said = _redact_text(exc.output or str(exc)).strip()[-2000:]
        raise LockError(
            f"uv could not lock the plan: {said}\n  command: {shown}",
            hint="the plan's files resolve, but a dependency does not from these sources; "
            "add the index that has it (--extra-index-url / --find-links)",
        ) from None


# -- checking uv's result against the plan ---------------------------------------------


def check_agrees(plan: Plan, lock: Lock) -> list[str]:
    """Raise :class:`LockMismatchError` unless every planned package is in ``lock`` as
    the plan's exact file and no other torch-family package is there; return warnings
    (a planned file whose index gave no hash to compare)."""
    problems: list[str] = []
    warnings: list[str] = []
    planned = {canonicalize_name(p.name): p for p in plan.packages}
    for name, p in planned.items():
        got = lock.package(name)
        names = [f.filename for f in got.files] if got is not None else []
        if got is None:
            problems.append(f"{name} is not in uv's lock; the plan chose {p.filename}")
        elif names != [p.filename]:
            problems.append(
                f"{name}: uv locked {', '.join(names)}; the plan chose {p.filename} "
                f"from {redact(p.index)}"
            )
        elif p.sha256 is None:
            warnings.append(f"{p.filename}: its index gave no sha256 to check uv's against")
        elif got.files[0].sha256 != p.sha256.lower():
            problems.append(
                f"{p.filename}: sha256 {got.files[0].sha256} in uv's lock, {p.sha256} in the "
                f"plan (the file on {redact(p.index)} changed since it was planned)"
            )
    for pkg in lock.packages:
        name = canonicalize_name(pkg.name)
        if name in FAMILY and name not in planned:
            problems.append(
                f"{name} {pkg.version} is in uv's lock as a dependency, but the plan did not "
                f"choose it (ask for it too, so that its build is chosen with torch's)"
            )
    if problems:
        raise LockMismatchError(
            "the lock uv made does not hold the files the plan chose:\n"
            + "\n".join(f"  - {p}" for p in problems),
            hint="plan again (the index changed), then lock; torchup never swaps a file",
        )
    return warnings


# -- sizes ------------------------------------------------------------------------------


class _Sizes:
    """The size requests of one lock, on one session made while uv resolves.

    :meth:`start` asks, in a thread, for the sizes of the plan's own files that their
    index did not give (the PyTorch index's HTML pages give none) and makes the HTTP
    client the later requests use (building its TLS context costs tens of
    milliseconds, hidden behind uv). :meth:`early` waits and gives those sizes by
    sha256 (a file that did not answer is asked again later)."""

    def __init__(self, plan: Plan, cache: Path) -> None:
        import threading

        self.session = session_for(plan.sources)
        remembered = load_sizes(cache)
        self._wanted = [
            (p.sha256, strip_credentials(p.dist.url))
            for p in plan.packages
            if p.dist is not None and not p.dist.size and p.sha256 and p.sha256 not in remembered
        ]
        self._found: dict[str, int] = {}
        self._worker = threading.Thread(target=self._ask, name="torchup-lock-sizes", daemon=True)

    def start(self) -> None:
        self._worker.start()

    def _ask(self) -> None:
        self.session.client()  # made now, while uv runs
        answers = probe_all(self.session, [url for _, url in self._wanted])
        self._found.update({sha: size for (sha, _), (size, _) in zip(self._wanted, answers,
                                                                      strict=True)
                            if size is not None})  # fmt: skip

    def early(self) -> dict[str, int]:
        if self._worker.ident is not None:
            self._worker.join()
        return self._found

    def close(self) -> None:
        self.early()
        self.session.close()


def _with_sizes(
    lock: Lock,
    plan: Plan,
    cache: Path | None,
    early: Mapping[str, int] | None = None,
    session: HttpSession | None = None,
) -> Lock:
    """``lock`` with every file's size: the index's, the plan's, the one remembered for
    its sha256 in ``cache`` (a file's size never changes while its hash stays), else
    asked for (on ``session``, else a new one) and remembered."""
    known = {p.dist.sha256: p.dist.size for p in plan.packages if p.dist and p.dist.size}
    known.update(load_sizes(cache) if cache is not None else {})
    known.update(early or {})
    missing = [f.url for _, f in lock.files() if f.size is None and f.sha256 not in known]
    probed: dict[str, tuple[int | None, str]] = {}
    if missing:
        own = session is None
        session = session_for(plan.sources) if session is None else session
        try:
            probed = dict(zip(missing, probe_all(session, missing), strict=True))
        finally:
            if own:
                session.close()
    bad = [
        f"{filename_of(u)}: {why or f'{redact(u)} gives no Content-Length'}"
        for u, (size, why) in probed.items()
        if size is None
    ]
    if bad:
        raise LockError(
            "cannot tell the size of every locked file:\n" + "\n".join(f"  - {b}" for b in bad),
            hint="check that the sources are reachable, then lock again",
        )

    def sized(f: LockedFile) -> LockedFile:
        if f.size is not None:
            return f
        size = known.get(f.sha256)
        return replace(f, size=size if size is not None else probed[f.url][0])

    done = replace(
        lock, packages=tuple(replace(p, files=tuple(map(sized, p.files))) for p in lock.packages)
    )
    if cache is not None and (probed or early):
        save_sizes(cache, {f.sha256: f.size for _, f in done.files() if f.size is not None})
    return done


# -- making a lock ---------------------------------------------------------------------


def _made_for(plan: Plan, recorded: dict[str, Any], platform: str) -> MadeFor:
    py = plan.python
    files = tuple(
        FamilyFile(
            name=p.name,
            version=p.version,
            filename=p.filename,
            sha256=p.sha256,
            index=strip_credentials(p.index),
        )
        for p in plan.packages
    )
    return MadeFor(
        torchup=__version__,
        requirements=plan.requirements,
        python_version=py.version,
        implementation=py.implementation,
        free_threaded=py.free_threaded,
        platform=platform,
        tag=py.tags[0] if py.tags else "",
        tag_count=len(py.tags),
        markers={k: py.markers[k] for k in _MARKERS if k in py.markers},
        backend=plan.backend.name,
        variant=plan.backend.variant,
        release=plan.release,
        accelerator=plan.accelerator.to_dict() if plan.accelerator is not None else None,
        sources=recorded,
        files=files,
    )


def _environment(py: Interpreter) -> tuple[str, ...]:
    m = py.markers
    keys = ("sys_platform", "platform_machine", "implementation_name", "python_version")
    if not all(k in m for k in keys):
        return ()
    return (" and ".join(f"{k} == {m[k]!r}" for k in keys),)


def _index_of(page: str, name: str) -> str | None:
    """The index a project page belongs to (``.../whl/cpu/torch/`` -> ``.../whl/cpu``)."""
    url = strip_credentials(page).rstrip("/")
    head, _, last = url.rpartition("/")
    return head if canonicalize_name(last) == canonicalize_name(name) else None


def make_lock(
    plan: Plan,
    *,
    uv: str,
    env: Mapping[str, str] | None = None,
    offline: bool = False,
    refresh: bool = False,
    timeout: float = 600.0,
) -> tuple[Lock, tuple[str, ...], tuple[str, ...]]:
    """The lock for ``plan`` in memory: ``(lock, the uv command redacted, warnings)``.

    Raises :class:`LockError` (the plan has problems, uv fails, a size is unknowable)
    and :class:`LockMismatchError` (uv's files are not the plan's)."""
    made, command, warnings, _ = make_lock_with_freshness(
        plan, uv=uv, env=env, offline=offline, refresh=refresh, timeout=timeout
    )
    return made, command, warnings


def make_lock_with_freshness(
    plan: Plan,
    *,
    uv: str,
    env: Mapping[str, str] | None = None,
    offline: bool = False,
    refresh: bool = False,
    timeout: float = 600.0,
) -> tuple[Lock, tuple[str, ...], tuple[str, ...], float]:
    """:func:`make_lock`, and until when the same plan gives the same lock (epoch
    seconds): the earlier of the plan's :attr:`~torchup.choose.plan.Plan.fresh_until`
    and uv's remembered answer's; ``0.0`` when uv's answer is not remembered (a local
    source, credentials, ``refresh``)."""
    if not plan.ok:
        raise LockError(
            "the plan has problems, so there is nothing to lock: "
            + "; ".join(o.message for o in plan.problems),
            hint="`torchup plan` says why; lock a request that plans",
        )
    from torchup._paths import cache_dir

    env = dict(os.environ) if env is None else env
    argv, stdin = compile_command(plan, uv=uv, offline=offline, refresh=refresh)
    if plan.python.free_threaded:
        raise LockError(
            f"uv cannot lock for a free-threaded Python ({plan.python.version}t): its "
            f"--python-version takes {plan.python.version}, for which it looks for cp"
            f"{''.join(plan.python.version.split('.')[:2])} wheels, not the planned "
            f"{plan.packages[0].filename if plan.packages else 'files'}",
            hint="on that machine, install with `torchup install` (it resolves with the "
            "interpreter's own tags), or lock for a Python with the GIL",
        )
    uv_env = _uv_env(env, plan.sources, plan.python)
    cache = cache_dir(env)
    asking = _Sizes(plan, cache / "lock" / "sizes.json")
    try:
        made, command, warnings, until = _locked(plan, argv, stdin, uv_env, timeout, cache, asking)
    finally:
        asking.close()
    return made, command, warnings, min(until, plan.fresh_until)


def _locked(  # noqa: PLR0917 (make_lock's steps, in order)
    plan: Plan,
    argv: Sequence[str],
    stdin: str,
    uv_env: Mapping[str, str],
    timeout: float,
    cache: Path,
    asking: _Sizes,
) -> tuple[Lock, tuple[str, ...], tuple[str, ...], float]:
    """uv's lock (or the one remembered for this command), checked against the plan,
    with the indexes, the machine it is for and every size (asked for while uv runs);
    and until when uv's answer is remembered (``0.0``: it is not)."""
    import time

    from torchup.export import resolved

    key = resolved.cache_key(argv, stdin, uv_env, [p.sha256 for p in plan.packages])
    recalled = resolved.recall(cache, key) if key else None
    if recalled is not None:
        text, until = recalled
    else:
        # the size requests start once uv runs: starting their thread waits for it to
        # take the GIL, which building its TLS context holds for milliseconds
        text = _run_uv(argv, stdin, uv_env, timeout, started=asking.start)
        until = 0.0
        if key:
            resolved.remember(cache, key, text)
            until = time.time() + resolved.MAX_AGE
    raw = parse_lock(text, where="uv's lock")
    warnings = check_agrees(plan, raw)
    indexes = {canonicalize_name(p.name): _index_of(p.index, p.name) for p in plan.packages}
    packages = tuple(
        replace(
            p,
            index=p.index or indexes.get(canonicalize_name(p.name)),
            files=tuple(replace(f, url=strip_credentials(f.url)) for f in p.files),
        )
        for p in raw.packages
    )
    py = plan.python
    made = _made_for(plan, _index_args(plan)[1], argv[argv.index("--python-platform") + 1])
    lock = Lock(
        packages=packages,
        requires_python=f"=={'.'.join(py.version.split('.')[:2])}.*",
        environments=_environment(py),
        made_for=made,
    )
    _fits_its_target(lock, py)
    sizes = cache / "lock" / "sizes.json"
    sized = _with_sizes(lock, plan, sizes, asking.early(), asking.session)
    return sized, tuple(redact(a) for a in argv), tuple(warnings), until


def _fits_its_target(lock: Lock, py: Interpreter) -> None:
    """Raise :class:`LockError` when a file uv chose does not install on the Python the
    lock is for (uv resolves for a platform name and a version, not the interpreter's
    exact tags): a lock that would be refused where it is used is never written."""
    from torchup.export.fit import lock_fits

    fit = lock_fits(lock, py, None)
    if fit.ok:
        return
    why = "\n".join(f"  - {r}" for r in fit.reasons)
    raise LockError(
        f"uv's lock holds files that do not install on Python {py.version}:\n{why}",
        hint="lock again with --refresh; if it persists, the index lists files for other "
        "tags under these versions",
    )


def _header(lock: Lock, command: Sequence[str]) -> list[str]:
    made = lock.made_for
    assert made is not None
    variant = made.variant or "none (pip's sources)"
    return [
        f"made by torchup {made.torchup} for Python {made.python_version} "
        f"({made.tag}, {made.platform}); torch variant {variant}",
        "URLs are written without credentials: pip and uv take them from netrc or a keyring",
        "resolved by: " + " ".join(["uv", *command[1:]]),
    ]


def lock_text(made: Lock, command: Sequence[str]) -> str:
    """The lock as written to ``pylock.toml``: PEP 751 TOML under a comment header that
    says what it was made for and the resolver command (redacted)."""
    return render_lock(made, header=_header(made, command))


def lock(
    plan: Plan,
    *,
    output: Path,
    uv: str,
    requirements: Path | None = None,
    force: bool = False,
    env: Mapping[str, str] | None = None,
    offline: bool = False,
    refresh: bool = False,
    timeout: float = 600.0,
) -> LockResult:
    """Write the PEP 751 lock for ``plan`` to ``output`` (and, with ``requirements``, its
    hash-pinned requirements form), each through a temporary sibling renamed over it.

    ``uv`` is the uv executable (:func:`torchup.envs.installers.find_uv` finds one).
    Raises :class:`UsageError` when an output exists and ``force`` is false (checked
    before uv runs), and what :func:`make_lock` raises.
    """
    for path in (output, requirements):
        if path is not None and path.exists() and not force:
            raise UsageError(
                f"{path} exists", hint="pass --force to replace it, or -o another path"
            )
    from torchup._paths import write_outputs

    made, command, warnings, fresh_until = make_lock_with_freshness(
        plan, uv=uv, env=env, offline=offline, refresh=refresh, timeout=timeout
    )
    header = _header(made, command)
    text = render_lock(made, header=header)
    files = [(output, text.encode("utf-8"))]
    if requirements is not None:
        pip_form = requirements_text(
            made, header=[*header, "install: pip install --require-hashes -r"]
        )
        files.append((requirements, pip_form.encode("utf-8")))
    write_outputs(files, force=True)  # both or neither: never a lock beside another's pins
    return LockResult(
        path=output,
        lock=replace(parse_lock(text, where=str(output)), path=output),
        requirements_path=requirements,
        command=command,
        warnings=warnings,
        fresh_until=fresh_until,
        written=tuple(files),
    )
