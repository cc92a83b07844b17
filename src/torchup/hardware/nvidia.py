"""NVIDIA facts: the driver version and each GPU's name, compute capability and memory.

Parsers are pure functions over text; the probes around them do the I/O and return
:class:`NvidiaFacts` or raise :class:`ProbeFailed` with the reason, which
:func:`torchup.hardware.accelerators.detect` records. The probes, in the order detect runs them:

1. NVML, the library the driver ships (``libnvidia-ml.so.1``; WSL2's copy in
   ``/usr/lib/wsl/lib``; ``nvml.dll`` on Windows), loaded with :mod:`ctypes`;
2. ``/proc/driver/nvidia/version`` or ``/sys/module/nvidia/version`` (driver only) and
   ``/proc/driver/nvidia/gpus/*/information`` (GPU names, no compute capability);
3. ``nvidia-smi --query-gpu=...`` (its failure messages are findings too).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from torchup.errors import RunnerError
from torchup.runner import Completed

__all__ = [
    "NVML_LIBRARIES",
    "Gpu",
    "NvidiaFacts",
    "ProbeFailed",
    "nvml_facts",
    "parse_nvidia_smi_csv",
    "parse_nvidia_smi_table",
    "parse_proc_driver_version",
    "parse_proc_gpu_information",
    "proc_facts",
    "smi_facts",
]

#: Where NVML is looked for, per ``sys.platform``. WSL2 exposes the Windows driver's
#: NVML under /usr/lib/wsl/lib, which is not always on the loader path.
NVML_LIBRARIES: dict[str, tuple[str, ...]] = {
    "linux": ("libnvidia-ml.so.1", "/usr/lib/wsl/lib/libnvidia-ml.so.1"),
    "win32": (
        "nvml.dll",
        r"C:\Windows\System32\nvml.dll",
        r"C:\Program Files\NVIDIA Corporation\NVSMI\nvml.dll",
    ),
}

#: The nvidia-smi query; the header line it prints names the columns, so a reply with
#: fewer fields (an older nvidia-smi asked without ``compute_cap``) parses the same way.
SMI_FIELDS = ("index", "name", "compute_cap", "driver_version", "memory.total", "pci.bus_id")


class ProbeFailed(Exception):
    """A probe did not apply or could not answer; ``str()`` says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Gpu:
    """One GPU. ``arch`` is the compute capability (``"8.6"``) for NVIDIA, the gfx
    target (``"gfx1100"``) for AMD, ``None`` when unknown; ``source`` is the probe."""

    vendor: str
    index: int
    name: str
    arch: str | None
    memory_mib: int | None
    source: str

    @property
    def sm(self) -> str:
        """``sm_86`` for NVIDIA compute capability 8.6, else the arch itself."""
        if self.vendor == "nvidia" and self.arch and "." in self.arch:
            return "sm_" + self.arch.replace(".", "")
        return self.arch or "unknown arch"

    def to_dict(self) -> dict[str, object]:
        return {
            "vendor": self.vendor,
            "index": self.index,
            "name": self.name,
            "arch": self.arch,
            "memory_mib": self.memory_mib,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NvidiaFacts:
    """What one probe found. ``driver`` and ``gpus`` may each be missing."""

    driver: str | None
    cuda: str | None
    gpus: tuple[Gpu, ...]
    source: str


# --- pure parsers -------------------------------------------------------------------

_PROC_VERSION = re.compile(r"Kernel Module(?: for \S+)?\s+([0-9]+(?:\.[0-9]+)+)\s")


def parse_proc_driver_version(text: str) -> str | None:
    """The driver version in ``/proc/driver/nvidia/version`` (proprietary or open module).

    >>> parse_proc_driver_version(
    ...     "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 2023\\n")
    '535.104.05'
    >>> parse_proc_driver_version(
    ...     "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build\\n")
    '550.54.14'
    >>> parse_proc_driver_version("garbage") is None
    True
    """
    match = _PROC_VERSION.search(text + " ")
    return match.group(1) if match else None


def parse_proc_gpu_information(text: str) -> str | None:
    """The ``Model:`` line of ``/proc/driver/nvidia/gpus/<bus>/information``.

    >>> parse_proc_gpu_information("Model: \\t\\t NVIDIA GeForce GTX 1080 Ti\\nIRQ:  130\\n")
    'NVIDIA GeForce GTX 1080 Ti'
    """
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Model":
            return value.strip() or None
    return None


def _mib(value: str) -> int | None:
    match = re.match(r"\s*([0-9]+)\s*(MiB)?\s*$", value)
    return int(match.group(1)) if match else None


def _cc(value: str) -> str | None:
    value = value.strip()
    return value if re.fullmatch(r"[0-9]+\.[0-9]+", value) else None


def parse_nvidia_smi_csv(text: str, *, source: str = "nvidia-smi") -> NvidiaFacts:
    """Parse ``nvidia-smi --query-gpu=... --format=csv`` output, header line included.

    Columns are found by the header, so any subset of fields parses; units
    (``24564 MiB``, ``memory.total [MiB]``) are stripped. Raises :class:`ProbeFailed`
    for output that is not such a table (an error message, nothing at all).

    >>> facts = parse_nvidia_smi_csv(
    ...     "name, compute_cap, driver_version, memory.total [MiB]\\n"
    ...     "NVIDIA GeForce RTX 4090, 8.9, 550.54.14, 24564 MiB\\n")
    >>> facts.driver, facts.gpus[0].name, facts.gpus[0].arch, facts.gpus[0].memory_mib
    ('550.54.14', 'NVIDIA GeForce RTX 4090', '8.9', 24564)
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ProbeFailed("nvidia-smi printed nothing")
    header = [re.sub(r"\s*\[.*\]$", "", h.strip()) for h in next(csv.reader(lines[:1]))]
    if not set(header) & set(SMI_FIELDS):
        raise ProbeFailed(lines[0].strip())
    gpus: list[Gpu] = []
    drivers: list[str] = []
    for position, row in enumerate(csv.reader(lines[1:], skipinitialspace=True)):
        if len(row) != len(header):
            raise ProbeFailed(f"unexpected nvidia-smi line: {','.join(row)!r}")
        cell = dict(zip(header, (c.strip() for c in row), strict=True))
        if cell.get("driver_version"):
            drivers.append(cell["driver_version"])
        index = cell.get("index", "")
        gpus.append(
            Gpu(
                vendor="nvidia",
                index=int(index) if index.isdigit() else position,
                name=cell.get("name", f"GPU {position}"),
                arch=_cc(cell.get("compute_cap", "")),
                memory_mib=_mib(cell.get("memory.total", "")),
                source=source,
            )
        )
    return NvidiaFacts(
        driver=drivers[0] if drivers else None, cuda=None, gpus=tuple(gpus), source=source
    )


_BANNER = re.compile(r"Driver Version:\s*([0-9.]+)\s+CUDA Version:\s*([0-9.]+|N/A)")
_ROW = re.compile(r"^\|\s+([0-9]+)\s+(.+?)\s+(?:On|Off)\s+\|")
_MEMORY = re.compile(r"/\s*([0-9]+)MiB\s*\|")


def parse_nvidia_smi_table(text: str, *, source: str = "nvidia-smi") -> NvidiaFacts:
    """Parse the plain ``nvidia-smi`` table: driver, CUDA version, GPU names, memory.

    The table has no compute capability, and long GPU names may be cut short.
    Raises :class:`ProbeFailed` when there is no banner (an error message instead).
    """
    banner = _BANNER.search(text)
    if banner is None:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")
        raise ProbeFailed(first)
    gpus: list[Gpu] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        row = _ROW.match(line)
        if row is None:
            continue
        following = lines[number + 1] if number + 1 < len(lines) else ""
        memory = _MEMORY.search(following)
        gpus.append(
            Gpu(
                vendor="nvidia",
                index=int(row.group(1)),
                name=row.group(2).strip(),
                arch=None,
                memory_mib=int(memory.group(1)) if memory else None,
                source=source,
            )
        )
    cuda = banner.group(2)
    return NvidiaFacts(
        driver=banner.group(1),
        cuda=None if cuda == "N/A" else cuda,
        gpus=tuple(gpus),
        source=source,
    )


# --- probes -------------------------------------------------------------------------


def proc_facts(root: Path) -> NvidiaFacts:
    """The driver from ``/proc`` (or ``/sys/module``) and GPU names from ``/proc``."""
    proc = root / "proc/driver/nvidia"
    driver: str | None = None
    source = ""
    try:
        driver = parse_proc_driver_version((proc / "version").read_text(errors="replace"))
        source = "/proc/driver/nvidia/version"
    except OSError:
        pass
    if driver is None:
        try:
            text = (root / "sys/module/nvidia/version").read_text().strip()
        except OSError:
            raise ProbeFailed(
                "no /proc/driver/nvidia/version or /sys/module/nvidia/version "
                "(the NVIDIA kernel module is not loaded)"
            ) from None
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)+", text):
            raise ProbeFailed(f"/sys/module/nvidia/version holds {text[:40]!r}")
        driver, source = text, "/sys/module/nvidia/version"
    gpus: list[Gpu] = []
    info_files = sorted((proc / "gpus").glob("*/information")) if (proc / "gpus").is_dir() else []
    for position, info in enumerate(info_files):
        try:
            name = parse_proc_gpu_information(info.read_text(errors="replace"))
        except OSError:
            continue
        gpus.append(
            Gpu(
                vendor="nvidia",
                index=position,
                name=name or f"GPU at {info.parent.name}",
                arch=None,
                memory_mib=None,
                source=f"/proc/driver/nvidia/gpus/{info.parent.name}/information",
            )
        )
    return NvidiaFacts(driver=driver, cuda=None, gpus=tuple(gpus), source=source)


Run = Callable[[Sequence[str]], Completed]


def smi_facts(smi: str, run: Run) -> NvidiaFacts:
    """Ask ``nvidia-smi`` (the executable at ``smi``); an older one without
    ``compute_cap`` is asked again without it."""
    fields = list(SMI_FIELDS)
    for _ in range(2):
        query = ("--query-gpu=" + ",".join(fields), "--format=csv")
        try:
            done = run([smi, *query])
        except RunnerError as exc:
            raise ProbeFailed(exc.message) from None
        out = (done.stdout + "\n" + done.stderr).strip()
        if done.returncode == 0:
            try:
                return parse_nvidia_smi_csv(done.stdout, source="nvidia-smi")
            except ProbeFailed:
                return _smi_table(smi, run)
        if "compute_cap" in out and "compute_cap" in fields:
            fields.remove("compute_cap")
            continue
        first = next((ln.strip() for ln in out.splitlines() if ln.strip()), "no output")
        raise ProbeFailed(f"nvidia-smi exited with status {done.returncode}: {first}")
    raise ProbeFailed("nvidia-smi rejected the query")


def _smi_table(smi: str, run: Run) -> NvidiaFacts:
    try:
        done = run([smi])
    except RunnerError as exc:
        raise ProbeFailed(exc.message) from None
    return parse_nvidia_smi_table(done.stdout + done.stderr, source="nvidia-smi (table)")


def nvml_facts(libraries: Sequence[str]) -> NvidiaFacts:
    """Ask NVML: driver version, CUDA driver API version, and every GPU."""
    import ctypes  # lazy: only a machine that may have NVIDIA hardware pays for it

    lib = None
    errors: list[str] = []
    for name in libraries:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(str(exc) or name)
    if lib is None:
        raise ProbeFailed("NVML not found: " + "; ".join(errors))
    source = f"NVML ({name})"
    lib.nvmlErrorString.restype = ctypes.c_char_p

    def check(status: int, call: str) -> None:
        if status != 0:
            text = lib.nvmlErrorString(status) or b"unknown error"
            raise ProbeFailed(f"{call} failed: {text.decode(errors='replace')} ({status})")

    init = getattr(lib, "nvmlInit_v2", None) or lib.nvmlInit
    check(init(), "nvmlInit")
    try:
        buf = ctypes.create_string_buffer(96)
        check(lib.nvmlSystemGetDriverVersion(buf, 96), "nvmlSystemGetDriverVersion")
        driver = buf.value.decode(errors="replace")
        cuda: str | None = None
        version = ctypes.c_int()
        get_cuda = getattr(lib, "nvmlSystemGetCudaDriverVersion_v2", None)
        get_cuda = get_cuda or getattr(lib, "nvmlSystemGetCudaDriverVersion", None)
        if get_cuda is not None and get_cuda(ctypes.byref(version)) == 0:
            cuda = f"{version.value // 1000}.{version.value % 1000 // 10}"  # 12040 -> 12.4
        count = ctypes.c_uint()
        check(lib.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount")
        gpus: list[Gpu] = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            check(
                lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)),
                "nvmlDeviceGetHandleByIndex",
            )
            check(lib.nvmlDeviceGetName(handle, buf, 96), "nvmlDeviceGetName")
            major, minor = ctypes.c_int(), ctypes.c_int()
            arch: str | None = None
            if (
                lib.nvmlDeviceGetCudaComputeCapability(
                    handle, ctypes.byref(major), ctypes.byref(minor)
                )
                == 0
            ):
                arch = f"{major.value}.{minor.value}"
            memory = _memory_struct()()
            mib = None
            if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) == 0:
                mib = memory.total // (1024 * 1024)
            gpus.append(
                Gpu(
                    vendor="nvidia",
                    index=index,
                    name=buf.value.decode(errors="replace"),
                    arch=arch,
                    memory_mib=mib,
                    source=source,
                )
            )
    finally:
        lib.nvmlShutdown()
    return NvidiaFacts(driver=driver, cuda=cuda, gpus=tuple(gpus), source=source)


@cache
def _memory_struct() -> Any:
    """``nvmlMemory_t`` (nvml.h): total, free and used bytes. Built on first use."""
    import ctypes

    class Memory(ctypes.Structure):
        _fields_ = [
            ("total", ctypes.c_ulonglong),
            ("free", ctypes.c_ulonglong),
            ("used", ctypes.c_ulonglong),
        ]

    return Memory
