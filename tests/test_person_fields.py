"""Every person field itslearning takes (issue 17): the canonical fields, the children's canonical string,
and a snapshot written before them upgraded without a change planned."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from sync.emulator.store import Store
from sync.models import (
    CHILDREN_SEP,
    PERSON_FIELDS,
    PERSON_LATER_FIELDS,
    FieldChange,
    Person,
    Update,
    join_children,
    person_hash,
    split_children,
)
from sync.models.kinds import GROUP, PERSON
from sync.plan.diff import plan
from sync.plan.ordering import link_levels, phases
from sync.read.mapping_types import CANONICAL_FIELDS
from sync.state.changes import Upsert
from sync.state.check import check_state
from sync.state.schema import DB_NAME, MIGRATIONS
from sync.state.store import StateStore
from tests.journal import confirmed, sent_request
from tests.strategies import make_roster, snapshot_frame

#: The fields a schema-4 snapshot had (today's main before issue 17), in their order.
V4_FIELDS = ("username", "given_name", "family_name", "email", "role", "birth_date", "phone", "mobile")
LATER = ("nickname", "prefix", "street", "street_extra", "postal_code", "city", "gender", "children")


def v4_hash(identity: str, values: dict[str, str]) -> str:
    """The content hash the schema-4 code wrote: sha256 over identity and its eight fields, each + 0x1f."""
    text = "".join(f"{value}\x1f" for value in (identity, *(values[name] for name in V4_FIELDS)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_person_fields_keep_their_order_and_add_the_new_ones_last() -> None:
    """Today's fields keep their places; the new ones follow in the issue's order and are mappable."""
    assert (*V4_FIELDS, *LATER) == PERSON_FIELDS
    assert len(LATER) == PERSON_LATER_FIELDS
    assert Person(sync_key="k").values() == dict.fromkeys(PERSON_FIELDS, "")
    assert set(LATER) <= set(CANONICAL_FIELDS)


@pytest.mark.parametrize(
    ("keys", "joined"),
    [
        ((), ""),
        (("b", "a", "b", ""), "a,b"),
        (("kid-2", "kid-10", "kid-1"), "kid-1,kid-10,kid-2"),
    ],
)
def test_children_join_sorted_unique_and_split_back(keys: tuple[str, ...], joined: str) -> None:
    """join_children sorts, deduplicates and drops empty keys; split_children reads it back."""
    assert CHILDREN_SEP == ","
    assert join_children(keys) == joined
    assert split_children(joined) == tuple(sorted(set(keys) - {""}))
    assert join_children(split_children(joined)) == joined


def test_person_hash_covers_later_fields_only_when_used() -> None:
    """Empty later fields leave the hash as the schema-4 code computed it; a filled one changes it."""
    values = dict.fromkeys(PERSON_FIELDS, "") | {"username": "ada", "role": "Student"}
    ada = Person.from_values("p1", values)
    assert person_hash(ada, "ada") == v4_hash("ada", values)
    for name in LATER:
        changed = Person.from_values("p1", values | {name: "x"})
        assert person_hash(changed, "ada") != person_hash(ada, "ada"), name


def _v4_database(state: Path, persons: dict[str, dict[str, str]]) -> None:
    """A state database as the schema-4 code wrote it, each person confirmed by one answered request."""
    state.mkdir()
    connection = sqlite3.connect(state / DB_NAME, isolation_level=None)
    try:
        for script in MIGRATIONS[:4]:
            connection.executescript(script)
        connection.execute("PRAGMA user_version = 4")
        connection.execute(
            "INSERT INTO runs (run_id, started_at, command) VALUES ('r1', '2025-03-01T06:00:00+00:00', 'run')"
        )
        connection.execute(
            "INSERT INTO requests (message_identifier, run_id, operation, attempt, sent_at, answered_at, "
            "message_id_ref, code_major, severity, outcome) VALUES ('m1', 'r1', 'createPersons', 1, "
            "'2025-03-01T06:00:00+00:00', '2025-03-01T06:00:01+00:00', 'm1', 'success', 'status', "
            "'confirmed')"
        )
        for index, (key, values) in enumerate(sorted(persons.items())):
            connection.execute(
                "INSERT INTO request_items (message_identifier, item_index, sync_key, message_id_ref, "
                "code_major, severity, outcome) VALUES ('m1', ?, ?, 'm1', 'success', 'status', 'confirmed')",
                (index, key),
            )
            identity = values["identity"]
            connection.execute(
                f"INSERT INTO persons (sync_key, identity, {', '.join(V4_FIELDS)}, content_hash, "
                f"confirmed_at, message_identifier) VALUES (?, ?, {', '.join('?' * len(V4_FIELDS))}, ?, "
                "'2025-03-01T06:00:01+00:00', 'm1')",
                (key, identity, *(values[name] for name in V4_FIELDS), v4_hash(identity, values)),
            )
    finally:
        connection.close()


def _roster_person(identity: str, **fields: str) -> dict[str, str]:
    values = dict.fromkeys(PERSON_FIELDS, "") | {"identity": identity, "username": identity}
    return (
        values | {"given_name": identity.title(), "role": "Student", "email": f"{identity}@x.test"} | fields
    )


class TestUpgrade:
    """A schema-4 snapshot gets the new columns, keeps its hashes and plans nothing for the same roster."""

    def test_a_version_4_snapshot_plans_no_change_and_checks_clean(self, tmp_path: Path) -> None:
        """After the upgrade the snapshot checks clean and the same persons plan zero operations."""
        state = tmp_path / "state"
        persons = {
            "p1": _roster_person("ada", birth_date="2011-04-01", phone="+47 1"),
            "p2": _roster_person("bo", mobile="+47 2"),
            "p3": _roster_person("cy", role="Carer"),
        }
        _v4_database(state, persons)
        with StateStore.open(state) as store:
            snapshot = store.load(PERSON)
        assert list(snapshot.columns) == ["identity", *PERSON_FIELDS]
        assert (snapshot[list(LATER)] == "").all().all()
        assert check_state(state).problems == ()
        result = plan(make_roster(persons), snapshot)
        assert (result.operations, result.deletions, result.unchanged_of(PERSON)) == ((), (), 3)
        with_child = make_roster(persons | {"p3": persons["p3"] | {"children": "p1"}})
        [update] = plan(with_child, snapshot).operations
        assert isinstance(update, Update)
        assert (update.sync_key, [c.field for c in update.changes]) == ("p3", ["children"])

    def test_a_confirmed_person_with_later_fields_checks_clean(self, tmp_path: Path) -> None:
        """A row written with later fields hashes them in, and `snapshot check` agrees with that hash."""
        state = tmp_path / "state"
        _v4_database(state, {"p1": _roster_person("ada")})
        carer = Person(
            sync_key="p9", username="cy", role="Carer", city="Oslo", children=join_children(["p1"])
        )
        with StateStore.open(state) as store:
            run_id = store.begin_run(command="run", roster="users.csv", mapping="m")
            store.record_sent(sent_request(run_id, "m2", "p9"))
            store.record_answer(confirmed("m2"), [Upsert(record=carer, identity="cy")])
            loaded = store.load(PERSON)
        assert loaded.loc["p9", "children"] == "p1"
        assert loaded.loc["p9", "city"] == "Oslo"
        (stored,) = (
            sqlite3.connect(state / DB_NAME)
            .execute("SELECT content_hash FROM persons WHERE sync_key = 'p9'")
            .fetchone()
        )
        assert stored == person_hash(carer, "cy")
        assert check_state(state).problems == ()


def test_an_emulator_state_file_without_the_new_fields_opens_with_them(tmp_path: Path) -> None:
    """An emulator `--state` file written before the new fields keeps its persons and stores the new ones."""
    path = tmp_path / "emulator.sqlite3"
    connection = sqlite3.connect(path)
    with connection:
        columns = ", ".join(f"{name} TEXT NOT NULL DEFAULT ''" for name in V4_FIELDS)
        connection.execute(f"CREATE TABLE persons (sync_key TEXT PRIMARY KEY, {columns})")
        connection.execute("INSERT INTO persons (sync_key, username) VALUES ('p1', 'ada')")
    connection.close()
    store = Store(path)
    try:
        assert store.get("p1") == Person(sync_key="p1", username="ada")
        store.put(Person(sync_key="p2", username="cy", city="Oslo", children="p1"))
        assert store.get("p2") == Person(sync_key="p2", username="cy", city="Oslo", children="p1")
    finally:
        store.close()


@pytest.mark.parametrize(
    ("changes", "verb"),
    [
        ((FieldChange(field="children", old="a", new="a,b"),), "update"),
        ((FieldChange(field="children", old="", new="a"),), "update"),
        ((FieldChange(field="children", old="a,b", new="b,c"),), "replace"),
        ((FieldChange(field="children", old="a", new=""),), "replace"),
        ((FieldChange(field="city", old="Oslo", new="Bergen"),), "update"),
        ((FieldChange(field="city", old="Oslo", new=""),), "replace"),
    ],
)
def test_an_update_replaces_only_when_it_drops_a_child_or_clears_a_field(
    changes: tuple[FieldChange, ...], verb: str
) -> None:
    """updatePerson adds children, so dropping one (or clearing a field) needs replacePerson."""
    assert PERSON.update_verb(changes) == verb
    assert GROUP.update_verb(changes) == "update"


def test_link_levels_put_parents_after_their_children() -> None:
    """A parent's level is above each of its children's in the run; links outside it and loops do not
    hold anything up."""
    levels = link_levels({"gran": ("mum",), "mum": ("kid", "elsewhere"), "kid": (), "a": ("b",), "b": ("a",)})
    assert (levels["kid"], levels["mum"], levels["gran"]) == (0, 1, 2)
    assert set(levels) == {"gran", "mum", "kid", "a", "b"}


def test_an_unchanged_parent_of_a_child_created_now_is_updated_after_it() -> None:
    """A parent whose link was skipped (its child did not exist) is updated in a phase after the child's
    create; one marked for deletion is not."""
    mum = _roster_person("mum", role="Carer", children="kid")
    gran = _roster_person("gran", role="Carer", children="kid")
    roster = make_roster({"mum": mum, "gran": gran, "kid": _roster_person("kid")}, delete=["gran"])
    result = plan(roster, snapshot_frame({"mum": mum, "gran": gran}))
    ops = result.operations
    assert [(type(op).__name__, op.sync_key) for op in ops] == [("Create", "kid"), ("Update", "mum")]
    update = ops[1]
    assert isinstance(update, Update)
    assert update.changes == (FieldChange(field="children", old="", new="kid"),)
    assert PERSON.update_verb(update.changes) == "update"
    assert result.unchanged_of(PERSON) == 0
    assert [[ops[i].sync_key for i in phase] for phase in phases(ops)] == [["kid"], ["mum"]]
