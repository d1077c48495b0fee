"""Group commits of the journal (sync.state.commits) and the in-flight budget (sync.send.budget).

Answers that arrive together are journalled, with the snapshot changes they confirm, in one SQLite
transaction (counted with SQLite's own statement trace); a write that refuses fails alone; a snapshot row
never exists without its confirmed journal answer, seen by a reader of its own while a run goes on; and
the workers that outnumber the budget never put more objects in flight than it allows.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.emulator import Emulator
from sync.errors import StateError
from sync.ims.clients import PersonClient
from sync.ims.exchange import Timeouts
from sync.models import Create, Outcome, Person, Status
from sync.models.kinds import PERSON
from sync.send.executor import Executor
from sync.send.policy import ExecutorSettings
from sync.state.changes import Upsert
from sync.state.schema import DB_NAME
from sync.state.store import StateStore
from tests.conftest import PASSWORD, USERNAME
from tests.executing import person
from tests.journal import confirmed, db_rows, sent_request


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> Iterator[StateStore]:
    """An exclusive state store in a temporary directory."""
    with StateStore.open(tmp_path / "state") as store:
        yield store


def traced(store: StateStore) -> list[str]:
    """Every SQL statement the store's own connection runs from now on (SQLite's trace callback)."""
    statements: list[str] = []
    store._connection.set_trace_callback(statements.append)  # type: ignore[union-attr]
    return statements


def commits(statements: list[str]) -> int:
    """How many transactions the traced statements committed."""
    return sum(statement.strip().upper() == "COMMIT" for statement in statements)


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll `condition` until it holds (at most 10 s)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def answering(store: StateStore, n: int) -> Callable[[], None]:
    """Journal the answer confirming request m<n> and its person n in the snapshot."""
    return lambda: store.record_answer(confirmed(f"m{n}"), [Upsert(record=person(n), identity=f"u{n}")])


def answered_together(store: StateStore, writes: list[Callable[[], None]]) -> list[BaseException | None]:
    """Run `writes` in threads of their own while another connection holds the database's write lock,
    so that they arrive together: the first waits for the lock, the others for its commit. Returns
    each write's error (None: it returned)."""
    errors: list[BaseException | None] = [None] * len(writes)

    def call(index: int) -> None:
        try:
            writes[index]()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors[index] = exc

    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(writes))]
    for thread in threads:
        thread.start()
    # One writer leads and waits for the lock inside its transaction; every other write queues behind it.
    waiting = store._commits._waiting  # the queue the test is about
    wait_for(lambda: len(waiting) == len(writes) - 1)
    blocker.execute("ROLLBACK")
    blocker.close()
    for thread in threads:
        thread.join()
    return errors


def test_answers_that_arrive_together_share_one_transaction(store: StateStore) -> None:
    """Eight answers arriving while a commit waits are journalled and applied in two transactions, not 8."""
    run_id = store.begin_run(command="test", roster="-", mapping="-")
    for n in range(8):
        store.record_sent(sent_request(run_id, f"m{n}", f"k{n}"))
    statements = traced(store)
    assert answered_together(store, [answering(store, n) for n in range(8)]) == [None] * 8
    assert commits(statements) == 2  # the first alone, the seven that queued behind it together
    assert store.count(PERSON) == 8
    rows = db_rows(store.path.parent, "SELECT message_identifier, outcome, message_id_ref FROM requests")
    assert sorted(rows) == [(f"m{n}", "confirmed", f"m{n}") for n in range(8)]


def test_a_refusing_write_fails_alone_in_its_group(store: StateStore) -> None:
    """In a group, an answer to a request never journalled raises in its writer; the others commit."""
    run_id = store.begin_run(command="test", roster="-", mapping="-")
    for n in (0, 1, 3):
        store.record_sent(sent_request(run_id, f"m{n}", f"k{n}"))
    statements = traced(store)
    errors = answered_together(store, [answering(store, n) for n in range(4)])
    assert [type(error) for error in errors] == [type(None), type(None), StateError, type(None)]
    assert "no request m2 in the journal" in str(errors[2])
    assert commits(statements) == 2
    keys = {row[0] for row in db_rows(store.path.parent, "SELECT sync_key FROM persons")}
    assert keys == {"k000", "k001", "k003"}  # m2's change was undone with its answer, nothing else


def test_a_failing_transaction_fails_every_write_of_its_group(store: StateStore) -> None:
    """The database refuses the group's transaction (its lock held too long): every writer gets the
    StateError and none of the group's answers is written."""
    run_id = store.begin_run(command="test", roster="-", mapping="-")
    for n in range(3):
        store.record_sent(sent_request(run_id, f"m{n}", f"k{n}"))
    store._connection.execute("PRAGMA busy_timeout = 300")  # type: ignore[union-attr]
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            answering(store, n)()
        except StateError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blocker.execute("ROLLBACK")
    blocker.close()
    assert len(errors) == 3
    assert all("the database stayed locked" in str(error) for error in errors)
    assert store.count(PERSON) == 0
    assert {row[0] for row in db_rows(store.path.parent, "SELECT outcome FROM requests")} == {"sent"}


class _Counting(PersonClient):
    """The real client, counting the createPerson requests it has out at once."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._lock = threading.Lock()
        self.out = 0
        self.most = 0

    def create_person(self, person: Person, *, password: str = "", message_id: str | None = None) -> Status:
        """createPerson, counted while it is out."""
        with self._lock:
            self.out += 1
            self.most = max(self.most, self.out)
        try:
            return super().create_person(person, password=password, message_id=message_id)
        finally:
            with self._lock:
                self.out -= 1


def _unconfirmed_snapshot_rows(state: Path) -> list[str]:
    """Snapshot rows without a confirmed journal answer of their own, read in one read transaction."""
    reader = sqlite3.connect(f"file:{state / DB_NAME}?mode=ro", uri=True, isolation_level=None)
    try:
        reader.execute("BEGIN")
        rows = reader.execute(
            "SELECT p.sync_key FROM persons AS p LEFT JOIN requests AS r USING (message_identifier) "
            "WHERE r.outcome IS NOT 'confirmed' OR r.message_id_ref IS NOT p.message_identifier "
            "OR r.answered_at IS NULL"
        ).fetchall()
        reader.execute("COMMIT")
    finally:
        reader.close()
    return [str(row[0]) for row in rows]


def test_a_run_keeps_the_budget_and_never_shows_a_snapshot_row_before_its_answer(
    emulator_factory: Callable[..., Emulator], store: StateStore
) -> None:
    """60 creates with 3 in flight: never more than 3 out, and a reader watching the database all along
    never sees a person in the snapshot whose journal answer is not confirmed with it."""
    emulator = emulator_factory(latency_ms=20)
    client = _Counting(
        url=emulator.pms_url,
        username=USERNAME,
        password=PASSWORD,
        ca_bundle=emulator.ca_path,
        timeouts=Timeouts(connect=5.0, read=5.0),
    )
    state = store.path.parent
    seen: list[int] = []
    problems: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            problems.extend(_unconfirmed_snapshot_rows(state))
            seen.append(store.count(PERSON))

    watcher = threading.Thread(target=watch)
    ops = [Create(record=person(n), identity=f"u{n:03d}") for n in range(60)]
    with client:
        executor = Executor(
            client=client,
            store=store,
            run_id=store.begin_run(command="test", roster="-", mapping="-"),
            settings=ExecutorSettings(max_in_flight=3),
        )
        watcher.start()
        try:
            report = executor.run(ops)
        finally:
            done.set()
            watcher.join()
    assert {result.outcome for result in report.results} == {Outcome.CONFIRMED}
    assert problems == []
    assert len(set(seen)) > 5  # the reader watched the snapshot grow, not only its two ends
    assert client.most == 3  # the budget was used, and never exceeded
    entries = store.journal()
    assert len(entries) == 60
    assert all(entry.message_id_ref == entry.message_identifier for entry in entries)


def test_a_run_whose_answers_arrive_together_commits_fewer_transactions(
    emulator_factory: Callable[..., Emulator], store: StateStore
) -> None:
    """A run of 30 creates whose database stalls for 0.3 s (another process holds it) commits the answers
    and requests queued meanwhile together: fewer transactions than journal writes, the journal whole."""
    emulator = emulator_factory(latency_ms=20)
    client = _Counting(
        url=emulator.pms_url,
        username=USERNAME,
        password=PASSWORD,
        ca_bundle=emulator.ca_path,
        timeouts=Timeouts(connect=5.0, read=5.0),
    )
    state = store.path.parent

    def stall() -> None:
        wait_for(lambda: len(db_rows(state, "SELECT 1 FROM requests WHERE outcome != 'sent'")) >= 10)
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        time.sleep(0.3)
        blocker.execute("ROLLBACK")
        blocker.close()

    staller = threading.Thread(target=stall)
    ops = [Create(record=person(n), identity=f"u{n:03d}") for n in range(30)]
    with client:
        executor = Executor(
            client=client,
            store=store,
            run_id=store.begin_run(command="test", roster="-", mapping="-"),
            settings=ExecutorSettings(max_in_flight=10),
        )
        statements = traced(store)
        staller.start()
        report = executor.run(ops)
        staller.join()
    assert {result.outcome for result in report.results} == {Outcome.CONFIRMED}
    writes = 2 * len(ops)  # each request journalled as sent, then its answer
    assert commits(statements) <= writes - 5
    assert _unconfirmed_snapshot_rows(state) == []
    assert store.count(PERSON) == 30
    assert all(entry.message_id_ref == entry.message_identifier for entry in store.journal())
