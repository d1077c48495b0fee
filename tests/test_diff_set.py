"""The pure plan of a roster set: groups (parents first), memberships, references between the files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import pytest

from sync.models import (
    ChangeIdentifier,
    Create,
    Delete,
    DeletesMode,
    Group,
    Membership,
    Operation,
    Plan,
    Reject,
    Update,
)
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
from sync.plan.diff import Snapshots, empty_snapshot, plan_set, snapshot_columns
from sync.plan.ordering import deletion_operations, phases
from sync.plan.safety import SafetyLimits, check_limits
from sync.read.roster import Roster
from tests.strategies import make_roster, snapshot_frame

Values = Mapping[str, str]


def frame(
    records: Mapping[str, Values], columns: Sequence[str], *, file: str, delete: Iterable[str] = ()
) -> pd.DataFrame:
    """A roster frame of groups or memberships as the reader builds it."""
    keys = list(records)
    marked = set(delete)
    data: dict[str, Any] = {
        name: pd.array([records[k].get(name, "") for k in keys], dtype="str") for name in columns
    }
    data["file"] = pd.array([file] * len(keys), dtype="str")
    data["row"] = list(range(2, len(keys) + 2))
    data["delete"] = [k in marked for k in keys]
    return pd.DataFrame(data, index=pd.Index(keys, dtype="str", name="sync_key"))


def groups_roster(
    records: Mapping[str, Values], *, delete: Iterable[str] = (), rejects: Iterable[Reject] = ()
) -> Roster:
    return Roster(
        file="orgs.csv, classes.csv",
        frame=frame(records, snapshot_columns(GROUP), file="classes.csv", delete=delete),
        rejects=tuple(rejects),
    )


def memberships_roster(
    records: Mapping[str, Values], *, delete: Iterable[str] = (), rejects: Iterable[Reject] = ()
) -> Roster:
    with_active = {k: {"active": "true", **v} for k, v in records.items()}
    return Roster(
        file="enrollments.csv",
        frame=frame(with_active, snapshot_columns(MEMBERSHIP), file="enrollments.csv", delete=delete),
        rejects=tuple(rejects),
    )


def snap(records: Mapping[str, Values], columns: Sequence[str]) -> pd.DataFrame:
    index = pd.Index(list(records), dtype="str", name="sync_key")
    return pd.DataFrame(
        {name: pd.array([v.get(name, "") for v in records.values()], dtype="str") for name in columns},
        index=index,
    )


def person(username: str) -> dict[str, str]:
    return {"identity": username, "username": username, "given_name": username.title(), "role": "Student"}


def group(name: str, parent: str = "", kind: str = "Course", identity: str = "") -> dict[str, str]:
    return {"identity": identity, "name": name, "type": kind, "parent": parent, "description": ""}


def enrol(group_key: str, person_key: str, role: str = "Learner", active: str = "true") -> dict[str, str]:
    return {"group": group_key, "person": person_key, "role": role, "active": active}


PERSONS = {"p1": person("ada"), "p2": person("bo"), "t1": person("cy")}
GROUPS = {
    "d1": group("District", kind="Unspecified"),
    "s1": group("North School", "d1", "School"),
    "c1": group("Maths 7A", "s1"),
    "c2": group("English 7A", "s1"),
}
MEMBERSHIPS = {
    "e1": enrol("c1", "p1"),
    "e2": enrol("c1", "t1", "Instructor"),
    "e3": enrol("c2", "p2"),
}


def plan_of(
    *,
    persons: Mapping[str, Values] = PERSONS,
    groups: Mapping[str, Values] | None = GROUPS,
    memberships: Mapping[str, Values] | None = MEMBERSHIPS,
    snapshot_persons: Mapping[str, Values] | None = None,
    snapshot_groups: Mapping[str, Values] | None = None,
    snapshot_memberships: Mapping[str, Values] | None = None,
    group_delete: Iterable[str] = (),
    membership_rejects: Iterable[Reject] = (),
    group_rejects: Iterable[Reject] = (),
) -> Plan:
    return plan_set(
        make_roster(persons),
        Snapshots(
            persons=snapshot_frame(snapshot_persons)
            if snapshot_persons is not None
            else empty_snapshot(PERSON),
            groups=snap(snapshot_groups or {}, snapshot_columns(GROUP)),
            memberships=snap(snapshot_memberships or {}, snapshot_columns(MEMBERSHIP)),
        ),
        groups=groups_roster(groups, delete=group_delete, rejects=group_rejects)
        if groups is not None
        else None,
        memberships=memberships_roster(memberships, rejects=membership_rejects)
        if memberships is not None
        else None,
    )


def kinds(ops: Iterable[Operation]) -> list[tuple[str, str]]:
    """Each operation's class and record type, and its sync key: ("Create[Group]", "d1")."""
    return [(f"{type(op).__name__}[{type(op.record).__name__}]", op.sync_key) for op in ops]


class TestFirstRun:
    def test_groups_come_parents_first_then_persons_then_memberships(self) -> None:
        result = plan_of()
        assert kinds(result.operations) == [
            ("Create[Group]", "d1"),
            ("Create[Group]", "s1"),
            ("Create[Group]", "c1"),
            ("Create[Group]", "c2"),
            ("Create[Person]", "p1"),
            ("Create[Person]", "p2"),
            ("Create[Person]", "t1"),
            ("Create[Membership]", "e1"),
            ("Create[Membership]", "e2"),
            ("Create[Membership]", "e3"),
        ]
        summary = result.summary
        assert (summary["group_create"], summary["membership_create"], summary["create"]) == (4, 3, 3)
        assert result.deletions == ()
        assert result.rejects == ()

    def test_a_membership_carries_group_person_role_and_is_active(self) -> None:
        created = [
            op for op in plan_of().operations if isinstance(op, Create) and isinstance(op.record, Membership)
        ]
        assert created[1].record == Membership(sync_key="e2", group="c1", person="t1", role="Instructor")

    def test_the_phases_follow_the_hierarchy(self) -> None:
        ops = plan_of().operations
        keys = [[ops[i].sync_key for i in phase] for phase in phases(ops)]
        assert keys == [["d1"], ["s1"], ["c1", "c2"], ["p1", "p2", "t1"], ["e1", "e2", "e3"]]

    def test_persons_only_sets_leave_groups_and_memberships_alone(self) -> None:
        result = plan_of(
            groups=None,
            memberships=None,
            snapshot_groups={"old": group("Old")},
            snapshot_memberships={"m": enrol("old", "p1")},
        )
        assert all(isinstance(op, Create) for op in result.operations)
        assert result.deletions == ()
        assert result.summary["group_snapshot_size"] == 1


class TestSecondRun:
    def test_an_unchanged_set_plans_nothing(self) -> None:
        result = plan_of(snapshot_persons=PERSONS, snapshot_groups=GROUPS, snapshot_memberships=MEMBERSHIPS)
        assert result.operations == ()
        assert result.deletions == ()
        assert (result.unchanged_of(PERSON), result.unchanged_of(GROUP), result.unchanged_of(MEMBERSHIP)) == (
            3,
            4,
            3,
        )

    def test_edits_become_exactly_the_changes(self) -> None:
        groups = {**GROUPS, "c1": group("Maths 7B", "s1"), "c3": group("Art 7A", "s1")}
        del groups["c2"]
        memberships = {"e1": enrol("c1", "p1"), "e2": enrol("c1", "t1", "Learner"), "e4": enrol("c3", "p2")}
        result = plan_of(
            groups=groups,
            memberships=memberships,
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=MEMBERSHIPS,
        )
        assert kinds(result.operations) == [
            ("Update[Group]", "c1"),
            ("Create[Group]", "c3"),
            ("Update[Membership]", "e2"),
            ("Create[Membership]", "e4"),
        ]
        update = result.operations[0]
        assert isinstance(update, Update)
        assert isinstance(update.record, Group)
        assert [(c.field, c.old, c.new) for c in update.changes] == [("name", "Maths 7A", "Maths 7B")]
        assert kinds(result.deletions) == [("Delete[Membership]", "e3"), ("Delete[Group]", "c2")]
        deleted = result.deletions[1]
        assert isinstance(deleted, Delete)
        assert isinstance(deleted.record, Group)
        assert deleted.record.parent == "s1"

    def test_group_deletions_run_children_first(self) -> None:
        result = plan_of(
            groups={},
            memberships={},
            persons={},
            snapshot_groups=GROUPS,
            snapshot_memberships=MEMBERSHIPS,
        )
        assert kinds(result.deletions) == [
            ("Delete[Membership]", "e1"),
            ("Delete[Membership]", "e2"),
            ("Delete[Membership]", "e3"),
            ("Delete[Group]", "c1"),
            ("Delete[Group]", "c2"),
            ("Delete[Group]", "s1"),
            ("Delete[Group]", "d1"),
        ]
        ops = list(result.deletions)
        keys = [[ops[i].sync_key for i in phase] for phase in phases(ops)]
        assert keys == [["e1", "e2", "e3"], ["c1", "c2"], ["s1"], ["d1"]]

    def test_a_group_marked_for_deletion_is_a_candidate_and_its_children_are_rejected(self) -> None:
        result = plan_of(
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=MEMBERSHIPS,
            group_delete=["c2"],
        )
        assert kinds(result.deletions) == [("Delete[Group]", "c2")]
        # e3 (in c2) is still in the enrollments: rejected, and so protected from deletion
        assert [(r.sync_key, r.field) for r in result.rejects] == [("e3", "group")]
        assert "marked for deletion" in result.rejects[0].reason

    def test_a_renamed_person_keeps_its_memberships(self) -> None:
        persons = {"p1-new": PERSONS["p1"], "p2": PERSONS["p2"], "t1": PERSONS["t1"]}
        memberships = {**MEMBERSHIPS, "e1": enrol("c1", "p1-new")}
        result = plan_of(
            persons=persons,
            memberships=memberships,
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=MEMBERSHIPS,
        )
        assert kinds(result.operations) == [("ChangeIdentifier[Person]", "p1-new")]
        assert isinstance(result.operations[0], ChangeIdentifier)

    def test_a_renamed_group_moves_its_children_and_memberships_without_updates(self) -> None:
        before = {**GROUPS, "c1": group("Maths 7A", "s1", identity="MA7A")}
        after = {k: v for k, v in before.items() if k != "c1"}
        after["c1-2026"] = group("Maths 7A", "s1", identity="MA7A")
        after["g1"] = group("Maths 7A group 1", "c1-2026", "CourseGroup")
        snapshot_groups = {**before, "g1": group("Maths 7A group 1", "c1", "CourseGroup")}
        memberships = {
            **MEMBERSHIPS,
            "e1": enrol("c1-2026", "p1"),
            "e2": enrol("c1-2026", "t1", "Instructor"),
        }
        result = plan_of(
            groups=after,
            memberships=memberships,
            snapshot_persons=PERSONS,
            snapshot_groups=snapshot_groups,
            snapshot_memberships=MEMBERSHIPS,
        )
        assert kinds(result.operations) == [("ChangeIdentifier[Group]", "c1-2026")]
        rename = result.operations[0]
        assert isinstance(rename, ChangeIdentifier)
        assert isinstance(rename.record, Group)
        assert (rename.old_id, rename.changes) == ("c1", ())
        assert result.deletions == ()

    def test_a_rekeyed_enrolment_is_an_identifier_change_not_a_second_membership(self) -> None:
        memberships = {
            "e1-2026": enrol("c1", "p1"),
            "e2": MEMBERSHIPS["e2"],
            "e3-2026": enrol("c2", "p2", "Instructor"),
        }
        result = plan_of(
            memberships=memberships,
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=MEMBERSHIPS,
        )
        assert kinds(result.operations) == [
            ("ChangeIdentifier[Membership]", "e1-2026"),
            ("ChangeIdentifier[Membership]", "e3-2026"),
        ]
        first, second = result.operations
        assert isinstance(first, ChangeIdentifier)
        assert isinstance(first.record, Membership)
        assert isinstance(second, ChangeIdentifier)
        assert isinstance(second.record, Membership)
        assert (first.old_id, first.changes) == ("e1", ())
        assert [(c.field, c.old, c.new) for c in second.changes] == [("role", "Learner", "Instructor")]
        assert result.deletions == ()
        assert result.summary["membership_change_identifier"] == 2

    def test_a_rekeyed_person_with_rekeyed_enrolments_is_two_renames(self) -> None:
        persons = {"p1-new": PERSONS["p1"], "p2": PERSONS["p2"], "t1": PERSONS["t1"]}
        memberships = {**MEMBERSHIPS, "e1-new": enrol("c1", "p1-new")}
        del memberships["e1"]
        result = plan_of(
            persons=persons,
            memberships=memberships,
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=MEMBERSHIPS,
        )
        assert kinds(result.operations) == [
            ("ChangeIdentifier[Person]", "p1-new"),
            ("ChangeIdentifier[Membership]", "e1-new"),
        ]
        assert result.deletions == ()

    def test_two_snapshot_memberships_of_one_pair_make_a_conflict_not_a_guess(self) -> None:
        snapshot_memberships = {**MEMBERSHIPS, "e1-dup": enrol("c1", "p1")}
        memberships = {"e1-2026": enrol("c1", "p1"), "e2": MEMBERSHIPS["e2"], "e3": MEMBERSHIPS["e3"]}
        result = plan_of(
            memberships=memberships,
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=snapshot_memberships,
        )
        assert [c.snapshot_keys for c in result.conflicts] == [("e1", "e1-dup")]
        assert result.conflicts[0].identity == "c1 / p1"
        assert "\x1f" not in result.conflicts[0].reason
        assert result.operations == ()

    @pytest.mark.parametrize(("field", "value"), [("parent", ""), ("name", "")])
    def test_emptying_a_group_parent_or_name_is_a_conflict_not_a_silent_no_op(
        self, field: str, value: str
    ) -> None:
        groups = {**GROUPS, "s1": {**GROUPS["s1"], field: value}}
        result = plan_of(
            groups=groups, snapshot_persons=PERSONS, snapshot_groups=GROUPS, snapshot_memberships=MEMBERSHIPS
        )
        assert result.operations == ()
        (conflict,) = result.conflicts
        assert conflict.roster_keys == ("s1",)
        assert f"empties this group's {field}, which IMS ES cannot clear" in conflict.reason

    def test_a_deactivated_membership_back_in_the_roster_is_reactivated(self) -> None:
        snapshot_memberships = {**MEMBERSHIPS, "e3": enrol("c2", "p2", active="false")}
        result = plan_of(
            snapshot_persons=PERSONS, snapshot_groups=GROUPS, snapshot_memberships=snapshot_memberships
        )
        assert kinds(result.operations) == [("Update[Membership]", "e3")]
        update = result.operations[0]
        assert isinstance(update, Update)
        assert isinstance(update.record, Membership)
        assert [(c.field, c.old, c.new) for c in update.changes] == [("active", "false", "true")]


class TestReferences:
    def test_a_membership_of_an_unknown_person_or_group_is_rejected_with_its_row(self) -> None:
        memberships = {**MEMBERSHIPS, "e4": enrol("c9", "p1"), "e5": enrol("c1", "nobody")}
        result = plan_of(memberships=memberships)
        rejects = {(r.sync_key, r.file, r.row, r.field) for r in result.rejects}
        assert rejects == {("e4", "enrollments.csv", 5, "group"), ("e5", "enrollments.csv", 6, "person")}
        reasons = {r.sync_key: r.reason for r in result.rejects}
        assert reasons["e4"] == "group 'c9' is not in orgs.csv, classes.csv"
        assert reasons["e5"] == "person 'nobody' is not in roster.csv"
        assert {
            op.sync_key
            for op in result.operations
            if isinstance(op, Create) and isinstance(op.record, Membership)
        } == {
            "e1",
            "e2",
            "e3",
        }

    def test_rejects_cascade_from_a_rejected_school_to_classes_and_memberships(self) -> None:
        groups = {k: v for k, v in GROUPS.items() if k != "s1"}
        rejects = [Reject(file="orgs.csv", row=3, field="type", reason="unknown type", sync_key="s1")]
        result = plan_of(groups=groups, group_rejects=rejects)
        by_key = {r.sync_key: r for r in result.rejects}
        assert set(by_key) == {"s1", "c1", "c2", "e1", "e2", "e3"}
        assert (
            by_key["c1"].reason
            == "parent group 's1' has a rejected row in orgs.csv, classes.csv: fix that row first"
        )
        assert by_key["e1"].field == "group"
        assert kinds(result.operations)[:1] == [("Create[Group]", "d1")]
        assert not any(
            isinstance(op, Create) and isinstance(op.record, Membership) for op in result.operations
        )

    def test_a_parent_loop_rejects_every_group_on_it(self) -> None:
        groups = {"a": group("A", "b"), "b": group("B", "c"), "c": group("C", "a"), "d": group("D", "a")}
        result = plan_of(groups=groups, memberships={})
        reasons = {r.sync_key: r.reason for r in result.rejects}
        assert set(reasons) == {"a", "b", "c", "d"}
        assert reasons["a"].startswith("the parent chain loops: ")
        assert (
            reasons["d"] == "parent group 'a' has a rejected row in orgs.csv, classes.csv: fix that row first"
        )
        assert not any(isinstance(op, Create) and isinstance(op.record, Group) for op in result.operations)

    def test_a_rejected_membership_protects_its_snapshot_record(self) -> None:
        memberships = {k: v for k, v in MEMBERSHIPS.items() if k != "e3"}
        rejects = [Reject(file="enrollments.csv", row=4, field="role", reason="unknown role", sync_key="e3")]
        result = plan_of(
            memberships=memberships,
            membership_rejects=rejects,
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=MEMBERSHIPS,
        )
        assert result.deletions == ()

    def test_memberships_without_group_files_need_the_group_in_the_snapshot(self) -> None:
        result = plan_of(groups=None, snapshot_groups={"c1": GROUPS["c1"]})
        assert {
            op.sync_key
            for op in result.operations
            if isinstance(op, Create) and isinstance(op.record, Membership)
        } == {"e1", "e2"}
        assert [(r.sync_key, r.field) for r in result.rejects] == [("e3", "group")]
        assert "no group file is read" in result.rejects[0].reason


class TestDeletesModes:
    def deletions(self) -> Plan:
        return plan_of(
            persons={"p1": PERSONS["p1"], "t1": PERSONS["t1"]},
            groups={k: v for k, v in GROUPS.items() if k != "c2"},
            memberships={"e1": MEMBERSHIPS["e1"], "e2": MEMBERSHIPS["e2"]},
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships={**MEMBERSHIPS, "e9": enrol("c1", "p1", active="false")},
        )

    def test_off_sends_nothing(self) -> None:
        assert deletion_operations(self.deletions().deletions, DeletesMode.OFF) == []

    def test_deactivate_sends_only_active_memberships_marked_inactive(self) -> None:
        ops = deletion_operations(self.deletions().deletions, DeletesMode.DEACTIVATE)
        assert kinds(ops) == [("Deactivate[Membership]", "e3")]
        assert ops[0].record == Membership(
            sync_key="e3", group="c2", person="p2", role="Learner", active="false"
        )

    def test_delete_sends_memberships_then_groups_then_persons(self) -> None:
        ops = deletion_operations(self.deletions().deletions, DeletesMode.DELETE)
        assert kinds(ops) == [
            ("Delete[Membership]", "e3"),
            ("Delete[Membership]", "e9"),
            ("Delete[Group]", "c2"),
            ("Delete[Person]", "p2"),
        ]


class TestSafetyLimits:
    def test_each_kind_is_measured_against_its_own_snapshot(self) -> None:
        many = {f"g{i:03}": group(f"G{i}", kind="School") for i in range(40)}
        result = plan_of(
            persons={},
            groups={},
            memberships={},
            snapshot_groups=many,
        )
        limits = SafetyLimits(max_share=0.10, max_count=500, floor=10)
        assert check_limits(result, limits, deletes=DeletesMode.OFF) == []
        assert check_limits(result, limits, deletes=DeletesMode.DEACTIVATE) == []
        (breach,) = check_limits(result, limits, deletes=DeletesMode.DELETE)
        assert (breach.noun, breach.count, breach.limit) == ("groups", 40, 10)
        assert "delete 40 groups" in breach.message()

    def test_deactivating_many_memberships_is_limited_too(self) -> None:
        snapshot_memberships = {f"m{i:03}": enrol("c1", "p1") for i in range(30)}
        result = plan_of(
            memberships={},
            snapshot_persons=PERSONS,
            snapshot_groups=GROUPS,
            snapshot_memberships=snapshot_memberships,
        )
        limits = SafetyLimits()
        (breach,) = check_limits(result, limits, deletes=DeletesMode.DEACTIVATE)
        assert (breach.noun, breach.count) == ("memberships", 30)
        assert "deactivate 30 memberships" in breach.message()
        accepted = SafetyLimits(accept_deletes=30)
        assert check_limits(result, accepted, deletes=DeletesMode.DEACTIVATE) == []


@pytest.mark.parametrize("mode", list(DeletesMode))
def test_deletion_operations_never_send_a_person_or_group_unless_delete(mode: DeletesMode) -> None:
    result = TestDeletesModes().deletions()
    sent = deletion_operations(result.deletions, mode)
    assert any(isinstance(op, Delete) and not isinstance(op.record, Membership) for op in sent) is (
        mode is DeletesMode.DELETE
    )
