"""One kind's planning step: the column diff of its roster against its snapshot, turned into operations.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
Written once over `sync.models.kinds`: the kind names its fields, identity, references and operation
types. What genuinely differs between kinds is spelled out here:

- a kind with an identity key (persons, groups) is recognised by it when its sync key changes, as the
  policy allows; a membership has none: its group and person are its identity, and the same enrolment
  under a new sync key is always a changeMembershipIdentifier (a create would enrol the person twice);
- an update that empties a field the kind cannot clear (a group's parent or name) is a Conflict;
- a kind that refers to itself (a group's parent) is diffed against a snapshot with its own renamed
  keys moved, changed parents first and deleted children first;
- a kind with links (a parent's children) updates an unchanged record whose links name a record this
  run creates (IMS ES skipped that link when it was sent);
- a create carries the roster columns its kind is `created_with` (a person's initial password);
- a deletion carries the snapshot's record (a group's parent orders deletions; a membership is sent
  back inactive under `--deletes deactivate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from sync.models import (
    ChangeIdentifier,
    ChangeOperation,
    Conflict,
    Create,
    Delete,
    DeleteOperation,
    FieldChange,
    Reject,
    Update,
    join_children,
    split_children,
)
from sync.models.blocks import Block, Ops, runs
from sync.models.kinds import Kind
from sync.models.records import instances
from sync.plan.columns import Found, Rows, arrow, by_key, diff_columns, moved_keys
from sync.plan.identity import shown, unique_conflicts, with_reference_identity
from sync.plan.ordering import depths, own_reference
from sync.read.roster import Roster

__all__ = ["KindPlan", "plan_kind", "snapshot_columns"]

Op = TypeVar("Op", Create[Any], Delete[Any])


def snapshot_columns(kind: Kind) -> tuple[str, ...]:
    """The columns of `kind`'s snapshot frame (index "sync_key"), all text: "identity" when the kind
    has an identity key, then its fields."""
    return ("identity", *kind.fields) if kind.identity else kind.fields


@dataclass(frozen=True, slots=True, kw_only=True)
class KindPlan:
    """One kind's part of a plan; `renames` maps old sync keys to new ones (for the kinds referring to it)."""

    kind: Kind
    operations: Sequence[ChangeOperation]
    deletions: Sequence[DeleteOperation]
    rejects: tuple[Reject, ...]
    conflicts: tuple[Conflict, ...]
    unchanged: int
    renames: dict[str, str]

    @classmethod
    def empty(cls, kind: Kind) -> KindPlan:
        """The part of a kind the roster set does not read: left alone."""
        return cls(kind=kind, operations=(), deletions=(), rejects=(), conflicts=(), unchanged=0, renames={})


def plan_kind(
    kind: Kind,
    roster: Roster,
    snapshot: pd.DataFrame,
    *,
    detect_identifier_changes: bool,
    moved: Mapping[str, dict[str, str]] | None = None,
) -> KindPlan:
    """Plan what makes IMS ES hold `roster`'s records of `kind` (rules: sync.plan.diff).

    Args:
        roster: the kind's roster (accepted rows plus rejects), its references already checked.
        snapshot: what IMS ES confirmed: index "sync_key", `snapshot_columns(kind)`, all text.
        detect_identifier_changes: recognise a changed sync key by the identity key.
        moved: planned renames of the kinds this one refers to, by kind name: the snapshot's
            references are moved first, as the snapshot will hold them.
    """
    for ref in kind.references:
        if ref.kind != kind.name and moved and moved.get(ref.kind):
            snapshot = moved_keys(snapshot, ref.field, moved[ref.kind])
    found = _found(kind, roster, snapshot, detect_identifier_changes)
    renames = {old: new for old, new, _, _ in found.renames}
    own = own_reference(kind)
    depth: dict[str, int] = {}
    deleted_depth: dict[str, int] = {}
    if own is not None:
        if renames:  # children of a renamed record name its new key: compare them with the moved snapshot
            moved_own = moved_keys(snapshot, own.field, renames)
            found = _found(kind, roster, moved_own, detect_identifier_changes)
        depth = depths(dict(zip(roster.frame.index, roster.frame[own.field], strict=True)))
        # deletions go children first, by the snapshot's own links (before its renames moved them)
        deleted_depth = depths(dict(zip(snapshot.index, snapshot[own.field], strict=True)))
    operations, uncleared = _operations(kind, found, depth)
    # only a record the snapshot holds is relinked (nothing is on a first night)
    relinks = _relinks(kind, roster.frame, snapshot, operations) if kind.links and len(snapshot) else ()
    operations = Ops(operations, relinks) if relinks else operations
    deletions = _deletions(kind, found, deleted_depth if own is not None else None)
    conflicts = unique_conflicts([*found.conflicts, *uncleared])
    return KindPlan(
        kind=kind,
        operations=operations,
        deletions=deletions,
        rejects=tuple(sorted(roster.rejects, key=lambda r: (r.file, r.row, r.field, r.reason))),
        # a kind without an identity key shows the identity made of its references readably
        conflicts=tuple(conflicts if kind.identity else map(shown, conflicts)),
        unchanged=found.unchanged - len(relinks),
        renames=renames,
    )


def _found(kind: Kind, roster: Roster, snapshot: pd.DataFrame, detect_identifier_changes: bool) -> Found:
    if not kind.identity:  # known by its references instead, and always matched by them
        roster = dataclasses.replace(roster, frame=with_reference_identity(kind, roster.frame))
        snapshot = with_reference_identity(kind, snapshot)
    return diff_columns(
        roster,
        snapshot,
        columns=("identity", *kind.fields),
        extra=kind.created_with,
        renames=detect_identifier_changes or not kind.identity,
        noun=kind.name,
    )


def _changes(old: dict[str, str], new: dict[str, str], columns: Sequence[str]) -> tuple[FieldChange, ...]:
    """The fields that differ, identity last (as the reports list them)."""
    fields = (*(c for c in columns if c != "identity"), *(c for c in columns if c == "identity"))
    return tuple(
        FieldChange(field=name, old=old[name], new=new[name]) for name in fields if old[name] != new[name]
    )


def _carried(kind: Kind, key: str, values: dict[str, str]) -> dict[str, Any]:
    """What every operation of `kind` with a record carries: the record, and the identity if it has one."""
    carried: dict[str, Any] = {"record": kind.record.from_values(key, values)}
    if kind.identity:
        carried["identity"] = values["identity"]
    return carried


def _bulk(kind: Kind, operation: type[Op], rows: Rows, **columns: Sequence[str]) -> list[Op]:
    """One `operation` per row, built column by column: what `operation(**_carried(...), **columns)`
    gives row by row."""
    carried: dict[str, Sequence[Any]] = {"record": kind.record.from_columns(rows.keys, rows.columns)}
    if kind.identity:
        carried["identity"] = rows.columns["identity"]
    return instances(operation, len(rows), {**carried, **columns})


def _deletions(kind: Kind, found: Found, depth: dict[str, int] | None) -> Sequence[DeleteOperation]:
    """The deletion candidates, each carrying the snapshot's record, in the order they are sent: a
    kind that refers to itself (groups) children first, as objects; the others by sync key, kept as
    columns (a roster that lost a school lists 10^4-10^5 of them every night until they are sent)."""
    taken = found.deletions
    reasons = found.deletion_reasons
    if depth is not None:
        deleted: list[Delete[Any]] = _bulk(kind, Delete, taken.rows(), reason=reasons)
        return tuple(sorted(deleted, key=lambda d: (-depth.get(d.sync_key, 0), d.sync_key)))
    order = by_key(taken.keys)
    own = ("identity",) if kind.identity else ()
    columns = {name: taken.columns[name].take(order) for name in (*kind.fields, *own)}
    return Ops(
        Block(
            operation=Delete,
            record=kind.record,
            keys=taken.keys.take(order),
            columns={**columns, "reason": arrow(reasons).take(order)},
        )
    )


def _operations(
    kind: Kind, found: Found, depth: dict[str, int]
) -> tuple[Sequence[ChangeOperation], list[Conflict]]:
    """Renames, updates and creates: parents first, then in that order, then by sync key; plus the
    conflicts of updates IMS ES cannot carry out."""
    columns = snapshot_columns(kind)
    ops: list[tuple[tuple[int, int, str], ChangeOperation]] = []
    for old_key, key, values, old_values in found.renames:
        changes = _changes(old_values, values, columns)
        rename = ChangeIdentifier(old_id=old_key, new_id=key, changes=changes, **_carried(kind, key, values))
        ops.append(((depth.get(key, 0), 0, key), rename))
    uncleared: list[Conflict] = []
    for key, new, old in found.updates:
        cleared = [name for name in kind.unclearable if old[name] and not new[name]]
        if cleared:
            uncleared.append(_cannot_clear(kind, key, new["identity"], cleared))
            continue
        update = Update(changes=_changes(old, new, columns), **_carried(kind, key, new))
        ops.append(((depth.get(key, 0), 1, key), update))
    if depth:  # parents first: the creates take their places among the others (a few hundred groups)
        rows = found.creates.rows()
        extra = {name: rows.columns[name] for name in kind.created_with}
        creates: list[Create[Any]] = _bulk(kind, Create, rows, **extra)
        ops.extend(((depth.get(key, 0), 2, key), op) for key, op in zip(rows.keys, creates, strict=True))
        return tuple(op for _, op in sorted(ops, key=lambda pair: pair[0])), uncleared
    # else one level: renames and updates by sync key, then the creates (already in sync key order), kept
    # as columns (a first night creates every row of the roster)
    own = (*(("identity",) if kind.identity else ()), *kind.created_with)
    block = Block(
        operation=Create,
        record=kind.record,
        keys=found.creates.keys,
        columns={name: found.creates.columns[name] for name in (*kind.fields, *own)},
    )
    return Ops(tuple(op for _, op in sorted(ops, key=lambda pair: pair[0])), block), uncleared


def _relinks(
    kind: Kind, frame: pd.DataFrame, snapshot: pd.DataFrame, operations: Sequence[ChangeOperation]
) -> tuple[Update[Any], ...]:
    """Updates of unchanged records whose links (a parent's children) name a record this run creates:
    IMS ES skipped those links when they were sent (the child did not exist), so they are sent again,
    after the create (`ordering.phases`). The change shows the links without those children as old."""
    created: set[str] = set()
    sent: set[str] = set()
    for (op_class, _), run in runs(operations):
        keys = run.sync_keys() if isinstance(run, Block) else [op.sync_key for op in run]
        sent.update(keys)
        if op_class is Create:
            created.update(keys)
    if not created:
        return ()
    linked = frame[kind.links]
    relinks = []
    # rows marked for deletion are deletion candidates, not parents to link
    for key, value in linked[(linked.to_numpy() != "") & ~frame["delete"].to_numpy(dtype=bool)].items():
        children = set(split_children(str(value)))
        if key in sent or key not in snapshot.index or not children & created:
            continue
        values = {name: str(frame.at[key, name]) for name in snapshot_columns(kind)}
        old = join_children(children - created)
        change = FieldChange(field=kind.links, old=old, new=values[kind.links])
        relinks.append(Update(changes=(change,), **_carried(kind, str(key), values)))
    return tuple(relinks)


def _cannot_clear(kind: Kind, key: str, identity: str, fields: Sequence[str]) -> Conflict:
    what = " and ".join(fields)
    return Conflict(
        identity=identity,
        roster_keys=(key,),
        snapshot_keys=(key,),
        reason=f"the roster empties this {kind.name}'s {what}, which IMS ES cannot clear "
        f"({kind.operation('update')} keeps what it is not sent): set it in itslearning by hand, or give "
        f"the {kind.name} a value again",
    )
