"""Journal entries and answers as the executor hands them to the state store, for the snapshot tests."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync.models import Outcome, Status
from sync.state.journal import Answer, ItemAnswer, RequestItem, SentRequest
from sync.state.schema import DB_NAME

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def success(mid: str) -> Status:
    """A success status answering `mid`."""
    return Status(code_major="success", severity="status", message_id_ref=mid)


def sent_request(
    run_id: str,
    mid: str,
    *keys: str,
    operation: str = "createPerson",
    at: datetime = T0,
    new_key: str = "",
) -> SentRequest:
    """A first attempt of `operation` sent at `at`, one item per key in order (each renamed to `new_key`)."""
    return SentRequest(
        run_id=run_id,
        message_identifier=mid,
        operation=operation,
        attempt=1,
        sent_at=at,
        items=tuple(RequestItem(index=i, sync_key=key, new_sync_key=new_key) for i, key in enumerate(keys)),
    )


def confirmed(mid: str, at: datetime = T0) -> Answer:
    """A success answer to `mid` at `at`, confirming its first item."""
    status = success(mid)
    return Answer(
        message_identifier=mid,
        answered_at=at,
        status=status,
        outcome=Outcome.CONFIRMED,
        items=(ItemAnswer(index=0, status=status, outcome=Outcome.CONFIRMED),),
    )


def db_rows(state: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the database behind the store's back, as an operator's sqlite3 shell would."""
    connection = sqlite3.connect(state / DB_NAME)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()
