"""Faults on groups (GMS) and memberships (MMS): every operation ends accounted for, none is confirmed
without its answer, reruns converge without duplicates, reconcile flags the faulty run.

The helpers at the top (a generated OneRoster folder, what IMS ES should hold for it, readers of the
emulator's and the snapshot's groups and memberships, the journal invariants) serve
tests/test_crash_groups.py too.
"""

from __future__ import annotations

import csv
import json
import random
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_FAILED, EXIT_OK
from sync.emulator import Emulator
from sync.emulator.store import Event
from sync.ims.clients import GroupClient, MembershipClient, PersonClient
from sync.ims.exchange import Timeouts
from sync.models import (
    ChangeIdentifier,
    Create,
    Deactivate,
    Delete,
    Group,
    Membership,
    Operation,
    Outcome,
    Person,
    Update,
)
from sync.models.kinds import GROUP, MEMBERSHIP
from sync.send.executor import Executor
from sync.send.policy import ExecutorSettings, RetryPolicy
from sync.state.journal import RequestItem, SentRequest
from sync.state.reconcile import Flag, reconcile
from sync.state.schema import DB_NAME
from sync.state.store import StateStore
from tests.checks import (
    duplicates,
    expected_persons,
    journal_problems,
    oneroster_memberships,
    person_row,
    snapshot_persons,
    write_roster,
)
from tests.conftest import PASSWORD, USERNAME

# --- a OneRoster folder that changes the way a school's does -------------------------------------

ORG_HEADER: Final = ["sourcedId", "status", "name", "type", "identifier", "parentSourcedId"]
CLASS_HEADER: Final = ["sourcedId", "status", "title", "classCode", "schoolSourcedId"]
ENROLLMENT_HEADER: Final = ["sourcedId", "status", "classSourcedId", "userSourcedId", "role"]
#: OneRoster org type -> the itslearning organisation type the oneroster-orgs mapping sends.
ORG_TYPES: Final = {"district": "Unspecified", "school": "School"}
#: The GMS and MMS operations a sync sends (the faults below are limited to them).
GROUP_WRITES: Final = frozenset(
    {"createGroup", "createGroups", "updateGroup", "deleteGroup", "changeGroupIdentifier"}
)
MEMBERSHIP_WRITES: Final = frozenset(
    {
        "createMembership",
        "createMemberships",
        "updateMembership",
        "deleteMembership",
        "deleteMemberships",
    }
)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class School:
    """A OneRoster folder (orgs, classes, users, enrollments) and the edits a night brings.

    Rows are dicts in the files' columns; only active rows are kept between edits (a row marked
    tobedeleted is dropped once a run has seen it). Every edit keeps the folder consistent: an
    enrollment names an active class and an active user, and a (class, user) pair is enrolled once.
    """

    folder: Path
    rng: random.Random
    orgs: list[dict[str, str]] = field(default_factory=list)
    classes: list[dict[str, str]] = field(default_factory=list)
    users: list[dict[str, str]] = field(default_factory=list)
    enrollments: list[dict[str, str]] = field(default_factory=list)
    edits: Counter[str] = field(default_factory=Counter)
    #: identity -> every sync key it was held under (orgs: identifier; users: username).
    org_identity: dict[str, str] = field(default_factory=dict)
    user_identity: dict[str, str] = field(default_factory=dict)
    _next: int = 1000

    @classmethod
    def generate(
        cls, folder: Path, rng: random.Random, *, schools: int = 2, classes: int = 5, users: int = 20
    ) -> School:
        """A district with `schools` schools, `classes` classes, `users` users, 4-6 members per class."""
        folder.mkdir(parents=True, exist_ok=True)
        school = cls(folder=folder, rng=rng)
        school.orgs.append(school._org("org-d", "district", "", identifier="D-1"))
        for n in range(1, schools + 1):
            school.orgs.append(school._org(f"org-s{n}", "school", "org-d", identifier=f"S-{n}"))
        school.users = [person_row(n, orgSourcedIds=school._orgs_of(n)) for n in range(1, users + 1)]
        for row in school.users:
            school.user_identity[row["sourcedId"]] = row["username"]
        for n in range(1, classes + 1):
            school._new_class(f"cls-{n:02d}")
        return school

    def key(self, prefix: str) -> str:
        """A fresh sync key."""
        self._next += 1
        return f"{prefix}-{self._next}"

    def _org(self, key: str, kind: str, parent: str, *, identifier: str) -> dict[str, str]:
        self.org_identity[key] = identifier
        name = "District" if kind == "district" else f"School {identifier}"
        return {
            "sourcedId": key,
            "status": "active",
            "name": name,
            "type": kind,
            "identifier": identifier,
            "parentSourcedId": parent,
        }

    def _schools(self) -> list[str]:
        return [o["sourcedId"] for o in self.orgs if o["type"] == "school"]

    def _orgs_of(self, n: int) -> str:
        """users.csv's orgSourcedIds of user number n: one school, every seventh user two."""
        schools = self._schools()
        first = schools[n % len(schools)]
        if n % 7 or len(schools) < 2:
            return first
        return f"{first}, {schools[(n + 1) % len(schools)]}"

    def _new_class(self, key: str) -> None:
        self.classes.append(
            {
                "sourcedId": key,
                "status": "active",
                "title": f"Class {key}",
                "classCode": f"CODE-{key}",
                "schoolSourcedId": self.rng.choice(self._schools()),
            }
        )
        teachers = [u for u in self.users if u["role"] == "teacher"]
        students = [u for u in self.users if u["role"] == "student"]
        members = [self.rng.choice(teachers), *self.rng.sample(students, k=self.rng.randint(3, 5))]
        for user in members:
            role = "teacher" if user["role"] == "teacher" else "student"
            self._enrol(key, user["sourcedId"], role)

    def _enrol(self, class_key: str, user_key: str, role: str) -> None:
        self.enrollments.append(
            {
                "sourcedId": self.key("enr"),
                "status": "active",
                "classSourcedId": class_key,
                "userSourcedId": user_key,
                "role": role,
            }
        )

    def write(self) -> Path:
        """Write the four files; the folder."""
        _write_csv(self.folder / "orgs.csv", ORG_HEADER, self.orgs)
        _write_csv(self.folder / "classes.csv", CLASS_HEADER, self.classes)
        write_roster(self.folder / "users.csv", self.users)
        _write_csv(self.folder / "enrollments.csv", ENROLLMENT_HEADER, self.enrollments)
        return self.folder

    # --- the night's edits --------------------------------------------------------------------

    def edit(self) -> int:
        """A random handful of edits (roughly what a night brings); about how many objects change."""
        for rows in (self.orgs, self.classes, self.users, self.enrollments):
            rows[:] = [row for row in rows if row["status"] == "active"]
        kinds = [
            "rekey-school",
            "rekey-district",
            "retitle-class",
            "move-class",
            "add-class",
            "remove-class",
            "rekey-class",
            "move-enrollment",
            "role-enrollment",
            "drop-enrollment",
            "add-enrollment",
            "rekey-user",
            "update-user",
            "leave-user",
            "join-user",
        ]
        changed = 0
        for kind in self.rng.sample(kinds, k=self.rng.randint(2, 5)):
            changed += self.apply(kind)
        return changed

    def apply(self, kind: str) -> int:
        """One edit by name (see `edit`); about how many objects it changes (0 when it did not apply)."""
        changed: int = getattr(self, "_" + kind.replace("-", "_"))()
        if changed:
            self.edits[kind] += 1
        return changed

    def _rekey_org(self, kind: str) -> int:
        org = self.rng.choice([o for o in self.orgs if o["type"] == kind])
        old, new = org["sourcedId"], self.key("org")
        org["sourcedId"] = new  # same identifier: changeGroupIdentifier
        self.org_identity[new] = org["identifier"]
        for row in self.orgs:
            if row["parentSourcedId"] == old:
                row["parentSourcedId"] = new
        for row in self.classes:
            if row["schoolSourcedId"] == old:
                row["schoolSourcedId"] = new
        members = 0
        for row in self.users:  # the school memberships follow (changeMembershipIdentifier)
            orgs = [org.strip() for org in row["orgSourcedIds"].split(",")]
            if old in orgs:
                row["orgSourcedIds"] = ",".join(new if org == old else org for org in orgs)
                members += 1
        return 1 + members

    def _rekey_school(self) -> int:
        return self._rekey_org("school")

    def _rekey_district(self) -> int:
        return self._rekey_org("district")

    def _retitle_class(self) -> int:
        self.rng.choice(self.classes)["title"] = f"Class {self.rng.randrange(10**6)}"
        return 1

    def _move_class(self) -> int:
        cls = self.rng.choice(self.classes)
        cls["schoolSourcedId"] = self.rng.choice([s for s in self._schools() if s != cls["schoolSourcedId"]])
        return 1

    def _add_class(self) -> int:
        before = len(self.enrollments)
        self._new_class(self.key("cls"))
        return 1 + len(self.enrollments) - before

    def _remove_class(self) -> int:
        if len(self.classes) <= 2:
            return 0
        cls = self.rng.choice(self.classes)
        members = [e for e in self.enrollments if e["classSourcedId"] == cls["sourcedId"]]
        if self.rng.random() < 0.5:  # OneRoster marks it, or it is gone from the export
            cls["status"] = "tobedeleted"
        else:
            self.classes.remove(cls)
        for row in members:
            self.enrollments.remove(row)
        return 1 + len(members)

    def _rekey_class(self) -> int:
        # Classes have no identity: a new class (its enrollments move to it), the old one goes.
        cls = self.rng.choice(self.classes)
        old, cls["sourcedId"] = cls["sourcedId"], self.key("cls")
        members = [e for e in self.enrollments if e["classSourcedId"] == old]
        for row in members:
            row["classSourcedId"] = cls["sourcedId"]
        return 2 + len(members)

    def _free_classes(self, user_key: str) -> list[str]:
        taken = {e["classSourcedId"] for e in self.enrollments if e["userSourcedId"] == user_key}
        return [c["sourcedId"] for c in self.classes if c["sourcedId"] not in taken]

    def _move_enrollment(self) -> int:
        row = self.rng.choice(self.enrollments)
        free = self._free_classes(row["userSourcedId"])
        if not free:
            return 0
        row["classSourcedId"] = self.rng.choice(free)
        return 1

    def _role_enrollment(self) -> int:
        row = self.rng.choice(self.enrollments)
        row["role"] = {"student": "aide", "aide": "student", "teacher": "aide"}[row["role"]]
        return 1

    def _drop_enrollment(self) -> int:
        if len(self.enrollments) <= 5:
            return 0
        self.enrollments.remove(self.rng.choice(self.enrollments))
        return 1

    def _add_enrollment(self) -> int:
        user = self.rng.choice(self.users)
        free = self._free_classes(user["sourcedId"])
        if not free:
            return 0
        self._enrol(self.rng.choice(free), user["sourcedId"], "student")
        return 1

    def _rekey_user(self) -> int:
        user = self.rng.choice(self.users)
        old, user["sourcedId"] = user["sourcedId"], self.key("usr")  # same username: changePersonIdentifier
        self.user_identity[user["sourcedId"]] = user["username"]
        for row in self.enrollments:
            if row["userSourcedId"] == old:
                row["userSourcedId"] = user["sourcedId"]
        return 1

    def _update_user(self) -> int:
        self.rng.choice(self.users)["givenName"] = f"G{self.rng.randrange(10**6)}"
        return 1

    def _leave_user(self) -> int:
        user = self.rng.choice([u for u in self.users if u["role"] == "student"])
        if self.rng.random() < 0.5:
            user["status"] = "tobedeleted"
        else:
            self.users.remove(user)
        gone = [e for e in self.enrollments if e["userSourcedId"] == user["sourcedId"]]
        for row in gone:
            self.enrollments.remove(row)
        return 1 + len(gone)

    def _join_user(self) -> int:
        self._next += 1
        user = person_row(self._next, role="student", orgSourcedIds=self._orgs_of(self._next))
        self.users.append(user)
        self.user_identity[user["sourcedId"]] = user["username"]
        self._enrol(self.rng.choice(self.classes)["sourcedId"], user["sourcedId"], "student")
        return 2

    # --- what IMS ES should hold ---------------------------------------------------------------

    def expected_groups(self) -> dict[str, dict[str, str]]:
        """The groups the active rows describe, as `group_fields` gives them."""
        groups = {
            o["sourcedId"]: {
                "name": o["name"],
                "type": ORG_TYPES[o["type"]],
                "parent": o["parentSourcedId"],
                "description": "",
            }
            for o in self.orgs
            if o["status"] == "active"
        }
        groups.update(
            {
                c["sourcedId"]: {
                    "name": c["title"],
                    "type": "Course",
                    "parent": c["schoolSourcedId"],
                    "description": c["classCode"],
                }
                for c in self.classes
                if c["status"] == "active"
            }
        )
        return dict(sorted(groups.items()))

    def expected_memberships(self) -> dict[str, dict[str, str]]:
        """The memberships the folder (as last written) asks for: the active enrollments and each
        user's schools, as `membership_fields` gives them."""
        return oneroster_memberships(self.folder)

    def expected_persons(self) -> dict[str, dict[str, str]]:
        """The persons the active users describe, as field dicts."""
        return {key: p.values() for key, p in sorted(expected_persons(self.users).items())}


# --- what the emulator and the snapshot hold, as comparable field dicts --------------------------


def group_fields(groups: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Emulator groups (sync.emulator.store.Group) as {name, type, parent, description} by key."""
    return {
        key: {"name": g.desc_short, "type": g.type, "parent": g.parent, "description": g.desc_long}
        for key, g in sorted(groups.items())
    }


def membership_fields(memberships: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Emulator memberships (sync.emulator.store.Membership) as {group, person, role, active} by key."""
    return {
        key: {
            "group": m.group_key,
            "person": m.person_key,
            "role": m.role,
            "active": "true" if m.active else "false",
        }
        for key, m in sorted(memberships.items())
    }


def person_fields(persons: Mapping[str, Person]) -> dict[str, dict[str, str]]:
    """Persons as field dicts by key."""
    return {key: p.values() for key, p in sorted(persons.items())}


@dataclass(frozen=True)
class Held:
    """Everything one side holds (the emulator, or the snapshot), as field dicts by sync key."""

    groups: dict[str, dict[str, str]]
    memberships: dict[str, dict[str, str]]
    persons: dict[str, dict[str, str]]


def emulator_held(emulator: Emulator) -> Held:
    """What an in-process emulator holds."""
    return Held(
        groups=group_fields(emulator.groups()),
        memberships=membership_fields(emulator.memberships()),
        persons=person_fields(emulator.persons()),
    )


def snapshot_held(state: Path) -> Held:
    """What the snapshot in `state` holds (identity columns left out: IMS ES does not hold them)."""
    with StateStore.open(state, exclusive=False) as store:
        groups = store.load(GROUP)
        memberships = store.load(MEMBERSHIP)
    return Held(
        groups={
            str(key): {name: str(row[name]) for name in ("name", "type", "parent", "description")}
            for key, row in sorted(groups.iterrows())
        },
        memberships={
            str(key): {name: str(row[name]) for name in ("group", "person", "role", "active")}
            for key, row in sorted(memberships.iterrows())
        },
        persons=person_fields(snapshot_persons(state)),
    )


def expected_held(school: School) -> Held:
    """What IMS ES should hold for the school's roster once everything is synced (deletes on)."""
    return Held(
        groups=school.expected_groups(),
        memberships=school.expected_memberships(),
        persons=school.expected_persons(),
    )


def state_problems(state: Path, *, allow_unanswered: bool = False) -> list[str]:
    """`tests.checks.journal_problems`, plus: every group and membership row of the snapshot was
    written by a confirmed request."""
    problems = journal_problems(state, allow_unanswered=allow_unanswered)
    if not (state / DB_NAME).exists():
        return problems
    connection = sqlite3.connect(f"file:{state / DB_NAME}?mode=ro", uri=True, timeout=10.0)
    try:
        confirmed = {
            row[0]
            for row in connection.execute(
                "SELECT message_identifier FROM requests WHERE outcome = 'confirmed'"
            )
        }
        for table in ("groups", "memberships"):
            for key, mid in connection.execute(f"SELECT sync_key, message_identifier FROM {table}"):
                if mid not in confirmed:
                    problems.append(f"snapshot {table} row {key} written by {mid}, not a confirmed request")
    finally:
        connection.close()
    return problems


def created_twice(events: Iterable[Event], identity_of: Mapping[str, str]) -> list[str]:
    """Replay the emulator's history: where one identity was ever held under two live sync keys.

    `identity_of` maps the sync keys of persons (username) and orgs (identifier) to their identity; a
    key it does not name has none. An object re-keyed with a create instead of a change of identifier,
    or created again under a new key while the old one lives, shows up here.
    """
    live: set[str] = set()
    problems: list[str] = []
    creates = {"createPerson", "createPersons", "updatePerson", "replacePerson"}
    creates |= {"createGroup", "createGroups", "updateGroup"}
    renames = {"changePersonIdentifier", "changeGroupIdentifier"}
    deletes = {"deletePerson", "deleteGroup"}
    for event in events:
        if event.code_major != "success":
            continue
        kind = "group" if "Group" in event.operation else "person"
        if event.operation in creates:
            live.add(f"{kind}:{event.sync_key}")
        elif event.operation in renames:
            live.discard(f"{kind}:{event.sync_key}")
            live.add(f"{kind}:{event.new_key}")
        elif event.operation in deletes:
            live.discard(f"{kind}:{event.sync_key}")
        else:
            continue
        held = Counter(identity_of[k] for k in (key.split(":", 1)[1] for key in live) if k in identity_of)
        problems.extend(
            f"after event {event.seq} ({event.operation} {event.sync_key}): {identity!r} held {n} times"
            for identity, n in held.items()
            if n > 1
        )
    return problems


def membership_pairs_twice(memberships: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    """(group, person) pairs held by more than one membership."""
    counts = Counter((m["group"], m["person"]) for m in memberships.values())
    return sorted(pair for pair, n in counts.items() if n > 1)


# --- the Executor against an in-process emulator ---------------------------------------------------

RETRY: Final = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.0)

SCHOOLS: Final = (
    Group(sync_key="s1", name="North School", type="School"),
    Group(sync_key="s2", name="South School", type="School"),
)
CLASSES: Final = (
    Group(sync_key="c1", name="Maths 7A", type="Course", parent="s1", description="MAT7A"),
    Group(sync_key="c2", name="English 7A", type="Course", parent="s1", description="ENG7A"),
)
MEMBERS: Final = (
    Membership(sync_key="e1", group="c1", person="p1", role="Learner"),
    Membership(sync_key="e2", group="c1", person="p2", role="Instructor"),
    Membership(sync_key="e3", group="c2", person="p1", role="Learner"),
)


def base_person(key: str) -> Person:
    """Person `key` (username `key`)."""
    return Person(sync_key=key, username=key, given_name=key.title(), family_name="X", role="Student")


def base_night() -> list[Operation]:
    """Two schools, two classes in s1, three persons, three memberships."""
    return [
        *(Create(record=g) for g in (*SCHOOLS, *CLASSES)),
        *(Create(record=base_person(k)) for k in ("p1", "p2", "p3")),
        *(Create(record=m) for m in MEMBERS),
    ]


@dataclass
class Model:
    """What IMS ES holds, applied operation by operation with its cascades (the tests' expectation)."""

    groups: dict[str, Group] = field(default_factory=dict)
    memberships: dict[str, Membership] = field(default_factory=dict)
    persons: dict[str, Person] = field(default_factory=dict)

    def apply(self, ops: Iterable[Operation]) -> Model:
        """Apply `ops` in order; self."""
        for op in ops:
            match op:
                case Create(record=Group() as group) | Update(record=Group() as group):
                    self.groups[op.sync_key] = group
                case ChangeIdentifier(record=Group() as group):
                    del self.groups[op.old_id]
                    self.groups[op.new_id] = group
                    for key, g in list(self.groups.items()):
                        if g.parent == op.old_id:
                            self.groups[key] = replace(g, parent=op.new_id)
                    for key, m in list(self.memberships.items()):
                        if m.group == op.old_id:
                            self.memberships[key] = replace(m, group=op.new_id)
                case Delete(record=Group()):
                    del self.groups[op.sync_key]
                    self.memberships = {k: m for k, m in self.memberships.items() if m.group != op.sync_key}
                case (
                    Create(record=Membership() as membership)
                    | Update(record=Membership() as membership)
                    | Deactivate(record=Membership() as membership)
                ):
                    self.memberships[op.sync_key] = membership
                case Delete(record=Membership()):
                    del self.memberships[op.sync_key]
                case Create(record=Person() as person):
                    self.persons[op.sync_key] = person
                case _:
                    raise AssertionError(f"the model does not apply {op!r}")
        return self

    def held(self) -> Held:
        """As field dicts."""
        return Held(
            groups={k: g.values() for k, g in sorted(self.groups.items())},
            memberships={k: m.values() for k, m in sorted(self.memberships.items())},
            persons=person_fields(self.persons),
        )


@dataclass
class Run:
    """One Executor run's results and run id."""

    run_id: str
    results: list[tuple[Operation, Outcome, str]]

    def outcomes(self) -> list[Outcome]:
        """The outcomes, in operation order."""
        return [outcome for _, outcome, _ in self.results]


Execute = Callable[..., Run]


@pytest.fixture(name="state")
def fixture_state(tmp_path: Path) -> Path:
    """The state directory of the test's runs."""
    return tmp_path / "state"


@pytest.fixture(name="execute")
def fixture_execute(state: Path) -> Iterator[Execute]:
    """`execute(emulator, ops, read_timeout=5, **settings)`: one Executor run (PMS, GMS and MMS clients)."""
    opened: list[PersonClient | GroupClient | MembershipClient] = []

    def run(
        emulator: Emulator, ops: Sequence[Operation], *, read_timeout: float = 5.0, **settings: Any
    ) -> Run:
        common: dict[str, Any] = {
            "username": USERNAME,
            "password": PASSWORD,
            "ca_bundle": emulator.ca_path,
            "timeouts": Timeouts(connect=5.0, read=read_timeout),
        }
        persons = PersonClient(url=emulator.pms_url, **common)
        groups = GroupClient(url=emulator.gms_url, **common)
        memberships = MembershipClient(url=emulator.mms_url, **common)
        opened.extend((persons, groups, memberships))
        options: dict[str, Any] = {"retry": RETRY, "deletes": True, "circuit_threshold": 1000}
        options.update(settings)
        with StateStore.open(state) as store:
            run_id = store.begin_run(command="test", roster="-", mapping="-")
            report = Executor(
                client=persons,
                groups=groups,
                memberships=memberships,
                store=store,
                run_id=run_id,
                settings=ExecutorSettings(**options),
                sleep=lambda _seconds: None,
            ).run(ops)
        return Run(run_id=run_id, results=[(r.operation, r.outcome, r.error) for r in report.results])

    yield run
    for client in opened:
        client.close()


def flags_of(state: Path, run_id: str) -> list[tuple[str, frozenset[Flag]]]:
    """(operation, reconcile flags) of every request of one run, in sent order."""
    with StateStore.open(state, exclusive=False) as store:
        journal = store.journal(run_id)
    return [(row.entry.operation, row.flags) for row in reconcile(journal)]


NO_FAULTS: Final = {
    "error_rate": 0.0,
    "fault_rate": 0.0,
    "drop_rate": 0.0,
    "wrong_ref_rate": 0.0,
    "slow_rate": 0.0,
}


@dataclass(frozen=True)
class FaultKind:
    """One injected fault at rate 1: the emulator's settings, what the client sees, whether applied."""

    settings: dict[str, float]
    error: str
    applied: bool
    flags: frozenset[Flag]


FAULT_KINDS: Final = {
    "http-503": FaultKind({"error_rate": 1.0}, "HTTP 503", False, frozenset({Flag.FAILED})),
    "soap-fault": FaultKind({"fault_rate": 1.0}, "s:Server", False, frozenset({Flag.FAILED})),
    "dropped-after-applying": FaultKind({"drop_rate": 1.0}, "", True, frozenset({Flag.FAILED})),
    "wrong-messageidref": FaultKind(
        {"wrong_ref_rate": 1.0}, "messageIdRef", True, frozenset({Flag.UNMATCHED, Flag.FAILED})
    ),
    "past-read-timeout": FaultKind(
        {"slow_rate": 1.0, "slow_ms": 600.0}, "timed out", True, frozenset({Flag.FAILED})
    ),
}


@dataclass(frozen=True)
class Case:
    """The faulted operation's scenario: operations on top of the base night, and the batch size."""

    ops: tuple[Operation, ...]
    batch_size: int = 1


RENAMED_CLASS: Final = replace(CLASSES[0], sync_key="c1-2026")
CASES: Final = {
    "createGroup": Case(
        (
            Create(record=Group(sync_key="s3", name="East School", type="School")),
            Create(record=Group(sync_key="c3", name="Art 7A", type="Course", parent="s2")),
        )
    ),
    "createGroups": Case(
        (
            Create(record=Group(sync_key="s3", name="East School", type="School")),
            Create(record=Group(sync_key="c3", name="Art 7A", type="Course", parent="s2")),
        ),
        batch_size=2,
    ),
    "updateGroup": Case(
        (
            Update(record=replace(CLASSES[0], name="Maths 7A (adv)"), changes=()),
            Update(record=replace(CLASSES[1], parent="s2"), changes=()),  # moved to another school
        )
    ),
    "deleteGroup": Case(
        (
            Delete(record=Group(sync_key="c2", parent="s1")),  # takes e3 along
            Delete(record=Group(sync_key="s2")),
        )
    ),
    "changeGroupIdentifier": Case(
        (
            ChangeIdentifier(old_id="c1", new_id="c1-2026", record=RENAMED_CLASS, changes=()),
            ChangeIdentifier(old_id="s2", new_id="s2-new", record=replace(SCHOOLS[1], sync_key="s2-new")),
        )
    ),
    "createMembership": Case(
        (
            Create(record=Membership(sync_key="e4", group="c2", person="p2", role="Instructor")),
            Create(record=Membership(sync_key="e5", group="c2", person="p3", role="Learner")),
        )
    ),
    "createMemberships": Case(
        (
            Create(record=Membership(sync_key="e4", group="c2", person="p2", role="Instructor")),
            Create(record=Membership(sync_key="e5", group="c2", person="p3", role="Learner")),
        ),
        batch_size=2,
    ),
    "updateMembership": Case(
        (
            Update(record=replace(MEMBERS[0], role="TeachingAssistant"), changes=()),
            Update(record=replace(MEMBERS[2], group="c1", person="p3"), changes=()),  # moved
            Deactivate(record=replace(MEMBERS[1], active="false")),
        )
    ),
    "deleteMembership": Case((Delete(record=MEMBERS[0]), Delete(record=MEMBERS[2]))),
    "deleteMemberships": Case((Delete(record=MEMBERS[0]), Delete(record=MEMBERS[2])), batch_size=2),
}


class TestEachFaultOnEachOperation:
    """Each fault kind on each GMS and MMS write: unconfirmed, never confirmed; a rerun heals."""

    @pytest.mark.parametrize("kind", list(FAULT_KINDS))
    @pytest.mark.parametrize("operation", list(CASES))
    def test_fault_then_rerun(
        self,
        emulator_factory: Callable[..., Emulator],
        execute: Execute,
        state: Path,
        operation: str,
        kind: str,
    ) -> None:
        """The faulted run confirms nothing of it and changes no snapshot row of it; the rerun converges."""
        fault, case = FAULT_KINDS[kind], CASES[operation]
        emulator = emulator_factory(seed=3, fault_operations=frozenset({operation}))
        first = execute(emulator, base_night())
        assert set(first.outcomes()) == {Outcome.CONFIRMED}
        before = Model().apply(base_night())
        assert snapshot_held(state) == before.held() == emulator_held(emulator)

        emulator.reconfigure(**fault.settings)
        faulty = execute(emulator, case.ops, read_timeout=0.25, batch_size=case.batch_size)
        assert faulty.outcomes() == [Outcome.UNCONFIRMED] * len(case.ops), faulty.results
        assert all(fault.error in error for _, _, error in faulty.results), faulty.results
        assert snapshot_held(state) == before.held()  # the snapshot follows confirmed answers only
        after = Model().apply(base_night()).apply(case.ops)
        assert emulator_held(emulator) == (after if fault.applied else before).held()
        assert state_problems(state) == []
        flags = flags_of(state, faulty.run_id)
        assert {name for name, _ in flags} >= {operation}
        for name, flagged in flags:
            if name == operation:
                assert flagged == fault.flags, (name, flagged)
        assert sum(emulator.faults_injected().values()) >= 1

        emulator.reconfigure(**NO_FAULTS)
        healed = execute(emulator, case.ops, batch_size=case.batch_size)
        assert set(healed.outcomes()) == {Outcome.CONFIRMED}, healed.results
        assert emulator_held(emulator) == after.held() == snapshot_held(state)
        identities = {k: k for k in ("p1", "p2", "p3")}
        assert created_twice(emulator.history(), identities) == []
        assert state_problems(state) == []


class TestAmbiguousGroupOutcomes:
    """A GMS change applied with its answer lost is resolved by journalled reads, never applied twice."""

    def test_dropped_rename_answers_are_resolved_by_reading_groups(
        self, emulator_factory: Callable[..., Emulator], execute: Execute, state: Path
    ) -> None:
        """changeGroupIdentifier retried after a lost answer fails as unknown; readGroup calls confirm it."""
        emulator = emulator_factory(seed=23)
        schools = [Group(sync_key=f"s{n}", name=f"School {n}", type="School") for n in range(1, 9)]
        classes = [Group(sync_key=f"c{n}", name=f"C{n}", type="Course", parent=f"s{n}") for n in range(1, 9)]
        members = [
            Membership(sync_key=f"e{n}", group=f"c{n}", person="p1", role="Learner") for n in range(1, 9)
        ]
        setup: list[Operation] = [
            *(Create(record=g) for g in (*schools, *classes)),
            Create(record=base_person("p1")),
            *(Create(record=m) for m in members),
        ]
        assert set(execute(emulator, setup).outcomes()) == {Outcome.CONFIRMED}
        emulator.reconfigure(drop_rate=0.5, fault_operations=frozenset({"changeGroupIdentifier"}))
        renames = [
            ChangeIdentifier(old_id=f"s{n}", new_id=f"school-{n}", record=replace(g, sync_key=f"school-{n}"))
            for n, g in enumerate(schools, start=1)
        ]
        run = execute(emulator, renames, retry=replace(RETRY, max_attempts=6))
        assert set(run.outcomes()) == {Outcome.CONFIRMED}, run.results
        assert emulator.faults_injected()["drop"] > 0
        with StateStore.open(state, exclusive=False) as store:
            journal = store.journal(run.run_id)
        retried = [e for e in journal if e.operation == "changeGroupIdentifier" and e.outcome == "rejected"]
        assert retried, "no rename was retried after it had been applied"
        assert all(e.code_minor[0][0] == "unknownobject" for e in retried)
        reads = [e for e in journal if e.operation == "readGroup"]
        confirming = [e for e in reads if e.error.startswith("confirms ")]
        assert {e.error.split()[1].rstrip(":") for e in confirming} == {e.message_identifier for e in retried}
        assert all(e.message_id_ref == e.message_identifier for e in reads)  # reads are journalled requests
        # Each resolution read the old id (gone) and the new one (there): two reads per retried rename.
        assert len(reads) == 2 * len(retried)
        renamed = {f"school-{n}" for n in range(1, 9)}
        assert set(emulator.groups()) == renamed | {g.sync_key for g in classes}
        held = emulator_held(emulator)
        assert held == snapshot_held(state)
        assert {held.groups[f"c{n}"]["parent"] for n in range(1, 9)} == renamed  # children followed
        assert (
            created_twice(
                emulator.history(),
                {f"s{n}": f"S{n}" for n in range(1, 9)} | {f"school-{n}": f"S{n}" for n in range(1, 9)},
            )
            == []
        )
        assert state_problems(state) == []

    def test_unconfirmed_group_rename_then_renamed_again(
        self, emulator: Emulator, execute: Execute, state: Path
    ) -> None:
        """s1 -> s1-b applied but unanswered, then the roster says s1-c: the school ends as s1-c."""
        assert set(execute(emulator, base_night()).outcomes()) == {Outcome.CONFIRMED}
        # An earlier run sent s1 -> s1-b (journalled as sent), the service applied it, the run died.
        with StateStore.open(state) as store:
            killed_run = store.begin_run(command="run", roster="-", mapping="-")
            store.record_sent(
                SentRequest(
                    run_id=killed_run,
                    message_identifier="lost-group-rename",
                    operation="changeGroupIdentifier",
                    attempt=1,
                    sent_at=datetime.now(UTC),
                    items=(RequestItem(index=0, sync_key="s1", new_sync_key="s1-b"),),
                )
            )
        with GroupClient(
            url=emulator.gms_url, username=USERNAME, password=PASSWORD, ca_bundle=emulator.ca_path
        ) as other:
            assert other.change_group_identifier("s1", "s1-b", message_id="lost-group-rename").ok
        op = ChangeIdentifier(old_id="s1", new_id="s1-c", record=replace(SCHOOLS[0], sync_key="s1-c"))
        run = execute(emulator, [op])
        assert run.outcomes() == [Outcome.CONFIRMED], run.results
        expected = Model().apply(base_night()).apply([op])
        assert emulator_held(emulator) == expected.held() == snapshot_held(state)
        assert set(emulator.groups()) == {"s1-c", "s2", "c1", "c2"}
        with StateStore.open(state, exclusive=False) as store:
            journal = store.journal(run.run_id)
        sent = [(e.operation, e.items[0].sync_key, e.items[0].new_sync_key, e.outcome) for e in journal]
        assert sent == [
            ("changeGroupIdentifier", "s1", "s1-c", "rejected"),  # unknown: s1 is gone
            ("readGroup", "s1", "", "rejected"),  # gone indeed
            ("readGroup", "s1-c", "", "rejected"),  # and not renamed to s1-c: not this request's doing
            ("readGroup", "s1-b", "", "confirmed"),  # the lost request's target holds it
            ("changeGroupIdentifier", "s1-b", "s1-c", "confirmed"),
        ]
        assert state_problems(state, allow_unanswered=True) == []
        # The lost request stays unanswered, and reconcile says so for the run that sent it.
        assert flags_of(state, killed_run) == [("changeGroupIdentifier", frozenset({Flag.UNANSWERED}))]


# --- through the CLI, with a OneRoster folder -------------------------------------------------------


@pytest.fixture(name="cli")
def fixture_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """`cli(*args)`: ims-sync in-process with the emulator's credentials; (exit code, stdout, stderr)."""
    monkeypatch.setenv("IMS_ES_USERNAME", USERNAME)
    monkeypatch.setenv("IMS_ES_PASSWORD", PASSWORD)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--log-format", "json", *args])
        out, err = capsys.readouterr()
        return int(code), out, err

    return run


def converge(run: Callable[[], int], *, limit: int = 15) -> list[int]:
    """Run until a run exits 0; the exit codes (every other one must be 1: failures recorded)."""
    codes: list[int] = []
    while len(codes) < limit:
        codes.append(run())
        if codes[-1] == EXIT_OK:
            return codes
        assert codes[-1] == EXIT_FAILED, codes
    raise AssertionError(f"no clean run after {limit} runs: {codes}")


class TestThroughTheCli:
    """`ims-sync run` with a OneRoster folder under GMS and MMS faults: converges, reconcile flags."""

    def test_mixed_faults_converge_and_reconcile_flags_the_faulty_run(
        self,
        emulator_factory: Callable[..., Emulator],
        cli: Callable[..., tuple[int, str, str]],
        tmp_path: Path,
        state: Path,
    ) -> None:
        """503s, SOAP faults, drops, late answers and wrong refs on every GMS and MMS write."""
        emulator = emulator_factory(
            error_rate=0.1,
            fault_rate=0.1,
            drop_rate=0.15,
            wrong_ref_rate=0.1,
            slow_rate=0.05,
            slow_ms=700,
            fault_operations=GROUP_WRITES | MEMBERSHIP_WRITES,
            seed=17,
        )
        school = School.generate(tmp_path / "roster", random.Random(5), schools=2, classes=5, users=20)
        flags_seen: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()

        def one_run(*extra: str) -> int:
            report = tmp_path / "run.json"
            code, out, err = cli(
                "run",
                str(school.folder),
                "--mapping",
                "oneroster",
                "--state",
                str(state),
                "--endpoint",
                emulator.pms_url,
                "--ca-bundle",
                str(emulator.ca_path),
                "--max-attempts",
                "1",
                "--read-timeout",
                "0.5",
                "--max-change-share",
                "1",
                "--report",
                str(report),
                *extra,
            )
            results = json.loads(report.read_text(encoding="utf-8"))["results"]
            outcomes.update(r["outcome"] for r in results)
            assert {r["outcome"] for r in results} <= {"confirmed", "rejected", "unconfirmed", "skipped"}
            assert state_problems(state) == [], out + err
            # reconcile on the run just made: flags match what the journal says, exit 1 when any is off
            rc, listing, _ = cli("reconcile", "--state", str(state), "--format", "json")
            rows = json.loads(listing)["requests"]
            for row in rows:
                flags_seen.update(row["flags"])
                if row["outcome"] == "confirmed":
                    assert row["messageIdRef"] == row["messageIdentifier"], row
                    # A read that confirms a lost delete answered "unknown object", and is ok.
                    assert row["flags"] == ["ok"], row
                if "unmatched" in row["flags"]:
                    assert row["messageIdRef"] not in (None, row["messageIdentifier"])
                    assert row["outcome"] != "confirmed"
                assert "unanswered" not in row["flags"]  # a run that ends answers every request
            assert rc == (EXIT_OK if all(r["flags"] == ["ok"] for r in rows) else EXIT_FAILED)
            return code

        school.write()
        first = converge(one_run)
        for kind in ("rekey-school", "retitle-class", "move-class", "remove-class", "rekey-class"):
            school.apply(kind)
        for kind in (
            "move-enrollment",
            "role-enrollment",
            "rekey-user",
            "leave-user",
            "join-user",
            "add-class",
        ):
            school.apply(kind)
        school.write()
        second = converge(lambda: one_run("--deletes", "delete"))

        assert EXIT_FAILED in first + second  # the faults did make runs fail
        held = emulator_held(emulator)
        assert held == expected_held(school)
        assert snapshot_held(state) == held
        assert duplicates(emulator.persons()) == []
        assert membership_pairs_twice(held.memberships) == []
        identities = school.org_identity | school.user_identity
        assert created_twice(emulator.history(), identities) == []
        injected = emulator.faults_injected()
        print(
            f"\ngroup faults via the CLI: runs {len(first)}+{len(second)}, outcomes {dict(outcomes)}, "
            f"reconcile flags {dict(flags_seen)}, injected {dict(injected)}"
        )
        assert set(injected) == {"unavailable", "fault", "drop", "wrong_ref", "slow"}, injected
        assert flags_seen["unmatched"] > 0  # a wrong messageIdRef is flagged as such
        assert flags_seen["failed"] > 0
        assert outcomes["unconfirmed"] > 0
