"""``torchup lock`` (the library): real uv, real pip, real venvs, real local servers.

Every source is a folder served on 127.0.0.1 by ``http.server`` (tests/localindex.py):
a PyTorch-layout index with a generated CPU torch, torchvision and torchaudio, and a
PyPI-like simple index with generated stand-ins for their dependencies (filelock,
sympy and its mpmath, numpy, ...). A plan is made with ``torchup.plan()`` against them,
then locked with uv; nothing is downloaded from the internet.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import tomllib

import localindex
import torchup
from indexserver import make_wheel
from localindex import File
from realtorch import uv as find_test_uv
from test_plan import pyenv
from torchup.errors import TorchupError, UsageError
from torchup.export import _toml
from torchup.export.fit import LockUnfitError, lock_fits
from torchup.export.lock import compile_command, lock, python_platform
from torchup.export.lockcheck import check_lock
from torchup.export.pylock import (
    Lock,
    LockError,
    LockMismatchError,
    diff_locks,
    parse_lock,
    read_lock,
    strip_credentials,
)
from torchup.hardware.accelerators import Accelerator, Gpu

TAG = "cp311-cp311-manylinux_2_28_x86_64"
FAMILY_FILES = {
    "torch": f"torch-2.8.0+cpu-{TAG}.whl",
    "torchvision": f"torchvision-0.23.0+cpu-{TAG}.whl",
    "torchaudio": f"torchaudio-2.8.0+cpu-{TAG}.whl",
}
#: (name, version, tag, Requires-Dist): the dependencies' stand-ins on the simple index
DEPENDENCIES = [
    ("filelock", "3.15.4", "py3-none-any", ()),
    ("filelock", "3.16.1", "py3-none-any", ()),
    ("typing_extensions", "4.12.2", "py3-none-any", ()),
    ("sympy", "1.13.3", "py3-none-any", ("mpmath<1.4,>=1.1.0",)),
    ("mpmath", "1.3.0", "py3-none-any", ()),
    ("numpy", "2.1.0", TAG, ()),
    ("numpy", "2.1.0", "cp311-cp311-win_amd64", ()),
    ("pillow", "11.0.0", TAG, ()),
]
needs_uv = pytest.mark.skipif(find_test_uv() is None, reason="needs uv")


def metadata(name: str, version: str, requires: tuple[str, ...] = ()) -> str:
    head = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    return head + "".join(f"Requires-Dist: {r}\n" for r in requires)


def family(marker: bytes = b"") -> dict[str, File]:
    """The CPU torch family; ``marker`` changes torch's bytes (so its sha256)."""
    requires = {
        "torch": ("filelock", "typing-extensions>=4.10.0", "sympy>=1.13.3",
                  'pywin32; sys_platform == "win32"'),
        "torchvision": ("torch==2.8.0", "numpy", "pillow!=8.3.*,>=5.3.0"),
        "torchaudio": ("torch==2.8.0",),
    }  # fmt: skip
    out = {}
    for name, filename in FAMILY_FILES.items():
        meta = metadata(name, filename.split("-")[1], requires[name])
        extra = {"torch/_stamp.py": marker} if name == "torch" and marker else None
        out[name] = File(filename, make_wheel(filename, meta.encode(), files=extra), meta)
    return out


def publish_family(root: Path, marker: bytes = b"") -> None:
    for name, f in family(marker).items():
        localindex.publish(root, {"cpu": [f]}, project=name)


def publish_simple(
    root: Path, deps: list[tuple[str, str, str, tuple[str, ...]]], *, json_pages: bool = False
) -> None:
    """A PEP 503 index at ``root/simple`` (pages) and ``root/files`` (the wheels); with
    ``json_pages`` each page also as PEP 691 JSON with PEP 700 sizes, as PyPI serves it
    (``localindex.serve`` answers a JSON ``Accept`` with it)."""
    (root / "files").mkdir(parents=True, exist_ok=True)
    pages: dict[str, list[dict[str, Any]]] = {}
    for name, version, tag, requires in deps:
        filename = f"{name}-{version}-{tag}.whl"
        data = make_wheel(filename, metadata(name, version, requires).encode())
        (root / "files" / filename).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        entry = {"filename": filename, "url": f"/files/{filename}", "size": len(data),
                 "hashes": {"sha256": sha}, "version": version}  # fmt: skip
        pages.setdefault(name.replace("_", "-").lower(), []).append(entry)
    for project, files in pages.items():
        (root / "simple" / project).mkdir(parents=True, exist_ok=True)
        links = [f'<a href="{f["url"]}#sha256={f["hashes"]["sha256"]}">{f["filename"]}</a>'
                 for f in files]  # fmt: skip
        body = "<!DOCTYPE html>\n<html><body>\n" + "<br/>\n".join(links) + "\n</body></html>\n"
        (root / "simple" / project / "index.html").write_text(body)
        if json_pages:
            versions = sorted({f.pop("version") for f in files})
            doc = {"meta": {"api-version": "1.1"}, "name": project, "versions": versions,
                   "files": files}  # fmt: skip
            (root / "simple" / project / "index.json").write_text(json.dumps(doc))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """(folder, PyTorch index URL, simple index URL), served while the test runs."""
    root = tmp_path / "site"
    publish_family(root)
    publish_simple(root, DEPENDENCIES)
    with localindex.serve(root) as served:
        yield root, served.url, served.url.removesuffix("/whl") + "/simple"


def lock_env(tmp: Path) -> dict[str, str]:
    """No pip config, private caches under ``tmp``."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp / "home"),
        "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
        "PIP_CONFIG_FILE": os.devnull,
        "TORCHUP_CACHE_DIR": str(tmp / "cache"),
        "UV_CACHE_DIR": str(tmp / "uv-cache"),
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return lock_env(tmp_path)


def uv() -> str:
    found = find_test_uv()
    assert found is not None
    return found


def make_plan(site: tuple[Path, str, str], env: dict[str, str], *reqs: str) -> torchup.Plan:
    _root, torch_url, simple = site
    return torchup.plan(
        list(reqs or ("torch==2.8.0", "torchvision", "torchaudio")),
        python=pyenv("3.11"),
        backend="cpu",
        torch_index_url=torch_url,
        index_url=simple,
        env=env,
    )


# -- making a lock ---------------------------------------------------------------------


@needs_uv
def test_the_lock_holds_the_plans_files_and_every_dependency_with_url_size_and_hash(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env)
    assert plan.ok, plan.problems
    out = tmp_path / "pylock.toml"
    result = lock(plan, output=out, uv=uv(), env=env)
    doc = tomllib.loads(out.read_text())
    assert doc["lock-version"] == "1.0"
    names = {p["name"]: p["version"] for p in doc["packages"]}
    assert names == {
        "torch": "2.8.0+cpu",
        "torchvision": "0.23.0+cpu",
        "torchaudio": "2.8.0+cpu",
        "filelock": "3.16.1",
        "typing-extensions": "4.12.2",
        "sympy": "1.13.3",
        "mpmath": "1.3.0",
        "numpy": "2.1.0",
        "pillow": "11.0.0",
    }  # fmt: skip  (pywin32 is for Windows only: not in a Linux lock)
    root = site[0]
    for pkg in doc["packages"]:
        [wheel] = pkg["wheels"]  # one file each: the one this platform installs
        assert wheel["url"].startswith("http://127.0.0.1:")
        on_disk = next(root.rglob(wheel["name"]))
        assert wheel["size"] == on_disk.stat().st_size
        assert wheel["hashes"]["sha256"] == hashlib.sha256(on_disk.read_bytes()).hexdigest()
    planned = {p.name: (p.filename, p.sha256) for p in plan.packages}
    locked = {p.name: (p.files[0].filename, p.files[0].sha256) for p in result.lock.packages}
    assert {n: locked[n] for n in planned} == planned
    assert result.lock.package("numpy").files[0].filename == f"numpy-2.1.0-{TAG}.whl"  # type: ignore[union-attr]
    # what it was made for
    made = doc["tool"]["torchup"]
    assert made["variant"] == "cpu"
    assert made["backend"] == "cpu"
    assert made["python"]["version"] == plan.python.version
    assert made["python"]["platform"] == "x86_64-manylinux_2_28" or made["python"][
        "platform"
    ].startswith("x86_64-manylinux_2_")
    assert made["python"]["tag"] == plan.python.tags[0]
    assert made["version"] == torchup.__version__
    assert {f["name"]: f["index"] for f in made["files"]} == {
        p.name: p.index for p in plan.packages
    }
    assert made["sources"]["index_url"] == site[1] + "/cpu"
    assert made["sources"]["extra_index_urls"] == [site[2]]
    assert doc["requires-python"] == "==3.11.*"
    assert read_lock(out).to_dict() == result.lock.to_dict()
    # sizes are remembered by sha256: locking again asks for no file's headers
    sizes = Path(env["TORCHUP_CACHE_DIR"]) / "lock" / "sizes.json"
    assert len(json.loads(sizes.read_text())) == 9
    again = lock(plan, output=out, uv=uv(), env=env, force=True)
    assert again.lock.to_dict() == result.lock.to_dict()


@needs_uv
def test_sizes_from_json_pages_are_not_asked_for_again(tmp_path: Path) -> None:
    """PyPI's JSON pages give every file's size (PEP 700), uv's lock carries them, and
    torchup asks only for the sizes an HTML page left out (the PyTorch index's)."""
    made = {}
    for pages in ("html", "json"):
        root = tmp_path / pages
        publish_family(root)
        publish_simple(root, DEPENDENCIES, json_pages=pages == "json")
        e = lock_env(root)
        with localindex.serve(root) as served:
            site_ = (root, served.url, served.url.removesuffix("/whl") + "/simple")
            result = lock(make_plan(site_, e), output=root / "pylock.toml", uv=uv(), env=e)
            asked = [p for p, agent in served.agents
                     if p.startswith("/files/") and agent.startswith("torchup/")]  # fmt: skip
        made[pages] = (result.lock, asked)
    (html, html_asked), (from_json, json_asked) = made["html"], made["json"]

    def files(lk: Lock) -> list[tuple[str, int | None, str]]:
        return [(f.filename, f.size, f.sha256) for p in lk.packages for f in p.files]

    assert files(html) == files(from_json)  # the same lock either way, sizes included
    # from HTML pages torchup asks for each dependency's headers, from JSON pages for none
    # (the family's sizes it asks for while uv runs: the PyTorch index's pages are HTML)
    deps = sorted(f"/files/{name}" for name, _size, _sha in files(html) if "+cpu" not in name)
    assert sorted(html_asked) == deps
    assert json_asked == []


@needs_uv
def test_the_requirements_form_installs_with_require_hashes_into_a_fresh_venv(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env)
    reqs = tmp_path / "requirements.txt"
    lock(plan, output=tmp_path / "pylock.toml", uv=uv(), env=env, requirements=reqs)
    text = reqs.read_text()
    assert f"--index-url {site[1]}/cpu" in text
    assert f"--extra-index-url {site[2]}" in text
    assert "torch==2.8.0+cpu \\\n    --hash=sha256:" in text
    venv = tmp_path / "venv"
    subprocess.run([pyenv("3.11"), "-m", "venv", str(venv)], check=True, capture_output=True)
    pip_env = {
        "PATH": os.environ["PATH"],
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--require-hashes", "-r", str(reqs)],
        env=pip_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"],
        env=pip_env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "torch==2.8.0+cpu" in frozen
    assert "mpmath==1.3.0" in frozen
    assert "torchvision==0.23.0+cpu" in frozen


@needs_uv
def test_an_existing_lock_is_kept_unless_forced(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env, "torch==2.8.0")
    out = tmp_path / "pylock.toml"
    out.write_text("mine\n")
    with pytest.raises(UsageError, match="exists"):
        lock(plan, output=out, uv=uv(), env=env)
    assert out.read_text() == "mine\n"
    lock(plan, output=out, uv=uv(), env=env, force=True)
    assert read_lock(out).package("torch") is not None
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []


@needs_uv
def test_the_lock_and_its_requirements_file_are_replaced_together_or_not_at_all(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env, "torch==2.8.0")
    out = tmp_path / "pylock.toml"
    out.write_text("mine\n")
    # a name the folder takes, but its temporary sibling (".NAME.XXXXXXXX.tmp") is
    # longer than a file name may be: the second file cannot be written
    pins = tmp_path / ("r" * 240 + ".txt")
    pins.write_text("my pins\n")
    with pytest.raises(TorchupError, match=r"cannot write .*r{240}"):
        lock(plan, output=out, uv=uv(), env=env, requirements=pins, force=True)
    assert out.read_text() == "mine\n"  # not a new lock beside the old pins
    assert pins.read_text() == "my pins\n"
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []
    done = lock(plan, output=out, uv=uv(), env=env, requirements=tmp_path / "r.txt", force=True)
    assert dict(done.written) == {
        out: out.read_bytes(),
        tmp_path / "r.txt": (tmp_path / "r.txt").read_bytes(),
    }
    assert done.lock.path == out
    assert done.lock == read_lock(out)


@needs_uv
def test_a_file_that_changed_after_planning_is_an_error_not_a_swap(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env)
    publish_family(site[0], marker=b"rebuilt = True\n")  # same name, other bytes
    out = tmp_path / "pylock.toml"
    with pytest.raises(LockMismatchError) as caught:
        lock(plan, output=out, uv=uv(), env=env)
    message = str(caught.value)
    assert FAMILY_FILES["torch"] in message
    assert "changed since it was planned" in message
    assert plan.packages[0].sha256 in message
    assert "hint:" in message
    assert not out.exists()


@needs_uv
def test_uv_failing_is_a_lock_error_naming_what_is_missing(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env)
    for page in ("mpmath",):
        (site[0] / "simple" / page / "index.html").unlink()
    with pytest.raises(LockError, match="mpmath") as caught:
        lock(plan, output=tmp_path / "pylock.toml", uv=uv(), env=env)
    assert "uv could not lock" in caught.value.message


def test_the_uv_command_pins_the_family_and_passes_only_the_plans_sources(
    site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env)
    argv, stdin = compile_command(plan, uv="uv")
    assert stdin.splitlines() == ["torch==2.8.0+cpu", "torchvision==0.23.0+cpu",
                                  "torchaudio==2.8.0+cpu"]  # fmt: skip
    assert argv[:4] == ["uv", "pip", "compile", "-"]
    assert "--no-config" in argv
    at = argv.index("--index-url")
    assert argv[at : at + 4] == ["--index-url", site[1] + "/cpu", "--extra-index-url", site[2]]
    assert argv[argv.index("--python-version") + 1] == plan.python.version
    assert argv[argv.index("--index-strategy") + 1] == "unsafe-best-match"
    assert python_platform(plan.python).startswith("x86_64-manylinux_2_")


def test_uv_platform_names_follow_the_interpreters_tags(
    site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    py = make_plan(site, env, "torch==2.8.0").python

    def on(system: str, machine: str, tags: tuple[str, ...]) -> str:
        markers = {**py.markers, "sys_platform": system, "platform_machine": machine}
        return python_platform(replace(py, markers=markers, tags=tags))

    assert on("linux", "x86_64", ("cp311-cp311-manylinux_2_30_x86_64",)) == "x86_64-manylinux_2_28"
    assert on("linux", "aarch64", ("cp311-cp311-manylinux_2_17_aarch64",)) == (
        "aarch64-manylinux_2_17"
    )
    assert on("linux", "x86_64", ("cp311-cp311-musllinux_1_2_x86_64",)) == (
        "x86_64-unknown-linux-musl"
    )
    assert on("darwin", "arm64", ()) == "aarch64-apple-darwin"
    assert on("win32", "AMD64", ()) == "x86_64-pc-windows-msvc"
    with pytest.raises(LockError, match="uv cannot resolve"):
        on("linux", "s390x", ())


# -- checking a lock -------------------------------------------------------------------


@needs_uv
def test_check_says_it_still_installs_then_reports_a_newer_file_and_a_lost_one(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    lock(make_plan(site, env), output=out, uv=uv(), env=env)

    def plan_fn(reqs: object) -> torchup.Plan:
        assert list(reqs) == ["torch==2.8.0", "torchvision", "torchaudio"]  # type: ignore[call-overload]
        return make_plan(site, env)

    first = check_lock(out, plan_fn=plan_fn, uv=uv(), env=env)
    assert first.still_installs, first.to_dict()
    assert first.up_to_date, first.to_dict()
    assert first.changes == ()
    assert len(first.files) == 9

    publish_simple(site[0], [*DEPENDENCIES, ("filelock", "3.17.0", "py3-none-any", ())])
    newer = check_lock(out, plan_fn=plan_fn, uv=uv(), env=env)
    assert newer.still_installs
    assert not newer.up_to_date
    assert [c.describe() for c in newer.changes] == ["filelock 3.16.1 -> 3.17.0"]
    assert newer.to_dict()["changes"][0]["kind"] == "version"

    (site[0] / "files" / "mpmath-1.3.0-py3-none-any.whl").unlink()
    lost = check_lock(out, plan_fn=plan_fn, uv=uv(), env=env)
    assert not lost.still_installs
    [gone] = [f for f in lost.files if not f.ok]
    assert gone.filename == "mpmath-1.3.0-py3-none-any.whl"
    assert "404" in gone.reason
    assert lost.to_dict()["still_installs"] is False


@needs_uv
def test_check_reports_a_file_whose_hash_changed(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    out = tmp_path / "pylock.toml"
    lock(make_plan(site, env, "torch==2.8.0"), output=out, uv=uv(), env=env)
    # sympy rebuilt under the same name: same version, other bytes and hash
    deps = [d if d[0] != "sympy" else (*d[:3], ("mpmath>=1.1.0",)) for d in DEPENDENCIES]
    publish_simple(site[0], deps)
    checked = check_lock(out, plan_fn=lambda reqs: make_plan(site, env, *reqs), uv=uv(), env=env)
    assert not checked.still_installs
    [bad] = [f for f in checked.files if not f.ok]
    assert bad.package == "sympy"
    assert "sha256" in bad.reason or "size" in bad.reason
    assert [c.kind for c in checked.changes] == ["files"]


# -- reading and fitting ---------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pylock.toml"
    path.write_text(text)
    return path


GOOD_FILE = '{ name = "a-1-py3-none-any.whl", url = "http://x/a-1-py3-none-any.whl", size = 3'


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lock-version = [", "is not TOML"),
        ('created-by = "x"\n', "has no lock-version"),
        ('lock-version = "2.0"\ncreated-by = "x"\n', "lock-version '2.0'"),
        (
            'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\nversion = "1"\n'
            f'wheels = [{GOOD_FILE}, hashes = {{ sha256 = "abc" }} }}]\n',
            "sha256 of a-1-py3-none-any.whl (a) is malformed: 'abc'",
        ),
        (
            'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\nversion = "1"\n'
            f'wheels = [{GOOD_FILE}, hashes = {{ md5 = "abc" }} }}]\n',
            "has no sha256",
        ),
        (
            'lock-version = "1.0"\ncreated-by = "uv"\n[[packages]]\nname = "app"\n'
            'directory = { path = "." }\n',
            "package 'app' has a directory and no wheel or sdist; torchup locks list index",
        ),
        *(
            (
                f'lock-version = "1.0"\ncreated-by = "torchup"\npackages = []\n'
                f'[tool.torchup]\n{top}[tool.torchup.python]\nversion = "3.11"\n{inner}',
                says,
            )
            for top, inner, says in [
                ("", 'tag-count = "many"\n', "python.tag-count is a string, not an integer"),
                ("", 'markers = "linux"\n', "python.markers is a string, not a table"),
                ('requirements = "torch==2.8.0"\n', "", "requirements is a string, not an array"),
                ("requirements = [1]\n", "", "requirements holds more than strings"),
                ("", 'free-threaded = "no"\n', "free-threaded is a string, not true or false"),
            ]
        ),
    ],
)
def test_bad_locks_say_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(LockError) as caught:
        read_lock(write(tmp_path, text))
    assert says in caught.value.message
    assert isinstance(caught.value, TorchupError)


def test_a_missing_lock_is_a_lock_error(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="cannot read the lock"):
        read_lock(tmp_path / "nope.toml")


def test_check_refuses_a_lock_without_torch_instead_of_planning_torch(tmp_path: Path) -> None:
    path = write(tmp_path, 'lock-version = "1.0"\ncreated-by = "uv"\npackages = []\n')
    planned: list[object] = []

    def plan_fn(reqs: object) -> torchup.Plan:
        planned.append(reqs)
        raise AssertionError("planned")

    with pytest.raises(LockError, match="holds no torch"):
        check_lock(path, plan_fn=plan_fn, uv="uv")
    assert planned == []  # nothing was planned (torch, by default, it used to be)


def nvidia(driver: str) -> Accelerator:
    gpu = Gpu(vendor="nvidia", index=0, name="NVIDIA GeForce RTX 4090", arch="8.9",
              memory_mib=None, source="test")  # fmt: skip
    return Accelerator(kind="cuda", source="test", driver=driver, driver_source="test", gpus=(gpu,))


@needs_uv
def test_a_lock_made_for_other_tags_or_another_build_is_refused_with_the_reason(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    plan = make_plan(site, env, "torch==2.8.0")
    made = lock(plan, output=tmp_path / "pylock.toml", uv=uv(), env=env).lock
    py = plan.python
    cpu = Accelerator(kind="cpu", source="test")
    assert lock_fits(made, py, cpu).ok

    py312 = replace(
        py,
        version="3.12.1",
        markers={**py.markers, "python_version": "3.12", "python_full_version": "3.12.1"},
        tags=tuple(t.replace("cp311", "cp312") for t in py.tags),
    )
    fit = lock_fits(made, py312, cpu)
    assert not fit.ok
    text = "\n".join(fit.reasons)
    assert "requires Python ==3.11.*" in text
    assert FAMILY_FILES["torch"] in text
    assert TAG in text
    assert "cp312-cp312" in text
    with pytest.raises(LockUnfitError, match=r"does not fit Python 3\.12\.1"):
        fit.check()

    # the same lock, had it held the CUDA 12.6 build: refused where the driver is too old
    torch = made.package("torch")
    assert torch is not None
    cuda_torch = replace(torch, version="2.8.0+cu126")
    cuda_lock = replace(
        made, packages=tuple(cuda_torch if p is torch else p for p in made.packages)
    )
    old_driver = lock_fits(cuda_lock, py, nvidia("470.57.02"))
    assert not old_driver.ok
    assert "cu126" in old_driver.reasons[0]
    assert "470.57.02" in old_driver.reasons[0]
    assert not lock_fits(cuda_lock, py, cpu).ok
    assert "no NVIDIA GPU" in lock_fits(cuda_lock, py, cpu).reasons[0]
    assert lock_fits(cuda_lock, py, nvidia("580.65.06")).ok
    assert lock_fits(made, py, nvidia("580.65.06")).notes  # a CPU lock on a GPU: noted


# -- pure parts ------------------------------------------------------------------------


def test_credentials_are_stripped_from_what_is_written() -> None:
    assert strip_credentials("https://u:p@h.example/simple") == "https://h.example/simple"
    assert strip_credentials("https://tok@h.example/s") == "https://h.example/s"
    assert strip_credentials("file:///opt/wheels") == "file:///opt/wheels"


def test_the_toml_writer_round_trips_through_tomllib() -> None:
    doc = {
        "a": "quote \" backslash \\ newline \n tab \t é",
        "n": 3,
        "b": True,
        "list": ["x", "y"],
        "t": {"k": "v", "odd key": 1, "inner": {"z": [1, 2]}},
        "rows": [{"name": "r1", "wheels": [{"url": "u", "hashes": {"sha256": "0" * 64},
                                            "upload-time": datetime.datetime(
                                                2026, 11, 15, 21, 30, 44, tzinfo=datetime.UTC)}]},
                 {"name": "r2", "skip": None}],
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, 600000,
                                  tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    }  # fmt: skip
    back = tomllib.loads(_toml.dumps(doc, inline={"wheels", "hashes"}))
    doc["rows"][1].pop("skip")  # type: ignore[index,attr-defined]
    assert back == doc


def test_diff_names_version_changes_additions_removals_and_changed_files() -> None:
    def one(name: str, version: str, sha: str) -> str:
        fn = f"{name}-{version}-py3-none-any.whl"
        return (f'[[packages]]\nname = "{name}"\nversion = "{version}"\nwheels = [{{ url = '
                f'"http://x/{fn}", hashes = {{ sha256 = "{sha * 64}" }} }}]\n')  # fmt: skip

    head = 'lock-version = "1.0"\ncreated-by = "t"\n'
    old = parse_lock(head + one("a", "1", "0") + one("b", "1", "0") + one("c", "1", "0"))
    new = parse_lock(head + one("a", "2", "0") + one("b", "1", "1") + one("d", "1", "0"))
    assert [(c.name, c.kind) for c in diff_locks(old, new)] == [
        ("a", "version"), ("b", "files"), ("c", "removed"), ("d", "added"),
    ]  # fmt: skip


def test_importing_the_lock_module_stays_light() -> None:
    code = (
        "import sys, torchup.export.lock\n"
        "heavy = [m for m in ('httpx', 'tomllib', 'torchup.index.http') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@needs_uv
def test_credentials_in_the_index_url_are_never_written_into_the_lock(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    root, torch_url, simple = site
    secret = simple.replace("http://", "http://user:s3cret@")
    plan = torchup.plan(["torch==2.8.0"], python=pyenv("3.11"), backend="cpu",
                        torch_index_url=torch_url, index_url=secret, env=env)  # fmt: skip
    out, reqs = tmp_path / "pylock.toml", tmp_path / "requirements.txt"
    result = lock(plan, output=out, uv=uv(), env=env, requirements=reqs)
    for text in (out.read_text(), reqs.read_text(), json.dumps(result.to_dict())):
        assert "s3cret" not in text
    assert f"--extra-index-url {simple}" in reqs.read_text()  # the host, without user-info
    (root / "simple" / "mpmath" / "index.html").unlink()
    cold = {**env, "UV_CACHE_DIR": str(tmp_path / "uv-cold")}  # uv reads the pages anew
    with pytest.raises(LockError) as caught:
        lock(plan, output=out, uv=uv(), env=cold, force=True)
    assert "mpmath" in str(caught.value)
    assert "s3cret" not in str(caught.value)


# -- uv's answers, remembered --------------------------------------------------------


@needs_uv
def test_the_same_lock_within_ten_minutes_does_not_run_uv_again(
    tmp_path: Path, site: tuple[Path, str, str], env: dict[str, str]
) -> None:
    from torchup.export import resolved

    calls = tmp_path / "uv-calls"
    wrapper = tmp_path / "uv"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {uv()} "$@"\n')
    wrapper.chmod(0o755)
    plan = make_plan(site, env)
    first = lock(plan, output=tmp_path / "a.toml", uv=str(wrapper), env=env)
    again = lock(plan, output=tmp_path / "b.toml", uv=str(wrapper), env=env)
    assert len(calls.read_text().splitlines()) == 1
    assert again.lock.to_dict()["packages"] == first.lock.to_dict()["packages"]
    # --refresh always asks uv (and uv asks the indexes)
    lock(plan, output=tmp_path / "c.toml", uv=str(wrapper), env=env, refresh=True)
    said = calls.read_text().splitlines()
    assert len(said) == 2
    assert "--refresh" in said[1].split()
    # an answer older than MAX_AGE is not used
    [entry] = (Path(env["TORCHUP_CACHE_DIR"]) / "lock" / "resolved").glob("*.toml")
    old = entry.stat().st_mtime - resolved.MAX_AGE - 1
    os.utime(entry, (old, old))
    lock(plan, output=tmp_path / "d.toml", uv=str(wrapper), env=env)
    assert len(calls.read_text().splitlines()) == 3
    # another plan (other pins) is another key
    lock(make_plan(site, env, "torch==2.8.0"), output=tmp_path / "e.toml", uv=str(wrapper), env=env)
    assert len(calls.read_text().splitlines()) == 4


@needs_uv
def test_a_free_threaded_target_is_refused_before_uv_runs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """uv's --python-version cannot say 3.13t: it would look for cp313 wheels and find no
    torch (or pick the GIL build of every C extension). The lock says so up front."""
    from torchup.profiles.profile import from_flags

    tag = "cp313-cp313t-manylinux_2_28_x86_64"
    root = tmp_path / "site"
    filename = f"torch-2.8.0+cpu-{tag}.whl"
    meta = metadata("torch", "2.8.0+cpu", ("numpy",))
    localindex.publish(root, {"cpu": [File(filename, make_wheel(filename, meta.encode()), meta)]})
    publish_simple(root, [("numpy", "2.1.0", tag, ())])
    profile = from_flags(python_version="3.13t", platform="manylinux_2_28_x86_64")
    with localindex.serve(root) as served:
        plan = torchup.plan(["torch==2.8.0"], python=profile.python, elsewhere=True,
                            accelerator=profile.accelerator, backend="cpu",
                            torch_index_url=served.url, env=env,
                            index_url=served.url.removesuffix("/whl") + "/simple")  # fmt: skip
        assert plan.ok, plan.problems
        out = tmp_path / "pylock.toml"
        with pytest.raises(LockError) as err:
            lock(plan, output=out, uv=uv(), env=env)
    assert err.value.message.startswith("uv cannot lock for a free-threaded Python (3.13.0t)")
    assert filename in err.value.message
    assert err.value.hint is not None
    assert "torchup install" in err.value.hint
    assert not out.exists()
    assert not Path(env["UV_CACHE_DIR"]).exists()  # uv never ran


@needs_uv
def test_a_mac_lock_takes_wheels_for_that_macos_version(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """uv assumes a macOS version of its own for aarch64-apple-darwin (an old one: without
    the target's, both locks below took numpy 2.0.0); the target's, from its tags, is
    passed as MACOSX_DEPLOYMENT_TARGET, so a macOS 14 lock takes the numpy built for 14
    and a macOS 12 lock the one built for 11."""
    from torchup.profiles.profile import from_flags

    root = tmp_path / "site"
    filename = "torch-2.8.0-cp312-none-macosx_11_0_arm64.whl"
    meta = metadata("torch", "2.8.0", ("numpy",))
    localindex.publish(root, {"cpu": [File(filename, make_wheel(filename, meta.encode()), meta)]})
    publish_simple(root, [("numpy", "2.1.0", "cp312-cp312-macosx_14_0_arm64", ()),
                          ("numpy", "2.0.0", "cp312-cp312-macosx_11_0_arm64", ())])  # fmt: skip
    versions = {}
    for macos in ("12_0", "14_0"):
        profile = from_flags(python_version="3.12", platform=f"macosx_{macos}_arm64")
        with localindex.serve(root) as served:
            simple = served.url.removesuffix("/whl") + "/simple"
            plan = torchup.plan(
                ["torch==2.8.0"], python=profile.python, elsewhere=True, env=env,
                accelerator=profile.accelerator, backend="pypi",
                index_url=f"{served.url}/cpu", extra_index_urls=[simple],
            )  # fmt: skip
            assert plan.ok, plan.problems
            made = lock(plan, output=tmp_path / f"{macos}.toml", uv=uv(), env=env)
        versions[macos] = made.lock.package("numpy").version  # type: ignore[union-attr]
    assert versions == {"12_0": "2.0.0", "14_0": "2.1.0"}


def test_a_lock_whose_files_do_not_fit_its_target_is_an_error() -> None:
    """The check after uv: every file must install on the Python the lock is for."""
    from torchup.export.lock import _fits_its_target
    from torchup.export.pylock import LockedFile, LockedPackage
    from torchup.interpreters.discover import Interpreter

    py = Interpreter(executable="/py", version="3.12.1",
                     tags=("cp312-cp312-manylinux_2_28_x86_64", "py3-none-any"),
                     markers={"python_version": "3.12", "python_full_version": "3.12.1",
                              "sys_platform": "linux"})  # fmt: skip
    wheel = "numpy-2.1.0-cp312-cp312-macosx_14_0_arm64.whl"
    file = LockedFile(filename=wheel, url=f"https://x/{wheel}", sha256="ab" * 32, size=1)
    bad = Lock(packages=(LockedPackage(name="numpy", version="2.1.0", files=(file,)),))
    with pytest.raises(LockError) as err:
        _fits_its_target(bad, py)
    assert f"numpy 2.1.0 ({wheel}) is built for cp312-cp312-macosx_14_0_arm64" in str(err.value)
