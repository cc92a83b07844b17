"""``torchup install --force-incompatible``: a wheel built for another Python, on trial.

The wheel is generated here and is real where it matters: a ``torch`` package whose
``torch._C`` is a C extension compiled against CPython 3.9's headers
(``_C.cpython-39-x86_64-linux-gnu.so``), tagged ``cp39-cp39-linux_x86_64``, published
in a PyTorch-layout index (``/whl/cpu/torch/``, ``%2B`` hrefs, ``#sha256=``, PEP 658
metadata) served by a real HTTP server on 127.0.0.1. The fixture proves CPython 3.9
imports it, so a failure on 3.10 is the tag's doing, not a broken wheel's.
"""

# ruff: noqa: F811 (pytest passes the imported `env` fixture as a same-named argument)
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import localindex
from indexserver import make_wheel
from localindex import File
from test_install import env, freeze, siblings, torchup  # noqa: F401 (env: a fixture)
from test_plan import pyenv
from torchup.choose.forcing import retag, stand_in_tags, unloadable_modules
from torchup.choose.resolve import Outcome, Rejection

WHEEL = "torch-1.10.0+cpu-cp39-cp39-linux_x86_64.whl"
METADATA = (
    "Metadata-Version: 2.1\nName: torch\nVersion: 1.10.0+cpu\nRequires-Python: >=3.6.2\n"
    "Requires-Dist: typing-extensions\n"
    'Requires-Dist: dataclasses ; python_version < "3.7"\n'
    'Requires-Dist: pytest ; extra == "test"\n'
)
C_SOURCE = """
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_C", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&def); }
"""


def build_wheel(out: Path) -> bytes:
    """The cp39 torch stand-in: compiled for 3.9, loadable by 3.9 only."""
    py39 = Path(pyenv("3.9"))
    include = next((py39.parent.parent / "include").glob("python3.9*"))
    src = out / "c.c"
    src.write_text(C_SOURCE)
    ext = out / "_C.cpython-39-x86_64-linux-gnu.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f"-I{include}", str(src), "-o", str(ext)], check=True
    )
    files = {
        "torch/__init__.py": b'from torch._C import *  # noqa\n__version__ = "1.10.0+cpu"\n',
        "torch/_C.cpython-39-x86_64-linux-gnu.so": ext.read_bytes(),
    }
    return make_wheel(WHEEL, METADATA.encode(), files=files)


def publish(
    root: Path, wheel: bytes, *, page_sha256: str | None = None, filename: str = WHEEL
) -> None:
    """``root/whl/cpu/torch/`` in the PyTorch index's layout, with PEP 658 metadata."""
    localindex.publish(root, {"cpu": [File(filename, wheel, METADATA, page_sha256)]})


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to compile the extension module")
    out = tmp_path_factory.mktemp("wheel")
    data = build_wheel(out)
    # CPython 3.9 imports it: the wheel itself is sound.
    unpacked = out / "unpacked"
    zipfile.ZipFile(io.BytesIO(data)).extractall(unpacked)
    subprocess.run([pyenv("3.9"), "-c", "import torch"], cwd=unpacked, check=True)
    return data


@pytest.fixture
def server(tmp_path: Path, wheel: bytes) -> Iterator[tuple[str, Path, list[str]]]:
    root = tmp_path / "site"
    publish(root, wheel)
    with localindex.serve(root) as served:
        yield served.url, root, served.requested


def force(env: dict[str, str], cwd: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return torchup(
        env,
        cwd,
        "install",
        "torch==1.10.0",
        "--python",
        pyenv("3.10"),
        "--torch-index-url",
        url,
        *args,
    )


def test_without_the_flag_nothing_is_forced_and_the_flag_is_suggested(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]]
) -> None:
    url, _, requested = server
    proc = force(env, tmp_path, url, "--venv", str(tmp_path / "v"))
    assert proc.returncode == 1, proc.stderr
    assert "built for cp39-cp39, not this Python 3.10" in proc.stdout
    assert "--force-incompatible" in proc.stdout
    assert not (tmp_path / "v").exists()
    assert not any(path.endswith(".whl") for path in requested)  # nothing downloaded


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_forced_cp39_wheel_on_310_is_rolled_back_with_the_reason(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]], installer: str
) -> None:
    url, _, requested = server
    venv = tmp_path / "v"
    proc = force(
        env, tmp_path, url, "--venv", str(venv), "--force-incompatible",
        "--installer", installer, "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False, doc["message"]
    assert doc["forced"] == [
        {
            "name": "torch",
            "filename": WHEEL,
            "installed_as": "torch-1.10.0+cpu-cp310-cp310-linux_x86_64.whl",
            "built_for": "cp39-cp39",
            "unloadable": ["torch/_C.cpython-39-x86_64-linux-gnu.so"],
        }
    ]
    # it was installed and run, and that is what failed
    checks = {c["id"]: c for c in doc["verify"]["checks"]}
    assert checks["import-torch"]["status"] == "fail"
    assert "torch._C" in checks["import-torch"]["detail"]
    assert "everything was undone" in doc["message"]
    assert "CPython 3.10.13 does not load its compiled modules" in doc["message"]
    assert "torch/_C.cpython-39-x86_64-linux-gnu.so" in doc["message"]
    # what fits instead, from the plan that did not fit: this machine's Python 3.9
    assert "instead: " in doc["message"]
    assert f"Python 3.9.18 can install the request: {pyenv('3.9')}" in doc["message"]
    # reported against the target, not the staging directory that is gone
    assert doc["verify"]["python"] == str(venv / "bin" / "python")
    assert ".torchup-" not in proc.stdout
    assert doc["plan"]["commands"] == []  # pip would refuse these files: no "install with"
    assert any("--force-incompatible: installing wheels built for cp39-cp39" in w
               for w in doc["plan"]["warnings"])  # fmt: skip
    # the wheel came from the chosen index, whole (hash checked), the dependencies
    # from the requirements that apply to 3.10 only
    assert f"/whl/cpu/{WHEEL.replace('+', '%2B')}" in requested
    second = doc["commands"][-1]
    assert "typing-extensions" in second
    assert not any(a.startswith(("dataclasses", "pytest")) for a in second)
    assert not venv.exists()
    assert siblings(venv) == []


def test_a_forced_install_into_an_existing_venv_restores_it(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]]
) -> None:
    url, _, _ = server
    venv = tmp_path / "v"
    subprocess.run([pyenv("3.10"), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    before = freeze(python)
    proc = force(env, tmp_path, url, "--venv", str(venv), "--force-incompatible")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "everything was undone" in proc.stdout
    assert freeze(python) == before
    assert siblings(venv) == []


def test_a_forced_dry_run_reads_metadata_only_and_changes_nothing(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]]
) -> None:
    url, _, requested = server
    venv = tmp_path / "v"
    proc = force(env, tmp_path, url, "--venv", str(venv), "--force-incompatible", "--dry-run",
                 "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True
    assert [f["installed_as"] for f in doc["forced"]] == [
        "torch-1.10.0+cpu-cp310-cp310-linux_x86_64.whl"
    ]
    second = doc["commands"][-1]
    assert second[:6] == [second[0], "pip", "install", "--python", second[4], "typing-extensions"]
    assert "--no-deps" not in second
    assert not any(path.endswith(".whl") for path in requested)  # PEP 658 file only
    assert any(path.endswith(".whl.metadata") for path in requested)
    assert not venv.exists()


def test_a_wheel_that_does_not_match_its_published_hash_is_never_installed(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]], wheel: bytes
) -> None:
    url, root, _ = server
    publish(root, wheel, page_sha256="0" * 64)
    proc = force(env, tmp_path, url, "--venv", str(tmp_path / "v"), "--force-incompatible")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "sha256 mismatch" in proc.stdout
    assert "nothing was created or changed" in proc.stdout
    assert not (tmp_path / "v").exists()
    assert siblings(tmp_path / "v") == []


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_either_installer_refuses_a_torch_file_that_does_not_match_its_index_hash(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]], installer: str
) -> None:
    url, root, requested = server
    fits = "torch-1.10.0+cpu-py3-none-any.whl"  # installs anywhere: only the hash is wrong
    publish(root, make_wheel(fits, METADATA.encode()), page_sha256="0" * 64, filename=fits)
    venv = tmp_path / "v"
    proc = force(env, tmp_path, url, "--venv", str(venv), "--installer", installer, "--no-verify")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "0" * 64 in proc.stdout + proc.stderr  # the installer's own hash report
    assert f"/whl/cpu/{fits.replace('+', '%2B')}" in requested  # it was fetched, then refused
    assert not venv.exists()
    assert siblings(venv) == []


def test_forcing_without_verification_is_a_usage_error(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]]
) -> None:
    url, _, _ = server
    proc = force(env, tmp_path, url, "--force-incompatible", "--no-verify")
    assert proc.returncode == 2
    assert "cannot be combined with --no-verify" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_nothing_to_force_when_no_wheel_is_for_this_platform(
    tmp_path: Path, env: dict[str, str], server: tuple[str, Path, list[str]], wheel: bytes
) -> None:
    url, root, _ = server
    page = root / "whl" / "cpu" / "torch" / "index.html"
    page.write_text(page.read_text().replace("linux_x86_64", "macosx_11_0_arm64"))
    proc = force(env, tmp_path, url, "--venv", str(tmp_path / "v"), "--force-incompatible")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "none of the rejected files is a CPython wheel for this platform" in proc.stdout
    assert not (tmp_path / "v").exists()


# -- the pure parts -------------------------------------------------------------------


def outcome(*filenames: str) -> Outcome:
    return Outcome(
        requirement=Requirement("torch"),
        choice=None,
        rejected=tuple(Rejection(filename=f, reason="") for f in filenames),
    )


LINUX = ["cp310-cp310-manylinux_2_28_x86_64", "cp310-cp310-linux_x86_64"]


@pytest.mark.parametrize(
    ("files", "version", "expected"),
    [
        # torch 2.15 needs 3.11+: 3.10 borrows 3.11's wheels, the nearest
        (["torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl",
          "torch-2.15.0-cp312-cp312-manylinux_2_28_x86_64.whl"], "3.10.13", "3.11"),
        # a tie goes to the older Python
        (["torch-1.0-cp39-cp39-linux_x86_64.whl", "torch-1.0-cp311-cp311-linux_x86_64.whl"],
         "3.10.1", "3.9"),
        # another platform's wheel is no candidate, whatever its Python
        (["torch-1.0-cp39-cp39-win_amd64.whl"], "3.10.1", None),
        # abi3 and py3 wheels are not "built for another Python"
        (["torch-1.0-cp39-abi3-linux_x86_64.whl", "not a wheel.tar.gz"], "3.10.1", None),
    ],
)  # fmt: skip
def test_stand_in_is_the_nearest_python_with_wheels_for_this_platform(
    files: list[str], version: str, expected: str | None
) -> None:
    got = stand_in_tags(version, False, LINUX, [outcome(*files)])
    assert (got.version if got else None) == expected


def test_free_threaded_pythons_borrow_only_free_threaded_wheels() -> None:
    files = ["torch-1.0-cp313-cp313-linux_x86_64.whl", "torch-1.0-cp314t-cp314t-linux_x86_64.whl"]
    got = stand_in_tags("3.13.0", True, ["cp313t-cp313t-linux_x86_64"], [outcome(*files)])
    assert got is not None
    assert got.tag == "cp314t-cp314t"


def test_retag_keeps_the_platform_and_refuses_another() -> None:
    assert retag("torch-2.15.0-1-cp311-cp311-manylinux_2_28_x86_64.whl", LINUX) == (
        "torch-2.15.0-1-cp310-cp310-manylinux_2_28_x86_64.whl"
    )
    with pytest.raises(ValueError, match="platform"):
        retag("torch-2.15.0-cp311-cp311-win_amd64.whl", LINUX)


def test_unloadable_modules_by_cpython_naming_rules() -> None:
    names = [
        "torch/_C.cpython-310-x86_64-linux-gnu.so",  # its own: loads
        "torch/_C.cpython-39-x86_64-linux-gnu.so",
        "torch/_C.cp39-win_amd64.pyd",
        "torch/_C.cpython-310t-x86_64-linux-gnu.so",  # free-threaded build's
        "torch/_C.abi3.so",
        "torch/lib/libtorch_cpu.so",
    ]
    assert unloadable_modules(names, "3.10.13", False) == names[1:4]
    assert unloadable_modules(names, "3.10.13", True) == [names[0], names[1], names[2]]


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="the generated extension is built with gcc on Linux")
