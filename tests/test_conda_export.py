"""``torchup.export.conda``: an environment.yml for a plan or a lock, read with real
YAML parsers (ruamel.yaml, which conda itself reads with, and PyYAML), its pip section
installed with real pip the way ``conda env create`` runs it, into fresh venvs, from the
local sites of tests/test_lock.py on 127.0.0.1 and, for the real torch, pip's find-links
folder and the local mirror. Offline throughout."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import realtorch
import torchup
from test_lock import env, make_plan, needs_uv, site
from test_lock import uv as lock_uv
from test_plan import pyenv
from torchup.envs.installers import InstallerChoice, install_commands
from torchup.errors import UsageError
from torchup.export.conda import (
    CHANNELS,
    CondaExportError,
    conda_environment,
    conda_environment_from_lock,
    yaml_scalar,
)
from torchup.export.lock import lock
from torchup.export.pylock import Lock, LockedFile, LockedPackage, read_lock

__all__ = ["env", "site"]  # the fixtures, imported for pytest

Site = tuple[Path, str, str]
#: (name, argv, extra environment) of each YAML reader
Parsers = list[tuple[str, list[str], dict[str, str]]]
FAMILY = ("torch==2.8.0", "torchvision", "torchaudio")
#: conda/env/env.py: REQUIRED_KEYS ("dependencies") and OPTIONAL_KEYS
CONDA_KEYS = {"name", "channels", "dependencies", "prefix", "variables"}

# -- the readers: conda's own YAML library and PyYAML --------------------------------

_LOAD = """
import json, sys
text = sys.stdin.read()
if sys.argv[1] == "ruamel":
    import ruamel.yaml
    data = ruamel.yaml.YAML(typ="rt").load(text)  # conda/common/serialize/yaml.py
else:
    import yaml
    data = yaml.safe_load(text)
print(json.dumps(data, default=repr))
"""


@pytest.fixture(scope="module")
def parsers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Parsers:
    """``(name, argv, env)`` of each YAML reader found on this machine: ruamel.yaml
    unpacked from the local mirror's wheel, PyYAML in a system or pyenv Python."""
    found: Parsers = []
    wheels = sorted(realtorch.LOCAL_FILES.glob("ruamel_yaml-*-py3-none-any.whl"))
    if wheels:
        where = tmp_path_factory.mktemp("ruamel")
        with zipfile.ZipFile(wheels[-1]) as whl:
            whl.extractall(where)
        found.append(
            ("ruamel", [sys.executable, "-c", _LOAD, "ruamel"], {"PYTHONPATH": str(where)})
        )
    for python in ("/usr/bin/python3", str(realtorch.PYTHON311)):
        probe = [python, "-c", "import yaml"]
        if (
            Path(python).exists()
            and subprocess.run(probe, capture_output=True, check=False).returncode == 0
        ):
            found.append(("pyyaml", [python, "-c", _LOAD, "pyyaml"], {}))
            break
    return found


def parse_all(parsers: Parsers, text: str) -> dict[str, Any]:
    """``text`` as each reader reads it (the test is skipped with none on this machine)."""
    if not parsers:
        pytest.skip("needs ruamel.yaml or PyYAML")
    out = {}
    for name, argv, extra in parsers:
        proc = subprocess.run(
            argv, input=text, capture_output=True, text=True, check=False,
            env={"PATH": os.environ["PATH"], **extra},
        )  # fmt: skip
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        out[name] = json.loads(proc.stdout)
    return out


def pip_section(parsers: Parsers, text: str) -> list[str]:
    """The ``pip:`` list as conda reads it (as written when no reader is here)."""
    if not parsers:
        return [
            line.removeprefix("      - ") for line in text.splitlines() if line[:8] == "      - "
        ]
    doc = next(iter(parse_all(parsers, text).values()))
    [pip] = [d["pip"] for d in doc["dependencies"] if isinstance(d, dict)]
    return list(pip)


# -- installing the pip section as conda does ----------------------------------------


def fresh_venv(root: Path, python: str) -> Path:
    venv = root / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    return venv / "bin" / "python"


def pip_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def conda_pip_install(
    python: Path, specs: Sequence[str], workdir: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """What conda's pip installer does with the ``pip:`` list (conda/env/installers/
    pip.py, ``_pip_install_via_requirements``): the specs joined by newlines into a
    ``condaenv.*.requirements.txt`` beside the environment file, then ``PREFIX/bin/python
    -m pip install -U -r FILE --exists-action=b`` from that folder (conda/env/pip_util.py
    ``pip_subprocess``), the file removed afterwards."""
    with tempfile.NamedTemporaryFile(
        mode="w", prefix="condaenv.", suffix=".requirements.txt", dir=workdir, delete=False
    ) as requirements:
        requirements.write("\n".join(specs))
    try:
        cmd = [str(python), "-m", "pip", "install", "-U", "-r", requirements.name,
               "--exists-action=b"]  # fmt: skip
        return subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False
        )
    finally:
        os.remove(requirements.name)


def frozen(python: Path, env: dict[str, str]) -> set[str]:
    out = subprocess.run([str(python), "-m", "pip", "freeze"], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return set(out.split())


def written(tmp_path: Path, text: str) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    path = project / "environment.yml"
    path.write_text(text)
    return project


# -- the file, field by field ----------------------------------------------------------


def test_the_file_is_what_conda_env_create_reads_field_by_field(
    site: Site, env: dict[str, str], parsers: Parsers
) -> None:
    plan = make_plan(site, env)
    assert plan.ok, plan.problems
    export = conda_environment(plan, name="torch-cpu")
    assert export.warnings == ()  # every source is a flag, none a folder; torch 2.8 > 2.5
    for reader, doc in parse_all(parsers, export.text).items():
        assert set(doc) <= CONDA_KEYS, reader
        assert "dependencies" in doc
        assert doc["name"] == "torch-cpu"
        assert doc["channels"] == ["conda-forge", "nodefaults"] == list(CHANNELS)
        deps = doc["dependencies"]
        # strings are conda match specs; the one mapping is pip's, after pip itself
        # (conda/env/env.py: validate_keys nags and inserts pip when it is missing)
        assert deps[:2] == ["python=3.11", "pip"], reader
        assert deps[2:] == [{"pip": list(export.pip_lines)}], reader
        assert all(isinstance(line, str) for line in deps[2]["pip"])
    _root, torch_url, simple = site
    assert export.pip_lines == (
        f"--index-url {torch_url}/cpu",
        f"--extra-index-url {simple}",
        "torch==2.8.0+cpu",
        "torchvision==0.23.0+cpu",
        "torchaudio==2.8.0+cpu",
    )
    assert "pytorch/pytorch#138506" in export.text
    assert export.text.startswith("# conda environment file written by torchup")
    assert export.to_dict() == {
        "schema": 1, "name": "torch-cpu", "python": "3.11", "free_threaded": False,
        "channels": ["conda-forge", "nodefaults"], "dependencies": ["python=3.11", "pip"],
        "pip": list(export.pip_lines), "summary": export.summary, "warnings": [],
    }  # fmt: skip
    assert export.summary == (
        "Python 3.11 and pip from conda-forge; with pip: torch==2.8.0+cpu, "
        f"torchvision==0.23.0+cpu, torchaudio==2.8.0+cpu from the PyTorch index ({torch_url}/cpu)"
    )
    unnamed = conda_environment(plan)
    assert "name:" not in unnamed.text
    assert "-n NAME" in unnamed.text


TRICKY = [
    "3.10", "3", "yes", "No", "ON", "null", "~", "y", "a #b", "a#b", "k: v", "ends:", "- x",
    "-x", "---", "...", "-", "[x]", "{x}", "*a", "&a", "!t", "%x", "@x", "`x", "'q'", '"dq"',
    "?x", "? x", "|", ">", "=", "<<", " lead", "trail ", "tab\there", "nl\nx", "\x7f",
    "\x85", "\u2028", "\ufeff", "é", "\U0001f600", "2024-01-01", "0x1F", "0o17", "1e5",
    "190:20:30", ".inf", "-.INF", ".NaN", "", "back\\slash",
    "--index-url http://127.0.0.1:8080/simple#frag", "--find-links '/opt/my wheels'",
    "torch==2.13.0+cpu --hash=sha256:" + "ab" * 32,
    'pywin32==306 ; sys_platform == "win32" --hash=sha256:00',
]  # fmt: skip


def test_every_string_reads_back_as_itself_with_both_yaml_readers(
    parsers: Parsers,
) -> None:
    text = "items:\n" + "".join(f"  - {yaml_scalar(s)}\n" for s in TRICKY)
    for reader, doc in parse_all(parsers, text).items():
        assert doc == {"items": TRICKY}, reader
    assert yaml_scalar("torch==2.8.0+cpu") == "torch==2.8.0+cpu"  # readable where it can be
    assert (
        yaml_scalar("--extra-index-url http://h:1/simple") == "--extra-index-url http://h:1/simple"
    )


# -- one source of truth ----------------------------------------------------------------


def fake_conda_env(tmp_path: Path) -> Path:
    """A conda env as conda lays it out (a whole Python in the prefix, ``conda-meta/``):
    CPython 3.11 hard-linked from pyenv; only a dry run uses it, which writes nothing."""
    source = Path(pyenv("3.11")).parent.parent
    prefix = tmp_path / "miniconda3" / "envs" / "ml"
    prefix.parent.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(source), str(prefix)], check=True)
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "history").write_text("==> 2026-11-22 00:00:00 <==\n")
    return prefix


def split(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """(pins, option arguments) of pip-section lines, options as pip tokenises them."""
    pins = [line for line in lines if not line.startswith("-")]
    options = [tok for line in lines if line.startswith("-") for tok in shlex.split(line)]
    return pins, options


def test_the_pip_lines_are_what_install_conda_env_runs(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    _root, torch_url, simple = site
    prefix = fake_conda_env(tmp_path)
    result = torchup.install(
        list(FAMILY), conda_env=str(prefix), backend="cpu", torch_index_url=torch_url,
        index_url=simple, dry_run=True, env=env, cwd=tmp_path, echo=False,
    )  # fmt: skip
    assert result.ok, result.message
    assert result.target.kind == "conda"
    assert result.installer.name == "pip"
    first, second = result.commands  # family --no-deps --require-hashes; then with deps
    export = conda_environment(result.plan)
    pins, options = split(export.pip_lines)
    python = str(prefix / "bin" / "python")
    assert list(second) == [python, "-m", "pip", "install", *pins, *options]
    assert list(first[first.index("-r") + 2 :]) == options
    assert list(result.plan.commands[0][4:]) == [*pins, *options]
    # and install_commands itself, for the plan made without an install around it
    plan = make_plan(site, env)
    choice = InstallerChoice(name="pip", uv=None, source="test")
    _one, two, _text = install_commands(
        choice, "py", plan.packages, sources=plan.sources,
        variant_index=plan.variant_index, hashes_file=tmp_path / "h.txt",
    )  # fmt: skip
    assert two is not None
    assert list(two[4:]) == [*split(conda_environment(plan).pip_lines)[0], *options]
    assert conda_environment(plan).pip_lines == export.pip_lines


def test_credentials_are_kept_out_of_the_file_and_given_to_the_pip_torchup_runs(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    """The file is kept and shared: its URLs carry no user-info at all (pip given
    ``me:****@`` would send the stars; without it, pip asks its keyring or netrc). The
    pip torchup runs gets the real URL; what is shown of that command, a redacted one."""
    _root, torch_url, simple = site
    secret_torch = torch_url.replace("http://", "http://me:s3cret@")
    secret_simple = simple.replace("http://", "http://me:t0ken@")
    plan = torchup.plan(list(FAMILY), python=pyenv("3.11"), backend="cpu",
                        torch_index_url=secret_torch, index_url=secret_simple, env=env)  # fmt: skip
    assert plan.ok, plan.problems
    export = conda_environment(plan)
    for said in (export.text, export.summary, *export.warnings):  # shown: redacted
        assert "s3cret" not in said
        assert "t0ken" not in said
    assert "me:" not in export.text  # written: no user-info at all
    assert "me@" not in export.text
    assert f"--index-url {torch_url}/cpu" in export.text
    assert f"--extra-index-url {simple}" in export.text
    shown = " ".join(plan.commands[0])
    assert "me:****@" in shown
    assert "s3cret" not in shown
    choice = InstallerChoice(name="pip", uv=None, source="test")
    _one, run, _text = install_commands(
        choice, "py", plan.packages, sources=plan.sources,
        variant_index=plan.variant_index, hashes_file=tmp_path / "h.txt",
    )  # fmt: skip
    assert run is not None
    assert run[run.index("--index-url") + 1] == f"{secret_torch}/cpu"
    assert run[run.index("--extra-index-url") + 1] == secret_simple


def test_extras_asked_for_are_in_the_pins_as_install_gives_them(
    site: Site, env: dict[str, str]
) -> None:
    plan = make_plan(site, env, "torch[opt-einsum]==2.8.0")
    export = conda_environment(plan)
    assert "torch[opt-einsum]==2.8.0+cpu" in export.pip_lines
    assert "torch[opt-einsum]==2.8.0+cpu" in plan.commands[0]


# -- installing the pip section ---------------------------------------------------------


def test_the_pip_section_installs_with_pip_as_conda_runs_it(
    tmp_path: Path,
    site: Site,
    env: dict[str, str],
    parsers: Parsers,
) -> None:
    export = conda_environment(make_plan(site, env), name="ml")
    project = written(tmp_path, export.text)
    python = fresh_venv(tmp_path, pyenv("3.11"))
    penv = pip_env(tmp_path)
    proc = conda_pip_install(python, pip_section(parsers, export.text), project, penv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {
        "torch==2.8.0+cpu",
        "torchvision==0.23.0+cpu",
        "torchaudio==2.8.0+cpu",
        "sympy==1.13.3",
        "mpmath==1.3.0",
        "filelock==3.16.1",
    } <= frozen(python, penv)
    assert sorted(p.name for p in project.iterdir()) == ["environment.yml"]  # temp file gone


@needs_uv
def test_a_locks_file_pins_and_hashes_every_package_and_installs(
    tmp_path: Path,
    site: Site,
    env: dict[str, str],
    parsers: Parsers,
) -> None:
    plan = make_plan(site, env)
    path = tmp_path / "pylock.toml"
    lock(plan, output=path, uv=lock_uv(), env=env)
    locked = read_lock(path)
    export = conda_environment_from_lock(locked, name="ml")
    pins = [line for line in export.pip_lines if not line.startswith("-")]
    assert len(pins) == len(locked.packages) == 9
    assert all(" --hash=sha256:" in line and "\\" not in line for line in pins)
    assert f"torch==2.8.0+cpu --hash=sha256:{plan.packages[0].sha256}" in pins
    assert export.pip_lines[:2] == (f"--index-url {site[1]}/cpu", f"--extra-index-url {site[2]}")
    assert export.summary.endswith("with pip, hash-checked: 9 packages (torch 2.8.0+cpu)")
    assert f"from {path}, every package pinned by sha256" in export.text
    for reader, doc in parse_all(parsers, export.text).items():
        assert doc["dependencies"] == ["python=3.11", "pip", {"pip": list(export.pip_lines)}], (
            reader
        )
    python = fresh_venv(tmp_path, pyenv("3.11"))
    penv = pip_env(tmp_path)
    specs = pip_section(parsers, export.text)
    proc = conda_pip_install(python, specs, written(tmp_path, export.text), penv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {f"{p.name}=={p.version}" for p in locked.packages} <= {
        line.replace("_", "-").lower() for line in frozen(python, penv)
    }


@pytest.mark.skipif(not realtorch.available(), reason="needs the CPU torch wheel and 3.11.7")
def test_the_real_torch_from_the_file_installs_with_pip_and_passes_verify(
    tmp_path: Path, parsers: Parsers
) -> None:
    env = realtorch.quiet_env()
    env |= {"PIP_CONFIG_FILE": os.devnull, "TORCHUP_CACHE_DIR": str(tmp_path / "cache")}
    plan = torchup.plan(
        ["torch==2.13.0"], python=str(realtorch.PYTHON311), backend="pypi",
        index_url=realtorch.LOCAL_INDEX.as_uri(), find_links=[str(realtorch.WHEELS)], env=env,
    )  # fmt: skip
    assert plan.ok, plan.problems
    export = conda_environment(plan, name="torch")
    assert export.pip_lines == (
        f"--index-url {realtorch.LOCAL_INDEX.as_uri()}",
        f"--find-links {realtorch.WHEELS}",
        "torch==2.13.0+cpu",
    )
    assert len(export.warnings) == 2  # both sources are folders on this machine
    assert all("is a folder on this machine" in w for w in export.warnings)
    python = fresh_venv(tmp_path, str(realtorch.PYTHON311))
    penv = pip_env(tmp_path)
    specs = pip_section(parsers, export.text)
    proc = conda_pip_install(python, specs, written(tmp_path, export.text), penv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = torchup.verify(str(python), env=realtorch.quiet_env())
    assert report.ok, report.to_dict()


# -- what does not fit --------------------------------------------------------------


def test_a_plan_that_does_not_fit_is_a_clear_error(site: Site, env: dict[str, str]) -> None:
    plan = make_plan(site, env, "torch==9.9")
    assert not plan.ok
    with pytest.raises(CondaExportError, match="the plan has problems, so there is no environment"):
        conda_environment(plan)


def test_another_implementation_and_a_bad_name_are_refused(site: Site, env: dict[str, str]) -> None:
    plan = make_plan(site, env, "torch==2.8.0")
    pypy = replace(plan, python=replace(plan.python, implementation="pypy"))
    with pytest.raises(CondaExportError, match="conda-forge's CPython, and the plan is for pypy"):
        conda_environment(pypy)
    for bad in ("my env", "a/b", "c:d", "e#f", ""):
        with pytest.raises(UsageError, match="cannot name a conda env"):
            conda_environment(plan, name=bad)


def test_free_threaded_asks_conda_forge_for_python_freethreading(
    site: Site, env: dict[str, str], parsers: Parsers
) -> None:
    plan = make_plan(site, env, "torch==2.8.0")
    ft = replace(plan, python=replace(plan.python, version="3.13.1", free_threaded=True))
    export = conda_environment(ft)
    assert export.dependencies == ("python=3.13", "python-freethreading=3.13", "pip")
    assert export.summary.startswith("Python 3.13 (free-threaded) and pip from conda-forge")
    for reader, doc in parse_all(parsers, export.text).items():
        assert doc["dependencies"][:3] == ["python=3.13", "python-freethreading=3.13", "pip"], (
            reader
        )


def test_a_torch_the_pytorch_channel_also_had_says_so(site: Site, env: dict[str, str]) -> None:
    plan = make_plan(site, env, "torch==2.8.0")
    older = replace(plan, packages=tuple(replace(p, version="2.5.1+cpu") for p in plan.packages))
    [warning] = conda_environment(older).warnings
    assert warning.startswith("torch 2.5.1+cpu was also on the pytorch conda channel")
    assert "pytorch/pytorch#138506" in warning
    assert conda_environment(plan).warnings == ()


def test_sources_from_pip_config_are_named_as_not_written(
    tmp_path: Path, site: Site, env: dict[str, str]
) -> None:
    _root, torch_url, simple = site
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nextra-index-url = {simple}\n")
    plan = torchup.plan(
        ["torch==2.8.0"], python=pyenv("3.11"), backend="cpu", torch_index_url=torch_url,
        index_url=simple, env={**env, "PIP_CONFIG_FILE": str(config)},
    )  # fmt: skip
    assert plan.ok, plan.problems
    export = conda_environment(plan)
    assert export.warnings == ()  # the flag already writes it; the config adds nothing
    plan = torchup.plan(
        ["torch==2.8.0"], python=pyenv("3.11"), backend="cpu", torch_index_url=torch_url,
        env={**env, "PIP_CONFIG_FILE": str(config)},
    )  # fmt: skip
    assert plan.ok, plan.problems
    export = conda_environment(plan)
    [warning] = export.warnings
    assert warning.startswith(f"{simple} (from ")
    assert "is not written" in warning


def test_a_lock_without_torchups_table_needs_one_python() -> None:
    sha = "cd" * 32
    wheel = LockedFile(filename="x-1-py3-none-any.whl", url="https://h/x.whl", sha256=sha)
    pkg = LockedPackage(name="x", version="1", files=(wheel,))
    export = conda_environment_from_lock(Lock(packages=(pkg,), requires_python="==3.12.*"))
    assert export.dependencies == ("python=3.12", "pip")
    assert export.pip_lines == (f"x==1 --hash=sha256:{sha}",)
    with pytest.raises(CondaExportError, match="names no one Python"):
        conda_environment_from_lock(Lock(packages=(pkg,), requires_python=">=3.9"))


def test_an_extra_index_pip_config_repeats_is_written_once() -> None:
    from torchup.export.pylock import MadeFor

    sha = "ab" * 32
    wheel = LockedFile(filename="x-1-py3-none-any.whl", url="https://h/x.whl", sha256=sha)
    sources = {
        "no_index": False,
        "index_url": "https://i/simple",
        "extra_index_urls": ["https://i/simple", "https://j/simple", "https://j/simple"],
        "find_links": ["/w", "/w"],
    }
    made = MadeFor(torchup="0", requirements=("x",), python_version="3.12.1",
                   implementation="cpython", free_threaded=False, platform="linux",
                   tag="cp312-cp312-linux_x86_64", tag_count=1, markers={}, backend="cpu",
                   variant=None, release=None, accelerator=None, sources=sources)  # fmt: skip
    pkg = LockedPackage(name="x", version="1", files=(wheel,))
    export = conda_environment_from_lock(Lock(packages=(pkg,), made_for=made))
    assert export.pip_lines == (
        "--index-url https://i/simple",
        "--extra-index-url https://j/simple",
        "--find-links /w",
        f"x==1 --hash=sha256:{sha}",
    )
