"""Check the journal: pair each request's messageIdentifier with its answer and flag what is off.

Pure: works on `JournalEntry` values it is given; imports no I/O (the store reads the journal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sync.models import CodeMajor, Outcome
from sync.state.journal import JournalEntry

__all__ = ["Flag", "ReconcileRow", "reconcile", "reconcile_summary"]


class Flag(StrEnum):
    """What reconcile says about one journalled request."""

    UNANSWERED = "unanswered"  # sent, and no answer was ever recorded (e.g. the run was killed)
    UNMATCHED = "unmatched"  # an answer whose messageIdRef (header or item) is not our messageIdentifier
    FAILED = "failed"  # rejected or unconfirmed, or a codeMajor other than success (request or item)
    OK = "ok"  # answered, matched and confirmed


_SENT: Final = "sent"
_FAILED_OUTCOMES: Final = frozenset({Outcome.REJECTED.value, Outcome.UNCONFIRMED.value})
_CONFIRMED: Final = Outcome.CONFIRMED.value
#: How the executor marks a read whose answer proved an earlier, unanswered request applied.
_CONFIRMS: Final = "confirms "


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileRow:
    """One journalled request and its flags (OK alone when nothing is off)."""

    entry: JournalEntry
    flags: frozenset[Flag]


def _unmatched(entry: JournalEntry) -> bool:
    mid = entry.message_identifier
    # A header status without our messageIdRef cannot be paired with the request: missing counts too.
    if entry.code_major is not None and entry.message_id_ref != mid:
        return True
    if entry.message_id_ref is not None and entry.message_id_ref != mid:
        return True
    # Item statuses (statusInfoSet) need not repeat the messageIdRef; one that names another is off.
    return any(item.message_id_ref is not None and item.message_id_ref != mid for item in entry.items)


def _failed(entry: JournalEntry) -> bool:
    # A status other than success counts, unless our verdict was "confirmed" all the same: a read
    # answered "unknown object" that proved a lost delete or rename had been applied (its error
    # says "confirms <messageIdentifier>").
    if entry.outcome in _FAILED_OUTCOMES:
        return True
    proof = entry.outcome == _CONFIRMED and entry.error.startswith(_CONFIRMS)
    if entry.code_major not in (None, CodeMajor.SUCCESS) and not proof:
        return True
    return any(
        item.outcome in _FAILED_OUTCOMES or (item.code_major not in (None, CodeMajor.SUCCESS) and not proof)
        for item in entry.items
    )


def _flags(entry: JournalEntry) -> frozenset[Flag]:
    if entry.outcome == _SENT or entry.answered_at is None:
        return frozenset({Flag.UNANSWERED})
    flags = set()
    if _unmatched(entry):
        flags.add(Flag.UNMATCHED)
    if _failed(entry):
        flags.add(Flag.FAILED)
    return frozenset(flags or {Flag.OK})


def reconcile(entries: Sequence[JournalEntry]) -> list[ReconcileRow]:
    """Flag every journalled request, in the given (sent) order.

    A request is *unanswered* when no answer was recorded (outcome "sent"); *unmatched* when a status
    was recorded whose messageIdRef is missing (header) or names another request (header or item);
    *failed* when its outcome is rejected or unconfirmed, or a codeMajor other than success was
    recorded for it or any of its items (except where that answer confirmed the operation: a read
    answering "unknown object" that proves a lost delete was applied). Unmatched and failed can come
    together; *ok* stands alone.
    """
    return [ReconcileRow(entry=entry, flags=_flags(entry)) for entry in entries]


def reconcile_summary(rows: Sequence[ReconcileRow]) -> dict[str, int]:
    """Counts for a report: "requests" (all rows) and one count per flag, every key always present."""
    summary = {"requests": len(rows)} | {flag.value: 0 for flag in Flag}
    for row in rows:
        for flag in row.flags:
            summary[flag.value] += 1
    return summary
