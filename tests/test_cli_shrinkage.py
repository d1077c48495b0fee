"""Truncated exports are never read as leavers: `run` and `plan` refuse a roster file with no data rows,
or one that lost more than half of the rows of the last successful run, against the emulator over HTTPS."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from sync.cli.output import EXIT_OK, EXIT_SAFETY, EXIT_USAGE
from sync.emulator import Emulator
from sync.plan.shrinkage import Shrinkage, check_shrinkage
from sync.read.roster_set import read_roster_set
from sync.state.store import StateStore
from tests.checks import csv_rows, person_row, write_roster
from tests.test_cli_groups import Cli, fixture_cli, remote  # noqa: F401 - the `cli` fixture

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
FLAG = "--accept-shrunk-roster"


def run_users(cli: Cli, emulator: Emulator, roster: Path, state: Path, *extra: str) -> tuple[int, str, str]:
    """`ims-sync run` of a users.csv through oneroster-users."""
    return cli("run", str(roster), "-m", "oneroster-users", "--state", str(state), *remote(emulator), *extra)


def people(tmp_path: Path, count: int) -> Path:
    """A users.csv of `count` people."""
    return write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, count + 1)])


def emptied(cli: Cli, emulator: Emulator, tmp_path: Path, count: int) -> tuple[Path, Path]:
    """(users.csv, state) after a run of `count` people, the file then left with its header only."""
    state = tmp_path / "state"
    roster = people(tmp_path, count)
    assert run_users(cli, emulator, roster, state)[0] == EXIT_OK
    write_roster(roster, [])
    return roster, state


class TestCheck:
    """The pure check: counts now against the last successful run's."""

    def test_a_loss_of_more_than_half_is_refused_half_is_not(self) -> None:
        """60 % fewer rows is refused, 50 % or 40 % fewer is not; a new file is compared with nothing."""
        before = {"users.csv": 10, "enrollments.csv": 10}
        assert check_shrinkage({"users.csv": 4, "enrollments.csv": 5, "new.csv": 1}, before) == [
            Shrinkage(file="users.csv", now=4, before=10)
        ]
        assert check_shrinkage({"users.csv": 6}, before) == []

    def test_without_earlier_counts_only_an_empty_file_is_refused(self) -> None:
        """A first run refuses a file with no data rows, and nothing else."""
        assert check_shrinkage({"users.csv": 1, "orgs.csv": 0}, None) == [
            Shrinkage(file="orgs.csv", now=0, before=None)
        ]


class TestRun:
    """`ims-sync run` refuses a shrunk roster before planning; the flag lets one reviewed export through."""

    def test_header_only_users_on_a_snapshot_of_five_is_refused(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        """Header-only users.csv after a run of 5 people: exit 2, nothing sent, file, counts, flag named."""
        roster, state = emptied(cli, emulator, tmp_path, 5)
        seen = len(emulator.history())
        code, out, err = run_users(cli, emulator, roster, state, "--deletes")
        assert code == EXIT_USAGE, out + err
        assert len(emulator.history()) == seen
        assert len(emulator.persons()) == 5
        assert "roster file users.csv has no data rows; the last successful run read 5" in err
        assert FLAG in err

    def test_the_flag_lets_the_plan_proceed(self, emulator: Emulator, cli: Cli, tmp_path: Path) -> None:
        """With the flag, the header-only users.csv is planned and its 5 deletions are sent."""
        roster, state = emptied(cli, emulator, tmp_path, 5)
        code, out, err = run_users(cli, emulator, roster, state, "--deletes", FLAG)
        assert code == EXIT_OK, out + err
        assert emulator.persons() == {}
        assert "accepted with --accept-shrunk-roster" in err

    def test_the_flag_leaves_the_safety_limit_in_force(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        """With the flag, 30 deletions out of 30 still breach the safety limit: exit 3, nothing deleted."""
        roster, state = emptied(cli, emulator, tmp_path, 30)
        code, out, err = run_users(cli, emulator, roster, state, "--deletes", FLAG)
        assert code == EXIT_SAFETY, out + err
        assert len(emulator.persons()) == 30

    def test_sixty_percent_fewer_is_refused_forty_percent_fewer_is_not(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        """20 rows, then 8 (60 % fewer): refused; then 12 (40 % fewer): planned and run."""
        state = tmp_path / "state"
        roster = people(tmp_path, 20)
        assert run_users(cli, emulator, roster, state)[0] == EXIT_OK
        write_roster(roster, [person_row(n) for n in range(1, 9)])
        code, out, err = run_users(cli, emulator, roster, state)
        assert code == EXIT_USAGE, out + err
        assert "users.csv has 8 data rows; the last successful run read 20 (60% fewer" in err
        write_roster(roster, [person_row(1, familyName="Renamed"), *(person_row(n) for n in range(2, 13))])
        code, out, err = run_users(cli, emulator, roster, state)
        assert code == EXIT_OK, out + err
        assert emulator.persons()["p0001"].family_name == "Renamed"

    def test_a_refused_run_is_not_the_measure_of_the_next(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        """The counts of a refused (or accepted) run are the measure only once that run went to the end."""
        state = tmp_path / "state"
        roster = people(tmp_path, 20)
        assert run_users(cli, emulator, roster, state)[0] == EXIT_OK
        write_roster(roster, [person_row(n) for n in range(1, 5)])
        assert run_users(cli, emulator, roster, state)[0] == EXIT_USAGE
        assert "read 20" in run_users(cli, emulator, roster, state)[2]  # still measured against 20
        assert run_users(cli, emulator, roster, state, FLAG)[0] == EXIT_OK
        assert run_users(cli, emulator, roster, state)[0] == EXIT_OK  # 4 is the new measure

    def test_first_run_with_an_empty_file_is_refused(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        """A first run (no earlier counts) refuses a header-only users.csv."""
        roster = write_roster(tmp_path / "users.csv", [])
        code, out, err = run_users(cli, emulator, roster, tmp_path / "state")
        assert code == EXIT_USAGE, out + err
        assert "users.csv has no data rows (no earlier run to compare with)" in err
        assert FLAG in err
        assert emulator.history() == []

    def test_a_set_whose_enrollments_shrink_is_refused(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        """A OneRoster folder whose enrollments.csv lost most rows: exit 2, nothing sent, the file named."""
        folder = shutil.copytree(SAMPLES / "oneroster", tmp_path / "roster")
        common = ["--mapping", "oneroster", "--state", str(tmp_path / "state"), *remote(emulator)]
        assert cli("run", str(folder), *common)[0] == EXIT_OK
        enrollments = folder / "enrollments.csv"
        with enrollments.open(encoding="utf-8-sig", newline="") as fh:
            lines = list(csv.reader(fh))
        with enrollments.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(lines[:11])  # the header and 10 of 39 rows
        seen = len(emulator.history())
        code, out, err = cli("run", str(folder), *common, "--deletes")
        assert code == EXIT_USAGE, out + err
        read = len(lines) - 1
        assert f"roster file enrollments.csv has 10 data rows; the last successful run read {read}" in err
        assert "users.csv" not in err
        assert len(emulator.history()) == seen

    def test_a_stopped_run_is_not_the_measure(self, emulator: Emulator, cli: Cli, tmp_path: Path) -> None:
        """Counts of a stopped run or of an adopt are passed over for the last `run` that went to the end."""
        state = tmp_path / "state"
        roster = people(tmp_path, 20)
        assert run_users(cli, emulator, roster, state)[0] == EXIT_OK
        with StateStore.open(state) as store:
            for command, status in (("run", "stopped"), ("adopt", "ok")):
                run_id = store.begin_run(command=command, roster=str(roster), mapping="oneroster-users")
                store.end_run(run_id, status=status, summary={}, roster_rows={"users.csv": 2})
        write_roster(roster, [person_row(n) for n in range(1, 5)])
        code, out, err = run_users(cli, emulator, roster, state)
        assert code == EXIT_USAGE, out + err
        assert "users.csv has 4 data rows; the last successful run read 20" in err


class TestPlanAndValidate:
    """`plan` refuses as `run` does; `validate` (no state) reports a file with no data rows."""

    def test_plan_refuses_a_header_only_file_after_a_run(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        """After a run of 5, `plan` of a header-only users.csv exits 2; with the flag it plans 5 deletions."""
        roster, state = emptied(cli, emulator, tmp_path, 5)
        plan = ["plan", str(roster), "-m", "oneroster-users", "--state", str(state), "--format", "json"]
        code, out, err = cli(*plan)
        assert code == EXIT_USAGE, out + err
        assert "users.csv has no data rows; the last successful run read 5" in err
        code, out, err = cli(*plan, FLAG)
        assert code == EXIT_OK, out + err
        assert '"delete": 5' in out

    def test_plan_without_state_refuses_an_empty_file(self, cli: Cli, tmp_path: Path) -> None:
        """`plan` of a header-only file with no state exits 2."""
        roster = write_roster(tmp_path / "users.csv", [])
        code, _, err = cli("plan", str(roster), "-m", "oneroster-users", "--state", str(tmp_path / "state"))
        assert code == EXIT_USAGE
        assert "no data rows" in err

    def test_validate_reports_an_empty_file(self, cli: Cli, tmp_path: Path) -> None:
        """`validate` says a file has no data rows, and that plan and run refuse it."""
        roster = write_roster(tmp_path / "users.csv", [])
        code, out, err = cli("validate", str(roster), "-m", "oneroster-users")
        assert code == EXIT_OK, out
        assert "users.csv: no data rows; plan and run refuse it (--accept-shrunk-roster)" in out + err


class TestCounts:
    """What a file's data rows are: every non-blank record, rejected ones included, a file counted once."""

    def test_rejected_rows_count_blank_lines_do_not(self, tmp_path: Path) -> None:
        """Three good rows, one rejected (no sync key) and a blank line: 4 data rows."""
        roster = write_roster(
            tmp_path / "users.csv", [*(person_row(n) for n in (1, 2, 3)), person_row(4, sourcedId="")]
        )
        with roster.open("a", encoding="utf-8") as fh:
            fh.write(",,,,,,,,\n")
        result = read_roster_set(roster, "oneroster-users")
        assert len(result.rejects) == 1
        assert result.file_rows == {"users.csv": 4}

    def test_a_set_counts_each_file_once(self) -> None:
        """The OneRoster sample: each file's CSV rows, users.csv once though two mappings read it."""
        folder = SAMPLES / "oneroster"
        names = ("users.csv", "orgs.csv", "classes.csv", "enrollments.csv")
        expected = {name: len(csv_rows(folder / name)) for name in names}
        assert read_roster_set(folder, "oneroster").file_rows == expected
