"""A plan: the operations of a run plus what was set aside (rejects, conflicts), and its counts."""

from __future__ import annotations

from dataclasses import dataclass

from sync.models.operations import (
    ChangeGroupIdentifier,
    ChangeIdentifier,
    ChangeMembershipIdentifier,
    ChangeOperation,
    Create,
    CreateGroup,
    CreateMembership,
    Delete,
    DeleteGroup,
    DeleteMembership,
    DeleteOperation,
    Update,
    UpdateGroup,
    UpdateMembership,
)


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
