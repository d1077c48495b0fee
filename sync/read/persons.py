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
  rejected, naming the row's file, line and column. `children` on each parent holds them
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
from sync.read.columnar import BoolArray, shown_value, to_mask
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
    frame = roster.frame.copy()
    known = pd.Index(frame.index).append(pd.Index([r.sync_key for r in roster.rejects if r.sync_key]))
    rejects = list(roster.rejects)
    counts = dict(roster.rows)
    main_name = Path(roster.file).name
    for join_path, join_mapping in joins:
        joined_rows = rows_of(join_path, join_mapping)
        check(joined_rows)
        joined = build(joined_rows)
        counts.update(joined.rows)
        rejects.extend(joined.rejects)
        unknown = ~joined.frame.index.isin(known)
        rejects.extend(_not_in(joined, unknown, joined_rows.column("sync_key"), main_name))
        positions = np.flatnonzero(~rejected_rows(joined_rows))[~unknown]  # the known accepted rows
        listed.extend(_lists(joined_rows, positions))
        _fill(frame, joined.frame[~unknown], joined_rows, positions)
    missing = _missing(frame, required, roster.file, rows)
    if missing:
        rejects.extend(missing)
        frame = frame[~frame.index.isin([reject.sync_key for reject in missing])]
    if "children" in frame.columns:
        _link(frame, listed, known, main_name, rejects)
    return replace(roster, frame=frame, rejects=tuple(rejects), rows=counts)


def _not_in(joined: Roster, unknown: BoolArray, column: str, main_name: str) -> list[Reject]:
    """Rejects for the joined rows whose person is not in the persons file (not protected: the
    persons file says who exists)."""
    keys = joined.frame.index[unknown]
    lines = joined.frame["row"].to_numpy()[unknown]
    return [
        Reject(
            file=joined.file,
            row=int(line),
            field="sync_key",
            reason=(
                f"person {shown_value(str(key))!r} (column {column!r}) is not in the persons file {main_name}"
            ),
        )
        for key, line in zip(keys, lines, strict=True)
    ]


def _fill(frame: pd.DataFrame, joined: pd.DataFrame, rows: Rows, positions: Any) -> None:
    """Fill the persons' empty fields with the joined file's values (its primary rows' when a person
    has several)."""
    fields = [name for name in rows.mapping.columns if name in frame.columns and name not in LIST_FIELDS]
    fields += [name for name in rows.mapping.constants if name in frame.columns and name not in fields]
    fields = [name for name in fields if name not in {"sync_key", "children"}]
    if not fields or joined.empty:
        return
    if rows.mapping.many_rows:
        joined = joined.iloc[_primary_first(rows, positions)]
        joined = joined[~joined.index.duplicated(keep="first")]
    for name in fields:
        values = joined[name].reindex(frame.index, fill_value="")
        frame[name] = frame[name].where(frame[name] != "", values)


def _primary_first(rows: Rows, positions: Any) -> Any:
    """The joined frame's rows, primary rows first (each group in file order)."""
    if PRIMARY_FIELD not in rows.raw:
        return np.arange(len(positions))
    marks = rows.raw[PRIMARY_FIELD].take(pa.array(positions))
    primary = to_mask(pc.is_in(pc.utf8_lower(marks), value_set=pa.array(sorted(rows.mapping.primary_values))))
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


def _missing(frame: pd.DataFrame, required: frozenset[str], file: str, rows: Rows) -> list[Reject]:
    """Rejects for persons still without a required field once every file is joined."""
    rejects = []
    for name in sorted(required):
        empty = (frame[name] == "").to_numpy()
        for key, line in zip(frame.index[empty], frame["row"].to_numpy()[empty], strict=True):
            column = rows.column(name) if name in rows.mapping.columns else name
            rejects.append(
                Reject(
                    file=file,
                    row=int(line),
                    field=name,
                    reason=f"no {name} for {shown_value(str(key))!r} in any file (column {column!r})",
                    sync_key=str(key),
                )
            )
    return rejects


def _link(
    frame: pd.DataFrame, listed: Sequence[_Listed], known: pd.Index, main_name: str, rejects: list[Reject]
) -> None:
    """Set each parent's `children` from every list cell; reject the links that cannot be."""
    pairs = [_pairs(cells, frame, known, main_name, rejects) for cells in listed]
    links = pd.concat(pairs) if pairs else pd.DataFrame({"parent": [], "child": []}, dtype="str")
    links = links[links["parent"].isin(frame.index)].drop_duplicates()
    children = (
        links.sort_values(["parent", "child"]).groupby("parent", sort=False)["child"].agg(LIST_SEP.join)
        if len(links)
        else pd.Series([], dtype="str")
    )
    frame["children"] = pd.array(children.reindex(frame.index, fill_value="").to_numpy(), dtype="str")


def _pairs(
    cells: _Listed, frame: pd.DataFrame, known: pd.Index, main_name: str, rejects: list[Reject]
) -> pd.DataFrame:
    """The (parent, child) links of one column's cells; the bad ones appended to `rejects`."""
    lists = pc.split_pattern(cells.cells, pattern=LIST_SEP)
    rows = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
    others = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    present = ~to_mask(pc.equal(others, ""))
    rows, others = rows[present], others.filter(pa.array(present))
    owners = cells.owners.take(pa.array(rows))
    owner = pd.Series(owners.to_pandas(), dtype="str")
    other = pd.Series(others.to_pandas(), dtype="str")
    bad = np.asarray(
        to_mask(pc.greater(pc.utf8_length(others), MAX_SYNC_KEY_LENGTH))
        | to_mask(pc.match_substring_regex(others, CONTROL_RE)),
    )
    unknown = ~other.isin(known).to_numpy() & ~bad
    itself = (owner == other).to_numpy() & ~bad
    if cells.field == "children":
        parent, child = owner, other
        undecided = np.zeros(len(owner), dtype=bool)
    elif cells.field == "parents":
        parent, child = other, owner
        undecided = np.zeros(len(owner), dtype=bool)
    else:  # agents: on a Carer its children, on anyone else their parents
        roles = frame["role"]
        owner_carer = (owner.map(roles) == _CARER).to_numpy(dtype=bool, na_value=False)
        other_carer = (other.map(roles) == _CARER).to_numpy(dtype=bool, na_value=False)
        parent = owner.where(owner_carer | ~other_carer, other)
        child = other.where(owner_carer | ~other_carer, owner)
        undecided = (owner_carer == other_carer) & ~bad & ~unknown & ~itself
    failed = bad | unknown | itself | undecided
    for i in np.flatnonzero(failed):
        value = shown_value(str(other.iloc[i]))
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
                reason=f"{cells.field} value {value!r} in column {cells.column!r} {why}",
                sync_key=str(owner.iloc[i]),
            )
        )
    keep = ~failed
    return pd.DataFrame({"parent": parent[keep].to_numpy(), "child": child[keep].to_numpy()}, dtype="str")
