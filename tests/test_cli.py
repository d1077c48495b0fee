"""End to end: `ims-sync` commands against the emulator over real HTTPS, with a real state directory."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_SAFETY, EXIT_UNREACHABLE, EXIT_USAGE
from sync.emulator import Emulator
from sync.models import Person
from sync.models.kinds import PERSON
from sync.state.store import StateStore
from tests.checks import person_row, write_roster
from tests.conftest import PASSWORD, USERNAME


@pytest.fixture(name="env")
def fixture_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's credentials in the environment, as an operator would set them."""
    monkeypatch.setenv("IMS_ES_USERNAME", USERNAME)
    monkeypatch.setenv("IMS_ES_PASSWORD", PASSWORD)


@pytest.fixture(name="sync_run")
def fixture_sync_run(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """`sync_run(emulator, roster, *extra)` runs `ims-sync run` and returns (exit code, stdout, stderr)."""
    del env

    def run(emulator: Emulator, roster: Path, *extra: str) -> tuple[int, str, str]:
        code = main(
            [
                "--log-format",
                "json",
                "run",
                str(roster),
                "--mapping",
                "oneroster-users",
                "--state",
                str(tmp_path / "state"),
                "--endpoint",
                emulator.pms_url,
                "--ca-bundle",
                str(emulator.ca_path),
                "--max-attempts",
                "2",
                *extra,
            ]
        )
        out, err = capsys.readouterr()
        return code, out, err

    return run


def snapshot_of(state: Path) -> dict[str, dict[str, Any]]:
    """The snapshot's persons as {sync_key: fields}."""
    with StateStore.open(state, exclusive=False) as store:
        frame = store.load(PERSON)
    return {str(key): dict(row) for key, row in frame.iterrows()}


class TestRun:
    """`ims-sync run` creates, updates and renames exactly what changed, and records every request."""

    def test_first_run_creates_everyone_then_rerun_sends_nothing(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """A first run creates every person; an unchanged rerun sends no request at all."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 31)])
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK, out
        persons = emulator.persons()
        assert sorted(persons) == [f"p{n:04d}" for n in range(1, 31)]
        assert persons["p0005"].role == "Staff"
        assert persons["p0001"] == Person(
            sync_key="p0001",
            username="user0001",
            given_name="Given1",
            family_name="Family1",
            email="user0001@school.example",
            role="Student",
        )
        snapshot = snapshot_of(tmp_path / "state")
        assert set(snapshot) == set(persons)
        assert snapshot["p0001"]["username"] == "user0001"
        before = len(emulator.history())
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK
        assert len(emulator.history()) == before
        assert "0 confirmed" in out

    def test_edits_give_exactly_the_updates_and_identifier_change(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """Two edited fields become two updates, a changed sourcedId with the same username one rename."""
        rows = [person_row(n) for n in range(1, 21)]
        roster = write_roster(tmp_path / "users.csv", rows)
        assert sync_run(emulator, roster)[0] == EXIT_OK
        rows[1] = person_row(2, familyName="Newname")
        rows[2] = person_row(3, email="")  # a cleared field: replacePerson
        rows[3] = person_row(4, sourcedId="p9004")  # same username: changePersonIdentifier
        rows.append(person_row(21))
        write_roster(roster, rows)
        seen = len(emulator.history())
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK, out
        ops = [(e.operation, e.sync_key, e.new_key) for e in emulator.history()[seen:]]
        assert sorted(ops) == sorted(
            [
                ("changePersonIdentifier", "p0004", "p9004"),
                ("createPerson", "p0021", ""),
                ("replacePerson", "p0003", ""),
                ("updatePerson", "p0002", ""),
            ]
        )
        persons = emulator.persons()
        assert "p0004" not in persons
        assert persons["p9004"].username == "user0004"
        assert persons["p0002"].family_name == "Newname"
        assert persons["p0003"].email == ""
        snapshot = snapshot_of(tmp_path / "state")
        assert set(snapshot) == set(persons)
        assert snapshot["p0002"]["family_name"] == "Newname"

    def test_rejected_rows_are_never_sent(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """A row with an unknown role is reported with its line and not sent; the others are; exit 1."""
        rows = [person_row(1), person_row(2, role="wizard"), person_row(3)]
        roster = write_roster(tmp_path / "users.csv", rows)
        code, _, err = sync_run(emulator, roster)
        assert code == EXIT_FAILED
        assert sorted(emulator.persons()) == ["p0001", "p0003"]
        assert "users.csv:3" in err
        assert "wizard" in err

    def test_journal_pairs_every_request_with_its_answer(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]], capsys: Any
    ) -> None:
        """Every journalled request has messageIdRef equal to its messageIdentifier; reconcile says so."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 6)])
        assert sync_run(emulator, roster)[0] == EXIT_OK
        with StateStore.open(tmp_path / "state", exclusive=False) as store:
            entries = store.journal(store.last_run_id())
        assert len(entries) == 5
        assert all(e.message_id_ref == e.message_identifier for e in entries)
        sent_ids = {e.message_identifier for e in emulator.history()}
        assert {e.message_identifier for e in entries} == sent_ids
        code = main(["reconcile", "--state", str(tmp_path / "state"), "--format", "json"])
        out = capsys.readouterr().out
        assert code == EXIT_OK
        rows = json.loads(out)["requests"]
        assert len(rows) == 5
        assert {r["messageIdentifier"] for r in rows} == sent_ids

    def test_logs_one_event_per_request_without_secrets(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """Each request is one JSON log event with both ids; no password appears anywhere in the output."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        code, out, err = sync_run(emulator, roster, "--report", str(tmp_path / "run.html"))
        assert code == EXIT_OK
        events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        requests = [e for e in events if e["event"] == "ims_request"]
        assert len(requests) == 3
        assert all(e["message_identifier"] == e["message_id_ref"] for e in requests)
        everything = out + err + (tmp_path / "run.html").read_text(encoding="utf-8")
        for state_file in (tmp_path / "state").iterdir():
            everything += state_file.read_bytes().decode("latin-1")
        assert PASSWORD not in everything
        assert "Secret-1-pw" not in everything

    def test_plan_sends_nothing(
        self, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`plan` reports the creates as JSON and sends no request."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        state = tmp_path / "state"
        code = main(["plan", str(roster), "-m", "oneroster-users", "--state", str(state), "--format", "json"])
        assert code == EXIT_OK
        report = json.loads(capsys.readouterr().out)
        assert report["summary"]["create"] == 3
        assert emulator.history() == []
        assert "Secret-1-pw" not in json.dumps(report)


class TestFailures:
    """Bad credentials, a dead service, a busy state and mass changes end with the documented exit codes."""

    def test_wrong_password_is_a_config_error(
        self,
        emulator: Emulator,
        tmp_path: Path,
        sync_run: Callable[..., tuple[int, str, str]],
        monkeypatch: Any,
    ) -> None:
        """A refused UsernameToken stops the run with exit 2, nothing confirmed, the password unprinted."""
        monkeypatch.setenv("IMS_ES_PASSWORD", "wrong-password-123")
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        code, out, err = sync_run(emulator, roster)
        assert code == EXIT_USAGE
        assert emulator.persons() == {}
        assert snapshot_of(tmp_path / "state") == {}
        assert "wrong-password-123" not in out + err

    def test_unreachable_service_opens_the_circuit(
        self,
        emulator_factory: Callable[..., Emulator],
        tmp_path: Path,
        sync_run: Callable[..., tuple[int, str, str]],
    ) -> None:
        """A service answering only 503 trips the circuit breaker: exit 4, snapshot untouched."""
        emulator = emulator_factory(error_rate=1.0, seed=1)
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 40)])
        code, _, err = sync_run(emulator, roster, "--circuit-threshold", "5", "--max-attempts", "1")
        assert code == EXIT_UNREACHABLE
        assert "unreachable" in err
        assert snapshot_of(tmp_path / "state") == {}

    def test_state_in_use_is_refused(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """A run on a state directory another run holds exits 2 with a clear message and sends nothing."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        with StateStore.open(tmp_path / "state"):
            code, _, err = sync_run(emulator, roster)
        assert code == EXIT_USAGE
        assert "in use" in err
        assert emulator.history() == []

    def test_mass_change_is_stopped_by_the_safety_limit(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """Changing 15 of 30 persons breaches the 10 % limit: exit 3, nothing sent, the flag named."""
        rows = [person_row(n) for n in range(1, 31)]
        roster = write_roster(tmp_path / "users.csv", rows)
        assert sync_run(emulator, roster)[0] == EXIT_OK
        seen = len(emulator.history())
        changed = [person_row(n, givenName="Changed") if n <= 15 else person_row(n) for n in range(1, 31)]
        write_roster(roster, changed)
        code, _, err = sync_run(emulator, roster)
        assert code == EXIT_SAFETY
        assert "--accept-changes 15" in err
        assert len(emulator.history()) == seen
        code, _, _ = sync_run(emulator, roster, "--accept-changes", "15")
        assert code == EXIT_OK
        assert emulator.persons()["p0001"].given_name == "Changed"

    def test_http_endpoint_is_refused(self, tmp_path: Path, sync_run: Any, emulator: Emulator) -> None:
        """An http:// endpoint is a usage error before anything is sent."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        code, _, err = sync_run(emulator, roster, "--endpoint", emulator.pms_url.replace("https:", "http:"))
        assert code == EXIT_USAGE
        assert "https" in err
        assert emulator.history() == []


class TestCommands:
    """validate, snapshot export and --help behave as documented."""

    def test_validate_reports_rejects_with_rows(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """validate prints each bad row with file and line and exits 1; a clean file exits 0."""
        bad = write_roster(tmp_path / "bad.csv", [person_row(1), person_row(2, username="")])
        assert main(["validate", str(bad), "-m", "oneroster-users"]) == EXIT_FAILED
        out = capsys.readouterr().out
        assert "bad.csv:3" in out
        good = write_roster(tmp_path / "good.csv", [person_row(1)])
        assert main(["validate", str(good), "-m", "oneroster-users"]) == EXIT_OK

    def test_snapshot_export_lists_confirmed_persons(
        self, emulator: Emulator, tmp_path: Path, sync_run: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """snapshot export writes every confirmed person as CSV, without passwords."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        assert sync_run(emulator, roster)[0] == EXIT_OK
        assert main(["snapshot", "export", "--state", str(tmp_path / "state")]) == EXIT_OK
        rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
        assert [r["sync_key"] for r in rows] == ["p0001", "p0002", "p0003"]
        assert "password" not in rows[0]

    @pytest.mark.parametrize("command", [[], ["plan"], ["run"], ["reconcile"], ["validate"], ["emulator"]])
    def test_every_command_has_help_with_an_example(
        self, command: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--help` exits 0 and shows an example."""
        assert main([*command, "--help"]) == EXIT_OK
        assert "Example" in capsys.readouterr().out


class TestRunOptions:
    """Mass creates, the live WSDL and adoption through the command line."""

    def test_batched_creates_use_create_persons(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """--batch-size 5 sends 23 creates as five createPersons requests and confirms everyone."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 24)])
        code, out, _ = sync_run(emulator, roster, "--batch-size", "5")
        assert code == EXIT_OK, out
        assert len(emulator.persons()) == 23
        with StateStore.open(tmp_path / "state", exclusive=False) as store:
            entries = store.journal(store.last_run_id())
        assert [e.operation for e in entries] == ["createPersons"] * 5
        assert sum(len(e.items) for e in entries) == 23

    def test_batch_larger_than_the_budget_is_refused(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """A batch bigger than --max-in-flight would break itslearning's rule: usage error, nothing sent."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        code, _, err = sync_run(emulator, roster, "--batch-size", "20")
        assert code == EXIT_USAGE
        assert "--batch-size 20" in err
        assert emulator.history() == []

    def test_live_wsdl_can_replace_the_bundled_one(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """--wsdl ENDPOINT?singleWsdl loads the service's own WSDL and the run works the same."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        code, _, _ = sync_run(emulator, roster, "--wsdl", emulator.pms_url + "?singleWsdl")
        assert code == EXIT_OK
        assert len(emulator.persons()) == 3

    def test_snapshot_adopt_then_run_creates_nobody_again(
        self,
        emulator: Emulator,
        tmp_path: Path,
        sync_run: Callable[..., tuple[int, str, str]],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """After adopting a populated site into a fresh state, the same roster sends no create at all."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 8)])
        assert sync_run(emulator, roster)[0] == EXIT_OK
        fresh = tmp_path / "fresh-state"
        code = main(
            [
                "snapshot",
                "adopt",
                "--state",
                str(fresh),
                "-m",
                "oneroster-users",
                "--endpoint",
                emulator.pms_url,
                "--ca-bundle",
                str(emulator.ca_path),
                "--page-size",
                "3",
            ]
        )
        assert code == EXIT_OK
        assert "adopted 7 persons in 3 pages" in capsys.readouterr().out
        seen = len(emulator.history())
        code, out, _ = sync_run(emulator, roster, "--state", str(fresh))
        assert code == EXIT_OK, out
        assert [e.operation for e in emulator.history()[seen:]] == []
