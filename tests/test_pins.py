"""Exact pins: a plan's file is the only one its pin admits, checked with real pip and uv.

A find-links folder holding both ``demo 1.0`` (the planned file, as on PyPI) and
``demo 1.0+cpu`` (another build of the same release) is the case PEP 440 makes subtle:
``demo==1.0`` ignores the candidate's local label and both installers then prefer the
labelled build, which sorts higher.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from indexserver import make_wheel
from torchup.choose.plan import PlannedPackage, exact_pin
from torchup.envs.installers import InstallerChoice, find_uv, install_commands
from torchup.index.sources import Source, Sources


def _wheels(folder: Path) -> dict[str, str]:
    folder.mkdir()
    digests = {}
    for version in ("1.0", "1.0+cpu"):
        name = f"demo-{version}-py3-none-any.whl"
        meta = f"Metadata-Version: 2.1\nName: demo\nVersion: {version}\n".encode()
        data = make_wheel(name, meta)
        (folder / name).write_bytes(data)
        digests[version] = hashlib.sha256(data).hexdigest()
    return digests


def _installed(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('demo'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    return tmp_path / "v" / "bin" / "python"


def test_a_plain_pin_admits_the_local_build_but_the_exact_pin_does_not(
    tmp_path: Path, venv: Path
) -> None:
    """Why exact_pin exists: the same folder, uv given `==` then the exact pin."""
    uv = find_uv({})
    assert uv is not None
    _wheels(tmp_path / "w")
    base = [
        uv,
        "pip",
        "install",
        "-q",
        "--python",
        str(venv),
        "--no-index",
        "-f",
        str(tmp_path / "w"),
        "--cache-dir",
        str(tmp_path / "uv-cache"),
    ]
    subprocess.run([*base, "demo==1.0"], check=True, capture_output=True)
    assert _installed(venv) == "1.0+cpu"
    subprocess.run(
        [*base, "--reinstall", exact_pin("demo", "1.0")], check=True, capture_output=True
    )
    assert _installed(venv) == "1.0"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_install_commands_install_the_planned_build_only(
    installer: str, tmp_path: Path, venv: Path
) -> None:
    digests = _wheels(tmp_path / "w")
    if installer == "pip":  # the target's own pip, as torchup runs it
        subprocess.run([str(venv), "-m", "ensurepip"], check=True, capture_output=True)
    folder = Source(url=str(tmp_path / "w"), origin="--find-links")
    sources = Sources(
        index_url=None, extra_index_urls=(), find_links=(folder,), trusted_hosts=(),
        no_index=True, torch_index_url=Source(url="https://t/whl", origin="default"),
    )  # fmt: skip
    planned = PlannedPackage(
        name="demo", version="1.0", local=None, variant=None, filename="demo-1.0-py3-none-any.whl",
        url=str(tmp_path / "w" / "demo-1.0-py3-none-any.whl"), sha256=digests["1.0"],
        index=str(tmp_path / "w"),
    )  # fmt: skip
    choice = InstallerChoice(name=installer, uv=find_uv({}), source="test")  # type: ignore[arg-type]
    hashes = tmp_path / "pins.txt"
    first, second, text = install_commands(
        choice, str(venv), [planned], sources=sources, variant_index=None, hashes_file=hashes
    )
    assert text.startswith("demo===1.0 --hash=sha256:")
    hashes.write_text(text)
    caches = {
        "PIP_CONFIG_FILE": "/dev/null",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
    }
    for cmd in (first, second):
        if cmd is not None:
            subprocess.run(cmd, check=True, capture_output=True, env=caches)
    assert _installed(venv) == "1.0"
