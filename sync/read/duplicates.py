"""Duplicates: a sync key (or identity value, or membership's group and person) held by two rows of
one file, or by rows of two files read into one roster. Each such row is rejected, its reason naming
the other lines (and files) that hold the value.

Distinct values are counted in Arrow, key columns hashed on two threads; Python touches single values
only to describe the rejects. Pure: imports no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.read.columnar import BoolArray, shown_value, string_bytes, to_mask
from sync.read.reading import READINGS
from sync.read.rows import Rows

__all__ = ["check_duplicates", "check_pairs", "flag_across_files"]

_SHOWN_LINES: Final = 5  # other lines named in a duplicate's reason
_PARALLEL_ROWS: Final = 50_000  # below this, a thread costs more than it saves
_PAIR: Final = "\x1f"  # joins a membership's group and person (neither can hold it: a control character)


def _pairs(rows: Rows, delete: BoolArray) -> tuple[Any, BoolArray]:
    """Each membership's group and person joined by _PAIR, and which rows (not marked for deletion,
    with both) claim their pair."""
    groups, persons = rows.raw["group"], rows.raw["person"]
    claims = ~delete & ~to_mask(pc.equal(groups, "")) & ~to_mask(pc.equal(persons, ""))
    pairs = pc.binary_join_element_wise(groups, persons, pa.scalar(_PAIR, type=pa.large_string()))
    return pairs, claims


def check_pairs(rows: Rows, delete: BoolArray) -> None:
    """Two rows (not marked for deletion) with the same group and person: every such row."""
    pairs, claims = _pairs(rows, delete)
    mask = claimed_twice(pairs, claims)
    rows.pairs_twice = mask
    if mask is None:
        return
    flag_duplicates(rows, "person", mask, pairs, partial(describe_pair, rows))


def describe_pair(rows: Rows, text: str) -> str:
    """A membership's group and person joined by _PAIR, as a reason names them."""
    group, _, person = text.partition(_PAIR)
    columns = f"columns {rows.column('group')!r} and {rows.column('person')!r}"
    return f"membership of {shown_value(person)!r} in group {shown_value(group)!r} ({columns})"


def check_duplicates(rows: Rows, delete: BoolArray) -> None:
    """Sync keys on two rows; identities claimed by two rows not marked for deletion."""
    # A file with several rows per person (`rules.many_rows`) repeats its keys by design.
    checks = {} if rows.mapping.many_rows else {"sync_key": np.ones(rows.count, dtype=bool)}
    if rows.mapping.identity:
        checks[rows.mapping.identity] = ~delete
    for canonical, eligible in checks.items():
        claims = eligible & ~to_mask(pc.equal(rows.raw[canonical], ""))
        mask = claimed_twice(rows.raw[canonical], claims)
        if canonical == "sync_key" and rows.key_fields and rows.pairs_twice is not None:
            # A derived key repeats with its group and person: those rows need not be told twice.
            mask = None if mask is None else mask & ~rows.pairs_twice
        if mask is not None and mask.any():
            flag_duplicates(rows, canonical, mask)


def flag_duplicates(
    rows: Rows,
    canonical: str,
    mask: BoolArray,
    values: Any = None,
    describe: Callable[[str], str] | None = None,
) -> None:
    """Flag the rows of `mask`, naming the other lines that hold the same value (of `values`, by
    default the field's own)."""
    values = rows.raw[canonical] if values is None else values
    positions = np.flatnonzero(mask)
    texts = values.take(pa.array(positions)).to_pylist()
    lines_of: dict[str, list[int]] = {}
    for text, position in zip(texts, positions, strict=True):
        lines_of.setdefault(text, []).append(int(rows.lines[position]))
    shown = _describer(rows, canonical) if describe is None else describe

    def reason(i: int) -> str:
        text = str(values[i].as_py())
        lines = lines_of[text]
        # A value repeated on thousands of rows must not make each message thousands of lines long.
        others = [line for line in lines[: _SHOWN_LINES + 1] if line != rows.lines[i]][:_SHOWN_LINES]
        also = ", ".join(str(line) for line in others)
        if len(lines) - 1 > len(others):
            also += f" and {len(lines) - 1 - len(others)} more"
        return f"{shown(text)} is also on line {also}"

    rows.flag(canonical, mask, reason)


def _describer(rows: Rows, canonical: str) -> Callable[[str], str]:
    """A value of the field `canonical` as a duplicate's reason names it."""
    column = rows.column(canonical)
    what = "sync key" if canonical == "sync_key" else canonical
    return lambda text: f"{what} {shown_value(text)!r} in column {column!r}"


def flag_across(
    rows: Rows,
    canonical: str,
    mask: BoolArray,
    where: Mapping[str, list[tuple[str, int]]],
    *,
    values: Any = None,
    describe: Callable[[str], str] | None = None,
) -> None:
    """Flag the rows of `mask` whose value (of `values`, by default the field's own) another file
    holds too; `where` lists every holder."""
    values = rows.raw[canonical] if values is None else values
    described = _describer(rows, canonical) if describe is None else describe

    def reason(i: int) -> str:
        text = str(values[i].as_py())
        others = [(file, line) for file, line in where[text] if file != rows.file][:_SHOWN_LINES]
        also = "; ".join(f"line {line} of {file}" for file, line in others)
        return f"{described(text)} is also on {also}"

    rows.flag(canonical, mask, reason)


@dataclass(frozen=True, slots=True)
class _Claim:
    """The values of one file that must not appear in another file: `values[i]` where `eligible[i]`."""

    rows: Rows
    field: str  # the canonical field a reject names
    values: Any
    eligible: BoolArray


def flag_across_files(files: Sequence[Rows]) -> None:
    """Reject every row of a sync key (or identity value, or membership pair) that more than one file
    holds."""
    flagged = {id(rows): np.zeros(rows.count, dtype=bool) for rows in files}
    if READINGS[files[0].mapping.kind].derived_key:
        # Two files holding the same group and person: the person would be in the group twice.
        pairs = [_Claim(rows, "person", *_pairs(rows, rows.delete)) for rows in files]
        for claim, mask, where in _shared(pairs):
            flag_across(
                claim.rows,
                "person",
                mask,
                where,
                values=claim.values,
                describe=partial(describe_pair, claim.rows),
            )
            flagged[id(claim.rows)] |= mask
    for canonical in ("sync_key", "identity"):
        claims: list[_Claim] = []
        for rows in files:
            name = "sync_key" if canonical == "sync_key" else rows.mapping.identity
            if not name:
                continue
            eligible = np.ones(rows.count, dtype=bool) if canonical == "sync_key" else ~rows.delete
            eligible &= ~to_mask(pc.equal(rows.raw[name], "")) & ~flagged[id(rows)]
            claims.append(_Claim(rows, name, rows.raw[name], eligible))
        for claim, mask, where in _shared(claims):
            flag_across(claim.rows, claim.field, mask, where)


def _shared(
    claims: Sequence[_Claim],
) -> list[tuple[_Claim, BoolArray, Mapping[str, list[tuple[str, int]]]]]:
    """Per claim with values another claim holds too: the rows holding them, and where each value is."""
    # Each file's distinct values, counted across files in Arrow: no Python object per value.
    distinct = [
        pc.unique(claim.values.filter(pa.array(claim.eligible))).cast(pa.large_string()) for claim in claims
    ]
    counted = pc.value_counts(pa.chunked_array(distinct, type=pa.large_string()))
    shared = counted.field("values").filter(pc.greater(counted.field("counts"), 1))
    if not len(shared):
        return []
    hits = [(claim, claim.eligible & to_mask(pc.is_in(claim.values, value_set=shared))) for claim in claims]
    where: dict[str, list[tuple[str, int]]] = {}
    for claim, mask in hits:
        for position in np.flatnonzero(mask):
            where.setdefault(str(claim.values[int(position)].as_py()), []).append(
                (claim.rows.file, int(claim.rows.lines[position]))
            )
    return [(claim, mask, where) for claim, mask in hits if mask.any()]


def claimed_twice(values: Any, claims: BoolArray) -> BoolArray | None:
    """The claiming rows whose value another claiming row has too; None when there are none.

    A column whose claims are in strictly ascending order (as exports sorted by key are) proves
    uniqueness without hashing. Otherwise the claims are split in two by a bit of their first and
    last bytes (equal values fall on the same side) and the halves are hashed on two threads:
    pyarrow's kernels release the GIL.
    """
    claimed = values if claims.all() else values.filter(pa.array(claims))
    if len(claimed) < 2 or pc.all(pc.less(claimed[:-1], claimed[1:])).as_py():
        return None
    positions = np.flatnonzero(claims)
    if len(positions) < _PARALLEL_ROWS:
        parts = [positions]
    else:
        offsets, data = string_bytes(claimed)
        # Claimed values are never empty, so both bytes exist.
        side = ((data[offsets[:-1]] ^ data[offsets[1:] - 1]) & 1).astype(bool)
        parts = [positions[~side], positions[side]]
    mask = np.zeros(len(claims), dtype=bool)
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        for part, twice in zip(
            parts, pool.map(lambda p: _repeated(values.take(pa.array(p))), parts), strict=True
        ):
            mask[part[twice]] = True
    return mask if mask.any() else None


def _repeated(values: Any) -> BoolArray:
    """Which values occur more than once."""
    if len(pc.unique(values)) == len(values):
        return np.zeros(len(values), dtype=bool)
    encoded = pc.dictionary_encode(values)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(np.bincount(codes, minlength=len(encoded.dictionary))[codes] > 1)
