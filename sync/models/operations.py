"""Plan operations: what the diff asks of IMS ES for one record of any kind (person, group, membership).

Each operation is generic over the record it carries; its kind is the record's (`kinds.kind_of`), so a
new kind of object needs no operation types of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeAlias, TypeVar

from sync.models.records import Group, Membership, Person, Record

#: The record an operation carries (read only: a Create[Person] is a Create[Record]).
R_co = TypeVar("R_co", bound=Record, covariant=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One field that differs between the snapshot and the roster."""

    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Carrying(Generic[R_co]):
    """An operation on one record: the record as IMS ES will hold it (or, deleted, held)."""

    record: R_co

    @property
    def sync_key(self) -> str:
        """The record's sync key."""
        return self.record.sync_key


@dataclass(frozen=True, slots=True, kw_only=True)
class Create(_Carrying[R_co]):
    """A record in the roster that IMS ES does not hold yet: createPerson, createGroup(s), ...
    `password` is a person's initial one ("" = none; never reported)."""

    identity: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Update(_Carrying[R_co]):
    """A record whose mapped fields changed: updatePerson, updateGroup, ... with the whole new record."""

    identity: str = ""
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeIdentifier(_Carrying[R_co]):
    """A record whose sync key changed: changePersonIdentifier, ..., then an update when `changes` is
    not empty. `record` carries the new sync key and the roster's fields. Persons and groups are matched
    by identity; a membership by its group and person (a create would enrol the person twice)."""

    old_id: str
    new_id: str
    identity: str = ""
    changes: tuple[FieldChange, ...] = ()

    @property
    def sync_key(self) -> str:
        """The new sync key."""
        return self.new_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(_Carrying[R_co]):
    """A record in the snapshot that left the roster (or is marked for deletion): deletePerson, ...
    `record` is the snapshot's (a group's parent: children are deleted before their parents)."""

    identity: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deactivate(_Carrying[R_co]):
    """`--deletes deactivate`, of a kind that can be deactivated (memberships): a record that left the
    roster is kept, marked inactive (updateMembership with active "false", as `record` holds it), so the
    course keeps the member's history."""

    reason: str = ""


#: Every operation on one kind's records.
PersonOperation: TypeAlias = Create[Person] | Update[Person] | ChangeIdentifier[Person] | Delete[Person]
GroupOperation: TypeAlias = Create[Group] | Update[Group] | ChangeIdentifier[Group] | Delete[Group]
MembershipOperation: TypeAlias = (
    Create[Membership]
    | Update[Membership]
    | ChangeIdentifier[Membership]
    | Delete[Membership]
    | Deactivate[Membership]
)

#: Operations a run sends whatever `--deletes` says.
ChangeOperation: TypeAlias = Create[Record] | Update[Record] | ChangeIdentifier[Record]
#: Deletion candidates: sent only as `--deletes` allows.
DeleteOperation: TypeAlias = Delete[Record]
Operation: TypeAlias = ChangeOperation | DeleteOperation | Deactivate[Record]


class DeletesMode(StrEnum):
    """What a run does with deletion candidates (`--deletes`)."""

    OFF = "off"  # nothing is deleted; candidates are listed
    DEACTIVATE = "deactivate"  # memberships are deactivated; persons and groups are kept
    DELETE = "delete"  # memberships, then groups (children first), then persons are deleted
