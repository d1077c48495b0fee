"""A plan or a run told per school, in plain words for a head teacher: one page of tables per school.

Each school's page holds only the objects `Plan.schools` attributes to it (a person in two schools is
on both pages); objects of no school, and rejected rows whose school cannot be told, are on a "No
school" page. People are named (given and family name, role, classes), changes are "field: before ->
after", and nothing technical is shown: no operation names, status codes or message identifiers.
Pure: imports only the models and the report's helpers; `sync.report.as_school_html` draws the pages.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from sync.models import (
    NO_SCHOOL,
    ChangeIdentifier,
    Create,
    Delete,
    FieldChange,
    Operation,
    Outcome,
    Plan,
    Reject,
    RunResult,
    Schools,
    Update,
)
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON, kind_of
from sync.report.ops import FIELD_LABELS, unsent_deletions
from sync.report.sections import Count, Section, section

__all__ = ["NO_SCHOOL_KEY", "SchoolPage", "plan_school_pages", "run_school_pages"]

#: The bucket of what belongs to no school (no sync key is empty).
NO_SCHOOL_KEY: Final = ""

#: How itslearning names the IMS roles in a course (and a person's roles), in a head teacher's words.
_ROLE_WORDS: Final[Mapping[str, str]] = {
    "Learner": "student",
    "Student": "student",
    "Instructor": "teacher",
    "Faculty": "teacher",
    "TeachingAssistant": "teaching assistant",
    "ContentDeveloper": "guest",
    "Member": "guest",
    "Carer": "parent or carer",
    "Mentor": "mentor",
    "Manager": "manager",
    "Administrator": "administrator",
    "Staff": "staff",
}

_CREATE, _UPDATE, _CHANGE, _DELETE, _REJECT, _WARN = (
    "#2f855a",
    "#2b6cb0",
    "#805ad5",
    "#c53030",
    "#9b2c2c",
    "#b7791f",
)

_LEAVING: Final = {
    "not in roster": "no longer in the roster",
    "marked tobedeleted": "marked as leaving in the roster",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SchoolPage:
    """One school's page: its counts (as the index lists them) and its tables."""

    key: str  # the school's sync key; NO_SCHOOL_KEY for what belongs to no school
    name: str
    counts: tuple[Count, ...]
    sections: tuple[Section, ...]


def role_words(role: str) -> str:
    """An IMS role in plain words ("Learner" -> "student")."""
    return _ROLE_WORDS.get(role, role.lower())


def _changes(changes: Iterable[FieldChange], schools: Schools) -> tuple[FieldChange, ...]:
    """Field changes with roles and group references in plain words (a class's name, not its key)."""
    words: dict[str, Callable[[str], str]] = {
        "role": role_words,
        "group": schools.group_name,
        "parent": schools.group_name,
    }
    return tuple(
        FieldChange(field=c.field, old=said(c.old), new=said(c.new)) if (said := words.get(c.field)) else c
        for c in changes
    )


def _changes_text(changes: Iterable[FieldChange]) -> str:
    return "; ".join(f"{FIELD_LABELS.get(c.field, c.field)}: {c.old or '(empty)'} → {c.new or '(empty)'}"
                     for c in changes)  # fmt: skip


@dataclass(slots=True)
class _Bucket:
    """What one school's page lists, by table."""

    people: dict[str, list[Operation]] = field(
        default_factory=lambda: {"create": [], "update": [], "rename": [], "leave": []}
    )
    classes: list[Operation] = field(default_factory=list)
    enrolments: list[Operation] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    results: dict[str, list[tuple[Operation, str]]] = field(
        default_factory=lambda: {"sent": [], "failed": [], "held": [], "kept": []}
    )


def _person_table(op: Operation) -> str:
    if isinstance(op, Create):
        return "create"
    if isinstance(op, Update):
        return "update"
    return "rename" if isinstance(op, ChangeIdentifier) else "leave"


def _file(buckets: dict[str, _Bucket], schools: Schools, op: Operation) -> list[_Bucket]:
    """The buckets of the schools `op` belongs to (the No-school bucket when none)."""
    return [buckets.setdefault(key, _Bucket()) for key in schools.of_operation(op) or (NO_SCHOOL_KEY,)]


def _bucket_plan(plan: Plan) -> dict[str, _Bucket]:
    schools = plan.schools
    buckets: dict[str, _Bucket] = {key: _Bucket() for key in schools.names}
    for op in itertools.chain(plan.operations, plan.deletions):  # (made as they are filed: no tuple of all)
        kind = kind_of(op)
        for bucket in _file(buckets, schools, op):
            if kind is PERSON:
                bucket.people[_person_table(op)].append(op)
            elif kind is GROUP:
                bucket.classes.append(op)
            else:
                bucket.enrolments.append(op)
    _bucket_rejects(buckets, schools, plan.rejects)
    return buckets


def _bucket_rejects(buckets: dict[str, _Bucket], schools: Schools, rejects: Iterable[Reject]) -> None:
    for reject in rejects:
        for key in schools.of_reject(reject) or (NO_SCHOOL_KEY,):
            buckets.setdefault(key, _Bucket()).rejects.append(reject)


class _Rows:
    """The plain-word rows of one plan's objects (the plan's `Schools` names people and classes)."""

    def __init__(self, schools: Schools) -> None:
        self.schools = schools

    def name(self, key: str) -> str:
        return self.schools.person_name(key) or key

    def person(self, op: Operation) -> tuple[str, str, str]:
        """Name, role and classes of the person an operation is about."""
        record = op.record
        full = " ".join(filter(None, (getattr(record, "given_name", ""), getattr(record, "family_name", ""))))
        classes = ", ".join(self.schools.classes_of(op.sync_key))
        if isinstance(op, ChangeIdentifier) and not classes:
            classes = ", ".join(self.schools.classes_of(op.old_id))
        return full or self.name(op.sync_key), role_words(getattr(record, "role", "")), classes

    def enrolment(self, op: Operation) -> tuple[str, str, str, str]:
        """Class, person, role and what changes, of a membership operation."""
        record = op.record
        group, person, role = (getattr(record, name, "") for name in ("group", "person", "role"))
        if isinstance(op, Create):
            what = f"joins as {role_words(role)}"
        elif isinstance(op, Delete):
            what = f"leaves the class ({_LEAVING.get(op.reason, op.reason)})"
        elif isinstance(op, ChangeIdentifier) and not op.changes:
            what = "stays; only the enrolment's ID in the student system changed"
        else:
            what = _changes_text(_changes(getattr(op, "changes", ()), self.schools))
        return self.schools.group_name(group), self.name(person), role_words(role), what

    def group(self, op: Operation) -> tuple[str, str]:
        """Class (or school) name and what changes, of a group operation."""
        name = getattr(op.record, "name", "") or self.schools.group_name(op.sync_key)
        if isinstance(op, Create):
            return name, "new"
        if isinstance(op, Delete):
            return self.schools.group_name(op.sync_key), f"removed ({_LEAVING.get(op.reason, op.reason)})"
        if isinstance(op, ChangeIdentifier) and not op.changes:
            return name, "its ID in the student system changed; nothing else"
        return name, _changes_text(_changes(getattr(op, "changes", ()), self.schools))

    def describe(self, op: Operation) -> str:
        """One operation in a sentence, for the run's tables."""
        kind = kind_of(op)
        if kind is MEMBERSHIP:
            group, person, _, what = self.enrolment(op)
            return f"{person} in {group}: {what}"
        if kind is GROUP:
            return ": ".join(self.group(op))
        name, role, _ = self.person(op)
        verb = {"create": "new", "update": "details changed", "rename": "new ID", "leave": "leaves"}
        return f"{name} ({role}): {verb[_person_table(op)]}" if role else f"{name}: {verb[_person_table(op)]}"


_PEOPLE_HEADER: Final = ("Name", "Role", "Classes")


def _people_sections(bucket: _Bucket, rows: _Rows, max_rows: int) -> list[Section]:
    people = bucket.people

    def changed(op: Operation) -> tuple[FieldChange, ...]:
        return _changes(getattr(op, "changes", ()), rows.schools)

    def with_changes(op: Operation) -> tuple[str, ...]:
        return (*rows.person(op), _changes_text(changed(op)))

    def leaving(op: Operation) -> tuple[str, ...]:
        return (*rows.person(op), _LEAVING.get(getattr(op, "reason", ""), getattr(op, "reason", "")))

    return [
        section(people["create"], rows.person, max_rows, anchor="new-people", heading="New people",
                hint="People in the roster who are not in itslearning yet.", header=_PEOPLE_HEADER),
        section(people["update"], with_changes, max_rows, anchor="changed-people", heading="Changed details",
                hint="Each changed detail, before → after.", header=(*_PEOPLE_HEADER, "Changes"),
                changes_column=3, changes=changed),
        section(people["rename"], with_changes, max_rows, anchor="new-ids",
                heading="New ID in the student system",
                hint="The same person under a new ID; their account and history stay.",
                header=(*_PEOPLE_HEADER, "Changes"), changes_column=3, changes=changed),
        section(people["leave"], leaving, max_rows, anchor="leavers", heading="Leavers",
                hint="In itslearning but gone from the roster: removed only when the run is allowed to.",
                header=(*_PEOPLE_HEADER, "Why")),
    ]  # fmt: skip


def _other_sections(bucket: _Bucket, rows: _Rows, max_rows: int) -> list[Section]:
    return [
        section(bucket.enrolments, rows.enrolment, max_rows, anchor="class-changes", heading="Class changes",
                hint="Who joins or leaves which class, or changes role in it.",
                header=("Class", "Person", "Role", "What changes")),
        section(bucket.classes, rows.group, max_rows, anchor="classes", heading="Classes",
                hint="New, changed and removed classes (and the school itself).",
                header=("Class", "What changes")),
        _rejects_section(bucket.rejects, max_rows),
    ]  # fmt: skip


def _rejects_section(rejects: Sequence[Reject], max_rows: int) -> Section:
    def row(r: Reject) -> tuple[str, ...]:
        return (r.file, str(r.row), FIELD_LABELS.get(r.field, r.field), r.reason)

    return section(
        rejects, row, max_rows, anchor="rejected-rows", heading="Rejected roster rows",
        hint="Rows of the roster files that were not used, and why: fix them in the student system.",
        header=("File", "Row", "Field", "Why"), numeric=frozenset({1}),
    )  # fmt: skip


def _name(schools: Schools, key: str) -> str:
    return NO_SCHOOL if key == NO_SCHOOL_KEY else schools.name(key)


def _ordered(buckets: Mapping[str, _Bucket], schools: Schools) -> list[str]:
    """Schools by name (then key); No school last."""
    keys = sorted((k for k in buckets if k != NO_SCHOOL_KEY), key=lambda k: (schools.name(k).casefold(), k))
    return [*keys, *([NO_SCHOOL_KEY] if NO_SCHOOL_KEY in buckets else [])]


def plan_school_pages(plan: Plan, max_rows: int) -> list[SchoolPage]:
    """One page per school of the plan (by name), and a "No school" page when something has none."""
    buckets = _bucket_plan(plan)
    rows = _Rows(plan.schools)
    pages = []
    for key in _ordered(buckets, plan.schools):
        bucket = buckets[key]
        people = bucket.people
        counts: tuple[Count, ...] = (
            ("New people", len(people["create"]), _CREATE),
            ("Changed details", len(people["update"]), _UPDATE),
            ("New IDs", len(people["rename"]), _CHANGE),
            ("Leavers", len(people["leave"]), _DELETE),
            ("Class changes", len(bucket.enrolments) + len(bucket.classes), _UPDATE),
            ("Rejected rows", len(bucket.rejects), _REJECT),
        )
        sections = (*_people_sections(bucket, rows, max_rows), *_other_sections(bucket, rows, max_rows))
        pages.append(SchoolPage(key=key, name=_name(plan.schools, key), counts=counts, sections=sections))
    return pages


_OUTCOME_WORDS: Final[Mapping[Outcome, str]] = {
    Outcome.REJECTED: "itslearning refused it",
    Outcome.UNCONFIRMED: "no answer from itslearning; the next run tries again",
    Outcome.SKIPPED: "not sent: the run stopped before it",
}


def _bucket_run(result: RunResult, held: Sequence[tuple[Operation, str]]) -> dict[str, _Bucket]:
    schools = result.plan.schools
    buckets: dict[str, _Bucket] = {key: _Bucket() for key in schools.names}
    for r in result.results:
        if r.outcome is Outcome.CONFIRMED:
            entry = ("sent", "")
        else:
            why = r.status.description if r.status is not None and r.status.description else r.error
            words = _OUTCOME_WORDS[r.outcome]
            entry = ("failed", f"{words}: {why}" if why and r.outcome is Outcome.REJECTED else words)
        for bucket in _file(buckets, schools, r.operation):
            bucket.results[entry[0]].append((r.operation, entry[1]))
    for op, why in held:
        for bucket in _file(buckets, schools, op):
            bucket.results["held"].append((op, why))
    for deletion in unsent_deletions(result):
        for bucket in _file(buckets, schools, deletion):
            bucket.results["kept"].append((deletion, _LEAVING.get(deletion.reason, deletion.reason)))
    _bucket_rejects(buckets, schools, result.plan.rejects)
    return buckets


def run_school_pages(
    result: RunResult, held: Sequence[tuple[Operation, str]], max_rows: int
) -> list[SchoolPage]:
    """One page per school of what the run sent, what failed and what it held back (with why)."""
    schools = result.plan.schools
    buckets = _bucket_run(result, held)
    rows = _Rows(schools)
    pages = []

    def table(what: str, heading: str, hint: str) -> Callable[[_Bucket], Section]:
        def row(item: tuple[Operation, str]) -> tuple[str, ...]:
            return (rows.describe(item[0]), item[1]) if what != "sent" else (rows.describe(item[0]),)

        header = ("What",) if what == "sent" else ("What", "Why")
        return lambda b: section(b.results[what], row, max_rows, anchor=what, heading=heading, hint=hint,
                                 header=header)  # fmt: skip

    tables = (
        table("sent", "Done", "What itslearning confirmed."),
        table("failed", "Not done", "What was not carried out, and why."),
        table("held", "Held back", "Not sent by this run, and what releases it."),
        table("kept", "Not removed", "Gone from the roster, but this run does not remove them."),
    )
    for key in _ordered(buckets, schools):
        b = buckets[key]
        counts: tuple[Count, ...] = (
            ("Done", len(b.results["sent"]), _CREATE),
            ("Not done", len(b.results["failed"]), _DELETE),
            ("Held back", len(b.results["held"]), _WARN),
            ("Not removed", len(b.results["kept"]), _DELETE),
            ("Rejected rows", len(b.rejects), _REJECT),
        )
        sections = (*(make(b) for make in tables), _rejects_section(b.rejects, max_rows))
        pages.append(SchoolPage(key=key, name=_name(schools, key), counts=counts, sections=sections))
    return pages
