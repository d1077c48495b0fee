"""A plan: the operations of a run plus what was set aside (rejects, conflicts), and its counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Final

from sync.models.kinds import GROUP, KINDS, MEMBERSHIP, PERSON, Kind
from sync.models.operations import ChangeOperation, DeleteOperation
from sync.models.schools import Schools

__all__ = ["REPORTED_KINDS", "Conflict", "Plan", "PlanSummary", "Reject", "count_name"]

#: The kinds in the order summaries, rejects, conflicts and safety limits list them: persons first (a
#: plan of persons only reads as it always did), then groups, then memberships.
REPORTED_KINDS: Final = (PERSON, GROUP, MEMBERSHIP)


_RECORD: Final = attrgetter("record")


def count_name(kind: Kind, count: str) -> str:
    """The name of a Plan's or PlanSummary's count of `kind`: "unchanged", "group_snapshot_size", ..."""
    return f"{kind.summary_prefix}{count}"


def _snake(op_type: str) -> str:
    """An operation type's count name: "changeIdentifier" -> "change_identifier"."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in op_type)


def _camel(name: str) -> str:
    """A PlanSummary field's JSON name: "group_change_identifier" -> "groupChangeIdentifier";
    "group_snapshot_size" -> "groupSnapshot"."""
    first, *rest = name.removesuffix("_size").split("_")
    return first + "".join(word.title() for word in rest)


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
        """The summary under the names the JSON report uses (create, groupCreate, membershipSnapshot, ...),
        in the order of the fields above."""
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a run would do: ordered operations plus what was set aside.

    `operations` holds creates, changeIdentifiers and updates in execution order: groups (parents
    before children), then persons, then memberships. `deletions` holds deletion candidates in
    execution order (memberships, then groups children first, then persons), listed always and
    executed only as `--deletes` allows. The `group_*` and `membership_*` counts are 0 for a plan of
    persons only. `schools` tells which school(s) each of its objects belongs to (empty without
    groups); it derives from the same inputs, so it takes no part in comparisons, the repr or reports
    other than the per-school ones.
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
    schools: Schools = field(default_factory=Schools, compare=False, repr=False)

    def unchanged_of(self, kind: Kind) -> int:
        """How many records of `kind` the plan leaves as they are."""
        return int(getattr(self, count_name(kind, "unchanged")))

    def snapshot_size_of(self, kind: Kind) -> int:
        """How many records of `kind` the snapshot held."""
        return int(getattr(self, count_name(kind, "snapshot_size")))

    @property
    def summary(self) -> PlanSummary:
        """Counts by kind."""
        every = (*self.operations, *self.deletions)
        # Counted by (operation class, record class) at C speed: a first night holds 10^5-10^6 of them.
        counted = Counter(zip(map(type, every), map(type, map(_RECORD, every)), strict=True))
        counts = {"rejected": len(self.rejects), "conflicts": len(self.conflicts)}
        for kind in KINDS:
            # (no deactivations: a plan holds none, a run makes them of deletion candidates)
            for op_type, op_class in kind.typed_operations:
                if op_type != "deactivate":
                    counts[count_name(kind, _snake(op_type))] = counted[op_class, kind.record]
            counts[count_name(kind, "unchanged")] = self.unchanged_of(kind)
            counts[count_name(kind, "snapshot_size")] = self.snapshot_size_of(kind)
        return PlanSummary(**counts)

    @property
    def empty(self) -> bool:
        """True when there is nothing to send (deletions excluded)."""
        return not self.operations
