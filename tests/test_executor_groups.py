"""The executor with groups and memberships, against the emulator: order, dependencies, mass requests,
deletions and deactivations, each confirmed in the snapshot only when IMS ES said so."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from sync.emulator import Emulator
from sync.ims.clients import GroupClient, MembershipClient, PersonClient
from sync.ims.exchange import Timeouts
from sync.models import (
    ChangeIdentifier,
    Create,
    Deactivate,
    Delete,
    FieldChange,
    Group,
    Membership,
    Operation,
    Outcome,
    Person,
    Update,
)
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
from sync.send.executor import Executor
from sync.send.policy import ExecutorSettings, RetryPolicy
from sync.state.store import StateStore
from tests.conftest import PASSWORD, USERNAME

FAST_RETRY = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.02, jitter=0.0)
Run = Callable[..., list[tuple[str, Outcome, str]]]


def person(key: str) -> Person:
    return Person(sync_key=key, username=key, given_name=key.title(), family_name="X", role="Student")


SCHOOL = Group(sync_key="s1", name="North School", type="School")
CLASS_A = Group(sync_key="c1", name="Maths 7A", type="Course", parent="s1")
CLASS_B = Group(sync_key="c2", name="English 7A", type="Course", parent="s1")
M1 = Membership(sync_key="e1", group="c1", person="p1", role="Learner")
M2 = Membership(sync_key="e2", group="c1", person="p2", role="Instructor")
M3 = Membership(sync_key="e3", group="c2", person="p1", role="Learner")


def first_night() -> list[Operation]:
    return [
        Create(record=SCHOOL),
        Create(record=CLASS_A),
        Create(record=CLASS_B),
        Create(record=person("p1")),
        Create(record=person("p2")),
        Create(record=M1),
        Create(record=M2),
        Create(record=M3),
    ]


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as store:
        yield store


@pytest.fixture(name="run")
def fixture_run(store: StateStore) -> Iterator[Run]:
    """`run(emulator, operations, **settings)` -> [(kind, outcome, error)] in operation order."""
    opened: list[PersonClient | GroupClient | MembershipClient] = []

    def execute(
        emulator: Emulator, operations: Sequence[Operation], **settings: object
    ) -> list[tuple[str, Outcome, str]]:
        common = {
            "username": USERNAME,
            "password": PASSWORD,
            "ca_bundle": emulator.ca_path,
            "timeouts": Timeouts(connect=5.0, read=5.0),
        }
        persons = PersonClient(url=emulator.pms_url, **common)  # type: ignore[arg-type]
        groups = GroupClient(url=emulator.gms_url, **common)  # type: ignore[arg-type]
        memberships = MembershipClient(url=emulator.mms_url, **common)  # type: ignore[arg-type]
        opened.extend((persons, groups, memberships))
        options: dict[str, object] = {"retry": FAST_RETRY, "deletes": True}
        options.update(settings)
        report = Executor(
            client=persons,
            groups=groups,
            memberships=memberships,
            store=store,
            run_id=store.begin_run(command="test", roster="-", mapping="-"),
            settings=ExecutorSettings(**options),  # type: ignore[arg-type]
            sleep=lambda _s: None,
        ).run(operations)
        return [(type(r.operation).__name__, r.outcome, r.error) for r in report.results]

    yield execute
    for client in opened:
        client.close()


def sent_order(emulator: Emulator) -> list[str]:
    return [f"{e.operation}:{e.sync_key}" for e in emulator.history()]


class TestOrder:
    def test_a_first_night_lands_in_hierarchy_order_and_in_the_snapshot(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        results = run(emulator, first_night())
        assert {outcome for _, outcome, _ in results} == {Outcome.CONFIRMED}
        order = sent_order(emulator)
        assert order.index("createGroup:s1") < order.index("createGroup:c1")
        last_group = max(order.index(f"createGroup:{k}") for k in ("c1", "c2"))
        first_person = min(order.index(f"createPerson:{k}") for k in ("p1", "p2"))
        assert last_group < first_person
        assert max(order.index(f"createPerson:{k}") for k in ("p1", "p2")) < order.index(
            "createMembership:e1"
        )
        assert set(emulator.memberships()) == {"e1", "e2", "e3"}
        assert emulator.groups()["c1"].parent == "s1"
        assert set(store.load(GROUP).index) == {"s1", "c1", "c2"}
        memberships = store.load(MEMBERSHIP)
        assert memberships.loc["e2", "role"] == "Instructor"
        assert memberships.loc["e2", "person"] == "p2"

    def test_mass_requests_carry_groups_and_memberships(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        results = run(emulator, first_night(), batch_size=5, max_in_flight=10)
        assert {outcome for _, outcome, _ in results} == {Outcome.CONFIRMED}
        operations = {e.operation for e in emulator.history()}
        assert {"createGroups", "createMemberships", "createPersons"} <= operations
        journalled = {entry.operation for entry in store.journal()}
        assert {"createGroups", "createMemberships", "createPersons"} <= journalled
        assert store.count(MEMBERSHIP) == 3


class TestDependencies:
    def test_a_class_whose_school_failed_and_its_memberships_are_skipped_not_sent(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        bad_school = replace(SCHOOL, sync_key="s" * 65)  # IMS ES refuses keys over 64 characters
        ops = first_night()
        ops[0] = Create(record=bad_school)
        ops[1] = Create(record=replace(CLASS_A, parent=bad_school.sync_key))
        results = run(emulator, ops)
        assert results[0][1] is Outcome.REJECTED
        assert results[1][1] is Outcome.SKIPPED
        assert "was not confirmed in this run" in results[1][2]
        assert results[5][1] is Outcome.SKIPPED  # e1 in c1
        assert "group 'c1'" in results[5][2]
        # c2 names "s1", which this run never tried: sent, and IMS ES refuses the missing parent
        assert results[2][1] is Outcome.REJECTED
        assert results[7][1] is Outcome.SKIPPED  # e3 is in c2
        assert results[3][1] is Outcome.CONFIRMED  # persons do not depend on groups
        sent = sent_order(emulator)
        assert "createGroup:c1" not in sent
        assert "createMembership:e1" not in sent

    @pytest.mark.invalid_requests
    def test_a_membership_of_a_person_that_failed_is_skipped(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        ops = first_night()
        ops[4] = Create(record=replace(person("p2"), role="NotARole"))
        results = run(emulator, ops)
        kinds = dict(zip(["s1", "c1", "c2", "p1", "p2", "e1", "e2", "e3"], results, strict=True))
        assert kinds["p2"][1] is Outcome.REJECTED
        assert kinds["e2"][1] is Outcome.SKIPPED
        assert "person 'p2'" in kinds["e2"][2]
        assert kinds["e1"][1] is Outcome.CONFIRMED
        assert "e2" not in store.load(MEMBERSHIP).index


class TestChanges:
    def test_deactivate_then_reactivate(self, emulator: Emulator, store: StateStore, run: Run) -> None:
        run(emulator, first_night())
        inactive = replace(M3, active="false")
        assert run(emulator, [Deactivate(record=inactive)])[0][1] is Outcome.CONFIRMED
        assert emulator.memberships()["e3"].active is False
        assert store.load(MEMBERSHIP).loc["e3", "active"] == "false"
        again = run(emulator, [Update(record=M3, changes=())])
        assert again[0][1] is Outcome.CONFIRMED
        assert emulator.memberships()["e3"].active is True

    def test_an_update_of_a_membership_gone_from_the_service_creates_it(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        run(emulator, first_night())
        run(emulator, [Delete(record=M1)])
        assert "e1" not in emulator.memberships()
        store_before = store.count(MEMBERSHIP)
        results = run(emulator, [Update(record=replace(M1, role="Instructor"), changes=())])
        assert results[0][1] is Outcome.CONFIRMED
        assert emulator.memberships()["e1"].role == "Instructor"
        assert store.count(MEMBERSHIP) == store_before + 1

    def test_a_membership_rename_keeps_one_enrolment_and_applies_its_changes(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        run(emulator, first_night())
        renamed = replace(M1, sync_key="e1-2026", role="Instructor")
        op = ChangeIdentifier(
            old_id="e1",
            new_id="e1-2026",
            record=renamed,
            changes=(FieldChange(field="role", old="Learner", new="Instructor"),),
        )
        results = run(emulator, [op])
        assert results[0][1] is Outcome.CONFIRMED
        held = emulator.memberships()
        assert "e1" not in held
        assert (held["e1-2026"].person_key, held["e1-2026"].role) == ("p1", "Instructor")
        snapshot = store.load(MEMBERSHIP)
        assert "e1" not in snapshot.index
        assert snapshot.loc["e1-2026", "role"] == "Instructor"
        assert [e.operation for e in emulator.history()][-2:] == [
            "changeMembershipIdentifier",
            "updateMembership",
        ]

    def test_a_group_rename_carries_children_and_memberships_in_the_snapshot(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        run(emulator, first_night())
        renamed = replace(CLASS_A, sync_key="c1-2026")
        results = run(emulator, [ChangeIdentifier(old_id="c1", new_id="c1-2026", record=renamed)])
        assert results[0][1] is Outcome.CONFIRMED
        assert "c1-2026" in emulator.groups()
        snapshot = store.load(MEMBERSHIP)
        assert set(snapshot.loc[snapshot["group"] == "c1-2026"].index) == {"e1", "e2"}


class TestDeletes:
    def test_delete_everything_in_reverse_order(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        run(emulator, first_night())
        ops: list[Operation] = [
            Delete(record=Person(sync_key="p2")),
            Delete(record=Group(sync_key="s1")),
            Delete(record=Group(sync_key="c1", parent="s1")),
            Delete(record=Group(sync_key="c2", parent="s1")),
            Delete(record=M1),
            Delete(record=M2),
            Delete(record=M3),
        ]
        results = run(emulator, ops, batch_size=3)
        assert {outcome for _, outcome, _ in results} == {Outcome.CONFIRMED}
        order = sent_order(emulator)
        deletes = [name for name in order if name.startswith("delete")]
        assert deletes.index("deleteGroup:c1") < deletes.index("deleteGroup:s1")
        assert max(i for i, n in enumerate(deletes) if n.startswith("deleteMemberships")) < deletes.index(
            "deleteGroup:c1"
        )
        assert deletes[-1] == "deletePerson:p2"
        assert emulator.groups() == {}
        assert store.count(GROUP) == 0
        assert store.count(MEMBERSHIP) == 0

    def test_a_membership_already_gone_is_confirmed_by_reading(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        run(emulator, first_night())
        run(emulator, [Delete(record=Group(sync_key="c2", parent="s1"))])  # takes e3 along in IMS ES
        assert "e3" not in emulator.memberships()
        results = run(emulator, [Delete(record=M3)])
        assert results[0][1] is Outcome.CONFIRMED
        assert "readMembership" in {entry.operation for entry in store.journal()}
        assert "e3" not in store.load(MEMBERSHIP).index

    def test_a_group_whose_child_was_not_deleted_is_skipped_not_sent(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        run(
            emulator,
            [
                *first_night(),
                Create(record=Group(sync_key="g1", name="Group 1", type="CourseGroup", parent="c1")),
            ],
        )
        # g1 (made elsewhere, say) is not deleted: IMS ES refuses c1, so s1 must wait
        ops: list[Operation] = [
            Delete(record=Group(sync_key="s1")),
            Delete(record=Group(sync_key="c1", parent="s1")),
            Delete(record=Group(sync_key="c2", parent="s1")),
        ]
        results = run(emulator, ops)
        assert [outcome for _, outcome, _ in results] == [
            Outcome.SKIPPED,
            Outcome.REJECTED,
            Outcome.CONFIRMED,
        ]
        assert "a child group of 's1' was not deleted in this run" in results[0][2]
        assert "deleteGroup:s1" not in sent_order(emulator)
        assert set(emulator.groups()) == {"s1", "c1", "g1"}
        assert set(store.load(GROUP).index) == {"s1", "c1", "g1"}

    def test_deactivating_a_membership_already_gone_lets_it_go(
        self, emulator: Emulator, store: StateStore, run: Run
    ) -> None:
        run(emulator, first_night())
        emulator_before = len(emulator.history())
        # e3 disappears in IMS ES behind the snapshot's back (its class deleted by hand, say)
        with MembershipClient(
            url=emulator.mms_url, username=USERNAME, password=PASSWORD, ca_bundle=emulator.ca_path
        ) as client:
            assert client.delete_membership("e3").ok
        results = run(emulator, [Deactivate(record=replace(M3, active="false"))])
        assert results[0][1] is Outcome.CONFIRMED
        assert "e3" not in emulator.memberships()  # not created again only to be marked inactive
        assert "e3" not in store.load(MEMBERSHIP).index
        operations = [e.operation for e in emulator.history()[emulator_before:]]
        assert "createMembership" not in operations
        assert "readMembership" in {entry.operation for entry in store.journal()}

    def test_deletes_off_sends_no_deletion(self, emulator: Emulator, store: StateStore, run: Run) -> None:
        run(emulator, first_night())
        results = run(emulator, [Delete(record=M1), Delete(record=Group(sync_key="c2"))], deletes=False)
        assert results == []
        assert set(emulator.memberships()) == {"e1", "e2", "e3"}


class TestFaults:
    def test_a_run_stopped_by_the_circuit_skips_the_rest_as_never_reached(
        self, emulator_factory: Callable[..., Emulator], store: StateStore, run: Run
    ) -> None:
        """GMS down: the circuit opens in the groups phase; later phases are not started, and their
        operations are skipped as never reached, not blamed on a missing group."""
        emulator = emulator_factory(error_rate=1.0, fault_operations=frozenset({"createGroup"}))
        results = run(emulator, first_night(), circuit_threshold=2, max_in_flight=1)
        assert results[0][1] is Outcome.UNCONFIRMED
        later = results[3:]
        assert {outcome for _, outcome, _ in later} == {Outcome.SKIPPED}
        assert {error for _, _, error in later} == {""}
        assert [e.operation for e in emulator.history()] == []
        assert store.count(PERSON) == 0

    def test_dropped_mass_answers_are_resent_and_converge(
        self, emulator_factory: Callable[..., Emulator], store: StateStore, run: Run
    ) -> None:
        emulator = emulator_factory(drop_rate=0.5, seed=11)
        ops = first_night()
        for _ in range(6):
            results = run(emulator, ops, batch_size=3, circuit_threshold=100)
            if all(outcome is Outcome.CONFIRMED for _, outcome, _ in results):
                break
        assert set(emulator.groups()) == {"s1", "c1", "c2"}
        assert set(emulator.memberships()) == {"e1", "e2", "e3"}
        assert set(store.load(MEMBERSHIP).index) == {"e1", "e2", "e3"}
