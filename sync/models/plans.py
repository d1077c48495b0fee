"""A plan: the operations of a run plus what was set aside (rejects, conflicts), and its counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final

from sync.models.blocks import Ops, runs
from sync.models.kinds import GROUP, KINDS, MEMBERSHIP, PERSON, Kind, OperationType
from sync.models.operations import ChangeOperation, DeleteOperation, Operation
from sync.models.schools import Schools

__all__ = [
    "REPORTED_KINDS",
    "SUMMARY_NAMES",
    "Conflict",
    "Plan",
    "PlanSummary",
    "Reject",
    "classes_of",
    "count_name",
    "count_operations",
    "kind_and_type",
]

#: The kinds in the order summaries, rejects, conflicts and safety limits list them: persons first (a
#: plan of persons only reads as it always did), then groups, then memberships.
REPORTED_KINDS: Final = (PERSON, GROUP, MEMBERSHIP)


#: Each record class's kind name and each operation class's type (as `kind_of`, `operation_type` tell).
_KIND_NAMES: Final[dict[type, str]] = {kind.record: kind.name for kind in KINDS}
_TYPE_NAMES: Final[dict[type, OperationType]] = {
    op_class: op_type for kind in KINDS for op_type, op_class in kind.typed_operations
}


#: An operation's class and its record's: what tells its kind and type (`kind_and_type`).
classes_of: Final = attrgetter("__class__", "record.__class__")


def kind_and_type(classes: tuple[type, type]) -> tuple[str, OperationType]:
    """The kind (by name) and operation type of operations of these `classes_of`."""
    return _KIND_NAMES[classes[1]], _TYPE_NAMES[classes[0]]


def count_operations(operations: Sequence[Operation]) -> Counter[tuple[str, OperationType]]:
    """How many of `operations` there are of each kind (by name) and operation type.

    Counted run by run of one (operation class, record class) pair (`runs`): a block by its length, a
    run of objects grouped at C speed (asking each one's kind and type took 4 s per 10^6).
    """
    counts: Counter[tuple[str, OperationType]] = Counter()
    for classes, run in runs(operations):
        counts[kind_and_type(classes)] += len(run)
    return counts


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


#: What a summary counts of every kind (after the kind's `summary_prefix`), in the reports' order; the
#: plan-wide "rejected" and "conflicts" follow persons' changes (where a plan of persons only had them).
_CHANGE_COUNTS: Final = ("create", "update", "change_identifier", "delete")
_KEPT_COUNTS: Final = ("unchanged", "snapshot_size")
SUMMARY_NAMES: Final = tuple(
    name
    for kind in REPORTED_KINDS
    for name in (
        *(count_name(kind, count) for count in _CHANGE_COUNTS),
        *(("rejected", "conflicts") if kind is PERSON else ()),
        *(count_name(kind, count) for count in _KEPT_COUNTS),
    )
)


@dataclass(frozen=True, slots=True)
class PlanSummary(Mapping[str, int]):
    """Counts of a plan, as the reports show them, by name (`SUMMARY_NAMES`: `count_name` of a kind's
    create, update, change_identifier, delete, unchanged and snapshot_size, plus rejected and
    conflicts). The unprefixed counts are about persons."""

    counts: Mapping[str, int]

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)

    def of(self, kind: Kind, count: str) -> int:
        """`kind`'s count named `count` (without the kind's prefix): `of(GROUP, "create")`."""
        return self.counts[count_name(kind, count)]

    def as_dict(self) -> dict[str, int]:
        """The summary under the names the JSON report uses (create, groupCreate, membershipSnapshot, ...),
        in `SUMMARY_NAMES` order."""
        return {_camel(name): self.counts[name] for name in SUMMARY_NAMES}


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a run would do: ordered operations plus what was set aside.

    `operations` holds creates, changeIdentifiers and updates in execution order: groups (parents
    before children), then persons, then memberships. `deletions` holds deletion candidates in
    execution order (memberships, then groups children first, then persons), listed always and
    executed only as `--deletes` allows. `unchanged_by` and `snapshot_sizes` count by kind name (a
    plan of persons only has no group or membership counts: 0). `schools` tells which school(s) each of
    its objects belongs to (empty without groups); it derives from the same inputs, so it takes no part
    in comparisons, the repr or reports other than the per-school ones.
    """

    operations: Sequence[ChangeOperation]  # a tuple, or `Ops` (creates kept as columns)
    deletions: Sequence[DeleteOperation]
    rejects: tuple[Reject, ...]
    conflicts: tuple[Conflict, ...]
    unchanged_by: Mapping[str, int] = field(default_factory=dict)  # by kind name; a kind not there: 0
    snapshot_sizes: Mapping[str, int] = field(default_factory=dict)  # by kind name; a kind not there: 0
    schools: Schools = field(default_factory=Schools, compare=False, repr=False)
    # The summary, counted on first use (reports read it several times; a first night counts 10^6 items).
    _summary: PlanSummary | None = field(default=None, init=False, compare=False, repr=False)

    def unchanged_of(self, kind: Kind) -> int:
        """How many records of `kind` the plan leaves as they are."""
        return self.unchanged_by.get(kind.name, 0)

    def snapshot_size_of(self, kind: Kind) -> int:
        """How many records of `kind` the snapshot held."""
        return self.snapshot_sizes.get(kind.name, 0)

    @property
    def summary(self) -> PlanSummary:
        """Counts by kind (counted once: a Plan is immutable)."""
        summary = self._summary
        if summary is None:
            summary = self._count()
            object.__setattr__(self, "_summary", summary)
        return summary

    def _count(self) -> PlanSummary:
        counted = count_operations(Ops(self.operations, self.deletions))
        counts = {"rejected": len(self.rejects), "conflicts": len(self.conflicts)}
        for kind in KINDS:
            # (no deactivations: a plan holds none, a run makes them of deletion candidates)
            for op_type, _ in kind.typed_operations:
                if op_type != "deactivate":
                    counts[count_name(kind, _snake(op_type))] = counted[kind.name, op_type]
            counts[count_name(kind, "unchanged")] = self.unchanged_of(kind)
            counts[count_name(kind, "snapshot_size")] = self.snapshot_size_of(kind)
        return PlanSummary({name: counts[name] for name in SUMMARY_NAMES})

    @property
    def empty(self) -> bool:
        """True when there is nothing to send (deletions excluded)."""
        return not self.operations
