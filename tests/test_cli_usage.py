"""Usage errors are caught before any work: exit 2, one line saying what and why, no
traceback, credentials redacted, and one JSON document under ``--json``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def torchup(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchup", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--torch-index-url", "not a url"], "'not a url' is not an index URL"),
        (["plan", "--index-url", "ftp://mirror/simple"], "is not an index URL"),
        (["plan", "--extra-index-url", "https://[::1"], "is not a valid URL"),
        (["plan", "--extra-index-url", "https://exa mple.com/simple"], "is not an index URL"),
        (["plan", "--torch-index-url", "file:///no/such/folder"], "there is no folder"),
        (["plan", "--torch-index-url", ""], "must not be empty"),
        (["plan", "--python", ""], "must not be empty"),
        (["plan", "--backend", " "], "must not be empty"),
        (["install", "--venv", "", "--dry-run"], "must not be empty"),
        (["verify", "--venv", ""], "must not be empty"),
        (["install", "--installer", "foo"], "invalid choice: 'foo'"),
        (["plan", "--bogus"], "unrecognized arguments: --bogus"),
        (["install", "--lock", "pylock.toml", "--offline"], "; --offline would make a new plan"),
        (["install", "--lock", "pylock.toml", "--allow-name", "troch"], "; --allow-name would"),
        (["wheelhouse", "d", "--base-url", "mirror.example/wh"], "is not an http://, https://"),
        (["wheelhouse", "d", "--base-url", "https://m.example/wh/?x=1"], "has a query or"),
        (["wheelhouse", "d", "--base-url", "https:///wh"], "'https:///wh' has no host"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    proc = torchup(tmp_path, *argv)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing created (no ./.venv)
    proc = torchup(tmp_path, *argv, "--json")
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "UsageError"
    assert message in error["message"]


def test_credentials_in_a_bad_url_are_not_shown(tmp_path: Path) -> None:
    proc = torchup(tmp_path, "plan", "--index-url", "gopher://user:s3cret@mirror/simple")
    assert proc.returncode == 2
    assert "s3cret" not in proc.stderr
    assert "is not an index URL" in proc.stderr


def test_an_abbreviated_json_flag_still_gets_a_json_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()  # not a venv: install refuses it
    proc = torchup(tmp_path, "install", "torch", "--jso", "--dry-run", "--venv", "data")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["message"].endswith(
        "is not a virtual environment (no pyvenv.cfg)"
    )


@pytest.mark.parametrize("command", [["plan", "torch"], ["install", "torch", "--dry-run"]])
def test_the_torch_index_variable_is_checked_like_the_flag(
    tmp_path: Path, command: list[str]
) -> None:
    import os

    env = {**os.environ, "TORCHUP_TORCH_INDEX_URL": "ftp://user:s3cret@mirror/whl"}
    proc = subprocess.run(
        [sys.executable, "-m", "torchup", *command, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["message"] == (
        "TORCHUP_TORCH_INDEX_URL: 'ftp://****@mirror/whl' is not an index URL: use "
        "https://HOST/..., http://localhost/... or file:///PATH"
    )
    assert "s3cret" not in proc.stdout + proc.stderr


def test_a_venv_whose_base_python_is_gone_says_so_and_how_to_mend_it(tmp_path: Path) -> None:
    import os
    import shutil

    versions = sorted((Path.home() / ".pyenv" / "versions").glob("3.10.*"))
    if not versions:
        pytest.skip("needs CPython 3.10 from pyenv")
    base = tmp_path / "py"
    subprocess.run(["cp", "-al", str(versions[-1]), str(base)], check=True)
    venv = tmp_path / "v"
    subprocess.run([str(base / "bin" / "python3.10"), "-m", "venv", "--without-pip", str(venv)],
                   check=True)  # fmt: skip
    shutil.rmtree(base)  # the Python it was made from is gone (an upgrade removed it)
    env = {**os.environ, "TORCHUP_CACHE_DIR": str(tmp_path / "cache")}
    for command in ("doctor", "verify"):
        argv = [sys.executable, "-m", "torchup", command, "--venv", str(venv)]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=False)  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"is a link to '{base}/bin/python3.10', which does not exist" in proc.stderr
        assert f"its base Python's folder {base}/bin (pyvenv.cfg's home) is gone" in proc.stderr
        assert f"python3.10 -m venv --clear {venv}" in proc.stderr
