"""`plan` reads the snapshot in a thread beside the roster (sync/cli/beside.py): what goes wrong is still
told in the order of a reading one after the other (the roster's errors, then the state's that opening
it raised, then a shrunk roster's refusal), and a night's plan is the same as read one after the other."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sync.cli import approval, stages
from sync.cli.app import main
from sync.cli.beside import read_beside
from sync.cli.output import EXIT_USAGE
from sync.models.kinds import PERSON
from sync.read.mapping import load_mapping
from sync.read.roster import read_roster
from sync.state.schema import DB_NAME, SCHEMA_VERSION
from sync.state.store import StateStore
from tests.checks import person_row, write_roster
from tests.test_state_faults import cli, one_clear_error

HEADER_ONLY = "sourcedId,status,role,username,givenName,familyName,email,sms,password\n"


@pytest.fixture
def newer_state(tmp_path: Path) -> Path:
    """A state directory whose database a newer version wrote: every command refuses to open it."""
    state = tmp_path / "state"
    StateStore.open(state).close()
    connection = sqlite3.connect(state / DB_NAME)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    return state


def _plan(roster: Path, state: Path) -> tuple[int, str]:
    return cli(["plan", str(roster), "-m", "oneroster-users", "--state", str(state)])


def test_the_rosters_error_comes_before_the_states(tmp_path: Path, newer_state: Path) -> None:
    """A roster without a required column and a state nobody may open: the roster's error is told."""
    roster = tmp_path / "users.csv"
    roster.write_text("sourcedId,status\np1,active\n", encoding="utf-8")
    code, err = _plan(roster, newer_state)
    assert code == EXIT_USAGE
    message = one_clear_error(err, "users.csv", "required column 'username'")
    assert "schema version" not in message


def test_a_state_that_does_not_open_comes_before_a_shrunk_roster(tmp_path: Path, newer_state: Path) -> None:
    """As before the thread: the store opens before the roster's size is judged against its runs."""
    roster = tmp_path / "users.csv"
    roster.write_text(HEADER_ONLY, encoding="utf-8")
    code, err = _plan(roster, newer_state)
    assert code == EXIT_USAGE
    one_clear_error(err, f"schema version {SCHEMA_VERSION + 1}")


def test_a_shrunk_roster_is_refused_when_the_state_opens(tmp_path: Path) -> None:
    roster = tmp_path / "users.csv"
    roster.write_text(HEADER_ONLY, encoding="utf-8")
    state = tmp_path / "state"
    StateStore.open(state).close()
    code, err = _plan(roster, state)
    assert code == EXIT_USAGE
    one_clear_error(err, "has no data rows", "--accept-shrunk-roster")


def test_a_nights_plan_is_the_one_read_in_turn(tmp_path: Path) -> None:
    """A seeded snapshot read beside the roster: the snapshot, runs and repairs a reading in turn gives,
    and the plan sees the roster's one new person and one changed one."""
    rows = [person_row(n) for n in range(1, 40)]
    roster = write_roster(tmp_path / "users.csv", rows)
    state = tmp_path / "state"
    known = read_roster(roster, load_mapping("oneroster-users")).frame.drop(
        columns=["password", "row", "delete"]
    )
    known = known.drop(index="p0039")
    known.loc["p0002", "family_name"] = "Renamed"
    with StateStore.open(state) as store:
        store.seed(PERSON, known)
    result, read = read_beside(state, lambda: stages.read(roster, "oneroster-users"))
    assert read.error is None
    assert read.opened
    with StateStore.open(state, exclusive=False) as store:
        in_turn = stages.snapshots(store)
        assert read.runs == store.runs()
        assert read.repairs == store.repairs()
        assert read.snapshot_state == approval.snapshot_state(store, in_turn)
    assert read.snapshots.persons.equals(in_turn.persons)
    assert len(read.snapshots.persons) == 38
    assert result.file_rows == stages.read(roster, "oneroster-users").file_rows
    out = tmp_path / "plan.json"
    assert main(["plan", str(roster), "-m", "oneroster-users", "--state", str(state), "-o", str(out)]) == 0
    ops = json.loads(out.read_text(encoding="utf-8"))["operations"]
    assert sorted((op["op"], op["syncKey"]) for op in ops) == [
        ("create", "p0039"),
        ("update", "p0002"),
    ]
