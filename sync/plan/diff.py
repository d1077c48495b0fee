"""The diff's entry points: a roster (set) and the snapshot → Plan, and a plan applied to a snapshot.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
The work is column-wise (`sync.plan.columns`): keys are matched with one hash lookup, fields compared
as whole columns, and only the rows that become operations turn into dataclasses; one planning step
serves every kind (`sync.plan.kind_plan`). Rules (DESIGN §2):

- key in both, fields or identity differ → Update; equal → unchanged.
- key new → ChangeIdentifier when its identity matches exactly one snapshot person whose key left the
  roster (and that person matches no other new row); several matches on either side → Conflict (and
  no Create, which would duplicate the person); no match → Create (`sync.plan.identity`).
- snapshot key gone from the roster and not renamed → Delete candidate ("not in roster"); a roster row
  marked for deletion whose key is in the snapshot → Delete candidate ("marked tobedeleted").
- protected: a snapshot person whose sync key or identity value appears on a rejected row is never
  deleted, renamed or changed, and a roster row that shares a key or identity with a rejected row is
  held as a Conflict: a reject never turns into a change.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from sync.models import ChangeIdentifier, Plan
from sync.models.blocks import Ops
from sync.models.kinds import DELETION_ORDER, GROUP, KINDS, MEMBERSHIP, PERSON, Kind, kind_of
from sync.models.plans import REPORTED_KINDS
from sync.models.records import collector_paused
from sync.plan.columns import text_frame
from sync.plan.kind_plan import KindPlan, plan_kind, snapshot_columns
from sync.plan.links import check_references
from sync.plan.schools import plan_schools
from sync.read.roster import Roster

__all__ = ["DiffPolicy", "Snapshots", "apply_plan", "empty_snapshot", "plan", "plan_set", "snapshot_columns"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffPolicy:
    """Choices the diff leaves to the operator.

    Args:
        detect_identifier_changes: recognise a person whose sync key changed by the identity value
            (changePersonIdentifier); when False such a person is a Delete candidate plus a Create.
    """

    detect_identifier_changes: bool = True


_DEFAULT_POLICY: Final = DiffPolicy()


def empty_snapshot(kind: Kind) -> pd.DataFrame:
    """A snapshot frame of `kind` with no records: index "sync_key", `snapshot_columns(kind)`, all text."""
    index = pd.Index([], dtype="str", name="sync_key")
    return pd.DataFrame({name: pd.Series([], dtype="str", index=index) for name in snapshot_columns(kind)})


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshots:
    """What IMS ES confirmed, one frame per kind of record (shapes: `empty_snapshot`), named by its plural."""

    persons: pd.DataFrame = field(default_factory=functools.partial(empty_snapshot, PERSON))
    groups: pd.DataFrame = field(default_factory=functools.partial(empty_snapshot, GROUP))
    memberships: pd.DataFrame = field(default_factory=functools.partial(empty_snapshot, MEMBERSHIP))

    def of(self, kind: Kind) -> pd.DataFrame:
        """The snapshot frame of `kind`."""
        frame: pd.DataFrame = getattr(self, kind.plural)
        return frame


def plan(roster: Roster, snapshot: pd.DataFrame, policy: DiffPolicy = _DEFAULT_POLICY) -> Plan:
    """Compare a roster of persons with the snapshot and plan what makes IMS ES match the roster.

    Args:
        roster: the roster as read by `sync.read.roster.read_roster` (accepted rows plus rejects).
        snapshot: what IMS ES confirmed: index "sync_key", `snapshot_columns(PERSON)`, all text.
        policy: the operator's choices.

    Returns:
        A deterministic Plan: changeIdentifiers, updates, creates (each by sync key), deletion
        candidates (by sync key), rejects (by row) and conflicts (sorted).
    """
    part = plan_kind(PERSON, roster, snapshot, detect_identifier_changes=policy.detect_identifier_changes)
    return _joined({PERSON.name: part}, {PERSON.name: len(snapshot)})


def plan_set(
    persons: Roster,
    snapshots: Snapshots,
    *,
    groups: Roster | None = None,
    memberships: Roster | None = None,
    policy: DiffPolicy = _DEFAULT_POLICY,
) -> Plan:
    """Plan persons, and the groups and memberships when the roster set has them.

    A kind the roster set does not read (groups or memberships None) is left alone: none of its
    records is created, changed or listed for deletion. References between the files are checked
    first (sync.plan.links): a row that names a missing or rejected parent, group or person is rejected.

    Returns:
        One Plan. Operations run groups (parents before children), then persons, then memberships;
        deletions run memberships, then groups (children before parents), then persons.
    """
    with collector_paused():  # a plan's objects form no cycles (10^6 of them on a first night)
        return _plan_set(persons, snapshots, groups, memberships, policy)


def _plan_set(
    persons: Roster,
    snapshots: Snapshots,
    groups: Roster | None,
    memberships: Roster | None,
    policy: DiffPolicy,
) -> Plan:
    read_groups, read_memberships = groups, memberships  # their rejected rows tell schools too
    groups, memberships = check_references(
        persons, groups, memberships, snapshot_groups=snapshots.groups.index
    )
    rosters = {PERSON.name: persons, GROUP.name: groups, MEMBERSHIP.name: memberships}
    parts: dict[str, KindPlan] = {}
    renames: dict[str, dict[str, str]] = {}
    for kind in KINDS:  # in phase order: a kind after those it refers to, whose renames it needs
        roster = rosters[kind.name]
        parts[kind.name] = (
            KindPlan.empty(kind)
            if roster is None
            else plan_kind(
                kind,
                roster,
                snapshots.of(kind),
                detect_identifier_changes=policy.detect_identifier_changes,
                moved=renames,
            )
        )
        renames[kind.name] = parts[kind.name].renames
    joined = _joined(parts, {kind.name: len(snapshots.of(kind)) for kind in KINDS})
    schools = plan_schools(
        {name: Ops(part.operations, part.deletions) for name, part in parts.items()},
        {name: part.rejects for name, part in parts.items()},
        renamed={name: part.renames.keys() for name, part in parts.items()},
        persons=(persons.frame, snapshots.persons),
        groups=(_frame(read_groups), snapshots.groups),
        memberships=(_frame(read_memberships), snapshots.memberships),
    )
    return dataclasses.replace(joined, schools=schools)


def _frame(roster: Roster | None) -> pd.DataFrame | None:
    return None if roster is None else roster.frame


def _joined(parts: dict[str, KindPlan], snapshot_sizes: dict[str, int]) -> Plan:
    """One Plan of the kinds' parts: changes in phase order, deletions in DELETION_ORDER, what was set
    aside persons first; the kinds without a part count nothing."""

    def each(order: tuple[Kind, ...], what: str) -> Ops[Any]:
        return Ops(*(getattr(parts[kind.name], what) for kind in order if kind.name in parts))

    return Plan(
        operations=each(KINDS, "operations"),
        deletions=each(DELETION_ORDER, "deletions"),
        rejects=tuple(each(REPORTED_KINDS, "rejects")),
        conflicts=tuple(each(REPORTED_KINDS, "conflicts")),
        unchanged_by={name: part.unchanged for name, part in parts.items()},
        snapshot_sizes={name: snapshot_sizes[name] for name in parts},
    )


def apply_plan(snapshot: pd.DataFrame, plan: Plan, kind: Kind = PERSON) -> pd.DataFrame:
    """The snapshot of `kind` as it would be if IMS ES confirmed every operation and deletion of `plan`.

    Unchanged rows keep their order; updated, renamed and created rows follow, in plan order.

    Args:
        snapshot: index "sync_key", `snapshot_columns(kind)`.
        plan: a plan made against this snapshot.
        kind: the kind of the snapshot's records (the plan's other kinds have their own snapshots).
    """
    columns = snapshot_columns(kind)
    snap = text_frame(snapshot, columns)
    dropped: set[str] = {d.sync_key for d in plan.deletions if kind_of(d) is kind}
    added = [op for op in plan.operations if kind_of(op) is kind]
    for op in added:
        if isinstance(op, ChangeIdentifier):
            dropped.add(op.old_id)
        dropped.add(op.sync_key)
    kept = snap.loc[~np.asarray(snap.index.isin(dropped), dtype=bool)]
    index = pd.Index([op.sync_key for op in added], dtype="str", name="sync_key")
    values = [{**op.record.values(), "identity": getattr(op, "identity", "")} for op in added]
    rows = pd.DataFrame(
        {name: pd.array([row[name] for row in values], dtype="str") for name in columns}, index=index
    )
    return pd.concat([kept, rows]) if len(rows) else kept
