"""Which variants run on which hardware: NVIDIA's compatibility rules and the cited
tables in src/torchup/data. Pure: no fakes needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from torchup.choose.variants import (
    ArchEntry,
    arch_list,
    cuda_of,
    driver_floors,
    judge,
    parse_arch_list,
    rocm_archs,
    runs_on,
)
from torchup.hardware.accelerators import Accelerator, Gpu

DATA = Path(__file__).parents[1] / "src" / "torchup" / "data"
REFERENCE = Path("/work/shared/reference")


def nvidia(driver: str | None, *gpus: tuple[str, str], system: str = "linux") -> Accelerator:
    return Accelerator(
        kind="cuda",
        source="test",
        driver=driver,
        driver_source="test",
        system=system,
        gpus=tuple(
            Gpu(vendor="nvidia", index=i, name=n, arch=a, memory_mib=None, source="test")
            for i, (n, a) in enumerate(gpus)
        ),
    )


GTX_1080_TI = ("GTX 1080 Ti", "6.1")
RTX_5090 = ("RTX 5090", "12.0")


# -- NVIDIA's rules ----------------------------------------------------------------------

capability = st.tuples(st.integers(3, 13), st.integers(0, 9))


@given(built=capability, gpu=capability)
def test_a_cubin_runs_on_the_same_major_with_an_equal_or_higher_minor(
    built: tuple[int, int], gpu: tuple[int, int]
) -> None:
    entries = (ArchEntry(built[0], built[1], ptx=False),)
    expected = gpu[0] == built[0] and gpu[1] >= built[1]
    assert runs_on(entries, f"{gpu[0]}.{gpu[1]}") is expected


@given(built=capability, gpu=capability)
def test_ptx_runs_on_every_newer_architecture(built: tuple[int, int], gpu: tuple[int, int]) -> None:
    entries = (ArchEntry(built[0], built[1], ptx=True),)
    assert runs_on(entries, f"{gpu[0]}.{gpu[1]}") is (gpu >= built)


def test_cuda_versions_of_variant_names() -> None:
    assert [cuda_of(v) for v in ("cu102", "cu118", "cu126", "cu130", "rocm6.4", "xpu")] == [
        (10, 2),
        (11, 8),
        (12, 6),
        (13, 0),
        None,
        None,
    ]


# -- the issue's worked reasons ------------------------------------------------------------


def test_driver_reason_reads_like_the_issue() -> None:
    verdict = judge(
        "cu130", Version("2.13.0"), nvidia("550.54.14", ("RTX 4090", "8.9")), "linux_x86_64"
    )
    assert not verdict.ok
    assert verdict.reason == "driver 550.54.14 < 580.65.06"


def test_arch_reason_reads_like_the_issue() -> None:
    verdict = judge("cu128", Version("2.8.0"), nvidia("580.65.06", GTX_1080_TI), "linux_x86_64")
    assert not verdict.ok
    assert verdict.reason == "no kernels for sm_61 (GTX 1080 Ti)"


def test_pascal_runs_the_sm60_kernels_of_cu126() -> None:
    assert judge("cu126", Version("2.8.0"), nvidia("580.65.06", GTX_1080_TI), "linux_x86_64").ok


def test_blackwell_needs_a_release_with_sm120() -> None:
    accel = nvidia("580.65.06", RTX_5090)
    for variant in ("cu118", "cu124", "cu126"):
        assert not judge(variant, Version("2.6.0"), accel, "linux_x86_64").ok
    assert judge("cu128", Version("2.7.0"), accel, "linux_x86_64").ok
    assert judge("cu129", Version("2.8.0"), accel, "linux_x86_64").ok


def test_minor_version_compatibility_is_flagged_not_hidden() -> None:
    accel = nvidia("550.54.14", ("RTX 4090", "8.9"))
    verdict = judge("cu126", Version("2.13.0"), accel, "linux_x86_64")
    assert verdict.ok
    assert verdict.minor_compat
    assert "minor-version compatibility" in verdict.notes[-1]
    below_family = judge(
        "cu126", Version("2.13.0"), nvidia("470.82.01", ("T4", "7.5")), "linux_x86_64"
    )
    assert not below_family.ok
    assert below_family.reason == "driver 470.82.01 < 560.28.03"


def test_unknown_driver_is_not_held_against_a_build() -> None:
    assert judge("cu132", Version("2.13.0"), nvidia(None, RTX_5090), "linux_x86_64").ok


def test_windows_uses_windows_minima_and_lists() -> None:
    floors = driver_floors("cu126", "win32")
    assert floors is not None
    assert (floors.strict, floors.minor) == ("560.76", "528.33")
    # Windows wheels of cu126 keep sm_61 kernels; Linux ones do not (see data/README.md).
    accel = nvidia("580.88", GTX_1080_TI, system="win32")
    assert judge("cu126", Version("2.12.0"), accel, "windows_amd64").ok


def test_rocm_gfx_targets() -> None:
    targets = rocm_archs("rocm6.4")
    assert targets is not None
    assert "gfx1100" in targets
    amd = Accelerator(
        kind="rocm",
        source="test",
        gpus=(
            Gpu(vendor="amd", index=0, name="RX 580", arch="gfx803", memory_mib=None, source="t"),
        ),
    )
    verdict = judge("rocm6.4", Version("2.8.0"), amd, "linux_x86_64")
    assert verdict.reason == "no kernels for gfx803 (RX 580)"
    assert judge("cu126", Version("2.8.0"), amd, "linux_x86_64").reason == "no NVIDIA GPU here"


def test_cpu_is_rejected_only_when_there_is_a_gpu() -> None:
    assert judge("cpu", Version("2.8.0"), Accelerator(kind="cpu", source="t"), "linux_x86_64").ok
    assert not judge("cpu", Version("2.8.0"), nvidia("580.65.06", RTX_5090), "linux_x86_64").ok


def test_release_missing_from_the_table_borrows_the_nearest_and_says_so() -> None:
    listed = arch_list(Version("2.15.0"), "cu130")
    assert listed is not None
    assert listed.confidence.startswith("inferred from 2.1")


# -- the tables themselves -----------------------------------------------------------------


def test_every_arch_list_parses_and_is_cited() -> None:
    doc = json.loads((DATA / "cuda_archs.json").read_text())
    for release, platforms in doc["releases"].items():
        for platform, variants in platforms.items():
            for variant, row in variants.items():
                where = f"{release} {platform} {variant}"
                assert cuda_of(variant) is not None, where
                entries = parse_arch_list(row["archs"])
                assert len(entries) == len(row["archs"].split(";")), where
                assert row["source"], where
                assert row["confidence"] in ("source", "inferred", "third-party"), where


def test_every_cuda_variant_of_the_test_index_has_driver_floors() -> None:
    import gzip

    spec = json.loads(
        gzip.decompress((Path(__file__).parent / "data/torchindex.json.gz").read_bytes())
    )
    variants = {e["variant"] for e in spec["files"] if cuda_of(e["variant"])}
    for variant in sorted(variants):
        floors = driver_floors(variant)
        assert floors is not None, variant
        assert floors.strict, variant


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the shared reference is not on this machine")
def test_driver_minima_agree_with_the_shared_reference() -> None:
    ref = json.loads((REFERENCE / "driver_min_versions.json").read_text())
    for variant, row in ref["pytorch_variant_floors"].items():
        floors = driver_floors(variant)
        if floors is None or not row.get("strict_linux"):
            continue
        assert floors.strict == row["strict_linux"], variant
