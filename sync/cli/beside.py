"""`plan`'s reading of the state beside the roster: the snapshot loads in a thread while the roster is
read and validated, as both spend most of their time outside the GIL (SQLite's query, Arrow's CSV
parser), so a night's dry run waits for the longer of the two, not their sum.

What goes wrong is told in the order a reading one after the other tells it: the roster's errors
first, then the state's that opening it raised, then a shrunk roster's refusal, then the snapshot's.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync.cli import approval, stages

__all__ = ["StateRead", "read_beside"]


@dataclass(slots=True)
class StateRead:
    """What `plan` reads of an existing state directory, or the error that stopped the reading (and
    whether the store had opened by then)."""

    runs: list[Any] = field(default_factory=list)
    snapshots: Any = None
    snapshot_state: bytes | None = None
    repairs: list[Any] = field(default_factory=list)
    opened: bool = False
    error: BaseException | None = None

    def opening_error(self) -> BaseException | None:
        """The error that kept the store from opening, if any."""
        return None if self.opened else self.error

    def loading_error(self) -> BaseException | None:
        """The error raised after the store opened (loading the snapshot), if any."""
        return self.error if self.opened else None


def _read_state(state: Path) -> StateRead:
    from sync.state.store import StateStore  # noqa: PLC0415

    read = StateRead()
    try:
        with StateStore.open(state, exclusive=False) as store:
            read.runs = store.runs()
            read.opened = True
            read.snapshots = stages.snapshots(store)
            read.snapshot_state = approval.snapshot_state(store, read.snapshots)
            read.repairs = store.repairs()
    except BaseException as exc:  # told in the reading's order by the caller  # noqa: BLE001
        read.error = exc
    return read


def read_beside(state: Path, read_roster: Callable[[], Any]) -> tuple[Any, StateRead]:
    """`read_roster()` in this thread while the state in `state` (which exists) is read in another; the
    roster's error, if any, is raised once the state's reading ended."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="state") as pool:
        context = contextvars.copy_context()  # the log's bound values follow the reading
        reading: Future[StateRead] = pool.submit(context.run, _read_state, state)
        roster = read_roster()
    return roster, reading.result()
