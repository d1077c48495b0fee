"""Which school(s) the objects of a plan belong to, from the roster's and the snapshot's groups and
memberships (the value is `sync.models.schools.Schools`).

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
Rules:

- a group of type "School" is its own school; any other group belongs to the nearest School up its
  parent chain, by the roster's parents and by the snapshot's (a group moved to another school belongs
  to both); a chain without a School, or one that loops, gives no school;
- a membership belongs to its group's school(s), as the roster and the snapshot name its group;
- a person belongs to the schools of every group they are a member of in the roster and in the
  snapshot, so a leaver is shown at the school they leave;
- a rejected row belongs to the schools of its object's sync key, when that can be told.

Only the objects the plan names (operations, deletions, rejects) are looked up; the work over the
memberships is column-wise in Arrow (hash lookups, one join, distinct pairs, one sort): Python
touches the result's rows only to build its lookups.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.models import Operation, Reject
from sync.models.blocks import Block, runs
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
from sync.models.schools import Schools, SortedPairs
from sync.plan.columns import mask

__all__ = ["SCHOOL_TYPE", "plan_schools"]

#: The group type that makes a group a school.
SCHOOL_TYPE: Final = "School"

_SYNC_KEY: Final = attrgetter("record.sync_key")

_SPACE: Final = pa.scalar(" ", type=pa.large_string())

_KeySets = dict[str, set[str]]
_BySchool = dict[str, tuple[str, ...]]


def _nearest_school(parent: Mapping[str, str], types: Mapping[str, str]) -> dict[str, str]:
    """Each group's nearest School up `parent` (itself when it is one); groups without one left out."""
    found: dict[str, str | None] = {}
    for start in parent:
        path: list[str] = []
        on_path: set[str] = set()
        key, school = start, None
        while key and key in types and key not in on_path:  # stops at the top, a non-group, a loop
            if key in found:
                school = found[key]
                break
            path.append(key)
            on_path.add(key)
            if types[key] == SCHOOL_TYPE:
                school = key
                break
            key = parent[key]
        found.update(dict.fromkeys(path, school))
    return {key: school for key, school in found.items() if school is not None}


def _group_schools(frames: Iterable[pd.DataFrame | None]) -> tuple[_BySchool, dict[str, str]]:
    """Each group's schools (by the roster's chain and the snapshot's) and each group's name.

    `frames` are the roster's groups then the snapshot's (index sync key; "name", "type", "parent")."""
    parts = [frame for frame in frames if frame is not None and len(frame)]
    if not parts:
        return {}, {}
    maps = [
        (dict(zip(keys, f["parent"].tolist(), strict=True)), dict(zip(keys, f["type"].tolist(), strict=True)))
        for f, keys in ((f, f.index.tolist()) for f in parts)
    ]
    schools: dict[str, set[str]] = {}
    walked: list[tuple[dict[str, str], dict[str, str]]] = []
    for order in (maps, maps[::-1]):  # the first frame's record wins, then the last frame's
        parent: dict[str, str] = {}
        types: dict[str, str] = {}
        for parents, kinds in reversed(order):
            parent.update(parents)
            types.update(kinds)
        if (parent, types) in walked:  # no group moved or changed its type: one walk tells all
            break
        walked.append((parent, types))
        for group, school in _nearest_school(parent, types).items():
            schools.setdefault(group, set()).add(school)
    names: dict[str, str] = {}
    for frame in reversed(parts):  # the roster's name wins
        names.update(zip(frame.index.tolist(), frame["name"].tolist(), strict=True))
    return {group: tuple(sorted(found)) for group, found in schools.items()}, {
        key: name or key for key, name in names.items()
    }


def _column(values: pd.Series | pd.Index) -> Any:
    """Text values as Arrow large strings, chunks kept (`columns.arrow` joins them: a copy)."""
    array = pa.array(values.array) if values.dtype == "str" else pa.array(values.astype("str").array)
    return array.cast(pa.large_string())


def _keys(keys: Iterable[str]) -> Any:
    """Keys as an Arrow value set (made once per set: 10^5 Python strings take a while to convert)."""
    return pa.array(list(keys), type=pa.large_string())


class _Wanted:
    """The sync keys the plan names of one kind: an Arrow value set (distinct keys), and the same keys
    as Python strings, made when first asked (only the per-school lookups and the classes ask)."""

    def __init__(self, keys: Any) -> None:
        self.array = keys
        self._listed: Any = None

    @property
    def _objects(self) -> Any:
        if self._listed is None:
            self._listed = np.array(self.array.to_pylist(), dtype=object)
        return self._listed

    def same(self, values: Any) -> list[str]:
        """`values` (each one of the keys) as the plan's own strings."""
        at = pc.index_in(values, value_set=self.array).to_numpy(zero_copy_only=False)
        found: list[str] = self._objects[at].tolist()
        return found

    @property
    def objects(self) -> Any:
        """The keys as a numpy array of the plan's own strings."""
        return self._objects

    def at(self, values: Any) -> Any:
        """Per value: its position among the keys (int32), null when it is none of them."""
        if not len(self.array) or not len(values):
            return pa.nulls(len(values), type=pa.int32())
        return pc.index_in(values, value_set=self.array)


def _in(values: Any, keys: Any) -> Any:
    """Per value: is it one of `keys` (an Arrow array)? A hash lookup; false for no keys."""
    if not len(keys) or not len(values):
        return pa.array(np.zeros(len(values), dtype=bool))
    return pc.fill_null(pc.is_in(values, value_set=keys), False)


def _pairs(frames: Iterable[pd.DataFrame | None], wanted: Mapping[str, _Wanted]) -> Any:
    """The memberships (key, group, person) of `frames` that name a wanted membership or person, whether
    it is a wanted membership ("planned"), and the positions of its key and person among the wanted
    ("key_at", "person_at": null when not wanted; one hash lookup each, 0.1 s per 4 x 10^5 keys)."""
    kept = []
    for frame in frames:
        if frame is None or not len(frame):
            continue
        table = pa.table({"key": _column(frame.index), "group": _column(frame["group"]),
                          "person": _column(frame["person"])})  # fmt: skip
        key_at = wanted[MEMBERSHIP.name].at(table["key"])
        person_at = wanted[PERSON.name].at(table["person"])
        planned = pc.is_valid(key_at)
        want = pc.or_(planned, pc.is_valid(person_at))
        table = table.append_column("planned", planned).append_column("key_at", key_at)
        kept.append(table.append_column("person_at", person_at).filter(want))
    if kept:
        return pa.concat_tables(kept)
    texts = {name: pa.array([], type=pa.large_string()) for name in ("key", "group", "person")}
    positions = {name: pa.array([], type=pa.int32()) for name in ("key_at", "person_at")}
    return pa.table({**texts, "planned": pa.array([], type=pa.bool_()), **positions})


def _distinct(keys: Any, values: Any, wanted: Any) -> tuple[Any, Any]:
    """The distinct (key, value) pairs of the wanted keys (an Arrow value set, or a mask of the rows
    already told), sorted by key then value (Arrow arrays): one sort, then each row equal to the one
    before it dropped."""
    table = pa.table({"k": keys, "v": values})
    table = table.filter(wanted if pa.types.is_boolean(wanted.type) else _in(table["k"], wanted))
    table = table.take(pc.sort_indices(table, sort_keys=[("k", "ascending"), ("v", "ascending")]))
    k, v = table["k"].combine_chunks(), table["v"].combine_chunks()
    n = len(k)
    if n < 2:
        return k, v
    keep = np.ones(n, dtype=bool)
    keep[1:] = ~(_same_as_before(k) & _same_as_before(v))
    chosen = pa.array(keep)
    return k.filter(chosen), v.filter(chosen)


def _same_as_before(values: Any) -> Any:
    """Per value from the second on: is it the one before it?"""
    return mask(pc.equal(values.slice(1), values.slice(0, len(values) - 1)))


def _shared_list(values: Any) -> list[str]:
    """Arrow strings as a Python list in which equal values are one object (10^5 rows naming a few
    thousand groups cost 10^5 references, not 10^5 strings)."""
    encoded = pc.dictionary_encode(values)
    words = np.array(encoded.dictionary.to_pylist(), dtype=object)
    shared: list[str] = words[encoded.indices.to_numpy(zero_copy_only=False)].tolist()
    return shared


class _Attributed:
    """The rows of the wanted memberships (`_pairs`) each with one of its group's schools (a row per
    school: a group moved to another school has two), as integer positions: a row's membership and
    person among the wanted keys (-1: not wanted) and its school among `words` (the sorted schools)."""

    def __init__(self, pairs: Any, group_schools: _BySchool, words: list[str]) -> None:
        self.words = words
        number = {word: at for at, word in enumerate(words)}
        groups = list(group_schools)
        counts = np.array([len(group_schools[group]) for group in groups], dtype=np.int64)
        flat = np.array([number[s] for group in groups for s in group_schools[group]], dtype=np.int64)
        first = np.cumsum(counts) - counts  # where each group's schools start in `flat`
        at = _positions(pc.index_in(pairs["group"], value_set=pa.array(groups, type=pa.large_string())))
        rows = np.flatnonzero(at >= 0)
        group_at = at[rows]
        n = counts[group_at]
        self.rows = np.repeat(rows, n)
        within = np.arange(len(self.rows), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        self.schools = flat[np.repeat(first[group_at], n) + within]

    def of(self, column: Any) -> Any:
        """A column of positions (`_pairs`' "key_at" or "person_at") on the attributed rows."""
        return _positions(column)[self.rows]


class _Later(Mapping[str, tuple[str, ...]]):
    """A sync key -> schools mapping made when it is first asked (`make`): a plan written as JSON or CSV
    never asks, and on a first night that is 5 x 10^5 entries (0.3 s) not made. Threads asking at once
    may each make it (the same mapping): no lock is needed."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], _BySchool]) -> None:
        self._make = make
        self._made: _BySchool | None = None

    def _mapping(self) -> _BySchool:
        made = self._made
        if made is None:
            made = self._made = self._make()
        return made

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return self._mapping()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._mapping()

    def get(self, key: str, default: Any = None) -> Any:
        """The schools of `key`, else `default`."""
        return self._mapping().get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


def _positions(at: Any) -> Any:
    """Arrow positions (null: none) as numpy int64, -1 for none."""
    return np.asarray(pc.fill_null(at, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _by_key(keys: Any, schools: Any, words: list[str], wanted: Any) -> _BySchool:
    """key -> its sorted distinct schools, for the rows whose key is wanted (`keys`: each row's position
    among the `wanted` keys (a numpy array of the plan's own strings), -1 for the others; `schools`: its
    school's among `words`, sorted). The
    distinct pairs are found by one numpy sort of their codes; equal tuples are one object; the keys
    of one school are made at C speed, the others one key at a time."""
    codes = np.sort((keys * len(words) + schools)[keys >= 0])  # (np.unique hashes: slower than a sort)
    if not len(codes):
        return {}
    codes = codes[np.r_[True, codes[1:] != codes[:-1]]]
    k, v = np.divmod(codes, len(words))
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], len(k)]
    names: list[str] = wanted[k[starts]].tolist()
    single = (ends - starts) == 1
    # One school: a tuple per school (a few hundred), looked up at C speed.
    ones = [(word,) for word in words]
    out: _BySchool = dict(
        zip(
            itertools.compress(names, single.tolist()),
            map(ones.__getitem__, v[starts[single]].tolist()),
            strict=True,
        )
    )
    combos: dict[tuple[str, ...], tuple[str, ...]] = {}
    found = v.tolist()
    for key, start, end in zip(
        itertools.compress(names, (~single).tolist()),
        starts[~single].tolist(),
        ends[~single].tolist(),
        strict=True,
    ):
        value = tuple(map(words.__getitem__, found[start:end]))
        out[key] = combos.setdefault(value, value)
    return out


def _sorted_pairs(keys: Any, values: Any, wanted: _Wanted) -> SortedPairs:
    k, v = _distinct(keys, values, wanted.array)
    return SortedPairs(wanted.same(k), _shared_list(v))


def _wanted(
    operations: Mapping[str, Sequence[Operation]],
    renamed: Mapping[str, Iterable[str]],
    rejects: Mapping[str, Iterable[Reject]],
) -> dict[str, Any]:
    """The distinct sync keys the plan names, by kind name, as Arrow arrays (an identifier change: the
    new key and the old); a block's keys are taken as its column is (no string made per key)."""
    pieces: dict[str, list[Any]] = {kind.name: [] for kind in (PERSON, GROUP, MEMBERSHIP)}
    for kind_name, ops in operations.items():
        for _, run in runs(ops):  # a ChangeIdentifier's record has the new key
            pieces[kind_name].append(run.keys if isinstance(run, Block) else _keys(map(_SYNC_KEY, run)))
    for kind_name, old in renamed.items():
        pieces[kind_name].append(_keys(old))
    for kind_name, some in rejects.items():
        pieces[kind_name].append(_keys(r.sync_key for r in some if r.sync_key))
    return {
        kind_name: pc.unique(pa.concat_arrays([p.cast(pa.large_string()) for p in some]))
        if some
        else _keys(())
        for kind_name, some in pieces.items()
    }


def _person_names(frames: Iterable[pd.DataFrame | None], named: Any) -> SortedPairs:
    """Each `named` person's given and family name (else username, else key), the roster's first."""
    tables = []
    for frame in frames:
        if frame is None or not len(frame) or not len(named):
            continue
        columns = {c: _column(frame[c]) for c in ("given_name", "family_name", "username")}
        table = pa.table({"key": _column(frame.index), **columns})
        table = table.filter(_in(table["key"], named))
        full = pc.utf8_trim_whitespace(
            pc.binary_join_element_wise(table["given_name"], table["family_name"], _SPACE)
        )
        for fallback in (table["username"], table["key"]):
            full = pc.if_else(pc.equal(full, ""), fallback, full)
        tables.append(pa.table({"key": table["key"], "name": full}))
    if not tables:
        return SortedPairs()
    named = pa.concat_tables(tables)  # the roster's first: the first row of a key is kept
    order = pc.sort_indices(named, sort_keys=[("key", "ascending")])  # stable: the roster's row first
    named = named.take(order)
    k = named["key"].combine_chunks()
    n = len(k)
    keep = np.ones(n, dtype=bool)
    if n > 1:
        keep[1:] = ~_same_as_before(k)
    named = named.filter(pa.array(keep))
    return SortedPairs(named["key"].to_pylist(), named["name"].to_pylist())


def plan_schools(
    operations: Mapping[str, Sequence[Operation]],
    rejects: Mapping[str, Iterable[Reject]],
    *,
    renamed: Mapping[str, Iterable[str]] | None = None,
    persons: tuple[pd.DataFrame | None, pd.DataFrame | None],
    groups: tuple[pd.DataFrame | None, pd.DataFrame | None],
    memberships: tuple[pd.DataFrame | None, pd.DataFrame | None],
) -> Schools:
    """The schools of a plan's objects, and the names and classes its per-school reports show.

    Args:
        operations: the plan's operations and deletion candidates, by kind name.
        rejects: the plan's rejects by kind name ("person", "group", "membership").
        renamed: the old sync keys of the plan's identifier changes, by kind name.
        persons: the persons roster's frame and the persons snapshot, for names.
        groups: the groups roster's frame (before its reference checks, so rejected rows count) and
            the groups snapshot; None where there is none.
        memberships: the memberships roster's frame (before its checks) and snapshot ("group", "person").
    """
    group_schools, group_names = _group_schools(groups)
    schools = {key for found in group_schools.values() for key in found}
    if not schools:
        return Schools()
    rejects = {kind_name: tuple(some) for kind_name, some in rejects.items()}
    wanted = _wanted(operations, renamed or {}, rejects)
    objects: dict[str, Mapping[str, tuple[str, ...]]] = {
        GROUP.name: {
            key: group_schools[key] for key in wanted[GROUP.name].to_pylist() if key in group_schools
        }
    }
    planned = {kind_name: _Wanted(keys) for kind_name, keys in wanted.items()}
    arrays = {kind_name: keys.array for kind_name, keys in planned.items()}
    pairs = _pairs(memberships, planned)
    attributed = _Attributed(pairs, group_schools, sorted(schools))
    for kind, column in ((MEMBERSHIP, "key_at"), (PERSON, "person_at")):
        keys = attributed.of(pairs[column])
        make = functools.partial(
            _by_key, keys, attributed.schools, attributed.words, planned[kind.name].objects
        )
        objects[kind.name] = _Later(make)
    by_row = {
        (r.file, r.row): objects[kind_name][r.sync_key]
        for kind_name, some in rejects.items()
        for r in some
        if r.sync_key in objects[kind_name]
    }
    in_classes = pairs.filter(pc.invert(_in(pairs["group"], _keys(schools))))
    enrolled = pairs.filter(pairs["planned"])["person"]
    return Schools(
        names={key: group_names.get(key, key) for key in schools},
        objects=objects,
        rejects=by_row,
        people=_person_names(persons, pc.unique(pa.chunked_array([arrays[PERSON.name], *enrolled.chunks]))),
        groups=group_names,
        classes=_sorted_pairs(in_classes["person"], in_classes["group"], planned[PERSON.name]),
    )
