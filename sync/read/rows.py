"""The rows of one roster file as the checks see them: the mapped columns trimmed, without blank rows
and the rows `rules.skip_unmapped` drops, one row per value of a `rules.split` column, constants and a
derived sync key filled in; and the problems the checks flag on them.

Pure: imports no I/O (the file was read and parsed before).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.read.columnar import BoolArray, IntArray, map_unique, to_mask, trimmed
from sync.read.csvparse import Parsed, is_blank
from sync.read.mapping_types import ColumnMapping
from sync.read.reading import READINGS

__all__ = ["Problem", "Rows"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One check's finding: the rows it rejects and, for each, why."""

    field: str
    mask: BoolArray
    reason: Callable[[int], str]  # row position -> reason (built only for flagged rows)


class Rows:
    """The rows of one file, their columns by canonical field (`raw`), and the problems flagged.

    `sync.read.checks.check` fills `problems`, `values` (value-mapped and dates parsed) and `delete`.
    """

    def __init__(self, parsed: Parsed, mapping: ColumnMapping, file: str) -> None:
        self.mapping = mapping
        self.file = file
        self.bad = parsed.bad
        self.has_nul = parsed.has_nul
        self.positions = parsed.positions
        self.header_length = parsed.header_length
        count = len(parsed.lines)
        empty = pa.array([""] * count, type=pa.large_string())
        raw = {
            canonical: trimmed(parsed.columns[canonical]) if canonical in parsed.columns else empty
            for canonical in mapping.columns
        }
        # Rows with nothing in any mapped column are spreadsheet leftovers (";;;;"), not records.
        # Only a row without a sync key can be one, so the other columns are checked only then.
        lead = "sync_key" if "sync_key" in raw else next(iter(raw))
        blank = to_mask(pc.equal(raw[lead], ""))
        if blank.any():
            for values in raw.values():
                blank &= to_mask(pc.equal(values, ""))
        if blank.any():
            keep = pa.array(~blank)
            raw = {canonical: values.filter(keep) for canonical, values in raw.items()}
        lines = parsed.lines[~blank]
        #: The file's data rows as parsed (before skipped rows and split values): see `Roster.rows`.
        self.records = len(lines) + sum(1 for bad in parsed.bad if not is_blank(bad.cells))
        raw, lines = skip_unmapped(raw, lines, mapping)
        if mapping.split is not None:
            raw, lines = split_values(raw, lines, mapping.split.field, mapping.split.separator)
        self.lines = lines
        self.count = len(self.lines)
        for canonical, constant in mapping.constants.items():
            raw[canonical] = pa.repeat(pa.scalar(constant, type=pa.large_string()), self.count)
        #: The fields whose values, joined by ":", make the sync key (a membership's group:person)
        #: when the mapping has no sync_key column; else none.
        self.key_fields = READINGS[mapping.kind].derived_key if mapping.derived_key else ()
        if self.key_fields:
            raw["sync_key"] = pc.binary_join_element_wise(
                *(raw[name] for name in self.key_fields), pa.scalar(":", type=pa.large_string())
            )
        self.raw = raw
        self.problems: list[Problem] = []
        self.values: dict[str, Any] = {}
        self.delete = np.zeros(self.count, dtype=bool)
        self.pairs_twice: BoolArray | None = None

    def column(self, canonical: str) -> str:
        if canonical in self.mapping.columns:
            return self.mapping.columns[canonical]
        if canonical == "sync_key":  # derived
            return ":".join(self.column(name) for name in self.key_fields)
        return f"[constants] {canonical}"

    def text(self, canonical: str, position: int) -> str:
        return str(self.raw[canonical][position].as_py())

    def flag(self, canonical: str, mask: BoolArray, reason: Callable[[int], str]) -> None:
        if mask.any():
            self.problems.append(Problem(field=canonical, mask=mask, reason=reason))


def skip_unmapped(
    raw: dict[str, Any], lines: IntArray, mapping: ColumnMapping
) -> tuple[dict[str, Any], IntArray]:
    """Without the rows whose `rules.skip_unmapped` field holds a value its value map does not know.

    Such a row is not this mapping's business (a parent in users.csv has no school membership): it is
    dropped silently, not rejected. An empty value is not skipped: `required` decides about it.
    """
    if not mapping.skip_unmapped or not len(lines):
        return raw, lines
    skip = np.zeros(len(lines), dtype=bool)
    for canonical in sorted(mapping.skip_unmapped):
        table = mapping.value_maps[canonical]
        hit = map_unique(raw[canonical], _unmapped(table))
        skip |= to_mask(pc.equal(hit, "1"))
    if not skip.any():
        return raw, lines
    keep = pa.array(~skip)
    return {canonical: values.filter(keep) for canonical, values in raw.items()}, lines[~skip]


def _unmapped(table: Mapping[str, str]) -> Callable[[str], str]:
    """Maps a value to "1" when it is not empty and not a key of the value map `table`, else to ""."""
    return lambda value: "1" if value and value.casefold() not in table else ""


def split_values(
    raw: dict[str, Any], lines: IntArray, canonical: str, separator: str
) -> tuple[dict[str, Any], IntArray]:
    """One row per value of the multi-valued `canonical` column (`rules.split`).

    Values are stripped; empty ones are dropped and a value repeated in one cell counts once. A cell
    with no value at all keeps one row with an empty value (for `required` to reject). Rows stay in
    file order, each value carrying its record's line number.
    """
    values = raw[canonical]
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not len(values) or not to_mask(pc.match_substring(values, separator)).any():
        return raw, lines  # one value per cell (already stripped)
    lists = pc.split_pattern(values, pattern=separator)
    parents = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    encoded = pc.dictionary_encode(flat)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    # The first occurrence of each (row, value): np.unique's indices point at first occurrences.
    _, first = np.unique(parents * len(encoded.dictionary) + codes, return_index=True)
    keep = np.zeros(len(flat), dtype=bool)
    keep[first] = True
    keep &= ~to_mask(pc.equal(flat, ""))
    has_value = np.zeros(len(values), dtype=bool)
    has_value[parents[keep]] = True
    if not has_value.all():
        offsets = np.asarray(lists.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        keep[offsets[:-1][~has_value]] = True  # the (empty) first value of a cell without values
    chosen = np.flatnonzero(keep)
    rows = pa.array(parents[chosen])
    split = {name: column.take(rows) for name, column in raw.items() if name != canonical}
    split[canonical] = flat.take(pa.array(chosen))
    return split, lines[parents[chosen]]
