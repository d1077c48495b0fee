"""Snapshot changes and how they apply: `Upsert`, `Rename` and `Remove` of any kind, with the cascades
IMS ES applies, driven by the kinds' references (`Kind.references`).

Renaming an object moves what refers to it (a group's children, a person's or group's memberships) to
its new sync key; removing one removes what goes with it (its memberships) and leaves the rest (a
group's children: IMS ES refuses to delete a group with children, so a confirmed delete means they were
deleted first). A moved row is rehashed (what it refers to is part of its content) and stamped with the
confirming answer.

Applies changes through a connection it is given, inside the caller's transaction (sync.state.journal
applies them with the answer that confirmed them); never commits.
"""

# Statements here are built from the kinds' table and column names (constants of sync.models.kinds and
# this package, never input); every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias, assert_never

from sync.errors import StateError
from sync.models import KINDS, KindName, Record, kind_of
from sync.state.tables import TABLES, Table, content_hash

__all__ = ["Remove", "Rename", "SnapshotChange", "Upsert", "apply_change"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Upsert:
    """Confirmed: IMS ES holds `record` (created or updated), a person or group with this identity value."""

    record: Record
    identity: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rename:
    """Confirmed: IMS ES moved an object of `kind` from sync key `old_id` to `new_id`; what refers to it
    (a group's children, a person's or group's memberships) follows."""

    kind: KindName
    old_id: str
    new_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Remove:
    """Confirmed: IMS ES no longer holds the object of `kind` with this sync key (nor its memberships)."""

    kind: KindName
    sync_key: str


SnapshotChange: TypeAlias = Upsert | Rename | Remove

_Confirmation: TypeAlias = tuple[str, str]  # (confirmed_at, message_identifier) of a change


@dataclass(frozen=True, slots=True, kw_only=True)
class _Move:
    """Moving the rows of `table` that refer to a renamed object: the rows (sync key, then the values the
    content hash covers) and the update (new reference, content hash, confirmation, sync key)."""

    select_sql: str
    update_sql: str
    position: int  # the reference's position among the hashed values
    later_fields: int  # the table's `later_fields` (what the content hash leaves out while empty)


def _move(table: Table, column: str) -> _Move:
    hashed = table.columns[1:]
    return _Move(
        select_sql=f"SELECT sync_key, {', '.join(hashed)} FROM {table.name} WHERE {column} = ?",
        update_sql=(
            f"UPDATE {table.name} SET {column} = ?, content_hash = ?, confirmed_at = ?, "
            "message_identifier = ? WHERE sync_key = ?"
        ),
        position=hashed.index(column),
        later_fields=table.later_fields,
    )


# What follows a rename of each kind (in KINDS order: a group's children, then memberships) and what a
# removal deletes (the row, then what goes with it), from every kind's references to it.
_MOVES: Final[Mapping[str, tuple[_Move, ...]]] = {
    kind.name: tuple(
        _move(TABLES[other.name], reference.column)
        for other in KINDS
        for reference in other.references
        if reference.kind == kind.name
    )
    for kind in KINDS
}
_REMOVE_SQL: Final[Mapping[str, tuple[str, ...]]] = {
    kind.name: (
        f"DELETE FROM {kind.table} WHERE sync_key = ?",
        *(
            f"DELETE FROM {other.table} WHERE {reference.column} = ?"
            for other in KINDS
            for reference in other.references
            if reference.kind == kind.name and reference.go_with_it
        ),
    )
    for kind in KINDS
}


def apply_change(
    connection: sqlite3.Connection, change: SnapshotChange, *, confirmed_at: str, message_identifier: str
) -> None:
    """Apply one confirmed change, stamped with the answer that confirmed it.

    Raises:
        StateError: a Rename whose old id is missing or whose new id exists.
    """
    confirmation = (confirmed_at, message_identifier)
    match change:
        case Upsert(record=record, identity=identity):
            kind = kind_of(record)
            values = (*((identity,) if kind.identity else ()), *record.values().values())
            table = TABLES[kind.name]
            connection.execute(
                table.upsert_sql,
                (record.sync_key, *values, content_hash(values, table.later_fields), *confirmation),
            )
        case Rename(kind=kind_name, old_id=old_id, new_id=new_id):
            _rename(connection, TABLES[kind_name], old_id, new_id, confirmation)
            for move in _MOVES[kind_name]:
                _move_references(connection, move, old_id, new_id, confirmation)
        case Remove(kind=kind_name, sync_key=sync_key):
            # Removing a key the snapshot lacks is a no-op: IMS ES and the snapshot agree it is gone.
            # A group's child groups stay: IMS ES refuses to delete a group with children, so a
            # confirmed delete means the executor deleted (and the snapshot removed) them first.
            for sql in _REMOVE_SQL[kind_name]:
                connection.execute(sql, (sync_key,))
        case _:
            assert_never(change)


def _rename(
    connection: sqlite3.Connection, table: Table, old_id: str, new_id: str, confirmation: _Confirmation
) -> None:
    """Move a person's, group's or membership's row to `new_id`; never onto an existing row (that would
    merge two)."""
    label = table.named
    if connection.execute(table.exists_sql, (new_id,)).fetchone():
        raise StateError(
            f"cannot rename {label}{old_id!r} to {new_id!r} in the snapshot: {new_id!r} exists already"
        )
    if connection.execute(table.rename_sql, (new_id, *confirmation, old_id)).rowcount == 0:
        raise StateError(f"cannot rename {label}{old_id!r} to {new_id!r}: {old_id!r} is not in the snapshot")


def _move_references(
    connection: sqlite3.Connection, move: _Move, old_id: str, new_id: str, confirmation: _Confirmation
) -> None:
    """Point the rows referring to `old_id` at `new_id`, as IMS ES carries them along.

    Each moved row is rehashed and stamped with the confirming answer. Rows already pointing at `new_id`
    (the snapshot lacked that person or group) stay: they are distinct rows, nothing is merged.
    """
    moved = []
    for sync_key, *values in connection.execute(move.select_sql, (old_id,)).fetchall():
        values[move.position] = new_id
        moved.append((new_id, content_hash(values, move.later_fields), *confirmation, sync_key))
    connection.executemany(move.update_sql, moved)
