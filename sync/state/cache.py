"""The Arrow caches: `persons.arrow` and `memberships.arrow`, stamped copies of two snapshot tables.

Loading the snapshot is what a plan of a million people waits on, so the state directory may also hold
`persons.arrow` and `memberships.arrow`, derived Arrow IPC copies of the persons and memberships tables
(their frame columns only). They are caches, never a source of truth: every change to a table bumps its
own generation counter (and a random nonce) in the same transaction, by SQLite triggers, and a cache is
used only when its stamp equals the database's; a missing, stale, foreign or unreadable cache is ignored
and rebuilt from SQLite (on load, and when a run that changed the table closes the store; a store
without the run lock, a plan's, writes it in a thread the process waits for at its exit, and plans on
meanwhile). Groups (a few thousand rows) have no cache: they load straight from SQLite.

Reads the generation rows through a connection it is given; writes nothing but the cache files.
"""

# Statements here are built from the kinds' table and column names (constants of sync.models.kinds and
# this package, never input); every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.ipc  # type: ignore[import-untyped]  # makes pa.ipc available

from sync.models import Kind
from sync.state.loading import one_read, read_table
from sync.state.schema import SCHEMA_VERSION
from sync.state.tables import TABLES, Table

__all__ = [
    "CACHES",
    "CACHE_NAME",
    "MEMBERSHIPS_CACHE_NAME",
    "Cache",
    "cache_of",
    "generation_stamp",
    "generation_stamps",
    "load_table",
    "read_cache",
    "read_cache_stamp",
    "wait_for_writes",
    "write_cache",
]

#: The derived Arrow IPC copy of the persons table (see the module docstring).
CACHE_NAME: Final = "persons.arrow"
#: The derived Arrow IPC copy of the memberships table (see the module docstring).
MEMBERSHIPS_CACHE_NAME: Final = "memberships.arrow"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cache:
    """The Arrow cache of one snapshot table: its file, the table it copies and the generation row that
    stamps it (bumped by triggers in every transaction that changes the table)."""

    name: str  # the file in the state directory; also part of the stamp
    table: Table
    generation_sql: str  # (generation, nonce) of the table's generation row
    # The file's schema: exactly the table's frame columns, as text with 32-bit offsets (smaller).
    schema: Any


def _cache(name: str, table: Table, generation_table: str) -> Cache:
    return Cache(
        name=name,
        table=table,
        generation_sql=f"SELECT generation, nonce FROM {generation_table} WHERE id = 0",
        schema=pa.schema([(column, pa.string()) for column in table.names]),
    )


#: The cached tables by kind name (the cache file, the generation table its triggers bump), in the order
#: `StateStore` stamps them: persons, memberships.
CACHES: Final[Mapping[str, Cache]] = {
    "person": _cache(CACHE_NAME, TABLES["person"], "snapshot_generation"),
    "membership": _cache(MEMBERSHIPS_CACHE_NAME, TABLES["membership"], "membership_generation"),
}
_STAMP_KEY: Final = b"ims-es-sync.snapshot.generation"


def cache_of(kind: Kind) -> Cache | None:
    """The cache of `kind`'s table, None when it has none (groups)."""
    return CACHES.get(kind.name)


def generation_stamp(connection: sqlite3.Connection, cache: Cache) -> str:
    """A cached table's generation stamp: schema version, cache name, change counter and nonce.

    The name keeps one table's cache from ever matching another's stamp; the nonce (new at every change)
    keeps a restored backup or another state directory (same counter, other history) from matching.
    """
    generation, nonce = connection.execute(cache.generation_sql).fetchone()
    return f"{SCHEMA_VERSION}:{cache.name}:{generation}:{nonce}"


def generation_stamps(connection: sqlite3.Connection) -> tuple[str, ...]:
    """The stamp of every cached table, in `CACHES` order, read in one read transaction."""
    with one_read(connection):
        return tuple(generation_stamp(connection, cache) for cache in CACHES.values())


def read_cache_stamp(path: Path) -> str | None:
    """The stamp a cache file was written for, or None when it is missing or unreadable."""
    try:
        with pa.memory_map(str(path)) as source:
            metadata = pa.ipc.open_file(source).schema.metadata or {}
    except (OSError, pa.ArrowException):
        return None
    stamp = metadata.get(_STAMP_KEY)
    return stamp.decode("utf-8", "replace") if stamp is not None else None


def read_cache(path: Path, stamp: str, cache: Cache) -> Any:
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


def write_cache(path: Path, table: Any, stamp: str, cache: Cache, *, wait: bool = True) -> None:
    """Write `cache` next to the database (owner-only, atomically by rename); failures are ignored.

    Only the cache's columns are written, whatever else `table` holds. The cache is an optimisation:
    a read-only state directory or a full disk costs the next load its speed, never its answer.
    Without `wait`, the file is written in a thread of its own, which the process waits for before it
    exits (no daemon): a plan goes on while the copy is written (the writer releases the GIL); until
    it is done, the next load reads SQLite again.
    """
    if not wait:
        writer = threading.Thread(
            target=_write, args=(path, table, stamp, cache), name=f"write {cache.name}", daemon=False
        )
        writer.start()
        _writing[:] = [thread for thread in _writing if thread.is_alive()] + [writer]
        return
    _write(path, table, stamp, cache)


_writing: list[threading.Thread] = []  # the writes started without `wait` (finished ones too)


def _write(path: Path, table: Any, stamp: str, cache: Cache) -> None:
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


def wait_for_writes() -> None:
    """Wait until every write started without `wait` is done."""
    for thread in list(_writing):
        thread.join()


def load_table(connection: sqlite3.Connection, path: Path, cache: Cache) -> tuple[Any, str, bool]:
    """(`cache`'s table as an Arrow table sorted by sync key, its generation stamp, True when it came
    from the cache file at `path`), read in one read transaction: the stamp belongs to exactly these rows.
    """
    with one_read(connection):
        current = generation_stamp(connection, cache)
        table = read_cache(path, current, cache)
        if table is not None:
            return table, current, True
        return read_table(connection, cache.table, cache.generation_sql), current, False
