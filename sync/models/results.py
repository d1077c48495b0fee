"""IMS ES statuses and what a run did with each operation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sync.models.operations import Operation
from sync.models.plans import Plan


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a run did: every operation's outcome, and why it stopped early, if it did."""

    run_id: str
    plan: Plan
    results: tuple[OperationResult, ...]
    started_at: str  # ISO 8601, UTC
    finished_at: str  # ISO 8601, UTC
    stopped: str = ""  # "" when the run went to the end; else the reason (circuit open, signal)

    def count(self, outcome: Outcome) -> int:
        """How many operations ended with `outcome`."""
        return sum(r.outcome is outcome for r in self.results)
