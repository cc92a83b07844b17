"""(Re)build torchup's test data under tests/data/ (see tests/data/README.md).

    python tests/make_test_data.py --capture   # network: refresh the PyPI captures
    python tests/make_test_data.py             # rebuild generated files from captures

Captured (real, from PyPI; trimmed to the versions in KEEP):
  pypi/<project>.simple.html.gz   /simple/<project>/ as served (HTML), anchor lines
                                  of other versions removed, everything else verbatim
  pypi/<project>.legacy.json.gz   /pypi/<project>/json, releases trimmed, long
                                  ``info`` fields dropped
  metadata/<name>-<version>.METADATA  a wheel's METADATA headers (body dropped), read
                                  with range requests by torchup itself
Generated (deterministic, no network):
  pypi/<project>.v1.json.gz       the PEP 691 JSON PyPI would serve for the same files,
                                  built from the two captures
  torchindex.json.gz              the PyTorch-layout index served by tests/indexserver.py:
                                  every file name per variant directory
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

DATA = Path(__file__).resolve().parent / "data"

#: Versions kept in the PyPI captures (all their files), per project.
KEEP: dict[str, list[str]] = {
    "torch": [
        "1.4.0", "1.9.0", "1.10.0", "1.10.2", "1.11.0", "1.13.1", "2.0.0", "2.4.1", "2.5.1",
        "2.6.0", "2.7.0", "2.8.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0", "2.14.1", "2.15.0",
    ],
    "torchvision": [
        "0.1.6", "0.5.0", "0.11.0", "0.11.1", "0.11.2", "0.11.3", "0.12.0", "0.20.1", "0.21.0",
        "0.22.0", "0.23.0", "0.28.0", "0.29.1", "0.29.2",
    ],
    "torchaudio": [
        "0.4.0", "0.10.0", "0.10.1", "0.10.2", "0.11.0", "2.0.0", "2.5.1", "2.6.0", "2.7.0",
        "2.8.0", "2.11.0",
    ],
}  # fmt: skip

#: torch versions on the generated PyTorch index, with companions and variants. 2.x
#: variants: /work/shared/reference/variants_per_release.json (test-infra release matrix
#: at each go-live); 1.10/1.11: pytorch.github.io previous-versions.md install commands.
#: Companions: companion_versions.json (vision README / audio compatibility matrix).
TORCH_INDEX: dict[str, dict[str, Any]] = {
    "1.10.0": {"torchvision": "0.11.1", "torchaudio": "0.10.0",
               "variants": ["cpu", "cu102", "cu111", "cu113", "rocm4.2"]},
    "1.11.0": {"torchvision": "0.12.0", "torchaudio": "0.11.0",
               "variants": ["cpu", "cu102", "cu113", "cu115", "rocm4.5.2"]},
    "2.5.1": {"torchvision": "0.20.1", "torchaudio": "2.5.1",
              "variants": ["cpu", "cu118", "cu121", "cu124", "rocm6.1", "rocm6.2", "xpu"]},
    "2.6.0": {"torchvision": "0.21.0", "torchaudio": "2.6.0",
              "variants": ["cpu", "cu118", "cu124", "cu126", "rocm6.1", "rocm6.2.4", "xpu"]},
    "2.7.0": {"torchvision": "0.22.0", "torchaudio": "2.7.0",
              "variants": ["cpu", "cu118", "cu126", "cu128", "rocm6.2.4", "rocm6.3", "xpu"]},
    "2.8.0": {"torchvision": "0.23.0", "torchaudio": "2.8.0",
              "variants": ["cpu", "cu126", "cu128", "cu129", "rocm6.3", "rocm6.4", "xpu"]},
    "2.13.0": {"torchvision": "0.28.0", "torchaudio": "2.11.0",
               "variants": ["cpu", "cu126", "cu130", "cu132", "rocm7.1", "rocm7.2", "xpu"]},
}  # fmt: skip

#: torchaudio 2.11.0 is the last release and pairs with every torch >= 2.11; it sits in
#: every variant directory of 2.11 plus the cu132 repackage (companion_versions.json).
TORCHAUDIO_2_11_VARIANTS = ["cpu", "cu126", "cu128", "cu130", "cu132", "rocm7.1", "rocm7.2", "xpu"]

#: (project, version) whose real METADATA is captured.
METADATA_WANTED = [
    ("torch", v) for v in ("1.10.0", "1.11.0", "2.5.1", "2.6.0", "2.7.0", "2.8.0", "2.13.0")
] + [
    ("torchvision", v)
    for v in ("0.11.1", "0.12.0", "0.20.1", "0.21.0", "0.22.0", "0.23.0", "0.28.0")
] + [
    ("torchaudio", v) for v in ("0.10.0", "0.11.0", "2.5.1", "2.6.0", "2.7.0", "2.8.0", "2.11.0")
]  # fmt: skip

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
_ANCHOR_TEXT = re.compile(r">([^<>]+)</a>")


def version_of(filename: str) -> Version:
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[1]
    return parse_sdist_filename(filename)[1]


def write_gz(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"wrote {path.relative_to(DATA.parent)} ({path.stat().st_size} bytes)")


def read_gz(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


# -- capture (network) ---------------------------------------------------------------


def trim_html(html: str, keep: set[Version]) -> str:
    out = []
    for line in html.splitlines(keepends=True):
        m = _ANCHOR_TEXT.search(line)
        if line.lstrip().startswith("<a ") and m:
            try:
                if version_of(m.group(1)) not in keep:
                    continue
            except ValueError:
                continue
        out.append(line)
    return "".join(out)


def trim_legacy(doc: dict[str, Any], keep: set[Version]) -> dict[str, Any]:
    info = {k: doc["info"].get(k) for k in ("name", "version", "requires_python", "summary")}
    releases = {v: files for v, files in doc["releases"].items() if Version(v) in keep}
    return {"info": info, "last_serial": doc.get("last_serial"), "releases": releases}


def pick_wheel(files: list[dict[str, Any]]) -> dict[str, Any]:
    def rank(f: dict[str, Any]) -> tuple[int, int]:
        name = f["filename"]
        plat = 0 if "x86_64" in name and ("manylinux" in name or "linux" in name) else 1
        py = 0 if "-cp311-cp311-" in name else 1 if "-cp39-cp39-" in name else 2
        return (plat, py)

    wheels = [f for f in files if f["filename"].endswith(".whl")]
    return sorted(wheels, key=rank)[0]


def capture() -> None:
    import httpx

    sys.path.insert(0, str(DATA.parent.parent / "src"))
    from torchup.index.client import IndexClient
    from torchup.index.metadata import remote_wheel_metadata

    with httpx.Client(timeout=60, follow_redirects=True) as http:
        legacy_docs = {}
        for project, versions in KEEP.items():
            keep = {Version(v) for v in versions}
            page = http.get(f"https://pypi.org/simple/{project}/", headers={"Accept": ACCEPT})
            page.raise_for_status()
            write_gz(
                DATA / "pypi" / f"{project}.simple.html.gz", trim_html(page.text, keep).encode()
            )
            legacy = http.get(f"https://pypi.org/pypi/{project}/json")
            legacy.raise_for_status()
            doc = trim_legacy(legacy.json(), keep)
            legacy_docs[project] = doc
            write_gz(
                DATA / "pypi" / f"{project}.legacy.json.gz",
                json.dumps(doc, sort_keys=True, indent=0).encode(),
            )
    html_urls = {p: _html_urls(p) for p in KEEP}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, IndexClient(cache_dir=Path(tmp)) as client:
        for project, version in METADATA_WANTED:
            wheel = pick_wheel(legacy_docs[project]["releases"][version])
            url = html_urls[project][wheel["filename"]]
            raw = remote_wheel_metadata(url, wheel["filename"], client.get_range)
            headers = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0] + b"\n"
            path = DATA / "metadata" / f"{project}-{version}.METADATA"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(headers)
            print(f"wrote {path.relative_to(DATA.parent)} from {wheel['filename']}")


# -- generate ------------------------------------------------------------------------


def _html_urls(project: str) -> dict[str, str]:
    """filename -> href (fragment stripped) from the captured HTML page."""
    html = read_gz(DATA / "pypi" / f"{project}.simple.html.gz").decode()
    urls = {}
    for m in re.finditer(r'<a href="([^"#]+)(?:#[^"]*)?"[^>]*>([^<]+)</a>', html):
        urls[m.group(2)] = m.group(1)
    return urls


def build_pep691(project: str) -> dict[str, Any]:
    """The PEP 691 v1.1 page for the captured files, in the HTML page's order."""
    legacy = json.loads(read_gz(DATA / "pypi" / f"{project}.legacy.json.gz"))
    by_name = {f["filename"]: f for files in legacy["releases"].values() for f in files}
    files = []
    for filename, url in _html_urls(project).items():
        f = by_name[filename]  # KeyError = the two captures disagree: recapture
        yanked: bool | str = False
        if f["yanked"]:
            yanked = f["yanked_reason"] or True
        files.append(
            {
                "core-metadata": False,
                "data-dist-info-metadata": False,
                "filename": filename,
                "hashes": {"sha256": f["digests"]["sha256"]},
                "requires-python": f["requires_python"] or None,
                "size": f["size"],
                "upload-time": f["upload_time_iso_8601"],
                "url": url,
                "yanked": yanked,
            }
        )
    versions = sorted(legacy["releases"], key=Version)
    return {
        "files": files,
        "meta": {"_last-serial": legacy["last_serial"], "api-version": "1.1"},
        "name": project,
        "versions": versions,
    }


def _retag(filename: str, label: str | None, platform: str | None) -> str:
    """Swap the version's local label and/or the platform tag of a wheel name."""
    parts = filename[: -len(".whl")].split("-")  # name-ver[-build]-py-abi-plat
    if label:
        parts[1] = f"{parts[1]}+{label}"
    if platform:
        parts[-1] = platform
    return "-".join(parts) + ".whl"


def variant_files(project: str, version: str, variant: str, torch_version: str) -> list[str]:
    """File names ``project==version`` has in ``<variant>/`` (real naming patterns).

    Linux x86_64 carries the label with ``linux_x86_64`` before torch 2.7 and
    ``manylinux_2_28_x86_64`` from 2.7; Windows carries it (no ROCm on Windows); the cpu
    directory also has macOS (no label) and aarch64 (no label before 2.6, ``+cpu``
    after); cu124 of 2.5.1 has the unlabelled ``linux_aarch64`` quirk.
    """
    urls = _html_urls(project)
    pypi = [f for f in urls if f.endswith(".whl") and str(version_of(f)) == version]
    modern = Version(torch_version) >= Version("2.7")
    linux_plat = "manylinux_2_28_x86_64" if modern else "linux_x86_64"
    out: list[str] = []
    for f in pypi:
        plat = f[: -len(".whl")].split("-")[-1]
        if "x86_64" in plat and "linux" in plat:
            out.append(_retag(f, variant, linux_plat))
        elif plat == "win_amd64" and not variant.startswith("rocm"):
            out.append(_retag(f, variant, None))
        elif plat.startswith("macosx") and variant == "cpu":
            out.append(f)
        elif "aarch64" in plat and variant == "cpu":
            out.append(_retag(f, "cpu", None) if Version(torch_version) >= Version("2.6") else f)
        elif "aarch64" in plat and variant == "cu124" and torch_version == "2.5.1":
            out.append(_retag(f, None, "linux_aarch64"))
    return sorted(set(out))


def build_torch_index() -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for torch_version, spec in TORCH_INDEX.items():
        for variant in spec["variants"]:
            for project, version in (
                ("torch", torch_version),
                ("torchvision", spec["torchvision"]),
                ("torchaudio", spec["torchaudio"]),
            ):
                if project == "torchaudio" and version == "2.11.0":
                    continue  # added once below, in its own variant directories
                for filename in variant_files(project, version, variant, torch_version):
                    entries.append({"project": project, "variant": variant, "filename": filename})
    for variant in TORCHAUDIO_2_11_VARIANTS:
        for filename in variant_files("torchaudio", "2.11.0", variant, "2.11.0"):
            entries.append({"project": "torchaudio", "variant": variant, "filename": filename})
    unique = {(e["variant"], e["filename"]): e for e in entries}
    entries = [unique[k] for k in sorted(unique)]
    return {
        "_meta": {
            "generated_by": "tests/make_test_data.py",
            "layout": "pytorch/test-infra s3_management/manage_v2.py (release channel /whl)",
            "torch_versions": TORCH_INDEX,
            "pep658": "torch >= 2.6 files advertise data-dist-info-metadata/data-core-metadata",
            "hrefs": "torch and torchaudio absolute on another host (as the real index does), "
            "torchvision relative (/whl/<variant>/<file>)",
        },
        "files": entries,
    }


def generate() -> None:
    for project in KEEP:
        doc = build_pep691(project)
        write_gz(
            DATA / "pypi" / f"{project}.v1.json.gz",
            json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
        )
    spec = build_torch_index()
    write_gz(DATA / "torchindex.json.gz", json.dumps(spec, indent=1, sort_keys=True).encode())
    print(f"  ({len(spec['files'])} files on the generated PyTorch index)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", action="store_true", help="refresh captures (network)")
    args = parser.parse_args(argv)
    if args.capture:
        capture()
    generate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
