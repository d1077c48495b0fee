"""Group commits of the journal (sync.state.commits).

Answers that arrive together are journalled, with the snapshot changes they confirm, in one SQLite
transaction (counted with SQLite's own statement trace); a write that refuses fails alone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sync.errors import StateError
from sync.models.kinds import PERSON
from sync.state.changes import Upsert
from sync.state.store import StateStore
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
