"""Run a Plan against IMS ES: a bounded pool of workers, tenacity retries, a journal entry per request.

Each operation is one object's work (a changeIdentifier may be followed by an update of the same
object), so per-object order holds inside a worker while different objects run concurrently. At
most `max_in_flight` objects are unanswered at any time: itslearning asks for fewer than 10.

Operations run in phases (sync.plan.ordering): groups parents first, persons, memberships, then deletions
the other way round. An operation whose group, parent or person was not confirmed by an earlier
phase of the run is skipped, not sent: IMS ES would refuse it anyway.

Every attempt is its own request with a fresh messageIdentifier, written to the journal as *sent*
before it goes out and answered after, in the same transaction as the snapshot change it confirms.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol, TypeAlias, assert_never

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
    UnmatchedAnswerError,
)
from sync.ims.exchange import MassReply, new_message_id
from sync.models import (
    ChangeGroupIdentifier,
    ChangeIdentifier,
    ChangeMembershipIdentifier,
    Create,
    CreateGroup,
    CreateMembership,
    DeactivateMembership,
    Delete,
    DeleteGroup,
    DeleteMembership,
    FieldChange,
    Group,
    GroupOperation,
    Membership,
    MembershipOperation,
    Operation,
    OperationResult,
    Outcome,
    Person,
    PersonOperation,
    Status,
    Update,
    UpdateGroup,
    UpdateMembership,
)
from sync.models.kinds import GROUP, PERSON
from sync.plan.ordering import phases
from sync.state.changes import Remove, Rename, SnapshotChange, Upsert
from sync.state.journal import Answer, ItemAnswer, RequestItem, SentRequest
from sync.state.store import StateStore

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "ExecutionReport",
    "Executor",
    "ExecutorSettings",
    "GroupService",
    "MembershipService",
    "PersonService",
    "RetryPolicy",
]

#: codeMinor values that mean "try again later", not "your data is wrong".
_BUSY_CODES: Final = frozenset({"serverbusy", "server_busy", "busy"})
_UNKNOWN_OBJECT: Final = "unknownobject"
#: itslearning strongly discourages mass requests of more than 50 objects.
MAX_BATCH_SIZE: Final = 50


class PersonService(Protocol):
    """What the executor needs of an IMS ES PMS client (`sync.ims.clients.PersonClient` is one)."""

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


class GroupService(Protocol):
    """What the executor needs of an IMS ES GMS client (`sync.ims.clients.GroupClient` is one)."""

    def create_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """createGroup."""
        ...

    def update_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """updateGroup."""
        ...

    def delete_group(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteGroup."""
        ...

    def read_group(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Group | None]:
        """readGroup."""
        ...

    def change_group_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changeGroupIdentifier."""
        ...

    def create_groups(self, groups: Sequence[Group], *, message_id: str | None = None) -> MassReply:
        """createGroups: one request, one status per item."""
        ...


class MembershipService(Protocol):
    """What the executor needs of an IMS ES MMS client (`sync.ims.clients.MembershipClient` is one)."""

    def create_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """createMembership."""
        ...

    def update_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """updateMembership."""
        ...

    def delete_membership(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteMembership."""
        ...

    def read_membership(
        self, sync_key: str, *, message_id: str | None = None
    ) -> tuple[Status, Membership | None]:
        """readMembership."""
        ...

    def create_memberships(
        self, memberships: Sequence[Membership], *, message_id: str | None = None
    ) -> MassReply:
        """createMemberships: one request, one status per item."""
        ...

    def delete_memberships(self, sync_keys: Sequence[str], *, message_id: str | None = None) -> MassReply:
        """deleteMemberships: one request, one status per item."""
        ...

    def change_membership_identifier(
        self, old_id: str, new_id: str, *, message_id: str | None = None
    ) -> Status:
        """changeMembershipIdentifier."""
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
    batch_size: int = 1  # objects per mass request (createPersons, createGroups, ...); 1 = single calls
    circuit_threshold: int = 20  # consecutive transient failures that open the circuit
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    deletes: bool = False  # execute deletions and deactivations (off by default: they are only listed)


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


#: Operations that may travel together in one mass request, by the mass operation's name.
_MASS: Final = {
    Create: "createPersons",
    CreateGroup: "createGroups",
    CreateMembership: "createMemberships",
    DeleteMembership: "deleteMemberships",
}
_DELETIONS: Final = (Delete, DeleteGroup, DeleteMembership, DeactivateMembership)
_GROUP_OPERATIONS: Final = (CreateGroup, UpdateGroup, ChangeGroupIdentifier, DeleteGroup)
_MEMBERSHIP_OPERATIONS: Final = (
    CreateMembership,
    UpdateMembership,
    ChangeMembershipIdentifier,
    DeleteMembership,
    DeactivateMembership,
)


@dataclass(frozen=True, slots=True)
class _Batch:
    """Operations of one kind sent together in one mass request (see _MASS)."""

    operation: str
    ops: tuple[Create | CreateGroup | CreateMembership | DeleteMembership, ...]


#: A journalled read by sync key: (the read's step, the object or None), or None without a trustworthy answer.
_Reader: TypeAlias = Callable[[str], "tuple[_Step, object | None] | None"]


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


def _is_unknown_answer(step: _Step) -> bool:
    """IMS ES answered "unknown object" (failure/unknownobject) to this step."""
    return step.outcome is Outcome.REJECTED and step.status is not None and _is_unknown(step.status)


def _one(sync_key: str) -> tuple[RequestItem, ...]:
    return (RequestItem(index=0, sync_key=sync_key),)


def _missing_dependency(op: Operation, failed: dict[str, set[str]]) -> str:
    """Why `op` cannot be sent: a group or person it needs was not confirmed earlier in this run."""
    match op:
        case CreateGroup() | UpdateGroup() | ChangeGroupIdentifier():
            if op.group.parent in failed["group"]:
                return f"not sent: parent group {op.group.parent!r} was not confirmed in this run"
        case CreateMembership() | UpdateMembership() | ChangeMembershipIdentifier():
            membership = op.membership
            if membership.group in failed["group"]:
                return f"not sent: group {membership.group!r} was not confirmed in this run"
            if membership.person in failed["person"]:
                return f"not sent: person {membership.person!r} was not confirmed in this run"
        case DeleteGroup():
            if op.sync_key in failed["kept_parent"]:
                return (
                    f"not sent: a child group of {op.sync_key!r} was not deleted in this run, and IMS ES "
                    "refuses to delete a group with children"
                )
        case _:
            pass
    return ""


def _note_failure(op: Operation, failed: dict[str, set[str]]) -> None:
    """Remember what an unconfirmed operation leaves missing: a group or person later operations
    need, or a child group that keeps its parent from being deleted."""
    match op:
        case CreateGroup() | UpdateGroup() | ChangeGroupIdentifier():
            failed["group"].add(op.sync_key)
        case Create() | Update() | ChangeIdentifier():
            failed["person"].add(op.sync_key)
        case DeleteGroup() if op.parent:
            failed["kept_parent"].add(op.parent)
        case _:
            pass


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
        settings: ExecutorSettings = ExecutorSettings(),
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
        self._client = client
        self._groups = groups
        self._memberships = memberships
        self._store = store
        self._run_id = run_id
        self._settings = settings
        self._sleep = sleep
        self._stop = stop or threading.Event()
        self._on_result = on_result
        self._circuit = _Circuit(settings.circuit_threshold)
        self._fatal: RemoteError | None = None
        self._fatal_lock = threading.Lock()
        self._log = structlog.get_logger("sync.send.executor").bind(run_id=run_id)

    @property
    def _gms(self) -> GroupService:
        if self._groups is None:
            raise ValueError("the operations include groups, but the executor has no GMS client")
        return self._groups

    @property
    def _mms(self) -> MembershipService:
        if self._memberships is None:
            raise ValueError("the operations include memberships, but the executor has no MMS client")
        return self._memberships

    # --- the run ---------------------------------------------------------------------------

    def run(self, operations: Sequence[Operation]) -> ExecutionReport:
        """Execute `operations` (deletions only when settings.deletes) and return their results in order.

        The operations run in phases (sync.plan.ordering.phases); inside a phase, work is handed out in
        units (one operation, or a batch for a mass request) while the objects in flight stay within
        `max_in_flight`.
        """
        todo = [op for op in operations if self._settings.deletes or not isinstance(op, _DELETIONS)]
        if any(isinstance(op, _GROUP_OPERATIONS) for op in todo):
            _ = self._gms
        if any(isinstance(op, _MEMBERSHIP_OPERATIONS) for op in todo):
            _ = self._mms
        results: dict[int, OperationResult] = {}
        failed: dict[str, set[str]] = {"group": set(), "person": set(), "kept_parent": set()}
        with ThreadPoolExecutor(
            max_workers=self._settings.max_in_flight, thread_name_prefix="ims-es"
        ) as pool:
            for phase in phases(todo):
                if self._halted():
                    break  # the rest is skipped below, as never reached (not as a dependency gap)
                runnable: list[int] = []
                for position in phase:
                    missing = _missing_dependency(todo[position], failed)
                    if missing:
                        results[position] = OperationResult(
                            operation=todo[position], outcome=Outcome.SKIPPED, error=missing
                        )
                        self._report(results[position])
                    else:
                        runnable.append(position)
                self._run_phase(pool, todo, runnable, results)
                for position in phase:
                    result = results.get(position)
                    if result is None or result.outcome is not Outcome.CONFIRMED:
                        _note_failure(todo[position], failed)
        for position in range(len(todo)):
            if position not in results:
                results[position] = OperationResult(operation=todo[position], outcome=Outcome.SKIPPED)
        return ExecutionReport(
            results=tuple(results[i] for i in range(len(todo))),
            stopped=self._stopped_reason(),
            fatal=self._fatal,
        )

    def _report(self, result: OperationResult) -> None:
        if self._on_result is not None:
            self._on_result(result)

    def _run_phase(
        self,
        pool: ThreadPoolExecutor,
        todo: Sequence[Operation],
        positions: Sequence[int],
        results: dict[int, OperationResult],
    ) -> None:
        units = self._units(todo, positions)
        budget = self._settings.max_in_flight
        pending: dict[Future[list[OperationResult]], tuple[int, ...]] = {}
        in_flight = 0
        next_unit = 0
        while next_unit < len(units) or pending:
            while next_unit < len(units) and not self._halted():
                unit_positions, unit = units[next_unit]
                if pending and in_flight + len(unit_positions) > budget:
                    break
                pending[pool.submit(self._execute_unit, unit)] = unit_positions
                in_flight += len(unit_positions)
                next_unit += 1
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                unit_positions = pending.pop(future)
                in_flight -= len(unit_positions)
                for position, result in zip(unit_positions, future.result(), strict=True):
                    results[position] = result
                    self._report(result)

    def _units(
        self, todo: Sequence[Operation], positions: Sequence[int]
    ) -> list[tuple[tuple[int, ...], Operation | _Batch]]:
        """Group batchable operations into mass requests (order kept); everything else goes alone."""
        size = min(self._settings.batch_size, self._settings.max_in_flight)
        units: list[tuple[tuple[int, ...], Operation | _Batch]] = []
        batch: list[int] = []

        def flush() -> None:
            if len(batch) == 1:
                units.append(((batch[0],), todo[batch[0]]))
            elif batch:
                ops = tuple(todo[i] for i in batch)
                units.append((tuple(batch), _Batch(_MASS[type(ops[0])], ops)))  # type: ignore[arg-type]
            batch.clear()

        for position in positions:
            op = todo[position]
            if size > 1 and type(op) in _MASS:
                if batch and type(todo[batch[0]]) is not type(op):
                    flush()
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
            return self._execute_batch(unit)
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
            step = self._dispatch(op)
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

    def _dispatch(self, op: Operation) -> _Step:
        match op:
            case Create() | Update() | ChangeIdentifier() | Delete():
                return self._dispatch_person(op)
            case CreateGroup() | UpdateGroup() | ChangeGroupIdentifier() | DeleteGroup():
                return self._dispatch_group(op)
            case _:
                return self._dispatch_membership(op)

    def _dispatch_person(self, op: PersonOperation) -> _Step:
        match op:
            case Create():
                return self._step(
                    "createPerson",
                    _one(op.sync_key),
                    lambda mid: self._client.create_person(op.person, password=op.password, message_id=mid),
                    lambda: [Upsert(record=op.person, identity=op.identity)],
                )
            case Update():
                return self._update(op.person, op.identity, clears=any(not c.new for c in op.changes))
            case ChangeIdentifier():
                return self._change_identifier(op)
            case Delete():
                return self._delete(op)
            case _:
                assert_never(op)

    def _dispatch_group(self, op: GroupOperation) -> _Step:
        match op:
            case CreateGroup():
                return self._step(
                    "createGroup",
                    _one(op.sync_key),
                    lambda mid: self._gms.create_group(op.group, message_id=mid),
                    lambda: [Upsert(record=op.group, identity=op.identity)],
                )
            case UpdateGroup():
                return self._update_group(op.group, op.identity)
            case ChangeGroupIdentifier():
                return self._change_group_identifier(op)
            case DeleteGroup():
                return self._delete_group(op)
            case _:
                assert_never(op)

    def _dispatch_membership(self, op: MembershipOperation) -> _Step:
        match op:
            case CreateMembership():
                return self._step(
                    "createMembership",
                    _one(op.sync_key),
                    lambda mid: self._mms.create_membership(op.membership, message_id=mid),
                    lambda: [Upsert(record=op.membership)],
                )
            case UpdateMembership():
                return self._update_membership(op.membership)
            case DeactivateMembership():
                return self._deactivate_membership(op.membership)
            case ChangeMembershipIdentifier():
                return self._change_membership_identifier(op)
            case DeleteMembership():
                return self._delete_membership(op.sync_key)
            case _:
                assert_never(op)

    def _update(self, person: Person, identity: str, *, clears: bool) -> _Step:
        # updatePerson merges what it is given, so a cleared field needs replacePerson.
        items = _one(person.sync_key)
        if clears:
            return self._step(
                "replacePerson",
                items,
                lambda mid: self._client.replace_person(person, message_id=mid),
                lambda: [Upsert(record=person, identity=identity)],
            )
        return self._step(
            "updatePerson",
            items,
            lambda mid: self._client.update_person(person, message_id=mid),
            lambda: [Upsert(record=person, identity=identity)],
        )

    def _change_identifier(self, op: ChangeIdentifier) -> _Step:
        step = self._rename(
            "changePersonIdentifier",
            op.old_id,
            op.new_id,
            lambda source, mid: self._client.change_person_identifier(source, op.new_id, message_id=mid),
            Rename(kind="person", old_id=op.old_id, new_id=op.new_id),
            self._person_reader,
            lost_targets=functools.partial(self._store.unconfirmed_renames, PERSON),
        )
        return self._then_update(
            step,
            op.changes,
            lambda: self._update(op.person, op.identity, clears=any(not c.new for c in op.changes)),
        )

    def _rename(
        self,
        operation: str,
        old_id: str,
        new_id: str,
        send: Callable[[str, str], Status],
        change: SnapshotChange,
        reader: _Reader,
        *,
        lost_targets: Callable[[str], Sequence[str]] | None = None,
    ) -> _Step:
        """An identifier change old_id -> new_id; `send(source, mid)` sends one from `source`.

        "Unknown object" may mean an earlier request whose answer was lost applied it already (the
        old id gone, the new one there): reads, journalled, decide. Failing that, with `lost_targets`
        the object may sit under the target of an earlier rename whose answer was lost: the journal
        names those targets; where a read finds the object under one, it is renamed from there, and
        the snapshot moves from the old id to the new one (`change`).
        """

        def rename_from(source: str) -> _Step:
            return self._step(
                operation,
                (RequestItem(index=0, sync_key=source, new_sync_key=new_id),),
                lambda mid: send(source, mid),
                lambda: [change],
            )

        step = rename_from(old_id)
        if _is_unknown_answer(step):
            step = self._resolve(step, reader=reader, old_gone=old_id, new_present=new_id, changes=[change])
        if not _is_unknown_answer(step) or lost_targets is None:
            return step
        for lost_target in lost_targets(old_id):
            if lost_target == new_id:
                continue
            read = reader(lost_target)
            if read is not None and read[1] is not None:
                return rename_from(lost_target)
        return step

    @staticmethod
    def _then_update(step: _Step, changes: Sequence[FieldChange], update: Callable[[], _Step]) -> _Step:
        """After a confirmed identifier change that also changes fields: the update, attempts added up."""
        if step.outcome is not Outcome.CONFIRMED or not changes:
            return step
        follow = update()
        follow.attempts += step.attempts
        return follow

    def _remove(
        self,
        operation: str,
        sync_key: str,
        call: Callable[[str], Status],
        change: SnapshotChange,
        reader: _Reader,
        *,
        resolved: SnapshotChange | None = None,
    ) -> _Step:
        """A deletion. "Unknown object" may mean it happened already (a lost answer, or IMS ES removed
        it along with something else): a read, journalled, decides; confirmed, the snapshot takes
        `resolved` (default: `change`)."""
        step = self._step(operation, _one(sync_key), call, lambda: [change])
        if _is_unknown_answer(step):
            step = self._resolve(step, reader=reader, old_gone=sync_key, changes=[resolved or change])
        return step

    def _delete(self, op: Delete) -> _Step:
        return self._remove(
            "deletePerson",
            op.sync_key,
            lambda mid: self._client.delete_person(op.sync_key, message_id=mid),
            Remove(kind="person", sync_key=op.sync_key),
            self._person_reader,
        )

    # --- groups ----------------------------------------------------------------------------

    def _update_group(self, group: Group, identity: str) -> _Step:
        return self._step(
            "updateGroup",
            _one(group.sync_key),
            lambda mid: self._gms.update_group(group, message_id=mid),
            lambda: [Upsert(record=group, identity=identity)],
        )

    def _change_group_identifier(self, op: ChangeGroupIdentifier) -> _Step:
        step = self._rename(
            "changeGroupIdentifier",
            op.old_id,
            op.new_id,
            lambda source, mid: self._gms.change_group_identifier(source, op.new_id, message_id=mid),
            Rename(kind="group", old_id=op.old_id, new_id=op.new_id),
            self._group_reader,
            lost_targets=functools.partial(self._store.unconfirmed_renames, GROUP),
        )
        return self._then_update(step, op.changes, lambda: self._update_group(op.group, op.identity))

    def _delete_group(self, op: DeleteGroup) -> _Step:
        return self._remove(
            "deleteGroup",
            op.sync_key,
            lambda mid: self._gms.delete_group(op.sync_key, message_id=mid),
            Remove(kind="group", sync_key=op.sync_key),
            self._group_reader,
        )

    # --- memberships -----------------------------------------------------------------------

    def _update_membership(self, membership: Membership) -> _Step:
        step = self._step(
            "updateMembership",
            _one(membership.sync_key),
            lambda mid: self._mms.update_membership(membership, message_id=mid),
            lambda: [Upsert(record=membership)],
        )
        if _is_unknown_answer(step):
            # Unlike updatePerson, updateMembership does not create: the membership was removed in
            # IMS ES (by hand, or with its group). The roster still wants it, so create it again.
            follow = self._step(
                "createMembership",
                _one(membership.sync_key),
                lambda mid: self._mms.create_membership(membership, message_id=mid),
                lambda: [Upsert(record=membership)],
            )
            follow.attempts += step.attempts
            return follow
        return step

    def _deactivate_membership(self, membership: Membership) -> _Step:
        """updateMembership with active false. "Unknown object": it is gone from IMS ES already (by
        hand, or with its group), so nothing is left to deactivate; a read confirms, and the snapshot
        lets it go instead of creating it again only to mark it inactive."""
        return self._remove(
            "updateMembership",
            membership.sync_key,
            lambda mid: self._mms.update_membership(membership, message_id=mid),
            Upsert(record=membership),
            self._membership_reader,
            resolved=Remove(kind="membership", sync_key=membership.sync_key),
        )

    def _change_membership_identifier(self, op: ChangeMembershipIdentifier) -> _Step:
        step = self._rename(
            "changeMembershipIdentifier",
            op.old_id,
            op.new_id,
            lambda source, mid: self._mms.change_membership_identifier(source, op.new_id, message_id=mid),
            Rename(kind="membership", old_id=op.old_id, new_id=op.new_id),
            self._membership_reader,
        )
        return self._then_update(step, op.changes, lambda: self._update_membership(op.membership))

    def _delete_membership(self, sync_key: str) -> _Step:
        return self._remove(
            "deleteMembership",
            sync_key,
            lambda mid: self._mms.delete_membership(sync_key, message_id=mid),
            Remove(kind="membership", sync_key=sync_key),
            self._membership_reader,
        )

    # --- resolving "unknown object" answers by reading ----------------------------------------

    def _resolve(
        self,
        failed: _Step,
        *,
        reader: _Reader,
        old_gone: str,
        new_present: str | None = None,
        changes: list[SnapshotChange],
    ) -> _Step:
        """Decide an "unknown object" answer by reading: already applied, or really rejected.

        When the reads show the change in place, the last read's answer confirms it in the snapshot.
        When a read gets no trustworthy answer, the outcome is unconfirmed: the next run re-diffs.
        """
        reads: list[tuple[_Step, object | None]] = []
        for key in (old_gone, new_present):
            if key is None:
                continue
            read = reader(key)
            if read is None:
                return _Step(
                    outcome=Outcome.UNCONFIRMED,
                    status=failed.status,
                    message_identifier=failed.message_identifier,
                    error=f"{failed.error or 'unknown object'}; could not verify by reading it back",
                    attempts=failed.attempts,
                )
            reads.append(read)
        old_step, old_found = reads[0]
        assert old_step.status is not None
        applied = old_found is None and _is_unknown(old_step.status)
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

    def _read(
        self, operation: str, sync_key: str, call: Callable[[str], tuple[Status, object | None]]
    ) -> tuple[_Step, object | None] | None:
        """A read that resolves an ambiguous outcome, journalled like any request.

        Returns None when the read itself got no trustworthy answer.
        """
        found: list[object | None] = []

        def send(mid: str) -> Status:
            status, value = call(mid)
            found.append(value)
            return status

        # A read is confirmed (ok) or rejected (unknown): both answer the question.
        step = self._step(operation, _one(sync_key), send, list)
        if step.status is None or step.outcome is Outcome.UNCONFIRMED or not found:
            return None
        return step, found[-1]

    def _person_reader(self, sync_key: str) -> tuple[_Step, object | None] | None:
        return self._read(
            "readPerson", sync_key, lambda mid: self._client.read_person(sync_key, message_id=mid)
        )

    def _group_reader(self, sync_key: str) -> tuple[_Step, object | None] | None:
        return self._read("readGroup", sync_key, lambda mid: self._gms.read_group(sync_key, message_id=mid))

    def _membership_reader(self, sync_key: str) -> tuple[_Step, object | None] | None:
        return self._read(
            "readMembership", sync_key, lambda mid: self._mms.read_membership(sync_key, message_id=mid)
        )

    # --- mass requests: createPersons, createGroups, createMemberships, deleteMemberships ----------

    def _mass_call(self, batch: _Batch) -> Callable[[str], MassReply]:
        ops = batch.ops
        match batch.operation:
            case "createPersons":
                pairs = [(op.person, op.password) for op in ops if isinstance(op, Create)]
                return lambda mid: self._client.create_persons(pairs, message_id=mid)
            case "createGroups":
                groups = [op.group for op in ops if isinstance(op, CreateGroup)]
                return lambda mid: self._gms.create_groups(groups, message_id=mid)
            case "createMemberships":
                members = [op.membership for op in ops if isinstance(op, CreateMembership)]
                return lambda mid: self._mms.create_memberships(members, message_id=mid)
            case _:
                keys = [op.sync_key for op in ops]
                return lambda mid: self._mms.delete_memberships(keys, message_id=mid)

    @staticmethod
    def _mass_change(op: Create | CreateGroup | CreateMembership | DeleteMembership) -> SnapshotChange:
        match op:
            case Create():
                return Upsert(record=op.person, identity=op.identity)
            case CreateGroup():
                return Upsert(record=op.group, identity=op.identity)
            case CreateMembership():
                return Upsert(record=op.membership)
            case DeleteMembership():
                return Remove(kind="membership", sync_key=op.sync_key)
            case _:
                assert_never(op)

    def _execute_batch(self, batch: _Batch) -> list[OperationResult]:
        """One mass request for several operations; each item's statusInfo decides its object.

        A transient failure of the whole request retries the whole batch: the creates upsert and
        a deleted membership answers "unknown object", so items the lost answer had applied are
        harmless to send again. A delete item answered "unknown object" is checked by reading it.
        """
        ops = batch.ops
        items = tuple(RequestItem(index=i, sync_key=op.sync_key) for i, op in enumerate(ops))
        call = self._mass_call(batch)
        policy = self._settings.retry
        attempt_no = 0
        last: list[_Step] = []
        for attempt in self._retrying(batch.operation, items):
            with attempt:
                if self._halted():
                    if attempt_no == 0:
                        return [
                            OperationResult(operation=op, outcome=Outcome.SKIPPED, error="run stopped")
                            for op in ops
                        ]
                    break
                attempt_no += 1
                last, retry = self._mass_attempt(batch.operation, items, call, ops, attempt_no)
                if retry and not self._halted() and attempt_no < policy.max_attempts:
                    raise _Retry(last[0].error)
        if batch.operation == "deleteMemberships":
            last = [
                self._resolve(
                    step,
                    reader=self._membership_reader,
                    old_gone=op.sync_key,
                    changes=[Remove(kind="membership", sync_key=op.sync_key)],
                )
                if _is_unknown_answer(step)
                else step
                for op, step in zip(ops, last, strict=True)
            ]
        return [
            OperationResult(
                operation=op,
                outcome=step.outcome,
                message_identifier=step.message_identifier,
                status=step.status,
                error=step.error,
                attempts=step.attempts,
            )
            for op, step in zip(ops, last, strict=True)
        ]

    def _mass_attempt(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        call: Callable[[str], MassReply],
        ops: tuple[Create | CreateGroup | CreateMembership | DeleteMembership, ...],
        attempt: int,
    ) -> tuple[list[_Step], bool]:
        mid = new_message_id()
        self._store.record_sent(
            SentRequest(
                run_id=self._run_id,
                message_identifier=mid,
                operation=operation,
                attempt=attempt,
                sent_at=_now(),
                items=items,
            )
        )
        started = time.perf_counter()
        reply: MassReply | None = None
        error, retry, fallback = "", False, Outcome.UNCONFIRMED
        heard: UnmatchedAnswerError | None = None  # an answer to another request: journalled only
        try:
            reply = call(mid)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and journalled
            error, fallback, retry = self._call_failed(exc, operation, mid)
            if isinstance(exc, UnmatchedAnswerError):
                heard = exc
        item_answers: list[ItemAnswer] = []
        changes: list[SnapshotChange] = []
        steps: list[_Step] = []
        for index, op in enumerate(ops):
            status = reply.items[index] if reply is not None else None
            if status is None:
                outcome = fallback
            elif status.ok:
                outcome = Outcome.CONFIRMED
                changes.append(self._mass_change(op))
            elif _is_busy(status):
                outcome = Outcome.UNCONFIRMED
            else:
                outcome = Outcome.REJECTED
            if heard is not None and index < len(heard.items):
                item_answers.append(ItemAnswer(index=index, status=heard.items[index], outcome=outcome))
            else:
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
        header = reply.status if reply is not None else (heard.status if heard is not None else None)
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
            operation=operation,
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
                    operation=operation,
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
        heard: Status | None = None  # an answer to another request: journalled, trusted for nothing
        try:
            status = call(mid)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and journalled
            error, outcome, retry = self._call_failed(exc, operation, mid)
            if isinstance(exc, UnmatchedAnswerError):
                heard = exc.status
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
        journalled = status or heard
        answer = Answer(
            message_identifier=mid,
            answered_at=_now(),
            status=journalled,
            outcome=outcome,
            error=error,
            items=tuple(ItemAnswer(index=item.index, status=journalled, outcome=outcome) for item in items),
        )
        self._store.record_answer(answer, changes() if outcome is Outcome.CONFIRMED else ())
        self._log.info(
            "ims_request",
            operation=operation,
            sync_key=items[0].sync_key if items else "",
            new_sync_key=items[0].new_sync_key if items else "",
            message_identifier=mid,
            message_id_ref=journalled.message_id_ref if journalled else None,
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
