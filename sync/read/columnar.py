"""Whole-column helpers over pyarrow string arrays: masks, trimming, cheap byte-level checks that spare
a regular expression, a function applied once per distinct value, and values as a reason shows them.

The checks of a million rows run here, column by column; Python touches single values only to
describe the (few) rejects. Pure: imports no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

__all__ = [
    "WHITESPACE",
    "BoolArray",
    "IntArray",
    "always",
    "map_unique",
    "marker",
    "may_hold",
    "shown_value",
    "string_bytes",
    "to_mask",
    "trimmed",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_SHOWN_VALUE_LENGTH: Final = 40


def shown_value(value: str) -> str:
    value = "".join(ch if ch.isprintable() else "?" for ch in value)
    return value if len(value) <= _SHOWN_VALUE_LENGTH else value[: _SHOWN_VALUE_LENGTH - 1] + "…"


def map_unique(values: Any, function: Callable[[str], str | None]) -> Any:
    """Apply `function` to each distinct value (few in practice) and spread the results back."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    results = pa.array([function(value) for value in encoded.dictionary.to_pylist()], type=pa.large_string())
    return pc.take(results, encoded.indices)


def _byte_table(chars: Sequence[int]) -> BoolArray:
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    return table


# The whitespace pyarrow's utf8_trim_whitespace removes is exactly str.isspace (a test checks), all of it
# below U+3001. A value needs trimming only if it starts with a first byte or ends with a last byte of
# one of those characters; the tables allow a cheap, conservative check on the raw UTF-8 bytes.
WHITESPACE: Final = [chr(code).encode() for code in range(0x3001) if chr(code).isspace()]
_TRIM_FIRST: Final = _byte_table([ws[0] for ws in WHITESPACE])
_TRIM_LAST: Final = _byte_table([ws[-1] for ws in WHITESPACE])


def string_bytes(values: Any) -> tuple[Any, Any]:
    """The offsets and UTF-8 bytes (numpy views, no copy) of a string or large-string array."""
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    _, offsets, data = values.buffers()
    offsets = np.frombuffer(offsets, dtype=width)[values.offset : values.offset + len(values) + 1]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def trimmed(values: Any) -> Any:
    """The values without surrounding whitespace; trimmed only when some value may need it."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not len(values) or values.null_count:
        return pc.utf8_trim_whitespace(values)
    offsets, data = string_bytes(values)
    if not len(data):
        return values  # every value is empty
    # An empty value reads a neighbour's byte here: at worst a needless trim, never a missed one.
    first = _TRIM_FIRST[data.take(offsets[:-1], mode="clip")]
    if first.any() or _TRIM_LAST[data.take(offsets[1:] - 1, mode="clip")].any():
        return pc.utf8_trim_whitespace(values)
    return values


def _value_bytes(values: Any) -> Any:
    """The UTF-8 bytes of all values, back to back (a numpy view)."""
    offsets, data = string_bytes(values)
    return data[offsets[0] : offsets[-1]] if len(values) else data[:0]


def may_hold(values: Any, lead_bytes: Sequence[int]) -> bool:
    """False when no value holds a byte below 0x20 or one of `lead_bytes`: a few fast passes that
    spare the (slow) regular expression on clean columns."""
    if values.null_count:
        return True
    data = _value_bytes(values)
    return bool((data < 0x20).any() or any((data == lead).any() for lead in lead_bytes))


def always(reason: str) -> Callable[[int], str]:
    """A reason that is the same for every row."""
    return lambda _: reason


def marker(marks: frozenset[str]) -> Callable[[str], str]:
    """Maps a value to "1" when it (casefolded) is one of `marks`, else to ""."""
    return lambda value: "1" if value.casefold() in marks else ""


def to_mask(values: Any) -> BoolArray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)
