"""``torchup export dockerfile``: a Dockerfile that rebuilds a lock's environment. Pure.

:func:`dockerfile` turns a PEP 751 lock made by torchup (:class:`~torchup.export.pylock.Lock`
with its ``[tool.torchup]`` table) into the text of a Dockerfile and the files to write
beside it (the lock's hash-pinned requirements form). Nothing is written or run here: the
CLI writes the texts with :func:`torchup._paths.write_output`.

The decisions, and why:

- **Base image**: ``python:X.Y-slim``, X.Y from the lock's Python. It serves CPU locks and
  CUDA and ROCm locks alike: their wheels carry the CUDA runtime (the ``nvidia-*`` wheels)
  or the ROCm libraries, so no ``nvidia/cuda`` base is needed; the host supplies the
  driver. There is no official image for a free-threaded build (``3.13t``) or for PyPy
  torch, so such a lock is refused unless ``base`` names an image that has one. A lock
  made for macOS, Windows or musl is refused: the image is glibc Linux. ``digest``
  (``sha256:`` and 64 hex digits) pins the base: ``FROM python:3.11-slim@sha256:...``.
- **Installer**: pip, which every ``python`` image already has, with
  ``--require-hashes`` over ``requirements.txt`` (:func:`~torchup.export.pylock.
  requirements_text`): pip installs the locked files or fails. uv is not offered: it is
  not in the image, copying it from uv's own image needs a registry, and installing it
  from PyPI would add an unlocked file (its hash is not in the lock).
- **Sources**: the index lines in ``requirements.txt`` are the lock's own, written
  without credentials. Credentials go in as a BuildKit secret (a comment in the
  Dockerfile shows how), never as a build argument or a layer. ``wheelhouse`` (a folder
  of the lock's files inside the build context, as ``torchup wheelhouse DIR`` writes
  in ``DIR/files``) installs with ``--no-index`` from a BuildKit bind mount instead:
  no network, and the wheels stay out of every layer.
- **Layers**: ``--no-cache-dir`` and no version check, so no cache is left; the
  requirements file stays at ``/opt/torchup/`` as the record of what was installed.
- **Smoke test**: a ``RUN ["python", "-c", ...]`` as the non-root user that imports
  each torch-family package of the lock, checks its ``__version__`` is the locked one,
  and checks the build (:data:`BUILDS`): ``torch.version.cuda`` set for a CUDA lock,
  ``torch.version.hip`` for ROCm, neither for CPU. A CUDA image that got a CPU torch
  fails to build. The code is :attr:`DockerExport.smoke_test`.
- **Build** (which kind of torch): the local label of the locked torch version
  (``+cpu``, ``+cu128``, ``+rocm6.3``, ``+xpu``), else the lock's recorded variant, else
  CUDA when the lock holds CUDA runtime wheels (PyPI's Linux torch), else unknown (only
  the version is checked).
- **Host note**: how to run the image (``--gpus all`` with the NVIDIA Container Toolkit
  for CUDA; ``--device /dev/kfd --device /dev/dri --group-add video`` for ROCm), written
  as comments in the Dockerfile and in :attr:`DockerExport.summary`.
- A non-root ``USER``, and an exec-form ``CMD ["python"]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torchup import __version__
from torchup.errors import UsageError
from torchup.export.pylock import FAMILY, Lock, LockError, MadeFor, requirements_text

__all__ = [
    "BUILDS",
    "SCHEMA",
    "Build",
    "DockerExport",
    "DockerfileError",
    "dockerfile",
]

SCHEMA = 1
Build = Literal["cpu", "cuda", "rocm", "xpu", "unknown"]

#: a torch version's local label -> the build it names (the PyTorch index's directories)
_LABELS: tuple[tuple[str, Build], ...] = (
    (r"cpu(\..*)?", "cpu"),
    (r"cu[0-9]+", "cuda"),
    (r"rocm[0-9][0-9.]*", "rocm"),
    (r"xpu", "xpu"),
)
#: what the smoke test checks, and how to run the image, per build
BUILDS: Mapping[Build, Mapping[str, Any]] = {
    "cpu": {"name": "CPU", "check": "cpu", "run": "docker run --rm -it IMAGE", "host": ()},
    "cuda": {
        "name": "CUDA",
        "check": "cuda",
        "run": "docker run --rm -it --gpus all IMAGE",
        "host": (
            "--gpus all needs the NVIDIA driver and the NVIDIA Container Toolkit",
            "on the host; the CUDA runtime comes in the wheels (nvidia-*), not the base",
        ),
    },
    "rocm": {
        "name": "ROCm",
        "check": "rocm",
        "run": "docker run --rm -it --device /dev/kfd --device /dev/dri --group-add video IMAGE",
        "host": (
            "the host needs the amdgpu kernel driver; ROCm's libraries come in the wheel;",
            "where /dev/dri belongs to the render group, add --group-add render",
        ),
    },
    "xpu": {
        "name": "XPU",
        "check": "xpu",
        "run": "docker run --rm -it --device /dev/dri --group-add render IMAGE",
        "host": ("the host needs the Intel GPU driver; the runtime comes in the wheels",),
    },
    "unknown": {
        "name": "unknown",
        "check": "version",
        "run": "docker run --rm -it IMAGE",
        "host": (
            "the lock does not say which build its torch is (no local label, no variant);",
            "for a CUDA build add --gpus all (with the NVIDIA Container Toolkit)",
        ),
    },
}
#: projects whose presence in a lock means PyPI's torch is a CUDA build
_CUDA_RUNTIME = re.compile(r"nvidia-.*|cuda-toolkit|cuda-runtime.*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTEXT_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_USER, _UID = "torch", 1000
_WHEELS_AT = "/tmp/torchup-wheels"  # the bind mount's target, inside the build only


class DockerfileError(LockError):
    """A lock cannot be carried into a Dockerfile (what it was made for does not fit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DockerExport:
    """A Dockerfile for a lock, and the files to write beside it."""

    #: the Dockerfile's text
    dockerfile: str
    #: file name -> text, written beside the Dockerfile (``requirements.txt``)
    files: Mapping[str, str]
    #: the ``FROM`` reference, digest included
    base: str
    #: which torch build the image holds, and where that was read from
    build: Build
    build_source: str
    #: the Python the image's build runs as its smoke test
    smoke_test: str
    #: how to run the image, and what the host needs for it (empty for CPU)
    run_command: str
    host_note: tuple[str, ...]
    #: things the build may trip on (local sources a build cannot see)
    warnings: tuple[str, ...] = ()
    #: the image's platform, as ``docker build --platform`` takes it (``linux/arm64``)
    platform: str = "linux/amd64"

    @property
    def summary(self) -> str:
        lines = [
            f"Dockerfile from {self.base}: {BUILDS[self.build]['name']} torch "
            f"({self.build_source}), "
            f"installed hash-checked by pip from {', '.join(self.files)}",
            f"build: docker build --platform {self.platform} -t IMAGE .",
            f"run:   {self.run_command}",
            *(f"host:  {line}" for line in self.host_note),
            *(f"warning: {w}" for w in self.warnings),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "base": self.base,
            "platform": self.platform,
            "build": self.build,
            "build_source": self.build_source,
            "files": sorted(self.files),
            "run_command": self.run_command,
            "host_note": list(self.host_note),
            "warnings": list(self.warnings),
            "summary": self.summary,
        }


# -- what the lock says ----------------------------------------------------------------


def _made_for(lock: Lock) -> MadeFor:
    made = lock.made_for
    where = str(lock.path) if lock.path is not None else "the lock"
    if made is None:
        raise DockerfileError(
            f"{where!r} has no [tool.torchup] table, so its Python, build and sources "
            "are unknown (a lock written by another tool?)",
            hint="make the lock with `torchup lock -o pylock.toml`",
        )
    if lock.package("torch") is None:
        raise DockerfileError(f"{where!r} holds no torch package", hint="lock torch")
    platform = made.platform or made.markers.get("sys_platform", "")
    if "linux" not in platform or "musl" in platform:
        raise DockerfileError(
            f"{where!r} was made for {platform or 'an unknown platform'!r}, and a "
            "Docker image is glibc Linux",
            hint="lock for the image, a Linux machine of the same Python and CPU: "
            f"`torchup lock ... --python-version {made.python_version} --platform "
            f"manylinux_2_28_{_linux_machine(made)}`",
        )
    return made


#: ``platform_machine`` as Linux says it -> Docker's platform name
_DOCKER_MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le",
                    "s390x": "s390x", "armv7l": "arm/v7"}  # fmt: skip


def _linux_machine(made: MadeFor) -> str:
    """The lock's CPU as Linux names it (``arm64`` on a Mac is ``aarch64`` there)."""
    machine = made.markers.get("platform_machine") or made.platform.partition("-")[0]
    return {"arm64": "aarch64", "amd64": "x86_64", "AMD64": "x86_64"}.get(machine, machine)


def docker_platform(made: MadeFor) -> str:
    """``docker build --platform`` for the lock's CPU (``linux/arm64``): a lock is for one
    architecture, and a build host of another would make an image its wheels do not fit.

    >>> from torchup.export.pylock import MadeFor
    >>> docker_platform(MadeFor(torchup="", requirements=(), python_version="3.12",
    ...     implementation="cpython", free_threaded=False, platform="aarch64-manylinux_2_28",
    ...     tag="", tag_count=0, markers={}, backend="cpu", variant=None, release=None,
    ...     accelerator=None, sources={}))
    'linux/arm64'
    """
    machine = _linux_machine(made)
    return f"linux/{_DOCKER_MACHINES.get(machine, machine)}"


def check_options(
    *,
    base: str | None = None,
    digest: str | None = None,
    wheelhouse: str | None = None,
    requirements_name: str = "requirements.txt",
) -> None:
    """Raise :class:`UsageError` for a malformed base, digest, wheelhouse path or file
    name: what :func:`dockerfile` checks before it reads the lock, for a caller to check
    before it makes one."""
    if not _FILE_NAME.fullmatch(requirements_name):
        raise UsageError(f"{requirements_name!r} is not a plain file name")
    if wheelhouse is not None and (
        not _CONTEXT_PATH.fullmatch(wheelhouse) or ".." in wheelhouse.split("/")
    ):
        raise UsageError(
            f"the wheelhouse {wheelhouse!r} is not a relative path inside the build context",
            hint="e.g. --wheelhouse house/files, beside the Dockerfile",
        )
    if base is not None and (not base.strip() or re.search(r"\s", base)):
        raise UsageError(f"the base image {base!r} is not an image reference")
    if digest is not None and not _DIGEST.fullmatch(digest):
        raise UsageError(
            f"the digest {digest!r} is not sha256: and 64 lower-case hex digits",
            hint="`docker buildx imagetools inspect python:3.11-slim` prints it",
        )
    if digest is not None and base is not None and "@" in base:
        raise UsageError(f"the base image {base!r} has a digest already; drop --digest")


def _base(made: MadeFor, base: str | None, digest: str | None) -> str:
    """The ``FROM`` reference: ``base`` or ``python:X.Y-slim``, with ``@digest``."""
    if base is None:
        base = _official_image(made)
    return f"{base}@{digest}" if digest else base


def _official_image(made: MadeFor) -> str:
    where = f"a lock for {made.implementation or 'Python'} {made.python_version}"
    if made.implementation.lower() not in ("", "cpython"):
        raise DockerfileError(
            f"{where}: the python images are CPython; torchup picks no other base",
            hint="pass --base IMAGE, an image with that Python",
        )
    if made.free_threaded:
        raise DockerfileError(
            f"{where} (free-threaded): no official python image has a free-threaded "
            "build (there is no python:3.13t-slim)",
            hint="pass --base IMAGE, an image whose python is the free-threaded build",
        )
    minor = re.match(r"\d+\.\d+", made.python_version)
    if minor is None:
        raise DockerfileError(f"{where}: the Python version is not X.Y")
    return f"python:{minor.group()}-slim"


def _build(lock: Lock, made: MadeFor) -> tuple[Build, str]:
    """Which torch build the lock holds, and where that was read from."""
    torch = lock.package("torch")
    assert torch is not None
    try:
        local = Version(torch.version).local
    except InvalidVersion:
        local = None
    for source, label in ((f"torch {torch.version}'s local label", local),
                          ("the lock's recorded variant", made.variant)):  # fmt: skip
        for pattern, build in _LABELS:
            if label and re.fullmatch(pattern, label):
                return build, source
    if any(_CUDA_RUNTIME.fullmatch(canonicalize_name(p.name)) for p in lock.packages):
        return "cuda", "the CUDA runtime wheels in the lock"
    return "unknown", "nothing in the lock says"


def _warnings(made: MadeFor) -> tuple[str, ...]:
    """Sources a ``docker build`` cannot reach as this machine does."""
    sources = made.sources
    urls = [sources.get("index_url") or "", *sources.get("extra_index_urls", [])]
    urls += list(sources.get("find_links", []))
    out = []
    for url in (str(u) for u in urls if u):
        if url.startswith(("file:", "/")) or "://" not in url:
            out.append(
                f"requirements.txt reads {url}, a folder on this machine that the build "
                "cannot see: make a wheelhouse in the build context (`torchup wheelhouse "
                "DIR --lock pylock.toml`) and export with --wheelhouse DIR/files"
            )
        elif re.match(r"https?://(127\.|localhost[:/]|\[::1\])", url):
            out.append(
                f"requirements.txt reads {url}, on this machine: build with "
                "`docker build --network host`, or serve it where the build can reach it"
            )
    return tuple(out)


# -- the texts -------------------------------------------------------------------------


def _smoke_test(lock: Lock, check: str) -> str:
    """The Python the build runs: import the family, compare versions, check the build.

    Written for any Python 3 the image may have (no f-strings)."""
    want = {
        canonicalize_name(p.name): p.version
        for p in lock.packages
        if canonicalize_name(p.name) in FAMILY
    }
    return f"""\
import importlib
import sys
want = {want!r}
check = {check!r}
problems = []
for name, version in sorted(want.items()):
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        problems.append("import %s failed: %s: %s" % (name, type(exc).__name__, exc))
        continue
    got = str(getattr(module, "__version__", "?"))
    # PyPI's builds say their CUDA in __version__ (2.8.0+cu128) and not in their name
    if got != version and not ("+" not in version and got.split("+")[0] == version):
        problems.append("%s is %s, the lock has %s" % (name, got, version))
torch = sys.modules.get("torch")
cuda = getattr(getattr(torch, "version", None), "cuda", None)
hip = getattr(getattr(torch, "version", None), "hip", None)
if torch is not None and check == "cuda" and cuda is None:
    problems.append("torch is not a CUDA build (torch.version.cuda is None): "
                    "a CUDA image must not hold a CPU torch")
if torch is not None and check == "rocm" and hip is None:
    problems.append("torch is not a ROCm build (torch.version.hip is None)")
if torch is not None and check == "cpu" and (cuda or hip):
    problems.append("the lock's torch is a CPU build, this one has CUDA %s / HIP %s"
                    % (cuda, hip))
if problems:
    sys.exit("torchup smoke test failed:\\n  " + "\\n  ".join(problems))
print("torchup smoke test passed: torch %s (cuda %s, hip %s)" % (torch.__version__, cuda, hip))
"""


def _header(lock: Lock, made: MadeFor, spec: Mapping[str, Any], requirements: str) -> list[str]:
    torch = lock.package("torch")
    assert torch is not None
    lines = [
        f"Written by torchup {__version__} from a lock: torch {torch.version}, "
        f"{spec['name']} build,",
        f"for Python {made.python_version} ({made.tag}, {made.platform});",
        f"{len(lock.packages)} locked package(s), every file pinned by sha256.",
        "",
        f"build: docker build --platform {docker_platform(made)} -t IMAGE .",
        f"       (in the folder with {requirements}; the lock is for that platform)",
        f"run:   {spec['run']}",
        *(f"host:  {line}" for line in spec["host"]),
        "",
        f"{requirements} names the lock's indexes without credentials. For an index",
        "that needs them, pass a netrc as a BuildKit secret, never as a build argument:",
        "  RUN --mount=type=secret,id=netrc,target=/root/.netrc pip install ...",
        "  docker build --secret id=netrc,src=$HOME/.netrc -t IMAGE .",
    ]
    return [f"# {line}".rstrip() for line in lines]


def _install(requirements: str, wheelhouse: str | None, binary_only: bool) -> list[str]:
    pip = "pip install --no-cache-dir --require-hashes"
    pip += " --only-binary :all:" if binary_only else ""
    pip += f" -r /opt/torchup/{requirements}"
    user = f"useradd --create-home --no-log-init --user-group --uid {_UID} {_USER}"
    lines = [
        f"COPY {requirements} /opt/torchup/{requirements}",
        "# pip installs exactly the locked files (each sha256 is checked) or fails",
    ]
    if wheelhouse is None:
        return [*lines, f"RUN {pip} \\", f" && {user}"]
    return [
        *lines,
        f"# from {wheelhouse} in the build context, mounted for this step only (BuildKit)",
        f"RUN --mount=type=bind,source={wheelhouse},target={_WHEELS_AT} \\",
        f"    {pip} \\",
        f" && {user}",
    ]


def dockerfile(
    lock: Lock,
    *,
    base: str | None = None,
    digest: str | None = None,
    wheelhouse: str | None = None,
    requirements_name: str = "requirements.txt",
) -> DockerExport:
    """The Dockerfile for ``lock`` and the files to write beside it.

    ``base`` replaces ``python:X.Y-slim``; ``digest`` (``sha256:`` + 64 hex) pins it;
    ``wheelhouse`` is a folder of the lock's files in the build context to install from
    with no index (it needs BuildKit). Raises :class:`UsageError` for a malformed
    digest, base or name, and :class:`DockerfileError` for a lock with no
    ``[tool.torchup]``, no torch, a non-Linux platform, or a Python with no official
    image and no ``base``.
    """
    check_options(base=base, digest=digest, wheelhouse=wheelhouse,
                  requirements_name=requirements_name)  # fmt: skip
    made = _made_for(lock)
    ref = _base(made, base, digest)
    build, source = _build(lock, made)
    spec = BUILDS[build]
    if wheelhouse is not None:
        made = replace(made, sources={"no_index": True, "find_links": [_WHEELS_AT]})
    reqs = requirements_text(replace(lock, made_for=made), header=[
        f"written by torchup {__version__} for the Dockerfile beside it",
        f"install: pip install --require-hashes -r {requirements_name}",
    ])  # fmt: skip
    smoke = _smoke_test(lock, str(spec["check"]))
    binary_only = all(f.kind == "wheel" for _, f in lock.files())
    lines = [
        *_header(lock, made, spec, requirements_name),
        f"FROM {ref}",
        "",
        "ENV PYTHONUNBUFFERED=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1 \\",
        "    PIP_ROOT_USER_ACTION=ignore",
        "",
        *_install(requirements_name, wheelhouse, binary_only),
        "",
        f"USER {_UID}",
        f"WORKDIR /home/{_USER}",
        "# torchup smoke test: the locked torch imports, and is the locked build",
        "RUN " + json.dumps(["python", "-c", smoke]),
        "",
        'CMD ["python"]',
    ]
    return DockerExport(
        dockerfile="\n".join(lines) + "\n",
        files={requirements_name: reqs},
        base=ref,
        build=build,
        build_source=source,
        smoke_test=smoke,
        run_command=str(spec["run"]),
        host_note=tuple(spec["host"]),
        warnings=() if wheelhouse is not None else _warnings(made),
        platform=docker_platform(made),
    )
