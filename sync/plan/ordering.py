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
from operator import attrgetter
from typing import Final

from sync.models import Deactivate, Delete, DeleteOperation, DeletesMode, Operation, split_children
from sync.models.blocks import Block, runs
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


#: (operation class, record class) -> the kind, and whether the operation removes (a deletion or a
#: deactivation): what `phases` asks of every operation, answered once per class pair.
_PLACES: Final[dict[tuple[type, type], tuple[Kind, bool]]] = {
    (op_class, kind.record): (kind, op_class in (Delete, Deactivate))
    for kind in KINDS
    for _, op_class in kind.typed_operations
}


def phases(operations: Sequence[Operation]) -> list[list[int]]:
    """The positions of `operations`, grouped into phases to run one after another (order kept inside).

    Changes run by kind in phase order (groups, persons, memberships), a self-referring kind one phase
    per depth (a group after its parent when both change in this run), a kind with links one phase per
    link level (a parent after its children); then removals (deletions and
    deactivations) in DELETION_ORDER, a self-referring kind deepest first.

    The operations are placed run by run (a plan lists each kind's operations of one type together) at
    C speed; only kinds that refer to themselves, or link, look at each operation's record: a first
    night of 10^6 persons without links is placed in a few hundredths of a second.
    """
    placed = _placed(operations)
    linked = _linked_levels(operations, placed)
    keyed: dict[tuple[int, int], list[int]] = {}
    for (kind, removal), positions in placed.items():
        levels = _levels(operations, positions, kind, removal, linked)
        if levels is None:  # one level: the whole part in one phase
            keyed.setdefault(_phase_key(kind, removal, 0), []).extend(positions)
            continue
        for position, level in zip(positions, levels, strict=True):
            keyed.setdefault(_phase_key(kind, removal, level), []).append(position)
    return [keyed[key] for key in sorted(keyed)]  # a key's positions come from one part, in order


def _phase_key(kind: Kind, removal: bool, level: int) -> tuple[int, int]:
    """Where a part's operations of `level` run: changes by kind phase then level; removals after every
    change, in DELETION_ORDER, deepest level first."""
    return (_DELETION_PHASE[kind.name], -level) if removal else (kind.phase, level)


def _placed(operations: Sequence[Operation]) -> dict[tuple[Kind, bool], list[int]]:
    """The positions of `operations` by kind and removal, each in order."""
    placed: dict[tuple[Kind, bool], list[int]] = {}
    start = 0
    for pair, run in runs(operations):
        end = start + len(run)
        placed.setdefault(_PLACES[pair], []).extend(range(start, end))
        start = end
    return placed


def _levels(
    operations: Sequence[Operation],
    positions: list[int],
    kind: Kind,
    removal: bool,
    linked: dict[tuple[str, str], int],
) -> list[int] | None:
    """The level of each operation at `positions` (all of `kind`, removing or not), or None when all are
    at level 0: the depth along a self-reference, for changes overridden by the link level."""
    own = _OWN[kind.name]
    linked_here = not removal and bool(kind.links) and bool(linked)  # (a key not in `linked` keeps its depth)
    if own is None and not linked_here:
        return None
    ops = list(map(operations.__getitem__, positions))
    keys = [op.sync_key for op in ops]
    if own is None:
        depth: list[int] = [0] * len(ops)
    else:
        parent_of = dict(zip(keys, (str(getattr(op.record, own.field)) for op in ops), strict=True))
        depth_of = depths(parent_of)
        depth = [depth_of[key] for key in keys]
    if not linked_here:
        return depth
    return [linked.get((kind.name, key), level) for key, level in zip(keys, depth, strict=True)]


def _linked_levels(
    operations: Sequence[Operation], placed: dict[tuple[Kind, bool], list[int]]
) -> dict[tuple[str, str], int]:
    """(kind, sync key) -> `link_levels` of the changes of kinds with links (`Kind.links`) that link to
    another change of this run (the others stay at level 0): a parent's change runs in a phase after
    its children's creates and identifier changes of this run, as IMS ES skips a link to a person that
    does not exist (yet)."""
    parents: dict[str, dict[str, tuple[str, ...]]] = {}
    linking = {kind.name for kind, removal in placed if kind.links and not removal}
    changed: set[tuple[str, str]] = set()  # each linking kind's changes
    for (op_class, record_class), run in runs(operations):
        kind, removal = _PLACES[op_class, record_class]
        if removal or kind.name not in linking:
            continue
        if isinstance(run, Block):  # (a block's column of links, read whole: on most nights it is blank)
            keys = run.sync_keys()
            values = [""] * len(keys) if run.blank(kind.links) else run.column(kind.links).to_pylist()
        else:
            keys = [op.sync_key for op in run]
            values = list(map(attrgetter(f"record.{kind.links}"), run))
        changed.update((kind.name, key) for key in keys)
        if any(values):  # (at C speed: on most nights no change links)
            linked = parents.setdefault(kind.name, {})
            linked.update(
                (key, split_children(value)) for key, value in zip(keys, values, strict=True) if value
            )
    if not any(parents.values()):
        return {}
    levels: dict[tuple[str, str], int] = {}
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
