"""What a plan counts and selects of its operations by class (at C speed) is what asking each one gives."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from sync.cli.stages import from_drift
from sync.models import Create, DeletesMode, Operation, Person, Plan, Schools, kind_of
from sync.models.kinds import OPERATION_TYPES, operation_type
from sync.models.plans import count_operations
from sync.plan.limits import parse_rule
from sync.plan.safety import SafetyLimits, SchoolCounts, check_limits
from sync.plan.selection import select_operations
from tests.strategies import operations


@given(operations())
def test_counts_by_class_are_each_operation_s_kind_and_type(ops: list[Operation]) -> None:
    """Every (kind, operation type) is counted as often as operations of it are in the list."""
    assert count_operations(ops) == Counter((kind_of(op).name, operation_type(op)) for op in ops)


@given(operations(), st.none() | st.frozensets(st.sampled_from(OPERATION_TYPES)))
def test_selection_sends_the_types_chosen_and_holds_the_rest_in_order(
    ops: list[Operation], only: frozenset[str] | None
) -> None:
    """--only sends the operations of its types, holds the others (both in plan order); none: all sent."""
    selection = select_operations(ops, [], deletes=DeletesMode.OFF, only=only)  # type: ignore[arg-type]
    assert selection.send == [op for op in ops if only is None or operation_type(op) in only]
    assert [h.operation for h in selection.held] == [
        op for op in ops if only is not None and operation_type(op) not in only
    ]
    assert all(h.reason == "held: not in --only" for h in selection.held)


def test_drift_rows_are_those_of_planned_operations_of_the_repaired_kind() -> None:
    """A repair names a planned operation by kind and sync key; none recorded: no rows."""
    plan = Plan(
        operations=(Create(record=Person(sync_key="p1")), Create(record=Person(sync_key="p2"))),
        deletions=(),
        rejects=(),
        conflicts=(),
    )
    repairs = [
        SimpleNamespace(kind="person", sync_key="p2", drift="missing"),
        SimpleNamespace(kind="group", sync_key="p1", drift="missing"),
        SimpleNamespace(kind="person", sync_key="p9", drift="changed"),
    ]
    assert [(row.object, row.sync_key, row.drift) for row in from_drift(plan, repairs)] == [
        ("person", "p2", "missing")
    ]
    assert from_drift(plan, []) == ()


_keys = st.sampled_from(["", "a", "b", "s1", "s2"])


@given(
    operations(),
    st.dictionaries(_keys, st.sampled_from([("s1",), ("s2",), ("s1", "s2")])),
    st.dictionaries(_keys, st.sampled_from([("s1",), ("s2",), ("s1", "s2")])),
)
def test_school_breaches_from_the_objects_equal_asking_each_operation(
    ops: list[Operation],
    persons: dict[str, tuple[str, ...]],
    memberships: dict[str, tuple[str, ...]],
) -> None:
    """Counted run by run from the schools' objects, every school's breaches are those `of` each gives."""
    objects = {"person": persons, "membership": memberships}
    schools = Schools(names={"s1": "One", "s2": "Two"}, objects=objects)
    asked = SchoolCounts(of=schools.of_operation, sizes={}, names=schools.names)
    # (a kind's second operation of a type breaches too: those are not measured per school)
    limits = SafetyLimits(max_share=1, floor=1, rules=(parse_rule("school", 0),))
    plan = Plan(operations=(), deletions=(), rejects=(), conflicts=())
    looked_up = check_limits(plan, limits, deletes=True, sent=ops, schools=replace(asked, objects=objects))
    assert looked_up == check_limits(plan, limits, deletes=True, sent=ops, schools=asked)
