"""One logical IMS ES call, retried with tenacity: each attempt its own request with a fresh
messageIdentifier, journalled as sent before it goes out and answered after (with the snapshot change
it confirms), logged as `ims_request`, its failure judged by `sync.send.policy`.

Talks to IMS ES only through the call it is given, and records through the StateStore.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from sync.errors import RemoteError, UnmatchedAnswerError
from sync.models import Outcome, Status
from sync.send.circuit import Halt
from sync.send.policy import RetryPolicy, judge_failure
from sync.state.changes import SnapshotChange
from sync.state.journal import Answer, ItemAnswer, RequestItem, SentRequest
from sync.state.store import StateStore

__all__ = ["Aborted", "Sender", "Step", "is_unknown_answer", "one"]

_T = TypeVar("_T")


class Aborted(Exception):
    """The run stopped (circuit open, signal, fatal error) before this request was sent."""


class _Retry(Exception):
    """Internal: the attempt failed transiently; tenacity decides whether to try again."""


@dataclass(slots=True)
class Step:
    """The outcome of one step (one logical IMS ES call, retried as needed)."""

    outcome: Outcome
    status: Status | None = None
    message_identifier: str = ""
    error: str = ""
    attempts: int = 0
    retry: bool = False


def one(sync_key: str) -> tuple[RequestItem, ...]:
    """The items of a request for one object."""
    return (RequestItem(index=0, sync_key=sync_key),)


def is_unknown_answer(step: Step) -> bool:
    """IMS ES answered "unknown object" (failure/unknownobject) to this step."""
    return step.outcome is Outcome.REJECTED and step.status is not None and step.status.unknown_object


@dataclass(frozen=True, slots=True, kw_only=True)
class Sender:
    """Sends requests for the workers: retries, journal, log, and the circuit and fatal errors they feed.

    Args:
        store: the state store of this run (journal + snapshot).
        run_id: the journal's run id.
        policy: how transient failures are retried.
        sleep: how to wait between retries.
        halt: the run's stop conditions (fed by failures, consulted before each attempt).
        log: the run's logger.
    """

    store: StateStore
    run_id: str
    policy: RetryPolicy
    sleep: Callable[[float], None]
    halt: Halt
    log: Any

    def step(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        call: Callable[[str], Status],
        changes: Callable[[], list[SnapshotChange]],
    ) -> Step:
        """`call(message_id)` until it needs no retry; its snapshot `changes` recorded when confirmed.

        Raises:
            Aborted: the run halted before the first attempt.
        """
        return self.retried(
            operation,
            items,
            lambda attempt: self._attempt(operation, items, call, changes, attempt),
            lambda last: last.error if last.retry else None,
        )

    def retried(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        attempt: Callable[[int], _T],
        retry: Callable[[_T], str | None],
    ) -> _T:
        """`attempt(1)`, `attempt(2)`, ... while `retry(last)` gives an error text, the policy allows
        and the run goes on; the last attempt's outcome stands.

        Raises:
            Aborted: the run halted before the first attempt.
        """
        last: list[_T] = []
        try:
            for state in self._retrying(operation, items):
                with state:
                    if self.halt.halted():
                        if not last:
                            raise Aborted
                        return last[-1]
                    last.append(attempt(len(last) + 1))
                    error = retry(last[-1])
                    if error is not None and not self.halt.halted():
                        raise _Retry(error)
        except _Retry:
            pass  # attempts or time exhausted: the last attempt's record stands (unconfirmed)
        return last[-1]

    def _retrying(self, operation: str, items: tuple[RequestItem, ...]) -> Retrying:
        policy = self.policy
        return Retrying(
            sleep=self.sleep,
            stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_seconds),
            wait=wait_exponential_jitter(
                multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
            ),
            retry=retry_if_exception_type(_Retry),
            before_sleep=self._log_retry(operation, items),
            reraise=True,
        )

    def journal_sent(self, operation: str, items: tuple[RequestItem, ...], attempt: int) -> str:
        """Journal a request as sent, before it goes out; returns its fresh messageIdentifier."""
        request = SentRequest.fresh(self.run_id, operation, items, attempt)
        self.store.record_sent(request)
        return request.message_identifier

    def _attempt(
        self,
        operation: str,
        items: tuple[RequestItem, ...],
        call: Callable[[str], Status],
        changes: Callable[[], list[SnapshotChange]],
        attempt: int,
    ) -> Step:
        mid = self.journal_sent(operation, items, attempt)
        started = time.perf_counter()
        status: Status | None = None
        error = ""
        retry = False
        heard: Status | None = None  # an answer to another request: journalled, trusted for nothing
        try:
            status = call(mid)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and journalled
            error, outcome, retry = self.call_failed(exc, operation, mid)
            if isinstance(exc, UnmatchedAnswerError):
                heard = exc.status
        else:
            outcome, retry, error = self._judge(status)
        journalled = status or heard
        answer = Answer(
            message_identifier=mid,
            status=journalled,
            outcome=outcome,
            error=error,
            items=tuple(ItemAnswer(index=item.index, status=journalled, outcome=outcome) for item in items),
        )
        self.store.record_answer(answer, changes() if outcome is Outcome.CONFIRMED else ())
        self.log.info(
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
        return Step(
            outcome=outcome, status=status, message_identifier=mid, error=error, attempts=attempt, retry=retry
        )

    def _judge(self, status: Status) -> tuple[Outcome, bool, str]:
        """An answer's (outcome, retry?, error text); feeds the circuit."""
        if status.ok:
            self.halt.circuit.success()
            return Outcome.CONFIRMED, False, ""
        if status.busy:
            self.halt.circuit.failure()
            return Outcome.UNCONFIRMED, True, "IMS ES answered: server busy"
        self.halt.circuit.success()
        return Outcome.REJECTED, False, ""

    def call_failed(self, exc: Exception, operation: str, mid: str) -> tuple[str, Outcome, bool]:
        """Classify a failed call: (error text, outcome, retry?). Feeds the circuit; records fatal errors."""
        verdict = judge_failure(exc)
        if verdict is None:
            # A bug must not lose the journal's record of this request: record it as unconfirmed.
            self.log.exception("ims_request_crashed", operation=operation, message_identifier=mid)
            return f"internal error: {type(exc).__name__}: {exc}", Outcome.UNCONFIRMED, False
        if verdict.transient:
            self.halt.circuit.failure()
        if verdict.fatal and isinstance(exc, RemoteError):
            self.halt.fatal_error(exc)
        return str(exc), verdict.outcome, verdict.retry

    def _log_retry(self, operation: str, items: tuple[RequestItem, ...]) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            wait_s = state.next_action.sleep if state.next_action else 0.0
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning(
                "ims_retry",
                operation=operation,
                sync_key=items[0].sync_key if items else "",
                attempt=state.attempt_number,
                wait_s=round(wait_s, 2),
                error=str(exc) if exc else None,
            )

        return before_sleep
