"""The plans of the sample sets in a plain, stable form, for `test_plan_golden` (and to rewrite its file).

`python -m tests.plan_golden` rewrites tests/golden/sample_plans.txt from the code on the path (one line
per operation, deletion, reject, conflict and count): do that only when a plan is meant to change, and
say why in the commit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from sync.models import Group, Membership, Person, Plan
from sync.models.kinds import KINDS
from sync.plan.diff import DiffPolicy, Snapshots, apply_plan, empty_snapshot, plan_set
from sync.read.roster_set import RosterSet, read_roster_set

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
GOLDEN = ROOT / "tests" / "golden" / "sample_plans.txt"

#: name: (roster, mapping)
SETS = {
    "oneroster": ("oneroster", "oneroster"),
    "oneroster-changed": ("oneroster-changed", "oneroster"),
    "guardians": ("oneroster-guardians", "oneroster"),
    "sds": ("sds", "sds"),
    "users": ("oneroster/users.csv", "oneroster-users"),
    "users-changed": ("oneroster/users-changed.csv", "oneroster-users"),
}
#: (roster, the set whose first night left the snapshot ("" = empty), detect identifier changes)
CASES = (
    ("guardians", "", True),
    ("sds", "", True),
    ("oneroster-changed", "oneroster", True),
    ("oneroster-changed", "oneroster", False),
    ("sds", "guardians", True),
    ("users-changed", "users", True),
    ("users", "users-changed", False),
)


def _read(name: str) -> RosterSet:
    folder, mapping = SETS[name]
    return read_roster_set(SAMPLES / folder, mapping)


def _plan(roster: RosterSet, snapshots: Snapshots, detect: bool = True) -> Plan:
    return plan_set(
        roster.persons,
        snapshots,
        groups=roster.groups,
        memberships=roster.memberships,
        policy=DiffPolicy(detect_identifier_changes=detect),
    )


def _plain(item: Any) -> Any:
    """An operation, deletion, reject or conflict as a JSON object: its type and fields, a record as a
    dict of its sync key and non-empty fields."""
    out: dict[str, Any] = {"type": type(item).__name__}
    for field in dataclasses.fields(item):
        value = getattr(item, field.name)
        if isinstance(value, Person | Group | Membership):
            value = {"sync_key": value.sync_key, **{k: v for k, v in value.values().items() if v}}
        elif isinstance(value, tuple):
            value = [_plain(v) if dataclasses.is_dataclass(v) else v for v in value]
        out[field.name] = value
    return out


def sample_plans() -> list[str]:
    """Each case's plan, one line per operation, deletion, reject and conflict in order, then the counts."""
    first = {name: _plan(_read(name), Snapshots()) for name in {before for _, before, _ in CASES if before}}
    lines: list[str] = []
    for name, before, detect in CASES:
        snapshots = (
            Snapshots(**{k.plural: apply_plan(empty_snapshot(k), first[before], k) for k in KINDS})
            if before
            else Snapshots()
        )
        plan = _plan(_read(name), snapshots, detect)
        case = f"{name} after {before or 'nothing'}{'' if detect else ', no identity matching'}"
        for what in ("operations", "deletions", "rejects", "conflicts"):
            lines.extend(
                # (a reject names its file by its path: the checkout's own place is left out)
                f"{case}\t{json.dumps(_plain(item), ensure_ascii=False)}".replace(f"{SAMPLES}/", "samples/")
                for item in getattr(plan, what)
            )
        counts = {"unchanged": plan.unchanged_by, "snapshot": plan.snapshot_sizes}
        lines.append(f"{case}\t{json.dumps(counts, sort_keys=True)}")
    return lines


if __name__ == "__main__":
    GOLDEN.write_text("".join(f"{line}\n" for line in sample_plans()), encoding="utf-8")
