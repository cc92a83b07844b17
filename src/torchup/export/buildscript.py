"""``torchup build-script``: a bash script that builds torch from source. Pure.

For when no wheel fits (a Python too new for the wanted torch, a free-threaded build,
a GPU architecture the released wheels leave out): :func:`build_script` turns the
plan's inputs (the torch release, the target's Python, its accelerator) into the text
of a script that builds that release for that Python and installs it there. Nothing is
run or written here: the CLI writes the text with :func:`torchup._paths.write_output`.

What the script does, in order:

1. works out ``MAX_JOBS`` (``min(cores, MemAvailable / 2.5 GiB)``, at least 1; a set
   ``MAX_JOBS`` wins) and prints the estimated time and disk (:data:`ESTIMATES`);
2. checks the prerequisites (the target's Python and pip, git, cmake, ninja, a C++17
   compiler that really compiles, ``nvcc`` of a CUDA toolkit the release was built
   with for a CUDA build, able to compile for each architecture (``nvcc
   --list-gpu-arch``), or ``hipcc`` for ROCm, free disk, memory for ``MAX_JOBS``)
   and stops with what is missing (``--check`` stops there, exit 0 or 1);
3. clones the release tag with its submodules (``git clone --depth 1 --branch vX.Y.Z
   --recursive --shallow-submodules``) from ``TORCH_REPO``;
4. installs the tag's requirements with the target's own pip;
5. builds a wheel (``pip wheel . --no-build-isolation --no-deps -w dist``) with
   ``USE_CUDA``/``USE_ROCM``, ``TORCH_CUDA_ARCH_LIST`` or ``PYTORCH_ROCM_ARCH`` and
   ``PYTORCH_BUILD_VERSION`` (so the wheel is ``torch-X.Y.Z``, not ``X.Y.Za0+git...``);
6. installs it with ``torchup install WHEEL --reinstall`` into the target (its venv, its
   conda env, or the Python itself with ``--system``; an externally managed Python is a
   missing prerequisite, step 2): planned for the target's tags, transactional and
   verified, so a wheel that does not run leaves the target as it was. Where torchup is
   not on ``PATH`` (a node that has only the script), the target's pip installs it
   (``--no-deps``: the runtime dependencies came with step 4). Then it checks that
   ``import torch`` gives the version and build.

The architectures come from the GPUs the accelerator names (detected here, or recorded
in a profile); without any, from the release's own CUDA wheels (``data/cuda_archs.json``,
through :func:`~torchup.choose.variants.arch_list`). The CUDA toolkits the script accepts
are those the release's wheels were built with (:func:`~torchup.choose.variants.
cuda_variants`); ``TORCHUP_BUILD_CUDA_VERSIONS`` widens that for a GPU newer than them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from torchup import __version__
from torchup.choose.variants import arch_list, cuda_of, cuda_variants
from torchup.errors import UsageError

if TYPE_CHECKING:
    from torchup.hardware.accelerators import Accelerator

__all__ = [
    "DEFAULT_REPOSITORY",
    "ESTIMATES",
    "SCHEMA",
    "Build",
    "BuildScript",
    "BuildScriptError",
    "build_script",
    "exact_torch_version",
]

SCHEMA = 1
Build = Literal["cpu", "cuda", "rocm"]
DEFAULT_REPOSITORY = "https://github.com/pytorch/pytorch"
#: Rough estimates, not measurements of torchup's: the compile work in job-minutes
#: (divided by MAX_JOBS; a CUDA build also grows with each architecture), and the disk
#: a build tree with its objects and the wheel takes. Reports of PyTorch source builds
#: put a CPU build near half an hour on 16 cores and a CUDA build at a few hours.
ESTIMATES: Mapping[Build, Mapping[str, int]] = {
    "cpu": {"job_minutes": 480, "job_minutes_per_arch": 0, "disk_gb": 15},
    "cuda": {"job_minutes": 1200, "job_minutes_per_arch": 240, "disk_gb": 30},
    "rocm": {"job_minutes": 1440, "job_minutes_per_arch": 0, "disk_gb": 30},
}
#: memory one compile job takes, in MiB (~2.5 GiB; TORCHUP_BUILD_MIB_PER_JOB overrides)
MIB_PER_JOB = 2560
_GFX = re.compile(r"gfx[0-9a-f]{3,5}")


class BuildScriptError(UsageError):
    """The request cannot become a build script (no exact release, an unsupported system)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildScript:
    """A bash script that builds one torch release for one Python, and what it decided."""

    #: the script's text
    text: str
    torch_version: str
    tag: str
    #: the target interpreter the script builds for and installs into
    python: str
    build: Build
    #: where ``build`` came from (the accelerator's source, or ``--build``)
    build_source: str
    #: ``TORCH_CUDA_ARCH_LIST`` (CUDA) or ``PYTORCH_ROCM_ARCH`` (ROCm); ``None``: not set
    archs: str | None
    archs_source: str
    #: the CUDA toolkits (``12.4``) the release's wheels were built with; the script's
    #: check accepts these (empty: any)
    cuda_versions: tuple[str, ...]
    repository: str
    disk_gb: int
    warnings: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        archs = f", archs {self.archs} from {self.archs_source}" if self.archs else ""
        lines = [
            f"build script for torch {self.torch_version} ({self.build} build{archs}) "
            f"from {self.repository} at {self.tag}, for {self.python}",
            "check: bash build-torch.sh --check    build: bash build-torch.sh",
            f"needs: git, cmake, ninja, a C++17 compiler, ~{self.disk_gb} GB disk (estimate)"
            + (f", CUDA {' or '.join(self.cuda_versions)}" if self.cuda_versions else ""),
            *(f"warning: {w}" for w in self.warnings),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "torch_version": self.torch_version,
            "tag": self.tag,
            "python": self.python,
            "build": self.build,
            "build_source": self.build_source,
            "archs": self.archs,
            "archs_source": self.archs_source,
            "cuda_versions": list(self.cuda_versions),
            "repository": self.repository,
            "disk_gb": self.disk_gb,
            "warnings": list(self.warnings),
            "summary": self.summary,
        }


# --- the request --------------------------------------------------------------------


def exact_torch_version(requirement: str) -> str:
    """The release an exact ``torch==X.Y.Z`` pin names; a range or another project is a
    :class:`BuildScriptError` (a source build needs one tag to clone).

    >>> exact_torch_version("torch==2.5.1"), exact_torch_version("torch == 2.6")
    ('2.5.1', '2.6.0')
    """
    try:
        req = Requirement(requirement)
    except InvalidRequirement as exc:
        raise BuildScriptError(
            f"{requirement!r} is not a requirement: {exc}", hint="e.g. torch==2.5.1"
        ) from None
    if canonicalize_name(req.name) != "torch":
        raise BuildScriptError(
            f"{requirement!r} names {req.name!r}; the build script builds torch",
            hint="e.g. torchup build-script torch==2.5.1",
        )
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
        raise BuildScriptError(
            f"{requirement!r} is not one release; a source build clones one tag (vX.Y.Z)",
            hint="pin it: e.g. torchup build-script torch==2.5.1 (`torchup plan` shows the "
            "releases there are)",
        )
    return release_version(specs[0].version)


def release_version(text: str) -> str:
    """``X.Y.Z`` for a final release (``2.6`` -> ``2.6.0``); a pre-release, a
    development or post release or a local label is a :class:`BuildScriptError`.

    >>> release_version("2.5.1"), release_version("2.6")
    ('2.5.1', '2.6.0')
    """
    try:
        version = Version(text)
    except InvalidVersion:
        raise BuildScriptError(f"{text!r} is not a version", hint="e.g. 2.5.1") from None
    if version.is_prerelease or version.is_postrelease or version.local or version.epoch:
        raise BuildScriptError(
            f"torch {text!r} is not a final release; the script clones release tags (vX.Y.Z)",
            hint="pin a release: e.g. torch==2.5.1",
        )
    if len(version.release) > 3:
        raise BuildScriptError(f"torch {text!r} has no vX.Y.Z tag", hint="e.g. torch==2.5.1")
    major, minor, micro = (*version.release, 0, 0)[:3]
    return f"{major}.{minor}.{micro}"


# --- the decisions -------------------------------------------------------------------


def _build_of(accelerator: Accelerator, build: Build | None) -> tuple[Build, str, list[str]]:
    """Which build, where that came from, and warnings."""
    if build is not None:
        return build, "--build", []
    kind = accelerator.kind
    if kind == "cuda":
        return "cuda", f"cuda ({accelerator.source})", []
    if kind == "rocm":
        return "rocm", f"rocm ({accelerator.source})", []
    warnings = []
    if kind == "xpu":
        warnings.append("an Intel XPU build is not scripted; this script builds for the CPU")
    if kind == "mps":
        warnings.append("on macOS torch's build enables MPS itself (USE_MPS); not checked here")
    return "cpu", f"{kind} ({accelerator.source})", warnings


def _archs(
    build: Build, accelerator: Accelerator, release: Version
) -> tuple[str | None, str, list[str]]:
    """The architecture list for the build, where it came from, and warnings."""
    if build == "cpu":
        return None, "", []
    if build == "rocm":
        found = (g.arch for g in accelerator.gpus if g.arch and _GFX.match(g.arch))
        gfx = sorted({arch.split(":")[0] for arch in found})
        if gfx:
            return ";".join(gfx), f"the GPUs ({accelerator.gpus[0].source})", []
        return None, "", ["no AMD GPU architecture is known: PyTorch's build picks its defaults"]
    caps = {g.arch for g in accelerator.gpus if g.arch and re.fullmatch(r"[0-9]+\.[0-9]", g.arch)}
    if caps:
        ordered = sorted(caps, key=Version)
        return ";".join(ordered), f"the GPUs ({accelerator.gpus[0].source})", []
    variants = cuda_variants(release)
    table = arch_list(release, variants[0]) if variants else None
    if table is None:
        return None, "", ["no GPU and no table row: set TORCH_CUDA_ARCH_LIST (e.g. 8.0;9.0)"]
    source = f"torch {table.release} {variants[0]} wheels (data/cuda_archs.json)"
    return table.text, source, ["no NVIDIA GPU is known: the release wheels' list is used"]


def _cuda_versions(build: Build, release: Version) -> tuple[str, ...]:
    if build != "cuda":
        return ()
    found = (cuda_of(v) for v in cuda_variants(release))
    return tuple(f"{c[0]}.{c[1]}" for c in found if c is not None)


def build_script(
    *,
    torch_version: str,
    python: str,
    accelerator: Accelerator,
    build: Build | None = None,
    repository: str = DEFAULT_REPOSITORY,
) -> BuildScript:
    """The build script for torch ``torch_version`` (``X.Y.Z``) built for and installed
    into ``python`` (an executable; the profile's path for another machine), for
    ``accelerator`` (or ``build``, which overrides its kind).

    Raises :class:`BuildScriptError` for a version that is not a final release, a build
    name not in :data:`Build`, or a Windows target (the script is bash).
    """
    version = release_version(torch_version)
    if build is not None and build not in get_args(Build):
        raise BuildScriptError(f"unknown build {build!r}", hint="cpu, cuda or rocm")
    if accelerator.system == "win32" or python.lower().endswith(".exe"):
        raise BuildScriptError(
            "the build script is bash, for Linux (and macOS); this target is Windows",
            hint="follow PyTorch's own Windows build instructions",
        )
    if not python.strip():
        raise BuildScriptError("no Python to build for", hint="pass --python")
    release = Version(version)
    chosen, build_source, warnings = _build_of(accelerator, build)
    archs, archs_source, more = _archs(chosen, accelerator, release)
    cuda_versions = _cuda_versions(chosen, release)
    if chosen == "cuda" and not cuda_versions:
        more.append(f"torch {version} is not in the CUDA table: any CUDA toolkit is accepted")
    made = BuildScript(
        text="",
        torch_version=version,
        tag=f"v{version}",
        python=python,
        build=chosen,
        build_source=build_source,
        archs=archs,
        archs_source=archs_source,
        cuda_versions=cuda_versions,
        repository=repository,
        disk_gb=ESTIMATES[chosen]["disk_gb"],
        warnings=(*warnings, *more),
    )
    return _with_text(made)


# --- the text ------------------------------------------------------------------------


def _with_text(made: BuildScript) -> BuildScript:
    from dataclasses import replace

    return replace(made, text=_header(made) + _BODY)


def _header(made: BuildScript) -> str:
    """The script's first lines: what it is for, and every decision as a variable."""
    q = shlex.quote
    estimate = ESTIMATES[made.build]
    n_archs = len(made.archs.split(";")) if made.archs and made.build == "cuda" else 0
    job_minutes = estimate["job_minutes"] + estimate["job_minutes_per_arch"] * n_archs
    arch_lines = {
        "cpu": [],
        "cuda": [f"TORCH_CUDA_ARCH_LIST=${{TORCH_CUDA_ARCH_LIST:-{q(made.archs or '')}}}"],
        "rocm": [f"PYTORCH_ROCM_ARCH=${{PYTORCH_ROCM_ARCH:-{q(made.archs or '')}}}"],
    }[made.build]
    names = {"cpu": "", "cuda": "TORCH_CUDA_ARCH_LIST", "rocm": "PYTORCH_ROCM_ARCH"}
    lines = [
        "#!/usr/bin/env bash",
        f"# Build torch {made.torch_version} from source for {made.python} and install it.",
        f"# Generated by torchup {__version__} (torchup build-script); "
        f"a {made.build} build{f', archs {made.archs}' if made.archs else ''}.",
        "#   bash build-torch.sh --check   check the prerequisites only (exit 0 or 1)",
        "#   bash build-torch.sh           check, clone, build a wheel, install, verify",
        "# Settings the environment overrides: TORCH_REPO, TORCHUP_BUILD_DIR, MAX_JOBS,",
        "# TORCHUP_BUILD_MIN_DISK_GB, TORCHUP_BUILD_MIB_PER_JOB, TORCHUP_BUILD_CUDA_VERSIONS,",
        "# TORCH_CUDA_ARCH_LIST, PYTORCH_ROCM_ARCH, CXX, CUDA_HOME, ROCM_PATH.",
        "set -euo pipefail",
        "",
        f"PYTHON={q(made.python)}",
        f"TORCH_VERSION={q(made.torch_version)}",
        f"TORCH_TAG={q(made.tag)}",
        f"BUILD={made.build}",
        f"TORCH_REPO=${{TORCH_REPO:-{q(made.repository)}}}",
        f'BUILD_DIR=${{TORCHUP_BUILD_DIR:-"$PWD"/{q("pytorch-" + made.tag)}}}',
        "# estimates: disk in GB, compile work in job-minutes (divided by MAX_JOBS)",
        f"DISK_GB={made.disk_gb}",
        f"JOB_MINUTES={job_minutes}",
        "MIN_DISK_GB=${TORCHUP_BUILD_MIN_DISK_GB:-$DISK_GB}",
        f"MIB_PER_JOB=${{TORCHUP_BUILD_MIB_PER_JOB:-{MIB_PER_JOB}}}",
        "# the CUDA toolkits this release's wheels were built with (empty: any)",
        "CUDA_VERSIONS=${TORCHUP_BUILD_CUDA_VERSIONS:-" + q(" ".join(made.cuda_versions)) + "}",
        f"export USE_CUDA={int(made.build == 'cuda')} USE_ROCM={int(made.build == 'rocm')}",
        *arch_lines,
        f"ARCH_VARIABLE={names[made.build]}",
        *([f"export {names[made.build]}"] if arch_lines else []),
        "# the wheel's version is the release's, not X.Y.Za0+git<sha>",
        'export PYTORCH_BUILD_VERSION="$TORCH_VERSION" PYTORCH_BUILD_NUMBER=1',
        "",
    ]
    return "\n".join(lines) + "\n"


_BODY = r"""
usage() {
  echo "usage: bash ${0##*/} [--check]"
}

mode=build
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

say() { printf '%s\n' "$*"; }
gib() { printf '%d.%d' $(($1 / 1024)) $(($1 * 10 / 1024 % 10)); }

# --- MAX_JOBS: min(cores, available memory / MIB_PER_JOB), at least 1 -----------------
cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
mem_mib=0
mem_what="available"
if [[ -r /proc/meminfo ]]; then
  while read -r key value _; do
    if [[ $key == MemAvailable: ]]; then mem_mib=$((value / 1024)); fi
  done </proc/meminfo
elif mem_bytes=$(sysctl -n hw.memsize 2>/dev/null) && [[ $mem_bytes =~ ^[0-9]+$ ]]; then
  mem_mib=$((mem_bytes / 1048576)) # macOS: the total, no "available" to read
  mem_what="in all"
fi
if [[ -n ${MAX_JOBS:-} ]]; then
  if ! [[ $MAX_JOBS =~ ^[1-9][0-9]*$ ]]; then
    say "MAX_JOBS=$MAX_JOBS is not a positive number" >&2
    exit 2
  fi
  jobs_source="MAX_JOBS from the environment"
else
  if ((mem_mib > 0)); then
    MAX_JOBS=$((mem_mib / MIB_PER_JOB))
    if ((MAX_JOBS > cores)); then MAX_JOBS=$cores; fi
    if ((MAX_JOBS < 1)); then MAX_JOBS=1; fi
    per_job="$(gib "$MIB_PER_JOB") GiB a job"
    jobs_source="min($cores cores, $(gib "$mem_mib") GiB $mem_what / $per_job)"
  else
    MAX_JOBS=$cores
    jobs_source="$cores cores; the memory is unknown here (set MAX_JOBS if the build runs out)"
  fi
fi
export MAX_JOBS

minutes=$(((JOB_MINUTES + MAX_JOBS - 1) / MAX_JOBS))
say "torch $TORCH_VERSION, $BUILD build, from $TORCH_REPO at $TORCH_TAG"
say "for $PYTHON, in $BUILD_DIR"
if [[ -n $ARCH_VARIABLE ]]; then
  say "$ARCH_VARIABLE=${!ARCH_VARIABLE:-unset, the PyTorch default}"
fi
say "MAX_JOBS=$MAX_JOBS ($jobs_source)"
say "estimated time: about $minutes minutes" \
  "($JOB_MINUTES job-minutes / $MAX_JOBS jobs; a rough estimate)"
say "estimated disk: about $DISK_GB GB (a rough estimate; the check asks for $MIN_DISK_GB GB free)"

# --- prerequisites ---------------------------------------------------------------------
missing=()
target_kind="" target_prefix=""
report() { printf '  %-7s %-15s %s\n' "$1" "$2" "$3"; }
ok() { # name detail...
  local name=$1
  shift
  report ok "$name" "$*"
}
miss() { # name detail...
  local name=$1
  shift
  report MISSING "$name" "$*"
  missing+=("$name")
}

check_python() {
  local version pip
  local code='import sys; print("%d.%d.%d" % sys.version_info[:3])'
  if ! version=$("$PYTHON" -c "$code" 2>/dev/null); then
    miss python "$PYTHON does not run"
    miss pip "no Python to run it"
    return
  fi
  ok python "$PYTHON (Python $version)"
  local where_code='import os, sys, sysconfig
p = sys.prefix
managed = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
if p != getattr(sys, "base_prefix", p): kind = "venv"
elif os.path.isdir(os.path.join(p, "conda-meta")): kind = "conda"
elif os.path.isfile(managed): kind = "managed"
else: kind = "system"
print(kind + " " + p)'
  read -r target_kind target_prefix < <("$PYTHON" -c "$where_code" 2>/dev/null) || true
  case ${target_kind:-} in
    venv | conda) ok target "the $target_kind at $target_prefix" ;;
    system) ok target "the Python itself at $target_prefix (torchup install --system)" ;;
    managed)
      miss target "$PYTHON is externally managed (PEP 668): make a venv from it" \
        "($PYTHON -m venv ~/torch-env) and build for that: torchup build-script" \
        "torch==$TORCH_VERSION --python ~/torch-env/bin/python"
      ;;
    *) miss target "$PYTHON does not say where it installs (sys.prefix)" ;;
  esac
  if pip=$("$PYTHON" -m pip --version 2>/dev/null); then
    ok pip "${pip%% from *}"
  else
    miss pip "$PYTHON -m pip does not work (add it: $PYTHON -m ensurepip)"
  fi
}

check_tool() { # name command version-arguments...
  local name=$1 command=$2 line=""
  shift 2
  if ! command -v "$command" >/dev/null 2>&1; then
    miss "$name" "$command is not on PATH"
    return
  fi
  IFS= read -r line < <("$command" "$@" 2>&1) || true
  ok "$name" "$line"
}

check_cxx() {
  local cxx=${CXX:-c++}
  if ! command -v "$cxx" >/dev/null 2>&1; then
    miss "C++17 compiler" "$cxx is not on PATH (install g++ 9+ or clang 10+, or set CXX)"
    return
  fi
  if printf '#include <optional>\nint main() { std::optional<int> x{0}; return *x; }\n' |
    "$cxx" -std=c++17 -x c++ - -o /dev/null >/dev/null 2>&1; then
    ok "C++17 compiler" "$cxx compiles and links C++17"
  else
    miss "C++17 compiler" "$cxx cannot compile C++17 (install g++ 9+ or clang 10+, or set CXX)"
  fi
}

check_cuda() {
  local nvcc="" text version
  if [[ -n ${CUDA_HOME:-} && -x $CUDA_HOME/bin/nvcc ]]; then
    nvcc=$CUDA_HOME/bin/nvcc
  elif command -v nvcc >/dev/null 2>&1; then
    nvcc=$(command -v nvcc)
  elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
    nvcc=/usr/local/cuda/bin/nvcc
  fi
  local wanted=${CUDA_VERSIONS// / or }
  if [[ -z $nvcc ]]; then
    miss "CUDA toolkit" "no nvcc (CUDA_HOME, PATH, /usr/local/cuda); install CUDA ${wanted:-any}"
    return
  fi
  text=$("$nvcc" --version 2>&1) || true
  if ! [[ $text =~ release\ ([0-9]+\.[0-9]+) ]]; then
    miss "CUDA toolkit" "$nvcc --version does not say its release"
    return
  fi
  version=${BASH_REMATCH[1]}
  if [[ -n $CUDA_VERSIONS && " $CUDA_VERSIONS " != *" $version "* ]]; then
    miss "CUDA toolkit" "nvcc $version ($nvcc); torch $TORCH_VERSION was released for" \
      "CUDA $wanted (point CUDA_HOME at one, or set TORCHUP_BUILD_CUDA_VERSIONS)"
    return
  fi
  ok "CUDA toolkit" "nvcc $version ($nvcc)"
  check_cuda_archs "$nvcc" "$version"
}

check_cuda_archs() { # nvcc version: can it compile for every TORCH_CUDA_ARCH_LIST entry?
  local listed arch code archs=() unknown=()
  listed=$'\n'$("$1" --list-gpu-arch 2>/dev/null)$'\n' || return 0 # older than CUDA 11
  IFS='; ' read -ra archs <<<"${TORCH_CUDA_ARCH_LIST:-}"
  for arch in "${archs[@]}"; do
    arch=${arch%+PTX}
    if ! [[ $arch =~ ^[0-9]+\.[0-9]$ ]]; then continue; fi
    code=${arch/./}
    if [[ $listed != *$'\n'compute_$code$'\n'* ]]; then unknown+=("$arch"); fi
  done
  if ((${#unknown[@]})); then
    miss "GPU archs" "nvcc $2 cannot compile for ${unknown[*]} (nvcc --list-gpu-arch);" \
      "use another CUDA toolkit, or drop them from TORCH_CUDA_ARCH_LIST"
  else
    ok "GPU archs" "nvcc $2 compiles for ${TORCH_CUDA_ARCH_LIST:-the PyTorch default}"
  fi
}

check_rocm() {
  local root=${ROCM_PATH:-/opt/rocm}
  if [[ -x $root/bin/hipcc ]]; then
    ok ROCm "$root/bin/hipcc"
  elif command -v hipcc >/dev/null 2>&1; then
    ok ROCm "$(command -v hipcc)"
  else
    miss ROCm "no hipcc in $root/bin or on PATH (install ROCm, or set ROCM_PATH)"
  fi
}

check_disk() {
  local dir=$BUILD_DIR avail_kb=0
  if [[ $dir != /* ]]; then dir=$PWD/$dir; fi
  while [[ ! -d $dir ]]; do
    dir=${dir%/*}
    dir=${dir:-/}
  done
  if ! command -v df >/dev/null 2>&1; then
    miss disk "df is not on PATH: the free space in $dir is unknown"
    return
  fi
  { read -r _ && read -r _ _ _ avail_kb _; } < <(df -Pk "$dir") || true
  local free
  free="$(gib $((avail_kb / 1024))) GB free in $dir"
  if ((avail_kb >= MIN_DISK_GB * 1024 * 1024)); then
    ok disk "$free (asks for $MIN_DISK_GB)"
  else
    miss disk "$free; the build needs about $MIN_DISK_GB (set TORCHUP_BUILD_DIR elsewhere)"
  fi
}

check_memory() {
  local need=$((MAX_JOBS * MIB_PER_JOB))
  if ((mem_mib == 0)); then
    ok memory "unknown (no /proc/meminfo); MAX_JOBS=$MAX_JOBS needs about $(gib "$need") GiB"
  elif ((mem_mib >= need)); then
    ok memory "$(gib "$mem_mib") GiB available; MAX_JOBS=$MAX_JOBS needs about $(gib "$need") GiB"
  else
    miss memory "$(gib "$mem_mib") GiB available; MAX_JOBS=$MAX_JOBS needs about" \
      "$(gib "$need") GiB (lower MAX_JOBS)"
  fi
}

say ""
say "prerequisites:"
check_python
check_tool git git --version
check_tool cmake cmake --version
check_tool ninja ninja --version
check_cxx
if [[ $BUILD == cuda ]]; then check_cuda; fi
if [[ $BUILD == rocm ]]; then check_rocm; fi
check_disk
check_memory
if ((${#missing[@]})); then
  say "missing: ${missing[*]}"
  say "install what is missing, then run: bash ${0##*/} --check"
  exit 1
fi
say "all prerequisites present"
if [[ $mode == check ]]; then exit 0; fi

step() {
  say ""
  say "==> $*"
}

# --- clone the release tag with its submodules -------------------------------------------
if [[ -e $BUILD_DIR ]]; then
  checkout=$(git -C "$BUILD_DIR" describe --tags --exact-match 2>/dev/null || true)
  if [[ $checkout != "$TORCH_TAG" ]]; then
    say "$BUILD_DIR exists and is not a checkout of $TORCH_TAG:" \
      "remove it, or set TORCHUP_BUILD_DIR" >&2
    exit 1
  fi
  step "reusing the checkout of $TORCH_TAG in $BUILD_DIR"
else
  step "cloning $TORCH_TAG of $TORCH_REPO with its submodules into $BUILD_DIR"
  git clone --depth 1 --branch "$TORCH_TAG" --recursive --shallow-submodules \
    "$TORCH_REPO" "$BUILD_DIR"
fi
cd "$BUILD_DIR"

# --- the tag's requirements, with the target's own pip ----------------------------------
# requirements.txt holds the build requirements (from 2.8 through -r requirements-build.txt)
# and torch's runtime dependencies, which the --no-deps install below relies on
requirements="requirements.txt"
if [[ ! -f $requirements ]]; then requirements="requirements-build.txt"; fi
step "installing $requirements with $PYTHON -m pip"
"$PYTHON" -m pip install -r "$requirements"

if [[ $BUILD == rocm ]]; then
  step "converting the CUDA sources to HIP (tools/amd_build/build_amd.py)"
  "$PYTHON" tools/amd_build/build_amd.py
fi

# --- the wheel ----------------------------------------------------------------------------
step "building the wheel with MAX_JOBS=$MAX_JOBS (about $minutes minutes, estimated)"
rm -rf dist
"$PYTHON" -m pip wheel . --no-build-isolation --no-deps -w dist
wheels=(dist/torch-*.whl)
if [[ ! -f ${wheels[0]} ]]; then
  say "the build made no torch wheel in $BUILD_DIR/dist" >&2
  exit 1
fi
wheel=$PWD/${wheels[0]}
cd / # out of the source tree, whose torch/ folder would shadow the installed one

# --- install and verify -------------------------------------------------------------------
case $target_kind in
  venv) install_target=(--venv "$target_prefix") ;;
  conda) install_target=(--conda-env "$target_prefix") ;;
  *) install_target=(--python "$PYTHON" --system) ;;
esac
if command -v torchup >/dev/null 2>&1; then
  # planned for the target's tags, all or nothing, verified by running it
  step "torchup install $wheel ${install_target[*]} --reinstall"
  torchup install "$wheel" "${install_target[@]}" --reinstall
else
  step "installing $wheel into $PYTHON with its pip (--no-deps; torchup is not on PATH)"
  "$PYTHON" -m pip install --no-deps --force-reinstall "$wheel"
fi

step "checking import torch"
"$PYTHON" - "$TORCH_VERSION" "$BUILD" <<'PY'
import sys

import torch

want, build = sys.argv[1], sys.argv[2]
got = torch.__version__.split("+")[0]
cuda, hip = torch.version.cuda, getattr(torch.version, "hip", None)
built = "cuda" if cuda else "rocm" if hip else "cpu"
print("torch %s (%s build) from %s" % (torch.__version__, built, torch.__file__))
if got != want or built != build:
    sys.exit("expected torch %s, a %s build" % (want, build))
PY

if ! command -v torchup >/dev/null 2>&1; then
  say "torchup is not on PATH: run \`torchup verify --python $PYTHON\` to check torch further"
fi
say ""
say "torch $TORCH_VERSION is built and installed into $PYTHON; the wheel stays at $wheel"
"""
