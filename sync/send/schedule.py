"""Scheduling: the plan's phases run one after the other; inside a phase, work is handed to a pool of
workers in units (one operation, or a batch for a mass request), twice the in-flight budget's worth of
objects at once: each unit waits in its worker for its share of the budget (sync.send.budget), so that
while `max_in_flight` objects are in flight, the next unit starts the moment one is done, without a
round trip through the scheduling thread. An operation whose group, parent or person was not confirmed
by an earlier phase is skipped, not sent: IMS ES would refuse it anyway.

Knows nothing of IMS ES, the clients or the store: it runs the units it is given through `execute`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Final, TypeAlias

from sync.models import ChangeIdentifier, Create, Delete, Operation, OperationResult, Outcome, Update, kind_of
from sync.models.blocks import Block, Ops, parts_of
from sync.models.results import Unreached, skipped
from sync.plan.ordering import phases
from sync.send.budget import Budget
from sync.send.circuit import Halt
from sync.send.policy import ExecutorSettings

__all__ = ["Batch", "Scheduler", "Unit"]

#: Objects handed to the workers at once, per object of the in-flight budget: one in flight, one waiting.
HANDED_OUT_PER_BUDGET: Final = 2


@dataclass(frozen=True, slots=True)
class Batch:
    """Operations of one kind sent together in one mass request named `operation`."""

    operation: str
    ops: tuple[Operation, ...]


#: What one worker does at once: one operation, or a batch sent as one mass request.
Unit: TypeAlias = Operation | Batch
#: A unit with the positions of its operations in the run's list.
_Placed: TypeAlias = tuple[tuple[int, ...], Unit]


class _Unconfirmed:
    """What earlier phases of this run left unconfirmed, and what later operations it keeps back."""

    def __init__(self) -> None:
        self._objects: dict[str, set[str]] = {}  # sync keys, by kind name
        self._kept_parents: dict[str, set[str]] = {}  # sync keys of parents whose child stays, by kind

    def __bool__(self) -> bool:
        """Whether anything is missing or kept: when not, no operation of the next phase is held back."""
        return bool(self._objects or self._kept_parents)

    def missing(self, op: Operation) -> str:
        """Why `op` cannot be sent: a group or person it needs was not confirmed earlier in this run."""
        kind = kind_of(op)
        if isinstance(op, (Create, Update, ChangeIdentifier)):
            for ref in kind.references:
                key = getattr(op.record, ref.field)
                if key in self._objects.get(ref.kind, ()):
                    what = ref.kind if ref.field == ref.kind else f"{ref.field} {ref.kind}"
                    return f"not sent: {what} {key!r} was not confirmed in this run"
        elif isinstance(op, Delete) and op.sync_key in self._kept_parents.get(kind.name, ()):
            return (
                f"not sent: a child {kind.name} of {op.sync_key!r} was not deleted in this run, and IMS ES "
                f"refuses to delete a {kind.name} with children"
            )
        return ""

    def note(self, op: Operation) -> None:
        """Remember what an unconfirmed operation leaves missing: an object later operations need, or a
        child that keeps its parent (a reference that does not go with it) from being deleted."""
        kind = kind_of(op)
        if isinstance(op, (Create, Update, ChangeIdentifier)):
            self._objects.setdefault(kind.name, set()).add(op.sync_key)
        elif isinstance(op, Delete):
            for ref in kind.references:
                parent = getattr(op.record, ref.field)  # a deletion carries the snapshot's parent
                if ref.kind == kind.name and not ref.go_with_it and parent:
                    self._kept_parents.setdefault(kind.name, set()).add(parent)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheduler:
    """Runs operations phase by phase on a pool of `HANDED_OUT_PER_BUDGET` x `max_in_flight` workers.

    Args:
        settings: the in-flight budget and batch size.
        halt: when to stop handing out work.
        mass_operation: the mass request an operation may travel in, or "".
        execute: runs one unit (in a worker thread), returning one result per operation.
        report: called with each result as it arrives (in the worker that ran it, if one did).
    """

    settings: ExecutorSettings
    halt: Halt
    mass_operation: Callable[[Operation], str]
    execute: Callable[[Unit], list[OperationResult]]
    report: Callable[[OperationResult], None]

    def run(self, todo: Sequence[Operation]) -> Sequence[OperationResult]:
        """Every operation's result, in order; what the run did not reach is skipped."""
        results: dict[int, OperationResult] = {}
        unconfirmed = _Unconfirmed()
        budget = Budget(self.settings.max_in_flight)
        with ThreadPoolExecutor(
            max_workers=HANDED_OUT_PER_BUDGET * self.settings.max_in_flight, thread_name_prefix="ims-es"
        ) as pool:
            for phase in phases(todo):
                if self.halt.halted():
                    break  # the rest is skipped below, as never reached (not as a dependency gap)
                runnable = self._runnable(todo, phase, unconfirmed, results)
                self._run_phase(pool, budget, todo, runnable, results)
                for _ in runnable:  # halted in the phase: its dependency gaps are still told as such
                    pass
                if self.halt.halted():
                    break  # no later phase runs: nothing to keep back
                for position in phase:
                    result = results.get(position)
                    if result is None or result.outcome is not Outcome.CONFIRMED:
                        unconfirmed.note(todo[position])
        return _in_order(todo, results)

    def _runnable(
        self,
        todo: Sequence[Operation],
        phase: Sequence[int],
        unconfirmed: _Unconfirmed,
        results: dict[int, OperationResult],
    ) -> Iterator[int]:
        """The positions of `phase` whose operations can be sent, as the phase's units are formed; the
        others are skipped (and reported) on the way: the first request goes out without a pass over
        the whole phase first."""
        if not unconfirmed:
            yield from phase
            return
        for position in phase:
            missing = unconfirmed.missing(todo[position])
            if missing:
                skipped = OperationResult(operation=todo[position], outcome=Outcome.SKIPPED, error=missing)
                results[position] = skipped
                self.report(skipped)
            else:
                yield position

    def _run_phase(
        self,
        pool: ThreadPoolExecutor,
        budget: Budget,
        todo: Sequence[Operation],
        positions: Iterator[int],
        results: dict[int, OperationResult],
    ) -> None:
        units = self._units(todo, positions)
        handed_out = HANDED_OUT_PER_BUDGET * budget.limit
        pending: dict[Future[list[OperationResult] | None], tuple[int, ...]] = {}
        objects = 0  # of the units handed out and not done
        waiting = next(units, None)  # the next unit to hand out
        while waiting is not None or pending:
            while waiting is not None and not self.halt.halted():
                unit_positions, unit = waiting
                if pending and objects + len(unit_positions) > handed_out:
                    break
                pending[pool.submit(self._run_unit, budget, unit, len(unit_positions))] = unit_positions
                objects += len(unit_positions)
                waiting = next(units, None)
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                unit_positions = pending.pop(future)
                objects -= len(unit_positions)
                unit_results = future.result()
                if unit_results is None:
                    continue  # the run halted before the unit's turn: skipped as never reached
                for position, result in zip(unit_positions, unit_results, strict=True):
                    results[position] = result

    def _run_unit(self, budget: Budget, unit: Unit, objects: int) -> list[OperationResult] | None:
        """In a worker: wait for the unit's share of the budget, run it, report its results, give the
        share back (to a unit waiting in another worker). None: the run halted while it waited (the
        unit was never reached)."""
        share = budget.take(objects)
        try:
            if self.halt.halted():
                return None
            unit_results = self.execute(unit)
            for result in unit_results:
                self.report(result)
            return unit_results
        finally:
            share.give_back()

    def _units(self, todo: Sequence[Operation], positions: Iterable[int]) -> Iterator[_Placed]:
        """Group batchable operations into mass requests (order kept); everything else goes alone.
        Formed as they are handed out: a phase of 10^6 operations is never held as units."""
        size = min(self.settings.batch_size, self.settings.max_in_flight)
        if size == 1:  # single calls: no operation travels in a mass request
            for position in positions:
                yield (position,), todo[position]
            return
        batch: list[int] = []
        mass = ""
        for position in positions:
            op = todo[position]
            op_mass = self.mass_operation(op)
            if op_mass:
                if batch and mass != op_mass:
                    yield _flushed(todo, batch, mass)
                    batch = []
                mass = op_mass
                batch.append(position)
                if len(batch) == size:
                    yield _flushed(todo, batch, mass)
                    batch = []
            else:
                if batch:
                    yield _flushed(todo, batch, mass)
                    batch = []
                yield (position,), op
        if batch:
            yield _flushed(todo, batch, mass)


def _in_order(todo: Sequence[Operation], results: dict[int, OperationResult]) -> Sequence[OperationResult]:
    """Every operation's result in order; an operation the run did not reach is skipped. A block's
    unreached tail (a run stopped early on a first night leaves up to 10^6 creates) stays a block: its
    results are made as they are read (`Unreached`); the other unreached ones are built in bulk."""
    if len(results) == len(todo):
        return tuple(results[position] for position in range(len(todo)))
    ordered: list[Sequence[OperationResult]] = []
    start = 0
    for part in parts_of(todo):
        end = start + len(part)
        if not isinstance(part, Block):
            ordered.append(_reached(part, start, end - start, results))
            start = end
            continue
        tail = 1 + max((at for at in results if start <= at < end), default=start - 1)
        ordered += [_reached(part, start, tail - start, results), Unreached(part, tail - start, end - start)]
        start = end
    return Ops(*ordered)


def _reached(
    part: Sequence[Operation], start: int, count: int, results: dict[int, OperationResult]
) -> list[OperationResult]:
    """The results of `part`'s first `count` operations (at `start` in the run); those not reached,
    skipped (built in bulk)."""
    unreached = iter(skipped([op for at, op in enumerate(part[:count], start) if at not in results]))
    return [results[at] if at in results else next(unreached) for at in range(start, start + count)]


def _flushed(todo: Sequence[Operation], batch: list[int], mass: str) -> _Placed:
    """The unit of the batched positions: the operation alone, or a Batch as mass request `mass`."""
    if len(batch) == 1:
        return (batch[0],), todo[batch[0]]
    return tuple(batch), Batch(mass, tuple(todo[i] for i in batch))
