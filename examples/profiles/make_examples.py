"""Write the example machine profiles in this folder: ``python examples/profiles/make_examples.py``.

Each is what ``torchup profile`` (or the standalone script) records on that kind of
machine: the interpreter probe's facts (built from the machine's CPython and platform tag
by :func:`torchup.profiles.profile.from_flags`'s own rules, with the machine's paths) and
the accelerator's raw facts: the NVIDIA driver's ``/proc`` version file and
``nvidia-smi``'s answer to torchup's query, in the format those tools print. The
tests (tests/test_profiles.py) check that these files are what this script writes, and
plan for each one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from torchup.hardware.nvidia import SMI_FIELDS
from torchup.profiles.profile import PROFILE_FORMAT, _python_facts, parse_platform

HERE = Path(__file__).resolve().parent
SMI_HEADER = "index, name, compute_cap, driver_version, memory.total [MiB], pci.bus_id"
PROC = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  {date}\n"
    "GCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04)\n"
)


def nvidia(driver: str, date: str, name: str, cc: str, *, mib: int, count: int) -> dict:
    rows = [
        f"{i}, {name}, {cc}, {driver}, {mib} MiB, 00000000:{0x18 + 0x10 * i:02X}:00.0"
        for i in range(count)
    ]
    return {
        "files": {"/proc/driver/nvidia/version": PROC.format(driver=driver, date=date)},
        "links": {},
        "tools": [
            {
                "tool": "nvidia-smi",
                "args": ["--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv"],
                "returncode": 0,
                "stdout": SMI_HEADER + "\n" + "\n".join(rows) + "\n",
                "stderr": "",
            }
        ],
        "environment": {},
    }


def python(version: str, platform: str, executable: str, prefix: str) -> dict:
    facts = _python_facts(version, parse_platform(platform))
    return {**facts, "executable": executable, "prefix": prefix, "base_prefix": prefix,
            "exec_prefix": prefix}  # fmt: skip


MACHINES = {
    "h100-driver550": (
        "an 8x H100 node (Ubuntu 22.04, driver 550)",
        python("3.12.3", "manylinux_2_35_x86_64", "/usr/bin/python3.12", "/usr"),
        "linux",
        "x86_64",
        nvidia(
            "550.54.15",
            "Tue Mar  5 22:23:56 UTC 2024",
            "NVIDIA H100 80GB HBM3",
            "9.0",
            mib=81559,
            count=8,
        ),
    ),
    "v100-driver470": (
        "an old 4x V100 node (Ubuntu 20.04, driver 470)",
        python("3.10.12", "manylinux_2_31_x86_64", "/opt/conda/bin/python3.10", "/opt/conda"),
        "linux",
        "x86_64",
        nvidia(
            "470.239.06",
            "Wed Apr 17 19:59:40 UTC 2024",
            "Tesla V100-SXM2-32GB",
            "7.0",
            mib=32768,
            count=4,
        ),
    ),
    "arm-cpu": (
        "a CPU-only ARM server (Ubuntu 24.04 on aarch64)",
        python("3.12.3", "manylinux_2_39_aarch64", "/usr/bin/python3", "/usr"),
        "linux",
        "aarch64",
        {"files": {}, "links": {}, "tools": [], "environment": {}},
    ),
    "mac-m2": (
        "an M2 MacBook (macOS 14.5, Python from python.org)",
        python(
            "3.12.4",
            "macosx_14_0_arm64",
            "/Library/Frameworks/Python.framework/Versions/3.12/bin/python3",
            "/Library/Frameworks/Python.framework/Versions/3.12",
        ),
        "darwin",
        "arm64",
        {"files": {}, "links": {}, "tools": [], "environment": {}},
    ),
}


def documents() -> dict[str, str]:
    out = {}
    for name, (about, py, system, machine, accel) in MACHINES.items():
        doc = {
            "torchup_profile": PROFILE_FORMAT,
            "made_by": "examples/profiles/make_examples.py",
            "name": name,
            "about": about,
            "python": py,
            "accelerator_facts": {"system": system, "machine": machine, **accel},
        }
        out[f"{name}.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return out


if __name__ == "__main__":
    for filename, text in documents().items():
        (HERE / filename).write_text(text)
        print(f"wrote {HERE / filename}", file=sys.stderr)
