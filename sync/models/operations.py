"""Plan operations: what the diff asks of IMS ES for one person, group or membership."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from sync.models.records import Group, Membership, Person


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

    @property
    def record(self) -> Person:
        """The person as IMS ES will hold it."""
        return self.person


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

    @property
    def record(self) -> Person:
        """The person as IMS ES will hold it."""
        return self.person


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

    @property
    def record(self) -> Person:
        """The person as IMS ES will hold it."""
        return self.person


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

    @property
    def record(self) -> Group:
        """The group as IMS ES will hold it."""
        return self.group


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

    @property
    def record(self) -> Group:
        """The group as IMS ES will hold it."""
        return self.group


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

    @property
    def record(self) -> Group:
        """The group as IMS ES will hold it."""
        return self.group


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

    @property
    def record(self) -> Membership:
        """The membership as IMS ES will hold it."""
        return self.membership


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateMembership:
    """A membership whose group, person, role or active flag changed: updateMembership."""

    membership: Membership
    changes: tuple[FieldChange, ...]

    @property
    def sync_key(self) -> str:
        """The membership's sync key."""
        return self.membership.sync_key

    @property
    def record(self) -> Membership:
        """The membership as IMS ES will hold it."""
        return self.membership


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

    @property
    def record(self) -> Membership:
        """The membership as IMS ES will hold it."""
        return self.membership


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

    @property
    def record(self) -> Membership:
        """The membership as IMS ES will hold it."""
        return self.membership


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

    @property
    def record(self) -> Membership:
        """The membership as IMS ES will hold it."""
        return self.membership


MembershipOperation: TypeAlias = (
    CreateMembership | UpdateMembership | ChangeMembershipIdentifier | DeleteMembership | DeactivateMembership
)

Operation: TypeAlias = PersonOperation | GroupOperation | MembershipOperation


class DeletesMode(StrEnum):
    """What a run does with deletion candidates (`--deletes`)."""

    OFF = "off"  # nothing is deleted; candidates are listed
    DEACTIVATE = "deactivate"  # memberships are deactivated; persons and groups are kept
    DELETE = "delete"  # memberships, then groups (children first), then persons are deleted


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
