"""Pure diff: roster persons + snapshot persons → Plan. No I/O, no clock, no logging.

The work is column-wise: keys are matched with one hash lookup, fields compared as whole columns,
and only the rows that become operations turn into dataclasses. Rules (DESIGN §2):

- key in both, fields or identity differ → Update; equal → unchanged.
- key new → ChangeIdentifier when its identity matches exactly one snapshot person whose key left the
  roster (and that person matches no other new row); several matches on either side → Conflict (and
  no Create, which would duplicate the person); no match → Create.
- snapshot key gone from the roster and not renamed → Delete candidate ("not in roster"); a roster row
  marked for deletion whose key is in the snapshot → Delete candidate ("marked tobedeleted").
- protected: a snapshot person whose sync key or identity value appears on a rejected row is never
  deleted, renamed or changed, and a roster row that shares a key or identity with a rejected row is
  held as a Conflict: a reject never turns into a change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.models import (
    GROUP_FIELDS,
    MEMBERSHIP_FIELDS,
    PERSON_FIELDS,
    ChangeGroupIdentifier,
    ChangeIdentifier,
    ChangeMembershipIdentifier,
    Conflict,
    Create,
    CreateGroup,
    CreateMembership,
    Delete,
    DeleteGroup,
    DeleteMembership,
    FieldChange,
    Group,
    Membership,
    Person,
    Plan,
    Reject,
    Update,
    UpdateGroup,
    UpdateMembership,
)
from sync.plan.links import check_references
from sync.plan.ordering import depths
from sync.read.roster import Roster

__all__ = [
    "GROUP_SNAPSHOT_COLUMNS",
    "MEMBERSHIP_SNAPSHOT_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "DiffPolicy",
    "Snapshots",
    "apply_plan",
    "empty_group_snapshot",
    "empty_membership_snapshot",
    "empty_snapshot",
    "plan",
    "plan_set",
]

#: The columns of a snapshot frame (index "sync_key"), all text.
SNAPSHOT_COLUMNS: Final = ("identity", *PERSON_FIELDS)
#: The columns of a groups snapshot frame (index "sync_key"), all text.
GROUP_SNAPSHOT_COLUMNS: Final = ("identity", *GROUP_FIELDS)
#: The columns of a memberships snapshot frame (index "sync_key"), all text.
MEMBERSHIP_SNAPSHOT_COLUMNS: Final = MEMBERSHIP_FIELDS

REASON_NOT_IN_ROSTER: Final = "not in roster"
REASON_MARKED: Final = "marked tobedeleted"

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffPolicy:
    """Choices the diff leaves to the operator.

    Args:
        detect_identifier_changes: recognise a person whose sync key changed by the identity value
            (changePersonIdentifier); when False such a person is a Delete candidate plus a Create.
    """

    detect_identifier_changes: bool = True


_DEFAULT_POLICY: Final = DiffPolicy()


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    index = pd.Index([], dtype="str", name="sync_key")
    return pd.DataFrame({name: pd.Series([], dtype="str", index=index) for name in columns})


def empty_snapshot() -> pd.DataFrame:
    """A snapshot frame with no persons: index "sync_key", columns SNAPSHOT_COLUMNS, all text."""
    return _empty(SNAPSHOT_COLUMNS)


def empty_group_snapshot() -> pd.DataFrame:
    """A snapshot frame with no groups: index "sync_key", columns GROUP_SNAPSHOT_COLUMNS, all text."""
    return _empty(GROUP_SNAPSHOT_COLUMNS)


def empty_membership_snapshot() -> pd.DataFrame:
    """A snapshot frame with no memberships: index "sync_key", columns MEMBERSHIP_SNAPSHOT_COLUMNS."""
    return _empty(MEMBERSHIP_SNAPSHOT_COLUMNS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshots:
    """What IMS ES confirmed, one frame per kind of record (see the empty_* functions for shapes)."""

    persons: pd.DataFrame
    groups: pd.DataFrame = field(default_factory=empty_group_snapshot)
    memberships: pd.DataFrame = field(default_factory=empty_membership_snapshot)


def _text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The SNAPSHOT_COLUMNS of `frame` as pandas text columns (no copy when they already are)."""
    out = frame.loc[:, list(SNAPSHOT_COLUMNS)]
    if any(out[name].dtype != "str" for name in SNAPSHOT_COLUMNS) or out.index.dtype != "str":
        out = out.astype("str")
        out.index = out.index.astype("str")
    return out


def _arrow(values: pd.Series | pd.Index) -> Any:
    """A text column as a pyarrow large_string array (no copy for pandas' own text columns)."""
    array = pa.array(values.array) if values.dtype == "str" else pa.array(values.astype("str").array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def _mask(values: Any) -> BoolArray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _changes(old: dict[str, str], new: dict[str, str], columns: Sequence[str]) -> tuple[FieldChange, ...]:
    """The fields that differ, identity last (as the reports list them)."""
    fields = (*(c for c in columns if c != "identity"), *(c for c in columns if c == "identity"))
    return tuple(
        FieldChange(field=name, old=old[name], new=new[name]) for name in fields if old[name] != new[name]
    )


class _Side:
    """One frame's keys and text columns as arrow arrays; rows turn into dicts only on request."""

    def __init__(self, frame: pd.DataFrame, columns: Sequence[str]) -> None:
        self.keys = _arrow(frame.index)
        self.columns = {name: _arrow(frame[name]) for name in columns}

    def __len__(self) -> int:
        return len(self.keys)

    def records(self, positions: IntArray, columns: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
        """(sync key, values) for the rows at `positions` (a few, in practice)."""
        take = pa.array(positions, type=pa.int64())
        keys = self.keys.take(take).to_pylist()
        values = [self.columns[name].take(take).to_pylist() for name in columns]
        return [(key, dict(zip(columns, row, strict=True))) for key, *row in zip(keys, *values, strict=True)]

    def is_in(self, keys: frozenset[str], column: str = "") -> BoolArray:
        """Per row: is its key (or `column`'s value) one of `keys`?"""
        values = self.columns[column] if column else self.keys
        if not keys or not len(values):
            return np.zeros(len(values), dtype=bool)
        return _mask(pc.is_in(values, value_set=pa.array(sorted(keys), type=pa.large_string())))


class _NewRows:
    """Decides what each row with a new sync key becomes: a create, an identifier change or a Conflict."""

    def __init__(
        self,
        *,
        new: list[tuple[str, dict[str, str]]],
        protected: BoolArray,
        protected_snapshot_keys: set[str],
        noun: str,
    ) -> None:
        self.new = new
        self.protected = protected
        self.protected_snapshot_keys = protected_snapshot_keys
        self.noun = noun
        self.claims: dict[str, list[str]] = {}  # identity -> new roster keys claiming it
        for key, values in new:
            if values.get("identity"):
                self.claims.setdefault(values["identity"], []).append(key)
        # identity -> snapshot records with it whose keys left the roster
        self.candidates: dict[str, list[tuple[str, dict[str, str]]]] = {}

    def add_candidates(self, records: list[tuple[str, dict[str, str]]]) -> None:
        """Register snapshot records (gone from the roster) that a new row's identity may match."""
        for key, values in records:
            self.candidates.setdefault(values["identity"], []).append((key, values))

    def match(self, conflicts: list[Conflict]) -> tuple[list[_Renamed], list[_Record], set[str]]:
        """The renames and creates, appending conflicts; plus the snapshot keys they consume."""
        renames: list[_Renamed] = []
        creates: list[_Record] = []
        consumed: set[str] = set()  # snapshot keys renamed or in conflict: not deletion candidates
        for (key, values), is_protected in zip(self.new, self.protected, strict=True):
            identity = values.get("identity", "")
            matches = self.candidates.get(identity, []) if identity else []
            snapshot_keys = tuple(sorted(k for k, _ in matches))
            consumed.update(snapshot_keys)
            if is_protected:
                conflicts.append(_held(key, identity, snapshot_keys=snapshot_keys, noun=self.noun))
            elif not matches:
                creates.append((key, values))
            elif len(matches) > 1 or len(self.claims[identity]) > 1:
                conflicts.append(
                    Conflict(
                        identity=identity,
                        roster_keys=tuple(sorted(self.claims[identity])),
                        snapshot_keys=snapshot_keys,
                        reason=f"identity {identity!r} matches {len(self.claims[identity])} new roster "
                        f"row(s) and {len(matches)} snapshot {self.noun}(s) whose sync keys left the roster",
                    )
                )
            elif snapshot_keys[0] in self.protected_snapshot_keys:
                conflicts.append(
                    Conflict(
                        identity=identity,
                        roster_keys=(key,),
                        snapshot_keys=snapshot_keys,
                        reason=f"identity {identity!r} belongs to snapshot {self.noun} {snapshot_keys[0]!r}, "
                        "who has a rejected row: fix that row first",
                    )
                )
            else:
                old_key, old_values = matches[0]
                renames.append((old_key, key, values, old_values))
        return renames, creates, consumed


#: (sync key, values) of one row.
_Record: TypeAlias = tuple[str, dict[str, str]]
#: (old key, new key, new values, old values) of an identifier change.
_Renamed: TypeAlias = tuple[str, str, dict[str, str], dict[str, str]]


@dataclass(slots=True, kw_only=True)
class _Found:
    """What the column diff of one kind of record found, before it becomes operations."""

    updates: list[tuple[str, dict[str, str], dict[str, str]]]  # key, new values, old values
    creates: list[_Record]
    renames: list[_Renamed]
    deletions: list[tuple[str, dict[str, str], str]]  # key, snapshot values, reason
    conflicts: list[Conflict]
    unchanged: int


def _diff(
    roster: Roster,
    snapshot: pd.DataFrame,
    *,
    columns: Sequence[str],
    extra: Sequence[str] = (),
    renames: bool,
    noun: str,
) -> _Found:
    """The column-wise diff of one kind of record (see the module docstring for the rules).

    Args:
        roster: accepted rows (frame indexed by sync key with `columns`, `extra` and "delete") + rejects.
        snapshot: what IMS ES confirmed: index "sync_key", `columns`, all text.
        columns: the compared columns; "identity" among them enables protection by identity.
        extra: roster columns carried to creates but never compared (the password).
        renames: recognise changed sync keys by identity.
        noun: what a record is, for conflict texts ("person", "group", "membership").
    """
    with_identity = "identity" in columns
    rows = _Side(roster.frame, (*columns, *extra))
    snap = _Side(snapshot, columns)
    # to_numpy, not np.asarray: numpy probes a Series for __array_interface__, which makes pandas hash
    # the whole text index (0.05 s per 300,000 keys).
    marked = roster.frame["delete"].to_numpy(dtype=bool)
    # The one hash join: where each roster key sits in the snapshot (-1: not there).
    position = np.asarray(
        pc.fill_null(pc.index_in(rows.keys, value_set=snap.keys), -1).to_numpy(zero_copy_only=False),
        dtype=np.intp,
    )
    in_roster = np.zeros(len(snap), dtype=bool)
    in_roster[position[position >= 0]] = True

    protected_keys = frozenset(r.sync_key for r in roster.rejects if r.sync_key)
    protected_ids = frozenset(i for i in roster.rejected_identities if i) if with_identity else frozenset()
    snap_protected = snap.is_in(protected_keys)
    row_protected = rows.is_in(protected_keys)
    if with_identity:
        snap_protected |= snap.is_in(protected_ids, "identity")
        row_protected |= rows.is_in(protected_ids, "identity")
    protected_snapshot_keys = {key for key, _ in snap.records(np.flatnonzero(snap_protected), ())}

    conflicts: list[Conflict] = []
    identity_of: tuple[str, ...] = ("identity",) if with_identity else ()

    # --- keys in both: update, unchanged, or held ----------------------------------------------
    present = ~marked & (position >= 0)
    changed = np.zeros(len(rows), dtype=bool)
    if present.any():
        aligned = pa.array(np.where(present, position, 0), type=pa.int64())
        for name in columns:
            changed |= _mask(pc.not_equal(rows.columns[name], snap.columns[name].take(aligned)))
    held = present & row_protected
    held[present] |= snap_protected[position[present]]
    changed &= present & ~held
    unchanged = int((present & ~changed & ~held).sum())
    changed_at = np.flatnonzero(changed)
    updates = [
        (key, new_values, old_values)
        for (key, new_values), (_, old_values) in zip(
            rows.records(changed_at, columns), snap.records(position[changed_at], columns), strict=True
        )
    ]
    for key, values in rows.records(np.flatnonzero(held), identity_of):
        conflicts.append(_held(key, values.get("identity", ""), snapshot_keys=(key,), noun=noun))

    # --- new keys: create, changeIdentifier, or conflict ----------------------------------------
    new_at = np.flatnonzero(~marked & (position < 0))
    gone = ~in_roster
    matcher = _NewRows(
        new=rows.records(new_at, (*columns, *extra)),
        protected=row_protected[new_at],
        protected_snapshot_keys=protected_snapshot_keys,
        noun=noun,
    )
    if renames and with_identity and matcher.claims:
        wanted = gone & snap.is_in(frozenset(matcher.claims), "identity")
        matcher.add_candidates(snap.records(np.flatnonzero(wanted), columns))
    renamed, creates, consumed = matcher.match(conflicts)

    # --- deletion candidates --------------------------------------------------------------------
    deletions = [
        (key, values, REASON_NOT_IN_ROSTER)
        for key, values in snap.records(np.flatnonzero(gone & ~snap_protected), columns)
        if key not in consumed
    ]
    marked_at = position[marked & (position >= 0)]
    for key, values in snap.records(marked_at, columns):
        if key not in protected_snapshot_keys:
            deletions.append((key, values, REASON_MARKED))
    return _Found(
        updates=updates,
        creates=creates,
        renames=renamed,
        deletions=deletions,
        conflicts=conflicts,
        unchanged=unchanged,
    )


def plan(roster: Roster, snapshot: pd.DataFrame, policy: DiffPolicy = _DEFAULT_POLICY) -> Plan:
    """Compare a roster of persons with the snapshot and plan what makes IMS ES match the roster.

    Args:
        roster: the roster as read by `sync.read.roster.read_roster` (accepted rows plus rejects).
        snapshot: what IMS ES confirmed: index "sync_key", columns SNAPSHOT_COLUMNS, all text.
        policy: the operator's choices.

    Returns:
        A deterministic Plan: changeIdentifiers, updates, creates (each by sync key), deletion
        candidates (by sync key), rejects (by row) and conflicts (sorted).
    """
    found = _diff(
        roster,
        snapshot,
        columns=SNAPSHOT_COLUMNS,
        extra=("password",),
        renames=policy.detect_identifier_changes,
        noun="person",
    )
    renames = [
        ChangeIdentifier(
            old_id=old_key,
            new_id=key,
            person=Person.from_values(key, values),
            identity=values["identity"],
            changes=_changes(old_values, values, SNAPSHOT_COLUMNS),
        )
        for old_key, key, values, old_values in found.renames
    ]
    updates = [
        Update(
            person=Person.from_values(key, new),
            identity=new["identity"],
            changes=_changes(old, new, SNAPSHOT_COLUMNS),
        )
        for key, new, old in found.updates
    ]
    creates = [
        Create(
            person=Person.from_values(key, values), identity=values["identity"], password=values["password"]
        )
        for key, values in found.creates
    ]
    deletions = [
        Delete(sync_key=key, identity=values["identity"], reason=reason)
        for key, values, reason in found.deletions
    ]
    return Plan(
        operations=(
            *sorted(renames, key=lambda op: op.new_id),
            *sorted(updates, key=lambda op: op.sync_key),
            *sorted(creates, key=lambda op: op.sync_key),
        ),
        deletions=tuple(sorted(deletions, key=lambda op: op.sync_key)),
        rejects=tuple(sorted(roster.rejects, key=lambda r: (r.row, r.field, r.reason))),
        conflicts=tuple(_unique_conflicts(found.conflicts)),
        unchanged=found.unchanged,
        snapshot_size=len(snapshot),
    )


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
    person_plan = plan(persons, snapshots.persons, policy)
    person_renames = {
        op.old_id: op.new_id for op in person_plan.operations if isinstance(op, ChangeIdentifier)
    }
    groups, memberships = check_references(
        persons, groups, memberships, snapshot_groups=snapshots.groups.index
    )
    group_part = _GroupPart.empty()
    if groups is not None:
        group_part = _plan_groups(groups, snapshots.groups, policy)
    membership_part = _MembershipPart.empty()
    if memberships is not None:
        snapshot = _renamed(snapshots.memberships, "person", person_renames)
        snapshot = _renamed(snapshot, "group", group_part.renames)
        membership_part = _plan_memberships(memberships, snapshot)
    return Plan(
        operations=(*group_part.operations, *person_plan.operations, *membership_part.operations),
        deletions=(*membership_part.deletions, *group_part.deletions, *person_plan.deletions),
        rejects=(*person_plan.rejects, *group_part.rejects, *membership_part.rejects),
        conflicts=(*person_plan.conflicts, *group_part.conflicts, *membership_part.conflicts),
        unchanged=person_plan.unchanged,
        snapshot_size=person_plan.snapshot_size,
        group_unchanged=group_part.unchanged,
        group_snapshot_size=len(snapshots.groups),
        membership_unchanged=membership_part.unchanged,
        membership_snapshot_size=len(snapshots.memberships),
    )


def _renamed(frame: pd.DataFrame, column: str, renames: dict[str, str]) -> pd.DataFrame:
    """`frame` with the keys in `column` moved by planned renames, as the snapshot will hold them."""
    if not renames or not len(frame):
        return frame
    # Column-wise: a hash lookup of the old keys, then the new key where one was found.
    values = _arrow(frame[column])
    old = pa.array(list(renames), type=pa.large_string())
    at = pc.index_in(values, value_set=old)
    if at.null_count == len(at):
        return frame
    moved = pc.coalesce(pc.take(pa.array(list(renames.values()), type=pa.large_string()), at), values)
    return frame.assign(**{column: pd.array(moved, dtype="str")})


def _sorted_rejects(rejects: Iterable[Reject]) -> tuple[Reject, ...]:
    return tuple(sorted(rejects, key=lambda r: (r.file, r.row, r.field, r.reason)))


@dataclass(frozen=True, slots=True, kw_only=True)
class _GroupPart:
    operations: tuple[CreateGroup | UpdateGroup | ChangeGroupIdentifier, ...]
    deletions: tuple[DeleteGroup, ...]
    rejects: tuple[Reject, ...]
    conflicts: tuple[Conflict, ...]
    unchanged: int
    renames: dict[str, str]

    @classmethod
    def empty(cls) -> _GroupPart:
        return cls(operations=(), deletions=(), rejects=(), conflicts=(), unchanged=0, renames={})


#: Group fields an update cannot empty: updateGroup keeps what it is not sent (IMS ES update semantics),
#: so sending the group without a parent or name would change nothing while the snapshot said it had.
_UNCLEARABLE: Final = ("parent", "name")


def _cannot_clear(key: str, identity: str, fields: Sequence[str]) -> Conflict:
    what = " and ".join(fields)
    return Conflict(
        identity=identity,
        roster_keys=(key,),
        snapshot_keys=(key,),
        reason=f"the roster empties this group's {what}, which IMS ES cannot clear (updateGroup keeps "
        "what it is not sent): set it in itslearning by hand, or give the group a value again",
    )


def _plan_groups(groups: Roster, snapshot: pd.DataFrame, policy: DiffPolicy) -> _GroupPart:
    columns = GROUP_SNAPSHOT_COLUMNS
    detect = policy.detect_identifier_changes
    found = _diff(groups, snapshot, columns=columns, renames=detect, noun="group")
    renames = {old: new for old, new, _, _ in found.renames}
    if renames:  # children of a renamed group name its new key: compare them with the moved snapshot
        found = _diff(
            groups, _renamed(snapshot, "parent", renames), columns=columns, renames=detect, noun="group"
        )
    depth = depths(dict(zip(groups.frame.index, groups.frame["parent"], strict=True)))
    ops: list[tuple[tuple[int, int, str], CreateGroup | UpdateGroup | ChangeGroupIdentifier]] = []
    for old_key, key, values, old_values in found.renames:
        op = ChangeGroupIdentifier(
            old_id=old_key,
            new_id=key,
            group=Group.from_values(key, values),
            identity=values["identity"],
            changes=_changes(old_values, values, columns),
        )
        ops.append(((depth.get(key, 0), 0, key), op))
    uncleared: list[Conflict] = []
    for key, new, old in found.updates:
        cleared = [name for name in _UNCLEARABLE if old[name] and not new[name]]
        if cleared:
            uncleared.append(_cannot_clear(key, new["identity"], cleared))
            continue
        update = UpdateGroup(
            group=Group.from_values(key, new), identity=new["identity"], changes=_changes(old, new, columns)
        )
        ops.append(((depth.get(key, 0), 1, key), update))
    for key, values in found.creates:
        ops.append(
            (
                (depth.get(key, 0), 2, key),
                CreateGroup(group=Group.from_values(key, values), identity=values["identity"]),
            )
        )
    snap_depth = depths(dict(zip(snapshot.index, snapshot["parent"], strict=True)))
    deletions = sorted(
        (
            DeleteGroup(sync_key=key, identity=values["identity"], reason=reason, parent=values["parent"])
            for key, values, reason in found.deletions
        ),
        key=lambda d: (-snap_depth.get(d.sync_key, 0), d.sync_key),
    )
    return _GroupPart(
        operations=tuple(op for _, op in sorted(ops, key=lambda pair: pair[0])),
        deletions=tuple(deletions),
        rejects=_sorted_rejects(groups.rejects),
        conflicts=tuple(_unique_conflicts([*found.conflicts, *uncleared])),
        unchanged=found.unchanged,
        renames=renames,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _MembershipPart:
    operations: tuple[CreateMembership | UpdateMembership | ChangeMembershipIdentifier, ...]
    deletions: tuple[DeleteMembership, ...]
    rejects: tuple[Reject, ...]
    conflicts: tuple[Conflict, ...]
    unchanged: int

    @classmethod
    def empty(cls) -> _MembershipPart:
        return cls(operations=(), deletions=(), rejects=(), conflicts=(), unchanged=0)


#: Joins a membership's group and person into its identity: the same enrolment under a new sync key is
#: an identifier change, not a second membership of the person in the course.
_PAIR: Final = "\x1f"


def _with_pair(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(identity=frame["group"] + _PAIR + frame["person"])


def _shown_pair(conflict: Conflict) -> Conflict:
    shown = conflict.identity.replace(_PAIR, " / ")
    return dataclasses.replace(conflict, identity=shown, reason=conflict.reason.replace(_PAIR, " / "))


def _plan_memberships(memberships: Roster, snapshot: pd.DataFrame) -> _MembershipPart:
    fields = MEMBERSHIP_SNAPSHOT_COLUMNS
    found = _diff(
        dataclasses.replace(memberships, frame=_with_pair(memberships.frame)),
        _with_pair(snapshot),
        columns=("identity", *fields),
        renames=True,
        noun="membership",
    )
    updates = [
        UpdateMembership(membership=Membership.from_values(key, new), changes=_changes(old, new, fields))
        for key, new, old in found.updates
    ]
    renames = [
        ChangeMembershipIdentifier(
            old_id=old_key,
            new_id=key,
            membership=Membership.from_values(key, values),
            changes=_changes(old_values, values, fields),
        )
        for old_key, key, values, old_values in found.renames
    ]
    creates = [
        CreateMembership(membership=Membership.from_values(key, values)) for key, values in found.creates
    ]
    deletions = [
        DeleteMembership(membership=Membership.from_values(key, values), reason=reason)
        for key, values, reason in found.deletions
    ]
    return _MembershipPart(
        operations=(
            *sorted(renames, key=lambda op: op.new_id),
            *sorted(updates, key=lambda op: op.sync_key),
            *sorted(creates, key=lambda op: op.sync_key),
        ),
        deletions=tuple(sorted(deletions, key=lambda op: op.sync_key)),
        rejects=_sorted_rejects(memberships.rejects),
        conflicts=tuple(_shown_pair(c) for c in _unique_conflicts(found.conflicts)),
        unchanged=found.unchanged,
    )


def _held(key: str, identity: str, *, snapshot_keys: tuple[str, ...], noun: str) -> Conflict:
    what = "sync key or identity" if identity else "sync key"
    return Conflict(
        identity=identity,
        roster_keys=(key,),
        snapshot_keys=tuple(sorted(snapshot_keys)),
        reason=f"a rejected row shares this {noun}'s {what}: nothing is changed until it is fixed",
    )


def _unique_conflicts(conflicts: Iterable[Conflict]) -> list[Conflict]:
    """Sorted, each once (several roster rows can report the same ambiguous identity)."""
    seen = {(c.identity, c.roster_keys, c.snapshot_keys, c.reason): c for c in conflicts}
    return [seen[k] for k in sorted(seen)]


def apply_plan(snapshot: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The snapshot as it would be if IMS ES confirmed every operation and deletion of `plan`.

    Unchanged rows keep their order; updated, renamed and created rows follow, in plan order.

    Args:
        snapshot: index "sync_key", columns SNAPSHOT_COLUMNS.
        plan: a plan made against this snapshot.
    """
    snap = _text_frame(snapshot)
    dropped: set[str] = {d.sync_key for d in plan.deletions if isinstance(d, Delete)}
    added: list[tuple[str, str, Person]] = []
    for op in plan.operations:
        if not isinstance(op, Create | Update | ChangeIdentifier):
            continue  # groups and memberships have their own snapshots
        if isinstance(op, ChangeIdentifier):
            dropped.add(op.old_id)
        dropped.add(op.sync_key)
        added.append((op.sync_key, op.identity, op.person))
    kept = snap.loc[~np.asarray(snap.index.isin(dropped), dtype=bool)]
    index = pd.Index([key for key, _, _ in added], dtype="str", name="sync_key")
    rows = pd.DataFrame(
        {
            "identity": pd.array([identity for _, identity, _ in added], dtype="str"),
            **{
                name: pd.array([getattr(person, name) for _, _, person in added], dtype="str")
                for name in PERSON_FIELDS
            },
        },
        index=index,
    )
    return pd.concat([kept, rows]) if len(rows) else kept
