"""The column-wise diff of one kind of record: its roster against its snapshot, as whole Arrow columns.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
Keys are matched with one hash lookup, fields compared as whole columns; the rows that become creates
or deletions leave as Arrow columns (`Taken`: a first night creates every row, kept as columns in
the plan), and only those that become updates, identifier changes or conflicts turn into Python
dicts. The rules are in `sync.plan.diff`; matching new keys by identity is `sync.plan.identity`'s;
turning what is found here into operations is `sync.plan.kind_plan`'s.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.models import Conflict
from sync.plan.identity import NewRows, Record, Renamed, held
from sync.read.roster import Roster

__all__ = [
    "Found",
    "Rows",
    "Side",
    "Taken",
    "arrow",
    "by_key",
    "diff_columns",
    "mask",
    "moved_keys",
    "text_frame",
    "text_spans",
]

REASON_NOT_IN_ROSTER: Final = "not in roster"
REASON_MARKED: Final = "marked tobedeleted"

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


def text_frame(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The `columns` of `frame` as pandas text columns (no copy when they already are)."""
    out = frame.loc[:, list(columns)]
    if any(out[name].dtype != "str" for name in columns) or out.index.dtype != "str":
        out = out.astype("str")
        out.index = out.index.astype("str")
    return out


def arrow(values: pd.Series | pd.Index | Collection[str]) -> Any:
    """Text values as one pyarrow large_string array (no copy for pandas' own text columns)."""
    if isinstance(values, pd.Series | pd.Index):
        array = pa.array(values.array) if values.dtype == "str" else pa.array(values.astype("str").array)
    else:
        array = pa.array(list(values), type=pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def text_spans(column: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """A large_string array's offsets (one more than its values, numpy views of its own buffer) and its
    whole data buffer as bytes: the value i is data[offsets[i]:offsets[i + 1]] in UTF-8."""
    start = column.offset
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[start : start + len(column) + 1]
    data = column.buffers()[2]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)


def by_key(keys: Any) -> Any:
    """The order of `keys` (an Arrow text array) by code point, as Python sorts them (UTF-8 bytes)."""
    return pc.sort_indices(keys)


def mask(values: Any) -> BoolArray:
    """An Arrow boolean array as numpy, null as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def moved_keys(frame: pd.DataFrame, column: str, renames: dict[str, str]) -> pd.DataFrame:
    """`frame` with the keys in `column` moved by planned renames, as the snapshot will hold them."""
    if not renames or not len(frame):
        return frame
    # Column-wise: a hash lookup of the old keys, then the new key where one was found.
    values = arrow(frame[column])
    old = pa.array(list(renames), type=pa.large_string())
    at = pc.index_in(values, value_set=old)
    if at.null_count == len(at):
        return frame
    moved = pc.coalesce(pc.take(pa.array(list(renames.values()), type=pa.large_string()), at), values)
    return frame.assign(**{column: pd.array(moved, dtype="str")})


def _pylist(values: Any) -> list[str]:
    """An Arrow text array as a Python list: an all-empty column (as most optional fields are) at once,
    one of a few distinct values (a role, a first name) as shared strings, taken through its dictionary:
    twice as fast, and a million rows hold a handful of strings instead of a million."""
    if not pc.sum(pc.binary_length(values)).as_py():
        return [""] * len(values)
    few = len(values) > _SAMPLE and pc.count_distinct(values.slice(0, _SAMPLE)).as_py() <= _SAMPLE // 10
    if few and not values.null_count:
        encoded = pc.dictionary_encode(values)
        distinct = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
        shared: list[str] = distinct[encoded.indices.to_numpy()].tolist()
        return shared
    result: list[str] = values.to_pylist()
    return result


#: How many values of a column `_pylist` looks at to guess whether few distinct values fill it.
_SAMPLE: Final = 1000


@dataclass(frozen=True, slots=True)
class Rows:
    """Some rows of one side as whole columns: their sync keys and each column's values, in one order."""

    keys: list[str]
    columns: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.keys)

    def records(self) -> list[Record]:
        """(sync key, values) per row."""
        names = tuple(self.columns)
        return [
            (key, dict(zip(names, row, strict=True)))
            for key, *row in zip(self.keys, *self.columns.values(), strict=True)
        ]


@dataclass(frozen=True, slots=True)
class Taken:
    """Some rows of one side as Arrow text columns: their sync keys and each column's values."""

    keys: Any
    columns: dict[str, Any]

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self) -> Rows:
        """The same rows as Python values."""
        return Rows(self.keys.to_pylist(), {name: _pylist(values) for name, values in self.columns.items()})


class Side:
    """One frame's keys and text columns as arrow arrays; rows turn into Python values only on request."""

    def __init__(self, frame: pd.DataFrame, columns: Sequence[str]) -> None:
        self.keys = arrow(frame.index)
        self.columns = {name: arrow(frame[name]) for name in columns}

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, positions: IntArray, columns: Sequence[str]) -> Rows:
        """The rows at `positions`, in that order, as whole columns."""
        take = pa.array(positions, type=pa.int64())
        columns_taken = {name: _pylist(self.columns[name].take(take)) for name in columns}
        return Rows(self.keys.take(take).to_pylist(), columns_taken)

    def taken(self, positions: IntArray, columns: Sequence[str]) -> Taken:
        """The rows at `positions`, in that order, as Arrow columns (never Python values)."""
        take = pa.array(positions, type=pa.int64())
        return Taken(self.keys.take(take), {name: self.columns[name].take(take) for name in columns})

    def records(self, positions: IntArray, columns: Sequence[str]) -> list[Record]:
        """(sync key, values) for the rows at `positions` (a few, in practice)."""
        return self.rows(positions, columns).records()

    def by_key(self, positions: IntArray) -> IntArray:
        """`positions` in the order of their rows' sync keys (by code point, as Python compares them)."""
        if len(positions) < 2:
            return positions
        order = by_key(self.keys.take(pa.array(positions, type=pa.int64())))
        return np.asarray(positions[order.to_numpy()], dtype=np.intp)

    def is_in(self, keys: frozenset[str] | Any, column: str = "") -> BoolArray:
        """Per row: is its key (or `column`'s value) one of `keys` (a set, or an Arrow text array)?"""
        values = self.columns[column] if column else self.keys
        if not len(keys) or not len(values):
            return np.zeros(len(values), dtype=bool)
        value_set = pa.array(sorted(keys), type=pa.large_string()) if isinstance(keys, frozenset) else keys
        return mask(pc.is_in(values, value_set=value_set))


#: How many roster rows `_present` compares with the snapshot at once.
_COMPARED: Final = 1 << 17


@dataclass(slots=True, kw_only=True)
class Found:
    """What the column diff of one kind of record found, before it becomes operations."""

    updates: list[tuple[str, dict[str, str], dict[str, str]]]  # key, new values, old values
    creates: Taken  # in sync key order, with the compared and the extra columns
    renames: list[Renamed]
    deletions: Taken  # the snapshot's rows
    deletion_reasons: list[str]  # per deletion
    conflicts: list[Conflict]
    unchanged: int


@dataclass(slots=True, kw_only=True)
class _Joined:
    """The roster's rows and the snapshot's, matched by sync key, and which of them are protected."""

    rows: Side
    snap: Side
    marked: BoolArray  # per roster row: marked for deletion
    position: IntArray  # per roster row: its row in the snapshot (-1: not there)
    in_roster: BoolArray  # per snapshot row: its key is a roster row's
    row_protected: BoolArray  # per roster row: shares a key or identity with a rejected row
    snap_protected: BoolArray  # per snapshot row: the same
    protected_snapshot_keys: set[str]


def _join(roster: Roster, snapshot: pd.DataFrame, columns: Sequence[str], extra: Sequence[str]) -> _Joined:
    rows = Side(roster.frame, (*columns, *extra))
    snap = Side(snapshot, columns)
    # The one hash join: where each roster key sits in the snapshot (-1: not there).
    position = np.asarray(
        pc.fill_null(pc.index_in(rows.keys, value_set=snap.keys), -1).to_numpy(zero_copy_only=False),
        dtype=np.intp,
    )
    in_roster = np.zeros(len(snap), dtype=bool)
    in_roster[position[position >= 0]] = True
    protected_keys = frozenset(r.sync_key for r in roster.rejects if r.sync_key)
    snap_protected = snap.is_in(protected_keys)
    row_protected = rows.is_in(protected_keys)
    if "identity" in columns:
        protected_ids = frozenset(i for i in roster.rejected_identities if i)
        snap_protected |= snap.is_in(protected_ids, "identity")
        row_protected |= rows.is_in(protected_ids, "identity")
    return _Joined(
        rows=rows,
        snap=snap,
        # to_numpy, not np.asarray: numpy probes a Series for __array_interface__, which makes pandas
        # hash the whole text index (0.05 s per 300,000 keys).
        marked=roster.frame["delete"].to_numpy(dtype=bool),
        position=position,
        in_roster=in_roster,
        row_protected=row_protected,
        snap_protected=snap_protected,
        protected_snapshot_keys={key for key, _ in snap.records(np.flatnonzero(snap_protected), ())},
    )


def _present(
    joined: _Joined, columns: Sequence[str], noun: str, conflicts: list[Conflict]
) -> tuple[list[tuple[str, dict[str, str], dict[str, str]]], int]:
    """Keys in both: the updates and the count unchanged, appending the held rows' conflicts."""
    rows, snap, position = joined.rows, joined.snap, joined.position
    present = ~joined.marked & (position >= 0)
    changed = np.zeros(len(rows), dtype=bool)
    if present.any():
        aligned = np.where(present, position, 0)
        # a slice of rows at a time: each column's snapshot values aligned with the roster's are a copy
        # (tens of MB per column at 10^6 rows), made and dropped a slice at a time
        for start in range(0, len(rows), _COMPARED):
            at = pa.array(aligned[start : start + _COMPARED], type=pa.int64())
            part = changed[start : start + _COMPARED]
            for name in columns:
                part |= mask(
                    pc.not_equal(rows.columns[name].slice(start, len(at)), snap.columns[name].take(at))
                )
    on_hold = present & joined.row_protected
    on_hold[present] |= joined.snap_protected[position[present]]
    changed &= present & ~on_hold
    unchanged = int((present & ~changed & ~on_hold).sum())
    changed_at = np.flatnonzero(changed)
    updates = [
        (key, new_values, old_values)
        for (key, new_values), (_, old_values) in zip(
            rows.records(changed_at, columns), snap.records(position[changed_at], columns), strict=True
        )
    ]
    identity_of = ("identity",) if "identity" in columns else ()
    for key, values in rows.records(np.flatnonzero(on_hold), identity_of):
        conflicts.append(held(key, values.get("identity", ""), snapshot_keys=(key,), noun=noun))
    return updates, unchanged


def _deletions(joined: _Joined, columns: Sequence[str], consumed: set[str]) -> tuple[Taken, list[str]]:
    """Snapshot keys gone from the roster (and not renamed), then those the roster marks: rows, reasons."""
    snap, position = joined.snap, joined.position
    gone_at = np.flatnonzero(~joined.in_roster & ~joined.snap_protected & ~snap.is_in(frozenset(consumed)))
    marked_at = position[joined.marked & (position >= 0)]
    marked_at = marked_at[~joined.snap_protected[marked_at]]
    reasons = [REASON_NOT_IN_ROSTER] * len(gone_at) + [REASON_MARKED] * len(marked_at)
    return snap.taken(np.concatenate([gone_at, marked_at]), columns), reasons


def diff_columns(
    roster: Roster,
    snapshot: pd.DataFrame,
    *,
    columns: Sequence[str],
    extra: Sequence[str] = (),
    renames: bool,
    noun: str,
) -> Found:
    """The column-wise diff of one kind of record (see `sync.plan.diff` for the rules).

    Args:
        roster: accepted rows (frame indexed by sync key with `columns`, `extra` and "delete") + rejects.
        snapshot: what IMS ES confirmed: index "sync_key", `columns`, all text.
        columns: the compared columns; "identity" among them enables protection by identity.
        extra: roster columns carried to creates but never compared (the password).
        renames: recognise changed sync keys by identity.
        noun: what a record is, for conflict texts ("person", "group", "membership").
    """
    joined = _join(roster, snapshot, columns, extra)
    rows, snap = joined.rows, joined.snap
    conflicts: list[Conflict] = []
    updates, unchanged = _present(joined, columns, noun, conflicts)
    # New keys: create, changeIdentifier, or conflict. Only the rows a rejected row protects or whose
    # identity a snapshot record gone from the roster has are contested; the others are creates.
    new = ~joined.marked & (joined.position < 0)
    contested = new & joined.row_protected
    matching = renames and "identity" in columns
    if matching:
        gone_identities = snap.columns["identity"].filter(pa.array(~joined.in_roster))
        identity = rows.columns["identity"]
        contested |= new & rows.is_in(gone_identities, "identity") & mask(pc.not_equal(identity, ""))
    contested_at = np.flatnonzero(contested)
    matcher = NewRows(
        new=rows.records(contested_at, (*columns, *extra)),
        protected=joined.row_protected[contested_at],
        protected_snapshot_keys=joined.protected_snapshot_keys,
        noun=noun,
    )
    if matching and matcher.claims:
        wanted = ~joined.in_roster & snap.is_in(frozenset(matcher.claims), "identity")
        matcher.add_candidates(snap.records(np.flatnonzero(wanted), columns))
    renamed, created, consumed = matcher.match(conflicts)
    create_at = np.concatenate([np.flatnonzero(new & ~contested), contested_at[created]])
    deletions, reasons = _deletions(joined, columns, consumed)
    return Found(
        updates=updates,
        creates=rows.taken(rows.by_key(create_at), (*columns, *extra)),
        renames=renamed,
        deletions=deletions,
        deletion_reasons=reasons,
        conflicts=conflicts,
        unchanged=unchanged,
    )
