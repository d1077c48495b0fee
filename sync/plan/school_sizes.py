"""How many persons and memberships each school holds in the snapshot: what the per-school safety
limits (`sync.plan.safety`) measure a school's changes against.

The attribution is `sync.plan.schools`' (a group's nearest School up its parent chain; a membership
at its group's schools; a person at the schools of every group they are a member of): this room only
counts the snapshot's memberships and distinct persons by it, column-wise.

Pure: imports no I/O (no sqlite3, zeep, requests, files, clocks, logging); values in, values out.
"""

from __future__ import annotations

import pandas as pd

from sync.models.kinds import MEMBERSHIP, PERSON
from sync.models.schools import Schools
from sync.plan.safety import SchoolCounts
from sync.plan.schools import _group_schools  # the attribution of groups to schools, not repeated here

__all__ = ["school_counts"]


def school_counts(schools: Schools, groups: pd.DataFrame, memberships: pd.DataFrame) -> SchoolCounts | None:
    """The per-school limits' measure for a plan with `schools` (None for a plan without schools):
    each school's persons and memberships in the snapshot (`groups`, `memberships`: its frames)."""
    if not schools:
        return None
    group_schools, _ = _group_schools((groups,))
    school_of = pd.DataFrame(
        [(group, school) for group, found in group_schools.items() for school in found],
        columns=["group", "school"],
    )
    pairs = pd.DataFrame(
        {"group": memberships["group"].to_numpy(), "person": memberships["person"].to_numpy()}
    )
    at = pairs.merge(school_of, on="group", how="inner", sort=False)
    sizes: dict[tuple[str, str], int] = {}
    for kind, frame in ((MEMBERSHIP, at), (PERSON, at.drop_duplicates(["school", "person"]))):
        counts = frame.groupby("school", sort=False).size()
        sizes |= {(str(school), kind.name): int(n) for school, n in counts.items()}
    return SchoolCounts(of=schools.of_operation, sizes=sizes, names=dict(schools.names))
