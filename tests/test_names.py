"""Near misses of PyTorch package names stop before anything is read or made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexserver import IndexServer
from test_plan import env, pyenv
from torchup.choose.names import FAMILY_NAMES, near_family_name, one_edit_apart

__all__ = ["env"]  # the module-scoped fixture, shared with test_plan

UNREACHABLE = "http://127.0.0.1:9/whl"


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("troch", "torch"),
        ("torhc", "torch"),
        ("torc", "torch"),
        ("torchh", "torch"),
        ("pytorch", "torch"),
        ("torchvison", "torchvision"),
        ("torch_vision", "torchvision"),
        ("Torch-Audio", "torchaudio"),
        ("torchaudioo", "torchaudio"),
        ("torchtxt", "torchtext"),
        ("tochdata", "torchdata"),
    ],
)
def test_near_misses_name_the_package_meant(typed: str, meant: str) -> None:
    assert near_family_name(typed) == meant


@pytest.mark.parametrize(
    "name", [*FAMILY_NAMES, "Torch", "torchx", "numpy", "torchmetrics", "torchao", "triton"]
)
def test_real_names_pass(name: str) -> None:
    assert near_family_name(name) is None


@given(st.sampled_from(FAMILY_NAMES), st.integers(0, 20), st.sampled_from("abcxyz"))
def test_every_single_insertion_is_caught(family: str, at: int, letter: str) -> None:
    typed = family[: at % (len(family) + 1)] + letter + family[at % (len(family) + 1) :]
    assert one_edit_apart(typed, family)
    if typed != "torchx":
        assert near_family_name(typed) is not None


def run(
    server: IndexServer, env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "torchup", *args, "--python", pyenv("3.11")]
    argv += ["--index-url", server.pypi_url, "--torch-index-url", UNREACHABLE]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)


def test_plan_troch_stops_with_did_you_mean(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    index_server.reset_log()
    proc = run(index_server, env, tmp_path, "plan", "troch")
    assert proc.returncode == 2
    assert "did you mean torch?" in proc.stderr
    assert "--allow-name troch" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert index_server.requests == []  # refused before any page was read


def test_install_near_miss_creates_nothing_and_json_is_one_document(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    venv = tmp_path / "v"
    proc = run(index_server, env, tmp_path, "install", "torchvison", "--venv", str(venv), "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert "did you mean torchvision?" in doc["error"]["message"]
    assert not venv.exists()


def test_allow_name_plans_the_name_itself(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(index_server, env, tmp_path, "plan", "troch", "--allow-name", "troch", "--json")
    assert "did you mean" not in proc.stderr
    doc = json.loads(proc.stdout)
    # past the name check: planned from the sources like any other name (the captured
    # pages have no troch, so it is a problem of the plan, not a usage error)
    assert proc.returncode == 1, proc.stderr
    assert doc["requirements"] == ["troch"]
    assert doc["problems"][0]["requirement"] == "troch"
