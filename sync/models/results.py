"""IMS ES statuses and what a run did with each operation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from typing import Final, overload

from sync.models.blocks import CHUNK, Block, parts_of
from sync.models.operations import Operation
from sync.models.plans import Plan
from sync.models.records import instances

#: What itslearning's warning says (lower case) when a write carries relationships and the site's
#: parent portal is off: the person was written, its relationships were not.
PARENT_PORTAL_DISABLED: Final = "parent portal is disabled"


def parent_portal_notice(persons: int) -> str:
    """What the log and every run report say, once per run, when the site's parent portal refused links."""
    return (
        f"itslearning's parent portal is disabled on this site: {persons} person(s) were written without "
        "their parent/child links (not a failure; turn the portal on to link them, see troubleshooting.md)"
    )


#: codeMinor values that mean "try again later", not "your data is wrong".
BUSY_CODES: Final = frozenset({"serverbusy", "server_busy", "busy"})
#: The codeMinor value of "unknown object": maybe really unknown, maybe a lost answer already applied it.
UNKNOWN_OBJECT: Final = "unknownobject"


class CodeMajor(StrEnum):
    """IMS ES statusInfo/codeMajor."""

    SUCCESS = "success"
    UNSUPPORTED = "unsupported"
    FAILURE = "failure"
    PROCESSING = "processing"


class Severity(StrEnum):
    """IMS ES statusInfo/severity."""

    STATUS = "status"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """One IMS ES statusInfo: the service's verdict on a request or on one item of a mass request."""

    code_major: str
    severity: str
    code_minor: tuple[tuple[str, str], ...] = ()
    message_id_ref: str | None = None
    description: str = ""

    @property
    def ok(self) -> bool:
        """True when IMS ES confirmed the operation (codeMajor success, warnings included)."""
        return self.code_major == CodeMajor.SUCCESS

    @property
    def busy(self) -> bool:
        """IMS ES answered "server busy": try again later."""
        return any(name.lower() in BUSY_CODES for name, _ in self.code_minor)

    @property
    def unknown_object(self) -> bool:
        """IMS ES answered "unknown object"."""
        return any(name.lower() == UNKNOWN_OBJECT for name, _ in self.code_minor)


class Outcome(StrEnum):
    """How one operation ended."""

    CONFIRMED = "confirmed"  # IMS ES answered success with our messageIdRef; snapshot updated
    REJECTED = "rejected"  # IMS ES answered failure (or a fault) about the data; not retried
    UNCONFIRMED = "unconfirmed"  # sent, but no trustworthy answer; the next run re-diffs it
    SKIPPED = "skipped"  # not sent (run stopped, or an earlier step for the person failed)


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationResult:
    """How one planned operation ended, with the request that decided it."""

    operation: Operation
    outcome: Outcome
    message_identifier: str = ""  # of the request that decided the outcome (last attempt)
    status: Status | None = None
    error: str = ""
    attempts: int = 0


def skipped(operations: Sequence[Operation]) -> list[OperationResult]:
    """Each of `operations` as skipped (a run that stopped did not reach it), built in bulk (`instances`:
    a run stopped early on a first night leaves up to 10^6)."""
    outcomes = [Outcome.SKIPPED] * len(operations)
    made: list[OperationResult] = instances(
        OperationResult, len(operations), {"operation": operations, "outcome": outcomes}
    )
    return made


class Unreached(Sequence[OperationResult]):
    """The results of a block's operations `start` to `stop` that a run did not reach (skipped), made
    as they are read, a chunk at a time (a run stopped early on a first night leaves up to 10^6)."""

    def __init__(self, block: Block, start: int, stop: int) -> None:
        self._block, self._start, self._stop = block, start, stop

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, index: int) -> OperationResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[OperationResult]: ...
    def __getitem__(self, index: int | slice) -> OperationResult | list[OperationResult]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return [self[at] for at in range(start, stop, step)]
        at = index + len(self) if index < 0 else index
        if not 0 <= at < len(self):
            raise IndexError("result index out of range")
        return OperationResult(operation=self._block[self._start + at], outcome=Outcome.SKIPPED)

    def __iter__(self) -> Iterator[OperationResult]:
        for start in range(self._start, self._stop, CHUNK):
            yield from skipped(self._block.made(start, min(start + CHUNK, self._stop)))


_OUTCOME: Final = attrgetter("outcome")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a run did: every operation's outcome, and why it stopped early, if it did."""

    run_id: str
    plan: Plan
    results: Sequence[OperationResult]  # a tuple, or `Ops` (a stopped run's unreached creates made as read)
    started_at: str  # ISO 8601, UTC
    finished_at: str  # ISO 8601, UTC
    stopped: str = ""  # "" when the run went to the end; else the reason (circuit open, signal)
    _counts: Counter[Outcome] | None = field(default=None, init=False, compare=False, repr=False)

    def count(self, outcome: Outcome) -> int:
        """How many operations ended with `outcome`."""
        counts = self._counts
        if counts is None:  # counted once, in one pass: reports and summaries ask for every outcome
            counts = Counter()
            for part in parts_of(self.results):
                if isinstance(part, Unreached):
                    counts[Outcome.SKIPPED] += len(part)
                else:
                    counts.update(map(_OUTCOME, part))
            object.__setattr__(self, "_counts", counts)
        return counts[outcome]

    def parent_portal_disabled(self) -> tuple[str, ...]:
        """The sync keys of the persons itslearning wrote without their parent/child links because the
        site's parent portal is off (a confirmed answer with that warning), in result order."""
        return tuple(
            r.operation.sync_key
            for part in parts_of(self.results)
            if not isinstance(part, Unreached)  # (no status: never sent)
            for r in part
            if r.status is not None
            and r.status.severity == Severity.WARNING
            and PARENT_PORTAL_DISABLED in r.status.description.lower()
        )
