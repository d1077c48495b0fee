"""The journal: every request written as *sent* (committed before it goes out), then its answer, and
the runs they belong to; reading it back for reconcile and reports.

A snapshot row changes only in the same transaction as the journal answer that confirmed it
(`write_answer` applies the changes with sync.state.changes), so a run killed at any moment leaves the
journal and the snapshot consistent: requests sent but never answered stay visible as "unanswered" and
the next run re-diffs.

Reads and writes through a connection it is given, inside the caller's transaction; never commits.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sync.errors import StateError
from sync.models import Kind, Outcome, Status
from sync.state.changes import SnapshotChange, apply_change
from sync.state.clock import iso, now, parse_time

__all__ = [
    "Answer",
    "ItemAnswer",
    "JournalEntry",
    "JournalItemRow",
    "RequestItem",
    "RunInfo",
    "SentRequest",
    "begin_run",
    "end_run",
    "last_run_id",
    "read_journal",
    "read_runs",
    "unconfirmed_renames",
    "write_answer",
    "write_answers",
    "write_sent",
]

_SENT: Final = "sent"
_ROSTER_ROWS: Final = "roster_rows"  # the runs' summary key of the roster files' data rows


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestItem:
    """One object in a request: a single operation has one item (index 0), a mass operation N."""

    index: int
    sync_key: str
    new_sync_key: str = ""  # changePersonIdentifier's or changeGroupIdentifier's target


@dataclass(frozen=True, slots=True, kw_only=True)
class SentRequest:
    """A request about to go out, as the journal records it (committed before sending)."""

    run_id: str
    message_identifier: str
    operation: str  # IMS ES operation name, e.g. "createPerson", "createPersons"
    attempt: int  # 1-based
    items: tuple[RequestItem, ...]
    sent_at: datetime = field(default_factory=now)  # aware; the moment it is built, unless told

    @classmethod
    def fresh(
        cls, run_id: str, operation: str, items: tuple[RequestItem, ...], attempt: int = 1
    ) -> SentRequest:
        """A request under a new messageIdentifier (a random UUID, as IMS ES expects), sent now."""
        return cls(
            run_id=run_id,
            message_identifier=str(uuid.uuid4()),
            operation=operation,
            attempt=attempt,
            items=items,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemAnswer:
    """The answer for one item of a request (for a single operation, the request's own status)."""

    index: int
    status: Status | None  # None when there is no trustworthy answer
    outcome: Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """How a request ended: IMS ES's header status (if any), our verdict, and per-item answers."""

    message_identifier: str
    status: Status | None  # the header statusInfo (None: no answer / transport error)
    outcome: Outcome  # of the request as a whole
    error: str = ""  # our error text when there was no trustworthy answer (never secrets)
    items: tuple[ItemAnswer, ...] = ()
    answered_at: datetime = field(default_factory=now)  # aware; the moment it is built, unless told


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answered:
    """The answer fields JournalEntry and JournalItemRow share (None/"sent" while unanswered)."""

    message_id_ref: str | None
    code_major: str | None
    severity: str | None
    code_minor: tuple[tuple[str, str], ...]
    description: str
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalItemRow(_Answered):
    """One item of a journalled request, with its answer (None/"sent" while unanswered)."""

    index: int
    sync_key: str
    new_sync_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry(_Answered):
    """A journalled request joined with its answer and items, for reconcile and reports."""

    run_id: str
    message_identifier: str
    operation: str
    attempt: int
    sent_at: datetime
    answered_at: datetime | None
    error: str
    items: tuple[JournalItemRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """One run as the journal knows it."""

    run_id: str
    started_at: datetime
    ended_at: datetime | None
    command: str
    roster: str
    mapping: str
    status: str  # "running" until end_run (a run killed before end_run stays "running")
    summary: dict[str, int]
    roster_rows: dict[str, int] | None = None  # each roster file's data rows; None: not recorded


def _status_columns(status: Status | None) -> tuple[str | None, str | None, str | None, str, str]:
    """(message_id_ref, code_major, severity, code_minor as JSON, description) of a status, as stored."""
    if status is None:
        return None, None, None, "[]", ""
    code_minor = json.dumps([list(pair) for pair in status.code_minor], ensure_ascii=False)
    return status.message_id_ref, status.code_major, status.severity, code_minor, status.description


def _answer_fields(columns: Sequence[Any]) -> dict[str, Any]:
    """The answer columns ending each journal row (message_id_ref, code_major, severity, code_minor,
    description, outcome) as JournalEntry/JournalItemRow fields."""
    message_id_ref, code_major, severity, code_minor, description, outcome = columns
    return {
        "message_id_ref": message_id_ref,
        "code_major": code_major,
        "severity": severity,
        "code_minor": tuple((str(name), str(value)) for name, value in json.loads(code_minor)),
        "description": description,
        "outcome": outcome,
    }


# Both journal queries end with the same six answer columns, which _answer_fields turns into fields.
_JOURNAL_COLUMNS: Final = (
    "SELECT r.run_id, r.message_identifier, r.operation, r.attempt, r.sent_at, r.answered_at, r.error, "
    "r.message_id_ref, r.code_major, r.severity, r.code_minor, r.description, r.outcome "
    "FROM requests AS r "
)
_JOURNAL_SQL: Final = {
    False: _JOURNAL_COLUMNS + "ORDER BY r.sent_at, r.rowid",
    True: _JOURNAL_COLUMNS + "WHERE r.run_id = ? ORDER BY r.sent_at, r.rowid",
}
_JOURNAL_ITEMS_COLUMNS: Final = (
    "SELECT i.message_identifier, i.item_index, i.sync_key, i.new_sync_key, "
    "i.message_id_ref, i.code_major, i.severity, i.code_minor, i.description, i.outcome "
    "FROM request_items AS i JOIN requests AS r USING (message_identifier) "
)
_JOURNAL_ITEMS_SQL: Final = {
    False: _JOURNAL_ITEMS_COLUMNS + "ORDER BY i.message_identifier, i.item_index",
    True: _JOURNAL_ITEMS_COLUMNS + "WHERE r.run_id = ? ORDER BY i.message_identifier, i.item_index",
}


# --- runs --------------------------------------------------------------------------------------


def begin_run(connection: sqlite3.Connection, *, command: str, roster: str, mapping: str) -> str:
    """Record a new run and return its id (sortable: UTC timestamp, then a short uuid)."""
    started = now()
    run_id = f"{started:%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex[:8]}"
    connection.execute(
        "INSERT INTO runs (run_id, started_at, command, roster, mapping) VALUES (?, ?, ?, ?, ?)",
        (run_id, iso(started), command, roster, mapping),
    )
    return run_id


def end_run(
    connection: sqlite3.Connection,
    path: Path,
    run_id: str,
    *,
    status: str,
    summary: Mapping[str, int],
    roster_rows: Mapping[str, int] | None = None,
) -> None:
    """Record how a run ended; `roster_rows` (each roster file's data rows) goes into the summary column
    under the key "roster_rows" (`RunInfo.roster_rows`).

    Raises:
        StateError: no such run in the database at `path`.
    """
    recorded: dict[str, Any] = dict(summary)
    if roster_rows is not None:
        recorded[_ROSTER_ROWS] = dict(roster_rows)
    cursor = connection.execute(
        "UPDATE runs SET ended_at = ?, status = ?, summary = ? WHERE run_id = ?",
        (iso(now()), status, json.dumps(recorded, sort_keys=True), run_id),
    )
    if cursor.rowcount == 0:
        raise StateError(f"no run {run_id!r} in {path}")


def read_runs(connection: sqlite3.Connection) -> list[RunInfo]:
    """Every run, oldest first."""
    rows = connection.execute(
        "SELECT run_id, started_at, ended_at, command, roster, mapping, status, summary "
        "FROM runs ORDER BY started_at, rowid"
    ).fetchall()
    infos = []
    for run_id, started, ended, command, roster, mapping, status, summary in rows:
        recorded = json.loads(summary)
        roster_rows = recorded.pop(_ROSTER_ROWS, None)
        infos.append(
            RunInfo(
                run_id=run_id,
                started_at=datetime.fromisoformat(started),
                ended_at=parse_time(ended),
                command=command,
                roster=roster,
                mapping=mapping,
                status=status,
                summary={str(k): int(v) for k, v in recorded.items()},
                roster_rows=_counts(roster_rows),
            )
        )
    return infos


def _counts(recorded: Any) -> dict[str, int] | None:
    return None if recorded is None else {str(k): int(v) for k, v in recorded.items()}


def last_run_id(connection: sqlite3.Connection) -> str | None:
    """The id of the most recently started run, or None when there is none."""
    row = connection.execute(
        "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


# --- requests and answers ----------------------------------------------------------------------


def unconfirmed_renames(connection: sqlite3.Connection, kind: Kind, old_id: str) -> list[str]:
    """Targets of `kind`'s identifier changes from `old_id` that were never confirmed, most recent first,
    each target once."""
    rows = connection.execute(
        "SELECT i.new_sync_key FROM request_items AS i "
        "JOIN requests AS r ON r.message_identifier = i.message_identifier "
        "WHERE i.sync_key = ? AND r.operation = ? "
        "AND i.outcome IN ('sent', 'unconfirmed') AND i.new_sync_key != '' "
        "ORDER BY r.sent_at DESC",
        (old_id, kind.change_identifier_operation),
    ).fetchall()
    return list(dict.fromkeys(str(row[0]) for row in rows))


def write_sent(connection: sqlite3.Connection, request: SentRequest) -> None:
    """Journal a request as *sent*, with its items."""
    connection.execute(
        "INSERT INTO requests (message_identifier, run_id, operation, attempt, sent_at, outcome) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            request.message_identifier,
            request.run_id,
            request.operation,
            request.attempt,
            iso(request.sent_at),
            _SENT,
        ),
    )
    connection.executemany(
        "INSERT INTO request_items (message_identifier, item_index, sync_key, new_sync_key, outcome) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (request.message_identifier, item.index, item.sync_key, item.new_sync_key, _SENT)
            for item in request.items
        ],
    )


def write_answer(
    connection: sqlite3.Connection, path: Path, answer: Answer, changes: Sequence[SnapshotChange]
) -> None:
    """Journal a request's answer and apply the snapshot changes it confirms (see
    `StateStore.record_answer`); `path` names the database in errors.
    """
    mid = answer.message_identifier
    status = answer.status
    answered_at = iso(answer.answered_at)
    if changes:
        if answer.outcome is not Outcome.CONFIRMED:
            raise StateError(
                f"snapshot changes with request {mid}, whose outcome is {answer.outcome.value}: "
                "only a confirmed answer may change the snapshot"
            )
        if status is not None and status.message_id_ref not in (None, mid):
            raise StateError(f"snapshot changes with request {mid}, whose answer refers to another")
    cursor = connection.execute(
        "UPDATE requests SET answered_at = ?, message_id_ref = ?, code_major = ?, severity = ?, "
        "code_minor = ?, description = ?, outcome = ?, error = ? WHERE message_identifier = ?",
        (answered_at, *_status_columns(status), answer.outcome.value, answer.error, mid),
    )
    if cursor.rowcount == 0:
        raise StateError(f"no request {mid} in the journal {path}: record_sent comes first")
    # Items without their own answer share the request's; explicit item answers then override.
    connection.execute(
        "UPDATE request_items SET message_id_ref = ?, code_major = ?, severity = ?, code_minor = ?, "
        "description = ?, outcome = ? WHERE message_identifier = ?",
        (*_status_columns(status), answer.outcome.value, mid),
    )
    for item in answer.items:
        cursor = connection.execute(
            "UPDATE request_items SET message_id_ref = ?, code_major = ?, severity = ?, "
            "code_minor = ?, description = ?, outcome = ? "
            "WHERE message_identifier = ? AND item_index = ?",
            (*_status_columns(item.status), item.outcome.value, mid, item.index),
        )
        if cursor.rowcount == 0:
            raise StateError(f"request {mid} has no item {item.index} in the journal {path}")
    for change in changes:
        apply_change(connection, change, confirmed_at=answered_at, message_identifier=mid)


def write_answers(
    connection: sqlite3.Connection, path: Path, pairs: Sequence[tuple[Answer, Sequence[SnapshotChange]]]
) -> None:
    """`write_answer` for each (answer, changes) pair, in order."""
    for answer, changes in pairs:
        write_answer(connection, path, answer, changes)


def read_journal(connection: sqlite3.Connection, run_id: str | None) -> list[JournalEntry]:
    """Journalled requests with their answers and items, in sent order (one run's, or every run's)."""
    params = (run_id,) if run_id is not None else ()
    requests = connection.execute(_JOURNAL_SQL[run_id is not None], params).fetchall()
    item_rows = connection.execute(_JOURNAL_ITEMS_SQL[run_id is not None], params).fetchall()
    items: dict[str, list[JournalItemRow]] = {}
    for mid, index, key, new_key, *answer in item_rows:
        items.setdefault(mid, []).append(
            JournalItemRow(index=index, sync_key=key, new_sync_key=new_key, **_answer_fields(answer))
        )
    return [
        JournalEntry(
            run_id=run,
            message_identifier=mid,
            operation=operation,
            attempt=attempt,
            sent_at=datetime.fromisoformat(sent_at),
            answered_at=parse_time(answered_at),
            error=error,
            items=tuple(items.get(mid, ())),
            **_answer_fields(answer),
        )
        for run, mid, operation, attempt, sent_at, answered_at, error, *answer in requests
    ]
