"""What a plan's fingerprint hashes of its operations (`sync.plan.fingerprint`, part 5): each run of one
shape's form, then its fields as columns, batch by batch, whether the operations are objects or a
block's Arrow columns.

Pure: imports no I/O; imports numpy and pyarrow, so the CLI imports it only when it makes a plan.
"""

from __future__ import annotations

import dataclasses
import marshal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter, itemgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from sync.models.blocks import Block, runs
from sync.plan.columns import text_spans

__all__ = ["operation_bytes"]

#: How many operations `operation_bytes` hashes a column of at once (a first night's 10^6 are never one
#: piece).
_BATCH: Final = 10_000


def operation_bytes(operations: Sequence[Any]) -> Iterator[bytes]:
    """What `fingerprint` hashes of the operations, in order, in pieces: for each run of operations of
    one class (and record class), its form (the classes and fields its repr shows: a password is not
    among them), then, for each batch of `_BATCH` operations of the run, each of those fields' values
    as a column: text as its UTF-8 bytes and each value's length (Arrow's own buffers, so a block of
    creates is hashed without making an object), anything else marshalled (format 2 has no references
    between objects, so the bytes tell the values only) or, what marshal cannot write (an update's field
    changes), as the values' reprs. A run is the same run whether its operations are objects or a
    block's columns, and it is batched from its start, so the bytes tell the operations only.

    Each piece is tagged and length-prefixed, so two different lists of operations never give the same
    bytes.
    """
    forms: dict[tuple[type, type], _Form] = {}
    for classes, shaped in groupby(runs(operations), key=itemgetter(0)):
        chain = [run for _, run in shaped]
        form = forms.get(classes)
        if form is None:
            form = forms[classes] = _form(classes, chain[0])
        yield _piece(b"F", form.text.encode("utf-8", "surrogatepass"))
        for batch in _batches(chain):
            for name in form.names:
                yield from _column_bytes(_column(batch, name, form))


@dataclass(frozen=True, slots=True)
class _Form:
    """How a run's operations show: their repr's %-format, and the fields filling it (the record's as
    "record.<field>"); `shown` when the class shows itself otherwise (then `names` is "repr" alone)."""

    text: str
    names: tuple[str, ...]
    shown: bool = False


def _form(classes: tuple[type, type], run: Sequence[Any]) -> _Form:
    """The form of operations of `classes` (a run of them at hand, checked by its first operation's repr)."""
    op_class, record_class = classes
    names: list[str] = []

    def form(cls: type, path: str) -> str:
        items = []
        for f in dataclasses.fields(cls):
            if not f.repr:
                continue
            if f.name == "record" and dataclasses.is_dataclass(record_class):
                items.append(f"record={form(record_class, 'record.')}")
            else:
                names.append(f"{path}{f.name}")
                items.append(f"{f.name}=%r")
        return f"{cls.__qualname__.replace('%', '%%')}({', '.join(items)})"

    if dataclasses.is_dataclass(op_class):
        text = form(op_class, "")
        if isinstance(run, Block):
            return _Form(text, tuple(names))
        first = run[0]
        if text % tuple(attrgetter(name)(first) for name in names) == repr(first):
            return _Form(text, tuple(names))
    return _Form("%s", ("repr",), shown=True)


def _batches(chain: Sequence[Sequence[Any]]) -> Iterator[list[tuple[Sequence[Any], int, int]]]:
    """A run (its parts one after the other) in batches of `_BATCH`: each batch as (part, start, stop)."""
    batch: list[tuple[Sequence[Any], int, int]] = []
    room = _BATCH
    for part in chain:
        at = 0
        while at < len(part):
            stop = min(len(part), at + room)
            batch.append((part, at, stop))
            room -= stop - at
            at = stop
            if not room:
                yield batch
                batch, room = [], _BATCH
    if batch:
        yield batch


def _column(batch: list[tuple[Sequence[Any], int, int]], name: str, form: _Form) -> Any:
    """The values of the field `name` of a batch's operations: an Arrow text array, else a list."""
    pieces: list[Any] = []
    for part, start, stop in batch:
        if isinstance(part, Block):
            if part.holds(name):
                pieces.append(part.column(name).slice(start, stop - start).cast(pa.large_string()))
            else:  # (a field the block leaves to its default)
                default = _default(part.operation, name)
                pieces.append(pa.array([default] * (stop - start), type=pa.large_string()))
        else:
            get = repr if form.shown else attrgetter(name)
            values = [get(op) for op in part[start:stop]]
            text = all(type(value) is str for value in values)
            pieces.append(_text_array(values) if text else values)
    if all(isinstance(piece, pa.Array) for piece in pieces):
        return pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]
    return [
        value for piece in pieces for value in (piece.to_pylist() if isinstance(piece, pa.Array) else piece)
    ]


def _default(op_class: type, name: str) -> str:
    default = {f.name: f.default for f in dataclasses.fields(op_class)}[name]
    assert isinstance(default, str)
    return default


def _text_array(values: list[str]) -> Any:
    """`values` as an Arrow text array; a list when Arrow cannot hold them (a lone surrogate)."""
    try:
        return pa.array(values, type=pa.large_string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        return values


def _column_bytes(column: Any) -> Iterator[bytes]:
    """One column's pieces: text as its values' lengths and their UTF-8 bytes, else marshalled or reprs."""
    if isinstance(column, pa.Array) and not column.null_count:
        offsets, data = text_spans(column)
        lo, hi = int(offsets[0]), int(offsets[-1])
        yield _piece(b"S", np.diff(offsets).astype(">i8").tobytes())
        yield _header(b"D", hi - lo)
        if hi > lo:
            yield data[lo:hi].tobytes()
        return
    values = column.to_pylist() if isinstance(column, pa.Array) else column
    try:
        yield _piece(b"M", marshal.dumps(values, 2))
    except ValueError:  # (an object marshal cannot write: the reprs' text)
        yield _piece(b"R", "\n".join(map(repr, values)).encode("utf-8", "surrogatepass"))


def _header(tag: bytes, size: int) -> bytes:
    return tag + size.to_bytes(8, "big")


def _piece(tag: bytes, data: bytes) -> bytes:
    return _header(tag, len(data)) + data
