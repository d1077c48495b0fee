"""Faults survived: every operation ends confirmed, rejected or unconfirmed; none is confirmed unanswered."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from sync.emulator import Emulator, Exchange
from sync.errors import ConfigError, TransientError
from sync.ims.clients import PersonClient
from sync.models import ChangeIdentifier, Create, Delete, FieldChange, Outcome, Person, Update
from sync.send.executor import Executor
from sync.send.policy import ExecutorSettings, RetryPolicy
from sync.state.journal import RequestItem, SentRequest
from sync.state.store import StateStore
from tests.checks import (
    as_fields,
    duplicates,
    expected_persons,
    journal_problems,
    person_row,
    snapshot_persons,
    write_roster,
)
from tests.conftest import PASSWORD, USERNAME
from tests.executing import client_for, person

RETRY = RetryPolicy(max_attempts=6, initial_wait=0.01, max_wait=0.05, jitter=0.0)


@pytest.fixture(name="state")
def fixture_state(tmp_path: Path) -> Path:
    """The state directory of the test's runs."""
    return tmp_path / "state"


@pytest.fixture(name="execute")
def fixture_execute(state: Path) -> Iterator[Callable[..., list[Any]]]:
    """`execute(emulator, ops, read_timeout=5, **settings)`: one Executor run (fresh store), its results."""
    opened: list[PersonClient] = []

    def run(emulator: Emulator, ops: list[Any], *, read_timeout: float = 5.0, **settings: Any) -> list[Any]:
        client = client_for(emulator, read_timeout=read_timeout)
        opened.append(client)
        options: dict[str, Any] = {"retry": RETRY, "max_in_flight": 1, "circuit_threshold": 1000}
        options.update(settings)
        with StateStore.open(state) as store:
            executor = Executor(
                client=client,
                store=store,
                run_id=store.begin_run(command="test", roster="-", mapping="-"),
                settings=ExecutorSettings(**options),
                sleep=lambda _seconds: None,
            )
            return list(executor.run(ops).results)

    yield run
    for client in opened:
        client.close()


@pytest.fixture(name="cli_run")
def fixture_cli_run(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """`cli_run(emulator, roster, *flags)`: `ims-sync run` in-process; returns (exit code, stderr)."""
    monkeypatch.setenv("IMS_ES_USERNAME", USERNAME)
    monkeypatch.setenv("IMS_ES_PASSWORD", PASSWORD)

    def run(emulator: Emulator, roster: Path, *flags: str) -> tuple[int, str]:
        code = main(
            [
                "--log-format",
                "json",
                "run",
                str(roster),
                "-m",
                "oneroster-users",
                "--state",
                str(state),
                "--endpoint",
                emulator.pms_url,
                "--ca-bundle",
                str(emulator.ca_path),
                *flags,
            ]
        )
        return code, capsys.readouterr().err

    return run


def converge(run: Callable[[], int], *, limit: int = 15) -> list[int]:
    """Run until a run exits 0 (the next run re-diffs what the last left unconfirmed); the exit codes."""
    codes: list[int] = []
    while len(codes) < limit:
        codes.append(run())
        if codes[-1] == EXIT_OK:
            return codes
    raise AssertionError(f"no clean run after {limit} runs: {codes}")


def tap_after(emulator: Emulator, count: int, action: Callable[[], None]) -> None:
    """Call `action` once the emulator has answered (or dropped) `count` POSTs; the schema tap stays on."""
    inner = emulator.on_exchange
    seen = Counter[str]()

    def tap(exchange: Exchange) -> None:
        if inner is not None:
            inner(exchange)
        seen["n"] += 1
        if seen["n"] == count:
            action()

    emulator.on_exchange = tap


class TestEmulatorFaults:
    """The emulator's injected faults behave as the tests below rely on."""

    def test_soap_fault_is_answered_before_anything_is_applied(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """fault_rate answers HTTP 500 with a SOAP fault s:Server and applies nothing; it is counted."""
        emulator = emulator_factory(fault_rate=1.0, seed=1)
        with client_for(emulator) as client, pytest.raises(TransientError, match="s:Server"):
            client.create_person(person(1))
        assert emulator.persons() == {}
        assert emulator.history() == []
        assert emulator.faults_injected() == {"fault": 1}

    def test_slow_answer_past_the_read_timeout_was_applied(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """slow_rate delays the answer past the client's read timeout: a timeout, but the person exists."""
        emulator = emulator_factory(slow_rate=1.0, slow_ms=700, seed=1)
        with (
            client_for(emulator, read_timeout=0.2) as client,
            pytest.raises(TransientError, match="timed out"),
        ):
            client.create_person(person(1))
        assert list(emulator.persons()) == ["k001"]
        assert emulator.faults_injected() == {"slow": 1}

    def test_fault_operations_target_one_operation(self, emulator_factory: Callable[..., Emulator]) -> None:
        """Faults limited to deletePerson leave creates alone and drop the (applied) delete."""
        emulator = emulator_factory(drop_rate=1.0, fault_operations=frozenset({"deletePerson"}), seed=1)
        with client_for(emulator) as client:
            assert client.create_person(person(1)).ok
            with pytest.raises(TransientError):
                client.delete_person("k001")
        assert emulator.persons() == {}
        assert emulator.faults_injected() == {"drop": 1}

    def test_reconfigure_changes_faults_only(self, emulator_factory: Callable[..., Emulator]) -> None:
        """Faults can change while serving; other settings and invalid rates are refused."""
        emulator = emulator_factory(error_rate=1.0, seed=1)
        with client_for(emulator) as client:
            with pytest.raises(TransientError, match="503"):
                client.create_person(person(1))
            emulator.reconfigure(error_rate=0.0)
            assert client.create_person(person(1)).ok
        with pytest.raises(ConfigError, match="fault settings"):
            emulator.reconfigure(strict=True)
        with pytest.raises(ConfigError, match="between 0 and 1"):
            emulator.reconfigure(drop_rate=1.5)
        with pytest.raises(ConfigError, match="unknown operation"):
            emulator.reconfigure(fault_operations=frozenset({"createPersonn"}))

    def test_emulator_command_checks_fault_options(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`ims-sync emulator` refuses an unknown --fault-operations name and a rate above 1 (exit 2)."""
        monkeypatch.setenv("IMS_ES_USERNAME", USERNAME)
        monkeypatch.setenv("IMS_ES_PASSWORD", PASSWORD)
        assert main(["emulator", "--port", "0", "--fault-operations", "createPerson,frobnicate"]) == 2
        assert "frobnicate" in capsys.readouterr().err
        assert main(["emulator", "--port", "0", "--fault-rate", "1.5"]) == 2
        assert "fault_rate must be between 0 and 1" in capsys.readouterr().err


#: Each fault alone, at rate 1: what the client sees, whether the service applied the request first.
SINGLE_FAULTS = [
    pytest.param({"error_rate": 1.0}, Outcome.UNCONFIRMED, "HTTP 503", False, id="http-503"),
    pytest.param({"fault_rate": 1.0}, Outcome.UNCONFIRMED, "s:Server", False, id="soap-fault"),
    pytest.param({"drop_rate": 1.0}, Outcome.UNCONFIRMED, "dropped", True, id="dropped-after-applying"),
    pytest.param({"latency_ms": 500.0}, Outcome.UNCONFIRMED, "timed out", True, id="past-read-timeout"),
    pytest.param({"wrong_ref_rate": 1.0}, Outcome.UNCONFIRMED, "messageIdRef", True, id="wrong-messageidref"),
]


class TestEveryOperationEndsAccountedFor:
    """Under each fault, and all of them mixed, nothing is lost, duplicated or confirmed without proof."""

    @pytest.mark.parametrize("batch_size", [1, 3], ids=["createPerson", "createPersons"])
    @pytest.mark.parametrize(("faults", "outcome", "error", "applied"), SINGLE_FAULTS)
    def test_single_fault_then_recovery(
        self,
        emulator_factory: Callable[..., Emulator],
        execute: Callable[..., list[Any]],
        state: Path,
        faults: dict[str, float],
        outcome: Outcome,
        error: str,
        applied: bool,
        batch_size: int,
    ) -> None:
        """A fault on every request leaves unconfirmed or rejected, never confirmed; a rerun heals."""
        emulator = emulator_factory(seed=5, **faults)
        ops = [Create(record=person(n), identity=f"u{n:03d}") for n in range(1, 4)]
        results = execute(emulator, ops, read_timeout=0.25, max_in_flight=3, batch_size=batch_size)
        assert [r.outcome for r in results] == [outcome] * 3
        assert all(error in r.error for r in results), [r.error for r in results]
        assert snapshot_persons(state) == {}
        assert journal_problems(state) == []
        assert sorted(emulator.persons()) == (["k001", "k002", "k003"] if applied else [])
        emulator.reconfigure(
            error_rate=0.0, fault_rate=0.0, drop_rate=0.0, latency_ms=0.0, wrong_ref_rate=0.0
        )
        again = execute(emulator, ops, max_in_flight=3, batch_size=batch_size)
        assert [r.outcome for r in again] == [Outcome.CONFIRMED] * 3
        assert as_fields(emulator.persons()) == as_fields(snapshot_persons(state))
        assert journal_problems(state) == []

    def test_mixed_faults_through_the_cli_converge(
        self, emulator_factory: Callable[..., Emulator], tmp_path: Path, state: Path, cli_run: Any
    ) -> None:
        """503s, SOAP faults, drops, late answers and wrong refs at once: runs converge to the roster."""
        emulator = emulator_factory(
            error_rate=0.1,
            fault_rate=0.1,
            drop_rate=0.1,
            wrong_ref_rate=0.1,
            slow_rate=0.05,
            slow_ms=900,
            seed=11,
        )
        rows = [person_row(n) for n in range(1, 31)]
        roster = write_roster(tmp_path / "users.csv", rows)
        flags = ("--max-attempts", "1", "--read-timeout", "0.5")
        outcomes: Counter[str] = Counter()

        def one_run() -> int:
            report = tmp_path / "run.json"
            code, _ = cli_run(emulator, roster, *flags, "--report", str(report))
            results = json.loads(report.read_text(encoding="utf-8"))["results"]
            outcomes.update(r["outcome"] for r in results)
            assert {r["outcome"] for r in results} <= {"confirmed", "rejected", "unconfirmed"}
            assert journal_problems(state) == []
            return int(code)

        first = converge(one_run)
        rows[1] = person_row(2, familyName="Renamed")
        rows[2] = person_row(3, sourcedId="p9003")  # same username: changePersonIdentifier
        rows[3] = person_row(4, email="")  # a cleared field: replacePerson
        write_roster(roster, rows)
        second = converge(one_run)
        assert EXIT_FAILED in first + second  # faults did make runs fail
        expected = expected_persons(rows)
        assert as_fields(emulator.persons()) == as_fields(expected)
        assert as_fields(snapshot_persons(state)) == as_fields(expected)
        assert duplicates(emulator.persons()) == []
        injected = emulator.faults_injected()
        print(
            f"\nmixed faults: runs {len(first)}+{len(second)}, outcomes {dict(outcomes)}, injected {injected}"
        )
        assert set(injected) == {"unavailable", "fault", "drop", "wrong_ref", "slow"}, injected
        assert outcomes["rejected"] == 0  # every fault here is the service's: none is blamed on the data
        assert outcomes["unconfirmed"] > 0


class TestAmbiguousOutcomes:
    """An applied request whose answer was lost is resolved per operation, never applied twice."""

    def test_create_is_retried_harmlessly(
        self, emulator_factory: Callable[..., Emulator], execute: Callable[..., list[Any]], state: Path
    ) -> None:
        """createPerson upserts: retrying an applied create gives one person with the right fields."""
        # createPersons too: the executor may send creates in batches.
        creates = frozenset({"createPerson", "createPersons"})
        emulator = emulator_factory(drop_rate=0.5, fault_operations=creates, seed=21)
        ops = [Create(record=person(n), identity=f"u{n:03d}", password="pw") for n in range(1, 13)]
        results = execute(emulator, ops)
        assert {r.outcome for r in results} == {Outcome.CONFIRMED}
        sent = Counter(e.sync_key for e in emulator.history() if e.operation in creates)
        assert max(sent.values()) >= 2  # some creates were applied, unanswered and sent again
        assert as_fields(emulator.persons()) == as_fields({op.sync_key: op.record for op in ops})
        assert duplicates(emulator.persons()) == []
        assert as_fields(snapshot_persons(state)) == as_fields(emulator.persons())
        assert journal_problems(state) == []

    def test_create_batches_are_retried_harmlessly(
        self, emulator_factory: Callable[..., Emulator], execute: Callable[..., list[Any]], state: Path
    ) -> None:
        """A createPersons batch applied but unanswered is sent again whole: no duplicate, all confirmed."""
        emulator = emulator_factory(drop_rate=0.5, fault_operations=frozenset({"createPersons"}), seed=26)
        ops = [Create(record=person(n), identity=f"u{n:03d}", password="pw") for n in range(1, 16)]
        results = execute(emulator, ops, batch_size=5, max_in_flight=10)
        assert {r.outcome for r in results} == {Outcome.CONFIRMED}
        sent = Counter(e.sync_key for e in emulator.history() if e.operation == "createPersons")
        assert set(sent) == {op.sync_key for op in ops}  # every create went in a batch
        assert max(sent.values()) >= 2  # some batch was applied, unanswered and sent again
        assert emulator.faults_injected()["drop"] > 0
        assert as_fields(emulator.persons()) == as_fields({op.sync_key: op.record for op in ops})
        assert duplicates(emulator.persons()) == []
        assert as_fields(snapshot_persons(state)) == as_fields(emulator.persons())
        assert journal_problems(state) == []

    def test_update_is_retried_harmlessly(
        self, emulator_factory: Callable[..., Emulator], execute: Callable[..., list[Any]], state: Path
    ) -> None:
        """updatePerson upserts: retrying an applied update leaves the right final state."""
        emulator = emulator_factory(drop_rate=0.5, fault_operations=frozenset({"updatePerson"}), seed=32)
        execute(emulator, [Create(record=person(n), identity=f"u{n:03d}") for n in range(1, 9)])
        updates = [
            Update(
                record=person(n, family_name=f"New{n}"),
                identity=f"u{n:03d}",
                changes=(FieldChange(field="family_name", old=f"F{n}", new=f"New{n}"),),
            )
            for n in range(1, 9)
        ]
        results = execute(emulator, updates)
        assert {r.outcome for r in results} == {Outcome.CONFIRMED}
        sent = Counter(e.sync_key for e in emulator.history() if e.operation == "updatePerson")
        assert max(sent.values()) >= 2
        assert {p.family_name for p in emulator.persons().values()} == {f"New{n}" for n in range(1, 9)}
        assert as_fields(snapshot_persons(state)) == as_fields(emulator.persons())
        assert journal_problems(state) == []

    def test_applied_rename_is_resolved_by_reading_both_ids(
        self, emulator_factory: Callable[..., Emulator], execute: Callable[..., list[Any]], state: Path
    ) -> None:
        """A changePersonIdentifier retried after its answer was lost fails as unknown; reads confirm it."""
        emulator = emulator_factory(
            drop_rate=0.5, fault_operations=frozenset({"changePersonIdentifier"}), seed=23
        )
        execute(emulator, [Create(record=person(n), identity=f"u{n:03d}") for n in range(1, 9)])
        renames = [
            ChangeIdentifier(
                old_id=f"k{n:03d}", new_id=f"k{n + 900:03d}", record=person(n, sync_key=f"k{n + 900:03d}")
            )
            for n in range(1, 9)
        ]
        results = execute(emulator, renames)
        assert {r.outcome for r in results} == {Outcome.CONFIRMED}
        with StateStore.open(state, exclusive=False) as store:
            journal = store.journal(store.last_run_id())
        retried = [e for e in journal if e.operation == "changePersonIdentifier" and e.outcome == "rejected"]
        assert retried, "no rename was retried after it had been applied"
        assert all(e.code_minor[0][0] == "unknownobject" for e in retried)
        confirming = [e for e in journal if e.operation == "readPerson" and e.error.startswith("confirms ")]
        assert {e.error.split()[1].rstrip(":") for e in confirming} == {e.message_identifier for e in retried}
        assert sorted(emulator.persons()) == [f"k{n + 900:03d}" for n in range(1, 9)]
        assert as_fields(snapshot_persons(state)) == as_fields(emulator.persons())
        assert duplicates(emulator.persons()) == []
        assert journal_problems(state) == []

    def test_applied_delete_is_resolved_by_reading(
        self, emulator_factory: Callable[..., Emulator], execute: Callable[..., list[Any]], state: Path
    ) -> None:
        """A deletePerson retried after its answer was lost fails as unknown; a read confirms it is gone."""
        emulator = emulator_factory(drop_rate=0.5, fault_operations=frozenset({"deletePerson"}), seed=24)
        execute(emulator, [Create(record=person(n), identity=f"u{n:03d}") for n in range(1, 9)])
        results = execute(
            emulator, [Delete(record=Person(sync_key=f"k{n:03d}")) for n in range(1, 7)], deletes=True
        )
        assert {r.outcome for r in results} == {Outcome.CONFIRMED}
        with StateStore.open(state, exclusive=False) as store:
            journal = store.journal(store.last_run_id())
        retried = [e for e in journal if e.operation == "deletePerson" and e.outcome == "rejected"]
        assert retried, "no delete was retried after it had been applied"
        confirming = [e for e in journal if e.operation == "readPerson" and e.error.startswith("confirms ")]
        assert {e.error.split()[1].rstrip(":") for e in confirming} == {e.message_identifier for e in retried}
        assert sorted(emulator.persons()) == ["k007", "k008"]
        assert sorted(snapshot_persons(state)) == ["k007", "k008"]
        assert journal_problems(state) == []

    def test_unconfirmed_rename_then_renamed_again(
        self, emulator: Emulator, execute: Callable[..., list[Any]], state: Path
    ) -> None:
        """k001 -> k501 applied but unanswered, then the roster says k601: the person ends as k601."""
        execute(emulator, [Create(record=person(1), identity="u001")])
        # The earlier run sent k001 -> k501 (journalled as sent), the service applied it, the run died.
        with StateStore.open(state) as store:
            store.record_sent(
                SentRequest(
                    run_id=store.begin_run(command="run", roster="-", mapping="-"),
                    message_identifier="lost-rename",
                    operation="changePersonIdentifier",
                    attempt=1,
                    sent_at=datetime.now(UTC),
                    items=(RequestItem(index=0, sync_key="k001", new_sync_key="k501"),),
                )
            )
        with client_for(emulator) as other:
            assert other.change_person_identifier("k001", "k501", message_id="lost-rename").ok
        op = ChangeIdentifier(old_id="k001", new_id="k601", record=person(1, sync_key="k601"))
        results = execute(emulator, [op])
        assert results[0].outcome is Outcome.CONFIRMED
        assert sorted(emulator.persons()) == ["k601"]
        assert sorted(snapshot_persons(state)) == ["k601"]

    def test_every_rule_through_the_cli_with_drop_rate(
        self, emulator_factory: Callable[..., Emulator], tmp_path: Path, state: Path, cli_run: Any
    ) -> None:
        """Under a drop rate, creates, updates, renames and deletes through `ims-sync run` converge."""
        emulator = emulator_factory(drop_rate=0.3, seed=25)
        rows = [person_row(n) for n in range(1, 21)]
        roster = write_roster(tmp_path / "users.csv", rows)
        flags = ("--max-attempts", "1", "--deletes")

        def run() -> int:
            return int(cli_run(emulator, roster, *flags)[0])

        first = converge(run)
        for n in range(1, 5):
            rows[n] = person_row(n + 1, sourcedId=f"p9{n + 1:03d}")  # renames
        for n in range(5, 9):
            rows[n] = person_row(n + 1, givenName="Updated")
        for n in range(9, 12):
            rows[n] = person_row(n + 1, status="tobedeleted")
        write_roster(roster, rows)
        second = converge(run)
        assert EXIT_FAILED in first + second
        assert emulator.faults_injected()["drop"] > 0
        expected = expected_persons(rows)
        assert as_fields(emulator.persons()) == as_fields(expected)
        assert as_fields(snapshot_persons(state)) == as_fields(expected)
        assert duplicates(emulator.persons()) == []
        assert journal_problems(state) == []


class TestCircuitBreaker:
    """A service that goes away mid-run stops the run cleanly and leaves the journal exact."""

    def test_service_dies_mid_run(
        self, emulator_factory: Callable[..., Emulator], tmp_path: Path, state: Path, cli_run: Any
    ) -> None:
        """After 12 answers the service fails: exit 4, in-flight requests recorded, the rest never sent."""
        emulator = emulator_factory(latency_ms=20, seed=3)
        tap_after(emulator, 12, lambda: emulator.reconfigure(error_rate=1.0))
        rows = [person_row(n) for n in range(1, 61)]
        roster = write_roster(tmp_path / "users.csv", rows)
        report = tmp_path / "run.json"
        code, err = cli_run(
            emulator,
            roster,
            "--concurrency",
            "4",
            "--circuit-threshold",
            "6",
            "--max-attempts",
            "1",
            "--report",
            str(report),
        )
        assert code == EXIT_UNREACHABLE
        assert "IMS ES unreachable" in err
        assert journal_problems(state) == []  # every request sent, in flight too, has its answer recorded
        with StateStore.open(state, exclusive=False) as store:
            journal = store.journal(store.last_run_id())
            (run,) = store.runs()
        assert run.status == "stopped"
        # The circuit counts consecutive failures: a success already in flight when the service died
        # (answered after the first failures) starts the count again, so count from the last success.
        answered = sorted(journal, key=lambda e: e.answered_at or e.sent_at)
        last_success = max((i for i, e in enumerate(answered) if e.outcome == "confirmed"), default=-1)
        failed = [e for e in answered[last_success + 1 :] if e.outcome == "unconfirmed"]
        assert 6 <= len(failed) <= 6 + 3  # the threshold, plus at most what was in flight
        results = json.loads(report.read_text(encoding="utf-8"))["results"]
        by_outcome = Counter(r["outcome"] for r in results)
        # Requests the service took before it failed finish as confirmed, in the snapshot too.
        assert 12 <= by_outcome["confirmed"] == len(snapshot_persons(state))
        assert len(emulator.persons()) == by_outcome["confirmed"]
        assert by_outcome["confirmed"] + by_outcome["unconfirmed"] + by_outcome["skipped"] == 60
        sent = {item.sync_key for e in journal for item in e.items}
        assert all(r["syncKey"] not in sent for r in results if r["outcome"] == "skipped")
        emulator.reconfigure(error_rate=0.0)
        code, _ = cli_run(emulator, roster, "--max-attempts", "1")
        assert code == EXIT_OK
        assert as_fields(emulator.persons()) == as_fields(expected_persons(rows))
        assert as_fields(snapshot_persons(state)) == as_fields(emulator.persons())
