"""Report lines of a block's operations filled by Arrow: a line template's constant texts and the
block's text columns joined row by row in C (`binary_join_element_wise`), a chunk's lines coming out as
one UTF-8 buffer that is written as it is (issue 16: a first night's report has 10^6 lines; filling
a %-template per line and encoding the text cost seconds).

Only texts that need no escaping, quoting or neutralising go this way (`any_match` tells the writers
which chunks); the writers fill the others line by line as before, so the bytes are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.plan.columns import text_spans

__all__ = ["ByteSet", "any_byte", "filled", "prefixed"]

_TEXT: Final = pa.large_string()
_NOTHING: Final = pa.scalar("", type=_TEXT)


def filled(
    parts: Sequence[str], columns: Sequence[Any], *, end: str = "", drop_last_end: bool = False
) -> bytes:
    """Each row's line `parts[0] + columns[0][row] + parts[1] + ... + columns[-1][row] + parts[-1]`,
    followed by `end` (but the last one when `drop_last_end`), every row's one after the other, as
    UTF-8 bytes. `parts` has one text more than `columns` (as a template split at its slots)."""
    if len(parts) != len(columns) + 1:
        raise ValueError(f"{len(parts)} constant parts for {len(columns)} columns")
    args: list[Any] = []
    for part, column in zip(parts, columns, strict=False):
        if part:
            args.append(pa.scalar(part, type=_TEXT))
        args.append(column.cast(_TEXT))
    args.append(pa.scalar(parts[-1] + end, type=_TEXT))
    lines = pc.binary_join_element_wise(*args, _NOTHING)
    offsets, data = text_spans(lines)
    start, stop = int(offsets[0]), int(offsets[-1])
    if drop_last_end and len(lines):
        stop -= len(end.encode("utf-8"))
    return data[start:stop].tobytes() if stop > start else b""


class ByteSet:
    """Some ASCII characters, looked up byte by byte in UTF-8 text (no byte of a multi-byte character is
    an ASCII one, so this is exact): whole buffers by a compare per run of consecutive codes (a few
    passes at memory speed), single bytes through a table."""

    def __init__(self, characters: str) -> None:
        codes = sorted({ord(c) for c in characters})
        if any(code > 0x7F for code in codes):
            raise ValueError("only ASCII characters can be looked up byte by byte")
        self.table = np.zeros(256, dtype=bool)
        self.table[codes] = True
        self._ranges: list[tuple[int, int]] = []
        for code in codes:
            if self._ranges and self._ranges[-1][1] == code - 1:
                self._ranges[-1] = (self._ranges[-1][0], code)
            else:
                self._ranges.append((code, code))

    def found_in(self, data: Any) -> bool:
        """Whether the bytes `data` (a numpy array of uint8) hold one of the characters."""
        for low, high in self._ranges:
            hit = (
                data == low if low == high else (data <= high if not low else (data >= low) & (data <= high))
            )
            if hit.any():
                return True
        return False


def any_byte(columns: Sequence[Any], characters: ByteSet) -> bool:
    """Whether a value of any of `columns` holds one of `characters`."""
    for values in columns:
        text = values.cast(_TEXT)
        if text.null_count:
            return True  # (no line of a null: the writers go line by line)
        offsets, data = text_spans(text)
        if characters.found_in(data[offsets[0] : offsets[-1]]):
            return True
    return False


def prefixed(column: Any, characters: ByteSet, prefix: str) -> Any:
    """`column` with `prefix` put before each value whose first character is one of `characters`."""
    table = characters.table
    column = column.cast(_TEXT)
    offsets, data = text_spans(column)
    starts = offsets[:-1]
    filled_at = starts[offsets[1:] > starts]
    if not len(filled_at) or not table[data[filled_at]].any():
        return column
    found = np.zeros(len(column), dtype=bool)
    nonempty = offsets[1:] > starts
    found[nonempty] = table[data[starts[nonempty]]]
    with_prefix = pc.binary_join_element_wise(pa.scalar(prefix, type=_TEXT), column, _NOTHING)
    return pc.if_else(pa.array(found), with_prefix, column)
