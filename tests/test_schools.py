"""Which school(s) each object of a plan belongs to (sync.plan.schools, sync.models.schools)."""

from __future__ import annotations

import dataclasses

from sync.models import ChangeIdentifier, Create, Delete, Membership, Reject, Schools
from sync.models.kinds import GROUP, kind_of
from sync.plan.diff import plan, snapshot_columns
from sync.plan.schools import plan_schools
from sync.report.render import ReportMeta, render_plan
from tests.strategies import make_roster, snapshot_frame
from tests.test_diff_set import GROUPS, MEMBERSHIPS, PERSONS, enrol, group, person, plan_of, snap

TWO_SCHOOLS = {
    **GROUPS,
    "s2": group("South School", "d1", "School"),
    "c3": group("Art 8B", "s2"),
}


def _op(result: object, kind: str, key: str) -> object:
    """The operation or deletion of `kind` on `key` in a plan."""
    ops = (*result.operations, *result.deletions)  # type: ignore[attr-defined]
    return next(op for op in ops if kind_of(op).name == kind and op.sync_key == key)


def test_nested_groups_belong_to_the_nearest_school_up_the_chain() -> None:
    """A group two levels under a School belongs to it; the School is its own; the district has none."""
    groups = {**GROUPS, "g1": group("Maths 7A set 1", "c1", "CourseGroup")}
    result = plan_of(groups=groups)
    schools = result.schools
    assert schools.keys() == ("s1",)
    assert schools.name("s1") == "North School"
    assert schools.of("group", "g1") == ("s1",)
    assert schools.of("group", "c1") == ("s1",)
    assert schools.of("group", "s1") == ("s1",)
    assert schools.of("group", "d1") == ()


def test_a_loop_of_groups_ends_and_gives_no_school() -> None:
    """Groups whose parent chain loops are rejected by the plan and belong to no school; the rest still do."""
    groups = {**GROUPS, "x1": group("Loop A", "x2"), "x2": group("Loop B", "x1")}
    result = plan_of(groups=groups, memberships={**MEMBERSHIPS, "e9": enrol("x1", "p1")})
    loop_rejects = [r for r in result.rejects if r.sync_key in {"x1", "x2"}]
    assert len(loop_rejects) == 2
    assert all(result.schools.of_reject(r) == () for r in loop_rejects)
    assert result.schools.of("group", "x1") == ()
    assert result.schools.of("group", "c1") == ("s1",)


def test_a_loop_through_a_school_stops_at_the_school() -> None:
    """A chain that loops back through a School still finds it: the walk stops at the first School."""
    frame = snap(
        {"s9": group("Loop School", "k9", "School"), "k9": group("Class", "s9")}, snapshot_columns(GROUP)
    )
    delete = Delete(record=GROUP.record.from_values("k9", {**group("Class", "s9")}))
    schools = plan_schools(
        {"group": [delete]}, {}, persons=(None, None), groups=(None, frame), memberships=(None, None)
    )
    assert schools.of_operation(delete) == ("s9",)


def test_a_person_in_two_schools_belongs_to_both() -> None:
    """Enrolled in a class of each school, a person (and each enrolment) belongs to the right school(s)."""
    memberships = {**MEMBERSHIPS, "e4": enrol("c3", "p1")}
    result = plan_of(groups=TWO_SCHOOLS, memberships=memberships)
    schools = result.schools
    assert schools.keys() == ("s1", "s2")
    assert schools.of_operation(_op(result, "person", "p1")) == ("s1", "s2")  # type: ignore[arg-type]
    assert schools.of("person", "p2") == ("s1",)
    assert schools.of("membership", "e4") == ("s2",)
    assert schools.of("membership", "e1") == ("s1",)
    assert schools.of("group", "c3") == ("s2",)


def test_a_leaver_is_shown_at_the_school_they_leave() -> None:
    """A person gone from the roster belongs to the school of the class the snapshot has them in."""
    snapshot_groups = TWO_SCHOOLS
    snapshot_memberships = {**MEMBERSHIPS, "e8": enrol("c3", "gone")}
    result = plan_of(
        groups=TWO_SCHOOLS,
        snapshot_persons={**PERSONS, "gone": person("dee")},
        snapshot_groups=snapshot_groups,
        snapshot_memberships=snapshot_memberships,
    )
    leaver = _op(result, "person", "gone")
    assert isinstance(leaver, Delete)
    assert result.schools.of_operation(leaver) == ("s2",)
    assert result.schools.of_operation(_op(result, "membership", "e8")) == ("s2",)  # type: ignore[arg-type]


def test_a_group_moved_to_another_school_belongs_to_both() -> None:
    """The roster's parent and the snapshot's parent both count: both head teachers see the move."""
    roster_groups = {**TWO_SCHOOLS, "c1": group("Maths 7A", "s2")}
    result = plan_of(groups=roster_groups, snapshot_groups=TWO_SCHOOLS)
    moved = _op(result, "group", "c1")
    assert result.schools.of_operation(moved) == ("s1", "s2")  # type: ignore[arg-type]


def test_an_identifier_change_belongs_to_the_schools_of_both_keys() -> None:
    """An identifier change is attributed by its old key and its new key; one school is not repeated."""
    schools = Schools(
        names={"s1": "North", "s2": "South"},
        objects={"membership": {"a": ("s1",), "b": ("s2",), "c": ("s2",)}},
    )
    record = Membership(sync_key="b", group="c3", person="p1", role="Learner")
    assert schools.of_operation(ChangeIdentifier(record=record, old_id="a", new_id="b")) == ("s1", "s2")
    assert schools.of_operation(ChangeIdentifier(record=record, old_id="c", new_id="b")) == ("s2",)
    assert schools.of_operation(ChangeIdentifier(record=record, old_id="x", new_id="b")) == ("s2",)


def test_memberships_and_groups_are_attributed_by_their_group() -> None:
    """An enrolment belongs to its class's school, a class to its school; a district membership to none."""
    memberships = {**MEMBERSHIPS, "e5": enrol("d1", "t1", "Manager")}
    result = plan_of(memberships=memberships)
    schools = result.schools
    create = _op(result, "membership", "e2")
    assert isinstance(create, Create)
    assert schools.of_operation(create) == ("s1",)
    assert schools.of_operation(_op(result, "membership", "e5")) == ()  # type: ignore[arg-type]
    assert schools.of_operation(_op(result, "group", "c2")) == ("s1",)  # type: ignore[arg-type]
    assert schools.of("person", "t1") == ("s1",)  # the district does not add a school


def test_a_rejected_enrolment_belongs_to_its_class_school() -> None:
    """A membership row rejected for its missing person is still told to its class's school."""
    result = plan_of(memberships={**MEMBERSHIPS, "e7": enrol("c2", "nobody")})
    reject = next(r for r in result.rejects if r.sync_key == "e7")
    assert result.schools.of_reject(reject) == ("s1",)
    unknown = Reject(file="users.csv", row=99, field="role", reason="bad role", sync_key="zz")
    assert result.schools.of_reject(unknown) == ()


def test_a_plan_without_groups_has_no_schools() -> None:
    """Persons only (or a set without group files): an empty Schools that attributes nothing."""
    persons_only = plan(make_roster(PERSONS), snapshot_frame({}))
    assert not persons_only.schools
    assert persons_only.schools == Schools()
    assert persons_only.schools.of_operation(persons_only.operations[0]) == ()
    no_groups = plan_of(groups=None, memberships=None)
    assert not no_groups.schools
    assert no_groups.schools.keys() == ()


def test_schools_leave_the_plan_s_reports_and_equality_alone() -> None:
    """A plan with schools renders, compares and reprs as the same plan without them."""
    result = plan_of(groups=TWO_SCHOOLS)
    assert result.schools
    bare = dataclasses.replace(result, schools=Schools())
    meta = ReportMeta(title="t", roster="r", mapping="m", state="s", generated_at="now", tool_version="0")
    for fmt in ("json", "csv", "md", "html"):
        assert render_plan(result, fmt=fmt, meta=meta) == render_plan(bare, fmt=fmt, meta=meta)
    assert result == bare
    assert repr(result) == repr(bare)
    assert "objects" in repr(result.schools)


def test_person_attribution_is_column_wise_over_many_memberships() -> None:
    """Thousands of enrolments in two schools attribute each person once per school, sorted."""
    persons = {f"p{i}": person(f"u{i}") for i in range(2000)}
    memberships = {f"m{i}": enrol("c1" if i < 1000 else "c3", f"p{i % 1000}") for i in range(2000)}
    result = plan_of(persons=persons, groups=TWO_SCHOOLS, memberships=memberships)
    assert result.schools.of("person", "p1") == ("s1", "s2")
    assert result.schools.of("person", "p999") == ("s1", "s2")
    assert result.schools.of("person", "p1500") == ()
    assert result.schools.of("membership", "m1500") == ("s2",)


def test_the_plan_names_people_and_their_classes() -> None:
    """Persons named by the plan (directly or by an enrolment) have a display name and their classes."""
    persons = {**PERSONS, "p2": {**person("bo"), "given_name": "", "family_name": ""}}
    result = plan_of(
        persons=persons, groups=TWO_SCHOOLS, memberships={**MEMBERSHIPS, "e4": enrol("c3", "p1")}
    )
    schools = result.schools
    assert schools.person_name("p1") == "Ada"
    assert schools.person_name("p2") == "bo"  # no name: the username
    assert schools.classes_of("p1") == ("Art 8B", "Maths 7A")  # sorted by name; the schools left out
    assert schools.group_name("s2") == "South School"
    assert schools.group_name("unknown") == "unknown"
    assert schools.person_name("nobody") == ""
