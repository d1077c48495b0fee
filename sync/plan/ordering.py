"""Pure ordering of a run's operations into phases, and which deletion candidates a run sends.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
itslearning asks for hierarchies first, then users, then memberships (`Kind.phase`); deletions go
the other way: a kind before the kinds it refers to (memberships, then groups and persons), a kind
that refers to itself children before parents (IMS refuses to delete a group with children).
Operations of one phase run concurrently; a phase starts when the one before it ended, so that a
membership is sent only after its person and group were answered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Final

from sync.models import DeactivateMembership, DeleteMembership, DeleteOperation, DeletesMode, Operation
from sync.models.kinds import KINDS, Kind, Reference, kind_named

__all__ = ["DELETION_ORDER", "deletion_operations", "depths", "own_reference", "phases"]


def own_reference(kind: Kind) -> Reference | None:
    """The field by which records of `kind` refer to records of their own kind (a group's parent)."""
    return next((ref for ref in kind.references if ref.kind == kind.name), None)


def _level(kind: Kind) -> int:
    """How many kinds deep `kind` refers to others: persons and groups 0, memberships 1."""
    others = [kind_named(ref.kind) for ref in kind.references if ref.kind != kind.name]
    return 1 + max(map(_level, others)) if others else 0


#: The order deletions run in: a kind before those it refers to; kinds that refer to none of each
#: other keep their phase order (memberships, then groups, then persons).
DELETION_ORDER: Final = tuple(sorted(KINDS, key=lambda kind: (-_level(kind), kind.phase)))

_DELETION_PHASE: Final = {kind.name: len(KINDS) + rank for rank, kind in enumerate(DELETION_ORDER)}
_OWN: Final = {kind.name: own_reference(kind) for kind in KINDS}


def depths(parent_of: dict[str, str]) -> dict[str, int]:
    """Depth of each key along `parent_of` links that stay inside its keys (loops count as depth 0)."""
    depth: dict[str, int] = {}
    for start in parent_of:
        path: list[str] = []
        key = start
        while key in parent_of and key not in depth and key not in path:
            path.append(key)
            key = parent_of[key]
        base = depth.get(key, -1) if key in parent_of and key not in path else -1
        for offset, visited in enumerate(reversed(path), start=1):
            depth[visited] = base + offset
    return depth


#: Per operation type: its kind, and whether it removes (a deletion or a deactivation).
_PLACE: Final[dict[type, tuple[Kind, bool]]] = {
    op_type: (kind, op_type in (kind.delete, kind.deactivate))
    for kind in KINDS
    for op_type in kind.operation_types
}


def _own_parent(ref: Reference, op: Operation, removal: bool) -> str:
    """The key `op` refers to along its kind's own reference (a group's parent): a change's record
    holds it, a deletion by sync key carries the snapshot's."""
    holder = op if removal else op.record  # type: ignore[union-attr]  # every change carries its record
    return str(getattr(holder, ref.field))


def phases(operations: Sequence[Operation]) -> list[list[int]]:
    """The positions of `operations`, grouped into phases to run one after another (order kept inside).

    Changes run by kind in phase order (groups, persons, memberships), a self-referring kind one phase
    per depth (a group after its parent when both change in this run); then removals (deletions and
    deactivations) in DELETION_ORDER, a self-referring kind deepest first.
    """
    parent_of: dict[tuple[str, bool], dict[str, str]] = {}  # (kind, removal) -> key -> parent
    for op in operations:
        kind, removal = _PLACE[type(op)]
        ref = _OWN[kind.name]
        if ref is not None:
            parent_of.setdefault((kind.name, removal), {})[op.sync_key] = _own_parent(ref, op, removal)
    depth = {part: depths(links) for part, links in parent_of.items()}
    keyed: dict[tuple[int, int], list[int]] = {}
    for position, op in enumerate(operations):
        kind, removal = _PLACE[type(op)]
        level = depth[kind.name, removal][op.sync_key] if _OWN[kind.name] is not None else 0
        key = (_DELETION_PHASE[kind.name], -level) if removal else (kind.phase, level)
        keyed.setdefault(key, []).append(position)
    return [keyed[key] for key in sorted(keyed)]


def deletion_operations(deletions: Iterable[DeleteOperation], mode: DeletesMode) -> list[Operation]:
    """What a run sends of the plan's deletion candidates under `--deletes mode`.

    off: nothing. deactivate: each active membership becomes a DeactivateMembership (kept, marked
    inactive); persons and groups are kept. delete: every candidate.
    """
    if mode is DeletesMode.OFF:
        return []
    if mode is DeletesMode.DELETE:
        return list(deletions)
    return [
        DeactivateMembership(membership=dataclasses.replace(op.membership, active="false"), reason=op.reason)
        for op in deletions
        if isinstance(op, DeleteMembership) and op.membership.active != "false"
    ]
