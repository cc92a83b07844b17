"""Interpreter discovery, probing, caching and wheel tags, against real interpreters.

The machine tests use the Pythons installed here (pyenv 2.7 to 3.13 and the system
python3) and skip where they are absent. Fakes are real files: shell scripts named
python3, venvs made with ``python -m venv`` dressed up as conda envs, and directory
trees standing in for HOME, PYENV_ROOT and uv's install dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import packaging
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.markers import default_environment
from packaging.tags import Tag, mac_platforms, sys_tags

from oracle import packaging_release_for, sys_tags_inside
from torchup.errors import InterpreterError, PythonNotFoundError, UsageError
from torchup.interpreters import discover as interpreters
from torchup.interpreters.discover import (
    Interpreter,
    default_interpreter,
    describe,
    discover,
    externally_managed,
    probe,
    select,
    supported_tags,
    tag_set,
)
from torchup.interpreters.tags import ElfHeader, ProbeFacts, compute_tags, cpython_abis, parse_facts

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
EXPECTED = [
    "2.7.18",
    "3.6.15",
    "3.7.16",
    "3.8.18",
    "3.9.18",
    "3.10.13",
    "3.11.7",
    "3.12.1",
    "3.13.0",
]
SYSTEM_PYTHON = Path("/usr/bin/python3")
X86_64_GLIBC = (
    sys.platform == "linux"
    and platform.machine() == "x86_64"
    and bool(platform.libc_ver()[0] == "glibc")
)


def pyenv_python(version: str) -> Path:
    return PYENV_VERSIONS / version / "bin" / "python"


def needs(*versions: str) -> pytest.MarkDecorator:
    missing = [v for v in versions if not pyenv_python(v).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"pyenv Python {missing} not installed")


needs_all = needs(*EXPECTED)
needs_x86_64 = pytest.mark.skipif(not X86_64_GLIBC, reason="tag spot checks are for glibc x86_64")


def machine_env(cache: Path, **extra: str) -> dict[str, str]:
    """This process's environment without an active venv/conda, with a private cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.pop("PYENV_VERSION", None)
    env["TORCHUP_CACHE_DIR"] = str(cache)
    env.update(extra)
    return env


def bare_env(tmp: Path, *, path: str = "", **extra: str) -> dict[str, str]:
    """A minimal environment: an empty HOME, no pyenv/conda/uv, a private cache."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": path, "HOME": str(home), "TORCHUP_CACHE_DIR": str(tmp / "cache")}
    env.update(extra)
    return env


def script(path: Path, body: str, *, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def make_venv(base: Path, where: Path) -> Path:
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(where)], check=True)
    return where


def by_executable(found: list[Interpreter]) -> dict[str, Interpreter]:
    return {i.executable: i for i in found}


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def neutral_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nowhere")


@pytest.fixture(scope="module")
def machine(cache: Path, neutral_cwd: Path) -> list[Interpreter]:
    """discover() on this machine, once per module (the cache makes later probes cheap)."""
    return discover(env=machine_env(cache), cwd=neutral_cwd)


@pytest.fixture(scope="module")
def venv310(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not pyenv_python("3.10.13").exists():
        pytest.skip("pyenv 3.10.13 not installed")
    return make_venv(pyenv_python("3.10.13"), tmp_path_factory.mktemp("venvs") / "v310")


@pytest.fixture
def audit_spawns() -> Iterator[list[str]]:
    """Every subprocess started while the test body runs (via the audit hook)."""
    spawned: list[str] = []
    recording = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if recording[0] and event in ("subprocess.Popen", "os.posix_spawn", "os.exec"):
            spawned.append(str(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed; the flag turns this one off
    yield spawned
    recording[0] = False


# --- discovery on this machine ----------------------------------------------------


@needs_all
def test_discover_finds_every_pyenv_version(machine: list[Interpreter]) -> None:
    pyenv = [i for i in machine if i.source == "pyenv"]
    assert sorted(i.version for i in pyenv) == sorted(EXPECTED)
    for interp in pyenv:
        assert interp.executable == str(pyenv_python(interp.version))
        assert interp.kind == "pyenv"
        assert interp.error is None
        assert interp.prefix == str(PYENV_VERSIONS / interp.version)
    # newest first within the pyenv group
    assert [i.version for i in pyenv] == EXPECTED[::-1]


def test_discover_skips_shims_and_dedupes(machine: list[Interpreter]) -> None:
    assert machine
    assert not [i.executable for i in machine if "/shims/" in i.executable]
    identities = [(os.path.realpath(i.executable), i.prefix) for i in machine]
    assert len(identities) == len(set(identities))


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no /usr/bin/python3")
def test_discover_finds_the_system_python(machine: list[Interpreter]) -> None:
    system = [
        i for i in machine if os.path.realpath(i.executable) == os.path.realpath(SYSTEM_PYTHON)
    ]
    assert len(system) == 1  # /bin/python3 and /usr/bin/python3.X are the same interpreter
    assert system[0].source == "PATH"
    assert system[0].kind == "system"
    assert system[0].error is None


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no /usr/bin/python3")
def test_externally_managed_matches_the_marker_file(cache: Path) -> None:
    interp = probe(SYSTEM_PYTHON, env=machine_env(cache))
    major, minor = interp.version.split(".")[:2]
    marker = Path(f"/usr/lib/python{major}.{minor}/EXTERNALLY-MANAGED")
    assert interp.externally_managed == marker.exists()


def test_warm_discover_spawns_nothing(
    machine: list[Interpreter], cache: Path, neutral_cwd: Path, audit_spawns: list[str]
) -> None:
    start = time.perf_counter()
    again = discover(env=machine_env(cache), cwd=neutral_cwd)
    elapsed = time.perf_counter() - start
    assert audit_spawns == []
    assert again == machine
    assert elapsed < 1.0  # typically ~0.03 s for a dozen interpreters


def test_default_interpreter_resolves_pyenv_shims(cache: Path, neutral_cwd: Path) -> None:
    interp = default_interpreter(env=machine_env(cache), cwd=neutral_cwd)
    assert interp.source == "PATH"
    assert "/shims/" not in interp.executable
    assert interp.error is None


# --- tags -------------------------------------------------------------------------


def test_tags_equal_sys_tags_for_the_running_interpreter(cache: Path) -> None:
    interp = probe(sys.executable, env=machine_env(cache))
    assert list(interp.tags) == [str(t) for t in sys_tags()]
    assert dict(interp.markers) == default_environment()


@pytest.mark.parametrize("exe", [pyenv_python(v) for v in EXPECTED] + [SYSTEM_PYTHON], ids=str)
def test_tags_equal_packaging_run_inside_the_target(exe: Path, cache: Path) -> None:
    """The oracle: sys_tags() of the packaging release that supports the target, run by it.

    Where that release is the one torchup computes with, the list must be identical,
    order included. Older Pythons need older releases, whose rules packaging has since
    changed in two documented ways: ``cpXY-none-any`` joined the list (packaging 22),
    and the order of platform tags moved; the accepted set must otherwise agree.
    """
    if not exe.exists():
        pytest.skip(f"{exe} not installed")
    release, oracle = sys_tags_inside(exe)
    ours = list(probe(exe, env=machine_env(cache)).tags)
    if release == packaging.__version__:
        assert ours == oracle
    else:
        added = {t for t in ours if t.split("-")[1:] == ["none", "any"] and t.startswith("cp")}
        assert set(oracle) <= set(ours)
        assert set(ours) - set(oracle) <= added


def test_the_oracle_of_new_pythons_is_the_locked_packaging() -> None:
    """The newest oracle row and the lock move together (else the exact check above lapses)."""
    newest = packaging_release_for((3, 99))[0]
    lock = (Path(__file__).parents[1] / "requirements" / "test.txt").read_text()
    assert f"\npackaging=={newest} " in lock
    assert packaging.__version__ == newest


@needs_all
@needs_x86_64
def test_tag_spot_checks(machine: list[Interpreter]) -> None:
    tags = {i.version: set(i.tags) for i in machine if i.source == "pyenv"}
    assert "cp27-cp27mu-manylinux1_x86_64" in tags["2.7.18"]  # torch 1.4.0's wheels
    assert not any("abi3" in t for t in tags["2.7.18"])
    assert "cp36-cp36m-manylinux1_x86_64" in tags["3.6.15"]
    assert "cp37-cp37m-manylinux2014_x86_64" in tags["3.7.16"]
    assert "cp38-cp38-manylinux2010_x86_64" in tags["3.8.18"]
    t310 = tags["3.10.13"]
    assert {"cp310-cp310-manylinux_2_28_x86_64", "cp310-cp310-linux_x86_64"} <= t310
    assert {"cp310-abi3-manylinux_2_17_x86_64", "cp32-abi3-manylinux1_x86_64"} <= t310
    assert {"py3-none-any", "py310-none-any", "cp310-none-any"} <= t310
    assert not any(t.startswith("cp39-cp39") for t in t310)
    assert not any(t.startswith("cp311-") for t in t310)
    for version, accepted in tags.items():
        if not version.startswith("2."):
            assert any("-abi3-" in t for t in accepted), version


@needs("3.13.0")
def test_free_threaded_facts_give_cp313t_tags(cache: Path) -> None:
    real = _facts(pyenv_python("3.13.0"), cache)
    assert not real.free_threaded
    ft = dataclasses.replace(real, config_vars={**real.config_vars, "Py_GIL_DISABLED": 1})
    assert ft.free_threaded
    assert cpython_abis(ft) == ["cp313t"]
    tags = [str(t) for t in compute_tags(ft)]
    assert tags[0].startswith("cp313-cp313t-")
    assert not [t for t in tags if t.startswith(("cp313-abi3-", "cp313-cp313-"))]
    assert not [t for t in tags if "-abi3-" in t]
    assert "py313-none-any" in tags


def _facts(exe: Path, cache: Path) -> ProbeFacts:
    raw = interpreters._run_probe(str(exe), machine_env(cache), 10.0)
    return parse_facts(raw)


LINUX = ProbeFacts(
    executable="/x/bin/python",
    prefix="/x",
    base_prefix="/x",
    version="3.12.4",
    version_info=(3, 12, 4),
    implementation="cpython",
    machine="x86_64",
    system="Linux",
    sys_platform="linux",
    os_name="posix",
    sysconfig_platform="linux-x86_64",
    config_vars={"Py_DEBUG": 0, "py_version_nodot": "312"},
    glibc=(2, 17),
    elf=ElfHeader(2, 1, 62, 0),
)


def test_manylinux_goes_down_to_2_5_with_legacy_aliases() -> None:
    platforms = [
        str(t).split("-")[2] for t in compute_tags(LINUX) if str(t).startswith("cp312-cp312-")
    ]
    many = [p for p in platforms if p.startswith("manylinux")]
    assert many[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert many[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert "manylinux2010_x86_64" in many
    assert len([p for p in many if p.startswith("manylinux_2_")]) == 13  # 2.17 .. 2.5
    assert "linux_x86_64" in platforms


def test_aarch64_manylinux_stops_at_2_17_and_musl_gets_musllinux() -> None:
    arm = dataclasses.replace(
        LINUX, sysconfig_platform="linux-aarch64", machine="aarch64", glibc=(2, 31)
    )
    arm_platforms = {str(t).split("-")[2] for t in compute_tags(arm)}
    assert "manylinux_2_17_aarch64" in arm_platforms
    assert "manylinux_2_16_aarch64" not in arm_platforms
    musl = dataclasses.replace(LINUX, glibc=None, musl=(1, 2))
    musl_platforms = [
        str(t).split("-")[2] for t in compute_tags(musl) if str(t).startswith("cp312-cp312-")
    ]
    assert [p for p in musl_platforms if "musllinux" in p] == [
        "musllinux_1_2_x86_64",
        "musllinux_1_1_x86_64",
        "musllinux_1_0_x86_64",
    ]
    assert not [p for p in musl_platforms if "manylinux" in p]


def test_i686_needs_a_32_bit_x86_elf() -> None:
    i686 = dataclasses.replace(LINUX, is_32bit=True)
    assert not any("manylinux" in str(t) for t in compute_tags(i686))  # the ELF says x86-64
    real_i686 = dataclasses.replace(i686, elf=ElfHeader(1, 1, 3, 0))
    assert "cp312-cp312-manylinux1_i686" in {str(t) for t in compute_tags(real_i686)}


def test_a_distro_manylinux_module_can_veto_a_glibc_level() -> None:
    vetoed = dataclasses.replace(LINUX, manylinux_module={"2_17_x86_64": False})
    platforms = {str(t).split("-")[2] for t in compute_tags(vetoed)}
    assert "manylinux_2_17_x86_64" not in platforms
    assert "manylinux_2_16_x86_64" in platforms


def test_macos_windows_pypy_and_debug_builds() -> None:
    mac = dataclasses.replace(
        LINUX,
        system="Darwin",
        sysconfig_platform="macosx-11.0-arm64",
        mac_version=(14, 5),
        mac_machine="arm64",
    )
    mac_tags = [str(t) for t in compute_tags(mac)]
    assert mac_tags[0] == "cp312-cp312-macosx_14_0_arm64"
    expected = list(mac_platforms((14, 5), "arm64"))
    assert [t.split("-")[2] for t in mac_tags if t.startswith("cp312-cp312-")] == expected

    win = dataclasses.replace(
        LINUX, system="Windows", sysconfig_platform="win-amd64", glibc=None, elf=None
    )
    assert {t.platform for t in compute_tags(win)} == {"win_amd64", "any"}

    pypy = dataclasses.replace(
        LINUX,
        implementation="pypy",
        version_info=(3, 10, 14),
        config_vars={"EXT_SUFFIX": ".pypy310-pp73-x86_64-linux-gnu.so", "py_version_nodot": "310"},
    )
    pypy_tags = [str(t) for t in compute_tags(pypy)]
    assert pypy_tags[0].startswith("pp310-pypy310_pp73-")
    assert {"pp310-none-linux_x86_64", "pp3-none-any", "py310-none-any"} <= set(pypy_tags)
    assert not any(t.startswith("cp") for t in pypy_tags)

    debug = dataclasses.replace(LINUX, config_vars={"Py_DEBUG": 1})
    assert cpython_abis(debug) == ["cp312d", "cp312"]


@settings(max_examples=60, deadline=None)
@given(
    minor=st.integers(min_value=6, max_value=14),
    glibc_minor=st.integers(min_value=5, max_value=40),
    gil_disabled=st.booleans(),
)
def test_tag_lists_are_unique_and_well_formed(
    minor: int, glibc_minor: int, gil_disabled: bool
) -> None:
    facts = dataclasses.replace(
        LINUX,
        version_info=(3, minor, 0),
        version=f"3.{minor}.0",
        config_vars={"Py_GIL_DISABLED": int(gil_disabled), "py_version_nodot": f"3{minor}"},
        glibc=(2, glibc_minor),
    )
    tags = compute_tags(facts)
    assert len(tags) == len(set(tags))
    ft = gil_disabled and minor >= 13
    assert tags[0].interpreter == f"cp3{minor}"
    assert tags[0].abi == f"cp3{minor}{'t' if ft else ''}{'m' if minor < 8 else ''}"
    assert any(t.abi == "abi3" for t in tags) is not ft
    assert f"manylinux_2_{glibc_minor}_x86_64" in {t.platform for t in tags}
    assert f"manylinux_2_{glibc_minor + 1}_x86_64" not in {t.platform for t in tags}
    assert tags[-1] == Tag("py30", "none", "any")


def test_supported_tags_and_tag_set() -> None:
    interp = Interpreter(executable="/x", tags=("cp310-cp310-linux_x86_64", "py3-none-any"))
    assert supported_tags(interp) == [
        Tag("cp310", "cp310", "linux_x86_64"),
        Tag("py3", "none", "any"),
    ]
    assert tag_set(interp) == frozenset(supported_tags(interp))
    assert tag_set(interp) is tag_set(interp)  # cached


# --- PEP 668 ----------------------------------------------------------------------


def test_externally_managed_pure_decision(tmp_path: Path) -> None:
    (tmp_path / "EXTERNALLY-MANAGED").write_text("[externally-managed]\n")
    system = dataclasses.replace(LINUX, stdlib=str(tmp_path))
    assert externally_managed(system)
    assert not externally_managed(dataclasses.replace(system, prefix="/venv"))  # inside a venv
    assert not externally_managed(dataclasses.replace(system, real_prefix="/x"))  # old virtualenv
    assert not externally_managed(system, isfile=lambda _: False)
    assert not externally_managed(dataclasses.replace(system, stdlib=""))


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no /usr/bin/python3")
def test_a_venv_of_the_system_python_is_not_externally_managed(tmp_path: Path) -> None:
    try:
        venv = make_venv(SYSTEM_PYTHON, tmp_path / "sysvenv")
    except subprocess.CalledProcessError:
        pytest.skip("the system python cannot make venvs here")
    interp = probe(venv / "bin" / "python", env=bare_env(tmp_path))
    assert interp.kind == "venv"
    assert not interp.externally_managed


# --- venvs and selection ----------------------------------------------------------


@needs("3.10.13")
def test_venv_found_via_virtual_env_and_kept_apart_from_its_base(
    venv310: Path, cache: Path, neutral_cwd: Path
) -> None:
    found = discover(env=machine_env(cache, VIRTUAL_ENV=str(venv310)), cwd=neutral_cwd)
    first = found[0]
    assert first.executable == str(venv310 / "bin" / "python")
    assert (first.source, first.kind, first.prefix) == ("VIRTUAL_ENV", "venv", str(venv310))
    assert first.version == "3.10.13"
    assert not first.externally_managed
    base = by_executable(found)[str(pyenv_python("3.10.13"))]
    assert base.kind == "pyenv"
    assert os.path.realpath(base.executable) == os.path.realpath(first.executable)
    assert (
        default_interpreter(env=machine_env(cache, VIRTUAL_ENV=str(venv310)), cwd=neutral_cwd)
        == first
    )


@needs("3.10.13")
def test_dot_venv_found_from_a_subdirectory(tmp_path: Path, cache: Path) -> None:
    project = tmp_path / "project"
    make_venv(pyenv_python("3.10.13"), project / ".venv")
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    env = bare_env(tmp_path, TORCHUP_CACHE_DIR=str(cache))
    found = discover(env=env, cwd=deep)
    assert [(i.source, i.kind, i.executable) for i in found] == [
        (".venv", "venv", str(project / ".venv" / "bin" / "python"))
    ]
    assert default_interpreter(env=env, cwd=deep).source == ".venv"


@needs("3.10.13", "3.11.7", "3.13.0")
def test_select(venv310: Path, cache: Path, neutral_cwd: Path) -> None:
    env = machine_env(cache, VIRTUAL_ENV=str(venv310))

    by_dir = select(str(venv310), env=env, cwd=neutral_cwd)
    assert (by_dir.executable, by_dir.source, by_dir.kind) == (
        str(venv310 / "bin" / "python"),
        "--python",
        "venv",
    )
    assert select(str(venv310 / "bin" / "python"), env=env, cwd=neutral_cwd) == by_dir
    relative = select("./v310", env=env, cwd=venv310.parent)
    assert relative.executable == by_dir.executable

    # A bare version picks the installation, not a venv made from it (documented).
    assert select("3.10", env=env, cwd=neutral_cwd).executable == str(pyenv_python("3.10.13"))
    assert select("3.10.13", env=env, cwd=neutral_cwd).kind == "pyenv"
    assert select("python3.11", env=env, cwd=neutral_cwd).version == "3.11.7"
    assert select("py3.11", env=env, cwd=neutral_cwd).version == "3.11.7"
    assert select("3", env=env, cwd=neutral_cwd).version == "3.13.0"

    with pytest.raises(PythonNotFoundError) as free:
        select("3.13t", env=env, cwd=neutral_cwd)
    assert "3.13.0  " + str(pyenv_python("3.13.0")) + "  (pyenv)" in free.value.found
    with pytest.raises(PythonNotFoundError) as nonsense:
        select("nonsense", env=env, cwd=neutral_cwd)
    assert f"3.11.7  {pyenv_python('3.11.7')}  (pyenv)" in nonsense.value.found
    assert "nonsense" in str(nonsense.value)
    with pytest.raises(PythonNotFoundError):
        select("/no/such/python", env=env, cwd=neutral_cwd)


def test_select_a_broken_path_raises_interpreter_error(tmp_path: Path) -> None:
    broken = script(tmp_path / "bin" / "python3", "echo 'boom' >&2; exit 3")
    with pytest.raises(InterpreterError, match="status 3: boom") as err:
        select(str(broken), env=bare_env(tmp_path), cwd=tmp_path)
    assert err.value.hint
    with pytest.raises(InterpreterError, match="no Python in it"):
        select(str(tmp_path / "home"), env=bare_env(tmp_path), cwd=tmp_path)


# --- broken interpreters ----------------------------------------------------------


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_broken_interpreters_are_listed_with_their_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    script(bin_dir / "python3", "exit 1")
    script(bin_dir / "python3.50", "echo 'Hello from a sitecustomize'; echo '{not: json}'")
    # a wrapper script that hangs in a child: the child is stopped with it
    script(bin_dir / "python3.51", f"{shutil.which('sleep')} 30.51")
    script(bin_dir / "python3.52", "exit 0", executable=False)
    start = time.perf_counter()
    found = discover(env=bare_env(tmp_path, path=str(bin_dir)), cwd=tmp_path, timeout=1.0)
    assert time.perf_counter() - start < 10
    errors = {Path(i.executable).name: i.error or "" for i in found}
    assert set(errors) == {"python3", "python3.50", "python3.51", "python3.52"}
    assert "status 1" in errors["python3"]
    assert "no probe result" in errors["python3.50"]
    assert "did not finish" in errors["python3.51"]
    assert "not executable" in errors["python3.52"]
    assert not [p for p in Path("/proc").glob("[0-9]*") if _cmdline(p).endswith(" 30.51")]
    for interp in found:
        assert (interp.version, interp.tags, interp.prefix, interp.source) == ("", (), "", "PATH")
        assert "broken:" in describe(interp)


def test_failures_are_not_cached(tmp_path: Path) -> None:
    exe = script(tmp_path / "python", "exit 1")
    env = bare_env(tmp_path)
    assert probe(exe, env=env).error
    assert not list((tmp_path / "cache").glob("interpreters/*.json"))
    script(exe, f'exec "{sys.executable}" "$@"')
    fixed = probe(exe, env=env)
    assert fixed.error is None
    assert fixed.version == platform.python_version()


def test_a_venv_whose_base_is_gone_is_reported_not_skipped(tmp_path: Path) -> None:
    venv = tmp_path / "stale"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /gone/bin\n")
    (venv / "bin" / "python").symlink_to("/gone/bin/python3")
    env = bare_env(tmp_path, VIRTUAL_ENV=str(venv))
    (found,) = discover(env=env, cwd=tmp_path)
    assert (found.source, found.error) == (
        "VIRTUAL_ENV",
        f"{str(venv / 'bin' / 'python')!r} is a link to '/gone/bin/python3', which does not exist",
    )
    with pytest.raises(InterpreterError, match="VIRTUAL_ENV"):
        default_interpreter(env=env, cwd=tmp_path)


# --- the cache --------------------------------------------------------------------


def test_cache_hit_miss_and_corruption(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    exe = script(
        tmp_path / "wrapped" / "python", f'echo run >> "{log}"\nexec "{sys.executable}" "$@"'
    )
    env = bare_env(tmp_path)

    first = probe(exe, env=env)
    assert first.error is None
    assert probe(exe, env=env) == first
    assert log.read_text().splitlines() == ["run"]  # the second probe spawned nothing

    later = os.stat(exe).st_mtime_ns + 5_000_000_000
    os.utime(exe, ns=(later, later))
    assert probe(exe, env=env) == first
    assert len(log.read_text().splitlines()) == 2  # touched: re-probed

    (entry,) = (tmp_path / "cache" / "interpreters").glob("*.json")
    entry.write_text("{corrupt")
    assert probe(exe, env=env) == first
    assert len(log.read_text().splitlines()) == 3  # corrupt entry: re-probed and rewritten
    assert probe(exe, env=env) == first
    assert len(log.read_text().splitlines()) == 3


def test_warm_discover_loads_the_tags_it_cached(
    machine: list[Interpreter], cache: Path, neutral_cwd: Path
) -> None:
    """Each entry holds the tags computed from its facts; a warm discover returns them."""
    entries = [json.loads(f.read_text()) for f in (cache / "interpreters").glob("*.json")]
    cached = {e["executable"]: e for e in entries}
    working = [i for i in machine if not i.error]
    assert working
    for interp in working:
        entry = cached[interp.executable]
        assert entry["tagger"] == interpreters._tagger()
        assert packaging.__version__ in entry["tagger"]
        fresh = [str(t) for t in compute_tags(parse_facts(entry["facts"]))]
        assert entry["tags"] == fresh == list(interp.tags)
    assert discover(env=machine_env(cache), cwd=neutral_cwd) == machine


def test_cached_tags_are_used_as_stored_and_recomputed_only_for_another_tagger(
    tmp_path: Path,
) -> None:
    log = tmp_path / "runs.log"
    exe = script(tmp_path / "py" / "python", f'echo run >> "{log}"\nexec "{sys.executable}" "$@"')
    env = bare_env(tmp_path)
    first = probe(exe, env=env)
    assert list(first.tags) == [str(t) for t in sys_tags()]
    (file,) = (tmp_path / "cache" / "interpreters").glob("*.json")
    entry = json.loads(file.read_text())

    # Tags no computation would give: only loading them from the entry returns them.
    planted = ["cp99-cp99-planted_by_the_test", "py3-none-any"]
    file.write_text(json.dumps({**entry, "tags": planted}))
    assert probe(exe, env=env).tags == tuple(planted)
    (found,) = discover(env=bare_env(tmp_path, path=str(exe.parent)), cwd=tmp_path)
    assert found.tags == tuple(planted)

    # Computed under another packaging or tags.py: recomputed from the cached facts
    # (no new probe run) and the entry rewritten.
    file.write_text(json.dumps({**entry, "tags": planted, "tagger": "packaging 0.1"}))
    assert probe(exe, env=env) == first
    assert json.loads(file.read_text())["tagger"] == interpreters._tagger()
    assert json.loads(file.read_text())["tags"] == list(first.tags)
    assert log.read_text().splitlines() == ["run"]

    # Malformed tags make the entry corrupt: re-probed and rewritten.
    for bad in ([1, 2], "cp311-cp311-linux_x86_64", None):
        file.write_text(json.dumps({**entry, "tags": bad}))
        assert probe(exe, env=env) == first
        assert json.loads(file.read_text())["tags"] == list(first.tags)
    assert len(log.read_text().splitlines()) == 4


def test_path_directories_listed_twice_or_linked_are_one_source(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    script(bin_dir / "python3", f'exec "{sys.executable}" "$@"')
    (tmp_path / "alias").symlink_to(bin_dir)
    path = os.pathsep.join([str(bin_dir), str(tmp_path / "alias"), str(bin_dir)])
    found = discover(env=bare_env(tmp_path, path=path), cwd=tmp_path)
    assert [(i.executable, i.source) for i in found] == [(str(bin_dir / "python3"), "PATH")]


@needs("3.11.7", "3.12.1")
def test_select_uses_the_interpreters_it_is_given(
    machine: list[Interpreter], cache: Path, neutral_cwd: Path, tmp_path: Path
) -> None:
    (py311,) = [i for i in machine if i.source == "pyenv" and i.version == "3.11.7"]
    assert any(i.version == "3.12.1" for i in machine)  # discoverable, but not passed
    env = machine_env(cache)
    assert select("3.11", env=env, cwd=neutral_cwd, found=[py311]) is py311
    with pytest.raises(PythonNotFoundError) as missing:
        select("3.12", env=env, cwd=neutral_cwd, found=[py311])
    assert missing.value.found == [describe(py311)]
    with pytest.raises(PythonNotFoundError) as nonsense:
        select("nonsense", env=env, cwd=neutral_cwd, found=[py311])
    assert nonsense.value.found == [describe(py311)]
    # Where discover() would find nothing at all, the given list is still what counts.
    assert select("3.11", env=bare_env(tmp_path), cwd=tmp_path, found=[py311]) is py311


@needs("3.10.13")
def test_default_interpreter_takes_its_choice_from_the_given_list(
    venv310: Path, cache: Path, neutral_cwd: Path, audit_spawns: list[str]
) -> None:
    env = machine_env(cache, VIRTUAL_ENV=str(venv310))
    found = discover(env=env, cwd=neutral_cwd)
    chosen = default_interpreter(env=env, cwd=neutral_cwd, found=found)
    assert chosen is found[0]
    assert chosen.source == "VIRTUAL_ENV"
    # Not in the list (or no list): probed as before, with the same answer.
    assert default_interpreter(env=env, cwd=neutral_cwd, found=found[1:]) == chosen
    assert default_interpreter(env=env, cwd=neutral_cwd) == chosen
    assert audit_spawns == []


# --- conda, pyenv and uv layouts --------------------------------------------------


@needs("3.10.13", "3.11.7")
def test_conda_layout(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = make_venv(pyenv_python("3.11.7"), tmp_path / "miniforge3")
    env_a = make_venv(pyenv_python("3.10.13"), tmp_path / "elsewhere" / "envA")
    env_b = make_venv(pyenv_python("3.11.7"), base / "envs" / "envB")
    for prefix in (base, env_a, env_b):
        (prefix / "conda-meta").mkdir()
    (base / "condabin").mkdir()
    script(base / "bin" / "conda", "exit 0")
    (home / ".conda").mkdir(parents=True)
    (home / ".conda" / "environments.txt").write_text(f"{base}\n{env_a}\n")
    env = bare_env(tmp_path, CONDA_PREFIX=str(env_a), CONDA_EXE=str(base / "bin" / "conda"))

    found = discover(env=env, cwd=tmp_path)
    summary = [(i.executable, i.source, i.kind) for i in found]
    assert summary == [
        (str(env_a / "bin" / "python"), "CONDA_PREFIX", "conda"),
        (str(base / "bin" / "python"), "conda", "conda"),
        (str(env_b / "bin" / "python"), "conda", "conda"),
    ]
    assert select("envB", env=env, cwd=tmp_path).prefix == str(env_b)
    assert select("base", env=env, cwd=tmp_path).prefix == str(base)
    assert select("envA", env=env, cwd=tmp_path).version == "3.10.13"
    assert default_interpreter(env=env, cwd=tmp_path).source == "CONDA_PREFIX"


@needs("3.11.7", "3.12.1")
def test_fake_pyenv_root_and_shim_resolution(tmp_path: Path) -> None:
    root = tmp_path / "pyenv"
    for version in ("3.11.7", "3.12.1"):
        (root / "versions").mkdir(parents=True, exist_ok=True)
        (root / "versions" / version).symlink_to(PYENV_VERSIONS / version)
    shim = script(root / "shims" / "python3", "echo 'a shim must not run' >&2; exit 1")
    (root / "version").write_text("3.11.7\n")
    env = bare_env(tmp_path, path=str(shim.parent), PYENV_ROOT=str(root))

    found = discover(env=env, cwd=tmp_path)
    assert [(i.version, i.source) for i in found] == [("3.12.1", "pyenv"), ("3.11.7", "pyenv")]
    chosen = default_interpreter(env=env, cwd=tmp_path)
    assert chosen.executable == str(root / "versions" / "3.11.7" / "bin" / "python3")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / ".python-version").write_text("3.12\n")  # a prefix, as pyenv allows
    assert default_interpreter(env=env, cwd=tmp_path / "proj").version == "3.12.1"
    with_var = {**env, "PYENV_VERSION": "3.12.1"}
    assert default_interpreter(env=with_var, cwd=tmp_path).version == "3.12.1"


@needs("3.12.1")
def test_uv_managed_pythons(tmp_path: Path) -> None:
    uv_dir = tmp_path / "uv-python"
    install = uv_dir / "cpython-3.12.1-linux-x86_64-gnu"
    (install / "bin").mkdir(parents=True)
    (install / "bin" / "python3").symlink_to(pyenv_python("3.12.1"))
    (uv_dir / "cpython-3.12-linux-x86_64-gnu").symlink_to(install)  # uv's minor-version link
    (uv_dir / ".lock").write_text("")
    env = bare_env(tmp_path, UV_PYTHON_INSTALL_DIR=str(uv_dir))
    found = discover(env=env, cwd=tmp_path)
    assert [(i.executable, i.source, i.version) for i in found] == [
        (str(install / "bin" / "python3"), "uv", "3.12.1")
    ]


def test_nothing_found_is_a_clear_error(tmp_path: Path) -> None:
    env = bare_env(tmp_path)
    assert discover(env=env, cwd=tmp_path) == []
    with pytest.raises(InterpreterError, match="no Python found"):
        default_interpreter(env=env, cwd=tmp_path)
    with pytest.raises(PythonNotFoundError, match=r"\(none\)"):
        select("3.11", env=env, cwd=tmp_path)


# --- values -----------------------------------------------------------------------


def test_describe_and_to_dict() -> None:
    interp = Interpreter(
        executable="/x/bin/python",
        version="3.13.0",
        free_threaded=True,
        kind="venv",
        source="VIRTUAL_ENV",
        externally_managed=False,
    )
    assert describe(interp) == "3.13.0t  /x/bin/python  (VIRTUAL_ENV, venv)"
    assert list(interp.to_dict()) == [
        "executable",
        "version",
        "implementation",
        "architecture",
        "free_threaded",
        "kind",
        "source",
        "prefix",
        "externally_managed",
        "tags",
        "error",
    ]
    broken = Interpreter(executable="/y/python3", source="PATH", error="exited with status 1")
    assert describe(broken) == "?  /y/python3  (PATH, broken: exited with status 1)"


@needs("3.10.13")
def test_markers_come_from_the_target(cache: Path) -> None:
    interp = probe(pyenv_python("3.10.13"), env=machine_env(cache))
    assert interp.markers["python_version"] == "3.10"
    assert interp.markers["python_full_version"] == "3.10.13"
    assert interp.markers["implementation_name"] == "cpython"
    assert (interp.implementation, interp.architecture) == ("cpython", platform.machine())


@needs("2.7.18", "3.6.15")
def test_probe_script_parses_on_python_2_7_and_3_6() -> None:
    probe_file = Path(interpreters.__file__).with_name("probe.py")
    for version in ("2.7.18", "3.6.15"):
        code = f"compile(open({str(probe_file)!r}).read(), 'probe', 'exec')"
        subprocess.run([str(pyenv_python(version)), "-c", code], check=True)


@pytest.mark.parametrize(
    "raw",
    [[], {}, {"version_info": "3.11"}, {"version_info": [3, 11, 7], "executable": 1}, {"elf": 3}],
)
def test_parse_facts_rejects_malformed_input_with_value_error(raw: object) -> None:
    with pytest.raises(ValueError, match="probe"):
        parse_facts(raw)  # type: ignore[arg-type]  # deliberately not a Mapping[str, Any]


@needs("3.10.13")
def test_examined_takes_python_or_venv_and_says_what_is_wrong(
    tmp_path: Path, cache_env: Path
) -> None:
    base = pyenv_python("3.10.13")
    venv = tmp_path / "v"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {"PATH": os.environ["PATH"], "TORCHUP_CACHE_DIR": str(cache_env)}
    got = interpreters.examined(None, "v", env=env, cwd=tmp_path)  # relative to cwd
    assert (got.kind, got.source, got.prefix) == ("venv", "--venv", str(venv))
    assert interpreters.examined(str(base), None, env=env, cwd=tmp_path).prefix == str(
        base.parent.parent
    )
    with pytest.raises(UsageError, match="name different targets"):
        interpreters.examined("3.10", "v", env=env, cwd=tmp_path)
    with pytest.raises(UsageError, match="no bin/python in"):
        interpreters.examined(None, "missing", env=env, cwd=tmp_path)
