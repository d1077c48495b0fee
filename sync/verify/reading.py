"""The reads of `verify`: what IMS ES holds for given sync keys, within the in-flight budget, journalled.

Each request is journalled as sent (a fresh messageIdentifier, committed before it goes out), then with
its answer (the messageIdRef the clients checked, each item's status), as a run's requests are; the
journal's run is the verify's. Objects in flight: a readPersons or readAllPersons request counts its ids
or page size, any other read one; workers x objects per request never exceed `max_in_flight`. A
transient fault is retried (`attempts`, growing waits); as many transient failures in a row as the budget
holds end the check (`CircuitOpenError`: exit 4), and so does a service that refuses our credentials or
certificate (its `sync.errors` class: exit 2).

Imports the IMS ES clients and the state store's journal; never the executor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sync.errors import CircuitOpenError, TransientError
from sync.ims.clients import GroupClient, MembershipClient, Page, PersonClient
from sync.models import Outcome, Record, Status
from sync.models.service import MAX_IN_FLIGHT
from sync.state.journal import Answer, ItemAnswer, RequestItem, SentRequest
from sync.state.store import StateStore
from sync.verify.compare import Values

__all__ = ["Budget", "Reader", "Unverified"]

_T = TypeVar("_T")
_FIRST_WAIT_S: Final = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Objects in flight at once, objects per batched request, tries per request."""

    max_in_flight: int = MAX_IN_FLIGHT
    batch_size: int = 10
    attempts: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Unverified:
    """An object whose read failed for another reason than "unknown object": not compared."""

    kind: str
    sync_key: str
    reason: str


def _values(record: Record | None) -> Values | None:
    return None if record is None else record.values()


def _chunks(keys: Sequence[str], size: int) -> list[Sequence[str]]:
    return [keys[i : i + size] for i in range(0, len(keys), size)]


class Reader:
    """Reads for one verify: journalled in `run_id`, within `budget`.

    `unverified` collects the objects whose reads failed about the data (not "unknown object").
    """

    def __init__(
        self,
        *,
        store: StateStore,
        run_id: str,
        persons: PersonClient,
        groups: GroupClient | None,
        memberships: MembershipClient | None,
        budget: Budget,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._persons = persons
        self._groups = groups
        self._memberships = memberships
        self._budget = budget
        self._sleep = sleep
        self.unverified: list[Unverified] = []
        self.requests = 0
        #: The messageIdentifier of the read that answered for each (kind, sync key) read; a group's
        #: readMembershipsForGroup under ("memberships of", group key).
        self.seen: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._streak = 0  # transient failures in a row
        self._unreachable: TransientError | None = None  # set: no more reads are sent

    # --- what verify asks for ----------------------------------------------------------------------

    def persons(self, keys: Sequence[str]) -> dict[str, Values | None]:
        """readPersons in batches: each key's person, or None when IMS ES does not know it."""
        batches = _chunks(keys, self._budget.batch_size)
        found: dict[str, Values | None] = {}
        for part in self._parallel(self._read_persons, batches, self._budget.batch_size):
            found.update(part)
        return found

    def all_persons(self) -> tuple[set[str], Status | None]:
        """readAllPersons, page after page: every sync key IMS ES holds, and the failed status (if a
        page was refused, e.g. readAllPersons not enabled for the integration)."""
        size = min(self._budget.batch_size, self._budget.max_in_flight, 100)
        keys: set[str] = set()
        index, total = 0, None
        while total is None or index * size < total:
            page, _mid = self._journalled("readAllPersons", [], self._page(index, size), _page_status)
            if not page.status.ok:
                return keys, page.status
            keys.update(person.sync_key for person in page.persons)
            total = page.virtual_count
            if not page.persons:
                break
            index += 1
        return keys, None

    def _page(self, index: int, size: int) -> Callable[[str], Page]:
        return lambda mid: self._persons.read_all_persons(page_index=index, page_size=size, message_id=mid)

    def groups(self, keys: Sequence[str]) -> dict[str, Values | None]:
        """readGroup of each key."""
        assert self._groups is not None
        return self._singles("group", "readGroup", self._groups.read_group, keys)

    def memberships(self, keys: Sequence[str]) -> dict[str, Values | None]:
        """readMembership of each key (a sample's: a whole check reads them by group)."""
        assert self._memberships is not None
        return self._singles("membership", "readMembership", self._memberships.read_membership, keys)

    def memberships_in(self, group_keys: Sequence[str]) -> dict[str, Values]:
        """readMembershipsForGroup of each group: every membership IMS ES holds in them, by sync key.
        A group IMS ES does not know holds none."""
        client = self._memberships
        assert client is not None

        def read(key: str) -> list[Record]:
            (status, found), mid = self._journalled(
                "readMembershipsForGroup",
                [key],
                lambda mid: client.read_memberships_for_group(key, message_id=mid),
                lambda answer: (answer[0], ()),
            )
            if not status.ok and not status.unknown_object:
                self.unverified.append(Unverified(kind="group", sync_key=key, reason=_reason(status)))
            self.seen["memberships of", key] = mid
            for record in found:
                self.seen["membership", record.sync_key] = mid
            return list(found)

        held: dict[str, Values] = {}
        for records in self._parallel(read, group_keys, 1):
            held.update((record.sync_key, record.values()) for record in records)
        return held

    # --- plumbing ------------------------------------------------------------------------------------

    def _read_persons(self, keys: Sequence[str]) -> dict[str, Values | None]:
        (reply, persons), mid = self._journalled(
            "readPersons",
            keys,
            lambda mid: self._persons.read_persons(keys, message_id=mid),
            lambda answer: (answer[0].status, answer[0].items),
        )
        found: dict[str, Values | None] = {}
        for key, status, person in zip(keys, reply.items, persons, strict=True):
            if status.ok or status.unknown_object:
                found[key] = _values(person)
                self.seen["person", key] = mid
            else:
                self.unverified.append(Unverified(kind="person", sync_key=key, reason=_reason(status)))
        return found

    def _singles(
        self,
        kind: str,
        operation: str,
        read: Callable[..., tuple[Status, Record | None]],
        keys: Sequence[str],
    ) -> dict[str, Values | None]:
        def one(key: str) -> tuple[str, Values | None] | None:
            (status, record), mid = self._journalled(
                operation, [key], lambda mid: read(key, message_id=mid), lambda answer: (answer[0], ())
            )
            if status.ok or status.unknown_object:
                self.seen[kind, key] = mid
                return key, _values(record)
            self.unverified.append(Unverified(kind=kind, sync_key=key, reason=_reason(status)))
            return None

        return dict(found for found in self._parallel(one, keys, 1) if found is not None)

    def _parallel(self, work: Callable[[Any], _T], units: Iterable[Any], objects: int) -> list[_T]:
        """`work` of each unit on workers enough to keep `objects`-object units within the budget."""
        workers = max(1, self._budget.max_in_flight // max(objects, 1))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        try:
            return list(pool.map(work, units))
        finally:
            # A read that failed for good (service gone) ends the check now: what is queued is dropped.
            pool.shutdown(wait=True, cancel_futures=True)

    def _journalled(
        self,
        operation: str,
        keys: Sequence[str],
        call: Callable[[str], _T],
        statuses: Callable[[_T], tuple[Status, tuple[Status, ...]]],
    ) -> tuple[_T, str]:
        """`call(message_id)`, journalled as one request of `keys`; transient faults retried; the
        answer and the messageIdentifier of the try that got it.

        Raises:
            RemoteError: the last try's fault (transient or not), once journalled.
        """
        items = tuple(RequestItem(index=i, sync_key=key) for i, key in enumerate(keys))
        for attempt in range(1, self._budget.attempts + 1):
            if self._unreachable is not None:
                raise CircuitOpenError(
                    f"reads stopped after {self._budget.max_in_flight} failures in a row: {self._unreachable}"
                )
            request = SentRequest.fresh(self._run_id, operation, items, attempt)
            self._store.record_sent(request)
            mid = request.message_identifier
            self.requests += 1
            try:
                answer = call(mid)
            except TransientError as exc:
                self._record(mid, None, (), Outcome.UNCONFIRMED, str(exc))
                if self._failed_in_a_row(exc) or attempt == self._budget.attempts:
                    raise
                self._sleep(_FIRST_WAIT_S * 2 ** (attempt - 1))
                continue
            except Exception as exc:
                self._record(mid, None, (), Outcome.UNCONFIRMED, f"{type(exc).__name__}: {exc}")
                raise
            self._streak = 0
            status, item_statuses = statuses(answer)
            # As for a mass write: the request is confirmed when any of its items is (the snapshot
            # may then be stamped with it by a repair); each item keeps its own outcome.
            ok = any(item.ok for item in item_statuses) if item_statuses else status.ok
            self._record(mid, status, item_statuses, Outcome.CONFIRMED if ok else Outcome.REJECTED, "")
            return answer, mid
        raise AssertionError("unreachable")  # pragma: no cover

    def _failed_in_a_row(self, exc: TransientError) -> bool:
        """Count a transient failure; True (and every later read refused) once as many reads in a row
        failed as the budget holds: the service is gone, and the check ends instead of waiting on it."""
        with self._lock:
            self._streak += 1
            if self._streak >= self._budget.max_in_flight and self._unreachable is None:
                self._unreachable = exc
            return self._unreachable is not None

    def _record(
        self, mid: str, status: Status | None, items: tuple[Status, ...], outcome: Outcome, error: str
    ) -> None:
        answers = tuple(
            ItemAnswer(index=i, status=item, outcome=Outcome.CONFIRMED if item.ok else Outcome.REJECTED)
            for i, item in enumerate(items)
        )
        self._store.record_answer(
            Answer(
                message_identifier=mid,
                status=status,
                outcome=outcome,
                error=error,
                items=answers,
            )
        )


def _page_status(page: Page) -> tuple[Status, tuple[Status, ...]]:
    return page.status, ()


def _reason(status: Status) -> str:
    minor = ", ".join(f"{name}={value}" for name, value in status.code_minor)
    return (
        f"IMS ES answered {status.code_major}"
        + (f" ({minor})" if minor else "")
        + (f": {status.description}" if status.description else "")
    )
