"""Adopt an existing itslearning site: build the snapshot from what IMS ES already holds.

Without this, the first run against a populated site would plan a create for everyone. Pages of
itslearning's readAllPersons are journalled like every request, and each page's persons enter the
snapshot in the same transaction as the answer that reported them.

Groups and memberships cannot be listed: they are found from the persons. `adopt_memberships` asks
readMembershipsForPerson for every person in the snapshot, then readGroup for every group those
memberships name and for their parents, up to the top. Each read is journalled and confirms its
records in the snapshot in the same transaction.

Talks to IMS ES only through the clients it is given (the protocols below) and to the state only
through `StateStore`: it imports no sqlite3 of its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import structlog

from sync.errors import RemoteError
from sync.ims.clients import Page
from sync.models import PERSON_FIELDS, PERSON_LATER_FIELDS, Group, Membership, Outcome, Person, Status
from sync.models.service import MAX_IN_FLIGHT
from sync.state.changes import SnapshotChange, Upsert
from sync.state.journal import Answer, ItemAnswer, RequestItem, SentRequest
from sync.state.store import StateStore

__all__ = [
    "MAX_PAGE_SIZE",
    "AdoptResult",
    "GroupAdoptResult",
    "GroupReader",
    "MembershipReader",
    "PageReader",
    "adopt",
    "adopt_memberships",
]

_T = TypeVar("_T")

#: itslearning answers readAllPersons with at most 100 persons a page.
MAX_PAGE_SIZE: Final = 100

_log = structlog.get_logger("sync.state.adopt")


class PageReader(Protocol):
    """What adoption needs of an IMS ES client (`sync.ims.clients.PersonClient` is one)."""

    def read_all_persons(
        self, *, page_index: int, page_size: int = 100, message_id: str | None = None
    ) -> Page:
        """One page of readAllPersons."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AdoptResult:
    """What adoption found."""

    persons: int
    pages: int
    reported_total: int


def _record_sent(store: StateStore, run_id: str, operation: str, key: str) -> str:
    """Journal a read about to go out (one item, `key`); its new messageIdentifier."""
    request = SentRequest.fresh(run_id, operation, (RequestItem(index=0, sync_key=key),))
    store.record_sent(request)
    return request.message_identifier


def _record_unanswered(store: StateStore, mid: str, exc: RemoteError) -> None:
    """Journal a read that got no trustworthy answer."""
    store.record_answer(
        Answer(
            message_identifier=mid,
            status=None,
            outcome=Outcome.UNCONFIRMED,
            error=str(exc),
        )
    )


def _record_answer(store: StateStore, mid: str, status: Status, changes: Sequence[SnapshotChange]) -> Outcome:
    """Journal a read's answer (its one item sharing it); what it confirmed enters the snapshot with it."""
    outcome = Outcome.CONFIRMED if status.ok else Outcome.REJECTED
    store.record_answer(
        Answer(
            message_identifier=mid,
            status=status,
            outcome=outcome,
            items=(ItemAnswer(index=0, status=status, outcome=outcome),),
        ),
        changes if outcome is Outcome.CONFIRMED else (),
    )
    return outcome


def _upsert(record: Person | Group, identity_field: str) -> Upsert:
    """`record` confirmed, with the identity value the diff matches on when the service holds that field."""
    return Upsert(record=record, identity=str(getattr(record, identity_field, "")) if identity_field else "")


def _unmapped_cleared(person: Person, mapped: Collection[str]) -> Person:
    """`person` with the later fields (`PERSON_LATER_FIELDS`) that are not `mapped` emptied."""
    cleared = {name: "" for name in PERSON_FIELDS[-PERSON_LATER_FIELDS:] if name not in mapped}
    return dataclasses.replace(person, **cleared)


def adopt(
    client: PageReader,
    store: StateStore,
    *,
    run_id: str,
    identity_field: str = "username",
    page_size: int = MAX_PAGE_SIZE,
    mapped: Collection[str] = (),
) -> AdoptResult:
    """Read every person the site holds, page by page, into the snapshot.

    Of the fields added after the first snapshots (`PERSON_LATER_FIELDS`: nickname, address, gender,
    children), only those in `mapped` (what the mapping reads) are adopted; the others are kept empty,
    as the roster has them, so that a mapping without them plans no change to what the site holds (a
    replacePerson would otherwise clear them, or drop the parent portal's links made by hand).

    Args:
        client: the IMS ES client (readAllPersons must be enabled for the integration).
        store: the state store, opened exclusively.
        run_id: the journal run the page requests belong to.
        identity_field: the canonical field that identifies a person across sync-key changes;
            an identity the service does not hold (e.g. a national id) is left empty.
        page_size: persons per page, 1 to 100.

    Raises:
        RemoteError: a page failed (the pages before it stay adopted: rerunning is safe).
        ValueError: page_size out of range.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}")
    page_index, pages, adopted, total = 0, 0, 0, 0
    while True:
        mid = _record_sent(store, run_id, "readAllPersons", f"page {page_index}")
        try:
            page = client.read_all_persons(page_index=page_index, page_size=page_size, message_id=mid)
        except RemoteError as exc:
            _record_unanswered(store, mid, exc)
            raise
        persons = [_unmapped_cleared(p, mapped) for p in page.persons]
        _record_answer(store, mid, page.status, [_upsert(p, identity_field) for p in persons])
        _log.info(
            "adopt_page",
            page_index=page_index,
            persons=len(page.persons),
            virtual_count=page.virtual_count,
            message_identifier=mid,
            message_id_ref=page.status.message_id_ref,
            code_major=page.status.code_major,
        )
        if not page.status.ok:
            raise RemoteError(
                f"readAllPersons page {page_index} failed: {page.status.code_major} "
                f"{page.status.description}".strip()
            )
        pages += 1
        adopted += len(page.persons)
        total = page.virtual_count
        page_index += 1
        if not page.persons or page_index >= math.ceil(total / page_size):
            break
    return AdoptResult(persons=adopted, pages=pages, reported_total=total)


class GroupReader(Protocol):
    """What group adoption needs of a GMS client (`sync.ims.clients.GroupClient` is one)."""

    def read_group(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Group | None]:
        """readGroup."""
        ...


class MembershipReader(Protocol):
    """What membership adoption needs of an MMS client (`sync.ims.clients.MembershipClient` is one)."""

    def read_memberships_for_person(
        self, person_key: str, *, message_id: str | None = None
    ) -> tuple[Status, list[Membership]]:
        """readMembershipsForPerson."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupAdoptResult:
    """What group and membership adoption found, and what it could not read."""

    memberships: int
    groups: int
    failed_reads: tuple[str, ...]  # "readGroup k: reason", for the operator to look at


def _journalled_read(
    store: StateStore,
    run_id: str,
    operation: str,
    key: str,
    call: Callable[[str], tuple[Status, _T]],
    changes: Callable[[_T], Sequence[SnapshotChange]],
) -> tuple[Status | None, _T | None, str]:
    """One read, journalled; confirmed records enter the snapshot with its answer. (status, value, error)."""
    mid = _record_sent(store, run_id, operation, key)
    try:
        status, value = call(mid)
    except RemoteError as exc:
        _record_unanswered(store, mid, exc)
        return None, None, str(exc)
    outcome = _record_answer(store, mid, status, changes(value) if status.ok else ())
    _log.info(
        "ims_request",
        operation=operation,
        sync_key=key,
        message_identifier=mid,
        message_id_ref=status.message_id_ref,
        code_major=status.code_major,
        outcome=outcome.value,
    )
    return (
        status,
        value if status.ok else None,
        "" if status.ok else f"{status.code_major} {status.description}",
    )


def adopt_memberships(
    groups: GroupReader,
    memberships: MembershipReader,
    store: StateStore,
    *,
    run_id: str,
    persons: Iterable[str],
    also_groups: Iterable[str] = (),
    group_identity_field: str = "",
    max_in_flight: int = MAX_IN_FLIGHT,
) -> GroupAdoptResult:
    """Read the memberships of `persons` and the groups they name (with their parents) into the snapshot.

    Args:
        groups, memberships: GMS and MMS clients of the site.
        store: the state store, opened exclusively.
        run_id: the journal run the reads belong to.
        persons: the sync keys of the persons whose memberships to read (the adopted persons).
        also_groups: groups to read even if no membership names them (e.g. the roster's groups: a
            school without members of its own is found no other way); unknown ones are skipped.
        group_identity_field: the group field the groups mapping uses as identity ("" when none or
            a field the service does not hold).
        max_in_flight: reads in flight at once (itslearning asks for fewer than 10).

    A read that fails is listed in the result and leaves its records out: the first run then plans
    to create them, which IMS ES answers as an update (createGroup and createMembership upsert).
    """
    failed: list[str] = []

    def membership_changes(found: list[Membership] | None) -> list[SnapshotChange]:
        return [Upsert(record=m) for m in found or ()]

    def group_changes(found: Group | None) -> list[SnapshotChange]:
        return [] if found is None else [_upsert(found, group_identity_field)]

    def read_memberships(key: str) -> list[Membership]:
        _, found, error = _journalled_read(
            store,
            run_id,
            "readMembershipsForPerson",
            key,
            lambda mid: memberships.read_memberships_for_person(key, message_id=mid),
            membership_changes,
        )
        if error:
            failed.append(f"readMembershipsForPerson {key}: {error}")
        return found or []

    optional = set(also_groups)

    def read_group(key: str) -> Group | None:
        status, found, error = _journalled_read(
            store, run_id, "readGroup", key, lambda mid: groups.read_group(key, message_id=mid), group_changes
        )
        if error and not (key in optional and status is not None):  # a roster group not yet created
            failed.append(f"readGroup {key}: {error}")
        return found

    adopted_memberships = 0
    wanted: set[str] = set(optional)
    with ThreadPoolExecutor(
        max_workers=max(1, min(max_in_flight, MAX_IN_FLIGHT)), thread_name_prefix="adopt"
    ) as pool:
        for found_memberships in pool.map(read_memberships, list(persons)):
            adopted_memberships += len(found_memberships)
            wanted.update(m.group for m in found_memberships)
        seen: set[str] = set()
        adopted_groups = 0
        while wanted - seen:
            batch = sorted(wanted - seen)
            seen.update(batch)
            for found_group in pool.map(read_group, batch):
                if found_group is not None:
                    adopted_groups += 1
                    if found_group.parent:
                        wanted.add(found_group.parent)
    return GroupAdoptResult(
        memberships=adopted_memberships, groups=adopted_groups, failed_reads=tuple(sorted(failed))
    )
