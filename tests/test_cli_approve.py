"""Approved plans end to end: `plan --format json` carries a fingerprint; `run --plan` sends only that plan
and `run --approve` only that plan's breaches, against the emulator over real HTTPS."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.cli.app import main
from sync.cli.approval import Digests
from sync.cli.output import EXIT_OK, EXIT_SAFETY, EXIT_USAGE
from sync.emulator import Emulator
from tests.checks import person_row, write_roster
from tests.conftest import PASSWORD, USERNAME

Command = Callable[..., tuple[int, str, str]]


@pytest.fixture(name="cli")
def fixture_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Command:
    """`cli(emulator, "plan"|"run", roster, *extra)`: (exit code, stdout, stderr) of one command."""
    monkeypatch.setenv("IMS_ES_USERNAME", USERNAME)
    monkeypatch.setenv("IMS_ES_PASSWORD", PASSWORD)

    def command(emulator: Emulator, name: str, roster: Path, *extra: str) -> tuple[int, str, str]:
        common = ["-m", "oneroster-users", "--state", str(tmp_path / "state")]
        service = ["--endpoint", emulator.pms_url, "--ca-bundle", str(emulator.ca_path)]
        code = main([name, str(roster), *common, *(service if name == "run" else []), *extra])
        out, err = capsys.readouterr()
        return code, out, err

    return command


def _plan(cli: Command, emulator: Emulator, roster: Path, out: Path, *extra: str) -> dict[str, object]:
    """Write the JSON plan to `out` and return it."""
    code, _, err = cli(emulator, "plan", roster, "--format", "json", "-o", str(out), *extra)
    assert code == EXIT_OK, err
    plan: dict[str, object] = json.loads(out.read_text())
    return plan


def _synced(cli: Command, emulator: Emulator, tmp_path: Path, count: int = 30) -> Path:
    """A roster of `count` persons, run once (the snapshot holds them)."""
    roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, count + 1)])
    assert cli(emulator, "run", roster)[0] == EXIT_OK
    return roster


class TestReviewedPlan:
    """`run --plan` sends the reviewed plan, or nothing and says what differs."""

    def test_plan_json_carries_its_fingerprint_and_parts(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """The JSON plan ends with a SHA-256 fingerprint and the parts it hashed; plan prints it too."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        code, _, err = cli(emulator, "plan", roster, "--format", "json", "-o", str(tmp_path / "p.json"))
        plan = json.loads((tmp_path / "p.json").read_text())
        assert code == EXIT_OK
        assert re.fullmatch(r"[0-9a-f]{64}", plan["fingerprint"])
        assert list(plan)[:6] == ["summary", "operations", "rejects", "conflicts", "deletions", "meta"]
        assert set(plan["fingerprintParts"]) >= {"roster:users.csv", "mapping", "snapshot", "operations"}
        assert plan["fingerprintParts"]["setting:deletes"] == "off"
        assert plan["fingerprint"] in err

    def test_markdown_and_html_plans_show_the_same_fingerprint(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """The plan a reviewer reads (Markdown, HTML) names the fingerprint the JSON plan carries."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        fingerprint = _plan(cli, emulator, roster, tmp_path / "p.json")["fingerprint"]
        for fmt in ("md", "html"):
            out = tmp_path / f"p.{fmt}"
            assert cli(emulator, "plan", roster, "--format", fmt, "-o", str(out))[0] == EXIT_OK
            assert f"{fingerprint}" in out.read_text(encoding="utf-8"), fmt
        assert f"- **Fingerprint:** {fingerprint}" in (tmp_path / "p.md").read_text(encoding="utf-8")

    def test_the_reviewed_plan_runs(self, emulator: Emulator, tmp_path: Path, cli: Command) -> None:
        """A plan run unchanged with --plan sends exactly its operations."""
        roster = _synced(cli, emulator, tmp_path)
        write_roster(roster, [person_row(n) for n in range(1, 33)])
        _plan(cli, emulator, roster, tmp_path / "plan.json")
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "--plan", str(tmp_path / "plan.json"))
        assert code == EXIT_OK, err
        sent = sorted((e.operation, e.sync_key) for e in emulator.history()[seen:])
        assert sent == [("createPerson", "p0031"), ("createPerson", "p0032")]

    def test_a_roster_changed_by_one_byte_is_refused(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """One byte more in users.csv after the review: exit 2, nothing sent, the file named."""
        roster = _synced(cli, emulator, tmp_path)
        _plan(cli, emulator, roster, tmp_path / "plan.json")
        roster.write_bytes(roster.read_bytes() + b"\n")
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "--plan", str(tmp_path / "plan.json"))
        assert code == EXIT_USAGE
        assert "roster file users.csv changed" in err
        assert "nothing was sent" in err
        assert len(emulator.history()) == seen

    def test_a_plan_is_refused_after_a_run_moved_the_snapshot_on(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """A run between the review and the night changed the snapshot: the reviewed plan is refused."""
        roster = _synced(cli, emulator, tmp_path)
        rows = [person_row(n) for n in range(1, 31)]
        write_roster(roster, [*rows, person_row(31)])
        _plan(cli, emulator, roster, tmp_path / "plan.json")
        assert cli(emulator, "run", roster)[0] == EXIT_OK  # sends p0031: the snapshot moves on
        write_roster(roster, [*rows, person_row(31)])  # the very same bytes as reviewed
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "--plan", str(tmp_path / "plan.json"))
        assert code == EXIT_USAGE
        assert "the snapshot moved on" in err
        assert "roster file" not in err
        assert len(emulator.history()) == seen

    def test_a_plan_is_refused_when_a_setting_changed(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """Reviewed without --deletes, run with --deletes delete: refused, the setting named."""
        roster = _synced(cli, emulator, tmp_path)
        write_roster(roster, [person_row(n) for n in range(1, 30)])
        _plan(cli, emulator, roster, tmp_path / "plan.json")
        seen = len(emulator.history())
        code, _, err = cli(
            emulator, "run", roster, "--plan", str(tmp_path / "plan.json"), "--deletes", "delete"
        )
        assert code == EXIT_USAGE
        assert "setting deletes was off, is now delete" in err
        assert len(emulator.history()) == seen

    def test_a_plan_is_refused_when_the_mapping_changed(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """A comment added to the mapping file after the review: refused, the mapping named."""
        roster = _synced(cli, emulator, tmp_path)
        mapping = tmp_path / "mine.toml"
        mapping.write_bytes((Path(__file__).parents[1] / "mappings" / "oneroster-users.toml").read_bytes())
        _plan(cli, emulator, roster, tmp_path / "plan.json", "-m", str(mapping))
        mapping.write_bytes(mapping.read_bytes() + b"# reviewed\n")
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "-m", str(mapping), "--plan", str(tmp_path / "plan.json"))
        assert code == EXIT_USAGE
        assert "the mapping changed" in err
        assert "roster file" not in err
        assert len(emulator.history()) == seen

    def test_a_oneroster_folder_plan_runs_and_a_changed_class_file_is_named(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """A set mapping's folder: the reviewed plan runs; one byte more in classes.csv names that file."""
        folder = tmp_path / "oneroster"
        shutil.copytree(Path(__file__).parents[1] / "samples" / "oneroster", folder)
        _plan(cli, emulator, folder, tmp_path / "plan.json", "-m", "oneroster")
        code, _, err = cli(emulator, "run", folder, "-m", "oneroster", "--plan", str(tmp_path / "plan.json"))
        assert code == EXIT_OK, err
        assert emulator.groups()
        _plan(cli, emulator, folder, tmp_path / "plan.json", "-m", "oneroster")
        (folder / "classes.csv").write_bytes((folder / "classes.csv").read_bytes() + b"\n")
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", folder, "-m", "oneroster", "--plan", str(tmp_path / "plan.json"))
        assert code == EXIT_USAGE
        assert "roster file classes.csv changed" in err
        assert "users.csv" not in err
        assert len(emulator.history()) == seen


class TestApprove:
    """`--approve FINGERPRINT` sends a breaching plan only when it is the plan with that fingerprint."""

    def _breaching(self, cli: Command, emulator: Emulator, tmp_path: Path) -> Path:
        roster = _synced(cli, emulator, tmp_path)
        write_roster(
            roster, [person_row(n, givenName="Changed") if n <= 15 else person_row(n) for n in range(1, 31)]
        )
        return roster

    def test_the_stopped_run_names_the_fingerprint_and_approve_sends_it(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """A run stopped by a limit prints the fingerprint and --approve; with it the 15 updates are sent."""
        roster = self._breaching(cli, emulator, tmp_path)
        fingerprint = _plan(cli, emulator, roster, tmp_path / "plan.json")["fingerprint"]
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster)
        assert code == EXIT_SAFETY
        assert f"--approve {fingerprint}" in err
        assert len(emulator.history()) == seen
        code, _, err = cli(emulator, "run", roster, "--approve", str(fingerprint))
        assert code == EXIT_OK, err
        assert len(emulator.history()) == seen + 15
        assert emulator.persons()["p0015"].given_name == "Changed"

    def test_a_wrong_fingerprint_sends_nothing(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """--approve with another plan's fingerprint: exit 3, nothing sent."""
        roster = self._breaching(cli, emulator, tmp_path)
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "--approve", "0" * 64)
        assert code == EXIT_SAFETY
        assert "is not this plan's fingerprint" in err
        assert len(emulator.history()) == seen


def test_roster_files_hashed_ahead_are_their_sha256(tmp_path: Path) -> None:
    """A folder's CSV files are hashed while the roster is read; any other file when asked; a file that
    cannot be read fails where its hash is asked for."""
    folder = tmp_path / "roster"
    folder.mkdir()
    (folder / "users.csv").write_bytes(b"sourcedId,username\nu1,kari\n" * 1000)
    (folder / "orgs.csv").write_bytes(b"sourcedId,name\no1,North\n")
    other = tmp_path / "extra.csv"
    other.write_bytes(b"x\n")
    digests = Digests(folder)
    for file in (folder / "users.csv", folder / "orgs.csv", other):
        assert digests.of(file) == hashlib.sha256(file.read_bytes()).hexdigest()
    with pytest.raises(OSError, match="gone"):
        Digests(tmp_path / "missing").of(tmp_path / "gone.csv")
