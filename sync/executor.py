"""Run a Plan against IMS ES: a bounded pool of workers, tenacity retries, a journal entry per request.

Each operation is one person's work (a changeIdentifier may be followed by an update of the same
person), so per-person order holds inside a worker while different persons run concurrently. At
most `max_in_flight` objects are unanswered at any time: itslearning asks for fewer than 10.

Every attempt is its own request with a fresh messageIdentifier, written to the journal as *sent*
before it goes out and answered after, in the same transaction as the snapshot change it confirms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol, assert_never

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from sync.errors import (
    AuthenticationError,
    CertificateError,
    RejectedError,
    RemoteError,
    TransientError,
)
from sync.models import (
    ChangeIdentifier,
    Create,
    Delete,
    Operation,
    OperationResult,
    Outcome,
    Person,
    Status,
    Update,
)
from sync.snapshot import (
    Answer,
    ItemAnswer,
    Remove,
    Rename,
    RequestItem,
    SentRequest,
    SnapshotChange,
    StateStore,
    Upsert,
)
from sync.transport import MassReply, new_message_id

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "ExecutionReport",
    "Executor",
    "ExecutorSettings",
    "PersonService",
    "RetryPolicy",
]

#: codeMinor values that mean "try again later", not "your data is wrong".
_BUSY_CODES: Final = frozenset({"serverbusy", "server_busy", "busy"})
_UNKNOWN_OBJECT: Final = "unknownobject"
#: itslearning strongly discourages mass requests of more than 50 objects.
MAX_BATCH_SIZE: Final = 50


class PersonService(Protocol):
    """What the executor needs of an IMS ES PMS client (`sync.transport.PersonClient` is one)."""

    def create_person(self, person: Person, *, password: str = "", message_id: str | None = None) -> Status:
        """createPerson."""
        ...

    def update_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """updatePerson."""
        ...

    def replace_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """replacePerson."""
        ...

    def delete_person(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deletePerson."""
        ...

    def read_person(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Person | None]:
        """readPerson."""
        ...

    def change_person_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changePersonIdentifier."""
        ...

    def create_persons(
        self, items: Sequence[tuple[Person, str]], *, message_id: str | None = None
    ) -> MassReply:
        """createPersons: one request, one status per item."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How transient faults are retried: exponential backoff with jitter, capped in count and time."""

    max_attempts: int = 5
    max_seconds: float = 600.0
    initial_wait: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0


DEFAULT_RETRY_POLICY: Final = RetryPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorSettings:
    """Limits of one run's execution."""

    max_in_flight: int = 10  # objects unanswered at once (itslearning: fewer than 10)
    batch_size: int = 1  # creates per createPersons request; 1 = createPerson calls
    circuit_threshold: int = 20  # consecutive transient failures that open the circuit
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    deletes: bool = False  # execute deletion candidates (off by default: they are only listed)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionReport:
    """Every operation's outcome, and why the run stopped early if it did."""

    results: tuple[OperationResult, ...]
    stopped: str = ""
    fatal: RemoteError | None = field(default=None, repr=False)


class _Circuit:
    """Counts consecutive transient failures across workers; opens at a threshold."""

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._failures = 0
        self._lock = threading.Lock()
        self.open = threading.Event()

    def success(self) -> None:
        with self._lock:
            self._failures = 0

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self._threshold:
                self.open.set()


@dataclass(frozen=True, slots=True)
class _Batch:
    """Creates sent together in one createPersons request."""

    creates: tuple[Create, ...]


class _Aborted(Exception):
    """Internal: the run stopped (circuit open, signal, fatal error) before this request was sent."""


@dataclass(slots=True)
class _Step:
    """The outcome of one step (one logical IMS ES call, retried as needed)."""

    outcome: Outcome
    status: Status | None = None
    message_identifier: str = ""
    error: str = ""
    attempts: int = 0
    retry: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _is_busy(status: Status) -> bool:
    return any(name.lower() in _BUSY_CODES for name, _ in status.code_minor)


def _is_unknown(status: Status) -> bool:
    return any(name.lower() == _UNKNOWN_OBJECT for name, _ in status.code_minor)


class Executor:
    """Sends a plan's operations to IMS ES and records every request and answer.

    Args:
        client: the IMS ES person service (thread-safe; shared by the workers).
        store: the state store of this run (journal + snapshot).
        run_id: the journal's run id.
        settings: concurrency, retry and circuit limits.
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
        settings: ExecutorSettings = ExecutorSettings(),
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
        on_result: Callable[[OperationResult], None] | None = None,
    ) -> None:
        if settings.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if not 1 <= settings.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}")
        self._client = client
        self._store = store
        self._run_id = run_id
        self._settings = settings
        self._sleep = sleep
        self._stop = stop or threading.Event()
        self._on_result = on_result
        self._circuit = _Circuit(settings.circuit_threshold)
        self._fatal: RemoteError | None = None
        self._fatal_lock = threading.Lock()
        self._log = structlog.get_logger("sync.executor").bind(run_id=run_id)

    # --- the run ---------------------------------------------------------------------------

    def run(self, operations: Sequence[Operation]) -> ExecutionReport:
        """Execute `operations` (deletions only when settings.deletes) and return their results in order.

        Work is handed out in units (one operation, or a batch of creates for createPersons) while
        the objects in flight stay within `max_in_flight`.
        """
        todo = [op for op in operations if self._settings.deletes or not isinstance(op, Delete)]
        units = self._units(todo)
        results: dict[int, OperationResult] = {}
        budget = self._settings.max_in_flight
        with ThreadPoolExecutor(max_workers=budget, thread_name_prefix="ims-es") as pool:
            pending: dict[Future[list[OperationResult]], tuple[int, ...]] = {}
            in_flight = 0
            next_unit = 0
            while next_unit < len(units) or pending:
                while next_unit < len(units) and not self._halted():
                    positions, unit = units[next_unit]
                    if pending and in_flight + len(positions) > budget:
                        break
                    pending[pool.submit(self._execute_unit, unit)] = positions
                    in_flight += len(positions)
                    next_unit += 1
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    positions = pending.pop(future)
                    in_flight -= len(positions)
                    for position, result in zip(positions, future.result(), strict=True):
                        results[position] = result
                        if self._on_result is not None:
                            self._on_result(result)
        for position in range(len(todo)):
            if position not in results:
                results[position] = OperationResult(operation=todo[position], outcome=Outcome.SKIPPED)
        return ExecutionReport(
            results=tuple(results[i] for i in range(len(todo))),
            stopped=self._stopped_reason(),
            fatal=self._fatal,
        )

    def _units(self, todo: Sequence[Operation]) -> list[tuple[tuple[int, ...], Operation | _Batch]]:
        """Group creates into createPersons batches (plan order kept); everything else goes alone."""
        size = min(self._settings.batch_size, self._settings.max_in_flight)
        units: list[tuple[tuple[int, ...], Operation | _Batch]] = []
        batch: list[int] = []

        def flush() -> None:
            if len(batch) == 1:
                units.append(((batch[0],), todo[batch[0]]))
            elif batch:
                ops = tuple(todo[i] for i in batch)
                units.append((tuple(batch), _Batch(creates=ops)))  # type: ignore[arg-type]
            batch.clear()

        for position, op in enumerate(todo):
            if size > 1 and isinstance(op, Create):
                batch.append(position)
                if len(batch) == size:
                    flush()
            else:
                flush()
                units.append(((position,), op))
        flush()
        return units

    def _execute_unit(self, unit: Operation | _Batch) -> list[OperationResult]:
        if isinstance(unit, _Batch):
            return self._execute_batch(unit.creates)
        return [self._execute(unit)]

    def _halted(self) -> bool:
        return self._stop.is_set() or self._circuit.open.is_set() or self._fatal is not None

    def _stopped_reason(self) -> str:
        if self._fatal is not None:
            return f"stopped: {self._fatal}"
        if self._circuit.open.is_set():
            return (
                f"circuit open: {self._settings.circuit_threshold} consecutive transient failures; "
                "IMS ES looks unreachable"
            )
        if self._stop.is_set():
            return "stopped by signal"
        return ""

    # --- one operation ---------------------------------------------------------------------

    def _execute(self, op: Operation) -> OperationResult:
        try:
            match op:
                case Create():
                    step = self._step(
                        "createPerson",
                        (RequestItem(index=0, sync_key=op.sync_key),),
                        lambda mid: self._client.create_person(
                            op.person, password=op.password, message_id=mid
                        ),
                        lambda: [Upsert(person=op.person, identity=op.identity)],
                    )
                case Update():
                    step = self._update(op.person, op.identity, clears=any(not c.new for c in op.changes))
                case ChangeIdentifier():
                    step = self._change_identifier(op)
                case Delete():
                    step = self._delete(op)
                case _:
                    assert_never(op)
        except _Aborted:
            return OperationResult(operation=op, outcome=Outcome.SKIPPED, error="run stopped before sending")
        return OperationResult(
            operation=op,
            outcome=step.outcome,
            message_identifier=step.message_identifier,
            status=step.status,
            error=step.error,
            attempts=step.attempts,
        )

    def _update(self, person: Person, identity: str, *, clears: bool) -> _Step:
        # updatePerson merges what it is given, so a cleared field needs replacePerson.
        items = (RequestItem(index=0, sync_key=person.sync_key),)
        if clears:
            return self._step(
                "replacePerson",
                items,
                lambda mid: self._client.replace_person(person, message_id=mid),
                lambda: [Upsert(person=person, identity=identity)],
            )
        return self._step(
            "updatePerson",
            items,
            lambda mid: self._client.update_person(person, message_id=mid),
            lambda: [Upsert(person=person, identity=identity)],
        )

    def _change_identifier(self, op: ChangeIdentifier) -> _Step:
        step = self._step(
            "changePersonIdentifier",
            (RequestItem(index=0, sync_key=op.old_id, new_sync_key=op.new_id),),
            lambda mid: self._client.change_person_identifier(op.old_id, op.new_id, message_id=mid),
            lambda: [Rename(old_id=op.old_id, new_id=op.new_id)],
        )
        if step.outcome is Outcome.REJECTED and step.status is not None and _is_unknown(step.status):
            # An earlier request whose answer was lost may have applied the change already:
            # the old id is gone and the new one exists. Reads (journalled) decide.
            step = self._resolve(
                step,
                old_gone=op.old_id,
                new_present=op.new_id,
                changes=[Rename(old_id=op.old_id, new_id=op.new_id)],
            )
        if step.outcome is Outcome.REJECTED and step.status is not None and _is_unknown(step.status):
            step = self._follow_lost_rename(op, step)
        if step.outcome is not Outcome.CONFIRMED or not op.changes:
            return step
        follow = self._update(op.person, op.identity, clears=any(not c.new for c in op.changes))
        follow.attempts += step.attempts
        return follow

    def _follow_lost_rename(self, op: ChangeIdentifier, failed: _Step) -> _Step:
        """The person may sit under the target of an earlier rename whose answer was lost.

        The journal names those targets; where a read finds the person under one, it is renamed
        from there to the planned id, and the snapshot moves from the old id to the new one.
        """
        for lost_target in self._store.unconfirmed_renames(op.old_id):
            if lost_target == op.new_id:
                continue
            read = self._read(lost_target)
            if read is None or read[1] is None:
                continue
            return self._rename_from(lost_target, op)
        return failed

    def _rename_from(self, source: str, op: ChangeIdentifier) -> _Step:
        """changePersonIdentifier source -> op.new_id; confirmed, the snapshot renames op.old_id."""
        return self._step(
            "changePersonIdentifier",
            (RequestItem(index=0, sync_key=source, new_sync_key=op.new_id),),
            lambda mid: self._client.change_person_identifier(source, op.new_id, message_id=mid),
            lambda: [Rename(old_id=op.old_id, new_id=op.new_id)],
        )

    def _delete(self, op: Delete) -> _Step:
        step = self._step(
            "deletePerson",
            (RequestItem(index=0, sync_key=op.sync_key),),
            lambda mid: self._client.delete_person(op.sync_key, message_id=mid),
            lambda: [Remove(sync_key=op.sync_key)],
        )
        if step.outcome is Outcome.REJECTED and step.status is not None and _is_unknown(step.status):
            step = self._resolve(step, old_gone=op.sync_key, changes=[Remove(sync_key=op.sync_key)])
        return step

    def _resolve(
        self,
        failed: _Step,
        *,
        old_gone: str,
        new_present: str | None = None,
        changes: list[SnapshotChange],
    ) -> _Step:
        """Decide an "unknown object" answer by reading: already applied, or really rejected.

        When the reads show the change in place, the last read's answer confirms it in the snapshot.
        When a read gets no trustworthy answer, the outcome is unconfirmed: the next run re-diffs.
        """
        reads: list[tuple[_Step, Person | None]] = []
        for key in (old_gone, new_present):
            if key is None:
                continue
            read = self._read(key)
            if read is None:
                return _Step(
                    outcome=Outcome.UNCONFIRMED,
                    status=failed.status,
                    message_identifier=failed.message_identifier,
                    error=f"{failed.error or 'unknown object'}; could not verify by readPerson",
                    attempts=failed.attempts,
                )
            reads.append(read)
        old_step, old_person = reads[0]
        assert old_step.status is not None
        applied = old_person is None and _is_unknown(old_step.status)
        if new_present is not None:
            applied = applied and reads[1][1] is not None
        if not applied:
            return failed
        confirm = reads[-1][0]
        assert confirm.status is not None
        self._store.record_answer(
            Answer(
                message_identifier=confirm.message_identifier,
                answered_at=_now(),
                status=confirm.status,
                outcome=Outcome.CONFIRMED,
                error=f"confirms {failed.message_identifier}: already applied",
                items=(ItemAnswer(index=0, status=confirm.status, outcome=Outcome.CONFIRMED),),
            ),
            changes,
        )
        return _Step(
            outcome=Outcome.CONFIRMED,
            status=confirm.status,
            message_identifier=confirm.message_identifier,
            attempts=failed.attempts + len(reads),
        )

    def _read(self, sync_key: str) -> tuple[_Step, Person | None] | None:
        """A readPerson that resolves an ambiguous outcome, journalled like any request.

        Returns None when the read itself got no trustworthy answer.
        """
        found: list[Person | None] = []

        def call(mid: str) -> Status:
            status, person = self._client.read_person(sync_key, message_id=mid)
            found.append(person)
            return status

        # A read is confirmed (ok) or rejected (unknown): both answer the question.
        step = self._step("readPerson", (RequestItem(index=0, sync_key=sync_key),), call, list)
        if step.status is None or step.outcome is Outcome.UNCONFIRMED or not found:
            return None
        return step, found[-1]

    # --- a batch of creates: createPersons ------------------------------------------------

    def _execute_batch(self, creates: tuple[Create, ...]) -> list[OperationResult]:
        """One createPersons for several creates; each item's statusInfo decides its person.

        A transient failure of the whole request retries the whole batch: createPerson(s) upserts,
        so items the lost answer had applied are harmless to send again.
        """
        items = tuple(RequestItem(index=i, sync_key=op.sync_key) for i, op in enumerate(creates))
        pairs = [(op.person, op.password) for op in creates]
        policy = self._settings.retry
        attempt_no = 0
        last: list[_Step] = []
        for attempt in self._retrying("createPersons", items):
            with attempt:
                if self._halted():
                    if attempt_no == 0:
                        return [
                            OperationResult(operation=op, outcome=Outcome.SKIPPED, error="run stopped")
                            for op in creates
                        ]
                    break
                attempt_no += 1
                last, retry = self._mass_attempt(items, pairs, creates, attempt_no)
                if retry and not self._halted() and attempt_no < policy.max_attempts:
                    raise _Retry(last[0].error)
        return [
            OperationResult(
                operation=op,
                outcome=step.outcome,
                message_identifier=step.message_identifier,
                status=step.status,
                error=step.error,
                attempts=step.attempts,
            )
            for op, step in zip(creates, last, strict=True)
        ]

    def _mass_attempt(
        self,
        items: tuple[RequestItem, ...],
        pairs: list[tuple[Person, str]],
        creates: tuple[Create, ...],
        attempt: int,
    ) -> tuple[list[_Step], bool]:
        mid = new_message_id()
        self._store.record_sent(
            SentRequest(
                run_id=self._run_id,
                message_identifier=mid,
                operation="createPersons",
                attempt=attempt,
                sent_at=_now(),
                items=items,
            )
        )
        started = time.perf_counter()
        reply: MassReply | None = None
        error, retry, fallback = "", False, Outcome.UNCONFIRMED
        try:
            reply = self._client.create_persons(pairs, message_id=mid)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and journalled
            error, fallback, retry = self._call_failed(exc, "createPersons", mid)
        item_answers: list[ItemAnswer] = []
        changes: list[SnapshotChange] = []
        steps: list[_Step] = []
        for index, create in enumerate(creates):
            status = reply.items[index] if reply is not None else None
            if status is None:
                outcome = fallback
            elif status.ok:
                outcome = Outcome.CONFIRMED
                changes.append(Upsert(person=create.person, identity=create.identity))
            elif _is_busy(status):
                outcome = Outcome.UNCONFIRMED
            else:
                outcome = Outcome.REJECTED
            item_answers.append(ItemAnswer(index=index, status=status, outcome=outcome))
            item_error = error or (status.description if status and not status.ok else "")
            steps.append(
                _Step(
                    outcome=outcome,
                    status=status,
                    message_identifier=mid,
                    error=item_error,
                    attempts=attempt,
                )
            )
        if reply is not None:
            self._circuit.success()
        confirmed = sum(a.outcome is Outcome.CONFIRMED for a in item_answers)
        rejected = sum(a.outcome is Outcome.REJECTED for a in item_answers)
        # The request outcome says whether its answer may change the snapshot; items say what did.
        request_outcome = (
            Outcome.CONFIRMED if confirmed else (Outcome.REJECTED if rejected else Outcome.UNCONFIRMED)
        )
        header = reply.status if reply is not None else None
        self._store.record_answer(
            Answer(
                message_identifier=mid,
                answered_at=_now(),
                status=header,
                outcome=request_outcome,
                error=error,
                items=tuple(item_answers),
            ),
            changes,
        )
        self._log.info(
            "ims_request",
            operation="createPersons",
            items=len(items),
            sync_key=items[0].sync_key,
            message_identifier=mid,
            message_id_ref=header.message_id_ref if header else None,
            code_major=header.code_major if header else None,
            severity=header.severity if header else None,
            outcome=request_outcome.value,
            confirmed=confirmed,
            rejected=rejected,
            attempt=attempt,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            error=error or None,
        )
        for step, item in zip(steps, items, strict=True):
            if step.outcome is Outcome.REJECTED:
                self._log.warning(
                    "ims_item_rejected",
                    operation="createPersons",
                    sync_key=item.sync_key,
                    index=item.index,
                    message_identifier=mid,
                    description=step.error,
                )
        return steps, retry

    # --- one step: a logical call, retried -------------------------------------------------

    def _retrying(self, operation: str, items: tuple[RequestItem, ...]) -> Retrying:
        policy = self._settings.retry
        return Retrying(
            sleep=self._sleep,
            stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_seconds),
            wait=wait_exponential_jitter(
                multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
            ),
            retry=retry_if_exception_type(_Retry),
            before_sleep=self._log_retry(operation, items),
            reraise=True,
        )

    def _step(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        call: Callable[[str], Status],
        changes: Callable[[], list[SnapshotChange]],
    ) -> _Step:
        last = _Step(outcome=Outcome.UNCONFIRMED)
        try:
            for attempt in self._retrying(operation, items):
                with attempt:
                    if self._halted():
                        if last.attempts == 0:
                            raise _Aborted
                        return last
                    last = self._attempt(operation, items, call, changes, last.attempts + 1)
                    if last.retry and not self._halted():
                        raise _Retry(last.error)
        except _Retry:
            pass  # attempts or time exhausted: the last attempt's record stands (unconfirmed)
        return last

    def _attempt(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        call: Callable[[str], Status],
        changes: Callable[[], list[SnapshotChange]],
        attempt: int,
    ) -> _Step:
        mid = new_message_id()
        sent_at = _now()
        self._store.record_sent(
            SentRequest(
                run_id=self._run_id,
                message_identifier=mid,
                operation=operation,
                attempt=attempt,
                sent_at=sent_at,
                items=items,
            )
        )
        started = time.perf_counter()
        status: Status | None = None
        error = ""
        retry = False
        try:
            status = call(mid)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and journalled
            error, outcome, retry = self._call_failed(exc, operation, mid)
        else:
            if status.ok:
                outcome = Outcome.CONFIRMED
                self._circuit.success()
            elif _is_busy(status):
                retry, outcome, error = True, Outcome.UNCONFIRMED, "IMS ES answered: server busy"
                self._circuit.failure()
            else:
                outcome = Outcome.REJECTED
                self._circuit.success()
        answer = Answer(
            message_identifier=mid,
            answered_at=_now(),
            status=status,
            outcome=outcome,
            error=error,
            items=tuple(ItemAnswer(index=item.index, status=status, outcome=outcome) for item in items),
        )
        self._store.record_answer(answer, changes() if outcome is Outcome.CONFIRMED else ())
        self._log.info(
            "ims_request",
            operation=operation,
            sync_key=items[0].sync_key if items else "",
            new_sync_key=items[0].new_sync_key if items else "",
            message_identifier=mid,
            message_id_ref=status.message_id_ref if status else None,
            code_major=status.code_major if status else None,
            severity=status.severity if status else None,
            code_minor=[f"{n}={v}" for n, v in status.code_minor] if status else [],
            description=status.description if status else "",
            outcome=outcome.value,
            attempt=attempt,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            error=error or None,
        )
        return _Step(
            outcome=outcome, status=status, message_identifier=mid, error=error, attempts=attempt, retry=retry
        )

    def _call_failed(self, exc: Exception, operation: str, mid: str) -> tuple[str, Outcome, bool]:
        """Classify a failed call: (error text, outcome, retry?). Feeds the circuit; records fatal errors."""
        if isinstance(exc, TransientError):
            self._circuit.failure()
            return str(exc), Outcome.UNCONFIRMED, True
        if isinstance(exc, AuthenticationError | CertificateError):
            with self._fatal_lock:
                self._fatal = self._fatal or exc
            return str(exc), Outcome.UNCONFIRMED, False
        if isinstance(exc, RejectedError):
            return str(exc), Outcome.REJECTED, False
        if isinstance(exc, RemoteError):  # ProtocolError: an answer we cannot trust
            return str(exc), Outcome.UNCONFIRMED, False
        # A bug must not lose the journal's record of this request: record it as unconfirmed.
        self._log.exception("ims_request_crashed", operation=operation, message_identifier=mid)
        return f"internal error: {type(exc).__name__}: {exc}", Outcome.UNCONFIRMED, False

    def _log_retry(self, operation: str, items: tuple[RequestItem, ...]) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            wait_s = state.next_action.sleep if state.next_action else 0.0
            exc = state.outcome.exception() if state.outcome else None
            self._log.warning(
                "ims_retry",
                operation=operation,
                sync_key=items[0].sync_key if items else "",
                attempt=state.attempt_number,
                wait_s=round(wait_s, 2),
                error=str(exc) if exc else None,
            )

        return before_sleep


class _Retry(Exception):
    """Internal: the attempt failed transiently; tenacity decides whether to try again."""
