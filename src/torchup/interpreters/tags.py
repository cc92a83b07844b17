"""Wheel tags (PEP 425) for a TARGET interpreter, computed from its probed facts.

``packaging.tags.sys_tags()`` answers for the running process only. This module
builds the same ordered list for another interpreter: the ABI, platform and
interpreter parts are derived from the facts ``torchup.interpreters.probe`` collected inside the
target (sysconfig variables, glibc/musl versions, ELF header, macOS version), and
then fed to packaging's public generators (``cpython_tags``, ``generic_tags``,
``compatible_tags``, ``mac_platforms``). Nothing here reads ``sys``, ``sysconfig``
or ``platform`` of the running process, and nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from packaging import __version__ as _packaging_version
from packaging.tags import (
    INTERPRETER_SHORT_NAMES,
    Tag,
    compatible_tags,
    cpython_tags,
    generic_tags,
    mac_platforms,
)

__all__ = [
    "ElfHeader",
    "ProbeFacts",
    "compute_tags",
    "cpython_abis",
    "interpreter_version",
    "parse_facts",
    "parse_tags",
    "platform_tags",
]

# packaging 26.3 moved the native ``linux_<arch>`` tags ahead of manylinux/musllinux
# (pypa/packaging#160). Follow whichever packaging is installed, so that for the
# running interpreter ``compute_tags`` equals ``packaging.tags.sys_tags()`` exactly.
_LINUX_FIRST = tuple(int(p) for p in re.findall(r"\d+", _packaging_version)[:2]) >= (26, 3)

# ELF constants used by packaging._manylinux (see its _is_linux_armhf/_is_linux_i686).
_EI_CLASS_32 = 1
_EI_DATA_LSB = 1
_EM_386 = 3
_EM_ARM = 40
_EF_ARM_ABIMASK = 0xFF000000
_EF_ARM_ABI_VER5 = 0x05000000
_EF_ARM_ABI_FLOAT_HARD = 0x00000400
# Architectures manylinux wheels exist for (PEP 599/600, packaging._manylinux).
_MANYLINUX_ARCHS = frozenset(
    {"x86_64", "aarch64", "ppc64", "ppc64le", "s390x", "loongarch64", "riscv64"}
)
# Legacy manylinux aliases: PEP 513 (2.5), PEP 571 (2.12), PEP 599 (2.17).
_LEGACY_MANYLINUX = {(2, 5): "manylinux1", (2, 12): "manylinux2010", (2, 17): "manylinux2014"}
# glibc has never had a major version bump; packaging assumes minor 50 for older ones.
_LAST_GLIBC_MINOR = 50


class ElfHeader(NamedTuple):
    """The ELF header fields of the target's executable that manylinux checks use."""

    elf_class: int
    data: int
    machine: int
    flags: int


ConfigValue = str | int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeFacts:
    """What ``torchup.interpreters.probe`` reported about one interpreter, validated and typed."""

    executable: str
    prefix: str
    base_prefix: str
    real_prefix: str | None = None
    version: str
    version_info: tuple[int, int, int]
    implementation: str
    machine: str
    system: str
    sys_platform: str
    os_name: str
    sysconfig_platform: str
    is_32bit: bool = False
    maxunicode: int = 0x10FFFF
    has_gettotalrefcount: bool = False
    extension_suffixes: tuple[str, ...] = ()
    config_vars: Mapping[str, ConfigValue] = field(default_factory=dict)
    stdlib: str = ""
    glibc: tuple[int, int] | None = None
    musl: tuple[int, int] | None = None
    elf: ElfHeader | None = None
    manylinux_module: Mapping[str, bool] | None = None
    mac_version: tuple[int, int] | None = None
    mac_machine: str = ""
    ios: tuple[tuple[int, int], str] | None = None
    android_api_level: int | None = None
    markers: Mapping[str, str] = field(default_factory=dict)

    @property
    def free_threaded(self) -> bool:
        """True for a ``--disable-gil`` build (PEP 703), which uses the ``t`` ABI flag."""
        return self.version_info >= (3, 13) and bool(self.config_vars.get("Py_GIL_DISABLED"))

    @property
    def in_venv(self) -> bool:
        """True inside a venv (PEP 405) or an old-style virtualenv (``sys.real_prefix``)."""
        return self.real_prefix is not None or self.prefix != self.base_prefix


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise ValueError(f"probe fact {key!r} is missing or not a string: {value!r}")
    return value


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _major_minor(text: object) -> tuple[int, int] | None:
    """``"2.36"`` -> ``(2, 36)``; junk after the minor is ignored, like packaging."""
    if not isinstance(text, str):
        return None
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_facts(raw: Mapping[str, Any]) -> ProbeFacts:
    """Validate the probe's JSON object into :class:`ProbeFacts`.

    Raises ``ValueError`` when a required fact is missing or malformed (a corrupt
    cache entry or a probe from an unknown interpreter); optional facts that are
    malformed are dropped.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"probe facts must be a JSON object, not {type(raw).__name__}")
    try:
        return _parse_facts(raw)
    except (TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ValueError(f"malformed probe facts: {exc!r}") from exc


def _parse_facts(raw: Mapping[str, Any]) -> ProbeFacts:
    info = raw.get("version_info")
    if not (
        isinstance(info, list) and len(info) >= 3 and all(isinstance(i, int) for i in info[:3])
    ):
        raise ValueError(f"probe fact 'version_info' is malformed: {info!r}")
    config = raw.get("config_vars")
    elf = raw.get("elf")
    mac = raw.get("mac_ver")
    ios = raw.get("ios")
    many = raw.get("manylinux_module")
    markers = raw.get("markers")
    suffixes = raw.get("extension_suffixes")
    android = raw.get("android_api_level")
    return ProbeFacts(
        executable=_str(raw, "executable"),
        prefix=_str(raw, "prefix"),
        base_prefix=_str(raw, "base_prefix"),
        real_prefix=_opt_str(raw, "real_prefix"),
        version=_str(raw, "version"),
        version_info=(info[0], info[1], info[2]),
        implementation=_str(raw, "implementation"),
        machine=_str(raw, "machine"),
        system=_str(raw, "system"),
        sys_platform=_str(raw, "sys_platform"),
        os_name=_str(raw, "os_name"),
        sysconfig_platform=_str(raw, "sysconfig_platform"),
        is_32bit=raw.get("is_32bit") is True,
        maxunicode=raw["maxunicode"] if isinstance(raw.get("maxunicode"), int) else 0x10FFFF,
        has_gettotalrefcount=raw.get("has_gettotalrefcount") is True,
        extension_suffixes=tuple(s for s in suffixes if isinstance(s, str))
        if isinstance(suffixes, list)
        else (),
        config_vars={str(k): v for k, v in config.items() if v is None or isinstance(v, str | int)}
        if isinstance(config, dict)
        else {},
        stdlib=_opt_str(raw, "stdlib") or "",
        glibc=_major_minor(raw.get("glibc")),
        musl=_major_minor(raw.get("musl")),
        elf=ElfHeader(elf["class"], elf["data"], elf["machine"], elf["flags"])
        if isinstance(elf, dict)
        and all(isinstance(elf.get(k), int) for k in ("class", "data", "machine", "flags"))
        else None,
        manylinux_module={str(k): bool(v) for k, v in many.items()}
        if isinstance(many, dict)
        else None,
        mac_version=_major_minor(mac[0]) if isinstance(mac, list) and len(mac) == 2 else None,
        mac_machine=str(mac[1]) if isinstance(mac, list) and len(mac) == 2 else "",
        ios=(v, str(ios[1]))
        if isinstance(ios, list) and len(ios) == 2 and (v := _major_minor(ios[0]))
        else None,
        android_api_level=android if isinstance(android, int) else None,
        markers={str(k): str(v) for k, v in markers.items()} if isinstance(markers, dict) else {},
    )


def _nodot(version: Sequence[int]) -> str:
    return "".join(map(str, version))


def _normalize(text: str) -> str:
    return text.replace(".", "_").replace("-", "_").replace(" ", "_")


def interpreter_version(facts: ProbeFacts) -> str:
    """The version part of the interpreter tag: ``py_version_nodot`` or major+minor."""
    nodot = facts.config_vars.get("py_version_nodot")
    return str(nodot) if nodot else _nodot(facts.version_info[:2])


def cpython_abis(facts: ProbeFacts) -> list[str]:
    """CPython ABI tags, as ``packaging.tags._cpython_abis`` derives them from ``sys``.

    >>> f = ProbeFacts(executable="", prefix="", base_prefix="", version="3.7.16",
    ...     version_info=(3, 7, 16), implementation="cpython", machine="x86_64",
    ...     system="Linux", sys_platform="linux", os_name="posix",
    ...     sysconfig_platform="linux-x86_64", config_vars={"Py_DEBUG": 0, "WITH_PYMALLOC": 1})
    >>> cpython_abis(f)
    ['cp37m']
    """
    version = facts.version_info
    nodot = _nodot(version[:2])
    cfg = facts.config_vars
    debug = threading = pymalloc = ucs4 = ""
    abis: list[str] = []
    py_debug = cfg.get("Py_DEBUG")
    # Windows doesn't set Py_DEBUG; a debug build is recognised by its _d.pyd suffix.
    if py_debug or (
        py_debug is None and (facts.has_gettotalrefcount or "_d.pyd" in facts.extension_suffixes)
    ):
        debug = "d"
    if facts.free_threaded:
        threading = "t"
    if version < (3, 8):
        pymalloc_var = cfg.get("WITH_PYMALLOC")
        if pymalloc_var or pymalloc_var is None:
            pymalloc = "m"
        if version < (3, 3):
            size = cfg.get("Py_UNICODE_SIZE")
            if size == 4 or (size is None and facts.maxunicode == 0x10FFFF):
                ucs4 = "u"
    elif debug:
        # Debug builds can also load normal extension modules.
        abis.append(f"cp{nodot}{threading}")
    abis.insert(0, f"cp{nodot}{threading}{debug}{pymalloc}{ucs4}")
    return abis


def _generic_abis(facts: ProbeFacts) -> list[str]:
    """Non-CPython ABI from EXT_SUFFIX, as ``packaging.tags._generic_abi``."""
    ext_suffix = facts.config_vars.get("EXT_SUFFIX")
    if not isinstance(ext_suffix, str) or not ext_suffix.startswith("."):
        return []
    parts = ext_suffix.split(".")
    if len(parts) < 3:
        return cpython_abis(facts)  # CPython <= 3.7 on Windows uses a bare ".pyd"
    soabi = parts[1]
    if soabi.startswith("cpython"):
        abi = "cp" + soabi.split("-")[1] if "-" in soabi else ""
    elif soabi.startswith("cp"):
        abi = soabi.split("-")[0]
    elif soabi.startswith("pypy"):
        abi = "-".join(soabi.split("-")[:2])
    elif soabi.startswith("graalpy"):
        abi = "-".join(soabi.split("-")[:3])
    else:
        abi = soabi
    return [_normalize(abi)] if abi else []


def _have_compatible_abi(elf: ElfHeader | None, archs: Sequence[str]) -> bool:
    if "armv7l" in archs:
        return (
            elf is not None
            and elf.elf_class == _EI_CLASS_32
            and elf.data == _EI_DATA_LSB
            and elf.machine == _EM_ARM
            and elf.flags & _EF_ARM_ABIMASK == _EF_ARM_ABI_VER5
            and elf.flags & _EF_ARM_ABI_FLOAT_HARD == _EF_ARM_ABI_FLOAT_HARD
        )
    if "i686" in archs:
        return (
            elf is not None
            and elf.elf_class == _EI_CLASS_32
            and elf.data == _EI_DATA_LSB
            and elf.machine == _EM_386
        )
    return any(arch in _MANYLINUX_ARCHS for arch in archs)


def _manylinux_allowed(facts: ProbeFacts, arch: str, glibc: tuple[int, int]) -> bool:
    """PEP 600: a distro's ``_manylinux`` module may veto (or allow) a glibc level."""
    module = facts.manylinux_module
    if module is None:
        return True
    verdict = module.get(f"{glibc[0]}_{glibc[1]}_{arch}")
    if verdict is not None:
        return verdict
    legacy = _LEGACY_MANYLINUX.get(glibc)
    if legacy is not None and f"{legacy}_compatible" in module:
        return module[f"{legacy}_compatible"]
    return True


def _manylinux_platforms(facts: ProbeFacts, archs: Sequence[str]) -> Iterator[str]:
    """``manylinux_2_N_<arch>`` down to 2.5 (x86) or 2.17, with the legacy aliases."""
    if facts.glibc is None or not _have_compatible_abi(facts.elf, archs):
        return
    too_old = (2, 4) if set(archs) & {"x86_64", "i686"} else (2, 16)
    current = facts.glibc
    maxima = [current] + [(major, _LAST_GLIBC_MINOR) for major in range(current[0] - 1, 1, -1)]
    for arch in archs:
        for major, top in maxima:
            floor = too_old[1] if major == too_old[0] else -1
            for minor in range(top, floor, -1):
                if (major, minor) > current or not _manylinux_allowed(facts, arch, (major, minor)):
                    continue
                yield f"manylinux_{major}_{minor}_{arch}"
                legacy = _LEGACY_MANYLINUX.get((major, minor))
                if legacy:
                    yield f"{legacy}_{arch}"


def _musllinux_platforms(facts: ProbeFacts, archs: Sequence[str]) -> Iterator[str]:
    """PEP 656: ``musllinux_1_N_<arch>`` down to 1.0."""
    if facts.musl is None:
        return
    major, top = facts.musl
    for arch in archs:
        for minor in range(top, -1, -1):
            yield f"musllinux_{major}_{minor}_{arch}"


def _linux_platforms(facts: ProbeFacts) -> Iterator[str]:
    linux = _normalize(facts.sysconfig_platform)
    if not linux.startswith("linux_"):
        yield linux
        return
    if facts.is_32bit:
        linux = {"linux_x86_64": "linux_i686", "linux_aarch64": "linux_armv8l"}.get(linux, linux)
    arch = linux.split("_", 1)[1]
    archs = {"armv8l": ["armv8l", "armv7l"]}.get(arch, [arch])
    native = [f"linux_{a}" for a in archs]
    if _LINUX_FIRST:
        yield from native
    yield from _manylinux_platforms(facts, archs)
    yield from _musllinux_platforms(facts, archs)
    if not _LINUX_FIRST:
        yield from native


def _mac_arch(facts: ProbeFacts) -> str:
    arch = facts.mac_machine or facts.machine
    if not facts.is_32bit:
        return arch
    return "ppc" if arch.startswith("ppc") else "i386"


def platform_tags(facts: ProbeFacts) -> list[str]:
    """The target's platform tags, most specific first (``packaging.tags.platform_tags``)."""
    system = facts.system
    if system == "Darwin" and facts.mac_version is not None:
        return list(mac_platforms(facts.mac_version, _mac_arch(facts)))
    if system == "iOS" and facts.ios is not None:
        try:
            from packaging.tags import ios_platforms
        except ImportError:  # packaging < 24.2
            pass
        else:
            return list(ios_platforms(facts.ios[0], facts.ios[1]))
    if system == "Android" and facts.android_api_level is not None:
        try:
            from packaging.tags import android_platforms
        except ImportError:  # packaging < 25.0
            pass
        else:
            abi = facts.sysconfig_platform.split("-")[-1]
            return list(android_platforms(facts.android_api_level, abi))
    if system == "Linux":
        return list(_linux_platforms(facts))
    generic = [_normalize(facts.sysconfig_platform)]
    if system == "Emscripten":
        version = facts.config_vars.get("PYEMSCRIPTEN_PLATFORM_VERSION")
        if version:
            return [f"pyemscripten_{version}_wasm32", *generic]
    return generic


def compute_tags(facts: ProbeFacts) -> list[Tag]:
    """Every wheel tag the target accepts, most preferred first (``sys_tags`` order)."""
    platforms = platform_tags(facts)
    python_version = facts.version_info[:2]
    name = INTERPRETER_SHORT_NAMES.get(facts.implementation) or facts.implementation
    if not platforms:
        # packaging's generators fall back to the RUNNING platform on an empty list.
        return [Tag(f"py{v}", "none", "any") for v in _py_versions(python_version)]
    tags: list[Tag]
    if name == "cp":
        tags = list(cpython_tags(python_version, cpython_abis(facts), platforms))
        interp: str | None = "cp" + interpreter_version(facts)
    else:
        interpreter = f"{name}{interpreter_version(facts)}"
        tags = list(generic_tags(interpreter, _generic_abis(facts), platforms))
        interp = "pp3" if name == "pp" else None
    tags.extend(compatible_tags(python_version, interp, platforms))
    return tags


def _py_versions(version: Sequence[int]) -> Iterator[str]:
    yield _nodot(version[:2])
    yield str(version[0])
    for minor in range(version[1] - 1, -1, -1):
        yield _nodot((version[0], minor))


@lru_cache(maxsize=64)
def parse_tags(tags: tuple[str, ...]) -> tuple[Tag, ...]:
    """``("cp311-cp311-linux_x86_64", ...)`` -> ``Tag`` objects, cached per tuple."""
    return tuple(Tag(*tag.split("-", 2)) for tag in tags)
