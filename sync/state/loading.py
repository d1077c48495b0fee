"""Reading a snapshot table fast: SQLite packs each column of a chunk of rows into one blob, numpy
splits them and Arrow views the values as strings, so no Python object is made per value; then the frame.

Loading the snapshot is what a plan of a million people waits on; a large table is read by two
connections at once, half of the columns each (SQLite releases the GIL), when both see the same
generation of the table. Imports sqlite3 (to read), numpy, pyarrow and pandas; knows nothing of the
cache files or the journal.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final
from urllib.request import pathname2url

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.read.memory import give_back_freed
from sync.state.tables import SEP, Table

__all__ = ["LOAD_CHUNK", "PARALLEL_ROWS", "as_frame", "one_read", "read_table"]

# Rows per packed read: millions of people in one chunk (no chunks to join afterwards); from a chunk
# whose packed column exceeds SQLite's string limit (1 GB: values of 500 bytes on average) on, the
# rows are read in halves, quarters...
LOAD_CHUNK: Final = 2_000_000
# Tables of this many rows or more are read by two connections at once (see read_table).
PARALLEL_ROWS: Final = 100_000


@contextlib.contextmanager
def one_read(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement of the block sees the same committed state."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")


def read_table(connection: sqlite3.Connection, table: Table, generation_sql: str = "") -> Any:
    """A snapshot table as an Arrow table sorted by sync key (packed read; plain when that cannot split).

    `generation_sql` reads the table's generation row (bumped by triggers in every transaction that
    changes the table). With it, a table of `PARALLEL_ROWS` rows or more is read by two connections
    at once, half of the columns each, when a CPU is idle: SQLite's packing is most of a load, and it
    releases the GIL.
    The second connection's columns are used only when it sees the generation `connection` sees,
    i.e. the same rows; else (or when it cannot read at all) `connection` reads them too.
    """
    arrow = _load_packed(connection, table, generation_sql)
    if arrow is None:  # a value holds the separator: take the plain (slower) path
        rows = connection.execute(table.select_sql).fetchall()
        arrow = _sorted(
            pa.table(
                [
                    pa.array([row[i] for row in rows], type=pa.large_string())
                    for i in range(len(table.columns))
                ],
                names=list(table.names),
            )
        )
    return arrow


class _Unhelped(Exception):
    """The second connection cannot read the columns it was given (another generation, an error)."""


def _load_packed(connection: sqlite3.Connection, table: Table, generation_sql: str) -> Any:
    """A table as an Arrow table via packed columns split with numpy; None when a value holds the
    separator.

    For each chunk of rows SQLite packs every column into one blob (the column's values joined by
    char(31)); numpy finds the separators and Arrow views the rest as strings, so no Python object is
    made per value and no value is gathered from between other columns' values.
    """
    database = _database(connection) if generation_sql and _idle_cpu() else ""
    helped = list(table.columns[1::2]) if database and _large(connection, table) else []
    with ThreadPoolExecutor(max_workers=1) as pool:
        helper = None
        if helped:
            generation = connection.execute(generation_sql).fetchone()
            helper = pool.submit(_helped, database, table, helped, generation_sql, generation)
        own = _read_columns(connection, table, [c for c in table.columns if c not in helped])
        try:
            other = helper.result() if helper is not None else {}
        except _Unhelped:
            other = _read_columns(connection, table, helped) if own is not None else None
    if helped:  # (the second connection's thread freed its packed columns in an arena of its own)
        give_back_freed()
    if own is None or other is None:
        return None
    arrays = {**own, **other}
    return _sorted(pa.table([arrays[column] for column in table.columns], names=list(table.names)))


#: Linux's load figures: the 4th field is "runnable/total" scheduling entities at this moment.
_LOADAVG: Final = Path("/proc/loadavg")


def _idle_cpu() -> bool:
    """Whether a CPU is idle now: only then does a second connection shorten a load; on a busy machine
    it would only add its own scan of the table. Told by the entities runnable at this moment
    (/proc/loadavg, this process among them), not the last minute's average, which counts what ran
    before (a plan run just before this one) as load; where the system has no such file, by the
    average."""
    cpus = os.cpu_count() or 1
    try:
        runnable = int(_LOADAVG.read_text(encoding="ascii").split()[3].partition("/")[0])
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0] <= cpus - 1
        except OSError:  # (not on every system)
            return False
    return runnable <= cpus - 1


def _database(connection: sqlite3.Connection) -> str:
    """The file of `connection`'s main database ("" in memory)."""
    for _, name, file in connection.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(file or "")
    return ""


def _large(connection: sqlite3.Connection, table: Table) -> bool:
    """Whether `table` holds `PARALLEL_ROWS` rows or more (rowid tables: spans that many rowids)."""
    if not table.next_bound_sql:
        low, high = connection.execute(table.bounds_sql).fetchone()
        return low is not None and high - low + 1 >= PARALLEL_ROWS
    (low,) = connection.execute(table.bounds_sql).fetchone()
    return low is not None and (
        connection.execute(table.next_bound_sql, (low, PARALLEL_ROWS - 1)).fetchone() is not None
    )


def _helped(
    database: str, table: Table, columns: list[str], generation_sql: str, generation: Any
) -> dict[str, Any] | None:
    """`_read_columns` of `columns` by a read-only connection of its own, in a transaction that sees
    `generation`.

    Raises:
        _Unhelped: the connection sees another generation (a change committed meanwhile), or SQLite
            failed (the caller's connection reads the columns, and says what fails).
    """
    try:
        helper = sqlite3.connect(
            f"file:{pathname2url(database)}?mode=ro", uri=True, timeout=0, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise _Unhelped from exc
    try:
        with one_read(helper):
            if helper.execute(generation_sql).fetchone() != generation:
                raise _Unhelped
            return _read_columns(helper, table, columns)
    except sqlite3.Error as exc:
        raise _Unhelped from exc
    finally:
        helper.close()


def _read_columns(connection: sqlite3.Connection, table: Table, columns: list[str]) -> dict[str, Any] | None:
    """`columns` of `table` in rowid or sync key order, by column name; None when a value holds the
    separator."""
    chunks: dict[str, list[Any]] = {column: [] for column in columns}
    if not columns:
        return {}
    for count, *blobs in _packed_chunks(connection, table, columns):
        if not count:
            continue
        for column, blob in zip(columns, blobs, strict=True):
            strings = _split(blob or b"", count)
            if strings is None:
                return None
            chunks[column].append(strings)
    return {column: pa.chunked_array(arrays, type=pa.large_string()) for column, arrays in chunks.items()}


def _split(blob: bytes, count: int) -> Any:
    """The `count` values packed in `blob` (joined by the separator) as a large string array; None
    when the blob holds more separators than `count` values have between them."""
    raw = np.frombuffer(blob, dtype=np.uint8)
    is_sep = raw == ord(SEP)
    positions = np.flatnonzero(is_sep)
    # Exactly count - 1 separators, unless a value itself holds one: then the split is ambiguous.
    if len(positions) != count - 1:
        return None
    data = raw[~is_sep] if count > 1 else raw
    offsets = np.empty(count + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:-1] = positions - np.arange(count - 1)  # each value starts where its separator was
    offsets[-1] = len(data)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    ).cast(pa.large_string())  # the cast validates UTF-8


def _packed_chunks(
    connection: sqlite3.Connection, table: Table, columns: list[str]
) -> Iterator[tuple[Any, ...]]:
    """(row count, each of `columns`' packed values as bytes; None when empty) for each chunk: rowid
    or sync key ranges of `LOAD_CHUNK` rows, fewer from the first whose packed column is too long."""
    size = LOAD_CHUNK
    packed_sql, tail_sql = table.packed_sql(columns)
    if not table.next_bound_sql:
        low, high = connection.execute(table.bounds_sql).fetchone()
        start = low if low is not None else 1
        while start <= (high or 0):
            packed = _packed(connection, packed_sql, (start, start + size - 1), size)
            if packed is None:
                size //= 2
                continue
            yield packed
            start += size
        return
    (low,) = connection.execute(table.bounds_sql).fetchone()
    while low is not None:
        bound = connection.execute(table.next_bound_sql, (low, size)).fetchone()
        if bound is None:
            packed = _packed(connection, tail_sql, (low,), size)
        else:
            packed = _packed(connection, packed_sql, (low, bound[0]), size)
        if packed is None:
            size //= 2
        elif bound is None:
            yield packed
            return
        else:
            yield packed
            low = bound[0]


def _packed(connection: sqlite3.Connection, sql: str, bounds: tuple[Any, ...], size: int) -> Any:
    """The packed chunk `sql` reads within `bounds`; None when a packed column of these `size` rows is
    longer than SQLite allows (a billion bytes by default): the caller reads fewer rows at a time."""
    try:
        return connection.execute(sql, bounds).fetchone()
    except sqlite3.DataError:  # "string or blob too big"
        if size <= 1:
            raise
        return None


def _sorted(table: Any) -> Any:
    """`table` in sync key order (unique keys), one chunk per column; rowid order is confirmation order."""
    table = table.combine_chunks()  # take() on one chunk per column is several times faster
    keys = table.column("sync_key")
    if len(keys) > 1 and not pc.all(pc.greater(keys[1:], keys[:-1])).as_py():
        table = table.take(pc.sort_indices(keys))
    return table


def as_frame(table: Any, names: Sequence[str]) -> pd.DataFrame:
    """The frame of a snapshot table, `names` its columns with "sync_key" first (pandas' Arrow-backed
    text columns: no copy)."""
    columns = {name: pd.array(table.column(name), dtype="str") for name in names}
    index = pd.Index(columns.pop("sync_key"), name="sync_key")
    return pd.DataFrame(columns, index=index)
