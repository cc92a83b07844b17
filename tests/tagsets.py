"""Real tag lists for a Linux x86_64 glibc 2.36 machine, built with packaging.tags.

Used by the pure-core tests as the accepted tags of a target Python; the tags of real
interpreters are checked against packaging's own ``sys_tags()`` in test_interpreters.
"""

from __future__ import annotations

from packaging.tags import compatible_tags, cpython_tags

_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def linux_platforms(arch: str = "x86_64", glibc_minor: int = 36) -> list[str]:
    plats = []
    for minor in range(glibc_minor, 4, -1):
        plats.append(f"manylinux_2_{minor}_{arch}")
        if minor in _LEGACY:
            plats.append(f"{_LEGACY[minor]}_{arch}")
    return [*plats, f"linux_{arch}"]


def cpython_linux(
    major: int, minor: int, *, abi: str | None = None, threaded: bool = False
) -> tuple[str, ...]:
    """Tags of CPython ``major.minor`` on Linux x86_64 (``abi`` e.g. cp37m, cp27mu)."""
    plats = linux_platforms()
    if abi is None:
        abi = f"cp{major}{minor}" + ("t" if threaded else "")
    # cpython_tags adds abi3 and none itself, and leaves abi3 out for free-threaded abis.
    tags = list(cpython_tags((major, minor), [abi], plats))
    tags += list(compatible_tags((major, minor), f"cp{major}{minor}", plats))
    return tuple(str(t) for t in tags)
