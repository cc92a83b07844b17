"""``torchup doctor``: every check triggered for real, and its pass case.

The targets are real interpreters and real venvs (``python -m venv``): the real CPU
torch 2.13.0 (``conftest.torch_venv``), PyPI's torchvision 0.28.0 wheel installed with
``--no-deps`` beside it (from the machine's local PyPI mirror, or downloaded with the
opt-in ``network`` marker), and generated distributions with the real metadata shapes
(captured METADATA files, real ``version.py`` and WHEEL files). A generated ``torch``
package (tests/data/doctor/fake_torch_init.txt) plays a CUDA build on a GPU machine;
it fakes the environment, never doctor. GPUs and drivers come from the detection
overrides ``TORCHUP_GPU_ARCHS`` / ``TORCHUP_CUDA_DRIVER_VERSION``. Every report is made
by :func:`torchup.check.doctor.doctor` (or the CLI), which runs the target for real.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from packaging.version import Version

from indexserver import IndexServer
from realtorch import PYENV_VERSIONS, PYTHON311, uv
from torchup.check.doctor import DoctorReport, doctor
from torchup.check.doctor_checks import CHECKS, check_pip_mismatch, run_checks
from torchup.check.doctor_facts import (
    PYTHON_SUPPORT,
    Command,
    Dist,
    Facts,
    Finding,
    SiteFacts,
    Target,
    python_support,
)
from torchup.envs.installing import apply_fix as apply
from torchup.errors import UsageError
from torchup.hardware.accelerators import Accelerator, Gpu
from torchup.interpreters.discover import Interpreter
from torchup.render.text import render_doctor

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "doctor"
METADATA = TESTS / "data" / "metadata"
PYPI_TORCHVISION = Path(
    "/opt/pypi-more/files/torchvision-0.28.0-cp311-cp311-manylinux_2_28_x86_64.whl"
)  # the machine's local copy of PyPI's wheel
TAG311 = "cp311-cp311-manylinux_2_28_x86_64"


def pyenv_python(version: str) -> Path:
    found = sorted(PYENV_VERSIONS.glob(f"{version}.*/bin/python"))
    if not found:
        pytest.skip(f"needs CPython {version} from pyenv")
    return found[-1]


# --- building environments ------------------------------------------------------------


def make_venv(path: Path, base: Path = PYTHON311, *, system_site: bool = False) -> Path:
    if not base.exists():
        pytest.skip(f"needs {base}")
    flags = ["--system-site-packages"] if system_site else []
    subprocess.run(
        [str(base), "-m", "venv", "--without-pip", *flags, str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


def site_of(prefix: Path) -> Path:
    (site,) = prefix.glob("lib/python*/site-packages")
    return site


def write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def metadata(captured: str, version: str) -> str:
    """A captured METADATA file with its Version line set to ``version``."""
    text = (METADATA / captured).read_text(encoding="utf-8")
    return re.sub(r"^Version: .*$", f"Version: {version}", text, count=1, flags=re.MULTILINE)


def dist(site: Path, name: str, version: str, meta: str, files: Mapping[str, str]) -> None:
    """An installed distribution: its files, and a dist-info as an installer writes it."""
    info = f"{name}-{version}.dist-info"
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    write(site, dict(files))
    write(
        site,
        {
            f"{info}/METADATA": meta,
            f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: setuptools (81.0.0)\n"
            f"Root-Is-Purelib: false\nTag: {TAG311}\n\n",
            f"{info}/INSTALLER": "uv",
            f"{info}/RECORD": record,
        },
    )


def fake_torch(site: Path, version: str, cuda: str | None, captured: str) -> None:
    """A generated torch: the fake ``__init__`` and the real ``version.py`` shape."""
    written = (DATA / "torch-2.13.0+cpu.version.txt").read_text(encoding="utf-8")
    written = written.replace("'2.13.0+cpu'", repr(version))
    written = written.replace("cuda: Optional[str] = None", f"cuda: Optional[str] = {cuda!r}")
    files = {
        "torch/__init__.py": (DATA / "fake_torch_init.txt").read_text(encoding="utf-8"),
        "torch/version.py": written,
    }
    dist(site, "torch", version, metadata(captured, version), files)
    for pin in re.findall(
        r"^Requires-Dist: (nvidia-[\w-]+)==([\w.]+);", metadata(captured, ""), re.M
    ):
        name, pinned = pin
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {pinned}\n"
        dist(site, name.replace("-", "_"), pinned, meta, {})


@dataclass(frozen=True)
class World:
    """The user's environment for one module: a PATH whose python/pip pair is one
    Python, an empty pyenv root and user base, a private cache, no GPU."""

    root: Path
    bin: Path
    env: dict[str, str]
    cwd: Path

    def with_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("doctor")
    py312 = pyenv_python("3.12")
    bindir = root / "bin"
    bindir.mkdir()
    for name, target in (
        ("python", "python"),
        ("python3", "python"),
        ("pip", "pip"),
        ("pip3", "pip"),
    ):
        (bindir / name).symlink_to(py312.parent / target)
    for name in ("home", "pyenv", "userbase", "work"):
        (root / name).mkdir()
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "HOME": str(root / "home"),
        "PYENV_ROOT": str(root / "pyenv"),
        "PYTHONUSERBASE": str(root / "userbase"),
        "TORCHUP_CACHE_DIR": str(root / "cache"),
        "TORCHUP_GPU_ARCHS": "none",
    }
    return World(root=root, bin=bindir, env=env, cwd=root / "work")


def examine(world: World, prefix: Path, *, cwd: Path | None = None, **extra: str) -> DoctorReport:
    return doctor(venv=str(prefix), env=world.with_env(**extra), cwd=cwd or world.cwd, timeout=60)


def check(report: DoctorReport, check_id: str) -> Finding:
    (found,) = [c for c in report.checks if c.id == check_id]
    return found


def statuses(report: DoctorReport) -> dict[str, str]:
    return {c.id: c.status for c in report.checks}


@pytest.fixture(scope="module")
def bare(world: World) -> Path:
    """A venv with nothing installed."""
    return make_venv(world.root / "bare")


@pytest.fixture(scope="module")
def cuda_venv(world: World) -> Path:
    """A venv with a generated torch 2.8.0+cu128 (PyPI's METADATA and nvidia-* wheels)."""
    prefix = make_venv(world.root / "cuda")
    fake_torch(site_of(prefix), "2.8.0+cu128", "12.8", "torch-2.8.0.METADATA")
    return prefix


@pytest.fixture(scope="module")
def cpu_venv(world: World) -> Path:
    """A venv with a generated torch 2.13.0+cpu and nothing wrong with it."""
    prefix = make_venv(world.root / "cpu")
    fake_torch(site_of(prefix), "2.13.0+cpu", None, "torch-2.13.0.METADATA")
    return prefix


# --- the real torch -------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(world: World, torch_venv: Path) -> DoctorReport:
    return examine(world, torch_venv.parent.parent)


def test_real_torch_passes_every_check(healthy: DoctorReport) -> None:
    assert statuses(healthy) == dict.fromkeys(CHECKS, "pass"), healthy.problems()
    assert healthy.ok
    assert (healthy.torch, healthy.variant) == ("2.13.0+cpu", "cpu")
    assert healthy.fixes == ()
    fits = check(healthy, "python-unsupported").summary
    assert fits == f"torch 2.13.0+cpu is built for this Python ({TAG311})"
    assert check(healthy, "torch-import").summary.startswith(
        "import torch works: torch 2.13.0+cpu from "
    )
    pip = check(healthy, "pip-mismatch")
    assert pip.summary == "pip and python on PATH belong to the same Python"
    assert any("by its first line" in line for line in pip.evidence)


def test_report_json_shape(healthy: DoctorReport) -> None:
    doc = json.loads(json.dumps(healthy.to_dict()))
    assert set(doc) == {
        "schema", "ok", "python", "torch", "accelerator", "checks", "fixes", "seconds",
    }  # fmt: skip
    assert doc["schema"] == 1
    assert doc["ok"] is True
    assert set(doc["python"]) == {
        "executable", "version", "implementation", "kind", "prefix", "source",
        "externally_managed",
    }  # fmt: skip
    assert doc["torch"] == {
        "version": "2.13.0+cpu",
        "variant": "cpu",
        "location": f"{site_of(Path(doc['python']['prefix']))}/torch/__init__.py",
    }
    assert set(doc["accelerator"]) == {"kind", "source", "summary"}
    assert [c["id"] for c in doc["checks"]] == list(CHECKS)
    for item in doc["checks"]:
        assert set(item) == {"id", "status", "summary", "evidence", "fix"}
        assert item["status"] in ("pass", "warn", "fail")
        assert isinstance(item["evidence"], list)
    assert doc["fixes"] == []


def test_fix_json_shape() -> None:
    _, fixes = run_checks(_broken_facts())
    assert [fix.to_dict() for fix in fixes] == [
        {
            "mends": ["cpu-build-on-gpu", "companion-mismatch"],
            "command": "torchup install torch==2.13.0 torchvision --backend cu130 --venv /p/.venv",
            "automatic": True,
            "install": {
                "requirements": ["torch==2.13.0", "torchvision"],
                "backend": "cu130",
                "venv": "/p/.venv",
            },
        },
        {
            "mends": ["shadowed-import"],
            "command": "mv /w/torch.py /w/my_torch.py",
            "automatic": False,
            "install": None,
        },
    ]


def pypi_torchvision(dest: Path, source: str) -> Path:
    """PyPI's torchvision 0.28.0 (a CUDA 13.0 build): the machine's local copy of PyPI's
    wheel (byte for byte), or downloaded from PyPI."""
    if source == "mirror":
        if not PYPI_TORCHVISION.is_file():
            pytest.skip("the local mirror has no copy of PyPI's torchvision 0.28.0")
        return PYPI_TORCHVISION
    local = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE")
    env = {k: v for k, v in os.environ.items() if k not in local}  # proxies and CAs stay
    env["PIP_CONFIG_FILE"] = os.devnull  # pip's default index: PyPI
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
         "torchvision==0.28.0", "-d", str(dest)],
        check=True, env=env,
    )  # fmt: skip
    (wheel,) = dest.glob("torchvision-0.28.0-*.whl")
    return wheel


@pytest.mark.parametrize("source", ["mirror", pytest.param("pypi", marks=pytest.mark.network)])
def test_cpu_torch_with_pypi_torchvision_on_a_gpu_machine(
    world: World, torch_venv: Path, tmp_path: Path, source: str
) -> None:
    # The classic: a +cpu torch, then `pip install torchvision` from PyPI (a CUDA build).
    installer = uv()
    if installer is None:
        pytest.skip("needs uv")
    prefix = make_venv(tmp_path / "env")
    (site_of(prefix) / "real_torch.pth").write_text(f"{site_of(torch_venv.parent.parent)}\n")
    subprocess.run(
        [installer, "pip", "install", "--no-config", "--offline", "-q", "--no-deps",
         "--python", str(prefix / "bin" / "python"), "--cache-dir", str(tmp_path / "uv"),
         str(pypi_torchvision(tmp_path, source))],
        check=True, capture_output=True,
    )  # fmt: skip
    report = examine(
        world, prefix, TORCHUP_GPU_ARCHS="8.9", TORCHUP_CUDA_DRIVER_VERSION="580.65.06"
    )
    assert [c.id for c in report.problems()] == ["cpu-build-on-gpu", "companion-mismatch"]
    companion = check(report, "companion-mismatch")
    assert companion.status == "fail"
    assert companion.summary == (
        "torchvision 0.28.0 is a cu130 build, torch 2.13.0+cpu is a cpu build (its metadata "
        "requires torch==2.13.0); import torchvision fails: RuntimeError: operator "
        "torchvision::nms does not exist"
    )
    assert any(line.endswith("version.py: 0.28.0+cu130") for line in companion.evidence)
    gpu = check(report, "cpu-build-on-gpu")
    assert gpu.status == "fail"
    assert gpu.summary.startswith("torch is a CPU-only build, but this machine has NVIDIA")
    assert "GPU 0 (sm_89)" in gpu.summary
    # One reinstall mends both: the newest build of the same release that driver 580 and
    # sm_89 run (cu132 needs driver 595), with the companions paired to it.
    (fix,) = report.fixes
    assert fix.command == (
        f"torchup install torch==2.13.0 torchvision --backend cu130 --venv {prefix}"
    )
    assert fix.automatic
    assert fix.mends == ("cpu-build-on-gpu", "companion-mismatch")
    assert fix.install == {
        "requirements": ("torch==2.13.0", "torchvision"), "backend": "cu130",
        "venv": str(prefix),
    }  # fmt: skip
    assert not report.ok


def test_torch_built_for_another_python(world: World, torch_venv: Path, tmp_path: Path) -> None:
    # A 3.12 venv that sees the cp311 torch (a copied site-packages, a .pth, a --target).
    prefix = make_venv(tmp_path / "py312", pyenv_python("3.12"))
    (site_of(prefix) / "real_torch.pth").write_text(f"{site_of(torch_venv.parent.parent)}\n")
    report = examine(world, prefix)
    wrong = check(report, "python-unsupported")
    assert wrong.status == "fail"
    version = report.python.version
    assert wrong.summary == f"torch 2.13.0+cpu was built for another Python, not Python {version}"
    assert wrong.evidence[0].endswith(f"torch-2.13.0+cpu.dist-info/WHEEL: Tag: {TAG311}")
    assert "accepts cp312-cp312-" in wrong.evidence[1]
    assert wrong.fix == f"torchup install torch==2.13.0 --backend cpu --venv {prefix}"
    broken = check(report, "torch-import")
    assert broken.status == "fail"
    assert "its compiled core (torch._C) does not load in this Python" in broken.summary
    assert "Failed to load PyTorch C extensions" in broken.evidence[0]
    (fix,) = report.fixes
    assert fix.mends == ("python-unsupported", "torch-import")
    assert check(report, "torch-missing").status == "pass"


# --- torch missing, shadowed, leaking in, twice ---------------------------------------


def test_torch_missing_names_the_pythons_that_have_it(
    world: World, bare: Path, cuda_venv: Path
) -> None:
    report = examine(world, bare, PATH=f"{world.bin}:{cuda_venv / 'bin'}:/usr/bin:/bin")
    missing = check(report, "torch-missing")
    assert missing.status == "fail"
    assert missing.summary == f"torch is not installed for Python 3.11.7 ({bare}/bin/python)"
    other = f"torch 2.8.0+cu128 is installed for Python 3.11.7: {cuda_venv}/bin/python"
    assert other in missing.evidence
    assert "import torch: ModuleNotFoundError: No module named 'torch'" in missing.evidence
    assert missing.fix == f"torchup install torch --venv {bare}"
    assert check(report, "torch-import").status == "pass"  # nothing to import
    (fix,) = report.fixes
    assert fix.automatic
    assert fix.install == {"requirements": ("torch",), "backend": None, "venv": str(bare)}
    assert not report.ok


def test_torch_py_in_the_working_directory_shadows_torch(
    world: World, cpu_venv: Path, tmp_path: Path
) -> None:
    (tmp_path / "torch.py").write_text("print('my experiment')\n")
    report = examine(world, cpu_venv, cwd=tmp_path)
    shadow = check(report, "shadowed-import")
    assert shadow.status == "fail"
    assert shadow.summary == (
        f"{tmp_path}/torch.py hides the real torch: import torch loads it (from the working "
        "directory)"
    )
    loads = f"import torch loads {tmp_path}/torch.py, not {site_of(cpu_venv)}/torch/__init__.py"
    assert loads in shadow.evidence
    assert shadow.fix == f"mv {tmp_path}/torch.py {tmp_path}/my_torch.py"
    assert [(f.command, f.automatic) for f in report.fixes] == [(shadow.fix, False)]
    elsewhere = examine(world, cpu_venv)  # the same venv from a clean directory
    assert check(elsewhere, "shadowed-import").status == "pass"
    assert elsewhere.ok


def test_torch_package_on_pythonpath_shadows_torch(
    world: World, cpu_venv: Path, tmp_path: Path
) -> None:
    write(tmp_path / "vendored", {"torch/__init__.py": "__version__ = '1.0.0'\n"})
    report = examine(world, cpu_venv, PYTHONPATH=str(tmp_path / "vendored"))
    shadow = check(report, "shadowed-import")
    assert shadow.status == "fail"
    assert shadow.summary.endswith("(from PYTHONPATH)")
    assert shadow.fix == "unset PYTHONPATH"
    # relative to where the user runs Python, not to where doctor's probe runs
    relative = examine(world, cpu_venv, cwd=tmp_path, PYTHONPATH="vendored")
    assert check(relative, "shadowed-import").status == "fail"


def test_torch_in_the_user_site_leaks_into_a_venv(world: World, tmp_path: Path) -> None:
    userbase = tmp_path / "userbase"
    user_site = userbase / "lib" / "python3.11" / "site-packages"
    fake_torch(user_site, "2.13.0+cpu", None, "torch-2.13.0.METADATA")
    leaky = make_venv(tmp_path / "leaky", system_site=True)
    report = examine(world, leaky, PYTHONUSERBASE=str(userbase))
    user = check(report, "user-site")
    assert user.status == "fail"
    assert user.summary == f"torch 2.13.0+cpu from the user site {user_site} leaks into this venv"
    assert user.fix is not None
    assert user.fix.endswith(" -m pip uninstall -y torch")
    # the base Python itself: its own user install, a warning
    env = world.with_env(PYTHONUSERBASE=str(userbase))
    report = doctor(python=str(PYTHON311), env=env, cwd=world.cwd)
    assert check(report, "user-site").status == "warn"
    # with its own torch, the venv imports that one (its site-packages come first): the
    # user site's is shadowed here, not hiding anything
    fake_torch(site_of(leaky), "2.13.0+cpu", None, "torch-2.13.0.METADATA")
    report = examine(world, leaky, PYTHONUSERBASE=str(userbase))
    shadowed = check(report, "user-site")
    assert shadowed.status == "warn"
    assert shadowed.summary.startswith(f"torch 2.13.0+cpu in the user site {user_site} is shadowed")
    assert f"import torch loads {site_of(leaky)}/torch/__init__.py" in shadowed.evidence
    # a venv without system site packages does not read it
    report = examine(world, make_venv(tmp_path / "sealed"), PYTHONUSERBASE=str(userbase))
    user = check(report, "user-site")
    assert user.status == "pass"
    assert "is not read by this Python" in user.summary


def test_two_torch_distributions_and_leftovers(world: World, tmp_path: Path) -> None:
    prefix = make_venv(tmp_path / "twice")
    site = site_of(prefix)
    fake_torch(site, "2.13.0+cpu", None, "torch-2.13.0.METADATA")
    # an upgrade that died half way: the old metadata, and pip's stash of old files
    dist(site, "torch", "2.12.0", metadata("torch-2.13.0.METADATA", "2.12.0"), {})
    write(site, {"~orch/__init__.py": ""})
    report = examine(world, prefix)
    multiple = check(report, "multiple-torch")
    assert multiple.status == "fail"
    assert multiple.summary.startswith("2 torch distributions on sys.path (2.12.0, 2.13.0+cpu)")
    assert "torch/version.py says 2.13.0+cpu: the other metadata is stale" in multiple.evidence
    assert f"{site}/~orch: left by an interrupted pip" in multiple.evidence
    stale = [f"{site}/torch-2.12.0.dist-info", f"{site}/~orch"]
    assert multiple.fix == shlex.join(["rm", "-rf", *stale])


def test_a_torch_from_outside_the_env_is_the_one_to_remove(world: World, tmp_path: Path) -> None:
    """A .pth file puts another folder's torch on sys.path: pip will not uninstall a
    distribution outside the env, and uninstalling the env's own torch (twice) left the
    stray one and removed the good one. The fix names the stray one's folders."""
    prefix = make_venv(tmp_path / "mixed")
    site = site_of(prefix)
    fake_torch(site, "2.13.0+cpu", None, "torch-2.13.0.METADATA")
    extra = tmp_path / "extra"
    fake_torch(extra, "2.12.0", None, "torch-2.13.0.METADATA")
    (site / "extra.pth").write_text(f"{extra}\n")
    multiple = check(examine(world, prefix), "multiple-torch")
    assert multiple.status == "fail"
    assert (
        f"{extra} is outside this environment ({prefix}): on sys.path by a .pth file or PYTHONPATH"
        in multiple.evidence
    )
    assert multiple.fix == shlex.join(
        ["rm", "-rf", f"{extra}/torch", f"{extra}/torch-2.12.0.dist-info"]
    )


# --- companions -----------------------------------------------------------------------


def test_companions_built_for_a_cuda_torch_offline(world: World, tmp_path: Path) -> None:
    # torchvision and torchaudio from the PyTorch index's cu130 directory beside a +cpu
    # torch: their metadata, and their imports failing as the real ones do.
    prefix = make_venv(tmp_path / "mixed")
    site = site_of(prefix)
    fake_torch(site, "2.13.0+cpu", None, "torch-2.13.0.METADATA")
    vision = metadata("torchvision-0.28.0.METADATA", "0.28.0+cu130")
    vision = vision.replace("torch (==2.13.0)", "torch==2.13.0+cu130")
    dist(site, "torchvision", "0.28.0+cu130", vision, {
        "torchvision/__init__.py":
            "raise RuntimeError('operator torchvision::nms does not exist')\n",
        "torchvision/version.py": (DATA / "torchvision-0.28.0.version.txt").read_text("utf-8"),
    })  # fmt: skip
    audio = metadata("torchaudio-2.11.0.METADATA", "2.11.0+cu130")
    dist(site, "torchaudio", "2.11.0+cu130", audio, {
        "torchaudio/__init__.py": "raise OSError('libc10_cuda.so: cannot open shared object "
        "file: No such file or directory')\n",
        "torchaudio/version.py": "__version__ = '2.11.0+cu130'\n",
    })  # fmt: skip
    report = examine(world, prefix)
    assert [c.id for c in report.problems()] == ["companion-mismatch"]
    companion = check(report, "companion-mismatch")
    assert companion.status == "fail"
    vision_said, audio_said = companion.summary.split("; torchaudio ")
    assert vision_said == (
        "torchvision 0.28.0+cu130 requires torch==2.13.0+cu130, but torch 2.13.0+cpu is "
        "installed; torchvision 0.28.0+cu130 is a cu130 build, torch 2.13.0+cpu is a cpu build "
        "(its metadata requires torch==2.13.0+cu130); import torchvision fails: RuntimeError: "
        "operator torchvision::nms does not exist"
    )
    assert audio_said == (
        "2.11.0+cu130 is a cu130 build, torch 2.13.0+cpu is a cpu build (no torch pin in its "
        "metadata; the pairing table agrees); import torchaudio fails: OSError: libc10_cuda.so: "
        "cannot open shared object file: No such file or directory"
    )
    assert (
        "so torchaudio: it was built for a CUDA torch, and this torch has no CUDA "
        "libraries" in companion.evidence
    )
    assert companion.fix == (
        f"torchup install torch==2.13.0 torchvision torchaudio --backend cpu --venv {prefix}"
    )


def test_companions_that_fit_pass(world: World, tmp_path: Path) -> None:
    prefix = make_venv(tmp_path / "fits")
    site = site_of(prefix)
    fake_torch(site, "2.13.0+cpu", None, "torch-2.13.0.METADATA")
    vision = metadata("torchvision-0.28.0.METADATA", "0.28.0+cpu")
    dist(site, "torchvision", "0.28.0+cpu", vision, {
        "torchvision/__init__.py": "__version__ = '0.28.0+cpu'\n",
        "torchvision/version.py": "__version__ = '0.28.0+cpu'\n",
    })  # fmt: skip
    report = examine(world, prefix)
    companion = check(report, "companion-mismatch")
    assert companion.status == "pass"
    assert companion.summary == "torchvision 0.28.0+cpu fit torch 2.13.0+cpu"


# --- GPU checks, with detection overrides ---------------------------------------------


@pytest.fixture(scope="module")
def cuda_libs(world: World) -> Path:
    """A system CUDA 11.8 / cuDNN 8 library folder (their names are what counts)."""
    folder = world.root / "cuda-11.8" / "lib64"
    folder.mkdir(parents=True)
    for name in ("libcudart.so.11.0", "libcudnn.so.8", "libcublas.so.11", "libfoo.so"):
        (folder / name).write_bytes(b"")
    return folder


def test_a_cuda_torch_on_a_machine_it_cannot_use(
    world: World, cuda_venv: Path, cuda_libs: Path
) -> None:
    # A GTX 1080 Ti (sm_61), driver 470, GPUs hidden, an old CUDA on LD_LIBRARY_PATH.
    report = examine(
        world, cuda_venv,
        TORCHUP_GPU_ARCHS="6.1", TORCHUP_CUDA_DRIVER_VERSION="470.82.01",
        CUDA_VISIBLE_DEVICES="-1", LD_LIBRARY_PATH=f"{cuda_libs}:/nowhere",
    )  # fmt: skip
    driver = check(report, "driver-too-old")
    assert driver.status == "fail"
    assert driver.summary == (
        "torch 2.8.0+cu128 needs NVIDIA driver 570.26 or newer (CUDA 12.8); this machine "
        "has 470.82.01"
    )
    assert "this machine's driver: 470.82.01 (TORCHUP_CUDA_DRIVER_VERSION)" in driver.evidence
    arch = check(report, "arch-unsupported")
    assert arch.status == "fail"
    assert arch.summary == (
        "torch 2.8.0+cu128 has no kernels for GPU 0 (sm_61): GPU work fails with 'no kernel "
        "image is available for execution on the device'"
    )
    assert any("has kernels for 7.0;7.5;8.0;8.6;9.0;10.0;12.0" in e for e in arch.evidence)
    hidden = check(report, "gpu-hidden")
    assert hidden.status == "fail"
    assert hidden.summary == (
        "CUDA_VISIBLE_DEVICES='-1' hides every GPU: torch's CUDA 12.8 build sees none"
    )
    assert hidden.fix == "unset CUDA_VISIBLE_DEVICES"
    libs = check(report, "library-path")
    assert libs.status == "fail"
    assert f"{cuda_libs}/libcudart.so.11.0 (torch needs cuda 12)" in libs.summary
    assert f"{cuda_libs}/libcudnn.so.8 (torch needs cudnn 9)" in libs.summary
    assert any("nvidia-cudnn-cu12 9.10.2.21" in e for e in libs.evidence)
    assert libs.fix == "export LD_LIBRARY_PATH=/nowhere"
    assert check(report, "cpu-build-on-gpu").status == "pass"
    # No 2.8 build runs on driver 470: auto plans the CPU build and names the upgrade.
    assert [(f.command, f.automatic, f.mends) for f in report.fixes] == [
        (f"torchup install torch==2.8.0 --backend auto --venv {cuda_venv}", True,
         ("driver-too-old", "arch-unsupported")),
        ("unset CUDA_VISIBLE_DEVICES", False, ("gpu-hidden",)),
        ("export LD_LIBRARY_PATH=/nowhere", False, ("library-path",)),
    ]  # fmt: skip


def test_a_gpu_without_kernels_names_the_build_that_has_them(world: World, cuda_venv: Path) -> None:
    env = {"TORCHUP_GPU_ARCHS": "6.1", "TORCHUP_CUDA_DRIVER_VERSION": "580.65.06"}
    report = examine(world, cuda_venv, **env)
    arch = check(report, "arch-unsupported")
    assert arch.status == "fail"
    assert "torch 2.8.0 cu126 has kernels for GPU 0 (sm_61)" in arch.evidence
    assert arch.fix == f"torchup install torch==2.8.0 --backend cu126 --venv {cuda_venv}"
    assert check(report, "driver-too-old").status == "pass"


def test_torch_that_sees_the_gpu_is_judged_by_its_own_arch_list(
    world: World, cuda_venv: Path
) -> None:
    machine = {
        "devices": [{"name": "NVIDIA GeForce GTX 1080 Ti", "major": 6, "minor": 1}],
        "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
        "cudnn": 91002,
    }
    report = examine(
        world, cuda_venv, TORCHUP_GPU_ARCHS="6.1", TORCHUP_CUDA_DRIVER_VERSION="580.65.06",
        FAKE_TORCH_MACHINE=json.dumps(machine),
    )  # fmt: skip
    arch = check(report, "arch-unsupported")
    assert arch.status == "fail"
    assert "torch.cuda.get_arch_list(): sm_75 sm_80 sm_86 sm_90 sm_100 sm_120" in arch.evidence
    assert "cuda:0 NVIDIA GeForce GTX 1080 Ti (sm_61)" in arch.summary


def test_a_cuda_torch_that_fits_the_machine_passes(world: World, cuda_venv: Path) -> None:
    env = {"TORCHUP_GPU_ARCHS": "8.9", "TORCHUP_CUDA_DRIVER_VERSION": "580.65.06"}
    report = examine(world, cuda_venv, **env)
    assert statuses(report) == dict.fromkeys(CHECKS, "pass"), report.problems()
    assert check(report, "driver-too-old").summary == (
        "driver 580.65.06 runs CUDA 12.8 (needs 570.26)"
    )
    assert check(report, "arch-unsupported").summary == "kernels for GPU 0 (sm_89)"


def test_minor_version_compatibility_and_a_same_major_cuda_warn(
    world: World, cuda_venv: Path
) -> None:
    same = world.root / "cuda-12" / "lib64"
    same.mkdir(parents=True)
    (same / "libcudart.so.12").write_bytes(b"")
    report = examine(
        world, cuda_venv, TORCHUP_GPU_ARCHS="8.9", TORCHUP_CUDA_DRIVER_VERSION="560.35.05",
        LD_LIBRARY_PATH=str(same),
    )  # fmt: skip
    driver = check(report, "driver-too-old")
    assert driver.status == "warn"
    assert "only through minor-version compatibility" in driver.summary
    assert driver.fix == f"torchup install torch==2.8.0 --backend cu126 --venv {cuda_venv}"
    assert check(report, "library-path").status == "warn"
    assert report.ok  # warnings only
    assert not any(f.automatic for f in report.fixes)


def test_cpu_build_with_hidden_gpus_only_warns(world: World, cpu_venv: Path) -> None:
    report = examine(world, cpu_venv, TORCHUP_GPU_ARCHS="8.9", HIP_VISIBLE_DEVICES="")
    hidden = check(report, "gpu-hidden")
    assert hidden.status == "warn"
    assert hidden.summary == "HIP_VISIBLE_DEVICES='' hides every GPU: PyTorch sees none"
    assert check(report, "cpu-build-on-gpu").status == "fail"


# --- the import: crash, hang; old Pythons ---------------------------------------------


@pytest.mark.parametrize(
    ("machine", "expected"),
    [({"crash": True}, "crashes the interpreter"), ({"hang": True}, "hangs")],
    ids=["crash", "hang"],
)
def test_an_import_that_crashes_or_hangs_is_a_finding(
    world: World, cpu_venv: Path, machine: dict[str, bool], expected: str
) -> None:
    env = world.with_env(FAKE_TORCH_MACHINE=json.dumps(machine))
    report = doctor(venv=str(cpu_venv), env=env, cwd=world.cwd, timeout=2)
    broken = check(report, "torch-import")
    assert broken.status == "fail"
    assert broken.summary == (
        f"torch 2.13.0+cpu is installed, but import torch fails: importing torch {expected}"
    )
    assert (
        broken.fix == f"torchup install torch==2.13.0 --backend cpu --reinstall --venv {cpu_venv}"
    )
    # the checks that read files still ran
    assert check(report, "python-unsupported").status == "pass"


@pytest.mark.parametrize("version", ["2.7", "3.6"])
def test_an_old_python_is_examined_from_its_files(world: World, version: str) -> None:
    report = doctor(python=str(pyenv_python(version)), env=world.env, cwd=world.cwd)
    support = check(report, "python-unsupported")
    assert support.status == "warn"
    assert support.summary == (
        f"the last torch with wheels for CPython {version} is {PYTHON_SUPPORT[version][1]}; "
        "torch 2.15.0 needs CPython 3.11 or newer"
    )
    assert check(report, "torch-missing").status == "fail"
    assert check(report, "user-site").status == "pass"


# --- PATH and PEP 668 -----------------------------------------------------------------


def test_pip_on_path_belonging_to_another_python(world: World, bare: Path, tmp_path: Path) -> None:
    py312 = pyenv_python("3.12")
    mixed = tmp_path / "bin"
    mixed.mkdir()
    (mixed / "pip").symlink_to(py312.parent / "pip")
    # the venv is "activated", but another Python's pip comes first on PATH
    report = examine(world, bare, PATH=f"{mixed}:{bare}/bin")
    pip = check(report, "pip-mismatch")
    assert pip.status == "fail"
    assert pip.summary == (
        f"`pip` installs into Python {py312.parent.parent.name} ({py312.parent.parent}), but "
        f"`python` is Python 3.11.7 ({bare}): what pip installs, python cannot import"
    )
    # no command fixes a PATH (installing torch again changes nothing): the advice says how
    assert pip.fix is None
    assert (
        f"use `python -m pip` instead of `pip` (it is always python's own pip), or put "
        f"{bare}/bin before {mixed} on PATH (then `hash -r`)"
    ) in pip.evidence
    # a launcher whose first line names no Python (as a pyenv shim): asked with --version
    (mixed / "pip").unlink()
    (mixed / "pip").write_text(f'#!/bin/sh\nexec {py312} -m pip "$@"\n')
    (mixed / "pip").chmod(0o755)
    report = examine(world, bare, PATH=f"{mixed}:{bare}/bin")
    pip = check(report, "pip-mismatch")
    assert pip.status == "fail"
    assert any(line.endswith("by pip --version") for line in pip.evidence)


def test_externally_managed_system_python(world: World) -> None:
    system = Path("/usr/bin/python3")
    if not system.exists() or not list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED")):
        pytest.skip("no externally managed system Python here")
    report = doctor(python=str(system), env=world.env, cwd=world.cwd)
    if report.python.kind != "system":
        pytest.skip("the system Python resolved elsewhere")
    managed = check(report, "externally-managed")
    assert managed.status == "warn"
    assert "(PEP 668)" in managed.summary
    assert managed.fix == f"torchup install torch --python {report.python.executable}"
    (install,) = [f for f in report.fixes if f.install is not None]
    assert not install.automatic  # never changes a Python itself
    assert install.command.endswith(f"--python {report.python.executable} --system")


# --- the command line -----------------------------------------------------------------


def torchup(env: Mapping[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchup", *args],
        env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_cli_exit_codes_json_and_table(world: World, cpu_venv: Path, bare: Path) -> None:
    ok = torchup(world.env, "doctor", "--venv", str(cpu_venv), "--json", cwd=world.cwd)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["ok"] is True
    assert doc["applied"] == []
    assert [c["status"] for c in doc["checks"]] == ["pass"] * len(CHECKS)
    failed = torchup(world.env, "doctor", "--venv", str(bare), cwd=world.cwd)
    assert failed.returncode == 1, failed.stderr
    lines = failed.stdout.splitlines()
    assert lines[0] == f"python   3.11.7  {bare}/bin/python  (venv, --venv)"
    assert lines[1] == "torch    not installed"
    table = [line.split()[:2] for line in lines[4 : 4 + len(CHECKS)]]
    assert table[0] == ["fail", "torch-missing"]
    assert {row[0] for row in table[1:]} == {"pass"}
    assert f"  torchup doctor --fix runs: torchup install torch --venv {bare}" in lines
    assert lines[-1] == f"1 failed, 0 warned, {len(CHECKS) - 1} passed"
    both = torchup(world.env, "doctor", "--venv", str(bare), "--python", "3.11", cwd=world.cwd)
    assert both.returncode == 2
    assert "name different targets" in both.stderr


def test_fix_goes_through_install_and_undoes_a_failure(
    world: World, tmp_path: Path, index_server: IndexServer
) -> None:
    prefix = make_venv(tmp_path / "env")
    before = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*"))
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = file:///opt/pypi/simple\n")
    env = world.with_env(
        TORCHUP_TORCH_INDEX_URL=index_server.torch_url,
        PIP_CONFIG_FILE=str(conf),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
    )
    # The index's generated torch installs but is not torch: verification fails.
    proc = torchup(env, "doctor", "--venv", str(prefix), "--fix", "--json", cwd=world.cwd)
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    (applied,) = doc["applied"]
    assert applied["command"] == f"torchup install torch --venv {prefix}"
    assert applied["ok"] is False
    assert "everything was undone" in applied["message"]
    assert {c["id"]: c["status"] for c in doc["checks"]}["torch-missing"] == "fail"
    assert sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*")) == before


def test_fix_installs_real_torch_and_the_second_look_passes(world: World, tmp_path: Path) -> None:
    """``--fix`` end to end: an empty venv gets the real CPU torch 2.13.0 from an on-disk
    PyTorch-layout index listing the machine's wheel (with its sha256), verified by
    install, and doctor's second report passes."""
    wheel = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
    if not wheel.is_file() or not Path("/opt/pypi/simple").is_dir():
        pytest.skip("needs the machine's local CPU torch wheel and package mirror")
    page = tmp_path / "whl" / "cpu" / "torch"
    page.mkdir(parents=True)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    href = f"{wheel.as_uri().replace('+', '%2B')}#sha256={sha}"
    (page / "index.html").write_text(f'<a href="{href}">{wheel.name}</a>\n')
    prefix = make_venv(tmp_path / "env")
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = file:///opt/pypi/simple\n")
    env = world.with_env(
        TORCHUP_TORCH_INDEX_URL=(tmp_path / "whl").as_uri(),
        PIP_CONFIG_FILE=str(conf),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
    )
    proc = torchup(env, "doctor", "--venv", str(prefix), "--fix", "--json", cwd=world.cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    (applied,) = doc["applied"]
    assert applied["command"] == f"torchup install torch --venv {prefix}"
    assert applied["ok"] is True
    assert doc["ok"] is True  # the report after the fix
    assert doc["torch"]["version"] == "2.13.0+cpu"
    assert {c["id"]: c["status"] for c in doc["checks"]}["torch-missing"] == "pass"

    # damaged: metadata says 2.13.0+cpu but the compiled core is gone. The installer
    # would call that satisfied, so the fix reinstalls the same files.
    (core,) = prefix.glob("lib/python3.11/site-packages/torch/_C.cpython-311-*.so")
    core.unlink()
    proc = torchup(env, "doctor", "--venv", str(prefix), "--fix", "--json", cwd=world.cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    (applied,) = doc["applied"]
    assert applied["command"] == (
        f"torchup install torch==2.13.0 --backend cpu --reinstall --venv {prefix}"
    )
    assert applied["ok"] is True
    assert doc["ok"] is True
    assert core.is_file()


# --- pure: the checks on hand-made facts ----------------------------------------------


def _facts(**site: object) -> Facts:
    python = Interpreter(
        executable="/p/.venv/bin/python", version="3.11.7", implementation="cpython",
        kind="venv", source="--venv", prefix="/p/.venv", tags=(TAG311, "py3-none-any"),
    )  # fmt: skip
    return Facts(
        python=python,
        target=Target(kind="venv", path="/p/.venv", executable=python.executable),
        site=SiteFacts(executable=python.executable, **site),  # type: ignore[arg-type]
        accelerator=Accelerator(kind="cpu", source="test"),
        import_skipped="the checks alone are under test",
        cwd="/w",
    )


def _broken_facts() -> Facts:
    """A +cpu torch with PyPI's torchvision on an RTX machine, and a torch.py in /w."""
    torch = Dist(
        name="torch", version="2.13.0+cpu", dir="/s", path="/s/torch-2.13.0+cpu.dist-info",
        tags=(TAG311,), version_py={"__version__": "2.13.0+cpu", "cuda": None},
    )  # fmt: skip
    vision = Dist(
        name="torchvision", version="0.28.0", dir="/s", path="/s/torchvision-0.28.0.dist-info",
        requires=("torch (==2.13.0)",), version_py={"__version__": "0.28.0+cu130"},
    )  # fmt: skip
    gpu = Gpu(vendor="nvidia", index=0, name="RTX", arch="8.9", memory_mib=None, source="t")
    accel = Accelerator(
        kind="cuda", source="t", gpus=(gpu,), driver="580.65.06", driver_source="NVML"
    )
    shadow = ("/w/torch.py", "the working directory", ())
    return replace(_facts(dists=(torch, vision), shadows=(shadow,)), accelerator=accel)


def test_fixes_merge_into_one_install_and_advice() -> None:
    findings, fixes = run_checks(_broken_facts())
    assert [f.id for f in findings] == list(CHECKS)
    failing = [f.id for f in findings if f.status == "fail"]
    assert failing == ["cpu-build-on-gpu", "companion-mismatch", "shadowed-import"]
    companion = next(f for f in findings if f.id == "companion-mismatch")
    # each finding keeps its own fix; the install applied is the most thorough one
    assert (
        companion.fix == "torchup install torch==2.13.0 torchvision --backend cpu --venv /p/.venv"
    )
    assert [(f.command, f.automatic, f.mends) for f in fixes] == [
        ("torchup install torch==2.13.0 torchvision --backend cu130 --venv /p/.venv", True,
         ("cpu-build-on-gpu", "companion-mismatch")),
        ("mv /w/torch.py /w/my_torch.py", False, ("shadowed-import",)),
    ]  # fmt: skip
    with pytest.raises(UsageError, match="advice"):
        apply(fixes[1])


def test_a_python_itself_is_never_fixed_automatically() -> None:
    facts = _broken_facts()
    system = Target(kind="system", path="/usr", executable="/usr/bin/python3")
    _, fixes = run_checks(replace(facts, target=system))
    assert fixes[0].command.endswith("--backend cu130 --python /usr/bin/python3 --system")
    assert not fixes[0].automatic


def test_pip_mismatch_judges_prefixes_and_pip_locations() -> None:
    venv = Command(name="python", path="/a/python", prefix="/venv", version="3.11.7", how="x")
    here = "/venv/lib/python3.11/site-packages/pip"
    same = Command(name="pip", path="/a/pip", location=here, version="3.11")
    other = Command(name="pip", path="/a/pip", prefix="/usr", version="3.11.2", how="x")
    assert check_pip_mismatch([venv, same]).status == "pass"
    assert check_pip_mismatch([venv, other]).status == "fail"
    assert check_pip_mismatch([venv]).status == "pass"
    broken = Command(name="pip", path="/a/pip", error="exited with status 1")
    assert check_pip_mismatch([venv, broken]).status == "warn"
    # no `python` at all (Debian): `pip` against `python3`
    python3 = Command(name="python3", path="/a/python3", prefix="/venv", version="3.11.7")
    assert check_pip_mismatch([python3, other]).summary.startswith(
        "`pip` installs into Python 3.11.2 (/usr), but `python3` is Python 3.11.7 (/venv)"
    )


def test_python_support_table_agrees_with_pypi() -> None:
    """Every captured torch release has wheels for exactly the CPythons the table says."""
    with gzip.open(TESTS / "data" / "pypi" / "torch.legacy.json.gz") as f:
        doc = json.loads(f.read())
    abi = re.compile(r"-cp(\d)(\d+)-(?:cp\d+[mu]*(t?)|none|abi3)-")
    for release, files in doc["releases"].items():
        found = set()
        for file in files:
            match = abi.search(file["filename"])
            if match:
                found.add(f"{match.group(1)}.{match.group(2)}{match.group(3) or ''}")
        assert found <= set(PYTHON_SUPPORT), (release, found - set(PYTHON_SUPPORT))
        for key, (first, last) in PYTHON_SUPPORT.items():
            inside = (first is None or Version(release) >= Version(first)) and (
                last is None or Version(release) <= Version(last)
            )
            assert (key in found) == inside, (release, key)


def test_python_support_outside_every_release() -> None:
    assert python_support("3.16.0", "cpython", False)[0] == "warn"
    assert python_support("3.4.10", "cpython", False) == (
        "fail", "no torch release has wheels for CPython 3.4",
    )  # fmt: skip
    assert python_support("3.13.1", "cpython", True)[0] == "warn"  # 3.13t ended with 2.12.0
    assert python_support("3.14.0", "cpython", True)[0] == "pass"


def test_render_doctor_pins_the_text() -> None:
    facts = _broken_facts()
    findings, fixes = run_checks(facts)
    report = DoctorReport(
        python=facts.python, torch="2.13.0+cpu", variant="cpu",
        location="/s/torch/__init__.py", accelerator=facts.accelerator,
        checks=tuple(findings), fixes=tuple(fixes), seconds=1.0,
    )  # fmt: skip
    text = render_doctor(report, quiet=True)
    assert text == (DATA / "render_quiet.txt").read_text(encoding="utf-8").rstrip("\n")
    full = render_doctor(report).splitlines()
    rows = [line.split()[0] for line in full[4 : 4 + len(CHECKS)]]
    assert rows == ["fail"] * 3 + ["warn"] + ["pass"] * (len(CHECKS) - 4)
    assert full[-1] == "3 failed, 1 warned, 10 passed"
