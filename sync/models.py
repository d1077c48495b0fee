"""Value types shared by every stage: persons, IMS ES statuses, plan operations, results."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeAlias

__all__ = [
    "INSTITUTION_ROLE_TYPES",
    "PERSON_FIELDS",
    "ChangeIdentifier",
    "CodeMajor",
    "Conflict",
    "Create",
    "Delete",
    "FieldChange",
    "Operation",
    "OperationResult",
    "Outcome",
    "Person",
    "Plan",
    "PlanSummary",
    "Reject",
    "RunResult",
    "Severity",
    "Status",
    "Update",
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


Operation: TypeAlias = Create | Update | ChangeIdentifier | Delete


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
    """Counts of a plan, as the reports show them."""

    create: int
    update: int
    change_identifier: int
    delete: int
    rejected: int
    conflicts: int
    unchanged: int
    snapshot_size: int

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
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a run would do: ordered operations plus what was set aside.

    `operations` holds creates, changeIdentifiers and updates (executed by `run`); `deletions` holds
    deletion candidates, listed always and executed only when deletes are enabled.
    """

    operations: tuple[Create | Update | ChangeIdentifier, ...]
    deletions: tuple[Delete, ...]
    rejects: tuple[Reject, ...]
    conflicts: tuple[Conflict, ...]
    unchanged: int
    snapshot_size: int

    @property
    def summary(self) -> PlanSummary:
        """Counts by kind."""
        ops = self.operations
        return PlanSummary(
            create=sum(isinstance(op, Create) for op in ops),
            update=sum(isinstance(op, Update) for op in ops),
            change_identifier=sum(isinstance(op, ChangeIdentifier) for op in ops),
            delete=len(self.deletions),
            rejected=len(self.rejects),
            conflicts=len(self.conflicts),
            unchanged=self.unchanged,
            snapshot_size=self.snapshot_size,
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
