"""The pure core: file compatibility, version choice, companion pairing. No I/O at all.

File names are real ones from PyPI and the PyTorch index; target tags come from
packaging.tags (see tagsets.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.version import Version

from tagsets import cpython_linux
from torchup.choose.backends import (
    Backend,
    parse_backend,
    requested_backend,
    resolve_backend,
    variant_rule,
)
from torchup.choose.companions import predicted
from torchup.choose.compat import (
    Candidate,
    fits,
    make_candidates,
    python_span,
    reject_reason,
    target_tags,
)
from torchup.choose.resolve import choose, pair
from torchup.errors import UsageError
from torchup.index.pages import DistFile

PYPI = "https://pypi.example/simple/torch/"
CPU = "https://torch.example/whl/cpu/torch/"

TORCH_1_10 = [
    "torch-1.10.0-cp36-cp36m-manylinux1_x86_64.whl",
    "torch-1.10.0-cp37-cp37m-manylinux1_x86_64.whl",
    "torch-1.10.0-cp38-cp38-manylinux1_x86_64.whl",
    "torch-1.10.0-cp39-cp39-manylinux1_x86_64.whl",
    "torch-1.10.0-cp39-none-macosx_11_0_arm64.whl",
    "torch-1.10.0-cp39-cp39-win_amd64.whl",
]
TORCH_1_11 = [
    "torch-1.11.0-cp310-cp310-manylinux1_x86_64.whl",
    "torch-1.11.0-cp39-cp39-manylinux1_x86_64.whl",
]
TORCH_2_15 = [
    "torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    "torch-2.15.0-cp313-cp313t-manylinux_2_28_x86_64.whl",
]


def dists(names: Sequence[str], index: str = PYPI, **kw: object) -> list[DistFile]:
    return [
        DistFile(filename=n, url=index + n, index=index, hashes={"sha256": "0" * 64}, **kw)  # type: ignore[arg-type]
        for n in names
    ]


def cands(names: Sequence[str], project: str = "torch", **kw: object) -> list[Candidate]:
    got, bad = make_candidates(dists(names, **kw), project)
    assert not bad
    return got


PY310 = target_tags(cpython_linux(3, 10), "3.10.13")
PY39 = target_tags(cpython_linux(3, 9), "3.9.18")
PY27 = target_tags(cpython_linux(2, 7, abi="cp27mu"), "2.7.18")
PY313T = target_tags(cpython_linux(3, 13, threaded=True), "3.13.0")
ANY = variant_rule(Backend(name="pypi", variant=None, source="test"))


def test_wrong_python_tag_is_named_with_the_wheel_python() -> None:
    (cand,) = cands(["torch-1.10.0-cp39-cp39-manylinux1_x86_64.whl"])
    assert reject_reason(cand, PY310) == "built for cp39-cp39, not this Python 3.10.13"
    assert reject_reason(cand, PY39) is None


def test_wrong_platform_is_named() -> None:
    (cand,) = cands(["torch-1.10.0-cp39-none-macosx_11_0_arm64.whl"])
    assert reject_reason(cand, PY39) == "platform macosx_11_0_arm64 does not run here"


def test_requires_python_and_yanked_come_before_tags() -> None:
    (cand,) = cands(
        ["torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl"], requires_python=">=3.11"
    )
    assert reject_reason(cand, PY310) == "Requires-Python >=3.11 excludes Python 3.10.13"
    (cand,) = cands(["torch-1.11.0-cp310-cp310-manylinux1_x86_64.whl"], yanked="broken build")
    assert reject_reason(cand, PY310) == "yanked: broken build"


def test_source_distribution_is_rejected() -> None:
    (cand,) = cands(["torch-2.0.0.tar.gz"])
    assert reject_reason(cand, PY310) is not None
    assert "source distribution" in (reject_reason(cand, PY310) or "")


def test_torch_1_10_on_python_3_10_explains_and_offers_1_11() -> None:
    pool = cands(TORCH_1_10 + TORCH_1_11)
    out = choose(Requirement("torch==1.10.0"), pool, PY310, ANY, label="Python 3.10.13")
    assert out.choice is None
    assert {r.filename for r in out.rejected} == set(TORCH_1_10)
    assert "cp36-cp39 wheels only" in out.message
    assert out.nearest == (Version("1.11.0"),)
    # and the same request on 3.9 fits
    ok = choose(Requirement("torch==1.10.0"), pool, PY39, ANY, label="Python 3.9.18")
    assert ok.choice is not None
    assert ok.choice.dist.filename == "torch-1.10.0-cp39-cp39-manylinux1_x86_64.whl"


def test_torch_2_15_needs_python_3_11() -> None:
    pool = cands(TORCH_1_11) + cands(TORCH_2_15, requires_python=">=3.11")
    out = choose(Requirement("torch==2.15.0"), pool, PY310, ANY, label="Python 3.10.13")
    assert out.choice is None
    assert all("Requires-Python >=3.11" in r.reason for r in out.rejected)
    assert out.nearest == (Version("1.11.0"),)


def test_newest_fitting_version_wins_and_python_2_7_gets_1_4() -> None:
    pool = cands(
        [
            "torch-1.4.0-cp27-cp27mu-manylinux1_x86_64.whl",
            "torch-1.4.0-cp27-cp27m-manylinux1_x86_64.whl",
            "torch-1.5.0-cp36-cp36m-manylinux1_x86_64.whl",
            *TORCH_1_11,
        ]
    )
    out = choose(Requirement("torch"), pool, PY27, ANY, label="Python 2.7.18")
    assert out.choice is not None
    assert out.choice.dist.filename == "torch-1.4.0-cp27-cp27mu-manylinux1_x86_64.whl"
    assert choose(Requirement("torch"), pool, PY310, ANY, label="x").choice.version == Version(
        "1.11.0"
    )  # type: ignore[union-attr]


def test_free_threaded_python_takes_only_t_wheels() -> None:
    pool = cands(["torch-2.15.0-cp313-cp313-manylinux_2_28_x86_64.whl", *TORCH_2_15])
    out = choose(Requirement("torch"), pool, PY313T, ANY, label="Python 3.13.0t")
    assert out.choice is not None
    assert out.choice.dist.filename == "torch-2.15.0-cp313-cp313t-manylinux_2_28_x86_64.whl"
    (gil,) = cands(["torch-2.15.0-cp313-cp313-manylinux_2_28_x86_64.whl"])
    assert reject_reason(gil, PY313T) is not None


def test_local_label_decides_the_variant_wherever_found() -> None:
    names = [
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    ]
    pool = cands(names)
    assert [c.variant for c in pool] == ["cpu", None]
    cpu = variant_rule(resolve_backend("cpu", "--backend"))
    py311 = target_tags(cpython_linux(3, 11), "3.11.7")
    out = choose(Requirement("torch==2.13.0"), pool, py311, cpu, label="x")
    assert out.choice is not None
    assert out.choice.variant == "cpu"
    # pip's own view (pypi backend): the local label sorts higher, as pip does
    assert choose(Requirement("torch==2.13.0"), pool, py311, ANY, label="x").choice.variant == "cpu"  # type: ignore[union-attr]


def test_unlabelled_file_in_a_variant_dir_counts_as_that_variant() -> None:
    pool = cands(["torch-2.4.1-cp312-none-macosx_11_0_arm64.whl"], index=CPU, variant_dir="cpu")
    assert pool[0].variant == "cpu"


def requires(table: dict[str, list[str] | None]):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def lookup(cand: Candidate) -> Sequence[str] | None:
        calls.append(cand.dist.filename)
        return table[cand.dist.filename]

    lookup.calls = calls  # type: ignore[attr-defined]
    return lookup


TV = [
    "torchvision-0.20.0-cp310-cp310-manylinux1_x86_64.whl",
    "torchvision-0.20.1-cp310-cp310-manylinux1_x86_64.whl",
    "torchvision-0.21.0-cp310-cp310-manylinux1_x86_64.whl",
]


def test_companion_paired_by_metadata_table_version_read_first() -> None:
    torch = cands(["torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl"])[0]
    md = requires({TV[0]: ["torch==2.5.0"], TV[1]: ["torch==2.5.1"], TV[2]: ["torch==2.6.0"]})
    out = pair(
        Requirement("torchvision"),
        cands(TV, "torchvision"),
        PY310,
        torch,
        markers={},
        metadata=md,
        predicted=predicted("torchvision", torch.version),
        label="x",
    )
    assert out.choice is not None
    assert out.choice.version == Version("0.20.1")
    assert out.paired_by == "metadata (Requires-Dist: torch==2.5.1)"
    assert md.calls == [TV[1]]  # type: ignore[attr-defined]


def test_companion_metadata_overrides_a_wrong_table() -> None:
    torch = cands(["torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl"])[0]
    md = requires({TV[0]: ["torch==2.5.1"], TV[1]: ["torch==2.5.0"], TV[2]: ["torch==2.6.0"]})
    out = pair(
        Requirement("torchvision"),
        cands(TV, "torchvision"),
        PY310,
        torch,
        markers={},
        metadata=md,
        predicted=Version("0.20.1"),
        label="x",
    )
    assert out.choice is not None
    assert out.choice.version == Version("0.20.0")


def test_companion_of_another_variant_is_never_paired() -> None:
    torch = cands(["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"])[0]
    tv = cands(["torchvision-0.28.0-cp311-cp311-manylinux_2_28_x86_64.whl"], "torchvision")
    py311 = target_tags(cpython_linux(3, 11), "3.11.7")
    out = pair(
        Requirement("torchvision"),
        tv,
        py311,
        torch,
        markers={},
        metadata=requires({}),
        predicted=Version("0.28.0"),
        label="Python 3.11.7",
    )
    assert out.choice is None
    assert out.rejected[0].reason.startswith(
        "variant plain build (no local label), but torch is 2.13.0+cpu"
    )


def test_companion_falls_back_to_the_table_only_when_metadata_is_unreadable() -> None:
    torch = cands(["torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl"])[0]
    md = requires({TV[0]: None, TV[1]: None, TV[2]: None})
    out = pair(
        Requirement("torchvision"),
        cands(TV, "torchvision"),
        PY310,
        torch,
        markers={},
        metadata=md,
        predicted=Version("0.20.1"),
        label="x",
    )
    assert out.choice is not None
    assert out.choice.version == Version("0.20.1")
    assert out.paired_by == "table (metadata unreadable)"


def test_companion_marker_is_evaluated() -> None:
    torch = cands(["torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl"])[0]
    md = requires(
        {TV[1]: ['torch==2.5.0; python_version < "3.9"', 'torch==2.5.1; python_version >= "3.9"']}
    )
    out = pair(
        Requirement("torchvision==0.20.1"),
        cands(TV, "torchvision"),
        PY310,
        torch,
        markers={"python_version": "3.10"},
        metadata=md,
        predicted=Version("0.20.1"),
        label="x",
    )
    assert out.choice is not None


def test_predicted_companions() -> None:
    assert predicted("torchvision", Version("1.10.0")) == Version("0.11.1")
    assert predicted("torchaudio", Version("2.5.1+cu124")) == Version("2.5.1")
    assert predicted("torchaudio", Version("2.13.0")) == Version("2.11.0")
    assert predicted("torchvision", Version("1.0.0")) is None


def test_backend_names() -> None:
    assert parse_backend("rocm6.2.4") == "rocm6.2.4"
    assert parse_backend("XPU") == "xpu"
    for bad in ("cuda", "cu", "rocm", "gpu", "cu12.6"):
        with pytest.raises(UsageError):
            parse_backend(bad)
    assert requested_backend(None, {"TORCHUP_BACKEND": "cu126"}) == ("cu126", "TORCHUP_BACKEND")
    assert requested_backend("cpu", {"TORCHUP_BACKEND": "cu126"}) == ("cpu", "--backend")
    assert requested_backend(None, {}) == ("auto", "default")
    auto = resolve_backend("auto", "default")
    assert (auto.name, auto.variant) == ("cpu", "cpu")


def test_python_span() -> None:
    assert python_span(cands(TORCH_1_10)) == "cp36-cp39"


@given(st.lists(st.sampled_from(TORCH_1_10 + TORCH_1_11 + TORCH_2_15), min_size=1, unique=True))
def test_choice_always_fits_and_rejections_always_explain(names: list[str]) -> None:
    pool = cands(names)
    for target in (PY27, PY39, PY310, PY313T):
        out = choose(Requirement("torch"), pool, target, ANY, label="x")
        if out.choice is not None:
            assert reject_reason(out.choice, target) is None
            better = [
                c
                for c in pool
                if reject_reason(c, target) is None and c.version > out.choice.version
            ]
            assert not better
        else:
            assert all(reject_reason(c, target) is not None for c in pool)
            assert out.rejected


@given(
    st.sampled_from(TORCH_1_10 + TORCH_1_11 + TORCH_2_15 + ["torch-2.0.0.tar.gz"]),
    st.sampled_from([None, ">=3.11", "<3.0", "not a specifier"]),
    st.sampled_from([None, "", "bad build"]),
)
def test_fits_agrees_with_reject_reason(name: str, rp: str | None, yanked: str | None) -> None:
    (cand,) = cands([name], requires_python=rp, yanked=yanked)
    for target in (PY27, PY39, PY310, PY313T):
        assert fits(cand, target) == (reject_reason(cand, target) is None)
