"""The cases the report writers' golden files were captured from (tests/golden/report/, written by the
writers before they were made fast): plans of the sample sets (first night, and a night after the first
one ran) and a generated plan and run with every kind of operation, held operation and set-aside row.

`python -m tests.report_golden` rewrites the golden files from the writers as they are now: only ever
do that from writers whose output is known to be right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pandas as pd

from sync.models import (
    ChangeIdentifier,
    Conflict,
    Create,
    Deactivate,
    Delete,
    FieldChange,
    Group,
    Membership,
    OperationResult,
    Outcome,
    Person,
    Plan,
    Reject,
    RunResult,
    Status,
    Update,
    join_children,
)
from sync.models.kinds import KINDS, Kind, kind_of
from sync.plan.diff import Snapshots, plan_set, snapshot_columns
from sync.plan.safety import LIMIT_REASON
from sync.read.roster_set import read_roster_set
from sync.report.as_html import head_assets
from sync.report.meta import FORMATS, DriftRow, HeldRow, ReportMeta
from sync.report.render import render_plan, render_run
from tests.reports import PASSWORD, SCRIPT, make_person

GOLDEN = Path(__file__).resolve().parent / "golden" / "report"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"

FORMULA = '=HYPERLINK("http://evil.example","x")'
#: Non-ASCII, quotes, a backslash, a pipe, a newline and a tab: what each format must escape its own way.
ODD = 'Åse "Ødegård" \\ | ünïcödé 😀\nline\tend'


def meta(title: str, roster: str, **extra: object) -> ReportMeta:
    """A report context at a fixed time."""
    return ReportMeta(
        title=title,
        roster=roster,
        mapping="oneroster",
        state="/var/lib/ims-sync",
        generated_at="2025-01-31T02:00:00Z",
        endpoint="https://user:pw@ims.example.test/svc?token=x",
        tool_version="0.1.0",
        **extra,  # type: ignore[arg-type]
    )


# --- the sample sets -----------------------------------------------------------------------------

#: (case name, roster of the first night, roster of the next night or None, mapping)
SAMPLE_SETS = (
    ("oneroster", "oneroster", "oneroster-changed", "oneroster"),
    ("oneroster-users", "oneroster/users.csv", "oneroster/users-changed.csv", "oneroster-users"),
    ("generic", "generic/students.csv", "generic/students-changed.csv", "generic"),
    ("guardians", "oneroster-guardians", None, "oneroster"),
    ("sds", "sds", None, "sds"),
)


def _snapshot_of(kind: Kind, plan: Plan) -> pd.DataFrame:
    """The snapshot frame a run of `plan`'s creates of `kind` left (as `StateStore.load` gives it)."""
    creates = [op for op in plan.operations if isinstance(op, Create) and kind_of(op) is kind]
    columns = snapshot_columns(kind)
    rows = [{"identity": op.identity, **op.record.values()} for op in creates]
    index = pd.Index([op.sync_key for op in creates], dtype="str", name="sync_key")
    return pd.DataFrame(
        {name: pd.array([row[name] for row in rows], dtype="str") for name in columns}, index=index
    )


def _plan(roster: str, mapping: str, snapshots: Snapshots) -> Plan:
    """The plan of a sample roster; its rejected rows name their file from the checkout's root (the
    golden files hold no path of one checkout)."""
    read = read_roster_set(SAMPLES / roster, mapping)
    plan = plan_set(read.persons, snapshots, groups=read.groups, memberships=read.memberships)
    root = SAMPLES.parent
    rejects = tuple(dataclasses.replace(r, file=str(Path(r.file).relative_to(root))) for r in plan.rejects)
    return dataclasses.replace(plan, rejects=rejects)


def sample_plans() -> Iterator[tuple[str, Plan]]:
    """Each sample set's first night, and (where the set has a changed roster) the night after."""
    for name, first, changed, mapping in SAMPLE_SETS:
        plan = _plan(first, mapping, Snapshots())
        yield f"{name}-first", plan
        if changed is not None:
            snapshots = Snapshots(**{kind.plural: _snapshot_of(kind, plan) for kind in KINDS})
            yield f"{name}-next", _plan(changed, mapping, snapshots)


# --- a generated plan and run with every kind of entry -------------------------------------------


def _persons() -> tuple[list[object], list[Delete[Person]]]:
    ops: list[object] = [
        Create(record=make_person(f"p{i}", given_name=f"Given{i}"), identity=f"id-{i}", password=PASSWORD)
        for i in range(4)
    ]
    ops += [
        Create(
            record=make_person(
                "p-odd", given_name=ODD, family_name=SCRIPT, email=FORMULA, street="Storgata 1", city="Oslo"
            ),
            identity="id-odd",
        ),
        Create(
            record=make_person("parent-1", role="Carer", children=join_children(["p1", "p2"])), identity=""
        ),
        Update(
            record=make_person("p5", email="new@school.test", mobile="-5 | pipe"),
            identity="id-5",
            changes=(
                FieldChange(field="email", old="old@school.test", new="new@school.test"),
                FieldChange(field="mobile", old="", new="-5 | pipe"),
            ),
        ),
        Update(
            record=make_person("parent-2", role="Carer", children=join_children(["p3", "p4"])),
            identity="id-parent-2",
            changes=(FieldChange(field="children", old=join_children(["p2", "p3"]), new="p3,p4"),),
        ),
        ChangeIdentifier(
            old_id="old-6",
            new_id="p6",
            record=make_person("p6", role="Staff"),
            identity="id-6",
            changes=(FieldChange(field="role", old="Student", new="Staff"),),
        ),
        ChangeIdentifier(old_id="old-7", new_id="p7", record=make_person("p7"), identity="id-7"),
    ]
    deletions = [Delete(record=Person(sync_key="p9"), identity="id-9", reason="not in roster")]
    return ops, deletions


def _groups() -> tuple[list[object], list[Delete[Group]]]:
    ops: list[object] = [
        Create(record=Group(sync_key="s1", name="North School", type="School"), identity="org-1"),
        Create(
            record=Group(sync_key="c1", name=FORMULA, type="Course", parent="s1", description=ODD),
            identity="class-1",
        ),
        Update(
            record=Group(sync_key="c2", name="Maths 2", type="Course", parent="s1"),
            identity="class-2",
            changes=(FieldChange(field="name", old="Maths", new="Maths 2"),),
        ),
        ChangeIdentifier(
            old_id="c3-old",
            new_id="c3",
            record=Group(sync_key="c3", name="History", type="Course", parent="s1"),
            identity="class-3",
            changes=(FieldChange(field="description", old="old", new=""),),
        ),
    ]
    deletions = [Delete(record=Group(sync_key="c9", parent="s1"), identity="class-9", reason="not in roster")]
    return ops, deletions


def _memberships() -> tuple[list[object], list[Delete[Membership]]]:
    ops: list[object] = [
        Create(record=Membership(sync_key="m1", group="c1", person="p1", role="Learner", active="true")),
        Create(record=Membership(sync_key="m2", group="c1", person="p-odd", role=SCRIPT, active="true")),
        Update(
            record=Membership(sync_key="m3", group="c2", person="p5", role="Instructor", active="true"),
            changes=(FieldChange(field="role", old="Learner", new="Instructor"),),
        ),
        ChangeIdentifier(
            old_id="m4-old",
            new_id="m4",
            record=Membership(sync_key="m4", group="c3", person="p6", role="Learner", active="true"),
        ),
    ]
    deletions = [
        Delete(
            record=Membership(sync_key="m9", group="c9", person="p9", role="Learner", active="true"),
            reason="not in roster",
        ),
        Delete(
            record=Membership(sync_key="m8", group="c2", person="p8", role="Learner", active="true"),
            reason="marked for deletion",
        ),
    ]
    return ops, deletions


def generated_plan() -> Plan:
    """Creates, updates (with changes, a person's children among them) and identifier changes (with and
    without changes) of every kind, deletion candidates of every kind, rejected rows and conflicts."""
    groups, group_deletions = _groups()
    persons, person_deletions = _persons()
    memberships, membership_deletions = _memberships()
    return Plan(
        operations=tuple(groups + persons + memberships),  # type: ignore[arg-type]
        deletions=(*membership_deletions, *group_deletions, *person_deletions),
        rejects=(
            Reject(
                file="users.csv", row=7, field="role", reason=f"unknown role 'elev' | {ODD}", sync_key="k7"
            ),
            Reject(file="users.csv", row=12, field="sync_key", reason="missing sync key"),
            Reject(file="enrollments.csv", row=3, field="classSourcedId", reason=FORMULA, sync_key="e3"),
        ),
        conflicts=(
            Conflict(identity="id-c", roster_keys=("k5",), snapshot_keys=("a5", "b5"), reason="two share it"),
        ),
        unchanged_by={"person": 40, "group": 3, "membership": 7},
        snapshot_sizes={"person": 45, "group": 6, "membership": 12},
    )


def generated_meta(plan: Plan) -> ReportMeta:
    """A plan's context with held operations (a limit, --only, a held deletion and deactivation), drift
    rows and a fingerprint."""
    held = (
        HeldRow(
            "Update person", "update", "person", "p5", f"{LIMIT_REASON} person.update: 1 over 0", "limit"
        ),
        HeldRow(
            "Change group identifier", "changeIdentifier", "group", "c3", "not sent: --only create", "only"
        ),
        HeldRow(
            "Delete person", "delete", "person", "p9", f"{LIMIT_REASON} person.delete: 1 over 0", "limit"
        ),
        HeldRow("Deactivate membership", "deactivate", "membership", "m9", "held: pause window", "pause"),
    )
    drift = (DriftRow("person", "p5", "changed"), DriftRow("group", "s1", "missing"))
    return meta(
        "Dry run: planned changes",
        "roster",
        sending="create, delete",
        held=held,
        drift=drift,
        fingerprint="ab" * 32,
        fingerprint_parts=(("roster", "cd" * 8), ("operations", "ef" * 8)),
    )


def generated_run(plan: Plan) -> RunResult:
    """A stopped run over the generated plan: every outcome, a deactivation and a parent portal warning."""
    ops = plan.operations
    results = [
        OperationResult(
            operation=op,
            outcome=(Outcome.CONFIRMED, Outcome.REJECTED, Outcome.UNCONFIRMED, Outcome.SKIPPED)[i % 4],
            message_identifier=f"m-{i}" if i % 4 != 3 else "",
            status=Status(
                code_major="failure",
                severity="error",
                code_minor=(("invaliddata", "email"), ("x", ODD)),
                message_id_ref=f"m-{i}",
                description=f"bad value {SCRIPT}",
            )
            if i % 4 == 1
            else None,
            error="timeout" if i % 4 == 2 else "",
            attempts=i % 3,
        )
        for i, op in enumerate(ops)
    ]
    portal = Status(
        code_major="success", severity="warning", description="The parent portal is disabled on this site"
    )
    parent = next(op for op in ops if op.sync_key == "parent-1")
    results.append(OperationResult(operation=parent, outcome=Outcome.CONFIRMED, status=portal, attempts=1))
    gone = plan.deletions[0]
    deactivated = Deactivate(
        record=Membership(sync_key=gone.sync_key, group="c9", person="p9", role="Learner", active="false")
    )
    results.append(OperationResult(operation=deactivated, outcome=Outcome.CONFIRMED, attempts=1))
    # a group's deletion (its parent shown) and a person's (no record shown), sent
    sent = plan.deletions[2:]
    results += [OperationResult(operation=d, outcome=Outcome.CONFIRMED, attempts=2) for d in sent]
    return RunResult(
        run_id="run-1",
        plan=plan,
        results=tuple(results),
        started_at="2025-01-31T02:00:00Z",
        finished_at="2025-01-31T02:01:00Z",
        stopped="circuit open",
    )


def stored(text: str) -> str:
    """A rendering as its golden file keeps it: an HTML page's inline CSS and JS (the same on every page,
    and no writer's output) as their file names."""
    css, js, _ = head_assets()
    return text.replace(css, "/* report.css */").replace(js, "// report.js")


# --- every rendering a golden file holds ---------------------------------------------------------

#: The table cap of the capped renderings (the generated plan has more rows than this in some tables).
SMALL_CAP = 2


def renderings() -> Iterator[tuple[str, Callable[[], str]]]:
    """(golden file name, what renders it) for every case in every format."""
    for name, plan in sample_plans():
        plain = meta("Dry run: planned changes", name)
        for fmt in FORMATS:
            yield f"{name}.{fmt}", partial(render_plan, plan, fmt=fmt, meta=plain)
    plan = generated_plan()
    full = generated_meta(plan)
    run = generated_run(plan)
    for fmt in FORMATS:
        yield f"generated.{fmt}", partial(render_plan, plan, fmt=fmt, meta=full)
        yield f"generated-run.{fmt}", partial(render_run, run, fmt=fmt, meta=full)
    for capped in FORMATS[2:]:  # md, html
        yield (
            f"generated-capped.{capped}",
            partial(render_plan, plan, fmt=capped, meta=full, max_rows=SMALL_CAP),
        )
        yield (
            f"generated-run-capped.{capped}",
            partial(render_run, run, fmt=capped, meta=full, max_rows=SMALL_CAP),
        )


if __name__ == "__main__":
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for file_name, render in renderings():
        (GOLDEN / file_name).write_bytes(stored(render()).encode("utf-8"))
        print(file_name)
