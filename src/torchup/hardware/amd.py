"""AMD (ROCm) and Intel (XPU) GPUs. Parsers are pure; the probes read a filesystem
``root`` (``/`` on a real machine) or run the ROCm tools.

AMD probes, in the order :func:`torchup.hardware.accelerators.detect` runs them:

1. the KFD topology in sysfs (``/sys/class/kfd/kfd/topology/nodes/*/properties``):
   each GPU node's ``gfx_target_version``; no process started;
2. ``rocm_agent_enumerator`` (one gfx target per line, ``gfx000`` is the CPU);
3. ``rocminfo`` (agents with ``Name: gfxNNNN`` and ``Marketing Name``).

The ROCm version comes from ``/opt/rocm/.info/version`` or ``amd-smi version``.
Intel GPUs are PCI display devices of vendor 0x8086 bound to the ``i915`` or ``xe``
driver (sysfs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from torchup.errors import RunnerError
from torchup.hardware.nvidia import Gpu, ProbeFailed
from torchup.runner import Completed

__all__ = [
    "gfx_name",
    "intel_gpus",
    "kfd_gpus",
    "parse_amd_smi_version",
    "parse_kfd_properties",
    "parse_rocm_agent_enumerator",
    "parse_rocminfo",
    "rocm_version",
    "tool_gpus",
]

Run = Callable[[Sequence[str]], Completed]


def gfx_name(target_version: int) -> str:
    """The gfx target for a KFD ``gfx_target_version`` (major*10000 + minor*100 + step,
    minor and step written in hex in the name).

    >>> gfx_name(90010), gfx_name(110000), gfx_name(90402), gfx_name(100300)
    ('gfx90a', 'gfx1100', 'gfx942', 'gfx1030')
    """
    major, rest = divmod(target_version, 10000)
    minor, step = divmod(rest, 100)
    return f"gfx{major}{minor:x}{step:x}"


def parse_kfd_properties(text: str) -> dict[str, int]:
    """``key value`` lines of a KFD node's ``properties`` file.

    >>> parse_kfd_properties("cpu_cores_count 0\\nsimd_count 192\\ngfx_target_version 110000\\n")
    {'cpu_cores_count': 0, 'simd_count': 192, 'gfx_target_version': 110000}
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_rocm_agent_enumerator(text: str) -> list[str]:
    """The GPU gfx targets ``rocm_agent_enumerator`` prints (``gfx000`` is the CPU).

    >>> parse_rocm_agent_enumerator("gfx000\\ngfx1100\\ngfx1100\\n")
    ['gfx1100', 'gfx1100']
    """
    return [t for t in text.split() if re.fullmatch(r"gfx[0-9a-f]+", t) and t != "gfx000"]


def parse_rocminfo(text: str) -> list[tuple[str, str]]:
    """``(gfx target, marketing name)`` for every GPU agent ``rocminfo`` lists."""
    gpus: list[tuple[str, str]] = []
    for block in re.split(r"\n\*+\s*\nAgent \d+\s*\n\*+\s*\n", "\n" + text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.strip().partition(":")
            if sep and key.strip() not in fields:
                fields[key.strip()] = value.strip()
        if fields.get("Device Type") == "GPU" and re.fullmatch(
            r"gfx[0-9a-f]+", fields.get("Name", "")
        ):
            gpus.append((fields["Name"], fields.get("Marketing Name") or fields["Name"]))
    return gpus


def parse_amd_smi_version(text: str) -> str | None:
    """The ROCm version in ``amd-smi version`` output.

    >>> parse_amd_smi_version("AMDSMI Tool: 24.6.3+9578815 | AMDSMI Library version: "
    ...                       "24.6.3.0 | ROCm version: 6.2.1")
    '6.2.1'
    """
    match = re.search(r"ROCm version:\s*([0-9]+(?:\.[0-9]+)+)", text)
    return match.group(1) if match else None


def kfd_gpus(root: Path) -> list[Gpu]:
    """GPU nodes of the KFD topology (nodes with a non-zero ``gfx_target_version``)."""
    nodes = root / "sys/class/kfd/kfd/topology/nodes"
    if not nodes.is_dir():
        raise ProbeFailed("no KFD topology in /sys/class/kfd (the amdgpu driver is not loaded)")
    gpus: list[Gpu] = []
    ordered = sorted(nodes.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 1 << 30)
    for node in ordered:
        try:
            props = parse_kfd_properties((node / "properties").read_text(errors="replace"))
        except OSError:
            continue
        target = props.get("gfx_target_version", 0)
        if target <= 0:
            continue  # a CPU node
        arch = gfx_name(target)
        gpus.append(
            Gpu(
                vendor="amd",
                index=len(gpus),
                name=f"AMD GPU {arch} (device 0x{props.get('device_id', 0):04x})",
                arch=arch,
                memory_mib=None,
                source=f"/sys/class/kfd/kfd/topology/nodes/{node.name}/properties",
            )
        )
    if not gpus:
        raise ProbeFailed("the KFD topology lists no GPU node")
    return gpus


def tool_gpus(tool: str, path: str, run: Run) -> list[Gpu]:
    """GPUs from ``rocm_agent_enumerator`` or ``rocminfo`` at ``path``."""
    try:
        done = run([path])
    except RunnerError as exc:
        raise ProbeFailed(exc.message) from None
    if done.returncode != 0:
        first = next((ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()), "")
        raise ProbeFailed(f"{tool} exited with status {done.returncode}: {first.strip()}")
    if tool == "rocminfo":
        found = parse_rocminfo(done.stdout)
    else:
        found = [(t, f"AMD GPU {t}") for t in parse_rocm_agent_enumerator(done.stdout)]
    if not found:
        raise ProbeFailed(f"{tool} lists no GPU agent")
    return [
        Gpu(vendor="amd", index=i, name=name, arch=arch, memory_mib=None, source=tool)
        for i, (arch, name) in enumerate(found)
    ]


def rocm_version(root: Path, amd_smi: str | None, run: Run) -> tuple[str | None, str | None]:
    """The installed ROCm version and where it was read, or ``(None, None)``."""
    for candidate in sorted((root / "opt").glob("rocm*/.info/version")):
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        match = re.match(r"([0-9]+(?:\.[0-9]+)+)", text)
        if match:
            return match.group(1), "/" + str(candidate.relative_to(root))
    if amd_smi:
        try:
            done = run([amd_smi, "version"])
        except RunnerError:
            return None, None
        found = parse_amd_smi_version(done.stdout)
        if found:
            return found, "amd-smi version"
    return None, None


_INTEL = "0x8086"
_INTEL_DRIVERS = ("i915", "xe")


def intel_gpus(root: Path) -> list[Gpu]:
    """Intel display devices (PCI class 0x03xxxx) bound to the i915 or xe driver."""
    devices = root / "sys/bus/pci/devices"
    if not devices.is_dir():
        raise ProbeFailed("no /sys/bus/pci/devices")
    gpus: list[Gpu] = []
    for dev in sorted(devices.iterdir()):
        try:
            vendor = (dev / "vendor").read_text().strip().lower()
            klass = (dev / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor != _INTEL or not klass.startswith("0x03"):
            continue
        driver_link = dev / "driver"
        driver = driver_link.resolve().name if driver_link.exists() else None
        if driver not in _INTEL_DRIVERS:
            continue
        try:
            device = (dev / "device").read_text().strip().lower()
        except OSError:
            device = "unknown"
        gpus.append(
            Gpu(
                vendor="intel",
                index=len(gpus),
                name=f"Intel GPU {device} at {dev.name} ({driver})",
                arch=None,
                memory_mib=None,
                source=f"/sys/bus/pci/devices/{dev.name}",
            )
        )
    if not gpus:
        raise ProbeFailed("no Intel GPU bound to i915 or xe")
    return gpus
