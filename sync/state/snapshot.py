"""The state store: the snapshot of what IMS ES confirmed and the journal of every request, in SQLite.

A state directory holds `state.sqlite3`, a run lock (`state.lock`) and, while a run holds the lock,
`state.lock.info` naming that run's pid and start time. The database has two halves:

- the **journal** (`runs`, `requests`, `request_items`): every request is written as *sent* and
  committed before it goes out, then updated with its answer;
- the **snapshot** (`persons`, `groups`, `memberships`): one row per person, group and membership IMS ES
  confirmed. A snapshot row changes only in the same transaction as the journal answer that confirmed
  it, so a run killed at any moment leaves the two consistent: requests sent but never answered stay
  visible as "unanswered" and the next run re-diffs. Changes cascade as they do in IMS ES: removing a
  person or a group removes its memberships; renaming one moves its memberships (and a group's children).

Loading the snapshot is what a plan of a million people waits on, so the state directory may also hold
`persons.arrow` and `memberships.arrow`, derived Arrow IPC copies of the persons and memberships tables
(their frame columns only). They are caches, never a source of truth: every change to a table bumps its
own generation counter (and a random nonce) in the same transaction, by SQLite triggers, and a cache is
used only when its stamp equals the database's; a missing, stale, foreign or unreadable cache is ignored
and rebuilt from SQLite (on load, and when a run that changed the table closes the store). Groups (a few
thousand rows) have no cache: they load straight from SQLite.

No password is stored anywhere: the schema has no column for one and `Person` cannot carry one.
This is the only module of the sync engine that imports sqlite3; its errors become `StateError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, TypedDict, assert_never

import filelock
import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.ipc  # type: ignore[import-untyped]  # makes pa.ipc available

from sync.errors import StateError, StateLockedError
from sync.models import (
    GROUP_FIELDS,
    MEMBERSHIP_FIELDS,
    PERSON_FIELDS,
    KindName,
    Outcome,
    Record,
    Status,
    kind_of,
)

__all__ = [
    "CACHE_NAME",
    "DB_NAME",
    "LOCK_INFO_NAME",
    "LOCK_NAME",
    "MEMBERSHIPS_CACHE_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Answer",
    "ItemAnswer",
    "JournalEntry",
    "JournalItemRow",
    "Remove",
    "Rename",
    "RequestItem",
    "RunInfo",
    "SentRequest",
    "SnapshotChange",
    "StateStore",
    "Upsert",
]

DB_NAME: Final = "state.sqlite3"
LOCK_NAME: Final = "state.lock"
LOCK_INFO_NAME: Final = "state.lock.info"
#: The derived Arrow IPC copy of the persons table (see the module docstring).
CACHE_NAME: Final = "persons.arrow"
#: The derived Arrow IPC copy of the memberships table (see the module docstring).
MEMBERSHIPS_CACHE_NAME: Final = "memberships.arrow"

#: Schema migrations, applied in order; migration i takes the database from user_version i to i + 1.
#: Never edit a released migration: append a new one.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        command     TEXT NOT NULL,
        roster      TEXT NOT NULL DEFAULT '',
        mapping     TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL DEFAULT 'running',
        summary     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE requests (
        message_identifier TEXT PRIMARY KEY,
        run_id          TEXT NOT NULL REFERENCES runs (run_id),
        operation       TEXT NOT NULL,
        attempt         INTEGER NOT NULL,
        sent_at         TEXT NOT NULL,
        answered_at     TEXT,
        message_id_ref  TEXT,
        code_major      TEXT,
        severity        TEXT,
        code_minor      TEXT NOT NULL DEFAULT '[]',
        description     TEXT NOT NULL DEFAULT '',
        outcome         TEXT NOT NULL DEFAULT 'sent',
        error           TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX requests_run_id ON requests (run_id, sent_at);
    CREATE TABLE request_items (
        message_identifier TEXT NOT NULL REFERENCES requests (message_identifier) ON DELETE CASCADE,
        item_index      INTEGER NOT NULL,
        sync_key        TEXT NOT NULL,
        new_sync_key    TEXT NOT NULL DEFAULT '',
        message_id_ref  TEXT,
        code_major      TEXT,
        severity        TEXT,
        code_minor      TEXT NOT NULL DEFAULT '[]',
        description     TEXT NOT NULL DEFAULT '',
        outcome         TEXT NOT NULL DEFAULT 'sent',
        PRIMARY KEY (message_identifier, item_index)
    ) WITHOUT ROWID;
    CREATE INDEX request_items_sync_key ON request_items (sync_key);
    CREATE TABLE persons (
        sync_key            TEXT PRIMARY KEY,
        identity            TEXT NOT NULL DEFAULT '',
        username            TEXT NOT NULL DEFAULT '',
        given_name          TEXT NOT NULL DEFAULT '',
        family_name         TEXT NOT NULL DEFAULT '',
        email               TEXT NOT NULL DEFAULT '',
        role                TEXT NOT NULL DEFAULT '',
        birth_date          TEXT NOT NULL DEFAULT '',
        phone               TEXT NOT NULL DEFAULT '',
        mobile              TEXT NOT NULL DEFAULT '',
        content_hash        TEXT NOT NULL,
        confirmed_at        TEXT NOT NULL,
        message_identifier  TEXT NOT NULL
    );
    CREATE INDEX persons_identity ON persons (identity);
    """,
    # The snapshot's generation: bumped by triggers in the very transaction that changes a person, so
    # no code path can change the snapshot without invalidating the Arrow cache. The random nonce keeps
    # a restored backup (same counter, other history) from matching a cache of another history.
    """
    CREATE TABLE snapshot_generation (
        id          INTEGER PRIMARY KEY CHECK (id = 0),
        generation  INTEGER NOT NULL,
        nonce       INTEGER NOT NULL
    );
    INSERT INTO snapshot_generation (id, generation, nonce) VALUES (0, 0, random());
    CREATE TRIGGER persons_inserted AFTER INSERT ON persons BEGIN
        UPDATE snapshot_generation SET generation = generation + 1, nonce = random();
    END;
    CREATE TRIGGER persons_updated AFTER UPDATE ON persons BEGIN
        UPDATE snapshot_generation SET generation = generation + 1, nonce = random();
    END;
    CREATE TRIGGER persons_deleted AFTER DELETE ON persons BEGIN
        UPDATE snapshot_generation SET generation = generation + 1, nonce = random();
    END;
    """,
    # Groups and memberships (issue 7). A membership's group_key and person_key are sync keys of the
    # groups and persons tables, without foreign keys: the snapshot records what IMS ES confirmed, and
    # the cascades IMS ES applies (delete, change of identifier) are applied by the store itself.
    # Memberships (small rows, up to millions) are stored WITHOUT ROWID, i.e. in sync key order, so
    # that a load reads them sorted instead of sorting a million keys afterwards.
    """
    CREATE TABLE groups (
        sync_key            TEXT PRIMARY KEY,
        identity            TEXT NOT NULL DEFAULT '',
        name                TEXT NOT NULL DEFAULT '',
        type                TEXT NOT NULL DEFAULT '',
        parent              TEXT NOT NULL DEFAULT '',
        description         TEXT NOT NULL DEFAULT '',
        content_hash        TEXT NOT NULL,
        confirmed_at        TEXT NOT NULL,
        message_identifier  TEXT NOT NULL
    );
    CREATE INDEX groups_identity ON groups (identity);
    CREATE INDEX groups_parent ON groups (parent);
    CREATE TABLE memberships (
        sync_key            TEXT PRIMARY KEY,
        group_key           TEXT NOT NULL DEFAULT '',
        person_key          TEXT NOT NULL DEFAULT '',
        role                TEXT NOT NULL DEFAULT '',
        active              TEXT NOT NULL DEFAULT 'true',
        content_hash        TEXT NOT NULL,
        confirmed_at        TEXT NOT NULL,
        message_identifier  TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX memberships_group_key ON memberships (group_key);
    CREATE INDEX memberships_person_key ON memberships (person_key);
    """,
    # The memberships' own generation, for memberships.arrow: bumped (with a new random nonce) by
    # triggers in the very transaction that changes a membership, as persons' is. A table of its own
    # rather than a row id = 1 of snapshot_generation: that table's CHECK (id = 0) admits no second row
    # (SQLite cannot alter a CHECK without rebuilding the table), and the persons triggers update it
    # without a WHERE, so a second row there would move with every person change. Apart, a membership
    # change leaves the persons cache valid and a person change leaves the memberships cache valid.
    """
    CREATE TABLE membership_generation (
        id          INTEGER PRIMARY KEY CHECK (id = 0),
        generation  INTEGER NOT NULL,
        nonce       INTEGER NOT NULL
    );
    INSERT INTO membership_generation (id, generation, nonce) VALUES (0, 0, random());
    CREATE TRIGGER memberships_inserted AFTER INSERT ON memberships BEGIN
        UPDATE membership_generation SET generation = generation + 1, nonce = random();
    END;
    CREATE TRIGGER memberships_updated AFTER UPDATE ON memberships BEGIN
        UPDATE membership_generation SET generation = generation + 1, nonce = random();
    END;
    CREATE TRIGGER memberships_deleted AFTER DELETE ON memberships BEGIN
        UPDATE membership_generation SET generation = generation + 1, nonce = random();
    END;
    """,
)

#: The schema version this code writes (SQLite `PRAGMA user_version`).
SCHEMA_VERSION: Final = len(MIGRATIONS)

_SENT: Final = "sent"
# Each snapshot table's frame columns, with the sync key (the frame's index) first.
_PERSON_COLUMNS: Final = ("sync_key", "identity", *PERSON_FIELDS)
_GROUP_COLUMNS: Final = ("sync_key", "identity", *GROUP_FIELDS)
_MEMBERSHIP_COLUMNS: Final = ("sync_key", *MEMBERSHIP_FIELDS)
_SEP: Final = "\x1f"  # ASCII unit separator: what person_hash uses, and never in a sane roster value
# Rowids per packed read: keeps each group_concat result far below SQLite's 1 GB string limit.
_LOAD_CHUNK: Final = 250_000
_BUSY_TIMEOUT_S: Final = 10.0
_SEED_CACHE_KIB: Final = -262_144  # SQLite's page cache while seeding: 256 MiB (negative: KiB)


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestItem:
    """One object in a request: a single operation has one item (index 0), a mass operation N."""

    index: int
    sync_key: str
    new_sync_key: str = ""  # changePersonIdentifier's or changeGroupIdentifier's target


@dataclass(frozen=True, slots=True, kw_only=True)
class SentRequest:
    """A request about to go out, as the journal records it (committed before sending)."""

    run_id: str
    message_identifier: str
    operation: str  # IMS ES operation name, e.g. "createPerson", "createPersons"
    attempt: int  # 1-based
    sent_at: datetime  # aware
    items: tuple[RequestItem, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemAnswer:
    """The answer for one item of a request (for a single operation, the request's own status)."""

    index: int
    status: Status | None  # None when there is no trustworthy answer
    outcome: Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """How a request ended: IMS ES's header status (if any), our verdict, and per-item answers."""

    message_identifier: str
    answered_at: datetime  # aware
    status: Status | None  # the header statusInfo (None: no answer / transport error)
    outcome: Outcome  # of the request as a whole
    error: str = ""  # our error text when there was no trustworthy answer (never secrets)
    items: tuple[ItemAnswer, ...] = ()


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


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalItemRow:
    """One item of a journalled request, with its answer (None/"sent" while unanswered)."""

    index: int
    sync_key: str
    new_sync_key: str
    code_major: str | None
    severity: str | None
    code_minor: tuple[tuple[str, str], ...]
    description: str
    message_id_ref: str | None
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    """A journalled request joined with its answer and items, for reconcile and reports."""

    run_id: str
    message_identifier: str
    operation: str
    attempt: int
    sent_at: datetime
    answered_at: datetime | None
    message_id_ref: str | None
    code_major: str | None
    severity: str | None
    code_minor: tuple[tuple[str, str], ...]
    description: str
    outcome: str
    error: str
    items: tuple[JournalItemRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """One run as the journal knows it."""

    run_id: str
    started_at: datetime
    ended_at: datetime | None
    command: str
    roster: str
    mapping: str
    status: str  # "running" until end_run (a run killed before end_run stays "running")
    summary: dict[str, int]


# --- helpers -----------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    """ISO 8601 UTC text with fixed width, so that text order is time order."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the state store needs aware datetimes (UTC), got a naive one")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _now() -> datetime:
    return datetime.now(UTC)


def _content_hash(values: Sequence[str]) -> str:
    """sha256 (hex) over `values`, each followed by the separator: `person_hash`'s scheme.

    Persons hash (identity, *PERSON_FIELDS) (equal to person_hash, without building a Person), groups
    (identity, *GROUP_FIELDS), memberships MEMBERSHIP_FIELDS. person_hash feeds each value then a
    separator into sha256; one joined string is the same bytes.
    """
    return hashlib.sha256((_SEP.join(values) + _SEP).encode("utf-8")).hexdigest()


def _status_columns(status: Status | None) -> tuple[str | None, str | None, str | None, str, str]:
    """(message_id_ref, code_major, severity, code_minor as JSON, description) of a status, as stored."""
    if status is None:
        return None, None, None, "[]", ""
    code_minor = json.dumps([list(pair) for pair in status.code_minor], ensure_ascii=False)
    return status.message_id_ref, status.code_major, status.severity, code_minor, status.description


class _AnswerFields(TypedDict):
    """The answer fields JournalEntry and JournalItemRow share."""

    message_id_ref: str | None
    code_major: str | None
    severity: str | None
    code_minor: tuple[tuple[str, str], ...]
    description: str
    outcome: str


def _answer_fields(columns: Sequence[Any]) -> _AnswerFields:
    """The answer columns ending each journal row (message_id_ref, code_major, severity, code_minor,
    description, outcome) as JournalEntry/JournalItemRow fields."""
    message_id_ref, code_major, severity, code_minor, description, outcome = columns
    return _AnswerFields(
        message_id_ref=message_id_ref,
        code_major=code_major,
        severity=severity,
        code_minor=tuple((str(name), str(value)) for name, value in json.loads(code_minor)),
        description=description,
        outcome=outcome,
    )


def _statements(script: str) -> Iterator[str]:
    """Split an SQL script into complete statements (semicolons inside literals are respected)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                yield pending.strip()
            pending = ""


def _explain(exc: sqlite3.Error) -> str:
    """A hint for the operator from SQLite's error code (the message alone is terse)."""
    name = getattr(exc, "sqlite_errorname", "")
    hints = {
        "SQLITE_NOTADB": "the file is not an SQLite database (corrupt, or not an ims-es-sync state file)",
        "SQLITE_CORRUPT": "the database file is corrupt; restore it from a backup or start a new state",
        "SQLITE_FULL": "the disk is full",
        "SQLITE_READONLY": "the database is read-only (check the permissions of the state directory)",
        "SQLITE_CANTOPEN": "the database cannot be opened (check the state directory and its permissions)",
        "SQLITE_BUSY": "the database stayed locked by another process",
        "SQLITE_IOERR": "an I/O error occurred (disk, permissions or file system)",
        "SQLITE_PERM": "permission denied",
    }
    for prefix, hint in hints.items():
        if name.startswith(prefix):
            return f"{exc}: {hint}"
    return str(exc)


# --- the store ---------------------------------------------------------------------------------


class StateStore:
    """Snapshot + journal of one state directory. Thread-safe: one connection behind a lock.

    Open it with `StateStore.open(state_dir)`, use it as a context manager, or call `close()`.
    """

    def __init__(
        self, *, path: Path, connection: sqlite3.Connection, lock: filelock.BaseFileLock | None
    ) -> None:
        """Wrap an open, migrated connection; use `StateStore.open` rather than this."""
        self._path = path
        self._connection: sqlite3.Connection | None = connection
        self._file_lock = lock
        self._lock = threading.Lock()
        # With the run lock, the stamps at open tell close() which cached tables changed meanwhile.
        try:
            self._opened_stamps = self._stamps() if lock is not None else ()
        except BaseException:
            self._close()
            raise

    def __repr__(self) -> str:
        """The database path and whether the store holds the run lock."""
        return f"StateStore({str(self._path)!r}, exclusive={self._file_lock is not None})"

    @property
    def path(self) -> Path:
        """The SQLite database file."""
        return self._path

    # --- opening and closing -------------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path, *, exclusive: bool = True) -> StateStore:
        """Open (creating if needed) the state in `state_dir` and bring its schema up to date.

        Args:
            state_dir: the state directory; created with mode 0700 when missing.
            exclusive: take the run lock (for `run`); False opens without it (plan, reconcile,
                export), which is safe for reading while a run writes.

        Raises:
            StateLockedError: exclusive, and another process holds the lock.
            StateError: the directory or database cannot be used, or was written by a newer version.
        """
        state_dir = Path(state_dir)
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state directory {state_dir}: {exc.strerror or exc}") from exc
        if not state_dir.is_dir():
            raise StateError(f"state directory {state_dir} is not a directory")
        lock = _acquire_lock(state_dir) if exclusive else None
        path = state_dir / DB_NAME
        try:
            connection = _connect(path)
        except BaseException:
            if lock is not None:
                _release_lock(state_dir, lock)
            raise
        return cls(path=path, connection=connection, lock=lock)

    def close(self) -> None:
        """Close the database and release the run lock; closing twice is harmless.

        A store opened with the run lock first rewrites the Arrow cache of each table (persons,
        memberships) that changed since it was opened, so that the next plan starts from it; a failure
        there is ignored (the next load rebuilds the cache).
        """
        try:
            if self._connection is not None and self._file_lock is not None and self._opened_stamps:
                # Only an optimisation: nothing here may keep the lock from being released.
                with contextlib.suppress(StateError, pa.ArrowException):
                    stamps = self._stamps()
                    for cache, opened, stamp in zip(_CACHES, self._opened_stamps, stamps, strict=True):
                        if stamp != opened:
                            with contextlib.suppress(StateError, pa.ArrowException):
                                self._refresh(cache)
        finally:
            self._close()

    def _close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
            if self._file_lock is not None:
                _release_lock(self._path.parent, self._file_lock)
                self._file_lock = None

    def __enter__(self) -> StateStore:
        """The store itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()

    # --- plumbing ------------------------------------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StateError(f"the state store {self._path} is closed")
        return self._connection

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StateError(f"{what} failed in {self._path}: {_explain(exc)}") from exc

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard(what):
            yield self._open_connection()

    @contextlib.contextmanager
    def _transaction(self, what: str, *, bulk: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back when it raises.

        `bulk` (seeding) sets a large page cache and in-memory temporary files for the transaction.
        """
        with self._lock, self._guard(what):
            connection = self._open_connection()
            if bulk:
                (cache_size,) = connection.execute("PRAGMA cache_size").fetchone()
                (temp_store,) = connection.execute("PRAGMA temp_store").fetchone()
                # The secondary indexes take their keys in random order: with SQLite's default 2 MB
                # page cache a million memberships spend most of their time re-reading index pages.
                connection.execute(f"PRAGMA cache_size = {_SEED_CACHE_KIB:d}")
                # The generation triggers make each row's statement keep a statement journal (so that
                # a failing trigger can undo it), by default in a temporary file: ~11 us a row, ~4 us
                # in memory. Taken at the transaction's start: set it before BEGIN.
                connection.execute("PRAGMA temp_store = MEMORY")
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    # SQLite may already have rolled back on its own (e.g. disk full); a failed COMMIT
                    # has not.
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            finally:
                if bulk:
                    connection.execute(f"PRAGMA temp_store = {int(temp_store):d}")
                    connection.execute(f"PRAGMA cache_size = {int(cache_size):d}")

    # --- snapshot ------------------------------------------------------------------------------

    def load_persons(self) -> pd.DataFrame:
        """The snapshot as a DataFrame: index "sync_key"; columns "identity" and PERSON_FIELDS.

        Every value is a string ("" for absent); rows are sorted by sync key. Fast: from the Arrow
        cache when its generation stamp matches the database's (memory-mapped, no copy), else from
        SQLite in packed chunks that numpy and Arrow split into columns (no Python object per value),
        after which the cache is rewritten. The stamp and the rows are read in one read transaction,
        so a cache always describes exactly one committed state.

        Raises:
            StateError: the database cannot be read.
        """
        return _frame(self._load_cached(_PERSONS_CACHE), _PERSON_COLUMNS)

    @property
    def cache_path(self) -> Path:
        """The derived Arrow copy of the persons table (`CACHE_NAME` in the state directory)."""
        return self._cache_path(_PERSONS_CACHE)

    @property
    def memberships_cache_path(self) -> Path:
        """The derived Arrow copy of the memberships (`MEMBERSHIPS_CACHE_NAME` in the state directory)."""
        return self._cache_path(_MEMBERSHIPS_CACHE)

    def _cache_path(self, cache: _Cache) -> Path:
        return self._path.parent / cache.name

    def _load_cached(self, cache: _Cache) -> Any:
        """`cache`'s table as an Arrow table sorted by sync key; the cache is rewritten when it missed."""
        table, stamp, cached = self._load_table(cache)
        if not cached:
            _write_cache(self._cache_path(cache), table, stamp, cache)
        return table

    def _load_table(self, cache: _Cache) -> tuple[Any, str, bool]:
        """(`cache`'s table as an Arrow table sorted by sync key, its generation stamp, True when it came
        from the cache file)."""
        with self._reading(cache.loading) as connection:
            connection.execute("BEGIN")  # one read transaction: the stamp belongs to exactly these rows
            try:
                stamp = _stamp(connection, cache)
                table = _read_cache(self._cache_path(cache), stamp, cache)
                if table is not None:
                    return table, stamp, True
                return _read_table(connection, cache.table), stamp, False
            finally:
                connection.execute("COMMIT")

    def _stamp(self, cache: _Cache | None = None) -> str:
        """The generation stamp of a cached table (None: the persons')."""
        with self._reading("reading the snapshot generation") as connection:
            return _stamp(connection, cache or _PERSONS_CACHE)

    def _stamps(self) -> tuple[str, ...]:
        """The stamp of every cached table, in `_CACHES` order, read in one read transaction."""
        with self._reading("reading the snapshot generation") as connection:
            connection.execute("BEGIN")
            try:
                return tuple(_stamp(connection, cache) for cache in _CACHES)
            finally:
                connection.execute("COMMIT")

    def refresh_cache(self) -> bool:
        """Rewrite each Arrow cache (persons, memberships) that does not match the database; True when
        one was rewritten.

        Raises:
            StateError: the database cannot be read.
        """
        refreshed = [self._refresh(cache) for cache in _CACHES]
        return any(refreshed)

    def _refresh(self, cache: _Cache) -> bool:
        if _read_cache_stamp(self._cache_path(cache)) == self._stamp(cache):
            return False
        table, stamp, cached = self._load_table(cache)
        if not cached:
            _write_cache(self._cache_path(cache), table, stamp, cache)
        return not cached

    def load_groups(self) -> pd.DataFrame:
        """The groups of the snapshot: index "sync_key"; columns "identity" and GROUP_FIELDS.

        Every value is a string ("" for absent, all pandas "str" dtype); rows are sorted by sync key.

        Raises:
            StateError: the database cannot be read.
        """
        return _frame(self._read_table("loading the groups", _GROUPS), _GROUP_COLUMNS)

    def load_memberships(self) -> pd.DataFrame:
        """The memberships of the snapshot: index "sync_key"; columns MEMBERSHIP_FIELDS.

        "group" and "person" are sync keys of the snapshot's groups and persons; "active" is "true" or
        "false". Every value is a string (pandas "str" dtype); rows are sorted by sync key. Loaded like
        `load_persons`: from `memberships.arrow` when its stamp (the memberships' own generation, read
        in the same read transaction) matches, else from SQLite in packed chunks, after which the cache
        is rewritten.

        Raises:
            StateError: the database cannot be read.
        """
        return _frame(self._load_cached(_MEMBERSHIPS_CACHE), _MEMBERSHIP_COLUMNS)

    def _read_table(self, what: str, table: _Table) -> Any:
        with self._reading(what) as connection:
            connection.execute("BEGIN")  # one read transaction: every chunk sees the same state
            try:
                return _read_table(connection, table)
            finally:
                connection.execute("COMMIT")

    def person_count(self) -> int:
        """How many persons the snapshot holds."""
        return self._count("SELECT count(*) FROM persons")

    def group_count(self) -> int:
        """How many groups the snapshot holds."""
        return self._count("SELECT count(*) FROM groups")

    def membership_count(self) -> int:
        """How many memberships the snapshot holds."""
        return self._count("SELECT count(*) FROM memberships")

    def _count(self, sql: str) -> int:
        with self._reading("counting the snapshot") as connection:
            (count,) = connection.execute(sql).fetchone()
        return int(count)

    def seed_persons(self, frame: pd.DataFrame, *, message_identifier: str = "seed") -> None:
        """Insert or replace many snapshot rows in one transaction (benchmarks, adopting a site).

        Args:
            frame: indexed by sync key (or with a "sync_key" column); columns "identity" and
                PERSON_FIELDS, missing ones taken as "". Other columns (a password) are ignored.
            message_identifier: recorded as what confirmed these rows.

        Raises:
            ValueError: a sync key is empty or appears twice.
            StateError: the database cannot be written.
        """
        self._seed("seed_persons", frame, _PERSONS, message_identifier=message_identifier)

    def seed_groups(self, frame: pd.DataFrame, *, message_identifier: str = "seed") -> None:
        """Insert or replace many groups in one transaction (benchmarks, tests, adopting a site).

        Args:
            frame: indexed by sync key (or with a "sync_key" column); columns "identity" and
                GROUP_FIELDS, missing ones (and missing values) taken as "". Other columns are ignored.
            message_identifier: recorded as what confirmed these rows.

        Raises:
            ValueError: a sync key is empty or appears twice.
            StateError: the database cannot be written.
        """
        self._seed("seed_groups", frame, _GROUPS, message_identifier=message_identifier)

    def seed_memberships(self, frame: pd.DataFrame, *, message_identifier: str = "seed") -> None:
        """Insert or replace many memberships in one transaction (benchmarks, tests, adopting a site).

        Args:
            frame: indexed by sync key (or with a "sync_key" column); columns MEMBERSHIP_FIELDS, a
                missing "active" (or missing value) taken as "true", other missing ones as "". Nothing
                checks that the groups and persons named exist. Other columns are ignored.
            message_identifier: recorded as what confirmed these rows.

        Raises:
            ValueError: a sync key is empty or appears twice.
            StateError: the database cannot be written.
        """
        self._seed("seed_memberships", frame, _MEMBERSHIPS, message_identifier=message_identifier)

    def _seed(self, caller: str, frame: pd.DataFrame, table: _Table, *, message_identifier: str) -> None:
        if "sync_key" in frame.columns:
            frame = frame.set_index("sync_key")
        keys = [str(key) for key in frame.index]
        if any(not key for key in keys):
            raise ValueError(f"{caller}: every row needs a sync key")
        if len(set(keys)) != len(keys):
            raise ValueError(f"{caller}: a sync key appears twice")
        n = len(keys)
        columns = []
        for name in table.columns[1:]:
            default = table.defaults.get(name, "")
            columns.append(
                frame[name].fillna(default).astype(str).tolist() if name in frame.columns else [default] * n
            )
        confirmed_at = _iso(_now())
        # Inserted in key order, the table's B-tree pages fill up in order instead of being split at
        # random (a denser file, read faster); keys are unique, so the tuples compare by key alone.
        # Every snapshot table hashes all its values but the sync key, in column order.
        rows = (
            (key, *values, _content_hash(values), confirmed_at, message_identifier)
            for key, *values in sorted(zip(keys, *columns, strict=True))
        )
        with self._transaction(f"seeding the snapshot ({caller})", bulk=True) as connection:
            connection.executemany(table.upsert_sql, rows)

    # --- runs ----------------------------------------------------------------------------------

    def begin_run(self, *, command: str, roster: str, mapping: str) -> str:
        """Record a new run and return its id (sortable: UTC timestamp, then a short uuid)."""
        started = _now()
        run_id = f"{started:%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex[:8]}"
        with self._transaction("recording the run start") as connection:
            connection.execute(
                "INSERT INTO runs (run_id, started_at, command, roster, mapping) VALUES (?, ?, ?, ?, ?)",
                (run_id, _iso(started), command, roster, mapping),
            )
        return run_id

    def end_run(self, run_id: str, *, status: str, summary: Mapping[str, int]) -> None:
        """Record how a run ended.

        Raises:
            StateError: no such run, or the database cannot be written.
        """
        with self._transaction("recording the run end") as connection:
            cursor = connection.execute(
                "UPDATE runs SET ended_at = ?, status = ?, summary = ? WHERE run_id = ?",
                (_iso(_now()), status, json.dumps(dict(summary), sort_keys=True), run_id),
            )
            if cursor.rowcount == 0:
                raise StateError(f"no run {run_id!r} in {self._path}")

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        with self._reading("reading the runs") as connection:
            rows = connection.execute(
                "SELECT run_id, started_at, ended_at, command, roster, mapping, status, summary "
                "FROM runs ORDER BY started_at, rowid"
            ).fetchall()
        return [
            RunInfo(
                run_id=run_id,
                started_at=datetime.fromisoformat(started),
                ended_at=_parse_time(ended),
                command=command,
                roster=roster,
                mapping=mapping,
                status=status,
                summary={str(k): int(v) for k, v in json.loads(summary).items()},
            )
            for run_id, started, ended, command, roster, mapping, status, summary in rows
        ]

    def last_run_id(self) -> str | None:
        """The id of the most recently started run, or None when there is none."""
        with self._reading("reading the runs") as connection:
            row = connection.execute(
                "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    # --- journal -------------------------------------------------------------------------------

    def unconfirmed_renames(self, old_id: str) -> list[str]:
        """Targets of changePersonIdentifier requests from `old_id` that were never confirmed.

        Such a request may have been applied with its answer lost; the executor reads these ids to
        find where the person went. Most recent first, each target once.
        """
        return self._unconfirmed_renames(old_id, "changePersonIdentifier")

    def unconfirmed_group_renames(self, old_id: str) -> list[str]:
        """Targets of changeGroupIdentifier requests from `old_id` that were never confirmed.

        As `unconfirmed_renames`, for groups: most recent first, each target once.
        """
        return self._unconfirmed_renames(old_id, "changeGroupIdentifier")

    def _unconfirmed_renames(self, old_id: str, operation: str) -> list[str]:
        with self._reading(f"reading unconfirmed renames of {old_id}") as connection:
            rows = connection.execute(
                "SELECT i.new_sync_key FROM request_items AS i "
                "JOIN requests AS r ON r.message_identifier = i.message_identifier "
                "WHERE i.sync_key = ? AND r.operation = ? "
                "AND i.outcome IN ('sent', 'unconfirmed') AND i.new_sync_key != '' "
                "ORDER BY r.sent_at DESC",
                (old_id, operation),
            ).fetchall()
        return list(dict.fromkeys(str(row[0]) for row in rows))

    def record_sent(self, request: SentRequest) -> None:
        """Journal a request as *sent*, with its items; committed before the request goes out.

        Raises:
            StateError: unknown run id, a messageIdentifier used before, or a database failure.
        """
        with self._transaction(f"journalling request {request.message_identifier}") as connection:
            connection.execute(
                "INSERT INTO requests (message_identifier, run_id, operation, attempt, sent_at, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request.message_identifier,
                    request.run_id,
                    request.operation,
                    request.attempt,
                    _iso(request.sent_at),
                    _SENT,
                ),
            )
            connection.executemany(
                "INSERT INTO request_items (message_identifier, item_index, sync_key, new_sync_key, outcome) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (request.message_identifier, item.index, item.sync_key, item.new_sync_key, _SENT)
                    for item in request.items
                ],
            )

    def record_answer(self, answer: Answer, changes: Sequence[SnapshotChange] = ()) -> None:
        """Journal a request's answer and apply the snapshot changes it confirms, in one transaction.

        Items without their own `ItemAnswer` take the request's status and outcome. Each change is
        stamped with `answered_at` and the answer's messageIdentifier. Recording a second answer for
        the same request replaces the first (e.g. a later read that confirms it).

        Raises:
            StateError: unknown request or item; changes with an answer that does not confirm them
                (outcome not confirmed, or a messageIdRef that is not ours); a Rename
                whose old id is missing or whose new id exists. Nothing is written then: journal and
                snapshot stay as they were.
        """
        self.record_answers([(answer, changes)])

    def record_answers(self, pairs: Sequence[tuple[Answer, Sequence[SnapshotChange]]]) -> None:
        """`record_answer` for several answers in one transaction (all or nothing).

        Raises:
            StateError: as `record_answer`, for any pair; then none of the pairs is written.
        """
        if not pairs:
            return
        what = (
            f"journalling the answer to {pairs[0][0].message_identifier}"
            if len(pairs) == 1
            else f"journalling {len(pairs)} answers"
        )
        with self._transaction(what) as connection:
            for answer, changes in pairs:
                self._apply_answer(connection, answer, changes)

    def _apply_answer(
        self, connection: sqlite3.Connection, answer: Answer, changes: Sequence[SnapshotChange]
    ) -> None:
        mid = answer.message_identifier
        status = answer.status
        answered_at = _iso(answer.answered_at)
        if changes:
            if answer.outcome is not Outcome.CONFIRMED:
                raise StateError(
                    f"snapshot changes with request {mid}, whose outcome is {answer.outcome.value}: "
                    "only a confirmed answer may change the snapshot"
                )
            if status is not None and status.message_id_ref not in (None, mid):
                raise StateError(f"snapshot changes with request {mid}, whose answer refers to another")
        cursor = connection.execute(
            "UPDATE requests SET answered_at = ?, message_id_ref = ?, code_major = ?, severity = ?, "
            "code_minor = ?, description = ?, outcome = ?, error = ? WHERE message_identifier = ?",
            (answered_at, *_status_columns(status), answer.outcome.value, answer.error, mid),
        )
        if cursor.rowcount == 0:
            raise StateError(f"no request {mid} in the journal {self._path}: record_sent comes first")
        # Items without their own answer share the request's; explicit item answers then override.
        connection.execute(
            "UPDATE request_items SET message_id_ref = ?, code_major = ?, severity = ?, code_minor = ?, "
            "description = ?, outcome = ? WHERE message_identifier = ?",
            (*_status_columns(status), answer.outcome.value, mid),
        )
        for item in answer.items:
            cursor = connection.execute(
                "UPDATE request_items SET message_id_ref = ?, code_major = ?, severity = ?, "
                "code_minor = ?, description = ?, outcome = ? "
                "WHERE message_identifier = ? AND item_index = ?",
                (*_status_columns(item.status), item.outcome.value, mid, item.index),
            )
            if cursor.rowcount == 0:
                raise StateError(f"request {mid} has no item {item.index} in the journal {self._path}")
        for change in changes:
            self._apply_change(connection, change, confirmed_at=answered_at, message_identifier=mid)

    def _apply_change(
        self,
        connection: sqlite3.Connection,
        change: SnapshotChange,
        *,
        confirmed_at: str,
        message_identifier: str,
    ) -> None:
        confirmation = (confirmed_at, message_identifier)
        match change:
            case Upsert(record=record, identity=identity):
                kind = kind_of(record)
                values = (*((identity,) if kind.identity else ()), *record.values().values())
                connection.execute(
                    _TABLES[kind.name].upsert_sql,
                    (record.sync_key, *values, _content_hash(values), *confirmation),
                )
            case Rename(kind=kind_name, old_id=old_id, new_id=new_id):
                _rename(connection, kind_name, old_id, new_id, confirmation)
                if kind_name == "group":
                    _move_children(connection, old_id, new_id, confirmation)
                if kind_name != "membership":
                    _move_memberships(connection, kind_name, old_id, new_id, confirmation)
            case Remove(kind=kind_name, sync_key=sync_key):
                # Removing a key the snapshot lacks is a no-op: IMS ES and the snapshot agree it is gone.
                # A group's child groups stay: IMS ES refuses to delete a group with children, so a
                # confirmed delete means the executor deleted (and the snapshot removed) them first.
                for sql in _REMOVE_SQL[kind_name]:
                    connection.execute(sql, (sync_key,))
            case _:
                assert_never(change)

    def journal(self, run_id: str | None = None) -> list[JournalEntry]:
        """Journalled requests with their answers and items, in sent order.

        Args:
            run_id: one run's requests; None for every run.
        """
        params = (run_id,) if run_id is not None else ()
        with self._reading("reading the journal") as connection:
            requests = connection.execute(_JOURNAL_SQL[run_id is not None], params).fetchall()
            item_rows = connection.execute(_JOURNAL_ITEMS_SQL[run_id is not None], params).fetchall()
        items: dict[str, list[JournalItemRow]] = {}
        for mid, index, key, new_key, *answer in item_rows:
            items.setdefault(mid, []).append(
                JournalItemRow(index=index, sync_key=key, new_sync_key=new_key, **_answer_fields(answer))
            )
        return [
            JournalEntry(
                run_id=run,
                message_identifier=mid,
                operation=operation,
                attempt=attempt,
                sent_at=datetime.fromisoformat(sent_at),
                answered_at=_parse_time(answered_at),
                error=error,
                items=tuple(items.get(mid, ())),
                **_answer_fields(answer),
            )
            for run, mid, operation, attempt, sent_at, answered_at, error, *answer in requests
        ]


_Kind: TypeAlias = Literal["person", "group"]
_RenamedKind: TypeAlias = Literal["person", "group", "membership"]
_Confirmation: TypeAlias = tuple[str, str]  # (confirmed_at, message_identifier) of a change


def _rename(
    connection: sqlite3.Connection, kind: _RenamedKind, old_id: str, new_id: str, confirmation: _Confirmation
) -> None:
    """Move a person's, group's or membership's row to `new_id`; never onto an existing row (that would
    merge two)."""
    exists_sql, rename_sql = _RENAME_SQL[kind]
    label = "" if kind == "person" else f"{kind} "
    if connection.execute(exists_sql, (new_id,)).fetchone():
        raise StateError(
            f"cannot rename {label}{old_id!r} to {new_id!r} in the snapshot: {new_id!r} exists already"
        )
    if connection.execute(rename_sql, (new_id, *confirmation, old_id)).rowcount == 0:
        raise StateError(f"cannot rename {label}{old_id!r} to {new_id!r}: {old_id!r} is not in the snapshot")


def _move_memberships(
    connection: sqlite3.Connection, kind: _Kind, old_id: str, new_id: str, confirmation: _Confirmation
) -> None:
    """Point the memberships of person or group `old_id` at `new_id`, as IMS ES carries them along.

    Each moved row is rehashed (its group and person are part of its content) and stamped with the
    confirming answer. Rows already pointing at `new_id` (the snapshot lacked that person or group) stay:
    they are distinct memberships, nothing is merged.
    """
    rows = connection.execute(_MEMBERSHIPS_OF_SQL[kind], (old_id,)).fetchall()
    moved = []
    for sync_key, group, person, role, active in rows:
        values = (new_id, person, role, active) if kind == "group" else (group, new_id, role, active)
        moved.append((values[0], values[1], _content_hash(values), *confirmation, sync_key))
    connection.executemany(_MOVE_MEMBERSHIP_SQL, moved)


def _move_children(
    connection: sqlite3.Connection, old_id: str, new_id: str, confirmation: _Confirmation
) -> None:
    """Point the child groups of `old_id` at `new_id` as their parent, rehashed and stamped."""
    rows = connection.execute(
        "SELECT sync_key, identity, name, type, description FROM groups WHERE parent = ?", (old_id,)
    ).fetchall()
    moved = []
    for sync_key, identity, name, type_, description in rows:
        values = (identity, name, type_, new_id, description)  # ("identity", *GROUP_FIELDS)
        moved.append((new_id, _content_hash(values), *confirmation, sync_key))
    connection.executemany(
        "UPDATE groups SET parent = ?, content_hash = ?, confirmed_at = ?, message_identifier = ? "
        "WHERE sync_key = ?",
        moved,
    )


_RENAME_SQL: Final[dict[_RenamedKind, tuple[str, str]]] = {
    "person": (
        "SELECT 1 FROM persons WHERE sync_key = ?",
        "UPDATE persons SET sync_key = ?, confirmed_at = ?, message_identifier = ? WHERE sync_key = ?",
    ),
    "group": (
        "SELECT 1 FROM groups WHERE sync_key = ?",
        "UPDATE groups SET sync_key = ?, confirmed_at = ?, message_identifier = ? WHERE sync_key = ?",
    ),
    "membership": (
        "SELECT 1 FROM memberships WHERE sync_key = ?",
        "UPDATE memberships SET sync_key = ?, confirmed_at = ?, message_identifier = ? WHERE sync_key = ?",
    ),
}
_MEMBERSHIPS_OF_SQL: Final[dict[_Kind, str]] = {
    "person": "SELECT sync_key, group_key, person_key, role, active FROM memberships WHERE person_key = ?",
    "group": "SELECT sync_key, group_key, person_key, role, active FROM memberships WHERE group_key = ?",
}
_REMOVE_SQL: Final[dict[_RenamedKind, tuple[str, ...]]] = {
    "person": (
        "DELETE FROM persons WHERE sync_key = ?",
        "DELETE FROM memberships WHERE person_key = ?",
    ),
    "group": ("DELETE FROM groups WHERE sync_key = ?", "DELETE FROM memberships WHERE group_key = ?"),
    "membership": ("DELETE FROM memberships WHERE sync_key = ?",),
}
_MOVE_MEMBERSHIP_SQL: Final = (
    "UPDATE memberships SET group_key = ?, person_key = ?, content_hash = ?, confirmed_at = ?, "
    "message_identifier = ? WHERE sync_key = ?"
)

# The columns are spelled out (not built from PERSON_FIELDS etc.) so that every statement is a literal;
# test_snapshot checks that they match the fields (round trips with a distinct value in every column).
_SELECT_PERSONS_SQL: Final = (
    "SELECT sync_key, identity, username, given_name, family_name, email, role, birth_date, phone, mobile "
    "FROM persons"
)
_SELECT_GROUPS_SQL: Final = "SELECT sync_key, identity, name, type, parent, description FROM groups"
_SELECT_MEMBERSHIPS_SQL: Final = "SELECT sync_key, group_key, person_key, role, active FROM memberships"

_UPSERT_SQL: Final = (
    "INSERT INTO persons (sync_key, identity, username, given_name, family_name, email, role, birth_date, "
    "phone, mobile, content_hash, confirmed_at, message_identifier) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (sync_key) DO UPDATE SET identity = excluded.identity, username = excluded.username, "
    "given_name = excluded.given_name, family_name = excluded.family_name, email = excluded.email, "
    "role = excluded.role, birth_date = excluded.birth_date, phone = excluded.phone, "
    "mobile = excluded.mobile, content_hash = excluded.content_hash, confirmed_at = excluded.confirmed_at, "
    "message_identifier = excluded.message_identifier"
)
_UPSERT_GROUP_SQL: Final = (
    "INSERT INTO groups (sync_key, identity, name, type, parent, description, content_hash, confirmed_at, "
    "message_identifier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (sync_key) DO UPDATE SET identity = excluded.identity, name = excluded.name, "
    "type = excluded.type, parent = excluded.parent, description = excluded.description, "
    "content_hash = excluded.content_hash, confirmed_at = excluded.confirmed_at, "
    "message_identifier = excluded.message_identifier"
)
_UPSERT_MEMBERSHIP_SQL: Final = (
    "INSERT INTO memberships (sync_key, group_key, person_key, role, active, content_hash, confirmed_at, "
    "message_identifier) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (sync_key) DO UPDATE SET group_key = excluded.group_key, "
    "person_key = excluded.person_key, role = excluded.role, active = excluded.active, "
    "content_hash = excluded.content_hash, confirmed_at = excluded.confirmed_at, "
    "message_identifier = excluded.message_identifier"
)

# One packed string per chunk: the row's values joined by char(31), rows joined by char(31) too.
_PACKED_SQL: Final = (
    "SELECT count(*), CAST(group_concat(printf(?, sync_key, identity, username, given_name, family_name, "
    "email, role, birth_date, phone, mobile), char(31)) AS BLOB) FROM persons WHERE rowid BETWEEN ? AND ?"
)
_PACKED_GROUPS_SQL: Final = (
    "SELECT count(*), CAST(group_concat(printf(?, sync_key, identity, name, type, parent, description), "
    "char(31)) AS BLOB) FROM groups WHERE rowid BETWEEN ? AND ?"
)
# Memberships have no rowid: chunks are sync key ranges [low, high), the last one open-ended.
_PACKED_MEMBERSHIPS_SQL: Final = (
    "SELECT count(*), CAST(group_concat(printf(?, sync_key, group_key, person_key, role, active), "
    "char(31)) AS BLOB) FROM memberships WHERE sync_key >= ? AND sync_key < ?"
)
_PACKED_MEMBERSHIPS_TAIL_SQL: Final = (
    "SELECT count(*), CAST(group_concat(printf(?, sync_key, group_key, person_key, role, active), "
    "char(31)) AS BLOB) FROM memberships WHERE sync_key >= ?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Table:
    """One snapshot table: its frame columns (sync key first) and the statements that read and seed it."""

    columns: tuple[str, ...]
    bounds_sql: str  # rowid tables: (min rowid, max rowid); key ranges: (min sync key,)
    packed_sql: str  # (count, packed blob) of a rowid range, or of a sync key range [low, high)
    select_sql: str
    upsert_sql: str  # columns, then content hash, confirmed_at, message_identifier
    defaults: Mapping[str, str]  # seeding: the value of a missing column or cell ("" when not named)
    # A WITHOUT ROWID table is read in sync key ranges: (the next bound, the open-ended last chunk).
    key_ranges: tuple[str, str] | None = None


_PERSONS: Final = _Table(
    columns=_PERSON_COLUMNS,
    bounds_sql="SELECT min(rowid), max(rowid) FROM persons",
    packed_sql=_PACKED_SQL,
    select_sql=_SELECT_PERSONS_SQL,
    upsert_sql=_UPSERT_SQL,
    defaults={},
)
_GROUPS: Final = _Table(
    columns=_GROUP_COLUMNS,
    bounds_sql="SELECT min(rowid), max(rowid) FROM groups",
    packed_sql=_PACKED_GROUPS_SQL,
    select_sql=_SELECT_GROUPS_SQL,
    upsert_sql=_UPSERT_GROUP_SQL,
    defaults={},
)
_MEMBERSHIPS: Final = _Table(
    columns=_MEMBERSHIP_COLUMNS,
    bounds_sql="SELECT min(sync_key) FROM memberships",
    packed_sql=_PACKED_MEMBERSHIPS_SQL,
    select_sql=_SELECT_MEMBERSHIPS_SQL,
    upsert_sql=_UPSERT_MEMBERSHIP_SQL,
    defaults={"active": "true"},
    key_ranges=(
        "SELECT sync_key FROM memberships WHERE sync_key >= ? ORDER BY sync_key LIMIT 1 OFFSET ?",
        _PACKED_MEMBERSHIPS_TAIL_SQL,
    ),
)

_TABLES: Final = {"person": _PERSONS, "group": _GROUPS, "membership": _MEMBERSHIPS}

# Both journal queries end with the same six answer columns, which _answer_fields turns into fields.
_JOURNAL_COLUMNS: Final = (
    "SELECT r.run_id, r.message_identifier, r.operation, r.attempt, r.sent_at, r.answered_at, r.error, "
    "r.message_id_ref, r.code_major, r.severity, r.code_minor, r.description, r.outcome "
    "FROM requests AS r "
)
_JOURNAL_SQL: Final = {
    False: _JOURNAL_COLUMNS + "ORDER BY r.sent_at, r.rowid",
    True: _JOURNAL_COLUMNS + "WHERE r.run_id = ? ORDER BY r.sent_at, r.rowid",
}
_JOURNAL_ITEMS_COLUMNS: Final = (
    "SELECT i.message_identifier, i.item_index, i.sync_key, i.new_sync_key, "
    "i.message_id_ref, i.code_major, i.severity, i.code_minor, i.description, i.outcome "
    "FROM request_items AS i JOIN requests AS r USING (message_identifier) "
)
_JOURNAL_ITEMS_SQL: Final = {
    False: _JOURNAL_ITEMS_COLUMNS + "ORDER BY i.message_identifier, i.item_index",
    True: _JOURNAL_ITEMS_COLUMNS + "WHERE r.run_id = ? ORDER BY i.message_identifier, i.item_index",
}


def _read_table(connection: sqlite3.Connection, table: _Table) -> Any:
    """A snapshot table as an Arrow table sorted by sync key (packed read; plain when that cannot split)."""
    arrow = _load_packed(connection, table)
    if arrow is None:  # a value holds the separator: take the plain (slower) path
        rows = connection.execute(table.select_sql).fetchall()
        arrow = _sorted(
            pa.table(
                [
                    pa.array([row[i] for row in rows], type=pa.large_string())
                    for i in range(len(table.columns))
                ],
                names=list(table.columns),
            )
        )
    return arrow


def _load_packed(connection: sqlite3.Connection, table: _Table) -> Any:
    """A table as an Arrow table via packed rows split with numpy; None when a value holds the separator.

    SQLite packs each chunk of rows into one blob (values and rows joined by char(31)); numpy finds
    the separators and Arrow views the rest as strings, so no Python object is made per value.
    """
    width = len(table.columns)
    columns: list[list[Any]] = [[] for _ in range(width)]
    for count, blob in _packed_chunks(connection, table, _SEP.join(["%s"] * width)):
        if not count:
            continue
        values = count * width
        raw = np.frombuffer(blob, dtype=np.uint8)
        is_sep = raw == ord(_SEP)
        positions = np.flatnonzero(is_sep)
        # Exactly values - 1 separators, unless a value itself holds one: then the split is ambiguous.
        if len(positions) != values - 1:
            return None
        data = raw[~is_sep]
        offsets = np.empty(values + 1, dtype=np.int64)
        offsets[0] = 0
        offsets[1:-1] = positions - np.arange(values - 1)  # each value starts where its separator was
        offsets[-1] = len(data)
        strings = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), values, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        ).cast(pa.large_string())  # the cast validates UTF-8
        rows = pa.FixedSizeListArray.from_arrays(strings, width)
        for i in range(width):
            columns[i].append(pc.list_element(rows, i))
    arrays = [pa.chunked_array(chunks, type=pa.large_string()) for chunks in columns]
    return _sorted(pa.table(arrays, names=list(table.columns)))


def _packed_chunks(
    connection: sqlite3.Connection, table: _Table, packed_format: str
) -> Iterator[tuple[int, Any]]:
    """(row count, packed rows as bytes; None when empty) for each chunk: rowid or sync key ranges."""
    if table.key_ranges is None:
        low, high = connection.execute(table.bounds_sql).fetchone()
        for start in range(low if low is not None else 1, (high or 0) + 1, _LOAD_CHUNK):
            yield connection.execute(
                table.packed_sql, (packed_format, start, start + _LOAD_CHUNK - 1)
            ).fetchone()
        return
    next_bound_sql, tail_sql = table.key_ranges
    (low,) = connection.execute(table.bounds_sql).fetchone()
    while low is not None:
        bound = connection.execute(next_bound_sql, (low, _LOAD_CHUNK)).fetchone()
        if bound is None:
            yield connection.execute(tail_sql, (packed_format, low)).fetchone()
            return
        yield connection.execute(table.packed_sql, (packed_format, low, bound[0])).fetchone()
        low = bound[0]


def _sorted(table: Any) -> Any:
    """`table` in sync key order (unique keys), one chunk per column; rowid order is confirmation order."""
    table = table.combine_chunks()  # take() on one chunk per column is several times faster
    keys = table.column("sync_key")
    if len(keys) > 1 and not pc.all(pc.greater(keys[1:], keys[:-1])).as_py():
        table = table.take(pc.sort_indices(keys))
    return table


def _frame(table: Any, names: Sequence[str]) -> pd.DataFrame:
    """The frame of a snapshot table, `names` its columns with "sync_key" first (pandas' Arrow-backed
    text columns: no copy)."""
    columns = {name: pd.array(table.column(name), dtype="str") for name in names}
    index = pd.Index(columns.pop("sync_key"), name="sync_key")
    return pd.DataFrame(columns, index=index)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Cache:
    """The Arrow cache of one snapshot table: its file, the table it copies and the generation row that
    stamps it (bumped by triggers in every transaction that changes the table)."""

    name: str  # the file in the state directory; also part of the stamp
    table: _Table
    generation_sql: str  # (generation, nonce) of the table's generation row
    loading: str  # what a failed load names
    # The file's schema: exactly the table's frame columns, as text with 32-bit offsets (smaller).
    schema: Any


def _cache(name: str, table: _Table, generation_sql: str, loading: str) -> _Cache:
    schema = pa.schema([(column, pa.string()) for column in table.columns])
    return _Cache(name=name, table=table, generation_sql=generation_sql, loading=loading, schema=schema)


_PERSONS_CACHE: Final = _cache(
    CACHE_NAME,
    _PERSONS,
    "SELECT generation, nonce FROM snapshot_generation WHERE id = 0",
    "loading the snapshot",
)
_MEMBERSHIPS_CACHE: Final = _cache(
    MEMBERSHIPS_CACHE_NAME,
    _MEMBERSHIPS,
    "SELECT generation, nonce FROM membership_generation WHERE id = 0",
    "loading the memberships",
)
_CACHES: Final = (_PERSONS_CACHE, _MEMBERSHIPS_CACHE)
_STAMP_KEY: Final = b"ims-es-sync.snapshot.generation"


def _stamp(connection: sqlite3.Connection, cache: _Cache) -> str:
    """A cached table's generation stamp: schema version, cache name, change counter and nonce.

    The name keeps one table's cache from ever matching another's stamp; the nonce (new at every change)
    keeps a restored backup or another state directory (same counter, other history) from matching.
    """
    generation, nonce = connection.execute(cache.generation_sql).fetchone()
    return f"{SCHEMA_VERSION}:{cache.name}:{generation}:{nonce}"


def _read_cache_stamp(path: Path) -> str | None:
    """The stamp a cache file was written for, or None when it is missing or unreadable."""
    try:
        with pa.memory_map(str(path)) as source:
            metadata = pa.ipc.open_file(source).schema.metadata or {}
    except (OSError, pa.ArrowException):
        return None
    stamp = metadata.get(_STAMP_KEY)
    return stamp.decode("utf-8", "replace") if stamp is not None else None


def _read_cache(path: Path, stamp: str, cache: _Cache) -> Any:
    """The cached table when the file exists, is intact, has `cache`'s schema and was written for
    `stamp`; else None.

    The file is memory-mapped: the frame's text columns point into it, nothing is copied. The cache is
    replaced only by rename, so a mapped file never changes under a reader.
    """
    try:
        source = pa.memory_map(str(path))
        reader = pa.ipc.open_file(source)
        metadata = reader.schema.metadata or {}
        if metadata.get(_STAMP_KEY) != stamp.encode() or not reader.schema.remove_metadata().equals(
            cache.schema
        ):
            return None
        table = reader.read_all()
        # Cheap structural checks (lengths, buffer sizes): a damaged file is rebuilt, never trusted.
        table.validate()
    except (OSError, pa.ArrowException):
        return None
    return table


def _write_cache(path: Path, table: Any, stamp: str, cache: _Cache) -> None:
    """Write `cache` next to the database (owner-only, atomically by rename); failures are ignored.

    Only the cache's columns are written, whatever else `table` holds. The cache is an optimisation:
    a read-only state directory or a full disk costs the next load its speed, never its answer.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        schema = cache.schema.with_metadata({_STAMP_KEY: stamp.encode()})
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(table.select(cache.schema.names).cast(cache.schema))
        temporary.replace(path)
    except (OSError, pa.ArrowException):
        with contextlib.suppress(OSError):
            temporary.unlink()


def _connect(path: Path) -> sqlite3.Connection:
    """Open the database, set WAL and the pragmas, and migrate its schema."""

    def fail(what: str, exc: sqlite3.Error) -> StateError:
        return StateError(f"{what} failed for {path}: {_explain(exc)}")

    if not path.exists():
        # Create the file owner-only; SQLite gives its -wal and -shm files the same mode.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StateError(f"cannot create {path}: {exc.strerror or exc}") from exc
    try:
        connection = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise fail("opening the state database", exc) from exc
    try:
        _configure(connection, path)
    except sqlite3.Error as exc:
        connection.close()
        raise fail("opening the state database", exc) from exc
    except BaseException:
        connection.close()
        raise
    return connection


def _configure(connection: sqlite3.Connection, path: Path) -> None:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    _check_version(version, path)
    (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise StateError(f"cannot switch {path} to WAL mode (got {mode!r}); is the file system local?")
    # NORMAL in WAL mode: a commit survives a process kill; only a power loss may lose the last ones.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")
    if version == SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated in the meantime.
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        _check_version(version, path)
        for script in MIGRATIONS[version:]:
            for statement in _statements(script):
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _check_version(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{path} has schema version {version}, written by a newer ims-es-sync "
            f"(this one reads up to version {SCHEMA_VERSION}); upgrade ims-es-sync to use it"
        )


# --- the run lock ------------------------------------------------------------------------------


def _acquire_lock(state_dir: Path) -> filelock.BaseFileLock:
    """Take the run lock without waiting, and say who holds it in the side file."""
    lock = filelock.FileLock(state_dir / LOCK_NAME, timeout=0, mode=0o600, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise StateLockedError(_locked_message(state_dir)) from exc
    except OSError as exc:
        raise StateError(f"cannot lock state directory {state_dir}: {exc.strerror or exc}") from exc
    info = {"pid": os.getpid(), "since": _iso(_now())}
    try:
        fd = os.open(state_dir / LOCK_INFO_NAME, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
    except OSError as exc:
        lock.release()
        raise StateError(f"cannot write {state_dir / LOCK_INFO_NAME}: {exc.strerror or exc}") from exc
    return lock


def _release_lock(state_dir: Path, lock: filelock.BaseFileLock) -> None:
    # Remove the side file while still holding the lock, so it never describes the next holder.
    with contextlib.suppress(OSError):
        (state_dir / LOCK_INFO_NAME).unlink()
    lock.release()


def _locked_message(state_dir: Path) -> str:
    try:
        info = json.loads((state_dir / LOCK_INFO_NAME).read_text(encoding="utf-8"))
        holder = f"pid {int(info['pid'])}, since {info['since']}"
        pid = str(int(info["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        holder, pid = "pid unknown, just starting", "?"
    return (
        f"state directory {state_dir} is in use by another ims-es-sync run ({holder}); "
        f"if no run is active, check that process {pid} has exited (the lock frees itself when it "
        f"does; on a file system without locking, delete {state_dir / LOCK_NAME})"
    )
