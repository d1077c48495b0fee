"""Pure renderers: a Plan (dry run) or a RunResult (after a run) as JSON, CSV, Markdown or one HTML file.

The renderers read no clock, open no file and never recompute a plan; the CLI supplies the context
(`ReportMeta`) and writes the text. No format ever carries a password: `Create.password` is never read.
JSON and CSV are complete; Markdown and HTML cap each table at `MAX_TABLE_ROWS` rows and say how many
were left out.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import html
import io
import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, assert_never
from urllib.parse import urlsplit, urlunsplit

from sync.models import (
    PERSON_FIELDS,
    ChangeIdentifier,
    Conflict,
    Create,
    Delete,
    FieldChange,
    Operation,
    OperationResult,
    Outcome,
    Person,
    Plan,
    Reject,
    RunResult,
    Status,
    Update,
)
from sync.reconcile import reconcile_summary

if TYPE_CHECKING:
    import pandas as pd

    from sync.reconcile import ReconcileRow

__all__ = [
    "FORMATS",
    "MAX_TABLE_ROWS",
    "Format",
    "ReconcileFormat",
    "ReportMeta",
    "frame_to_csv",
    "neutralise_cell",
    "plan_to_dict",
    "render_plan",
    "render_reconcile",
    "render_run",
    "run_to_dict",
]

Format: TypeAlias = Literal["json", "csv", "md", "html"]

#: Every format the renderers accept, for CLI choices.
FORMATS: Final[tuple[Format, ...]] = ("json", "csv", "md", "html")

#: Rows shown per table in Markdown and HTML; the rest is counted in a visible note (CSV has them all).
MAX_TABLE_ROWS: Final = 5000

FIELD_LABELS: Final[Mapping[str, str]] = {
    "username": "Username",
    "given_name": "Given name",
    "family_name": "Family name",
    "email": "E-mail",
    "role": "Role",
    "birth_date": "Birth date",
    "phone": "Phone",
    "mobile": "Mobile",
}

# Person.values() builds its dict with getattr per field; this getter is several times faster,
# which matters for 10^5-operation reports.
_person_values: Final = operator.attrgetter(*PERSON_FIELDS)

#: One encoder for every JSON item (json.dumps builds a new one per call).
_JSON: Final = json.JSONEncoder(ensure_ascii=False)

# OWASP CSV injection: a spreadsheet treats a cell starting with one of these as a formula.
# A set lookup on the first character: this runs once per cell of 10^5-row exports.
_FORMULA_FIRST: Final = frozenset({"=", "+", "-", "@", "\t", "\r"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportMeta:
    """Context shown in a report's header, supplied by the CLI (the renderers read no clock).

    `endpoint` is shown without any user:password@ part, query or fragment, so a URL that carries
    credentials cannot leak them into a report.
    """

    title: str
    roster: str
    mapping: str
    state: str
    generated_at: str
    endpoint: str = ""
    tool_version: str

    def as_dict(self) -> dict[str, str]:
        """The meta under the names the JSON reports use (endpoint sanitised)."""
        return {
            "title": self.title,
            "roster": self.roster,
            "mapping": self.mapping,
            "state": self.state,
            "generatedAt": self.generated_at,
            "endpoint": _safe_endpoint(self.endpoint),
            "toolVersion": self.tool_version,
        }


def _safe_endpoint(url: str) -> str:
    """The URL without userinfo, query or fragment (the places a secret could hide)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparseable endpoint)"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --- shared helpers ----------------------------------------------------------------------------


def _op_name(op: Operation) -> str:
    match op:
        case Create():
            return "create"
        case Update():
            return "update"
        case ChangeIdentifier():
            return "changeIdentifier"
        case Delete():
            return "delete"
        case _:  # pragma: no cover - exhaustive
            assert_never(op)


_OP_LABELS: Final = {
    "create": "Create",
    "update": "Update",
    "changeIdentifier": "Change identifier",
    "delete": "Delete",
}


def _op_keys(op: Operation) -> dict[str, str]:
    """The keys naming an operation's person: syncKey, plus oldId/newId for an identifier change."""
    if isinstance(op, ChangeIdentifier):
        return {"syncKey": op.new_id, "oldId": op.old_id, "newId": op.new_id}
    return {"syncKey": op.sync_key}


def _changes_of(op: Operation) -> tuple[FieldChange, ...]:
    return op.changes if isinstance(op, Update | ChangeIdentifier) else ()


def _full_name(person: Person) -> str:
    return " ".join(part for part in (person.given_name, person.family_name) if part)


def _change_text(change: FieldChange) -> str:
    old = change.old if change.old else "(empty)"
    new = change.new if change.new else "(empty)"
    return f"{FIELD_LABELS.get(change.field, change.field)}: {old} → {new}"


def _changes_text(changes: Iterable[FieldChange]) -> str:
    return "; ".join(_change_text(c) for c in changes)


def _status_text(status: Status | None) -> str:
    if status is None:
        return ""
    return f"{status.code_major}/{status.severity}"


def _code_minor_text(status: Status | None) -> str:
    if status is None:
        return ""
    return "; ".join(f"{name}={value}" for name, value in status.code_minor)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --- JSON --------------------------------------------------------------------------------------


def _operation_dict(op: Create | Update | ChangeIdentifier) -> dict[str, object]:
    # Built field by field (never dataclasses.asdict) so Create.password cannot slip in.
    out: dict[str, object] = {"op": _op_name(op), **_op_keys(op), "identity": op.identity}
    out["person"] = dict(zip(PERSON_FIELDS, _person_values(op.person), strict=True))
    out["changes"] = [{"field": c.field, "old": c.old, "new": c.new} for c in _changes_of(op)]
    return out


def _delete_dict(op: Delete) -> dict[str, object]:
    return {"syncKey": op.sync_key, "identity": op.identity, "reason": op.reason}


def _reject_dict(reject: Reject) -> dict[str, object]:
    return {
        "file": reject.file,
        "row": reject.row,
        "field": reject.field,
        "reason": reject.reason,
        "syncKey": reject.sync_key,
    }


def _conflict_dict(conflict: Conflict) -> dict[str, object]:
    return {
        "identity": conflict.identity,
        "rosterKeys": list(conflict.roster_keys),
        "snapshotKeys": list(conflict.snapshot_keys),
        "reason": conflict.reason,
    }


def plan_to_dict(plan: Plan, *, meta: ReportMeta | None = None) -> dict[str, object]:
    """The JSON shape of a plan (never a password).

    Args:
        plan: the plan to describe.
        meta: the report context; `"meta"` is `{}` without it.
    """
    return {
        "summary": plan.summary.as_dict(),
        "operations": [_operation_dict(op) for op in plan.operations],
        "rejects": [_reject_dict(r) for r in plan.rejects],
        "conflicts": [_conflict_dict(c) for c in plan.conflicts],
        "deletions": [_delete_dict(d) for d in plan.deletions],
        "meta": meta.as_dict() if meta is not None else {},
    }


def _status_dict(status: Status | None) -> dict[str, object] | None:
    if status is None:
        return None
    return {
        "codeMajor": status.code_major,
        "severity": status.severity,
        "codeMinor": [{"name": name, "value": value} for name, value in status.code_minor],
        "messageIdRef": status.message_id_ref,
        "description": status.description,
    }


def _result_dict(result: OperationResult) -> dict[str, object]:
    return {
        "op": _op_name(result.operation),
        **_op_keys(result.operation),
        "outcome": result.outcome.value,
        "messageIdentifier": result.message_identifier,
        "status": _status_dict(result.status),
        "error": result.error,
        "attempts": result.attempts,
    }


def _run_summary(result: RunResult) -> dict[str, int]:
    counts = {outcome.value: result.count(outcome) for outcome in Outcome}
    counts["total"] = len(result.results)
    return counts


def run_to_dict(result: RunResult, *, meta: ReportMeta | None = None) -> dict[str, object]:
    """The JSON shape of a run: summary by outcome, why it stopped, every operation's outcome.

    Args:
        result: the run to describe.
        meta: the report context; `"meta"` is `{}` without it.
    """
    return {
        "runId": result.run_id,
        "startedAt": result.started_at,
        "finishedAt": result.finished_at,
        "stopped": result.stopped,
        "summary": _run_summary(result),
        "plan": result.plan.summary.as_dict(),
        "results": [_result_dict(r) for r in result.results],
        "rejects": [_reject_dict(r) for r in result.plan.rejects],
        "conflicts": [_conflict_dict(c) for c in result.plan.conflicts],
        "meta": meta.as_dict() if meta is not None else {},
    }


def _to_json(data: Mapping[str, object]) -> str:
    """Indented at the top two levels, one entry per line below.

    json.dumps with `indent` falls back to the pure-Python encoder (seconds for 10^5 operations);
    compact items go through the C encoder and still diff line by line.
    """
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n    ".join(map(_JSON.encode, value))
            body = f"[\n    {items}\n  ]"
        else:
            body = _JSON.encode(value)
        parts.append(f"  {_JSON.encode(key)}: {body}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# --- CSV ---------------------------------------------------------------------------------------


def neutralise_cell(value: str) -> str:
    """Prefix `'` to a cell a spreadsheet would run as a formula (OWASP CSV injection).

    Args:
        value: the cell's text.
    """
    return "'" + value if value[:1] in _FORMULA_FIRST else value


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([neutralise_cell(str(cell)) for cell in row] for row in rows)
    return buffer.getvalue()


_PLAN_CSV_HEADER: Final = (
    "kind",
    "sync_key",
    "old_id",
    "new_id",
    "identity",
    *PERSON_FIELDS,
    "changes",
    "file",
    "row",
    "field",
    "reason",
    "roster_keys",
    "snapshot_keys",
)


def _plan_csv_rows(plan: Plan) -> Iterable[tuple[object, ...]]:
    blank_person = ("",) * len(PERSON_FIELDS)
    for op in plan.operations:
        old_id, new_id = (op.old_id, op.new_id) if isinstance(op, ChangeIdentifier) else ("", "")
        yield (
            _op_name(op),
            op.sync_key,
            old_id,
            new_id,
            op.identity,
            *_person_values(op.person),
            _changes_text(_changes_of(op)),
            *("",) * 6,
        )
    for d in plan.deletions:
        yield ("delete", d.sync_key, "", "", d.identity, *blank_person, "", "", "", "", d.reason, "", "")
    for r in plan.rejects:
        yield ("reject", r.sync_key, "", "", "", *blank_person, "", r.file, r.row, r.field, r.reason, "", "")
    for c in plan.conflicts:
        yield (
            "conflict",
            "",
            "",
            "",
            c.identity,
            *blank_person,
            "",
            "",
            "",
            "",
            c.reason,
            " ".join(c.roster_keys),
            " ".join(c.snapshot_keys),
        )


_RUN_CSV_HEADER: Final = (
    "kind",
    "sync_key",
    "old_id",
    "new_id",
    "outcome",
    "message_identifier",
    "code_major",
    "severity",
    "code_minor",
    "message_id_ref",
    "description",
    "error",
    "attempts",
)


def _run_csv_rows(result: RunResult) -> Iterable[tuple[object, ...]]:
    for r in result.results:
        keys = _op_keys(r.operation)
        status = r.status
        yield (
            _op_name(r.operation),
            keys["syncKey"],
            keys.get("oldId", ""),
            keys.get("newId", ""),
            r.outcome.value,
            r.message_identifier,
            status.code_major if status else "",
            status.severity if status else "",
            _code_minor_text(status),
            (status.message_id_ref or "") if status else "",
            status.description if status else "",
            r.error,
            r.attempts,
        )


def frame_to_csv(frame: pd.DataFrame) -> str:
    """A DataFrame (e.g. a snapshot export) as CSV, every cell neutralised against formula injection.

    Args:
        frame: the table; a named index (such as the snapshot's "sync_key") is written as the first
            column, an unnamed one is left out.
    """
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    header = [str(c) for c in frame.columns]
    rows = frame.astype(object).where(frame.notna(), "").itertuples(index=False, name=None)
    return _csv(header, rows)


# --- reconcile ---------------------------------------------------------------------------------

ReconcileFormat: TypeAlias = Literal["table", "json", "csv"]

_TABLE_CELL_WIDTH: Final = 40


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _code_minor_list(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs]


def _reconcile_dict(row: ReconcileRow) -> dict[str, object]:
    e = row.entry
    return {
        "flags": sorted(row.flags),
        "runId": e.run_id,
        "messageIdentifier": e.message_identifier,
        "operation": e.operation,
        "attempt": e.attempt,
        "sentAt": _iso(e.sent_at),
        "answeredAt": _iso(e.answered_at),
        "messageIdRef": e.message_id_ref,
        "codeMajor": e.code_major,
        "severity": e.severity,
        "codeMinor": _code_minor_list(e.code_minor),
        "description": e.description,
        "outcome": e.outcome,
        "error": e.error,
        "items": [
            {
                "index": i.index,
                "syncKey": i.sync_key,
                "newSyncKey": i.new_sync_key,
                "codeMajor": i.code_major,
                "severity": i.severity,
                "codeMinor": _code_minor_list(i.code_minor),
                "description": i.description,
                "messageIdRef": i.message_id_ref,
                "outcome": i.outcome,
            }
            for i in e.items
        ],
    }


_RECONCILE_CSV_HEADER: Final = (
    "flags",
    "run_id",
    "message_identifier",
    "operation",
    "attempt",
    "sent_at",
    "answered_at",
    "message_id_ref",
    "code_major",
    "severity",
    "code_minor",
    "description",
    "outcome",
    "error",
    "items",
    "item_sync_keys",
)


def _reconcile_csv_row(row: ReconcileRow) -> tuple[object, ...]:
    e = row.entry
    return (
        " ".join(sorted(row.flags)),
        e.run_id,
        e.message_identifier,
        e.operation,
        e.attempt,
        _iso(e.sent_at),
        _iso(e.answered_at),
        e.message_id_ref or "",
        e.code_major or "",
        e.severity or "",
        "; ".join(f"{name}={value}" for name, value in e.code_minor),
        e.description,
        e.outcome,
        e.error,
        len(e.items),
        " ".join(i.sync_key for i in e.items),
    )


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
                _iso(r.entry.sent_at),
                r.entry.message_id_ref or "-",
                f"{r.entry.code_major or '-'}/{r.entry.severity or '-'} {r.entry.outcome}",
                str(len(r.entry.items)),
                r.entry.error or r.entry.description,
            )
        )
        for r in rows
    ]
    widths = [max(len(header[i]), *(len(t[i]) for t in table)) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        for cells in (header, *table)
    ]
    counts = ", ".join(f"{n} {flag}" for flag, n in summary.items() if flag != "requests")
    lines.append(f"{summary['requests']} requests: {counts}")
    return "\n".join(lines) + "\n"


def render_reconcile(rows: Sequence[ReconcileRow], *, fmt: ReconcileFormat | str) -> str:
    """Render `reconcile` rows: every journalled request, its answer and its flags.

    Args:
        rows: from `sync.reconcile.reconcile`, in sent order.
        fmt: "table" (aligned text for a terminal, one line per request, then the counts), "json"
            (`{"summary": ..., "requests": [...]}` with every item) or "csv" (neutralised).

    Raises:
        ValueError: `fmt` is unknown.
    """
    summary = reconcile_summary(rows)
    if fmt == "json":
        return _to_json({"summary": summary, "requests": [_reconcile_dict(r) for r in rows]})
    if fmt == "csv":
        return _csv(_RECONCILE_CSV_HEADER, map(_reconcile_csv_row, rows))
    if fmt == "table":
        return _reconcile_table(rows, summary) if rows else "no requests in the journal\n"
    raise ValueError(f"unknown reconcile format {fmt!r}; expected one of table, json, csv")


# --- Markdown ----------------------------------------------------------------------------------

# Escaped so a cell cannot end the table, start a tag or become a link or code span.
_MD_ESCAPES: Final = str.maketrans({c: "\\" + c for c in "\\|`*[]<>&"})


def _md(text: object) -> str:
    value = str(text).translate(_MD_ESCAPES)
    return value.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def _md_meta(meta: ReportMeta, extra: Sequence[tuple[str, str]] = ()) -> list[str]:
    lines = [f"# {_md(meta.title)}", ""]
    items = [
        ("Roster", meta.roster),
        ("Mapping", meta.mapping),
        ("State", meta.state),
        ("Endpoint", _safe_endpoint(meta.endpoint)),
        *extra,
        ("Generated", meta.generated_at),
        ("Tool version", meta.tool_version),
    ]
    lines += [f"- **{label}:** {_md(value)}" for label, value in items if value]
    lines.append("")
    return lines


def _md_table(
    out: list[str],
    heading: str,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    total: int,
    max_rows: int,
) -> None:
    out += [f"## {heading} — {total:,}", ""]
    if not total:
        out += ["None.", ""]
        return
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + " --- |" * len(header))
    out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows[:max_rows]]
    out.append("")
    if total > max_rows:
        out += [f"_{total - max_rows:,} more not shown — use --format csv._", ""]


def _md_summary(out: list[str], counts: Sequence[tuple[str, int]], label: str) -> None:
    out += ["## Summary", "", f"| {label} | Count |", "| --- | ---: |"]
    out += [f"| {_md(label)} | {count} |" for label, count in counts]
    out.append("")


def _plan_counts(plan: Plan) -> list[tuple[str, int]]:
    s = plan.summary
    return [
        ("Create", s.create),
        ("Update", s.update),
        ("Change identifier", s.change_identifier),
        ("Deletion candidates", s.delete),
        ("Conflicts", s.conflicts),
        ("Rejected rows", s.rejected),
        ("Unchanged", s.unchanged),
        ("In snapshot", s.snapshot_size),
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Section:
    """A table of a report: built once as plain text rows, rendered as Markdown or HTML."""

    anchor: str
    heading: str
    hint: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    total: int
    numeric: frozenset[int] = frozenset()  # columns that sort as numbers
    changes_column: int = -1  # column holding "; "-joined changes, drawn as before → after in HTML
    changes: list[tuple[FieldChange, ...]] = dataclasses.field(default_factory=list)
    outcome_column: int = -1


def _plan_sections(plan: Plan, max_rows: int) -> list[_Section]:
    creates = [op for op in plan.operations if isinstance(op, Create)]
    updates = [op for op in plan.operations if isinstance(op, Update)]
    changes = [op for op in plan.operations if isinstance(op, ChangeIdentifier)]
    person_labels = tuple(FIELD_LABELS[f] for f in PERSON_FIELDS)
    return [
        _Section(
            anchor="creates",
            heading="New people (create)",
            hint="People in the roster that itslearning does not have yet.",
            header=("Sync key", *person_labels, "Identity"),
            rows=[(op.sync_key, *_person_values(op.person), op.identity) for op in creates[:max_rows]],
            total=len(creates),
        ),
        _Section(
            anchor="updates",
            heading="Changed people (update)",
            hint="Each changed field, before → after.",
            header=("Sync key", "Name", "Username", "Changes"),
            rows=[
                (op.sync_key, _full_name(op.person), op.person.username, _changes_text(op.changes))
                for op in updates[:max_rows]
            ],
            total=len(updates),
            changes_column=3,
            changes=[op.changes for op in updates[:max_rows]],
        ),
        _Section(
            anchor="identifiers",
            heading="Identifier changes",
            hint="People recognised by their identity key whose sync key changed; fields may change too.",
            header=("Old sync key", "New sync key", "Name", "Identity", "Changes"),
            rows=[
                (op.old_id, op.new_id, _full_name(op.person), op.identity, _changes_text(op.changes))
                for op in changes[:max_rows]
            ],
            total=len(changes),
            changes_column=4,
            changes=[op.changes for op in changes[:max_rows]],
        ),
        _Section(
            anchor="deletions",
            heading="Deletion candidates",
            hint="In itslearning, gone from the roster. Always listed; deleted only if deletes are enabled.",
            header=("Sync key", "Identity", "Reason"),
            rows=[(d.sync_key, d.identity, d.reason) for d in plan.deletions[:max_rows]],
            total=len(plan.deletions),
        ),
        *_set_aside_sections(plan, max_rows),
    ]


def _set_aside_sections(plan: Plan, max_rows: int) -> list[_Section]:
    return [
        _Section(
            anchor="conflicts",
            heading="Conflicts",
            hint="Identity matches that cannot be resolved safely; nothing is sent for these people.",
            header=("Identity", "Roster keys", "Snapshot keys", "Reason"),
            rows=[
                (c.identity, " ".join(c.roster_keys), " ".join(c.snapshot_keys), c.reason)
                for c in plan.conflicts[:max_rows]
            ],
            total=len(plan.conflicts),
        ),
        _Section(
            anchor="rejects",
            heading="Rejected rows",
            hint="Roster rows that were not accepted and are never sent: fix them in the source system.",
            header=("File", "Row", "Field", "Sync key", "Reason"),
            rows=[(r.file, str(r.row), r.field, r.sync_key, r.reason) for r in plan.rejects[:max_rows]],
            total=len(plan.rejects),
            numeric=frozenset({1}),
        ),
    ]


def _result_row(r: OperationResult) -> tuple[str, ...]:
    keys = _op_keys(r.operation)
    key = f"{keys['oldId']} → {keys['newId']}" if "oldId" in keys else keys["syncKey"]
    status = r.status
    return (
        r.outcome.value,
        _OP_LABELS[_op_name(r.operation)],
        key,
        _status_text(status),
        _code_minor_text(status),
        status.description if status else "",
        r.error or _NOT_SENT.get(r.outcome, ""),
        str(r.attempts),
        r.message_identifier,
    )


# What the tables say for an operation that carries no error text of its own.
_NOT_SENT: Final = {Outcome.SKIPPED: "not sent: the run stopped before reaching it"}


def _run_sections(result: RunResult, max_rows: int) -> list[_Section]:
    header = (
        "Outcome",
        "Operation",
        "Sync key",
        "Status",
        "Code minor",
        "Description",
        "Error",
        "Attempts",
        "Message id",
    )
    problems = [r for r in result.results if r.outcome is not Outcome.CONFIRMED]
    confirmed = [r for r in result.results if r.outcome is Outcome.CONFIRMED]
    return [
        _Section(
            anchor="problems",
            heading="Not confirmed",
            hint=(
                "Rejected: itslearning refused the data (fix and rerun). Unconfirmed: sent without a "
                "trustworthy answer (the next run resends). Skipped: not sent."
            ),
            header=header,
            rows=[_result_row(r) for r in problems[:max_rows]],
            total=len(problems),
            numeric=frozenset({7}),
            outcome_column=0,
        ),
        _Section(
            anchor="confirmed",
            heading="Confirmed",
            hint="itslearning confirmed these; the snapshot records them.",
            header=header,
            rows=[_result_row(r) for r in confirmed[:max_rows]],
            total=len(confirmed),
            numeric=frozenset({7}),
            outcome_column=0,
        ),
        *_set_aside_sections(result.plan, max_rows),
        _unsent_deletions_section(result, max_rows),
    ]


def _unsent_deletions_section(result: RunResult, max_rows: int) -> _Section:
    """Deletion candidates the run did not send (deletes off): an operator must still see them."""
    sent = {r.operation.sync_key for r in result.results if isinstance(r.operation, Delete)}
    unsent = [d for d in result.plan.deletions if d.sync_key not in sent]
    return _Section(
        anchor="unsent-deletions",
        heading="Deletion candidates not sent",
        hint="Gone from the roster or marked for deletion; deleted only by a run with --deletes.",
        header=("Sync key", "Identity", "Reason"),
        rows=[(d.sync_key, d.identity, d.reason) for d in unsent[:max_rows]],
        total=len(unsent),
    )


def _run_counts(result: RunResult) -> list[tuple[str, int]]:
    return [(o.value.capitalize(), result.count(o)) for o in Outcome]


def _render_md(
    meta: ReportMeta,
    counts: Sequence[tuple[str, int]],
    sections: Sequence[_Section],
    *,
    max_rows: int,
    extra_meta: Sequence[tuple[str, str]] = (),
    banner: str = "",
    summary_label: str = "Kind",
) -> str:
    out = _md_meta(meta, extra_meta)
    if banner:
        out += [f"> **{_md(banner)}**", ""]
    _md_summary(out, counts, summary_label)
    for s in sections:
        _md_table(out, s.heading, s.header, s.rows, total=s.total, max_rows=max_rows)
    return "\n".join(out)


# --- HTML --------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@cache
def _asset(name: str) -> str:
    return (resources.files("sync") / "templates" / name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@cache
def _head_assets() -> tuple[str, str, str]:
    """The inline CSS, inline JS and a CSP that allows exactly those two (by hash) and nothing else."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return css, js, csp


_BAR_COLOURS: Final = {
    "Create": "#2f855a",
    "Update": "#2b6cb0",
    "Change identifier": "#805ad5",
    "Deletion candidates": "#c53030",
    "Conflicts": "#b7791f",
    "Rejected rows": "#9b2c2c",
    "Confirmed": "#2f855a",
    "Rejected": "#9b2c2c",
    "Unconfirmed": "#b7791f",
    "Skipped": "#718096",
}


def _svg_chart(counts: Sequence[tuple[str, int]]) -> str:
    """A horizontal bar chart drawn with SVG attributes only (style attributes would need CSP leave)."""
    bars = [(label, n) for label, n in counts if label in _BAR_COLOURS]
    top = max((n for _, n in bars), default=0) or 1
    label_w, bar_w, row_h = 150, 260, 24
    height = row_h * len(bars) + 4
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" height="{height}" '
        f'role="img" aria-label="Counts by kind"><title>Counts by kind</title>'
    ]
    for i, (label, n) in enumerate(bars):
        y = i * row_h + 2
        width = round(bar_w * n / top) if n else 0
        out.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13" fill="#1f2933">'
            f"{_e(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{max(width, 1)}" height="{row_h - 8}" '
            f'fill="{_BAR_COLOURS[label]}" rx="2"/>'
            f'<text x="{label_w + max(width, 1) + 6}" y="{y + 16}" font-size="13" fill="#1f2933">'
            f"{n:,}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _html_changes(changes: tuple[FieldChange, ...]) -> str:
    parts = []
    for c in changes:
        old = f"<del>{_e(c.old)}</del>" if c.old else '<span class="empty">(empty)</span>'
        new = f"<ins>{_e(c.new)}</ins>" if c.new else '<span class="empty">(empty)</span>'
        label = _e(FIELD_LABELS.get(c.field, c.field))
        parts.append(f'<div class="chg"><span class="f">{label}:</span> {old} → {new}</div>')
    return "".join(parts)


def _html_section(out: list[str], s: _Section, max_rows: int) -> None:
    tid = f"t-{s.anchor}"
    out.append(
        f'<section id="{s.anchor}"><h2>{_e(s.heading)} <span class="count">{s.total:,}</span></h2>'
        f'<p class="hint">{_e(s.hint)}</p>'
    )
    if not s.total:
        out.append('<p class="none">None.</p></section>')
        return
    out.append(
        f'<input type="search" class="filter" id="{tid}-filter" placeholder="Filter this table…" '
        f'aria-label="Filter {_e(s.heading)}" hidden><span class="shown" id="{tid}-shown"></span>'
        f'<div class="wrap"><table class="data" id="{tid}"><thead><tr>'
    )
    out += [f'<th scope="col">{_e(h)}</th>' for h in s.header]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(s.rows):
        out.append("<tr>")
        for j, cell in enumerate(row):
            if j == s.changes_column:
                out.append(f"<td>{_html_changes(s.changes[i])}</td>")
            elif j in s.numeric:
                out.append(f'<td data-sort="{_e(cell)}">{_e(cell)}</td>')
            elif j == s.outcome_column:
                out.append(f'<td class="o-{_e(cell)}">{_e(cell)}</td>')
            else:
                out.append(f"<td>{_e(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if s.total > max_rows:
        out.append(
            f'<p class="more">{s.total - max_rows:,} more not shown — use --format csv '
            f"for all {s.total:,}.</p>"
        )
    out.append("</section>")


def _render_html(
    meta: ReportMeta,
    counts: Sequence[tuple[str, int]],
    sections: Sequence[_Section],
    *,
    max_rows: int,
    extra_meta: Sequence[tuple[str, str]] = (),
    banner: str = "",
    summary_label: str = "Kind",
) -> str:
    css, js, csp = _head_assets()
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(meta.title)}</title><style>{css}</style></head><body>",
        f'<header><h1>{_e(meta.title)}</h1><dl class="meta">',
    ]
    items = [
        ("Roster", meta.roster),
        ("Mapping", meta.mapping),
        ("State", meta.state),
        ("Endpoint", _safe_endpoint(meta.endpoint)),
        *extra_meta,
        ("Generated", meta.generated_at),
        ("Tool version", meta.tool_version),
    ]
    out += [f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in items if value]
    out.append("</dl></header>")
    if banner:
        out.append(f'<p class="banner" role="alert"><strong>{_e(banner)}</strong></p>')
    out.append(
        '<section id="summary"><h2>Summary</h2><div class="summary"><table class="counts">'
        f'<thead><tr><th scope="col">{_e(summary_label)}</th><th scope="col">Count</th></tr></thead><tbody>'
    )
    out += [f'<tr><th scope="row">{_e(label)}</th><td class="n">{n:,}</td></tr>' for label, n in counts]
    out.append(f"</tbody></table>{_svg_chart(counts)}</div></section>")
    for s in sections:
        _html_section(out, s, max_rows)
    out.append(
        "<footer>Generated by ims-es-sync. Tables are filterable and sortable (click a header); "
        "the CSV format holds every row.</footer>"
    )
    out.append(f"<script>{js}</script></body></html>\n")
    return "".join(out)


# --- entry points ------------------------------------------------------------------------------


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
    _check_format(fmt)
    if fmt == "json":
        return _to_json(plan_to_dict(plan, meta=meta))
    if fmt == "csv":
        return _csv(_PLAN_CSV_HEADER, _plan_csv_rows(plan))
    render: Callable[..., str] = _render_md if fmt == "md" else _render_html
    return render(meta, _plan_counts(plan), _plan_sections(plan, max_rows), max_rows=max_rows)


def render_run(result: RunResult, *, fmt: Format, meta: ReportMeta, max_rows: int = MAX_TABLE_ROWS) -> str:
    """Render a run's results in one format: outcome of every operation, and why it stopped early.

    Args:
        result: the run to show.
        fmt: "json", "csv", "md" or "html".
        meta: the header context.
        max_rows: rows per table in md/html before a "more not shown" note.

    Raises:
        ValueError: `fmt` is not a known format.
    """
    _check_format(fmt)
    if fmt == "json":
        return _to_json(run_to_dict(result, meta=meta))
    if fmt == "csv":
        return _csv(_RUN_CSV_HEADER, _run_csv_rows(result))
    render: Callable[..., str] = _render_md if fmt == "md" else _render_html
    extra = (("Run id", result.run_id), ("Started", result.started_at), ("Finished", result.finished_at))
    banner = f"The run stopped early: {result.stopped}" if result.stopped else ""
    return render(
        meta,
        _run_counts(result),
        _run_sections(result, max_rows),
        max_rows=max_rows,
        extra_meta=extra,
        banner=banner,
        summary_label="Outcome",
    )
