"""One verify: which objects to read (all, or a seeded sample), the reads, the comparison, and what the
next run does about each drifted object.

Persons are read with readPersons in batches and, on a whole check, the site's persons listed with
readAllPersons (its extras); groups with readGroup; memberships by group (readMembershipsForGroup, whose
answer also shows the memberships the snapshot does not know), or one by one in a sample. IMS ES lists
no groups: a group created by hand is not found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sync.models import KINDS, Kind
from sync.models.drift import Drift
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
from sync.verify.compare import Values, by_kind, compare, next_run, sample
from sync.verify.reading import Reader, Unverified

__all__ = ["Verification", "annotate", "held_values", "values_of", "verify"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """What a verify found: drifted objects, how many objects of each kind it compared, the objects it
    could not read, and notes on what it did not look for."""

    rows: tuple[Drift, ...]
    checked: Mapping[str, int]
    unverified: tuple[Unverified, ...]
    notes: tuple[str, ...]


def values_of(kind: Kind, frame: pd.DataFrame, keys: Any = None) -> dict[str, Values]:
    """The canonical fields of `frame`'s rows (all, or those of `keys`), by sync key."""
    part = frame if keys is None else frame.loc[list(keys)]
    columns = list(kind.fields)
    return {
        str(key): dict(zip(columns, map(str, row), strict=True))
        for key, row in zip(part.index, part[columns].itertuples(index=False), strict=True)
    }


def verify(
    snapshots: Mapping[str, pd.DataFrame], reader: Reader, *, size: int | None, seed: int
) -> Verification:
    """Read back the snapshot's objects of every kind (or `size` of them chosen with `seed`) and compare.

    Args:
        snapshots: the snapshot's frame of each kind, by kind name (`StateStore.load`).
        reader: the reads, journalled within the budget.
        size: None for a whole check; else how many objects to sample.
        seed: the sample's seed.
    """
    keys = {kind.name: [str(key) for key in snapshots[kind.name].index] for kind in KINDS}
    notes: list[str] = []
    if size is not None:
        chosen = sample([(kind.name, key) for kind in KINDS for key in keys[kind.name]], size, seed)
        keys = {kind.name: by_kind(chosen).get(kind.name, []) for kind in KINDS}
        notes.append(f"a sample of {size} objects, seed {seed} (repeat with --seed {seed})")
        notes.append("objects created by hand (extra) are not searched in a sample")
    rows: list[Drift] = []
    checked: dict[str, int] = {}
    for kind in KINDS:
        asked = keys[kind.name]
        held, extras = _read(kind, asked, snapshots, reader, whole=size is None, notes=notes)
        snapshot = values_of(kind, snapshots[kind.name], held)
        rows.extend(
            compare(kind, snapshot, held, {key: {} for key in extras - set(snapshots[kind.name].index)})
        )
        checked[kind.name] = len(held)
    return Verification(
        rows=tuple(rows), checked=checked, unverified=tuple(reader.unverified), notes=tuple(notes)
    )


def _read(
    kind: Kind,
    asked: list[str],
    snapshots: Mapping[str, pd.DataFrame],
    reader: Reader,
    *,
    whole: bool,
    notes: list[str],
) -> tuple[dict[str, Values | None], set[str]]:
    """What IMS ES holds of `asked` (None: unknown to it) and the sync keys it holds beyond them."""
    if kind is PERSON:
        held = reader.persons(asked) if asked else {}
        if not whole:
            return held, set()
        listed, refused = reader.all_persons()
        if refused is not None:
            notes.append(
                f"persons created by hand not searched: readAllPersons answered {refused.code_major}"
            )
        return held, listed
    if kind is GROUP:
        return (reader.groups(asked) if asked else {}), set()
    if not whole:
        return (reader.memberships(asked) if asked else {}), set()
    frame = snapshots[MEMBERSHIP.name]
    groups = sorted({*map(str, frame["group"]), *map(str, snapshots[GROUP.name].index)})
    in_groups = reader.memberships_in(groups) if groups else {}
    for key, group in zip(frame.index, frame["group"], strict=True):
        if key not in in_groups and ("memberships of", group) in reader.seen:
            reader.seen[kind.name, str(key)] = reader.seen["memberships of", str(group)]
    return {key: in_groups.get(key) for key in asked}, set(in_groups)


def held_values(row: Drift, snapshot: pd.DataFrame) -> dict[str, str]:
    """What IMS ES holds of a changed object: the snapshot's values with the fields that differ."""
    kind = next(k for k in KINDS if k.name == row.kind)
    values = dict(values_of(kind, snapshot, [row.sync_key])[row.sync_key])
    values.update((f.field, f.itslearning) for f in row.fields)
    return values


def annotate(
    rows: tuple[Drift, ...],
    roster: Mapping[str, pd.DataFrame | None],
    snapshots: Mapping[str, pd.DataFrame],
    *,
    repaired: bool,
) -> tuple[Drift, ...]:
    """`rows` with what the next run does about each, given the roster's frames by kind name (None: the
    mapping has no such file) and the snapshot's."""
    annotated = []
    for row in rows:
        kind = next(k for k in KINDS if k.name == row.kind)
        frame = roster.get(row.kind)
        wanted = (
            values_of(kind, frame, [row.sync_key])
            if frame is not None and row.sync_key in frame.index
            else {}
        )
        held = held_values(row, snapshots[row.kind]) if row.drift == "changed" else None
        text = next_run(kind, row.drift, wanted.get(row.sync_key), held, repaired=repaired)
        annotated.append(dataclasses.replace(row, next_run=text))
    return tuple(annotated)
