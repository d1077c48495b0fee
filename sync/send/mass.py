"""Mass requests: operations of one kind sent together (createPersons, createGroups, createMemberships,
deleteMemberships), one statusInfo per item deciding its object.

Sends through `sync.send.attempts` (retries, journal) and the kind's calls; records through the
StateStore.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sync.errors import UnmatchedAnswerError
from sync.ims.exchange import MassReply
from sync.models import Create, Outcome, Status, kind_of
from sync.send.attempts import Sender, Step, is_unknown_answer
from sync.send.operations import Operations, upsert
from sync.send.resolve import Resolver
from sync.send.schedule import Batch
from sync.state.changes import Remove, SnapshotChange
from sync.state.journal import Answer, ItemAnswer, RequestItem

__all__ = ["MassSender"]


class MassSender:
    """Sends batches: one mass request each, retried whole."""

    def __init__(self, *, sender: Sender, resolver: Resolver, operations: Operations) -> None:
        self._sender = sender
        self._resolver = resolver
        self._operations = operations

    def send(self, batch: Batch) -> list[Step]:
        """One mass request for several operations; each item's statusInfo decides its object.

        A transient failure of the whole request retries the whole batch: the creates upsert and
        a deleted membership answers "unknown object", so items the lost answer had applied are
        harmless to send again. A delete item answered "unknown object" is checked by reading it.

        Raises:
            Aborted: the run halted before the first attempt.
        """
        ops = batch.ops
        kind = kind_of(ops[0])
        calls = self._operations.calls.of(kind)
        items = tuple(RequestItem(index=i, sync_key=op.sync_key) for i, op in enumerate(ops))
        call: Callable[[str], MassReply]
        creates = all(isinstance(op, Create) for op in ops)
        if creates:
            call = lambda mid: calls.create_many(ops, message_id=mid)  # noqa: E731
            changes: list[SnapshotChange] = [upsert(op) for op in ops if isinstance(op, Create)]
        else:
            delete_many = calls.delete_many
            assert delete_many is not None  # only kinds with a mass delete are batched (Calls.mass_operation)
            call = lambda mid: delete_many([op.sync_key for op in ops], message_id=mid)  # noqa: E731
            changes = [Remove(kind=kind.name, sync_key=op.sync_key) for op in ops]
        steps, _ = self._sender.retried(
            batch.operation,
            items,
            lambda attempt: self._attempt(batch.operation, items, call, changes, attempt),
            lambda last: last[0][0].error if last[1] else None,
        )
        if creates:
            return steps
        reader = self._operations.reader(kind)
        return [
            self._resolver.resolve(step, reader=reader, old_gone=op.sync_key, changes=[change])
            if is_unknown_answer(step)
            else step
            for op, step, change in zip(ops, steps, changes, strict=True)
        ]

    def _attempt(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        call: Callable[[str], MassReply],
        changes: Sequence[SnapshotChange],
        attempt: int,
    ) -> tuple[list[Step], bool]:
        mid = self._sender.journal_sent(operation, items, attempt)
        started = time.perf_counter()
        reply: MassReply | None = None
        error, retry, fallback = "", False, Outcome.UNCONFIRMED
        heard: UnmatchedAnswerError | None = None  # an answer to another request: journalled only
        try:
            reply = call(mid)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and journalled
            error, fallback, retry = self._sender.call_failed(exc, operation, mid)
            if isinstance(exc, UnmatchedAnswerError):
                heard = exc
        steps = [
            _item_step(reply.items[index] if reply is not None else None, fallback, error, mid, attempt)
            for index in range(len(items))
        ]
        heard_items = heard.items if heard is not None else ()
        item_answers = [
            ItemAnswer(
                index=index,
                status=heard_items[index] if index < len(heard_items) else step.status,
                outcome=step.outcome,
            )
            for index, step in enumerate(steps)
        ]
        if reply is not None:
            self._sender.halt.circuit.success()
        confirmed = sum(a.outcome is Outcome.CONFIRMED for a in item_answers)
        rejected = sum(a.outcome is Outcome.REJECTED for a in item_answers)
        # The request outcome says whether its answer may change the snapshot; items say what did.
        request_outcome = (
            Outcome.CONFIRMED if confirmed else (Outcome.REJECTED if rejected else Outcome.UNCONFIRMED)
        )
        header = reply.status if reply is not None else (heard.status if heard is not None else None)
        self._sender.store.record_answer(
            Answer(
                message_identifier=mid,
                status=header,
                outcome=request_outcome,
                error=error,
                items=tuple(item_answers),
            ),
            [
                change
                for change, step in zip(changes, steps, strict=True)
                if step.outcome is Outcome.CONFIRMED
            ],
        )
        self._log(
            operation,
            items,
            steps,
            header=header,
            outcome=request_outcome,
            confirmed=confirmed,
            rejected=rejected,
            attempt=attempt,
            started=started,
            error=error,
        )
        return steps, retry

    def _log(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        steps: Sequence[Step],
        *,
        header: Status | None,
        outcome: Outcome,
        confirmed: int,
        rejected: int,
        attempt: int,
        started: float,
        error: str,
    ) -> None:
        mid = steps[0].message_identifier
        self._sender.log.info(
            "ims_request",
            operation=operation,
            items=len(items),
            sync_key=items[0].sync_key,
            message_identifier=mid,
            message_id_ref=header.message_id_ref if header else None,
            code_major=header.code_major if header else None,
            severity=header.severity if header else None,
            outcome=outcome.value,
            confirmed=confirmed,
            rejected=rejected,
            attempt=attempt,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            error=error or None,
        )
        for step, item in zip(steps, items, strict=True):
            if step.outcome is Outcome.REJECTED:
                self._sender.log.warning(
                    "ims_item_rejected",
                    operation=operation,
                    sync_key=item.sync_key,
                    index=item.index,
                    message_identifier=mid,
                    description=step.error,
                )


def _item_step(status: Status | None, fallback: Outcome, error: str, mid: str, attempt: int) -> Step:
    """One item's outcome: its statusInfo's, or the whole request's (`fallback`) without one."""
    if status is None:
        outcome = fallback
    elif status.ok:
        outcome = Outcome.CONFIRMED
    elif status.busy:
        outcome = Outcome.UNCONFIRMED
    else:
        outcome = Outcome.REJECTED
    item_error = error or (status.description if status and not status.ok else "")
    return Step(outcome=outcome, status=status, message_identifier=mid, error=item_error, attempts=attempt)
