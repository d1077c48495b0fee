"""Resolving lost answers: IMS ES answered "unknown object" to a change that an earlier request, whose
answer was lost, may have applied already. Journalled reads decide; a rename may also have to start
from the target of an earlier, unconfirmed rename that the journal names.

Sends only reads, through `sync.send.attempts`; records through the StateStore.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

from sync.models import Outcome, Status
from sync.send.attempts import Sender, Step, is_unknown_answer, one
from sync.state.changes import SnapshotChange
from sync.state.journal import Answer, ItemAnswer, RequestItem

__all__ = ["Reader", "Resolver"]

#: A journalled read by sync key: (the read's step, the object or None), or None without a trustworthy answer.
Reader: TypeAlias = Callable[[str], "tuple[Step, object | None] | None"]


class Resolver:
    """Changes whose "unknown object" answer is checked by reading, and the reads themselves."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    def read(
        self, operation: str, sync_key: str, call: Callable[[str], tuple[Status, object | None]]
    ) -> tuple[Step, object | None] | None:
        """A read that resolves an ambiguous outcome, journalled like any request.

        Returns None when the read itself got no trustworthy answer.
        """
        found: list[object | None] = []

        def send(mid: str) -> Status:
            status, value = call(mid)
            found.append(value)
            return status

        # A read is confirmed (ok) or rejected (unknown): both answer the question.
        step = self._sender.step(operation, one(sync_key), send, list)
        if step.status is None or step.outcome is Outcome.UNCONFIRMED or not found:
            return None
        return step, found[-1]

    def rename(
        self,
        operation: str,
        old_id: str,
        new_id: str,
        send: Callable[[str, str], Status],
        change: SnapshotChange,
        reader: Reader,
        *,
        lost_targets: Callable[[str], Sequence[str]] | None = None,
    ) -> Step:
        """An identifier change old_id -> new_id; `send(source, mid)` sends one from `source`.

        "Unknown object" may mean an earlier request whose answer was lost applied it already (the
        old id gone, the new one there): reads, journalled, decide. Failing that, with `lost_targets`
        the object may sit under the target of an earlier rename whose answer was lost: the journal
        names those targets; where a read finds the object under one, it is renamed from there, and
        the snapshot moves from the old id to the new one (`change`).
        """

        def rename_from(source: str) -> Step:
            return self._sender.step(
                operation,
                (RequestItem(index=0, sync_key=source, new_sync_key=new_id),),
                lambda mid: send(source, mid),
                lambda: [change],
            )

        step = rename_from(old_id)
        if is_unknown_answer(step):
            step = self.resolve(step, reader=reader, old_gone=old_id, new_present=new_id, changes=[change])
        if not is_unknown_answer(step) or lost_targets is None:
            return step
        for lost_target in lost_targets(old_id):
            if lost_target == new_id:
                continue
            read = reader(lost_target)
            if read is not None and read[1] is not None:
                return rename_from(lost_target)
        return step

    def remove(
        self,
        operation: str,
        sync_key: str,
        call: Callable[[str], Status],
        change: SnapshotChange,
        reader: Reader,
        *,
        resolved: SnapshotChange | None = None,
    ) -> Step:
        """A deletion. "Unknown object" may mean it happened already (a lost answer, or IMS ES removed
        it along with something else): a read, journalled, decides; confirmed, the snapshot takes
        `resolved` (default: `change`)."""
        step = self._sender.step(operation, one(sync_key), call, lambda: [change])
        if is_unknown_answer(step):
            step = self.resolve(step, reader=reader, old_gone=sync_key, changes=[resolved or change])
        return step

    def resolve(
        self,
        failed: Step,
        *,
        reader: Reader,
        old_gone: str,
        new_present: str | None = None,
        changes: list[SnapshotChange],
    ) -> Step:
        """Decide an "unknown object" answer by reading: already applied, or really rejected.

        When the reads show the change in place, the last read's answer confirms it in the snapshot.
        When a read gets no trustworthy answer, the outcome is unconfirmed: the next run re-diffs.
        """
        reads: list[tuple[Step, object | None]] = []
        for key in (old_gone, new_present):
            if key is None:
                continue
            read = reader(key)
            if read is None:
                return Step(
                    outcome=Outcome.UNCONFIRMED,
                    status=failed.status,
                    message_identifier=failed.message_identifier,
                    error=f"{failed.error or 'unknown object'}; could not verify by reading it back",
                    attempts=failed.attempts,
                )
            reads.append(read)
        old_step, old_found = reads[0]
        assert old_step.status is not None
        applied = old_found is None and old_step.status.unknown_object
        if new_present is not None:
            applied = applied and reads[1][1] is not None
        if not applied:
            return failed
        confirm = reads[-1][0]
        assert confirm.status is not None
        self._sender.store.record_answer(
            Answer(
                message_identifier=confirm.message_identifier,
                status=confirm.status,
                outcome=Outcome.CONFIRMED,
                error=f"confirms {failed.message_identifier}: already applied",
                items=(ItemAnswer(index=0, status=confirm.status, outcome=Outcome.CONFIRMED),),
            ),
            changes,
        )
        return Step(
            outcome=Outcome.CONFIRMED,
            status=confirm.status,
            message_identifier=confirm.message_identifier,
            attempts=failed.attempts + len(reads),
        )
