"""`validate` and `plan`: what a roster holds and what a run would change; nothing is sent, no state changes.

Imports the pipeline's stages lazily (through `sync.cli.stages` and inside the commands).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import structlog

from sync.cli import approval, limits, stages
from sync.cli.by_school import by_school_opt, check_target, target_opt, write_folder
from sync.cli.options import (
    LISTED_KINDS,
    REPORT_FORMATS,
    accept_shrunk_opt,
    deletes_opt,
    format_opt,
    limit_opts,
    mapping_opt,
    only_opt,
    report_format,
    roster_arg,
    state_opt,
)
from sync.cli.output import EXIT_FAILED, Exit, Output, notice, rich_table, write
from sync.cli.summaries import announce_selection, plan_counts, summary_line
from sync.models import DeletesMode, Plan
from sync.plan.limits import Rule
from sync.plan.shrinkage import ACCEPT_SHRUNK_FLAG

if TYPE_CHECKING:
    from sync.report.meta import ReportMeta

__all__ = ["plan", "validate"]

_log = structlog.get_logger(__name__)


@click.command(epilog="Example: ims-sync validate samples/generic/students.csv --mapping generic")
@roster_arg
@mapping_opt
def validate(roster: Path, mapping: str) -> None:
    """Check a roster against a mapping: no state, no network. Exit 1 when rows are rejected.

    With a set mapping the references between the files are checked too (a class's school, an
    enrolment's class and person); without group files, enrolments' groups are checked at plan time.
    """
    result = stages.checked(stages.read(roster, mapping))
    for empty in (file for file, count in result.file_rows.items() if count == 0):
        notice("empty_roster_file", f"{empty}: no data rows; plan and run refuse it ({ACCEPT_SHRUNK_FLAG})")
    rejects = result.rejects
    for reject in rejects:
        click.echo(f"{reject.file}:{reject.row}: [{reject.field}] {reject.reason}")
    read = [(kind, getattr(result, kind.plural)) for kind in LISTED_KINDS]
    counts = [f"{len(part.frame)} valid {kind.plural}" for kind, part in read if part is not None]
    click.echo(f"{', '.join(counts)}, {len(rejects)} rejected rows in {roster}")
    if rejects:
        raise Exit(EXIT_FAILED)


@click.command(
    epilog="Example: ims-sync plan users.csv -m oneroster-users --state ./state --format html -o plan.html"
)
@roster_arg
@mapping_opt
@state_opt
@format_opt(REPORT_FORMATS, default="md", what="Report")
@target_opt("--output", "-o", help="Report file (default: standard output); with --by-school, a folder.")
@by_school_opt("--by-school")
@accept_shrunk_opt
@only_opt
@deletes_opt
@limit_opts
def plan(
    roster: Path,
    mapping: str,
    state: Path,
    fmt: str | None,
    output: Path | None,
    by_school: bool,
    accept_shrunk_roster: bool,
    only: frozenset[str] | None,
    deletes: str,
    max_change_share: float,
    max_change_count: int,
    limit_rules: tuple[Rule, ...],
) -> None:
    """Dry run: show what a run would change. Sends nothing and changes no state.

    With --only or inside a config file's pause window, the report says which operation types the run
    sends and lists the others as held (deletion candidates stay listed as such).

    What breaches a safety limit (with --deletes, the deletions it sends too) is listed as held, with
    the flag or fingerprint that releases it.

    The plan's fingerprint (printed; in a JSON plan with the parts it hashes) covers the roster files,
    the mapping, the snapshot's state, --deletes, the safety limits, --only and the operations:
    `run --plan` and `run --approve` send only the plan that has it.
    """
    from sync.plan.diff import Snapshots  # noqa: PLC0415
    from sync.state.store import StateStore  # noqa: PLC0415

    fmt = report_format(output, fmt)
    check_target(
        output, fmt, by_school=by_school, option="output", flag="--by-school", format_flag="--format"
    )
    digests = approval.Digests(roster)  # (hashed beside the reading, for the fingerprint)
    result = stages.read(roster, mapping)
    snapshot_state = None
    repairs: list[Any] = []
    if stages.has_state(state):
        with StateStore.open(state, exclusive=False) as store:
            stages.refuse_shrunk(result, store.runs(), accepted=accept_shrunk_roster)
            snapshots = stages.snapshots(store)
            snapshot_state = approval.snapshot_state(store, snapshots)
            repairs = store.repairs()
    else:
        stages.refuse_shrunk(result, [], accepted=accept_shrunk_roster)
        snapshots = Snapshots()
    the_plan = stages.plan(result, snapshots)
    fingerprint = approval.of_plan(
        result,
        mapping,
        snapshot_state,
        the_plan,
        deletes=deletes,
        max_share=max_change_share,
        max_count=max_change_count,
        only=only,
        limits=limits.limits_setting(limit_rules),
        digests=digests,
    )
    selection = stages.select(the_plan, deletes="off", only=only)
    announce_selection(selection, deletes=None, only=only)
    selection = _held_at_limits(
        the_plan,
        selection,
        limits.safety_limits(max_share=max_change_share, max_count=max_change_count, flags=limit_rules),
        deletes=deletes,
        only=only,
        fingerprint=fingerprint.value,
        schools=stages.school_counts(the_plan, snapshots),
    )
    meta = dataclasses.replace(
        stages.meta(
            "Dry run: planned changes", roster=roster, mapping=mapping, state=state, selection=selection
        ),
        fingerprint=fingerprint.value,
        fingerprint_parts=tuple(fingerprint.parts.items()),
        drift=stages.from_drift(the_plan, repairs),
    )
    _report(the_plan, meta, fmt=fmt, output=output, by_school=by_school)


def _report(the_plan: Plan, meta: ReportMeta, *, fmt: str, output: Path | None, by_school: bool) -> None:
    """Write the plan's report (a file, standard output or a folder of school pages) and say what it holds."""
    from sync.report.render import plan_pieces  # noqa: PLC0415

    fingerprint = meta.fingerprint
    if by_school and output is not None:
        from sync.report.as_school_html import plan_school_files  # noqa: PLC0415

        write_folder(plan_school_files(the_plan, meta=meta), output)
    else:
        write(plan_pieces(the_plan, fmt=fmt, meta=meta), output)  # type: ignore[arg-type]
    _log.info("plan", roster=meta.roster, fingerprint=fingerprint, **the_plan.summary.as_dict())
    if not Output.json:  # (under JSON logs, the plan event carries it)
        click.echo(
            f"plan fingerprint {fingerprint} (send exactly this plan with `run --plan` on its JSON, "
            f"or with --approve {fingerprint} when it breaches a safety limit)",
            err=True,
        )
    if Output.terminal:
        rich_table("Dry run", ("Kind", "Count"), [(k, f"{n:,}") for k, n in plan_counts(the_plan)])
    elif output is not None and not Output.json:
        click.echo(summary_line(the_plan), err=True)


def _held_at_limits(
    the_plan: Plan,
    selection: Any,
    safety: Any,
    *,
    deletes: str,
    only: frozenset[str] | None,
    fingerprint: str,
    schools: Any,
) -> Any:
    """`selection` (deletion candidates not sent, listed as such) with what a run would hold at the
    safety limits (measured on what the run sends: its deletions too) held, each breach said."""
    sending = stages.select(the_plan, deletes=deletes, only=only)
    limited, breaches = limits.hold_breaches(
        the_plan,
        sending,
        safety,
        deletes=DeletesMode(deletes),
        fingerprint=lambda: fingerprint,
        schools=schools,
    )
    for breach in breaches:
        notice("limit_holds", f"safety limit: {breach.message()}", limit_key=breach.key, count=breach.count)
    held = [h for h in limited.held if h.cause == "limit"]
    if not held:
        return selection
    kept = {h.operation for h in held}  # (equal, not the same: a block makes its operations anew)
    return selection.holding([op for op in selection.send if op not in kept], held)
