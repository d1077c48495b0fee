"""Roster CSV + mapping → canonical persons, groups or memberships (a DataFrame) and the rows set
aside as rejects: the entry points, and the roster built from the checked rows.

Reading is column-wise so that a million rows take about a second: the file is checked or decoded to
UTF-8 once (`sync.read.encoding`), pyarrow parses the values into large strings that pandas wraps
without a copy (`sync.read.csvparse`), and validation runs on whole columns (`sync.read.checks`,
`sync.read.duplicates`), skipping work a cheap byte-level check shows is not needed and hashing key
columns on two threads. Python touches single rows only to describe the (few) rejects.
Reads the roster files it is given and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from sync.models import Reject
from sync.read.checks import check
from sync.read.columnar import BoolArray, shown_value
from sync.read.csvparse import BadRow, find_delimiter, is_blank, parse
from sync.read.duplicates import flag_across_files
from sync.read.encoding import read_file, to_utf8
from sync.read.mapping_types import MAX_VALUE_LENGTH, ColumnMapping
from sync.read.reading import READINGS, Reading
from sync.read.rows import Rows

__all__ = [
    "FRAME_COLUMNS",
    "GROUP_FRAME_COLUMNS",
    "MAX_VALUE_LENGTH",
    "MEMBERSHIP_FRAME_COLUMNS",
    "ROW_FIELD",
    "Roster",
    "read_groups",
    "read_memberships",
    "read_roster",
]

#: The columns of a persons `Roster.frame`, in order (the index is "sync_key"):
#: "identity", the PERSON_FIELDS, "password", "row", "delete".
FRAME_COLUMNS: Final = READINGS["persons"].frame_columns

#: The columns of a groups `Roster.frame` (index "sync_key"): text, except row (int) and delete (bool).
GROUP_FRAME_COLUMNS: Final = READINGS["groups"].frame_columns

#: The columns of a memberships `Roster.frame` (index "sync_key"): text ("active" is always "true"),
#: except row (int) and delete (bool).
MEMBERSHIP_FRAME_COLUMNS: Final = READINGS["memberships"].frame_columns

#: `Reject.field` of a row that could not be split into the header's columns.
ROW_FIELD: Final = "row"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)  # a DataFrame has no plain ==
class Roster:
    """A roster file read through a mapping.

    `frame` is indexed by "sync_key" (unique) and holds the accepted rows only, in file order. For
    persons its columns are `FRAME_COLUMNS`: "identity", the PERSON_FIELDS, "password" (text, "" =
    absent), "row" (the record's 1-based line number in the file) and "delete" (True for rows the
    mapping's `delete_when` marks). For groups they are `GROUP_FRAME_COLUMNS` and for memberships
    `MEMBERSHIP_FRAME_COLUMNS`, both with a "file" column naming the file each row came from (a groups
    roster may combine several files; `file` then joins their names with ", "). `rejected_identities`
    holds the identity values of rejected rows, so that the diff can protect the persons (groups) they
    belong to. `rows` holds each file's data rows: every non-blank record, accepted, rejected or
    skipped (`rules.skip_unmapped`), counted once even when `rules.split` makes several rows of it.
    The repr leaves out the frame: it holds passwords.
    """

    file: str
    frame: pd.DataFrame = field(repr=False)
    rejects: tuple[Reject, ...]
    rejected_identities: frozenset[str] = frozenset()
    rows: Mapping[str, int] = field(default_factory=dict)  # file -> data rows read


def read_roster(path: Path, mapping: ColumnMapping) -> Roster:
    """Read and validate a roster CSV file of the mapping's kind (persons, groups or memberships).

    Args:
        path: the CSV file.
        mapping: how to read it (see `sync.read.mapping.load_mapping`).

    Raises:
        RosterError: the file as a whole cannot be read: missing, not decodable in the mapping's
            encoding, no header, or a required column missing from the header. Bad rows are not
            errors: they come back as `Roster.rejects`.
    """
    return _read_many([(path, mapping)], mapping.kind)


def read_groups(sources: Sequence[tuple[Path, ColumnMapping]]) -> Roster:
    """Read several group files (e.g. OneRoster's orgs.csv and classes.csv) into one groups roster.

    Each file is read with its own mapping and validated as `read_roster` does; then a sync key used
    in more than one file rejects every row that holds it (so does an identity value claimed in more
    than one file). The frame holds the accepted rows file by file; its "file" column names each
    row's file, and `Roster.file` joins the file names with ", ".

    Raises:
        RosterError: as `read_roster`, for any of the files.
        ValueError: no sources, or a mapping that does not read groups.
    """
    return _read_many(sources, "groups")


def read_memberships(sources: Sequence[tuple[Path, ColumnMapping]]) -> Roster:
    """Read several membership files (e.g. OneRoster's enrollments.csv and the school memberships of
    users.csv) into one memberships roster.

    As `read_groups`: each file is validated on its own, then a sync key used in more than one file
    rejects every row that holds it, and so does a group and person pair (not marked for deletion)
    held in more than one file.

    Raises:
        RosterError: as `read_roster`, for any of the files.
        ValueError: no sources, or a mapping that does not read memberships.
    """
    return _read_many(sources, "memberships")


def _read_many(sources: Sequence[tuple[Path, ColumnMapping]], kind: str) -> Roster:
    """Read files of one kind (`Kind.plural`) into one roster; a value two files hold rejects its rows."""
    if not sources:
        raise ValueError(f"read_{kind} needs at least one file")
    for _, mapping in sources:
        if mapping.kind != kind:
            raise ValueError(f"mapping {mapping.name} reads {mapping.kind}, not {kind}")
    files = [rows_of(path, mapping) for path, mapping in sources]
    for rows in files:
        check(rows)
    if len(files) > 1:
        flag_across_files(files)
    rosters = [build(rows) for rows in files]
    if len(rosters) == 1:
        return rosters[0]
    return Roster(
        file=", ".join(roster.file for roster in rosters),
        frame=pd.concat([roster.frame for roster in rosters]),
        rejects=tuple(reject for roster in rosters for reject in roster.rejects),
        rejected_identities=frozenset().union(*(roster.rejected_identities for roster in rosters)),
        rows={file: count for roster in rosters for file, count in roster.rows.items()},
    )


def rows_of(path: Path, mapping: ColumnMapping) -> Rows:
    """Read, decode and parse a file: its rows, ready to check."""
    file = str(path)
    data = to_utf8(read_file(path), mapping.encoding, file)
    delimiter = find_delimiter(data, mapping, file)
    return Rows(parse(data, delimiter, mapping, file), mapping, file)


def rejected_rows(rows: Rows) -> BoolArray:
    """Which rows a check rejected (after `check`)."""
    rejected = np.zeros(rows.count, dtype=bool)
    for problem in rows.problems:
        rejected |= problem.mask
    return rejected


def build(rows: Rows) -> Roster:
    """The roster of the accepted rows and the rejects (after `check`)."""
    rejected = rejected_rows(rows)
    rejects = [_reject(rows, int(position)) for position in np.flatnonzero(rejected)]
    identity = rows.mapping.identity
    rejected_identities: set[str] = set()
    if identity:
        rejected_identities.update(str(v) for v in rows.raw[identity].filter(pa.array(rejected)).to_pylist())
    rejects.extend(
        _bad_row_reject(rows, bad, rejected_identities) for bad in rows.bad if not is_blank(bad.cells)
    )
    rejects.sort(key=lambda r: (r.row, r.field))
    rejected_identities.discard("")
    return Roster(
        file=rows.file,
        frame=_frame(rows, rejected, READINGS[rows.mapping.kind]),
        rejects=tuple(rejects),
        rejected_identities=frozenset(rejected_identities),
        rows={rows.file: rows.records},
    )


def _frame(rows: Rows, rejected: BoolArray, reading: Reading) -> pd.DataFrame:
    """The accepted rows, in `reading.frame_columns`."""
    values = rows.values
    accepted = pa.array(~rejected) if rejected.any() else None

    def column(values: Any) -> Any:
        # Large strings become pandas' "str" dtype without a copy; filter only if rows were rejected.
        return pd.array(values if accepted is None else values.filter(accepted), dtype="str")

    index = pd.Index(column(rows.raw["sync_key"]), name="sync_key")

    def constant(text: str) -> Any:
        return pd.array(pa.repeat(pa.scalar(text, type=pa.large_string()), len(index)), dtype="str")

    frame_values: dict[str, Any] = {}
    identity = rows.mapping.identity
    if reading.kind.identity:
        frame_values["identity"] = column(rows.raw[identity]) if identity else constant("")
    for name in (*reading.kind.fields, *reading.extra_fields):
        if name in reading.fixed:
            frame_values[name] = constant(reading.fixed[name])
        else:
            frame_values[name] = column(values[name]) if name in values else constant("")
    if reading.file_column:
        frame_values["file"] = constant(rows.file)
    frame_values["row"] = rows.lines[~rejected]
    frame_values["delete"] = rows.delete[~rejected]
    return pd.DataFrame(frame_values, index=index)


def _reject(rows: Rows, position: int) -> Reject:
    found = [problem for problem in rows.problems if problem.mask[position]]
    return Reject(
        file=rows.file,
        row=int(rows.lines[position]),
        field=found[0].field,
        reason="; ".join(problem.reason(position) for problem in found),
        sync_key=shown_value(rows.text("sync_key", position)),
    )


def _bad_row_reject(rows: Rows, bad: BadRow, rejected_identities: set[str]) -> Reject:
    # The cells may be shifted, but a key or identity found there protects its person all the same.
    def cell(canonical: str) -> str:
        index = rows.positions.get(canonical)
        return bad.cells[index].strip() if index is not None and index < len(bad.cells) else ""

    if rows.mapping.identity:
        rejected_identities.add(cell(rows.mapping.identity))
    return Reject(
        file=rows.file,
        row=bad.line,
        field=ROW_FIELD,
        reason=f"line has {len(bad.cells)} fields; the header has {rows.header_length}"
        + (
            f" (the record runs over lines {bad.line}-{bad.last_line}: an unbalanced quote?)"
            if bad.last_line > bad.line
            else ""
        ),
        sync_key=shown_value(
            ":".join(cell(name) for name in rows.key_fields) if rows.key_fields else cell("sync_key")
        ),
    )
