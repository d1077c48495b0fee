"""The report's entry points: a Plan (dry run), a RunResult (after a run) or reconcile rows rendered in
one format, each format in a module of its own (`as_json`, `as_csv`, `as_markdown`, `as_html`) and
Markdown and HTML drawn from one format-neutral page (`sections`).

Every format names each operation's kind of object (person, group or membership) and operation; the
Markdown and HTML summaries and tables of a plan of persons only look as they did before groups.

The renderers read no clock, open no file and never recompute a plan; the CLI supplies the context
(`ReportMeta`) and writes the text. No format ever carries a password: `Create.password` is never read.
JSON and CSV are complete; Markdown and HTML cap each table at `MAX_TABLE_ROWS` rows and say how many
were left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final, Generic, Literal, TypeAlias, TypeVar

from sync.models import Plan, RunResult
from sync.models.records import collector_paused
from sync.report.as_csv import (
    RECONCILE_CSV_HEADER,
    RUN_CSV_HEADER,
    frame_to_csv,
    neutralise_cell,
    plan_csv_pieces,
    reconcile_csv_row,
    run_csv_rows,
    write_csv,
)
from sync.report.as_html import render_html
from sync.report.as_json import iso, json_pieces, plan_to_dict, reconcile_to_dict, run_to_dict, to_json
from sync.report.as_markdown import render_md
from sync.report.drift import aligned
from sync.report.meta import FORMATS, MAX_TABLE_ROWS, Format, ReportMeta, check_format
from sync.report.sections import Page, plan_page, run_page
from sync.state.reconcile import reconcile_summary

if TYPE_CHECKING:
    from sync.state.reconcile import ReconcileRow

__all__ = [
    "FORMATS",
    "MAX_TABLE_ROWS",
    "Format",
    "ReconcileFormat",
    "ReportMeta",
    "frame_to_csv",
    "neutralise_cell",
    "plan_pieces",
    "plan_to_dict",
    "render_plan",
    "render_reconcile",
    "render_run",
    "run_to_dict",
]


_S = TypeVar("_S", Plan, RunResult)


@dataclass(frozen=True, slots=True)
class _Renderers(Generic[_S]):
    """How a plan or a run becomes each format."""

    data: Callable[..., dict[str, object]]  # (subject, meta=...) -> the JSON shape
    csv: Callable[[_S, ReportMeta], Iterable[str | bytes]]  # its text in pieces (bytes: UTF-8)
    page: Callable[[_S, ReportMeta, int], Page]

    def render(self, subject: _S, fmt: Format, meta: ReportMeta, max_rows: int) -> str:
        """`subject` in `fmt`: only the one asked for is built."""
        pieces = self.pieces(subject, fmt, meta, max_rows)
        return "".join(piece if isinstance(piece, str) else piece.decode("utf-8") for piece in pieces)

    def pieces(self, subject: _S, fmt: Format, meta: ReportMeta, max_rows: int) -> Iterator[str | bytes]:
        """`render`'s text in pieces, made as they are taken (JSON's operations a piece of lines at a
        time: a first night's report is never all in memory)."""
        check_format(fmt)
        with collector_paused():  # a first night's report: 10^5-10^6 lines and rows, none in a cycle
            if fmt == "json":
                yield from json_pieces(self.data(subject, meta=meta))
            elif fmt == "csv":
                yield from self.csv(subject, meta)
            else:
                page = self.page(subject, meta, max_rows)
                yield render_md(page, max_rows) if fmt == "md" else render_html(page, max_rows)


_PLAN: Final[_Renderers[Plan]] = _Renderers(
    partial(plan_to_dict, lines=True),
    lambda plan, meta: plan_csv_pieces(plan, meta.held, meta.drift),
    plan_page,
)
_RUN: Final[_Renderers[RunResult]] = _Renderers(
    partial(run_to_dict, lines=True),
    lambda result, meta: (write_csv(RUN_CSV_HEADER, run_csv_rows(result, meta.held)),),
    run_page,
)


def render_plan(plan: Plan, *, fmt: Format, meta: ReportMeta, max_rows: int = MAX_TABLE_ROWS) -> str:
    """Render a plan (dry run) in one format; never a password.

    Args:
        plan: the plan to show; it is not recomputed.
        fmt: "json", "csv", "md" or "html".
        meta: the header context.
        max_rows: rows per table in md/html before a "more not shown" note.

    Raises:
        ValueError: `fmt` is not a known format.
    """
    return _PLAN.render(plan, fmt, meta, max_rows)


def plan_pieces(
    plan: Plan, *, fmt: Format, meta: ReportMeta, max_rows: int = MAX_TABLE_ROWS
) -> Iterator[str | bytes]:
    """`render_plan`'s text in pieces, made as they are written (the CLI writes a report this way)."""
    return _PLAN.pieces(plan, fmt, meta, max_rows)


def render_run(result: RunResult, *, fmt: Format, meta: ReportMeta, max_rows: int = MAX_TABLE_ROWS) -> str:
    """Render a run's results in one format: outcome of every operation, and why it stopped early.

    `result` is the run to show; `fmt`, `meta` and `max_rows` are those of `render_plan`, and so is
    the ValueError an unknown `fmt` raises.
    """
    return _RUN.render(result, fmt, meta, max_rows)


# --- reconcile ---------------------------------------------------------------------------------

ReconcileFormat: TypeAlias = Literal["table", "json", "csv"]

_TABLE_CELL_WIDTH: Final = 40


def _clip(text: str) -> str:
    text = " ".join(text.split())  # one line per request in a terminal
    return text if len(text) <= _TABLE_CELL_WIDTH else text[: _TABLE_CELL_WIDTH - 1] + "…"


def _reconcile_table(rows: Sequence[ReconcileRow], summary: Mapping[str, int]) -> str:
    header = (
        "flags",
        "message id",
        "operation",
        "try",
        "sent at",
        "messageIdRef",
        "status",
        "items",
        "detail",
    )
    table = [
        tuple(
            _clip(cell)
            for cell in (
                ",".join(sorted(r.flags)),
                r.entry.message_identifier,
                r.entry.operation,
                str(r.entry.attempt),
                iso(r.entry.sent_at),
                r.entry.message_id_ref or "-",
                f"{r.entry.code_major or '-'}/{r.entry.severity or '-'} {r.entry.outcome}",
                str(len(r.entry.items)),
                r.entry.error or r.entry.description,
            )
        )
        for r in rows
    ]
    lines = aligned(header, table)
    counts = ", ".join(f"{n} {flag}" for flag, n in summary.items() if flag != "requests")
    lines.append(f"{summary['requests']} requests: {counts}")
    return "\n".join(lines) + "\n"


def render_reconcile(rows: Sequence[ReconcileRow], *, fmt: ReconcileFormat | str) -> str:
    """Render `reconcile` rows: every journalled request, its answer and its flags.

    Args:
        rows: from `sync.state.reconcile.reconcile`, in sent order.
        fmt: "table" (aligned text for a terminal, one line per request, then the counts), "json"
            (`{"summary": ..., "requests": [...]}` with every item) or "csv" (neutralised).

    Raises:
        ValueError: `fmt` is unknown.
    """
    summary = reconcile_summary(rows)
    if fmt == "json":
        return to_json({"summary": summary, "requests": [reconcile_to_dict(r) for r in rows]})
    if fmt == "csv":
        return write_csv(RECONCILE_CSV_HEADER, map(reconcile_csv_row, rows))
    if fmt == "table":
        return _reconcile_table(rows, summary) if rows else "no requests in the journal\n"
    raise ValueError(f"unknown reconcile format {fmt!r}; expected one of table, json, csv")
