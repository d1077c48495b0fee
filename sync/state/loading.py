"""Reading a snapshot table fast: SQLite packs each column of a chunk of rows into one blob, numpy
splits them and Arrow views the values as strings, so no Python object is made per value; then the frame.

Loading the snapshot is what a plan of a million people waits on. Imports sqlite3 (to read), numpy,
pyarrow and pandas; knows nothing of the cache files or the journal.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.state.tables import SEP, Table

__all__ = ["LOAD_CHUNK", "as_frame", "one_read", "read_table"]

# Rows per packed read: millions of people in one chunk (no chunks to join afterwards); from a chunk
# whose packed column exceeds SQLite's string limit (1 GB: values of 500 bytes on average) on, the
# rows are read in halves, quarters...
LOAD_CHUNK: Final = 2_000_000


@contextlib.contextmanager
def one_read(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement of the block sees the same committed state."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")


def read_table(connection: sqlite3.Connection, table: Table) -> Any:
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
                names=list(table.names),
            )
        )
    return arrow


def _load_packed(connection: sqlite3.Connection, table: Table) -> Any:
    """A table as an Arrow table via packed columns split with numpy; None when a value holds the
    separator.

    For each chunk of rows SQLite packs every column into one blob (the column's values joined by
    char(31)); numpy finds the separators and Arrow views the rest as strings, so no Python object is
    made per value and no value is gathered from between other columns' values.
    """
    chunks: list[list[Any]] = [[] for _ in table.names]
    for count, *blobs in _packed_chunks(connection, table):
        if not count:
            continue
        for column, blob in zip(chunks, blobs, strict=True):
            strings = _split(blob or b"", count)
            if strings is None:
                return None
            column.append(strings)
    arrays = [pa.chunked_array(column, type=pa.large_string()) for column in chunks]
    return _sorted(pa.table(arrays, names=list(table.names)))


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


def _packed_chunks(connection: sqlite3.Connection, table: Table) -> Iterator[tuple[Any, ...]]:
    """(row count, each column's packed values as bytes; None when empty) for each chunk: rowid or
    sync key ranges of `LOAD_CHUNK` rows, fewer from the first whose packed column is too long."""
    size = LOAD_CHUNK
    if table.key_ranges is None:
        low, high = connection.execute(table.bounds_sql).fetchone()
        start = low if low is not None else 1
        while start <= (high or 0):
            packed = _packed(connection, table.packed_sql, (start, start + size - 1), size)
            if packed is None:
                size //= 2
                continue
            yield packed
            start += size
        return
    next_bound_sql, tail_sql = table.key_ranges
    (low,) = connection.execute(table.bounds_sql).fetchone()
    while low is not None:
        bound = connection.execute(next_bound_sql, (low, size)).fetchone()
        if bound is None:
            packed = _packed(connection, tail_sql, (low,), size)
        else:
            packed = _packed(connection, table.packed_sql, (low, bound[0]), size)
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
