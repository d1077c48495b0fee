"""Run a Plan against IMS ES: a bounded pool of workers, tenacity retries, a journal entry per request.

Each operation is one object's work (a changeIdentifier may be followed by an update of the same
object), so per-object order holds inside a worker while different objects run concurrently. At
most `max_in_flight` objects are unanswered at any time: itslearning asks for fewer than 10.

Operations run in phases (sync.plan.ordering): groups parents first, persons, memberships, then deletions
the other way round. An operation whose group, parent or person was not confirmed by an earlier
phase of the run is skipped, not sent: IMS ES would refuse it anyway.

Every attempt is its own request with a fresh messageIdentifier, written to the journal as *sent*
before it goes out and answered after, in the same transaction as the snapshot change it confirms.

This module is the facade: it puts the rooms of `sync.send` together. Scheduling is in `schedule`,
requests and retries in `attempts` and `mass`, each operation's path in `operations`, lost answers
in `resolve`, limits and the judgement of failures in `policy`, the stop conditions in `circuit`.
It imports those rooms and the store, never the transport: the clients come in as `services`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from sync.errors import StateError, SyncError
from sync.models import KINDS, Deactivate, Delete, Operation, OperationResult, Outcome
from sync.models.blocks import Ops, runs
from sync.models.service import MAX_BATCH_SIZE
from sync.send.attempts import Aborted, Sender, Step
from sync.send.calls import Calls
from sync.send.circuit import Halt
from sync.send.mass import MassSender
from sync.send.operations import Operations
from sync.send.policy import DEFAULT_SETTINGS, ExecutorSettings
from sync.send.resolve import Resolver
from sync.send.schedule import Batch, Scheduler, Unit
from sync.send.services import GroupService, MembershipService, PersonService
from sync.state.store import StateStore

__all__ = ["ExecutionReport", "Executor"]

_NOT_RECORDED = "not recorded: the state directory failed (the run stopped)"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionReport:
    """Every operation's outcome, and why the run stopped early if it did."""

    results: Sequence[OperationResult]  # a tuple, or `Ops` (a block's unreached tail skipped as read)
    stopped: str = ""
    fatal: SyncError | None = field(default=None, repr=False)


class Executor:
    """Sends a plan's operations to IMS ES and records every request and answer.

    Args:
        client: the IMS ES person service (thread-safe; shared by the workers).
        store: the state store of this run (journal + snapshot).
        run_id: the journal's run id.
        settings: concurrency, retry and circuit limits.
        groups: the GMS client, needed when the operations include groups.
        memberships: the MMS client, needed when the operations include memberships.
        sleep: how to wait between retries (tests pass a recorder).
        stop: set it to stop taking new work (SIGTERM/Ctrl-C); requests in flight finish.
        on_result: called (from worker threads) with each operation's result, e.g. for a progress bar.
    """

    def __init__(
        self,
        *,
        client: PersonService,
        store: StateStore,
        run_id: str,
        settings: ExecutorSettings = DEFAULT_SETTINGS,
        groups: GroupService | None = None,
        memberships: MembershipService | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
        on_result: Callable[[OperationResult], None] | None = None,
    ) -> None:
        if settings.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if not 1 <= settings.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}")
        self._settings = settings
        self._halt = Halt(threshold=settings.circuit_threshold, stop=stop or threading.Event())
        self._on_result = on_result
        log = structlog.get_logger("sync.send.executor").bind(run_id=run_id)
        sender = Sender(
            store=store, run_id=run_id, policy=settings.retry, sleep=sleep, halt=self._halt, log=log
        )
        resolver = Resolver(sender)
        self._calls = Calls(persons=client, groups=groups, memberships=memberships)
        self._operations = Operations(sender=sender, resolver=resolver, calls=self._calls)
        self._mass = MassSender(sender=sender, resolver=resolver, operations=self._operations)

    def run(self, operations: Sequence[Operation]) -> ExecutionReport:
        """Execute `operations` (deletions only when settings.deletes) and return their results in order.

        The operations run in phases (sync.plan.ordering.phases); inside a phase, work is handed out in
        units (one operation, or a batch for a mass request) while the objects in flight stay within
        `max_in_flight`.
        """
        deletes = self._settings.deletes
        # (a block of creates stays whole: its objects are made as they are sent)
        kept = [
            (classes, run) for classes, run in runs(operations) if deletes or classes[0] not in _DELETIONS
        ]
        todo = Ops(*(run for _, run in kept))
        present = {record_class for (_, record_class), _ in kept}
        for kind in KINDS:  # fail before sending anything when a client is missing
            if kind.record in present:
                self._calls.of(kind)
        scheduler = Scheduler(
            settings=self._settings,
            halt=self._halt,
            mass_operation=self._calls.mass_operation,
            execute=self._execute,
            report=self._report,
        )
        results = scheduler.run(todo)
        return ExecutionReport(results=results, stopped=self._halt.reason(), fatal=self._halt.fatal)

    def _report(self, result: OperationResult) -> None:
        if self._on_result is not None:
            self._on_result(result)

    def _execute(self, unit: Unit) -> list[OperationResult]:
        """Run one unit in a worker: one operation, or a batch as one mass request.

        A state that cannot record (disk full, read-only, gone) stops the run: no request goes out
        unjournalled. The unit is unconfirmed (a request of it may have been sent); the next run re-diffs.
        """
        try:
            return self._execute_unit(unit)
        except StateError as exc:
            self._halt.fatal_error(exc)
            ops = unit.ops if isinstance(unit, Batch) else (unit,)
            return [
                OperationResult(operation=op, outcome=Outcome.UNCONFIRMED, error=_NOT_RECORDED) for op in ops
            ]

    def _execute_unit(self, unit: Unit) -> list[OperationResult]:
        if isinstance(unit, Batch):
            try:
                steps = self._mass.send(unit)
            except Aborted:
                return [
                    OperationResult(operation=op, outcome=Outcome.SKIPPED, error="run stopped")
                    for op in unit.ops
                ]
            return [_result(op, step) for op, step in zip(unit.ops, steps, strict=True)]
        try:
            step = self._operations.send(unit)
        except Aborted:
            return [
                OperationResult(operation=unit, outcome=Outcome.SKIPPED, error="run stopped before sending")
            ]
        return [_result(unit, step)]


#: What is sent only when settings.deletes: deletions and deactivations.
_DELETIONS: Final = (Delete, Deactivate)


def _result(op: Operation, step: Step) -> OperationResult:
    return OperationResult(
        operation=op,
        outcome=step.outcome,
        message_identifier=step.message_identifier,
        status=step.status,
        error=step.error,
        attempts=step.attempts,
    )


def _skipped(op: Operation, why: str) -> OperationResult:
    return OperationResult(operation=op, outcome=Outcome.SKIPPED, error=why)
