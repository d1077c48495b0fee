"""What `verify --repair` recorded: each drifted object's snapshot change and a row of `drift_repairs`,
in one transaction, so that the next plan can say which of its operations come from drift.

A record is current while the snapshot still shows the repair: a `missing` object still absent, a
`changed` one still stamped with the read that saw it. Once a run confirms the operation that puts it
right, the record lapses by itself.

The functions read and write through a connection they are given, inside the caller's transaction;
`DriftRepairs` gives `StateStore` its methods over them.
"""

# Statements are built from the kinds' table names (constants); every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import contextlib
import sqlite3

from sync.models import kind_named
from sync.models.drift import RepairedDrift
from sync.state.changes import SnapshotChange, apply_change
from sync.state.clock import iso, now
from sync.state.tables import table_of

__all__ = ["DriftRepairs", "current_repairs", "record_repair"]


class DriftRepairs:
    """`StateStore`'s drift methods, over its transactions (a room of its own)."""

    def _transaction(
        self, what: str, *, bulk: bool = False
    ) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _reading(self, what: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def record_repair(self, repair: RepairedDrift, change: SnapshotChange) -> None:
        """Record one drifted object in the snapshot (`change`, stamped with the journalled read that
        saw it) and in the repairs the next plan shows, in one transaction.

        Raises:
            StateError: the database cannot be written; nothing is then.
        """
        with self._transaction(f"recording the drift of {repair.kind} {repair.sync_key}") as connection:
            record_repair(connection, repair, change, at=iso(now()))

    def repairs(self) -> list[RepairedDrift]:
        """The drift repairs the snapshot still shows (see `current_repairs`)."""
        with self._reading("reading the drift repairs") as connection:
            return current_repairs(connection)


def record_repair(
    connection: sqlite3.Connection, repair: RepairedDrift, change: SnapshotChange, *, at: str
) -> None:
    """Apply `change` stamped with the read that saw the drift, and record the repair."""
    apply_change(connection, change, confirmed_at=at, message_identifier=repair.message_identifier)
    connection.execute(
        "INSERT OR REPLACE INTO drift_repairs (kind, sync_key, drift, repaired_at, message_identifier) "
        "VALUES (?, ?, ?, ?, ?)",
        (repair.kind, repair.sync_key, repair.drift, at, repair.message_identifier),
    )


def current_repairs(connection: sqlite3.Connection) -> list[RepairedDrift]:
    """The repairs the snapshot still shows, by kind and sync key."""
    rows = connection.execute(
        "SELECT kind, sync_key, drift, message_identifier FROM drift_repairs ORDER BY kind, sync_key"
    ).fetchall()
    current = []
    for kind, sync_key, drift, mid in rows:
        table = table_of(kind_named(kind)).name
        held = connection.execute(
            f"SELECT message_identifier FROM {table} WHERE sync_key = ?", (sync_key,)
        ).fetchone()
        if (held is None) if drift == "missing" else (held is not None and held[0] == mid):
            current.append(RepairedDrift(kind=kind, sync_key=sync_key, drift=drift, message_identifier=mid))
    return current
