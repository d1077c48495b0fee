"""`run`: plan, send the changes to IMS ES, record what it confirmed (`reconcile` checks the journal after).

The only command that sends: they import the IMS ES transport (zeep) and the executor, inside the
command, so other commands start without them.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import structlog

from sync.cli import approval, limits, stages
from sync.cli.approval import approve_opt, plan_file_opt
from sync.cli.by_school import by_school_opt, check_target, target_opt, write_folder
from sync.cli.config import Credentials
from sync.cli.options import (
    DURATION,
    REPORT_FORMATS,
    accept_shrunk_opt,
    connection,
    credentials,
    deletes_opt,
    file_opt,
    group_endpoint_opts,
    group_endpoints,
    limit_opts,
    mapping_opt,
    number_opt,
    only_opt,
    report_format,
    roster_arg,
    service_opts,
    state_opt,
)
from sync.cli.output import (
    EXIT_FAILED,
    EXIT_SAFETY,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Exit,
    Output,
    exit_of,
    fail,
    notice,
    now_iso,
    print_rejects,
    write,
)
from sync.cli.summaries import announce_selection, print_run_summary
from sync.errors import StateError
from sync.models import DeletesMode, Outcome, Plan, RunResult, parent_portal_notice
from sync.models.service import MAX_BATCH_SIZE, MAX_IN_FLIGHT
from sync.plan.fingerprint import Fingerprint
from sync.plan.limits import Rule

if TYPE_CHECKING:
    from sync.cli.metrics import RunFigures

__all__ = ["run"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """`run`'s options, as click resolved them (flags > environment > config file > defaults)."""

    roster: Path
    mapping: str
    state: Path
    endpoint: str
    ca_bundle: Path | None
    credentials_file: Path | None
    concurrency: int
    max_in_flight: int
    batch_size: int
    wsdl: str | None
    connect_timeout: float
    read_timeout: float
    max_answer_mb: int
    max_run_time: float | None
    max_attempts: int
    circuit_threshold: int
    deletes: str
    gms_endpoint: str | None
    mms_endpoint: str | None
    max_change_share: float
    max_change_count: int
    limit_rules: tuple[Rule, ...]
    accept_changes: int
    accept_deletes: int
    accept_shrunk_roster: bool
    report: Path | None
    report_format: str | None
    report_by_school: bool
    metrics_file: Path | None
    only: frozenset[str] | None
    plan_file: Path | None
    approve: str | None

    @property
    def deletes_mode(self) -> DeletesMode:
        return DeletesMode(self.deletes)


@click.command(
    epilog=(
        "Example: IMS_ES_USERNAME=... IMS_ES_PASSWORD=... ims-sync run users.csv -m oneroster-users "
        "--state /var/lib/ims-sync --endpoint https://host/PersonManagementService.svc --report run.html"
    )
)
@roster_arg
@mapping_opt
@state_opt
@service_opts
@number_opt("--concurrency", click.IntRange(1, 256), 10, "Workers.")
@number_opt(
    "--max-in-flight",
    click.IntRange(1, 1024),
    MAX_IN_FLIGHT,
    "Objects unanswered at once. itslearning asks for fewer than 10: raise only where allowed.",
)
@number_opt(
    "--batch-size",
    click.IntRange(1, MAX_BATCH_SIZE),
    1,
    "Objects per mass request (createPersons, createGroups, createMemberships, deleteMemberships; "
    "1: single calls). Counts against --max-in-flight.",
)
@click.option(
    "--wsdl",
    default=None,
    help="Load the WSDL from this URL or file (e.g. ENDPOINT?singleWsdl) instead of the bundled one.",
)
@number_opt("--connect-timeout", float, 60.0, "Seconds.")
@number_opt(
    "--read-timeout",
    float,
    300.0,
    "Seconds. A request that has no complete answer --connect-timeout + --read-timeout after it "
    "started is abandoned (unconfirmed, retried).",
)
@number_opt(
    "--max-answer-mb",
    click.IntRange(1, 10_000),
    50,
    "Answers larger than this many MB are refused (unconfirmed, not retried).",
)
@click.option(
    "--max-run-time",
    type=DURATION,
    default=None,
    help="Stop sending this long after the run started (seconds, or e.g. 90m, 4h): requests in flight "
    "finish, the rest is reported as skipped, exit 1. Default: no limit.",
)
@number_opt(
    "--max-attempts",
    click.IntRange(1, 20),
    5,
    "Tries per request for transient faults (timeouts, 503s); data errors are never retried.",
)
@number_opt(
    "--circuit-threshold",
    click.IntRange(1, 10_000),
    20,
    "Consecutive transient failures after which the run stops (exit 4).",
)
@deletes_opt
@group_endpoint_opts
@limit_opts
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
@accept_shrunk_opt
@target_opt(
    "--report",
    help="Write a run report here: every operation's outcome, failures with reasons (with "
    "--report-by-school, a folder).",
)
@click.option(
    "--report-format",
    type=click.Choice(REPORT_FORMATS),
    default=None,
    help="Run report format (default: from the --report suffix, else md).",
)
@by_school_opt("--report-by-school")
@only_opt
@plan_file_opt
@approve_opt
@file_opt(
    "--metrics-file",
    help="Write the run's figures here (Prometheus text, for node_exporter's textfile collector; "
    "rewritten atomically, whatever the exit code).",
)
def run(**options: Any) -> None:
    """Plan, then send the changes to IMS ES; the snapshot follows what IMS ES confirmed."""
    settings = RunSettings(**options)
    limit = settings.max_run_time
    deadline = None if limit is None else time.monotonic() + limit
    with _metrics(settings.metrics_file, settings.state) as figures:
        _run(settings, figures, deadline)


def _run(settings: RunSettings, figures: RunFigures, deadline: float | None) -> None:
    from sync.state.store import StateStore  # noqa: PLC0415

    _check_budget(settings)
    fmt = report_format(settings.report, settings.report_format)
    check_target(
        settings.report,
        fmt,
        by_school=settings.report_by_school,
        option="report",
        flag="--report-by-school",
        format_flag="--report-format",
    )
    user = credentials(settings.credentials_file)
    roster_set = stages.read(settings.roster, settings.mapping)
    endpoints = group_endpoints(
        settings.endpoint,
        settings.gms_endpoint,
        settings.mms_endpoint,
        needs_gms=roster_set.groups is not None,
        needs_mms=roster_set.memberships is not None,
    )
    started = now_iso()
    fresh = not stages.has_state(settings.state)
    with StateStore.open(settings.state) as store:
        stages.refuse_shrunk(roster_set, store.runs(), accepted=settings.accept_shrunk_roster)
        snapshots = stages.snapshots(store)
        figures.plan = stages.plan(roster_set, snapshots)
        made = figures.plan

        @functools.cache
        def fingerprint() -> Fingerprint:  # made only for --plan, --approve or a breach
            state = None if fresh else approval.snapshot_state(store, snapshots)
            return _fingerprint(settings, roster_set, state, made)

        schools = stages.school_counts(made, snapshots)
        the_plan, selection, breaches = _safe_plan(settings, figures, fingerprint, schools)
        run_id = store.begin_run(command="run", roster=str(settings.roster), mapping=settings.mapping)
        _log.info("run_start", run_id=run_id, endpoint=settings.endpoint, **the_plan.summary.as_dict())
        execution = _execute(settings, store, run_id, selection.send, user, endpoints, deadline)
        outcome = RunResult(
            run_id=run_id,
            plan=the_plan,
            results=execution.results,
            started_at=started,
            finished_at=now_iso(),
            stopped=execution.stopped,
        )
        figures.result = outcome
        counts = {o.value: outcome.count(o) for o in Outcome}
        status = _run_status(outcome, held=bool(breaches))
        _end_run(store, run_id, status, counts, execution.fatal, roster_set.file_rows)
        if settings.metrics_file is not None:
            figures.count_requests(store.journal(run_id))
    _log.info("run_end", run_id=run_id, stopped=execution.stopped or None, **counts)
    portal = outcome.parent_portal_disabled()
    if portal:  # once per run, however many persons it concerns; not a failure
        notice("parent_portal_disabled", f"warning: {parent_portal_notice(len(portal))}", persons=len(portal))
    _finish(settings, outcome, execution, counts, selection)
    if breaches:  # the rest was sent; what breached is held (after any exit 4 or fatal error above)
        fail(EXIT_SAFETY, limits.stopped_message(breaches, fingerprint().value))
    _exit_failed(outcome, counts)


def _end_run(
    store: Any,
    run_id: str,
    status: str,
    counts: dict[str, int],
    fatal: Exception | None,
    roster_rows: dict[str, int],
) -> None:
    """Record how the run ended, and the data rows of the roster files it read (the next run's
    measure of a truncated export); when the state itself stopped the run, its error is the one to tell."""
    try:
        store.end_run(run_id, status=status, summary=counts, roster_rows=roster_rows)
    except StateError:
        if not isinstance(fatal, StateError):
            raise


def _check_budget(settings: RunSettings) -> None:
    """Refuse settings that would put more objects in flight than the budget allows."""
    concurrency, max_in_flight, batch_size = settings.concurrency, settings.max_in_flight, settings.batch_size
    if concurrency > max_in_flight:
        fail(
            EXIT_USAGE,
            f"--concurrency {concurrency} exceeds the in-flight budget {max_in_flight}; "
            "raise --max-in-flight only where the service allows it",
        )
    if batch_size > max_in_flight:
        fail(
            EXIT_USAGE,
            f"--batch-size {batch_size} exceeds the in-flight budget {max_in_flight}: one request "
            "would carry more objects than may be unanswered at once",
        )
    if max_in_flight > MAX_IN_FLIGHT:
        _log.warning("in_flight_override", max_in_flight=max_in_flight, itslearning_limit=MAX_IN_FLIGHT)


def _fingerprint(settings: RunSettings, roster_set: Any, state: bytes | None, the_plan: Plan) -> Fingerprint:
    """The fingerprint of the plan this run made (as `plan` makes it with the same settings)."""
    return approval.of_plan(
        roster_set,
        settings.mapping,
        state,
        the_plan,
        deletes=settings.deletes,
        max_share=settings.max_change_share,
        max_count=settings.max_change_count,
        only=settings.only,
        limits=limits.limits_setting(settings.limit_rules),
    )


def _safe_plan(
    settings: RunSettings, figures: RunFigures, fingerprint_of: Callable[[], Fingerprint], schools: Any
) -> tuple[Plan, Any, list[Any]]:
    """The plan, its rejected rows shown, what the run sends of it (`stages.select`: `--only`, pause
    windows; less what breaches a safety limit, held unless approved by `--approve`) once it is the
    reviewed one (`--plan`, else exit 2), and the breaches that hold operations.
    `fingerprint_of` makes the plan's fingerprint, when needed; `schools` (`stages.school_counts`) what
    the per-school limits measure against."""
    the_plan = figures.plan
    assert the_plan is not None
    print_rejects(the_plan)
    fingerprint = fingerprint_of() if settings.plan_file or settings.approve else None
    if settings.plan_file is not None and fingerprint is not None:
        approval.check_reviewed(settings.plan_file, fingerprint)
    safety = limits.safety_limits(
        max_share=settings.max_change_share,
        max_count=settings.max_change_count,
        flags=settings.limit_rules,
        accept_changes=settings.accept_changes,
        accept_deletes=settings.accept_deletes,
    )
    selection = stages.select(the_plan, deletes=settings.deletes, only=settings.only)
    announce_selection(selection, deletes=settings.deletes, only=settings.only)
    held, breaches = limits.hold_breaches(
        the_plan,
        selection,
        safety,
        deletes=settings.deletes_mode,
        fingerprint=lambda: fingerprint_of().value,
        schools=schools,
    )
    if fingerprint is not None and approval.check_approved(settings.approve, fingerprint, breaches):
        breaches = []
    else:
        limits.log_breaches(breaches)
        selection = held
    figures.held = Counter(h.cause for h in selection.held)
    return the_plan, selection, breaches


def _execute(
    settings: RunSettings,
    store: Any,
    run_id: str,
    operations: list[Any],
    user: Credentials,
    endpoints: tuple[str, str],
    deadline: float | None,
) -> Any:
    """Send `operations` (what `stages.select` lets through of the plan), until `deadline`
    (time.monotonic(); None: no limit); the executor's outcome."""
    from sync.ims.clients import GroupClient, MembershipClient, PersonClient  # noqa: PLC0415
    from sync.ims.deadline import MB  # noqa: PLC0415
    from sync.ims.exchange import Timeouts  # noqa: PLC0415
    from sync.send.circuit import StopRequest  # noqa: PLC0415
    from sync.send.executor import Executor  # noqa: PLC0415
    from sync.send.policy import ExecutorSettings, RetryPolicy  # noqa: PLC0415

    deletes = settings.deletes_mode
    stop = StopRequest()
    timeouts = Timeouts(connect=settings.connect_timeout, read=settings.read_timeout)
    clients = connection(
        user,
        settings.ca_bundle,
        timeouts=timeouts,
        pool_size=max(settings.concurrency, 1),
        max_answer_bytes=settings.max_answer_mb * MB,
    )
    gms_url, mms_url = endpoints
    client = PersonClient(url=settings.endpoint, wsdl=settings.wsdl, **clients)
    groups_client = GroupClient(url=gms_url, **clients) if gms_url else None
    memberships_client = MembershipClient(url=mms_url, **clients) if mms_url else None
    executor_settings = ExecutorSettings(
        # Objects in flight: never more than the budget, nor more than the workers can carry.
        max_in_flight=min(settings.max_in_flight, settings.concurrency * settings.batch_size),
        batch_size=settings.batch_size,
        circuit_threshold=settings.circuit_threshold,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        deletes=deletes is not DeletesMode.OFF,
    )
    with (
        client,
        _closing(groups_client),
        _closing(memberships_client),
        _graceful_stop(stop),
        _time_limit(stop, deadline, settings.max_run_time),
        _progress(len(operations), enabled=Output.terminal) as tick,
    ):
        return Executor(
            client=client,
            groups=groups_client,
            memberships=memberships_client,
            store=store,
            run_id=run_id,
            settings=executor_settings,
            stop=stop,
            sleep=stop.wait_between,  # a stop cuts a wait between retries short
            on_result=tick,
        ).run(operations)


def _finish(
    settings: RunSettings, outcome: RunResult, execution: Any, counts: dict[str, int], selection: Any
) -> None:
    """Write the report and the summary; exit 4 (or raise the fatal error) when the outcome calls for it."""
    if settings.report is not None:
        from sync.report.render import render_run  # noqa: PLC0415

        meta = stages.meta(
            "Run report",
            roster=settings.roster,
            mapping=settings.mapping,
            state=settings.state,
            endpoint=settings.endpoint,
            selection=selection,
        )
        if settings.report_by_school:
            from sync.report.as_school_html import run_school_files  # noqa: PLC0415

            held = [(h.operation, h.reason) for h in selection.held] if selection is not None else []
            write_folder(run_school_files(outcome, meta=meta, held=held), settings.report)
        else:
            fmt = report_format(settings.report, settings.report_format)
            write(render_run(outcome, fmt=fmt, meta=meta), settings.report)  # type: ignore[arg-type]
    print_run_summary(outcome)
    if execution.fatal is not None:
        raise execution.fatal
    if execution.stopped.startswith("circuit open"):
        fail(EXIT_UNREACHABLE, f"IMS ES unreachable: {execution.stopped}")


def _exit_failed(outcome: RunResult, counts: dict[str, int]) -> None:
    """Exit 1 when operations failed or rows were rejected (all recorded)."""
    failed = counts["rejected"] + counts["unconfirmed"] + counts["skipped"]
    if failed or outcome.plan.rejects:
        raise Exit(EXIT_FAILED)


def _run_status(outcome: RunResult, *, held: bool) -> str:
    """How the journal records the run: stopped, partial (something failed, or was held at a safety
    limit) or ok."""
    if outcome.stopped:
        return "stopped"
    if held or any(r.outcome is not Outcome.CONFIRMED for r in outcome.results):
        return "partial"
    return "ok"


@contextmanager
def _metrics(path: Path | None, state: Path) -> Iterator[RunFigures]:
    """Gather the run's figures; at the end, however it ends, write them to `path` (if any)."""
    from sync.cli.metrics import RunFigures, write_metrics  # noqa: PLC0415 - prometheus_client on demand

    figures = RunFigures(state=str(state.resolve()), started_at=datetime.now(UTC))
    try:
        yield figures
    except BaseException as exc:
        figures.exit_code = ended[0] if (ended := exit_of(exc)) is not None else EXIT_FAILED
        raise
    finally:
        figures.finished_at = datetime.now(UTC)
        if path is not None:
            try:
                write_metrics(path, figures)
            except OSError as exc:
                notice("metrics_not_written", f"cannot write the metrics file {path}: {exc.strerror or exc}")


@contextmanager
def _graceful_stop(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop taking work and let requests in flight finish. Second: abort."""

    signalled: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if signalled:
            raise KeyboardInterrupt
        signalled.append(signum)
        stop.set()
        name = signal.Signals(signum).name
        notice(
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


@contextmanager
def _time_limit(stop: Any, deadline: float | None, limit: float | None) -> Iterator[None]:
    """At `deadline` (`--max-run-time` after the start), stop taking work as a first SIGTERM would."""
    if deadline is None or limit is None:
        yield
        return
    shown = f"--max-run-time {limit:g} s"

    def expire() -> None:
        stop.request(f"max run time reached ({shown}); what was not sent is skipped")
        notice("max_run_time", f"max run time reached ({shown}): finishing requests in flight, then stopping")

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def _closing(client: Any) -> Iterator[None]:
    """Close an optional client (None: nothing to close)."""
    try:
        yield
    finally:
        if client is not None:
            client.close()


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
