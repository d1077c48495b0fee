"""Pure renderers: a Plan (dry run) or a RunResult (after a run) as JSON, CSV, Markdown or one HTML file.

Every format names each operation's kind of object (person, group or membership) and operation; the
Markdown and HTML summaries and tables of a plan of persons only look as they did before groups.

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
from functools import cache, partial
from importlib import resources
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, TypeVar, assert_never
from urllib.parse import urlsplit, urlunsplit

from sync.models import (
    PERSON_FIELDS,
    ChangeGroupIdentifier,
    ChangeIdentifier,
    ChangeMembershipIdentifier,
    ChangeOperation,
    Conflict,
    Create,
    CreateGroup,
    CreateMembership,
    DeactivateMembership,
    Delete,
    DeleteGroup,
    DeleteMembership,
    DeleteOperation,
    FieldChange,
    Membership,
    Operation,
    OperationResult,
    Outcome,
    Person,
    Plan,
    Reject,
    RunResult,
    Status,
    Update,
    UpdateGroup,
    UpdateMembership,
)
from sync.state.reconcile import reconcile_summary

if TYPE_CHECKING:
    import pandas as pd

    from sync.state.reconcile import ReconcileRow

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
    # groups
    "name": "Name",
    "type": "Type",
    "parent": "Parent",
    "description": "Description",
    # memberships (their "role" is labelled as a person's)
    "group": "Group",
    "person": "Person",
    "active": "Active",
}

ObjectKind: TypeAlias = Literal["person", "group", "membership"]

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


#: Every operation class's JSON name and kind of object (tests check that no Operation is missing).
_DESCRIPTIONS: Final[Mapping[type[Operation], tuple[str, ObjectKind]]] = {
    Create: ("create", "person"),
    Update: ("update", "person"),
    ChangeIdentifier: ("changeIdentifier", "person"),
    Delete: ("delete", "person"),
    CreateGroup: ("create", "group"),
    UpdateGroup: ("update", "group"),
    ChangeGroupIdentifier: ("changeIdentifier", "group"),
    DeleteGroup: ("delete", "group"),
    CreateMembership: ("create", "membership"),
    UpdateMembership: ("update", "membership"),
    ChangeMembershipIdentifier: ("changeIdentifier", "membership"),
    DeleteMembership: ("delete", "membership"),
    DeactivateMembership: ("deactivate", "membership"),
}


def _describe(op: Operation) -> tuple[str, ObjectKind]:
    """The operation's JSON name ("create", ...) and the kind of object it changes."""
    return _DESCRIPTIONS[type(op)]


# A person's labels are those of the persons-only reports (`_PERSON_LABELS` once groups or
# memberships show too); groups and memberships say what they are.
_OP_LABELS: Final[Mapping[tuple[str, ObjectKind], str]] = {
    ("create", "person"): "Create",
    ("update", "person"): "Update",
    ("changeIdentifier", "person"): "Change identifier",
    ("delete", "person"): "Delete",
    ("create", "group"): "Create group",
    ("update", "group"): "Update group",
    ("changeIdentifier", "group"): "Change group identifier",
    ("delete", "group"): "Delete group",
    ("create", "membership"): "Create membership",
    ("update", "membership"): "Update membership",
    ("changeIdentifier", "membership"): "Change membership identifier",
    ("delete", "membership"): "Delete membership",
    ("deactivate", "membership"): "Deactivate membership",
}
_PERSON_LABELS: Final[Mapping[str, str]] = {
    "create": "Create person",
    "update": "Update person",
    "changeIdentifier": "Change person identifier",
    "delete": "Delete person",
}


# These helpers match on class patterns: `isinstance(op, A | B)` builds the union on every call,
# which costs seconds over a 10^5-operation report.


def _op_keys(op: Operation) -> dict[str, str]:
    """The keys naming an operation's object: syncKey, plus oldId/newId for an identifier change."""
    match op:
        case ChangeIdentifier() | ChangeGroupIdentifier() | ChangeMembershipIdentifier():
            return {"syncKey": op.new_id, "oldId": op.old_id, "newId": op.new_id}
        case _:
            return {"syncKey": op.sync_key}


def _changes_of(op: Operation) -> tuple[FieldChange, ...]:
    match op:
        case (
            Update()
            | ChangeIdentifier()
            | UpdateGroup()
            | ChangeGroupIdentifier()
            | UpdateMembership()
            | ChangeMembershipIdentifier()
        ):
            return op.changes
        case _:
            return ()


def _identity_of(op: Operation) -> str:
    """The identity value of a person or group operation ("" for memberships, which have none)."""
    match op:
        case (
            CreateMembership()
            | UpdateMembership()
            | ChangeMembershipIdentifier()
            | DeleteMembership()
            | DeactivateMembership()
        ):
            return ""
        case _:
            return op.identity


def _membership_of(op: Operation) -> Membership | None:
    match op:
        case (
            CreateMembership()
            | UpdateMembership()
            | ChangeMembershipIdentifier()
            | DeleteMembership()
            | DeactivateMembership()
        ):
            return op.membership
        case _:
            return None


def _reason_of(op: Operation) -> str:
    match op:
        case Delete() | DeleteGroup() | DeleteMembership() | DeactivateMembership():
            return op.reason
        case _:
            return ""


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


def _operation_dict(op: ChangeOperation) -> dict[str, object]:
    # Built field by field (never dataclasses.asdict) so Create.password cannot slip in.
    name, kind = _describe(op)
    out: dict[str, object] = {"op": name, "object": kind, **_op_keys(op)}
    match op:
        case Create() | Update() | ChangeIdentifier():
            out["identity"] = op.identity
            out["person"] = dict(zip(PERSON_FIELDS, _person_values(op.person), strict=True))
        case CreateGroup() | UpdateGroup() | ChangeGroupIdentifier():
            out["identity"] = op.identity
            out["group"] = op.group.values()
        case CreateMembership() | UpdateMembership() | ChangeMembershipIdentifier():
            out["membership"] = op.membership.values()
        case _:  # pragma: no cover - exhaustive
            assert_never(op)
    out["changes"] = [{"field": c.field, "old": c.old, "new": c.new} for c in _changes_of(op)]
    return out


def _delete_dict(op: DeleteOperation) -> dict[str, object]:
    name, kind = _describe(op)
    out: dict[str, object] = {"op": name, "object": kind, "syncKey": op.sync_key}
    match op:
        case Delete():
            out |= {"identity": op.identity, "reason": op.reason}
        case DeleteGroup():
            out |= {"identity": op.identity, "reason": op.reason, "parent": op.parent}
        case DeleteMembership():
            out |= {"reason": op.reason, "membership": op.membership.values()}
        case _:  # pragma: no cover - exhaustive
            assert_never(op)
    return out


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

    Each operation and deletion candidate has `"op"` (create, update, changeIdentifier, delete) and
    `"object"` (person, group, membership) and its keys; a person's carries `"person"`, a group's
    `"group"` (name, type, parent, description; a group deletion only its snapshot `"parent"`), a
    membership's `"membership"` (group, person, role, active).

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
    name, kind = _describe(result.operation)
    membership = _membership_of(result.operation)
    return {
        "op": name,
        "object": kind,
        **_op_keys(result.operation),
        **({"membership": membership.values()} if membership is not None else {}),
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
    """The JSON shape of a run: summary by outcome, why it stopped, every operation's outcome (a
    membership's with its `"membership"`; `"op"` is "deactivate" under `--deletes deactivate`), and
    the deletion candidates the run did not send (`"deletionsNotSent"`).

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
        "deletionsNotSent": [_delete_dict(d) for d in _unsent_deletions(result)],
        "meta": meta.as_dict() if meta is not None else {},
    }


def _deletion_key(op: Operation) -> tuple[ObjectKind, str] | None:
    """Which deletion candidate an operation of a run carries out (a deactivation counts), if any."""
    match op:
        case Delete():
            return "person", op.sync_key
        case DeleteGroup():
            return "group", op.sync_key
        case DeleteMembership() | DeactivateMembership():
            return "membership", op.sync_key
        case _:
            return None


def _unsent_deletions(result: RunResult) -> list[DeleteOperation]:
    """The plan's deletion candidates the run did not send: all under `--deletes off`, persons and
    groups under `deactivate` (a deactivated membership was sent), none under `delete`."""
    sent = {_deletion_key(r.operation) for r in result.results}
    return [d for d in result.plan.deletions if _deletion_key(d) not in sent]


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
    # Blank cells (most of a wide row) need no neutralising.
    writer.writerows([neutralise_cell(str(cell)) if cell != "" else "" for cell in row] for row in rows)
    return buffer.getvalue()


# Appended after the persons-only columns, so a reader that indexes columns keeps working.
_OBJECT_CSV_COLUMNS: Final = (
    "object",
    "group_name",
    "group_type",
    "group_parent",
    "group_description",
    "membership_group",
    "membership_person",
    "membership_role",
    "membership_active",
)

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
    *_OBJECT_CSV_COLUMNS,
)

_BLANK_PERSON: Final = ("",) * len(PERSON_FIELDS)
_BLANK_GROUP: Final = ("",) * 4
_BLANK_MEMBERSHIP: Final = ("",) * 4


_PERSON_OBJECT_CELLS: Final = ("person", *_BLANK_GROUP, *_BLANK_MEMBERSHIP)


def _object_cells(op: Operation) -> tuple[str, ...]:
    """The `_OBJECT_CSV_COLUMNS` cells of an operation (a group deletion has only its parent)."""
    match op:
        case Create() | Update() | ChangeIdentifier() | Delete():
            return _PERSON_OBJECT_CELLS
        case CreateGroup() | UpdateGroup() | ChangeGroupIdentifier():
            g = op.group
            return ("group", g.name, g.type, g.parent, g.description, *_BLANK_MEMBERSHIP)
        case DeleteGroup():
            return ("group", "", "", op.parent, "", *_BLANK_MEMBERSHIP)
        case _:
            m = op.membership
            return ("membership", *_BLANK_GROUP, m.group, m.person, m.role, m.active)


def _plan_csv_rows(plan: Plan) -> Iterable[tuple[object, ...]]:
    for op in plan.operations:
        keys = _op_keys(op)
        match op:
            case Create() | Update() | ChangeIdentifier():
                person = _person_values(op.person)
            case _:
                person = _BLANK_PERSON
        yield (
            _describe(op)[0],
            op.sync_key,
            keys.get("oldId", ""),
            keys.get("newId", ""),
            _identity_of(op),
            *person,
            _changes_text(_changes_of(op)),
            *("",) * 6,
            *_object_cells(op),
        )
    for cells in _deletion_and_set_aside_cells(plan.deletions, plan):
        yield _csv_row(_PLAN_CSV_HEADER, cells)


def _csv_row(header: Sequence[str], cells: Mapping[str, object]) -> tuple[object, ...]:
    """A row of `header`'s columns from the named cells, blank where none is given."""
    return tuple(cells.get(name, "") for name in header)


def _deletion_and_set_aside_cells(
    deletions: Iterable[DeleteOperation], plan: Plan
) -> Iterable[dict[str, object]]:
    """The named cells of deletion candidates, then of the plan's rejected rows and conflicts (the plan
    and the run CSV share these columns)."""
    for d in deletions:
        yield {
            "kind": "delete",
            "sync_key": d.sync_key,
            "identity": _identity_of(d),
            "reason": d.reason,
            **dict(zip(_OBJECT_CSV_COLUMNS, _object_cells(d), strict=True)),
        }
    for r in plan.rejects:
        yield {
            "kind": "reject",
            "sync_key": r.sync_key,
            "file": r.file,
            "row": r.row,
            "field": r.field,
            "reason": r.reason,
        }
    for c in plan.conflicts:
        yield {
            "kind": "conflict",
            "identity": c.identity,
            "reason": c.reason,
            "roster_keys": " ".join(c.roster_keys),
            "snapshot_keys": " ".join(c.snapshot_keys),
        }


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
    # appended for groups, memberships, unsent deletion candidates, rejected rows and conflicts
    "identity",
    *_OBJECT_CSV_COLUMNS,
    "file",
    "row",
    "field",
    "reason",
    "roster_keys",
    "snapshot_keys",
)

#: The run CSV's `outcome` for a deletion candidate the run did not send (`--deletes` kept it).
_UNSENT_OUTCOME: Final = "not sent"


def _run_csv_rows(result: RunResult) -> Iterable[tuple[object, ...]]:
    for r in result.results:
        keys = _op_keys(r.operation)
        status = r.status
        yield (
            _describe(r.operation)[0],
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
            _identity_of(r.operation),
            *_object_cells(r.operation),
            "",
            "",
            "",
            _reason_of(r.operation),
            "",
            "",
        )
    for cells in _deletion_and_set_aside_cells(_unsent_deletions(result), result.plan):
        if cells["kind"] == "delete":
            cells["outcome"] = _UNSENT_OUTCOME
        yield _csv_row(_RUN_CSV_HEADER, cells)


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
        rows: from `sync.state.reconcile.reconcile`, in sent order.
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


def _meta_items(meta: ReportMeta, extra: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The header's label/value pairs, in order, without the empty ones (endpoint sanitised)."""
    items = [
        ("Roster", meta.roster),
        ("Mapping", meta.mapping),
        ("State", meta.state),
        ("Endpoint", _safe_endpoint(meta.endpoint)),
        *extra,
        ("Generated", meta.generated_at),
        ("Tool version", meta.tool_version),
    ]
    return [(label, value) for label, value in items if value]


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


# --- tables shared by Markdown and HTML --------------------------------------------------------

_T = TypeVar("_T")

#: One summary row: label, count, and the colour of its bar in the HTML chart ("" for no bar).
_Count: TypeAlias = tuple[str, int, str]

_CREATE, _UPDATE, _CHANGE, _DELETE = "#2f855a", "#2b6cb0", "#805ad5", "#c53030"
_WARN, _REJECT, _MUTED = "#b7791f", "#9b2c2c", "#718096"

_OUTCOME_COLOURS: Final = {
    Outcome.CONFIRMED: _CREATE,
    Outcome.REJECTED: _REJECT,
    Outcome.UNCONFIRMED: _WARN,
    Outcome.SKIPPED: _MUTED,
}


def _kinds_present(plan: Plan) -> tuple[bool, bool]:
    """Whether the plan deals with groups, and with memberships (held in the snapshot, or changed)."""
    s = plan.summary
    groups = s.group_create + s.group_update + s.group_change_identifier + s.group_delete
    memberships = (
        s.membership_create + s.membership_update + s.membership_change_identifier + s.membership_delete
    )
    return (
        groups + s.group_unchanged + s.group_snapshot_size > 0,
        memberships + s.membership_unchanged + s.membership_snapshot_size > 0,
    )


def _kind_counts(
    kind: str, create: int, update: int, change: int, delete: int, unchanged: int, snapshot: int
) -> list[_Count]:
    rows = [
        (f"{kind}: create", create, _CREATE),
        (f"{kind}: update", update, _UPDATE),
        (f"{kind}: change identifier", change, _CHANGE),
    ]
    rows += [
        (f"{kind}: deletion candidates", delete, _DELETE),
        (f"{kind}: unchanged", unchanged, ""),
        (f"{kind}: in snapshot", snapshot, ""),
    ]
    return rows


def _plan_counts(plan: Plan) -> list[_Count]:
    """The summary: as it always was for persons only; per object kind once groups or memberships show."""
    s = plan.summary
    set_aside = [("Conflicts", s.conflicts, _WARN), ("Rejected rows", s.rejected, _REJECT)]
    groups, memberships = _kinds_present(plan)
    if not (groups or memberships):
        return [
            ("Create", s.create, _CREATE),
            ("Update", s.update, _UPDATE),
            ("Change identifier", s.change_identifier, _CHANGE),
            ("Deletion candidates", s.delete, _DELETE),
            *set_aside,
            ("Unchanged", s.unchanged, ""),
            ("In snapshot", s.snapshot_size, ""),
        ]
    counts = _kind_counts(
        "People", s.create, s.update, s.change_identifier, s.delete, s.unchanged, s.snapshot_size
    )
    if groups:
        counts += _kind_counts(
            "Groups",
            s.group_create,
            s.group_update,
            s.group_change_identifier,
            s.group_delete,
            s.group_unchanged,
            s.group_snapshot_size,
        )
    if memberships:
        counts += _kind_counts(
            "Memberships",
            s.membership_create,
            s.membership_update,
            s.membership_change_identifier,
            s.membership_delete,
            s.membership_unchanged,
            s.membership_snapshot_size,
        )
    return counts + set_aside


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


def _section(
    items: Sequence[_T],
    row: Callable[[_T], tuple[str, ...]],
    max_rows: int,
    *,
    anchor: str,
    heading: str,
    hint: str,
    header: tuple[str, ...],
    changes_column: int = -1,
    changes: Callable[[_T], tuple[FieldChange, ...]] = lambda _: (),
    numeric: frozenset[int] = frozenset(),
    outcome_column: int = -1,
) -> _Section:
    """One table of `items`, the first `max_rows` of them as rows; `changes` gives the field changes
    that HTML draws as before → after in `changes_column`."""
    shown = items[:max_rows]
    return _Section(
        anchor=anchor,
        heading=heading,
        hint=hint,
        header=header,
        rows=[row(item) for item in shown],
        total=len(items),
        numeric=numeric,
        changes_column=changes_column,
        changes=[changes(item) for item in shown] if changes_column >= 0 else [],
        outcome_column=outcome_column,
    )


def _person_change_sections(ops: Sequence[ChangeOperation], max_rows: int) -> list[_Section]:
    person_labels = tuple(FIELD_LABELS[f] for f in PERSON_FIELDS)
    return [
        _section(
            [op for op in ops if isinstance(op, Create)],
            lambda op: (op.sync_key, *_person_values(op.person), op.identity),
            max_rows,
            anchor="creates",
            heading="New people (create)",
            hint="People in the roster that itslearning does not have yet.",
            header=("Sync key", *person_labels, "Identity"),
        ),
        _section(
            [op for op in ops if isinstance(op, Update)],
            lambda op: (op.sync_key, _full_name(op.person), op.person.username, _changes_text(op.changes)),
            max_rows,
            anchor="updates",
            heading="Changed people (update)",
            hint="Each changed field, before → after.",
            header=("Sync key", "Name", "Username", "Changes"),
            changes_column=3,
            changes=_changes_of,
        ),
        _section(
            [op for op in ops if isinstance(op, ChangeIdentifier)],
            lambda op: (op.old_id, op.new_id, _full_name(op.person), op.identity, _changes_text(op.changes)),
            max_rows,
            anchor="identifiers",
            heading="Identifier changes",
            hint="People recognised by their identity key whose sync key changed; fields may change too.",
            header=("Old sync key", "New sync key", "Name", "Identity", "Changes"),
            changes_column=4,
            changes=_changes_of,
        ),
    ]


def _group_change_sections(ops: Sequence[ChangeOperation], max_rows: int) -> list[_Section]:
    return [
        _section(
            [op for op in ops if isinstance(op, CreateGroup)],
            lambda op: (op.sync_key, *op.group.values().values(), op.identity),
            max_rows,
            anchor="group-creates",
            heading="New groups (create)",
            hint="Groups in the roster that itslearning does not have yet; parents are created first.",
            header=("Sync key", "Name", "Type", "Parent", "Description", "Identity"),
        ),
        _section(
            [op for op in ops if isinstance(op, UpdateGroup)],
            lambda op: (op.sync_key, op.group.name, _changes_text(op.changes)),
            max_rows,
            anchor="group-updates",
            heading="Changed groups (update)",
            hint="Each changed field, before → after; a changed parent moves the group.",
            header=("Sync key", "Name", "Changes"),
            changes_column=2,
            changes=_changes_of,
        ),
        _section(
            [op for op in ops if isinstance(op, ChangeGroupIdentifier)],
            lambda op: (op.old_id, op.new_id, op.group.name, op.identity, _changes_text(op.changes)),
            max_rows,
            anchor="group-identifiers",
            heading="Group identifier changes",
            hint="Groups recognised by their identity whose sync key changed; fields may change too.",
            header=("Old sync key", "New sync key", "Name", "Identity", "Changes"),
            changes_column=4,
            changes=_changes_of,
        ),
    ]


def _membership_change_sections(ops: Sequence[ChangeOperation], max_rows: int) -> list[_Section]:
    return [
        _section(
            [op for op in ops if isinstance(op, CreateMembership)],
            lambda op: (op.sync_key, *op.membership.values().values()),
            max_rows,
            anchor="membership-creates",
            heading="New memberships (create)",
            hint="A person in a group with a role; sent after the people and groups they need.",
            header=("Sync key", "Group", "Person", "Role", "Active"),
        ),
        _section(
            [op for op in ops if isinstance(op, UpdateMembership)],
            lambda op: (
                op.sync_key,
                op.membership.group,
                op.membership.person,
                op.membership.role,
                _changes_text(op.changes),
            ),
            max_rows,
            anchor="membership-updates",
            heading="Changed memberships (update)",
            hint="Each changed field, before → after.",
            header=("Sync key", "Group", "Person", "Role", "Changes"),
            changes_column=4,
            changes=_changes_of,
        ),
        _section(
            [op for op in ops if isinstance(op, ChangeMembershipIdentifier)],
            lambda op: (
                op.old_id,
                op.new_id,
                op.membership.group,
                op.membership.person,
                _changes_text(op.changes),
            ),
            max_rows,
            anchor="membership-identifiers",
            heading="Membership identifier changes",
            hint="The same person in the same group under a new enrolment id: renamed, not enrolled twice.",
            header=("Old sync key", "New sync key", "Group", "Person", "Changes"),
            changes_column=4,
            changes=_changes_of,
        ),
    ]


# Hints of the deletion candidate tables: in a plan, and in a run report for those it did not send.
_DELETION_HINTS: Final[Mapping[tuple[ObjectKind, bool], str]] = {
    ("person", False): (
        "In itslearning, gone from the roster. Always listed; deleted only by a run with --deletes delete."
    ),
    ("group", False): (
        "In itslearning, gone from the roster (parent as the snapshot holds it). Always listed; deleted, "
        "children first, only by --deletes delete."
    ),
    ("membership", False): (
        "In itslearning, gone from the roster. Always listed; deactivated by --deletes deactivate, "
        "deleted by --deletes delete."
    ),
    ("person", True): (
        "Gone from the roster or marked for deletion; deleted only by a run with --deletes delete."
    ),
    ("group", True): "Gone from the roster; kept by this run, deleted only by a run with --deletes delete.",
    ("membership", True): (
        "Gone from the roster; neither deactivated nor deleted by this run (--deletes off, or already "
        "inactive)."
    ),
}


def _deletion_sections(
    deletions: Sequence[DeleteOperation], max_rows: int, *, groups: bool, memberships: bool, not_sent: bool
) -> list[_Section]:
    """Deletion candidates by kind, in the order a run deletes them: memberships, groups, persons."""
    prefix, suffix = ("unsent-", " not sent") if not_sent else ("", "")
    out = []
    if memberships:
        out.append(
            _section(
                [d for d in deletions if isinstance(d, DeleteMembership)],
                lambda d: (d.sync_key, d.membership.group, d.membership.person, d.membership.role, d.reason),
                max_rows,
                anchor=f"{prefix}membership-deletions",
                heading=f"Membership deletion candidates{suffix}",
                hint=_DELETION_HINTS["membership", not_sent],
                header=("Sync key", "Group", "Person", "Role", "Reason"),
            )
        )
    if groups:
        out.append(
            _section(
                [d for d in deletions if isinstance(d, DeleteGroup)],
                lambda d: (d.sync_key, d.parent, d.identity, d.reason),
                max_rows,
                anchor=f"{prefix}group-deletions",
                heading=f"Group deletion candidates{suffix}",
                hint=_DELETION_HINTS["group", not_sent],
                header=("Sync key", "Parent", "Identity", "Reason"),
            )
        )
    out.append(
        _section(
            [d for d in deletions if isinstance(d, Delete)],
            lambda d: (d.sync_key, d.identity, d.reason),
            max_rows,
            anchor=f"{prefix}deletions",
            heading=f"Deletion candidates{suffix}",
            hint=_DELETION_HINTS["person", not_sent],
            header=("Sync key", "Identity", "Reason"),
        )
    )
    return out


def _plan_sections(plan: Plan, max_rows: int) -> list[_Section]:
    """The plan's tables in the order a run sends them; group and membership tables only when the
    plan deals with groups or memberships."""
    groups, memberships = _kinds_present(plan)
    ops = plan.operations
    return [
        *(_group_change_sections(ops, max_rows) if groups else ()),
        *_person_change_sections(ops, max_rows),
        *(_membership_change_sections(ops, max_rows) if memberships else ()),
        *_deletion_sections(plan.deletions, max_rows, groups=groups, memberships=memberships, not_sent=False),
        *_set_aside_sections(plan, max_rows),
    ]


def _set_aside_sections(plan: Plan, max_rows: int) -> list[_Section]:
    return [
        _section(
            plan.conflicts,
            lambda c: (c.identity, " ".join(c.roster_keys), " ".join(c.snapshot_keys), c.reason),
            max_rows,
            anchor="conflicts",
            heading="Conflicts",
            hint="Identity matches that cannot be resolved safely; nothing is sent for these keys.",
            header=("Identity", "Roster keys", "Snapshot keys", "Reason"),
        ),
        _section(
            plan.rejects,
            lambda r: (r.file, str(r.row), r.field, r.sync_key, r.reason),
            max_rows,
            anchor="rejects",
            heading="Rejected rows",
            hint="Roster rows that were not accepted and are never sent: fix them in the source system.",
            header=("File", "Row", "Field", "Sync key", "Reason"),
            numeric=frozenset({1}),
        ),
    ]


def _result_row(r: OperationResult, *, mixed: bool) -> tuple[str, ...]:
    """A row of a run's results table; `mixed` when the run also deals with groups or memberships,
    so a person's operation says it is one."""
    keys = _op_keys(r.operation)
    key = f"{keys['oldId']} → {keys['newId']}" if "oldId" in keys else keys["syncKey"]
    name, kind = _describe(r.operation)
    status = r.status
    return (
        r.outcome.value,
        _PERSON_LABELS[name] if mixed and kind == "person" else _OP_LABELS[name, kind],
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

_RESULT_HEADER: Final = (
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


def _run_sections(result: RunResult, max_rows: int) -> list[_Section]:
    groups, memberships = _kinds_present(result.plan)

    def results(anchor: str, heading: str, hint: str, rows: list[OperationResult]) -> _Section:
        return _section(
            rows,
            partial(_result_row, mixed=groups or memberships),
            max_rows,
            anchor=anchor,
            heading=heading,
            hint=hint,
            header=_RESULT_HEADER,
            numeric=frozenset({7}),
            outcome_column=0,
        )

    return [
        results(
            "problems",
            "Not confirmed",
            "Rejected: itslearning refused the data (fix and rerun). Unconfirmed: sent without a "
            "trustworthy answer (the next run resends). Skipped: not sent, and why.",
            [r for r in result.results if r.outcome is not Outcome.CONFIRMED],
        ),
        results(
            "confirmed",
            "Confirmed",
            "itslearning confirmed these; the snapshot records them.",
            [r for r in result.results if r.outcome is Outcome.CONFIRMED],
        ),
        *_set_aside_sections(result.plan, max_rows),
        *_deletion_sections(
            _unsent_deletions(result), max_rows, groups=groups, memberships=memberships, not_sent=True
        ),
    ]


def _run_counts(result: RunResult) -> list[_Count]:
    return [(o.value.capitalize(), result.count(o), _OUTCOME_COLOURS[o]) for o in Outcome]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Page:
    """What the Markdown and HTML renderers draw: header, summary counts and the tables."""

    meta: ReportMeta
    counts: Sequence[_Count]
    sections: Sequence[_Section]
    extra_meta: Sequence[tuple[str, str]] = ()
    banner: str = ""
    summary_label: str = "Kind"


def _render_md(page: _Page, max_rows: int) -> str:
    out = [f"# {_md(page.meta.title)}", ""]
    out += [f"- **{label}:** {_md(value)}" for label, value in _meta_items(page.meta, page.extra_meta)]
    out.append("")
    if page.banner:
        out += [f"> **{_md(page.banner)}**", ""]
    out += ["## Summary", "", f"| {page.summary_label} | Count |", "| --- | ---: |"]
    out += [f"| {_md(label)} | {count} |" for label, count, _ in page.counts]
    out.append("")
    for s in page.sections:
        _md_table(out, s.heading, s.header, s.rows, total=s.total, max_rows=max_rows)
    return "\n".join(out)


# --- HTML --------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@cache
def _asset(name: str) -> str:
    return (resources.files("sync.report") / "templates" / name).read_text(encoding="utf-8")


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


def _svg_chart(counts: Sequence[_Count]) -> str:
    """A horizontal bar chart drawn with SVG attributes only (style attributes would need CSP leave)."""
    bars = [(label, n, colour) for label, n, colour in counts if colour]
    top = max((n for _, n, _ in bars), default=0) or 1
    label_w = 230 if any(len(label) > 20 for label, _, _ in bars) else 150
    bar_w, row_h = 260, 24
    height = row_h * len(bars) + 4
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" height="{height}" '
        f'role="img" aria-label="Counts by kind"><title>Counts by kind</title>'
    ]
    for i, (label, n, colour) in enumerate(bars):
        y = i * row_h + 2
        width = round(bar_w * n / top) if n else 0
        out.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13" fill="#1f2933">'
            f"{_e(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{max(width, 1)}" height="{row_h - 8}" '
            f'fill="{colour}" rx="2"/>'
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


def _render_html(page: _Page, max_rows: int) -> str:
    css, js, csp = _head_assets()
    meta = page.meta
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(meta.title)}</title><style>{css}</style></head><body>",
        f'<header><h1>{_e(meta.title)}</h1><dl class="meta">',
    ]
    out += [
        f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in _meta_items(meta, page.extra_meta)
    ]
    out.append("</dl></header>")
    if page.banner:
        out.append(f'<p class="banner" role="alert"><strong>{_e(page.banner)}</strong></p>')
    out.append(
        '<section id="summary"><h2>Summary</h2><div class="summary"><table class="counts">'
        f'<thead><tr><th scope="col">{_e(page.summary_label)}</th><th scope="col">Count</th></tr></thead>'
        "<tbody>"
    )
    out += [
        f'<tr><th scope="row">{_e(label)}</th><td class="n">{n:,}</td></tr>' for label, n, _ in page.counts
    ]
    out.append(f"</tbody></table>{_svg_chart(page.counts)}</div></section>")
    for s in page.sections:
        _html_section(out, s, max_rows)
    out.append(
        "<footer>Generated by ims-es-sync. Tables are filterable and sortable (click a header); "
        "the CSV format holds every row.</footer>"
    )
    out.append(f"<script>{js}</script></body></html>\n")
    return "".join(out)


def _render_page(fmt: Format, page: _Page, max_rows: int) -> str:
    """A plan's or a run's page as Markdown or HTML (the JSON and CSV renderers need no page)."""
    return _render_md(page, max_rows) if fmt == "md" else _render_html(page, max_rows)


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
    page = _Page(meta=meta, counts=_plan_counts(plan), sections=_plan_sections(plan, max_rows))
    return _render_page(fmt, page, max_rows)


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
    page = _Page(
        meta=meta,
        counts=_run_counts(result),
        sections=_run_sections(result, max_rows),
        extra_meta=(
            ("Run id", result.run_id),
            ("Started", result.started_at),
            ("Finished", result.finished_at),
        ),
        banner=f"The run stopped early: {result.stopped}" if result.stopped else "",
        summary_label="Outcome",
    )
    return _render_page(fmt, page, max_rows)
