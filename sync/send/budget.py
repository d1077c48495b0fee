"""The in-flight budget: at most `limit` objects unanswered by IMS ES at any moment (itslearning asks
for fewer than 10).

A unit of work (one operation, or a batch for a mass request) takes its objects' share before its first
request and gives it back once its results are journalled and reported, as the scheduler counted it
before; but the unit waiting for the share waits in a worker of its own and starts the moment it is given
back, with no round trip through the scheduling thread (a future, a wake-up, a submit, another wake-up).
The workers outnumber the budget for that reason.

Pure threading: knows nothing of requests, IMS ES or the store.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Budget", "Share"]


class Budget:
    """Objects in flight, within `limit` (a request larger than the limit goes alone)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight budget must be at least 1")
        self.limit = limit
        self._in_flight = 0
        self._condition = threading.Condition()

    def take(self, objects: int) -> Share:
        """Wait until `objects` more fit in the budget (or nothing is in flight), and take them."""
        with self._condition:
            while self._in_flight and self._in_flight + objects > self.limit:
                self._condition.wait()
            self._in_flight += objects
        return Share(self, objects)

    def _give_back(self, objects: int) -> None:
        with self._condition:
            self._in_flight -= objects
            self._condition.notify_all()
        # Hand the GIL to the worker just woken, so that it sends its request now. Without this, the
        # giving thread keeps the GIL until it blocks or the switch interval (5 ms) ends.
        time.sleep(0)


class Share:
    """Objects taken from a budget; `give_back()` returns them (once, however often it is called)."""

    __slots__ = ("_budget", "_objects")

    def __init__(self, budget: Budget, objects: int) -> None:
        self._budget: Budget | None = budget
        self._objects = objects

    def give_back(self) -> None:
        """Return the objects to the budget (the unit is done, or was never started)."""
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back(self._objects)
