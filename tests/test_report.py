"""Tests for the report renderers: every format of a plan and of a run, escaping, secrets, truncation."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from sync.models import (
    PERSON_FIELDS,
    ChangeIdentifier,
    Conflict,
    Create,
    Delete,
    FieldChange,
    OperationResult,
    Outcome,
    Person,
    Plan,
    Reject,
    RunResult,
    Status,
    Update,
)
from sync.report.render import (
    FORMATS,
    ReportMeta,
    frame_to_csv,
    neutralise_cell,
    plan_to_dict,
    render_plan,
    render_reconcile,
    render_run,
    run_to_dict,
)
from sync.state.journal import JournalEntry, JournalItemRow
from sync.state.reconcile import reconcile
from tests.reports import (
    PASSWORD,
    SCRIPT,
    Page,
    chromium,
    chromium_dom,
    make_person,
    md_cells,
    md_section,
    parse_html,
    report_meta,
)

IMG = '"><img src=x onerror=alert(2)>'
FORMULA = '=HYPERLINK("http://evil.example","x")'


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(name="meta")
def fixture_meta() -> ReportMeta:
    """Report context whose endpoint carries credentials and a query, which must not show."""
    return report_meta(
        title="Dry run: planned changes",
        roster="students.csv",
        endpoint="https://user:hunter2@ims.example.test/PersonManagementService.svc?token=abc",
    )


@pytest.fixture(name="plan")
def fixture_plan() -> Plan:
    """A plan with every kind of entry, hostile values and a create with a known password."""
    hostile = make_person("k1", given_name=SCRIPT, family_name=IMG, email=FORMULA, phone="+47 555 1234")
    return Plan(
        operations=(
            Create(record=hostile, identity="id-1", password=PASSWORD),
            Update(
                record=make_person("k2", email="new@school.test"),
                identity="id-2",
                changes=(
                    FieldChange(field="email", old="old@school.test", new="new@school.test"),
                    FieldChange(field="mobile", old="", new="-5 | pipe\nnewline"),
                ),
            ),
            ChangeIdentifier(
                old_id="old-3",
                new_id="k3",
                record=make_person("k3", role="Staff"),
                identity="id-3",
                changes=(FieldChange(field="role", old="Student", new="Staff"),),
            ),
            ChangeIdentifier(old_id="old-4", new_id="k4", record=make_person("k4"), identity="id-4"),
        ),
        deletions=(Delete(record=Person(sync_key="k9"), identity="id-9", reason="not in roster"),),
        rejects=(
            Reject(file="students.csv", row=7, field="role", reason="unknown role 'elev' | x", sync_key="k7"),
            Reject(file="students.csv", row=12, field="sync_key", reason="missing sync key"),
        ),
        conflicts=(
            Conflict(
                identity="id-5",
                roster_keys=("k5",),
                snapshot_keys=("a5", "b5"),
                reason="two snapshot persons share this identity",
            ),
        ),
        unchanged_by={"person": 40},
        snapshot_sizes={"person": 45},
    )


@pytest.fixture(name="run")
def fixture_run(plan: Plan) -> RunResult:
    """A stopped run over the plan with every outcome."""
    ops = plan.operations
    return RunResult(
        run_id="run-1",
        plan=plan,
        results=(
            OperationResult(
                operation=ops[0],
                outcome=Outcome.CONFIRMED,
                message_identifier="m-1",
                status=Status(code_major="success", severity="status", message_id_ref="m-1"),
                attempts=1,
            ),
            OperationResult(
                operation=ops[1],
                outcome=Outcome.REJECTED,
                message_identifier="m-2",
                status=Status(
                    code_major="failure",
                    severity="error",
                    code_minor=(("invaliddata", "email"),),
                    message_id_ref="m-2",
                    description=f"bad value {SCRIPT}",
                ),
                attempts=1,
            ),
            OperationResult(
                operation=ops[2],
                outcome=Outcome.UNCONFIRMED,
                message_identifier="m-3",
                error="timeout",
                attempts=3,
            ),
            OperationResult(operation=ops[3], outcome=Outcome.SKIPPED),
            OperationResult(operation=plan.deletions[0], outcome=Outcome.SKIPPED, error="deletes disabled"),
        ),
        started_at="2025-01-31T02:00:00Z",
        finished_at="2025-01-31T02:01:00Z",
        stopped="circuit open",
    )


def _creates(n: int) -> Plan:
    return Plan(
        operations=tuple(Create(record=make_person(f"k{i:06d}"), password=PASSWORD) for i in range(n)),
        deletions=(),
        rejects=(),
        conflicts=(),
        unchanged_by={"person": 0},
        snapshot_sizes={"person": 0},
    )


# --- tests -----------------------------------------------------------------------------------------


class TestReportMeta:
    """The header context and its endpoint sanitising."""

    def test_endpoint_loses_credentials_and_query(self, meta: ReportMeta) -> None:
        """The endpoint shown in a report carries no userinfo and no query string."""
        assert meta.as_dict()["endpoint"] == "https://ims.example.test/PersonManagementService.svc"

    def test_endpoint_keeps_port(self) -> None:
        """A non-default port survives sanitising."""
        meta = ReportMeta(
            title="t", roster="r", mapping="m", state="s", generated_at="g", tool_version="v",
            endpoint="https://127.0.0.1:8443/pms",
        )  # fmt: skip
        assert meta.as_dict()["endpoint"] == "https://127.0.0.1:8443/pms"


class TestPlanJson:
    """The JSON shape of a plan."""

    def test_shape(self, plan: Plan, meta: ReportMeta) -> None:
        """The JSON report has the fixed top-level keys, the summary counts and every entry."""
        data = json.loads(render_plan(plan, fmt="json", meta=meta))
        assert set(data) == {"summary", "operations", "rejects", "conflicts", "deletions", "meta"}
        assert data["summary"] == {
            "create": 1,
            "update": 1,
            "changeIdentifier": 2,
            "delete": 1,
            "rejected": 2,
            "conflicts": 1,
            "unchanged": 40,
            "snapshot": 45,
            # a plan of persons only counts no groups or memberships
            **dict.fromkeys(
                (
                    *(
                        f"group{k}"
                        for k in ("Create", "Update", "ChangeIdentifier", "Delete", "Unchanged", "Snapshot")
                    ),
                    *(
                        f"membership{k}"
                        for k in ("Create", "Update", "ChangeIdentifier", "Delete", "Unchanged", "Snapshot")
                    ),
                ),
                0,
            ),
        }
        ops = [op["op"] for op in data["operations"]]
        assert ops == ["create", "update", "changeIdentifier", "changeIdentifier"]
        assert data["meta"]["title"] == "Dry run: planned changes"
        assert data["meta"]["generatedAt"] == "2025-01-31T02:00:00Z"

    def test_operations(self, plan: Plan, meta: ReportMeta) -> None:
        """Each operation carries its keys, identity, person fields and changes."""
        ops = json.loads(render_plan(plan, fmt="json", meta=meta))["operations"]
        create, update, change, _ = ops
        assert create["syncKey"] == "k1"
        assert create["identity"] == "id-1"
        assert set(create["person"]) == set(PERSON_FIELDS)
        assert create["person"]["given_name"] == SCRIPT
        assert create["changes"] == []
        assert update["changes"][1] == {"field": "mobile", "old": "", "new": "-5 | pipe\nnewline"}
        assert (change["oldId"], change["newId"], change["syncKey"]) == ("old-3", "k3", "k3")
        assert change["changes"] == [{"field": "role", "old": "Student", "new": "Staff"}]
        assert "oldId" not in update

    def test_set_aside(self, plan: Plan, meta: ReportMeta) -> None:
        """Deletions, rejects and conflicts appear with their details."""
        data = json.loads(render_plan(plan, fmt="json", meta=meta))
        assert data["deletions"] == [
            {
                "op": "delete",
                "object": "person",
                "syncKey": "k9",
                "identity": "id-9",
                "reason": "not in roster",
            }
        ]
        assert data["rejects"][0] == {
            "file": "students.csv",
            "row": 7,
            "field": "role",
            "reason": "unknown role 'elev' | x",
            "syncKey": "k7",
        }
        assert data["conflicts"][0]["snapshotKeys"] == ["a5", "b5"]

    def test_plan_to_dict_matches_rendered_json(self, plan: Plan, meta: ReportMeta) -> None:
        """plan_to_dict is exactly what the JSON renderer writes."""
        assert plan_to_dict(plan, meta=meta) == json.loads(render_plan(plan, fmt="json", meta=meta))
        assert plan_to_dict(plan)["meta"] == {}


class TestPlanCsv:
    """The plan CSV and its formula neutralisation."""

    def test_one_row_per_entry_with_kind(self, plan: Plan, meta: ReportMeta) -> None:
        """The CSV has one row per operation, deletion, reject and conflict, told apart by `kind`."""
        rows = list(csv.DictReader(io.StringIO(render_plan(plan, fmt="csv", meta=meta))))
        assert [r["kind"] for r in rows] == [
            "create",
            "update",
            "changeIdentifier",
            "changeIdentifier",
            "delete",
            "reject",
            "reject",
            "conflict",
        ]
        reject = rows[5]
        assert (reject["file"], reject["row"], reject["field"]) == ("students.csv", "7", "role")
        assert rows[2]["old_id"] == "old-3"
        assert rows[2]["changes"] == "Role: Student → Staff"
        assert rows[7]["snapshot_keys"] == "a5 b5"

    def test_formulas_are_neutralised(self, plan: Plan, meta: ReportMeta) -> None:
        """Cells a spreadsheet would evaluate get a leading quote; others are untouched."""
        rows = list(csv.DictReader(io.StringIO(render_plan(plan, fmt="csv", meta=meta))))
        assert rows[0]["email"] == "'" + FORMULA
        assert rows[0]["phone"] == "'+47 555 1234"
        assert rows[0]["given_name"] == SCRIPT
        assert rows[1]["email"] == "new@school.test"
        for row in rows:
            for value in row.values():
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))

    @pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
    def test_neutralise_cell(self, start: str) -> None:
        """Every OWASP trigger character is neutralised; a trigger later in the cell is not."""
        assert neutralise_cell(start + "1+1") == "'" + start + "1+1"
        assert neutralise_cell("a" + start) == "a" + start

    def test_frame_to_csv(self) -> None:
        """A DataFrame export is neutralised too, with missing values as empty cells."""
        frame = pd.DataFrame({"sync_key": ["k1", "k2"], "email": ["=cmd()", None]})
        rows = list(csv.reader(io.StringIO(frame_to_csv(frame))))
        assert rows == [["sync_key", "email"], ["k1", "'=cmd()"], ["k2", ""]]

    def test_frame_to_csv_keeps_named_index(self) -> None:
        """A snapshot-shaped frame (index "sync_key") exports its keys as the first column."""
        frame = pd.DataFrame(
            {"identity": ["i1"], "role": ["Student"]}, index=pd.Index(["-k1"], name="sync_key")
        )
        rows = list(csv.reader(io.StringIO(frame_to_csv(frame))))
        assert rows == [["sync_key", "identity", "role"], ["'-k1", "i1", "Student"]]


class TestPlanMarkdown:
    """The plan as Markdown tables."""

    def test_summary_table(self, plan: Plan, meta: ReportMeta) -> None:
        """The summary comes first, as a table of counts."""
        text = render_plan(plan, fmt="md", meta=meta)
        assert text.startswith("# Dry run: planned changes\n")
        assert text.index("## Summary") < text.index("## New people")
        rows = {md_cells(line)[0]: md_cells(line)[1] for line in md_section(text, "Summary") if "|" in line}
        assert rows["Create"] == "1"
        assert rows["Change identifier"] == "2"
        assert rows["Rejected rows"] == "2"

    def test_sections_have_tables_with_escaped_cells(self, plan: Plan, meta: ReportMeta) -> None:
        """Every kind has a table whose rows keep the column count despite pipes and newlines in data."""
        text = render_plan(plan, fmt="md", meta=meta)
        for heading, width, count in [
            ("New people", 10, 1),
            ("Changed people", 4, 1),
            ("Identifier changes", 5, 2),
            ("Deletion candidates", 3, 1),
            ("Conflicts", 4, 1),
            ("Rejected rows", 5, 2),
        ]:
            table = [line for line in md_section(text, heading) if line.startswith("|")]
            assert len(table) == 2 + count, heading
            assert all(len(md_cells(line)) == width for line in table), heading
        update_row = next(line for line in md_section(text, "Changed people") if line.startswith("| k2"))
        assert "\\| pipe<br>newline" in update_row
        assert "<script>" not in text
        assert "\\<script\\>" in text

    def test_empty_sections_say_none(self, meta: ReportMeta) -> None:
        """A kind without entries says so instead of drawing an empty table."""
        text = render_plan(_creates(1), fmt="md", meta=meta)
        assert md_section(text, "Conflicts")[1] == "None."


class TestPlanHtml:
    """The plan as one self-contained, escaped, filterable HTML page."""

    def test_tables_hold_every_kind(self, plan: Plan, meta: ReportMeta) -> None:
        """Each kind has its own table with the expected rows and readable cells."""
        page = parse_html(render_plan(plan, fmt="html", meta=meta))
        assert {k: len(v) for k, v in page.tables.items()} == {
            "t-creates": 1,
            "t-updates": 1,
            "t-identifiers": 2,
            "t-deletions": 1,
            "t-conflicts": 1,
            "t-rejects": 2,
        }
        assert page.headers["t-rejects"] == ["File", "Row", "Field", "Sync key", "Reason"]
        assert page.tables["t-rejects"][0][:3] == ["students.csv", "7", "role"]
        changes = page.tables["t-updates"][0][3]
        assert "E-mail: old@school.test → new@school.test" in changes
        assert "Mobile: (empty) → -5 | pipe" in changes
        assert page.tables["t-identifiers"][0][:2] == ["old-3", "k3"]

    def test_hostile_values_render_as_text(self, plan: Plan, meta: ReportMeta) -> None:
        """Script and attribute-breaking values appear as cell text, never as elements or handlers."""
        text = render_plan(plan, fmt="html", meta=meta)
        page = parse_html(text)
        create = page.tables["t-creates"][0]
        assert SCRIPT in create
        assert IMG in create
        tags = [tag for tag, _ in page.tags]
        assert tags.count("script") == 1
        assert "img" not in tags
        for _, attrs in page.tags:
            assert not any(name.startswith("on") for name in attrs)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text

    def test_self_contained_with_hash_csp(self, plan: Plan, meta: ReportMeta) -> None:
        """The page loads nothing from elsewhere and its CSP allows exactly its inline script and style."""
        page = parse_html(render_plan(plan, fmt="html", meta=meta))
        csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv"))
        assert csp is not None
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        for kind in ("script", "style"):
            (body,) = page.raw[kind]
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            assert directives[f"{kind}-src"] == f"'sha256-{digest}'"
        assert directives["default-src"] == "'none'"
        for _, attrs in page.tags:
            assert "src" not in attrs
            assert "style" not in attrs
            assert not (attrs.get("href") or "").startswith(("http", "//"))

    def test_summary_chart_filters_and_meta(self, plan: Plan, meta: ReportMeta) -> None:
        """The header shows the context (sanitised endpoint), an SVG chart and a filter box per table."""
        text = render_plan(plan, fmt="html", meta=meta)
        page = parse_html(text)
        assert "hunter2" not in text
        assert "<dd>https://ims.example.test/PersonManagementService.svc</dd>" in text
        assert sum(tag == "svg" for tag, _ in page.tags) == 1
        rects = [a for t, a in page.tags if t == "rect"]
        assert len(rects) == 6
        filters = {a["id"] for t, a in page.tags if t == "input"}
        assert filters == {f"{table}-filter" for table in page.tables}

    def test_empty_sections_say_none(self, meta: ReportMeta) -> None:
        """Sections without entries have no table and say none."""
        page = parse_html(render_plan(_creates(2), fmt="html", meta=meta))
        assert set(page.tables) == {"t-creates"}
        for section in ("updates", "identifiers", "deletions", "conflicts", "rejects"):
            assert "None." in page.sections[section]


class TestSecrets:
    """No password reaches any report."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_password_never_rendered(self, plan: Plan, run: RunResult, meta: ReportMeta, fmt) -> None:
        """A create's password appears in no plan or run report of any format."""
        assert PASSWORD not in render_plan(plan, fmt=fmt, meta=meta)
        assert PASSWORD not in render_run(run, fmt=fmt, meta=meta)
        assert PASSWORD not in json.dumps(plan_to_dict(plan)) + json.dumps(run_to_dict(run))
        assert "hunter2" not in render_plan(plan, fmt=fmt, meta=meta)


class TestTruncation:
    """Row caps in the human formats and speed on large plans."""

    def test_html_and_md_cap_rows_with_note(self, meta: ReportMeta) -> None:
        """Markdown and HTML tables stop at max_rows and say how many were left out."""
        plan = _creates(13)
        page = parse_html(render_plan(plan, fmt="html", meta=meta, max_rows=10))
        assert len(page.tables["t-creates"]) == 10
        assert "3 more not shown — use --format csv" in page.sections["creates"]
        md = render_plan(plan, fmt="md", meta=meta, max_rows=10)
        assert len([line for line in md_section(md, "New people") if line.startswith("| k")]) == 10
        assert "3 more not shown — use --format csv" in md

    def test_csv_and_json_are_complete(self, meta: ReportMeta) -> None:
        """The machine formats keep every entry even past the table cap."""
        plan = _creates(13)
        assert len(json.loads(render_plan(plan, fmt="json", meta=meta, max_rows=10))["operations"]) == 13
        assert (
            len(list(csv.DictReader(io.StringIO(render_plan(plan, fmt="csv", meta=meta, max_rows=10))))) == 13
        )

    def test_default_cap_and_large_plan_speed(self, meta: ReportMeta) -> None:
        """A plan of 10^5 operations renders in every format within seconds, HTML capped at 5,000 rows."""
        # One operation repeated: building 10^5 distinct persons would cost more than rendering them.
        plan = Plan(
            operations=tuple(_creates(1).operations) * 100_000,
            deletions=(),
            rejects=(),
            conflicts=(),
            unchanged_by={"person": 0},
            snapshot_sizes={"person": 0},
        )
        started = time.perf_counter()
        rendered = {fmt: render_plan(plan, fmt=fmt, meta=meta) for fmt in FORMATS}
        elapsed = time.perf_counter() - started
        assert "95,000 more not shown" in rendered["html"]
        # 5,000 rows, the table's header row and the summary's header and 8 count rows
        assert rendered["html"].count("<tr>") == 5000 + 1 + 1 + 8
        assert "95,000 more not shown" in rendered["md"]
        assert rendered["csv"].count("\r\n") == 100_001
        assert elapsed < 10, elapsed


class TestRun:
    """Reports of a run's outcomes in every format."""

    def test_json(self, run: RunResult, meta: ReportMeta) -> None:
        """The run JSON has counts by outcome, the stop reason and each operation's status."""
        data = json.loads(render_run(run, fmt="json", meta=meta))
        assert data["summary"] == {"confirmed": 1, "rejected": 1, "unconfirmed": 1, "skipped": 2, "total": 5}
        assert data["stopped"] == "circuit open"
        rejected = data["results"][1]
        assert rejected["op"] == "update"
        assert rejected["outcome"] == "rejected"
        assert rejected["messageIdentifier"] == "m-2"
        assert rejected["status"] == {
            "codeMajor": "failure",
            "severity": "error",
            "codeMinor": [{"name": "invaliddata", "value": "email"}],
            "messageIdRef": "m-2",
            "description": f"bad value {SCRIPT}",
        }
        change = data["results"][2]
        assert (change["oldId"], change["newId"], change["status"], change["attempts"]) == (
            "old-3",
            "k3",
            None,
            3,
        )
        assert data["results"][4]["op"] == "delete"
        assert data == run_to_dict(run, meta=meta)

    def test_csv(self, run: RunResult, meta: ReportMeta) -> None:
        """The run CSV has one row per operation with its outcome and status fields, then the plan's
        rejected rows and conflicts."""
        rows = list(csv.DictReader(io.StringIO(render_run(run, fmt="csv", meta=meta))))
        assert [r["kind"] for r in rows[5:]] == ["reject", "reject", "conflict"]
        assert [r["outcome"] for r in rows[:5]] == [
            "confirmed",
            "rejected",
            "unconfirmed",
            "skipped",
            "skipped",
        ]
        assert {r["object"] for r in rows[:5]} == {"person"}
        assert (rows[5]["file"], rows[5]["row"], rows[5]["field"], rows[5]["sync_key"]) == (
            "students.csv",
            "7",
            "role",
            "k7",
        )
        assert (rows[7]["identity"], rows[7]["roster_keys"], rows[7]["snapshot_keys"]) == (
            "id-5",
            "k5",
            "a5 b5",
        )
        assert (rows[1]["code_major"], rows[1]["code_minor"]) == ("failure", "invaliddata=email")
        assert rows[2]["error"] == "timeout"

    def test_md(self, run: RunResult, meta: ReportMeta) -> None:
        """The run Markdown shows the stop banner, outcome counts and the problems first."""
        text = render_run(run, fmt="md", meta=meta)
        assert "The run stopped early: circuit open" in text
        summary = {md_cells(x)[0]: md_cells(x)[1] for x in md_section(text, "Summary") if "|" in x}
        assert summary["Skipped"] == "2"
        problems = [line for line in md_section(text, "Not confirmed") if line.startswith("| ")][2:]
        assert [md_cells(line)[0] for line in problems] == ["rejected", "unconfirmed", "skipped", "skipped"]
        assert text.index("## Not confirmed") < text.index("## Confirmed")

    def test_html(self, run: RunResult, meta: ReportMeta) -> None:
        """The run HTML lists unconfirmed work and confirmed work in separate tables, escaped."""
        page = parse_html(render_run(run, fmt="html", meta=meta))
        assert len(page.tables["t-problems"]) == 4
        assert len(page.tables["t-confirmed"]) == 1
        rejected = page.tables["t-problems"][0]
        assert rejected[:4] == ["rejected", "Update", "k2", "failure/error"]
        assert f"bad value {SCRIPT}" in rejected
        assert page.tables["t-problems"][1][2] == "old-3 → k3"
        assert [tag for tag, _ in page.tags].count("script") == 1
        assert any(t == "p" and a.get("role") == "alert" for t, a in page.tags)


def _entry(mid: str, **overrides: object) -> JournalEntry:
    values: dict[str, object] = {
        "run_id": "run-1",
        "message_identifier": mid,
        "operation": "createPersons",
        "attempt": 1,
        "sent_at": datetime(2025, 1, 31, 2, 0, tzinfo=UTC),
        "answered_at": datetime(2025, 1, 31, 2, 0, 1, tzinfo=UTC),
        "message_id_ref": mid,
        "code_major": "success",
        "severity": "status",
        "code_minor": (),
        "description": "",
        "outcome": "confirmed",
        "error": "",
        "items": (
            JournalItemRow(
                index=0,
                sync_key="k1",
                new_sync_key="",
                code_major="success",
                severity="status",
                code_minor=(),
                description="",
                message_id_ref=None,
                outcome="confirmed",
            ),
        ),
    }
    values.update(overrides)
    return JournalEntry(**values)  # type: ignore[arg-type]


class TestReconcile:
    """The reconcile renderer over real journal entries."""

    rows = reconcile(
        [
            _entry(
                "m-1",
                code_major="failure",
                severity="error",
                code_minor=(("invaliddata", "email"),),
                description="=SUM(1)\nsecond line " + "x" * 80,
                outcome="rejected",
            ),
            _entry("m-2"),
            _entry(
                "m-3", answered_at=None, message_id_ref=None, code_major=None, severity=None, outcome="sent"
            ),
        ]
    )

    def test_table(self) -> None:
        """The terminal table has a header, one aligned, single-line, clipped row per request, then counts."""
        lines = render_reconcile(self.rows, fmt="table").splitlines()
        assert lines[0].split()[:3] == ["flags", "message", "id"]
        assert len(lines) == 5
        assert lines[1].startswith("failed ")
        assert lines[3].startswith("unanswered ")
        assert lines[1].index("m-1") == lines[0].index("message id")
        assert lines[1].endswith("…")
        assert lines[-1] == "3 requests: 1 unanswered, 0 unmatched, 1 failed, 1 ok"

    def test_json(self) -> None:
        """JSON holds the counts and every request with its items and status."""
        data = json.loads(render_reconcile(self.rows, fmt="json"))
        assert data["summary"]["requests"] == 3
        first = data["requests"][0]
        assert first["flags"] == ["failed"]
        assert first["codeMinor"] == [{"name": "invaliddata", "value": "email"}]
        assert first["items"][0]["syncKey"] == "k1"
        assert data["requests"][2]["answeredAt"] == ""

    def test_csv(self) -> None:
        """CSV has one neutralised row per request."""
        rows = list(csv.DictReader(io.StringIO(render_reconcile(self.rows, fmt="csv"))))
        assert [r["flags"] for r in rows] == ["failed", "ok", "unanswered"]
        assert rows[0]["description"].startswith("'=SUM(1)")
        assert rows[1]["item_sync_keys"] == "k1"

    def test_empty_and_unknown_format(self) -> None:
        """No rows says so; an unknown format is refused."""
        assert render_reconcile([], fmt="table") == "no requests in the journal\n"
        assert json.loads(render_reconcile([], fmt="json"))["requests"] == []
        with pytest.raises(ValueError, match="table, json, csv"):
            render_reconcile(self.rows, fmt="html")


class TestFormats:
    """Format dispatch and purity."""

    def test_unknown_format_rejected(self, plan: Plan, meta: ReportMeta) -> None:
        """An unknown format name raises ValueError naming the choices."""
        with pytest.raises(ValueError, match="json, csv, md, html"):
            render_plan(plan, fmt="xml", meta=meta)  # type: ignore[arg-type]

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_deterministic(self, plan: Plan, run: RunResult, meta: ReportMeta, fmt) -> None:
        """Rendering is pure: the same input gives byte-identical output."""
        assert render_plan(plan, fmt=fmt, meta=meta) == render_plan(plan, fmt=fmt, meta=meta)
        assert render_run(run, fmt=fmt, meta=meta) == render_run(run, fmt=fmt, meta=meta)


@pytest.mark.skipif(chromium() is None, reason="Chromium not installed: real-browser rendering test skipped")
def test_html_in_headless_chromium(plan: Plan, meta: ReportMeta, tmp_path: Path) -> None:
    """Real Chromium runs the page's script under its CSP: rows render and the #q= filter hides rows."""
    report = tmp_path / "plan.html"
    report.write_text(render_plan(plan, fmt="html", meta=meta), encoding="utf-8")

    def dump(url: str) -> Page:
        return parse_html(chromium_dom(url, tmp_path))

    page = dump(report.as_uri())
    assert any(t == "body" and a.get("data-ready") == "1" for t, a in page.tags), "script blocked or failed"
    assert len(page.tables["t-identifiers"]) == 2
    filtered = dump(report.as_uri() + "#q=old-3")
    hidden = [a for t, a in filtered.tags if t == "tr" and "hidden" in a]
    assert len(hidden) >= 1 + 1 + 1  # the other identifier change, the update and the create
    rows = [a for t, a in filtered.tags if t == "tr"]
    assert len(rows) > len(hidden)


# A minimal DOM for the report's script: just what it touches (tables, rows, cells, inputs, events).
_NODE_DOM_SHIM = r"""
const fs = require("fs");
const data = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
function node(text) {
  return {
    textContent: text || "", attrs: {}, hidden: false, listeners: {}, value: "",
    setAttribute(k, v) { this.attrs[k] = String(v); },
    getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; },
    hasAttribute(k) { return k in this.attrs; },
    removeAttribute(k) { delete this.attrs[k]; },
    addEventListener(type, f) { (this.listeners[type] = this.listeners[type] || []).push(f); },
    fire(type, event) { (this.listeners[type] || []).forEach((f) => f(event || { preventDefault() {} })); },
  };
}
const byId = {};
const tables = data.tables.map((t) => {
  const table = node("");
  table.id = t.id;
  table.tHead = { rows: [{ cells: t.headers.map((h) => node(h)) }] };
  const rows = t.rows.map((cells) => {
    const row = node(cells.join(" "));
    row.cells = cells.map((c) => node(c));
    return row;
  });
  table.tBodies = [{
    rows,
    appendChild(fragment) {
      for (const row of fragment.children) { rows.splice(rows.indexOf(row), 1); rows.push(row); }
    },
  }];
  byId[t.id] = table;
  const input = node("");
  input.hidden = true;
  byId[t.id + "-filter"] = input;
  byId[t.id + "-shown"] = node("");
  return table;
});
const body = node("");
globalThis.location = { hash: data.hash };
globalThis.document = {
  body,
  querySelectorAll: (selector) => (selector === "table.data" ? tables : []),
  getElementById: (id) => byId[id] || null,
  createDocumentFragment: () => ({ children: [], appendChild(r) { this.children.push(r); } }),
};
(0, eval)(fs.readFileSync(process.argv[3], "utf8"));
const state = () => Object.fromEntries(tables.map((t) => [t.id, {
  hidden: t.tBodies[0].rows.map((r) => r.hidden),
  first: t.tBodies[0].rows.map((r) => r.cells[0].textContent),
  shown: byId[t.id + "-shown"].textContent,
  inputHidden: byId[t.id + "-filter"].hidden,
}]));
const out = { ready: body.getAttribute("data-ready"), initial: state() };
const rejects = byId["t-rejects"];
rejects.tHead.rows[0].cells[1].fire("click");
out.ascending = rejects.tBodies[0].rows.map((r) => r.cells[1].textContent);
rejects.tHead.rows[0].cells[1].fire("click");
out.descending = rejects.tBodies[0].rows.map((r) => r.cells[1].textContent);
out.sortAttr = rejects.tHead.rows[0].cells[1].getAttribute("aria-sort");
const input = byId["t-creates-filter"];
input.value = "K0000";
input.fire("input");
out.typed = state()["t-creates"];
process.stdout.write(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js not installed: script logic test skipped")
def test_report_script_filters_and_sorts_in_node(meta: ReportMeta, tmp_path: Path) -> None:
    """The page's own script, run by Node.js over a minimal DOM, filters from #q=, on typing, and sorts."""
    plan = _creates(3)
    rejects = tuple(Reject(file="f.csv", row=row, field="role", reason="bad") for row in (10, 9, 100))
    plan = Plan(
        operations=plan.operations,
        deletions=(),
        rejects=rejects,
        conflicts=(),
        unchanged_by={"person": 0},
        snapshot_sizes={"person": 0},
    )
    page = parse_html(render_plan(plan, fmt="html", meta=meta))
    (script,) = page.raw["script"]
    tables = [{"id": t, "headers": page.headers[t], "rows": rows} for t, rows in page.tables.items()]
    (tmp_path / "data.json").write_text(json.dumps({"hash": "#q=k000001", "tables": tables}))
    (tmp_path / "report.js").write_text(script)
    (tmp_path / "shim.js").write_text(_NODE_DOM_SHIM)
    completed = subprocess.run(
        [
            str(shutil.which("node")),
            str(tmp_path / "shim.js"),
            str(tmp_path / "data.json"),
            str(tmp_path / "report.js"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    out = json.loads(completed.stdout)
    assert out["ready"] == "1"
    creates = out["initial"]["t-creates"]
    assert creates["hidden"] == [True, False, True]
    assert creates["shown"] == "1 of 3 shown"
    assert creates["inputHidden"] is False
    assert out["initial"]["t-rejects"]["hidden"] == [True, True, True]
    assert out["ascending"] == ["9", "10", "100"]
    assert out["descending"] == ["100", "10", "9"]
    assert out["sortAttr"] == "descending"
    assert out["typed"]["hidden"] == [False, False, False]
    assert out["typed"]["shown"] == "3 of 3 shown"
