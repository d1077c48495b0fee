"""Markdown: a plan's or a run's page as GitHub-flavoured Markdown, each table capped at `max_rows`.

Pure: imports only the report's page model; every cell is escaped so it cannot end the table, start a
tag or become a link or code span.
"""

from __future__ import annotations

from typing import Final

from sync.report.meta import meta_items
from sync.report.sections import Page, Section

__all__ = ["render_md"]

# Escaped so a cell cannot end the table, start a tag or become a link or code span.
_MD_ESCAPES: Final = str.maketrans({c: "\\" + c for c in "\\|`*[]<>&"})


def _md(text: object) -> str:
    value = str(text).translate(_MD_ESCAPES)
    return value.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def _md_table(out: list[str], s: Section, max_rows: int) -> None:
    out += [f"## {s.heading} — {s.total:,}", ""]
    if not s.total:
        out += ["None.", ""]
        return
    out.append("| " + " | ".join(s.header) + " |")
    out.append("|" + " --- |" * len(s.header))
    out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in s.rows[:max_rows]]
    out.append("")
    if s.total > max_rows:
        out += [f"_{s.total - max_rows:,} more not shown — use --format csv._", ""]


def render_md(page: Page, max_rows: int) -> str:
    """The page as Markdown: header list, banner, summary table, then every section's table."""
    out = [f"# {_md(page.meta.title)}", ""]
    out += [f"- **{label}:** {_md(value)}" for label, value in meta_items(page.meta, page.extra_meta)]
    out.append("")
    if page.banner:
        out += [f"> **{_md(page.banner)}**", ""]
    out += ["## Summary", "", f"| {page.summary_label} | Count |", "| --- | ---: |"]
    out += [f"| {_md(label)} | {count} |" for label, count, _ in page.counts]
    out.append("")
    for s in page.sections:
        _md_table(out, s, max_rows)
    return "\n".join(out)
