"""Value types shared by every stage: persons, IMS ES statuses, plan operations, results."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeAlias

__all__ = [
    "GROUP_FIELDS",
    "GROUP_TYPES",
    "INSTITUTION_ROLE_TYPES",
    "MEMBERSHIP_FIELDS",
    "MEMBERSHIP_ROLE_TYPES",
    "PERSON_FIELDS",
    "ChangeGroupIdentifier",
    "ChangeIdentifier",
    "ChangeMembershipIdentifier",
    "ChangeOperation",
    "CodeMajor",
    "Conflict",
    "Create",
    "CreateGroup",
    "CreateMembership",
    "DeactivateMembership",
    "Delete",
    "DeleteGroup",
    "DeleteMembership",
    "DeleteOperation",
    "DeletesMode",
    "FieldChange",
    "Group",
    "GroupOperation",
    "Membership",
    "MembershipOperation",
    "Operation",
    "OperationResult",
    "Outcome",
    "Person",
    "PersonOperation",
    "Plan",
    "PlanSummary",
    "Reject",
    "RunResult",
    "Severity",
    "Status",
    "Update",
    "UpdateGroup",
    "UpdateMembership",
    "person_hash",
]

#: The canonical person fields sent to IMS ES, in a fixed order (the sync key is separate).
#: Every value is a string; "" means absent. birth_date is ISO yyyy-mm-dd; role is an
#: IMS ES institutionRoleType (Student, Staff, Administrator, Carer, Guest, ...).
PERSON_FIELDS: Final = (
    "username",
    "given_name",
    "family_name",
    "email",
    "role",
    "birth_date",
    "phone",
    "mobile",
)

#: The institutionRoleType values itslearning's PMS schema allows (InstitutionRoleDType), in its order.
INSTITUTION_ROLE_TYPES: Final = (
    "Student",
    "Faculty",
    "Member",
    "Learner",
    "Instructor",
    "Mentor",
    "Staff",
    "Alumni",
    "ProspectiveStudent",
    "Guest",
    "Other",
    "Administrator",
    "Observer",
    "Carer",
)


#: The canonical group fields (the sync key is separate). name is IMS's description/descShort,
#: description its descLong; type is an itslearning organisation type (GROUP_TYPES); parent is the
#: sync key of the parent group ("" for a group at the top of the hierarchy).
GROUP_FIELDS: Final = ("name", "type", "parent", "description")

#: itslearning's organisation types (groupType scheme ItslearningOrganisationTypes).
GROUP_TYPES: Final = ("Unspecified", "Site", "School", "Course", "CourseGroup")

#: The canonical membership fields (the membership's own sync key is separate): the group's and the
#: person's sync keys, the member's roleType, and "true"/"false" for an active/deactivated membership.
MEMBERSHIP_FIELDS: Final = ("group", "person", "role", "active")

#: The IMS ES membership roleType values itslearning's MMS schema allows by name (it also allows
#: their numeric codes 01-08). itslearning maps Learner to Student and Instructor to Teacher in a
#: course, ContentDeveloper and Member to Guest.
MEMBERSHIP_ROLE_TYPES: Final = (
    "Learner",
    "Instructor",
    "ContentDeveloper",
    "Member",
    "Manager",
    "Mentor",
    "Administrator",
    "TeachingAssistant",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """One person as IMS ES holds it. Never carries a password."""

    sync_key: str
    username: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    role: str = ""
    birth_date: str = ""
    phone: str = ""
    mobile: str = ""

    def values(self) -> dict[str, str]:
        """The canonical fields (without the sync key) as a dict, in PERSON_FIELDS order."""
        return {name: getattr(self, name) for name in PERSON_FIELDS}

    @classmethod
    def from_values(cls, sync_key: str, values: Mapping[str, str]) -> Person:
        """Build a Person from a mapping that holds (at least) every canonical field."""
        return cls(sync_key=sync_key, **{name: values[name] for name in PERSON_FIELDS})


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """One group (school, course, ...) as IMS ES GMS holds it."""

    sync_key: str
    name: str = ""
    type: str = ""
    parent: str = ""
    description: str = ""

    def values(self) -> dict[str, str]:
        """The canonical fields (without the sync key), in GROUP_FIELDS order."""
        return {name: getattr(self, name) for name in GROUP_FIELDS}

    @classmethod
    def from_values(cls, sync_key: str, values: Mapping[str, str]) -> Group:
        """Build a Group from a mapping that holds (at least) every canonical group field."""
        return cls(sync_key=sync_key, **{name: values[name] for name in GROUP_FIELDS})


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    """One membership: a person in a group with a role, as IMS ES MMS holds it."""

    sync_key: str
    group: str
    person: str
    role: str
    active: str = "true"

    def values(self) -> dict[str, str]:
        """The canonical fields (without the sync key), in MEMBERSHIP_FIELDS order."""
        return {name: getattr(self, name) for name in MEMBERSHIP_FIELDS}

    @classmethod
    def from_values(cls, sync_key: str, values: Mapping[str, str]) -> Membership:
        """Build a Membership from a mapping that holds (at least) every canonical membership field."""
        return cls(sync_key=sync_key, **{name: values[name] for name in MEMBERSHIP_FIELDS})


def person_hash(person: Person, identity: str = "") -> str:
    """A stable content hash of a person's canonical fields and identity value (sha256, hex)."""
    h = hashlib.sha256()
    for value in (identity, *person.values().values()):
        h.update(value.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


class CodeMajor(StrEnum):
    """IMS ES statusInfo/codeMajor."""

    SUCCESS = "success"
    UNSUPPORTED = "unsupported"
    FAILURE = "failure"
    PROCESSING = "processing"


class Severity(StrEnum):
    """IMS ES statusInfo/severity."""

    STATUS = "status"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """One IMS ES statusInfo: the service's verdict on a request or on one item of a mass request."""

    code_major: str
    severity: str
    code_minor: tuple[tuple[str, str], ...] = ()
    message_id_ref: str | None = None
    description: str = ""

    @property
    def ok(self) -> bool:
        """True when IMS ES confirmed the operation (codeMajor success, warnings included)."""
        return self.code_major == CodeMajor.SUCCESS


# --- plan --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One field that differs between the snapshot and the roster."""

    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Create:
    """A person in the roster that IMS ES does not hold yet: createPerson."""

    person: Person
    identity: str = ""
    password: str = field(default="", repr=False)

    @property
    def sync_key(self) -> str:
        """The person's sync key."""
        return self.person.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """A person whose mapped fields changed: updatePerson with the whole new record."""

    person: Person
    identity: str = ""
    changes: tuple[FieldChange, ...]

    @property
    def sync_key(self) -> str:
        """The person's sync key."""
        return self.person.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeIdentifier:
    """A person whose sync key changed (matched by identity key): changePersonIdentifier.

    `person` carries the new sync key and the roster's fields; when `changes` is not empty the
    executor follows with an updatePerson.
    """

    old_id: str
    new_id: str
    person: Person
    identity: str = ""
    changes: tuple[FieldChange, ...] = ()

    @property
    def sync_key(self) -> str:
        """The person's new sync key."""
        return self.new_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete:
    """A person in the snapshot who left the roster (or is marked for deletion): deletePerson."""

    sync_key: str
    identity: str = ""
    reason: str = ""


PersonOperation: TypeAlias = Create | Update | ChangeIdentifier | Delete


# --- group operations (GMS) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateGroup:
    """A group in the roster that IMS ES does not hold yet: createGroup (or an item of createGroups)."""

    group: Group
    identity: str = ""

    @property
    def sync_key(self) -> str:
        """The group's sync key."""
        return self.group.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateGroup:
    """A group whose mapped fields changed: updateGroup with the whole new group."""

    group: Group
    identity: str = ""
    changes: tuple[FieldChange, ...]

    @property
    def sync_key(self) -> str:
        """The group's sync key."""
        return self.group.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeGroupIdentifier:
    """A group whose sync key changed (matched by identity): changeGroupIdentifier, then updateGroup
    when `changes` is not empty."""

    old_id: str
    new_id: str
    group: Group
    identity: str = ""
    changes: tuple[FieldChange, ...] = ()

    @property
    def sync_key(self) -> str:
        """The group's new sync key."""
        return self.new_id


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteGroup:
    """A group in the snapshot that left the roster (or is marked for deletion): deleteGroup."""

    sync_key: str
    identity: str = ""
    reason: str = ""
    parent: str = ""  # the snapshot's parent: children are deleted before their parents


GroupOperation: TypeAlias = CreateGroup | UpdateGroup | ChangeGroupIdentifier | DeleteGroup


# --- membership operations (MMS) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateMembership:
    """A membership in the roster that IMS ES does not hold yet: createMembership(s)."""

    membership: Membership

    @property
    def sync_key(self) -> str:
        """The membership's sync key."""
        return self.membership.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateMembership:
    """A membership whose group, person, role or active flag changed: updateMembership."""

    membership: Membership
    changes: tuple[FieldChange, ...]

    @property
    def sync_key(self) -> str:
        """The membership's sync key."""
        return self.membership.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeMembershipIdentifier:
    """A membership whose sync key changed while its group and person stayed (the same enrolment under
    a new id): changeMembershipIdentifier, then updateMembership when `changes` is not empty. Without
    it, a create under the new id would put the person in the course twice."""

    old_id: str
    new_id: str
    membership: Membership
    changes: tuple[FieldChange, ...] = ()

    @property
    def sync_key(self) -> str:
        """The membership's new sync key."""
        return self.new_id


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteMembership:
    """A membership in the snapshot that left the roster: deleteMembership(s). `membership` is the
    snapshot's record (a deactivation sends it back with active "false")."""

    membership: Membership
    reason: str = ""

    @property
    def sync_key(self) -> str:
        """The membership's sync key."""
        return self.membership.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class DeactivateMembership:
    """`--deletes deactivate`: a membership that left the roster is kept, marked inactive
    (updateMembership with role status false), so the course keeps the member's history."""

    membership: Membership  # as it will be held: active "false"
    reason: str = ""

    @property
    def sync_key(self) -> str:
        """The membership's sync key."""
        return self.membership.sync_key


MembershipOperation: TypeAlias = (
    CreateMembership | UpdateMembership | ChangeMembershipIdentifier | DeleteMembership | DeactivateMembership
)

Operation: TypeAlias = PersonOperation | GroupOperation | MembershipOperation


class DeletesMode(StrEnum):
    """What a run does with deletion candidates (`--deletes`)."""

    OFF = "off"  # nothing is deleted; candidates are listed
    DEACTIVATE = "deactivate"  # memberships are deactivated; persons and groups are kept
    DELETE = "delete"  # memberships, then groups (children first), then persons are deleted


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """A roster row that was not accepted, and why. Rejected rows are never sent."""

    file: str
    row: int  # 1-based line number of the record's first line in the file (header = 1)
    field: str
    reason: str
    sync_key: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """An identity match that cannot be resolved safely; nothing is sent for these keys."""

    identity: str
    roster_keys: tuple[str, ...]
    snapshot_keys: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSummary:
    """Counts of a plan, as the reports show them. The unprefixed counts are about persons."""

    create: int
    update: int
    change_identifier: int
    delete: int
    rejected: int
    conflicts: int
    unchanged: int
    snapshot_size: int
    group_create: int = 0
    group_update: int = 0
    group_change_identifier: int = 0
    group_delete: int = 0
    group_unchanged: int = 0
    group_snapshot_size: int = 0
    membership_create: int = 0
    membership_update: int = 0
    membership_change_identifier: int = 0
    membership_delete: int = 0
    membership_unchanged: int = 0
    membership_snapshot_size: int = 0

    def as_dict(self) -> dict[str, int]:
        """The summary under the names the JSON report uses."""
        return {
            "create": self.create,
            "update": self.update,
            "changeIdentifier": self.change_identifier,
            "delete": self.delete,
            "rejected": self.rejected,
            "conflicts": self.conflicts,
            "unchanged": self.unchanged,
            "snapshot": self.snapshot_size,
            "groupCreate": self.group_create,
            "groupUpdate": self.group_update,
            "groupChangeIdentifier": self.group_change_identifier,
            "groupDelete": self.group_delete,
            "groupUnchanged": self.group_unchanged,
            "groupSnapshot": self.group_snapshot_size,
            "membershipCreate": self.membership_create,
            "membershipUpdate": self.membership_update,
            "membershipChangeIdentifier": self.membership_change_identifier,
            "membershipDelete": self.membership_delete,
            "membershipUnchanged": self.membership_unchanged,
            "membershipSnapshot": self.membership_snapshot_size,
        }


#: Operations a run sends whatever `--deletes` says.
ChangeOperation: TypeAlias = (
    Create
    | Update
    | ChangeIdentifier
    | CreateGroup
    | UpdateGroup
    | ChangeGroupIdentifier
    | CreateMembership
    | UpdateMembership
    | ChangeMembershipIdentifier
)
#: Deletion candidates: sent only as `--deletes` allows.
DeleteOperation: TypeAlias = Delete | DeleteGroup | DeleteMembership


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a run would do: ordered operations plus what was set aside.

    `operations` holds creates, changeIdentifiers and updates in execution order: groups (parents
    before children), then persons, then memberships. `deletions` holds deletion candidates in
    execution order (memberships, then groups children first, then persons), listed always and
    executed only as `--deletes` allows. The `group_*` and `membership_*` counts are 0 for a plan of
    persons only.
    """

    operations: tuple[ChangeOperation, ...]
    deletions: tuple[DeleteOperation, ...]
    rejects: tuple[Reject, ...]
    conflicts: tuple[Conflict, ...]
    unchanged: int
    snapshot_size: int
    group_unchanged: int = 0
    group_snapshot_size: int = 0
    membership_unchanged: int = 0
    membership_snapshot_size: int = 0

    @property
    def summary(self) -> PlanSummary:
        """Counts by kind."""
        kinds: dict[type, int] = {}
        for op in (*self.operations, *self.deletions):
            kinds[type(op)] = kinds.get(type(op), 0) + 1
        return PlanSummary(
            create=kinds.get(Create, 0),
            update=kinds.get(Update, 0),
            change_identifier=kinds.get(ChangeIdentifier, 0),
            delete=kinds.get(Delete, 0),
            rejected=len(self.rejects),
            conflicts=len(self.conflicts),
            unchanged=self.unchanged,
            snapshot_size=self.snapshot_size,
            group_create=kinds.get(CreateGroup, 0),
            group_update=kinds.get(UpdateGroup, 0),
            group_change_identifier=kinds.get(ChangeGroupIdentifier, 0),
            group_delete=kinds.get(DeleteGroup, 0),
            group_unchanged=self.group_unchanged,
            group_snapshot_size=self.group_snapshot_size,
            membership_create=kinds.get(CreateMembership, 0),
            membership_update=kinds.get(UpdateMembership, 0),
            membership_change_identifier=kinds.get(ChangeMembershipIdentifier, 0),
            membership_delete=kinds.get(DeleteMembership, 0),
            membership_unchanged=self.membership_unchanged,
            membership_snapshot_size=self.membership_snapshot_size,
        )

    @property
    def empty(self) -> bool:
        """True when there is nothing to send (deletions excluded)."""
        return not self.operations


# --- results -----------------------------------------------------------------------------------


class Outcome(StrEnum):
    """How one operation ended."""

    CONFIRMED = "confirmed"  # IMS ES answered success with our messageIdRef; snapshot updated
    REJECTED = "rejected"  # IMS ES answered failure (or a fault) about the data; not retried
    UNCONFIRMED = "unconfirmed"  # sent, but no trustworthy answer; the next run re-diffs it
    SKIPPED = "skipped"  # not sent (run stopped, or an earlier step for the person failed)


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationResult:
    """How one planned operation ended, with the request that decided it."""

    operation: Operation
    outcome: Outcome
    message_identifier: str = ""  # of the request that decided the outcome (last attempt)
    status: Status | None = None
    error: str = ""
    attempts: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a run did: every operation's outcome, and why it stopped early, if it did."""

    run_id: str
    plan: Plan
    results: tuple[OperationResult, ...]
    started_at: str  # ISO 8601, UTC
    finished_at: str  # ISO 8601, UTC
    stopped: str = ""  # "" when the run went to the end; else the reason (circuit open, signal)

    def count(self, outcome: Outcome) -> int:
        """How many operations ended with `outcome`."""
        return sum(r.outcome is outcome for r in self.results)
