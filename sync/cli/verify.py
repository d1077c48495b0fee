"""`verify`: read back what IMS ES holds for the snapshot, report the drift, and (`--repair`) record it
so that the next run puts it right.

Imports the IMS ES transport (zeep) and the verify stage inside the command.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import click
import structlog

from sync.cli import stages
from sync.cli.options import (
    connection,
    credentials,
    format_opt,
    group_endpoint_opts,
    group_endpoints,
    mapping_opt,
    number_opt,
    output_opt,
    report_format,
    roster_arg,
    service_opts,
    state_opt,
)
from sync.cli.output import EXIT_FAILED, EXIT_USAGE, SHOWN_LINES, Exit, fail, notice, write
from sync.models import KINDS
from sync.models.service import MAX_BATCH_SIZE, MAX_IN_FLIGHT

__all__ = ["verify"]

_log = structlog.get_logger(__name__)
_FORMATS = ("table", "json", "csv", "md", "html")
_DEFAULT_FORMAT = "table"


@click.command(
    epilog="Example: ims-sync verify users.csv -m oneroster-users --state ./state "
    "--endpoint https://host/PersonManagementService.svc --sample 500"
)
@roster_arg
@mapping_opt
@state_opt
@service_opts
@group_endpoint_opts
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=None,
    help="Check N objects of the snapshot chosen at random (seeded, printed) instead of all; "
    "objects created by hand are then not searched.",
)
@click.option(
    "--seed", type=click.IntRange(0), default=None, help="The sample's seed (default: a new one, printed)."
)
@format_opt(_FORMATS, default=_DEFAULT_FORMAT, what="Output")
@output_opt("Write the drift here (default: standard output).")
@click.option(
    "--repair",
    is_flag=True,
    help="Record missing and changed objects in the snapshot so that the next run puts them right; "
    "extras are only reported.",
)
@number_opt(
    "--max-in-flight",
    click.IntRange(1, 1024),
    MAX_IN_FLIGHT,
    "Objects read at once (itslearning asks for fewer than 10 unprocessed).",
)
@number_opt(
    "--batch-size", click.IntRange(1, MAX_BATCH_SIZE), 10, "Persons per readPersons request (and per page)."
)
def verify(**options: Any) -> None:
    """Compare what itslearning holds with the snapshot: missing, changed and extra objects.

    Exit 0 when nothing drifted, 1 when something did (or an object could not be read), 2 bad usage,
    config or state, 4 IMS ES unreachable.
    """
    _verify(**options)


def _verify(
    *,
    roster: Path,
    mapping: str,
    state: Path,
    endpoint: str,
    ca_bundle: Path | None,
    credentials_file: Path | None,
    gms_endpoint: str | None,
    mms_endpoint: str | None,
    sample: int | None,
    seed: int | None,
    fmt: str | None,
    output: Path | None,
    repair: bool,
    max_in_flight: int,
    batch_size: int,
) -> None:
    from sync.state.store import StateStore  # noqa: PLC0415

    if batch_size > max_in_flight:
        fail(EXIT_USAGE, f"--batch-size {batch_size} exceeds the in-flight budget {max_in_flight}")
    if not stages.has_state(state):
        fail(EXIT_USAGE, f"no state in {state}: nothing has run there yet, so there is nothing to verify")
    user = credentials(credentials_file)
    roster_set = stages.read(roster, mapping)
    if sample is not None:
        seed = secrets.randbelow(1_000_000) if seed is None else seed
        notice(
            "verify_sample",
            f"checking a sample of {sample} objects, seed {seed} (repeat with --seed {seed})",
            sample=sample,
            seed=seed,
        )
    with StateStore.open(state) as store:
        snapshots: dict[str, Any] = {kind.name: store.load(kind) for kind in KINDS}
        urls = group_endpoints(
            endpoint,
            gms_endpoint,
            mms_endpoint,
            needs_gms=len(snapshots["group"]) > 0,
            needs_mms=len(snapshots["membership"]) > 0,
        )
        run_id = store.begin_run(command="verify", roster=str(roster), mapping=mapping)
        status = "failed"
        try:
            found, repaired = _check(
                store,
                run_id,
                snapshots,
                endpoint,
                urls,
                user,
                ca_bundle,
                sample=sample,
                seed=seed or 0,
                repair=repair,
                budget=(max_in_flight, batch_size),
            )
            status = "ok"
        finally:
            store.end_run(run_id, status=status, summary={})
    _report(
        found,
        roster_set,
        snapshots,
        repaired=repaired,
        fmt=fmt,
        output=output,
        roster=roster,
        mapping=mapping,
        state=state,
        endpoint=endpoint,
    )


def _check(
    store: Any,
    run_id: str,
    snapshots: dict[str, Any],
    endpoint: str,
    urls: tuple[str, str],
    user: Any,
    ca_bundle: Path | None,
    *,
    sample: int | None,
    seed: int,
    repair: bool,
    budget: tuple[int, int],
) -> tuple[Any, int | None]:
    """The reads and the comparison; with `repair`, the drift recorded (how many objects)."""
    from sync.ims.clients import GroupClient, MembershipClient, PersonClient  # noqa: PLC0415
    from sync.verify.check import verify as check  # noqa: PLC0415
    from sync.verify.reading import Budget, Reader  # noqa: PLC0415
    from sync.verify.repair import repair as record  # noqa: PLC0415

    settings = connection(user, ca_bundle, pool_size=budget[0])
    gms_url, mms_url = urls
    with PersonClient(url=endpoint, **settings) as persons:
        groups = GroupClient(url=gms_url, **settings) if gms_url else None
        memberships = MembershipClient(url=mms_url, **settings) if mms_url else None
        try:
            reader = Reader(
                store=store,
                run_id=run_id,
                persons=persons,
                groups=groups,
                memberships=memberships,
                budget=Budget(max_in_flight=budget[0], batch_size=budget[1]),
            )
            found = check(snapshots, reader, size=sample, seed=seed)
        finally:
            for client in (groups, memberships):
                if client is not None:
                    client.close()
    _log.info("verify", run_id=run_id, requests=reader.requests, drifted=len(found.rows), **found.checked)
    repaired = record(store, found.rows, snapshots, reader.seen) if repair else None
    return found, repaired


def _report(
    found: Any,
    roster_set: Any,
    snapshots: dict[str, Any],
    *,
    repaired: int | None,
    fmt: str | None,
    output: Path | None,
    roster: Path,
    mapping: str,
    state: Path,
    endpoint: str,
) -> None:
    """Write the drift, say what was repaired and could not be read; exit 1 when anything drifted."""
    from sync.report.drift import render_drift  # noqa: PLC0415
    from sync.verify.check import annotate  # noqa: PLC0415

    parts = {kind.name: getattr(roster_set, kind.plural) for kind in KINDS}
    frames: dict[str, Any] = {name: part.frame if part is not None else None for name, part in parts.items()}
    rows = annotate(found.rows, frames, snapshots, repaired=repaired is not None)
    notes = [*found.notes, *(f"{u.kind} {u.sync_key!r} not read: {u.reason}" for u in found.unverified)]
    meta = stages.meta(
        "Verify: drift between itslearning and the snapshot",
        roster=roster,
        mapping=mapping,
        state=state,
        endpoint=endpoint,
    )
    chosen = report_format(output, fmt, _FORMATS, _DEFAULT_FORMAT)
    write(render_drift(rows, fmt=chosen, meta=meta, checked=found.checked, notes=notes), output)
    for u in found.unverified[:SHOWN_LINES]:
        notice(
            "verify_unread",
            f"not read: {u.kind} {u.sync_key!r}: {u.reason}",
            kind=u.kind,
            sync_key=u.sync_key,
        )
    if repaired is not None:
        notice(
            "verify_repaired",
            f"recorded {repaired} drifted objects in the snapshot; "
            "the next run puts them right (extras are only reported)",
            repaired=repaired,
        )
    if rows or found.unverified:
        raise Exit(EXIT_FAILED)
