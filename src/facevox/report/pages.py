"""Every HTML the report makes: self-contained pages for the Snakemake report (study, videos,
model predictions, run card, and each metric table's page, :func:`table_page`): one file
each, no external assets, so Snakemake can embed it as a ``data:`` URL in its ``iframe``.

Tables are plain ``<table>`` elements; :data:`TABLE_SCRIPT` (a few lines of inline
JavaScript, no library) makes every table with ``class="sortable"`` sortable by a click
on a header and filterable by the search box above it.  Pages link to each other only
through the report's own navigation (the links in the captions, workflow/report/*.rst):
a ``data:`` page has an opaque origin and cannot open another report item itself.

Tests: tests/test_report_pages.py
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from facevox.io import atomic_path

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:14px;color:#222;margin:1.2em 1.6em;
max-width:1400px}
h1{font-size:1.5em;margin:.2em 0 .6em} h2{font-size:1.2em;margin:1.4em 0 .5em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:13px} th,td{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top} th{background:#f0f3f7} tr:nth-child(even) td{background:#fafafa}
table.sortable th{cursor:pointer} table.sortable th:after{content:" \\2195";color:#999;font-size:.8em}
td.num{text-align:right;font-variant-numeric:tabular-nums} .note{color:#555;font-size:.92em}
.warn{background:#fff4e5;border:1px solid #f0b45a;padding:.6em .9em;margin:.6em 0}
.bad{color:#b00020} .ok{color:#1b7a1b} .muted{color:#888} td.wide{min-width:24em}
input.filter{margin:.3em 0;padding:3px 6px;width:22em}
.bar{background:#4a7ab5;height:12px;display:inline-block;vertical-align:middle}
section{margin-bottom:1.5em}
table.sortable td:first-child,table.sortable th:first-child{position:sticky;left:0;z-index:1;background:#fff}
table.sortable th:first-child{background:#f0f3f7}
"""

TABLE_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.dataset.dir !== 'asc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? 'asc' : 'desc';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort || a.cells[col].textContent.trim();
        var y = b.cells[col].dataset.sort || b.cells[col].textContent.trim();
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var box = document.querySelector('input.filter[data-table="' + table.id + '"]');
  if (box) {
    box.addEventListener('input', function () {
      var q = box.value.toLowerCase();
      Array.prototype.forEach.call(body.rows, function (r) {
        r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
      });
    });
  }
});
"""


def esc(value) -> str:
    """``value`` as HTML text; None / NaN as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return html.escape(str(value))


def fmt(value, digits: int = 2) -> str:
    """A number for a table cell: integers as they are, floats with ``digits`` decimals."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


class Cell:
    """A table cell: ``text`` (escaped unless ``raw``), an optional sort key and CSS class."""

    def __init__(self, text, sort=None, cls: str = "", raw: bool = False, title: str | None = None):
        self.text, self.sort, self.cls, self.raw, self.title = text, sort, cls, raw, title

    def render(self) -> str:
        attrs = ""
        if self.sort is not None:
            attrs += f' data-sort="{html.escape(str(self.sort), quote=True)}"'
        if self.cls:
            attrs += f' class="{self.cls}"'
        if self.title:
            attrs += f' title="{html.escape(self.title, quote=True)}"'
        return f"<td{attrs}>{self.text if self.raw else esc(self.text)}</td>"


def _cell(value) -> str:
    if isinstance(value, Cell):
        return value.render()
    if isinstance(value, bool):
        return Cell(fmt(value)).render()
    if isinstance(value, (int, float)):
        return Cell(fmt(value), sort=value if math.isfinite(float(value)) else "", cls="num").render()
    return Cell(value).render()


def table(header: Sequence[str], rows: Iterable[Sequence], table_id: str | None = None,
          sortable: bool = False, row_ids: Sequence[str] | None = None) -> str:
    """An HTML table; ``sortable`` adds the click-to-sort headers and a search box."""
    rows = list(rows)
    parts = []
    if sortable and table_id:
        parts.append(f'<input class="filter" type="search" data-table="{table_id}" '
                     f'placeholder="search {len(rows)} rows…" aria-label="search the table">')
    attrs = (f' id="{table_id}"' if table_id else "") + (' class="sortable"' if sortable else "")
    parts.append(f"<table{attrs}><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        rid = f' id="{html.escape(row_ids[i], quote=True)}"' if row_ids else ""
        parts.append(f"<tr{rid}>" + "".join(_cell(v) for v in row) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def definition_table(items: Iterable[tuple[str, object]]) -> str:
    """Two-column key / value table."""
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th>{_cell(v)}</tr>" for k, v in items) + "</table>"


def page(title: str, body: str, page_id: str) -> str:
    """A whole HTML document: ``<main id=page_id>`` around ``body``, styles and the table script."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><main id=\"{page_id}\">\n<h1>{esc(title)}</h1>\n{body}\n</main>"
            f"<script>{TABLE_SCRIPT}</script></body></html>\n")


def write_page(out, title: str, body: str, page_id: str) -> Path:
    """Write :func:`page` to ``out`` (atomically, UTF-8)."""
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(page(title, body, page_id), encoding="utf-8")
    return out


#: The style of a metric table's page (:func:`table_page`): our cells, their CI and the reported ones apart.
TABLE_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #f0f0f0; text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { text-align: left; font-weight: 600; }
.ci { background: #f3f8ff; }
.rep { background: #fbf6ea; color: #555; font-style: italic; }
th.rep, th.ci { font-style: normal; }
.first-rep { border-left: 3px solid #c9b88f; }
ul { font-size: 12px; color: #444; max-width: 70em; }
"""


def table_page(title: str, heading: str, header: Sequence[str], rows: Iterable[Sequence[str]],
               classes: Sequence[str], notes: Iterable[str], empty: str,
               sections: Iterable[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = ()) -> str:
    """A standalone page of one table and its notes (a metric table's ``.html``, facevox.report.table_files).

    Column ``i`` has the CSS class ``classes[i]`` (:data:`TABLE_PAGE_STYLE`; a header cell
    drops ``num``); ``empty`` fills the one row of a table without rows; ``sections``:
    further (heading, header, rows) tables after it (first column a name, the others
    numbers), e.g. a cross-validation's per-fold values; the notes follow as a list.
    Unlike :func:`page`, no script and no sorting: a plain table to read or copy.
    """
    rows = list(rows)
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>facevox: {esc(title)}</title>",
           f"<style>{TABLE_PAGE_STYLE}</style></head><body>",
           f"<h2>{esc(heading)}</h2>",
           "<table>", "<tr>" + "".join(f"<th class='{cls.replace('num', '').strip()}'>{esc(h)}</th>"
                                       for h, cls in zip(header, classes, strict=True)) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td class='{cls}'>{esc(c)}</td>" for c, cls in zip(row, classes, strict=True))
                   + "</tr>")
    if not rows:
        out.append(f"<tr><td colspan='{len(header)}'>{esc(empty)}</td></tr>")
    for sub_heading, sub_header, sub_rows in sections:
        out += ["</table>", f"<h3>{esc(sub_heading)}</h3>", "<table>",
                "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in sub_header) + "</tr>"]
        out += ["<tr>" + "".join(f"<td class='{'num' if i else 'name'}'>{esc(c)}</td>" for i, c in enumerate(r))
                + "</tr>" for r in sub_rows]
    out += ["</table>", "<ul>"] + [f"<li>{esc(n)}</li>" for n in notes] + ["</ul>", "</body></html>"]
    return "\n".join(out) + "\n"
