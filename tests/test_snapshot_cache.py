"""The memberships' Arrow cache (`memberships.arrow`): its own generation, every invalidation, migration 4."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from sync.errors import StateError
from sync.models import MEMBERSHIP_FIELDS, Group, Membership, Person
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
from sync.state import loading
from sync.state.cache import (
    CACHE_NAME,
    CACHES,
    MEMBERSHIPS_CACHE_NAME,
    read_cache,
    read_cache_stamp,
    wait_for_writes,
    write_cache,
)
from sync.state.changes import Remove, Rename, SnapshotChange, Upsert
from sync.state.loading import as_frame
from sync.state.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION
from sync.state.store import StateStore
from sync.state.tables import TABLES
from tests.journal import confirmed, db_rows, sent_request

CACHE = CACHES["membership"]


def _member(key: str, group: str, person: str, role: str = "Learner", active: str = "true") -> Membership:
    return Membership(sync_key=key, group=group, person=person, role=role, active=active)


def _members(*keys: str, group: str = "g1") -> pd.DataFrame:
    """Memberships `keys` of `group`, each with its own person and role, to seed."""
    return pd.DataFrame(
        {
            "group": [group] * len(keys),
            "person": [f"p-{key}" for key in keys],
            "role": [f"role-{key}" for key in keys],
            "active": ["true", "false"] * (len(keys) // 2) + ["true"] * (len(keys) % 2),
        },
        index=pd.Index(list(keys)),
    )


def _write(state: Path, sql: str) -> None:
    """Change the database behind the store's back, as an operator's sqlite3 shell would."""
    connection = sqlite3.connect(state / DB_NAME)
    try:
        with connection:
            connection.execute(sql)
    finally:
        connection.close()


def _file_stamp(state: Path) -> str | None:
    return read_cache_stamp(state / MEMBERSHIPS_CACHE_NAME)


def _from_sqlite(store: StateStore) -> pd.DataFrame:
    """The memberships frame as SQLite gives it (the cache file removed first; the load rewrites it)."""
    store.cache_path(MEMBERSHIP).unlink(missing_ok=True)
    frame = store.load(MEMBERSHIP)
    assert store.cache_path(MEMBERSHIP).exists()
    return frame


@pytest.fixture(name="state")
def fixture_state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(name="store")
def fixture_store(state: Path) -> Iterator[StateStore]:
    with StateStore.open(state) as store:
        yield store


@pytest.fixture(name="record")
def fixture_record(store: StateStore) -> Any:
    """Journal a request and record its confirmed answer with `changes`: the executor's path."""
    run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
    counter = iter(range(1_000_000))

    def record(*changes: SnapshotChange) -> str:
        mid = f"m{next(counter)}"
        store.record_sent(sent_request(run_id, mid, "k"))
        store.record_answer(confirmed(mid), changes)
        return mid

    return record


class TestCacheFile:
    """What load(MEMBERSHIP) writes and when it reads it back."""

    def test_load_writes_an_owner_only_cache_of_the_membership_columns_only(
        self, store: StateStore, state: Path
    ) -> None:
        """memberships.arrow (0600) holds the five frame columns, no hash or confirmation, and the stamp."""
        store.seed(MEMBERSHIP, _members("b", "a"))
        store.load(MEMBERSHIP)
        path = state / MEMBERSHIPS_CACHE_NAME
        assert store.cache_path(MEMBERSHIP) == path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert _file_stamp(state) == store._stamp(CACHE)
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        assert table.schema.names == ["sync_key", *MEMBERSHIP_FIELDS]
        assert table.column("sync_key").to_pylist() == ["a", "b"]
        assert [path.name for path in state.iterdir() if path.name.endswith(".tmp")] == []

    def test_extra_columns_never_reach_the_file(self, store: StateStore, state: Path) -> None:
        """_write_cache writes the cache's columns only, whatever the table it is handed holds."""
        store.seed(MEMBERSHIP, _members("a"))
        stamp = store._stamp(CACHE)
        frame = store.load(MEMBERSHIP).reset_index().assign(content_hash="h", password="secret")
        write_cache(
            state / MEMBERSHIPS_CACHE_NAME, pa.Table.from_pandas(frame, preserve_index=False), stamp, CACHE
        )
        cached = read_cache(state / MEMBERSHIPS_CACHE_NAME, stamp, CACHE)
        assert cached is not None
        assert cached.schema.names == ["sync_key", *MEMBERSHIP_FIELDS]
        assert b"secret" not in (state / MEMBERSHIPS_CACHE_NAME).read_bytes()

    def test_the_stamp_decides_whether_the_cache_is_used(self, store: StateStore, state: Path) -> None:
        """A cache written for the current stamp is what load returns; with another stamp it is ignored."""
        store.seed(MEMBERSHIP, _members("a"))
        stamp = store._stamp(CACHE)
        planted = store.load(MEMBERSHIP).rename(index={"a": "from-cache"}).reset_index()
        table = pa.Table.from_pandas(planted, preserve_index=False)
        write_cache(state / MEMBERSHIPS_CACHE_NAME, table, stamp, CACHE)
        assert list(store.load(MEMBERSHIP).index) == ["from-cache"]
        write_cache(state / MEMBERSHIPS_CACHE_NAME, table, stamp + "-other", CACHE)
        assert list(store.load(MEMBERSHIP).index) == ["a"]
        assert _file_stamp(state) == stamp  # rebuilt for the current stamp

    @pytest.mark.parametrize(
        "frame",
        [
            _members(),
            _members("m2", "m1", "m3"),
            # Values holding the packing separator take SQLite's plain path; non-ASCII text.
            pd.DataFrame(
                {"group": ["g\x1f1", "grüppe"], "person": ["p", "ø"], "role": ["", "Lærer"]},
                index=pd.Index(["m\x1f2", "m1"]),
            ),
        ],
        ids=["empty", "three", "separator-and-unicode"],
    )
    def test_the_frame_from_the_cache_equals_the_frame_from_sqlite(
        self, store: StateStore, frame: pd.DataFrame
    ) -> None:
        """Index, columns, values, order and dtypes: the cached frame is the SQLite frame."""
        store.seed(MEMBERSHIP, frame)
        expected = _from_sqlite(store)
        table, _, cached = store._load_table(CACHE)
        assert cached
        from_cache = as_frame(table, TABLES["membership"].names)
        pd.testing.assert_frame_equal(from_cache, expected, check_exact=True)
        assert str(from_cache.index.dtype) == str(expected.index.dtype) == "str"
        assert list(from_cache.dtypes.astype(str)) == list(expected.dtypes.astype(str)) == ["str"] * 4
        pd.testing.assert_frame_equal(store.load(MEMBERSHIP), expected, check_exact=True)
        assert len(expected) == len(frame)

    def test_the_frame_from_the_cache_equals_the_frame_from_sqlite_across_chunks(
        self, store: StateStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A multi-chunk SQLite read and its cache give the same frame (one chunk per column in the file)."""
        monkeypatch.setattr(loading, "LOAD_CHUNK", 7)
        store.seed(MEMBERSHIP, _members(*(f"m{i:03d}" for i in range(100, 0, -1))))
        expected = _from_sqlite(store)
        pd.testing.assert_frame_equal(store.load(MEMBERSHIP), expected, check_exact=True)
        assert list(expected.index) == sorted(expected.index)

    def test_a_cache_that_cannot_be_written_costs_only_speed(self, store: StateStore, state: Path) -> None:
        """When the cache path cannot be replaced (here: a directory), load still answers from SQLite."""
        store.seed(MEMBERSHIP, _members("a"))
        (state / MEMBERSHIPS_CACHE_NAME).mkdir()
        assert list(store.load(MEMBERSHIP).index) == ["a"]
        assert (state / MEMBERSHIPS_CACHE_NAME).is_dir()
        assert [path.name for path in state.iterdir() if path.name.endswith(".tmp")] == []


class TestInvalidation:
    """A missing, stale, damaged or foreign memberships cache is ignored and rebuilt, never trusted."""

    def test_a_missing_cache_is_rebuilt(self, store: StateStore, state: Path) -> None:
        store.seed(MEMBERSHIP, _members("a", "b"))
        expected = store.load(MEMBERSHIP)
        (state / MEMBERSHIPS_CACHE_NAME).unlink()
        pd.testing.assert_frame_equal(store.load(MEMBERSHIP), expected)
        assert _file_stamp(state) == store._stamp(CACHE)

    @pytest.mark.parametrize(
        "damage",
        [
            lambda data: data[: len(data) // 2],  # truncated mid-file
            lambda data: data[:-1],  # the footer's last byte gone
            lambda data: b"not arrow at all",
            lambda data: b"",
        ],
        ids=["half", "one-byte-short", "garbage", "empty"],
    )
    def test_a_damaged_cache_is_ignored_and_rebuilt(
        self, store: StateStore, state: Path, damage: Any
    ) -> None:
        """A truncated or garbage cache never reaches the plan: load reads SQLite and rewrites it."""
        store.seed(MEMBERSHIP, _members("a", "b", "c"))
        expected = store.load(MEMBERSHIP)
        cache = state / MEMBERSHIPS_CACHE_NAME
        cache.write_bytes(damage(cache.read_bytes()))
        pd.testing.assert_frame_equal(store.load(MEMBERSHIP), expected)
        assert _file_stamp(state) == store._stamp(CACHE)
        assert read_cache(cache, store._stamp(CACHE), CACHE) is not None

    def test_a_stale_cache_is_ignored_after_a_change_by_another_process(
        self, store: StateStore, state: Path
    ) -> None:
        """After an operator's shell changes a membership, load returns the new value, not the cached one."""
        store.seed(MEMBERSHIP, _members("a"))
        assert store.load(MEMBERSHIP).loc["a", "role"] == "role-a"
        _write(state, "UPDATE memberships SET role = 'changed' WHERE sync_key = 'a'")
        assert store.load(MEMBERSHIP).loc["a", "role"] == "changed"
        _write(state, "DELETE FROM memberships")
        assert store.load(MEMBERSHIP).empty
        _write(
            state,
            "INSERT INTO memberships (sync_key, group_key, person_key, content_hash, confirmed_at, "
            "message_identifier) VALUES ('z', 'g', 'p', 'h', 't', 'm')",
        )
        assert store.load(MEMBERSHIP).to_dict("index") == {
            "z": {"group": "g", "person": "p", "role": "", "active": "true"}
        }

    def test_a_cache_of_another_history_is_ignored(self, tmp_path: Path) -> None:
        """Two states at the same generation counter (e.g. a restored backup): the nonce tells them apart."""
        first, second = tmp_path / "first", tmp_path / "second"
        for state, role in ((first, "first"), (second, "second")):
            with StateStore.open(state) as store:
                store.seed(MEMBERSHIP, _members("a", "b").assign(role=role))
                store.load(MEMBERSHIP)
        generation = "SELECT generation FROM membership_generation"
        assert db_rows(first, generation) == db_rows(second, generation) == [(2,)]
        shutil.copyfile(first / MEMBERSHIPS_CACHE_NAME, second / MEMBERSHIPS_CACHE_NAME)
        with StateStore.open(second) as store:
            assert _file_stamp(second) != store._stamp(CACHE)
            assert set(store.load(MEMBERSHIP)["role"]) == {"second"}
            assert _file_stamp(second) == store._stamp(CACHE)

    def test_the_persons_cache_is_never_read_as_memberships(self, store: StateStore, state: Path) -> None:
        """persons.arrow copied over memberships.arrow (other schema, other stamp) is ignored; and a cache
        with the right stamp but a foreign schema is ignored too."""
        store.seed(PERSON, pd.DataFrame({"username": ["u"]}, index=pd.Index(["a"])))
        store.seed(MEMBERSHIP, _members("a"))
        store.load(PERSON)
        expected = store.load(MEMBERSHIP)
        shutil.copyfile(state / CACHE_NAME, state / MEMBERSHIPS_CACHE_NAME)
        pd.testing.assert_frame_equal(store.load(MEMBERSHIP), expected)
        persons = store.load(PERSON).reset_index()
        write_cache(
            state / MEMBERSHIPS_CACHE_NAME,
            pa.Table.from_pandas(persons, preserve_index=False),
            store._stamp(CACHE),
            CACHES["person"],
        )
        pd.testing.assert_frame_equal(store.load(MEMBERSHIP), expected)

    def test_stamps_name_their_table(self, store: StateStore) -> None:
        """Even at equal counters, the persons' and the memberships' stamps differ."""
        persons, memberships = store._stamps()
        assert persons.startswith(f"{SCHEMA_VERSION}:{CACHE_NAME}:")
        assert memberships.startswith(f"{SCHEMA_VERSION}:{MEMBERSHIPS_CACHE_NAME}:")


class TestGenerations:
    """Each cached table has its own generation: a change to one leaves the other's cache valid."""

    @pytest.fixture(name="school")
    def fixture_school(self, store: StateStore, record: Any) -> None:
        """Groups g1, g2; persons p1, p2 (members) and p3 (no membership); four memberships."""
        store.seed(PERSON, pd.DataFrame({"username": ["1", "2", "3"]}, index=pd.Index(["p1", "p2", "p3"])))
        record(
            Upsert(record=Group(sync_key="g1", name="G1")),
            Upsert(record=Group(sync_key="g2", name="G2")),
            Upsert(record=_member("m11", "g1", "p1")),
            Upsert(record=_member("m12", "g1", "p2")),
            Upsert(record=_member("m21", "g2", "p1")),
            Upsert(record=_member("m22", "g2", "p2")),
        )

    @pytest.mark.usefixtures("school")
    def test_every_change_to_memberships_moves_their_stamp_and_not_the_persons(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """Membership upserts, renames, removes, group cascades, seeds and raw SQL move the memberships'
        stamp (each to a new one), never the persons'."""
        persons = store._stamp()
        stamps = [store._stamp(CACHE)]
        steps: list[tuple[SnapshotChange, ...]] = [
            (Upsert(record=_member("m13", "g1", "p3")),),
            (Upsert(record=_member("m13", "g1", "p3", role="Instructor")),),
            (Rename(kind="membership", old_id="m13", new_id="m14"),),
            (Remove(kind="membership", sync_key="m14"),),
            (Rename(kind="group", old_id="g1", new_id="g9"),),  # moves m11, m12
            (Remove(kind="group", sync_key="g2"),),  # takes m21, m22
        ]
        for changes in steps:
            record(*changes)
            stamps.append(store._stamp(CACHE))
        store.seed(MEMBERSHIP, _members("s1"))
        stamps.append(store._stamp(CACHE))
        _write(state, "UPDATE memberships SET active = 'false' WHERE sync_key = 's1'")
        stamps.append(store._stamp(CACHE))
        assert len(set(stamps)) == len(stamps)
        assert store._stamp() == persons

    @pytest.mark.usefixtures("school")
    def test_person_and_group_changes_leave_the_memberships_cache_valid(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """Person upserts, a rename and a removal of a person without memberships, group upserts and
        journal writes do not move the memberships' generation; a person cascade does."""
        store.load(MEMBERSHIP)
        stamp = store._stamp(CACHE)
        persons = store._stamp()
        record(
            Upsert(record=Person(sync_key="p4", username="4")),
            Upsert(record=Person(sync_key="p1", username="one")),
            Rename(kind="person", old_id="p3", new_id="p33"),
            Remove(kind="person", sync_key="p4"),
            Upsert(record=Group(sync_key="g3", name="G3")),
        )
        store.seed(PERSON, pd.DataFrame({"username": ["5"]}, index=pd.Index(["p5"])))
        store.seed(GROUP, pd.DataFrame({"name": ["G4"]}, index=pd.Index(["g4"])))
        assert store._stamp() != persons
        assert store._stamp(CACHE) == stamp
        assert _file_stamp(state) == stamp  # the file written before is still the current one
        assert store._load_table(CACHE)[2]
        record(Rename(kind="person", old_id="p1", new_id="p9"))  # moves m11, m21
        assert store._stamp(CACHE) != stamp
        assert store.load(MEMBERSHIP).loc[["m11", "m21"], "person"].tolist() == ["p9", "p9"]
        stamp = store._stamp(CACHE)
        record(Remove(kind="person", sync_key="p2"))  # takes m12, m22
        assert store._stamp(CACHE) != stamp
        assert list(store.load(MEMBERSHIP).index) == ["m11", "m21"]

    @pytest.mark.usefixtures("school")
    def test_membership_changes_leave_the_persons_cache_valid(
        self, store: StateStore, record: Any, state: Path
    ) -> None:
        """The persons cache written before a memberships-only change is still used after it."""
        store.load(PERSON)
        stamp = store._stamp()
        record(
            Upsert(record=_member("m13", "g1", "p3")),
            Remove(kind="membership", sync_key="m11"),
            Rename(kind="group", old_id="g2", new_id="g8"),
        )
        store.seed(MEMBERSHIP, _members("s1"))
        assert store._stamp() == stamp
        assert read_cache_stamp(state / CACHE_NAME) == stamp
        assert store._load_table(CACHES["person"])[2]

    def test_a_failed_transaction_moves_no_stamp(self, store: StateStore, record: Any) -> None:
        """A change that is refused rolls back its trigger updates with it."""
        record(
            Upsert(record=_member("a", "g", "p")),
            Upsert(record=_member("b", "g", "p")),
        )
        stamps = store._stamps()
        with pytest.raises(StateError):
            record(
                Remove(kind="membership", sync_key="a"),
                Rename(kind="membership", old_id="b", new_id="b2"),
                Rename(kind="person", old_id="x", new_id="y"),
            )
        assert store._stamps() == stamps
        assert store.count(MEMBERSHIP) == 2


class TestClose:
    """A run that changed memberships leaves memberships.arrow current for the next plan."""

    def test_closing_a_run_that_changed_memberships_refreshes_their_cache(self, state: Path) -> None:
        with StateStore.open(state) as store:
            store.seed(MEMBERSHIP, _members("a"))
            store.load(MEMBERSHIP)
            store.load(PERSON)
        persons_before = (state / CACHE_NAME).stat().st_mtime_ns
        with StateStore.open(state) as store:
            run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
            store.record_sent(sent_request(run_id, "m1", "b"))
            store.record_answer(confirmed("m1"), [Upsert(record=_member("b", "g", "p"))])
            stamp = store._stamp(CACHE)
            assert _file_stamp(state) != stamp
        assert _file_stamp(state) == stamp
        cached = read_cache(state / MEMBERSHIPS_CACHE_NAME, stamp, CACHE)
        assert cached is not None
        assert cached.column("sync_key").to_pylist() == ["a", "b"]
        assert (state / CACHE_NAME).stat().st_mtime_ns == persons_before  # persons unchanged: untouched

    def test_closing_a_run_that_changed_only_persons_leaves_memberships_alone(self, state: Path) -> None:
        """Only the tables that changed are rewritten: a missing memberships cache stays missing."""
        with StateStore.open(state) as store:
            store.seed(MEMBERSHIP, _members("a"))
        (state / MEMBERSHIPS_CACHE_NAME).unlink()
        with StateStore.open(state) as store:
            store.seed(PERSON, pd.DataFrame({"username": ["u"]}, index=pd.Index(["p"])))
        assert not (state / MEMBERSHIPS_CACHE_NAME).exists()
        assert (state / CACHE_NAME).exists()

    def test_closing_a_run_that_changed_both_refreshes_both(self, state: Path) -> None:
        with StateStore.open(state) as store:
            store.seed(PERSON, pd.DataFrame({"username": ["u"]}, index=pd.Index(["p"])))
            store.seed(MEMBERSHIP, _members("a"))
            persons, memberships = store._stamps()
        assert read_cache_stamp(state / CACHE_NAME) == persons
        assert _file_stamp(state) == memberships

    def test_a_reader_does_not_write_on_close(self, state: Path) -> None:
        """A store opened without the run lock (plan) writes the cache only when it loads."""
        with StateStore.open(state) as store:
            store.seed(MEMBERSHIP, _members("a"))
        (state / MEMBERSHIPS_CACHE_NAME).unlink()
        with StateStore.open(state, exclusive=False) as store:
            _write(state, "UPDATE memberships SET role = 'x'")
        assert not (state / MEMBERSHIPS_CACHE_NAME).exists()

    def test_a_readers_load_writes_the_cache_in_a_thread(self, state: Path) -> None:
        """A store without the run lock (plan) answers from SQLite and writes the cache meanwhile: once
        the write is done, the file has the database's stamp and gives the same frame."""
        with StateStore.open(state) as store:
            store.seed(MEMBERSHIP, _members("b", "a", "c"))
            _, stamp = store._stamps()
        (state / MEMBERSHIPS_CACHE_NAME).unlink()
        with StateStore.open(state, exclusive=False) as store:
            from_sqlite = store.load(MEMBERSHIP)
            wait_for_writes()
            assert _file_stamp(state) == stamp
            pd.testing.assert_frame_equal(store.load(MEMBERSHIP), from_sqlite, check_exact=True)
        assert list(from_sqlite.index) == ["a", "b", "c"]

    def test_a_process_exits_only_when_the_cache_is_written(self, state: Path) -> None:
        """The thread that writes a reader's cache is no daemon: the process waits for it."""
        with StateStore.open(state) as store:
            store.seed(MEMBERSHIP, _members(*(f"m{i:05d}" for i in range(20_000))))
            _, stamp = store._stamps()
        (state / MEMBERSHIPS_CACHE_NAME).unlink()
        script = (
            "import sys; from pathlib import Path; from sync.models.kinds import MEMBERSHIP; "
            "from sync.state.store import StateStore; "
            "store = StateStore.open(Path(sys.argv[1]), exclusive=False); store.load(MEMBERSHIP); "
            "store.close()"
        )
        subprocess.run([sys.executable, "-c", script, str(state)], check=True, timeout=60)
        assert _file_stamp(state) == stamp

    def test_refresh_cache_rewrites_each_stale_cache(self, store: StateStore, state: Path) -> None:
        store.seed(PERSON, pd.DataFrame({"username": ["u"]}, index=pd.Index(["p"])))
        store.seed(MEMBERSHIP, _members("a"))
        assert store.refresh_cache()
        assert store._stamps() == (read_cache_stamp(state / CACHE_NAME), _file_stamp(state))
        assert not store.refresh_cache()
        _write(state, "UPDATE memberships SET role = 'x'")
        assert store.refresh_cache()
        assert _file_stamp(state) == store._stamp(CACHE)


def _v3_database(state: Path) -> None:
    """A state database as the schema-3 code wrote it: persons, groups, memberships and a journal."""
    state.mkdir()
    connection = sqlite3.connect(state / DB_NAME, isolation_level=None)
    try:
        for script in MIGRATIONS[:3]:
            connection.executescript(script)
        connection.execute("PRAGMA user_version = 3")
        connection.execute(
            "INSERT INTO runs (run_id, started_at, command) VALUES ('r1', '2025-03-01T06:00:00+00:00', 'run')"
        )
        connection.execute(
            "INSERT INTO requests (message_identifier, run_id, operation, attempt, sent_at, outcome) "
            "VALUES ('m1', 'r1', 'createMembership', 1, '2025-03-01T06:00:00+00:00', 'confirmed')"
        )
        connection.execute(
            "INSERT INTO persons (sync_key, username, content_hash, confirmed_at, message_identifier) "
            "VALUES ('p1', 'ada', 'h', 't', 'm1')"
        )
        connection.execute(
            "INSERT INTO groups (sync_key, name, content_hash, confirmed_at, message_identifier) "
            "VALUES ('g1', 'G1', 'h', 't', 'm1')"
        )
        connection.executemany(
            "INSERT INTO memberships (sync_key, group_key, person_key, role, active, content_hash, "
            "confirmed_at, message_identifier) VALUES (?, 'g1', 'p1', ?, ?, 'h', 't', 'm1')",
            [("mb", "Instructor", "false"), ("ma", "Learner", "true")],
        )
    finally:
        connection.close()


class TestMigration:
    """Schema version 4 adds the memberships' generation to a version-3 state, keeping everything."""

    def test_a_version_3_database_migrates_and_its_memberships_cache_works(self, state: Path) -> None:
        _v3_database(state)
        persons_generation = db_rows(state, "SELECT generation, nonce FROM snapshot_generation")
        # A persons cache the version-3 code wrote is ignored after the upgrade (its stamp is older).
        (state / CACHE_NAME).write_bytes(b"written by version 3")
        with StateStore.open(state) as store:
            # through version 4 (the memberships' generation), 5 (person fields) to 6 (drift repairs)
            assert db_rows(state, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(6,)]
            triggers = {
                name for (name,) in db_rows(state, "SELECT name FROM sqlite_master WHERE type = 'trigger'")
            }
            assert {"memberships_inserted", "memberships_updated", "memberships_deleted"} <= triggers
            assert db_rows(state, "SELECT id, generation FROM membership_generation") == [(0, 0)]
            assert db_rows(state, "SELECT generation, nonce FROM snapshot_generation") == persons_generation
            frame = store.load(MEMBERSHIP)
            assert frame.to_dict("index") == {
                "ma": {"group": "g1", "person": "p1", "role": "Learner", "active": "true"},
                "mb": {"group": "g1", "person": "p1", "role": "Instructor", "active": "false"},
            }
            assert _file_stamp(state) == store._stamp(CACHE)
            assert list(store.load(PERSON).index) == ["p1"]
            assert (store.count(GROUP), [run.run_id for run in store.runs()]) == (1, ["r1"])
            [entry] = store.journal()
            assert (entry.message_identifier, entry.outcome) == ("m1", "confirmed")
            pd.testing.assert_frame_equal(store.load(MEMBERSHIP), frame)  # now from the cache
            assert store._load_table(CACHE)[2]
            stamp = store._stamp(CACHE)
            store.record_sent(sent_request("r1", "m2", "p1", operation="changePersonIdentifier"))
            store.record_answer(confirmed("m2"), [Rename(kind="person", old_id="p1", new_id="p9")])
            assert store._stamp(CACHE) != stamp
            assert set(store.load(MEMBERSHIP)["person"]) == {"p9"}
        with StateStore.open(state) as store:  # a second open migrates nothing
            assert db_rows(state, "SELECT generation FROM membership_generation") == [(2,)]
            assert store._load_table(CACHE)[2]
            assert set(store.load(MEMBERSHIP)["person"]) == {"p9"}


def test_seeding_restores_the_connection_settings(store: StateStore) -> None:
    """Seeding sets a large page cache and in-memory statement journals only for its own transaction."""
    connection = store._connection
    assert connection is not None
    before = [connection.execute(f"PRAGMA {name}").fetchone() for name in ("cache_size", "temp_store")]
    store.seed(MEMBERSHIP, _members("a", "b"))
    store.seed(PERSON, pd.DataFrame({"username": ["u"]}, index=pd.Index(["p"])))
    after = [connection.execute(f"PRAGMA {name}").fetchone() for name in ("cache_size", "temp_store")]
    assert after == before
    assert store.count(MEMBERSHIP) == 2
