"""Adopt an existing itslearning site: build the snapshot from what IMS ES already holds.

Without this, the first run against a populated site would plan a create for everyone. Pages of
itslearning's readAllPersons are journalled like every request, and each page's persons enter the
snapshot in the same transaction as the answer that reported them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

import structlog

from sync.errors import RemoteError
from sync.models import Outcome, Person
from sync.snapshot import Answer, ItemAnswer, RequestItem, SentRequest, StateStore, Upsert
from sync.transport import Page, new_message_id

__all__ = ["MAX_PAGE_SIZE", "AdoptResult", "PageReader", "adopt"]

#: itslearning answers readAllPersons with at most 100 persons a page.
MAX_PAGE_SIZE: Final = 100

_log = structlog.get_logger("sync.adopt")


class PageReader(Protocol):
    """What adoption needs of an IMS ES client (`sync.transport.PersonClient` is one)."""

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


def _identity(person: Person, identity_field: str) -> str:
    """The identity value the diff matches on, when the service holds that field."""
    if not identity_field:
        return ""
    return str(getattr(person, identity_field, ""))


def adopt(
    client: PageReader,
    store: StateStore,
    *,
    run_id: str,
    identity_field: str = "username",
    page_size: int = MAX_PAGE_SIZE,
) -> AdoptResult:
    """Read every person the site holds, page by page, into the snapshot.

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
        mid = new_message_id()
        store.record_sent(
            SentRequest(
                run_id=run_id,
                message_identifier=mid,
                operation="readAllPersons",
                attempt=1,
                sent_at=datetime.now(UTC),
                items=(RequestItem(index=0, sync_key=f"page {page_index}"),),
            )
        )
        try:
            page = client.read_all_persons(page_index=page_index, page_size=page_size, message_id=mid)
        except RemoteError as exc:
            store.record_answer(
                Answer(
                    message_identifier=mid,
                    answered_at=datetime.now(UTC),
                    status=None,
                    outcome=Outcome.UNCONFIRMED,
                    error=str(exc),
                )
            )
            raise
        outcome = Outcome.CONFIRMED if page.status.ok else Outcome.REJECTED
        changes = [Upsert(person=p, identity=_identity(p, identity_field)) for p in page.persons]
        store.record_answer(
            Answer(
                message_identifier=mid,
                answered_at=datetime.now(UTC),
                status=page.status,
                outcome=outcome,
                items=(ItemAnswer(index=0, status=page.status, outcome=outcome),),
            ),
            changes if outcome is Outcome.CONFIRMED else (),
        )
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
