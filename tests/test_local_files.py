"""A PyTorch-layout index on this disk (file://): torchup checks each family file's
sha256 itself, while uv installs the exact file into the staged venv; a file whose bytes
are not the ones listed is never run or committed, with either installer.

(uv verifies a hash far slower than hashlib: half a second for the real 190 MB torch
wheel here, most of a cold install's time over bare uv; docs/benchmarks-install.md.)
Real venvs, real uv and pip, a small generated torch wheel (installs; not torch).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import localindex
from indexserver import make_wheel
from test_install import local_env, torchup
from test_plan import pyenv

WHEEL = "torch-2.8.0+cpu-py3-none-any.whl"


def disk_index(root: Path, *, listed_sha256: str | None = None) -> str:
    """``root/whl/cpu/torch/index.html`` listing a generated torch wheel kept beside it."""
    data = make_wheel(WHEEL, b"Metadata-Version: 2.1\nName: torch\nVersion: 2.8.0+cpu\n")
    files = root / "files"
    files.mkdir(parents=True)
    (files / WHEEL).write_bytes(data)
    sha = listed_sha256 or hashlib.sha256(data).hexdigest()
    page = root / "whl" / "cpu" / "torch"
    page.mkdir(parents=True)
    href = (files / WHEEL).as_uri().replace("+", "%2B")
    (page / "index.html").write_text(f'<a href="{href}#sha256={sha}">{WHEEL}</a>\n')
    return (root / "whl").as_uri()


def install(tmp_path: Path, index: str, *extra: str) -> tuple[int, str, Path]:
    venv = tmp_path / "work" / "v"
    venv.parent.mkdir(exist_ok=True)
    proc = torchup(local_env(tmp_path), venv.parent, "install", "torch==2.8.0", "--python",
                   pyenv("3.11"), "--backend", "cpu", "--torch-index-url", index, "--venv",
                   str(venv), "--no-verify", *extra)  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr, venv


def test_uv_is_given_the_checked_file_itself(tmp_path: Path) -> None:
    index = disk_index(tmp_path / "idx")
    rc, out, venv = install(tmp_path, index, "--installer", "uv", "--dry-run", "--json")
    assert rc == 0, out
    text = json.loads(out)["requirements_file"]["text"]
    assert text == f"torch @ {(tmp_path / 'idx' / 'files' / WHEEL).as_uri()}\n"
    rc, out, venv = install(tmp_path, index, "--installer", "uv")
    assert rc == 0, out
    assert [p.name for p in venv.glob("lib/python3.11/site-packages/torch-*.dist-info")] == [
        "torch-2.8.0+cpu.dist-info"
    ]


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_bytes_that_are_not_the_listed_ones_stop_the_install(
    tmp_path: Path, installer: str
) -> None:
    index = disk_index(tmp_path / "idx", listed_sha256="ab" * 32)
    rc, out, venv = install(tmp_path, index, "--installer", installer)
    assert rc == 1, out
    assert "Traceback" not in out
    if installer == "uv":  # checked by torchup while uv installs into the staged venv
        assert "does not match the index's hash: sha256 " in out
        assert "everything was undone" in out
        assert f"the index lists {'ab' * 32}" in out
    else:  # pip's own --require-hashes check, in the staged venv
        assert "hash" in out.lower()
    assert not venv.exists()
    assert sorted(p.name for p in venv.parent.iterdir()) == []


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_an_index_file_whose_hash_is_not_the_listed_one_is_named_as_such(
    tmp_path: Path, installer: str
) -> None:
    """Over HTTP the installer checks the hash itself; torchup's summary of its failure
    keeps the reason (uv's ``cause: Hash mismatch``, pip's ``DO NOT MATCH THE HASHES``)
    and the expected hash, and leaves pip's warnings out."""
    meta = "Metadata-Version: 2.1\nName: torch\nVersion: 2.8.0+cpu\n"
    data = make_wheel(WHEEL, meta.encode())
    listed = "ab" * 32
    localindex.publish(tmp_path / "site", {"cpu": [localindex.File(WHEEL, data, meta, listed)]})
    with localindex.serve(tmp_path / "site") as served:
        rc, out, venv = install(tmp_path, served.url, "--installer", installer)
    assert rc == 1, out
    (summary,) = [ln for ln in out.splitlines() if " exited with status 1: " in ln]
    assert "hash" in summary.lower()
    assert ("Hash mismatch" if installer == "uv" else "DO NOT MATCH THE HASHES") in summary
    assert listed in summary
    assert "WARNING:" not in summary
    assert "nothing was changed" in summary
    assert not venv.exists()
