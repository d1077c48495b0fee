"""Safety limits: the operations of a kind and type (and, per school, of a school) that would change or
delete too much of the snapshot are held; the rest of the plan is sent.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
The limits' settings (`--limit`, `[limits]`) are `sync.plan.limits`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter
from typing import Final

from sync.models import DeletesMode, Operation, Plan
from sync.models.blocks import Ops, runs
from sync.models.kinds import OperationType, kind_of, operation_type
from sync.models.plans import REPORTED_KINDS, count_operations, kind_and_type
from sync.plan.limits import LIMITED_TYPES, SCHOOL, SCHOOL_FLOOR, SCHOOL_KINDS, SCHOOL_SHARE, Bound, Rule
from sync.plan.ordering import deletion_operations

__all__ = [
    "DEFAULT_LIMITS",
    "LIMIT_REASON",
    "Breach",
    "SafetyLimits",
    "SchoolCounts",
    "SchoolsOf",
    "breaching",
    "check_limits",
]

#: The schools an operation's object belongs to (`sync.models.schools.Schools.of_operation`).
SchoolsOf = Callable[[Operation], Iterable[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SchoolCounts:
    """What the per-school limits measure against: each operation's schools, each school's snapshot
    count of persons and of memberships ((school key, kind name) -> count), and its name."""

    of: SchoolsOf
    sizes: Mapping[tuple[str, str], int]
    names: Mapping[str, str]
    #: Each kind's objects' schools by sync key (`Schools.objects`, what `of` answers from), when given:
    #: the per-school counts then look a run of operations up at C speed instead of asking `of` each one.
    objects: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None

    def of_run(self, run: Iterable[Operation], kind: str, op_type: OperationType) -> Iterable[Iterable[str]]:
        """The schools of each operation of `run` (all of `kind` and `op_type`)."""
        if self.objects is None or op_type == "changeIdentifier":  # (of the old key and the new)
            return map(self.of, run)
        return map(self.objects.get(kind, {}).get, map(_SYNC_KEY, run), repeat(()))


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyLimits:
    """How much of the snapshot one run may change or delete without the operator's explicit consent.

    Without a rule (`rules`, see `sync.plan.limits`), a kind's updates, identifier changes, deletions
    and deactivations each breach when their count exceeds `min(max_count, max(floor, ceil(max_share *
    snapshot)))`; a school's, when their count at the school exceeds `max(SCHOOL_FLOOR, ceil(share *
    the school's snapshot))`, the share `SCHOOL_SHARE` or `max_share` when more (`max_share` 1: none).
    A breach whose count is at most `accept_changes` (updates, identifier changes) or `accept_deletes`
    (deletions, deactivations) is accepted.
    """

    max_share: float = 0.10
    max_count: int = 500
    floor: int = 10
    accept_changes: int = 0  # the operator accepts up to this many updates, and identifier changes
    accept_deletes: int = 0  # the operator accepts up to this many deletions (or deactivations)
    rules: tuple[Rule, ...] = ()  # --limit flags and the config file's [limits], in the order given

    def bound(self, scope: str, op_type: str) -> Bound:
        """The bound on `op_type` operations of `scope` (a kind's name, or SCHOOL)."""
        matching = [
            (rule.rank(), n, rule) for n, rule in enumerate(self.rules) if rule.matches(scope, op_type)
        ]
        if matching:
            return max(matching, key=lambda m: m[:2])[2].bound
        if op_type not in LIMITED_TYPES:
            return Bound()
        if scope != SCHOOL:
            return Bound(share=self.max_share)
        # A school's default share is never below the kind's, and `--max-change-share 1` (anything may
        # change) lifts it: what a site that turned the limits off relies on.
        return Bound() if self.max_share >= 1 else Bound(share=max(SCHOOL_SHARE, self.max_share))

    def accepted(self, op_type: str) -> int:
        """How many operations of `op_type` the operator accepted (--accept-changes, --accept-deletes)."""
        if op_type in ("update", "changeIdentifier"):
            return self.accept_changes
        return self.accept_deletes if op_type in ("delete", "deactivate") else 0


DEFAULT_LIMITS = SafetyLimits()
_SYNC_KEY: Final = attrgetter("record.sync_key")  # (an identifier change is asked of `of`: its old key too)
#: How a held operation's reason starts when a limit holds it.
LIMIT_REASON: Final = "held: safety limit"

_VERBS = {
    "create": "create",
    "update": "update",
    "changeIdentifier": "re-identify",
    "delete": "delete",
    "deactivate": "deactivate",
}
_FLAGS = {"update": "--accept-changes", "changeIdentifier": "--accept-changes"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Breach:
    """One limit a plan exceeds: the operations of `object` and `op_type` (at `school`, when set)."""

    kind: str  # "changes", "deletes" or "creates" (as the `safety_limit` event names it)
    count: int
    limit: int
    snapshot_size: int
    flag: str  # the flag that accepts it ("--limit KEY=N" for a type no --accept-* flag takes)
    noun: str = "persons"  # what is changed: persons, groups or memberships
    verb: str = ""  # what happens to them
    object: str = "person"  # the kind's name
    op_type: str = "update"
    school: str = ""  # the school's sync key, for a per-school limit
    school_name: str = ""

    @property
    def key(self) -> str:
        """The limit's `--limit` key: "person.delete", "school.update"."""
        return f"{SCHOOL if self.school else self.object}.{self.op_type}"

    def covers(self, op: Operation, schools_of: SchoolsOf | None) -> bool:
        """Whether `op` is one of the operations this breach holds."""
        if kind_of(op).name != self.object or operation_type(op) != self.op_type:
            return False
        return not self.school or (schools_of is not None and self.school in schools_of(op))

    def message(self) -> str:
        """What an operator reads: which limit, by how much, that they are held, and how to accept them."""
        at = " at the school" if self.school else ""
        share = (
            f" ({self.count / self.snapshot_size:.1%} of {self.snapshot_size:,}{at})"
            if self.snapshot_size
            else ""
        )
        school = f"school {self.school_name or self.school} ({self.school}): " if self.school else ""
        over = (
            f"over the school limit of {self.limit:,}"
            if self.school
            else f"over the safety limit of {self.limit:,}"
        )
        return (
            f"{school}the plan would {self.verb} {self.count:,} {self.noun}{share}, {over} ({self.key}) "
            f"by {self.count - self.limit:,}; these are held, the rest is "
            f"sent. Review them with `ims-sync plan`, then accept them with {self.release()}"
        )

    def reason(self) -> str:
        """A held operation's reason: the limit and the counts."""
        at = f" at school {self.school}" if self.school else ""
        return f"{LIMIT_REASON} {self.key}{at}: {self.count:,} over {self.limit:,}"

    def release(self) -> str:
        """What releases the operations it holds (besides `--approve`)."""
        return f"{self.flag}{self.count}" if self.flag.endswith("=") else f"{self.flag} {self.count}"


def check_limits(
    plan: Plan,
    limits: SafetyLimits,
    *,
    deletes: bool | DeletesMode,
    sent: Sequence[Operation] | None = None,
    schools: SchoolCounts | None = None,
) -> list[Breach]:
    """The limits `plan` breaches (empty when all of it may be sent).

    Each kind's operations of each type are measured against the kind's snapshot; then, with `schools`,
    each school's persons' and memberships' operations of each type (those no kind-level breach holds
    already) against the school's snapshot. Deletions count only when the run sends them: all of them
    under `delete` (or True), memberships' deactivations under `deactivate`. `sent`, when given, is what
    the run sends (after `--only` and pause windows): only it is counted.
    """
    mode = (
        deletes if isinstance(deletes, DeletesMode) else (DeletesMode.DELETE if deletes else DeletesMode.OFF)
    )
    if sent is None:
        sent = Ops(plan.operations, deletion_operations(plan.deletions, mode))
    counts = count_operations(sent)
    breaches: list[Breach] = []
    for kind in REPORTED_KINDS:
        size = plan.snapshot_size_of(kind)
        for op_type, _ in kind.typed_operations:
            limit = limits.bound(kind.name, op_type).of(size, floor=limits.floor, cap=limits.max_count)
            count = counts[kind.name, op_type]
            if limit is not None and count > limit and count > limits.accepted(op_type):
                breaches.append(_breach(kind.name, kind.plural, op_type, count, limit, size))
    if schools is not None:
        held = {(b.object, b.op_type) for b in breaches}
        breaches += _school_breaches(sent, held, limits, schools)
    return breaches


def _school_breaches(
    sent: Sequence[Operation], held: set[tuple[str, str]], limits: SafetyLimits, schools: SchoolCounts
) -> list[Breach]:
    """The per-school breaches among `sent` (persons' and memberships' operations, but those of the
    (kind, type) pairs `held` already), counted run by run of one operation and record class."""
    counts: Counter[tuple[str, str, OperationType]] = Counter()
    for classes, run in runs(sent):
        kind, op_type = kind_and_type(classes)
        # (a type no school limit bounds, as creates by default, is not counted: a first night's 10^5)
        if kind in SCHOOL_KINDS and (kind, op_type) not in held and limits.bound(SCHOOL, op_type) != Bound():
            at = Counter(chain.from_iterable(schools.of_run(run, kind, op_type)))
            counts.update({(school, kind, op_type): n for school, n in at.items()})
    breaches: list[Breach] = []
    for (school, kind, op_type), count in sorted(counts.items()):
        size = schools.sizes.get((school, kind), 0)
        limit = limits.bound(SCHOOL, op_type).of(size, floor=SCHOOL_FLOOR)
        if limit is not None and count > limit and count > limits.accepted(op_type):
            breach = _breach(kind, f"{kind}s", op_type, count, limit, size)
            name = schools.names.get(school, school)
            breaches.append(dataclasses.replace(breach, school=school, school_name=name))
    return breaches


def _breach(kind: str, noun: str, op_type: OperationType, count: int, limit: int, size: int) -> Breach:
    what = (
        "creates" if op_type == "create" else "deletes" if op_type in ("delete", "deactivate") else "changes"
    )
    flag = _FLAGS.get(op_type, "--accept-deletes" if what == "deletes" else f"--limit {kind}.{op_type}=")
    return Breach(
        kind=what,
        count=count,
        limit=limit,
        snapshot_size=size,
        flag=flag,
        noun=noun,
        verb=_VERBS[op_type],
        object=kind,
        op_type=op_type,
    )


def breaching(
    sent: Sequence[Operation], breaches: Sequence[Breach], schools: SchoolCounts | None = None
) -> tuple[Sequence[Operation], list[tuple[Operation, Breach]]]:
    """Split `sent` into what is still sent and what `breaches` hold (each with the breach holding it)."""
    by_type: dict[tuple[str, str], list[Breach]] = {}
    for breach in breaches:
        by_type.setdefault((breach.object, breach.op_type), []).append(breach)
    of = schools.of if schools is not None else None
    send: list[Sequence[Operation]] = []
    held: list[tuple[Operation, Breach]] = []
    for classes, run in runs(sent):
        covering = by_type.get(kind_and_type(classes))
        if not covering:  # (a run no breach covers stays whole: a block of creates is not walked)
            send.append(run)
            continue
        kept: list[Operation] = []
        for op in run:
            holding = next((b for b in covering if b.covers(op, of)), None)
            if holding is None:
                kept.append(op)
            else:
                held.append((op, holding))
        send.append(kept)
    return Ops(*send), held
