"""Pure ordering of a run's operations into phases, and which deletion candidates a run sends.

itslearning asks for hierarchies first, then users, then memberships; deletions go the other way:
memberships, then groups (children before parents: IMS refuses to delete a group with children),
then persons. Operations of one phase run concurrently; a phase starts when the one before it ended,
so that a membership is sent only after its person and group were answered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Final

from sync.models import (
    ChangeGroupIdentifier,
    ChangeIdentifier,
    ChangeMembershipIdentifier,
    Create,
    CreateGroup,
    CreateMembership,
    DeactivateMembership,
    Delete,
    DeleteGroup,
    DeleteMembership,
    DeleteOperation,
    DeletesMode,
    Operation,
    Update,
    UpdateGroup,
    UpdateMembership,
)

__all__ = ["deletion_operations", "depths", "phases"]

_GROUPS: Final = 0
_PERSONS: Final = 1
_MEMBERSHIPS: Final = 2
_MEMBERSHIP_DELETES: Final = 3
_GROUP_DELETES: Final = 4
_PERSON_DELETES: Final = 5


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


def phases(operations: Sequence[Operation]) -> list[list[int]]:
    """The positions of `operations`, grouped into phases to run one after another (order kept inside).

    Group changes form one phase per depth (a group after its parent when both change in this run),
    then persons, then memberships; then membership deletions and deactivations, group deletions
    deepest first, and person deletions.
    """
    changed_parent: dict[str, str] = {}
    deleted_parent: dict[str, str] = {}
    for op in operations:
        if isinstance(op, CreateGroup | UpdateGroup | ChangeGroupIdentifier):
            changed_parent[op.sync_key] = op.group.parent
        elif isinstance(op, DeleteGroup):
            deleted_parent[op.sync_key] = op.parent
    change_depth = depths(changed_parent)
    delete_depth = depths(deleted_parent)
    keyed: dict[tuple[int, int], list[int]] = {}
    for position, op in enumerate(operations):
        match op:
            case CreateGroup() | UpdateGroup() | ChangeGroupIdentifier():
                key = (_GROUPS, change_depth[op.sync_key])
            case Create() | Update() | ChangeIdentifier():
                key = (_PERSONS, 0)
            case CreateMembership() | UpdateMembership() | ChangeMembershipIdentifier():
                key = (_MEMBERSHIPS, 0)
            case DeleteMembership() | DeactivateMembership():
                key = (_MEMBERSHIP_DELETES, 0)
            case DeleteGroup():
                key = (_GROUP_DELETES, -delete_depth[op.sync_key])
            case Delete():
                key = (_PERSON_DELETES, 0)
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
