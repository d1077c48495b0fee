"""Limits that hold only what breaches: per kind and operation type, per school, from flags and the
config file; the rest of the plan is sent (exit 3), against the emulator over real HTTPS."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_OK, EXIT_SAFETY, EXIT_USAGE
from sync.emulator import Emulator
from sync.models import Create, DeletesMode, Person, Plan, Schools, Update
from sync.models.kinds import GROUP, MEMBERSHIP, operation_type
from sync.plan.diff import snapshot_columns
from sync.plan.limits import Bound, parse_bound, parse_rule
from sync.plan.safety import SafetyLimits, SchoolCounts, breaching, check_limits
from sync.plan.school_sizes import school_counts
from tests.checks import csv_rows, person_row, set_credentials, write_roster
from tests.test_diff_set import GROUPS, MEMBERSHIPS, enrol, group, snap

Command = Callable[..., tuple[int, str, str]]
SAMPLES = Path(__file__).parents[1] / "samples" / "oneroster"


@pytest.fixture(name="cli")
def fixture_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Command:
    """`cli(emulator, "plan"|"run", roster, *extra, mapping=..., config=None)`: (exit code, stdout,
    stderr) of one command on the state in tmp_path, JSON logs."""
    set_credentials(monkeypatch)

    def command(
        emulator: Emulator,
        name: str,
        roster: Path,
        *extra: str,
        mapping: str = "oneroster-users",
        config: Path | None = None,
    ) -> tuple[int, str, str]:
        head = ["--config", str(config)] if config is not None else []
        common = ["-m", mapping, "--state", str(tmp_path / "state")]
        service = [
            "--endpoint",
            emulator.pms_url,
            "--ca-bundle",
            str(emulator.ca_path),
            "--max-attempts",
            "2",
        ]
        args = [
            *head,
            "--log-format",
            "json",
            name,
            str(roster),
            *common,
            *(service if name == "run" else []),
        ]
        code = main([*args, *extra])
        out, err = capsys.readouterr()
        return code, out, err

    return command


def _events(err: str, name: str) -> list[dict[str, Any]]:
    return [
        e for line in err.splitlines() if line.startswith("{") and (e := json.loads(line))["event"] == name
    ]


def _sent(emulator: Emulator, since: int) -> list[tuple[str, str]]:
    return sorted((e.operation, e.sync_key) for e in emulator.history()[since:])


def _leavers_night(cli: Command, emulator: Emulator, tmp_path: Path) -> Path:
    """60 persons synced; then 30 leave (p0031-p0060), 3 are edited and 4 arrive."""
    roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 61)])
    assert cli(emulator, "run", roster)[0] == EXIT_OK
    edited = [person_row(n, familyName="Edited") if n <= 3 else person_row(n) for n in range(1, 31)]
    return write_roster(roster, [*edited, *(person_row(n) for n in range(61, 65))])


class TestPerType:
    """A breach holds the operations of its kind and type; everything else is sent."""

    def test_deletions_held_creates_and_updates_sent(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """30 person deletions over the limit of 10 are held and listed with the flag; the 4 creates
        and 3 updates are sent; exit 3; the run report lists the deletions once, as held."""
        roster = _leavers_night(cli, emulator, tmp_path)
        seen = len(emulator.history())
        report = tmp_path / "run.json"
        code, _, err = cli(emulator, "run", roster, "--deletes", "--report", str(report))
        assert code == EXIT_SAFETY, err
        assert _sent(emulator, seen) == sorted(
            [
                *(("createPerson", f"p{n:04d}") for n in range(61, 65)),
                *(("updatePerson", f"p{n:04d}") for n in (1, 2, 3)),
            ]
        )
        assert len(emulator.persons()) == 64
        assert "the plan would delete 30 persons (50.0% of 60), over the safety limit of 10" in err
        assert "--accept-deletes 30" in err
        result = json.loads(report.read_text(encoding="utf-8"))
        held = result["meta"]["held"]
        assert sorted(h["syncKey"] for h in held) == [f"p{n:04d}" for n in range(31, 61)]
        assert {(h["op"], h["object"], h["cause"]) for h in held} == {("delete", "person", "limit")}
        assert all(
            h["reason"].startswith(
                "held: safety limit person.delete: 30 over 10; release with --accept-deletes 30 or --approve "
            )
            for h in held
        )
        assert result["deletionsNotSent"] == []  # held, not also "deletion candidates not sent"
        assert _events(err, "safety_limit")[0]["limit_key"] == "person.delete"

    def test_accept_deletes_sends_them(self, emulator: Emulator, tmp_path: Path, cli: Command) -> None:
        """After the held night, --accept-deletes 30 sends the 30 deletions and exits 0."""
        roster = _leavers_night(cli, emulator, tmp_path)
        assert cli(emulator, "run", roster, "--deletes")[0] == EXIT_SAFETY
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "--deletes", "--accept-deletes", "30")
        assert code == EXIT_OK, err
        assert _sent(emulator, seen) == [("deletePerson", f"p{n:04d}") for n in range(31, 61)]

    def test_approve_sends_the_reviewed_plan_s_breaches(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """The plan lists the held deletions with its fingerprint; --approve with it sends all 37."""
        roster = _leavers_night(cli, emulator, tmp_path)
        plan_md = tmp_path / "plan.md"
        code, _, err = cli(emulator, "plan", roster, "--deletes", "delete", "-o", str(plan_md))
        assert code == EXIT_OK, err
        fingerprint = _events(err, "plan")[0]["fingerprint"]
        text = plan_md.read_text(encoding="utf-8")
        reason = "held: safety limit person.delete: 30 over 10; release with --accept-deletes 30"
        assert f"| Delete person | p0031 | {reason} or --approve {fingerprint} |" in text
        assert "| p0061 | user0061 |" in text
        assert "Create person | p0061" not in text  # a create is held by no limit
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "--deletes", "--approve", fingerprint)
        assert code == EXIT_OK, err
        assert len(_sent(emulator, seen)) == 37
        assert emulator.persons().keys() == {f"p{n:04d}" for n in range(1, 31)} | {
            f"p{n:04d}" for n in range(61, 65)
        }

    def test_every_plan_format_lists_the_held_deletions(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """The JSON, CSV and HTML plans (with --deletes) list the 30 deletions as held, with the flag."""
        roster = _leavers_night(cli, emulator, tmp_path)
        release = "release with --accept-deletes 30 or --approve "
        for fmt in ("json", "csv", "html"):
            out = tmp_path / f"plan.{fmt}"
            assert cli(emulator, "plan", roster, "--deletes", "delete", "-o", str(out))[0] == EXIT_OK
            text = out.read_text(encoding="utf-8")
            if fmt == "json":
                held = json.loads(text)["meta"]["held"]
                assert sorted(h["syncKey"] for h in held) == [f"p{n:04d}" for n in range(31, 61)]
                assert all(release in h["reason"] for h in held)
            elif fmt == "csv":
                rows = [row for row in csv_rows(out) if release in row["reason"]]
                assert sorted(row["sync_key"] for row in rows) == [f"p{n:04d}" for n in range(31, 61)]
            else:
                assert text.count(release) == 30

    def test_limit_flag_holds_updates_and_off_releases_them(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """--limit person.update=2 holds the 3 updates (csv report: outcome held, reason); --limit
        person.update=off and person.delete=off send everything."""
        roster = _leavers_night(cli, emulator, tmp_path)
        seen = len(emulator.history())
        report = tmp_path / "run.csv"
        code, _, err = cli(emulator, "run", roster, "--limit", "person.update=2", "--report", str(report))
        assert code == EXIT_SAFETY, err
        assert [op for op, _ in _sent(emulator, seen)] == ["createPerson"] * 4
        held = [row for row in csv_rows(report) if row["outcome"] == "held"]
        assert sorted(row["sync_key"] for row in held) == ["p0001", "p0002", "p0003"]
        assert all("--limit person.update" not in row["reason"] for row in held)
        assert all("--accept-changes 3" in row["reason"] for row in held)
        flags = ["--limit", "person.update=off", "--limit", "person.delete=off", "--deletes"]
        code, _, err = cli(emulator, "run", roster, *flags)
        assert code == EXIT_OK, err
        assert len(emulator.persons()) == 34

    def test_limit_from_the_config_file_and_the_flag_over_it(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """[limits] person.update = 2 holds the updates (the fingerprint names it); a flag overrides it."""
        roster = _leavers_night(cli, emulator, tmp_path)
        config = tmp_path / "sync.toml"
        config.write_text('[limits]\nperson.update = 2\n"*.delete" = "5%"\n', encoding="utf-8")
        plan_json = tmp_path / "plan.json"
        assert (
            cli(emulator, "plan", roster, "--format", "json", "-o", str(plan_json), config=config)[0]
            == EXIT_OK
        )
        parts = json.loads(plan_json.read_text(encoding="utf-8"))["fingerprintParts"]
        assert parts["setting:limits"] == "person.update=2,*.delete=5%"
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, config=config)
        assert code == EXIT_SAFETY, err
        assert "over the safety limit of 2 (person.update) by 1" in err
        assert [op for op, _ in _sent(emulator, seen)] == ["createPerson"] * 4
        code, _, err = cli(emulator, "run", roster, "--limit", "person.update=5", config=config)
        assert code == EXIT_OK, err
        assert emulator.persons()["p0001"].family_name == "Edited"

    def test_a_bad_limit_is_a_usage_error(self, emulator: Emulator, tmp_path: Path, cli: Command) -> None:
        """--limit with an unknown kind, type or value, and a bad [limits] value, exit 2 sending nothing."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        for bad in ("pupil.delete=5", "person.remove=5", "person.delete=0.5", "person.delete"):
            code, _, err = cli(emulator, "run", roster, "--limit", bad)
            assert code == EXIT_USAGE, bad
            assert "--limit" in err
        config = tmp_path / "sync.toml"
        config.write_text('[limits]\nperson.delete = "many"\n', encoding="utf-8")
        code, _, err = cli(emulator, "run", roster, config=config)
        assert code == EXIT_USAGE
        assert "[limits] 'many' is not a limit" in err
        assert emulator.history() == []

    def test_metrics_count_what_is_held_by_cause(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """The held-operations series counts the limit's 30 deletions and --only's 3 updates apart."""
        roster = _leavers_night(cli, emulator, tmp_path)
        prom = tmp_path / "ims-sync.prom"
        code, _, _ = cli(
            emulator, "run", roster, "--deletes", "--only", "create,delete", "--metrics-file", str(prom)
        )
        assert code == EXIT_SAFETY
        text = prom.read_text(encoding="utf-8")
        assert 'ims_sync_last_run_held_operations{cause="limit",' in text
        held = {
            line.split('cause="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ims_sync_last_run_held_operations{")
        }
        assert held == {"limit": 30.0, "only": 3.0, "pause": 0.0}

    def test_only_delete_under_deactivate_says_nothing_is_removed(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """--only delete --deletes deactivate sends nothing, and a notice says why and what to do."""
        roster = _leavers_night(cli, emulator, tmp_path)
        seen = len(emulator.history())
        code, _, err = cli(emulator, "run", roster, "--only", "delete", "--deletes", "deactivate")
        assert code == EXIT_OK, err
        assert _sent(emulator, seen) == []
        (event,) = _events(err, "only_other_removal")
        assert (
            "--deletes deactivate sends deactivations, not deletions, so nothing is removed"
            in event["message"]
        )


# --- a OneRoster folder of two schools -----------------------------------------------------------


def _header(name: str) -> list[str]:
    with (SAMPLES / name).open(encoding="utf-8") as fh:
        return next(csv.reader(fh))


def _write(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_header(path.name), restval="")
        writer.writeheader()
        writer.writerows(rows)


def _two_schools(folder: Path, *, edited_at_a: int = 0, new_at_b: int = 0) -> Path:
    """School A (20 pupils, class cls-a) and school B (20 pupils, class cls-b); `edited_at_a` of A's
    pupils get another family name, `new_at_b` pupils join B."""
    folder.mkdir(exist_ok=True)
    active = {"status": "active", "dateLastModified": "2024-08-01T06:00:00Z"}
    _write(
        folder / "orgs.csv",
        [
            {
                **active,
                "sourcedId": "org-district",
                "name": "District",
                "type": "district",
                "identifier": "1",
            },
            *(
                {
                    **active,
                    "sourcedId": f"org-{s}",
                    "name": f"{s.upper()} skole",
                    "type": "school",
                    "identifier": f"97450000{n}",
                    "parentSourcedId": "org-district",
                }
                for n, s in enumerate("ab")
            ),
        ],
    )
    _write(
        folder / "classes.csv",
        [
            {
                **active,
                "sourcedId": f"cls-{s}",
                "title": f"Class {s.upper()}",
                "classType": "homeroom",
                "schoolSourcedId": f"org-{s}",
            }
            for s in "ab"
        ],
    )
    people = [("a", n) for n in range(1, 21)] + [("b", n) for n in range(21, 41 + new_at_b)]
    users = []
    for school, n in people:
        family = "Edited" if school == "a" and n <= edited_at_a else f"Family{n}"
        users.append(
            {
                **active,
                "sourcedId": f"usr-{n:03d}",
                "enabledUser": "true",
                "orgSourcedIds": f"org-{school}",
                "role": "student",
                "username": f"user{n:03d}",
                "givenName": f"Given{n}",
                "familyName": family,
            }
        )
    _write(folder / "users.csv", users)
    _write(
        folder / "enrollments.csv",
        [
            {
                **active,
                "sourcedId": f"enr-{n:03d}",
                "classSourcedId": f"cls-{school}",
                "schoolSourcedId": f"org-{school}",
                "userSourcedId": f"usr-{n:03d}",
                "role": "student",
            }
            for school, n in people
        ],
    )
    return folder


class TestPerSchool:
    """A school whose changes breach has its operations of that type held; other schools' go."""

    def test_a_breach_at_one_school_while_another_school_s_creates_go(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """8 of school A's 20 pupils edited (over A's limit of 5, under the kind's 10) are held; 3 new
        pupils at school B, their enrolments and school memberships are sent; exit 3."""
        folder = _two_schools(tmp_path / "roster")
        assert cli(emulator, "run", folder, mapping="oneroster")[0] == EXIT_OK
        _two_schools(folder, edited_at_a=8, new_at_b=3)
        seen = len(emulator.history())
        report = tmp_path / "run.json"
        code, _, err = cli(emulator, "run", folder, "--report", str(report), mapping="oneroster")
        assert code == EXIT_SAFETY, err
        assert "school A skole (org-a): the plan would update 8 persons (40.0% of 20 at the school), " in err
        assert "over the school limit of 5 (school.update) by 3" in err
        assert "--accept-changes 8" in err
        sent = _sent(emulator, seen)
        assert [key for op, key in sent if op == "createPerson"] == ["usr-041", "usr-042", "usr-043"]
        assert not [key for op, key in sent if op in ("updatePerson", "replacePerson")]
        assert len([op for op, _ in sent if op == "createMembership"]) == 6  # class and school, each
        held = json.loads(report.read_text(encoding="utf-8"))["meta"]["held"]
        assert sorted(h["syncKey"] for h in held) == [f"usr-{n:03d}" for n in range(1, 9)]
        assert all("safety limit school.update at school org-a: 8 over 5" in h["reason"] for h in held)
        code, _, err = cli(emulator, "run", folder, "--accept-changes", "8", mapping="oneroster")
        assert code == EXIT_OK, err
        assert emulator.persons()["usr-008"].family_name == "Edited"

    def test_the_school_limit_is_configurable_and_can_be_off(
        self, emulator: Emulator, tmp_path: Path, cli: Command
    ) -> None:
        """--limit school.update=50% and --max-change-share 1 hold nothing at school A; --limit school=off
        sends its 8 edits."""
        folder = _two_schools(tmp_path / "roster")
        assert cli(emulator, "run", folder, mapping="oneroster")[0] == EXIT_OK
        _two_schools(folder, edited_at_a=8)
        code, _, err = cli(emulator, "plan", folder, "--limit", "school.update=50%", mapping="oneroster")
        assert code == EXIT_OK, err
        assert not _events(err, "limit_holds")
        code, _, err = cli(emulator, "plan", folder, mapping="oneroster")
        assert [e["limit_key"] for e in _events(err, "limit_holds")] == ["school.update"]
        code, _, err = cli(emulator, "plan", folder, "--max-change-share", "1", mapping="oneroster")
        assert not _events(err, "limit_holds")  # a site that lifted the limits is not held per school
        code, _, err = cli(emulator, "run", folder, "--limit", "school=off", mapping="oneroster")
        assert code == EXIT_OK, err
        assert emulator.persons()["usr-001"].family_name == "Edited"


# --- the pure rules -------------------------------------------------------------------------------


class TestRules:
    """`--limit` values and keys, and which rule wins."""

    def test_values(self) -> None:
        """A count, a share, off; a float or a share over 100 % is refused."""
        assert parse_bound(50) == parse_bound("50") == Bound(count=50)
        assert parse_bound("5%") == Bound(share=0.05)
        assert parse_bound("off") == Bound()
        assert parse_bound("5%").of(1000, floor=10, cap=500) == 50
        assert parse_bound("5%").of(10, floor=10, cap=500) == 10
        for bad in ("0.05", 0.05, "150%", "-1", True):
            with pytest.raises(ValueError, match="is not a limit"):
                parse_bound(bad)

    def test_flags_win_then_the_most_specific_then_the_last(self) -> None:
        """A flag's rule beats the config file's; person.delete beats person and *.delete; ties: the last."""
        rules = (
            parse_rule("person.delete", 50),
            parse_rule("*", "off"),
            parse_rule("person", 7),
            parse_rule("*.update", 3, from_flag=True),
            parse_rule("*.update", 4, from_flag=True),
        )
        limits = SafetyLimits(rules=rules)
        assert limits.bound("person", "delete") == Bound(count=50)
        assert limits.bound("person", "create") == Bound(count=7)
        assert limits.bound("group", "delete") == Bound()
        assert limits.bound("person", "update") == Bound(count=4)
        assert limits.bound("school", "update") == Bound(share=0.25)  # `*` is no school
        assert SafetyLimits().bound("person", "create") == Bound()  # creates are not limited

    def test_school_breach_holds_only_that_school_s_operations(self) -> None:
        """Measured per school: A's 6 updates of 12 breach (limit 5), B's 2 do not; only A's are held."""
        plan = _updates_plan(8)
        at = {f"p{n}": ("a" if n < 6 else "b") for n in range(8)}
        schools = SchoolCounts(
            of=lambda op: (at[op.sync_key],),
            sizes={("a", "person"): 12, ("b", "person"): 12},
            names={"a": "A", "b": "B"},
        )
        (breach,) = check_limits(plan, SafetyLimits(floor=100), deletes=DeletesMode.OFF, schools=schools)
        assert (breach.school, breach.count, breach.limit, breach.key) == ("a", 6, 5, "school.update")
        send, held = breaching(list(plan.operations), [breach], schools)
        assert sorted(op.sync_key for op, _ in held) == [f"p{n}" for n in range(6)]
        assert [operation_type(op) for op in send] == ["update", "update"]

    def test_school_creates_breach_only_under_a_rule_that_bounds_them(self) -> None:
        """By default creates are no school's concern (a first night creates every object); a rule
        `school.create=N` bounds them per school like any other type."""
        creates = tuple(Create(record=Person(sync_key=f"p{n}")) for n in range(8))
        plan = Plan(operations=creates, deletions=(), rejects=(), conflicts=(), snapshot_sizes={"person": 24})
        at = {f"p{n}": ("a" if n < 6 else "b") for n in range(8)}
        schools = SchoolCounts(
            of=lambda op: (at[op.sync_key],),
            sizes={("a", "person"): 12, ("b", "person"): 12},
            names={"a": "A", "b": "B"},
        )
        assert check_limits(plan, SafetyLimits(), deletes=DeletesMode.OFF, schools=schools) == []
        bounded = SafetyLimits(rules=(parse_rule("school.create", 5),))
        (breach,) = check_limits(plan, bounded, deletes=DeletesMode.OFF, schools=schools)
        assert (breach.school, breach.count, breach.limit, breach.key) == ("a", 6, 5, "school.create")


def test_school_sizes_count_each_school_s_memberships_and_distinct_persons() -> None:
    """A person in classes of two schools counts at both, once each; a membership at its group's school;
    a group of no school (the district) counts nowhere; a re-keyed school counts as under its old key."""
    groups = {**GROUPS, "s2": group("South School", "d1", "School"), "c3": group("Art 8B", "s2")}
    memberships = {
        **MEMBERSHIPS,  # e1 c1/p1, e2 c1/t1, e3 c2/p2: all at s1
        "e4": enrol("c3", "p1"),
        "e5": enrol("c2", "p1"),
        "e6": enrol("d1", "p9"),
    }
    counts = school_counts(
        Schools(names={"s1": "North School", "s2": "South School"}),
        snap(groups, snapshot_columns(GROUP)),
        snap(memberships, snapshot_columns(MEMBERSHIP)),
    )
    assert counts is not None
    assert dict(counts.sizes) == {
        ("s1", "membership"): 4,
        ("s1", "person"): 3,
        ("s2", "membership"): 1,
        ("s2", "person"): 1,
    }
    renamed = school_counts(
        Schools(names={"s3": "South School"}),
        snap(groups, snapshot_columns(GROUP)),
        snap(memberships, snapshot_columns(MEMBERSHIP)),
        {"s2": "s3", "c1": "c9"},
    )
    assert renamed is not None
    assert (renamed.sizes["s3", "membership"], renamed.sizes["s3", "person"]) == (1, 1)  # as s2 held
    assert ("c9", "person") not in renamed.sizes  # a class is no school
    no_schools = Schools()
    assert (
        school_counts(no_schools, snap(groups, snapshot_columns(GROUP)), snap({}, ("group", "person")))
        is None
    )


def _updates_plan(count: int) -> Plan:
    """A plan of `count` person updates (p0 .. p{count-1}) against a snapshot of 24 persons."""
    updates = tuple(
        Update(record=Person(sync_key=f"p{n}", family_name="Changed"), changes=()) for n in range(count)
    )
    return Plan(
        operations=updates,
        deletions=(),
        rejects=(),
        conflicts=(),
        unchanged_by={"person": 0},
        snapshot_sizes={"person": 24},
    )
