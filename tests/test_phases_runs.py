"""`ordering.phases` places operations run by run (by class pair, at C speed): it must give exactly the
phases of the object-at-a-time placement it replaced (kept below as the oracle), whatever the mix and
order of kinds, operation types, parents and links."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.models import (
    ChangeIdentifier,
    Create,
    Deactivate,
    Delete,
    Group,
    Membership,
    Operation,
    Person,
    Update,
    split_children,
)
from sync.models.kinds import DELETION_ORDER, KINDS, Kind, kind_of
from sync.models.records import CHILDREN_SEP
from sync.plan.ordering import depths, link_levels, own_reference, phases

_DELETION_PHASE = {kind.name: len(KINDS) + rank for rank, kind in enumerate(DELETION_ORDER)}
_OWN = {kind.name: own_reference(kind) for kind in KINDS}


def _place(op: Operation) -> tuple[Kind, bool]:
    return kind_of(op), isinstance(op, (Delete, Deactivate))


def reference_phases(operations: Sequence[Operation]) -> list[list[int]]:
    """The placement as it was before issue 16: one operation at a time."""
    parent_of: dict[tuple[str, bool], dict[str, str]] = {}
    for op in operations:
        kind, removal = _place(op)
        ref = _OWN[kind.name]
        if ref is not None:
            parent_of.setdefault((kind.name, removal), {})[op.sync_key] = str(getattr(op.record, ref.field))
    depth = {part: depths(links) for part, links in parent_of.items()}
    linked = _reference_linked_levels(operations)
    keyed: dict[tuple[int, int], list[int]] = {}
    for position, op in enumerate(operations):
        kind, removal = _place(op)
        level = depth[kind.name, removal][op.sync_key] if _OWN[kind.name] is not None else 0
        level = linked.get((kind.name, op.sync_key), level) if not removal else level
        key = (_DELETION_PHASE[kind.name], -level) if removal else (kind.phase, level)
        keyed.setdefault(key, []).append(position)
    return [keyed[key] for key in sorted(keyed)]


def _reference_linked_levels(operations: Sequence[Operation]) -> dict[tuple[str, str], int]:
    linking = [kind for kind in KINDS if kind.links]
    parents: dict[str, dict[str, tuple[str, ...]]] = {kind.name: {} for kind in linking}
    changes: list[tuple[str, str]] = []
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
        children = (c for keys in linked.values() for c in keys if (name, c) in changed)
        graph = dict.fromkeys(children, ()) | linked
        levels.update(((name, key), level) for key, level in link_levels(graph).items())
    return levels


_KEYS = st.sampled_from("abcdefgh")


@st.composite
def _record(draw: st.DrawFn) -> Person | Group | Membership:
    key = draw(_KEYS)
    which = draw(st.sampled_from(("person", "group", "membership")))
    if which == "group":
        return Group(sync_key=key, name=key, parent=draw(st.sampled_from(("", *"abcdefgh"))))
    if which == "membership":
        return Membership(sync_key=key, group=draw(_KEYS), person=draw(_KEYS), role="Learner")
    children = CHILDREN_SEP.join(sorted(set(draw(st.lists(_KEYS, max_size=3)))))
    return Person(sync_key=key, username=key, children=children)


@st.composite
def _operation(draw: st.DrawFn) -> Operation:
    record = draw(_record())
    made = draw(st.sampled_from(("create", "update", "rename", "delete", "deactivate")))
    if made == "create":
        return Create(record=record)
    if made == "update":
        return Update(record=record, changes=())
    if made == "rename":
        return ChangeIdentifier(record=record, old_id="old-" + record.sync_key, new_id=record.sync_key)
    if made == "deactivate" and isinstance(record, Membership):
        return Deactivate(record=record)
    return Delete(record=record)


@settings(max_examples=400)
@given(st.lists(_operation(), max_size=40), st.booleans())
def test_phases_equal_the_placement_one_operation_at_a_time(ops: list[Operation], grouped: bool) -> None:
    """Interleaved as drawn, or in runs of one class pair as a plan lists them."""
    if grouped:
        ops.sort(key=lambda op: (type(op).__name__, type(op.record).__name__))
    assert phases(ops) == reference_phases(ops)


def test_a_first_night_of_persons_is_one_phase_in_order() -> None:
    """10^4 creates without links: one phase, every position once, in order (no level computed)."""
    ops = [Create(record=Person(sync_key=f"p{i:05}")) for i in range(10_000)]
    assert phases(ops) == [list(range(10_000))]
