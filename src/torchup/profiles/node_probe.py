"""The machine-profile probe: run BY a node's Python, where torchup need not be installed.

``torchup profile --script -o torchup-profile.py`` writes this file after the interpreter
probe (:mod:`torchup.interpreters.probe`), as one program; on the node,
``python3 torchup-profile.py > node.json`` prints a profile that ``--for node.json``
reads. It records raw facts only: the interpreter probe's facts, and for the accelerator
the files and tool outputs :func:`torchup.hardware.accelerators.detect` reads (the NVIDIA
``/proc`` files, the KFD topology, the Intel PCI devices, ``nvidia-smi``'s answer to the
query detect asks, the ROCm tools). torchup replays them through ``detect`` itself on
the planning side, so a profile is judged by the same code as this machine.

Constraints: standard library only; parses and runs on Python 2.7 and 3.6+ (no
f-strings, no annotations), as the interpreter probe does. NVML is not read here (it
needs ctypes structures); ``nvidia-smi`` carries the same facts.
"""

import glob
import os
import platform
import socket
import subprocess
import sys

MYPY = False
if MYPY:  # never runs; torchup sends the interpreter probe ahead of this text
    from torchup.interpreters.probe import collect

PROFILE_FORMAT = 1

#: The files detect reads, as globs from the root; kept equal to detect's reads by
#: tests/test_profiles.py (a recording replayed must detect what detect detects).
FILES = (
    "/proc/driver/nvidia/version",
    "/sys/module/nvidia/version",
    "/proc/driver/nvidia/gpus/*/information",
    "/sys/class/kfd/kfd/topology/nodes/*/properties",
    "/opt/rocm*/.info/version",
    "/sys/bus/pci/devices/*/vendor",
    "/sys/bus/pci/devices/*/class",
    "/sys/bus/pci/devices/*/device",
)
#: Symbolic links detect resolves: the driver a PCI device is bound to.
LINKS = ("/sys/bus/pci/devices/*/driver",)
#: ``nvidia-smi``'s query (torchup.hardware.nvidia.SMI_FIELDS) and its fallbacks.
SMI_FIELDS = ("index", "name", "compute_cap", "driver_version", "memory.total", "pci.bus_id")
TOOLS = (
    ("nvidia-smi", ("--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv")),
    (
        "nvidia-smi",
        ("--query-gpu=" + ",".join(f for f in SMI_FIELDS if f != "compute_cap"), "--format=csv"),
    ),
    ("nvidia-smi", ()),
    ("rocm_agent_enumerator", ()),
    ("rocminfo", ()),
    ("amd-smi", ("version",)),
)
#: The variables that change what detect answers.
ENVIRONMENT = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HSA_OVERRIDE_GFX_VERSION",
    "TORCHUP_GPU_ARCHS",
    "TORCHUP_CUDA_DRIVER_VERSION",
)
TOOL_TIMEOUT = 10


def read_files(root):
    # type: (str) -> dict[str, str]
    found = {}
    for pattern in FILES:
        for path in sorted(glob.glob(root + pattern)):
            try:
                with open(path, "rb") as handle:
                    found[path[len(root) :]] = handle.read(65536).decode("utf-8", "replace")
            except (IOError, OSError):
                continue
    return display_devices_only(found)


def display_devices_only(found):
    # type: (dict[str, str]) -> dict[str, str]
    """Keep the PCI files of display devices (class 0x03xxxx) only: detect looks at no
    other, and a profile need not list a machine's every bridge and disk controller."""
    pci = "/sys/bus/pci/devices/"
    keep = set(
        path.rsplit("/", 1)[0]
        for path, text in found.items()
        if path.startswith(pci) and path.endswith("/class") and text.strip().startswith("0x03")
    )
    return dict(
        (path, text)
        for path, text in found.items()
        if not path.startswith(pci) or path.rsplit("/", 1)[0] in keep
    )


def read_links(root):
    # type: (str) -> dict[str, str]
    found = {}
    for pattern in LINKS:
        for path in sorted(glob.glob(root + pattern)):
            try:
                found[path[len(root) :]] = os.path.basename(os.path.realpath(path))
            except OSError:
                continue
    return found


def which(name):
    # type: (str) -> str | None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_tool(path, args):
    # type: (str, tuple[str, ...]) -> dict[str, object]
    try:
        child = subprocess.Popen(
            [path] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        return {"error": str(exc)}
    try:
        if sys.version_info[0] >= 3:
            out, err = child.communicate(timeout=TOOL_TIMEOUT)
        else:  # Python 2 has no timeout; a wedged driver is rare enough there
            out, err = child.communicate()
    except Exception:  # subprocess.TimeoutExpired
        child.kill()
        child.wait()
        return {"error": "timed out after %d s" % TOOL_TIMEOUT}
    return {
        "returncode": child.returncode,
        "stdout": out.decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace"),
    }


def accelerator_facts(root=""):
    # type: (str) -> dict[str, object]
    tools = []
    for name, args in TOOLS:
        path = which(name)
        if path is not None:
            answer = run_tool(path, args)
            answer.update({"tool": name, "args": list(args)})
            tools.append(answer)
    files = read_files(root)
    devices = set(path.rsplit("/", 1)[0] for path in files)
    links = read_links(root)
    return {
        "system": sys.platform,
        "machine": platform.machine(),
        "files": files,
        "links": dict((k, v) for k, v in links.items() if k.rsplit("/", 1)[0] in devices),
        "tools": tools,
        "environment": dict((k, os.environ[k]) for k in ENVIRONMENT if k in os.environ),
    }


def profile():
    # type: () -> dict[str, object]
    return {
        "torchup_profile": PROFILE_FORMAT,
        "made_by": "torchup-profile.py",
        "name": socket.gethostname(),
        "python": collect(),
        "accelerator_facts": accelerator_facts(os.environ.get("TORCHUP_PROFILE_ROOT", "")),
    }


def profile_main():
    # type: () -> None
    import json

    sys.stdout.write(json.dumps(profile(), indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    profile_main()
