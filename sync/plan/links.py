"""Pure checks of the references between roster files: a group's parent, a membership's group and person.

A row whose reference cannot be satisfied by this run is rejected like any bad row (file, row, field,
reason) and so never sent; as a reject it also protects what the snapshot holds under its key. Rules:

- a group's parent must be an accepted group of the roster, not marked for deletion, and the parent
  chain must not loop (every group of a loop is rejected);
- a membership's person must be an accepted person of the roster, not marked for deletion;
- a membership's group must be an accepted, unmarked group of the roster; when the roster set has no
  group files, groups are managed elsewhere and the group must be in the snapshot instead.

Rejects cascade: a class whose school was rejected is rejected, and so are its memberships.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.models import Reject
from sync.plan.columns import arrow, mask
from sync.read.roster import Roster

__all__ = ["check_group_parents", "check_membership_links", "check_references"]

_PARENT: Final = "parent"

BoolArray = npt.NDArray[np.bool_]


def _why(key: str, what: str, *, rejected: Collection[str], marked: Collection[str], where: str) -> str:
    if key in rejected:
        return f"{what} {key!r} has a rejected row in {where}: fix that row first"
    if key in marked:
        return f"{what} {key!r} is marked for deletion in {where}"
    return f"{what} {key!r} is not in {where}"


def _split(roster: Roster, bad: pd.Series, reasons: Mapping[str, tuple[str, str]]) -> Roster:
    """`roster` without the rows flagged in `bad`, each added as a Reject (field, reason by sync key)."""
    if not bad.any():
        return roster
    frame = roster.frame
    dropped = frame.loc[bad.to_numpy()]
    files = dropped["file"] if "file" in dropped.columns else pd.Series(roster.file, index=dropped.index)
    rejects = [
        Reject(file=str(file), row=int(row), field=reasons[key][0], reason=reasons[key][1], sync_key=str(key))
        for key, file, row in zip(dropped.index, files, dropped["row"], strict=True)
    ]
    return dataclasses.replace(
        roster,
        frame=frame.loc[~bad.to_numpy()],
        rejects=(*roster.rejects, *rejects),
    )


class _Keys:
    """A roster's sync keys for reference checks: usable ones as an Arrow value set; the marked and
    rejected ones as sets, built only when a reason needs them (a few rows, in practice)."""

    def __init__(self, roster: Roster) -> None:
        self._roster = roster
        marked = roster.frame["delete"].to_numpy(dtype=bool)
        self._marked_mask = marked
        self.usable = arrow(roster.frame.index[~marked] if marked.any() else roster.frame.index)

    @functools.cached_property
    def marked(self) -> set[str]:
        return set(self._roster.frame.index[self._marked_mask])

    @functools.cached_property
    def rejected(self) -> set[str]:
        return {r.sync_key for r in self._roster.rejects if r.sync_key}


def _is_in(values: pd.Series, value_set: Any) -> BoolArray:
    """Per value of `values`: is it in the Arrow `value_set`? (pandas' isin makes a Python object per
    element of the set: seconds for a million keys.)"""
    if not len(value_set) or not len(values):
        return np.zeros(len(values), dtype=bool)
    return mask(pc.is_in(arrow(values), value_set=value_set))


def check_group_parents(groups: Roster, *, files: str) -> Roster:
    """Reject groups whose parent is not a usable group of the roster, or whose parent chain loops.

    Args:
        groups: the groups roster (frame with "parent", "file", "row", "delete").
        files: how the group files are named in reasons, e.g. "orgs.csv, classes.csv".
    """
    roster = groups
    loops = _loops(dict(zip(roster.frame.index, roster.frame[_PARENT], strict=True)))
    if loops:
        bad = pd.Series(roster.frame.index.isin(list(loops)), index=roster.frame.index)
        roster = _split(
            roster, bad, {key: (_PARENT, f"the parent chain loops: {text}") for key, text in loops.items()}
        )
    while True:  # each pass rejects the children of the groups the pass before rejected
        keys = _Keys(roster)
        parents = roster.frame[_PARENT]
        active = ~roster.frame["delete"].to_numpy(dtype=bool)
        bad = pd.Series(
            (parents != "").to_numpy(dtype=bool) & ~_is_in(parents, keys.usable) & active,
            index=roster.frame.index,
        )
        if not bad.any():
            return roster
        reasons = {
            str(key): (
                _PARENT,
                _why(str(p), "parent group", rejected=keys.rejected, marked=keys.marked, where=files),
            )
            for key, p in parents[bad.to_numpy()].items()
        }
        roster = _split(roster, bad, reasons)


def _loops(parent_of: Mapping[str, str]) -> dict[str, str]:
    """Groups on a parent loop, each with the loop written out ("a -> b -> a")."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: dict[str, str] = {}
    for start in parent_of:
        path: list[str] = []
        key = start
        while key in parent_of and state.get(key, 0) == 0:
            state[key] = 1
            path.append(key)
            key = parent_of[key]
        if state.get(key) == 1:  # walked back onto this path: a loop from `key`
            cycle = path[path.index(key) :]
            text = " -> ".join([*cycle, key])
            found.update(dict.fromkeys(cycle, text))
        for visited in path:
            state[visited] = 2
    return found


def check_membership_links(
    memberships: Roster,
    *,
    persons: Roster,
    groups: Roster | None,
    snapshot_groups: Collection[str],
    person_files: str,
    group_files: str,
) -> Roster:
    """Reject memberships whose person or group this run cannot rely on.

    Args:
        memberships: the memberships roster (frame with "group", "person", "file", "row", "delete").
        persons: the persons roster (after its own validation).
        groups: the groups roster after `check_group_parents`, or None when groups are not managed
            by this roster set (then the group must be in `snapshot_groups`).
        snapshot_groups: the sync keys of the groups the snapshot holds.
        person_files, group_files: file names for the reasons.
    """
    person_keys = _Keys(persons)
    frame = memberships.frame
    active = ~frame["delete"].to_numpy(dtype=bool)
    bad_person = ~_is_in(frame["person"], person_keys.usable) & active
    group_keys = _Keys(groups) if groups is not None else None
    usable_g = group_keys.usable if group_keys is not None else arrow(snapshot_groups)
    bad_group = ~_is_in(frame["group"], usable_g) & active & ~bad_person
    where = group_files if groups is not None else "IMS ES (the snapshot): no group file is read"
    reasons: dict[str, tuple[str, str]] = {}
    for key, person in frame.loc[bad_person, "person"].items():
        reasons[str(key)] = (
            "person",
            _why(
                str(person), "person", rejected=person_keys.rejected, marked=person_keys.marked,
                where=person_files,
            ),
        )  # fmt: skip
    for key, group in frame.loc[bad_group, "group"].items():
        rejected_g = group_keys.rejected if group_keys is not None else set()
        marked_g = group_keys.marked if group_keys is not None else set()
        reasons[str(key)] = (
            "group",
            _why(str(group), "group", rejected=rejected_g, marked=marked_g, where=where),
        )
    return _split(memberships, pd.Series(bad_person | bad_group, index=frame.index), reasons)


def check_references(
    persons: Roster,
    groups: Roster | None,
    memberships: Roster | None,
    *,
    snapshot_groups: Collection[str] | None,
) -> tuple[Roster | None, Roster | None]:
    """Both checks in order: group parents, then memberships against the checked groups.

    Args:
        persons, groups, memberships: a roster set's rosters (None for a kind it does not read).
        snapshot_groups: the groups the snapshot holds, for memberships when no group file is read;
            None when unknown (a check without state): such memberships' groups are not checked.

    Returns:
        (groups, memberships) with the rows whose references fail moved to their rejects.
    """
    if groups is not None:
        groups = check_group_parents(groups, files=groups.file)
    if memberships is not None:
        memberships = check_membership_links(
            memberships,
            persons=persons,
            groups=groups,
            snapshot_groups=memberships.frame["group"] if snapshot_groups is None else snapshot_groups,
            person_files=persons.file,
            group_files=groups.file if groups is not None else "",
        )
    return groups, memberships
