"""A verify's drift as a table (terminal), JSON, CSV, Markdown or HTML.

JSON rows carry exactly `kind`, `sync_key`, `drift` and, for a changed object, `fields` (field,
snapshot, itslearning); what the next run does about each row is in the other formats. Pure: renders
what it is given (`sync.models.drift`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal, TypeAlias, get_args

from sync.models import FieldChange
from sync.models.drift import DRIFT_KINDS, Drift
from sync.report.as_csv import write_csv
from sync.report.as_html import render_html
from sync.report.as_json import to_json
from sync.report.as_markdown import render_md
from sync.report.meta import MAX_TABLE_ROWS, ReportMeta
from sync.report.ops import changes_text
from sync.report.sections import Page, Section

__all__ = ["DRIFT_CSV_HEADER", "VERIFY_FORMATS", "VerifyFormat", "aligned", "render_drift"]

VerifyFormat: TypeAlias = Literal["table", "json", "csv", "md", "html"]
VERIFY_FORMATS: Final[tuple[VerifyFormat, ...]] = get_args(VerifyFormat)
DRIFT_CSV_HEADER: Final = ("kind", "sync_key", "drift", "fields", "next_run")
_HEADER: Final = ("Kind", "Sync key", "Fields (snapshot → itslearning)", "Next run")
_COLOURS: Final = {"missing": "#c53030", "changed": "#2b6cb0", "extra": "#b7791f"}
_HINTS: Final = {
    "missing": "In the snapshot, not in itslearning (deleted by hand?): `verify --repair`, then a run "
    "creates them.",
    "changed": "Fields differ: `verify --repair` records itslearning's values, then a run updates what the "
    "roster wants otherwise.",
    "extra": "In itslearning, not in the snapshot (created by hand?): never deleted by a repair.",
}


def _changes(row: Drift) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(field=f.field, old=f.snapshot, new=f.itslearning) for f in row.fields)


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, one line a row (header first), for a terminal."""
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        for cells in (header, *rows)
    ]


def _counts(rows: Sequence[Drift]) -> dict[str, int]:
    return {drift: sum(row.drift == drift for row in rows) for drift in DRIFT_KINDS}


def render_drift(
    rows: Sequence[Drift],
    *,
    fmt: VerifyFormat | str,
    meta: ReportMeta,
    checked: Mapping[str, int],
    notes: Sequence[str] = (),
    max_rows: int = MAX_TABLE_ROWS,
) -> str:
    """Render a verify's drifted objects.

    Args:
        rows: the drift, one row per object.
        fmt: "table", "json", "csv", "md" or "html".
        meta: the header context; `checked` how many objects of each kind were compared; `notes` what
            the check did not look at (a sample, an unread object).

    Raises:
        ValueError: `fmt` is unknown.
    """
    counts = _counts(rows)
    if fmt == "json":
        extra = {"checked": dict(checked), "drift": counts, "notes": list(notes)}
        return to_json({"meta": meta.as_dict() | extra, "rows": [row.as_dict() for row in rows]})
    cells = [(row.kind, row.sync_key, row.drift, changes_text(_changes(row)), row.next_run) for row in rows]
    if fmt == "csv":
        return write_csv(DRIFT_CSV_HEADER, cells)
    if fmt == "table":
        checked_text = ", ".join(f"{n} {kind}s" for kind, n in checked.items())
        lines = aligned(("kind", "sync key", "drift", "fields", "next run"), cells) if rows else []
        lines += [*notes, f"checked {checked_text}: " + ", ".join(f"{n} {d}" for d, n in counts.items())]
        return "\n".join(lines) + "\n"
    if fmt not in ("md", "html"):
        raise ValueError(f"unknown verify format {fmt!r}; expected one of {', '.join(VERIFY_FORMATS)}")
    page = Page(
        meta=meta,
        counts=[(drift, n, _COLOURS[drift]) for drift, n in counts.items()],
        sections=[_section(drift, [r for r in rows if r.drift == drift], max_rows) for drift in DRIFT_KINDS],
        extra_meta=[
            ("Checked", ", ".join(f"{n} {kind}s" for kind, n in checked.items())),
            *(("Note", n) for n in notes),
        ],
        summary_label="Drift",
    )
    return render_md(page, max_rows) if fmt == "md" else render_html(page, max_rows)


def _section(drift: str, rows: list[Drift], max_rows: int) -> Section:
    shown = rows[:max_rows]
    return Section(
        anchor=drift,
        heading=drift.capitalize(),
        hint=_HINTS[drift],
        header=_HEADER,
        rows=[(r.kind, r.sync_key, changes_text(_changes(r)), r.next_run) for r in shown],
        total=len(rows),
        changes_column=2,
        changes=[_changes(r) for r in shown],
    )
