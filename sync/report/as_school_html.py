"""HTML per school: `index.html` (each school with its counts, linked) and one self-contained page per
school, drawn from `sync.report.by_school`'s pages with the templates and assets of `as_html`.

A school's page is named after its sync key (`school_file`): ASCII letters, digits, "-", "_" and "."
(but a leading ".") are used as they are; any other character (a "/", a space, a "~", ...) is
written as "~" and its UTF-8 bytes in hex ("a/b" -> "a~2fb.html"), and a key that would be named
"index" gets its first letter written that way. So every name stays inside the report folder and no
two keys share one (on a case-sensitive file system). What belongs to no school is "~no-school.html".
Pure: returns the files' names and texts; the CLI writes them.
"""

from __future__ import annotations

import string
import urllib.parse
from collections.abc import Sequence
from typing import Final

from sync.models import Plan, RunResult
from sync.models.operations import Operation
from sync.report.as_html import chart, environment, head_assets
from sync.report.by_school import NO_SCHOOL_KEY, SchoolPage, plan_school_pages, run_school_pages
from sync.report.meta import MAX_TABLE_ROWS, ReportMeta

__all__ = ["INDEX_FILE", "NO_SCHOOL_FILE", "plan_school_files", "run_school_files", "school_file"]

INDEX_FILE: Final = "index.html"
NO_SCHOOL_FILE: Final = "~no-school.html"

_PLAIN: Final = frozenset(string.ascii_letters + string.digits + "-_")


def _escaped(text: str) -> str:
    return "".join(f"~{byte:02x}" for byte in text.encode("utf-8"))


def school_file(key: str) -> str:
    """The file name of the page of the school `key` (see the module's docstring)."""
    if key == NO_SCHOOL_KEY:
        return NO_SCHOOL_FILE
    name = "".join(ch if ch in _PLAIN or (ch == "." and at) else _escaped(ch) for at, ch in enumerate(key))
    if name.lower() == "index":
        name = _escaped(name[0]) + name[1:]
    return f"{name}.html"


def _files(pages: Sequence[SchoolPage], meta: ReportMeta, max_rows: int, *, what: str) -> dict[str, str]:
    css, js, csp = head_assets()
    env = environment()
    links = [(page, school_file(page.key)) for page in pages]
    common = {"meta": meta, "css": css, "js": js, "csp": csp, "max_rows": max_rows, "what": what}
    files = {
        INDEX_FILE: env.get_template("schools_index.html.j2").render(
            schools=[(page, urllib.parse.quote(name)) for page, name in links],
            headers=[label for label, _, _ in pages[0].counts] if pages else [],
            **common,
        )
    }
    for page, name in links:
        files[name] = env.get_template("school.html.j2").render(
            page=page, index=INDEX_FILE, chart=chart(page.counts), **common
        )
    return files


def plan_school_files(plan: Plan, *, meta: ReportMeta, max_rows: int = MAX_TABLE_ROWS) -> dict[str, str]:
    """A plan's per-school report: file name -> HTML, `INDEX_FILE` first."""
    return _files(plan_school_pages(plan, max_rows), meta, max_rows, what="Planned changes")


def run_school_files(
    result: RunResult,
    *,
    meta: ReportMeta,
    held: Sequence[tuple[Operation, str]] = (),
    max_rows: int = MAX_TABLE_ROWS,
) -> dict[str, str]:
    """A run's per-school report (what was done, not done, held back and why): file name -> HTML."""
    return _files(run_school_pages(result, held, max_rows), meta, max_rows, what="What the run did")
