"""Long venv names: every name the file system allows works, a longer one is refused
up front with the limit named.

torchup's siblings of a target (``.NAME.torchup-new-XXXXXXXX`` staging, the
``.NAME.torchup.lock`` lock) are up to 25 bytes longer than NAME, so a long name once failed
deep inside with "File name too long". Real venvs, real uv, the index server's
stand-in torch (installs, is not torch: ``--no-verify``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from indexserver import IndexServer
from test_install import local_env, torchup
from test_install_safety import installed, stand_in


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return local_env(tmp_path)


@pytest.mark.parametrize("length", [234, 255])
def test_a_name_up_to_the_limit_installs(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer, length: int
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    venv = work / ("v" * length)
    proc = torchup(env, work, *stand_in(venv, index_server), "--no-verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert installed(venv) == ["torch-2.8.0+cpu.dist-info"]
    assert sorted(p.name for p in work.iterdir()) == [venv.name]  # no staging, no lock left
    ran = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert ran.stdout.strip() == str(venv)
    # and again into the existing venv (staged as a hard-linked copy beside it)
    proc = torchup(env, work, *stand_in(venv, index_server), "--no-verify", "--reinstall")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in work.iterdir()) == [venv.name]


def test_a_name_over_the_limit_is_refused_up_front(
    tmp_path: Path, env: dict[str, str], index_server: IndexServer
) -> None:
    venv = tmp_path / "w" / ("v" * 256)
    proc = torchup(env, tmp_path, *stand_in(venv, index_server), "--no-verify")
    assert proc.returncode == 2
    assert "its name is 256 bytes long, and the file system allows at most 255 (NAME_MAX)" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()
