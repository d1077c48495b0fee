"""Pure ordering of a run's operations into phases, and which deletion candidates a run sends.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
itslearning asks for hierarchies first, then users, then memberships (`Kind.phase`); deletions go
the other way: a kind before the kinds it refers to (memberships, then groups and persons), a kind
that refers to itself children before parents (IMS refuses to delete a group with children).
Operations of one phase run concurrently; a phase starts when the one before it ended, so that a
membership is sent only after its person and group were answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from sync.models import Deactivate, Delete, DeleteOperation, DeletesMode, Operation, split_children
from sync.models.kinds import DELETION_ORDER, KINDS, Kind, Reference, kind_of

__all__ = ["deletion_operations", "depths", "link_levels", "own_reference", "phases"]


def own_reference(kind: Kind) -> Reference | None:
    """The field by which records of `kind` refer to records of their own kind (a group's parent)."""
    return next((ref for ref in kind.references if ref.kind == kind.name), None)


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


def link_levels(links: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Level of each key of `links` (key -> the keys it links to, e.g. a person's children): 0 when it
    links to none of `links`' keys, else one more than the highest of those it links to. Keys on a loop
    come after what they link to off the loop (the loop itself cannot be ordered)."""
    inside = {
        key: {other for other in linked if other in links and other != key} for key, linked in links.items()
    }
    linked_from: dict[str, list[str]] = {}
    for key, linked in inside.items():
        for other in linked:
            linked_from.setdefault(other, []).append(key)
    waiting = {key: len(linked) for key, linked in inside.items()}
    level = dict.fromkeys(links, 0)
    ready = [key for key, count in waiting.items() if not count]
    while ready:
        key = ready.pop()
        for parent in linked_from.get(key, ()):
            level[parent] = max(level[parent], level[key] + 1)
            waiting[parent] -= 1
            if not waiting[parent]:
                ready.append(parent)
    return level


def _place(op: Operation) -> tuple[Kind, bool]:
    """`op`'s kind, and whether it removes (a deletion or a deactivation)."""
    return kind_of(op), isinstance(op, (Delete, Deactivate))


def phases(operations: Sequence[Operation]) -> list[list[int]]:
    """The positions of `operations`, grouped into phases to run one after another (order kept inside).

    Changes run by kind in phase order (groups, persons, memberships), a self-referring kind one phase
    per depth (a group after its parent when both change in this run), a kind with links one phase per
    link level (a parent after its children); then removals (deletions and
    deactivations) in DELETION_ORDER, a self-referring kind deepest first.
    """
    parent_of: dict[tuple[str, bool], dict[str, str]] = {}  # (kind, removal) -> key -> parent
    for op in operations:
        kind, removal = _place(op)
        ref = _OWN[kind.name]
        if ref is not None:
            parent_of.setdefault((kind.name, removal), {})[op.sync_key] = str(getattr(op.record, ref.field))
    depth = {part: depths(links) for part, links in parent_of.items()}
    linked = _linked_levels(operations)
    keyed: dict[tuple[int, int], list[int]] = {}
    for position, op in enumerate(operations):
        kind, removal = _place(op)
        level = depth[kind.name, removal][op.sync_key] if _OWN[kind.name] is not None else 0
        level = linked.get((kind.name, op.sync_key), level) if not removal else level
        key = (_DELETION_PHASE[kind.name], -level) if removal else (kind.phase, level)
        keyed.setdefault(key, []).append(position)
    return [keyed[key] for key in sorted(keyed)]


def _linked_levels(operations: Sequence[Operation]) -> dict[tuple[str, str], int]:
    """(kind, sync key) -> `link_levels` of the changes of kinds with links (`Kind.links`) that link to
    another change of this run (the others stay at level 0): a parent's change runs in a phase after
    its children's creates and identifier changes of this run, as IMS ES skips a link to a person that
    does not exist (yet)."""
    linking = [kind for kind in KINDS if kind.links]
    if not linking:
        return {}
    parents: dict[str, dict[str, tuple[str, ...]]] = {kind.name: {} for kind in linking}
    changes: list[tuple[str, str]] = []  # (kind, sync key) of every change of a linking kind
    for op in operations:
        kind, removal = _place(op)
        if removal or not kind.links:
            continue
        changes.append((kind.name, op.sync_key))
        value = getattr(op.record, kind.links)
        if value:
            parents[kind.name][op.sync_key] = split_children(value)
    levels: dict[tuple[str, str], int] = {}
    changed = set(changes) if any(parents.values()) else set()
    for name, linked in parents.items():
        # the parents, and as leaves those of their children that change in this run too
        children = (c for keys in linked.values() for c in keys if (name, c) in changed)
        graph = dict.fromkeys(children, ()) | linked
        levels.update(((name, key), level) for key, level in link_levels(graph).items())
    return levels


def deletion_operations(deletions: Iterable[DeleteOperation], mode: DeletesMode) -> list[Operation]:
    """What a run sends of the plan's deletion candidates under `--deletes mode`.

    off: nothing. deactivate: each active record of a kind that can be deactivated (memberships) becomes
    a Deactivate (kept, marked inactive); the others are kept. delete: every candidate.
    """
    if mode is DeletesMode.OFF:
        return []
    if mode is DeletesMode.DELETE:
        return list(deletions)
    return [
        Deactivate(
            record=kind.record.from_values(op.sync_key, values | {"active": "false"}), reason=op.reason
        )
        for op in deletions
        if (kind := kind_of(op)).deactivatable and (values := op.record.values())["active"] != "false"
    ]
