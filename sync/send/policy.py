"""The executor's limits and its judgement of failures, as data: what is retried and what stops the run
("server busy" and "unknown object" are facts of a `Status`: sync.models.results).

Pure: imports no I/O (only the error and result types), so the rules can be read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sync.errors import AuthenticationError, CertificateError, RejectedError, RemoteError, TransientError
from sync.models import Outcome
from sync.models.service import MAX_IN_FLIGHT

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_SETTINGS",
    "FAILURES",
    "ExecutorSettings",
    "RetryPolicy",
    "Verdict",
    "judge_failure",
]


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

    max_in_flight: int = MAX_IN_FLIGHT  # objects unanswered at once (itslearning: fewer than 10)
    batch_size: int = 1  # objects per mass request (createPersons, createGroups, ...); 1 = single calls
    circuit_threshold: int = 20  # consecutive transient failures that open the circuit
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    deletes: bool = False  # execute deletions and deactivations (off by default: they are only listed)


DEFAULT_SETTINGS: Final = ExecutorSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What a failed call means for its request and for the run."""

    outcome: Outcome
    retry: bool = False  # worth trying again
    transient: bool = False  # counts towards opening the circuit
    fatal: bool = False  # stops the run: no later request can succeed either


#: How a call that raised is judged; the first matching type wins. Anything else is a bug in this
#: program: its request is journalled as unconfirmed (see `judge_failure`).
FAILURES: Final[tuple[tuple[type[Exception] | tuple[type[Exception], ...], Verdict], ...]] = (
    (TransientError, Verdict(outcome=Outcome.UNCONFIRMED, retry=True, transient=True)),
    ((AuthenticationError, CertificateError), Verdict(outcome=Outcome.UNCONFIRMED, fatal=True)),
    (RejectedError, Verdict(outcome=Outcome.REJECTED)),
    (RemoteError, Verdict(outcome=Outcome.UNCONFIRMED)),  # ProtocolError: an answer we cannot trust
)


def judge_failure(exc: Exception) -> Verdict | None:
    """The verdict on a call that raised `exc`, or None when `exc` is no IMS ES failure (a bug)."""
    for types, verdict in FAILURES:
        if isinstance(exc, types):
            return verdict
    return None
