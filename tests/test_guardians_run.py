"""Guardian links and every person field end to end: `ims-sync run` against the emulator over HTTPS
(zeep), with a real state directory; each exchange is checked against itslearning's WSDL."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_FAILED, EXIT_OK
from sync.emulator import Emulator
from sync.models import Person
from tests.checks import run_args, set_credentials, snapshot_persons

MAPPING = """
[columns]
sync_key = "id"
username = "user"
given_name = "first"
family_name = "last"
role = "role"
birth_date = "born"
nickname = "nick"
prefix = "prefix"
street = "street"
street_extra = "street2"
postal_code = "zip"
city = "city"
gender = "sex"
children = "children"

[rules]
required = ["username", "role"]
identity = "username"

[values.role]
student = "Student"
guardian = "Carer"

[values.gender]
m = "Male"
f = "Female"
"""
HEADER = (
    "id",
    "user",
    "first",
    "last",
    "role",
    "born",
    "nick",
    "prefix",
    "street",
    "street2",
    "zip",
    "city",
    "sex",
)


def kid(n: int) -> dict[str, str]:
    """A student with every field set."""
    return dict(
        zip(
            HEADER,
            (f"kid-{n}", f"kid{n}", f"Kid{n}", "Hansen", "student", "2012-03-0" + str(n), f"K{n}", "",
             f"Skolevei {n}", "", "0155", "Oslo", "f" if n % 2 else "m"),
            strict=True,
        )
    ) | {"children": ""}  # fmt: skip


def guardian(key: str, children: str) -> dict[str, str]:
    """A carer linked to `children` (sync keys, comma-separated)."""
    return dict.fromkeys(HEADER, "") | {
        "id": key,
        "user": key,
        "first": "Kari",
        "last": "Hansen",
        "role": "guardian",
        "prefix": "Mrs",
        "children": children,
    }


def write(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """The roster CSV of `rows`."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*HEADER, "children"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(name="sync_run")
def fixture_sync_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """`sync_run(emulator, roster, *extra)`: `ims-sync run` with the mapping above; (exit, stdout, stderr)."""
    set_credentials(monkeypatch)
    mapping = tmp_path / "guardians.toml"
    mapping.write_text(MAPPING, encoding="utf-8")

    def run(emulator: Emulator, roster: Path, *extra: str) -> tuple[int, str, str]:
        # the last -m wins: this mapping instead of run_args' oneroster-users
        args = run_args(
            emulator, roster, tmp_path / "state", "-m", str(mapping), "--max-change-share", "1", *extra
        )
        code = main(["--log-format", "json", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def sent(emulator: Emulator, since: int) -> list[tuple[str, str]]:
    """(operation, sync key) of what the emulator decided since history position `since`."""
    return [(e.operation, e.sync_key) for e in emulator.history()[since:]]


class TestGuardians:
    """Children and every field reach itslearning, are read back, and change as itslearning requires."""

    def test_first_night_links_children_created_with_their_parent_and_second_sends_nothing(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """Children created in the parent's run are linked; every field reads back; a rerun sends nothing."""
        roster = write(tmp_path / "users.csv", [guardian("anna", "kid-1,kid-2"), kid(1), kid(2)])
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK, out
        persons = emulator.persons()
        assert persons["anna"].children == "kid-1,kid-2"
        assert persons["kid-1"] == Person(
            sync_key="kid-1", username="kid1", given_name="Kid1", family_name="Hansen", role="Student",
            birth_date="2012-03-01", nickname="K1", street="Skolevei 1", postal_code="0155", city="Oslo",
            gender="Female",
        )  # fmt: skip
        assert persons["kid-2"].gender == "Male"
        assert persons["anna"].prefix == "Mrs"
        order = [key for _, key in sent(emulator, 0)]
        assert order.index("anna") > max(order.index("kid-1"), order.index("kid-2"))
        assert snapshot_persons(tmp_path / "state") == persons
        before = len(emulator.history())
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK, out
        assert len(emulator.history()) == before

    def test_adding_a_child_updates_and_removing_one_replaces(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """A new child is an updatePerson (after the child's create); a removed one a replacePerson."""
        roster = write(tmp_path / "users.csv", [guardian("mum", "kid-1"), kid(1), kid(2)])
        assert sync_run(emulator, roster)[0] == EXIT_OK
        write(roster, [guardian("mum", "kid-1,kid-2,kid-3"), kid(1), kid(2), kid(3)])
        seen = len(emulator.history())
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK, out
        assert sent(emulator, seen) == [("createPerson", "kid-3"), ("updatePerson", "mum")]
        assert emulator.persons()["mum"].children == "kid-1,kid-2,kid-3"
        write(roster, [guardian("mum", "kid-3"), kid(1), kid(2), kid(3)])
        seen = len(emulator.history())
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK, out
        assert sent(emulator, seen) == [("replacePerson", "mum")]
        assert emulator.persons()["mum"].children == "kid-3"
        assert snapshot_persons(tmp_path / "state")["mum"].children == "kid-3"

    def test_a_link_skipped_before_its_child_existed_is_sent_when_the_child_is_created(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """A link to a child the export does not hold is rejected by line (the parent is still written),
        and made on the run that creates the child, though the parent's row did not change."""
        roster = write(tmp_path / "users.csv", [guardian("mum", "kid-1")])
        code, out, err = sync_run(emulator, roster)
        assert code == EXIT_FAILED
        assert "1 create" in out
        assert "1 rejected rows" in out
        assert "'kid-1'" in err
        assert "the link is left out" in err
        assert emulator.persons()["mum"].children == ""
        write(roster, [guardian("mum", "kid-1"), kid(1)])
        seen = len(emulator.history())
        code, out, _ = sync_run(emulator, roster)
        assert code == EXIT_OK, out
        assert sent(emulator, seen) == [("createPerson", "kid-1"), ("updatePerson", "mum")]
        assert emulator.persons()["mum"].children == "kid-1"

    def test_parent_portal_off_is_one_warning_and_exit_0(
        self,
        emulator_factory: Callable[..., Emulator],
        tmp_path: Path,
        sync_run: Callable[..., tuple[int, str, str]],
    ) -> None:
        """With the portal off the persons are written, the warning is logged once and in the report, the
        run exits 0, and the next night sends nothing again."""
        emulator = emulator_factory(strict=True, parent_portal=False)
        rows = [guardian("mum", "kid-1"), guardian("dad", "kid-1,kid-2"), kid(1), kid(2)]
        roster = write(tmp_path / "users.csv", rows)
        report = tmp_path / "run.json"
        code, out, err = sync_run(emulator, roster, "--report", str(report))
        assert code == EXIT_OK, out + err
        warnings = [json.loads(line) for line in err.splitlines() if "parent_portal_disabled" in line]
        assert len(warnings) == 1
        assert warnings[0]["persons"] == 2
        assert "parent portal is disabled" in warnings[0]["message"]
        body = json.loads(report.read_text(encoding="utf-8"))
        assert body["parentPortalDisabled"]["syncKeys"] == ["dad", "mum"]
        assert body["summary"]["confirmed"] == 4
        assert {key: p.children for key, p in emulator.persons().items()} == dict.fromkeys(
            ("dad", "kid-1", "kid-2", "mum"), ""
        )
        assert snapshot_persons(tmp_path / "state")["dad"].children == "kid-1,kid-2"
        before = len(emulator.history())
        assert sync_run(emulator, roster)[0] == EXIT_OK
        assert len(emulator.history()) == before

    def test_reports_show_the_links(
        self, emulator: Emulator, tmp_path: Path, sync_run: Callable[..., tuple[int, str, str]]
    ) -> None:
        """The run's Markdown report lists the links sent, readably; the plan shows a removed child."""
        roster = write(tmp_path / "users.csv", [guardian("mum", "kid-1,kid-2"), kid(1), kid(2)])
        report = tmp_path / "run.md"
        assert sync_run(emulator, roster, "--report", str(report))[0] == EXIT_OK
        text = report.read_text(encoding="utf-8")
        assert "## Parent/child links sent" in text
        assert "| confirmed | mum | kid-1, kid-2 |" in text
        run_csv = tmp_path / "run.csv"
        write(roster, [guardian("mum", "kid-1,kid-2,kid-3"), kid(1), kid(2), kid(3)])
        assert sync_run(emulator, roster, "--report", str(run_csv))[0] == EXIT_OK
        links = {
            r["sync_key"]: r["children"] for r in csv.DictReader(run_csv.read_text("utf-8").splitlines())
        }
        assert links == {"kid-3": "", "mum": "kid-1,kid-2,kid-3"}
        write(roster, [guardian("mum", "kid-1,kid-2"), kid(1), kid(2)])
        assert sync_run(emulator, roster)[0] == EXIT_OK
        write(roster, [guardian("mum", "kid-2"), kid(1), kid(2)])
        plan = tmp_path / "plan.md"
        mapping = str(tmp_path / "guardians.toml")
        code = main(
            ["plan", str(roster), "--mapping", mapping, "--state", str(tmp_path / "state"), "-o", str(plan)]
        )
        assert code == EXIT_OK
        assert "Children: kid-1, kid-2 → kid-2 (-kid-1)" in plan.read_text(encoding="utf-8")
        html = tmp_path / "plan.html"
        state = str(tmp_path / "state")
        assert main(["plan", str(roster), "--mapping", mapping, "--state", state, "-o", str(html)]) == EXIT_OK
        assert "<del>kid-1, kid-2</del> → <ins>kid-2</ins>" in html.read_text(encoding="utf-8")
        csv_plan = tmp_path / "plan.csv"
        assert (
            main(["plan", str(roster), "--mapping", mapping, "--state", state, "-o", str(csv_plan)])
            == EXIT_OK
        )
        rows = csv.DictReader(csv_plan.read_text(encoding="utf-8").splitlines())
        [row] = [r for r in rows if r["sync_key"] == "mum"]
        assert (row["kind"], row["children"]) == ("update", "kid-2")
