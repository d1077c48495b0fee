"""The state database's schema and connection: its migrations, its version, and opening it.

A state directory holds `state.sqlite3`, a run lock (see sync.state.lock) and the Arrow caches (see
sync.state.cache). The database has two halves:

- the **journal** (`runs`, `requests`, `request_items`): every request is written as *sent* and
  committed before it goes out, then updated with its answer;
- the **snapshot** (`persons`, `groups`, `memberships`): one row per person, group and membership IMS ES
  confirmed. A snapshot row changes only in the same transaction as the journal answer that confirmed
  it, so a run killed at any moment leaves the two consistent: requests sent but never answered stay
  visible as "unanswered" and the next run re-diffs.

No password is stored anywhere: the schema has no column for one and `Person` cannot carry one.
The state package is the only place of the sync engine that imports sqlite3; its errors become
`StateError`. This module knows nothing of kinds, caches or the journal's values.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from sync.errors import StateError

__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "bulk_settings",
    "check_not_orphaned",
    "check_version",
    "connect",
    "database_in",
    "explain",
    "migrate",
]

DB_NAME: Final = "state.sqlite3"
_BUSY_TIMEOUT_S: Final = 10.0
_SEED_CACHE_KIB: Final = -262_144  # SQLite's page cache while seeding: 256 MiB (negative: KiB)
_RESTORE: Final = (
    "restore the state directory from a backup, or start a new one (on a populated site, with "
    "`ims-sync snapshot adopt`); `ims-sync snapshot check` says what is wrong"
)


def _generation_counter(table: str, watched: str) -> str:
    """A migration's text: a one-row generation counter `table` that triggers on `watched` bump (with a
    new random nonce) in the very transaction of every insert, update and delete (released migrations 2
    and 4 are this text)."""
    triggers = "".join(
        f"""    CREATE TRIGGER {watched}_{done} AFTER {event} ON {watched} BEGIN
        UPDATE {table} SET generation = generation + 1, nonce = random();
    END;
"""  # noqa: S608 (the names are this module's constants, never input)
        for event, done in (("INSERT", "inserted"), ("UPDATE", "updated"), ("DELETE", "deleted"))
    )
    return f"""
    CREATE TABLE {table} (
        id          INTEGER PRIMARY KEY CHECK (id = 0),
        generation  INTEGER NOT NULL,
        nonce       INTEGER NOT NULL
    );
    INSERT INTO {table} (id, generation, nonce) VALUES (0, 0, random());
{triggers}    """  # noqa: S608


#: A journal answer's columns, in `requests` (a request) and `request_items` (an item of a mass request).
_ANSWER: Final = """        message_id_ref  TEXT,
        code_major      TEXT,
        severity        TEXT,
        code_minor      TEXT NOT NULL DEFAULT '[]',
        description     TEXT NOT NULL DEFAULT '',
        outcome         TEXT NOT NULL DEFAULT 'sent',
"""

#: Schema migrations, applied in order; migration i takes the database from user_version i to i + 1.
#: Never edit a released migration: append a new one.
MIGRATIONS: Final[tuple[str, ...]] = (
    f"""
    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        command     TEXT NOT NULL,
        roster      TEXT NOT NULL DEFAULT '',
        mapping     TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL DEFAULT 'running',
        summary     TEXT NOT NULL DEFAULT '{{}}'
    );
    CREATE TABLE requests (
        message_identifier TEXT PRIMARY KEY,
        run_id          TEXT NOT NULL REFERENCES runs (run_id),
        operation       TEXT NOT NULL,
        attempt         INTEGER NOT NULL,
        sent_at         TEXT NOT NULL,
        answered_at     TEXT,
{_ANSWER}        error           TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX requests_run_id ON requests (run_id, sent_at);
    CREATE TABLE request_items (
        message_identifier TEXT NOT NULL REFERENCES requests (message_identifier) ON DELETE CASCADE,
        item_index      INTEGER NOT NULL,
        sync_key        TEXT NOT NULL,
        new_sync_key    TEXT NOT NULL DEFAULT '',
{_ANSWER}        PRIMARY KEY (message_identifier, item_index)
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
    _generation_counter("snapshot_generation", "persons"),
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
    _generation_counter("membership_generation", "memberships"),
    # Every person field itslearning takes, and a parent's children (issue 17). Existing rows get ""
    # everywhere: their content hashes hold as they are (the hash leaves trailing empty later fields
    # out, see sync.models.records.PERSON_LATER_FIELDS), so an upgraded snapshot plans no change.
    """
    ALTER TABLE persons ADD COLUMN nickname     TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN prefix       TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN street       TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN street_extra TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN postal_code  TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN city         TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN gender       TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN children     TEXT NOT NULL DEFAULT '';
    """,
    # What `verify --repair` recorded (issue 14): one row per drifted object whose snapshot row it
    # changed, stamped with the journalled read that saw the drift; the plan shows which of its
    # operations come from drift (sync.state.drift).
    """
    CREATE TABLE drift_repairs (
        kind                TEXT NOT NULL,
        sync_key            TEXT NOT NULL,
        drift               TEXT NOT NULL,
        repaired_at         TEXT NOT NULL,
        message_identifier  TEXT NOT NULL,
        PRIMARY KEY (kind, sync_key)
    ) WITHOUT ROWID;
    """,
)

#: The schema version this code writes (SQLite `PRAGMA user_version`).
SCHEMA_VERSION: Final = len(MIGRATIONS)


def database_in(state_dir: Path) -> Path:
    """The database file of `state_dir`, creating the directory (mode 0700) when missing.

    Raises:
        StateError: the directory cannot be created, or is not a directory.
    """
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create state directory {state_dir}: {exc.strerror or exc}") from exc
    if not state_dir.is_dir():
        raise StateError(f"state directory {state_dir} is not a directory")
    return state_dir / DB_NAME


@contextlib.contextmanager
def bulk_settings(connection: sqlite3.Connection, bulk: bool = True) -> Iterator[None]:
    """When `bulk` (seeding), a large page cache and in-memory temporary files while the block runs: set
    before its BEGIN, restored after its transaction."""
    if not bulk:
        yield
        return
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
        yield
    finally:
        connection.execute(f"PRAGMA temp_store = {int(temp_store):d}")
        connection.execute(f"PRAGMA cache_size = {int(cache_size):d}")


def connect(path: Path) -> sqlite3.Connection:
    """Open the database, set WAL and the pragmas, and migrate its schema.

    Raises:
        StateError: the file cannot be created or opened, or was written by a newer version.
    """

    def fail(what: str, exc: sqlite3.Error) -> StateError:
        return StateError(f"{what} failed for {path}: {explain(exc)}")

    check_not_orphaned(path)
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
    check_version(version, path)
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
        check_version(version, path)
        migrate(connection, version)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def migrate(connection: sqlite3.Connection, version: int) -> None:
    """Apply the migrations after `version` and set the schema version, inside the caller's transaction."""
    for script in MIGRATIONS[version:]:
        for statement in _statements(script):
            connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")


def check_not_orphaned(path: Path) -> None:
    """Refuse a write-ahead log without its database: SQLite would lay its pages over a new, empty file.

    A database SQLite has put in WAL mode is never empty, even before its first checkpoint.
    """
    wal = path.with_name(f"{path.name}-wal")
    try:
        orphaned = wal.stat().st_size > 0 and (not path.exists() or path.stat().st_size == 0)
    except OSError:
        return  # no log (or none we may look at): nothing to refuse here
    if orphaned:
        raise StateError(
            f"{path} is missing, but its write-ahead log {wal.name} is there: the database was deleted "
            f"or moved without it; restore both from a backup, or move {wal.name} (and {path.name}-shm) "
            "out of the state directory to start a new state"
        )


def check_version(version: int, path: Path) -> None:
    """Refuse a database written by a newer version."""
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{path} has schema version {version}, written by a newer ims-es-sync "
            f"(this one reads up to version {SCHEMA_VERSION}); upgrade ims-es-sync to use it"
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


def explain(exc: sqlite3.Error) -> str:
    """A hint for the operator from SQLite's error code (the message alone is terse)."""
    name = getattr(exc, "sqlite_errorname", "")
    hints = {
        "SQLITE_NOTADB": "the file is not an SQLite database (corrupt, or not an ims-es-sync state file); "
        f"{_RESTORE}",
        "SQLITE_CORRUPT": f"the database file is corrupt; {_RESTORE}",
        "SQLITE_FULL": "the disk is full: free space on it (or move the state directory to a larger "
        "one), then rerun; what was not confirmed is sent again",
        "SQLITE_READONLY": "the database is read-only: make the state directory and its files writable "
        "by the user that runs ims-sync (and check the file system is not mounted read-only)",
        "SQLITE_CANTOPEN": "the database cannot be opened (check the state directory and its permissions)",
        "SQLITE_BUSY": "the database stayed locked by another process",
        "SQLITE_IOERR": "an I/O error occurred (disk, permissions or file system): check the disk, and that "
        "the state directory is still there, then rerun",
        "SQLITE_PERM": "permission denied: make the state directory and its files writable by the user "
        "that runs ims-sync",
    }
    for prefix, hint in hints.items():
        if name.startswith(prefix):
            return f"{exc}: {hint}"
    return str(exc)
