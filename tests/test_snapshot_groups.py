"""The state store's groups and memberships: schema v3, confirmed changes and their cascades, loads."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sync.errors import StateError
from sync.models import GROUP_FIELDS, MEMBERSHIP_FIELDS, Group, Membership, Outcome, Person, Status
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON, Kind
from sync.report.render import frame_to_csv
from sync.state import loading
from sync.state.changes import Remove, Rename, SnapshotChange, Upsert
from sync.state.journal import Answer
from sync.state.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION
from sync.state.store import StateStore
from sync.state.tables import table_of
from tests.journal import T0, confirmed, db_rows, sent_request

T1 = T0 + timedelta(minutes=5)


def _hash(*values: str) -> str:
    """The content hash the store keeps: sha256 over each value followed by the unit separator."""
    digest = hashlib.sha256()
    for value in values:
        digest.update(value.encode("utf-8") + b"\x1f")
    return digest.hexdigest()


def _group(key: str, parent: str = "", **fields: str) -> Group:
    values = {"name": f"Group {key}", "type": "Course", "parent": parent, "description": f"about {key}"}
    values.update(fields)
    return Group(sync_key=key, **values)


def _member(key: str, group: str, person: str, role: str = "Learner", active: str = "true") -> Membership:
    return Membership(sync_key=key, group=group, person=person, role=role, active=active)


@pytest.fixture(name="state")
def fixture_state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(name="store")
def fixture_store(state: Path):
    with StateStore.open(state) as store:
        yield store


@pytest.fixture(name="record")
def fixture_record(store: StateStore):
    """Journal a request and record its confirmed answer with `changes`: the executor's path."""
    run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
    counter = iter(range(1_000_000))

    def record(*changes: SnapshotChange, operation: str = "op", at: datetime = T0) -> str:
        mid = f"m{next(counter)}"
        store.record_sent(sent_request(run_id, mid, "k", operation=operation))
        store.record_answer(confirmed(mid, at), changes)
        return mid

    return record


@pytest.fixture(name="school")
def fixture_school(store: StateStore, record: Any) -> None:
    """A school g0 with courses g1 and g2 (g2 has a course group g21); persons p1, p2 in courses."""
    store.seed(PERSON, pd.DataFrame({"username": ["one", "two"]}, index=pd.Index(["p1", "p2"])))
    record(
        Upsert(record=_group("g0", type="School"), identity="school-0"),
        Upsert(record=_group("g1", parent="g0"), identity="course-1"),
        Upsert(record=_group("g2", parent="g0"), identity="course-2"),
        Upsert(record=_group("g21", parent="g2", type="CourseGroup")),
        Upsert(record=_member("m-1-1", "g1", "p1")),
        Upsert(record=_member("m-1-2", "g1", "p2", role="Instructor")),
        Upsert(record=_member("m-2-1", "g2", "p1")),
        Upsert(record=_member("m-21-2", "g21", "p2")),
    )


def _groups(state: Path) -> dict[str, tuple[Any, ...]]:
    """sync key -> (identity, *GROUP_FIELDS, content_hash, confirmed_at, message_identifier)."""
    rows = db_rows(
        state,
        "SELECT sync_key, identity, name, type, parent, description, content_hash, confirmed_at, "
        "message_identifier FROM groups",
    )
    return {row[0]: row[1:] for row in rows}


def _memberships(state: Path) -> dict[str, tuple[Any, ...]]:
    """sync key -> (group_key, person_key, role, active, content_hash, confirmed_at, message_identifier)."""
    rows = db_rows(
        state,
        "SELECT sync_key, group_key, person_key, role, active, content_hash, confirmed_at, "
        "message_identifier FROM memberships",
    )
    return {row[0]: row[1:] for row in rows}


def _v2_database(state: Path) -> None:
    """A state database as the schema-2 code wrote it: a person, a run and an answered request."""
    state.mkdir()
    connection = sqlite3.connect(state / DB_NAME, isolation_level=None)
    try:
        for script in MIGRATIONS[:2]:
            connection.executescript(script)
        connection.execute("PRAGMA user_version = 2")
        connection.execute(
            "INSERT INTO runs (run_id, started_at, command) VALUES ('r1', '2025-03-01T06:00:00+00:00', 'run')"
        )
        connection.execute(
            "INSERT INTO requests (message_identifier, run_id, operation, attempt, sent_at, answered_at, "
            "message_id_ref, code_major, severity, outcome) VALUES ('m1', 'r1', 'createPerson', 1, "
            "'2025-03-01T06:00:00+00:00', '2025-03-01T06:00:01+00:00', 'm1', 'success', 'status', "
            "'confirmed')"
        )
        connection.execute(
            "INSERT INTO request_items (message_identifier, item_index, sync_key, outcome) "
            "VALUES ('m1', 0, 'p1', 'confirmed')"
        )
        connection.execute(
            "INSERT INTO persons (sync_key, identity, username, content_hash, confirmed_at, "
            "message_identifier) VALUES ('p1', 'ada', 'ada.l', 'h', '2025-03-01T06:00:01+00:00', 'm1')"
        )
    finally:
        connection.close()


class TestSchema:
    """Schema version 3: the groups and memberships tables, and the migration from version 2."""

    def test_groups_and_memberships_tables_and_indexes(self, store: StateStore, state: Path) -> None:
        """Both tables hold the sync key, the fields and the confirmation, with the lookup indexes."""
        groups = [row[1] for row in db_rows(state, "PRAGMA table_info(groups)")]
        assert groups == [
            "sync_key",
            "identity",
            *GROUP_FIELDS,
            "content_hash",
            "confirmed_at",
            "message_identifier",
        ]
        memberships = [row[1] for row in db_rows(state, "PRAGMA table_info(memberships)")]
        assert memberships == [
            "sync_key",
            "group_key",
            "person_key",
            "role",
            "active",
            "content_hash",
            "confirmed_at",
            "message_identifier",
        ]
        indexes = dict(db_rows(state, "SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
        assert "groups (identity)" in indexes["groups_identity"]
        assert "groups (parent)" in indexes["groups_parent"]
        assert "memberships (group_key)" in indexes["memberships_group_key"]
        assert "memberships (person_key)" in indexes["memberships_person_key"]

    def test_defaults_of_description_and_active(self, store: StateStore, state: Path) -> None:
        """A row written without them gets description "" and active "true" (operators' shells, seeds)."""
        connection = sqlite3.connect(state / DB_NAME)
        with connection:
            connection.execute(
                "INSERT INTO groups (sync_key, content_hash, confirmed_at, message_identifier) "
                "VALUES ('g', 'h', 't', 'm')"
            )
            connection.execute(
                "INSERT INTO memberships (sync_key, group_key, person_key, content_hash, confirmed_at, "
                "message_identifier) VALUES ('m', 'g', 'p', 'h', 't', 'm')"
            )
        connection.close()
        assert store.load(GROUP).loc["g", "description"] == ""
        assert store.load(MEMBERSHIP).loc["m", "active"] == "true"

    def test_a_version_2_database_migrates_with_persons_and_journal_intact(self, state: Path) -> None:
        """Opening a schema-2 state adds groups and memberships and keeps persons, runs and journal."""
        _v2_database(state)
        assert db_rows(state, "PRAGMA user_version") == [(2,)]
        with StateStore.open(state) as store:
            assert db_rows(state, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
            # 3: groups, memberships; 4: their generation; 5: person fields; 6: drift repairs
            assert SCHEMA_VERSION == 6
            persons = store.load(PERSON)
            assert list(persons.index) == ["p1"]
            assert (persons.loc["p1", "identity"], persons.loc["p1", "username"]) == ("ada", "ada.l")
            [entry] = store.journal()
            assert (entry.run_id, entry.operation, entry.outcome, entry.message_id_ref) == (
                "r1",
                "createPerson",
                "confirmed",
                "m1",
            )
            assert [(item.sync_key, item.outcome) for item in entry.items] == [("p1", "confirmed")]
            assert [run.run_id for run in store.runs()] == ["r1"]
            assert (store.count(GROUP), store.count(MEMBERSHIP)) == (0, 0)
            # The migrated store takes the new changes, and its person cascades work on old persons.
            store.record_sent(sent_request("r1", "m2", "g1", operation="createGroup"))
            store.record_answer(
                confirmed("m2"),
                [
                    Upsert(record=_group("g1")),
                    Upsert(record=_member("x", "g1", "p1")),
                    Rename(kind="person", old_id="p1", new_id="p9"),
                ],
            )
            assert store.load(MEMBERSHIP).loc["x", "person"] == "p9"
        with StateStore.open(state) as store:  # a second open migrates nothing
            assert store.count(GROUP) == 1
            assert list(store.load(PERSON).index) == ["p9"]


class TestGroupChanges:
    """Upsert, Rename and Remove of groups, applied with the answer that confirms them."""

    def test_upsert_stores_the_group_with_its_confirmation(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """A group Upsert stores identity, fields, content hash, confirmation time and messageIdentifier."""
        group = _group("g1", parent="g0", description="Maths, year 7")
        mid = record(Upsert(record=group, identity="maths-7"), at=T1)
        assert _groups(state)["g1"] == (
            "maths-7",
            "Group g1",
            "Course",
            "g0",
            "Maths, year 7",
            _hash("maths-7", "Group g1", "Course", "g0", "Maths, year 7"),
            T1.isoformat(timespec="microseconds"),
            mid,
        )
        assert store.load(GROUP).loc["g1"].to_dict() == {"identity": "maths-7", **group.values()}

    def test_upsert_replaces_an_existing_group(self, store: StateStore, record: Any) -> None:
        """A second group Upsert of a sync key replaces its fields, not adds a row."""
        record(Upsert(record=_group("g1", name="Old")))
        record(Upsert(record=_group("g1", name="New", parent="g0")))
        frame = store.load(GROUP)
        assert list(frame.index) == ["g1"]
        assert (frame.loc["g1", "name"], frame.loc["g1", "parent"]) == ("New", "g0")

    @pytest.mark.usefixtures("school")
    def test_rename_moves_the_group_its_children_and_its_memberships(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """A group Rename moves the row; children's parent and memberships' group follow, rehashed."""
        before_groups, before_members = _groups(state), _memberships(state)
        mid = record(
            Rename(kind="group", old_id="g2", new_id="g2-new"), operation="changeGroupIdentifier", at=T1
        )
        groups, members = _groups(state), _memberships(state)
        assert sorted(groups) == ["g0", "g1", "g2-new", "g21"]
        # The renamed group keeps identity and fields (the hash leaves out the sync key).
        assert groups["g2-new"][:6] == before_groups["g2"][:6]
        assert groups["g2-new"][6:] == (T1.isoformat(timespec="microseconds"), mid)
        # Its child now names the new parent, with a hash of the new content.
        identity, name, type_, parent, description, content_hash, _, child_mid = groups["g21"]
        assert parent == "g2-new"
        assert content_hash == _hash(identity, name, type_, "g2-new", description)
        assert content_hash != before_groups["g21"][5]
        assert child_mid == mid
        # Its membership follows; the others are untouched.
        assert members["m-2-1"][:5] == (
            "g2-new",
            "p1",
            "Learner",
            "true",
            _hash("g2-new", "p1", "Learner", "true"),
        )
        assert members["m-2-1"][6] == mid
        for key in ("m-1-1", "m-1-2", "m-21-2"):
            assert members[key] == before_members[key]
        for key in ("g0", "g1"):
            assert groups[key] == before_groups[key]
        assert store.load(GROUP).loc["g21", "parent"] == "g2-new"
        assert store.load(MEMBERSHIP).loc["m-2-1", "group"] == "g2-new"

    @pytest.mark.usefixtures("school")
    def test_rename_onto_an_existing_group_writes_nothing(self, store: StateStore, state: Path) -> None:
        """A group Rename onto a group the snapshot holds never merges them: it raises, and the journal
        answer and every change of the answer are rolled back."""
        before_groups, before_members = _groups(state), _memberships(state)
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        store.record_sent(sent_request(run_id, "x1", "g2", operation="changeGroupIdentifier"))
        changes: list[SnapshotChange] = [
            Remove(kind="membership", sync_key="m-1-1"),
            Rename(kind="group", old_id="g2", new_id="g1"),
        ]
        with pytest.raises(StateError, match="group 'g2' to 'g1' in the snapshot: 'g1' exists already"):
            store.record_answer(confirmed("x1"), changes)
        assert (_groups(state), _memberships(state)) == (before_groups, before_members)
        assert {e.message_identifier: e.outcome for e in store.journal(run_id)} == {"x1": "sent"}

    def test_rename_of_a_missing_group_raises(self, store: StateStore, record: Any) -> None:
        """Renaming a group the snapshot lacks raises StateError and records nothing."""
        with pytest.raises(StateError, match="'g1' is not in the snapshot"):
            record(Rename(kind="group", old_id="g1", new_id="g2"))
        assert store.count(GROUP) == 0
        assert [e.outcome for e in store.journal()] == ["sent"]

    def test_rename_with_members_pointing_at_the_new_key_keeps_them_all(
        self, store: StateStore, record: Any
    ) -> None:
        """Memberships already naming the new key (its group was missing) stay, beside the moved ones."""
        record(
            Upsert(record=_group("g1")),
            Upsert(record=_member("a", "g1", "p1")),
            Upsert(record=_member("b", "g2", "p2")),
        )
        record(Rename(kind="group", old_id="g1", new_id="g2"))
        frame = store.load(MEMBERSHIP)
        assert frame["group"].to_dict() == {"a": "g2", "b": "g2"}
        assert frame["person"].to_dict() == {"a": "p1", "b": "p2"}

    @pytest.mark.usefixtures("school")
    def test_remove_takes_the_memberships_and_leaves_the_children(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """A group Remove deletes the group and its memberships; child groups and other rows stay."""
        before_groups, before_members = _groups(state), _memberships(state)
        record(
            Remove(kind="group", sync_key="g2"),
            Remove(kind="group", sync_key="ghost"),
            operation="deleteGroup",
        )
        groups, members = _groups(state), _memberships(state)
        assert sorted(groups) == ["g0", "g1", "g21"]
        assert groups["g21"] == before_groups["g21"]  # still names g2: IMS ES refuses such a delete
        assert sorted(members) == ["m-1-1", "m-1-2", "m-21-2"]
        assert all(members[key] == before_members[key] for key in members)
        assert (store.count(GROUP), store.count(MEMBERSHIP)) == (3, 3)


class TestMembershipChanges:
    """A membership Upsert and a membership Remove."""

    def test_upsert_stores_and_replaces(self, store: StateStore, record: Any, state: Path) -> None:
        """A membership Upsert stores the fields and the confirmation; a second one replaces them."""
        first = record(Upsert(record=_member("m1", "g1", "p1")))
        assert _memberships(state)["m1"] == (
            "g1",
            "p1",
            "Learner",
            "true",
            _hash("g1", "p1", "Learner", "true"),
            T0.isoformat(timespec="microseconds"),
            first,
        )
        second = record(Upsert(record=_member("m1", "g1", "p1", role="Instructor", active="false")), at=T1)
        [(key, row)] = _memberships(state).items()
        assert key == "m1"
        assert row == (
            "g1",
            "p1",
            "Instructor",
            "false",
            _hash("g1", "p1", "Instructor", "false"),
            T1.isoformat(timespec="microseconds"),
            second,
        )

    def test_remove_deletes_one_membership(self, store: StateStore, record: Any) -> None:
        """A membership Remove deletes that membership only; an absent key is a no-op."""
        record(
            Upsert(record=_member("m1", "g1", "p1")),
            Upsert(record=_member("m2", "g1", "p1")),
        )
        record(
            Remove(kind="membership", sync_key="m1"),
            Remove(kind="membership", sync_key="ghost"),
            operation="deleteMemberships",
        )
        assert list(store.load(MEMBERSHIP).index) == ["m2"]
        assert store.count(MEMBERSHIP) == 1

    def test_rename_moves_one_membership_and_keeps_its_content(self, store: StateStore, record: Any) -> None:
        """A membership Rename moves the row to the new key: group, person, role and active kept."""
        record(Upsert(record=_member("m1", "g1", "p1", role="Instructor", active="false")))
        record(
            Rename(kind="membership", old_id="m1", new_id="m1-2026"), operation="changeMembershipIdentifier"
        )
        frame = store.load(MEMBERSHIP)
        assert list(frame.index) == ["m1-2026"]
        assert [str(v) for v in frame.loc["m1-2026"]] == ["g1", "p1", "Instructor", "false"]

    def test_rename_onto_an_existing_membership_raises_and_writes_nothing(
        self, store: StateStore, record: Any
    ) -> None:
        record(
            Upsert(record=_member("m1", "g1", "p1")),
            Upsert(record=_member("m2", "g1", "p2")),
        )
        with pytest.raises(StateError, match="membership 'm1' to 'm2' in the snapshot: 'm2' exists already"):
            record(Rename(kind="membership", old_id="m1", new_id="m2"))
        assert list(store.load(MEMBERSHIP).index) == ["m1", "m2"]


class TestPersonCascades:
    """Person changes carry the person's memberships along, as IMS ES does."""

    @pytest.mark.usefixtures("school")
    def test_remove_of_a_person_removes_its_memberships(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """Remove of p1 deletes p1 and exactly p1's memberships."""
        before = _memberships(state)
        record(Remove(kind="person", sync_key="p1"), operation="deletePerson")
        assert list(store.load(PERSON).index) == ["p2"]
        after = _memberships(state)
        assert sorted(after) == ["m-1-2", "m-21-2"]
        assert all(after[key] == before[key] for key in after)
        assert store.count(GROUP) == 4

    @pytest.mark.usefixtures("school")
    def test_rename_of_a_person_moves_its_memberships(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """Rename of p1 moves the person and points p1's memberships at the new key, rehashed."""
        before = _memberships(state)
        mid = record(
            Rename(kind="person", old_id="p1", new_id="p1-new"), operation="changePersonIdentifier", at=T1
        )
        after = _memberships(state)
        for key in ("m-1-1", "m-2-1"):
            group, person, role, active, content_hash, confirmed_at, row_mid = after[key]
            assert (group, person) == (before[key][0], "p1-new")
            assert content_hash == _hash(group, "p1-new", role, active)
            assert (confirmed_at, row_mid) == (T1.isoformat(timespec="microseconds"), mid)
        for key in ("m-1-2", "m-21-2"):
            assert after[key] == before[key]
        assert sorted(store.load(MEMBERSHIP)["person"]) == ["p1-new", "p1-new", "p2", "p2"]

    @pytest.mark.usefixtures("school")
    def test_rename_onto_an_existing_person_moves_no_membership(self, store: StateStore, state: Path) -> None:
        """A Rename that fails (the new key exists) leaves the memberships as they were."""
        before = _memberships(state)
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        store.record_sent(sent_request(run_id, "x1", "p1", operation="changePersonIdentifier"))
        with pytest.raises(StateError, match="exists already"):
            store.record_answer(confirmed("x1"), [Rename(kind="person", old_id="p1", new_id="p2")])
        assert _memberships(state) == before
        assert sorted(store.load(PERSON).index) == ["p1", "p2"]


class TestGuards:
    """Group and membership changes need a confirmed answer, and fail atomically with it."""

    @pytest.mark.parametrize(
        "change",
        [
            Upsert(record=Group(sync_key="g1", name="n", type="Course")),
            Rename(kind="group", old_id="g0", new_id="g9"),
            Remove(kind="group", sync_key="g0"),
            Upsert(record=Membership(sync_key="m9", group="g0", person="p1", role="Learner")),
            Remove(kind="membership", sync_key="m-1-1"),
        ],
        ids=lambda change: type(change).__name__,
    )
    @pytest.mark.parametrize("outcome", [Outcome.REJECTED, Outcome.UNCONFIRMED])
    def test_an_answer_that_is_not_confirmed_cannot_change_groups(
        self, store: StateStore, state: Path, change: SnapshotChange, outcome: Outcome
    ) -> None:
        """Every new change type with a rejected or unconfirmed answer raises and writes nothing."""
        store.seed(GROUP, pd.DataFrame({"name": ["School"]}, index=pd.Index(["g0"])))
        store.seed(MEMBERSHIP, pd.DataFrame({"group": ["g0"], "person": ["p1"]}, index=pd.Index(["m-1-1"])))
        before = (_groups(state), _memberships(state))
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        store.record_sent(sent_request(run_id, "x1", "k", operation="createGroup"))
        answer = Answer(
            message_identifier="x1",
            answered_at=T0,
            status=Status(code_major="failure", severity="error", message_id_ref="x1"),
            outcome=outcome,
        )
        with pytest.raises(StateError, match="only a confirmed answer"):
            store.record_answer(answer, [change])
        assert (_groups(state), _memberships(state)) == before
        assert store.journal()[0].outcome == "sent"
        store.record_answer(answer)  # the same answer without changes is journalled
        assert store.journal()[0].outcome == outcome.value

    @pytest.mark.usefixtures("school")
    def test_a_failing_change_rolls_back_earlier_cascades_and_answers(
        self, store: StateStore, state: Path
    ) -> None:
        """In a batch, a later failing change undoes earlier answers and the cascades they applied."""
        before = (_groups(state), _memberships(state), db_rows(state, "SELECT * FROM persons"))
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        for mid in ("x1", "x2", "x3"):
            store.record_sent(sent_request(run_id, mid, "k", operation="op"))
        pairs: list[tuple[Answer, list[SnapshotChange]]] = [
            (confirmed("x1"), [Remove(kind="group", sync_key="g1"), Remove(kind="person", sync_key="p2")]),
            (
                confirmed("x2"),
                [
                    Rename(kind="group", old_id="g2", new_id="g3"),
                    Rename(kind="person", old_id="p1", new_id="p3"),
                ],
            ),
            (confirmed("x3"), [Rename(kind="group", old_id="ghost", new_id="g4")]),
        ]
        with pytest.raises(StateError, match="'ghost' is not in the snapshot"):
            store.record_answers(pairs)
        assert (_groups(state), _memberships(state), db_rows(state, "SELECT * FROM persons")) == before
        assert {e.outcome for e in store.journal(run_id)} == {"sent"}
        store.record_answers(pairs[:2])
        assert sorted(store.load(MEMBERSHIP).index) == ["m-2-1"]
        assert store.load(MEMBERSHIP).loc["m-2-1"].to_dict() == {
            "group": "g3",
            "person": "p3",
            "role": "Learner",
            "active": "true",
        }

    @pytest.mark.usefixtures("school")
    def test_group_changes_leave_the_persons_cache_valid(self, store: StateStore, record: Any) -> None:
        """Group and membership changes do not move the persons generation; a person rename does."""
        stamp = store._stamp()
        record(
            Rename(kind="group", old_id="g1", new_id="g9"),
            Remove(kind="membership", sync_key="m-2-1"),
            Remove(kind="group", sync_key="g0"),
        )
        assert store._stamp() == stamp
        record(Rename(kind="person", old_id="p1", new_id="p9"))
        assert store._stamp() != stamp


class TestUnconfirmedGroupRenames:
    """Where a group went when a changeGroupIdentifier's answer was lost."""

    def test_only_unconfirmed_group_renames_from_that_key(self, store: StateStore) -> None:
        """Sent or unconfirmed changeGroupIdentifier targets, newest first; not persons', not confirmed."""
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")

        def sent(mid: str, operation: str, new_key: str, minutes: int, old: str = "g1") -> None:
            store.record_sent(
                sent_request(
                    run_id, mid, old, operation=operation, at=T0 + timedelta(minutes=minutes), new_key=new_key
                )
            )

        sent("a", "changeGroupIdentifier", "g2", 1)
        sent("b", "changeGroupIdentifier", "g3", 2)
        sent("c", "changeGroupIdentifier", "g4", 3)
        sent("d", "changePersonIdentifier", "p9", 4)
        sent("e", "changeGroupIdentifier", "g5", 5, old="other")
        sent("f", "changeGroupIdentifier", "g2", 6)
        store.record_answer(confirmed("c"))
        unconfirmed = Answer(message_identifier="b", answered_at=T0, status=None, outcome=Outcome.UNCONFIRMED)
        store.record_answer(unconfirmed)
        assert store.unconfirmed_renames(GROUP, "g1") == ["g2", "g3"]
        assert store.unconfirmed_renames(PERSON, "g1") == ["p9"]
        assert store.unconfirmed_renames(GROUP, "nothing") == []


class TestLoad:
    """load(GROUP) and load(MEMBERSHIP): exact frames, on every read path, and seeding."""

    @pytest.mark.parametrize(
        ("kind", "columns"),
        [(GROUP, ["identity", *GROUP_FIELDS]), (MEMBERSHIP, list(MEMBERSHIP_FIELDS))],
    )
    def test_empty_frames(self, store: StateStore, kind: Kind, columns: list[str]) -> None:
        """With no rows, the frames have their index, columns and text dtypes all the same."""
        frame = store.load(kind)
        assert frame.shape == (0, len(columns))
        assert frame.index.name == "sync_key"
        assert list(frame.columns) == columns
        assert str(frame.index.dtype) == "str"
        assert [str(dtype) for dtype in frame.dtypes] == ["str"] * len(columns)

    def test_group_frame_holds_every_column_in_place(self, store: StateStore, record: Any) -> None:
        """Distinct values in every column come back in their own column, sorted by key, as text."""
        record(
            Upsert(
                record=Group(sync_key="g2", name="n2", type="t2", parent="p2", description="d2"),
                identity="i2",
            ),
            Upsert(
                record=Group(sync_key="g1", name="n1", type="t1", parent="p1", description="d1"),
                identity="i1",
            ),
        )
        frame = store.load(GROUP)
        expected = pd.DataFrame(
            {
                "identity": ["i1", "i2"],
                "name": ["n1", "n2"],
                "type": ["t1", "t2"],
                "parent": ["p1", "p2"],
                "description": ["d1", "d2"],
            },
            index=pd.Index(["g1", "g2"], name="sync_key"),
            dtype="str",
        )
        pd.testing.assert_frame_equal(frame, expected)

    def test_membership_frame_holds_every_column_in_place(self, store: StateStore, record: Any) -> None:
        """Distinct values in every membership column come back in their own column, sorted by key."""
        record(
            Upsert(record=_member("m2", "g2", "p2", role="r2", active="false")),
            Upsert(record=_member("m1", "g1", "p1", role="r1", active="true")),
        )
        expected = pd.DataFrame(
            {
                "group": ["g1", "g2"],
                "person": ["p1", "p2"],
                "role": ["r1", "r2"],
                "active": ["true", "false"],
            },
            index=pd.Index(["m1", "m2"], name="sync_key"),
            dtype="str",
        )
        pd.testing.assert_frame_equal(store.load(MEMBERSHIP), expected)

    def test_values_with_the_separator_take_the_plain_path(self, store: StateStore) -> None:
        """A value holding the packing separator still loads exactly, for groups and memberships."""
        store.seed(GROUP, pd.DataFrame({"name": ["a\x1fb", "c"]}, index=pd.Index(["g2", "g1"])))
        store.seed(
            MEMBERSHIP,
            pd.DataFrame({"group": ["g\x1f1", "g2"], "person": ["p", "q"]}, index=pd.Index(["m2", "m1"])),
        )
        groups = store.load(GROUP)
        assert groups["name"].to_dict() == {"g1": "c", "g2": "a\x1fb"}
        assert str(groups.dtypes["name"]) == "str"
        members = store.load(MEMBERSHIP)
        assert members["group"].to_dict() == {"m1": "g2", "m2": "g\x1f1"}
        assert str(members.index.dtype) == "str"

    @pytest.mark.parametrize("chunk", [1, 3, 250_000])
    def test_memberships_load_across_key_chunks_with_gaps(
        self, store: StateStore, record: Any, monkeypatch: pytest.MonkeyPatch, chunk: int
    ) -> None:
        """Loading in sync key ranges, after removals and out-of-order inserts, loses and repeats no row."""
        monkeypatch.setattr(loading, "LOAD_CHUNK", chunk)
        keys = [f"m{i:02d}" for i in range(14)]
        store.seed(
            MEMBERSHIP,
            pd.DataFrame(
                {"group": [f"g-{k}" for k in keys[::-1]], "person": "p"}, index=pd.Index(keys[::-1])
            ),
        )
        record(*(Remove(kind="membership", sync_key=key) for key in ("m03", "m04", "m05", "m13")))
        record(Upsert(record=_member("m045", "g-m045", "p")))
        frame = store.load(MEMBERSHIP)
        expected = sorted([key for key in keys if key not in ("m03", "m04", "m05", "m13")] + ["m045"])
        assert list(frame.index) == expected
        assert list(frame["group"]) == [f"g-{key}" for key in expected]

    def test_memberships_too_long_for_sqlite_are_read_in_smaller_key_chunks(
        self, store: StateStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A sync key range whose packed column exceeds SQLite's string limit is read again in halves:
        every row once, in key order (the limit lowered to 1,000 bytes: 20 rows of 100)."""
        monkeypatch.setattr(loading, "LOAD_CHUNK", 16)
        keys = [f"m{i:02d}" for i in range(37)]
        groups = [f"g-{key}-" + "x" * 95 for key in keys]
        store.seed(MEMBERSHIP, pd.DataFrame({"group": groups, "person": "p"}, index=pd.Index(keys)))
        connection = sqlite3.connect(store.path)
        try:
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
            table = loading.read_table(connection, table_of(MEMBERSHIP))
        finally:
            connection.close()
        assert table.column("sync_key").to_pylist() == keys
        assert table.column("group").to_pylist() == groups

    def test_seed_fills_gaps_with_the_defaults_and_hashes_like_an_upsert(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """Seeded memberships default active to "true" (missing column or value), hash as confirmed ones."""
        store.seed(
            MEMBERSHIP, pd.DataFrame({"sync_key": ["a", "b"], "group": ["g", "g"], "person": ["p", None]})
        )
        store.seed(
            MEMBERSHIP,
            pd.DataFrame(
                {"group": ["g"], "person": ["q"], "role": ["Learner"], "active": [None]},
                index=pd.Index(["c"]),
            ),
        )
        frame = store.load(MEMBERSHIP)
        assert frame.to_dict("index") == {
            "a": {"group": "g", "person": "p", "role": "", "active": "true"},
            "b": {"group": "g", "person": "", "role": "", "active": "true"},
            "c": {"group": "g", "person": "q", "role": "Learner", "active": "true"},
        }
        seeded_hash = _memberships(state)["c"][4]
        record(Upsert(record=_member("c", "g", "q")))
        assert _memberships(state)["c"][4] == seeded_hash
        store.seed(GROUP, pd.DataFrame({"sync_key": ["g"], "name": ["G"], "type": ["Course"]}))
        assert store.load(GROUP).loc["g"].to_dict() == {
            "identity": "",
            "name": "G",
            "type": "Course",
            "parent": "",
            "description": "",
        }
        assert _groups(state)["g"][5] == _hash("", "G", "Course", "", "")

    @pytest.mark.parametrize(("kind", "seed"), [(GROUP, "seed_groups"), (MEMBERSHIP, "seed_memberships")])
    def test_seed_refuses_bad_keys(self, store: StateStore, kind: Kind, seed: str) -> None:
        """Duplicate or empty sync keys are refused before anything is written."""
        with pytest.raises(ValueError, match=f"{seed}: a sync key appears twice"):
            store.seed(kind, pd.DataFrame({"role": ["a", "b"]}, index=pd.Index(["k", "k"])))
        with pytest.raises(ValueError, match=f"{seed}: every row needs a sync key"):
            store.seed(kind, pd.DataFrame({"role": ["a"]}, index=pd.Index([""])))
        assert (store.count(GROUP), store.count(MEMBERSHIP)) == (0, 0)

    def test_seed_and_load_100k_memberships(self, store: StateStore) -> None:
        """100,000 memberships seeded out of key order load back identical and sorted, in well under a second
        per 100,000 rows on a quiet machine (generous bound here)."""
        n = 100_000
        numbers = pd.Series(range(n), dtype="int64").astype("str")
        frame = pd.DataFrame(
            {
                "group": ("course-" + (pd.Series(range(n)) % 997).astype("str")).to_numpy(),
                "person": ("S" + numbers.str.zfill(7)).to_numpy(),
                "role": ["Learner"] * (n - 10) + ["Instructor"] * 10,
                "active": ["true", "false"] * (n // 2),
            },
            index=pd.Index(("M" + numbers.str.zfill(7)).to_numpy()[::-1], name="sync_key"),
        )
        store.seed(MEMBERSHIP, frame)
        started = time.perf_counter()
        loaded = store.load(MEMBERSHIP)
        elapsed = time.perf_counter() - started
        assert store.count(MEMBERSHIP) == n
        assert loaded.index.is_monotonic_increasing
        pd.testing.assert_frame_equal(
            loaded, frame.astype("str").set_axis(frame.index.astype("str"), axis=0).sort_index()
        )
        assert elapsed < 10, f"load of {n} memberships took {elapsed:.2f} s"

    @pytest.mark.usefixtures("school")
    def test_frames_export_as_csv(self, store: StateStore) -> None:
        """The CLI's export path: frame_to_csv of the loaded frames, the sync key first."""
        groups = frame_to_csv(store.load(GROUP)).splitlines()
        assert groups[0] == "sync_key,identity,name,type,parent,description"
        assert groups[1:3] == [
            "g0,school-0,Group g0,School,,about g0",
            "g1,course-1,Group g1,Course,g0,about g1",
        ]
        members = frame_to_csv(store.load(MEMBERSHIP)).splitlines()
        assert members[0] == "sync_key,group,person,role,active"
        assert members[1] == "m-1-1,g1,p1,Learner,true"
        assert len(members) == 5


def test_one_answer_may_mix_persons_groups_and_memberships(store: StateStore, record: Any) -> None:
    """One answer may carry person, group and membership changes together (a mixed batch)."""
    record(
        Upsert(record=Person(sync_key="p1", username="ada")),
        Upsert(record=_group("g1")),
        Upsert(record=_member("m1", "g1", "p1")),
    )
    assert (store.count(PERSON), store.count(GROUP), store.count(MEMBERSHIP)) == (1, 1, 1)
