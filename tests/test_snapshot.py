"""The state store: schema, run lock, journal, confirmed snapshot changes and bulk loads, on real SQLite."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from sync.errors import StateError, StateLockedError
from sync.models import PERSON_FIELDS, PERSON_LATER_FIELDS, Outcome, Person, Status, person_hash
from sync.models.kinds import PERSON
from sync.state import loading
from sync.state.cache import CACHE_NAME, CACHES, read_cache, read_cache_stamp, write_cache
from sync.state.changes import Remove, Rename, SnapshotChange, Upsert
from sync.state.journal import Answer, ItemAnswer, RequestItem, SentRequest
from sync.state.lock import LOCK_INFO_NAME
from sync.state.schema import DB_NAME, SCHEMA_VERSION
from sync.state.store import StateStore
from sync.state.tables import table_of
from tests.journal import T0, confirmed, db_rows, sent_request, success

REPO = Path(__file__).resolve().parent.parent


def _person(key: str, **fields: str) -> Person:
    values = {"username": f"u-{key}", "given_name": "Ada", "family_name": "Lovelace", "role": "Student"}
    values.update(fields)
    return Person(sync_key=key, **values)


@pytest.fixture(name="state")
def fixture_state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(name="store")
def fixture_store(state: Path):
    with StateStore.open(state) as store:
        yield store


@pytest.fixture(name="run_id")
def fixture_run_id(store: StateStore) -> str:
    return store.begin_run(command="run", roster="roster.csv", mapping="default")


class TestSchema:
    """Creating, versioning and rejecting state databases."""

    def test_open_creates_private_directory_and_current_schema(self, state: Path) -> None:
        """A new state directory is created owner-only, with a WAL database at the current version."""
        StateStore.open(state).close()
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / DB_NAME).stat().st_mode) == 0o600
        assert db_rows(state, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert db_rows(state, "PRAGMA journal_mode") == [("wal",)]
        tables = {name for (name,) in db_rows(state, "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {
            "runs",
            "requests",
            "request_items",
            "persons",
            "snapshot_generation",
            "groups",
            "memberships",
            "membership_generation",
            "drift_repairs",
        }

    def test_persons_table_has_the_snapshot_columns(self, state: Path) -> None:
        """The snapshot table holds the sync key, identity, every person field and the confirmation (the
        fields added by a later migration come last: SQLite appends added columns)."""
        StateStore.open(state).close()
        columns = [row[1] for row in db_rows(state, "PRAGMA table_info(persons)")]
        first = len(PERSON_FIELDS) - PERSON_LATER_FIELDS
        assert columns == [
            "sync_key",
            "identity",
            *PERSON_FIELDS[:first],
            "content_hash",
            "confirmed_at",
            "message_identifier",
            *PERSON_FIELDS[first:],
        ]
        indexed = {row[0] for row in db_rows(state, "SELECT sql FROM sqlite_master WHERE type = 'index'")}
        assert any("persons (identity)" in (sql or "") for sql in indexed)
        assert any("request_items (sync_key)" in (sql or "") for sql in indexed)

    def test_no_password_column_anywhere(self, state: Path) -> None:
        """No table of the state has a column that could hold a password."""
        StateStore.open(state).close()
        tables = [name for (name,) in db_rows(state, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = [
            row[1].lower() for table in tables for row in db_rows(state, f"PRAGMA table_info({table})")
        ]
        assert len(columns) > 30
        assert not [c for c in columns if "pass" in c or "pwd" in c or "secret" in c]

    def test_newer_schema_is_refused_untouched(self, state: Path) -> None:
        """A database written by a newer version raises StateError and is left as it was."""
        state.mkdir()
        connection = sqlite3.connect(state / DB_NAME)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        connection.close()
        with pytest.raises(StateError, match="newer ims-es-sync") as info:
            StateStore.open(state)
        assert str(state / DB_NAME) in str(info.value)
        assert db_rows(state, "SELECT name FROM sqlite_master") == []
        # The refused open released the lock: another (current) tool could still take it.
        assert not (state / LOCK_INFO_NAME).exists()

    def test_reopen_keeps_data(self, state: Path) -> None:
        """Opening an existing state again migrates nothing and keeps what was written."""
        with StateStore.open(state) as store:
            store.begin_run(command="run", roster="r.csv", mapping="m")
        with StateStore.open(state) as store:
            assert [run.roster for run in store.runs()] == ["r.csv"]

    def test_corrupt_file_raises_state_error(self, state: Path) -> None:
        """A state file that is not an SQLite database raises StateError naming the file."""
        state.mkdir()
        (state / DB_NAME).write_bytes(b"this is not a database, just bytes " * 200)
        with pytest.raises(StateError, match="not an SQLite database") as info:
            StateStore.open(state)
        assert str(state / DB_NAME) in str(info.value)
        assert not isinstance(info.value, StateLockedError)

    def test_disk_full_raises_state_error_and_rolls_back(self, store: StateStore) -> None:
        """A write that hits a full disk raises StateError saying so, and leaves the state as it was."""
        store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k0"])))
        # SQLite reports SQLITE_FULL once a database reaches max_page_count: a disk full, on demand.
        connection = store._connection
        assert connection is not None
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages}")
        keys = [f"k{i}" for i in range(1, 5000)]
        with pytest.raises(StateError, match="disk is full") as info:
            store.seed(PERSON, pd.DataFrame({"email": ["x" * 200] * len(keys)}, index=pd.Index(keys)))
        assert str(store.path) in str(info.value)
        assert store.count(PERSON) == 1

    def test_state_path_that_is_a_file_raises_state_error(self, tmp_path: Path) -> None:
        """A state "directory" that is a regular file raises StateError, not OSError."""
        path = tmp_path / "state"
        path.write_text("oops", encoding="utf-8")
        with pytest.raises(StateError, match="state directory"):
            StateStore.open(path)

    def test_closed_store_raises_state_error(self, state: Path) -> None:
        """Using a store after close raises StateError; closing twice is harmless."""
        store = StateStore.open(state)
        store.close()
        store.close()
        with pytest.raises(StateError, match="closed"):
            store.count(PERSON)

    def test_repr_names_the_path_only(self, store: StateStore, state: Path) -> None:
        """The repr shows where the state is and whether it holds the lock."""
        assert repr(store) == f"StateStore({str(state / DB_NAME)!r}, exclusive=True)"


class TestLock:
    """One run at a time per state directory."""

    def test_second_exclusive_open_is_refused(self, store: StateStore, state: Path) -> None:
        """A second exclusive open raises StateLockedError naming the directory and the holder's pid."""
        with pytest.raises(StateLockedError) as info:
            StateStore.open(state)
        message = str(info.value)
        assert str(state) in message
        assert f"pid {os.getpid()}" in message
        assert "if no run is active" in message

    def test_non_exclusive_open_reads_while_locked(self, store: StateStore, state: Path) -> None:
        """plan/reconcile/export open without the lock and see what the run committed."""
        store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k1"], name="sync_key")))
        with StateStore.open(state, exclusive=False) as reader:
            assert reader.count(PERSON) == 1

    def test_lock_is_released_on_close(self, state: Path) -> None:
        """After close the lock can be taken again and the holder's side file is gone."""
        with StateStore.open(state):
            assert (state / LOCK_INFO_NAME).exists()
        assert not (state / LOCK_INFO_NAME).exists()
        StateStore.open(state).close()

    def test_lock_across_processes_and_kill(self, state: Path) -> None:
        """Another process's run holds the lock; once it is killed, its unanswered request is still there."""
        child = textwrap.dedent(
            f"""
            import sys
            from datetime import UTC, datetime
            from pathlib import Path
            from sync.state.journal import RequestItem, SentRequest
            from sync.state.store import StateStore
            store = StateStore.open(Path({str(state)!r}))
            run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
            store.record_sent(SentRequest(run_id=run_id, message_identifier="m-killed",
                operation="createPerson", attempt=1, sent_at=datetime.now(UTC),
                items=(RequestItem(index=0, sync_key="k1"),)))
            print("ready", flush=True)
            sys.stdin.read()
            """
        )
        process = subprocess.Popen(
            [sys.executable, "-c", child],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            with pytest.raises(StateLockedError) as info:
                StateStore.open(state)
            assert f"pid {process.pid}," in str(info.value)
            assert str(state) in str(info.value)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process.stdin is not None:
                process.stdin.close()
            if process.stdout is not None:
                process.stdout.close()
        with StateStore.open(state) as store:
            [entry] = store.journal()
        assert (entry.message_identifier, entry.outcome, entry.answered_at) == ("m-killed", "sent", None)
        assert [item.sync_key for item in entry.items] == ["k1"]


class TestRuns:
    """Runs: ids, start and end."""

    def test_run_ids_sort_in_start_order(self, store: StateStore) -> None:
        """Run ids are unique and sort like their start times; last_run_id is the newest."""
        ids = [store.begin_run(command="run", roster="r.csv", mapping="m") for _ in range(5)]
        assert len(set(ids)) == 5
        assert sorted(ids) == ids
        assert store.last_run_id() == ids[-1]
        assert [run.run_id for run in store.runs()] == ids

    def test_end_run_records_status_and_summary(self, store: StateStore, run_id: str) -> None:
        """end_run stores status, end time and summary; a run not ended stays "running"."""
        other = store.begin_run(command="run", roster="r2.csv", mapping="m")
        store.end_run(run_id, status="partial", summary={"confirmed": 3, "rejected": 1})
        first, second = store.runs()
        assert (first.status, first.summary, first.command, first.mapping) == (
            "partial",
            {"confirmed": 3, "rejected": 1},
            "run",
            "default",
        )
        assert first.ended_at is not None
        assert first.ended_at >= first.started_at
        assert (second.run_id, second.status, second.ended_at) == (other, "running", None)

    def test_end_of_unknown_run_raises(self, store: StateStore) -> None:
        """Ending a run that was never begun raises StateError."""
        with pytest.raises(StateError, match="no run"):
            store.end_run("nope", status="ok", summary={})

    def test_empty_journal_has_no_last_run(self, store: StateStore) -> None:
        """A fresh state has no runs."""
        assert store.last_run_id() is None
        assert store.runs() == []


class TestJournal:
    """Requests as sent and as answered."""

    def test_sent_request_is_unanswered(self, store: StateStore, run_id: str) -> None:
        """A recorded request reads back as sent, unanswered, with its items."""
        request = SentRequest(
            run_id=run_id,
            message_identifier="m1",
            operation="changePersonIdentifier",
            attempt=2,
            sent_at=T0,
            items=(RequestItem(index=0, sync_key="old", new_sync_key="new"),),
        )
        store.record_sent(request)
        [entry] = store.journal(run_id)
        assert (entry.run_id, entry.operation, entry.attempt, entry.sent_at) == (
            run_id,
            "changePersonIdentifier",
            2,
            T0,
        )
        assert (entry.outcome, entry.answered_at, entry.code_major, entry.message_id_ref) == (
            "sent",
            None,
            None,
            None,
        )
        [item] = entry.items
        assert (item.index, item.sync_key, item.new_sync_key, item.outcome) == (0, "old", "new", "sent")

    def test_unanswered_requests_survive_reopening(self, state: Path) -> None:
        """A request sent but never answered is still in the journal after the store is reopened."""
        with StateStore.open(state) as store:
            run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
            store.record_sent(sent_request(run_id, "m1", "k1"))
            store.record_sent(sent_request(run_id, "m2", "k2"))
            store.record_answer(confirmed("m2"), [Upsert(record=_person("k2"))])
        with StateStore.open(state, exclusive=False) as store:
            entries = {entry.message_identifier: entry for entry in store.journal(run_id)}
            assert entries["m1"].outcome == "sent"
            assert entries["m1"].answered_at is None
            assert entries["m2"].outcome == "confirmed"
            assert store.count(PERSON) == 1

    def test_answer_fills_request_and_items(self, store: StateStore, run_id: str) -> None:
        """A mass answer records the header status and each item's own status and outcome."""
        store.record_sent(sent_request(run_id, "m1", "a", "b", "c", operation="createPersons"))
        header = Status(
            code_major="success",
            severity="warning",
            code_minor=(("partial", "1"), ("naïve", "ü")),
            message_id_ref="m1",
            description="one item failed",
        )
        bad = Status(code_major="failure", severity="error", description="invalid role")
        answer = Answer(
            message_identifier="m1",
            answered_at=T0 + timedelta(seconds=1),
            status=header,
            outcome=Outcome.CONFIRMED,
            items=(ItemAnswer(index=1, status=bad, outcome=Outcome.REJECTED),),
        )
        store.record_answer(answer)
        [entry] = store.journal()
        assert entry.answered_at == T0 + timedelta(seconds=1)
        assert (entry.code_major, entry.severity, entry.message_id_ref, entry.description) == (
            "success",
            "warning",
            "m1",
            "one item failed",
        )
        assert entry.code_minor == (("partial", "1"), ("naïve", "ü"))
        a, b, c = entry.items
        # Items without their own answer share the request's; item 1 has its own.
        assert (a.outcome, a.code_major, a.message_id_ref) == ("confirmed", "success", "m1")
        assert (b.outcome, b.code_major, b.severity, b.description, b.message_id_ref) == (
            "rejected",
            "failure",
            "error",
            "invalid role",
            None,
        )
        assert (c.outcome, c.code_minor) == ("confirmed", (("partial", "1"), ("naïve", "ü")))

    def test_transport_error_answer(self, store: StateStore, run_id: str) -> None:
        """An answer without a status keeps our error text and leaves the status columns empty."""
        store.record_sent(sent_request(run_id, "m1", "k1"))
        store.record_answer(
            Answer(
                message_identifier="m1",
                answered_at=T0,
                status=None,
                outcome=Outcome.UNCONFIRMED,
                error="read timeout after 300 s",
            )
        )
        [entry] = store.journal()
        assert (entry.outcome, entry.error, entry.code_major, entry.code_minor) == (
            "unconfirmed",
            "read timeout after 300 s",
            None,
            (),
        )
        assert entry.answered_at == T0
        assert entry.items[0].outcome == "unconfirmed"

    def test_journal_is_in_sent_order_and_filters_runs(self, store: StateStore, run_id: str) -> None:
        """journal(run) lists one run's requests by sent time; journal() lists every run."""
        other = store.begin_run(command="run", roster="r.csv", mapping="m")
        store.record_sent(sent_request(run_id, "late", "k1", at=T0 + timedelta(seconds=5)))
        store.record_sent(sent_request(other, "other", "k2", at=T0 + timedelta(seconds=1)))
        store.record_sent(sent_request(run_id, "early", "k3", at=T0))
        assert [e.message_identifier for e in store.journal(run_id)] == ["early", "late"]
        assert [e.message_identifier for e in store.journal(other)] == ["other"]
        assert [e.message_identifier for e in store.journal()] == ["early", "other", "late"]
        assert store.journal("no-such-run") == []

    def test_duplicate_message_identifier_is_refused(self, store: StateStore, run_id: str) -> None:
        """A messageIdentifier can be journalled once only."""
        store.record_sent(sent_request(run_id, "m1", "k1"))
        with pytest.raises(StateError, match="m1"):
            store.record_sent(sent_request(run_id, "m1", "k2"))
        [entry] = store.journal()
        assert [item.sync_key for item in entry.items] == ["k1"]

    def test_request_of_unknown_run_is_refused(self, store: StateStore) -> None:
        """A request must belong to a run begun in this state (foreign key)."""
        with pytest.raises(StateError, match="FOREIGN KEY"):
            store.record_sent(sent_request("no-such-run", "m1", "k1"))
        assert store.journal() == []

    def test_answer_to_unknown_request_is_refused(self, store: StateStore, run_id: str) -> None:
        """An answer needs its request journalled first; an unknown item index is refused too."""
        with pytest.raises(StateError, match="no request m9"):
            store.record_answer(confirmed("m9"))
        store.record_sent(sent_request(run_id, "m1", "k1"))
        answer = Answer(
            message_identifier="m1",
            answered_at=T0,
            status=success("m1"),
            outcome=Outcome.CONFIRMED,
            items=(ItemAnswer(index=7, status=success("m1"), outcome=Outcome.CONFIRMED),),
        )
        with pytest.raises(StateError, match="no item 7"):
            store.record_answer(answer)
        assert store.journal()[0].outcome == "sent"

    def test_naive_datetime_is_refused(self, store: StateStore, run_id: str) -> None:
        """Times must be aware, so that the journal's UTC text is never a guess."""
        with pytest.raises(ValueError, match="aware"):
            store.record_sent(sent_request(run_id, "m1", "k1", at=datetime(2025, 1, 1)))

    def test_times_are_stored_as_utc_text(self, store: StateStore, run_id: str, state: Path) -> None:
        """A time in another zone is stored as ISO 8601 UTC and reads back as the same instant."""
        tz = datetime(2025, 3, 1, 8, 0).astimezone().tzinfo
        local = datetime(2025, 3, 1, 8, 0, tzinfo=UTC).astimezone(tz)
        store.record_sent(sent_request(run_id, "m1", "k1", at=local))
        assert db_rows(state, "SELECT sent_at FROM requests") == [("2025-03-01T08:00:00.000000+00:00",)]
        assert store.journal()[0].sent_at == local

    def test_concurrent_writers(self, store: StateStore, run_id: str) -> None:
        """Worker threads journalling and confirming at once lose nothing."""
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for n in range(25):
                    mid, key = f"m{worker}-{n}", f"k{worker}-{n}"
                    store.record_sent(sent_request(run_id, mid, key))
                    store.record_answer(confirmed(mid), [Upsert(record=_person(key))])
            except Exception as exc:  # noqa: BLE001 - collected, then asserted on in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        entries = store.journal(run_id)
        assert len(entries) == 200
        assert {e.outcome for e in entries} == {"confirmed"}
        assert store.count(PERSON) == 200


class TestConfirm:
    """Snapshot changes happen only with the journal answer that confirms them."""

    def test_upsert_stores_person_with_confirmation(
        self, store: StateStore, run_id: str, state: Path
    ) -> None:
        """An Upsert stores identity, fields, content hash, confirmation time and messageIdentifier."""
        person = _person("k1", email="ada@example.org", birth_date="2010-12-10")
        store.record_sent(sent_request(run_id, "m1", "k1"))
        store.record_answer(confirmed("m1"), [Upsert(record=person, identity="ada")])
        frame = store.load(PERSON)
        assert frame.loc["k1"].to_dict() == {"identity": "ada", **person.values()}
        [(content_hash, confirmed_at, mid)] = db_rows(
            state, "SELECT content_hash, confirmed_at, message_identifier FROM persons"
        )
        assert content_hash == person_hash(person, "ada")
        assert (confirmed_at, mid) == (T0.isoformat(timespec="microseconds"), "m1")

    def test_upsert_replaces_existing_person(self, store: StateStore, run_id: str) -> None:
        """A second Upsert of a sync key replaces the fields, not adds a row."""
        for n, name in enumerate(["Ada", "Augusta"]):
            store.record_sent(sent_request(run_id, f"m{n}", "k1"))
            store.record_answer(confirmed(f"m{n}"), [Upsert(record=_person("k1", given_name=name))])
        frame = store.load(PERSON)
        assert list(frame.index) == ["k1"]
        assert frame.loc["k1", "given_name"] == "Augusta"

    def test_rename_moves_the_row(self, store: StateStore, run_id: str, state: Path) -> None:
        """A Rename changes the sync key and keeps the fields; the hash stays valid."""
        store.record_sent(sent_request(run_id, "m1", "old"))
        store.record_answer(confirmed("m1"), [Upsert(record=_person("old"), identity="ada")])
        store.record_sent(sent_request(run_id, "m2", "old", operation="changePersonIdentifier"))
        store.record_answer(
            confirmed("m2", T0 + timedelta(minutes=1)), [Rename(kind="person", old_id="old", new_id="new")]
        )
        frame = store.load(PERSON)
        assert list(frame.index) == ["new"]
        assert frame.loc["new", "identity"] == "ada"
        [(content_hash, mid)] = db_rows(state, "SELECT content_hash, message_identifier FROM persons")
        assert content_hash == person_hash(_person("new", username="u-old"), "ada")
        assert mid == "m2"

    def test_remove_deletes_the_row(self, store: StateStore, run_id: str) -> None:
        """A Remove deletes the person; removing an absent key changes nothing else."""
        store.seed(PERSON, pd.DataFrame({"username": ["a", "b"]}, index=pd.Index(["k1", "k2"])))
        store.record_sent(sent_request(run_id, "m1", "k1", operation="deletePerson"))
        store.record_answer(
            confirmed("m1"), [Remove(kind="person", sync_key="k1"), Remove(kind="person", sync_key="ghost")]
        )
        assert list(store.load(PERSON).index) == ["k2"]
        assert store.journal()[0].outcome == "confirmed"

    def test_rename_onto_existing_key_rolls_everything_back(self, store: StateStore, run_id: str) -> None:
        """A failing change leaves the journal answer and the snapshot exactly as before."""
        store.seed(
            PERSON, pd.DataFrame({"username": ["a", "b"]}, index=pd.Index(["old", "taken"], name="sync_key"))
        )
        before = store.load(PERSON)
        store.record_sent(sent_request(run_id, "m1", "x", operation="createPerson"))
        store.record_sent(sent_request(run_id, "m2", "old", operation="changePersonIdentifier"))
        changes: list[SnapshotChange] = [
            Upsert(record=_person("x")),
            Rename(kind="person", old_id="old", new_id="taken"),
        ]
        with pytest.raises(StateError, match="exists already"):
            store.record_answer(confirmed("m2"), changes)
        pd.testing.assert_frame_equal(store.load(PERSON), before)
        assert {e.message_identifier: e.outcome for e in store.journal()} == {"m1": "sent", "m2": "sent"}

    def test_rename_of_missing_key_raises(self, store: StateStore, run_id: str) -> None:
        """Renaming a sync key the snapshot lacks raises StateError and writes nothing."""
        store.record_sent(sent_request(run_id, "m1", "old"))
        with pytest.raises(StateError, match="not in the snapshot"):
            store.record_answer(confirmed("m1"), [Rename(kind="person", old_id="old", new_id="new")])
        assert store.journal()[0].answered_at is None
        assert store.count(PERSON) == 0

    def test_changes_need_a_confirmed_answer(self, store: StateStore, run_id: str) -> None:
        """Changes with a rejected answer, or an answer to another request, are refused."""
        store.record_sent(sent_request(run_id, "m1", "k1"))
        rejected = Answer(
            message_identifier="m1",
            answered_at=T0,
            status=Status(code_major="failure", severity="error", message_id_ref="m1"),
            outcome=Outcome.REJECTED,
        )
        with pytest.raises(StateError, match="only a confirmed answer"):
            store.record_answer(rejected, [Upsert(record=_person("k1"))])
        foreign = Answer(
            message_identifier="m1", answered_at=T0, status=success("m0"), outcome=Outcome.CONFIRMED
        )
        with pytest.raises(StateError, match="refers to another"):
            store.record_answer(foreign, [Upsert(record=_person("k1"))])
        assert store.count(PERSON) == 0
        assert store.journal()[0].outcome == "sent"

    def test_record_answers_is_all_or_nothing(self, store: StateStore, run_id: str) -> None:
        """A batch of answers commits together, or not at all when one of them fails."""
        for mid in ("m1", "m2", "m3"):
            store.record_sent(sent_request(run_id, mid, mid))
        good = [(confirmed(m), [Upsert(record=_person(f"k-{m}"))]) for m in ("m1", "m2")]
        bad = (confirmed("m3"), [Rename(kind="person", old_id="ghost", new_id="k3")])
        with pytest.raises(StateError):
            store.record_answers([*good, bad])
        assert store.count(PERSON) == 0
        assert {e.outcome for e in store.journal()} == {"sent"}
        store.record_answers(good)
        assert sorted(store.load(PERSON).index) == ["k-m1", "k-m2"]
        assert [e.outcome for e in store.journal()] == ["confirmed", "confirmed", "sent"]


class TestLoad:
    """Loading and seeding the snapshot as a DataFrame."""

    def test_empty_snapshot_frame(self, store: StateStore) -> None:
        """An empty snapshot loads as an empty frame with the right index and columns."""
        frame = store.load(PERSON)
        assert frame.empty
        assert frame.index.name == "sync_key"
        assert list(frame.columns) == ["identity", *PERSON_FIELDS]

    def test_seed_and_load_round_trip_200k(self, store: StateStore, state: Path) -> None:
        """200,000 seeded rows load back identical, as strings, with hashes that match person_hash."""
        n = 200_000
        numbers = pd.Series(range(n), dtype="int64").astype("str")
        frame = pd.DataFrame(
            {
                "identity": ("user" + numbers + "@school.example").to_numpy(),
                "username": ("user" + numbers).to_numpy(),
                "given_name": ["Åsa", "Åsa", "Jean-Luc"] * (n // 3) + ["Åsa"] * (n % 3),
                "family_name": ["Øvergård", "O'Neil"] * (n // 2),
                "email": ("u" + numbers + "@school.example").to_numpy(),
                "role": ["Student"] * 9 * (n // 10) + ["Staff"] * (n // 10),
                "birth_date": "2011-04-0" + (numbers.str[-1:].replace("0", "9")).to_numpy(),
                "phone": ["", "+47 22 33 44 55"] * (n // 2),
                "mobile": [""] * n,
                "nickname": ["", "Lulu"] * (n // 2),
                "prefix": [""] * n,
                "street": ["Storgata 1", ""] * (n // 2),
                "street_extra": [""] * n,
                "postal_code": ["0155", ""] * (n // 2),
                "city": ["Oslo", ""] * (n // 2),
                "gender": ["Female", "", "Male", ""] * (n // 4),
                "children": [""] * 9 * (n // 10) + ["S0000001,S0000002"] * (n // 10),
            },
            index=pd.Index(("S" + numbers.str.zfill(7)).to_numpy(), name="sync_key"),
        )
        store.seed(PERSON, frame)
        started = time.perf_counter()
        loaded = store.load(PERSON)
        elapsed = time.perf_counter() - started
        assert store.count(PERSON) == n
        assert loaded.index.name == "sync_key"
        assert list(loaded.columns) == ["identity", *PERSON_FIELDS]
        assert loaded.shape == (n, 1 + len(PERSON_FIELDS))
        assert loaded.loc["S0199999", "given_name"] == "Åsa"
        assert loaded.loc["S0199998", "family_name"] == "Øvergård"
        assert loaded.equals(frame.astype("str").set_axis(frame.index.astype("str"), axis=0))
        sample = db_rows(state, "SELECT sync_key, content_hash FROM persons WHERE rowid IN (1, 777, 200000)")
        for key, content_hash in sample:
            row = {str(name): str(value) for name, value in frame.loc[str(key)].items()}
            person = Person.from_values(str(key), row)
            assert content_hash == person_hash(person, row["identity"])
        assert elapsed < 30, f"load of {n} rows took {elapsed:.2f} s"

    def test_load_is_sorted_by_sync_key(self, store: StateStore, run_id: str) -> None:
        """Persons confirmed out of key order load sorted by sync key, on both load paths."""
        for n, key in enumerate(["k3", "k1", "k4", "k2"]):
            store.record_sent(sent_request(run_id, f"m{n}", key))
            store.record_answer(confirmed(f"m{n}"), [Upsert(record=_person(key))])
        assert list(store.load(PERSON).index) == ["k1", "k2", "k3", "k4"]
        store.seed(PERSON, pd.DataFrame({"identity": ["odd\x1fone"]}, index=pd.Index(["k0"])))
        frame = store.load(PERSON)
        assert list(frame.index) == ["k0", "k1", "k2", "k3", "k4"]
        assert frame.loc["k0", "identity"] == "odd\x1fone"

    def test_load_across_chunks_with_gaps(self, store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
        """Loading in several rowid chunks, some of them emptied by removals, loses and repeats no row."""
        monkeypatch.setattr(loading, "LOAD_CHUNK", 3)
        keys = [f"k{i:02d}" for i in range(14)]
        store.seed(PERSON, pd.DataFrame({"username": [f"u{k}" for k in keys]}, index=pd.Index(keys)))
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        gone = ["k03", "k04", "k05", "k07", "k13"]  # rowids 4-6 make a whole chunk empty
        store.record_sent(sent_request(run_id, "m1", *gone, operation="deletePersons"))
        store.record_answer(confirmed("m1"), [Remove(kind="person", sync_key=key) for key in gone])
        frame = store.load(PERSON)
        expected = [key for key in keys if key not in gone]
        assert list(frame.index) == expected
        assert list(frame["username"]) == [f"u{key}" for key in expected]

    def test_columns_too_long_for_sqlite_are_read_in_smaller_chunks(
        self, store: StateStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A chunk whose packed column exceeds SQLite's string limit is read again in halves: every
        row once, in key order (here the limit is lowered to 1,000 bytes: 20 rows of 100)."""
        monkeypatch.setattr(loading, "LOAD_CHUNK", 16)
        keys = [f"k{i:02d}" for i in range(37)]
        usernames = [f"{key}-" + "x" * 96 for key in keys]
        store.seed(PERSON, pd.DataFrame({"username": usernames}, index=pd.Index(keys)))
        connection = sqlite3.connect(store.path)
        try:
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
            with pytest.raises(sqlite3.DataError):  # the whole table cannot be packed at once
                connection.execute("SELECT group_concat(username, '/') FROM persons").fetchone()
            table = loading.read_table(connection, table_of(PERSON))
        finally:
            connection.close()
        assert table.column("sync_key").to_pylist() == keys
        assert table.column("username").to_pylist() == usernames

    def test_values_with_the_separator_still_round_trip(self, store: StateStore) -> None:
        """A value holding the packing separator makes the load take its plain path, with the same result."""
        distinct = {name: [f"{name}-1", f"{name}-2"] for name in PERSON_FIELDS}
        frame = pd.DataFrame(
            {"identity": ["a\x1fb", "c"], **distinct, "given_name": ["x", "y\x1f"]},
            index=pd.Index(["k1", "k2"]),
        )
        store.seed(PERSON, frame)
        loaded = store.load(PERSON)
        assert loaded.loc["k1"].to_dict() == {
            "identity": "a\x1fb",
            **{n: f"{n}-1" for n in PERSON_FIELDS},
        } | {"given_name": "x"}
        assert loaded.loc["k2", "given_name"] == "y\x1f"
        assert loaded.loc["k2", "mobile"] == "mobile-2"
        assert str(loaded.dtypes["email"]) == "str"
        assert loaded.index.dtype == "str"

    def test_seed_accepts_a_sync_key_column_and_fills_gaps(self, store: StateStore) -> None:
        """Seeding takes a sync_key column, fills missing fields and NaN with "", and upserts."""
        frame = pd.DataFrame({"sync_key": ["k1", "k2"], "email": ["a@x", None]})
        store.seed(PERSON, frame)
        store.seed(PERSON, pd.DataFrame({"sync_key": ["k2"], "email": ["b@x"]}))
        loaded = store.load(PERSON)
        assert loaded.loc["k1"].to_dict() == {"identity": "", **dict.fromkeys(PERSON_FIELDS, "")} | {
            "email": "a@x"
        }
        assert loaded.loc["k2", "email"] == "b@x"
        assert store.count(PERSON) == 2

    def test_seed_refuses_bad_keys(self, store: StateStore) -> None:
        """Duplicate or empty sync keys are refused before anything is written."""
        with pytest.raises(ValueError, match="twice"):
            store.seed(PERSON, pd.DataFrame({"username": ["a", "b"]}, index=pd.Index(["k", "k"])))
        with pytest.raises(ValueError, match="sync key"):
            store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index([""])))
        assert store.count(PERSON) == 0

    def test_password_never_reaches_the_files(self, state: Path) -> None:
        """A password column in a seeded frame is ignored: no state file contains the password."""
        secret = "Pa55-very-secret-word"
        with StateStore.open(state) as store:
            store.seed(
                PERSON, pd.DataFrame({"username": ["ada"], "password": [secret]}, index=pd.Index(["k1"]))
            )
            run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
            store.record_sent(sent_request(run_id, "m1", "k2"))
            store.record_answer(confirmed("m1"), [Upsert(record=_person("k2"))])
            assert "password" not in store.load(PERSON).columns
        blobs = b"".join(path.read_bytes() for path in state.iterdir() if path.is_file())
        assert b"ada" in blobs
        assert secret.encode() not in blobs


def _write(state: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Change the database behind the store's back, as an operator's sqlite3 shell would."""
    connection = sqlite3.connect(state / DB_NAME)
    try:
        with connection:
            connection.execute(sql, params)
    finally:
        connection.close()


class TestPersonsCache:
    """The Arrow copy of the persons table: used only while its generation stamp matches SQLite's."""

    def test_load_writes_an_owner_only_cache_that_matches(self, store: StateStore, state: Path) -> None:
        """The first load writes persons.arrow (mode 0600); loading again gives the same frame."""
        store.seed(PERSON, pd.DataFrame({"username": ["b", "a"]}, index=pd.Index(["k2", "k1"])))
        first = store.load(PERSON)
        assert stat.S_IMODE((state / CACHE_NAME).stat().st_mode) == 0o600
        assert read_cache_stamp(state / CACHE_NAME) == store._stamp()
        second = store.load(PERSON)
        pd.testing.assert_frame_equal(second, first)
        assert list(second.index) == ["k1", "k2"]
        assert [path.name for path in state.iterdir() if path.name.endswith(".tmp")] == []

    def test_the_stamp_decides_whether_the_cache_is_used(self, store: StateStore, state: Path) -> None:
        """A cache written for the current stamp is what load returns; with another stamp it is ignored."""
        store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k1"])))
        stamp = store._stamp()
        planted = store.load(PERSON).rename(index={"k1": "from-cache"})
        table = pa.Table.from_pandas(planted.reset_index(), preserve_index=False)
        write_cache(state / CACHE_NAME, table, stamp, CACHES["person"])
        assert list(store.load(PERSON).index) == ["from-cache"]
        write_cache(state / CACHE_NAME, table, stamp + "-other", CACHES["person"])
        assert list(store.load(PERSON).index) == ["k1"]
        assert read_cache_stamp(state / CACHE_NAME) == stamp  # rebuilt for the current stamp

    def test_every_change_to_persons_moves_the_stamp(
        self, store: StateStore, run_id: str, state: Path
    ) -> None:
        """Seeds, upserts, renames, removes and raw SQL writes all move the stamp; journal writes do not."""
        stamps = [store._stamp()]
        store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k1"])))
        stamps.append(store._stamp())
        store.record_sent(sent_request(run_id, "m1", "k2"))
        assert store._stamp() == stamps[-1]
        store.record_answer(confirmed("m1"), [Upsert(record=_person("k2"))])
        stamps.append(store._stamp())
        store.record_sent(sent_request(run_id, "m2", "k2", operation="changePersonIdentifier"))
        store.record_answer(confirmed("m2"), [Rename(kind="person", old_id="k2", new_id="k3")])
        stamps.append(store._stamp())
        store.record_sent(sent_request(run_id, "m3", "k1", operation="deletePerson"))
        store.record_answer(confirmed("m3"), [Remove(kind="person", sync_key="k1")])
        stamps.append(store._stamp())
        _write(state, "UPDATE persons SET email = 'x@y' WHERE sync_key = 'k3'")
        stamps.append(store._stamp())
        assert len(set(stamps)) == len(stamps)

    def test_a_change_by_another_process_is_seen(self, store: StateStore, state: Path) -> None:
        """After another writer changes a person, load returns the new value, not the cached one."""
        store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k1"])))
        assert store.load(PERSON).loc["k1", "username"] == "a"
        _write(state, "UPDATE persons SET username = 'changed' WHERE sync_key = 'k1'")
        assert store.load(PERSON).loc["k1", "username"] == "changed"

    def test_a_damaged_cache_is_ignored_and_rebuilt(self, store: StateStore, state: Path) -> None:
        """A truncated or garbage cache file never reaches the plan: load reads SQLite and rewrites it."""
        store.seed(PERSON, pd.DataFrame({"username": ["a", "b"]}, index=pd.Index(["k1", "k2"])))
        expected = store.load(PERSON)
        cache = state / CACHE_NAME
        for damage in (cache.read_bytes()[: cache.stat().st_size // 2], b"not arrow at all"):
            cache.write_bytes(damage)
            pd.testing.assert_frame_equal(store.load(PERSON), expected)
            assert read_cache_stamp(cache) == store._stamp()

    def test_a_cache_that_cannot_be_written_costs_only_speed(self, store: StateStore, state: Path) -> None:
        """When the cache path cannot be replaced (here: a directory), load still answers from SQLite."""
        store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k1"])))
        (state / CACHE_NAME).mkdir()
        assert list(store.load(PERSON).index) == ["k1"]
        assert (state / CACHE_NAME).is_dir()
        assert [path.name for path in state.iterdir() if path.name.endswith(".tmp")] == []

    def test_closing_a_run_that_changed_persons_refreshes_the_cache(self, state: Path) -> None:
        """A store with the run lock rewrites the cache on close when its snapshot changed meanwhile."""
        with StateStore.open(state) as store:
            store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k1"])))
            store.load(PERSON)
            run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
            store.record_sent(sent_request(run_id, "m1", "k2"))
            store.record_answer(confirmed("m1"), [Upsert(record=_person("k2"))])
            stamp = store._stamp()
            assert read_cache_stamp(state / CACHE_NAME) != stamp
        assert read_cache_stamp(state / CACHE_NAME) == stamp
        cached = read_cache(state / CACHE_NAME, stamp, CACHES["person"])
        assert cached is not None
        assert cached.column("sync_key").to_pylist() == ["k1", "k2"]

    def test_a_reader_does_not_write_on_close(self, state: Path) -> None:
        """A store opened without the run lock (plan) writes the cache only when it loads."""
        with StateStore.open(state) as store:
            store.seed(PERSON, pd.DataFrame({"username": ["a"]}, index=pd.Index(["k1"])))
        (state / CACHE_NAME).unlink()
        with StateStore.open(state, exclusive=False):
            pass
        assert not (state / CACHE_NAME).exists()
