"""The `ims-sync` command line: argv, environment and config file in; wiring of the stages; exit codes.

Exit codes (for schedulers): 0 all done; 1 some operations failed or rows were rejected (recorded);
2 bad usage, config, input or state in use; 3 stopped by a safety limit; 4 IMS ES unreachable.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn, TextIO

import click
import structlog

from sync import __version__
from sync.cli.config import Credentials, load_config_file, load_credentials
from sync.cli.logs import configure_logging
from sync.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    RemoteError,
    RosterError,
    StateError,
    SyncError,
)
from sync.models import DeletesMode, Outcome, Plan, RunResult
from sync.plan.safety import SafetyLimits, check_limits

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_SAFETY", "EXIT_UNREACHABLE", "EXIT_USAGE", "cli", "main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_SAFETY: Final = 3
EXIT_UNREACHABLE: Final = 4

_REPORT_FORMATS: Final = ("md", "json", "csv", "html")
_log = structlog.get_logger("sync.cli.app")


class _Exit(Exception):
    """Leave the command with an exit code after printing `message` (if any) to stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _fail(code: int, message: str) -> NoReturn:
    raise _Exit(code, message)


class _Output:
    """Where this invocation talks: JSON log lines only (cron, --log-format json) or a person at a terminal.

    Set by the group callback; `main` resets it, so one process can run many commands (tests do).
    """

    json = False  # stderr (or the log file) carries structlog JSON lines only
    log_file: TextIO | None = None  # --log-file, open until `main` has logged the exit
    terminal = False  # console format on a TTY: progress bar and rich summary tables

    @classmethod
    def reset(cls) -> None:
        cls.json = cls.terminal = False
        cls.log_file = None

    @classmethod
    def close(cls) -> None:
        """Close the log file, pointing structlog back at stderr (for whatever logs after `main`)."""
        if cls.log_file is not None:
            configure_logging(fmt="json")
            cls.log_file.close()
        cls.reset()


def _notice(event: str, message: str, **fields: Any) -> None:
    """Tell the operator something: a plain stderr line on a console, a JSON event under cron."""
    if _Output.json:
        _log.info(event, message=message, **fields)
    else:
        click.echo(message, err=True)


def _rich_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A rich table on stderr (only ever called on a terminal)."""
    from rich.console import Console  # noqa: PLC0415 - rich only for people at a terminal
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(stderr=True).print(table)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the group ------------------------------------------------------------------------------


def _load_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    try:
        options = load_config_file(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    commands = ctx.command.commands if isinstance(ctx.command, click.Group) else {}
    ctx.default_map = dict.fromkeys(commands, options)
    ctx.default_map.update({"snapshot": {"export": options, "adopt": options}})
    # The group's own options (log format and file) read the same file.
    ctx.default_map.update({key: options[key] for key in ("log_format", "log_file") if key in options})
    ctx.meta["config_options"] = options
    return value


class _Commands(click.Group):
    """The command group; `emulator` is imported only when asked for (it loads TLS and HTTP code)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "emulator"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "emulator" and cmd_name not in self.commands:
            from sync.emulator.command import emulator  # noqa: PLC0415

            self.add_command(emulator)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: ims-sync plan samples/oneroster/users.csv --mapping oneroster-users --state ./state",
)
@click.version_option(__version__, prog_name="ims-sync")
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="IMS_SYNC_CONFIG",
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    help="TOML config file ([sync] options, [credentials]); flags and environment override it.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    envvar="IMS_SYNC_LOG_FORMAT",
    default=None,
    help="json: one JSON event a line (default without a terminal); console: readable (default on one).",
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="IMS_SYNC_LOG_FILE",
    default=None,
    help="Append log events (JSON lines) to this file instead of standard error.",
)
def cli(log_format: str | None, log_file: Path | None) -> None:
    """Synchronise a school roster (CSV) into itslearning over IMS Enterprise Services v1.0.

    Start with `validate`, review a dry run with `plan`, then `run`; `reconcile` checks the journal.
    """
    stream: TextIO | None = None
    if log_file is not None:
        try:
            # Closed by `main`, after the reason for a failure has been logged to it too.
            stream = log_file.open("a", encoding="utf-8")
        except OSError as exc:
            _fail(EXIT_USAGE, f"cannot open log file {log_file}: {exc.strerror}")
        fmt = log_format or "json"
    else:
        fmt = log_format or ("console" if sys.stderr.isatty() else "json")
    _Output.json = fmt == "json"
    _Output.log_file = stream
    _Output.terminal = fmt == "console" and sys.stderr.isatty()
    # On a terminal only warnings interrupt the progress bar; a log file or cron gets every event.
    level = logging.WARNING if fmt == "console" and log_file is None else logging.INFO
    configure_logging(fmt="json" if fmt == "json" else "console", stream=stream, level=level)


# --- shared options ---------------------------------------------------------------------------

_roster_arg = click.argument("roster", type=click.Path(path_type=Path))
_mapping_opt = click.option(
    "--mapping",
    "-m",
    envvar="IMS_SYNC_MAPPING",
    required=True,
    help="A built-in mapping name (oneroster, oneroster-users, generic) or the path of a mapping TOML "
    "file. A set mapping (oneroster) reads a folder: persons, groups and memberships.",
)
_state_opt = click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="IMS_SYNC_STATE",
    required=True,
    help="State directory: snapshot and journal (SQLite) and the run lock.",
)


_endpoint_opt = click.option(
    "--endpoint", envvar="IMS_ES_ENDPOINT", required=True, help="The PMS endpoint URL (https only)."
)
_gms_opt = click.option(
    "--gms-endpoint",
    envvar="IMS_ES_GMS_ENDPOINT",
    default=None,
    help="The Group Management endpoint (default: next to --endpoint, GroupManagementService.svc).",
)
_mms_opt = click.option(
    "--mms-endpoint",
    envvar="IMS_ES_MMS_ENDPOINT",
    default=None,
    help="The Membership Management endpoint (default: next to --endpoint, MembershipManagementService.svc).",
)
_ca_bundle_opt = click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar="IMS_ES_CA_BUNDLE",
    default=None,
    help="PEM file of extra CA certificates to trust (e.g. the emulator's).",
)
_credentials_opt = click.option(
    "--credentials-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Owner-only TOML file with username and password (else IMS_ES_USERNAME / IMS_ES_PASSWORD).",
)


def _credentials(credentials_file: Path | None) -> Credentials:
    """Credentials from the environment, a credentials file or the config file, in that order."""
    root = click.get_current_context().find_root()
    return load_credentials(
        credentials_file=credentials_file,
        from_config=root.meta.get("config_options", {}).get("_credentials"),
    )


def _read(roster_path: Path, mapping_name: str) -> Any:
    """The roster set: persons, and groups and memberships when the mapping is a set mapping."""
    from sync.read.roster_set import read_roster_set  # noqa: PLC0415 - pandas only for commands that need it

    return read_roster_set(roster_path, mapping_name)


def _checked(roster: Any) -> Any:
    """The roster set with the references between its files checked (sync.plan.links), as a plan does;
    without group files, enrolments' groups live in IMS ES and only a plan (with the state) checks them."""
    import dataclasses  # noqa: PLC0415

    from sync.plan.links import check_references  # noqa: PLC0415

    groups, memberships = check_references(
        roster.persons, roster.groups, roster.memberships, snapshot_groups=None
    )
    return dataclasses.replace(roster, groups=groups, memberships=memberships)


def _snapshots(store: Any) -> Any:
    from sync.plan.diff import Snapshots  # noqa: PLC0415

    return Snapshots(
        persons=store.load_persons(), groups=store.load_groups(), memberships=store.load_memberships()
    )


def _plan(roster: Any, snapshots: Any) -> Plan:
    from sync.plan.diff import plan_set  # noqa: PLC0415

    return plan_set(roster.persons, snapshots, groups=roster.groups, memberships=roster.memberships)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(EXIT_USAGE, f"cannot write {output}: {exc.strerror}")
    _notice("report_written", f"report written to {output}", path=str(output))


def _meta(title: str, *, roster: Path | None, mapping: str, state: Path, endpoint: str = "") -> Any:
    from sync.report.render import ReportMeta  # noqa: PLC0415

    return ReportMeta(
        title=title,
        roster=str(roster or ""),
        mapping=mapping,
        state=str(state),
        generated_at=_now_iso(),
        endpoint=endpoint,
        tool_version=__version__,
    )


def _report_format(output: Path | None, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    if output is not None and output.suffix.lstrip(".").lower() in _REPORT_FORMATS:
        return output.suffix.lstrip(".").lower()
    return "md"


_SHOWN_LINES: Final = 20


def _print_rejects(plan: Plan) -> None:
    for reject in plan.rejects[:_SHOWN_LINES]:
        _notice(
            "row_rejected",
            f"rejected: {reject.file}:{reject.row} [{reject.field}] {reject.reason}",
            where=f"{reject.file}:{reject.row}",
            field=reject.field,
            reason=reject.reason,
        )
    if len(plan.rejects) > _SHOWN_LINES:
        more = len(plan.rejects) - _SHOWN_LINES
        _notice("rows_rejected_more", f"... and {more} more rejected rows (see the report)", more=more)


# --- validate -------------------------------------------------------------------------------


@cli.command(epilog="Example: ims-sync validate samples/generic/students.csv --mapping generic")
@_roster_arg
@_mapping_opt
def validate(roster: Path, mapping: str) -> None:
    """Check a roster against a mapping: no state, no network. Exit 1 when rows are rejected.

    With a set mapping the references between the files are checked too (a class's school, an
    enrolment's class and person); without group files, enrolments' groups are checked at plan time.
    """
    result = _checked(_read(roster, mapping))
    rejects = result.rejects
    for reject in rejects:
        click.echo(f"{reject.file}:{reject.row}: [{reject.field}] {reject.reason}")
    counts = [f"{len(result.persons.frame)} valid persons"]
    if result.groups is not None:
        counts.append(f"{len(result.groups.frame)} valid groups")
    if result.memberships is not None:
        counts.append(f"{len(result.memberships.frame)} valid memberships")
    click.echo(f"{', '.join(counts)}, {len(rejects)} rejected rows in {roster}")
    if rejects:
        raise _Exit(EXIT_FAILED)


# --- plan -----------------------------------------------------------------------------------


@cli.command(
    epilog="Example: ims-sync plan users.csv -m oneroster-users --state ./state --format html -o plan.html"
)
@_roster_arg
@_mapping_opt
@_state_opt
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_REPORT_FORMATS),
    default=None,
    help="Report format (default: from the --output suffix, else md).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Report file (default: standard output).",
)
def plan(roster: Path, mapping: str, state: Path, fmt: str | None, output: Path | None) -> None:
    """Dry run: show what a run would change. Sends nothing and changes no state."""
    from sync.plan.diff import Snapshots, empty_snapshot  # noqa: PLC0415
    from sync.report.render import render_plan  # noqa: PLC0415
    from sync.state.snapshot import StateStore  # noqa: PLC0415

    result = _read(roster, mapping)
    if (state / "state.sqlite3").exists():
        with StateStore.open(state, exclusive=False) as store:
            snapshots = _snapshots(store)
    else:
        snapshots = Snapshots(persons=empty_snapshot())
    the_plan = _plan(result, snapshots)
    meta = _meta("Dry run: planned changes", roster=roster, mapping=mapping, state=state)
    _write(render_plan(the_plan, fmt=_report_format(output, fmt), meta=meta), output)  # type: ignore[arg-type]
    _log.info("plan", roster=str(roster), **the_plan.summary.as_dict())
    if _Output.terminal:
        _rich_table("Dry run", ("Kind", "Count"), [(k, f"{n:,}") for k, n in _plan_counts(the_plan)])
    elif output is not None and not _Output.json:
        click.echo(_summary_line(the_plan), err=True)


def _has_groups(the_plan: Plan) -> bool:
    s = the_plan.summary
    return bool(
        s.group_snapshot_size or s.group_unchanged or s.membership_snapshot_size or s.membership_unchanged
    ) or any(
        type(op).__name__.endswith(("Group", "Membership"))
        for op in (*the_plan.operations, *the_plan.deletions)
    )


def _plan_counts(the_plan: Plan) -> list[tuple[str, int]]:
    s = the_plan.summary
    counts = [
        ("create", s.create),
        ("update", s.update),
        ("changeIdentifier", s.change_identifier),
        ("deletion candidates", s.delete),
        ("conflicts", s.conflicts),
        ("rejected rows", s.rejected),
        ("unchanged", s.unchanged),
        ("in snapshot", s.snapshot_size),
    ]
    if _has_groups(the_plan):
        counts += [
            ("groups: create", s.group_create),
            ("groups: update", s.group_update),
            ("groups: changeIdentifier", s.group_change_identifier),
            ("groups: deletion candidates", s.group_delete),
            ("groups: unchanged", s.group_unchanged),
            ("groups: in snapshot", s.group_snapshot_size),
            ("memberships: create", s.membership_create),
            ("memberships: update", s.membership_update),
            ("memberships: changeIdentifier", s.membership_change_identifier),
            ("memberships: deletion candidates", s.membership_delete),
            ("memberships: unchanged", s.membership_unchanged),
            ("memberships: in snapshot", s.membership_snapshot_size),
        ]
    return counts


def _summary_line(the_plan: Plan) -> str:
    s = the_plan.summary
    line = (
        f"plan: {s.create} create, {s.update} update, {s.change_identifier} changeIdentifier, "
        f"{s.delete} deletion candidates, {s.rejected} rejected rows, {s.conflicts} conflicts, "
        f"{s.unchanged} unchanged"
    )
    if _has_groups(the_plan):
        line += (
            f"; groups: {s.group_create} create, {s.group_update} update, "
            f"{s.group_change_identifier} changeIdentifier, {s.group_delete} deletion candidates; "
            f"memberships: {s.membership_create} create, {s.membership_update} update, "
            f"{s.membership_change_identifier} changeIdentifier, "
            f"{s.membership_delete} deletion candidates"
        )
    return line


# --- run ------------------------------------------------------------------------------------


@contextmanager
def _graceful_stop(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop taking work and let requests in flight finish. Second: abort."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        name = signal.Signals(signum).name
        _notice(
            "stop_requested",
            f"{name}: finishing requests in flight, then stopping (again to abort)",
            signal=name,
        )

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@cli.command(
    epilog=(
        "Example: IMS_ES_USERNAME=... IMS_ES_PASSWORD=... ims-sync run users.csv -m oneroster-users "
        "--state /var/lib/ims-sync --endpoint https://host/PersonManagementService.svc --report run.html"
    )
)
@_roster_arg
@_mapping_opt
@_state_opt
@_endpoint_opt
@_ca_bundle_opt
@_credentials_opt
@click.option("--concurrency", type=click.IntRange(1, 256), default=10, show_default=True, help="Workers.")
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 1024),
    default=10,
    show_default=True,
    help="Objects unanswered at once. itslearning asks for fewer than 10: raise only where allowed.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 50),
    default=1,
    show_default=True,
    help="Objects per mass request (createPersons, createGroups, createMemberships, deleteMemberships; "
    "1: single calls). Counts against --max-in-flight.",
)
@click.option(
    "--wsdl",
    default=None,
    help="Load the WSDL from this URL or file (e.g. ENDPOINT?singleWsdl) instead of the bundled one.",
)
@click.option("--connect-timeout", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option("--read-timeout", type=float, default=300.0, show_default=True, help="Seconds.")
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 20),
    default=5,
    show_default=True,
    help="Tries per request for transient faults (timeouts, 503s); data errors are never retried.",
)
@click.option(
    "--circuit-threshold",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="Consecutive transient failures after which the run stops (exit 4).",
)
@click.option(
    "--deletes",
    type=click.Choice([m.value for m in DeletesMode]),
    default=DeletesMode.OFF.value,
    is_flag=False,
    flag_value=DeletesMode.DELETE.value,
    show_default=True,
    help="What to do with what left the roster. off: only list it; deactivate: memberships set "
    "inactive, persons and groups kept; delete (also bare --deletes): memberships, groups, persons deleted.",
)
@_gms_opt
@_mms_opt
@click.option(
    "--max-change-share",
    type=click.FloatRange(0, 1),
    default=0.10,
    show_default=True,
    help="Safety limit: share of the snapshot a run may update, re-identify or delete (exit 3 above it).",
)
@click.option(
    "--max-change-count",
    type=click.IntRange(0),
    default=500,
    show_default=True,
    help="Safety limit: at most this many persons, groups or memberships (each kind on its own) changed "
    "or deleted in one run, whatever the share.",
)
@click.option(
    "--accept-changes",
    type=click.IntRange(0),
    default=0,
    help="Accept up to N updates and identifier changes of each kind (after reviewing the plan).",
)
@click.option(
    "--accept-deletes",
    type=click.IntRange(0),
    default=0,
    help="Accept up to N deletions (or deactivations) of each kind (after reviewing the plan).",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write a run report here: every operation's outcome, failures with reasons.",
)
@click.option(
    "--report-format",
    type=click.Choice(_REPORT_FORMATS),
    default=None,
    help="Run report format (default: from the --report suffix, else md).",
)
def run(
    roster: Path,
    mapping: str,
    state: Path,
    endpoint: str,
    ca_bundle: Path | None,
    credentials_file: Path | None,
    concurrency: int,
    max_in_flight: int,
    batch_size: int,
    wsdl: str | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
    circuit_threshold: int,
    deletes: str,
    gms_endpoint: str | None,
    mms_endpoint: str | None,
    max_change_share: float,
    max_change_count: int,
    accept_changes: int,
    accept_deletes: int,
    report: Path | None,
    report_format: str | None,
) -> None:
    """Plan, then send the changes to IMS ES; the snapshot follows what IMS ES confirmed."""
    from sync.ims.transport import GroupClient, MembershipClient, PersonClient, Timeouts  # noqa: PLC0415
    from sync.plan.ordering import deletion_operations  # noqa: PLC0415
    from sync.send.executor import Executor  # noqa: PLC0415
    from sync.send.policy import ExecutorSettings, RetryPolicy  # noqa: PLC0415
    from sync.state.snapshot import StateStore  # noqa: PLC0415

    deletes_mode = DeletesMode(deletes)
    _check_budget(concurrency=concurrency, max_in_flight=max_in_flight, batch_size=batch_size)
    credentials = _credentials(credentials_file)
    result = _read(roster, mapping)
    gms_url, mms_url = _group_endpoints(
        endpoint,
        gms_endpoint,
        mms_endpoint,
        needs_gms=result.groups is not None,
        needs_mms=result.memberships is not None,
    )
    started = _now_iso()
    with StateStore.open(state) as store:
        the_plan = _plan(result, _snapshots(store))
        _print_rejects(the_plan)
        limits = SafetyLimits(
            max_share=max_change_share,
            max_count=max_change_count,
            accept_changes=accept_changes,
            accept_deletes=accept_deletes,
        )
        breaches = check_limits(the_plan, limits, deletes=deletes_mode)
        if breaches:
            for breach in breaches:
                _log.error("safety_limit", kind=breach.kind, count=breach.count, limit=breach.limit)
            _fail(EXIT_SAFETY, "\n".join(f"safety limit: {b.message()}" for b in breaches))
        run_id = store.begin_run(command="run", roster=str(roster), mapping=mapping)
        _log.info("run_start", run_id=run_id, endpoint=endpoint, **the_plan.summary.as_dict())
        operations = [*the_plan.operations, *deletion_operations(the_plan.deletions, deletes_mode)]
        stop = threading.Event()
        connection: dict[str, Any] = {
            "username": credentials.username,
            "password": credentials.password,
            "ca_bundle": ca_bundle,
            "timeouts": Timeouts(connect=connect_timeout, read=read_timeout),
            "pool_size": max(concurrency, 1),
        }
        client = PersonClient(url=endpoint, wsdl=wsdl, **connection)
        groups_client = GroupClient(url=gms_url, **connection) if gms_url else None
        memberships_client = MembershipClient(url=mms_url, **connection) if mms_url else None
        settings = ExecutorSettings(
            # Objects in flight: never more than the budget, nor more than the workers can carry.
            max_in_flight=min(max_in_flight, concurrency * batch_size),
            batch_size=batch_size,
            circuit_threshold=circuit_threshold,
            retry=RetryPolicy(max_attempts=max_attempts),
            deletes=deletes_mode is not DeletesMode.OFF,
        )
        with (
            client,
            _closing(groups_client),
            _closing(memberships_client),
            _graceful_stop(stop),
            _progress(len(operations), enabled=_Output.terminal) as tick,
        ):
            execution = Executor(
                client=client,
                groups=groups_client,
                memberships=memberships_client,
                store=store,
                run_id=run_id,
                settings=settings,
                stop=stop,
                on_result=tick,
            ).run(operations)
        outcome = RunResult(
            run_id=run_id,
            plan=the_plan,
            results=execution.results,
            started_at=started,
            finished_at=_now_iso(),
            stopped=execution.stopped,
        )
        counts = {o.value: outcome.count(o) for o in Outcome}
        store.end_run(run_id, status=_run_status(outcome), summary=counts)
    _log.info("run_end", run_id=run_id, stopped=execution.stopped or None, **counts)
    if report is not None:
        from sync.report.render import render_run  # noqa: PLC0415

        meta = _meta("Run report", roster=roster, mapping=mapping, state=state, endpoint=endpoint)
        fmt = _report_format(report, report_format)
        _write(render_run(outcome, fmt=fmt, meta=meta), report)  # type: ignore[arg-type]
    _print_run_summary(outcome)
    if execution.fatal is not None:
        raise execution.fatal
    if execution.stopped.startswith("circuit open"):
        _fail(EXIT_UNREACHABLE, f"IMS ES unreachable: {execution.stopped}")
    failed = counts["rejected"] + counts["unconfirmed"] + counts["skipped"]
    if failed or the_plan.rejects:
        raise _Exit(EXIT_FAILED)


def _check_budget(*, concurrency: int, max_in_flight: int, batch_size: int) -> None:
    """Refuse settings that would put more objects in flight than the budget allows."""
    if concurrency > max_in_flight:
        _fail(
            EXIT_USAGE,
            f"--concurrency {concurrency} exceeds the in-flight budget {max_in_flight}; "
            "raise --max-in-flight only where the service allows it",
        )
    if batch_size > max_in_flight:
        _fail(
            EXIT_USAGE,
            f"--batch-size {batch_size} exceeds the in-flight budget {max_in_flight}: one request "
            "would carry more objects than may be unanswered at once",
        )
    if max_in_flight > 10:
        _log.warning("in_flight_override", max_in_flight=max_in_flight, itslearning_limit=10)


def _group_endpoints(
    endpoint: str, gms_endpoint: str | None, mms_endpoint: str | None, *, needs_gms: bool, needs_mms: bool
) -> tuple[str, str]:
    """The GMS and MMS endpoint URLs a command needs ("" for a service it does not use): as given, or
    derived from the PMS endpoint."""
    from sync.ims.transport import service_urls  # noqa: PLC0415

    if (needs_gms and not gms_endpoint) or (needs_mms and not mms_endpoint):
        try:
            derived_gms, derived_mms = service_urls(endpoint)
        except ConfigError as exc:
            _fail(EXIT_USAGE, f"{exc}; give --gms-endpoint and --mms-endpoint")
        gms_endpoint = gms_endpoint or derived_gms
        mms_endpoint = mms_endpoint or derived_mms
    return (gms_endpoint or "") if needs_gms else "", (mms_endpoint or "") if needs_mms else ""


@contextmanager
def _closing(client: Any) -> Iterator[None]:
    """Close an optional client (None: nothing to close)."""
    try:
        yield
    finally:
        if client is not None:
            client.close()


def _run_status(outcome: RunResult) -> str:
    if outcome.stopped:
        return "stopped"
    if any(r.outcome is not Outcome.CONFIRMED for r in outcome.results):
        return "partial"
    return "ok"


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar on a terminal; nothing under cron or with JSON logs."""
    if not enabled or total == 0:
        yield lambda _result: None
        return
    from rich.progress import Progress  # noqa: PLC0415

    lock = threading.Lock()
    with Progress(transient=True) as progress:
        task = progress.add_task("sending to IMS ES", total=total)

        def tick(_result: Any) -> None:
            with lock:
                progress.advance(task)

        yield tick


def _print_run_summary(outcome: RunResult) -> None:
    counts = {o.value: outcome.count(o) for o in Outcome}
    planned = _summary_line(outcome.plan).removeprefix("plan: ")
    line = (
        f"run {outcome.run_id}: {counts['confirmed']} confirmed, {counts['rejected']} rejected, "
        f"{counts['unconfirmed']} unconfirmed, {counts['skipped']} skipped (planned: {planned})"
    )
    click.echo(line)
    if outcome.stopped:
        _notice("stopped_early", f"stopped early: {outcome.stopped}", reason=outcome.stopped)
    if _Output.terminal:
        _rich_table(
            "Run " + outcome.run_id, ("Operation", "Planned", *_OUTCOME_NAMES), _outcome_rows(outcome)
        )
    if _Output.json:
        return  # each request is already an ims_request event, and run_end has the counts
    problems = [r for r in outcome.results if r.outcome is not Outcome.CONFIRMED]
    for result in problems[:_SHOWN_LINES]:
        reason = result.error or (result.status.description if result.status else "") or "not sent"
        key = getattr(result.operation, "sync_key", "")
        click.echo(f"{result.outcome.value}: {type(result.operation).__name__} {key}: {reason}", err=True)
    if len(problems) > _SHOWN_LINES:
        click.echo(f"... and {len(problems) - _SHOWN_LINES} more not confirmed (see --report)", err=True)


_OUTCOME_NAMES: Final = tuple(o.value for o in Outcome)


def _outcome_rows(outcome: RunResult) -> list[tuple[str, ...]]:
    """Operations by kind (rows) and outcome (columns), with a total row."""
    counts: dict[str, dict[str, int]] = {}
    for result in outcome.results:
        kind = type(result.operation).__name__
        row = counts.setdefault(kind, dict.fromkeys(_OUTCOME_NAMES, 0))
        row[result.outcome.value] += 1
    rows = [
        (kind, f"{sum(row.values()):,}", *(f"{row[name]:,}" for name in _OUTCOME_NAMES))
        for kind, row in sorted(counts.items())
    ]
    totals = [outcome.count(o) for o in Outcome]
    rows.append(("total", f"{len(outcome.results):,}", *(f"{n:,}" for n in totals)))
    return rows


# --- reconcile ------------------------------------------------------------------------------


@cli.command(epilog="Example: ims-sync reconcile --state ./state --format json")
@_state_opt
@click.option("--run", "run_id", default=None, help="Run id (default: the last run).")
@click.option("--all", "all_runs", is_flag=True, help="Every run in the journal.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", help="Output format."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write here (default: standard output).",
)
def reconcile(state: Path, run_id: str | None, all_runs: bool, fmt: str, output: Path | None) -> None:
    """Pair every request's messageIdentifier with its answer's messageIdRef; flag what is off.

    Exit 1 when any request is unanswered, unmatched or failed.
    """
    from sync.report.render import render_reconcile  # noqa: PLC0415
    from sync.state.reconcile import reconcile as check  # noqa: PLC0415
    from sync.state.snapshot import StateStore  # noqa: PLC0415

    if not (state / "state.sqlite3").exists():
        _fail(EXIT_USAGE, f"no state in {state}: nothing has run there yet")
    with StateStore.open(state, exclusive=False) as store:
        chosen = None if all_runs else (run_id or store.last_run_id())
        if chosen is None and not all_runs:
            _fail(EXIT_USAGE, f"no run recorded in {state}")
        rows = check(store.journal(chosen))
    _write(render_reconcile(rows, fmt=fmt), output)
    if any(row.flags - {"ok"} for row in rows):
        raise _Exit(EXIT_FAILED)


# --- snapshot -------------------------------------------------------------------------------


@cli.group(epilog="Example: ims-sync snapshot export --state /var/lib/ims-sync -o snapshot.csv")
def snapshot() -> None:
    """Inspect the snapshot: what IMS ES last confirmed."""


@snapshot.command("export", epilog="Example: ims-sync snapshot export --state ./state -o snapshot.csv")
@_state_opt
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the CSV here (default: standard output).",
)
@click.option(
    "--kind",
    type=click.Choice(["persons", "groups", "memberships"]),
    default="persons",
    show_default=True,
    help="Which records to export.",
)
def snapshot_export(state: Path, output: Path | None, kind: str) -> None:
    """Write the snapshot as CSV: persons (sync_key, identity, person fields; never passwords), groups
    (sync_key, identity, name, type, parent, description) or memberships (sync_key, group, person, role,
    active)."""
    from sync.report.render import frame_to_csv  # noqa: PLC0415
    from sync.state.snapshot import StateStore  # noqa: PLC0415

    if not (state / "state.sqlite3").exists():
        _fail(EXIT_USAGE, f"no state in {state}")
    with StateStore.open(state, exclusive=False) as store:
        loaders = {
            "persons": store.load_persons,
            "groups": store.load_groups,
            "memberships": store.load_memberships,
        }
        frame = loaders[kind]()
    _write(frame_to_csv(frame), output)


@snapshot.command(
    "adopt",
    epilog=(
        "Example: ims-sync snapshot adopt --state /var/lib/ims-sync -m oneroster-users "
        "--endpoint https://host/PersonManagementService.svc"
    ),
)
@_state_opt
@_mapping_opt
@_endpoint_opt
@_ca_bundle_opt
@_credentials_opt
@click.option(
    "--page-size",
    type=click.IntRange(1, 100),
    default=100,
    show_default=True,
    help="Persons per readAllPersons page (itslearning allows at most 100).",
)
@click.option(
    "--roster",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="With a set mapping: the roster folder, whose groups are read too (a group without members "
    "is found no other way).",
)
@_gms_opt
@_mms_opt
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
    from sync.ims.transport import GroupClient, MembershipClient, PersonClient  # noqa: PLC0415
    from sync.models import GROUP_FIELDS  # noqa: PLC0415
    from sync.read.mapping import SetMapping, load_any_mapping  # noqa: PLC0415
    from sync.state.adopt import adopt, adopt_memberships  # noqa: PLC0415
    from sync.state.snapshot import StateStore  # noqa: PLC0415

    loaded = load_any_mapping(mapping)
    with_groups = isinstance(loaded, SetMapping) and (bool(loaded.groups) or bool(loaded.memberships))
    if isinstance(loaded, SetMapping):
        identity = loaded.persons.mapping.identity
        group_identities = {entry.mapping.identity for entry in loaded.groups}
        group_identity = group_identities.pop() if len(group_identities) == 1 else ""
        group_identity = group_identity if group_identity in GROUP_FIELDS else ""
    else:
        identity, group_identity = loaded.identity, ""
    gms_url, mms_url = _group_endpoints(
        endpoint, gms_endpoint, mms_endpoint, needs_gms=with_groups, needs_mms=with_groups
    )
    roster_groups: list[str] = []
    if roster is not None and with_groups:
        roster_set = _read(roster, mapping)
        if roster_set.groups is not None:
            roster_groups = list(roster_set.groups.frame.index)
    credentials = _credentials(credentials_file)
    connection: dict[str, Any] = {
        "username": credentials.username,
        "password": credentials.password,
        "ca_bundle": ca_bundle,
    }
    summary: dict[str, int] = {}
    with StateStore.open(state) as store:
        run_id = store.begin_run(command="adopt", roster="", mapping=mapping)
        try:
            with PersonClient(url=endpoint, **connection) as client:
                result = adopt(client, store, run_id=run_id, identity_field=identity, page_size=page_size)
            summary = {"persons": result.persons, "pages": result.pages}
            click.echo(
                f"adopted {result.persons} persons in {result.pages} pages "
                f"(the service reports {result.reported_total}) into {state}"
            )
            if with_groups:
                with (
                    GroupClient(url=gms_url, **connection) as groups,
                    MembershipClient(url=mms_url, **connection) as memberships,
                ):
                    found = adopt_memberships(
                        groups,
                        memberships,
                        store,
                        run_id=run_id,
                        persons=list(store.load_persons().index),
                        also_groups=roster_groups,
                        group_identity_field=group_identity,
                    )
                summary.update(
                    groups=found.groups, memberships=found.memberships, failed_reads=len(found.failed_reads)
                )
                click.echo(f"adopted {found.groups} groups and {found.memberships} memberships into {state}")
                for failure in found.failed_reads[:_SHOWN_LINES]:
                    _notice("adopt_read_failed", f"not adopted: {failure}", failure=failure)
        except BaseException:
            store.end_run(run_id, status="failed", summary=summary)
            raise
        store.end_run(run_id, status="ok", summary=summary)


# --- mapping --------------------------------------------------------------------------------


@cli.group(epilog="Example: ims-sync mapping init export.csv -o my-school.toml")
def mapping() -> None:
    """Built-in mappings, and a starter mapping for your own CSV export."""


@mapping.command("init", epilog="Example: ims-sync mapping init export.csv -o my-school.toml")
@_roster_arg
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the mapping here (default: standard output). An existing file is kept unless --force.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
def mapping_init(roster: Path, output: Path | None, force: bool) -> None:
    """Guess a starter mapping TOML from a roster's header and values; review its TODOs, then validate.

    Columns are recognised by common English, Norwegian, Swedish and OneRoster names; the delimiter and
    encoding are detected; every role value seen is listed under [values.role].
    """
    from sync.read.mapping import load_mapping  # noqa: PLC0415
    from sync.read.mapping_init import starter_mapping  # noqa: PLC0415

    if roster.is_dir():
        oneroster = all((roster / name).is_file() for name in ("users.csv", "orgs.csv", "classes.csv"))
        hint = (
            "it looks like a OneRoster folder: use the built-in set mapping, --mapping oneroster"
            if oneroster
            else "give one of its CSV files; a set mapping (see `ims-sync mapping list`) reads a folder"
        )
        _fail(EXIT_USAGE, f"{roster} is a folder and mapping init reads one CSV file; {hint}")
    text = starter_mapping(roster)
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        _fail(EXIT_USAGE, f"{output} exists; choose another --output or add --force")
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(EXIT_USAGE, f"cannot write {output}: {exc.strerror}")
    load_mapping(output)  # the guess must always load; a ConfigError here is a bug worth seeing
    _notice(
        "mapping_written",
        f"mapping written to {output}; review its TODOs, then: ims-sync validate {roster} --mapping {output}",
        path=str(output),
    )


@mapping.command("list", epilog="Example: ims-sync mapping list")
def mapping_list() -> None:
    """List the built-in mappings (usable by name with --mapping) and where their files are."""
    import tomllib  # noqa: PLC0415

    from sync.read.mapping import builtin_mappings  # noqa: PLC0415

    for name, path in builtin_mappings().items():
        with path.open("rb") as fh:
            description = str(tomllib.load(fh).get("description", ""))
        click.echo(f"{name:<20} {description}  ({path})")


# --- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (also for tests: `main([...])`)."""
    _Output.reset()
    try:
        return _main(argv)
    finally:
        _Output.close()


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="ims-sync", standalone_mode=False)
    except _Exit as exc:
        if exc.message:
            _exit_message(exc.code, exc.message)
        return exc.code
    except click.exceptions.Abort:
        return _exit_message(EXIT_FAILED, "aborted")
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except (AuthenticationError, CertificateError) as exc:
        return _exit_message(EXIT_USAGE, str(exc))
    except RemoteError as exc:
        return _exit_message(EXIT_UNREACHABLE, f"IMS ES unreachable: {exc}")
    except (ConfigError, RosterError, StateError) as exc:
        return _exit_message(EXIT_USAGE, str(exc))
    except SyncError as exc:
        return _exit_message(EXIT_FAILED, str(exc))
    return EXIT_OK


def _exit_message(code: int, message: str) -> int:
    """Say why the command ends: a JSON `exit` event under JSON logging, a plain stderr line otherwise.

    With --log-file the plain line goes to stderr as well, so cron mail and the systemd journal show it.
    """
    if _Output.json:
        _log.error("exit", exit_code=code, message=message)
    if not _Output.json or _Output.log_file is not None:
        click.echo(f"ims-sync: {message}", err=True)
    return code
