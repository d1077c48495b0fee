"""reconcile: every journalled request is flagged unanswered, unmatched, failed or ok."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.models import Outcome, Person, Status
from sync.state.changes import Upsert
from sync.state.journal import Answer, ItemAnswer, JournalEntry, JournalItemRow, RequestItem, SentRequest
from sync.state.reconcile import Flag, ReconcileRow, reconcile, reconcile_summary
from sync.state.store import StateStore

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def _item(index: int = 0, **overrides: object) -> JournalItemRow:
    fields: dict[str, object] = {
        "index": index,
        "sync_key": f"k{index}",
        "new_sync_key": "",
        "code_major": "success",
        "severity": "status",
        "code_minor": (),
        "description": "",
        "message_id_ref": "m1",
        "outcome": "confirmed",
    }
    fields.update(overrides)
    return JournalItemRow(**fields)  # type: ignore[arg-type]


def _entry(*items: JournalItemRow, **overrides: object) -> JournalEntry:
    fields: dict[str, object] = {
        "run_id": "r1",
        "message_identifier": "m1",
        "operation": "createPerson",
        "attempt": 1,
        "sent_at": T0,
        "answered_at": T0 + timedelta(seconds=1),
        "message_id_ref": "m1",
        "code_major": "success",
        "severity": "status",
        "code_minor": (),
        "description": "",
        "outcome": "confirmed",
        "error": "",
        "items": items or (_item(),),
    }
    fields.update(overrides)
    return JournalEntry(**fields)  # type: ignore[arg-type]


def _flags(entry: JournalEntry) -> frozenset[Flag]:
    [row] = reconcile([entry])
    assert row.entry is entry
    return row.flags


UNANSWERED = _entry(
    _item(code_major=None, severity=None, message_id_ref=None, outcome="sent"),
    answered_at=None,
    message_id_ref=None,
    code_major=None,
    severity=None,
    outcome="sent",
)


class TestFlags:
    """One flag set per kind of journal entry."""

    def test_confirmed_and_matched_is_ok(self) -> None:
        """A success answer that names our messageIdentifier is ok, and only ok."""
        assert _flags(_entry()) == {Flag.OK}

    def test_sent_without_answer_is_unanswered(self) -> None:
        """A request recorded as sent with no answer is unanswered, and nothing else."""
        assert _flags(UNANSWERED) == {Flag.UNANSWERED}

    def test_wrong_header_ref_is_unmatched(self) -> None:
        """An answer whose header messageIdRef names another request is unmatched."""
        entry = _entry(message_id_ref="m-other")
        assert _flags(entry) == {Flag.UNMATCHED}

    def test_missing_header_ref_is_unmatched(self) -> None:
        """A status without any messageIdRef cannot be paired with the request."""
        assert _flags(_entry(message_id_ref=None)) == {Flag.UNMATCHED}

    def test_wrong_item_ref_is_unmatched(self) -> None:
        """An item status that names another request makes the request unmatched."""
        entry = _entry(_item(0), _item(1, message_id_ref="m-other"), operation="createPersons")
        assert _flags(entry) == {Flag.UNMATCHED}

    def test_item_without_ref_is_fine(self) -> None:
        """Item statuses need not repeat the messageIdRef."""
        entry = _entry(_item(0, message_id_ref=None), _item(1, message_id_ref=None))
        assert _flags(entry) == {Flag.OK}

    def test_rejected_is_failed(self) -> None:
        """A failure answer about our data is failed (and matched)."""
        entry = _entry(
            _item(code_major="failure", severity="error", outcome="rejected"),
            code_major="failure",
            severity="error",
            outcome="rejected",
        )
        assert _flags(entry) == {Flag.FAILED}

    def test_transport_error_is_failed_not_unmatched(self) -> None:
        """An unconfirmed request without any status (timeout) is failed, not unmatched."""
        entry = _entry(
            _item(code_major=None, severity=None, message_id_ref=None, outcome="unconfirmed"),
            message_id_ref=None,
            code_major=None,
            severity=None,
            outcome="unconfirmed",
            error="read timeout",
        )
        assert _flags(entry) == {Flag.FAILED}

    def test_failure_code_is_failed_whatever_the_outcome(self) -> None:
        """A codeMajor other than success on the request is failed even if recorded as confirmed."""
        assert _flags(_entry(code_major="unsupported")) == {Flag.FAILED}

    def test_a_read_proving_a_lost_delete_is_ok(self) -> None:
        """A read answered "unknown object" that confirms an earlier, unanswered delete is no failure:
        the executor recorded it confirmed, with "confirms <id>"; the same answer without it fails."""
        proof = _entry(
            _item(0, code_major="failure", severity="error"),
            operation="readMembership",
            code_major="failure",
            severity="error",
            error="confirms m-lost: already applied",
        )
        assert _flags(proof) == {Flag.OK}
        assert _flags(replace(proof, error="")) == {Flag.FAILED}

    def test_one_failed_item_fails_the_request(self) -> None:
        """A mass request with one rejected item is failed though its header says success."""
        entry = _entry(
            _item(0),
            _item(1, code_major="failure", severity="error", message_id_ref=None, outcome="rejected"),
            operation="createPersons",
        )
        assert _flags(entry) == {Flag.FAILED}

    def test_unmatched_and_failed_together(self) -> None:
        """A rejected answer naming another request carries both flags."""
        entry = _entry(code_major="failure", outcome="rejected", message_id_ref="m-other")
        assert _flags(entry) == {Flag.UNMATCHED, Flag.FAILED}


class TestReconcile:
    """The whole list and its summary."""

    def test_keeps_order_and_summarises(self) -> None:
        """Rows come back in journal order, and the summary counts requests and each flag."""
        entries = [
            _entry(message_identifier="a", message_id_ref="a", items=(_item(message_id_ref="a"),)),
            replace(UNANSWERED, message_identifier="b"),
            _entry(message_identifier="c", message_id_ref="x", code_major="failure", outcome="rejected"),
            _entry(message_identifier="d", message_id_ref="d", outcome="unconfirmed", items=()),
        ]
        rows = reconcile(entries)
        assert [row.entry.message_identifier for row in rows] == ["a", "b", "c", "d"]
        assert reconcile_summary(rows) == {
            "requests": 4,
            "unanswered": 1,
            "unmatched": 1,
            "failed": 2,
            "ok": 1,
        }

    def test_empty_journal(self) -> None:
        """An empty journal gives no rows and a summary of zeros."""
        assert reconcile([]) == []
        assert reconcile_summary([]) == dict.fromkeys(
            ["requests", "unanswered", "unmatched", "failed", "ok"], 0
        )

    def test_flags_compare_as_strings(self) -> None:
        """Flags are strings, so reports and the CLI can compare them with plain text."""
        row = ReconcileRow(entry=_entry(), flags=frozenset({Flag.OK}))
        assert row.flags - {"ok"} == set()
        assert sorted(Flag) == ["failed", "ok", "unanswered", "unmatched"]


def test_reconcile_a_real_journal(tmp_path: Path) -> None:
    """Journal entries read back from a real state store reconcile as their answers say."""
    with StateStore.open(tmp_path / "state") as store:
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        for mid in ("ok", "lost", "refused", "stranger"):
            store.record_sent(
                SentRequest(
                    run_id=run_id,
                    message_identifier=mid,
                    operation="createPerson",
                    attempt=1,
                    sent_at=T0,
                    items=(RequestItem(index=0, sync_key=f"k-{mid}"),),
                )
            )

        def answer(mid: str, status: Status, outcome: Outcome) -> Answer:
            return Answer(
                message_identifier=mid,
                answered_at=T0,
                status=status,
                outcome=outcome,
                items=(ItemAnswer(index=0, status=status, outcome=outcome),),
            )

        ok = Status(code_major="success", severity="status", message_id_ref="ok")
        store.record_answer(answer("ok", ok, Outcome.CONFIRMED), [Upsert(record=Person(sync_key="k-ok"))])
        refused = Status(code_major="failure", severity="error", message_id_ref="refused")
        store.record_answer(answer("refused", refused, Outcome.REJECTED))
        # What the journal holds if an answer naming another request was ever recorded as it came.
        stranger = Status(code_major="success", severity="status", message_id_ref="someone-else")
        store.record_answer(answer("stranger", stranger, Outcome.UNCONFIRMED))
        rows = reconcile(store.journal(run_id))
    flags = {row.entry.message_identifier: row.flags for row in rows}
    assert flags == {
        "ok": {Flag.OK},
        "lost": {Flag.UNANSWERED},
        "refused": {Flag.FAILED},
        "stranger": {Flag.UNMATCHED, Flag.FAILED},
    }


@pytest.mark.parametrize("outcome", ["rejected", "unconfirmed"])
def test_failed_item_outcome_alone_fails(outcome: str) -> None:
    """An item whose outcome is rejected or unconfirmed fails the request even without a codeMajor."""
    entry = _entry(_item(0), _item(1, code_major=None, message_id_ref=None, outcome=outcome))
    assert _flags(entry) == {Flag.FAILED}
