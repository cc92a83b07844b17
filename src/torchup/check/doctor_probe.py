"""The doctor probe: run BY the target Python, never imported by torchup.

torchup reads this file's text and runs it as ``python -c SOURCE MARKER ARGS``, where
ARGS is a JSON object ``{"cwd": DIR, "pythonpath": [DIR, ...]}``: the working
directory and ``PYTHONPATH`` entries of the user's shell, which the subprocess itself
does not get (torchup's runner drops ``PYTHONPATH``). It prints one JSON object between
two copies of MARKER.

It never imports torch: it reads what is on disk. For every ``sys.path`` directory it
lists the torch family's distributions (``*.dist-info``/``*.egg-info``: name,
version, ``Requires-Dist``, ``WHEEL`` tags, the package's ``version.py``), NVIDIA's
library wheels (``nvidia-*``), pip's leftovers (``~orch``), a ``torch/`` folder
without metadata and metadata without its ``torch/`` folder; the user site and
whether it is enabled; and every ``torch.py`` or ``torch/`` package in the working
directory or on ``PYTHONPATH``, with what ``import torch`` would load there.

Constraints: standard library only, and it must parse and run on Python 2.7 and
3.6+ (no f-strings, no annotations; type comments keep mypy informed), because doctor
examines any Python. Every fact is gathered defensively.
"""

# The working directory is examined on purpose below, from ARGS (the helpers sent
# ahead of this text took it off sys.path).
import json
import os
import platform
import re
import site
import sys

MYPY = False
if MYPY:  # torchup sends probe_helpers.py ahead of this text; type checkers read it here
    from torchup.check.probe_helpers import TEXT, headers, listdir, normalize, read_text

FORMAT = 1
FAMILY = ("torch", "torchvision", "torchaudio")
_MAX_VERSION_PY = 4096  # version.py is a few lines; a huge file is not one


def dist_record(directory, entry):
    # type: (str, str) -> dict[str, object] | None
    """One installed distribution of the family (or an nvidia-* wheel), or None."""
    path = os.path.join(directory, entry)
    if entry.endswith(".dist-info"):
        stem, meta_name = entry[: -len(".dist-info")], "METADATA"
    elif entry.endswith(".egg-info"):
        stem, meta_name = entry[: -len(".egg-info")], "PKG-INFO"
    else:
        return None
    guess = normalize(stem.split("-")[0])
    if guess not in FAMILY and not guess.startswith("nvidia-"):
        return None
    meta_path = path if os.path.isfile(path) else os.path.join(path, meta_name)
    meta = headers(read_text(meta_path))
    name = normalize((meta.get("name") or [stem.split("-")[0]])[0])
    version = (meta.get("version") or [""])[0] or stem.partition("-")[2].partition("-")[0] or None
    record = {"name": name, "version": version, "dir": directory, "path": path}  # type: dict[str, object]
    if name.startswith("nvidia-"):
        return record
    wheel = headers(read_text(os.path.join(path, "WHEEL")))
    installer = read_text(os.path.join(path, "INSTALLER"), 200)
    module = name.replace("-", "_")
    record.update(
        {
            "requires": meta.get("requires-dist") or [],
            "tags": wheel.get("tag") or [],
            "installer": installer.strip() if isinstance(installer, TEXT) else None,
            "package": os.path.isfile(os.path.join(directory, module, "__init__.py")),
            "version_py": read_text(os.path.join(directory, module, "version.py"), _MAX_VERSION_PY),
        }
    )
    return record


def leftover_name(entry):
    # type: (str) -> bool
    """pip's stash names: ``torch`` -> ``~orch``, ``~-rch`` while it renames files."""
    match = re.match(r"^[~-]+", entry)
    if not match or not entry.startswith("~"):
        return False
    cut = len(match.group(0))
    return any(entry[cut:].startswith(name[cut:]) for name in FAMILY if cut < len(name))


def scan(directory, dists, leftovers):
    # type: (str, list[dict[str, object]], list[dict[str, object]]) -> None
    entries = listdir(directory)
    torch_meta = False
    for entry in entries:
        record = dist_record(directory, entry)
        if record is not None:
            dists.append(record)
            torch_meta = torch_meta or record["name"] == "torch"
        elif leftover_name(entry):
            leftovers.append(
                {"path": os.path.join(directory, entry), "why": "left by an interrupted pip"}
            )
    package = os.path.join(directory, "torch")
    if "torch" in entries and os.path.isdir(package) and not torch_meta:
        files = listdir(package)
        leftovers.append(
            {
                "path": package,
                "why": "a torch/ folder with no torch metadata beside it ("
                + str(len(files))
                + " entries)",
            }
        )


def shadows(places):
    # type: (list[tuple[str, str]]) -> list[dict[str, object]]
    """``torch.py``, ``torch/__init__.py`` or a ``torch`` extension module in PLACES."""
    found = []  # type: list[dict[str, object]]
    for where, directory in places:
        for entry in listdir(directory):
            path = os.path.join(directory, entry)
            module = entry == "torch.py" or (
                entry.startswith("torch.") and entry.endswith((".so", ".pyd", ".pyc"))
            )
            package = entry == "torch" and os.path.isfile(os.path.join(path, "__init__.py"))
            if module or package:
                meta = [
                    e for e in listdir(directory) if re.match(r"^torch-.*\.(dist|egg)-info$", e)
                ]
                found.append({"path": path, "where": where, "metadata": meta})
    return found


def resolves(path):
    # type: (list[str]) -> object
    """Where ``import torch`` would load from with PATH as sys.path, without importing."""
    try:
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec("torch", path)
        if spec is None:
            return None
        if spec.origin and spec.origin not in ("namespace", "built-in"):
            return spec.origin
        locations = list(spec.submodule_search_locations or [])
        return locations[0] if locations else None
    except ImportError:  # Python 2.7
        try:
            import imp

            handle, pathname, _ = imp.find_module("torch", path)
            if handle is not None:
                handle.close()
            return pathname
        except ImportError:
            return None
    except Exception:
        return None


def user_site():
    # type: () -> tuple[object, bool]
    try:
        where = site.getusersitepackages()  # type: object
    except Exception:
        where = getattr(site, "USER_SITE", None)
    return where, bool(getattr(site, "ENABLE_USER_SITE", False))


def site_packages():
    # type: () -> list[str]
    try:
        return list(site.getsitepackages())
    except Exception:  # an old virtualenv's site.py has none
        import sysconfig

        return [p for p in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")} if p]


def collect(args):
    # type: (dict[str, object]) -> dict[str, object]
    cwd = args.get("cwd")
    given = args.get("pythonpath")
    pythonpath = [p for p in given if isinstance(p, TEXT) and p] if isinstance(given, list) else []
    path = [p for p in sys.path if p]
    dists = []  # type: list[dict[str, object]]
    leftovers = []  # type: list[dict[str, object]]
    seen = set()  # type: set[str]
    for directory in path:
        real = os.path.realpath(directory)
        if real in seen or not os.path.isdir(directory):
            continue
        seen.add(real)
        scan(directory, dists, leftovers)
    places = []  # type: list[tuple[str, str]]
    if isinstance(cwd, TEXT) and os.path.realpath(cwd) not in seen:
        places.append(("the working directory", cwd))
    for entry in pythonpath:
        if os.path.realpath(entry) not in seen:
            places.append(("PYTHONPATH", entry))
    front = [d for _, d in places]
    where, enabled = user_site()
    unread = []  # type: list[dict[str, object]]
    if isinstance(where, TEXT) and os.path.isdir(where) and os.path.realpath(where) not in seen:
        scan(where, unread, [])  # the user site this Python does not read, for the record
    info = sys.version_info
    return {
        "format": FORMAT,
        "executable": sys.executable,
        "base_executable": getattr(sys, "_base_executable", None),
        "version": platform.python_version(),
        "version_info": [info[0], info[1], info[2]],
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", getattr(sys, "real_prefix", sys.prefix)),
        "in_venv": hasattr(sys, "real_prefix")
        or getattr(sys, "base_prefix", sys.prefix) != sys.prefix,
        "path": path,
        "site_packages": site_packages(),
        "user_site": where,
        "user_site_enabled": enabled,
        "user_site_dists": unread,
        "dists": dists,
        "leftovers": leftovers,
        "shadows": shadows(places),
        "resolves": resolves(front + path),
        "resolves_here": resolves(path),
    }


def main():
    # type: () -> None
    marker = sys.argv[1] if len(sys.argv) > 1 else "--torchup-doctor--"
    try:
        args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    except ValueError:
        args = {}
    text = json.dumps(collect(args if isinstance(args, dict) else {}), sort_keys=True)
    sys.stdout.write("\n" + marker + text + marker + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
