"""Running the installer's steps into a staged environment: each command as a child
process that inherits the target's lock, the sha256 of local files checked beside it,
and, when one fails, the lines of its output that say why.

A part of :mod:`torchup.envs.installing`'s transaction, which stages before and
verifies and commits after.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from torchup.errors import RunnerError
from torchup.index.pages import redact

if TYPE_CHECKING:
    from torchup.choose.plan import Plan
    from torchup.envs.installers import InstallerChoice
    from torchup.envs.staging import Staging

__all__ = ["local_family_files", "run_installer"]


def run_installer(
    steps: Sequence[Sequence[str]],
    local: Mapping[str, tuple[Path, str]],
    staging: Staging,
    env: Mapping[str, str],
    echo: bool,
) -> str | None:
    """Run the steps into the staged environment, the lock inherited, while ``local``'s
    hashes are checked; what went wrong (as the user should read it), or ``None``."""
    hash_check = _start_hash_check(local, env)
    for argv in steps:
        done = _run_step(argv, env, echo, staging.lock_fds)
        if done is not None:
            said = done.replace(str(staging.work), str(staging.target.path))
            return f"{said}; nothing was changed"
    # before anything runs in the staged environment (verify), or it is committed
    mismatch = hash_check()
    return None if mismatch is None else f"{mismatch}; everything was undone"


def local_family_files(result: Plan, choice: InstallerChoice) -> dict[str, tuple[Path, str]]:
    """The family's files that lie on this disk, with their listed sha256, for uv.

    uv hashes a wheel it is asked to verify at a fraction of OpenSSL's speed (half a
    second for torch's 190 MB here, most of a cold install's difference from bare uv), so
    a local file is handed to uv as the exact file and torchup checks its sha256 with
    hashlib while uv installs (:func:`_start_hash_check`). pip hashes with hashlib
    itself: it keeps the pins and their hashes.
    """
    from torchup.index.urls import file_url_to_path

    if choice.name != "uv":
        return {}
    return {
        p.name: (file_url_to_path(p.dist.url.partition("#")[0]), p.sha256)
        for p in result.packages
        if p.dist is not None and p.sha256 and p.dist.url.startswith("file:")
    }


def _start_hash_check(
    files: Mapping[str, tuple[Path, str]], env: Mapping[str, str]
) -> Callable[[], str | None]:
    """Hash ``files`` in a thread while the installer runs; the returned function waits
    and says what does not match (``None`` when all do).

    Safe to overlap because the installer writes only the staged environment: a file
    whose bytes are not the listed ones is never run (verify waits for the answer) and
    never committed. Digests are cached by size and mtime, like the pages.
    """
    if not files:
        return lambda: None
    import threading

    from torchup._paths import cache_dir
    from torchup.index.cache import FileHashCache

    found: list[str | None] = []

    def check() -> None:
        cache = FileHashCache(cache_dir(env))
        for path, listed in files.values():
            try:
                digest = cache.sha256(path)
            except OSError as exc:
                found.append(f"cannot read {path} to check its hash: {exc.strerror or exc}")
                return
            if digest != listed:
                found.append(
                    f"{path} does not match the index's hash: sha256 {digest}, the index "
                    f"lists {listed} (the file changed after the index was written)"
                )
                return
        found.append(None)

    worker = threading.Thread(target=check, name="torchup-hash-check", daemon=True)
    worker.start()

    def wait() -> str | None:
        worker.join()
        return found[0] if found else "the hash check of the local files did not finish"

    return wait


def _run_step(
    argv: Sequence[str], env: Mapping[str, str], echo: bool, keep_fds: Sequence[int] = ()
) -> str | None:
    """Run one step; return what went wrong, or ``None``. ``keep_fds`` (the target's
    lock) are inherited, so the lock stays held while the installer runs."""
    from torchup.runner import stream

    # uv refuses --verify-hashes alongside this variable; the hashes are not optional
    env = {k: v for k, v in env.items() if k != "UV_NO_VERIFY_HASHES"}
    # the user site is not the target: pip would see a torch there as installed and
    # uninstall it (--force-reinstall), from under every Python of that version
    env["PYTHONNOUSERSITE"] = "1"
    try:
        done = stream(argv, env=env, echo=echo, keep_fds=keep_fds)
    except RunnerError as exc:
        return exc.message
    if done.returncode != 0:
        shown = " / ".join(
            _URL_IN_TEXT.sub(lambda m: redact(m.group()), ln) for ln in _why(done.stdout)
        )
        if "No module named pip" in done.stdout:
            shown += (
                f" (this environment has no pip: pass --installer uv, or add pip with "
                f"`{argv[0]} -m ensurepip`)"
            )
        return f"{Path(argv[0]).name} exited with status {done.returncode}: {shown}"
    return None


def _why(output: str) -> list[str]:
    r"""The lines of an installer's output that say why it failed: the first error, uv's
    first cause (``cause: Hash mismatch for ...``), the first URL, and the last four lines
    (a hash's expected and computed values). pip's ``[notice]`` and ``WARNING:`` lines
    are never the reason.

    >>> _why("Resolved 1 package\nerror: Failed to download `t`\n  cause: Hash mismatch\n"
    ...      "  Expected:\n    sha256:ab\n  Computed:\n    sha256:cd\n")[:2]
    ['error: Failed to download `t`', 'cause: Hash mismatch']
    """
    said = [
        ln.strip()
        for ln in output.splitlines()
        if ln.strip() and not ln.strip().startswith(("[notice]", "WARNING:"))
    ]
    start = next((i for i, ln in enumerate(said) if ln.lower().startswith("error")), 0)
    causes = ("cause:", "caused by:", "\u2570\u2500\u25b6")  # uv's "╰─▶" chain, too
    cause = next((ln for ln in said[start + 1 :] if ln.lower().startswith(causes)), None)
    url = next((ln for ln in said[start:] if "://" in ln), None)
    first = [said[start]] if said else []
    return list(dict.fromkeys([*first, *filter(None, (cause, url)), *said[-4:]]))


_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://[^\s`'\"<>]+", re.IGNORECASE)
