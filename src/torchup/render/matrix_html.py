"""The matrix as one self-contained HTML page (``torchup matrix --html FILE``).

The page is rendered from :meth:`~torchup.choose.matrix.Matrix.to_dict`, the very
document ``--json`` prints, so the two cannot disagree. It needs nothing outside the
file: the CSS and the (small, plain) script are inline, and the document is embedded
in a ``<script type="application/json">`` tag with every ``<`` written ``\\u003c`` so no
string in it can close the tag (HTML's "script data" state ends at ``</script``).

The table is in the HTML itself, so it reads without the script too: a row per torch
release, newest first, the patch releases of a minor after its newest one and hidden
until its ``+N`` button is pressed; a column per CPython (``*``: a Python of this
machine); each cell listing its builds, green where they run on this machine's
accelerator, its files and sizes in its ``title`` and, on click, in a details panel.
Every data cell is ``<td class="cell" data-torch=.. data-python=.. data-variants=..>``.

The filters (a checkbox per build and per Python) start from the URL fragment or
query: ``page.html#variant=cpu,cu124&python=3.12&all=1`` (``show=2.5.1@3.12`` also
opens that cell's details). A Python left out hides its
column (``hidden`` attribute on its header and cells); a build left out hides its
entries, and a cell with none left gets the class ``hidden``; each cell's
``data-shown`` lists the builds still shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["embed_json", "human_size", "render_html"]

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.meta, .legend { color: #555; margin: .2em 0; }
form { margin: .8em 0; display: flex; flex-wrap: wrap; gap: .4em 1.5em; }
fieldset { border: 1px solid #ccc; padding: .2em .6em; }
fieldset label { margin-right: .6em; white-space: nowrap; }
.layout { display: flex; gap: 1.5em; align-items: flex-start; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: .2em .4em; vertical-align: top; }
thead th { background: #f3f3f3; position: sticky; top: 0; }
th.here { background: #e3ecfb; }
th.torch { text-align: left; white-space: nowrap; }
td.cell { min-width: 4.5em; cursor: pointer; }
td.cell.empty { cursor: default; background: #fafafa; }
td.cell.runs { background: #dcf5dc; }
td.cell.hidden > * { display: none; }
td.cell.selected { outline: 2px solid #3367d6; }
.v { display: inline-block; font: 12px monospace; padding: 0 .25em; margin: 1px;
     border-radius: 3px; background: #eee; }
.v.runs { background: #2e8b3a; color: #fff; }
td.pairs { color: #555; white-space: nowrap; }
tr.patch th.torch { padding-left: 1.4em; font-weight: normal; }
button.fold { font-size: 11px; margin-left: .4em; }
#details { min-width: 24em; max-width: 40em; border: 1px solid #ccc; padding: .5em .8em;
           position: sticky; top: 1em; }
#details h2 { font-size: 1.05em; margin: .2em 0; }
#details ul { padding-left: 1.2em; margin: .2em 0 .6em; }
#details li { word-break: break-all; }
.sha { color: #777; font: 11px monospace; }
.warn { color: #a33; }
"""

_JS = """
(function () {
  "use strict";
  var doc = JSON.parse(document.getElementById("matrix-data").textContent);
  var all = function (sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); };
  function wanted() {
    var q = new URLSearchParams(location.search.slice(1) + "&" + location.hash.slice(1));
    var list = function (key) {
      return q.getAll(key).join(",").split(",").filter(function (x) { return x; });
    };
    return { variant: list("variant"), python: list("python"), all: q.get("all") === "1",
             show: (q.get("show") || "").split("@") };
  }
  function checked(name) {
    return all('input[name="' + name + '"]').filter(function (b) { return b.checked; })
      .map(function (b) { return b.value; });
  }
  function apply() {
    var variants = checked("variant"), pythons = checked("python");
    all("[data-python]").forEach(function (el) {
      el.hidden = pythons.indexOf(el.dataset.python) < 0;
    });
    all("td.cell").forEach(function (td) {
      var shown = [];
      td.querySelectorAll(".v").forEach(function (s) {
        var on = variants.indexOf(s.dataset.variant) >= 0;
        s.hidden = !on;
        if (on) shown.push(s.dataset.variant);
      });
      td.dataset.shown = shown.join(" ");
      td.classList.toggle("hidden", td.dataset.variants !== "" && !shown.length);
    });
  }
  function remember() {
    var frag = "variant=" + checked("variant").join(",") + "&python=" + checked("python").join(",");
    try { history.replaceState(null, "", "#" + frag); } catch (e) { /* file: may refuse */ }
  }
  function fold(minor, open) {
    all('tr.patch[data-minor="' + minor + '"]').forEach(function (tr) { tr.hidden = !open; });
    all('button.fold[data-minor="' + minor + '"]').forEach(function (b) {
      b.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
  function size(n) {
    if (n === null || n === undefined) return "size unknown";
    var units = ["B", "kB", "MB", "GB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function details(td) {
    var row = doc.rows.filter(function (r) { return r.torch === td.dataset.torch; })[0];
    var cell = (row && row.cells[td.dataset.python]) || {};
    var box = document.getElementById("details");
    box.textContent = "";
    box.appendChild(el("h2", "torch " + td.dataset.torch + " for CPython " + td.dataset.python));
    Object.keys(cell).forEach(function (variant) {
      var runs = row.runs_here.indexOf(variant) >= 0 ? " (runs on this machine)" : "";
      box.appendChild(el("h3", variant + runs));
      var ul = box.appendChild(el("ul"));
      cell[variant].forEach(function (f) {
        var li = ul.appendChild(el("li")), a = li.appendChild(el("a", f.filename));
        if (/^(https?|file):/.test(f.url)) a.href = f.url;
        li.appendChild(document.createTextNode(" " + size(f.size)));
        if (f.sha256) li.appendChild(el("div", "sha256 " + f.sha256, "sha"));
      });
    });
    all("td.cell.selected").forEach(function (c) { c.classList.remove("selected"); });
    td.classList.add("selected");
  }
  var want = wanted();
  ["variant", "python"].forEach(function (name) {
    var only = want[name].filter(function (v) {
      return all('input[name="' + name + '"]').some(function (b) { return b.value === v; });
    });
    all('input[name="' + name + '"]').forEach(function (b) {
      b.checked = !only.length || only.indexOf(b.value) >= 0;
      b.addEventListener("change", function () { apply(); remember(); });
    });
  });
  all("button.fold").forEach(function (b) {
    if (want.all) fold(b.dataset.minor, true);
    b.addEventListener("click", function (ev) {
      ev.stopPropagation();
      fold(b.dataset.minor, b.getAttribute("aria-expanded") !== "true");
    });
  });
  all("td.cell:not(.empty)").forEach(function (td) {
    td.addEventListener("click", function () { details(td); });
    td.addEventListener("keydown", function (ev) { if (ev.key === "Enter") details(td); });
  });
  apply();
  all("td.cell:not(.empty)").forEach(function (td) {
    if (td.dataset.torch === want.show[0] && td.dataset.python === want.show[1]) details(td);
  });
})();
"""


def human_size(size: int | None) -> str:
    """A size in decimal units, the way pip prints them.

    >>> human_size(None), human_size(999), human_size(1234567), human_size(2_500_000_000)
    ('size unknown', '999 B', '1.2 MB', '2.5 GB')
    """
    if size is None:
        return "size unknown"
    value, units = float(size), ("B", "kB", "MB", "GB")
    i = 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.1f} {units[i]}" if i else f"{size} B"


def embed_json(doc: Mapping[str, Any]) -> str:
    """``doc`` as JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&``
    are written as ``\\u`` escapes, which JSON.parse reads back unchanged.

    >>> embed_json({"a": "</script>"})
    '{"a": "\\\\u003c/script\\\\u003e"}'
    """
    text = json.dumps(doc)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(doc: Mapping[str, Any]) -> str:
    """The page for a matrix document (``Matrix.to_dict()``). Pure."""
    columns = [p for p in doc["pythons"] if any(p["name"] in r["cells"] for r in doc["rows"])]
    empty = [p["name"] for p in doc["pythons"] if p not in columns]
    accel = doc.get("accelerator")
    title = f"torch files for {doc['platform']}"
    meta = [
        f"Rows: torch releases, newest first; columns: CPython (* a Python of this machine); "
        f"builds that run on this machine's accelerator ({accel or 'none detected'}) in green.",
    ]
    if empty:
        meta.append(f"No file for CPython {', '.join(empty)}.")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        *(f'<p class="meta">{escape(m)}</p>' for m in meta),
        *(f'<p class="warn">warning: {escape(w)}</p>' for w in doc.get("warnings", ())),
        _filters(doc["variants"], columns),
        '<div class="layout">',
        _table(doc["rows"], columns),
        '<aside id="details"><p class="legend">Click a cell for its files; hover for a '
        "summary. <b>+N</b> after a release shows its older patch releases.</p></aside>",
        "</div>",
        f'<script type="application/json" id="matrix-data">{embed_json(doc)}</script>',
        f"<script>{_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _filters(variants: Sequence[str], columns: Sequence[Mapping[str, Any]]) -> str:
    def boxes(name: str, values: Sequence[str], legend: str) -> str:
        items = "".join(
            f'<label><input type="checkbox" name="{name}" value="{escape(v)}" checked> '
            f"{escape(v)}</label>"
            for v in values
        )
        return f"<fieldset><legend>{legend}</legend>{items}</fieldset>"

    return (
        '<form id="filters">'
        + boxes("variant", variants, "Builds")
        + boxes("python", [c["name"] for c in columns], "Pythons")
        + "</form>"
    )


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(
        f'<th data-python="{escape(c["name"])}"'
        + (f' class="here" title="{escape(c["here"])}"' if c["here"] else "")
        + f">{escape(c['name'])}{'*' if c['here'] else ''}</th>"
        for c in columns
    )
    out = [
        '<table id="matrix"><thead><tr><th class="torch">torch</th>'
        + head
        + "<th>torchvision / torchaudio</th></tr></thead><tbody>"
    ]
    minors: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        minors.setdefault(row["minor"], []).append(row)
    for minor, group in minors.items():
        for i, row in enumerate(group):
            out.append(_row(row, columns, newest=i == 0, patches=len(group) - 1, minor=minor))
    out.append("</tbody></table>")
    return "\n".join(out)


def _row(
    row: Mapping[str, Any],
    columns: Sequence[Mapping[str, Any]],
    *,
    newest: bool,
    patches: int,
    minor: str,
) -> str:
    torch = escape(row["torch"])
    label = torch
    if newest and patches:
        label += (
            f'<button class="fold" type="button" data-minor="{escape(minor)}" '
            f'aria-expanded="false" title="the older {minor}.x releases">+{patches}</button>'
        )
    attrs = f'data-torch="{torch}" data-minor="{escape(minor)}"'
    tr = f'<tr class="newest" {attrs}>' if newest else f'<tr class="patch" {attrs} hidden>'
    pairs = row.get("companions", {})
    companions = " / ".join(pairs.get(n) or "-" for n in ("torchvision", "torchaudio"))
    cells = "".join(_cell(row, c["name"]) for c in columns)
    return f'{tr}<th class="torch">{label}</th>{cells}<td class="pairs">{companions}</td></tr>'


def _cell(row: Mapping[str, Any], column: str) -> str:
    cell: Mapping[str, Sequence[Mapping[str, Any]]] = row["cells"].get(column, {})
    runs = set(row.get("runs_here", ()))
    key = f'data-torch="{escape(row["torch"])}" data-python="{escape(column)}"'
    if not cell:
        return f'<td class="cell empty" {key} data-variants=""></td>'
    names = list(cell)
    spans = "".join(
        f'<span class="v{" runs" if v in runs else ""}" data-variant="{escape(v)}">'
        f"{escape(v)}</span>"
        for v in names
    )
    classes = "cell runs" if runs & set(names) else "cell"
    variants = escape(" ".join(names))
    return (
        f'<td class="{classes}" {key} data-variants="{variants}" tabindex="0" '
        f'title="{escape(_title(row["torch"], column, cell, runs))}">{spans}</td>'
    )


def _title(
    torch: str, column: str, cell: Mapping[str, Sequence[Mapping[str, Any]]], runs: set[str]
) -> str:
    """The hover text: each build's files with their sizes."""
    lines = [f"torch {torch} for CPython {column}"]
    for variant, files in cell.items():
        lines.append(f"{variant}{' (runs on this machine)' if variant in runs else ''}:")
        lines += [f"  {f['filename']} ({human_size(f.get('size'))})" for f in files]
    return "\n".join(lines)
