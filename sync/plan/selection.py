"""Which of a plan's operations a run sends: `--only` and the config file's pause windows.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
The date a window is matched against is a parameter (`today`): the CLI reads the clock.
Around the summer rollover an operator sends only some types of operation (creates before term
start, say); the others stay in the plan and the reports as held, with their reason, and are not sent.
The safety limits (`sync.plan.safety`) hold more of what is selected: `Selection.holding` adds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Final, Literal, TypeAlias, get_args

from sync.models import DeleteOperation, DeletesMode, Operation
from sync.models.blocks import Ops, runs
from sync.models.kinds import OPERATION_TYPES, OperationType
from sync.models.plans import kind_and_type
from sync.plan.ordering import deletion_operations

__all__ = [
    "HELD_CAUSES",
    "Held",
    "HeldCause",
    "PauseWindow",
    "Selection",
    "active_window",
    "select_operations",
    "types_text",
]

#: Why an operation is held: `--only`, a pause window, a safety limit (the metrics' `cause` label).
HeldCause: TypeAlias = Literal["only", "pause", "limit"]
HELD_CAUSES: Final[tuple[HeldCause, ...]] = get_args(HeldCause)


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseWindow:
    """A period (both ends inclusive) in which runs send only the operation types in `allow`."""

    start: date
    end: date
    allow: frozenset[OperationType] = frozenset()

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end

    def text(self) -> str:
        """How reports and messages name it."""
        return f"pause window {self.start.isoformat()} to {self.end.isoformat()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """An operation the run could send but does not, and why."""

    operation: Operation
    reason: str
    cause: HeldCause = "only"


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """What a run sends and what it holds; `types` the operation types it sends (all when unrestricted)."""

    send: Sequence[Operation]  # a list, or `Ops` (a plan's blocks of creates kept whole)
    held: list[Held]
    types: frozenset[OperationType]
    window: PauseWindow | None = None

    @property
    def restricted(self) -> bool:
        return self.types != frozenset(OPERATION_TYPES)

    @property
    def limited(self) -> int:
        """How many operations a safety limit holds."""
        return sum(h.cause == "limit" for h in self.held)

    def holding(self, send: Sequence[Operation], held: Iterable[Held]) -> Selection:
        """This selection, sending only `send` and holding `held` besides what it held already."""
        return replace(self, send=send, held=[*self.held, *held])

    def describe(self) -> str:
        """One line for summaries and report headers: "" when every type is sent."""
        if not self.restricted:
            return ""
        why = f" ({self.window.text()})" if self.window is not None else ""
        return f"{'only ' if self.types else ''}{types_text(self.types)}{why}"


def types_text(types: Iterable[OperationType]) -> str:
    """Operation types in OPERATION_TYPES order, comma-separated ("nothing" when empty)."""
    chosen = set(types)
    return ", ".join(t for t in OPERATION_TYPES if t in chosen) or "nothing"


def active_window(windows: Sequence[PauseWindow], today: date) -> PauseWindow | None:
    """The first window covering `today` (several may overlap: the first one listed rules)."""
    return next((window for window in windows if window.covers(today)), None)


def select_operations(
    operations: Sequence[Operation],
    deletions: Iterable[DeleteOperation],
    *,
    deletes: DeletesMode,
    only: frozenset[OperationType] | None = None,
    window: PauseWindow | None = None,
) -> Selection:
    """Split the plan's operations, and the deletions `--deletes` sends, into those sent and those held.

    `only` (None: every type) is intersected with the window's `allow`; an operation of another type
    is held with the reason "not in --only" or the window's name. Deletion candidates `--deletes off`
    does not send are not held: they are listed as deletion candidates, as before.
    """
    types = frozenset(OPERATION_TYPES) if only is None else only
    if window is not None:
        types &= window.allow
    every = Ops(operations, deletion_operations(deletions, deletes))
    # Each run's type told by its shape: a first night's 10^5-10^6 creates are one block, never walked.
    typed = [(kind_and_type(classes)[1], run) for classes, run in runs(every)]
    if all(op_type in types for op_type, _ in typed):  # (nothing held: no pass over them)
        return Selection(send=every, held=[], types=types, window=window)
    send: list[Sequence[Operation]] = []
    held: list[Held] = []
    for op_type, run in typed:
        if op_type in types:
            send.append(run)
        elif only is not None and op_type not in only:
            held.extend(Held(operation=op, reason="held: not in --only") for op in run)
        else:
            assert window is not None
            held.extend(Held(operation=op, reason=f"held: {window.text()}", cause="pause") for op in run)
    return Selection(send=Ops(*send), held=held, types=types, window=window)
