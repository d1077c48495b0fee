"""Reports of plans and runs that hold groups and memberships (issue 7): every format names each
operation's kind of object, escapes and neutralises hostile group names and roles, lists what a run
with `--deletes off|deactivate|delete` did not send, and never carries a password."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import typing
from pathlib import Path

import pytest

from sync.models import (
    ChangeIdentifier,
    Conflict,
    Create,
    Deactivate,
    Delete,
    DeletesMode,
    FieldChange,
    Group,
    Membership,
    Operation,
    OperationResult,
    Outcome,
    Person,
    Plan,
    Reject,
    RunResult,
    Status,
    Update,
)
from sync.models.kinds import KINDS
from sync.report.ops import OP_LABELS as _OP_LABELS
from sync.report.ops import PERSON_LABELS as _PERSON_LABELS
from sync.report.render import (
    FORMATS,
    ReportMeta,
    plan_to_dict,
    render_plan,
    render_run,
)
from tests.reports import (
    PASSWORD,
    SCRIPT,
    chromium,
    chromium_dom,
    make_person,
    md_cells,
    md_section,
    parse_html,
    report_meta,
)

FORMULA = "=cmd|' /C calc'!A0"
SKIP_REASON = "not sent: group 'c1' was not confirmed in this run"


@pytest.fixture(name="meta")
def fixture_meta() -> ReportMeta:
    """Plain report context."""
    return report_meta(title="Dry run", roster="roster/")


@pytest.fixture(name="plan")
def fixture_plan() -> Plan:
    """Groups, a person and memberships of every operation kind, with hostile names and roles."""
    return Plan(
        operations=(
            Create(record=Group(sync_key="s1", name="North School", type="School"), identity="org-1"),
            Create(
                record=Group(sync_key="c1", name=FORMULA, type="Course", parent="s1", description=SCRIPT),
                identity="org-2",
            ),
            Update(
                record=Group(sync_key="c2", name=SCRIPT, type="Course", parent="s1"),
                changes=(
                    FieldChange(field="name", old="Maths", new=SCRIPT),
                    FieldChange(field="parent", old="", new="s1"),
                ),
            ),
            ChangeIdentifier(
                old_id="c3-old",
                new_id="c3",
                record=Group(sync_key="c3", name="History", type="Course", parent="s1"),
                identity="org-3",
            ),
            Create(record=make_person("p1"), identity="id-1", password=PASSWORD),
            Create(record=Membership(sync_key="m1", group="c1", person="p1", role=FORMULA)),
            Create(record=Membership(sync_key="m2", group="c2", person="p2", role=SCRIPT)),
            Update(
                record=Membership(sync_key="m3", group="c2", person="p3", role="Instructor"),
                changes=(FieldChange(field="role", old="Learner", new="Instructor"),),
            ),
        ),
        deletions=(
            Delete(
                record=Membership(sync_key="m9", group="c9", person="p9", role="Learner"),
                reason="not in roster",
            ),
            Delete(record=Group(sync_key="c9", parent="s1"), identity="org-9", reason="not in roster"),
            Delete(record=Person(sync_key="p9"), identity="id-9", reason="not in roster"),
        ),
        rejects=(Reject(file="groups.csv", row=4, field="type", reason="unknown type", sync_key="=bad"),),
        conflicts=(
            Conflict(identity="org-5", roster_keys=("c5",), snapshot_keys=("x5", "y5"), reason="ambiguous"),
        ),
        unchanged_by={"person": 5, "group": 3, "membership": 10},
        snapshot_sizes={"person": 6, "group": 7, "membership": 12},
    )


def _sent_deletions(plan: Plan, mode: DeletesMode) -> list[Operation]:
    """What a run sends of the deletion candidates under `--deletes mode` (as sync.plan.ordering decides)."""
    if mode is DeletesMode.OFF:
        return []
    if mode is DeletesMode.DELETE:
        return list(plan.deletions)
    return [
        Deactivate(record=dataclasses.replace(d.record, active="false"), reason=d.reason)
        for d in plan.deletions
        if isinstance(d, Delete) and isinstance(d.record, Membership)
    ]


def _run(plan: Plan, mode: DeletesMode) -> RunResult:
    """A run of the plan: c1 rejected (so m1 is skipped), m3 unconfirmed, deletions as `mode` sends them."""
    ops = plan.operations
    confirmed = Status(code_major="success", severity="status")
    results = [
        OperationResult(operation=ops[0], outcome=Outcome.CONFIRMED, status=confirmed, attempts=1),
        OperationResult(
            operation=ops[1],
            outcome=Outcome.REJECTED,
            message_identifier="m-c1",
            status=Status(code_major="failure", severity="error", description=f"bad name {SCRIPT}"),
            attempts=1,
        ),
        OperationResult(operation=ops[4], outcome=Outcome.CONFIRMED, status=confirmed, attempts=1),
        OperationResult(operation=ops[5], outcome=Outcome.SKIPPED, error=SKIP_REASON),
        OperationResult(operation=ops[7], outcome=Outcome.UNCONFIRMED, error="timeout", attempts=3),
    ]
    results += [
        OperationResult(operation=op, outcome=Outcome.CONFIRMED, status=confirmed, attempts=1)
        for op in _sent_deletions(plan, mode)
    ]
    return RunResult(
        run_id="run-g",
        plan=plan,
        results=tuple(results),
        started_at="2025-01-31T02:00:00Z",
        finished_at="2025-01-31T02:01:00Z",
    )


def _groups_only(plan: Plan) -> Plan:
    ops = tuple(op for op in plan.operations if isinstance(op.record, Group))
    return Plan(
        operations=ops,
        deletions=(),
        rejects=(),
        conflicts=(),
        unchanged_by={"person": 0},
        snapshot_sizes={"person": 0, "group": 2},
    )


def _csv_rows(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert all(None not in row for row in rows), "a row has more cells than the header"
    assert all(None not in row.values() for row in rows), "a row has fewer cells than the header"
    return rows


def _md_summary(text: str) -> dict[str, str]:
    return {md_cells(line)[0]: md_cells(line)[1] for line in md_section(text, "Summary") if "|" in line}


# --- shared -----------------------------------------------------------------------------------------


def test_every_operation_class_is_described() -> None:
    """Every Operation class is some kind's, and the report has a table label for each kind's each."""
    classes = {typing.get_origin(t) for t in typing.get_args(Operation)}
    assert classes == {op_type for kind in KINDS for _, op_type in kind.typed_operations}
    described = {(name, kind.name) for kind in KINDS for name, _ in kind.typed_operations}
    assert described == set(_OP_LABELS)
    assert {name for name, kind in described if kind == "person"} == set(_PERSON_LABELS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_password_never_rendered(plan: Plan, meta: ReportMeta, fmt) -> None:
    """The person create's password appears in no format of the plan or of any run."""
    assert PASSWORD not in render_plan(plan, fmt=fmt, meta=meta)
    for mode in DeletesMode:
        assert PASSWORD not in render_run(_run(plan, mode), fmt=fmt, meta=meta)


# --- plan -------------------------------------------------------------------------------------------


class TestPlanJson:
    """Group and membership operations in the plan JSON."""

    def test_operations_name_object_and_op(self, plan: Plan, meta: ReportMeta) -> None:
        """Each operation says its object and op, in the order the plan holds them."""
        data = json.loads(render_plan(plan, fmt="json", meta=meta))
        assert [(op["object"], op["op"]) for op in data["operations"]] == [
            ("group", "create"),
            ("group", "create"),
            ("group", "update"),
            ("group", "changeIdentifier"),
            ("person", "create"),
            ("membership", "create"),
            ("membership", "create"),
            ("membership", "update"),
        ]
        assert data == plan_to_dict(plan, meta=meta)

    def test_group_fields(self, plan: Plan, meta: ReportMeta) -> None:
        """Group operations carry the group's fields, identity and changes, and no person."""
        ops = json.loads(render_plan(plan, fmt="json", meta=meta))["operations"]
        assert ops[1] == {
            "op": "create",
            "object": "group",
            "syncKey": "c1",
            "identity": "org-2",
            "group": {"name": FORMULA, "type": "Course", "parent": "s1", "description": SCRIPT},
            "changes": [],
        }
        assert ops[2]["changes"] == [
            {"field": "name", "old": "Maths", "new": SCRIPT},
            {"field": "parent", "old": "", "new": "s1"},
        ]
        assert (ops[3]["oldId"], ops[3]["newId"], ops[3]["syncKey"]) == ("c3-old", "c3", "c3")

    def test_membership_fields(self, plan: Plan, meta: ReportMeta) -> None:
        """Membership operations carry group, person, role and active (memberships have no identity)."""
        ops = json.loads(render_plan(plan, fmt="json", meta=meta))["operations"]
        assert ops[5] == {
            "op": "create",
            "object": "membership",
            "syncKey": "m1",
            "membership": {"group": "c1", "person": "p1", "role": FORMULA, "active": "true"},
            "changes": [],
        }
        assert ops[7]["changes"] == [{"field": "role", "old": "Learner", "new": "Instructor"}]

    def test_person_operation_keeps_its_shape(self, plan: Plan, meta: ReportMeta) -> None:
        """A person operation has exactly the keys it always had, plus "object"."""
        person = json.loads(render_plan(plan, fmt="json", meta=meta))["operations"][4]
        assert set(person) == {"op", "object", "syncKey", "identity", "person", "changes"}
        assert person["object"] == "person"
        assert person["person"]["username"] == "up1"

    def test_deletions_and_summary(self, plan: Plan, meta: ReportMeta) -> None:
        """Deletion candidates name their object; a group's has its snapshot parent, a membership's its
        record; the summary counts groups and memberships."""
        data = json.loads(render_plan(plan, fmt="json", meta=meta))
        assert data["deletions"] == [
            {
                "op": "delete",
                "object": "membership",
                "syncKey": "m9",
                "reason": "not in roster",
                "membership": {"group": "c9", "person": "p9", "role": "Learner", "active": "true"},
            },
            {
                "op": "delete",
                "object": "group",
                "syncKey": "c9",
                "identity": "org-9",
                "reason": "not in roster",
                "parent": "s1",
            },
            {
                "op": "delete",
                "object": "person",
                "syncKey": "p9",
                "identity": "id-9",
                "reason": "not in roster",
            },
        ]
        summary = data["summary"]
        assert (summary["groupCreate"], summary["groupUpdate"], summary["groupChangeIdentifier"]) == (2, 1, 1)
        assert (summary["groupDelete"], summary["groupSnapshot"]) == (1, 7)
        assert (summary["membershipCreate"], summary["membershipUpdate"], summary["membershipDelete"]) == (
            2,
            1,
            1,
        )
        assert (summary["create"], summary["delete"]) == (1, 1)


class TestPlanCsv:
    """Group and membership operations in the plan CSV."""

    def test_object_columns(self, plan: Plan, meta: ReportMeta) -> None:
        """Every row names its kind and object; groups and memberships fill their own columns."""
        rows = _csv_rows(render_plan(plan, fmt="csv", meta=meta))
        assert [(r["kind"], r["object"]) for r in rows] == [
            ("create", "group"),
            ("create", "group"),
            ("update", "group"),
            ("changeIdentifier", "group"),
            ("create", "person"),
            ("create", "membership"),
            ("create", "membership"),
            ("update", "membership"),
            ("delete", "membership"),
            ("delete", "group"),
            ("delete", "person"),
            ("reject", ""),
            ("conflict", ""),
        ]
        school = rows[0]
        assert (school["sync_key"], school["group_name"], school["group_type"], school["identity"]) == (
            "s1",
            "North School",
            "School",
            "org-1",
        )
        assert school["username"] == ""
        assert school["membership_group"] == ""
        assert rows[2]["changes"] == f"Name: Maths → {SCRIPT}; Parent: (empty) → s1"
        assert (rows[3]["old_id"], rows[3]["new_id"]) == ("c3-old", "c3")
        assert rows[4]["username"] == "up1"
        assert rows[4]["group_name"] == ""
        assert (rows[7]["membership_group"], rows[7]["membership_person"], rows[7]["membership_role"]) == (
            "c2",
            "p3",
            "Instructor",
        )
        assert rows[7]["changes"] == "Role: Learner → Instructor"
        assert (rows[8]["membership_person"], rows[8]["reason"]) == ("p9", "not in roster")
        assert (rows[9]["group_parent"], rows[9]["identity"]) == ("s1", "org-9")

    def test_hostile_values_neutralised(self, plan: Plan, meta: ReportMeta) -> None:
        """A formula in a group name, a membership role or a rejected key gets a leading quote."""
        rows = _csv_rows(render_plan(plan, fmt="csv", meta=meta))
        assert rows[1]["group_name"] == "'" + FORMULA
        assert rows[5]["membership_role"] == "'" + FORMULA
        assert rows[11]["sync_key"] == "'=bad"
        for row in rows:
            for value in row.values():
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))


class TestPlanMarkdown:
    """Group and membership summary rows and sections in Markdown."""

    def test_summary_per_object_kind(self, plan: Plan, meta: ReportMeta) -> None:
        """The summary counts persons, groups and memberships separately; memberships have no
        identifier changes."""
        summary = _md_summary(render_plan(plan, fmt="md", meta=meta))
        assert list(summary) == [
            "Kind",
            "---",
            "People: create",
            "People: update",
            "People: change identifier",
            "People: deletion candidates",
            "People: unchanged",
            "People: in snapshot",
            "Groups: create",
            "Groups: update",
            "Groups: change identifier",
            "Groups: deletion candidates",
            "Groups: unchanged",
            "Groups: in snapshot",
            "Memberships: create",
            "Memberships: update",
            "Memberships: change identifier",
            "Memberships: deletion candidates",
            "Memberships: unchanged",
            "Memberships: in snapshot",
            "Conflicts",
            "Rejected rows",
        ]
        assert (summary["Groups: create"], summary["Groups: in snapshot"]) == ("2", "7")
        assert (summary["Memberships: create"], summary["Memberships: unchanged"]) == ("2", "10")

    def test_sections_in_run_order(self, plan: Plan, meta: ReportMeta) -> None:
        """Groups, then people, then memberships; deletions memberships first, persons last."""
        text = render_plan(plan, fmt="md", meta=meta)
        headings = [line[3:].split(" — ")[0] for line in text.splitlines() if line.startswith("## ")]
        assert headings == [
            "Summary",
            "New groups (create)",
            "Changed groups (update)",
            "Group identifier changes",
            "New people (create)",
            "Changed people (update)",
            "Identifier changes",
            "New memberships (create)",
            "Changed memberships (update)",
            "Membership identifier changes",
            "Membership deletion candidates",
            "Group deletion candidates",
            "Deletion candidates",
            "Conflicts",
            "Rejected rows",
        ]

    def test_rows_and_escaping(self, plan: Plan, meta: ReportMeta) -> None:
        """Rows carry the group and membership fields; markup in names and roles is escaped."""
        text = render_plan(plan, fmt="md", meta=meta)
        creates = [md_cells(x) for x in md_section(text, "New groups") if x.startswith("| ")][2:]
        assert creates[0] == ["s1", "North School", "School", "", "", "org-1"]
        assert creates[1][1] == FORMULA.replace("|", "\\|")
        memberships = [md_cells(x) for x in md_section(text, "New memberships") if x.startswith("| ")][2:]
        assert memberships[1] == ["m2", "c2", "p2", "\\<script\\>alert(1)\\</script\\>", "true"]
        deletion = [md_cells(x) for x in md_section(text, "Group deletion") if x.startswith("| ")][2:]
        assert deletion == [["c9", "s1", "org-9", "not in roster"]]
        assert "<script>" not in text

    def test_persons_only_plan_looks_as_before(self, meta: ReportMeta) -> None:
        """Without groups or memberships, no group or membership row or section shows."""
        plan = Plan(
            operations=(Create(record=make_person("p1")),),
            deletions=(Delete(record=Person(sync_key="p9")),),
            rejects=(),
            conflicts=(),
            unchanged_by={"person": 1},
            snapshot_sizes={"person": 2},
        )
        text = render_plan(plan, fmt="md", meta=meta)
        assert list(_md_summary(text))[2:] == [
            "Create",
            "Update",
            "Change identifier",
            "Deletion candidates",
            "Conflicts",
            "Rejected rows",
            "Unchanged",
            "In snapshot",
        ]
        assert "group" not in text.lower()
        assert "membership" not in text.lower()

    def test_groups_only_plan_has_no_membership_sections(self, plan: Plan, meta: ReportMeta) -> None:
        """Groups without memberships show group rows and sections, and none for memberships."""
        text = render_plan(_groups_only(plan), fmt="md", meta=meta)
        assert "## New groups (create) — 2" in text
        assert "membership" not in text.lower()
        assert _md_summary(text)["Groups: in snapshot"] == "2"


class TestPlanHtml:
    """Group and membership tables in the HTML plan."""

    def test_tables(self, plan: Plan, meta: ReportMeta) -> None:
        """Each group and membership kind has its own table; changes are drawn before → after."""
        page = parse_html(render_plan(plan, fmt="html", meta=meta))
        assert {k: len(v) for k, v in page.tables.items()} == {
            "t-group-creates": 2,
            "t-group-updates": 1,
            "t-group-identifiers": 1,
            "t-creates": 1,
            "t-membership-creates": 2,
            "t-membership-updates": 1,
            "t-membership-deletions": 1,
            "t-group-deletions": 1,
            "t-deletions": 1,
            "t-conflicts": 1,
            "t-rejects": 1,
        }
        assert page.headers["t-group-deletions"] == ["Sync key", "Parent", "Identity", "Reason"]
        assert page.tables["t-group-deletions"][0][:2] == ["c9", "s1"]
        assert page.tables["t-membership-creates"][0] == ["m1", "c1", "p1", FORMULA, "true"]
        assert "Name: Maths → " + SCRIPT in page.tables["t-group-updates"][0][2]
        assert page.tables["t-membership-updates"][0][4] == "Role: Learner → Instructor"
        assert page.tables["t-group-identifiers"][0][:3] == ["c3-old", "c3", "History"]
        sections = list(page.sections)
        assert (
            sections.index("group-creates") < sections.index("creates") < sections.index("membership-creates")
        )

    def test_hostile_values_render_as_text(self, plan: Plan, meta: ReportMeta) -> None:
        """A script in a group name, description or membership role is cell text, never an element."""
        text = render_plan(plan, fmt="html", meta=meta)
        page = parse_html(text)
        assert page.tables["t-group-updates"][0][1] == SCRIPT
        assert page.tables["t-group-creates"][1][4] == SCRIPT
        assert page.tables["t-membership-creates"][1][3] == SCRIPT
        assert [tag for tag, _ in page.tags].count("script") == 1
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text

    def test_summary_and_chart(self, plan: Plan, meta: ReportMeta) -> None:
        """The summary has a row per object kind and count; the chart a bar per operation count."""
        page = parse_html(render_plan(plan, fmt="html", meta=meta))
        labels = [a for t, a in page.tags if t == "rect"]
        assert len(labels) == 4 + 4 + 4 + 2  # people, groups, memberships, conflicts and rejects
        assert "Groups: change identifier" in page.sections["summary"]
        assert "Memberships: deletion candidates" in page.sections["summary"]


# --- run --------------------------------------------------------------------------------------------


class TestRun:
    """Run reports over groups and memberships, with each `--deletes` mode."""

    def test_json(self, plan: Plan, meta: ReportMeta) -> None:
        """Results name their object and op; a deactivation is sent, persons and groups are not."""
        data = json.loads(render_run(_run(plan, DeletesMode.DEACTIVATE), fmt="json", meta=meta))
        results = data["results"]
        assert [(r["object"], r["op"], r["outcome"]) for r in results] == [
            ("group", "create", "confirmed"),
            ("group", "create", "rejected"),
            ("person", "create", "confirmed"),
            ("membership", "create", "skipped"),
            ("membership", "update", "unconfirmed"),
            ("membership", "deactivate", "confirmed"),
        ]
        assert results[3]["error"] == SKIP_REASON
        assert results[3]["membership"] == {"group": "c1", "person": "p1", "role": FORMULA, "active": "true"}
        assert results[5]["membership"]["active"] == "false"
        assert "membership" not in results[0]
        assert "person" not in results[2]
        assert [(d["object"], d["syncKey"]) for d in data["deletionsNotSent"]] == [
            ("group", "c9"),
            ("person", "p9"),
        ]
        assert data["plan"]["groupCreate"] == 2

    @pytest.mark.parametrize(
        ("mode", "unsent"),
        [
            (DeletesMode.OFF, ["m9", "c9", "p9"]),
            (DeletesMode.DEACTIVATE, ["c9", "p9"]),
            (DeletesMode.DELETE, []),
        ],
    )
    def test_unsent_deletions_by_mode(self, plan: Plan, meta: ReportMeta, mode: DeletesMode, unsent) -> None:
        """What each `--deletes` mode kept is listed as not sent, in JSON and CSV alike."""
        run = _run(plan, mode)
        data = json.loads(render_run(run, fmt="json", meta=meta))
        assert [d["syncKey"] for d in data["deletionsNotSent"]] == unsent
        rows = _csv_rows(render_run(run, fmt="csv", meta=meta))
        assert [r["sync_key"] for r in rows if r["outcome"] == "not sent"] == unsent

    def test_csv(self, plan: Plan, meta: ReportMeta) -> None:
        """The run CSV names objects, shows the deactivation as sent, the kept candidates as not sent,
        then the rejected rows and conflicts, every cell neutralised."""
        rows = _csv_rows(render_run(_run(plan, DeletesMode.DEACTIVATE), fmt="csv", meta=meta))
        assert [(r["kind"], r["object"], r["outcome"]) for r in rows] == [
            ("create", "group", "confirmed"),
            ("create", "group", "rejected"),
            ("create", "person", "confirmed"),
            ("create", "membership", "skipped"),
            ("update", "membership", "unconfirmed"),
            ("deactivate", "membership", "confirmed"),
            ("delete", "group", "not sent"),
            ("delete", "person", "not sent"),
            ("reject", "", ""),
            ("conflict", "", ""),
        ]
        assert rows[1]["group_name"] == "'" + FORMULA
        assert rows[3]["membership_role"] == "'" + FORMULA
        assert rows[3]["error"] == SKIP_REASON
        assert (rows[5]["sync_key"], rows[5]["membership_active"], rows[5]["reason"]) == (
            "m9",
            "false",
            "not in roster",
        )
        assert (rows[6]["group_parent"], rows[6]["identity"]) == ("s1", "org-9")
        assert (rows[8]["file"], rows[8]["row"], rows[8]["sync_key"]) == ("groups.csv", "4", "'=bad")
        assert (rows[9]["identity"], rows[9]["snapshot_keys"]) == ("org-5", "x5 y5")

    def test_md(self, plan: Plan, meta: ReportMeta) -> None:
        """Problems of every kind with reasons; the kept deletion candidates by kind."""
        text = render_run(_run(plan, DeletesMode.DEACTIVATE), fmt="md", meta=meta)
        problems = [md_cells(x) for x in md_section(text, "Not confirmed") if x.startswith("| ")][2:]
        assert [(p[0], p[1], p[2]) for p in problems] == [
            ("rejected", "Create group", "c1"),
            ("skipped", "Create membership", "m1"),
            ("unconfirmed", "Update membership", "m3"),
        ]
        assert problems[1][6] == SKIP_REASON
        confirmed = [md_cells(x) for x in md_section(text, "Confirmed") if x.startswith("| ")][2:]
        assert [(c[0], c[1], c[2]) for c in confirmed] == [
            ("confirmed", "Create group", "s1"),
            ("confirmed", "Create person", "p1"),  # not just "Create" beside groups and memberships
            ("confirmed", "Deactivate membership", "m9"),
        ]
        assert "## Membership deletion candidates not sent — 0" in text
        assert "## Group deletion candidates not sent — 1" in text
        assert "## Deletion candidates not sent — 1" in text
        assert "<script>" not in text

    def test_html(self, plan: Plan, meta: ReportMeta) -> None:
        """The HTML run report: problems with reasons, the deactivation confirmed, kept candidates listed."""
        page = parse_html(render_run(_run(plan, DeletesMode.OFF), fmt="html", meta=meta))
        problems = page.tables["t-problems"]
        assert [row[1] for row in problems] == ["Create group", "Create membership", "Update membership"]
        assert problems[1][6] == SKIP_REASON
        assert f"bad name {SCRIPT}" in problems[0]
        assert page.tables["t-unsent-membership-deletions"] == [
            ["m9", "c9", "p9", "Learner", "not in roster"]
        ]
        assert page.tables["t-unsent-group-deletions"] == [["c9", "s1", "org-9", "not in roster"]]
        assert page.tables["t-unsent-deletions"] == [["p9", "id-9", "not in roster"]]
        assert [tag for tag, _ in page.tags].count("script") == 1

    def test_deactivation_confirmed_in_html(self, plan: Plan, meta: ReportMeta) -> None:
        """Under deactivate the membership candidate was sent: confirmed, and not listed as kept."""
        page = parse_html(render_run(_run(plan, DeletesMode.DEACTIVATE), fmt="html", meta=meta))
        assert ["confirmed", "Deactivate membership", "m9"] in [row[:3] for row in page.tables["t-confirmed"]]
        assert "t-unsent-membership-deletions" not in page.tables
        assert "None." in page.sections["unsent-membership-deletions"]

    def test_persons_only_run_has_no_group_sections(self, meta: ReportMeta) -> None:
        """A persons-only run report shows no group or membership section."""
        plan = Plan(
            operations=(Create(record=make_person("p1")),),
            deletions=(Delete(record=Person(sync_key="p9")),),
            rejects=(),
            conflicts=(),
            unchanged_by={"person": 0},
            snapshot_sizes={"person": 1},
        )
        run = RunResult(
            run_id="r",
            plan=plan,
            results=(OperationResult(operation=plan.operations[0], outcome=Outcome.CONFIRMED),),
            started_at="s",
            finished_at="f",
        )
        page = parse_html(render_run(run, fmt="html", meta=meta))
        assert list(page.sections) == [
            "summary",
            "problems",
            "confirmed",
            "conflicts",
            "rejects",
            "unsent-deletions",
        ]
        assert page.tables["t-unsent-deletions"] == [["p9", "", ""]]


@pytest.mark.skipif(chromium() is None, reason="Chromium not installed: real-browser rendering test skipped")
def test_group_sections_in_headless_chromium(plan: Plan, meta: ReportMeta, tmp_path: Path) -> None:
    """Real Chromium runs the script over a report with group tables; #q= filters them too."""
    report = tmp_path / "plan.html"
    report.write_text(render_plan(plan, fmt="html", meta=meta), encoding="utf-8")
    dom = chromium_dom(report.as_uri() + "#q=history", tmp_path)
    page = parse_html(dom)
    assert any(t == "body" and a.get("data-ready") == "1" for t, a in page.tags), "script blocked or failed"
    shown = [a for t, a in page.tags if t == "span" and a.get("id") == "t-group-identifiers-shown"]
    assert shown
    assert "1 of 1 shown" in dom
    assert "0 of 2 shown" in dom  # the group creates, filtered out
