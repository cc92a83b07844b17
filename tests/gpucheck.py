"""The checks a lent NVIDIA machine runs (tests/test_gpu.py, bench/gpu_check.sh).

Each compares torchup with something that is not torchup: ``nvidia-smi``'s own answer,
and the cited tables in ``src/torchup/data`` read here with their own small rules (a
CUDA toolkit's Linux driver minimum from NVIDIA's Tables 2 and 3; an arch list in
``TORCH_CUDA_ARCH_LIST`` syntax, where ``X.Y`` runs on ``X.Z``, ``Z >= Y`` and ``+PTX``
on anything newer). Every function returns the problems it found as sentences: an
empty list is a pass, so a caller can print them all, not just the first.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "src" / "torchup" / "data"
QUERY = ("--query-gpu=name,driver_version,compute_cap", "--format=csv")


@dataclass(frozen=True)
class SmiGpu:
    name: str
    driver: str
    compute_cap: str


def parse_smi_csv(text: str) -> list[SmiGpu]:
    """``nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv``."""
    rows = list(csv.reader(io.StringIO(text.strip()), skipinitialspace=True))
    if not rows or [h.strip() for h in rows[0]] != ["name", "driver_version", "compute_cap"]:
        raise ValueError(f"not the asked-for CSV: {text[:200]!r}")
    return [SmiGpu(*(cell.strip() for cell in row)) for row in rows[1:] if row]


def nvidia_smi(smi: str = "nvidia-smi", env: Mapping[str, str] | None = None) -> list[SmiGpu]:
    done = subprocess.run(
        [smi, *QUERY], capture_output=True, text=True, timeout=30, check=True, env=env
    )
    return parse_smi_csv(done.stdout)


def _gpus_problems(
    what: str, driver: str | None, gpus: Sequence[Any], smi: Sequence[SmiGpu]
) -> list[str]:
    problems = []
    if not smi:
        return [f"{what}: nvidia-smi lists no GPU"]
    if driver != smi[0].driver:
        problems.append(f"{what} says driver {driver}, nvidia-smi says {smi[0].driver}")
    seen = [(g["name"], g["arch"]) for g in gpus]
    want = [(g.name, g.compute_cap) for g in smi]
    if seen != want:
        problems.append(f"{what} sees GPUs {seen}, nvidia-smi {want}")
    return problems


def detect_agrees(detect_doc: Mapping[str, Any], smi: Sequence[SmiGpu]) -> list[str]:
    """``torchup detect --json`` against nvidia-smi: kind, driver, each GPU's name and
    compute capability, in nvidia-smi's order."""
    problems = []
    if detect_doc.get("kind") != "cuda":
        problems.append(f"detect says {detect_doc.get('kind')!r}, not 'cuda'")
    driver = (detect_doc.get("driver") or {}).get("version")
    return problems + _gpus_problems("detect", driver, detect_doc.get("gpus") or [], smi)


def nvml_agrees(facts: Any, smi: Sequence[SmiGpu]) -> list[str]:
    """torchup's ctypes NVML reading (``_nvidia.nvml_facts``) against nvidia-smi."""
    gpus = [{"name": g.name, "arch": g.arch} for g in facts.gpus]
    return _gpus_problems("NVML", facts.driver, gpus, smi)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"[0-9]+", version))


def driver_minimum(cuda: str) -> str | None:
    """The lowest Linux driver that runs CUDA ``cuda`` ("12.6"): Table 3's driver for
    that toolkit, or, lower, Table 2's floor for its major version (minor version
    compatibility, which PyTorch's wheels rely on: they carry their own runtime)."""
    doc = json.loads((DATA / "cuda_drivers.json").read_text())
    row = next((r for r in doc["toolkits"] if r["cuda"] == cuda), None)
    major = _numbers(cuda)[0]
    compat = next((r for r in doc["minor_compat"] if int(r["major"]) == major), None)
    floors = [r["linux"] for r in (row, compat) if r and r.get("linux")]
    return min(floors, key=_numbers) if floors else None


def arch_list(torch_version: str, variant: str, platform: str = "linux_x86_64") -> str | None:
    doc = json.loads((DATA / "cuda_archs.json").read_text())
    release = ".".join(torch_version.split("+", maxsplit=1)[0].split(".")[:2])
    entry = doc["releases"].get(release, {}).get(platform, {}).get(variant)
    return entry["archs"] if entry else None


def arch_runs(archs: str, capability: str) -> bool:
    major, minor = _numbers(capability)[:2]
    for item in archs.split(";"):
        have = _numbers(item.replace("+PTX", ""))[:2]
        if have[0] == major and have[1] <= minor:
            return True
        if item.endswith("+PTX") and have <= (major, minor):
            return True
    return False


def variant_runs(plan_doc: Mapping[str, Any], smi: Sequence[SmiGpu]) -> list[str]:
    """The variant ``plan --backend auto --json`` chose runs here: a CUDA build whose
    toolkit this driver meets (Table 3) and whose arch list covers every GPU."""
    torch = next((p for p in plan_doc.get("packages", []) if p["name"] == "torch"), None)
    if torch is None:
        return [f"the plan has no torch: {json.dumps(plan_doc)[:300]}"]
    version = torch["version"]
    label = version.partition("+")[2]
    if not label.startswith("cu"):
        return [f"plan chose {version} (not a CUDA build) on a machine with an NVIDIA GPU"]
    cuda = f"{label[2:-1]}.{label[-1]}"
    floor = driver_minimum(cuda)
    problems = []
    driver = smi[0].driver
    if floor is None:
        problems.append(f"no driver minimum is cited for CUDA {cuda}")
    elif _numbers(driver) < _numbers(floor):
        problems.append(f"{version} needs driver >= {floor} (CUDA {cuda}); this one is {driver}")
    archs = arch_list(version, label)
    if archs is None:
        problems.append(f"no arch list is cited for torch {version}")
    else:
        for gpu in smi:
            if not arch_runs(archs, gpu.compute_cap):
                problems.append(f"{version} ({archs}) has no kernels for {gpu.name} "
                                f"(compute capability {gpu.compute_cap})")  # fmt: skip
    return problems


def verify_ran_cuda(verify_doc: Mapping[str, Any]) -> list[str]:
    """``torchup verify --json`` of a CUDA torch: ok, a matmul on a CUDA device passed,
    and the build judged right for this hardware."""
    checks = {c["id"]: c["status"] for c in verify_doc.get("checks", [])}
    problems = [f"verify: {cid} {status}" for cid, status in checks.items() if status == "fail"]
    if not any(cid.startswith("matmul:cuda") and s == "pass" for cid, s in checks.items()):
        problems.append(f"verify ran no passing matmul on a CUDA device: {checks}")
    if checks.get("build-matches-hardware") != "pass":
        problems.append(f"verify did not find the build right for this GPU: {checks}")
    return problems
