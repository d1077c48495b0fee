"""`snapshot export`, `snapshot check` and `snapshot adopt`: the snapshot as CSV; the state's integrity and
invariants; the snapshot built from what the site holds.

`adopt` reads from IMS ES: it imports the transport (zeep) and the adopters inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sync.cli import options, stages
from sync.cli.output import EXIT_FAILED, EXIT_USAGE, SHOWN_LINES, Exit, fail, notice, write
from sync.errors import StateError
from sync.models.kinds import GROUP, PERSON

__all__ = ["snapshot"]

_KINDS_BY_PLURAL = {kind.plural: kind for kind in options.LISTED_KINDS}


@click.group(epilog="Example: ims-sync snapshot export --state /var/lib/ims-sync -o snapshot.csv")
def snapshot() -> None:
    """Inspect the snapshot: what IMS ES last confirmed."""


@snapshot.command("export", epilog="Example: ims-sync snapshot export --state ./state -o snapshot.csv")
@options.state_opt
@options.output_opt("Write the CSV here (default: standard output).")
@click.option(
    "--kind",
    type=click.Choice(list(_KINDS_BY_PLURAL)),
    default=options.LISTED_KINDS[0].plural,
    show_default=True,
    help="Which records to export.",
)
def snapshot_export(state: Path, output: Path | None, kind: str) -> None:
    """Write the snapshot as CSV: persons (sync_key, identity, person fields; never passwords), groups
    (sync_key, identity, name, type, parent, description) or memberships (sync_key, group, person, role,
    active)."""
    from sync.report.render import frame_to_csv  # noqa: PLC0415
    from sync.state.store import StateStore  # noqa: PLC0415

    if not stages.has_state(state):
        fail(EXIT_USAGE, f"no state in {state}")
    with StateStore.open(state, exclusive=False) as store:
        frame = store.load(_KINDS_BY_PLURAL[kind])
    write(frame_to_csv(frame), output)


@snapshot.command("check", epilog="Example: ims-sync snapshot check --state /var/lib/ims-sync")
@options.state_opt
def snapshot_check(state: Path) -> None:
    """Check the state database: SQLite's integrity check, then the snapshot's own invariants.

    Reads without the run lock and changes nothing, so it is safe while a run writes. Prints one line
    per problem, then what to do. Exit 0 when all is well, 1 when something is wrong, 2 when the state
    cannot be read at all.
    """
    from sync.state.check import TODO, check_state  # noqa: PLC0415

    report = check_state(state)
    rows = ", ".join(f"{count} {table}" for table, count in report.rows.items())
    if not report.problems:
        click.echo(f"{report.path}: ok (integrity and invariants checked over {rows})")
        return
    count = len(report.problems)
    click.echo(f"{report.path}: {count} problem{'s' if count > 1 else ''} (read {rows})")
    for problem in report.problems:
        click.echo(f"  {problem.where}: {problem.what}")
    for todo in dict.fromkeys(problem.todo for problem in report.problems):
        click.echo(f"what to do: {TODO[todo]}")
    raise Exit(EXIT_FAILED)


@snapshot.command(
    "adopt",
    epilog=(
        "Example: ims-sync snapshot adopt --state /var/lib/ims-sync -m oneroster-users "
        "--endpoint https://host/PersonManagementService.svc"
    ),
)
@options.state_opt
@options.mapping_opt
@options.service_opts
@options.number_opt(
    "--page-size",
    click.IntRange(1, 100),
    100,
    "Persons per readAllPersons page (itslearning allows at most 100).",
)
@click.option(
    "--roster",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="With a set mapping: the roster folder, whose groups are read too (a group without members "
    "is found no other way).",
)
@options.group_endpoint_opts
def snapshot_adopt(
    state: Path,
    mapping: str,
    endpoint: str,
    ca_bundle: Path | None,
    credentials_file: Path | None,
    page_size: int,
    roster: Path | None,
    gms_endpoint: str | None,
    mms_endpoint: str | None,
) -> None:
    """Build the snapshot from what the site already holds.

    Persons come from itslearning's readAllPersons (it must be enabled for the integration). With a
    set mapping (e.g. oneroster) the memberships of every adopted person (readMembershipsForPerson)
    and their groups with all parents (readGroup) follow; --roster adds the roster's own groups.
    Run it once before the first `run` against a populated site, so that what is already there is
    updated rather than created again.
    """
    from sync.read.mapping import load_any_mapping  # noqa: PLC0415
    from sync.state.store import StateStore  # noqa: PLC0415

    loaded = load_any_mapping(mapping)
    identity, group_identity, with_groups = _identities(loaded)
    gms_url, mms_url = options.group_endpoints(
        endpoint, gms_endpoint, mms_endpoint, needs_gms=with_groups, needs_mms=with_groups
    )
    roster_groups = _roster_groups(roster, mapping) if roster is not None and with_groups else []
    clients = options.connection(options.credentials(credentials_file), ca_bundle)
    summary: dict[str, int] = {}
    with StateStore.open(state) as store:
        run_id = store.begin_run(command="adopt", roster="", mapping=mapping)
        try:
            mapped = _mapped_person_fields(loaded)
            result = _adopt_persons(store, run_id, endpoint, clients, identity, page_size, mapped)
            summary = {"persons": result.persons, "pages": result.pages}
            click.echo(
                f"adopted {result.persons} persons in {result.pages} pages "
                f"(the service reports {result.reported_total}) into {state}"
            )
            if with_groups:
                found = _adopt_groups(
                    store, run_id, (gms_url, mms_url), clients, roster_groups, group_identity
                )
                summary.update(
                    groups=found.groups, memberships=found.memberships, failed_reads=len(found.failed_reads)
                )
                click.echo(f"adopted {found.groups} groups and {found.memberships} memberships into {state}")
                for failure in found.failed_reads[:SHOWN_LINES]:
                    notice("adopt_read_failed", f"not adopted: {failure}", failure=failure)
        except BaseException as exc:
            try:
                store.end_run(run_id, status="failed", summary=summary)
            except StateError:
                if not isinstance(exc, StateError):
                    raise
            raise
        store.end_run(run_id, status="ok", summary=summary)


def _identities(loaded: Any) -> tuple[str, str, bool]:
    """(the persons' identity field, the groups' ("" when the group files differ or IMS ES lacks it),
    whether groups and memberships are adopted too: with a set mapping that reads them)."""
    from sync.read.mapping import SetMapping  # noqa: PLC0415

    if not isinstance(loaded, SetMapping):
        return loaded.identity, "", False
    group_identities = {entry.mapping.identity for entry in loaded.groups}
    group_identity = group_identities.pop() if len(group_identities) == 1 else ""
    group_identity = group_identity if group_identity in GROUP.fields else ""
    with_groups = bool(loaded.groups) or bool(loaded.memberships)
    return loaded.persons.mapping.identity, group_identity, with_groups


def _roster_groups(roster: Path, mapping: str) -> list[str]:
    """The sync keys of the roster's own groups (none when the mapping reads no group files)."""
    roster_set = stages.read(roster, mapping)
    return [] if roster_set.groups is None else list(roster_set.groups.frame.index)


def _mapped_person_fields(loaded: Any) -> frozenset[str]:
    """The person fields the mapping reads (a column or a constant)."""
    from sync.read.mapping import SetMapping  # noqa: PLC0415

    persons = loaded.persons.mapping if isinstance(loaded, SetMapping) else loaded
    return frozenset(persons.columns) | frozenset(persons.constants)


def _adopt_persons(
    store: Any,
    run_id: str,
    endpoint: str,
    clients: dict[str, Any],
    identity: str,
    page_size: int,
    mapped: frozenset[str],
) -> Any:
    """Every person the site holds (readAllPersons) into the snapshot."""
    from sync.ims.clients import PersonClient  # noqa: PLC0415
    from sync.state.adopt import adopt  # noqa: PLC0415

    with PersonClient(url=endpoint, **clients) as client:
        return adopt(
            client, store, run_id=run_id, identity_field=identity, page_size=page_size, mapped=mapped
        )


def _adopt_groups(
    store: Any,
    run_id: str,
    endpoints: tuple[str, str],
    clients: dict[str, Any],
    roster_groups: list[str],
    group_identity: str,
) -> Any:
    """The memberships of every adopted person and the groups they name, with their parents (and the
    roster's own groups), into the snapshot."""
    from sync.ims.clients import GroupClient, MembershipClient  # noqa: PLC0415
    from sync.state.adopt import adopt_memberships  # noqa: PLC0415

    gms_url, mms_url = endpoints
    with (
        GroupClient(url=gms_url, **clients) as groups,
        MembershipClient(url=mms_url, **clients) as memberships,
    ):
        return adopt_memberships(
            groups,
            memberships,
            store,
            run_id=run_id,
            persons=list(store.load(PERSON).index),
            also_groups=roster_groups,
            group_identity_field=group_identity,
        )
