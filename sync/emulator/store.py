"""The emulator's state: persons and the history of applied operations, in SQLite behind one lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sync.models import PERSON_FIELDS, Person

__all__ = ["Event", "Store"]

_COLUMNS: Final = ", ".join(PERSON_FIELDS)
# Column names come from PERSON_FIELDS (constants), never from input: the f-strings below are safe.
_SELECT: Final = f"SELECT sync_key, {_COLUMNS} FROM persons"  # noqa: S608
_UPSERT: Final = (
    f"INSERT OR REPLACE INTO persons (sync_key, {_COLUMNS}) "  # noqa: S608
    f"VALUES (?, {', '.join('?' for _ in PERSON_FIELDS)})"
)
_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS persons (
    sync_key TEXT PRIMARY KEY,
    {", ".join(f"{name} TEXT NOT NULL DEFAULT ''" for name in PERSON_FIELDS)}
);
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
        """Remove a person; False when there was none."""
        with self._lock:
            return self._db.execute("DELETE FROM persons WHERE sync_key = ?", (sync_key,)).rowcount > 0

    def rename(self, old_key: str, new_key: str) -> None:
        """Move a person to a new sync key (the caller checked that `new_key` is free)."""
        with self._lock:
            self._db.execute("UPDATE persons SET sync_key = ? WHERE sync_key = ?", (new_key, old_key))

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
