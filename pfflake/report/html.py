"""The report's page: one static, self-contained ``index.html`` (inline CSS, figures by
relative link, no script, no network), readable on screen and on paper."""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any

import pyarrow as pa

from .context import Section

#: Rows of a table shown on the page (the rest is counted, not dropped silently).
MAX_ROWS = 40

CSS = """
:root { --fg: #1b1b1b; --muted: #5b5b5b; --line: #d0d0d0; --warn: #9a3412; --bg2: #f5f5f4; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1120px; padding: 18px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 6px; border-bottom: 2px solid var(--line); padding-bottom: 3px; }
h3 { font-size: 14px; margin: 12px 0 4px; }
.meta { color: var(--muted); font-size: 12px; }
nav ol { columns: 2; font-size: 13px; padding-left: 20px; }
.status-empty { color: var(--warn); font-size: 12px; }
section { margin: 26px 0; }
.intro { color: var(--muted); margin: 0 0 8px; }
.empty { border-left: 4px solid var(--warn); background: #fff7ed; padding: 8px 12px;
         font-weight: 600; color: var(--warn); }
figure { margin: 8px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 8px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; margin: 4px 0 8px; }
th, td { border: 1px solid var(--line); padding: 2px 6px; text-align: left; }
td { max-width: 26em; overflow-wrap: anywhere; }
th { white-space: nowrap; }
th { background: var(--bg2); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
ul.notes { font-size: 12px; color: var(--muted); margin: 4px 0; }
.glance { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 6px;
          margin: 12px 0; }
.glance div { background: var(--bg2); padding: 6px 10px; border-radius: 4px; }
.glance b { display: block; font-size: 18px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  nav { display: none; }
  section { break-before: auto; }
  figure, table, .empty { break-inside: avoid; }
  h2 { break-after: avoid; }
  .scroll { overflow: visible; }
  a { color: inherit; text-decoration: none; }
}
@page { size: A4; margin: 12mm; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def cell(value: Any) -> tuple[str, bool]:
    """Text of a table cell, and whether it is a number (right-aligned)."""
    if value is None:
        return "–", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN", True
        return (f"{value:,.6g}" if abs(value) < 1e15 else f"{value:.4g}"), True
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], False
    return str(value), False


def table_html(caption: str, table: pa.Table) -> str:
    cols = table.column_names
    rows = table.slice(0, MAX_ROWS).to_pylist()
    out = [f"<h3>{esc(caption)}</h3>", '<div class="scroll"><table>', "<thead><tr>"]
    out += [f"<th>{esc(c)}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>")
        for c in cols:
            text, num = cell(r[c])
            out.append(f'<td class="num">{esc(text)}</td>' if num else f"<td>{esc(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if table.num_rows > MAX_ROWS:
        out.append(f'<p class="meta">{table.num_rows - MAX_ROWS:,} more rows not shown '
                   "(query the lake for all of them).</p>")
    if table.num_rows == 0:
        out.append('<p class="meta">(no rows)</p>')
    return "".join(out)


def section_html(s: Section) -> str:
    out = [f'<section id="{esc(s.id)}" data-section="{esc(s.id)}">', f"<h2>{esc(s.title)}</h2>",
           f'<p class="intro">{esc(s.intro)}</p>']
    if s.empty:
        out.append(f'<p class="empty" data-empty="1">{esc(s.empty)}</p>')
    figs = [f'<figure><img src="{esc(p)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption>'
            "</figure>" for p, c in s.figures]
    if s.id == "gallery" and figs:
        out.append('<div class="gallery">' + "".join(figs) + "</div>")
    else:
        out += figs
    out += [table_html(c, t) for c, t in s.tables]
    if s.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in s.notes)
                   + "</ul>")
    out.append("</section>")
    return "\n".join(out)


def page(title: str, meta: str, glance: list[tuple[str, str]], sections: list[Section]) -> str:
    toc = "".join(
        f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a>'
        + (' <span class="status-empty">(no data)</span>' if s.empty else "") + "</li>"
        for s in sections)
    boxes = "".join(f"<div><b>{esc(v)}</b>{esc(k)}</div>" for k, v in glance)
    body = "\n".join(section_html(s) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p class=\"meta\">{esc(meta)}</p>"
        f'<div class="glance">{boxes}</div>'
        f"<nav><ol>{toc}</ol></nav></header>\n{body}\n"
        '<footer class="meta">Written by pfflake report from the lake alone (tables, views, '
        "calibration and timing functions); parameters and lake version in "
        '<a href="manifest.json">manifest.json</a>.</footer></body></html>\n')
