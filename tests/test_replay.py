"""``torchup lock`` run again with nothing changed is answered from its last run
(torchup/cli/replay.py): the real CLI in a subprocess, real uv, the local sites of
tests/test_lock.py on 127.0.0.1.

Whether a run was replayed is seen from outside: before the second run the page,
interpreter and resolution caches are deleted, so a run that plans asks the server for
pages again (the server logs every request) and probes the interpreter again (its cache
comes back); a replayed run does neither and still writes the same lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import localindex
from test_lock import DEPENDENCIES, lock_env, needs_uv, publish_family, publish_simple
from test_plan import PYENV, pyenv
from torchup.cli.replay import Pending, cache_root

FAMILY = ("torch==2.8.0", "torchvision", "torchaudio")


class Site:
    """The two local indexes, served, and the log of what was asked of them."""

    def __init__(self, served: localindex.Served) -> None:
        self.served = served
        self.torch_url = served.url
        self.simple = served.url.removesuffix("/whl") + "/simple"

    def sources(self) -> list[str]:
        return ["--torch-index-url", self.torch_url, "--index-url", self.simple]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "site"
    publish_family(root)
    publish_simple(root, DEPENDENCIES)
    with localindex.serve(root) as served:
        yield Site(served)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return lock_env(tmp_path)


def torchup(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchup", *args],
        env=env, cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip


def forget_all_but_replays(env: dict[str, str]) -> Path:
    """Delete every cache but the replay entries: a run that plans must ask again."""
    cache = Path(env["TORCHUP_CACHE_DIR"])
    for part in cache.iterdir():
        if part.name != "replay":
            shutil.rmtree(part) if part.is_dir() else part.unlink()
    return cache


def replayed(site: Site, env: dict[str, str], args: list[str], cwd: Path) -> bool:
    """Run ``args`` after forgetting the caches; whether it was answered by a replay
    (it succeeded and asked the server nothing, so it planned nothing)."""
    cache = forget_all_but_replays(env)
    site.served.requested.clear()
    done = torchup(env, *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    if site.served.requested:
        return False
    assert not (cache / "interpreters").exists()  # no Python was probed either
    return True


def lock_args(site: Site, *extra: str) -> list[str]:
    return ["lock", *FAMILY, "--python", pyenv("3.11"), "--backend", "cpu", *site.sources(),
            *extra]  # fmt: skip


def aged(*paths: Path) -> None:
    """Date ``paths`` 10 s back: a file changed within 2 s of a run's start may have
    changed after the run read it, and that run is not remembered (replay._RACY_NS)."""
    for path in paths:
        then = time.time() - 10
        os.utime(path, (then, then))


def entries(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["TORCHUP_CACHE_DIR"]) / "replay").glob("*"))


# -- what is replayed ----------------------------------------------------------------


@needs_uv
@pytest.mark.parametrize(
    "output", [["-o", "pylock.toml", "--requirements-txt", "req.txt"], ["--json"], ["-o", "-"]]
)
def test_the_same_lock_again_is_written_again_without_planning_or_uv(
    tmp_path: Path, site: Site, env: dict[str, str], output: list[str]
) -> None:
    args = lock_args(site, "--force", *output)
    first = torchup(env, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = {p.name: p.read_bytes() for p in tmp_path.glob("*.t*") if p.is_file()}
    for path in written:
        (tmp_path / path).unlink()  # the replay writes them again
    again = torchup(env, *args, cwd=tmp_path)
    assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, "")
    assert {p: (tmp_path / p).read_bytes() for p in written} == written
    assert replayed(site, env, args, tmp_path)
    if "-o" in output and "-" not in output:
        assert (tmp_path / "pylock.toml").stat().st_mode & 0o777 == 0o644
        assert "wrote " in again.stdout
        assert "torch-2.8.0+cpu" in again.stdout
    if "--json" in output:
        assert json.loads(again.stdout)["ok"] is True


@needs_uv
def test_a_changed_environment_or_argument_is_planned_afresh(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    args = lock_args(site, "--force", "-q")
    assert torchup(env, *args, cwd=tmp_path).returncode == 0
    assert replayed(site, env, args, tmp_path)
    assert not replayed(site, {**env, "TORCHUP_SOMETHING": "1"}, args, tmp_path)
    assert not replayed(site, env, [*args, "-o", "other.toml"], tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert not replayed(site, env, args, other)  # another working folder
    # the shell's own bookkeeping is not part of the key
    assert replayed(site, {**env, "SHLVL": "7", "OLDPWD": "/"}, args, tmp_path)


@needs_uv
def test_a_profile_that_changed_is_planned_afresh(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    node = tmp_path / "node.json"
    made = torchup(env, "profile", "--python", pyenv("3.11"), "-o", str(node), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    aged(node)
    args = ["lock", *FAMILY, "--for", "node.json", *site.sources(), "--force", "-q"]
    assert torchup(env, *args, cwd=tmp_path).returncode == 0
    assert replayed(site, env, args, tmp_path)
    doc = json.loads(node.read_text())
    node.write_text(json.dumps(doc, indent=1))  # the same machine, another file
    aged(node)
    assert not replayed(site, env, args, tmp_path)
    assert replayed(site, env, args, tmp_path)  # remembered again


@needs_uv
def test_an_answer_is_replayed_only_while_its_pages_are_fresh(
    tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "site"
    publish_family(root)
    publish_simple(root, DEPENDENCIES)
    with localindex.serve(root, max_age=2) as served:
        site = Site(served)
        args = lock_args(site, "--force", "-q")
        began = time.time()
        assert torchup(env, *args, cwd=tmp_path).returncode == 0
        if time.time() - began < 1.5:  # else the pages went stale during the first run
            assert replayed(site, env, args, tmp_path)
        time.sleep(max(0.0, began + 2.5 - time.time()))
        assert not replayed(site, env, args, tmp_path)


@needs_uv
def test_an_existing_output_is_still_refused_without_force(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    args = lock_args(site, "-q")
    assert torchup(env, *args, cwd=tmp_path).returncode == 0
    kept = (tmp_path / "pylock.toml").read_bytes()
    again = torchup(env, *args, cwd=tmp_path)
    assert again.returncode == 2
    assert "pylock.toml exists" in again.stderr
    assert "--force" in again.stderr
    assert (tmp_path / "pylock.toml").read_bytes() == kept


@needs_uv
@pytest.mark.parametrize(
    ("change", "why"),
    [
        (["--python", "3.11"], "a Python found by discovery"),
        (["--backend", "auto"], "an accelerator found by detection"),
        (["--refresh"], "--refresh asks again"),
        (["-v"], "-v shows the work"),
        (["--find-links", "wheels"], "a local folder changes without saying so"),
        (["--python", "<shim>"], "a pyenv shim picks a Python by .python-version files"),
    ],
)
def test_runs_that_depend_on_more_than_their_inputs_are_never_remembered(
    tmp_path: Path, site: Site, env: dict[str, str], change: list[str], why: str
) -> None:
    (tmp_path / "wheels").mkdir()
    args = ["lock", *FAMILY, "--python", pyenv("3.11"), "--backend", "cpu", *site.sources(),
            "--force", "-q"]  # fmt: skip
    flag = change[0]
    if change[-1] == "<shim>":
        shim = PYENV / "shims" / "python3.11"
        if not shim.is_file():
            pytest.skip("needs pyenv's shims")
        env = {**env, "PYENV_VERSION": Path(pyenv("3.11")).parents[1].name}
        change = ["--python", str(shim)]
    if flag in ("--python", "--backend"):
        at = args.index(flag)
        args[at : at + 2] = change
    else:
        args += change
    done = torchup(env, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert entries(env) == [], why
    assert not replayed(site, env, args, tmp_path), why


# -- the entries themselves ------------------------------------------------------------


def test_an_entry_holds_while_its_inputs_do_and_not_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TORCHUP_CACHE_DIR": str(tmp_path / "cache")}
    monkeypatch.setenv("TORCHUP_CACHE_DIR", env["TORCHUP_CACHE_DIR"])
    named, read = tmp_path / "named.json", tmp_path / "read.conf"
    named.write_text("{}")
    read.write_text("[global]\n")
    aged(named, read)
    argv = ["lock", "torch", "--for", "named.json", "-o", "out.toml"]
    out = tmp_path / "out.toml"

    def record(until: float) -> bool:
        out.write_text("another program's\n")  # what the file holds is not what is kept
        return Pending(argv, env).record(
            until=until,
            inputs=[str(read)],
            outputs=[(str(out), b"the lock\n", False)],
            stdout="wrote it\n",
        )

    assert record(time.time() + 60)
    out.unlink()
    assert Pending(argv, env).replay() == 0
    assert out.read_text() == "the lock\n"
    assert capsys.readouterr().out == "wrote it\n"
    assert Pending(argv, env).replay() is None  # out.toml exists and there was no --force
    out.unlink()
    assert Pending([*argv, "-q"], env).replay() is None  # another command line
    read.write_text("[global]\ntimeout = 5\n")  # an input changed
    aged(read)
    assert Pending(argv, env).replay() is None
    assert record(time.time() + 60)
    out.unlink()
    named.write_text('{"other": 1}')  # a file the arguments name changed
    aged(named)
    assert Pending(argv, env).replay() is None
    assert not record(time.time() - 1)  # stale already: not kept
    for kept in (tmp_path / "cache" / "replay").glob("*"):
        kept.unlink()
    pending = Pending(argv, env)
    time.sleep(0.01)
    read.write_text("[global]\ntimeout = 6\n")  # changed while the run was reading it
    assert not pending.record(until=time.time() + 60, inputs=[str(read)], outputs=[], stdout="")
    assert not list((tmp_path / "cache" / "replay").glob("*"))  # nothing was kept
    aged(read)
    # the modules this process imported are inputs too: torchup's own code among them
    from torchup.cli import replay as module

    assert record(time.time() + 60)
    folder = tmp_path / "cache" / "replay"
    [entry] = folder.glob("*.marshal")
    assert str(module.__file__).encode() in entry.read_bytes()
    # entries older than any can be used (another environment's) go with the next record
    old = folder / "00000000.marshal"
    old.write_bytes(b"stale")
    os.utime(old, (0, 0))
    assert record(time.time() + 60)
    assert list(folder.glob("*")) == [entry]


def test_a_replay_writes_all_of_its_files_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TORCHUP_CACHE_DIR": str(tmp_path / "cache")}
    monkeypatch.setenv("TORCHUP_CACHE_DIR", env["TORCHUP_CACHE_DIR"])
    out = tmp_path / "pylock.toml"
    # the folder takes this name, but not its temporary sibling's (".NAME.RANDOM.tmp"):
    # the second file cannot be written
    pins = tmp_path / ("r" * 240 + ".txt")
    argv = ["lock", "torch", "-o", "pylock.toml", "--requirements-txt", pins.name, "--force"]
    outputs = [(str(out), b"the lock\n", True), (str(pins), b"the pins\n", True)]
    assert Pending(argv, env).record(
        until=time.time() + 60, inputs=[], outputs=outputs, stdout="wrote both\n"
    )
    out.write_text("mine\n")
    assert Pending(argv, env).replay() is None  # the run itself says what is wrong
    assert out.read_text() == "mine\n"  # not replaced without its requirements file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "pylock.toml"]
    assert capsys.readouterr().out == ""


def test_an_unreadable_entry_is_a_miss(tmp_path: Path) -> None:
    env = {"TORCHUP_CACHE_DIR": str(tmp_path)}
    pending = Pending(["lock", "torch"], env, cwd=str(tmp_path))
    assert pending.path is not None
    Path(pending.path).parent.mkdir(parents=True)
    for junk in (b"", b"\x00\x01junk", b"\xe9" * 10):
        Path(pending.path).write_bytes(junk)
        assert pending.replay() is None


def test_an_entry_others_could_have_changed_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TORCHUP_CACHE_DIR": str(tmp_path / "cache")}
    monkeypatch.setenv("TORCHUP_CACHE_DIR", env["TORCHUP_CACHE_DIR"])
    pending = Pending(["lock", "torch", "-o", "-"], env)
    assert pending.record(until=time.time() + 60, inputs=[], outputs=[], stdout="the lock\n")
    assert pending.path is not None
    os.chmod(pending.path, 0o666)
    assert Pending(["lock", "torch", "-o", "-"], env).replay() is None
    os.chmod(pending.path, 0o644)
    assert Pending(["lock", "torch", "-o", "-"], env).replay() == 0
    assert capsys.readouterr().out == "the lock\n"


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG rule is Linux's")
@pytest.mark.parametrize("xdg", [None, "", "  ", "/tmp/xdg-cache"])
def test_the_cache_folder_is_platformdirs_own(
    xdg: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchup._paths import cache_dir

    monkeypatch.delenv("TORCHUP_CACHE_DIR", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert cache_root(os.environ) == str(cache_dir(os.environ))


def test_the_replay_path_imports_nothing_heavy() -> None:
    code = (
        "import sys; from torchup.cli.replay import Pending; Pending(['lock']).replay(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('argparse', 'json', 'pathlib', 'typing', 'platformdirs', 'packaging', 'httpx')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@needs_uv
def test_a_replay_to_a_reader_that_went_away_ends_quietly(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    args = lock_args(site, "-o", "-")
    assert torchup(env, *args, cwd=tmp_path).returncode == 0
    forget_all_but_replays(env)
    site.served.requested.clear()
    child = subprocess.Popen(
        [sys.executable, "-m", "torchup", *args],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stderr is not None
    child.stdout.close()  # `torchup lock -o - | true`
    assert child.wait(timeout=60) == 0
    assert child.stderr.read() == b""
    assert site.served.requested == []  # a replay: nothing was planned


@needs_uv
def test_a_run_that_logged_a_warning_is_not_remembered(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    cache = Path(env["TORCHUP_CACHE_DIR"])
    cache.mkdir()
    (cache / "pages").write_text("not a folder")  # the page cache cannot be written
    args = lock_args(site, "--force", "-q")
    done = torchup(env, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cannot write the page cache" not in done.stderr  # -q hides it, yet it counts
    assert entries(env) == []
