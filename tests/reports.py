"""Shared by the report tests: hostile values, a person builder, report meta, and readers of rendered
HTML and Markdown (and of the DOM headless Chromium leaves after the page's script ran)."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from sync.models import PERSON_FIELDS, PERSON_LATER_FIELDS, Person
from sync.report.render import ReportMeta

PASSWORD = "Zq7!known-Pa55w0rd"
SCRIPT = "<script>alert(1)</script>"


def report_meta(*, title: str, roster: str, endpoint: str = "") -> ReportMeta:
    """Report context at a fixed time, for the generic mapping and the usual state directory."""
    return ReportMeta(
        title=title,
        roster=roster,
        mapping="generic",
        state="/var/lib/ims-sync",
        generated_at="2025-01-31T02:00:00Z",
        endpoint=endpoint,
        tool_version="0.1.0",
    )


def make_person(key: str, **fields: str) -> Person:
    """A student with every person field filled, `fields` overriding them."""
    base = {
        "username": f"u{key}",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email": f"{key}@school.test",
        "role": "Student",
        "birth_date": "2010-05-01",
        "phone": "",
        "mobile": "",
        **dict.fromkeys(PERSON_FIELDS[-PERSON_LATER_FIELDS:], ""),
    }
    base.update(fields)
    return Person.from_values(key, base)


# --- readers of rendered reports -----------------------------------------------------------------


class Page(HTMLParser):
    """Collects tables (by id), sections' text, every start tag, and script/style bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.headers: dict[str, list[str]] = {}
        self.sections: dict[str, str] = {}
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_head = False
        self._section: str | None = None
        self._raw: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in self.raw:
            self._raw = tag
            self.raw[tag].append("")
        elif tag == "section":
            self._section = a.get("id") or ""
            self.sections[self._section] = ""
        elif tag == "table" and (table_id := a.get("id")):
            self._table = table_id
            self.tables[table_id] = []
            self.headers[table_id] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self._table and not self._in_head:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in self.raw:
            self._raw = None
        elif tag == "section":
            self._section = None
        elif tag == "table":
            self._table = None
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._table and self._cell is not None:
            text = "".join(self._cell).strip()
            if self._in_head:
                self.headers[self._table].append(text)
            else:
                self.tables[self._table][-1].append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._raw:
            self.raw[self._raw][-1] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._section is not None:
            self.sections[self._section] += data


def parse_html(text: str) -> Page:
    """The structure of an HTML report."""
    page = Page()
    page.feed(text)
    page.close()
    return page


def md_cells(line: str) -> list[str]:
    """Split a Markdown table row on its unescaped pipes."""
    cells, current, escaped = [], "", False
    for ch in line.strip()[1:-1]:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += ch
    cells.append(current.strip())
    return cells


def md_section(text: str, heading: str) -> list[str]:
    """The lines of one `## heading` section."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {heading}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1 : end]


def chromium() -> str | None:
    """The Chromium binary, if one is installed."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_dom(url: str, tmp_path: Path) -> str:
    """The DOM headless Chromium dumps for `url` once its scripts ran (a fresh profile under `tmp_path`)."""
    completed = subprocess.run(
        [
            str(chromium()),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    return completed.stdout
