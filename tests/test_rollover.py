"""Rollover tools: `--only` and the config file's pause windows, end to end against the emulator (HTTPS)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_OK, EXIT_SAFETY, EXIT_USAGE
from sync.cli.stages import read as read_roster
from sync.emulator import Emulator
from sync.models import DeletesMode, Plan
from sync.plan.diff import Snapshots, plan_set
from sync.plan.selection import PauseWindow, active_window, select_operations
from tests.checks import csv_rows, person_row, run_args, set_credentials, write_roster

Night = Callable[..., tuple[int, str, str]]


@pytest.fixture(name="night")
def fixture_night(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Night:
    """`night(emulator, roster, *extra, config=None)` runs `ims-sync run` (JSON logs) and returns
    (exit code, stdout, stderr)."""
    set_credentials(monkeypatch)

    def night(
        emulator: Emulator, roster: Path, *extra: str, config: Path | None = None
    ) -> tuple[int, str, str]:
        head = ["--config", str(config)] if config is not None else []
        args = run_args(emulator, roster, tmp_path / "state", "--max-attempts", "2", *extra)
        code = main([*head, "--log-format", "json", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return night


def _events(err: str, name: str) -> list[dict[str, Any]]:
    return [
        e for line in err.splitlines() if line.startswith("{") and (e := json.loads(line))["event"] == name
    ]


def _rollover_roster(emulator: Emulator, tmp_path: Path, night: Night) -> Path:
    """A first night of 20 persons, then a roster with 2 newcomers, 2 edits and 2 leavers."""
    rows = [person_row(n) for n in range(1, 21)]
    roster = write_roster(tmp_path / "users.csv", rows)
    assert night(emulator, roster)[0] == EXIT_OK
    rows[1] = person_row(2, familyName="Newname")
    rows[2] = person_row(3, familyName="Other")
    del rows[18:20]  # p0019 and p0020 leave
    return write_roster(roster, [*rows, person_row(21), person_row(22)])


def _pause_config(path: Path, start: date, end: date, allow: str = '["create"]') -> Path:
    path.write_text(f"[[pause]]\nfrom = {start}\nto = {end}\nallow = {allow}\n", encoding="utf-8")
    return path


class TestOnly:
    """`--only` sends the operation types named and holds the others, listed with their reason."""

    def test_only_create_sends_creates_then_a_night_without_it_sends_the_rest(
        self, emulator: Emulator, tmp_path: Path, night: Night
    ) -> None:
        """With --only create only the newcomers reach IMS ES; the next night without it sends the rest."""
        roster = _rollover_roster(emulator, tmp_path, night)
        seen = len(emulator.history())
        report = tmp_path / "run.json"
        code, out, err = night(emulator, roster, "--only", "create", "--deletes", "--report", str(report))
        assert code == EXIT_OK, out + err
        sent = sorted((e.operation, e.sync_key) for e in emulator.history()[seen:])
        assert sent == [("createPerson", "p0021"), ("createPerson", "p0022")]
        persons = emulator.persons()
        assert persons["p0002"].family_name == "Family2"
        assert {"p0019", "p0020"} <= set(persons)
        meta = json.loads(report.read_text(encoding="utf-8"))["meta"]
        assert meta["sending"] == "only create"
        held = {(h["op"], h["object"], h["syncKey"], h["reason"]) for h in meta["held"]}
        assert held == {
            ("update", "person", "p0002", "held: not in --only"),
            ("update", "person", "p0003", "held: not in --only"),
            ("delete", "person", "p0019", "held: not in --only"),
            ("delete", "person", "p0020", "held: not in --only"),
        }
        assert _events(err, "only")[0]["held"] == 4
        seen = len(emulator.history())
        code, out, err = night(emulator, roster, "--deletes")
        assert code == EXIT_OK, out + err
        sent = sorted((e.operation, e.sync_key) for e in emulator.history()[seen:])
        assert sent == [
            ("deletePerson", "p0019"),
            ("deletePerson", "p0020"),
            ("updatePerson", "p0002"),
            ("updatePerson", "p0003"),
        ]
        assert emulator.persons()["p0002"].family_name == "Newname"

    def test_plan_says_what_the_run_sends_and_lists_the_held(
        self, emulator: Emulator, tmp_path: Path, night: Night, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The dry run with --only update names the types sent in its header and lists the creates as held."""
        roster = _rollover_roster(emulator, tmp_path, night)
        plan_md = tmp_path / "plan.md"
        state = str(tmp_path / "state")
        args = ["plan", str(roster), "-m", "oneroster-users", "--state", state, "--only", "update"]
        assert main([*args, "-o", str(plan_md)]) == EXIT_OK
        text = plan_md.read_text(encoding="utf-8")
        assert "**Sending:** only update" in text
        assert "| Create person | p0021 | held: not in --only |" in text
        assert "this run sends only update; 2 operations held" in capsys.readouterr().err

    def test_only_from_the_config_file_and_limits_count_what_is_sent(
        self, emulator: Emulator, tmp_path: Path, night: Night
    ) -> None:
        """`only = ["create"]` in [sync] holds 15 updates of 20 persons; the safety limit ignores them."""
        rows = [person_row(n) for n in range(1, 21)]
        roster = write_roster(tmp_path / "users.csv", rows)
        assert night(emulator, roster)[0] == EXIT_OK
        edited = [person_row(n, familyName="Renamed") for n in range(1, 16)]
        write_roster(roster, [*edited, *rows[15:], person_row(21)])
        config = tmp_path / "sync.toml"
        config.write_text('[sync]\nonly = ["create"]\n', encoding="utf-8")
        seen = len(emulator.history())
        code, out, err = night(emulator, roster, config=config)
        assert code == EXIT_OK, out + err
        assert [(e.operation, e.sync_key) for e in emulator.history()[seen:]] == [("createPerson", "p0021")]
        assert _events(err, "only")[0]["held"] == 15
        code, out, err = night(emulator, roster)
        assert code == EXIT_SAFETY, out + err

    def test_only_delete_without_deletes_sends_none_and_says_so(
        self, emulator: Emulator, tmp_path: Path, night: Night
    ) -> None:
        """--only delete without --deletes sends nothing and says why."""
        roster = _rollover_roster(emulator, tmp_path, night)
        seen = len(emulator.history())
        code, out, err = night(emulator, roster, "--only", "delete")
        assert code == EXIT_OK, out + err
        assert emulator.history()[seen:] == []
        assert _events(err, "only_without_deletes")

    def test_unknown_type_is_a_usage_error(self, emulator: Emulator, tmp_path: Path, night: Night) -> None:
        """--only with a name that is no operation type exits 2 naming the accepted names."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        code, _, err = night(emulator, roster, "--only", "create,remove")
        assert code == EXIT_USAGE
        assert "changeIdentifier" in err
        assert emulator.history() == []


class TestPauseWindows:
    """A run inside a config file's pause window sends only what the window allows, and says so."""

    def test_window_covering_today_sends_only_creates(
        self, emulator: Emulator, tmp_path: Path, night: Night
    ) -> None:
        """Inside a window allowing creates, only creates are sent, a pause_window event is logged, exit 0."""
        roster = _rollover_roster(emulator, tmp_path, night)
        today = date.today()
        config = _pause_config(tmp_path / "sync.toml", today - timedelta(days=1), today + timedelta(days=1))
        seen = len(emulator.history())
        report = tmp_path / "run.csv"
        code, out, err = night(emulator, roster, "--deletes", "--report", str(report), config=config)
        assert code == EXIT_OK, out + err
        assert sorted(e.operation for e in emulator.history()[seen:]) == ["createPerson", "createPerson"]
        (event,) = _events(err, "pause_window")
        assert event["allow"] == ["create"]
        assert event["held"] == 4
        held = [row for row in csv_rows(report) if row["outcome"] == "held"]
        assert sorted((row["kind"], row["sync_key"]) for row in held) == [
            ("delete", "p0019"),
            ("delete", "p0020"),
            ("update", "p0002"),
            ("update", "p0003"),
        ]
        assert all(row["reason"].startswith("held: pause window") for row in held)

    def test_window_not_covering_today_sends_everything(
        self, emulator: Emulator, tmp_path: Path, night: Night
    ) -> None:
        """A window that ended yesterday restricts nothing."""
        roster = _rollover_roster(emulator, tmp_path, night)
        yesterday = date.today() - timedelta(days=1)
        config = _pause_config(tmp_path / "sync.toml", yesterday - timedelta(days=30), yesterday)
        seen = len(emulator.history())
        code, out, err = night(emulator, roster, "--deletes", config=config)
        assert code == EXIT_OK, out + err
        assert len(emulator.history()[seen:]) == 6
        assert not _events(err, "pause_window")

    @pytest.mark.parametrize(
        ("window", "named"),
        [
            ("from = 2027-08-15\nto = 2027-06-20\n", "to = 2027-06-20 is before from"),
            (
                'from = 2027-06-20\nto = 2027-08-15\nallow = ["create", "purge"]\n',
                "allow = ['create', 'purge']",
            ),
            ('from = "June"\nto = 2027-08-15\n', "from = 'June' is not a date"),
        ],
    )
    def test_bad_window_is_a_config_error(
        self, emulator: Emulator, tmp_path: Path, night: Night, window: str, named: str
    ) -> None:
        """A window ending before it starts, allowing an unknown type or without a date exits 2 naming it."""
        config = tmp_path / "sync.toml"
        config.write_text(f"[[pause]]\n{window}", encoding="utf-8")
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        code, _, err = night(emulator, roster, config=config)
        assert code == EXIT_USAGE
        assert "sync.toml" in err
        assert "[[pause]] number 1" in err
        assert named in err
        assert emulator.history() == []


class TestSelection:
    """The pure filter: --only intersected with the window, held operations with their reason."""

    def test_window_and_only_intersect(self, tmp_path: Path) -> None:
        """Inside a window allowing create and update, --only update,delete holds a create for --only."""
        roster = read_roster(write_roster(tmp_path / "users.csv", [person_row(1)]), "oneroster-users")
        plan: Plan = plan_set(roster.persons, Snapshots())
        window = PauseWindow(
            start=date(2027, 6, 20), end=date(2027, 8, 15), allow=frozenset({"create", "update"})
        )
        assert active_window([window], date(2027, 8, 15)) is window
        assert active_window([window], date(2027, 8, 16)) is None
        selection = select_operations(
            plan.operations,
            plan.deletions,
            deletes=DeletesMode.OFF,
            only=frozenset({"update", "delete"}),
            window=window,
        )
        assert selection.send == []
        assert [h.reason for h in selection.held] == ["held: not in --only"]
        assert selection.describe() == "only update (pause window 2027-06-20 to 2027-08-15)"

    def test_several_windows_the_first_covering_one_rules(self) -> None:
        """Of several windows, the one covering the day applies; where two overlap, the first listed."""
        summer = PauseWindow(start=date(2027, 6, 20), end=date(2027, 8, 15), allow=frozenset({"create"}))
        winter = PauseWindow(start=date(2027, 12, 20), end=date(2028, 1, 3))
        late = PauseWindow(start=date(2027, 8, 1), end=date(2027, 8, 31), allow=frozenset({"update"}))
        windows = [summer, winter, late]
        assert active_window(windows, date(2027, 6, 19)) is None
        assert active_window(windows, date(2027, 6, 20)) is summer
        assert active_window(windows, date(2027, 8, 10)) is summer
        assert active_window(windows, date(2027, 8, 16)) is late
        assert active_window(windows, date(2028, 1, 1)) is winter
        selection = select_operations([], [], deletes=DeletesMode.DELETE, window=winter)
        assert selection.describe() == "nothing (pause window 2027-12-20 to 2028-01-03)"
