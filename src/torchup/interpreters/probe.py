"""The interpreter probe: run BY the target Python, never imported by torchup.

torchup reads this file's text and runs it as ``python -E -s -c SOURCE MARKER``. It
prints one JSON object between two copies of MARKER, so anything a ``sitecustomize``
or ``usercustomize`` prints around it is ignored. It reports raw facts only; wheel
tags are computed in torchup (``torchup.interpreters.tags``) from these facts.

Constraints: standard library only, and it must parse and run on Python 2.7 and
3.6+ (no f-strings, no annotations; type comments keep mypy informed). Each fact is
gathered defensively so that one odd platform detail never loses the rest.
"""

import sys

# With ``-c`` the first sys.path entry is the working directory; drop it before any
# other import so a stray json.py or platform.py there cannot shadow the stdlib.
if __name__ == "__main__":
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".")]

import json
import os
import platform
import struct
import sysconfig

FORMAT = 1

# The sysconfig variables that decide the ABI tag (packaging.tags._cpython_abis and
# _generic_abi) and the Emscripten platform tag.
CONFIG_VARS = (
    "SOABI",
    "EXT_SUFFIX",
    "Py_DEBUG",
    "WITH_PYMALLOC",
    "Py_UNICODE_SIZE",
    "Py_GIL_DISABLED",
    "py_version_nodot",
    "MULTIARCH",
    "PYEMSCRIPTEN_PLATFORM_VERSION",
)

PT_INTERP = 3


def implementation_name():
    # type: () -> str
    impl = getattr(sys, "implementation", None)
    if impl is not None:
        return str(impl.name)
    return platform.python_implementation().lower()


def format_full_version(parts):
    # type: (list[object]) -> str
    # PEP 508 implementation_version, as packaging.markers formats it.
    version = ".".join(str(part) for part in parts[:3])
    if parts[3] != "final":
        version += str(parts[3])[0] + str(parts[4])
    return version


def marker_environment():
    # type: () -> dict[str, object]
    impl = getattr(sys, "implementation", None)
    return {
        "implementation_name": implementation_name(),
        "implementation_version": format_full_version(list(impl.version)) if impl else "0",
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def extension_suffixes():
    # type: () -> list[str]
    try:
        from importlib.machinery import EXTENSION_SUFFIXES

        return list(EXTENSION_SUFFIXES)
    except ImportError:  # Python 2.7
        import imp

        return [s[0] for s in imp.get_suffixes() if s[2] == imp.C_EXTENSION]


def glibc_version():
    # type: () -> object
    # The same two strategies as packaging._manylinux: os.confstr, then ctypes.
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
        if value:
            return value.split()[-1]
    except (AttributeError, OSError, ValueError):
        pass
    try:
        import ctypes

        fn = ctypes.CDLL(None).gnu_get_libc_version
        fn.restype = ctypes.c_char_p
        value = fn()
        if isinstance(value, bytes):
            value = value.decode("ascii")
        return value
    except Exception:
        return None


def read_elf(path):
    # type: (str) -> object
    """The ELF header facts packaging's manylinux/musllinux checks need, or None."""
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF":
                return None
            elf_class = bytearray(ident)[4]
            elf_data = bytearray(ident)[5]
            endian = "<" if elf_data == 1 else ">"
            if elf_class == 1:
                fmt, size = endian + "HHIIIIIHHHHHH", 36
            elif elf_class == 2:
                fmt, size = endian + "HHIQQQIHHHHHH", 48
            else:
                return None
            header = struct.unpack(fmt, f.read(size))
            machine, phoff, flags = header[1], header[4], header[6]
            phentsize, phnum = header[8], header[9]
            interp = None
            for index in range(phnum):
                f.seek(phoff + phentsize * index)
                if elf_class == 1:
                    p_type, p_offset, _, _, p_filesz = struct.unpack(endian + "IIIII", f.read(20))
                else:
                    p_type, _, p_offset, _, _, p_filesz = struct.unpack(
                        endian + "IIQQQQ", f.read(40)
                    )
                if p_type == PT_INTERP:
                    f.seek(p_offset)
                    interp = f.read(p_filesz).rstrip(b"\0").decode("utf-8", "replace")
                    break
            return {
                "class": elf_class,
                "data": elf_data,
                "machine": machine,
                "flags": flags,
                "interpreter": interp,
            }
    except Exception:
        return None


def musl_version(elf):
    # type: (object) -> object
    # As packaging._musllinux: run the musl loader, which prints its version.
    ld = elf.get("interpreter") if isinstance(elf, dict) else None
    if not ld or "musl" not in ld:
        return None
    try:
        import subprocess

        proc = subprocess.Popen([ld], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = proc.communicate()[1].decode("utf-8", "replace")
    except Exception:
        return None
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("musl"):
        return None
    words = lines[1].split()
    if len(words) < 2 or words[0] != "Version":
        return None
    return words[1]


def manylinux_module(glibc):
    # type: (object) -> object
    """What a distro's ``_manylinux`` module (PEP 600) says, for every glibc up to ours."""
    try:
        import _manylinux  # type: ignore[import-not-found]
    except ImportError:
        return None
    out = {}
    for name in ("manylinux1_compatible", "manylinux2010_compatible", "manylinux2014_compatible"):
        if hasattr(_manylinux, name):
            out[name] = bool(getattr(_manylinux, name))
    check = getattr(_manylinux, "manylinux_compatible", None)
    if check is not None and glibc:
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        arch = plat.split("_", 1)[-1]
        archs = [arch, "i686", "armv7l", "armv8l"]
        top = int(str(glibc).split(".")[1])
        for name in archs:
            for minor in range(top, -1, -1):
                try:
                    result = check(2, minor, name)
                except Exception:
                    result = None
                if result is not None:
                    out["2_%d_%s" % (minor, name)] = bool(result)
    return out


def mac_version():
    # type: () -> object
    release, _, machine = platform.mac_ver()
    if not release:
        return None
    return [release, machine]


def mobile_facts():
    # type: () -> dict[str, object]
    out = {}  # type: dict[str, object]
    ios_ver = getattr(platform, "ios_ver", None)
    if ios_ver is not None and platform.system() == "iOS":
        out["ios"] = [ios_ver()[1], getattr(sys.implementation, "_multiarch", "")]
    android_ver = getattr(platform, "android_ver", None)
    if android_ver is not None and platform.system() == "Android":
        out["android_api_level"] = android_ver().api_level
    return out


def collect():
    # type: () -> dict[str, object]
    info = sys.version_info
    facts = {
        "format": FORMAT,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "exec_prefix": sys.exec_prefix,
        # venv sets base_prefix (3.3+); virtualenv < 20 sets real_prefix instead.
        "base_prefix": getattr(sys, "base_prefix", getattr(sys, "real_prefix", sys.prefix)),
        "real_prefix": getattr(sys, "real_prefix", None),
        "version_info": [info[0], info[1], info[2], info[3], info[4]],
        "version": platform.python_version(),
        "implementation": implementation_name(),
        "machine": platform.machine(),
        "system": platform.system(),
        "sys_platform": sys.platform,
        "os_name": os.name,
        "sysconfig_platform": sysconfig.get_platform(),
        "is_32bit": struct.calcsize("P") == 4,
        "maxunicode": sys.maxunicode,
        "has_gettotalrefcount": hasattr(sys, "gettotalrefcount"),
        "extension_suffixes": extension_suffixes(),
        "config_vars": dict((name, sysconfig.get_config_var(name)) for name in CONFIG_VARS),
        "stdlib": sysconfig.get_path("stdlib"),
        "markers": marker_environment(),
    }
    glibc = glibc_version()
    elf = read_elf(sys.executable)
    facts["glibc"] = glibc
    facts["elf"] = elf
    facts["musl"] = musl_version(elf)
    facts["manylinux_module"] = manylinux_module(glibc)
    facts["mac_ver"] = mac_version()
    facts.update(mobile_facts())
    return facts


def main():
    # type: () -> None
    marker = sys.argv[1] if len(sys.argv) > 1 else "--torchup-probe--"
    text = json.dumps(collect(), sort_keys=True)
    sys.stdout.write("\n" + marker + text + marker + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
