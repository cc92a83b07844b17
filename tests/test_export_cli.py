"""``torchup lock`` and ``torchup wheelhouse`` on the command line: the real CLI in a
subprocess, real uv, real pip, the local sites of tests/test_lock.py on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from ptyrun import on_a_pty
from test_lock import DEPENDENCIES, TAG, env, needs_uv, publish_family, publish_simple, site
from test_plan import pyenv

__all__ = ["env", "site"]  # the fixtures, imported for pytest

Site = tuple[Path, str, str]
FAMILY = ("torch==2.8.0", "torchvision", "torchaudio")


def torchup(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchup", *args],
        env=env, cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip


def sources(site: Site) -> list[str]:
    _root, torch_url, simple = site
    return ["--backend", "cpu", "--torch-index-url", torch_url, "--index-url", simple]


def lock_args(site: Site, *reqs: str) -> list[str]:
    return ["lock", *(reqs or FAMILY), "--python", str(pyenv("3.11")), *sources(site)]


@needs_uv
def test_lock_writes_the_lock_and_the_requirements_form_and_says_how_to_install(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out, reqs = tmp_path / "pylock.toml", tmp_path / "requirements.txt"
    done = torchup(env, *lock_args(site), "-o", str(out), "--requirements-txt", str(reqs))
    assert done.returncode == 0, done.stderr
    doc = tomllib.loads(out.read_text())
    assert {p["name"] for p in doc["packages"]} >= {"torch", "torchvision", "sympy", "mpmath"}
    assert "--require-hashes" not in reqs.read_text() or "--hash=sha256:" in reqs.read_text()
    assert "torch==2.8.0+cpu \\\n    --hash=sha256:" in reqs.read_text()
    assert f"wrote {out}: 9 packages, 9 files" in done.stdout
    assert f"torch-2.8.0+cpu-{TAG}.whl" in done.stdout
    assert f"torchup install --lock {out}" in done.stdout
    assert f"pip install --require-hashes -r {reqs}" in done.stdout


@needs_uv
def test_lock_json_and_stdout(tmp_path: Path, site: Site, env: dict[str, str]) -> None:
    out = tmp_path / "pylock.toml"
    done = torchup(env, *lock_args(site, "torch==2.8.0"), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True
    assert doc["path"] == str(out)
    assert doc["lock"]["made_for"]["variant"] == "cpu"
    names = [p["name"] for p in doc["lock"]["packages"]]
    assert "torch" in names
    assert "filelock" in names
    printed = torchup(env, *lock_args(site, "torch==2.8.0"), "-o", "-")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# made by torchup")
    assert tomllib.loads(printed.stdout)["packages"] == tomllib.loads(out.read_text())["packages"]


@needs_uv
def test_lock_keeps_an_existing_file_and_explains_a_plan_that_does_not_fit(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    out.write_text("mine\n")
    refused = torchup(env, *lock_args(site), "-o", str(out))
    assert refused.returncode == 2
    assert f"{out} exists" in refused.stderr
    assert "--force" in refused.stderr
    assert out.read_text() == "mine\n"
    nothing = torchup(env, *lock_args(site, "torch==9.9"), "-o", str(tmp_path / "other.toml"))
    assert nothing.returncode == 1
    assert "no release of torch matches" in nothing.stdout
    assert not (tmp_path / "other.toml").exists()
    assert "Traceback" not in nothing.stderr + refused.stderr


@needs_uv
def test_lock_check_passes_then_names_what_a_fresh_lock_would_change(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site), "-o", str(out)).returncode == 0
    check = ["lock", "--check", "-o", str(out), "--python", str(pyenv("3.11")), *sources(site)]
    same = torchup(env, *check)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "still installs" in same.stdout
    assert "a fresh lock would be the same" in same.stdout
    publish_simple(site[0], [*DEPENDENCIES, ("filelock", "3.17.0", "py3-none-any", ())])
    moved = torchup(env, *check, "--json")
    assert moved.returncode == 1
    doc = json.loads(moved.stdout)
    assert doc["still_installs"] is True
    assert doc["up_to_date"] is False
    assert [c["text"] for c in doc["changes"]] == ["filelock 3.16.1 -> 3.17.0"]
    other = ["lock", "--check", "-o", str(out), "--python", str(pyenv("3.12")), *sources(site)]
    elsewhere = torchup(env, *other)
    assert elsewhere.returncode == 1
    assert "does not install into Python 3.12" in elsewhere.stdout
    assert "it requires Python ==3.11.*" in elsewhere.stdout
    with_reqs = torchup(env, "lock", "torch", "--check", "-o", str(out))
    assert with_reqs.returncode == 2
    assert "takes none of its own" in with_reqs.stderr


@needs_uv
def test_lock_for_a_machine_described_by_flags_records_it(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    flags = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]
    done = torchup(env, "lock", *FAMILY, *flags, *sources(site), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)["lock"]["made_for"]
    assert made["python"]["version"].startswith("3.11")
    assert made["python"]["platform"] == "x86_64-manylinux_2_28"
    assert made["python"]["tag"].startswith("cp311-cp311-")
    assert made["python"]["tag_count"] > 100  # every tag such a machine accepts


# -- wheelhouse ------------------------------------------------------------------------


@needs_uv
def test_wheelhouse_from_a_lock_prints_a_line_per_file_off_a_terminal_and_reruns_free(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site), "-o", str(out)).returncode == 0
    house = tmp_path / "house"
    done = torchup(env, "wheelhouse", str(house), "--lock", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("torchup: [") == 9  # one line per file, not a redrawn bar
    assert "[9/9]" in done.stderr
    assert "\r" not in done.stderr
    assert f"wrote {house.absolute()}: 9 files" in done.stdout
    assert "python -m http.server -d" in done.stdout
    assert (house / "simple" / "torch" / "index.html").is_file()
    assert (house / "files" / f"torch-2.8.0+cpu-{TAG}.whl.metadata").is_file()
    again = torchup(env, "wheelhouse", str(house), "--lock", str(out), "--json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["bytes_downloaded"] == 0
    assert {f["state"] for f in doc["files"]} == {"reused"}
    assert "torchup: [" not in again.stderr  # --json: no progress lines


@needs_uv
def test_wheelhouse_of_a_plan_serves_pip_with_no_other_source(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    house = tmp_path / "house"
    py = str(pyenv("3.11"))
    done = torchup(env, "wheelhouse", str(house), *FAMILY, "--python", py, *sources(site))
    assert done.returncode == 0, done.stderr
    venv = tmp_path / "venv"
    subprocess.run([py, "-m", "venv", str(venv)], check=True, capture_output=True)
    pip_env = {"PATH": os.environ["PATH"], "PIP_CONFIG_FILE": os.devnull,
               "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
    index = (house / "simple").as_uri() + "/"
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--index-url", index, *FAMILY],
        env=pip_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    freeze = [str(venv / "bin" / "python"), "-m", "pip", "freeze"]
    frozen = subprocess.run(freeze, env=pip_env, capture_output=True, text=True, check=True).stdout
    assert "torch==2.8.0+cpu" in frozen
    assert "sympy==1.13.3" in frozen


@needs_uv
def test_wheelhouse_draws_one_bar_on_a_terminal(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site), "-o", str(out)).returncode == 0
    argv = [sys.executable, "-m", "torchup", "wheelhouse", str(tmp_path / "h"), "--lock", str(out)]
    proc, text = on_a_pty(argv, env=env, stream="stderr")
    assert proc.returncode == 0
    assert "\r[" in text  # redrawn in place
    assert "9/9 files" in text
    assert "torchup: [" not in text


def test_wheelhouse_usage_errors(tmp_path: Path, env: dict[str, str]) -> None:
    lock_file = tmp_path / "pylock.toml"
    both = torchup(env, "wheelhouse", str(tmp_path / "h"), "torch", "--lock", str(lock_file))
    assert both.returncode == 2
    assert "--lock fetches what the lock holds" in both.stderr
    bad = torchup(env, "wheelhouse", str(tmp_path / "h"), "--lock", str(lock_file), "--jobs", "0")
    assert bad.returncode == 2
    lock_file.write_text("not toml [")
    broken = torchup(env, "wheelhouse", str(tmp_path / "h"), "--lock", str(lock_file))
    assert broken.returncode == 1
    assert "not TOML" in broken.stderr
    assert not (tmp_path / "h").exists()


@needs_uv
def test_a_tampered_file_fails_the_wheelhouse_and_leaves_no_partial(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site, "torch==2.8.0"), "-o", str(out)).returncode == 0
    publish_family(site[0], marker=b"changed")  # same names, other bytes
    house = tmp_path / "house"
    done = torchup(env, "wheelhouse", str(house), "--lock", str(out))
    assert done.returncode == 1
    # other bytes of another length: the length the server states fails it first
    assert "the lock says" in done.stderr, done.stderr
    assert "bytes" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list((house / "files").glob("torch-*"))


@pytest.mark.parametrize("command", ["lock", "wheelhouse"])
def test_help_names_the_target_options(command: str, env: dict[str, str]) -> None:
    done = torchup(env, command, "--help")
    assert done.returncode == 0
    assert "--for FILE" in done.stdout
    assert "--python-version" in done.stdout


# -- export dockerfile -----------------------------------------------------------------


def hadolint() -> str:
    return str(Path(sys.executable).with_name("hadolint"))


@needs_uv
def test_export_dockerfile_from_a_plan_writes_a_linted_dockerfile_and_its_requirements(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    out = tmp_path / "ctx" / "Dockerfile"
    out.parent.mkdir()
    args = ["export", "dockerfile", *FAMILY, "--python", str(pyenv("3.11")), *sources(site)]
    done = torchup(env, *args, "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["path"] == str(out)
    assert doc["build"] == "cpu"
    assert doc["files"] == [str(out), str(out.parent / "requirements.txt")]
    text = out.read_text()
    assert text.count("\nFROM python:3.11-slim\n") == 1
    assert "--require-hashes" in text
    reqs = (out.parent / "requirements.txt").read_text()
    assert "torch==2.8.0+cpu \\\n    --hash=sha256:" in reqs
    lint = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(out)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr
    again = torchup(env, *args, "-o", str(out))
    assert again.returncode == 2
    assert "exists" in again.stderr
    assert out.read_text() == text


@needs_uv
def test_export_dockerfile_to_stdout_from_a_lock_with_a_pinned_base(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    lock_file = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site), "-o", str(lock_file)).returncode == 0
    digest = "sha256:" + "ab" * 32
    done = torchup(env, "export", "dockerfile", "--lock", str(lock_file), "--digest", digest,
                   "-o", "-", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"FROM python:3.11-slim@{digest}\n" in done.stdout
    assert (tmp_path / "requirements.txt").is_file()
    bad = torchup(env, "export", "dockerfile", "--lock", str(lock_file), "--digest", "sha256:1",
                  "-o", str(tmp_path / "D"))  # fmt: skip
    assert bad.returncode == 2
    assert not (tmp_path / "D").exists()
    both = torchup(env, "export", "dockerfile", "torch", "--lock", str(lock_file))
    assert both.returncode == 2


@needs_uv
def test_export_dockerfile_checks_its_options_and_its_wheelhouse_before_writing(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    lock_file = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site), "-o", str(lock_file)).returncode == 0
    ctx = tmp_path / "ctx"
    ctx.mkdir()

    def export(*args: str) -> subprocess.CompletedProcess[str]:
        return torchup(env, "export", "dockerfile", "--lock", str(lock_file), *args,
                       "-o", str(ctx / "Dockerfile"))  # fmt: skip

    ignored = export("--platform", "manylinux_2_28_aarch64", "--backend", "cu126")
    assert ignored.returncode == 2
    assert "--platform, --backend would make a new plan" in ignored.stderr
    missing = export("--wheelhouse", "house/files")
    assert missing.returncode == 2
    assert f"the wheelhouse {ctx / 'house/files'} is not there" in missing.stderr
    made = torchup(env, "wheelhouse", str(ctx / "house"), "--lock", str(lock_file), "-q")
    assert made.returncode == 0, made.stderr
    root = export("--wheelhouse", "house")
    assert root.returncode == 2
    assert "is a wheelhouse; the files pip installs are in its files/ folder" in root.stderr
    assert "--wheelhouse house/files" in root.stderr
    gone = next((ctx / "house" / "files").glob("mpmath-*.whl"))
    kept = gone.read_bytes()
    gone.unlink()
    short = export("--wheelhouse", "house/files")
    assert short.returncode == 2
    assert f"lacks 1 of the lock's files: {gone.name}" in short.stderr
    assert sorted(p.name for p in ctx.iterdir()) == ["house"]  # nothing written
    gone.write_bytes(kept)
    done = export("--wheelhouse", "house/files")
    assert done.returncode == 0, done.stderr
    text = (ctx / "Dockerfile").read_text()
    assert "# build: docker build --platform linux/amd64 -t IMAGE .\n" in text
    assert "build: docker build --platform linux/amd64 -t IMAGE ." in done.stdout
    # -o a folder: refused before planning, and nothing else written either
    folder = torchup(env, "export", "dockerfile", "--lock", str(lock_file), "-o", str(ctx))
    assert folder.returncode == 2
    assert f"{ctx} is a folder" in folder.stderr


# -- export conda ----------------------------------------------------------------------


def test_export_conda_from_a_plan_writes_the_pins_install_gives_the_envs_pip(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    _root, torch_url, _simple = site
    out = tmp_path / "environment.yml"
    args = ["export", "conda", *FAMILY, "--python", str(pyenv("3.11")), *sources(site)]
    done = torchup(env, *args, "--name", "ml", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["path"] == str(out)
    assert doc["files"] == [str(out)]
    assert doc["dependencies"] == ["python=3.11", "pip"]
    assert "torch==2.8.0+cpu" in doc["pip"]
    text = out.read_text()
    assert "\nname: ml\n" in text
    assert "\n  - python=3.11\n  - pip\n  - pip:\n" in text
    assert f"      - --index-url {torch_url}/cpu\n" in text
    again = torchup(env, *args, "-o", str(out))
    assert again.returncode == 2
    assert "exists" in again.stderr
    assert out.read_text() == text
    bad = torchup(env, *args, "--name", "my env", "-o", str(tmp_path / "b.yml"))
    assert bad.returncode == 2
    assert "cannot name a conda env" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "b.yml").exists()


@needs_uv
def test_export_conda_from_a_lock_to_stdout_hashes_every_package(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    lock_file = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site), "-o", str(lock_file)).returncode == 0
    done = torchup(env, "export", "conda", "--lock", str(lock_file), "-o", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pins = [line for line in done.stdout.splitlines() if "==" in line]
    locked = tomllib.loads(lock_file.read_text())["packages"]
    assert len(pins) == len(locked)
    assert all("--hash=sha256:" in line for line in pins)
    assert not (tmp_path / "environment.yml").exists()


# -- install --lock --------------------------------------------------------------------


@needs_uv
def test_install_lock_installs_the_lock_or_refuses_it_with_the_reason(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    lock_file = tmp_path / "pylock.toml"
    assert torchup(env, *lock_args(site), "-o", str(lock_file)).returncode == 0
    venv = tmp_path / "v"
    done = torchup(env, "install", "--lock", str(lock_file), "--venv", str(venv),
                   "--installer", "uv", "--no-verify", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    site_packages = next(venv.glob("lib/python3.11/site-packages"))
    assert (site_packages / "torch-2.8.0+cpu.dist-info").is_dir()
    # the generated torch is not a real one: verification fails and the new venv goes
    failed = torchup(env, "install", "--lock", str(lock_file), "--venv", str(tmp_path / "w"))
    assert failed.returncode == 1
    assert "verification failed" in failed.stdout
    assert "everything was undone" in failed.stdout
    assert not (tmp_path / "w").exists()
    other = torchup(env, "install", "--lock", str(lock_file), "--python", str(pyenv("3.12")),
                    "--venv", str(tmp_path / "x"))  # fmt: skip
    assert other.returncode == 1
    assert "it requires Python ==3.11.*; this is Python 3.12" in other.stderr
    assert "Traceback" not in other.stderr
    assert not (tmp_path / "x").exists()
    both = torchup(env, "install", "torch", "--lock", str(lock_file), "--reinstall")
    assert both.returncode == 2
    assert "requirements, --reinstall would make a new plan" in both.stderr
