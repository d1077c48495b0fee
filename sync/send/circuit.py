"""When a run stops taking new work: the circuit breaker (consecutive transient failures), a stop
request (SIGTERM/Ctrl-C, the run's time limit), or a fatal error (credentials, certificate, a state
directory that cannot be written); and how the report says why.

Thread-safe; imports no I/O.
"""

from __future__ import annotations

import threading

from sync.errors import StateError, SyncError

__all__ = ["Circuit", "Halt", "StopRequest"]


class StopRequest(threading.Event):
    """A run's stop event that can say why it was set (`set()` alone: a signal)."""

    def __init__(self) -> None:
        super().__init__()
        self.why = ""

    def wait_between(self, seconds: float) -> None:
        """Sleep `seconds` between retries, or less when the run is stopped meanwhile."""
        self.wait(seconds)

    def request(self, why: str) -> None:
        """Stop taking new work because of `why` (the first reason given stands)."""
        if not self.is_set():
            self.why = why
        self.set()


class Circuit:
    """Counts consecutive transient failures across workers; opens at a threshold."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._failures = 0
        self._lock = threading.Lock()
        self.open = threading.Event()

    def success(self) -> None:
        with self._lock:
            self._failures = 0

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self.open.set()


class Halt:
    """Whether the run must stop taking new work; requests in flight finish."""

    def __init__(self, *, threshold: int, stop: threading.Event) -> None:
        self.circuit = Circuit(threshold)
        self.stop = stop
        self.fatal: SyncError | None = None
        self._fatal_lock = threading.Lock()

    def fatal_error(self, exc: SyncError) -> None:
        """Remember the first fatal error: the run stops."""
        with self._fatal_lock:
            self.fatal = self.fatal or exc

    def halted(self) -> bool:
        return self.stop.is_set() or self.circuit.open.is_set() or self.fatal is not None

    def reason(self) -> str:
        """Why the run stopped early ("" when it did not)."""
        if isinstance(self.fatal, StateError):  # the command ends with its message: say it once
            return "stopped: the state directory failed; nothing more was sent"
        if self.fatal is not None:
            return f"stopped: {self.fatal}"
        if self.circuit.open.is_set():
            return (
                f"circuit open: {self.circuit.threshold} consecutive transient failures; "
                "IMS ES looks unreachable"
            )
        if self.stop.is_set():
            return (isinstance(self.stop, StopRequest) and self.stop.why) or "stopped by signal"
        return ""
