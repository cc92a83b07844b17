"""``torchup plan`` end to end: real interpreters, a real local index server, real pages.

PyPI pages are captured from PyPI (tests/data/pypi); the PyTorch index is generated in
its real layout from real file names (tests/data/torchindex.json.gz). Each test reads
them over HTTP on 127.0.0.1 through the same code a user runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import torchup
from indexserver import IndexServer
from torchup.choose.api import plan
from torchup.errors import InterpreterError, PythonNotFoundError, UsageError

PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def pyenv(version: str) -> str:
    found = sorted((PYENV / "versions").glob(f"{version}.*/bin/python"))
    if not found:
        pytest.skip(f"needs CPython {version} from pyenv")
    return str(found[-1])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment with no user pip config and a private torchup cache."""
    home = tmp_path_factory.mktemp("home")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYENV_ROOT": str(PYENV),
        "PIP_CONFIG_FILE": os.devnull,
        "TORCHUP_CACHE_DIR": str(home / "cache"),
    }


def run_plan(server: IndexServer, env: dict[str, str], *reqs: str, **kw: object) -> torchup.Plan:
    kw.setdefault("torch_index_url", server.torch_url)
    kw.setdefault("index_url", server.pypi_url)
    return plan(list(reqs), env=env, **kw)  # type: ignore[arg-type]


def pins(result: torchup.Plan) -> list[str]:
    return [p.pin for p in result.packages]


@pytest.mark.parametrize(
    ("python", "expected"),
    [
        ("2.7", "torch===1.4.0"),
        ("3.6", "torch===1.10.2"),
        ("3.7", "torch===1.13.1"),
        ("3.8", "torch===2.4.1"),
        ("3.9", "torch===2.8.0"),
        ("3.10", "torch===2.14.1"),
        ("3.11", "torch===2.15.0"),
        ("3.13", "torch===2.15.0"),
    ],
)
def test_newest_torch_pip_would_get_per_interpreter(
    index_server: IndexServer, env: dict[str, str], python: str, expected: str
) -> None:
    result = run_plan(index_server, env, "torch", python=pyenv(python), backend="pypi")
    assert result.ok, result.problems
    assert pins(result) == [expected]
    (pkg,) = result.packages
    assert pkg.index == f"{index_server.pypi_url}/torch/"
    assert pkg.sha256
    assert len(pkg.sha256) == 64
    assert result.commands == (
        (pyenv(python), "-m", "pip", "install", expected, "--index-url", index_server.pypi_url),
    )


def test_cpu_backend_reads_the_variant_directory(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    result = run_plan(index_server, env, "torch", python=pyenv("3.10"), backend="cpu")
    assert result.ok
    (pkg,) = result.packages
    assert (pkg.version, pkg.local, pkg.variant) == ("2.13.0+cpu", "cpu", "cpu")
    assert pkg.index == f"{index_server.torch_url}/cpu/torch/"
    assert result.commands[0][-4:] == (
        "--index-url",
        f"{index_server.torch_url}/cpu",
        "--extra-index-url",
        index_server.pypi_url,
    )


def test_torch_2_5_1_with_torchvision_on_3_10_pairs_0_20_1_by_metadata(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    for backend, version in (("cpu", "0.20.1+cpu"), ("pypi", "0.20.1")):
        result = run_plan(
            index_server, env, "torch==2.5.1", "torchvision", python=pyenv("3.10"), backend=backend
        )
        assert result.ok, result.problems
        torch, vision = result.packages
        assert vision.version == version
        assert vision.variant == torch.variant
        assert vision.paired_by == "metadata (Requires-Dist: torch==2.5.1)"


def test_companion_metadata_never_downloads_a_whole_wheel(
    index_server: IndexServer, tmp_path: Path, env: dict[str, str]
) -> None:
    fresh = {**env, "TORCHUP_CACHE_DIR": str(tmp_path / "cache")}
    index_server.reset_log()
    result = run_plan(
        index_server, fresh, "torch==2.5.1", "torchaudio", python=pyenv("3.10"), backend="pypi"
    )
    assert result.ok
    wheel_gets = [r for r in index_server.requests if r.path.endswith(".whl")]
    assert wheel_gets, "metadata should have come from the wheel by range requests"
    assert all(r.range for r in wheel_gets), [r.path for r in wheel_gets if not r.range]
    # (These stand-in wheels fit in one range read; test_index shows a large wheel is
    # read in a few ranges totalling less than half of it.)


def test_torch_1_10_0_on_3_10_explains_and_names_what_would_work(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    result = run_plan(index_server, env, "torch==1.10.0", python=pyenv("3.10"), backend="pypi")
    assert not result.ok
    (problem,) = result.problems
    assert "1.10.0 has cp36-cp39 wheels only" in problem.message
    assert problem.rejected
    assert all("not this Python 3.10" in r.reason for r in problem.rejected)
    assert result.alternative_versions[0] == "torch==1.11.0"
    versions = {a.version.rsplit(".", 1)[0] for a in result.alternative_pythons}
    assert {"3.6", "3.7", "3.8", "3.9"} <= versions
    assert not versions & {"3.10", "3.11", "3.12", "3.13", "2.7"}
    alt = next(a for a in result.alternative_pythons if a.version.startswith("3.9."))
    assert alt.command[:5] == (alt.executable, "-m", "pip", "install", "torch===1.10.0")


def test_torch_2_15_0_on_3_10_needs_3_11(index_server: IndexServer, env: dict[str, str]) -> None:
    result = run_plan(index_server, env, "torch==2.15.0", python=pyenv("3.10"), backend="pypi")
    assert not result.ok
    (problem,) = result.problems
    assert {r.reason for r in problem.rejected} == {
        "Requires-Python >=3.11 excludes Python 3.10.13"
    }
    assert result.alternative_versions[0] == "torch==2.14.1"
    versions = {a.version.rsplit(".", 1)[0] for a in result.alternative_pythons}
    assert {"3.11", "3.12", "3.13"} <= versions
    assert "3.10" not in versions


def test_cpu_torch_is_never_paired_with_a_plain_torchvision(
    index_server: IndexServer, tmp_path: Path, env: dict[str, str]
) -> None:
    # pip's view on this machine: the +cpu torch from a find-links folder sorts above
    # PyPI's plain build, and PyPI's torchvision is not a cpu build.
    links = tmp_path / "links"
    links.mkdir()
    name = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    (links / name).write_bytes(index_server.wheel(name, "cpu"))
    result = run_plan(
        index_server,
        env,
        "torch==2.13.0",
        "torchvision",
        python=pyenv("3.11"),
        backend="pypi",
        find_links=[str(links)],
    )
    assert not result.ok
    assert result.packages[0].version == "2.13.0+cpu"
    (problem,) = result.problems
    assert problem.requirement.name == "torchvision"
    assert any("but torch is 2.13.0+cpu" in r.reason for r in problem.rejected)


def test_auto_falls_back_to_pip_sources_when_the_pytorch_index_is_down(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    dead = "http://127.0.0.1:9/whl"  # discard port: connection refused
    result = run_plan(index_server, env, "torch", python=pyenv("3.11"), torch_index_url=dead)
    assert result.ok
    assert result.backend.name == "pypi"
    assert "auto, PyTorch index unreachable" in result.backend.source
    assert any("could not be read" in w and "refused" in w for w in result.warnings)


def test_offline_plans_from_the_cache_and_says_how_old(
    index_server: IndexServer, tmp_path: Path, env: dict[str, str]
) -> None:
    fresh = {**env, "TORCHUP_CACHE_DIR": str(tmp_path / "cache")}
    online = run_plan(
        index_server, fresh, "torch==2.5.1", "torchvision", python=pyenv("3.10"), backend="cpu"
    )
    index_server.reset_log()
    offline = run_plan(
        index_server,
        fresh,
        "torch==2.5.1",
        "torchvision",
        python=pyenv("3.10"),
        backend="cpu",
        offline=True,
    )
    assert index_server.requests == []
    assert pins(offline) == pins(online)
    assert any(w.startswith("offline: planned from cached pages") for w in offline.warnings)


def test_unknown_python_and_bad_requirement_are_usage_errors(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    with pytest.raises(PythonNotFoundError) as err:
        run_plan(index_server, env, "torch", python="3.99")
    assert "3.10.13" in str(err.value)
    with pytest.raises(UsageError, match="invalid requirement 'torch>=>2'"):
        run_plan(index_server, env, "torch>=>2", python=pyenv("3.11"))


def test_broken_interpreter_is_a_clear_failure(
    index_server: IndexServer, tmp_path: Path, env: dict[str, str]
) -> None:
    broken = tmp_path / "python3"
    broken.write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(InterpreterError):
        run_plan(index_server, env, "torch", python=str(broken))


# -- the CLI: exit codes, one JSON document, no tracebacks --------------------------------


def local_indexes(server: IndexServer) -> tuple[str, ...]:
    return ("--torch-index-url", server.torch_url, "--index-url", server.pypi_url)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torchup", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


PLAN_KEYS = {
    "schema",
    "ok",
    "requirements",
    "python",
    "backend",
    "accelerator",
    "variants",
    "sources",
    "packages",
    "commands",
    "problems",
    "alternatives",
    "warnings",
    "fallback",
}


def test_plan_json_schema_is_pinned(index_server: IndexServer, env: dict[str, str]) -> None:
    proc = cli(
        env,
        "plan",
        "torch==2.5.1",
        "torchvision",
        "--python",
        pyenv("3.10"),
        "--backend",
        "cpu",
        *local_indexes(index_server),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == PLAN_KEYS
    assert doc["schema"] == 1
    assert doc["ok"] is True
    assert {"executable", "version", "implementation"} <= set(doc["python"])
    assert {"name", "source"} <= set(doc["backend"])
    for pkg in doc["packages"]:
        assert {"name", "version", "local", "filename", "url", "sha256", "index"} <= set(pkg)
    assert doc["packages"][1]["version"] == "0.20.1+cpu"
    assert doc["commands"][0][:4] == [pyenv("3.10"), "-m", "pip", "install"]
    assert set(doc["alternatives"]) == {"versions", "pythons", "build_script"}
    assert doc["fallback"] is None  # set only when auto fell back to PyPI (test_fallback.py)


def test_plan_json_failure_document(index_server: IndexServer, env: dict[str, str]) -> None:
    proc = cli(
        env,
        "plan",
        "torch==1.10.0",
        "--python",
        pyenv("3.10"),
        "--backend",
        "pypi",
        "--index-url",
        index_server.pypi_url,
        "--json",
    )
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    (problem,) = doc["problems"]
    assert set(problem) == {"requirement", "message", "rejected"}
    assert {"filename", "reason"} == set(problem["rejected"][0])
    assert doc["alternatives"]["versions"][0] == "torch==1.11.0"
    alt = doc["alternatives"]["pythons"][0]
    assert {"executable", "version", "command"} <= set(alt)


def test_pythons_json_schema_is_pinned(env: dict[str, str]) -> None:
    proc = cli(env, "pythons", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == 1
    keys = {
        "executable",
        "version",
        "implementation",
        "free_threaded",
        "kind",
        "source",
        "tags",
        "error",
    }
    assert all(keys <= set(p) for p in doc["pythons"])
    versions = {p["version"] for p in doc["pythons"]}
    assert {"2.7.18", "3.6.15", "3.10.13", "3.13.0"} <= versions


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["plan", "torch>=>2"], 2, "invalid requirement"),
        (["plan", "torch", "--python", "3.99"], 2, "no Python matches --python '3.99'"),
        (["plan", "torch", "--backend", "cuda"], 2, "unknown backend 'cuda'"),
        (["plan", "torch", "--bogus"], 2, "unrecognized arguments"),
        (
            ["plan", "torch", "--backend", "pypi", "--index-url", "https://[::1/simple"],
            2,
            "not a valid URL",
        ),
    ],
)
def test_cli_bad_input_exits_cleanly(
    env: dict[str, str], args: list[str], code: int, needle: str
) -> None:
    proc = cli(env, *args)
    assert proc.returncode == code
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    if code == 2:
        assert proc.stdout == ""


def test_cli_unreachable_sources_fail_in_bounded_time(env: dict[str, str]) -> None:
    started = time.monotonic()
    proc = cli(
        env,
        "plan",
        "torch",
        "--python",
        pyenv("3.11"),
        "--backend",
        "cpu",
        "--torch-index-url",
        "http://127.0.0.1:9/whl",
        "--index-url",
        "http://127.0.0.1:9/simple",
    )
    assert time.monotonic() - started < 20
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "refused" in proc.stdout + proc.stderr


def test_cli_refuses_plain_http_to_other_hosts(env: dict[str, str]) -> None:
    proc = cli(
        env,
        "plan",
        "torch",
        "--python",
        pyenv("3.11"),
        "--backend",
        "pypi",
        "--index-url",
        "http://user:hunter2@example.invalid/simple",
    )
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "hunter2" not in out
    assert "user:****@example.invalid" in out
    assert "plain http:// to a non-local host is refused" in out
    assert "Traceback" not in out


@pytest.mark.network
def test_live_pypi_plan_for_torch_2_5_1_and_torchvision(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYENV_ROOT": str(PYENV),
        "PIP_CONFIG_FILE": os.devnull,
        "TORCHUP_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = plan(["torch==2.5.1", "torchvision"], python=pyenv("3.10"), backend="pypi", env=env)
    assert result.ok
    assert pins(result) == ["torch==2.5.1", "torchvision==0.20.1"]


def test_a_variant_the_index_does_not_offer_lists_those_it_does(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    result = run_plan(index_server, env, "torch", python=pyenv("3.11"), backend="cu999")
    assert not result.ok
    (warning,) = [w for w in result.warnings if "offers no cu999" in w]
    offered = warning.split("it offers: ", 1)[1].split(", ")
    assert offered == index_server.variants()
    assert {"cpu", "cu126", "rocm6.2.4", "xpu"} <= set(offered)


def test_a_pinned_companion_alone_plans_the_torch_it_was_built_for(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    result = run_plan(index_server, env, "torchvision==0.20.1", python=pyenv("3.10"), backend="cpu")
    assert result.ok, result.problems
    assert pins(result) == ["torch==2.5.1+cpu", "torchvision==0.20.1+cpu"]


def test_other_packages_are_planned_as_plain_builds_on_a_variant_backend(
    index_server: IndexServer, tmp_path: Path, env: dict[str, str]
) -> None:
    from indexserver import make_wheel

    links = tmp_path / "links"
    links.mkdir()
    name = "numpy-2.1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    meta = b"Metadata-Version: 2.1\nName: numpy\nVersion: 2.1.0\n"
    (links / name).write_bytes(make_wheel(name, meta))
    result = run_plan(
        index_server,
        env,
        "torch==2.5.1",
        "numpy",
        python=pyenv("3.10"),
        backend="cpu",
        find_links=[str(links)],
    )
    assert result.ok, result.problems
    assert pins(result) == ["torch==2.5.1+cpu", "numpy===2.1.0"]
    assert result.packages[1].variant is None
    # the find-links folder given to torchup is handed to pip as well
    cmd = result.commands[0]
    assert cmd[cmd.index("--find-links") + 1] == str(links)


def test_only_the_chosen_files_of_a_find_links_folder_are_hashed(
    index_server: IndexServer, tmp_path: Path, env: dict[str, str]
) -> None:
    """A folder is listed, not hashed whole (every project and version in it, GBs in a
    wheelhouse): the file the plan chose gets its sha256, the others cost nothing."""
    import hashlib

    from indexserver import make_wheel

    links = tmp_path / "links"
    links.mkdir()
    tag = "cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64"
    names = [f"numpy-2.1.0-{tag}.whl", f"numpy-2.0.0-{tag}.whl", f"scipy-1.14.0-{tag}.whl"]
    for name in names:
        project, version = name.split("-")[:2]
        meta = f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode()
        (links / name).write_bytes(make_wheel(name, meta))
    cache = tmp_path / "cache"
    result = run_plan(
        index_server,
        {**env, "TORCHUP_CACHE_DIR": str(cache)},
        "torch==2.5.1",
        "numpy",
        python=pyenv("3.10"),
        backend="cpu",
        find_links=[str(links)],
    )
    assert result.ok, result.problems
    numpy = result.packages[1]
    assert numpy.filename == names[0]
    assert numpy.sha256 == hashlib.sha256((links / names[0]).read_bytes()).hexdigest()
    assert result.to_dict()["packages"][1]["sha256"] == numpy.sha256
    hashed = [json.loads(p.read_text())["path"] for p in (cache / "filehashes").glob("*.json")]
    assert hashed == [str((links / names[0]).resolve())]


def test_torchup_backend_variable_picks_the_variant(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    result = run_plan(
        index_server,
        {**env, "TORCHUP_BACKEND": "cu124"},
        "torch==2.5.1",
        "torchaudio",
        python=pyenv("3.10"),
    )
    assert result.ok, result.problems
    assert (result.backend.name, result.backend.source) == ("cu124", "TORCHUP_BACKEND")
    assert pins(result) == ["torch==2.5.1+cu124", "torchaudio==2.5.1+cu124"]


def test_mps_off_apple_silicon_and_direct_references_are_usage_errors(
    index_server: IndexServer, env: dict[str, str]
) -> None:
    with pytest.raises(UsageError, match="mps needs macOS on Apple silicon"):
        run_plan(index_server, env, "torch", python=pyenv("3.11"), backend="mps")
    with pytest.raises(UsageError, match="direct reference"):
        run_plan(index_server, env, "torch @ https://example.org/torch.whl", python=pyenv("3.11"))


def test_human_output_names_every_fact(index_server: IndexServer, env: dict[str, str]) -> None:
    proc = cli(
        env,
        "plan",
        "torch==1.10.0",
        "--python",
        pyenv("3.10"),
        "--backend",
        "cpu",
        *local_indexes(index_server),
    )
    assert proc.returncode == 1
    out = proc.stdout
    assert f"python   3.10.13 cpython x86_64  {pyenv('3.10')}" in out
    assert "backend  cpu  (--backend)" in out
    assert "1.10.0 has cp36-cp39 wheels only" in out
    assert "built for cp39-cp39, not this Python 3.10.13" in out
    assert "nearest versions that fit Python 3.10.13: torch==1.11.0" in out
    assert f"3.9.18: {pyenv('3.9')} -m pip install torch==1.10.0+cpu --index-url" in out
    assert "Traceback" not in proc.stderr


def test_json_error_document_on_expected_failure(env: dict[str, str]) -> None:
    proc = cli(env, "plan", "torch", "--python", "3.99", "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert doc["error"]["type"] == "PythonNotFoundError"


def test_extras_reach_every_install_command(index_server: IndexServer, env: dict[str, str]) -> None:
    result = run_plan(
        index_server, env, "torch[opt-einsum]==1.10.0", python=pyenv("3.10"), backend="pypi"
    )
    assert not result.ok
    assert result.alternative_pythons
    assert all("torch[opt-einsum]===1.10.0" in a.command for a in result.alternative_pythons)
    ok = run_plan(
        index_server, env, "torch[opt-einsum]==1.10.0", python=pyenv("3.9"), backend="pypi"
    )
    assert "torch[opt-einsum]===1.10.0" in ok.commands[0]


@pytest.mark.parametrize("variant", ["cu121", "rocm6.2", "xpu"])
def test_every_variant_kind_pairs_companions_from_the_same_directory(
    index_server: IndexServer, env: dict[str, str], variant: str
) -> None:
    result = run_plan(
        index_server,
        env,
        "torch==2.5.1",
        "torchvision",
        "torchaudio",
        python=pyenv("3.10"),
        backend=variant,
    )
    assert result.ok, result.problems
    assert pins(result) == [
        f"torch==2.5.1+{variant}",
        f"torchvision==0.20.1+{variant}",
        f"torchaudio==2.5.1+{variant}",
    ]
    assert {p.index for p in result.packages} == {
        f"{index_server.torch_url}/{variant}/{name}/"
        for name in ("torch", "torchvision", "torchaudio")
    }


def test_a_companion_found_only_as_plain_builds_is_explained(
    env: dict[str, str], index_server: IndexServer, tmp_path: Path
) -> None:
    # The PyTorch index's cpu directory has torch but no torchvision; PyPI (captured)
    # lists torchvision, but only plain builds, which are not cpu builds.
    import localindex
    from indexserver import make_wheel

    name = "torch-2.8.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    meta = "Metadata-Version: 2.1\nName: torch\nVersion: 2.8.0+cpu\n"
    localindex.publish(
        tmp_path, {"cpu": [localindex.File(name, make_wheel(name, meta.encode()), meta)]}
    )
    with localindex.serve(tmp_path) as served:
        proc = cli(
            env, "plan", "torch==2.8.0", "torchvision", "--python", pyenv("3.11"),
            "--backend", "cpu", "--torch-index-url", served.url,
            "--index-url", index_server.pypi_url, "--json",
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    (problem,) = json.loads(proc.stdout)["problems"]
    assert problem["requirement"] == "torchvision"
    assert problem["message"].startswith(
        "no cpu build of torchvision on the sources read: the PyTorch index's cpu directory "
        "lists none, and pip's sources list only plain builds of it ("
    )
    assert "`--backend pypi` plans the whole family" in problem["message"]
