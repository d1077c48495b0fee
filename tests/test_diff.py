"""Tests for the pure diff: each planning rule, protection of rejected persons, and its properties."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from hypothesis import given, settings

from sync.models import (
    PERSON_FIELDS,
    ChangeIdentifier,
    Create,
    Delete,
    FieldChange,
    Person,
    Plan,
    Reject,
    Update,
)
from sync.models.kinds import PERSON
from sync.plan import columns
from sync.plan.diff import DiffPolicy, apply_plan, empty_snapshot, plan
from sync.read.roster import Roster
from tests.strategies import (
    make_roster,
    roster_and_snapshot,
    roster_persons,
    snapshot_frame,
    snapshots,
)


def person(identity: str, **fields: str) -> dict[str, str]:
    """Values of one person whose username is its identity."""
    values = dict.fromkeys(PERSON_FIELDS, "")
    values.update(username=identity, given_name=identity.title(), role="Student", identity=identity)
    values.update(fields)
    return values


def reject(row: int, key: str = "") -> Reject:
    """A reject of roster row `row` that names `key`."""
    return Reject(file="roster.csv", row=row, field="role", reason="unknown role 'x'", sync_key=key)


def touched_keys(result: Plan) -> list[str]:
    """Every sync key an operation or deletion would touch, with repeats."""
    keys: list[str] = []
    for op in result.operations:
        keys.append(op.sync_key)
        if isinstance(op, ChangeIdentifier):
            keys.append(op.old_id)
    keys.extend(d.sync_key for d in result.deletions)
    return keys


ADA = person("ada")
BO = person("bo")


class TestRules:
    def test_same_persons_plan_nothing(self):
        """A roster equal to the snapshot plans no operation and counts everybody unchanged."""
        result = plan(make_roster({"1": ADA, "2": BO}), snapshot_frame({"1": ADA, "2": BO}))
        assert result.operations == ()
        assert result.deletions == ()
        assert result.unchanged_of(PERSON) == 2
        assert result.snapshot_size_of(PERSON) == 2

    def test_new_key_is_a_create_with_its_password(self):
        """A key the snapshot lacks, with no identity match, becomes a Create carrying the password."""
        result = plan(make_roster({"1": ADA}, passwords={"1": "pw-1"}), empty_snapshot(PERSON))
        (op,) = result.operations
        assert isinstance(op, Create)
        assert op.record == Person.from_values("1", ADA)
        assert op.identity == "ada"
        assert op.password == "pw-1"
        assert "pw-1" not in repr(result)

    def test_changed_field_is_an_update_listing_old_and_new(self):
        """A differing field becomes an Update whose changes name the field with both values."""
        result = plan(make_roster({"1": person("ada", email="new@x")}), snapshot_frame({"1": ADA}))
        (op,) = result.operations
        assert isinstance(op, Update)
        assert op.changes == (FieldChange(field="email", old="", new="new@x"),)
        assert isinstance(op.record, Person)
        assert op.record.email == "new@x"
        assert result.unchanged_of(PERSON) == 0

    def test_identity_change_alone_is_an_update(self):
        """An identity that differs (an extra field such as a national id) is an Update of identity."""
        roster = make_roster({"1": ADA | {"identity": "010203"}})
        result = plan(roster, snapshot_frame({"1": ADA}))
        (op,) = result.operations
        assert isinstance(op, Update)
        assert op.changes == (FieldChange(field="identity", old="ada", new="010203"),)
        assert apply_plan(snapshot_frame({"1": ADA}), result).loc["1", "identity"] == "010203"

    def test_password_is_ignored_in_comparisons(self):
        """A password in the roster does not make an otherwise equal person an Update."""
        result = plan(make_roster({"1": ADA}, passwords={"1": "secret"}), snapshot_frame({"1": ADA}))
        assert result.operations == ()
        assert result.unchanged_of(PERSON) == 1

    def test_new_key_with_identity_of_a_gone_person_is_a_change_identifier(self):
        """A new key whose identity matches one person whose key left the roster renames that person."""
        result = plan(make_roster({"9": ADA}), snapshot_frame({"1": ADA}))
        assert result.operations == (
            ChangeIdentifier(old_id="1", new_id="9", record=Person.from_values("9", ADA), identity="ada"),
        )
        assert result.deletions == ()

    def test_rename_and_field_change_carry_the_changes(self):
        """A renamed person whose fields also changed gets one ChangeIdentifier listing the changes."""
        result = plan(make_roster({"9": person("ada", family_name="Lovelace")}), snapshot_frame({"1": ADA}))
        (op,) = result.operations
        assert isinstance(op, ChangeIdentifier)
        assert (op.old_id, op.new_id) == ("1", "9")
        assert op.changes == (FieldChange(field="family_name", old="", new="Lovelace"),)

    def test_identity_of_a_person_still_in_the_roster_is_no_rename(self):
        """A new key sharing the identity of a person whose key is still in the roster is a Create."""
        roster = make_roster({"1": person("ada2"), "9": ADA})
        result = plan(roster, snapshot_frame({"1": ADA}))
        assert [type(op) for op in result.operations] == [Update, Create]

    def test_renames_can_be_switched_off(self):
        """With identifier-change detection off, a rename is a Create plus a Delete candidate."""
        result = plan(
            make_roster({"9": ADA}),
            snapshot_frame({"1": ADA}),
            DiffPolicy(detect_identifier_changes=False),
        )
        assert [type(op) for op in result.operations] == [Create]
        assert result.deletions == (
            Delete(record=Person.from_values("1", ADA), identity="ada", reason="not in roster"),
        )

    def test_empty_identity_never_matches(self):
        """Persons without an identity value are never matched with each other."""
        nobody = person("", given_name="N")
        result = plan(make_roster({"9": nobody}), snapshot_frame({"1": nobody}))
        assert [type(op) for op in result.operations] == [Create]
        assert [d.sync_key for d in result.deletions] == ["1"]

    def test_ambiguous_identity_is_a_conflict_without_create_or_delete(self):
        """Two gone snapshot persons with the new row's identity give a Conflict, no Create, no Delete."""
        result = plan(make_roster({"9": ADA}), snapshot_frame({"1": ADA, "2": ADA}))
        assert result.operations == ()
        assert result.deletions == ()
        (conflict,) = result.conflicts
        assert conflict.identity == "ada"
        assert conflict.roster_keys == ("9",)
        assert conflict.snapshot_keys == ("1", "2")

    def test_identity_claimed_by_two_new_rows_is_a_conflict(self):
        """Two new rows claiming a gone person's identity give one Conflict naming both rows."""
        result = plan(make_roster({"8": ADA, "9": ADA}), snapshot_frame({"1": ADA}))
        assert result.operations == ()
        assert result.deletions == ()
        (conflict,) = result.conflicts
        assert conflict.roster_keys == ("8", "9")
        assert conflict.snapshot_keys == ("1",)

    def test_gone_key_is_a_delete_candidate(self):
        """A snapshot person absent from the roster is a Delete candidate 'not in roster'."""
        result = plan(make_roster({"1": ADA}), snapshot_frame({"1": ADA, "2": BO}))
        assert result.deletions == (
            Delete(record=Person.from_values("2", BO), identity="bo", reason="not in roster"),
        )
        assert result.operations == ()

    def test_marked_row_in_snapshot_is_a_delete_candidate(self):
        """A roster row marked tobedeleted whose key is in the snapshot is a Delete candidate."""
        result = plan(make_roster({"1": ADA, "2": BO}, delete=["2"]), snapshot_frame({"1": ADA, "2": BO}))
        assert result.deletions == (
            Delete(record=Person.from_values("2", BO), identity="bo", reason="marked tobedeleted"),
        )
        assert result.unchanged_of(PERSON) == 1

    def test_marked_row_not_in_snapshot_plans_nothing(self):
        """A row marked tobedeleted that IMS ES never held is neither created nor deleted."""
        result = plan(make_roster({"2": BO}, delete=["2"]), empty_snapshot(PERSON))
        assert result.operations == ()
        assert result.deletions == ()

    def test_marked_row_is_no_rename_source(self):
        """A marked row keeps its key in the roster: a new row with its identity is a Create."""
        roster = make_roster({"1": ADA, "9": ADA}, delete=["1"])
        result = plan(roster, snapshot_frame({"1": ADA}))
        assert [type(op) for op in result.operations] == [Create]
        assert [d.reason for d in result.deletions] == ["marked tobedeleted"]

    def test_plan_is_ordered_by_kind_then_key(self):
        """Operations come as changeIdentifiers, updates, creates, each sorted by sync key."""
        roster = make_roster(
            {
                "c2": person("n2"),
                "u2": person("u2", email="e"),
                "r9": ADA,
                "c1": person("n1"),
                "u1": person("u1", email="e"),
            }
        )
        snapshot = snapshot_frame({"u1": person("u1"), "u2": person("u2"), "r0": ADA, "z": BO, "y": BO})
        result = plan(roster, snapshot)
        assert [op.sync_key for op in result.operations] == ["r9", "u1", "u2", "c1", "c2"]
        assert [d.sync_key for d in result.deletions] == ["y", "z"]

    def test_snapshot_with_other_text_dtype_is_accepted(self):
        """A snapshot built with object columns plans the same as one with pandas text columns."""
        snapshot = snapshot_frame({"1": ADA, "2": BO})
        as_object = snapshot.astype(object)
        as_object.index = as_object.index.astype(object)
        roster = make_roster({"1": person("ada", email="e"), "3": BO})
        assert plan(roster, as_object) == plan(roster, snapshot)


class TestProtection:
    def test_rejected_row_never_deletes_its_person(self):
        """A snapshot person whose row was rejected is not a Delete candidate."""
        roster = make_roster({"1": ADA}, rejects=[reject(3, "2")])
        result = plan(roster, snapshot_frame({"1": ADA, "2": BO}))
        assert result.deletions == ()
        assert result.rejects == (reject(3, "2"),)

    def test_rejected_identity_protects_a_gone_person(self):
        """A snapshot person whose identity is on a rejected row (without its key) is not deleted."""
        roster = make_roster({"1": ADA}, rejects=[reject(3)], rejected_identities=["bo"])
        assert plan(roster, snapshot_frame({"1": ADA, "2": BO})).deletions == ()

    def test_rejected_row_never_renames_its_person(self):
        """A gone person protected by a reject is not renamed: the matching new row is a Conflict."""
        roster = make_roster({"9": ADA}, rejects=[reject(3, "1")])
        result = plan(roster, snapshot_frame({"1": ADA}))
        assert result.operations == ()
        assert result.deletions == ()
        (conflict,) = result.conflicts
        assert (conflict.roster_keys, conflict.snapshot_keys) == (("9",), ("1",))

    def test_rejected_identity_holds_a_changed_person(self):
        """A person whose snapshot identity is on a rejected row is not updated but held as a Conflict."""
        roster = make_roster({"1": person("ada2")}, rejected_identities=["ada"], rejects=[reject(3)])
        result = plan(roster, snapshot_frame({"1": ADA}))
        assert result.operations == ()
        assert result.unchanged_of(PERSON) == 0
        assert [c.roster_keys for c in result.conflicts] == [("1",)]

    def test_key_on_a_rejected_row_holds_a_new_row(self):
        """A new row whose key is also on a rejected (misshapen) row is held, not created."""
        roster = make_roster({"9": ADA}, rejects=[reject(4, "9")])
        result = plan(roster, empty_snapshot(PERSON))
        assert result.operations == ()
        assert len(result.conflicts) == 1


class TestApplyPlan:
    def test_apply_plan_renames_updates_creates_and_deletes(self):
        """Applying a plan yields the roster's persons: renamed, updated, created, deleted."""
        snapshot = snapshot_frame({"1": ADA, "2": BO, "3": person("cy")})
        roster = make_roster({"9": ADA, "2": person("bo", email="b@x"), "4": person("di")})
        after = apply_plan(snapshot, plan(roster, snapshot))
        pd.testing.assert_frame_equal(after.sort_index(), roster_persons(roster))

    def test_empty_snapshot_has_the_snapshot_columns(self):
        """empty_snapshot(PERSON): an empty frame indexed by sync_key with identity and the person fields."""
        frame = empty_snapshot(PERSON)
        assert frame.index.name == "sync_key"
        assert list(frame.columns) == ["identity", *PERSON_FIELDS]
        assert frame.empty


def shuffled(roster: Roster, seed: int) -> Roster:
    """The same roster with its rows in another order."""
    order = list(range(len(roster.frame)))
    random.Random(seed).shuffle(order)
    return make_roster(
        {str(k): dict(v) for k, v in roster.frame.iloc[order].drop(columns=["row", "delete"]).iterrows()},
        delete=roster.frame.index[roster.frame["delete"].to_numpy(dtype=bool)],
        passwords=dict(zip(roster.frame.index, roster.frame["password"], strict=True)),
    )


class TestProperties:
    @given(snapshots())
    @settings(max_examples=25, deadline=None)
    def test_plan_of_snapshot_against_itself_is_empty(self, persons):
        """plan(s, s) has no operation, deletion or conflict, and everybody is unchanged."""
        result = plan(make_roster(persons), snapshot_frame(persons))
        assert result.operations == ()
        assert result.deletions == ()
        assert result.conflicts == ()
        assert result.unchanged_of(PERSON) == len(persons)

    @given(roster_and_snapshot())
    @settings(max_examples=40, deadline=None)
    def test_applying_the_plan_yields_the_roster(self, case):
        """apply_plan(s, plan(r, s)) holds exactly r's persons when there is no conflict."""
        roster, persons = case
        snapshot = snapshot_frame(persons)
        result = plan(roster, snapshot)
        if result.conflicts:
            return
        after = apply_plan(snapshot, result).sort_index()
        pd.testing.assert_frame_equal(after, roster_persons(roster), check_index_type=False)

    @given(roster_and_snapshot())
    @settings(max_examples=40, deadline=None)
    def test_no_key_in_two_operations(self, case):
        """No sync key is touched by two operations or deletions."""
        roster, persons = case
        keys = touched_keys(plan(roster, snapshot_frame(persons)))
        assert len(keys) == len(set(keys))

    @given(roster_and_snapshot())
    @settings(max_examples=25, deadline=None)
    def test_plan_is_deterministic_whatever_the_row_order(self, case):
        """The same roster and snapshot, in any row order, give an equal plan."""
        roster, persons = case
        reordered = dict(reversed(list(persons.items())))
        assert plan(roster, snapshot_frame(persons)) == plan(shuffled(roster, 7), snapshot_frame(reordered))

    @given(roster_and_snapshot())
    @settings(max_examples=25, deadline=None)
    def test_rows_compared_a_few_at_a_time_give_the_same_plan(self, case):
        """The roster is compared with the snapshot a slice of rows at a time (10^6 rows would align
        every column at once): slices of 2 rows give the plan that one slice gives."""
        roster, persons = case
        whole = plan(roster, snapshot_frame(persons))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(columns, "_COMPARED", 2)
            assert plan(roster, snapshot_frame(persons)) == whole

    @given(roster_and_snapshot())
    @settings(max_examples=25, deadline=None)
    def test_rejected_keys_are_never_touched(self, case):
        """With a reject naming every snapshot key, no operation or deletion touches the snapshot."""
        roster, persons = case
        protected = Roster(
            file=roster.file,
            frame=roster.frame,
            rejects=tuple(reject(100 + i, key) for i, key in enumerate(persons)),
        )
        touched = set(touched_keys(plan(protected, snapshot_frame(persons))))
        assert not touched & set(persons)


@pytest.mark.parametrize("detect", [True, False])
def test_rejects_are_passed_through_sorted_by_row(detect):
    """The plan lists the roster's rejects ordered by row number."""
    roster = make_roster({}, rejects=[reject(9, "a"), reject(3, "b")])
    result = plan(roster, empty_snapshot(PERSON), DiffPolicy(detect_identifier_changes=detect))
    assert [r.row for r in result.rejects] == [3, 9]


def test_a_plan_counts_its_summary_once_and_a_replaced_plan_anew() -> None:
    """The summary is counted on first use and kept; a plan made from it by `dataclasses.replace` with
    other operations counts its own."""
    import dataclasses

    from sync.models import Create, Person, Plan

    first = Plan(operations=(Create(record=Person(sync_key="a")),), deletions=(), rejects=(), conflicts=())
    assert first.summary is first.summary
    assert first.summary["create"] == 1
    second = dataclasses.replace(first, operations=())
    assert second.summary["create"] == 0
    assert first.summary["create"] == 1
