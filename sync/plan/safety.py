"""Safety limits: a plan that would change or delete too much of the snapshot is stopped before sending."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sync.models import (
    ChangeGroupIdentifier,
    ChangeIdentifier,
    ChangeMembershipIdentifier,
    Delete,
    DeleteGroup,
    DeleteMembership,
    DeletesMode,
    Plan,
    Update,
    UpdateGroup,
    UpdateMembership,
)

__all__ = ["DEFAULT_LIMITS", "Breach", "SafetyLimits", "check_limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyLimits:
    """How much of the snapshot one run may change or delete without the operator's explicit consent.

    A kind of change breaches when its count exceeds `min(max_count, max(floor, ceil(share * snapshot)))`:
    a share of the snapshot, never less than `floor` (small schools) nor more than `max_count`.
    """

    max_share: float = 0.10
    max_count: int = 500
    floor: int = 10
    accept_changes: int = 0  # the operator accepts up to this many updates + identifier changes
    accept_deletes: int = 0  # the operator accepts up to this many deletions


DEFAULT_LIMITS = SafetyLimits()


@dataclass(frozen=True, slots=True, kw_only=True)
class Breach:
    """One limit a plan exceeds."""

    kind: str  # "changes" or "deletes"
    count: int
    limit: int
    snapshot_size: int
    flag: str  # the flag that accepts it
    noun: str = "persons"  # what is changed: persons, groups or memberships
    verb: str = ""  # what happens to them ("" = update or re-identify / delete by kind)

    def message(self) -> str:
        """What an operator reads: which limit, by how much, and how to accept it."""
        share = (
            f" ({self.count / self.snapshot_size:.1%} of {self.snapshot_size:,})"
            if self.snapshot_size
            else ""
        )
        what = self.verb or ("update or re-identify" if self.kind == "changes" else "delete")
        return (
            f"the plan would {what} {self.count:,} {self.noun}{share}, over the safety limit of "
            f"{self.limit:,} by {self.count - self.limit:,}; nothing was sent. Review it with "
            f"`ims-sync plan`, then accept it with {self.flag} {self.count}"
        )


def _limit(limits: SafetyLimits, snapshot_size: int) -> int:
    return min(limits.max_count, max(limits.floor, math.ceil(limits.max_share * snapshot_size)))


def check_limits(plan: Plan, limits: SafetyLimits, *, deletes: bool | DeletesMode) -> list[Breach]:
    """The limits `plan` breaches (empty when it may run).

    Persons, groups and memberships are each measured against their own snapshot. Deletions count
    only when the run sends them: all of them under `delete` (or True), memberships only under
    `deactivate` (deactivating is also a removal from the course, and as easy to get wrong in bulk).
    """
    mode = (
        deletes if isinstance(deletes, DeletesMode) else (DeletesMode.DELETE if deletes else DeletesMode.OFF)
    )
    ops, gone = plan.operations, plan.deletions
    kinds = (
        ("persons", plan.snapshot_size, (Update, ChangeIdentifier), Delete, mode is DeletesMode.DELETE),
        (
            "groups",
            plan.group_snapshot_size,
            (UpdateGroup, ChangeGroupIdentifier),
            DeleteGroup,
            mode is DeletesMode.DELETE,
        ),
        (
            "memberships",
            plan.membership_snapshot_size,
            (UpdateMembership, ChangeMembershipIdentifier),
            DeleteMembership,
            mode is not DeletesMode.OFF,
        ),
    )
    breaches: list[Breach] = []
    for noun, size, changing, deleting, counted in kinds:
        limit = _limit(limits, size)
        changes = sum(isinstance(op, changing) for op in ops)
        if changes > limit and changes > limits.accept_changes:
            breaches.append(
                Breach(
                    kind="changes",
                    count=changes,
                    limit=limit,
                    snapshot_size=size,
                    flag="--accept-changes",
                    noun=noun,
                )
            )
        removed = sum(isinstance(op, deleting) for op in gone)
        if noun == "memberships" and mode is DeletesMode.DEACTIVATE:
            removed = sum(isinstance(op, DeleteMembership) and op.membership.active != "false" for op in gone)
        if counted and removed > limit and removed > limits.accept_deletes:
            verb = "deactivate" if noun == "memberships" and mode is DeletesMode.DEACTIVATE else ""
            breaches.append(
                Breach(
                    kind="deletes",
                    count=removed,
                    limit=limit,
                    snapshot_size=size,
                    flag="--accept-deletes",
                    noun=noun,
                    verb=verb,
                )
            )
    return breaches
