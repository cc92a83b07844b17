"""``torchup matrix``: the captured PyPI pages and the PyTorch-layout index served on
127.0.0.1, the real pyenv interpreters, and ``plan`` as the reference: the newest torch
of each Python's column is what ``plan`` chooses for that Python."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from indexserver import IndexServer
from ptyrun import on_a_pty
from test_plan import cli, env, local_indexes, pyenv, run_plan
from torchup.choose.matrix import read_matrix
from torchup.errors import UsageError
from torchup.render.matrix import render_matrix

__all__ = ["env"]  # the fixture, from test_plan

PYTHONS = ("2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def matrix_doc(server: IndexServer, env: dict[str, str], *args: str) -> dict:
    done = cli(env, "matrix", *args, *local_indexes(server), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def doc(index_server: IndexServer, env: dict[str, str]) -> dict:
    return matrix_doc(index_server, env, "--python", ",".join(PYTHONS))


def newest(doc: dict, column: str, variant: str) -> str | None:
    for row in doc["rows"]:
        if variant in row["cells"].get(column, {}):
            return row["torch"]
    return None


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("backend", ["pypi", "cpu"])
def test_the_newest_torch_per_python_is_what_plan_chooses(
    index_server: IndexServer, env: dict[str, str], doc: dict, python: str, backend: str
) -> None:
    result = run_plan(index_server, env, "torch", python=pyenv(python), backend=backend)
    expected = Version(result.packages[0].version).public if result.ok else None
    assert newest(doc, python, backend) == expected


def test_the_json_lists_every_file_with_url_size_and_hash(doc: dict) -> None:
    assert doc["schema"] == 1
    # the document the README's matrix section describes, key for key
    assert set(doc) == {"schema", "platform", "accelerator", "pythons", "variants", "rows",
                        "warnings"}  # fmt: skip
    assert {k for r in doc["rows"] for k in r} == {"torch", "minor", "companions",
                                                   "paired_by", "runs_here", "cells"}  # fmt: skip
    assert [p["name"] for p in doc["pythons"]] == list(PYTHONS)
    assert all(p["here"] for p in doc["pythons"]), "each is a pyenv Python of this machine"
    versions = [Version(r["torch"]) for r in doc["rows"]]
    assert versions == sorted(versions, reverse=True)
    files = [f for r in doc["rows"] for c in r["cells"].values() for fs in c.values() for f in fs]
    assert files
    for f in files:
        assert set(f) == {"filename", "url", "size", "sha256"}
        assert f["url"].startswith(("http://127.0.0.1:", "http://localhost:"))
        assert len(f["sha256"]) == 64
    # PyPI's JSON pages give each file's size; the PyTorch index's HTML does not
    assert all(f["size"] > 0 for f in files if "/files/pypi/" in f["url"])
    for column, cell in next(r for r in doc["rows"] if r["torch"] == "2.5.1")["cells"].items():
        for variant, fs in cell.items():
            tag = "cp" + column.replace(".", "")
            assert all(f"-{tag}-" in f["filename"] for f in fs), (variant, fs)
    row = next(r for r in doc["rows"] if r["torch"] == "2.5.1")
    assert row["companions"] == {"torchvision": "0.20.1", "torchaudio": "2.5.1"}
    # paired as plan pairs them: the table's release, confirmed by its metadata's torch pin
    assert row["paired_by"] == {
        "torchvision": "metadata (Requires-Dist: torch==2.5.1)",
        "torchaudio": "metadata (Requires-Dist: torch==2.5.1)",
    }
    assert "cu124" in row["cells"]["3.12"]
    assert "3.13" not in next(r for r in doc["rows"] if r["torch"] == "2.4.1")["cells"]


def test_filters_by_release_build_and_python(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    doc = matrix_doc(index_server, env, "torch>=2.0,<2.9", "--backend", "cpu",
                     "--python", "3.12,3.13t")  # fmt: skip
    assert [p["name"] for p in doc["pythons"]] == ["3.12", "3.13t"]
    assert doc["rows"]
    assert all(Version("2.0") <= Version(r["torch"]) < Version("2.9") for r in doc["rows"])
    assert {v for r in doc["rows"] for c in r["cells"].values() for v in c} == {"cpu"}
    free_threaded = [r["torch"] for r in doc["rows"] if "3.13t" in r["cells"]]
    assert free_threaded
    assert all(Version(v) >= Version("2.6") for v in free_threaded)


def test_another_platforms_matrix_uses_nothing_of_this_machine(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    doc = matrix_doc(index_server, env, "--platform", "macosx_14_0_arm64", "--python", "3.12")
    assert doc["platform"] == "macosx_14_0_arm64"
    assert doc["pythons"] == [{"name": "3.12", "here": None}]
    files = [f for r in doc["rows"] for c in r["cells"].values() for fs in c.values() for f in fs]
    assert files
    assert all("macosx" in f["filename"] for f in files)


def test_the_terminal_table_fits_100_columns_and_colours_only_a_terminal(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    plain = cli(env, "matrix", *local_indexes(index_server))
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    assert "\x1b[" not in plain.stdout
    assert any(line.startswith("2.14.1 (+1) ") for line in lines)
    assert not any(line.startswith("2.14.0 ") for line in lines), "folded under 2.14.1"
    every = cli(env, "matrix", "--all", *local_indexes(index_server))
    assert any(line.startswith("2.14.0 ") for line in every.stdout.splitlines())
    assert "\x1b[32m" in on_a_terminal(env, index_server)
    assert "\x1b[" not in on_a_terminal({**env, "NO_COLOR": "1"}, index_server)


def on_a_terminal(env: dict[str, str], server: IndexServer) -> str:
    """The command's stdout when it is a terminal (a pty), on a machine with no GPU."""
    argv = [sys.executable, "-m", "torchup", "matrix", *local_indexes(server)]
    proc, seen = on_a_pty(argv, env={**env, "TORCHUP_GPU_ARCHS": "none"})
    assert proc.returncode == 0, proc.stderr
    return seen


def test_a_second_run_reads_the_cache(index_server: IndexServer, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull,
           "TORCHUP_CACHE_DIR": str(tmp_path / "cache"), "TORCHUP_GPU_ARCHS": "none"}  # fmt: skip
    kwargs = {"torch_index_url": index_server.torch_url, "index_url": index_server.pypi_url}
    first = read_matrix(pythons=["3.12"], env=env, **kwargs)
    before = len(index_server.requests)
    again = read_matrix(pythons=["3.12"], env=env, **kwargs)
    assert len(index_server.requests) == before
    assert again.to_dict() == first.to_dict()
    assert "3.12" in render_matrix(again)


def test_bad_input_is_a_clear_usage_error(index_server: IndexServer, env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="matrix rows are torch releases"):
        read_matrix(["torchvision>=0.20"], env=env)
    done = cli(env, "matrix", "--backend", "cu999", *local_indexes(index_server))
    assert done.returncode == 2
    assert "no such build on the PyTorch index: cu999" in done.stderr
    assert "Traceback" not in done.stderr
