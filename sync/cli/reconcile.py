"""`reconcile`: pair every request the journal holds with its answer, and flag what is off.

Reads the state only (the journal); imports the report and state packages inside the command.
"""

from __future__ import annotations

from pathlib import Path

import click

from sync.cli import stages
from sync.cli.options import output_opt, state_opt
from sync.cli.output import EXIT_FAILED, EXIT_USAGE, Exit, fail, write

__all__ = ["reconcile"]


@click.command(epilog="Example: ims-sync reconcile --state ./state --format json")
@state_opt
@click.option("--run", "run_id", default=None, help="Run id (default: the last run).")
@click.option("--all", "all_runs", is_flag=True, help="Every run in the journal.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", help="Output format."
)
@output_opt("Write here (default: standard output).")
def reconcile(state: Path, run_id: str | None, all_runs: bool, fmt: str, output: Path | None) -> None:
    """Pair every request's messageIdentifier with its answer's messageIdRef; flag what is off.

    Exit 1 when any request is unanswered, unmatched or failed.
    """
    from sync.report.render import render_reconcile  # noqa: PLC0415
    from sync.state.reconcile import reconcile as check  # noqa: PLC0415
    from sync.state.store import StateStore  # noqa: PLC0415

    if not stages.has_state(state):
        fail(EXIT_USAGE, f"no state in {state}: nothing has run there yet")
    with StateStore.open(state, exclusive=False) as store:
        chosen = None if all_runs else (run_id or store.last_run_id())
        if chosen is None and not all_runs:
            fail(EXIT_USAGE, f"no run recorded in {state}")
        rows = check(store.journal(chosen))
    write(render_reconcile(rows, fmt=fmt), output)
    if any(row.flags - {"ok"} for row in rows):
        raise Exit(EXIT_FAILED)
