"""``install_lock`` (``torchup install --lock``): real interpreters, venvs, pip and uv.

A real lock is made with ``torchup.export.lock.lock`` from the generated CPU torch
family served on 127.0.0.1 (tests/test_lock.py's ``site``); those wheels are not a real
torch, so verifying them fails, which is how the rollback is shown. The real CPU torch
2.13.0 wheel (tests/realtorch.py) is installed from its lock and verified at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import localindex
import realtorch
import torchup
from test_install import conda_env
from test_lock import (
    DEPENDENCIES,
    FAMILY_FILES,
    TAG,
    env,
    make_plan,
    needs_uv,
    nvidia,
    publish_family,
    publish_simple,
    uv,
)
from test_plan import pyenv
from torchup.envs.fromlock import chosen_files, install_lock, plan_of_lock
from torchup.export.fit import LockUnfitError, lock_fits
from torchup.export.lock import lock
from torchup.export.lockcheck import check_lock
from torchup.export.pylock import (
    Lock,
    LockedFile,
    LockedPackage,
    LockError,
    parse_lock,
    read_lock,
)
from torchup.export.wheelhouse import build_wheelhouse
from torchup.hardware.accelerators import Accelerator
from torchup.interpreters.discover import Interpreter

__all__ = ["conda_env", "env"]  # the fixtures, from test_install and test_lock

CPU = Accelerator(kind="cpu", source="test")
LOCKED = {
    "torch": "2.8.0+cpu",
    "torchvision": "0.23.0+cpu",
    "torchaudio": "2.8.0+cpu",
    "filelock": "3.16.1",
    "typing-extensions": "4.12.2",
    "sympy": "1.13.3",
    "mpmath": "1.3.0",
    "numpy": "2.1.0",
    "pillow": "11.0.0",
}
SEEDED = ("pip", "setuptools")
installers = pytest.mark.parametrize("installer", ["uv", "pip"])


@contextmanager
def serving(root: Path) -> Iterator[localindex.Served]:
    with localindex.serve(root) as served:
        yield served


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, localindex.Served]]:
    """tests/test_lock.py's site, with the server's log of requested paths."""
    root = tmp_path / "site"
    publish_family(root)
    publish_simple(root, DEPENDENCIES)
    with serving(root) as served:
        yield root, served


def locked(tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str]) -> Path:
    """A lock of the generated CPU torch family (and its 6 dependencies) for 3.11."""
    _root, served = site
    simple = served.url.removesuffix("/whl") + "/simple"
    plan = make_plan((site[0], served.url, simple), env)
    assert plan.ok, plan.problems
    out = tmp_path / "pylock.toml"
    lock(plan, output=out, uv=uv(), env=env)
    served.requested.clear()
    return out


def installed(venv: Path, seeded: tuple[str, ...] = ()) -> dict[str, str]:
    """Every distribution in ``venv``, name -> version, less ``seeded`` (what the venv
    was created with: ``python -m venv`` seeds pip and, on 3.11, setuptools)."""
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out)
    return {n.lower().replace("_", "-"): v for n, v in found.items() if n.lower() not in seeded}


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}"))


# -- it installs exactly the lock ------------------------------------------------------


@needs_uv
@installers
def test_the_lock_installs_exactly_its_files_and_nothing_else(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str], installer: str
) -> None:
    path = locked(tmp_path, site, env)
    venv = tmp_path / "project" / ".venv"
    result = install_lock(
        path, venv=str(venv), installer=installer, accelerator=CPU, verify=False,
        env=env, cwd=tmp_path, echo=False,
    )  # fmt: skip
    assert result.ok, result.message
    assert result.installer.name == installer
    assert result.python_source.startswith("the Python the lock was made for (3.11")
    assert installed(venv, SEEDED if installer == "pip" else ()) == LOCKED
    # only the lock's files were asked for: no index page, no other file
    lock_files = {f.filename.replace("+", "%2B") for _p, f in read_lock(path).files()}
    asked = {p.rpartition("/")[2] for p in site[1].requested}
    assert asked == lock_files
    [command] = [c for c in result.commands if "-r" in c]
    assert {"--no-deps", "--require-hashes", "--no-index"} <= set(command)
    assert result.requirements_file is not None
    assert result.requirements_file[1].count("--hash=sha256:") == len(LOCKED)
    # the plan it reports is the lock's
    plan = result.plan
    assert {p.name: p.version for p in plan.packages} == {
        n: LOCKED[n] for n in ("torch", "torchvision", "torchaudio")
    }
    assert plan.backend.name == "cpu"
    assert plan.backend.source == f"the lock {path}"
    assert {p.variant for p in plan.packages} == {"cpu"}
    assert result.to_dict()["plan"]["sources"]["no_index"] is True
    assert result.activation
    assert not leftovers(venv)


# -- verification failing undoes everything --------------------------------------------


@needs_uv
def test_a_lock_that_fails_verification_leaves_no_venv_behind(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str]
) -> None:
    path = locked(tmp_path, site, env)
    venv = tmp_path / "new-venv"
    result = install_lock(path, venv=str(venv), installer="uv", accelerator=CPU,
                          env=env, cwd=tmp_path, echo=False)  # fmt: skip
    assert not result.ok
    assert result.message.startswith("verification failed (")
    assert result.message.endswith("everything was undone")
    assert result.verify is not None
    assert not result.verify.ok
    assert str(venv) in (result.verify.python or "")  # shown at the target, not the stage
    assert not venv.exists()
    assert not leftovers(venv)


@needs_uv
def test_an_existing_venv_is_unchanged_when_verification_fails(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str]
) -> None:
    path = locked(tmp_path, site, env)
    venv = tmp_path / "old-venv"
    subprocess.run([uv(), "venv", "-q", "--python", pyenv("3.11"), str(venv)],
                   check=True, capture_output=True, env=env)  # fmt: skip
    before = sorted(str(p.relative_to(venv)) for p in venv.rglob("*"))
    result = install_lock(path, venv=str(venv), installer="uv", accelerator=CPU,
                          env=env, cwd=tmp_path, echo=False)  # fmt: skip
    assert not result.ok
    assert "verification failed" in result.message
    assert result.python_source == f"the venv at {venv} (--venv)"
    assert sorted(str(p.relative_to(venv)) for p in venv.rglob("*")) == before
    assert installed(venv) == {}
    assert not leftovers(venv)


@needs_uv
@installers
def test_a_build_of_the_same_version_already_there_is_replaced_by_the_locked_one(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str], installer: str
) -> None:
    """pip keeps an installed distribution of the version asked for ("already installed
    with the same version as the provided wheel") whatever its build: the lock's file
    must replace it, its hash checked, as uv does on its own."""
    from indexserver import make_wheel

    path = locked(tmp_path, site, env)
    venv = tmp_path / "v"
    subprocess.run([pyenv("3.11"), "-m", "venv", str(venv)], check=True, env=env)
    other = tmp_path / "other" / "filelock-3.16.1-py3-none-any.whl"
    other.parent.mkdir()
    meta = b"Metadata-Version: 2.1\nName: filelock\nVersion: 3.16.1\n"
    other.write_bytes(make_wheel(other.name, meta, files={"filelock/__init__.py": b"OTHER\n"}))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(other)], check=True, env=env)  # fmt: skip
    [module] = venv.glob("lib/python3.11/site-packages/filelock/__init__.py")
    assert module.read_bytes() == b"OTHER\n"
    result = install_lock(path, venv=str(venv), installer=installer, accelerator=CPU,
                          verify=False, env=env, cwd=tmp_path, echo=False)  # fmt: skip
    assert result.ok, result.message
    assert module.read_text() == '__version__ = "3.16.1"\n'  # the locked build's
    assert installed(venv, SEEDED) == LOCKED


def scripted(folder: Path, version: str, says: str, data: str) -> Path:
    """``alpha`` ``version``: a module, a script for bin/ and a data file for share/,
    each saying ``says``."""
    from indexserver import make_wheel

    path = folder / f"alpha-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: alpha\nVersion: {version}\n".encode()
    members = {
        "alpha/__init__.py": says.encode(),
        f"alpha-{version}.data/scripts/alpha-cli": says.encode(),
        f"alpha-{version}.data/data/share/{data}": says.encode(),
    }
    path.write_bytes(make_wheel(path.name, meta, files=members))
    return path


def test_a_failed_install_into_a_conda_env_takes_back_its_scripts_and_data_files(
    tmp_path: Path, env: dict[str, str], conda_env: Path
) -> None:
    """Not only the site-packages: bin/ and share/ are put back as they were, a script
    the install replaced restored and a file it added removed."""
    from indexserver import make_wheel

    files = tmp_path / "work" / "files"
    files.mkdir(parents=True)
    python = str(conda_env / "bin" / "python")
    old = scripted(tmp_path, "0.9", "OLD\n", "alpha-data.txt")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(old)],
                   check=True, env=env)  # fmt: skip
    new = scripted(files, "1.0", "NEW\n", "alpha-more.txt")
    torch = files / "torch-2.8.0+cpu-py3-none-any.whl"  # installs, and is not torch
    torch.write_bytes(make_wheel(torch.name, b"Metadata-Version: 2.1\nName: torch\n"
                                 b"Version: 2.8.0+cpu\n"))  # fmt: skip
    entries = "".join(
        f'\n[[packages]]\nname = "{name}"\nversion = "{version}"\nwheels = [{{ path = '
        f'"files/{f.name}", hashes = {{ sha256 = "{hashlib.sha256(f.read_bytes()).hexdigest()}"'
        " } }]\n"
        for name, version, f in (("torch", "2.8.0+cpu", torch), ("alpha", "1.0", new))
    )
    path = tmp_path / "work" / "pylock.toml"
    path.write_text(f'lock-version = "1.0"\ncreated-by = "uv"\n{entries}')
    site = next((conda_env / "lib").glob("python3.*/site-packages"))

    def everything() -> dict[str, bytes]:
        return {str(p.relative_to(conda_env)): p.read_bytes() if p.is_file() else b""
                for folder in (conda_env / "bin", conda_env / "share", site)
                for p in folder.rglob("*") if "__pycache__" not in p.parts}  # fmt: skip

    before = everything()
    assert before["bin/alpha-cli"] == b"OLD\n"
    result = install_lock(path, conda_env=str(conda_env), installer="pip", accelerator=CPU,
                          env=env, cwd=path.parent, echo=False)  # fmt: skip
    assert not result.ok
    assert result.message.endswith("everything was undone"), result.message
    after = everything()
    assert after.keys() - before.keys() <= {"share"}  # an empty folder may stay
    assert after == {k: v for k, v in before.items() if k in after}
    assert sorted(p.name for p in site.parent.iterdir() if ".torchup-" in p.name) == []


# -- a file that is not the locked one -------------------------------------------------


@needs_uv
@installers
def test_a_file_whose_bytes_changed_after_locking_fails_the_hash_check(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str], installer: str
) -> None:
    path = locked(tmp_path, site, env)
    publish_family(site[0], marker=b"x")  # same names and URLs, other bytes
    venv = tmp_path / ".venv"
    result = install_lock(path, installer=installer, accelerator=CPU, verify=False,
                          env=env, cwd=tmp_path, echo=False)  # fmt: skip
    assert not result.ok
    # pip: "THESE PACKAGES DO NOT MATCH THE HASHES ... Expected sha256 X / Got Y";
    # uv: "Failed to download `torch @ URL` ... sha256:X / Computed: / sha256:Y"
    torch_sha = next(f.sha256 for p, f in read_lock(path).files() if p.name == "torch")
    assert torch_sha in result.message, result.message
    assert result.message.endswith("nothing was changed")
    assert not venv.exists()
    assert not leftovers(venv)


# -- refused before anything is created ------------------------------------------------


@needs_uv
def test_a_lock_for_another_pythons_tags_is_refused_with_the_reason(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str]
) -> None:
    path = locked(tmp_path, site, env)
    with pytest.raises(LockUnfitError) as caught:
        install_lock(path, python=pyenv("3.12"), accelerator=CPU, env=env, cwd=tmp_path,
                     echo=False)  # fmt: skip
    text = str(caught.value)
    assert "does not fit Python 3.12" in text
    assert "requires Python ==3.11.*" in text
    assert FAMILY_FILES["torch"] in text
    assert TAG in text
    assert "cp312-cp312" in text
    assert not (tmp_path / ".venv").exists()
    assert not leftovers(tmp_path / ".venv")
    assert site[1].requested == []


@needs_uv
def test_a_cuda_lock_is_refused_on_a_machine_without_an_nvidia_gpu(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str]
) -> None:
    path = locked(tmp_path, site, env)
    text = path.read_text()
    assert 'version = "2.8.0+cpu"' in text
    cuda = tmp_path / "cuda-pylock.toml"
    edited = text.replace('name = "torch"\nversion = "2.8.0+cpu"',
                          'name = "torch"\nversion = "2.8.0+cu128"')  # fmt: skip
    for plus in ("+", "%2B"):  # the file's name and URL say the same build
        edited = edited.replace(f"torch-2.8.0{plus}cpu-", f"torch-2.8.0{plus}cu128-")
    cuda.write_text(edited)
    assert read_lock(cuda).package("torch").version == "2.8.0+cu128"  # type: ignore[union-attr]
    with pytest.raises(LockUnfitError) as caught:
        install_lock(cuda, accelerator=CPU, env=env, cwd=tmp_path, echo=False)
    assert "cu128 build of torch 2.8.0+cu128" in str(caught.value)
    assert "no NVIDIA GPU" in str(caught.value)
    # detected by default: TORCHUP_GPU_ARCHS=none stands in for a machine with no GPU
    with pytest.raises(LockUnfitError, match="no NVIDIA GPU"):
        install_lock(cuda, env={**env, "TORCHUP_GPU_ARCHS": "none"}, cwd=tmp_path, echo=False)
    # where the driver runs it, the lock fits (a dry run: it is not a real CUDA torch)
    fits = install_lock(cuda, accelerator=nvidia("580.65.06"), dry_run=True, env=env,
                        cwd=tmp_path, echo=False)  # fmt: skip
    assert fits.ok
    assert fits.dry_run
    assert not (tmp_path / ".venv").exists()


def test_a_missing_lock_is_a_lock_error_naming_it(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(LockError, match=r"cannot read the lock .*nope\.toml"):
        install_lock(tmp_path / "nope.toml", env=env, cwd=tmp_path)
    assert not (tmp_path / ".venv").exists()


# -- a dry run -------------------------------------------------------------------------


@needs_uv
@installers
def test_a_dry_run_shows_the_commands_and_the_requirements_and_changes_nothing(
    tmp_path: Path, site: tuple[Path, localindex.Served], env: dict[str, str], installer: str
) -> None:
    path = locked(tmp_path, site, env)
    result = install_lock(path, installer=installer, dry_run=True, accelerator=CPU,
                          env=env, cwd=tmp_path, echo=False)  # fmt: skip
    assert result.ok
    assert result.dry_run
    assert result.message == "dry run: nothing was created or changed"
    venv = tmp_path / ".venv"
    create, command = result.commands
    assert create[-1] == str(venv)  # the final path, not the staging one
    assert command[-1] != "--break-system-packages"
    assert result.requirements_file is not None
    text = result.requirements_file[1]
    torch_url = next(f.url for p, f in read_lock(path).files() if p.name == "torch")
    assert f"torch @ {torch_url} --hash=sha256:" in text
    assert len(text.splitlines()) == len(LOCKED)
    assert not venv.exists()
    assert not leftovers(venv)
    assert site[1].requested == []


# -- a wheelhouse's lock: relative paths, no server ------------------------------------


@needs_uv
@installers
def test_a_wheelhouse_lock_installs_from_its_folder_with_no_server(
    tmp_path: Path, env: dict[str, str], installer: str
) -> None:
    root = tmp_path / "site"
    publish_family(root)
    publish_simple(root, DEPENDENCIES)
    house = tmp_path / "house"
    with serving(root) as served:
        path = locked(tmp_path, (root, served), env)
        build_wheelhouse(path, house)
        # checked from anywhere: its paths are the lock folder's (PEP 751), not the
        # working folder's (this process's is the repository)
        where = (root, served.url, served.url.removesuffix("/whl") + "/simple")
        check = check_lock(house / "pylock.toml", uv=uv(), env=env,
                           plan_fn=lambda _: make_plan(where, env))  # fmt: skip
        assert [f.reason for f in check.files if not f.ok] == []
        assert check.still_installs
    # the server is gone: only the folder's files can be installed
    text = (house / "pylock.toml").read_text()
    assert 'path = "files/' in text
    assert "http://" not in text.partition("[tool.torchup]")[0]
    venv = tmp_path / "offline-venv"
    result = install_lock(house / "pylock.toml", venv=str(venv), installer=installer,
                          accelerator=CPU, verify=False, env=env, cwd=tmp_path,
                          echo=False)  # fmt: skip
    assert result.ok, result.message
    assert installed(venv, SEEDED if installer == "pip" else ()) == LOCKED
    assert result.requirements_file is not None
    assert (house / "files").as_uri() in result.requirements_file[1]


# -- which file (pure) -----------------------------------------------------------------

PY = Interpreter(
    executable="/py",
    version="3.11.7",
    implementation="cpython",
    tags=(
        "cp311-cp311-manylinux_2_28_x86_64",
        "cp311-cp311-manylinux_2_17_x86_64",
        "cp311-abi3-manylinux_2_17_x86_64",
        "py3-none-any",
    ),
    markers={
        "python_full_version": "3.11.7",
        "python_version": "3.11",
        "sys_platform": "linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
    },
)


def wheel(name: str) -> LockedFile:
    return LockedFile(filename=name, url=f"https://x/{name}", sha256="ab" * 32)


def test_the_best_ranked_wheel_is_chosen_and_a_marker_that_does_not_apply_is_left_out() -> None:
    sdist = LockedFile(filename="c-1.0.tar.gz", url="c-1.0.tar.gz", sha256="cd" * 32,
                       kind="sdist")  # fmt: skip
    packages = (
        LockedPackage(name="a", version="1.0", files=(
            wheel("a-1.0-py3-none-any.whl"),
            wheel("a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
            wheel("a-1.0-cp311-cp311-win_amd64.whl"),
        )),
        LockedPackage(name="b", version="2.0", files=(wheel("b-2.0-py3-none-any.whl"),),
                      marker='sys_platform == "win32"'),
        LockedPackage(name="c", version="1.0", files=(
            wheel("c-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"), sdist,
        )),
        LockedPackage(name="d", version="3.0", files=(wheel("d-3.0-py3-none-any.whl"),),
                      marker='python_version >= "3.9"'),
    )  # fmt: skip
    chosen = chosen_files(Lock(packages=packages), PY)
    assert [(p.name, f.filename) for p, f in chosen] == [
        ("a", "a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        ("c", "c-1.0.tar.gz"),
        ("d", "d-3.0-py3-none-any.whl"),
    ]
    plan = plan_of_lock(Lock(packages=packages), PY, CPU, files=chosen)
    assert plan.packages == ()  # no torch family in it
    assert plan.backend.name == "lock"
    none_fits = LockedPackage(name="e", version="1", files=(wheel("e-1-cp312-cp312-win32.whl"),))
    with pytest.raises(LockError, match="none of its files"):
        chosen_files(Lock(packages=(none_fits,)), PY)


def torch_entry(version: str, tag: str, marker: str | None = None) -> LockedPackage:
    return LockedPackage(name="torch", version=version, marker=marker,
                         files=(wheel(f"torch-{version}-{tag}.whl"),))  # fmt: skip


def test_the_torch_judged_is_the_one_whose_marker_holds_here() -> None:
    x86 = "cp311-cp311-manylinux_2_28_x86_64"
    arm_gpu_first = Lock(packages=(
        torch_entry("2.8.0+cu128", "cp311-cp311-manylinux_2_28_aarch64",
                    "platform_machine == 'aarch64'"),
        torch_entry("2.8.0+cpu", x86, "platform_machine == 'x86_64'"),
    ))  # fmt: skip
    fit = lock_fits(arm_gpu_first, PY, CPU)
    assert fit.ok, fit.reasons  # the CPU torch is this machine's; the aarch64 one is not
    mac_first = Lock(packages=(
        torch_entry("2.8.0", "cp311-none-macosx_11_0_arm64", "sys_platform == 'darwin'"),
        torch_entry("2.8.0+cu128", x86, "sys_platform == 'linux'"),
    ))  # fmt: skip
    [reason] = lock_fits(mac_first, PY, CPU).reasons
    assert reason.startswith("it holds the cu128 build of torch 2.8.0+cu128, which does not run")
    only_mac = Lock(packages=mac_first.packages[:1])
    [reason] = lock_fits(only_mac, PY, CPU).reasons
    assert (
        reason
        == "none of its torch entries applies to this interpreter (\"sys_platform == 'darwin'\")"
    )


def test_markers_are_evaluated_as_pep_751_says_no_extras_and_the_default_groups() -> None:
    text = """lock-version = "1.0"
created-by = "uv"
default-groups = ["dev"]

[[packages]]
name = "alpha"
version = "1.0"
marker = "'gpu' in extras"
wheels = [{ url = "https://x/alpha-1.0-py3-none-any.whl", hashes = { sha256 = "%s" } }]

[[packages]]
name = "devtool"
version = "2.0"
marker = "'dev' in dependency_groups"
wheels = [{ url = "https://x/devtool-2.0-py3-none-any.whl", hashes = { sha256 = "%s" } }]

[[packages]]
name = "docs"
version = "3.0"
marker = "'docs' in dependency_groups"
wheels = [{ url = "https://x/docs-3.0-py3-none-any.whl", hashes = { sha256 = "%s" } }]
""" % (("ab" * 32,) * 3)
    lock = parse_lock(text)
    assert lock.default_groups == ("dev",)
    assert [p.name for p, _ in chosen_files(lock, PY)] == ["devtool"]
    assert lock_fits(lock, PY, None).ok
    broken = Lock(packages=(LockedPackage(name="a", version="1", marker="nonsense ==",
                                          files=(wheel("a-1-py3-none-any.whl"),)),))  # fmt: skip
    with pytest.raises(LockError, match="the marker of a 1 in the lock cannot be evaluated"):
        lock_fits(broken, PY, None)


def lock_file(tmp_path: Path, *packages: str) -> Path:
    """``tmp_path/work/pylock.toml`` holding ``packages``, in a folder of its own."""
    (tmp_path / "work").mkdir()
    out = tmp_path / "work" / "pylock.toml"
    head = 'lock-version = "1.0"\ncreated-by = "uv"\nrequires-python = ">=3.9"\n'
    out.write_text(head + "".join(packages))
    return out


def entry(name: str, version: str, filename: str) -> str:
    """A lock's ``[[packages]]`` table for one file on https://x/ (a wheel or an sdist)."""
    kind = "sdist" if filename.endswith(".tar.gz") else "wheels"
    file = f'{{ url = "https://x/{filename}", hashes = {{ sha256 = "{"ab" * 32}" }} }}'
    files = file if kind == "sdist" else f"[{file}]"
    return f'\n[[packages]]\nname = "{name}"\nversion = "{version}"\n{kind} = {files}\n'


TORCH = entry("torch", "2.8.0+cpu", "torch-2.8.0%2Bcpu-py3-none-any.whl")


def test_a_package_with_only_an_sdist_here_is_refused_before_anything_is_made(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = lock_file(tmp_path, TORCH, entry("gamma", "3.0", "gamma-3.0.tar.gz"))
    with pytest.raises(LockError, match=r"no wheel for Python 3\.11.* of gamma 3\.0 "
                       r"\(gamma-3\.0\.tar\.gz\), only a source distribution"):  # fmt: skip
        install_lock(path, python=pyenv("3.11"), venv="v", accelerator=CPU, env=env,
                     cwd=path.parent, echo=False)  # fmt: skip
    assert sorted(p.name for p in path.parent.iterdir()) == ["pylock.toml"]


def test_a_lock_without_torch_is_refused_before_anything_is_made(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = lock_file(tmp_path, entry("idna", "3.10", "idna-3.10-py3-none-any.whl"))
    with pytest.raises(LockError, match="holds no torch") as caught:
        install_lock(path, python=pyenv("3.11"), venv="v", env=env, cwd=path.parent, echo=False)
    assert "uv pip sync" in (caught.value.hint or "")
    assert sorted(p.name for p in path.parent.iterdir()) == ["pylock.toml"]


# -- the real torch --------------------------------------------------------------------


@needs_uv
@pytest.mark.skipif(not realtorch.available(), reason="needs CPython 3.11.7, the torch "
                    "2.13.0+cpu wheel and the machine's local index")  # fmt: skip
def test_the_real_torch_installs_from_its_lock_with_uv_and_verifies(tmp_path: Path) -> None:
    env = {
        **realtorch.quiet_env(),
        "HOME": str(tmp_path / "home"),
        "PIP_CONFIG_FILE": os.devnull,
        "TORCHUP_CACHE_DIR": str(tmp_path / "cache"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "TORCHUP_GPU_ARCHS": "none",
    }
    empty = tmp_path / "no-torch-index"  # a PyTorch-layout index with nothing on it
    (empty / "cpu").mkdir(parents=True)
    plan = torchup.plan(
        ["torch==2.13.0"],
        python=str(realtorch.PYTHON311),
        backend="cpu",
        index_url=realtorch.LOCAL_INDEX.as_uri(),
        find_links=[str(realtorch.WHEELS)],
        torch_index_url=empty.as_uri(),
        env=env,
    )
    assert plan.ok, plan.problems
    assert [p.filename for p in plan.packages] == [realtorch.torch_wheel().name]  # type: ignore[union-attr]
    path = tmp_path / "pylock.toml"
    lock(plan, output=path, uv=uv(), env=env)
    venv = tmp_path / "torch-venv"
    try:
        result = install_lock(path, venv=str(venv), installer="uv", env=env, cwd=tmp_path,
                              echo=False)  # fmt: skip
    finally:
        shutil.rmtree(tmp_path / "uv-cache", ignore_errors=True)
    assert result.ok, result.message
    assert result.verify is not None
    assert result.verify.ok, result.verify.to_dict()
    assert installed(venv)["torch"] == "2.13.0+cpu"
    assert set(installed(venv)) == {p.name for p in read_lock(path).packages}
    shutil.rmtree(venv)
