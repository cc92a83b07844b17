"""Machine profiles: what a plan needs to know about a machine torchup is not running on.

A profile is one of the machine's Pythons and its accelerator, recorded as the raw facts
torchup reads here: the interpreter probe's output, and the files and tool answers
:func:`~torchup.hardware.accelerators.detect` reads. Reading a profile runs the same code
as this machine does: :func:`~torchup.interpreters.tags.compute_tags` turns the Python's
facts into its exact wheel tags, and ``detect`` is replayed over the recorded files and
answers (:func:`replay_detect`). So a plan ``--for node.json`` is the plan the node itself
would make, given the same indexes.

Two ways to make one:

- :func:`record` runs :mod:`torchup.profiles.node_probe` (after the interpreter probe,
  as one stdlib script) with a Python of this machine: ``torchup profile``; the same
  script runs alone on a node where torchup is not installed (:func:`node_script`).
- :func:`from_flags` builds one from what a user knows of the target:
  ``--python-version 3.12 --platform manylinux_2_28_x86_64 --gpu sm_90 --driver 550.54``,
  as pip's ``--platform``/``--python-version`` and uv's ``--python-platform`` do.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from torchup.errors import ProfileError, RunnerError
from torchup.hardware.accelerators import Accelerator, detect
from torchup.interpreters.discover import Interpreter
from torchup.interpreters.tags import compute_tags, parse_facts
from torchup.runner import Completed

__all__ = [
    "PROFILE_FORMAT",
    "Profile",
    "from_flags",
    "load",
    "node_script",
    "parse_platform",
    "read",
    "record",
    "replay_detect",
]

#: The profile format this torchup writes and reads (``torchup_profile`` in the file).
PROFILE_FORMAT = 1
_TOOL_NAMES = frozenset({"nvidia-smi", "rocm_agent_enumerator", "rocminfo", "amd-smi"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """A machine to plan for: one Python (with its tags) and the accelerator.

    ``document`` is the raw profile (what ``-o node.json`` holds); ``python`` and
    ``accelerator`` are computed from it. ``source`` says where it came from (a file,
    or the flags).
    """

    name: str
    source: str
    python: Interpreter
    accelerator: Accelerator
    document: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``gpu-node-7: CPython 3.12.3 (linux x86_64), NVIDIA driver 550.54.15 ...``."""
        py = self.python
        where = f"{py.markers.get('sys_platform', '?')} {py.architecture}"
        return f"{self.name}: CPython {py.version} ({where}), {self.accelerator.describe()}"

    def to_dict(self) -> dict[str, Any]:
        """The profile file's content, plus what torchup computed from it."""
        return {
            **self.document,
            "computed": {
                "source": self.source,
                "tags": list(self.python.tags[:12]),
                "tag_count": len(self.python.tags),
                "accelerator": self.accelerator.to_dict(),
            },
        }


# --- making one -------------------------------------------------------------------------


@cache
def node_script() -> str:
    """The standalone profile script: the interpreter probe, then the node probe, as one
    stdlib program for Python 2.7 and 3.6+ (the probe's own ``main()`` call is left out)."""
    here = Path(__file__).resolve().parents[1]
    probe = (here / "interpreters" / "probe.py").read_text(encoding="utf-8")
    tail = '\nif __name__ == "__main__":\n    main()\n'
    if not probe.endswith(tail):  # pragma: no cover - a change to probe.py must come here
        raise AssertionError("interpreters/probe.py no longer ends by calling main()")
    node = (Path(__file__).with_name("node_probe.py")).read_text(encoding="utf-8")
    return probe[: -len(tail)] + "\n\n# --- the machine-profile probe ---\n\n" + node


def record(
    python: str, *, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> dict[str, Any]:
    """Run the profile script with ``python`` (an executable) and return its document."""
    from torchup.runner import run

    env = dict(os.environ if env is None else env)
    done = run(
        [python, "-E", "-s", "-c", node_script()], env=env, timeout=timeout, check=False, stdin=""
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProfileError(
            f"{python} could not run the profile script: {last}",
            hint="pick another Python with --python; `torchup pythons` lists them",
        )
    try:
        doc = json.loads(done.stdout)
    except ValueError as exc:
        raise ProfileError(f"{python} printed no profile: {exc}") from None
    if not isinstance(doc, dict):
        raise ProfileError(f"{python} printed no profile")
    return doc


# --- reading one ------------------------------------------------------------------------


def load(path: Path) -> Profile:
    """Read a profile file (``--for FILE``); :class:`ProfileError` says what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(
            f"cannot read the profile {path}: {exc.strerror or exc}",
            hint="make one on the target with `torchup profile -o node.json`",
        ) from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ProfileError(
            f"{path} is not a torchup profile: not JSON ({exc})",
            hint="make one on the target with `torchup profile -o node.json`",
        ) from None
    return read(doc, source=str(path))


def read(doc: Any, *, source: str) -> Profile:
    """A profile from its document; every check of the file's content is here."""
    if not isinstance(doc, dict) or "torchup_profile" not in doc:
        raise ProfileError(
            f"{source} is not a torchup profile (no torchup_profile field)",
            hint="make one on the target with `torchup profile -o node.json`",
        )
    made = doc["torchup_profile"]
    if not isinstance(made, int) or made < 1:
        raise ProfileError(f"{source}: torchup_profile is {made!r}, not a format number")
    if made > PROFILE_FORMAT:
        raise ProfileError(
            f"{source} is profile format {made}, from a newer torchup; this one reads "
            f"format {PROFILE_FORMAT}",
            hint="upgrade torchup here (`pip install -U torchup`), or make the profile "
            "with this torchup's `torchup profile --script`",
        )
    missing = [key for key in ("python", "accelerator_facts") if not isinstance(doc.get(key), dict)]
    if missing:
        raise ProfileError(
            f"{source} lacks {' and '.join(missing)}",
            hint="make the profile again with `torchup profile -o node.json`",
        )
    name = str(doc.get("name") or Path(source).stem)
    return Profile(
        name=name,
        source=source,
        python=_interpreter(doc["python"], name=name, source=source),
        accelerator=replay_detect(doc["accelerator_facts"], source=source),
        document=doc,
    )


def _interpreter(raw: Mapping[str, Any], *, name: str, source: str) -> Interpreter:
    try:
        facts = parse_facts(raw)
    except ValueError as exc:
        raise ProfileError(f"{source}: the Python's facts are incomplete: {exc}") from None
    tags = tuple(str(tag) for tag in compute_tags(facts))
    if not tags:
        raise ProfileError(f"{source}: no wheel tag follows from the Python's facts")
    return Interpreter(
        executable=facts.executable,  # the node's own path: the plan's commands run there
        version=facts.version,
        implementation=facts.implementation,
        architecture=facts.machine,
        free_threaded=facts.free_threaded,
        kind="unknown",
        source=f"profile {name}" if name == source else f"profile {source} ({name})",
        prefix="",
        tags=tags,
        markers=dict(facts.markers),
    )


def replay_detect(facts: Mapping[str, Any], *, source: str = "profile") -> Accelerator:
    """Run :func:`detect` over a recording: its files under a scratch root, its tools as
    stand-ins on a scratch ``PATH`` that answer what the node's tools answered.
    NVML is not replayed (the script does not read it)."""
    files = _mapping(facts.get("files"), "files", source)
    links = _mapping(facts.get("links"), "links", source)
    tools = facts.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ProfileError(f"{source}: accelerator_facts.tools is not a list of answers")
    answers = {(str(t.get("tool")), tuple(map(str, t.get("args") or ()))): t for t in tools}
    with tempfile.TemporaryDirectory(prefix="torchup-profile-") as scratch:
        root, bin_dir = Path(scratch, "root"), Path(scratch, "bin")
        bin_dir.mkdir()
        for path, text in files.items():
            target = root / _relative(path, source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(text), encoding="utf-8")
        for path, driver in links.items():
            bound = Path(scratch, "drivers", PurePosixPath(str(driver)).name)
            bound.mkdir(parents=True, exist_ok=True)
            link = root / _relative(path, source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(bound)
        for tool in {name for name, _ in answers} & _TOOL_NAMES:
            stand_in = bin_dir / tool
            stand_in.write_text("#!/bin/sh\nexit 127\n")
            stand_in.chmod(0o755)

        def run(cmd: Sequence[str]) -> Completed:
            answer = answers.get((Path(cmd[0]).name, tuple(cmd[1:])))
            if answer is None or "error" in answer:
                why = answer.get("error") if answer else "the profile has no answer for it"
                raise RunnerError(f"{' '.join(cmd)}: {why}", cmd=tuple(cmd))
            code = answer.get("returncode")
            return Completed(
                cmd=tuple(cmd),
                returncode=code if isinstance(code, int) else 1,
                stdout=str(answer.get("stdout", "")),
                stderr=str(answer.get("stderr", "")),
            )

        environment = _mapping(facts.get("environment"), "environment", source)
        env = {**{k: str(v) for k, v in environment.items()}, "PATH": str(bin_dir)}
        return detect(
            env=env,
            root=root,
            run=run,
            nvml_libraries=(),
            system=str(facts.get("system") or "linux"),
            machine=str(facts.get("machine") or ""),
        )


def _mapping(value: Any, what: str, source: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProfileError(f"{source}: accelerator_facts.{what} is not an object")
    return value


def _relative(path: str, source: str) -> PurePosixPath:
    """``/proc/driver/nvidia/version`` -> ``proc/driver/nvidia/version``; nothing that
    climbs out of the scratch root."""
    parts = PurePosixPath(path).parts
    if not path.startswith("/") or ".." in parts or len(parts) < 2:
        raise ProfileError(f"{source}: {path!r} is not a recorded system file")
    return PurePosixPath(*parts[1:])


# --- from flags -------------------------------------------------------------------------

_VERSION = re.compile(r"^(?:cp)?([23])\.?([0-9]{1,2})(?:\.([0-9]{1,3}))?(t?)$")
_LEGACY_GLIBC = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}
_UV_FORM = re.compile(
    r"^(x86_64|aarch64|i686|armv7l|ppc64le|s390x|riscv64)-((?:many|musl)linux_[0-9]+_[0-9]+)$"
)


def parse_platform(text: str) -> dict[str, Any]:
    """The interpreter-probe facts a platform tag implies.

    Takes pip's ``--platform`` form (``manylinux_2_28_x86_64``, ``manylinux2014_aarch64``,
    ``musllinux_1_2_x86_64``, ``linux_x86_64``, ``macosx_14_0_arm64``, ``win_amd64``) and
    uv's ``--python-platform`` form for Linux (``x86_64-manylinux_2_28``). The tag is the
    newest the machine takes: ``manylinux_2_28`` means glibc 2.28, so every older
    manylinux tag is accepted too, as on that machine.

    >>> facts = parse_platform("x86_64-manylinux_2_28")
    >>> facts["glibc"], facts["machine"], facts["sys_platform"]
    ('2.28', 'x86_64', 'linux')
    >>> parse_platform("macosx_14_0_arm64")["mac_ver"]
    ['14.0', 'arm64']
    """
    tag = text.strip().lower().replace("-", "_") if not _UV_FORM.match(text.strip()) else ""
    if not tag:
        arch, rest = _UV_FORM.match(text.strip()).groups()  # type: ignore[union-attr]
        tag = f"{rest}_{arch}"
    linux = {"system": "Linux", "sys_platform": "linux", "os_name": "posix"}
    if m := re.fullmatch(r"manylinux_([0-9]+)_([0-9]+)_(\w+)", tag):
        return {**linux, "machine": m[3], "glibc": f"{m[1]}.{m[2]}", "musl": None}
    if m := re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", tag):
        return {**linux, "machine": m[2], "glibc": _LEGACY_GLIBC[m[1]], "musl": None}
    if m := re.fullmatch(r"musllinux_([0-9]+)_([0-9]+)_(\w+)", tag):
        return {**linux, "machine": m[3], "glibc": None, "musl": f"{m[1]}.{m[2]}"}
    if m := re.fullmatch(r"linux_(\w+)", tag):
        return {**linux, "machine": m[1], "glibc": None, "musl": None}
    if m := re.fullmatch(r"macosx_([0-9]+)_([0-9]+)_(\w+)", tag):
        version = f"{m[1]}.{m[2]}"
        return {
            "system": "Darwin",
            "sys_platform": "darwin",
            "os_name": "posix",
            "machine": m[3],
            "mac_ver": [version, m[3]],
            "sysconfig_platform": f"macosx-{version}-{m[3]}",
        }
    windows = {
        "win_amd64": ("AMD64", "win-amd64"),
        "win32": ("x86", "win32"),
        "win_arm64": ("ARM64", "win-arm64"),
    }
    if tag in windows:
        machine, sysconfig_platform = windows[tag]
        return {
            "system": "Windows",
            "sys_platform": "win32",
            "os_name": "nt",
            "machine": machine,
            "sysconfig_platform": sysconfig_platform,
            "is_32bit": tag == "win32",
        }
    raise ProfileError(
        f"--platform {text!r} is not a platform tag torchup knows",
        hint="use a wheel platform tag: manylinux_2_28_x86_64, manylinux_2_28_aarch64, "
        "musllinux_1_2_x86_64, macosx_14_0_arm64 or win_amd64",
    )


def _python_facts(version: str, platform_facts: Mapping[str, Any]) -> dict[str, Any]:
    """What the interpreter probe would report for CPython ``version`` on the platform."""
    m = _VERSION.match(version.strip())
    if not m:
        raise ProfileError(
            f"--python-version {version!r} is not a CPython version",
            hint="use MAJOR.MINOR, e.g. --python-version 3.12 (3.13t: free-threaded)",
        )
    major, minor, patch, threaded = int(m[1]), int(m[2]), int(m[3] or 0), bool(m[4])
    if threaded and (major, minor) < (3, 13):
        raise ProfileError(f"--python-version {version}: free-threaded builds start at 3.13t")
    full = f"{major}.{minor}.{patch}"
    facts = dict(platform_facts)
    system = facts["system"]
    facts.setdefault("sysconfig_platform", f"linux-{facts['machine']}")
    config = {
        "Py_DEBUG": 0,
        "WITH_PYMALLOC": 1 if (major, minor) < (3, 8) else 0,
        "Py_UNICODE_SIZE": 4 if system != "Windows" else 2,
        "Py_GIL_DISABLED": 1 if threaded else 0,
        "py_version_nodot": f"{major}{minor}",
    }
    markers = {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": facts["os_name"],
        "platform_machine": facts["machine"],
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": full,
        "python_version": f"{major}.{minor}",
        "sys_platform": facts["sys_platform"],
    }
    executable = "python.exe" if system == "Windows" else f"python{major}.{minor}{'t' * threaded}"
    return {
        "format": 1,
        "executable": executable,
        "prefix": "",
        "exec_prefix": "",
        "base_prefix": "",
        "version_info": [major, minor, patch, "final", 0],
        "version": full,
        "implementation": "cpython",
        "config_vars": config,
        "markers": markers,
        "maxunicode": 0x10FFFF,
        **facts,
    }


def from_flags(
    *,
    python_version: str,
    platform: str,
    gpu: str | None = None,
    driver: str | None = None,
    rocm: str | None = None,
) -> Profile:
    """A profile from what the user knows of the target (``--python-version``,
    ``--platform``, ``--gpu``, ``--driver``, ``--rocm``). ``--gpu`` takes what
    ``TORCHUP_GPU_ARCHS`` takes (``sm_90``, ``8.6,9.0``, ``gfx942``); without it the target
    has no GPU (an Apple-silicon Mac still gets MPS, as detect gives it)."""
    platform_facts = parse_platform(platform)
    if (driver or rocm) and not gpu:
        raise ProfileError(
            "--driver and --rocm describe a GPU: name it with --gpu",
            hint="e.g. --gpu sm_90 --driver 550.54, or --gpu gfx942 --rocm 6.3",
        )
    environment = {"TORCHUP_GPU_ARCHS": gpu} if gpu else {}
    if driver:
        environment["TORCHUP_CUDA_DRIVER_VERSION"] = driver
    files = {"/opt/rocm/.info/version": f"{rocm}\n"} if rocm else {}
    flags = [f"--python-version {python_version}", f"--platform {platform}"]
    flags += [f"--{k} {v}" for k, v in (("gpu", gpu), ("driver", driver), ("rocm", rocm)) if v]
    doc = {
        "torchup_profile": PROFILE_FORMAT,
        "made_by": "flags",
        "name": " ".join(flags),
        "python": _python_facts(python_version, platform_facts),
        "accelerator_facts": {
            "system": platform_facts["sys_platform"],
            "machine": platform_facts["machine"],
            "files": files,
            "links": {},
            "tools": [],
            "environment": environment,
        },
    }
    return read(doc, source=" ".join(flags))
