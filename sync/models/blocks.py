"""Operations kept as columns until they are used: a plan's creates (every roster row on a first night)
and deletion candidates.

A `Block` holds the operations of one class over one record class as whole Arrow text columns and
makes them objects only where they are read, `CHUNK` at a time: the reports, the fingerprint and the
counts read its columns (or only its length), and the executor takes its operations window by window,
so a first night never holds 10^6 operation objects at once. `Ops` is a plan's operations in order,
runs of objects and blocks one after the other; it compares equal to a tuple of the same operations.

Imports pyarrow and numpy only inside the methods that need them (the models stay light to import);
a block's columns are otherwise used through their own methods (`slice`, `to_pylist`).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, TypeVar, overload

from sync.models.records import collector_paused, instances

__all__ = ["CHUNK", "Block", "Ops", "parts_of", "runs"]

T = TypeVar("T")

#: How many operations a block makes objects of at once.
CHUNK: Final = 10_000

#: An operation's class and its record's (`sync.models.plans.classes_of`, which imports this module).
_classes_of: Final = attrgetter("__class__", "record.__class__")


@dataclass(frozen=True, slots=True, eq=False)
class Block(Sequence[Any]):
    """Operations of class `operation` (Create, Delete) carrying records of class `record`, as columns.

    `keys` are the records' sync keys; `columns` every field of the record (`record.FIELDS`) and
    those of the operation besides its record (identity, password, reason), each an Arrow text array
    as long as `keys`. The i-th operation equals `operation(record=record(sync_key=keys[i], ...), ...)`
    with each field its column's i-th value.
    """

    operation: type
    record: type
    keys: Any
    columns: Mapping[str, Any]
    #: The chunk of objects made last for an item read by its position: (its start, its objects).
    _chunk: list[tuple[int, list[Any]]] = field(default_factory=list, init=False, repr=False)
    #: Per column of few distinct values (a role, a first name): its distinct texts (one string object
    #: each, shared by every operation made) and each row's index into them; None: many values.
    _shared: dict[str, tuple[Any, Any] | None] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def classes(self) -> tuple[type, type]:
        """The operations' class and their records' (`classes_of` of each)."""
        return (self.operation, self.record)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.made(0, len(self))[index]
            return self.made(start, max(start, stop))
        at = index + len(self) if index < 0 else index
        if not 0 <= at < len(self):
            raise IndexError("block index out of range")
        start, made = self._chunk[0] if self._chunk else (-CHUNK, [])
        if not start <= at < start + len(made):  # (read one by one, as a run does: a chunk at a time)
            start = at - at % CHUNK
            made = self.made(start, min(start + CHUNK, len(self)))
            self._chunk[:] = [(start, made)]
        return made[at - start]

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, len(self), CHUNK):
            yield from self.made(start, min(start + CHUNK, len(self)))

    def made(self, start: int, stop: int) -> list[Any]:
        """The operations from `start` to `stop` as objects."""
        count = stop - start
        values = {name: self.texts(name, start, stop) for name in self.columns}
        fields = self.record.FIELDS  # type: ignore[attr-defined]
        with collector_paused():
            keys = self.keys.slice(start, count).to_pylist()
            records: list[Any] = instances(
                self.record, count, {"sync_key": keys, **{f: values[f] for f in fields}}
            )
            own = {name: column for name, column in values.items() if name not in fields}
            return instances(self.operation, count, {"record": records, **own})

    def texts(self, name: str, start: int, stop: int) -> list[str]:
        """The values of the field `name` (as `column` names it) from `start` to `stop`, as Python texts:
        a column of few distinct values (a role, a first name) as shared strings, taken through its
        dictionary (10^6 made operations then hold a handful of role strings, not 10^6 copies)."""
        name = name.removeprefix("record.")
        column = self.column(name)
        if name not in self._shared:
            self._shared[name] = _dictionary(column)
        shared = self._shared[name]
        if shared is None:
            texts: list[str] = column.slice(start, stop - start).to_pylist()
            return texts
        distinct, indices = shared
        taken: list[str] = distinct[indices[start:stop]].tolist()
        return taken

    def blank(self, name: str) -> bool:
        """Whether the field `name` is "" in every operation (a column of no text at all)."""
        import pyarrow.compute as pc  # type: ignore[import-untyped]  # noqa: PLC0415 - pyarrow only where asked

        return not pc.sum(pc.binary_length(self.column(name))).as_py()

    def sync_keys(self) -> list[str]:
        """Every operation's sync key, in order."""
        keys: list[str] = self.keys.to_pylist()
        return keys

    def column(self, name: str) -> Any:
        """The Arrow column of the field `name` of the records ("sync_key" too) or of the operations; the
        record's also by attribute ("record.sync_key", "record.given_name", as the writers read them)."""
        name = name.removeprefix("record.")
        return self.keys if name == "sync_key" else self.columns[name]

    def holds(self, name: str) -> bool:
        """Whether `column` has the field `name`: not one the operations leave to its default (a
        membership's create has no identity)."""
        name = name.removeprefix("record.")
        return name == "sync_key" or name in self.columns


#: How many values of a column `_dictionary` looks at to guess whether few distinct values fill it.
_SAMPLE: Final = 1000


def _dictionary(column: Any) -> tuple[Any, Any] | None:
    """A text column's distinct values (a numpy array of objects) and each row's index into them, when a
    sample shows few distinct values; else None."""
    import numpy as np  # noqa: PLC0415 - with pyarrow, only where a block is read
    import pyarrow.compute as pc  # noqa: PLC0415

    if len(column) <= _SAMPLE or column.null_count:
        return None
    if pc.count_distinct(column.slice(0, _SAMPLE)).as_py() > _SAMPLE // 10:
        return None
    encoded = pc.dictionary_encode(column)
    return np.asarray(encoded.dictionary.to_pylist(), dtype=object), encoded.indices.to_numpy()


class Ops(Sequence[T]):
    """Operations in order, as runs of objects (any sequence) and `Block`s one after the other."""

    __slots__ = ("_parts", "_starts")

    def __init__(self, *parts: Sequence[T]) -> None:
        flat = itertools.chain.from_iterable(map(parts_of, parts))
        self._parts: tuple[Sequence[T], ...] = tuple(part for part in flat if len(part))
        self._starts = list(itertools.accumulate((len(part) for part in self._parts), initial=0))

    @property
    def parts(self) -> tuple[Sequence[T], ...]:
        """The runs of objects and the blocks, in order (none empty)."""
        return self._parts

    def __len__(self) -> int:
        return self._starts[-1]

    def __bool__(self) -> bool:
        return bool(self._parts)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return list(self)[index]
            taken: list[T] = []
            for chunk, lo, hi in zip(self._parts, self._starts, self._starts[1:], strict=False):
                if max(start, lo) < min(stop, hi):
                    taken.extend(chunk[max(start, lo) - lo : min(stop, hi) - lo])
            return taken
        at = index + len(self) if index < 0 else index
        if not 0 <= at < len(self):
            raise IndexError("operation index out of range")
        number = bisect.bisect_right(self._starts, at) - 1
        return self._parts[number][at - self._starts[number]]

    def __iter__(self) -> Iterator[T]:
        return itertools.chain.from_iterable(self._parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


def parts_of(sequence: Sequence[T]) -> tuple[Sequence[T], ...]:
    """The parts of an `Ops` (runs of objects, blocks); any other sequence is its only part."""
    return sequence.parts if isinstance(sequence, Ops) else (sequence,)


def runs(operations: Sequence[T]) -> Iterator[tuple[tuple[type, type], Sequence[T]]]:
    """`operations` as runs of one shape (`classes_of`), each with its shape: a `Block` whole, a run of
    objects as a list. Two runs in a row may have the same shape (a block after objects like its own)."""
    for part in parts_of(operations):
        if isinstance(part, Block):
            yield part.classes, part
        else:
            for classes, run in itertools.groupby(part, key=_classes_of):
                yield classes, list(run)
