"""Safety limits: a plan that would change or delete too much of the snapshot is stopped before sending.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sync.models import Create, Deactivate, Delete, DeletesMode, Operation, Plan
from sync.models.kinds import Kind, kind_of
from sync.models.plans import REPORTED_KINDS
from sync.plan.ordering import deletion_operations

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


def check_limits(
    plan: Plan, limits: SafetyLimits, *, deletes: bool | DeletesMode, sent: Sequence[Operation] | None = None
) -> list[Breach]:
    """The limits `plan` breaches (empty when it may run).

    Persons, groups and memberships are each measured against their own snapshot. Deletions count
    only when the run sends them: all of them under `delete` (or True), memberships only under
    `deactivate` (deactivating is also a removal from the course, and as easy to get wrong in bulk).
    `sent`, when given, is what the run sends (after `--only` and pause windows): only it is counted.
    """
    mode = (
        deletes if isinstance(deletes, DeletesMode) else (DeletesMode.DELETE if deletes else DeletesMode.OFF)
    )
    if sent is None:
        sent = [*plan.operations, *deletion_operations(plan.deletions, mode)]
    removals = [op for op in sent if isinstance(op, (Delete, Deactivate))]
    # Updates and identifier changes, by kind.
    changed = Counter(kind_of(op).name for op in sent if not isinstance(op, (Create, Delete, Deactivate)))
    # What the run sends of the deletion candidates, by kind.
    removed = Counter(kind_of(op).name for op in removals)
    breaches: list[Breach] = []
    for kind in REPORTED_KINDS:
        size = plan.snapshot_size_of(kind)
        limit = _limit(limits, size)
        changes = changed[kind.name]
        if changes > limit and changes > limits.accept_changes:
            breaches.append(_breach(kind, "changes", changes, limit, size))
        count = removed[kind.name]
        if count > limit and count > limits.accept_deletes:
            verb = "deactivate" if mode is DeletesMode.DEACTIVATE else ""  # (only memberships, then)
            breaches.append(_breach(kind, "deletes", count, limit, size, verb=verb))
    return breaches


def _breach(kind: Kind, what: str, count: int, limit: int, size: int, *, verb: str = "") -> Breach:
    flag = "--accept-changes" if what == "changes" else "--accept-deletes"
    return Breach(
        kind=what, count=count, limit=limit, snapshot_size=size, flag=flag, noun=kind.plural, verb=verb
    )
