"""A packaging release for each target Python, to run inside that Python as an oracle.

The test venv's own packaging is not an oracle for another interpreter: each release
supports only some Pythons (26.4 needs 3.10; on 3.9 it is a SyntaxError), so a test that
borrowed it broke the day a new release came out. Instead each target gets the newest
release that supports it, pinned here with its sha256 and shipped in
``tests/data/oracle/`` (fetched once from PyPI; see its README), so the oracle is the
same on every day and needs no network. The wheels are pure Python and are imported
straight from the zip (``sys.path.insert(0, wheel)``), which is how a wheel on
``sys.path`` is loaded by zipimport; nothing is written into the target.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ORACLE_DIR = Path(__file__).parent / "data" / "oracle"

# (oldest Python it is chosen for, release, sha256 of its py3 wheel): the newest release
# whose Requires-Python admits that Python, from PyPI's file listing.
PACKAGING_FOR_PYTHON: tuple[tuple[tuple[int, int], str, str], ...] = (
    ((2, 7), "20.9", "67714da7f7bc052e064859c05c595155bd1ee9f69f76557e21f051443c20947a"),
    ((3, 6), "21.3", "ef103e05f519cdc783ae24ea4e2e0f508a9c99b2d4969652eed6a2e1ea5bd522"),
    ((3, 7), "24.0", "2ddfb553fdf02fb784c234c7ba6ccc288296ceabec964ad2eae3777778130bc5"),
    ((3, 8), "26.2", "5fc45236b9446107ff2415ce77c807cee2862cb6fac22b8a73826d0693b0980e"),
    ((3, 9), "26.3", "d7193f7c8e4e93f444fde0262bf90af30e16fa0ad0ad44cb553c87339b23cd1c"),
    ((3, 10), "26.4", "81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2"),
)


def packaging_release_for(python: tuple[int, int]) -> tuple[str, str]:
    """The (release, sha256) of packaging that supports ``python``.

    >>> packaging_release_for((3, 9))[0]
    '26.3'
    >>> packaging_release_for((3, 13))[0]
    '26.4'
    """
    chosen = [(rel, sha) for first, rel, sha in PACKAGING_FOR_PYTHON if python >= first]
    if not chosen:
        raise LookupError(f"no packaging release is pinned for Python {python}")
    return chosen[-1]


def packaging_wheel_for(python: tuple[int, int]) -> Path:
    """The checked wheel of packaging for ``python``; raises if it is missing or altered."""
    release, sha256 = packaging_release_for(python)
    [wheel] = ORACLE_DIR.glob(f"packaging-{release}-*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != sha256:
        raise ValueError(f"{wheel} has sha256 {digest}, pinned {sha256}")
    return wheel


def python_version(exe: Path) -> tuple[int, int]:
    out = subprocess.run(
        [str(exe), "-S", "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def sys_tags_inside(exe: Path) -> tuple[str, list[str]]:
    """``packaging.tags.sys_tags()`` as the target computes it: (release used, tags)."""
    version = python_version(exe)
    wheel = packaging_wheel_for(version)
    code = (
        f"import sys; sys.path.insert(0, {str(wheel)!r}); from packaging.tags import sys_tags; "
        "print('\\n'.join(map(str, sys_tags())))"
    )
    out = subprocess.run(
        [str(exe), "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return packaging_release_for(version)[0], out.split()
