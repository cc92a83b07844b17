"""torchup.index.pages: PEP 691 JSON / PEP 503 HTML parsing, variants, redaction."""

from __future__ import annotations

import gzip
import hashlib
import html
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexserver import IndexServer
from torchup.errors import IndexFetchError
from torchup.index.pages import (
    JSON_MEDIA_TYPE,
    DistFile,
    PageParseError,
    parse_project_page,
    parse_variants,
    redact,
    variant_dir_of_url,
    variant_of,
    variant_sort_key,
)

DATA = Path(__file__).resolve().parent / "data"
PYPI = "https://pypi.org/simple"


def capture(project: str, kind: str) -> bytes:
    return gzip.decompress((DATA / "pypi" / f"{project}.{kind}.gz").read_bytes())


def both(project: str) -> tuple[tuple[DistFile, ...], tuple[DistFile, ...]]:
    base = f"{PYPI}/{project}/"
    from_html = parse_project_page(capture(project, "simple.html"), "text/html", base)
    from_json = parse_project_page(capture(project, "v1.json"), JSON_MEDIA_TYPE, base)
    return from_html, from_json


# -- the captured PyPI pages ---------------------------------------------------------


@pytest.mark.parametrize("project", ["torch", "torchvision", "torchaudio"])
def test_json_and_html_of_the_same_capture_give_the_same_files(project: str) -> None:
    from_html, from_json = both(project)
    assert len(from_html) > 50

    def key(f: DistFile) -> tuple[object, ...]:
        return (f.filename, f.url, f.sha256, f.requires_python, f.yanked, f.index)

    assert [key(f) for f in from_html] == [key(f) for f in from_json]
    assert all(f.size for f in from_json)  # PEP 700 size only in JSON
    assert all(f.size is None for f in from_html)


def test_capture_keeps_the_versions_other_tests_rely_on() -> None:
    from_html, _ = both("torch")
    versions = {f.filename.split("-")[1] for f in from_html}
    for v in ["1.4.0", "1.10.2", "2.5.1", "2.12.1", "2.13.0", "2.14.1", "2.15.0"]:
        assert v in versions


def test_requires_python_is_unescaped_from_html() -> None:
    from_html, _ = both("torchvision")
    [f] = [
        f for f in from_html if f.filename == "torchvision-0.20.1-cp311-cp311-manylinux1_x86_64.whl"
    ]
    assert f.requires_python == ">=3.8"
    assert b'data-requires-python="&gt;=3.8"' in capture("torchvision", "simple.html")


def test_yanked_files_keep_their_reason() -> None:
    from_html, from_json = both("torchaudio")
    for files in (from_html, from_json):
        yanked = {f.filename: f.yanked for f in files if f.yanked is not None}
        assert yanked["torchaudio-2.0.0-cp311-cp311-manylinux1_x86_64.whl"] == (
            "Contains an incorrect torch dependency"
        )
        assert all(f.yanked is None for f in files if "-2.5.1-" in f.filename)


def test_sdists_are_kept_and_absolute_file_urls_too() -> None:
    from_html, _ = both("torchvision")
    sdists = [f for f in from_html if f.filename.endswith(".tar.gz")]
    assert sdists
    assert all(f.url.startswith("https://files.pythonhosted.org/packages/") for f in from_html)
    assert all("#" not in f.url for f in from_html)


# -- PEP 503 details -----------------------------------------------------------------


def test_percent_encoded_plus_is_decoded_in_the_filename_only() -> None:
    page = (
        b'<a href="/whl/cpu/torch-2.4.1%2Bcpu-cp312-cp312-linux_x86_64.whl#sha256=8800deef">'
        b"torch-2.4.1+cpu-cp312-cp312-linux_x86_64.whl</a><br/>"
    )
    [f] = parse_project_page(page, "text/html", "https://download.example/whl/cpu/torch/")
    assert f.filename == "torch-2.4.1+cpu-cp312-cp312-linux_x86_64.whl"
    assert (
        f.url == "https://download.example/whl/cpu/torch-2.4.1%2Bcpu-cp312-cp312-linux_x86_64.whl"
    )
    assert f.hashes == {"sha256": "8800deef"}
    assert f.variant_dir == "cpu"
    assert variant_of(f) == "cpu"


def test_relative_absolute_and_base_hrefs() -> None:
    page = b"""<html><head><base href="https://mirror.example/pkgs/"></head><body>
    <a href="a/x-1.0-py3-none-any.whl">x</a>
    <a href="/root/x-1.1-py3-none-any.whl">x</a>
    <a href="https://cdn.other/x-1.2-py3-none-any.whl">x</a>
    </body></html>"""
    files = parse_project_page(page, "text/html", "https://index.example/simple/x/")
    assert [f.url for f in files] == [
        "https://mirror.example/pkgs/a/x-1.0-py3-none-any.whl",
        "https://mirror.example/root/x-1.1-py3-none-any.whl",
        "https://cdn.other/x-1.2-py3-none-any.whl",
    ]
    assert {f.index for f in files} == {"https://index.example/simple/x/"}


def test_relative_hrefs_resolve_against_the_page() -> None:
    page = b'<a href="../../files/x-1.0-py3-none-any.whl#sha256=ab">x</a>'
    [f] = parse_project_page(page, "text/html", "file:///opt/pypi/simple/x/")
    assert f.url == "file:///opt/pypi/files/x-1.0-py3-none-any.whl"


def test_metadata_attributes() -> None:
    page = b"""
    <a href="a-1-py3-none-any.whl" data-dist-info-metadata="true">a</a>
    <a href="a-2-py3-none-any.whl" data-core-metadata="sha256=ABCD"
       data-dist-info-metadata="true">a</a>
    <a href="a-3-py3-none-any.whl" data-dist-info-metadata="sha256=beef">a</a>
    <a href="a-4-py3-none-any.whl">a</a>
    <a href="a-5-py3-none-any.whl" data-core-metadata="false">a</a>
    """
    files = parse_project_page(page, "text/html", "https://i.example/simple/a/")
    assert [f.metadata_hashes for f in files] == [
        {},
        {"sha256": "abcd"},
        {"sha256": "beef"},
        None,
        None,
    ]


def test_json_metadata_yanked_and_hash_fields() -> None:
    doc = {
        "meta": {"api-version": "1.1"},
        "name": "a",
        "files": [
            {"filename": "a-1-py3-none-any.whl", "url": "a-1-py3-none-any.whl",
             "hashes": {"sha256": "AA"}, "core-metadata": {"sha256": "bb"}, "yanked": True},
            {"filename": "a-2-py3-none-any.whl", "url": "/f/a-2-py3-none-any.whl", "hashes": {},
             "dist-info-metadata": True, "yanked": "broken", "requires-python": ">=3.9", "size": 7},
            {"filename": "a-3.tar.gz", "url": "https://cdn/a-3.tar.gz", "hashes": {},
             "core-metadata": False, "yanked": False},
            {"filename": "a-3.tar.gz.asc", "url": "https://cdn/a-3.tar.gz.asc", "hashes": {}},
        ],
    }  # fmt: skip
    files = parse_project_page(
        json.dumps(doc).encode(), JSON_MEDIA_TYPE + "; charset=utf-8", "https://i.example/simple/a/"
    )
    assert [f.filename for f in files] == [
        "a-1-py3-none-any.whl",
        "a-2-py3-none-any.whl",
        "a-3.tar.gz",
    ]
    a1, a2, a3 = files
    assert (a1.sha256, a1.metadata_hashes, a1.yanked) == ("aa", {"sha256": "bb"}, "")
    assert a1.url == "https://i.example/simple/a/a-1-py3-none-any.whl"
    assert (a2.metadata_hashes, a2.yanked, a2.requires_python, a2.size) == (
        {},
        "broken",
        ">=3.9",
        7,
    )
    assert a2.url == "https://i.example/f/a-2-py3-none-any.whl"
    assert (a3.metadata_hashes, a3.yanked) == (None, None)


def test_yanked_attribute_without_value() -> None:
    page = (
        b'<a href="a-1-py3-none-any.whl" data-yanked>a</a>'
        b'<a href="a-2-py3-none-any.whl" data-yanked="">a</a>'
    )
    files = parse_project_page(page, "text/html", "https://i.example/simple/a/")
    assert [f.yanked for f in files] == ["", ""]


def test_credentials_never_reach_the_parsed_files() -> None:
    page = b'<a href="../../files/a-1-py3-none-any.whl">a</a>'
    [f] = parse_project_page(page, "text/html", "https://bob:hunter2@i.example/simple/a/")
    assert "hunter2" not in f.url
    assert "hunter2" not in f.index
    assert f.url == "https://bob:****@i.example/files/a-1-py3-none-any.whl"


def test_empty_project_page_is_no_files() -> None:
    assert parse_project_page(b"<html><body></body></html>", "text/html", "https://i/s/a/") == ()
    doc = b'{"meta": {"api-version": "1.0"}, "name": "a", "files": []}'
    assert parse_project_page(doc, JSON_MEDIA_TYPE, "https://i/s/a/") == ()


# -- errors --------------------------------------------------------------------------


NOT_INDEX = b'<html><body><a href="/login">Log in</a></body></html>'
CUT_TAG = b'<a href="x-1-py3-none-any.whl">x</a><a href="x-2-py3-no'
CUT_TEXT = b'<a href="x-1-py3-none-any.whl">x</a><a href="x-2-py3-none-any.whl">x-2-py'
V2_META = b'<meta name="pypi:repository-version" content="2.0"><a href="x-1.whl">x</a>'


@pytest.mark.parametrize(
    ("content", "content_type", "fragment"),
    [
        (b"\x00\x01garbage", "text/html", "binary"),
        (b"", "text/html", "empty"),
        (b"\xff\xfe\xfa not utf8 <a>", "text/html", "not valid text"),
        (b"<html><body>", "application/octet-stream", "unexpected content type"),
        (b"<html>", "", "unexpected content type"),
        (NOT_INDEX, "text/html", "none to a distribution"),
        (b"<html><body>" + CUT_TAG, "text/html", "truncated"),
        (b'<html><body><a href="x-1-py3-none-any.whl">x', "text/html", "truncated"),
        (b'<html><body><a href="x-1-py3-none-any.whl">x</a>', "text/html", "truncated"),
        (CUT_TAG, "text/html", "truncated"),
        (CUT_TEXT, "text/html", "truncated"),
        (V2_META, "text/html", "API version"),
        (b'{"files": [{"filename": "x-1', JSON_MEDIA_TYPE, "invalid or truncated"),
        (b"[1, 2]", JSON_MEDIA_TYPE, "not an object"),
        (b'{"meta": {"api-version": "1.0"}, "files": {"a": 1}}', JSON_MEDIA_TYPE, "'files' list"),
        (b'{"files": [{"url": "x-1-py3-none-any.whl"}]}', JSON_MEDIA_TYPE, "lacks a 'filename'"),
        (b'{"files": [{"filename": "x-1-py3-none-any.whl", "url": "u", "hashes": [1]}]}',
         JSON_MEDIA_TYPE, "hashes must map"),
        (b'{"meta": {"api-version": "2.0"}, "files": []}', JSON_MEDIA_TYPE, "API version"),
        (b'{"files": []}', "application/vnd.pypi.simple.v2+json", "API version 2"),
    ],
)  # fmt: skip
def test_bad_pages_raise_a_specific_error(content: bytes, content_type: str, fragment: str) -> None:
    with pytest.raises(PageParseError) as info:
        parse_project_page(content, content_type, "https://u:pw@i.example/simple/x/")
    assert fragment in info.value.reason
    assert isinstance(info.value, IndexFetchError)
    assert info.value.url == "https://u:****@i.example/simple/x/"
    assert "pw@" not in str(info.value)


def test_real_page_cut_in_the_middle_is_truncated() -> None:
    page = capture("torch", "simple.html")
    cut = page[: page.index(b"<a ", len(page) // 2) + 60]
    with pytest.raises(PageParseError, match="truncated"):
        parse_project_page(cut, "text/html", f"{PYPI}/torch/")
    with pytest.raises(PageParseError, match="truncated"):
        parse_project_page(capture("torch", "v1.json")[:5000], JSON_MEDIA_TYPE, f"{PYPI}/torch/")


# -- PyTorch index layout ------------------------------------------------------------


def test_variant_discovery_from_the_combined_page(index_server: IndexServer) -> None:
    import httpx

    page = httpx.get(f"{index_server.torch_url}/torch/").content
    found = parse_variants(page, "text/html", f"{index_server.torch_url}/torch/")
    expected = {v for v in index_server.variants() if index_server.torch_index_files("torch", v)}
    assert set(found) == expected
    assert list(found) == sorted(found, key=variant_sort_key)
    assert {"cpu", "cu124", "cu132", "rocm4.5.2", "rocm6.2.4", "xpu"} <= set(found)


def test_root_page_lists_projects_not_variants(index_server: IndexServer) -> None:
    import httpx

    root = httpx.get(f"{index_server.torch_url}/").content
    assert b'href="torch/"' in root
    assert parse_variants(root, "text/html", f"{index_server.torch_url}/") == ()


def test_variant_discovery_from_a_directory_listing() -> None:
    listing = b"""<a href="../">../</a><a href="cu126/">cu126/</a><a href="rocm6.2.4/">r</a>
    <a href="cpu-cxx11-abi/">legacy</a><a href="nightly/">n</a><a href="torch/">torch</a>"""
    assert parse_variants(listing, "text/html", "https://m.example/whl/") == ("cu126", "rocm6.2.4")


def test_per_variant_page_files(index_server: IndexServer) -> None:
    import httpx

    url = f"{index_server.torch_url}/cu124/torch/"
    files = parse_project_page(httpx.get(url).content, "text/html", url)
    assert {f.filename for f in files} == set(index_server.torch_index_files("torch", "cu124"))
    by_name = {f.filename: f for f in files}
    labelled = by_name["torch-2.5.1+cu124-cp311-cp311-linux_x86_64.whl"]
    # torch hrefs are absolute on "another host" (localhost vs 127.0.0.1), as on the real index.
    assert labelled.url.startswith(index_server.other_host_url + "/whl/cu124/torch-2.5.1%2Bcu124")
    assert (
        labelled.sha256
        == hashlib.sha256(index_server.wheel(labelled.filename, "cu124")).hexdigest()
    )
    # The real quirk: cu124's aarch64 wheel of 2.5.1 carries no label.
    quirk = by_name["torch-2.5.1-cp311-cp311-linux_aarch64.whl"]
    assert (quirk.variant_dir, variant_of(quirk)) == ("cu124", "cu124")
    with_meta = by_name["torch-2.6.0+cu124-cp311-cp311-linux_x86_64.whl"]
    assert with_meta.metadata_hashes == {
        "sha256": hashlib.sha256(index_server.metadata(with_meta.filename, "cu124")).hexdigest()
    }
    assert labelled.metadata_hashes is None


def test_companion_hrefs_are_relative(index_server: IndexServer) -> None:
    import httpx

    url = f"{index_server.torch_url}/torchvision/"
    page = httpx.get(url).content
    assert b'href="/whl/cpu/torchvision-' in page
    files = parse_project_page(page, "text/html", url)
    assert all(f.url.startswith(index_server.torch_url + "/") for f in files)
    assert {f.variant_dir for f in files} == {
        v for v in index_server.variants() if index_server.torch_index_files("torchvision", v)
    }
    macos = [f for f in files if "macosx" in f.filename]
    assert macos
    assert all(variant_of(f) == "cpu" for f in macos)


def test_variant_of() -> None:
    def dist(name: str, variant_dir: str | None = None) -> DistFile:
        return DistFile(filename=name, url="u", index="i", variant_dir=variant_dir)

    assert variant_of(dist("torch-2.6.0+rocm6.2.4-cp312-cp312-linux_x86_64.whl")) == "rocm6.2.4"
    assert variant_of(dist("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")) == "cpu"
    assert variant_of(dist("torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl")) is None
    assert variant_of(dist("torch-2.0.0-1-cp39-cp39-manylinux2014_aarch64.whl")) is None
    assert variant_of(dist("not a wheel.whl", "xpu")) == "xpu"
    assert variant_of(dist("not+a wheel.whl", "xpu")) == "xpu"
    assert variant_of(dist("torch-2.5.1-cp311-cp311-linux_x86_64.whl", "cu124")) == "cu124"
    assert variant_of(dist("torchvision-0.20.1+cu124.tar.gz")) == "cu124"
    assert variant_of(dist("torch-2.5.1+CU124-cp311-cp311-linux_x86_64.whl", "cpu")) == "cu124"
    assert (
        variant_dir_of_url("https://h/whl/nightly/cu126/torch-2.6.0.dev1-cp39-cp39-win_amd64.whl")
        == "cu126"
    )


def test_hash_names_are_hashlibs_guaranteed_ones() -> None:
    from torchup.index.pages import _HASH_NAMES

    assert hashlib.algorithms_guaranteed == _HASH_NAMES
    page = b'<a href="t-1.0-py3-none-any.whl#SHA3_256=AB">t</a><a href="u-1.0.tar.gz#foo=1">u</a>'
    t, u = parse_project_page(page, "text/html", "https://h/simple/t/")
    assert (t.hashes, u.hashes) == ({"sha3_256": "ab"}, {})


# -- Hypothesis ----------------------------------------------------------------------

_userinfo = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789-._~!$&'()*+,;=%", min_size=1
)


@given(user=_userinfo.filter(lambda s: ":" not in s), password=_userinfo)
def test_redact_hides_the_password(user: str, password: str) -> None:
    url = f"https://{user}:{password}@index.example:8443/simple/torch/?x=1"
    shown = redact(url)
    assert shown == f"https://{user}:****@index.example:8443/simple/torch/?x=1"
    assert redact(shown) == shown


@given(token=_userinfo.filter(lambda s: ":" not in s))
def test_redact_hides_a_lone_token(token: str) -> None:
    assert redact(f"https://{token}@h.example/simple/") == "https://****@h.example/simple/"


@given(st.text())
def test_redact_never_raises_and_leaves_plain_urls_alone(text: str) -> None:
    shown = redact(text)
    if "@" not in text:
        assert shown == text


_name = st.from_regex(r"[a-z][a-z0-9]{0,8}(_[a-z0-9]{1,4})?", fullmatch=True)
_version = st.lists(st.integers(0, 30), min_size=1, max_size=4).map(lambda p: ".".join(map(str, p)))
_label = st.sampled_from([None, "cpu", "cu118", "cu126", "rocm6.2.4", "xpu"])
_tags = st.sampled_from(
    ["cp311-cp311-linux_x86_64", "cp313-cp313t-manylinux_2_28_x86_64", "py3-none-any",
     "cp39-none-macosx_11_0_arm64", "cp312-cp312-win_amd64"]
)  # fmt: skip
_wheel = st.builds(
    lambda n, v, lab, t: f"{n}-{v}{'+' + lab if lab else ''}-{t}.whl",
    _name,
    _version,
    _label,
    _tags,
)


@given(
    files=st.lists(
        st.tuples(
            _wheel, st.binary(min_size=1, max_size=8), st.sampled_from([None, ">=3.9", "<4,>=3.8"])
        ),
        max_size=12,
        unique_by=lambda t: t[0],
    ),
    absolute=st.booleans(),
)
def test_generated_html_parses_back(
    files: list[tuple[str, bytes, str | None]], absolute: bool
) -> None:
    base = "https://i.example/whl/cu126/pkg/"
    lines = ["<!DOCTYPE html>", "<html>", "  <body>"]
    for filename, seed, requires in files:
        digest = hashlib.sha256(seed).hexdigest()
        prefix = "https://cdn.example/whl/cu126/" if absolute else "../"
        attr = f' data-requires-python="{html.escape(requires)}"' if requires else ""
        lines.append(
            f'    <a href="{prefix}{quote(filename)}#sha256={digest}"{attr}>{filename}</a><br/>'
        )
    lines += ["  </body>", "</html>"]
    parsed = parse_project_page("\n".join(lines).encode(), "text/html", base)
    assert [f.filename for f in parsed] == [f for f, _, _ in files]
    assert [f.sha256 for f in parsed] == [hashlib.sha256(s).hexdigest() for _, s, _ in files]
    assert [f.requires_python for f in parsed] == [r for _, _, r in files]
    assert all(f.variant_dir == "cu126" for f in parsed)
    for f in parsed:
        assert variant_of(f) == (f.filename.split("-")[1].partition("+")[2] or "cu126")
