"""The snapshot tables: one description per kind (`persons`, `groups`, `memberships`), built from
`sync.models.kinds`, with the statements that read, count, seed and upsert it and its rows' content hash.

A snapshot table holds the kind's sync key, its identity value when the kind has one, and a column per
field (`Kind.columns`), then the row's content hash and what confirmed it (`confirmed_at`,
`message_identifier`). Its frame (what `StateStore.load` returns) has the same values under the field
names, the sync key as index. Each statement is built once per kind from that description; test_snapshot
and test_snapshot_groups check that they match the fields (round trips with a distinct value in every
column).

Pure: builds text and values; imports no I/O (neither sqlite3 nor files).
"""

# Statements here are built from the kinds' table and column names (constants of sync.models.kinds and
# this package, never input); every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import pandas as pd

from sync.models import KINDS, Kind, hashed_values
from sync.state.clock import iso, now

__all__ = ["SEP", "TABLES", "Table", "content_hash", "seed_rows", "table_of"]

SEP: Final = "\x1f"  # ASCII unit separator: what person_hash uses, and never in a sane roster value


@dataclass(frozen=True, slots=True, kw_only=True)
class _Storage:
    """What the store needs to know of a kind that `Kind` does not say (kept here, keyed by kind name)."""

    loading: str  # what a failed load names
    named: str  # how an error names one of them ("" for persons, whose messages came first)
    rowid: bool  # False: a WITHOUT ROWID table, read in sync key ranges
    defaults: Mapping[str, str] = field(default_factory=dict)  # seeding: a missing column's value ("")


# Memberships (small rows, up to millions) are stored WITHOUT ROWID, i.e. in sync key order, so that a
# load reads them sorted instead of sorting a million keys afterwards.
_STORAGE: Final[Mapping[str, _Storage]] = {
    "person": _Storage(loading="loading the snapshot", named="", rowid=True),
    "group": _Storage(loading="loading the groups", named="group ", rowid=True),
    "membership": _Storage(
        loading="loading the memberships", named="membership ", rowid=False, defaults={"active": "true"}
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """One snapshot table: its frame columns (sync key first) and the statements that read and seed it."""

    name: str
    columns: tuple[str, ...]  # the table's value columns, sync key first
    names: tuple[str, ...]  # the frame's columns, in `columns` order ("sync_key", "identity", fields)
    loading: str
    named: str
    defaults: Mapping[str, str]  # by frame column
    bounds_sql: str  # rowid tables: (min rowid, max rowid); key ranges: (min sync key,)
    select_sql: str
    upsert_sql: str  # columns, then content hash, confirmed_at, message_identifier
    count_sql: str
    exists_sql: str
    rename_sql: str  # (new sync key, confirmed_at, message_identifier, old sync key)
    later_fields: int = 0  # the last fields the content hash leaves out while empty (`Record.LATER_FIELDS`)
    # A WITHOUT ROWID table is read in sync key ranges: the next bound (low, rows) ("": rowid ranges).
    next_bound_sql: str = ""

    def packed_sql(self, columns: Sequence[str]) -> tuple[str, str]:
        """The packed read of `columns` (some of `columns`, in any order): (count, a packed blob per
        column) of a chunk, a rowid range [low, high] or a sync key range [low, high); and of the
        open-ended last sync key range [low, ...) ("" for rowid tables).

        One packed string per column and chunk: the column's values joined by the separator, a
        literal (char(31) would be a function call per value). One string per row (printf of the
        row's values) would leave every column to be gathered from between the others' values.
        """
        if not set(columns) <= set(self.columns):
            raise ValueError(f"{self.name} has no column {sorted(set(columns) - set(self.columns))}")
        blobs = ", ".join(f"CAST(group_concat({column}, '{SEP}') AS BLOB)" for column in columns)
        packed = f"SELECT count(*), {blobs} FROM {self.name} "
        if not self.next_bound_sql:
            return packed + "WHERE rowid BETWEEN ? AND ?", ""
        return packed + "WHERE sync_key >= ? AND sync_key < ?", packed + "WHERE sync_key >= ?"


_CONFIRMATION: Final = ("content_hash", "confirmed_at", "message_identifier")


def _table(kind: Kind) -> Table:
    storage, name = _STORAGE[kind.name], kind.table
    identity = ("identity",) if kind.identity else ()
    columns = ("sync_key", *identity, *kind.columns)
    listed = ", ".join(columns)
    stored = (*columns, *_CONFIRMATION)
    updates = ", ".join(f"{column} = excluded.{column}" for column in stored[1:])
    if storage.rowid:
        bounds_sql, next_bound_sql = f"SELECT min(rowid), max(rowid) FROM {name}", ""
    else:  # chunks are sync key ranges [low, high), the last one open-ended
        bounds_sql, next_bound_sql = (
            f"SELECT min(sync_key) FROM {name}",
            f"SELECT sync_key FROM {name} WHERE sync_key >= ? ORDER BY sync_key LIMIT 1 OFFSET ?",
        )
    return Table(
        name=name,
        columns=columns,
        names=("sync_key", *identity, *kind.fields),
        loading=storage.loading,
        named=storage.named,
        defaults=storage.defaults,
        bounds_sql=bounds_sql,
        select_sql=f"SELECT {listed} FROM {name}",
        upsert_sql=(
            f"INSERT INTO {name} ({', '.join(stored)}) VALUES ({', '.join('?' * len(stored))}) "
            f"ON CONFLICT (sync_key) DO UPDATE SET {updates}"
        ),
        count_sql=f"SELECT count(*) FROM {name}",
        exists_sql=f"SELECT 1 FROM {name} WHERE sync_key = ?",
        rename_sql=(
            f"UPDATE {name} SET sync_key = ?, confirmed_at = ?, message_identifier = ? WHERE sync_key = ?"
        ),
        next_bound_sql=next_bound_sql,
        later_fields=kind.record.LATER_FIELDS,
    )


#: Each kind's snapshot table, by kind name.
TABLES: Final[Mapping[str, Table]] = {kind.name: _table(kind) for kind in KINDS}


def table_of(kind: Kind) -> Table:
    """`kind`'s snapshot table."""
    return TABLES[kind.name]


def content_hash(values: Sequence[str], later: int = 0) -> str:
    """sha256 (hex) over `values`, each followed by the separator: `person_hash`'s scheme.

    Persons hash (identity, *PERSON_FIELDS) (equal to person_hash, without building a Person), groups
    (identity, *GROUP_FIELDS), memberships MEMBERSHIP_FIELDS: every value of a row but its sync key, in
    column order, but trailing empty values among the last `later` (`Table.later_fields`: fields added
    after the first snapshots, whose rows were hashed without them). person_hash feeds each value then a
    separator into sha256; one joined string is the same bytes.
    """
    return hashlib.sha256((SEP.join(hashed_values(values, later)) + SEP).encode("utf-8")).hexdigest()


def seed_rows(
    table: Table, frame: pd.DataFrame, *, caller: str, message_identifier: str
) -> Iterator[tuple[str, ...]]:
    """`table.upsert_sql`'s rows for a frame of `table`'s kind, in sync key order.

    `frame` is indexed by sync key (or has a "sync_key" column), its columns as `StateStore.load` returns
    them; missing ones (and missing values) are taken as "" (a membership's "active" as "true"). Nothing
    checks that the groups and persons a membership names exist. Other columns (a password) are ignored.

    Raises:
        ValueError: a sync key is empty or appears twice (named after `caller`).
    """
    if "sync_key" in frame.columns:
        frame = frame.set_index("sync_key")
    keys = [str(key) for key in frame.index]
    if any(not key for key in keys):
        raise ValueError(f"{caller}: every row needs a sync key")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{caller}: a sync key appears twice")
    n = len(keys)
    columns = []
    for name in table.names[1:]:
        default = table.defaults.get(name, "")
        columns.append(
            frame[name].fillna(default).astype(str).tolist() if name in frame.columns else [default] * n
        )
    confirmed_at = iso(now())
    # Inserted in key order, the table's B-tree pages fill up in order instead of being split at
    # random (a denser file, read faster); keys are unique, so the tuples compare by key alone.
    # Every snapshot table hashes all its values but the sync key, in column order.
    return (
        (key, *values, content_hash(values, table.later_fields), confirmed_at, message_identifier)
        for key, *values in sorted(zip(keys, *columns, strict=True))
    )
