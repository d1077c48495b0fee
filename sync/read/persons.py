"""Persons from several files: the persons file of a set plus the files joined to it on the person's sync
key (`[[persons.join]]`: demographics, roles, relationships), and the links between persons (a
parent's children) read from any of them, in either direction.

Each file is read and checked on its own (`sync.read.roster`); then, column by column:

- a joined row whose person is not in the persons file is rejected (file, line, reason);
- a field takes the first non-empty value in the set's order (the persons file, then the joins in
  order): a guardian without a role in roles.csv takes the one relationships.csv gives;
- a file with several rows per person (`rules.many_rows`) gives the fields of the person's primary row
  (`primary` column in `rules.primary_values`), else of the person's first row;
- `children`, `parents` and `agents` (lists of sync keys) become one set of (parent, child) links,
  the same link read from both sides counted once; a link to a person not in the persons file is
  rejected, naming the row's file, line and column, and left out (the row's person is not held back
  for it: the other side is no person of the roster). `children` on each parent holds them
  (`CHILDREN_SEP`-joined, sorted).

Reads the roster files it is given and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.models import CHILDREN_SEP, Reject
from sync.read.checks import CONTROL_RE, check
from sync.read.columnar import shown_value, to_mask
from sync.read.mapping_types import MAX_SYNC_KEY_LENGTH, ColumnMapping
from sync.read.reading import LIST_FIELDS, PRIMARY_FIELD
from sync.read.roster import Roster, build, rejected_rows, rows_of
from sync.read.rows import Rows

__all__ = ["read_persons"]

#: Separates the sync keys of a list cell (`agentSourcedIds`: "usr-1,usr-2"), as in `children`.
LIST_SEP: Final = CHILDREN_SEP
_CARER: Final = "Carer"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Listed:
    """The list cells of one column of one file: whose row, which line, and the cell."""

    file: str
    column: str
    field: str  # children, parents or agents
    owners: Any  # pyarrow strings: the sync key of each row
    lines: Any  # numpy ints: each row's line
    cells: Any  # pyarrow strings: the list cell of each row


def read_persons(
    path: Path,
    mapping: ColumnMapping,
    joins: Sequence[tuple[Path, ColumnMapping]] = (),
    required: frozenset[str] = frozenset(),
) -> Roster:
    """The persons of `path` (read with `mapping`), with the fields and links of the joined files.

    `required` names fields every person must have once all files are joined (a person without a
    role in any of them is rejected, at its row of the persons file).

    Raises:
        RosterError: a file cannot be read at all (see `sync.read.roster.read_roster`).
    """
    rows = rows_of(path, mapping)
    check(rows)
    roster = build(rows)
    listed = _lists(rows, np.flatnonzero(~rejected_rows(rows)))
    if not joins and not listed and not required:
        return roster
    persons = _Persons(roster.frame.copy())
    rejected_keys = pa.array([r.sync_key for r in roster.rejects if r.sync_key], type=pa.large_string())
    known = pa.concat_arrays([persons.keys, rejected_keys])  # a rejected person is still a person
    rejects = list(roster.rejects)
    counts = dict(roster.rows)
    main_name = Path(roster.file).name
    for join_path, join_mapping in joins:
        joined_rows = rows_of(join_path, join_mapping)
        check(joined_rows)
        joined = build(joined_rows)
        counts.update(joined.rows)
        rejects.extend(joined.rejects)
        positions = np.flatnonzero(~rejected_rows(joined_rows))
        owners = joined_rows.raw["sync_key"].take(pa.array(positions))
        unknown = ~to_mask(pc.is_in(owners, value_set=known))
        rejects.extend(_not_in(joined_rows, positions[unknown], main_name))
        positions = positions[~unknown]  # the accepted rows of known persons
        listed.extend(_lists(joined_rows, positions))
        persons.fill(joined_rows, positions)
    rejects.extend(persons.require(required, rows))
    if "children" in persons.frame.columns:
        rejects.extend(persons.link(listed, known, main_name))
    return replace(roster, frame=persons.frame, rejects=tuple(rejects), rows=counts)


def _not_in(rows: Rows, positions: Any, main_name: str) -> list[Reject]:
    """Rejects for the joined rows whose person is not in the persons file (not protected: the
    persons file says who exists)."""
    column = rows.column("sync_key")
    return [
        Reject(
            file=rows.file,
            row=int(rows.lines[position]),
            field="sync_key",
            reason=(
                f"person {shown_value(rows.text('sync_key', position))!r} (column {column!r}) is not in "
                f"the persons file {main_name}"
            ),
        )
        for position in positions
    ]


def _arrow(values: Any) -> Any:
    """A pandas "str" array (or index) as an Arrow large-string array (no copy)."""
    array = pa.array(values.array if hasattr(values, "array") else values)
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return array.cast(pa.large_string())


class _Persons:
    """The persons frame as the joined files fill it, and its keys as Arrow (for hash lookups)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.keys = _arrow(frame.index)

    def fill(self, rows: Rows, positions: Any) -> None:
        """Fill the persons' empty fields with the joined file's values (its primary rows' when a
        person has several)."""
        mapped = [*rows.mapping.columns, *rows.mapping.constants]
        fields = [
            name for name in mapped if name in self.frame.columns and name not in {"sync_key", "children"}
        ]
        if not fields or not len(positions):
            return
        if rows.mapping.many_rows:
            positions = positions[_primary_first(rows, positions)]
        take = pa.array(positions)
        # index_in finds each person's first row: the primary one, as the rows are ordered so.
        found = pc.index_in(self.keys, value_set=rows.raw["sync_key"].take(take))
        for name in fields:
            values = pc.fill_null(rows.values[name].take(take).take(found), "")
            own = _arrow(self.frame[name])
            self.frame[name] = pd.array(pc.if_else(pc.equal(own, ""), values, own), dtype="str")

    def require(self, required: frozenset[str], rows: Rows) -> list[Reject]:
        """Reject (and drop) the persons still without a required field once every file is joined
        (not those marked for deletion)."""
        rejects = []
        dropped = np.zeros(len(self.frame), dtype=bool)
        marked = self.frame["delete"].to_numpy(dtype=bool)  # a row marked for deletion needs only its key
        for name in sorted(required):
            empty = to_mask(pc.equal(_arrow(self.frame[name]), "")) & ~marked
            column = rows.column(name) if name in rows.mapping.columns else name
            lines = self.frame["row"].to_numpy()
            for position in np.flatnonzero(empty & ~dropped):
                key = str(self.keys[position].as_py())
                rejects.append(
                    Reject(
                        file=rows.file,
                        row=int(lines[position]),
                        field=name,
                        reason=f"no {name} for {shown_value(key)!r} in any file (column {column!r})",
                        sync_key=key,
                    )
                )
            dropped |= empty
        if dropped.any():
            self.frame = self.frame[~dropped]
            self.keys = self.keys.filter(pa.array(~dropped))
        return rejects

    def link(self, listed: Sequence[_Listed], known: Any, main_name: str) -> list[Reject]:
        """Set each parent's `children` from every list cell; the links that cannot be are rejected."""
        rejects: list[Reject] = []
        roles = _arrow(self.frame["role"])
        pairs = [_pairs(cells, self.keys, roles, known, main_name, rejects) for cells in listed]
        parents = pa.concat_arrays([parent for parent, _ in pairs] or [pa.array([], pa.large_string())])
        children = pa.concat_arrays([child for _, child in pairs] or [pa.array([], pa.large_string())])
        links = pa.table({"parent": parents, "child": children}).filter(
            pc.is_in(parents, value_set=self.keys)
        )
        # Each link once (read from both sides, or twice), each parent's children sorted.
        links = (
            links.group_by(["parent", "child"])
            .aggregate([])
            .sort_by([("parent", "ascending"), ("child", "ascending")])
        )
        encoded = pc.dictionary_encode(links["parent"].combine_chunks())
        counts = np.bincount(
            np.asarray(encoded.indices.to_numpy(zero_copy_only=False)), minlength=len(encoded.dictionary)
        )
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), type=pa.int32())
        lists = pa.ListArray.from_arrays(offsets, links["child"].combine_chunks())
        joined = pc.binary_join(lists, pa.scalar(LIST_SEP, type=pa.large_string()))
        value = pc.fill_null(joined.take(pc.index_in(self.keys, value_set=encoded.dictionary)), "")
        self.frame["children"] = pd.array(value, dtype="str")
        return rejects


def _primary_first(rows: Rows, positions: Any) -> Any:
    """The order of `positions` that puts primary rows first (each group in file order)."""
    if PRIMARY_FIELD not in rows.raw:
        return np.arange(len(positions))
    marks = rows.raw[PRIMARY_FIELD].take(pa.array(positions))
    values = pa.array(sorted(rows.mapping.primary_values), type=pa.large_string())
    primary = to_mask(pc.is_in(pc.utf8_lower(marks), value_set=values))
    return np.argsort(~primary, kind="stable")


def _lists(rows: Rows, positions: Any) -> list[_Listed]:
    """The list cells of the rows at `positions`, one `_Listed` per column that holds any value."""
    found = []
    for name in LIST_FIELDS:
        if name not in rows.raw:
            continue
        cells = rows.raw[name]
        if not len(cells) or not pc.max(pc.binary_length(cells)).as_py():
            continue
        take = pa.array(positions)
        found.append(
            _Listed(
                file=rows.file,
                column=rows.column(name),
                field=name,
                owners=rows.raw["sync_key"].take(take),
                lines=rows.lines[positions],
                cells=cells.take(take),
            )
        )
    return found


def _pairs(
    cells: _Listed, keys: Any, roles: Any, known: Any, main_name: str, rejects: list[Reject]
) -> tuple[Any, Any]:
    """The (parent, child) links of one column's cells (two Arrow arrays); the bad ones appended to
    `rejects`."""
    lists = pc.split_pattern(cells.cells, pattern=LIST_SEP)
    rows = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
    others = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    present = pa.array(~to_mask(pc.equal(others, "")))
    rows, others = rows[present.to_numpy(zero_copy_only=False)], others.filter(present)
    owners = cells.owners.take(pa.array(rows))
    bad = to_mask(pc.greater(pc.utf8_length(others), MAX_SYNC_KEY_LENGTH)) | to_mask(
        pc.match_substring_regex(others, CONTROL_RE)
    )
    unknown = ~to_mask(pc.is_in(others, value_set=known)) & ~bad
    itself = to_mask(pc.equal(owners, others)) & ~bad
    undecided = np.zeros(len(rows), dtype=bool)
    owner_carer = other_carer = undecided
    if cells.field == "children":
        parent, child = owners, others
    elif cells.field == "parents":
        parent, child = others, owners
    else:  # agents: on a Carer its children, on anyone else their parents

        def carer(values: Any) -> Any:
            return to_mask(pc.equal(roles.take(pc.index_in(values, value_set=keys)), _CARER))

        owner_carer, other_carer = carer(owners), carer(others)
        owner_parent = pa.array(owner_carer | ~other_carer)
        parent = pc.if_else(owner_parent, owners, others)
        child = pc.if_else(owner_parent, others, owners)
        undecided = (owner_carer == other_carer) & ~bad & ~unknown & ~itself
    failed = bad | unknown | itself | undecided
    for i in np.flatnonzero(failed):
        value = shown_value(str(others[i].as_py()))
        if bad[i]:
            why = f"is not a sync key (over {MAX_SYNC_KEY_LENGTH} characters, or control characters)"
        elif unknown[i]:
            why = f"is not a person in {main_name}"
        elif itself[i]:
            why = "is the person itself"
        else:
            both = "both are" if owner_carer[i] else "neither is"
            why = f"cannot be told parent from child: {both} a {_CARER}"
        rejects.append(
            Reject(
                file=cells.file,
                row=int(cells.lines[rows[i]]),
                field=cells.field,
                # The link is left out; the person keeps the rest of the row (no sync key: not held).
                reason=(
                    f"{cells.field} value {value!r} in column {cells.column!r} (person "
                    f"{shown_value(str(owners[i].as_py()))!r}) {why}; the link is left out"
                ),
            )
        )
    keep = pa.array(~failed)
    return parent.filter(keep), child.filter(keep)
