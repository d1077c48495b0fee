"""A plan's and a run's summary for the operator: one line, a rich table on a terminal, what failed.

Written once over the kinds (`sync.models.kinds`) and PlanSummary's per-kind counts; imports no stage.
"""

from __future__ import annotations

from typing import Any, Final

import click

from sync.cli.options import LISTED_KINDS
from sync.cli.output import SHOWN_LINES, Output, notice, rich_table
from sync.models import Kind, Operation, Outcome, Plan, PlanSummary, RunResult, kind_of
from sync.models.kinds import PERSON

__all__ = ["announce_selection", "plan_counts", "print_run_summary", "summary_line"]

# (label, PlanSummary count without the kind's prefix): what every kind counts, in this order.
_CHANGES: Final = (
    ("create", "create"),
    ("update", "update"),
    ("changeIdentifier", "change_identifier"),
    ("deletion candidates", "delete"),
)
_KEPT: Final = (("unchanged", "unchanged"), ("in snapshot", "snapshot_size"))
# Only the unprefixed counts (persons) have rejected rows and conflicts.
_TABLE_ONLY_MAIN: Final = (("conflicts", "conflicts"), ("rejected rows", "rejected"))
_LINE_ONLY_MAIN: Final = (
    ("rejected rows", "rejected"),
    ("conflicts", "conflicts"),
    ("unchanged", "unchanged"),
)

# `--deletes` deactivate or delete: the removal type it does not send, and what each sends.
_OTHER_REMOVAL: Final = {"deactivate": "delete", "delete": "deactivate"}
_REMOVALS: Final = {"deactivate": "deactivations", "delete": "deletions"}

# The main kind, persons, has the unprefixed counts and comes first; the others follow when present.
_MAIN, *_OTHERS = LISTED_KINDS
_OUTCOME_NAMES: Final = tuple(o.value for o in Outcome)


def _count(summary: PlanSummary, kind: Kind, name: str) -> int:
    return summary.of(kind, name)


def _counts(
    summary: PlanSummary, kind: Kind, fields: tuple[tuple[str, str], ...], *, labelled: bool = True
) -> list[tuple[str, int]]:
    """(label, count) of `fields`; labels name the kind ("groups: create") unless it is persons'."""
    label = f"{kind.plural}: " if kind.summary_prefix and labelled else ""
    return [(f"{label}{name}", _count(summary, kind, field)) for name, field in fields]


def _has_groups(plan: Plan) -> bool:
    """Whether the plan concerns any kind besides persons (then the summaries list every kind): the
    summary counts every operation of the plan by kind (a plan holds no deactivations)."""
    s = plan.summary
    return any(_count(s, kind, field) for kind in _OTHERS for _, field in (*_CHANGES, *_KEPT))


def plan_counts(plan: Plan) -> list[tuple[str, int]]:
    """The plan's counts as (label, count) rows: persons, then each other kind when the plan has any."""
    s = plan.summary
    counts = _counts(s, _MAIN, _CHANGES + _TABLE_ONLY_MAIN + _KEPT)
    if _has_groups(plan):
        for kind in _OTHERS:
            counts += _counts(s, kind, _CHANGES + _KEPT)
    return counts


def _phrase(counts: list[tuple[str, int]]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts)


def summary_line(plan: Plan) -> str:
    """The plan in one line, "plan: 3 create, ..."; with groups, "; groups: ...; memberships: ..." follow."""
    s = plan.summary
    line = "plan: " + _phrase(_counts(s, _MAIN, _CHANGES + _LINE_ONLY_MAIN))
    if _has_groups(plan):
        for kind in _OTHERS:
            line += f"; {kind.plural}: " + _phrase(_counts(s, kind, _CHANGES, labelled=False))
    return line


def print_run_summary(outcome: RunResult) -> None:
    """The run's line on stdout; on stderr why it stopped, a table on a terminal, and what failed."""
    counts = {o.value: outcome.count(o) for o in Outcome}
    planned = summary_line(outcome.plan).removeprefix("plan: ")
    line = (
        f"run {outcome.run_id}: {counts['confirmed']} confirmed, {counts['rejected']} rejected, "
        f"{counts['unconfirmed']} unconfirmed, {counts['skipped']} skipped (planned: {planned})"
    )
    click.echo(line)
    if outcome.stopped:
        notice("stopped_early", f"stopped early: {outcome.stopped}", reason=outcome.stopped)
    if Output.terminal:
        rich_table("Run " + outcome.run_id, ("Operation", "Planned", *_OUTCOME_NAMES), _outcome_rows(outcome))
    if Output.json:
        return  # each request is already an ims_request event, and run_end has the counts
    problems = [r for r in outcome.results if r.outcome is not Outcome.CONFIRMED]
    for result in problems[:SHOWN_LINES]:
        reason = result.error or (result.status.description if result.status else "") or "not sent"
        key = getattr(result.operation, "sync_key", "")
        click.echo(f"{result.outcome.value}: {_operation_name(result.operation)} {key}: {reason}", err=True)
    if len(problems) > SHOWN_LINES:
        click.echo(f"... and {len(problems) - SHOWN_LINES} more not confirmed (see --report)", err=True)


def _outcome_rows(outcome: RunResult) -> list[tuple[str, ...]]:
    """Operations by type (rows) and outcome (columns), with a total row."""
    counts: dict[str, dict[str, int]] = {}
    for result in outcome.results:
        operation = _operation_name(result.operation)
        row = counts.setdefault(operation, dict.fromkeys(_OUTCOME_NAMES, 0))
        row[result.outcome.value] += 1
    rows = [
        (operation, f"{sum(row.values()):,}", *(f"{row[name]:,}" for name in _OUTCOME_NAMES))
        for operation, row in sorted(counts.items())
    ]
    totals = [outcome.count(o) for o in Outcome]
    rows.append(("total", f"{len(outcome.results):,}", *(f"{n:,}" for n in totals)))
    return rows


def _operation_name(op: Operation) -> str:
    """An operation's name in the run's lines and table, as they have always read: Create,
    CreateGroup, ChangeMembershipIdentifier, DeactivateMembership, ..."""
    kind = kind_of(op)
    noun = "" if kind is PERSON else kind.ims_name
    name = type(op).__name__
    return f"Change{noun}Identifier" if name == "ChangeIdentifier" else f"{name}{noun}"


def announce_selection(selection: Any, *, deletes: str | None, only: frozenset[str] | None) -> None:
    """Say which operation types a run sends when `--only` or a pause window (`selection`, from
    `sync.plan.selection`) restricts it, and how many it holds; a `pause_window` event inside a window.
    `deletes` is the run's `--deletes` (None for a plan, which lists deletion candidates as such)."""
    held = len(selection.held)
    if selection.window is not None:
        window = selection.window
        notice(
            "pause_window",
            f"{window.text()}: this run sends {selection.describe()}; {held} operations held",
            start=window.start.isoformat(),
            end=window.end.isoformat(),
            allow=sorted(window.allow),
            held=held,
        )
    elif selection.restricted:
        notice("only", f"--only: this run sends {selection.describe()}; {held} operations held", held=held)
    if only is not None and "delete" in only and deletes == "off":
        notice(
            "only_without_deletes",
            "--only delete: --deletes is off, so no deletions are sent; add --deletes to send them",
        )
    other = _OTHER_REMOVAL.get(deletes or "")
    if only is not None and other is not None and other in only and deletes not in only:
        notice(
            "only_other_removal",
            f"--only {other}: --deletes {deletes} sends {_REMOVALS[deletes or '']}, not {_REMOVALS[other]}, "
            f"so nothing is removed; add {deletes} to --only, or use --deletes {other}",
        )
