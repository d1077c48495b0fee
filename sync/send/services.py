"""What the executor needs of the IMS ES clients: one protocol per service (PMS, GMS, MMS).

`sync.ims.clients`' PersonClient, GroupClient and MembershipClient are these; tests may pass
their own. Only types: it sends nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sync.ims.exchange import MassReply
from sync.models import Group, Membership, Person, Status

__all__ = ["GroupService", "MembershipService", "PersonService"]


class PersonService(Protocol):
    """What the executor needs of an IMS ES PMS client (`sync.ims.clients.PersonClient` is one)."""

    def create_person(self, person: Person, *, password: str = "", message_id: str | None = None) -> Status:
        """createPerson."""
        ...

    def update_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """updatePerson."""
        ...

    def replace_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """replacePerson."""
        ...

    def delete_person(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deletePerson."""
        ...

    def read_person(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Person | None]:
        """readPerson."""
        ...

    def change_person_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changePersonIdentifier."""
        ...

    def create_persons(
        self, items: Sequence[tuple[Person, str]], *, message_id: str | None = None
    ) -> MassReply:
        """createPersons: one request, one status per item."""
        ...


class GroupService(Protocol):
    """What the executor needs of an IMS ES GMS client (`sync.ims.clients.GroupClient` is one)."""

    def create_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """createGroup."""
        ...

    def update_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """updateGroup."""
        ...

    def delete_group(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteGroup."""
        ...

    def read_group(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Group | None]:
        """readGroup."""
        ...

    def change_group_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changeGroupIdentifier."""
        ...

    def create_groups(self, groups: Sequence[Group], *, message_id: str | None = None) -> MassReply:
        """createGroups: one request, one status per item."""
        ...


class MembershipService(Protocol):
    """What the executor needs of an IMS ES MMS client (`sync.ims.clients.MembershipClient` is one)."""

    def create_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """createMembership."""
        ...

    def update_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """updateMembership."""
        ...

    def delete_membership(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteMembership."""
        ...

    def read_membership(
        self, sync_key: str, *, message_id: str | None = None
    ) -> tuple[Status, Membership | None]:
        """readMembership."""
        ...

    def create_memberships(
        self, memberships: Sequence[Membership], *, message_id: str | None = None
    ) -> MassReply:
        """createMemberships: one request, one status per item."""
        ...

    def delete_memberships(self, sync_keys: Sequence[str], *, message_id: str | None = None) -> MassReply:
        """deleteMemberships: one request, one status per item."""
        ...

    def change_membership_identifier(
        self, old_id: str, new_id: str, *, message_id: str | None = None
    ) -> Status:
        """changeMembershipIdentifier."""
        ...
