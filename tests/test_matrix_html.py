"""``torchup matrix --html FILE``: the page checked in a real headless browser.

``--json`` and ``--html`` are read from the same local index server; Debian's
``chromium`` (installed by the ``chromium`` fixture when missing and we are root) loads
the page from a file and dumps the DOM after its script ran (``--dump-dom``), so the
counts below are of what the browser built, and takes a screenshot. No Python browser
library is used: the suite's locked dependencies have none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from indexserver import IndexServer
from test_matrix import matrix_doc
from test_plan import cli, env, local_indexes
from torchup.render.matrix_html import embed_json, render_html

__all__ = ["env"]  # the fixture, from test_plan

Doc = dict[str, Any]
Browser = tuple[str, dict[str, str]]
Page = tuple[Doc, Path]
PYTHONS = "3.9,3.10,3.11,3.12,3.13,3.13t"


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    """Debian's chromium (installed with apt-get when missing and we are root) and an
    environment with a private, writable HOME for it."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        try:
            subprocess.run(cmd, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                           capture_output=True, timeout=900, check=True)  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"chromium is missing and apt-get could not install it: {exc}")
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium, as root)")
    home = tmp_path_factory.mktemp("chromium-home")
    return found, {**os.environ, "HOME": str(home)}


def browse(chromium: Browser, url: str, *args: str) -> str:
    exe, env = chromium
    profile = Path(env["HOME"]) / f"profile-{len(os.listdir(env['HOME']))}"
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={profile}", *args, url]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Cells(HTMLParser):
    """The data cells of a dumped DOM: their attributes, with ``hidden`` facts."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.rows: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-torch" in a:
            self.rows.append(a)
        if tag == "td" and "cell" in (a.get("class") or "").split():
            self.cells.append(a)


def cells_of(dom: str) -> list[dict[str, str | None]]:
    parser = Cells()
    parser.feed(dom)
    return parser.cells


def shown(cell: dict[str, str | None]) -> bool:
    """Not hidden by a filter (its column left out, or none of its builds kept)."""
    return "hidden" not in cell and "hidden" not in (cell.get("class") or "").split()


def json_cells(doc: Doc, variant: str | None = None) -> set[tuple[str, str]]:
    return {
        (row["torch"], column)
        for row in doc["rows"]
        for column, cell in row["cells"].items()
        if cell and (variant is None or variant in cell)
    }


@pytest.fixture(scope="module")
def page(
    index_server: IndexServer, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Page:
    """The JSON document and the HTML page of one matrix, from the same server."""
    doc = matrix_doc(index_server, env, "--python", PYTHONS)
    out = tmp_path_factory.mktemp("html") / "matrix.html"
    done = cli(env, "matrix", "--python", PYTHONS, "--html", str(out), *local_indexes(index_server))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(f"wrote {out}")
    assert "torch files for" in done.stdout, "the text table is still printed"
    return doc, out


def test_the_page_has_a_cell_for_each_of_the_jsons_cells(page: Page, chromium: Browser) -> None:
    doc, path = page
    dom = browse(chromium, path.as_uri(), "--dump-dom")
    assert 'data-shown="' in dom, "the script ran"
    cells = cells_of(dom)
    full = [c for c in cells if c["data-variants"]]
    assert {(c["data-torch"], c["data-python"]) for c in full} == json_cells(doc)
    assert len(full) == len(json_cells(doc))
    assert all(shown(c) for c in full), "no filter in the URL: every cell shows"
    for c in full:
        row = next(r for r in doc["rows"] if r["torch"] == c["data-torch"])
        assert (c["data-variants"] or "").split() == list(row["cells"][c["data-python"]])
        title = c["title"] or ""
        assert title.startswith(f"torch {c['data-torch']} for CPython {c['data-python']}")
        assert "MB" in title or "size unknown" in title
    parser = Cells()
    parser.feed(dom)
    torches = [r["data-torch"] for r in parser.rows]
    assert torches == [r["torch"] for r in doc["rows"]], "every release, newest first"
    folded = [r["data-torch"] for r in parser.rows if "hidden" in r]
    assert "2.14.0" in folded, "a patch release folded under the newest"
    assert "2.14.1" not in folded
    opened = Cells()
    opened.feed(browse(chromium, path.as_uri() + "#all=1", "--dump-dom"))
    assert not [r for r in opened.rows if "hidden" in r]


def test_a_filter_in_the_fragment_keeps_only_its_builds_and_pythons(
    page: Page, chromium: Browser
) -> None:
    doc, path = page
    cells = cells_of(browse(chromium, path.as_uri() + "#variant=cpu", "--dump-dom"))
    visible = [c for c in cells if c["data-variants"] and shown(c)]
    assert {(c["data-torch"], c["data-python"]) for c in visible} == json_cells(doc, "cpu")
    assert {c["data-shown"] for c in visible} == {"cpu"}
    both = cells_of(browse(chromium, path.as_uri() + "#variant=cpu&python=3.12", "--dump-dom"))
    visible = [c for c in both if c["data-variants"] and shown(c)]
    assert {c["data-python"] for c in visible} == {"3.12"}
    assert len(visible) == len({k for k in json_cells(doc, "cpu") if k[1] == "3.12"})
    assert all("hidden" in c for c in both if c["data-python"] != "3.12")


def test_a_cells_files_open_in_the_details_panel(page: Page, chromium: Browser) -> None:
    doc, path = page
    dom = browse(chromium, path.as_uri() + "#show=2.5.1@3.12", "--dump-dom")
    panel = dom.split('id="details"', 1)[1].split("</aside>", 1)[0]
    assert "torch 2.5.1 for CPython 3.12" in panel
    files = next(r for r in doc["rows"] if r["torch"] == "2.5.1")["cells"]["3.12"]
    for variant, fs in files.items():
        assert f"<h3>{variant}" in panel
        assert all(f'href="{f["url"]}"' in panel and f["filename"] in panel for f in fs)


def test_the_page_is_self_contained_and_takes_a_screenshot(
    page: Page, chromium: Browser, tmp_path: Path
) -> None:
    _doc, path = page
    text = path.read_text(encoding="utf-8")
    markup = text.split('<script type="application/json"', 1)[0]
    for loads in ("<link", "@import", "url("):
        assert loads not in text
    assert not re.search(r"""\bsrc\s*=""", text), "no image, script or frame is loaded"
    assert not re.search(r"https?://", markup), "no URL outside the embedded data"
    shot = tmp_path / "matrix.png"
    browse(chromium, path.as_uri(), f"--screenshot={shot}", "--window-size=1400,1000")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_the_data_cannot_close_its_script_tag() -> None:
    doc = {"platform": "</script><script>alert(1)</script>", "accelerator": None,
           "pythons": [], "variants": [], "rows": [], "warnings": ["<b>&"]}  # fmt: skip
    text = render_html(doc)
    assert text.count("</script>") == 2, "the JSON's and the script's own"
    assert "\\u003c/script\\u003e" in embed_json(doc)
    assert "<b>&" not in text


def test_an_existing_file_is_refused_without_force(
    index_server: IndexServer, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "m.html"
    out.write_text("keep")
    args = ("matrix", "--python", "3.12", "--html", str(out), *local_indexes(index_server))
    done = cli(env, *args)
    assert done.returncode == 2
    assert "exists" in done.stderr
    assert "--force" in done.stderr
    assert out.read_text() == "keep"
    done = cli(env, *args, "--force", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("{")
    assert f"wrote {out}" in done.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
