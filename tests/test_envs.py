"""The all-or-nothing machinery of :mod:`torchup.envs.staging` on a real filesystem: an
interrupted snapshot, a run killed between the two renames of a commit, names that look
like glob patterns, and symlinked targets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_install import conda_env, existing_venv, listing  # noqa: F401 (a fixture)
from torchup.envs import staging as envs
from torchup.errors import UsageError


def test_an_interrupted_snapshot_leaves_site_packages_whole(
    conda_env: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = envs.resolve_target(
        venv=None, conda_env=conda_env, system=False, env={}, cwd=conda_env
    )
    site = next((conda_env / "lib").glob("python3.*/site-packages"))
    before = listing(site)
    real_link, calls = os.link, []

    def link_then_ctrl_c(src: str, dst: str) -> None:  # Ctrl-C midway through the copy
        calls.append(src)
        if len(calls) == 10:
            raise KeyboardInterrupt
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt), envs.Staging(target):
        pytest.fail("the snapshot was interrupted: the block never runs")
    monkeypatch.undo()
    assert listing(site) == before
    assert [p.name for p in site.parent.iterdir() if "torchup" in p.name] == []


def test_a_run_killed_between_the_renames_is_put_back(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    existing_venv(venv)
    before = listing(venv)
    # what a kill between `venv -> .v.torchup-old-*` and `staging -> venv` leaves
    old = tmp_path / ".v.torchup-old-1234abcd"
    os.replace(venv, old)
    (tmp_path / ".v.torchup-copy-1234abcd").mkdir()
    envs.clean_leftovers(venv)
    assert listing(venv) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_a_name_like_a_glob_clears_only_its_own_leftovers(tmp_path: Path) -> None:
    mine = tmp_path / ".venv[1].torchup-copy-00000000"
    theirs = tmp_path / ".venv1.torchup-copy-00000000"
    mine.mkdir()
    theirs.mkdir()
    assert envs.clean_leftovers(tmp_path / "venv[1]") == [mine]
    assert theirs.is_dir()


def test_a_symlinked_default_venv_names_the_venv_it_points_to(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "myvenv"
    existing_venv(real)
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(real)
    for how in ({"venv": None}, {"venv": ".venv"}):
        target = envs.resolve_target(**how, conda_env=None, system=False, env={}, cwd=project)
        assert target.path == real
        assert target.exists


def test_a_symlink_loop_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(UsageError, match="cannot be resolved"):
        envs.resolve_target(venv="a", conda_env=None, system=False, env={}, cwd=tmp_path)
