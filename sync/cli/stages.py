"""The pipeline's stages as the commands call them: read the roster, check its references, load the
snapshot, plan, describe a report.

Each stage is imported when a command calls it (pandas, the state store), so `--help`, `mapping list`
and the emulator start fast.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from sync import __version__
from sync.cli.options import LISTED_KINDS
from sync.cli.output import EXIT_USAGE, fail, notice, now_iso
from sync.models import Plan

__all__ = [
    "checked",
    "from_drift",
    "has_state",
    "meta",
    "plan",
    "read",
    "refuse_shrunk",
    "school_counts",
    "select",
    "snapshots",
]


def read(roster_path: Path, mapping_name: str) -> Any:
    """The roster set: persons, and groups and memberships when the mapping is a set mapping."""
    from sync.read.roster_set import read_roster_set  # noqa: PLC0415 - pandas only for commands that need it

    return read_roster_set(roster_path, mapping_name)


def checked(roster: Any) -> Any:
    """The roster set with the references between its files checked (sync.plan.links), as a plan does;
    without group files, enrolments' groups live in IMS ES and only a plan (with the state) checks them."""
    import dataclasses  # noqa: PLC0415

    from sync.plan.links import check_references  # noqa: PLC0415

    groups, memberships = check_references(
        roster.persons, roster.groups, roster.memberships, snapshot_groups=None
    )
    return dataclasses.replace(roster, groups=groups, memberships=memberships)


def refuse_shrunk(roster: Any, runs: list[Any], *, accepted: bool) -> None:
    """Before planning: refuse (exit 2) roster files with no data rows, or with more than half fewer
    than the last successful run read, unless the operator `accepted` them.

    The last successful run is the last `run` in `runs` (the journal's, oldest first) that went to the
    end: status ok or partial, not stopped or failed. Without one (or one that recorded no counts, from
    an older version), only a file with no data rows is refused.
    """
    from sync.plan.shrinkage import check_shrinkage  # noqa: PLC0415

    done = [run for run in runs if run.command == "run" and run.status in ("ok", "partial")]
    refused = check_shrinkage(roster.file_rows, done[-1].roster_rows if done else None)
    if refused and not accepted:
        fail(EXIT_USAGE, "\n".join(shrunk.message() for shrunk in refused))
    for shrunk in refused:
        notice("shrunk_roster_accepted", shrunk.message(accepted=True), file=shrunk.file)


def snapshots(store: Any) -> Any:
    """Every kind's snapshot frame, as the state store holds it."""
    from sync.plan.diff import Snapshots  # noqa: PLC0415

    return Snapshots(**{kind.plural: store.load(kind) for kind in LISTED_KINDS})


def plan(roster: Any, snapshots: Any) -> Plan:
    from sync.plan.diff import plan_set  # noqa: PLC0415

    return plan_set(roster.persons, snapshots, groups=roster.groups, memberships=roster.memberships)


def school_counts(the_plan: Plan, snapshots: Any) -> Any:
    """What the per-school limits measure against (None for a plan without schools)."""
    from sync.models import ChangeIdentifier  # noqa: PLC0415
    from sync.models.blocks import runs  # noqa: PLC0415
    from sync.models.kinds import GROUP  # noqa: PLC0415
    from sync.plan.school_sizes import school_counts as counts  # noqa: PLC0415

    if not the_plan.schools:
        return None
    renames = {  # (run by run: a block of creates is not walked)
        op.old_id: op.sync_key
        for shape, run in runs(the_plan.operations)
        if shape == (ChangeIdentifier, GROUP.record)
        for op in run
        if isinstance(op, ChangeIdentifier)  # (as its shape says: for the type checker)
    }
    return counts(the_plan.schools, snapshots.groups, snapshots.memberships, renames)


def from_drift(the_plan: Plan, repairs: list[Any]) -> tuple[Any, ...]:
    """The report rows of the plan's operations that come from drift `verify --repair` recorded."""
    from sync.models import kind_of  # noqa: PLC0415
    from sync.report.meta import DriftRow  # noqa: PLC0415

    if not repairs:  # (most nights: no plan-wide pass over the operations)
        return ()
    repaired = {r.sync_key for r in repairs}
    planned = {(kind_of(op).name, op.sync_key) for op in the_plan.operations if op.sync_key in repaired}
    return tuple(
        DriftRow(object=r.kind, sync_key=r.sync_key, drift=r.drift)
        for r in repairs
        if (r.kind, r.sync_key) in planned
    )


def select(the_plan: Plan, *, deletes: str, only: frozenset[str] | None) -> Any:
    """What a run sends of `the_plan` today: `--only` and the config file's pause windows applied."""
    from sync.models import DeletesMode  # noqa: PLC0415
    from sync.plan.selection import PauseWindow, active_window, select_operations  # noqa: PLC0415

    rows = click.get_current_context().find_root().meta.get("config_options", {}).get("_pause", [])
    windows = [PauseWindow(start=start, end=end, allow=frozenset(allow)) for start, end, allow in rows]
    return select_operations(
        the_plan.operations,
        the_plan.deletions,
        deletes=DeletesMode(deletes),
        only=only,  # type: ignore[arg-type]  # checked against the operation types by --only
        window=active_window(windows, date.today()),  # the machine's local date
    )


def meta(
    title: str, *, roster: Path | None, mapping: str, state: Path, endpoint: str = "", selection: Any = None
) -> Any:
    """What a report says about its run: title, inputs, time, tool version, and what `selection`
    (from `select`) holds back."""
    from sync.report.ops import held_rows  # noqa: PLC0415
    from sync.report.render import ReportMeta  # noqa: PLC0415

    return ReportMeta(
        title=title,
        roster=str(roster or ""),
        mapping=mapping,
        state=str(state),
        generated_at=now_iso(),
        endpoint=endpoint,
        tool_version=__version__,
        sending=selection.describe() if selection is not None else "",
        held=held_rows(selection.held) if selection is not None else (),
    )


def has_state(state: Path) -> bool:
    """Whether anything has run in the state directory (a plan without one plans against nothing)."""
    return (state / "state.sqlite3").exists()
