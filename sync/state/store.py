"""The state store: the snapshot of what IMS ES confirmed and the journal of every request, in SQLite.

`StateStore` composes the rooms beside it: the schema and connection (sync.state.schema), the run lock
(sync.state.lock), the snapshot tables (sync.state.tables, read by sync.state.loading), their Arrow
caches (sync.state.cache), the journal (sync.state.journal) and the changes its answers confirm, with
their cascades (sync.state.changes), committed in groups (sync.state.commits). It owns the one
connection, the transactions and the turning of sqlite3's errors into `StateError`. What
`verify --repair` records comes from `DriftRepairs` (sync.state.drift).

The state package is the only place of the sync engine that imports sqlite3 and filelock.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import filelock
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from sync.errors import StateError
from sync.models import Kind
from sync.state import journal as _journal
from sync.state.cache import (
    CACHES,
    Cache,
    cache_of,
    generation_stamp,
    generation_stamps,
    load_table,
    read_cache_stamp,
    write_cache,
)
from sync.state.changes import SnapshotChange
from sync.state.commits import GroupCommit
from sync.state.drift import DriftRepairs
from sync.state.journal import Answer, JournalEntry, RunInfo, SentRequest
from sync.state.loading import as_frame, one_read, read_table
from sync.state.lock import acquire_lock, release_lock
from sync.state.schema import bulk_settings, connect, database_in, explain
from sync.state.tables import seed_rows, table_of

__all__ = ["StateStore"]


class StateStore(DriftRepairs, contextlib.AbstractContextManager["StateStore"]):
    """Snapshot + journal of one state directory. Thread-safe: one connection behind a lock.

    Open it with `StateStore.open(state_dir)`, use it as a context manager, or call `close()`."""

    def __init__(
        self, *, path: Path, connection: sqlite3.Connection, lock: filelock.BaseFileLock | None
    ) -> None:
        """Wrap an open, migrated connection; use `StateStore.open` rather than this."""
        self._path = path
        self._connection: sqlite3.Connection | None = connection
        self._file_lock = lock
        self._lock = threading.Lock()
        self._commits = GroupCommit(self._transaction)  # the journal's writes, committed in groups
        self._identity = _identity(path)  # a write checks the file is still this one (not deleted)
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
        path = database_in(state_dir)
        lock = acquire_lock(state_dir) if exclusive else None
        try:
            connection = connect(path)
        except BaseException:
            if lock is not None:
                release_lock(state_dir, lock)
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
                    for cache, opened, stamp in zip(
                        CACHES.values(), self._opened_stamps, stamps, strict=True
                    ):
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
                release_lock(self._path.parent, self._file_lock)
                self._file_lock = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""
        self.close()

    # --- plumbing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection, to this thread alone; sqlite3's errors become StateError naming `what`."""
        with self._lock:
            if self._connection is None:
                raise StateError(f"the state store {self._path} is closed")
            try:
                yield self._connection
            except sqlite3.Error as exc:
                raise StateError(f"{what} failed in {self._path}: {explain(exc)}") from exc

    @contextlib.contextmanager
    def _transaction(self, what: str, *, bulk: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back when it raises.

        `bulk` (seeding) sets a large page cache and in-memory temporary files for the transaction.
        """
        _check_present(self._path, self._identity)
        with self._reading(what) as connection, bulk_settings(connection, bulk):
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back on its own (e.g. disk full); a failed COMMIT has not.
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    # --- snapshot ------------------------------------------------------------------------------

    def load(self, kind: Kind) -> pd.DataFrame:
        """The snapshot's objects of `kind`: index "sync_key"; columns "identity" (persons, groups) and
        the kind's fields.

        Every value is a string ("" for absent, pandas "str" dtype); rows are sorted by sync key. A
        membership's "group" and "person" are sync keys of groups and persons; its "active" is "true" or
        "false". Persons and memberships come from their Arrow cache when it matches the database (see
        sync.state.cache), else from SQLite (sync.state.loading), after which the cache is rewritten (in
        a thread without the run lock). Groups load straight from SQLite.

        Raises:
            StateError: the database cannot be read.
        """
        table, cache = table_of(kind), cache_of(kind)
        if cache is not None:
            return as_frame(self._load_cached(cache)[0], table.names)
        with self._reading(table.loading) as connection, one_read(connection):
            return as_frame(read_table(connection, table), table.names)

    def cache_path(self, kind: Kind) -> Path:
        """The derived Arrow copy of `kind`'s table (`CACHE_NAME`, `MEMBERSHIPS_CACHE_NAME` in the state
        directory); KeyError for a kind without one (groups)."""
        return self._path.parent / CACHES[kind.name].name

    def _load_cached(self, cache: Cache) -> tuple[Any, bool]:
        """(`cache`'s table sorted by sync key, True when the cache file missed and was rewritten)."""
        table, stamp, cached = self._load_table(cache)
        if not cached:  # a reader (plan) goes on while the copy is written
            write_cache(self._path.parent / cache.name, table, stamp, cache, wait=self._file_lock is not None)
        return table, not cached

    def _load_table(self, cache: Cache) -> tuple[Any, str, bool]:
        """(`cache`'s table sorted by sync key, its generation stamp, True when it came from the file)."""
        with self._reading(cache.table.loading) as connection:
            return load_table(connection, self._path.parent / cache.name, cache)

    def _stamp(self, cache: Cache = CACHES["person"]) -> str:
        """The generation stamp of a cached table (by default the persons')."""
        with self._reading("reading the snapshot generation") as connection:
            return generation_stamp(connection, cache)

    def _stamps(self) -> tuple[str, ...]:
        """The stamp of every cached table, in `CACHES` order, read in one read transaction."""
        with self._reading("reading the snapshot generation") as connection:
            return generation_stamps(connection)

    generation = _stamps  # public: any change advances it; an approved plan's fingerprint hashes it

    def refresh_cache(self) -> bool:
        """Rewrite each Arrow cache (persons, memberships) unlike the database; True when one was.

        Raises:
            StateError: the database cannot be read.
        """
        refreshed = [self._refresh(cache) for cache in CACHES.values()]  # every one, not up to the first
        return any(refreshed)

    def _refresh(self, cache: Cache) -> bool:
        if read_cache_stamp(self._path.parent / cache.name) == self._stamp(cache):
            return False
        return self._load_cached(cache)[1]

    def count(self, kind: Kind) -> int:
        """How many objects of `kind` the snapshot holds."""
        with self._reading("counting the snapshot") as connection:
            return int(connection.execute(table_of(kind).count_sql).fetchone()[0])

    def seed(self, kind: Kind, frame: pd.DataFrame, *, message_identifier: str = "seed") -> None:
        """Insert or replace many snapshot rows of `kind` in one transaction (benchmarks, tests, adopting);
        `frame` as `seed_rows` (sync/state/tables.py) takes it, `message_identifier` recorded as what
        confirmed the rows.

        Raises:
            ValueError: a sync key is empty or appears twice.
            StateError: the database cannot be written.
        """
        caller = f"seed_{kind.plural}"
        table = table_of(kind)
        rows = seed_rows(table, frame, caller=caller, message_identifier=message_identifier)
        with self._transaction(f"seeding the snapshot ({caller})", bulk=True) as connection:
            connection.executemany(table.upsert_sql, rows)

    # --- runs ----------------------------------------------------------------------------------

    def begin_run(self, *, command: str, roster: str, mapping: str) -> str:
        """Record a new run and return its id (sortable: UTC timestamp, then a short uuid)."""
        with self._transaction("recording the run start") as connection:
            return _journal.begin_run(connection, command=command, roster=roster, mapping=mapping)

    def end_run(
        self,
        run_id: str,
        *,
        status: str,
        summary: Mapping[str, int],
        roster_rows: Mapping[str, int] | None = None,
    ) -> None:
        """Record how a run ended, with each roster file's data rows (see `RunInfo`).

        Raises:
            StateError: no such run, or the database cannot be written.
        """
        with self._transaction("recording the run end") as connection:
            _journal.end_run(
                connection, self._path, run_id, status=status, summary=summary, roster_rows=roster_rows
            )

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        with self._reading("reading the runs") as connection:
            return _journal.read_runs(connection)

    def last_run_id(self) -> str | None:
        """The id of the most recently started run, or None when there is none."""
        with self._reading("reading the runs") as connection:
            return _journal.last_run_id(connection)

    # --- journal -------------------------------------------------------------------------------

    def unconfirmed_renames(self, kind: Kind, old_id: str) -> list[str]:
        """Targets of `kind`'s identifier changes (changePersonIdentifier, ...) from `old_id` never
        confirmed, most recent first, each once: such a request may have been applied with its answer
        lost, and the executor reads these ids to find where the object went."""
        with self._reading(f"reading unconfirmed renames of {old_id}") as connection:
            return _journal.unconfirmed_renames(connection, kind, old_id)

    def record_sent(self, request: SentRequest) -> None:
        """Journal a request as *sent*, with its items; committed (maybe in a group) before it goes out.

        Raises:
            StateError: unknown run id, a messageIdentifier used before, or a database failure.
        """
        what = f"journalling request {request.message_identifier}"
        self._commits.write(what, functools.partial(_journal.write_sent, request=request))

    def record_answer(self, answer: Answer, changes: Sequence[SnapshotChange] = ()) -> None:
        """Journal a request's answer and apply the snapshot changes it confirms, in one transaction
        (maybe shared with other threads' journal writes: see sync.state.commits); returns once committed.

        Items without their own `ItemAnswer` take the request's status and outcome. Each change is
        stamped with `answered_at` and the answer's messageIdentifier. Recording a second answer for
        the same request replaces the first (e.g. a later read that confirms it).

        Raises:
            StateError: unknown request or item; changes with an answer that does not confirm them
                (outcome not confirmed, or a messageIdRef that is not ours); a Rename whose old id is
                missing or whose new id exists. Nothing is written then.
        """
        self.record_answers([(answer, changes)])

    def record_answers(self, pairs: Sequence[tuple[Answer, Sequence[SnapshotChange]]]) -> None:
        """`record_answer` for several answers in one transaction (all or nothing).

        Raises:
            StateError: as `record_answer`, for any pair; then none of the pairs is written.
        """
        if not pairs:
            return
        first = pairs[0][0].message_identifier
        what = f"journalling {len(pairs)} answers" if len(pairs) > 1 else f"journalling the answer to {first}"
        self._commits.write(what, functools.partial(_journal.write_answers, path=self._path, pairs=pairs))

    def journal(self, run_id: str | None = None) -> list[JournalEntry]:
        """Journalled requests with their answers and items, in sent order.

        Args:
            run_id: one run's requests; None for every run.
        """
        with self._reading("reading the journal") as connection:
            return _journal.read_journal(connection, run_id)


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), None when it is gone."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _check_present(path: Path, identity: tuple[int, int] | None) -> None:
    """Refuse to write once the database file is no longer the one opened: its directory was deleted,
    moved or replaced while the store held it open, and what it writes would be lost with it."""
    if _identity(path) != identity:
        raise StateError(
            f"the state database {path} vanished while in use (its directory was deleted, moved or "
            "replaced): nothing more is sent; restore the state directory from a backup, or rerun to "
            "start a new one (what IMS ES already holds is then sent again, as updates)"
        )
