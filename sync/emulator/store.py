"""The emulator's state: persons, groups, memberships and the operations history, in SQLite behind a lock.

Storage only: imports no XML, HTTP or IMS ES semantics (the services decide; the store keeps).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Final

from sync.models import PERSON_FIELDS, Person, join_children, split_children

__all__ = ["Event", "Group", "Membership", "Store"]

_COLUMNS: Final = ", ".join(PERSON_FIELDS)
# Column names come from PERSON_FIELDS (constants), never from input: the f-strings below are safe.
_SELECT: Final = f"SELECT sync_key, {_COLUMNS} FROM persons"  # noqa: S608
_UPSERT: Final = (
    f"INSERT OR REPLACE INTO persons (sync_key, {_COLUMNS}) "  # noqa: S608
    f"VALUES (?, {', '.join('?' for _ in PERSON_FIELDS)})"
)
# A parent's children are one canonical string (sync.models.join_children): a key is one of them when
# ",key," is in ",children,".
_PARENTS: Final = (
    "SELECT sync_key FROM persons WHERE instr(',' || children || ',', ',' || ? || ',') > 0 ORDER BY sync_key"
)
_CHILDREN: Final = "SELECT children FROM persons WHERE sync_key = ?"
_SET_CHILDREN: Final = "UPDATE persons SET children = ? WHERE sync_key = ?"
_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS persons (
    sync_key TEXT PRIMARY KEY,
    {", ".join(f"{name} TEXT NOT NULL DEFAULT ''" for name in PERSON_FIELDS)}
);
CREATE TABLE IF NOT EXISTS groups (
    sync_key TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    type TEXT NOT NULL,
    level TEXT NOT NULL,
    parent TEXT NOT NULL,
    desc_short TEXT NOT NULL,
    desc_long TEXT NOT NULL,
    desc_full TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS groups_parent ON groups (parent);
CREATE TABLE IF NOT EXISTS memberships (
    sync_key TEXT PRIMARY KEY,
    group_key TEXT NOT NULL,
    person_key TEXT NOT NULL,
    role TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS memberships_group ON memberships (group_key);
CREATE INDEX IF NOT EXISTS memberships_person ON memberships (person_key);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    sync_key TEXT NOT NULL,
    new_key TEXT NOT NULL,
    message_identifier TEXT NOT NULL,
    code_major TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One operation the emulator decided (one item of a mass request), in the order it happened."""

    seq: int
    operation: str
    sync_key: str
    new_key: str
    message_identifier: str
    code_major: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """A group as the emulator holds it ("" means absent)."""

    sync_key: str
    scheme: str
    type: str
    level: str = ""
    parent: str = ""  # the sync key of the group related as Parent; "" for a top-level group
    desc_short: str = ""
    desc_long: str = ""
    desc_full: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    """A person's membership of a group, with the member's role (an IMS ES roletype).

    `active` is the role's IMS status flag: a deactivated membership is kept, with status false.
    """

    sync_key: str
    group_key: str
    person_key: str
    role: str
    active: bool = True


_GROUP_COLUMNS: Final = "sync_key, scheme, type, level, parent, desc_short, desc_long, desc_full"
_MEMBERSHIP_COLUMNS: Final = "sync_key, group_key, person_key, role, active"


class Store:
    """Persons (sync key + canonical fields; never a password) and the history.

    Every method takes the lock; `transaction()` holds it across several calls and commits once, so
    one request is applied atomically.
    """

    def __init__(self, path: Path | None = None) -> None:
        """Open (and create if needed) the state.

        Args:
            path: an SQLite file that survives restarts; None keeps the state in memory.
        """
        self._lock = threading.RLock()
        # One connection shared by the handler threads; the lock serialises every use of it.
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False, isolation_level=None
        )
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(memberships)")}
        if "active" not in columns:  # a state file written before memberships kept their status
            self._db.execute("ALTER TABLE memberships ADD COLUMN active INTEGER NOT NULL DEFAULT 1")
        # A state file written before persons had every field itslearning takes: add the missing ones.
        have = {row[1] for row in self._db.execute("PRAGMA table_info(persons)")}
        for name in PERSON_FIELDS:
            if name not in have:  # a constant of PERSON_FIELDS, never input
                self._db.execute(f"ALTER TABLE persons ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")
        self._depth = 0

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Hold the lock and apply everything inside as one SQLite transaction."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def get(self, sync_key: str) -> Person | None:
        """The person stored under `sync_key`, or None."""
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE sync_key = ?", (sync_key,)).fetchone()
        return None if row is None else _person(row)

    def put(self, person: Person) -> None:
        """Insert or overwrite a person."""
        values = person.values()
        with self._lock:
            self._db.execute(
                _UPSERT,
                (person.sync_key, *values.values()),
            )

    def delete(self, sync_key: str) -> bool:
        """Remove a person, the memberships that were theirs and their links to parents; False when there
        was none."""
        with self._lock:
            if self._db.execute("DELETE FROM persons WHERE sync_key = ?", (sync_key,)).rowcount == 0:
                return False
            self._db.execute("DELETE FROM memberships WHERE person_key = ?", (sync_key,))
            self._relink(sync_key, None)
            return True

    def rename(self, old_key: str, new_key: str) -> None:
        """Move a person to a new sync key, memberships and parents' links too (the caller checked that
        `new_key` is free)."""
        with self._lock:
            self._rename(old_key, new_key, ("persons", "sync_key"), ("memberships", "person_key"))
            self._relink(old_key, new_key)

    def parents(self, sync_key: str) -> tuple[str, ...]:
        """The sync keys of the persons whose children include `sync_key`, in key order."""
        with self._lock:
            rows = self._db.execute(_PARENTS, (sync_key,)).fetchall()
        return tuple(row[0] for row in rows)

    def _relink(self, old_key: str, new_key: str | None) -> None:
        """In every parent of `old_key`, name the child `new_key` instead (None: drop the link)."""
        for parent in self.parents(old_key):
            children = set(split_children(self._db.execute(_CHILDREN, (parent,)).fetchone()[0]))
            children.discard(old_key)
            if new_key is not None:
                children.add(new_key)
            self._db.execute(
                "UPDATE persons SET children = ? WHERE sync_key = ?", (join_children(children), parent)
            )

    # --- groups ------------------------------------------------------------------------------

    def get_group(self, sync_key: str) -> Group | None:
        """The group stored under `sync_key`, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_GROUP_COLUMNS} FROM groups WHERE sync_key = ?",  # noqa: S608  # constant columns
                (sync_key,),
            ).fetchone()
        return None if row is None else Group(**dict(zip(_GROUP_COLUMNS.split(", "), row, strict=True)))

    def put_group(self, group: Group) -> None:
        """Insert or overwrite a group."""
        self._upsert("groups", _GROUP_COLUMNS, astuple(group))

    def children(self, sync_key: str) -> list[str]:
        """The sync keys of the groups whose parent is `sync_key`, in key order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sync_key FROM groups WHERE parent = ? ORDER BY sync_key", (sync_key,)
            ).fetchall()
        return [row[0] for row in rows]

    def delete_group(self, sync_key: str) -> list[str]:
        """Remove a group (the caller checked it has no children) and its memberships; their keys."""
        with self._lock:
            gone = [
                row[0]
                for row in self._db.execute(
                    "SELECT sync_key FROM memberships WHERE group_key = ? ORDER BY sync_key", (sync_key,)
                )
            ]
            self._db.execute("DELETE FROM memberships WHERE group_key = ?", (sync_key,))
            self._db.execute("DELETE FROM groups WHERE sync_key = ?", (sync_key,))
        return gone

    def rename_group(self, old_key: str, new_key: str) -> None:
        """Move a group to a new sync key; its children and memberships follow (`new_key` is free)."""
        self._rename(
            old_key, new_key, ("groups", "sync_key"), ("groups", "parent"), ("memberships", "group_key")
        )

    def _rename(self, old_key: str, new_key: str, *columns: tuple[str, str]) -> None:
        """Replace `old_key` by `new_key` in each (table, column), in order, under the lock."""
        with self._lock:
            for table, column in columns:
                # Table and column names are the constants above, never input.
                self._db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (new_key, old_key))  # noqa: S608

    def groups(self) -> dict[str, Group]:
        """Every group, by sync key, in key order."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_GROUP_COLUMNS} FROM groups ORDER BY sync_key"  # noqa: S608  # constant columns
            ).fetchall()
        names = _GROUP_COLUMNS.split(", ")
        return {row[0]: Group(**dict(zip(names, row, strict=True))) for row in rows}

    # --- memberships -------------------------------------------------------------------------

    def get_membership(self, sync_key: str) -> Membership | None:
        """The membership stored under `sync_key`, or None."""
        found = self._memberships("WHERE sync_key = ?", (sync_key,))
        return found[0] if found else None

    def put_membership(self, membership: Membership) -> None:
        """Insert or overwrite a membership."""
        self._upsert("memberships", _MEMBERSHIP_COLUMNS, (*astuple(membership)[:-1], int(membership.active)))

    def _upsert(self, table: str, columns: str, values: tuple[object, ...]) -> None:
        """Insert or overwrite the row of `values`, one per column of `columns` (a constant, never input)."""
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({', '.join('?' for _ in values)})",  # noqa: S608
                values,
            )

    def delete_membership(self, sync_key: str) -> bool:
        """Remove a membership; False when there was none."""
        with self._lock:
            return self._db.execute("DELETE FROM memberships WHERE sync_key = ?", (sync_key,)).rowcount > 0

    def memberships(self, *, person: str | None = None, group: str | None = None) -> list[Membership]:
        """The memberships (of one person or one group, if given), in key order."""
        if person is not None:
            return self._memberships("WHERE person_key = ?", (person,))
        if group is not None:
            return self._memberships("WHERE group_key = ?", (group,))
        return self._memberships("", ())

    def _memberships(self, where: str, parameters: tuple[str, ...]) -> list[Membership]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships {where} ORDER BY sync_key",  # noqa: S608
                parameters,
            ).fetchall()
        return [
            Membership(sync_key=r[0], group_key=r[1], person_key=r[2], role=r[3], active=bool(r[4]))
            for r in rows
        ]

    def persons(self) -> dict[str, Person]:
        """Every person, by sync key, in key order."""
        with self._lock:
            rows = self._db.execute(f"{_SELECT} ORDER BY sync_key").fetchall()
        return {row[0]: _person(row) for row in rows}

    def page(self, offset: int, limit: int) -> list[Person]:
        """A slice of the persons in sync-key order."""
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT} ORDER BY sync_key LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [_person(row) for row in rows]

    def count(self) -> int:
        """How many persons are stored."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM persons").fetchone()[0])

    def record(self, events: Iterable[tuple[str, str, str, str, str]]) -> None:
        """Append (operation, sync_key, new_key, message_identifier, code_major) rows to the history."""
        with self._lock:
            self._db.executemany(
                "INSERT INTO history (operation, sync_key, new_key, message_identifier, code_major) "
                "VALUES (?, ?, ?, ?, ?)",
                list(events),
            )

    def history(self) -> list[Event]:
        """Every recorded event, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, operation, sync_key, new_key, message_identifier, code_major "
                "FROM history ORDER BY seq"
            ).fetchall()
        return [
            Event(
                seq=row[0],
                operation=row[1],
                sync_key=row[2],
                new_key=row[3],
                message_identifier=row[4],
                code_major=row[5],
            )
            for row in rows
        ]


def _person(row: tuple[str, ...]) -> Person:
    return Person.from_values(row[0], dict(zip(PERSON_FIELDS, row[1:], strict=True)))
