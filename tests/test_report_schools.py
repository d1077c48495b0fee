"""The report per school (`plan --by-school`, `run --report-by-school`): pages, index, names, safety."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urljoin

import pytest

from sync.cli.by_school import write_folder
from sync.cli.output import EXIT_OK, EXIT_USAGE
from sync.emulator import Emulator
from sync.models import OperationResult, Outcome, Plan, RunResult, Status
from sync.models.kinds import kind_of
from sync.report.as_school_html import (
    INDEX_FILE,
    NO_SCHOOL_FILE,
    plan_school_files,
    run_school_files,
    school_file,
)
from tests.reports import SCRIPT, chromium, chromium_dom, parse_html, report_meta
from tests.test_cli_groups import BASE, Cli, fixture_cli, remote  # noqa: F401 - the cli fixture
from tests.test_diff_set import GROUPS, enrol, group, person, plan_of
from tests.test_schools import TWO_SCHOOLS

needs_chromium = pytest.mark.skipif(chromium() is None, reason="Chromium not installed")

PEOPLE = {"p1": person("ada"), "p2": person("bo"), "p3": person("dee"), "t1": person("cy")}
ENROLMENTS = {
    "e1": enrol("c1", "p1"),  # North
    "e2": enrol("c1", "t1", "Instructor"),  # North
    "e3": enrol("c2", "p2"),  # North
    "e4": enrol("c3", "p1"),  # South: Ada is in both schools
    "e5": enrol("c3", "p3"),  # South
}


def _plan(**overrides: object) -> Plan:
    """A first plan of two schools (all creates), `overrides` passed to `plan_of`."""
    args: dict[str, object] = {"persons": PEOPLE, "groups": TWO_SCHOOLS, "memberships": ENROLMENTS}
    args.update(overrides)
    return plan_of(**args)  # type: ignore[arg-type]


def _write(plan: Plan, folder: Path) -> dict[str, str]:
    files = plan_school_files(plan, meta=report_meta(title="Dry run", roster="roster"))
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return files


def _dom(path: Path, tmp_path: Path) -> str:
    """The page's DOM after Chromium ran its script (which must have run)."""
    dom = chromium_dom(path.as_uri(), tmp_path)
    assert 'data-ready="1"' in dom, f"script blocked or failed in {path.name}"
    return dom


def _table(dom: str, table: str) -> list[list[str]]:
    return parse_html(dom).tables.get(f"t-{table}", [])


@needs_chromium
def test_each_school_page_shows_only_its_people_and_classes(tmp_path: Path) -> None:
    """North lists Bo and Cy, South lists Dee; Ada, in both schools, is on both pages; classes likewise."""
    files = _write(_plan(), tmp_path / "out")
    assert set(files) == {INDEX_FILE, "s1.html", "s2.html", NO_SCHOOL_FILE}  # the district: no school
    north = _dom(tmp_path / "out" / "s1.html", tmp_path)
    south = _dom(tmp_path / "out" / "s2.html", tmp_path)
    north_people = {row[0] for row in _table(north, "new-people")}
    south_people = {row[0] for row in _table(south, "new-people")}
    assert north_people == {"Ada", "Bo", "Cy"}
    assert south_people == {"Ada", "Dee"}
    assert {row[0] for row in _table(north, "classes")} == {"North School", "Maths 7A", "English 7A"}
    assert {row[0] for row in _table(south, "classes")} == {"South School", "Art 8B"}
    assert ["Maths 7A", "Cy", "teacher", "joins as teacher"] in _table(north, "class-changes")
    assert ["Art 8B", "Ada", "student", "joins as student"] in _table(south, "class-changes")
    ada = next(row for row in _table(north, "new-people") if row[0] == "Ada")
    assert ada == ["Ada", "student", "Art 8B, Maths 7A"]
    for dom in (north, south):  # plain words: nothing technical
        for word in ("codeMinor", "messageIdentifier", "createPerson", "Create[", "Learner"):
            assert word not in dom


@needs_chromium
def test_the_index_links_every_school_page(tmp_path: Path) -> None:
    """Each link of the index (followed as a browser resolves it) opens that school's page, in Chromium."""
    out = tmp_path / "out"
    _write(_plan(), out)
    index = _dom(out / INDEX_FILE, tmp_path)
    page = parse_html(index)
    links = [a["href"] for tag, a in page.tags if tag == "a" and a.get("href")]
    assert len(links) == 3
    assert [row[0] for row in page.tables["t-schools"]] == ["North School", "South School", "No school"]
    assert page.tables["t-schools"][0][1:] == ["3", "0", "0", "0", "6", "0"]  # North's counts
    for href, name in zip(links, ["North School", "South School", "No school"], strict=True):
        target = Path(unquote(urljoin((out / INDEX_FILE).as_uri(), href).removeprefix("file://")))
        assert target.parent == out
        assert target.exists()
        school = parse_html(_dom(target, tmp_path))
        assert any(tag == "a" and a.get("href") == INDEX_FILE for tag, a in school.tags)  # and back
        assert f"<h1>{name}</h1>" in target.read_text(encoding="utf-8")


@needs_chromium
def test_names_are_shown_as_text(tmp_path: Path) -> None:
    """A `<script>` in a person's, a class's and a school's name is text on the pages and the index."""
    people = {**PEOPLE, "p2": {**person("bo"), "given_name": SCRIPT}}
    groups = {**TWO_SCHOOLS, "c2": group(SCRIPT, "s1"), "s2": group(SCRIPT, "d1", "School")}
    out = tmp_path / "out"
    _write(_plan(persons=people, groups=groups), out)
    for name in (INDEX_FILE, "s1.html", "s2.html"):
        dom = _dom(out / name, tmp_path)
        page = parse_html(dom)
        assert len(page.raw["script"]) == 1, name  # only the report's own script
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom, name
    north = _dom(out / "s1.html", tmp_path)
    assert [SCRIPT, "student", SCRIPT] in _table(north, "new-people")


@needs_chromium
def test_a_leaver_appears_at_the_school_they_leave(tmp_path: Path) -> None:
    """A person gone from the roster is a leaver on the page of the school the snapshot has them in."""
    plan = _plan(
        persons={k: v for k, v in PEOPLE.items() if k != "p3"},
        memberships={k: v for k, v in ENROLMENTS.items() if k != "e5"},
        snapshot_persons=PEOPLE,
        snapshot_groups=TWO_SCHOOLS,
        snapshot_memberships=ENROLMENTS,
    )
    out = tmp_path / "out"
    _write(plan, out)
    south = _dom(out / "s2.html", tmp_path)
    north = _dom(out / "s1.html", tmp_path)
    assert _table(south, "leavers") == [["Dee", "student", "Art 8B", "no longer in the roster"]]
    assert ["Art 8B", "Dee", "student", "leaves the class (no longer in the roster)"] in _table(
        south, "class-changes"
    )
    assert _table(north, "leavers") == []
    assert "Dee" not in north


def test_rejected_rows_go_to_the_school_of_their_class(tmp_path: Path) -> None:
    """An enrolment naming an unknown person is listed at its class's school, with why, and only there."""
    plan = _plan(memberships={**ENROLMENTS, "e9": enrol("c3", "nobody")})
    files = plan_school_files(plan, meta=report_meta(title="Dry run", roster="roster"))
    south = parse_html(files["s2.html"]).tables["t-rejected-rows"]
    assert len(south) == 1
    assert "nobody" in south[0][3]
    assert "t-rejected-rows" not in parse_html(files["s1.html"]).tables


def test_unsafe_sync_keys_stay_in_the_folder(tmp_path: Path) -> None:
    """School keys with "/", "..", "index" or non-ASCII become distinct file names inside the folder."""
    keys = ["../up", "a/b", "index", "INDEX", ".hidden", "Ø~1", "~2f", "C:\\x", "plain-1.0"]
    names = [school_file(key) for key in keys]
    assert len(set(names)) == len(keys)
    assert INDEX_FILE not in names
    assert NO_SCHOOL_FILE not in names
    assert names[-1] == "plain-1.0.html"
    groups = {**GROUPS, "../up": group("Up School", "d1", "School"), "c1": group("Maths 7A", "../up")}
    out = tmp_path / "deep" / "out"
    files = plan_school_files(plan_of(groups=groups), meta=report_meta(title="Dry run", roster="roster"))
    write_folder(files, out)
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(files)
    assert school_file("../up") in written
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]  # nothing escaped


class TestCommandLine:
    def test_plan_by_school_writes_the_folder(self, cli: Cli, tmp_path: Path) -> None:
        """`plan --format html --by-school --output DIR` writes the index and each school's page."""
        out = tmp_path / "out"
        code, _, err = cli(
            "plan", str(BASE), "-m", "oneroster", "--state", str(tmp_path / "state"),
            "--format", "html", "--by-school", "-o", str(out),
        )  # fmt: skip
        assert code == EXIT_OK, err
        assert sorted(p.name for p in out.iterdir()) == [
            INDEX_FILE,
            "org-lia.html",
            "org-ravnaas.html",
            NO_SCHOOL_FILE,
        ]
        ravnaas = parse_html((out / "org-ravnaas.html").read_text(encoding="utf-8"))
        assert ["Emma Hansen", "student", "5A, Skolekor 5-7"] in ravnaas.tables["t-new-people"]
        assert "report written to" in err

    @pytest.mark.parametrize(
        ("args", "said"),
        [
            (["--by-school", "-o", "OUT"], "--by-school writes HTML pages: add --format html"),
            (["--format", "md", "--by-school", "-o", "OUT"], "add --format html"),
            (["--format", "html", "--by-school"], "name it with --output DIR"),
            (["--format", "html", "--by-school", "-o", "FILE"], "is a file; --output must name a folder"),
        ],
    )
    def test_plan_by_school_needs_html_and_a_folder(
        self, cli: Cli, tmp_path: Path, args: list[str], said: str
    ) -> None:
        """Anything but HTML into a folder is a usage error (exit 2) that says what to add."""
        (tmp_path / "FILE").write_text("x", encoding="utf-8")
        args = [str(tmp_path / a) if a in ("OUT", "FILE") else a for a in args]
        code, _, err = cli("plan", str(BASE), "-m", "oneroster", "--state", str(tmp_path / "state"), *args)
        assert code == EXIT_USAGE
        assert said in err
        assert not (tmp_path / "OUT").exists()

    def test_a_plan_to_a_folder_without_the_flag_is_refused_as_before(self, cli: Cli, tmp_path: Path) -> None:
        """Without --by-school, --output still names a file: a folder is refused as click refuses it."""
        code, _, err = cli(
            "plan", str(BASE), "-m", "oneroster", "--state", str(tmp_path / "s"), "-o", str(tmp_path)
        )
        assert code == EXIT_USAGE
        assert f"Invalid value for '--output' / '-o': File '{tmp_path}' is a directory." in err

    def test_the_config_file_asks_for_the_run_report_by_school(self, cli: Cli, tmp_path: Path) -> None:
        """`report_by_school = true` in [sync] reaches `run` like its flag (here: refused without HTML)."""
        config = tmp_path / "ims-sync.toml"
        config.write_text(
            f'[sync]\nreport_by_school = true\nreport = "{tmp_path / "pages"}"\n', encoding="utf-8"
        )
        code, _, err = cli(
            "--config", str(config), "run", str(BASE), "-m", "oneroster", "--state", str(tmp_path / "s"),
            "--endpoint", "https://127.0.0.1:9/PersonManagementService.svc",
        )  # fmt: skip
        assert code == EXIT_USAGE
        assert "--report-by-school writes HTML pages: add --report-format html" in err
        assert not (tmp_path / "s").exists()

    def test_run_report_by_school_groups_what_was_sent_and_held(
        self, cli: Cli, emulator: Emulator, tmp_path: Path
    ) -> None:
        """A run held to creates of nothing lists every change as held; the next run as done, per school."""
        state, out = tmp_path / "state", tmp_path / "held"
        base = ["run", str(BASE), "-m", "oneroster", "--state", str(state), *remote(emulator)]
        report = ["--report-format", "html", "--report-by-school", "--report"]
        code, _, err = cli(*base, "--only", "update", *report, str(out))
        assert code == EXIT_OK, err
        held = parse_html((out / "org-ravnaas.html").read_text(encoding="utf-8")).tables
        emma = next(row for row in held["t-held"] if row[0] == "Emma Hansen (student): new")
        assert "--only" in emma[1]  # what releases it
        assert "t-sent" not in held
        code, _, err = cli(*base, *report, str(tmp_path / "done"))
        assert code == EXIT_OK, err
        done = parse_html((tmp_path / "done" / "org-ravnaas.html").read_text(encoding="utf-8")).tables
        assert ["Emma Hansen (student): new"] in done["t-sent"]
        assert ["5A: new"] in done["t-sent"]
        lia = parse_html((tmp_path / "done" / "org-lia.html").read_text(encoding="utf-8")).tables
        assert all("Emma Hansen" not in row[0] for row in lia.get("t-sent", []))
        code, _, err = cli(*base, "--report-by-school", "--report", str(tmp_path / "md"))
        assert code == EXIT_USAGE
        assert "add --report-format html" in err


def test_run_pages_tell_done_not_done_held_and_kept_per_school() -> None:
    """A run's pages: what each school's objects came to, failures in plain words, held and kept leavers."""
    plan = _plan(
        persons={k: v for k, v in PEOPLE.items() if k != "p3"},
        memberships={k: v for k, v in ENROLMENTS.items() if k != "e5"},
        snapshot_groups=TWO_SCHOOLS,
        snapshot_persons={"p3": person("dee")},
        snapshot_memberships={"e5": ENROLMENTS["e5"]},
    )
    by_key = {(kind_of(op).name, op.sync_key): op for op in (*plan.operations, *plan.deletions)}
    refused = Status(
        code_major="failure", severity="error", code_minor=(("invalid_data", "x"),), description="name taken"
    )
    result = RunResult(
        run_id="r1",
        plan=plan,
        results=(
            OperationResult(operation=by_key["person", "p1"], outcome=Outcome.CONFIRMED),
            OperationResult(operation=by_key["person", "p2"], outcome=Outcome.REJECTED, status=refused),
            OperationResult(operation=by_key["membership", "e4"], outcome=Outcome.SKIPPED),
        ),
        started_at="2025-01-31T02:00:00Z",
        finished_at="2025-01-31T02:01:00Z",
    )
    held = [(by_key["person", "t1"], "held: not in --only")]
    files = run_school_files(result, meta=report_meta(title="Run", roster="roster"), held=held)
    north = parse_html(files["s1.html"]).tables
    south = parse_html(files["s2.html"]).tables
    assert north["t-sent"] == [["Ada (student): new"]]
    assert north["t-failed"] == [["Bo (student): new", "itslearning refused it: name taken"]]
    assert north["t-held"] == [["Cy (student): new", "held: not in --only"]]
    assert south["t-sent"] == [["Ada (student): new"]]  # Ada is in both schools
    assert south["t-failed"] == [["Ada in Art 8B: joins as student", "not sent: the run stopped before it"]]
    assert ["Dee (student): leaves", "no longer in the roster"] in south["t-kept"]
    assert "t-kept" not in north
    assert "invalid_data" not in files["s1.html"]
    index = parse_html(files[INDEX_FILE]).tables["t-schools"]
    assert index[0] == ["North School", "1", "1", "1", "0", "0"]


def test_school_tables_are_capped_with_a_note() -> None:
    """Past the row cap a school's table shows the first rows, a note of the rest and keeps its filter."""
    files = plan_school_files(_plan(), meta=report_meta(title="Dry run", roster="roster"), max_rows=2)
    north = parse_html(files["s1.html"])
    assert len(north.tables["t-new-people"]) == 2
    assert "1 more not shown" in files["s1.html"]
    assert any(tag == "input" and a.get("id") == "t-new-people-filter" for tag, a in north.tags)


def test_a_plan_without_schools_has_only_the_no_school_page() -> None:
    """Persons only: the index links one "No school" page that lists everyone."""
    plan = plan_of(groups=None, memberships=None)
    files = plan_school_files(plan, meta=report_meta(title="Dry run", roster="roster"))
    assert sorted(files) == [INDEX_FILE, NO_SCHOOL_FILE]
    assert parse_html(files[INDEX_FILE]).tables["t-schools"][0][0] == "No school"
    people = parse_html(files[NO_SCHOOL_FILE]).tables["t-new-people"]
    assert sorted(row[0] for row in people) == ["Ada", "Bo", "Cy"]
