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
memberships is column-wise (Arrow membership tests, one pandas merge, one sort).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.models import ChangeIdentifier, Operation, Reject, kind_of
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
from sync.models.schools import Schools
from sync.plan.columns import arrow, mask

__all__ = ["SCHOOL_TYPE", "plan_schools"]

#: The group type that makes a group a school.
SCHOOL_TYPE: Final = "School"

_Wanted = dict[str, set[str]]
_BySchool = dict[str, tuple[str, ...]]


def _in(values: pd.Series | pd.Index, keys: set[str]) -> npt.NDArray[np.bool_]:
    """Per value: is it one of `keys`? (An Arrow hash lookup: pandas' isin makes a Python object per key.)"""
    if not keys or not len(values):
        return np.zeros(len(values), dtype=bool)
    return mask(pc.is_in(arrow(values), value_set=arrow(keys)))


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


def _pairs(frames: Iterable[pd.DataFrame | None], wanted: _Wanted) -> pd.DataFrame:
    """The memberships (key, group, person) of `frames` that name a wanted membership or person."""
    kept = []
    for frame in frames:
        if frame is None or not len(frame):
            continue
        want = _in(frame.index, wanted[MEMBERSHIP.name]) | _in(frame["person"], wanted[PERSON.name])
        if want.any():
            part = frame.loc[want, ["group", "person"]]
            kept.append(pd.DataFrame({"key": part.index.to_numpy(), **{c: part[c].to_numpy() for c in part}}))
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=["key", "group", "person"])


def _by_key(keys: pd.Series, schools: pd.Series, wanted: set[str]) -> _BySchool:
    """key -> its sorted distinct schools (or other values), for the wanted keys among `keys`."""
    frame = pd.DataFrame({"key": keys.to_numpy(), "school": schools.to_numpy()}).drop_duplicates()
    if len(wanted) < len(frame):
        frame = frame.loc[_in(frame["key"], wanted)]
    frame = frame.sort_values(["key", "school"], kind="stable")
    single = ~frame["key"].duplicated(keep=False).to_numpy(dtype=bool)
    shared: dict[str, tuple[str, ...]] = {}  # one tuple per school, not one per key
    out = {
        key: shared.setdefault(school, (school,))
        for key, school in zip(frame["key"][single].tolist(), frame["school"][single].tolist(), strict=True)
    }
    several = frame.loc[~single]  # sorted by key, then school: a few people in two schools (or classes)
    for key, school in zip(several["key"].tolist(), several["school"].tolist(), strict=True):
        out[key] = (*out.get(key, ()), school)
    return out


def _wanted(operations: Iterable[Operation], rejects: Mapping[str, Iterable[Reject]]) -> _Wanted:
    """The sync keys the plan names, by kind name (an identifier change: the old and the new key)."""
    wanted: _Wanted = {kind.name: set() for kind in (PERSON, GROUP, MEMBERSHIP)}
    for op in operations:
        keys = wanted[kind_of(op).name]
        keys.add(op.sync_key)
        if isinstance(op, ChangeIdentifier):
            keys.add(op.old_id)
    for kind_name, some in rejects.items():
        wanted[kind_name].update(r.sync_key for r in some if r.sync_key)
    return wanted


def _person_names(frames: Iterable[pd.DataFrame | None], keys: set[str]) -> dict[str, str]:
    """Each of `keys`' given and family name (else username, else key), the roster's before the snapshot's."""
    names: dict[str, str] = {}
    for frame in frames:
        if frame is None or not len(frame) or not keys:
            continue
        part = frame.loc[_in(frame.index, keys)]
        columns = [part[c].tolist() for c in ("given_name", "family_name", "username")]
        for key, given, family, username in zip(part.index.tolist(), *columns, strict=True):
            names.setdefault(key, " ".join(filter(None, (given, family))) or username or key)
    return names


def plan_schools(
    operations: Iterable[Operation],
    rejects: Mapping[str, Iterable[Reject]],
    *,
    persons: tuple[pd.DataFrame | None, pd.DataFrame | None],
    groups: tuple[pd.DataFrame | None, pd.DataFrame | None],
    memberships: tuple[pd.DataFrame | None, pd.DataFrame | None],
) -> Schools:
    """The schools of a plan's objects, and the names and classes its per-school reports show.

    Args:
        operations: the plan's operations and deletion candidates.
        rejects: the plan's rejects by kind name ("person", "group", "membership").
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
    wanted = _wanted(operations, rejects)
    objects: dict[str, dict[str, tuple[str, ...]]] = {
        GROUP.name: {key: group_schools[key] for key in wanted[GROUP.name] if key in group_schools}
    }
    pairs = _pairs(memberships, wanted)
    school_of = pd.DataFrame(
        [(group, school) for group, found in group_schools.items() for school in found],
        columns=["group", "school"],
    )
    attributed = pairs.merge(school_of, on="group", how="inner", sort=False)
    for kind, column in ((MEMBERSHIP, "key"), (PERSON, "person")):
        objects[kind.name] = _by_key(attributed[column], attributed["school"], wanted[kind.name])
    by_row = {
        (r.file, r.row): objects[kind_name][r.sync_key]
        for kind_name, some in rejects.items()
        for r in some
        if r.sync_key in objects[kind_name]
    }
    in_classes = pairs.loc[~_in(pairs["group"], schools)]
    enrolled = pairs.loc[_in(pairs["key"], wanted[MEMBERSHIP.name]), "person"]
    named = wanted[PERSON.name] | set(enrolled.tolist())
    return Schools(
        names={key: group_names.get(key, key) for key in schools},
        objects=objects,
        rejects=by_row,
        people=_person_names(persons, named),
        groups=group_names,
        classes=_by_key(in_classes["person"], in_classes["group"], wanted[PERSON.name]),
    )
