"""A wheel file named instead of a requirement (``torchup install ./dist/torch-....whl``).

How ``torchup build-script`` installs what it built: the file becomes the exact pin and
the project's only candidate, planned for the target's tags, installed in the same
transaction as an index's file and verified. Real files, real venvs, real uv and pip;
the torch is the stand-in of tests/standin.py (pure Python, passes verify).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

import standin
from indexserver import make_wheel
from test_install import local_env, torchup
from test_local_files import WHEEL, disk_index
from test_plan import pyenv
from torchup.choose.api import parse_requirements, plan
from torchup.choose.localwheel import split_local_wheels
from torchup.errors import UsageError

META = b"Metadata-Version: 2.1\nName: torch\nVersion: 2.8.0+cpu\n"


def _write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _torch_in(venv: Path) -> str:
    """The installed torch's version and that it imports (a uv venv has no pip to ask)."""
    code = "import importlib.metadata as m, torch; print(m.version('torch'), torch.__version__)"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, check=True, cwd=venv)  # fmt: skip
    listed, imported = proc.stdout.split()
    assert listed == imported
    return listed


def test_paths_and_file_urls_become_exact_pins(tmp_path: Path) -> None:
    path = _write(tmp_path / "dist", WHEEL, make_wheel(WHEEL, META))
    for text in (f"dist/{WHEEL}", path.as_uri(), f"torch @ {path.as_uri()}", str(path),
                 f"torch@{path.as_uri()}", f" Torch @ dist/{WHEEL}"):  # fmt: skip
        texts, wheels = split_local_wheels(["torchvision>=0.20", text], cwd=tmp_path)
        assert texts == ["torchvision>=0.20", "torch==2.8.0+cpu"], text
        assert wheels["torch"].path == path
        assert wheels["torch"].folder == str(tmp_path / "dist")
    plain = _write(tmp_path / "dist", "torch-2.9.0-py3-none-any.whl", b"")
    assert split_local_wheels([str(plain)], cwd=tmp_path)[0] == ["torch===2.9.0"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dist/torch-2.8.0-py3-none-any.whl", "no such wheel file"),
        ("dist/torch.whl", "is not a wheel's file name"),
        (f"torchvision @ file:dist/{WHEEL}", "the file is a torch wheel, not torchvision"),
        (f"torch[opt] @ dist/{WHEEL}", "extras of a wheel file are not planned"),
        (f"~no-such-user-here/{WHEEL}", "is not a usable wheel path"),
        (f"file:///tmp/a%00b/{WHEEL}", "is not a usable wheel path"),
    ],
)
def test_bad_wheel_references_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path / "dist", WHEEL, make_wheel(WHEEL, META))
    _write(tmp_path / "dist", "torch.whl", b"")
    with pytest.raises(UsageError, match=message) as err:
        split_local_wheels([text], cwd=tmp_path)
    assert err.value.hint


def test_two_wheels_of_one_project_and_remote_references(tmp_path: Path) -> None:
    one = _write(tmp_path / "a", WHEEL, make_wheel(WHEEL, META))
    two = _write(tmp_path / "b", WHEEL, make_wheel(WHEEL, META))
    with pytest.raises(UsageError, match="two torch wheels are named"):
        split_local_wheels([str(one), str(two)], cwd=tmp_path)
    remote = "torch @ https://example.invalid/torch-2.8.0-py3-none-any.whl"
    texts, wheels = split_local_wheels([remote], cwd=tmp_path)
    assert (texts, wheels) == ([remote], {})  # not a file here: the planner refuses it
    with pytest.raises(UsageError, match="is a direct reference"):
        parse_requirements(texts)


def test_the_named_file_is_the_only_candidate(tmp_path: Path) -> None:
    """The PyTorch-layout index lists a file of the same name and version: the plan takes
    the named file's bytes, not the index's, under an explicit backend and under auto."""
    index = disk_index(tmp_path / "idx")
    mine = make_wheel(WHEEL, META, filler=3)  # other bytes than the index's file
    path = _write(tmp_path / "dist", WHEEL, mine)
    env = local_env(tmp_path)
    for backend in ("cpu", None):
        got = plan([str(path)], python=pyenv("3.11"), backend=backend, torch_index_url=index,
                   env=env, cwd=tmp_path)  # fmt: skip
        assert got.ok, got.problems
        (torch,) = got.packages
        assert torch.dist is not None
        assert torch.dist.url == path.as_uri()
        assert torch.sha256 == hashlib.sha256(mine).hexdigest()
        assert got.requirements == ("torch==2.8.0+cpu",)
        # the command to copy names the file: a pin with --find-links would let pip
        # prefer an index's file of the same version with a more specific tag
        assert str(path) in got.commands[0]
        assert "torch==2.8.0+cpu" not in got.commands[0]
    assert got.backend.name == "pypi"  # auto: the wheel is the build it is; nothing detected
    assert "a local wheel" in got.backend.source
    assert got.accelerator is None


def test_a_wheel_for_another_python_says_which_fits(tmp_path: Path) -> None:
    name = "torch-2.8.0+cpu-cp311-cp311-linux_x86_64.whl"
    path = _write(tmp_path / "dist", name, make_wheel(name, META))
    got = plan([str(path)], python=pyenv("3.12"), env=local_env(tmp_path), cwd=tmp_path)
    assert not got.ok
    (problem,) = got.problems
    assert [r.filename for r in problem.rejected] == [name]
    assert "built for cp311" in problem.rejected[0].reason
    assert [a.version.rsplit(".", 1)[0] for a in got.alternative_pythons] == ["3.11"]
    assert str(path) in got.alternative_pythons[0].command


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_install_a_built_wheel_verified_and_undone_when_it_fails(
    tmp_path: Path, installer: str
) -> None:
    env = local_env(tmp_path)
    name, data = standin.wheel("2.9.0")  # under this machine's pip constraint (torch<=2.14.1)
    good = _write(tmp_path / "dist", name, data)
    venv = tmp_path / "v"
    args = ("--venv", str(venv), "--python", pyenv("3.12"), "--installer", installer)
    dry = torchup(env, tmp_path, "install", f"dist/{name}", *args, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    shown = json.loads(dry.stdout)
    text = shown["requirements_file"]["text"]
    if installer == "pip":  # the pin and the file's sha256; pip finds it in its folder
        assert text == f"torch===2.9.0 --hash=sha256:{hashlib.sha256(data).hexdigest()}\n"
        assert ["--find-links", str(tmp_path / "dist")] == shown["commands"][-2][-2:]
    else:  # uv is given the file itself, whose hash torchup checks as uv installs
        assert text == f"torch @ {good.as_uri()}\n"
    proc = torchup(env, tmp_path, "install", f"dist/{name}", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified" in proc.stdout
    assert _torch_in(venv) == "2.9.0"

    bad_name, bad_data = standin.wheel("2.9.0", broken=True)
    bad = _write(tmp_path / "broken", bad_name, bad_data)
    other = tmp_path / "w"
    proc = torchup(env, tmp_path, "install", str(bad), "--venv", str(other),
                   "--python", pyenv("3.12"), "--installer", installer)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "fail  matmul:cpu" in out
    assert "everything was undone" in out
    assert not other.exists()
    again = torchup(env, tmp_path, "install", str(bad), *args, "--reinstall")
    assert again.returncode == 1
    assert "everything was undone" in again.stdout + again.stderr
    assert _torch_in(venv) == "2.9.0"  # the good build stays
    check = torchup(env, tmp_path, "verify", "--python", str(venv / "bin" / "python"))
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize(
    "command",
    [
        ("lock", "-o", "-"),
        ("wheelhouse", "house"),
        ("export", "dockerfile", "-o", "-"),
        ("export", "conda", "-o", "-"),
    ],
)
def test_commands_that_carry_files_elsewhere_refuse_a_wheel_file(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    _write(tmp_path / "dist", WHEEL, make_wheel(WHEEL, META))
    proc = torchup(local_env(tmp_path), tmp_path, *command, f"dist/{WHEEL}")
    assert proc.returncode == 2, proc.stderr
    assert f"torchup {command[0]} records files another machine fetches" in proc.stderr
    assert f"hint: install it here with `torchup install {tmp_path / 'dist' / WHEEL}`" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "pip.conf"]  # nothing written
