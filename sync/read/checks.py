"""The checks of one file's rows, each over whole columns: deletion marks, NUL bytes, sync keys and
the keys of referenced objects, value lengths and characters XML forbids, required values, value
maps, birth dates, a group that is its own parent; then duplicates (`sync.read.duplicates`).

Each check flags the rows it rejects on `Rows`; reasons are built only for flagged rows.
Pure: imports no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

import numpy as np
import pyarrow.compute as pc  # type: ignore[import-untyped]  # pyarrow ships no type information

from sync.models.kinds import Kind
from sync.read.columnar import BoolArray, IntArray, always, map_unique, marker, may_hold, shown_value, to_mask
from sync.read.duplicates import check_duplicates, check_pairs
from sync.read.mapping_types import MAX_SYNC_KEY_LENGTH, MAX_VALUE_LENGTH
from sync.read.reading import READINGS
from sync.read.rows import Rows

__all__ = ["CONTROL_RE", "check"]

# Control characters (C0 without NUL, DEL, C1) and invisible format characters (soft hyphen,
# zero-width and bidirectional marks, BOM): not allowed in a sync key. NUL is reported on its own.
CONTROL_RE: Final = r"[\x01-\x1f\x7f-\x9f\x{ad}\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2060}-\x{2064}\x{feff}]"
# Characters XML 1.0 forbids (NUL is reported on its own): a value holding one cannot be sent.
_XML_INVALID_RE: Final = r"[\x01-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"


def check(rows: Rows) -> None:
    """Run every check of the file's own rows (the roster is built from them after)."""
    reading = READINGS[rows.mapping.kind]
    delete = deletions(rows)
    check_nul(rows)
    check_sync_key(rows)
    check_references(rows, reading.kind)
    check_values(rows)
    check_required(rows, delete)
    values = dict(rows.raw)
    for canonical, table in rows.mapping.value_maps.items():
        values[canonical] = map_values(rows, canonical, table, delete)
    for canonical in reading.date_fields:
        if canonical in values:
            values[canonical] = parse_dates(rows, canonical, values[canonical], delete)
    for reference in reading.kind.references:
        if reference.kind == reading.kind.name:
            check_own_reference(rows, reference.field, delete)
    if reading.derived_key:
        check_pairs(rows, delete)
    check_duplicates(rows, delete)
    rows.values = values
    rows.delete = delete


def deletions(rows: Rows) -> BoolArray:
    delete = np.zeros(rows.count, dtype=bool)
    for canonical, marks in rows.mapping.delete_when.items():
        if marks:
            hit = map_unique(rows.raw[canonical], marker(marks))
            delete |= to_mask(pc.equal(hit, "1"))
    return delete


def check_nul(rows: Rows) -> None:
    if not rows.has_nul:
        return  # one pass over the file's bytes spares a pass over every column
    for canonical in rows.mapping.columns:
        mask = to_mask(pc.match_substring(rows.raw[canonical], "\x00"))
        rows.flag(canonical, mask, always(f"NUL byte in column {rows.column(canonical)!r}"))


def check_sync_key(rows: Rows) -> None:
    if rows.key_fields:
        # group and person are checked as keys on their own; only the joined length is new here.
        keys = rows.raw["sync_key"]
        if to_mask(pc.greater(pc.binary_length(keys), MAX_SYNC_KEY_LENGTH)).any():
            lengths = np.asarray(pc.utf8_length(keys).to_numpy(zero_copy_only=False))
            derived = f"{':'.join(rows.key_fields)} derived from the fields {' and '.join(rows.key_fields)}"
            columns = " and ".join(repr(rows.column(name)) for name in rows.key_fields)
            rows.flag(
                "sync_key",
                lengths > MAX_SYNC_KEY_LENGTH,
                lambda i: (
                    f"sync key {derived} (columns {columns}) has {lengths[i]} characters; IMS ES allows "
                    f"at most {MAX_SYNC_KEY_LENGTH} (map a sync_key column)"
                ),
            )
        return
    column = rows.column("sync_key")
    keys = rows.raw["sync_key"]
    rows.flag("sync_key", to_mask(pc.equal(keys, "")), lambda _: f"missing sync key in column {column!r}")
    check_key(rows, "sync_key", "sync key")


def check_references(rows: Rows, kind: Kind) -> None:
    """Fields that hold another object's sync key obey the sync key's rules."""
    for reference in kind.references:
        if reference.field in rows.mapping.columns:
            check_key(rows, reference.field, reference.field)


def check_key(rows: Rows, canonical: str, what: str) -> None:
    """At most MAX_SYNC_KEY_LENGTH characters, no control characters or invisible marks."""
    keys = rows.raw[canonical]
    column = rows.column(canonical)
    # A key has at least as many bytes as characters: count characters only when bytes exceed.
    if to_mask(pc.greater(pc.binary_length(keys), MAX_SYNC_KEY_LENGTH)).any():
        lengths = np.asarray(pc.utf8_length(keys).to_numpy(zero_copy_only=False))
        rows.flag(
            canonical,
            lengths > MAX_SYNC_KEY_LENGTH,
            lambda i: (
                f"{what} in column {column!r} has {lengths[i]} characters; "
                f"IMS ES allows at most {MAX_SYNC_KEY_LENGTH}"
            ),
        )
    # C1 and U+00AD start with 0xC2, the marks with 0xE2, BOM with 0xEF.
    if may_hold(keys, (0x7F, 0xC2, 0xE2, 0xEF)):
        rows.flag(
            canonical,
            to_mask(pc.match_substring_regex(keys, CONTROL_RE)),
            lambda _: f"{what} in column {column!r} contains control characters or invisible marks",
        )


def check_own_reference(rows: Rows, canonical: str, delete: BoolArray) -> None:
    """An object cannot refer to itself: a group cannot be its own parent."""
    if canonical not in rows.raw:
        return
    referred = rows.raw[canonical]
    mask = to_mask(pc.and_(pc.equal(referred, rows.raw["sync_key"]), pc.not_equal(referred, ""))) & ~delete
    column = rows.column(canonical)
    what = READINGS[rows.mapping.kind].kind.name

    def reason(i: int) -> str:
        key = shown_value(rows.text("sync_key", i))
        return f"{what} {key!r} names itself as {canonical} in column {column!r}"

    rows.flag(canonical, mask, reason)


def check_values(rows: Rows) -> None:
    """Values that cannot be sent: too long, or holding characters XML forbids.

    The sync key has its own, stricter checks.
    """
    for canonical, values in rows.raw.items():
        if canonical == "sync_key" or not len(values):
            continue
        column = rows.column(canonical)
        # A value has at least as many bytes as characters: count characters only when bytes exceed.
        if pc.max(pc.binary_length(values)).as_py() > MAX_VALUE_LENGTH:
            lengths = np.asarray(pc.utf8_length(values).to_numpy(zero_copy_only=False))
            rows.flag(canonical, lengths > MAX_VALUE_LENGTH, _too_long(column, lengths))
        if may_hold(values, (0xEF,)):  # U+FFFE and U+FFFF start with 0xEF
            rows.flag(
                canonical,
                to_mask(pc.match_substring_regex(values, _XML_INVALID_RE)),
                always(f"control character in column {column!r} (XML cannot carry it)"),
            )


def _too_long(column: str, lengths: IntArray) -> Callable[[int], str]:
    return lambda i: (
        f"value in column {column!r} has {lengths[i]} characters; at most {MAX_VALUE_LENGTH} are allowed"
    )


def check_required(rows: Rows, delete: BoolArray) -> None:
    # A row marked for deletion needs only its sync key: exports often blank the rest. A derived
    # key needs its group and person.
    key_fields = set(rows.key_fields)
    for canonical in sorted(rows.mapping.required - {"sync_key"}):
        mask = to_mask(pc.equal(rows.raw[canonical], ""))
        if canonical not in key_fields:
            mask &= ~delete
        reason = f"missing required value in column {rows.column(canonical)!r}"
        rows.flag(canonical, mask, always(reason))


def map_values(rows: Rows, canonical: str, table: Mapping[str, str], delete: BoolArray) -> Any:
    mapped = map_unique(rows.raw[canonical], lambda v: table.get(v.casefold()) if v else "")
    unknown = to_mask(pc.is_null(mapped))
    known = ", ".join(sorted(table))
    column = rows.column(canonical)
    rows.flag(
        canonical,
        unknown & ~delete,
        lambda i: (
            f"unknown {canonical} {shown_value(rows.text(canonical, i))!r} in column {column!r}; "
            f"known: {known}"
        ),
    )
    return pc.fill_null(mapped, "")


def parse_dates(rows: Rows, canonical: str, values: Any, delete: BoolArray) -> Any:
    formats = rows.mapping.date_formats

    def iso(value: str) -> str | None:
        if not value:
            return ""
        for fmt in formats:
            try:
                return datetime.strptime(value, fmt).date().isoformat()
            except ValueError:
                continue
        return None

    parsed = map_unique(values, iso)
    column = rows.column(canonical)
    expected = " or ".join(formats)
    rows.flag(
        canonical,
        to_mask(pc.is_null(parsed)) & ~delete,
        lambda i: (
            f"bad date {shown_value(rows.text(canonical, i))!r} in column {column!r}; expected {expected}"
        ),
    )
    return pc.fill_null(parsed, "")
