"""The executor against the emulator: retries only what is safe, resolves ambiguity, journals everything."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from sync.emulator import Emulator
from sync.ims.clients import PersonClient
from sync.models import ChangeIdentifier, Create, Delete, FieldChange, Outcome, Person, Update
from sync.models.kinds import PERSON
from sync.send.executor import Executor
from sync.send.policy import ExecutorSettings, RetryPolicy
from sync.state.store import StateStore
from tests.conftest import PASSWORD, USERNAME
from tests.executing import client_for, person

Execute = Callable[..., tuple[Executor, list[float]]]
FAST_RETRY = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.0)


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> Iterator[StateStore]:
    """An exclusive state store in a temporary directory."""
    with StateStore.open(tmp_path / "state") as store:
        yield store


@pytest.fixture(name="execute")
def fixture_execute(store: StateStore) -> Iterator[Execute]:
    """`execute(emulator, **settings)` builds an executor whose retry waits are recorded, not slept."""
    clients: list[PersonClient] = []

    def build(emulator: Emulator, **settings: object) -> tuple[Executor, list[float]]:
        client = client_for(emulator)
        clients.append(client)
        waits: list[float] = []
        options: dict[str, object] = {"retry": FAST_RETRY}
        options.update(settings)
        executor = Executor(
            client=client,
            store=store,
            run_id=store.begin_run(command="test", roster="-", mapping="-"),
            settings=ExecutorSettings(**options),  # type: ignore[arg-type]
            sleep=waits.append,
        )
        return executor, waits

    yield build
    for client in clients:
        client.close()


class TestExecutor:
    """Outcomes, retries and the journal for each kind of operation."""

    def test_creates_are_confirmed_and_journalled(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """Twenty creates at concurrency 10 are all confirmed, in the snapshot and journal, in plan order."""
        executor, waits = execute(emulator)
        ops = [Create(record=person(n), identity=f"u{n:03d}", password="pw-secret") for n in range(20)]
        report = executor.run(ops)
        assert [r.operation for r in report.results] == ops
        assert {r.outcome for r in report.results} == {Outcome.CONFIRMED}
        assert waits == []
        assert store.count(PERSON) == 20
        entries = store.journal()
        assert len(entries) == 20
        assert all(e.message_id_ref == e.message_identifier for e in entries)

    def test_data_failure_is_not_retried(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """A sync key IMS ES refuses (over 64 characters) is rejected once, not retried; others go on."""
        executor, waits = execute(emulator)
        bad = Create(record=person(1, sync_key="x" * 65))
        good = Create(record=person(2))
        report = executor.run([bad, good])
        assert [r.outcome for r in report.results] == [Outcome.REJECTED, Outcome.CONFIRMED]
        assert report.results[0].attempts == 1
        assert waits == []
        assert store.count(PERSON) == 1

    def test_503_is_retried_with_backoff(
        self,
        emulator_factory: Callable[..., Emulator],
        store: StateStore,
        execute: Execute,
    ) -> None:
        """A 503 is transient: retried with growing waits, each attempt journalled with its own id."""
        emulator = emulator_factory(error_rate=1.0, seed=3)
        executor, waits = execute(emulator, circuit_threshold=100)
        with capture_logs() as logs:
            report = executor.run([Create(record=person(1))])
        result = report.results[0]
        assert result.outcome is Outcome.UNCONFIRMED
        assert result.attempts == FAST_RETRY.max_attempts
        assert len(waits) == FAST_RETRY.max_attempts - 1
        assert waits == sorted(waits)
        entries = store.journal()
        assert len({e.message_identifier for e in entries}) == FAST_RETRY.max_attempts
        assert all(e.outcome == "unconfirmed" for e in entries)
        assert len([e for e in logs if e["event"] == "ims_retry"]) == FAST_RETRY.max_attempts - 1
        assert store.count(PERSON) == 0

    def test_dropped_answers_to_creates_are_retried_harmlessly(
        self,
        emulator_factory: Callable[..., Emulator],
        store: StateStore,
        execute: Execute,
    ) -> None:
        """A create applied but unanswered is retried (createPerson upserts): one person, confirmed once."""
        emulator = emulator_factory(drop_rate=0.5, seed=7)
        executor, _ = execute(emulator, circuit_threshold=100)
        report = executor.run([Create(record=person(n)) for n in range(10)])
        confirmed = [r for r in report.results if r.outcome is Outcome.CONFIRMED]
        assert len(confirmed) >= 8
        assert set(emulator.persons()) >= {r.operation.sync_key for r in confirmed}
        assert store.count(PERSON) == len(confirmed)

    def test_rename_already_applied_is_confirmed_by_reading(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """A rename the service already holds (answer lost earlier) is confirmed via readPerson."""
        executor, _ = execute(emulator)
        executor.run([Create(record=person(1))])
        # An earlier request renamed k001 -> k901 on the service, but its answer never reached us.
        with PersonClient(
            url=emulator.pms_url, username=USERNAME, password=PASSWORD, ca_bundle=emulator.ca_path
        ) as other:
            assert other.change_person_identifier("k001", "k901").ok
        op = ChangeIdentifier(old_id="k001", new_id="k901", record=person(1, sync_key="k901"))
        result = executor.run([op]).results[0]
        assert result.outcome is Outcome.CONFIRMED
        ops = [e.operation for e in store.journal()][-3:]
        assert ops == ["changePersonIdentifier", "readPerson", "readPerson"]
        assert list(store.load(PERSON).index) == ["k901"]

    def test_rename_of_a_person_the_service_lacks_is_rejected(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """Old id unknown and new id absent too: the rename is really rejected, the snapshot unchanged."""
        executor, _ = execute(emulator)
        op = ChangeIdentifier(old_id="k001", new_id="k901", record=person(1, sync_key="k901"))
        result = executor.run([op]).results[0]
        assert result.outcome is Outcome.REJECTED
        assert store.count(PERSON) == 0

    def test_rename_with_field_changes_follows_with_an_update(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """A changeIdentifier with changed fields renames, then updates; the snapshot holds the new record."""
        executor, _ = execute(emulator)
        executor.run([Create(record=person(1))])
        renamed = person(1, sync_key="k901", family_name="Renamed")
        op = ChangeIdentifier(
            old_id="k001",
            new_id="k901",
            record=renamed,
            changes=(FieldChange(field="family_name", old="F1", new="Renamed"),),
        )
        result = executor.run([op]).results[0]
        assert result.outcome is Outcome.CONFIRMED
        assert emulator.persons()["k901"].family_name == "Renamed"
        assert store.load(PERSON).loc["k901", "family_name"] == "Renamed"

    def test_deletes_run_only_when_enabled_and_already_deleted_is_confirmed(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """Deletion candidates are skipped unless deletes are on; deleting a gone person is confirmed."""
        executor, _ = execute(emulator)
        executor.run([Create(record=person(1)), Create(record=person(2))])
        off = executor.run([Delete(record=Person(sync_key="k001"))])
        assert off.results == ()
        assert "k001" in emulator.persons()
        on, _ = execute(emulator, deletes=True)
        report = on.run([Delete(record=Person(sync_key="k001")), Delete(record=Person(sync_key="k001"))])
        assert [r.outcome for r in report.results] == [Outcome.CONFIRMED, Outcome.CONFIRMED]
        assert "k001" not in emulator.persons()
        assert list(store.load(PERSON).index) == ["k002"]

    def test_update_that_clears_a_field_uses_replace(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """updatePerson merges, so an update that empties a field is sent as replacePerson."""
        executor, _ = execute(emulator)
        executor.run([Create(record=person(1, email="a@b.example"))])
        op = Update(record=person(1), changes=(FieldChange(field="email", old="a@b.example", new=""),))
        assert executor.run([op]).results[0].outcome is Outcome.CONFIRMED
        assert emulator.persons()["k001"].email == ""
        assert [e.operation for e in store.journal()][-1] == "replacePerson"

    def test_circuit_opens_and_skips_the_rest(
        self,
        emulator_factory: Callable[..., Emulator],
        store: StateStore,
        execute: Execute,
    ) -> None:
        """After N consecutive transient failures the run stops; the rest is skipped, never sent."""
        emulator = emulator_factory(error_rate=1.0, seed=2)
        executor, _ = execute(emulator, circuit_threshold=3, max_in_flight=1)
        report = executor.run([Create(record=person(n)) for n in range(10)])
        assert report.stopped.startswith("circuit open")
        skipped = [r for r in report.results if r.outcome is Outcome.SKIPPED]
        assert len(skipped) >= 8
        sent_keys = {item.sync_key for e in store.journal() for item in e.items}
        assert all(r.operation.sync_key not in sent_keys for r in skipped)

    def test_stop_event_lets_in_flight_finish(
        self, emulator_factory: Callable[..., Emulator], store: StateStore, tmp_path: Path
    ) -> None:
        """Setting the stop event (SIGTERM) sends nothing new; what was in flight is recorded."""
        emulator = emulator_factory(latency_ms=100)
        stop = threading.Event()
        client = PersonClient(
            url=emulator.pms_url, username=USERNAME, password=PASSWORD, ca_bundle=emulator.ca_path
        )
        seen: list[object] = []

        def on_result(result: object) -> None:
            seen.append(result)
            stop.set()

        with client:
            executor = Executor(
                client=client,
                store=store,
                run_id=store.begin_run(command="test", roster="-", mapping="-"),
                settings=ExecutorSettings(max_in_flight=2),
                stop=stop,
                on_result=on_result,
            )
            report = executor.run([Create(record=person(n)) for n in range(20)])
        assert report.stopped == "stopped by signal"
        confirmed = [r for r in report.results if r.outcome is Outcome.CONFIRMED]
        assert 1 <= len(confirmed) <= 3
        assert store.count(PERSON) == len(confirmed)
        assert len(emulator.persons()) == len(confirmed)
        structlog.reset_defaults()


class TestMassCreates:
    """Creates batched into createPersons: per-item outcomes, one journal request per batch."""

    def test_batches_confirm_items_and_reject_the_bad_one(
        self, emulator: Emulator, store: StateStore, execute: Execute
    ) -> None:
        """Twelve creates in batches of five: three requests, the bad item rejected, the rest confirmed."""
        executor, _ = execute(emulator, batch_size=5)
        ops = [Create(record=person(n), password="pw-secret") for n in range(12)]
        ops[6] = Create(record=person(6, sync_key="y" * 65))
        report = executor.run(ops)
        outcomes = [r.outcome for r in report.results]
        assert outcomes == [Outcome.REJECTED if i == 6 else Outcome.CONFIRMED for i in range(12)]
        entries = store.journal()
        assert [e.operation for e in entries] == ["createPersons"] * 3
        assert sorted(len(e.items) for e in entries) == [2, 5, 5]
        assert all(e.message_id_ref == e.message_identifier for e in entries)
        rejected = [i for e in entries for i in e.items if i.code_major == "failure"]
        assert [i.sync_key for i in rejected] == ["y" * 65]
        assert store.count(PERSON) == 11
        assert len(emulator.persons()) == 11
        assert report.results[0].message_identifier == report.results[4].message_identifier

    def test_dropped_batch_is_resent_whole_without_duplicates(
        self, emulator_factory: Callable[..., Emulator], store: StateStore, execute: Execute
    ) -> None:
        """A batch applied but unanswered is resent; createPersons upserts, so each person exists once."""
        emulator = emulator_factory(drop_rate=0.5, seed=7)  # seed 7: the first request's answer is lost
        executor, _ = execute(emulator, batch_size=4, max_in_flight=4, circuit_threshold=100)
        report = executor.run([Create(record=person(n)) for n in range(8)])
        assert {r.outcome for r in report.results} == {Outcome.CONFIRMED}
        assert sorted(emulator.persons()) == [f"k{n:03d}" for n in range(8)]
        assert sorted(store.load(PERSON).index) == [f"k{n:03d}" for n in range(8)]
        entries = store.journal()
        assert [e.outcome for e in entries] == ["unconfirmed", "confirmed", "confirmed"]
        assert [e.attempt for e in entries] == [1, 2, 1]
        creates = [e for e in emulator.history() if e.operation == "createPersons"]
        assert len(creates) == 12  # the first batch applied twice (an upsert), nothing duplicated

    def test_batch_size_is_bounded(self, store: StateStore, emulator: Emulator, execute: Execute) -> None:
        """More than 50 objects per request (itslearning's ceiling) is refused at construction."""
        with pytest.raises(ValueError, match="batch_size"):
            execute(emulator, batch_size=51)
