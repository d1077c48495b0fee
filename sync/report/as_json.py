"""JSON: a plan, a run or a reconciliation as one JSON document, complete (never capped).

Pure: imports the models and the report's own operation helpers; writes no file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sync.models import (
    Conflict,
    Operation,
    OperationResult,
    Outcome,
    Plan,
    Reject,
    RunResult,
    Status,
    parent_portal_notice,
    split_children,
)
from sync.models.kinds import kind_of
from sync.report import ops
from sync.report.json_ops import operation_lines, result_line
from sync.report.meta import ReportMeta

if TYPE_CHECKING:
    from sync.state.reconcile import ReconcileRow

__all__ = ["Encoded", "iso", "json_pieces", "plan_to_dict", "reconcile_to_dict", "run_to_dict", "to_json"]

#: One encoder for every JSON item (json.dumps builds a new one per call).
_JSON: Final = json.JSONEncoder(ensure_ascii=False)


class Encoded:
    """Items already encoded as JSON, made piece by piece (a list of lines each) as `to_json` writes
    them one per line: a first night's 10^6 lines are never all held at once."""

    __slots__ = ("_pieces",)

    def __init__(self, pieces: Callable[[], Iterable[list[str] | bytes]]) -> None:
        self._pieces = pieces

    def pieces(self) -> Iterable[list[str] | bytes]:
        """The lines, a list at a time, or as UTF-8 bytes already joined by `LINE_SEP` (made anew on each
        call)."""
        return self._pieces()


#: What `to_json` writes between the items of a list (each on a line of its own).
LINE_SEP: Final = ",\n    "


def _operation_lines(operations: Sequence[Operation]) -> Encoded:
    """The operations' lines (`json_ops`); a piece's encoded dicts if one of its values is not text."""

    def dicts(some: Sequence[Operation]) -> list[str]:
        return list(map(_JSON.encode, map(_operation_dict, some)))

    return Encoded(lambda: operation_lines(operations, fallback=dicts, joined_by=LINE_SEP))


def _operation_dict(op: Operation) -> dict[str, object]:
    """An operation or deletion candidate: its name, kind and keys, its identity (kinds that have
    one), a deletion's reason, then its record's fields; a deletion that carries no record gives the
    references it holds instead (a group's parent). Built field by field (never dataclasses.asdict)
    so Create.password cannot slip in."""
    name, kind_name = ops.describe(op)
    kind = kind_of(op)
    deletion = name == "delete"
    out: dict[str, object] = {"op": name, "object": kind_name}
    out |= {"syncKey": op.sync_key} if deletion else ops.op_keys(op)
    if kind.identity:
        out["identity"] = ops.identity_of(op)
    if deletion:
        out["reason"] = ops.reason_of(op)
    record = ops.record_of(op)
    if record is not None:
        out[kind_name] = dict(zip(kind.fields, ops.values_of(record), strict=True))
    elif deletion:
        out |= {ref.field: getattr(op.record, ref.field) for ref in kind.references}
    if not deletion:
        out["changes"] = [{"field": c.field, "old": c.old, "new": c.new} for c in ops.changes_of(op)]
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


def plan_to_dict(plan: Plan, *, meta: ReportMeta | None = None, lines: bool = False) -> dict[str, object]:
    """The JSON shape of a plan (never a password).

    Each operation and deletion candidate has `"op"` (create, update, changeIdentifier, delete) and
    `"object"` (person, group, membership) and its keys; a person's carries `"person"`, a group's
    `"group"` (name, type, parent, description; a group deletion only its snapshot `"parent"`), a
    membership's `"membership"` (group, person, role, active).

    Args:
        plan: the plan to describe.
        meta: the report context; `"meta"` is `{}` without it. A meta with a fingerprint adds
            `"fingerprint"` and `"fingerprintParts"` (sync.plan.fingerprint) at the end.
        lines: operations and deletion candidates as `Encoded` lines, for `to_json` (the dicts
            cost seconds at 10^5 operations).
    """
    ops: Callable[[Sequence[Operation]], list[object] | Encoded] = (
        _operation_lines if lines else lambda items: [_operation_dict(op) for op in items]
    )
    out: dict[str, object] = {
        "summary": plan.summary.as_dict(),
        "operations": ops(plan.operations),
        "rejects": [_reject_dict(r) for r in plan.rejects],
        "conflicts": [_conflict_dict(c) for c in plan.conflicts],
        "deletions": ops(plan.deletions),
        "meta": meta.as_dict() if meta is not None else {},
    }
    if meta is not None and meta.fingerprint:
        out["fingerprint"] = meta.fingerprint
        out["fingerprintParts"] = dict(meta.fingerprint_parts)
    return out


def _code_minor_list(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs]


def _status_dict(status: Status | None) -> dict[str, object] | None:
    if status is None:
        return None
    return {
        "codeMajor": status.code_major,
        "severity": status.severity,
        "codeMinor": _code_minor_list(status.code_minor),
        "messageIdRef": status.message_id_ref,
        "description": status.description,
    }


def _result_dict(result: OperationResult) -> dict[str, object]:
    """An operation's outcome; an object without identity (a membership) is named by its record too."""
    op = result.operation
    name, kind_name = ops.describe(op)
    record = ops.record_of(op)
    kind = kind_of(op)
    named: dict[str, object] = {}
    if record is not None and not kind.identity:
        named[kind_name] = dict(zip(kind.fields, ops.values_of(record), strict=True))
    elif record is not None and kind.links and getattr(record, kind.links):
        named[kind.links] = list(split_children(getattr(record, kind.links)))  # a parent's links as sent
    return {
        "op": name,
        "object": kind_name,
        **ops.op_keys(op),
        **named,
        "outcome": result.outcome.value,
        "messageIdentifier": result.message_identifier,
        "status": _status_dict(result.status),
        "error": result.error,
        "attempts": result.attempts,
    }


def _run_summary(result: RunResult) -> dict[str, int]:
    counted = Counter(r.outcome for r in result.results)  # one walk (`RunResult.count` is one per outcome)
    counts = {outcome.value: counted[outcome] for outcome in Outcome}
    counts["total"] = len(result.results)
    return counts


def _result_lines(results: Sequence[OperationResult]) -> Encoded:
    """The results' lines (`json_ops.result_line`; each distinct status encoded once); each one's
    encoded dict if a value is not text."""
    statuses: dict[Status | None, str] = {None: "null"}

    def line(result: OperationResult) -> str:
        status = statuses.get(result.status)
        if status is None:
            status = statuses[result.status] = _JSON.encode(_status_dict(result.status))
        return result_line(result, status)

    def lines() -> list[list[str] | bytes]:
        try:
            return [list(map(line, results))]
        except TypeError:
            return [list(map(_JSON.encode, map(_result_dict, results)))]

    return Encoded(lines)


def run_to_dict(
    result: RunResult, *, meta: ReportMeta | None = None, lines: bool = False
) -> dict[str, object]:
    """The JSON shape of a run: summary by outcome, why it stopped, every operation's outcome (a
    membership's with its `"membership"`; `"op"` is "deactivate" under `--deletes deactivate`), and
    the deletion candidates the run did not send (`"deletionsNotSent"`), and, when the site's parent
    portal refused links, `"parentPortalDisabled"`.

    Args:
        result: the run to describe.
        meta: the report context; `"meta"` is `{}` without it.
        lines: results and unsent deletion candidates as `Encoded` lines, for `to_json`.
    """
    unsent = ops.unsent_deletions(result, meta.held if meta else ())
    return {
        "runId": result.run_id,
        "startedAt": result.started_at,
        "finishedAt": result.finished_at,
        "stopped": result.stopped,
        "summary": _run_summary(result),
        "plan": result.plan.summary.as_dict(),
        "results": _result_lines(result.results) if lines else [_result_dict(r) for r in result.results],
        "rejects": [_reject_dict(r) for r in result.plan.rejects],
        "conflicts": [_conflict_dict(c) for c in result.plan.conflicts],
        "deletionsNotSent": _operation_lines(unsent) if lines else [_operation_dict(d) for d in unsent],
        "meta": meta.as_dict() if meta is not None else {},
        **_portal(result),
    }


def _portal(result: RunResult) -> dict[str, object]:
    """`"parentPortalDisabled"`: the persons written without their links, only when there are some."""
    keys = result.parent_portal_disabled()
    return (
        {"parentPortalDisabled": {"message": parent_portal_notice(len(keys)), "syncKeys": list(keys)}}
        if keys
        else {}
    )


def iso(value: datetime | None) -> str:
    """An ISO 8601 timestamp, "" for none."""
    return value.isoformat() if value is not None else ""


def reconcile_to_dict(row: ReconcileRow) -> dict[str, object]:
    """One journalled request of `reconcile --format json`, with its flags and every item."""
    e = row.entry
    return {
        "flags": sorted(row.flags),
        "runId": e.run_id,
        "messageIdentifier": e.message_identifier,
        "operation": e.operation,
        "attempt": e.attempt,
        "sentAt": iso(e.sent_at),
        "answeredAt": iso(e.answered_at),
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


def to_json(data: Mapping[str, object]) -> str:
    """Indented at the top two levels, one entry per line below (`json_pieces`, joined)."""
    return "".join(piece if isinstance(piece, str) else piece.decode("utf-8") for piece in json_pieces(data))


def json_pieces(data: Mapping[str, object]) -> Iterator[str | bytes]:
    """`to_json`'s text in pieces (some as UTF-8 bytes), as they are made: a list of `Encoded` items a
    piece of lines at a time.

    json.dumps with `indent` falls back to the pure-Python encoder (seconds for 10^5 operations);
    compact items go through the C encoder and still diff line by line.
    """
    if not data:
        yield "{\n\n}\n"
        return
    opening = "{"
    for key, value in data.items():
        yield f"{opening}\n  {_JSON.encode(key)}: "
        opening = ","
        if isinstance(value, Encoded):
            pieces = value.pieces()
        elif isinstance(value, list) and value:
            pieces = [list(map(_JSON.encode, value))]
        else:
            yield _JSON.encode(value)
            continue
        start = "[\n    "
        for piece in pieces:
            if isinstance(piece, bytes):
                if piece:
                    yield start
                    yield piece
                    start = LINE_SEP
            elif piece:
                yield start + LINE_SEP.join(piece)
                start = LINE_SEP
        yield "[]" if start == "[\n    " else "\n  ]"
    yield "\n}\n"
