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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]

from sync.models import (
    PERSON_FIELDS,
    ChangeIdentifier,
    Conflict,
    Create,
    Delete,
    FieldChange,
    Person,
    Plan,
    Update,
)
from sync.roster import Roster

__all__ = ["SNAPSHOT_COLUMNS", "DiffPolicy", "apply_plan", "empty_snapshot", "plan"]

#: The columns of a snapshot frame (index "sync_key"), all text.
SNAPSHOT_COLUMNS: Final = ("identity", *PERSON_FIELDS)

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


def empty_snapshot() -> pd.DataFrame:
    """A snapshot frame with no persons: index "sync_key", columns SNAPSHOT_COLUMNS, all text."""
    index = pd.Index([], dtype="str", name="sync_key")
    return pd.DataFrame({name: pd.Series([], dtype="str", index=index) for name in SNAPSHOT_COLUMNS})


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


def _changes(old: dict[str, str], new: dict[str, str]) -> tuple[FieldChange, ...]:
    fields = (*PERSON_FIELDS, "identity")
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
    """Decides what each roster row with a new sync key becomes: Create, ChangeIdentifier or Conflict."""

    def __init__(
        self,
        *,
        new: list[tuple[str, dict[str, str]]],
        protected: BoolArray,
        protected_snapshot_keys: set[str],
    ) -> None:
        self.new = new
        self.protected = protected
        self.protected_snapshot_keys = protected_snapshot_keys
        self.claims: dict[str, list[str]] = {}  # identity -> new roster keys claiming it
        for key, values in new:
            if values["identity"]:
                self.claims.setdefault(values["identity"], []).append(key)
        # identity -> snapshot persons with it whose keys left the roster
        self.candidates: dict[str, list[tuple[str, dict[str, str]]]] = {}

    def add_candidates(self, records: list[tuple[str, dict[str, str]]]) -> None:
        """Register snapshot persons (gone from the roster) that a new row's identity may match."""
        for key, values in records:
            self.candidates.setdefault(values["identity"], []).append((key, values))

    def match(self, conflicts: list[Conflict]) -> tuple[list[ChangeIdentifier], list[Create], set[str]]:
        """The renames and creates, appending conflicts; plus the snapshot keys they consume."""
        renames: list[ChangeIdentifier] = []
        creates: list[Create] = []
        consumed: set[str] = set()  # snapshot keys renamed or in conflict: not deletion candidates
        for (key, values), is_protected in zip(self.new, self.protected, strict=True):
            identity = values["identity"]
            matches = self.candidates.get(identity, []) if identity else []
            snapshot_keys = tuple(sorted(k for k, _ in matches))
            consumed.update(snapshot_keys)
            if is_protected:
                conflicts.append(_held(key, identity, snapshot_keys=snapshot_keys))
            elif not matches:
                person = Person.from_values(key, values)
                creates.append(Create(person=person, identity=identity, password=values["password"]))
            elif len(matches) > 1 or len(self.claims[identity]) > 1:
                conflicts.append(
                    Conflict(
                        identity=identity,
                        roster_keys=tuple(sorted(self.claims[identity])),
                        snapshot_keys=snapshot_keys,
                        reason=f"identity {identity!r} matches {len(self.claims[identity])} new roster "
                        f"row(s) and {len(matches)} snapshot person(s) whose sync keys left the roster",
                    )
                )
            elif snapshot_keys[0] in self.protected_snapshot_keys:
                conflicts.append(
                    Conflict(
                        identity=identity,
                        roster_keys=(key,),
                        snapshot_keys=snapshot_keys,
                        reason=f"identity {identity!r} belongs to snapshot person {snapshot_keys[0]!r}, "
                        "who has a rejected row: fix that row first",
                    )
                )
            else:
                old_key, old_values = matches[0]
                renames.append(
                    ChangeIdentifier(
                        old_id=old_key,
                        new_id=key,
                        person=Person.from_values(key, values),
                        identity=identity,
                        changes=_changes(old_values, values),
                    )
                )
        return renames, creates, consumed


def plan(roster: Roster, snapshot: pd.DataFrame, policy: DiffPolicy = _DEFAULT_POLICY) -> Plan:
    """Compare a roster with the snapshot and plan the operations that make IMS ES match the roster.

    Args:
        roster: the roster as read by `sync.roster.read_roster` (accepted rows plus rejects).
        snapshot: what IMS ES confirmed: index "sync_key", columns SNAPSHOT_COLUMNS, all text.
        policy: the operator's choices.

    Returns:
        A deterministic Plan: changeIdentifiers, updates, creates (each by sync key), deletion
        candidates (by sync key), rejects (by row) and conflicts (sorted).
    """
    rows = _Side(roster.frame, (*SNAPSHOT_COLUMNS, "password"))
    snap = _Side(snapshot, SNAPSHOT_COLUMNS)
    marked = np.asarray(roster.frame["delete"], dtype=bool)
    # The one hash join: where each roster key sits in the snapshot (-1: not there).
    position = np.asarray(
        pc.fill_null(pc.index_in(rows.keys, value_set=snap.keys), -1).to_numpy(zero_copy_only=False),
        dtype=np.intp,
    )
    in_roster = np.zeros(len(snap), dtype=bool)
    in_roster[position[position >= 0]] = True

    protected_keys = frozenset(r.sync_key for r in roster.rejects if r.sync_key)
    protected_ids = frozenset(i for i in roster.rejected_identities if i)
    snap_protected = snap.is_in(protected_keys) | snap.is_in(protected_ids, "identity")
    row_protected = rows.is_in(protected_keys) | rows.is_in(protected_ids, "identity")
    protected_snapshot_keys = {key for key, _ in snap.records(np.flatnonzero(snap_protected), ())}

    conflicts: list[Conflict] = []

    # --- keys in both: update, unchanged, or held ----------------------------------------------
    present = ~marked & (position >= 0)
    changed = np.zeros(len(rows), dtype=bool)
    if present.any():
        aligned = pa.array(np.where(present, position, 0), type=pa.int64())
        for name in SNAPSHOT_COLUMNS:
            changed |= _mask(pc.not_equal(rows.columns[name], snap.columns[name].take(aligned)))
    held = present & row_protected
    held[present] |= snap_protected[position[present]]
    changed &= present & ~held
    unchanged = int((present & ~changed & ~held).sum())
    updates = []
    changed_at = np.flatnonzero(changed)
    for (key, new_values), (_, old_values) in zip(
        rows.records(changed_at, SNAPSHOT_COLUMNS),
        snap.records(position[changed_at], SNAPSHOT_COLUMNS),
        strict=True,
    ):
        updates.append(
            Update(
                person=Person.from_values(key, new_values),
                identity=new_values["identity"],
                changes=_changes(old_values, new_values),
            )
        )
    for key, values in rows.records(np.flatnonzero(held), ("identity",)):
        conflicts.append(_held(key, values["identity"], snapshot_keys=(key,)))

    # --- new keys: create, changeIdentifier, or conflict ----------------------------------------
    new_at = np.flatnonzero(~marked & (position < 0))
    gone = ~in_roster
    matcher = _NewRows(
        new=rows.records(new_at, (*SNAPSHOT_COLUMNS, "password")),
        protected=row_protected[new_at],
        protected_snapshot_keys=protected_snapshot_keys,
    )
    if policy.detect_identifier_changes and matcher.claims:
        wanted = gone & snap.is_in(frozenset(matcher.claims), "identity")
        matcher.add_candidates(snap.records(np.flatnonzero(wanted), SNAPSHOT_COLUMNS))
    renames, creates, consumed = matcher.match(conflicts)

    # --- deletion candidates --------------------------------------------------------------------
    deletions = [
        Delete(sync_key=key, identity=values["identity"], reason=REASON_NOT_IN_ROSTER)
        for key, values in snap.records(np.flatnonzero(gone & ~snap_protected), ("identity",))
        if key not in consumed
    ]
    marked_at = position[marked & (position >= 0)]
    for key, values in snap.records(marked_at, ("identity",)):
        if key not in protected_snapshot_keys:
            deletions.append(Delete(sync_key=key, identity=values["identity"], reason=REASON_MARKED))

    conflicts = _unique_conflicts(conflicts)
    return Plan(
        operations=(
            *sorted(renames, key=lambda op: op.new_id),
            *sorted(updates, key=lambda op: op.sync_key),
            *sorted(creates, key=lambda op: op.sync_key),
        ),
        deletions=tuple(sorted(deletions, key=lambda op: op.sync_key)),
        rejects=tuple(sorted(roster.rejects, key=lambda r: (r.row, r.field, r.reason))),
        conflicts=tuple(conflicts),
        unchanged=unchanged,
        snapshot_size=len(snapshot),
    )


def _held(key: str, identity: str, *, snapshot_keys: tuple[str, ...]) -> Conflict:
    return Conflict(
        identity=identity,
        roster_keys=(key,),
        snapshot_keys=tuple(sorted(snapshot_keys)),
        reason="a rejected row shares this person's sync key or identity: nothing is changed until "
        "it is fixed",
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
    dropped: set[str] = {d.sync_key for d in plan.deletions}
    added: list[tuple[str, str, Person]] = []
    for op in plan.operations:
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
