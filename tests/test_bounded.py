"""Bounded in time and size: a misbehaving HTTPS server on loopback cannot hold a request past
--connect-timeout + --read-timeout, nor hand over an answer past --max-answer-mb; --max-run-time ends a
run gracefully. Every run goes through the CLI, zeep and real TLS."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import click
import pytest

from sync.cli.app import main
from sync.cli.options import DURATION
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sync.emulator import Emulator
from sync.errors import TransientError
from sync.ims.clients import PersonClient
from sync.ims.exchange import Timeouts
from sync.models import Outcome
from sync.send.circuit import Halt, StopRequest
from sync.send.policy import judge_failure
from sync.state.store import StateStore
from tests.checks import duplicates, journal_problems, person_row, run_args, set_credentials, write_roster
from tests.conftest import PASSWORD, USERNAME
from tests.executing import person
from tests.misbehaving import GIVE_UP, Misbehaving

#: The tests' timeouts: a request may take CONNECT + READ seconds in all.
CONNECT: Final = 1.0
READ: Final = 1.0
BOUND: Final = CONNECT + READ
#: What a run may take besides its one bounded request (start-up, planning, the state, the report).
MARGIN: Final = 1.5
TIMEOUTS: Final = ("--connect-timeout", str(CONNECT), "--read-timeout", str(READ))


@pytest.fixture(name="misbehaving")
def fixture_misbehaving(emulator_factory: Callable[..., Emulator]) -> Callable[[str], Misbehaving]:
    """`misbehaving(mode)` starts an emulator that delivers its answers in `mode`; stopped at teardown."""

    def start(mode: str) -> Misbehaving:
        server = emulator_factory(make=lambda config: Misbehaving(config, mode))
        assert isinstance(server, Misbehaving)
        return server

    return start


@pytest.fixture(name="cli")
def fixture_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, float]]:
    """`cli(*args)` runs ims-sync with JSON logs: (exit code, stdout + stderr, wall seconds)."""
    set_credentials(monkeypatch)

    def run(*args: str) -> tuple[int, str, float]:
        started = time.monotonic()
        code = main(["--log-format", "json", *args])
        elapsed = time.monotonic() - started
        out, err = capsys.readouterr()
        return code, out + err, elapsed

    return run


def journal_of(state: Path) -> list[Any]:
    """The last run's journal entries."""
    with StateStore.open(state, exclusive=False) as store:
        return store.journal(store.last_run_id())


def assert_abandoned(state: Path, output: str, *, phrase: str, attempts: int = 1) -> None:
    """The run's one create was journalled as sent, answered by nothing, unconfirmed; no traceback."""
    entries = journal_of(state)
    assert [(e.operation, e.attempt, e.outcome, e.code_major) for e in entries] == [
        ("createPerson", n, Outcome.UNCONFIRMED.value, None) for n in range(1, attempts + 1)
    ]
    assert all(phrase in e.error for e in entries), [e.error for e in entries]
    assert journal_problems(state) == []
    assert "Traceback" not in output
    assert "1 unconfirmed" in output


def one_person_run(
    cli: Callable[..., tuple[int, str, float]], server: Emulator, tmp_path: Path, *extra: str
) -> tuple[Path, list[str], tuple[int, str, float]]:
    """Run one person's create against `server`: (state, the run's arguments, what `cli` returned)."""
    roster = write_roster(tmp_path / "users.csv", [person_row(1)])
    state = tmp_path / "state"
    args = [*run_args(server, roster, state, *TIMEOUTS), *extra]
    return state, args, cli(*args)


def assert_rerun_converges(
    cli: Callable[..., tuple[int, str, float]], server: Misbehaving, args: list[str]
) -> None:
    """Once the server behaves, the same run confirms the person, who exists once."""
    server.mode = "well"
    code, output, _ = cli(*args)
    assert code == EXIT_OK, output
    assert list(server.persons()) == ["p0001"]
    assert duplicates(server.persons()) == []


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("trickle", id="trickled-body"),
        pytest.param("slow-headers-then-stall", id="stall-after-headers"),
        pytest.param("endless", id="endless-body"),
    ],
)
def test_a_request_is_abandoned_at_its_bound_and_the_next_run_converges(
    mode: str,
    misbehaving: Callable[[str], Misbehaving],
    cli: Callable[..., tuple[int, str, float]],
    tmp_path: Path,
) -> None:
    """Whatever the server does after accepting a request, the run gives it up at connect + read timeout."""
    server = misbehaving(mode)
    state, args, (code, output, elapsed) = one_person_run(cli, server, tmp_path)
    assert elapsed < BOUND + MARGIN, f"the run took {elapsed:.1f} s; its request may take {BOUND} s"
    assert code == EXIT_FAILED, output
    assert_abandoned(state, output, phrase=f"no complete answer within {BOUND:g} s")
    assert list(server.persons()) == ["p0001"]  # the create landed; its answer never arrived
    assert_rerun_converges(cli, server, args)
    assert [e.outcome for e in journal_of(state)] == [Outcome.CONFIRMED.value]


def test_an_abandoned_request_is_retried_as_a_transient_fault(
    misbehaving: Callable[[str], Misbehaving], cli: Callable[..., tuple[int, str, float]], tmp_path: Path
) -> None:
    """With two attempts, a trickled answer is abandoned twice, each within the bound, and retried."""
    server = misbehaving("trickle")
    with PersonClient(
        url=server.pms_url,
        username=USERNAME,
        password=PASSWORD,
        ca_bundle=server.ca_path,
        timeouts=Timeouts(connect=CONNECT, read=READ),
    ) as client:
        started = time.monotonic()
        with pytest.raises(TransientError, match="abandoned") as caught:
            client.create_person(person(1))
    assert time.monotonic() - started < BOUND + 0.5
    verdict = judge_failure(caught.value)
    assert verdict is not None
    assert verdict.retry
    assert verdict.transient
    state, _, (code, output, elapsed) = one_person_run(cli, server, tmp_path, "--max-attempts", "2")
    assert code == EXIT_FAILED
    # Two bounded attempts and the back-off between them (at most 1 s plus 1 s of jitter).
    assert elapsed < 2 * BOUND + 2.0 + MARGIN, elapsed
    assert_abandoned(state, output, phrase="abandoned", attempts=2)


@pytest.mark.parametrize("mode", ["oversized", "oversized-declared"])
def test_an_oversized_answer_is_refused_and_not_retried(
    mode: str,
    misbehaving: Callable[[str], Misbehaving],
    cli: Callable[..., tuple[int, str, float]],
    tmp_path: Path,
) -> None:
    """An answer past --max-answer-mb is refused: unconfirmed, not retried (it would come back as large)."""
    server = misbehaving(mode)
    state, args, (code, output, elapsed) = one_person_run(
        cli, server, tmp_path, "--max-attempts", "3", "--max-answer-mb", "1"
    )
    assert elapsed < BOUND + MARGIN, elapsed
    assert code == EXIT_FAILED, output
    assert_abandoned(state, output, phrase="exceeds the size limit of 1 MB")
    assert_rerun_converges(cli, server, args)


def test_max_run_time_stops_the_run_and_the_next_run_converges(
    emulator_factory: Callable[..., Emulator], cli: Callable[..., tuple[int, str, float]], tmp_path: Path
) -> None:
    """--max-run-time ends a slow run: exit 1, the rest skipped and why; a rerun creates the rest once."""
    emulator = emulator_factory(latency_ms=300)
    rows = [person_row(n) for n in range(1, 21)]
    roster = write_roster(tmp_path / "users.csv", rows)
    state = tmp_path / "state"
    report = tmp_path / "run.md"
    args = [*run_args(emulator, roster, state), "--concurrency", "1", "--max-in-flight", "1"]
    code, output, elapsed = cli(*args, "--max-run-time", "1.5s", "--report", str(report))
    assert code == EXIT_FAILED, output
    assert elapsed < 1.5 + 0.3 + MARGIN + 1.0  # the limit, one request in flight, start-up
    assert "Traceback" not in output
    assert "max run time reached (--max-run-time 1.5 s)" in output
    created = len(emulator.persons())
    assert 1 <= created < 20
    assert f"{created} confirmed, 0 rejected, 0 unconfirmed, {20 - created} skipped" in output
    text = report.read_text(encoding="utf-8")
    assert "The run stopped early: max run time reached" in text
    assert text.count("not sent: the run stopped before reaching it") == 20 - created
    code, output, _ = cli(*args)
    assert code == EXIT_OK, output
    assert sorted(emulator.persons()) == sorted(row["sourcedId"] for row in rows)
    creates = [event.sync_key for event in emulator.history() if event.operation == "createPerson"]
    assert sorted(creates) == sorted(row["sourcedId"] for row in rows)  # nothing created twice


def test_a_stop_request_cuts_a_wait_short_and_says_why() -> None:
    """A stop requested for a reason ends a wait between retries at once and is the run's stop reason."""
    stop = StopRequest()
    threading.Timer(0.2, stop.request, ("max run time reached",)).start()
    started = time.monotonic()
    stop.wait_between(30.0)
    assert time.monotonic() - started < 2.0
    stop.request("a later reason")  # the first reason stands
    assert Halt(threshold=1, stop=stop).reason() == "max run time reached"
    signalled = StopRequest()
    signalled.set()  # what the SIGTERM handler does
    assert Halt(threshold=1, stop=signalled).reason() == "stopped by signal"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("45s", 45.0), ("90m", 5400.0), ("4h", 14400.0), ("1h30m", 5400.0)]
)
def test_max_run_time_takes_seconds_or_a_duration(text: str, seconds: float) -> None:
    """--max-run-time reads plain seconds and durations with s, m, h, d parts."""
    assert DURATION.convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["soon", "4x", "0", "-3h", "h"])
def test_max_run_time_refuses_what_is_no_duration(
    text: str, cli: Callable[..., tuple[int, str, float]], tmp_path: Path
) -> None:
    """A value that is no positive duration is a usage error that says what is expected."""
    with pytest.raises(click.BadParameter, match="is not a duration"):
        DURATION.convert(text, None, None)
    roster = write_roster(tmp_path / "users.csv", [person_row(1)])
    code, output, _ = cli("run", str(roster), "-m", "oneroster-users", "--state", str(tmp_path / "s"),
                          "--endpoint", "https://127.0.0.1:1/x", "--max-run-time", text)  # fmt: skip
    assert code == EXIT_USAGE
    assert "is not a duration" in output


def test_config_file_sets_the_new_limits(cli: Callable[..., tuple[int, str, float]], tmp_path: Path) -> None:
    """max_run_time and max_answer_mb are config keys: a bad value there is reported like a bad flag."""
    config = tmp_path / "ims-sync.toml"
    config.write_text('[sync]\nmax_run_time = "4h"\nmax_answer_mb = 0\n', encoding="utf-8")
    roster = write_roster(tmp_path / "users.csv", [person_row(1)])
    code, output, _ = cli("--config", str(config), "run", str(roster), "-m", "oneroster-users",
                          "--state", str(tmp_path / "s"), "--endpoint", "https://127.0.0.1:1/x")  # fmt: skip
    assert code == EXIT_USAGE
    assert "max-answer-mb" in output


assert GIVE_UP > BOUND + MARGIN + 2  # today's unbounded client would take GIVE_UP: visibly too long
