"""Crash safety: runs killed at random moments lose nothing, signals stop runs cleanly, one run per state."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sync.emulator import Emulator
from sync.emulator.tls import TlsMaterial
from sync.state.store import StateStore
from tests.checks import (
    as_fields,
    duplicates,
    emulator_file_message_ids,
    emulator_file_persons,
    expected_persons,
    journal_count,
    journal_ids,
    journal_problems,
    person_row,
    snapshot_persons,
    write_roster,
)
from tests.conftest import PASSWORD, USERNAME
from tests.forkserver import ForkServer

pytestmark = pytest.mark.slow

ROOT: Final = Path(__file__).resolve().parents[1]
ENV: Final = {"IMS_ES_USERNAME": USERNAME, "IMS_ES_PASSWORD": PASSWORD}
TRIALS: Final = 22
SEED: Final = 20261126


@dataclass
class EmulatorProcess:
    """`ims-sync emulator` in its own process, its state in a SQLite file."""

    process: subprocess.Popen[str]
    pms_url: str
    ca_path: Path
    state: Path

    def stop(self) -> str:
        """SIGTERM it; what it printed after starting (e.g. the faults it injected)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return out


@pytest.fixture(name="forks", scope="module")
def fixture_forks() -> Iterator[ForkServer]:
    """A warm interpreter that forks `ims-sync` runs (each a real process, killable at will)."""
    server = ForkServer(ROOT)
    yield server
    server.close()


@pytest.fixture(name="emulator_process")
def fixture_emulator_process(tmp_path: Path, tls_material: TlsMaterial) -> Iterator[EmulatorProcess]:
    """The emulator as its own process with latency, dropped answers, 503s and SOAP faults, seeded."""
    state = tmp_path / "emulator.sqlite3"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync",
            "emulator",
            "--port",
            "0",
            "--state",
            str(state),
            "--tls-cert",
            str(tls_material.cert),
            "--tls-key",
            str(tls_material.key),
            "--latency-ms",
            "8",
            "--drop-rate",
            "0.03",
            "--error-rate",
            "0.03",
            "--fault-rate",
            "0.02",
            "--seed",
            "7",
        ],
        cwd=ROOT,
        env={**os.environ, **ENV, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    url = ""
    for line in process.stdout:
        if line.startswith("PMS URL:"):
            url = line.split()[-1]
        if line.startswith("Serving"):
            break
    if not url:
        process.kill()
        pytest.fail("the emulator process did not start")
    running = EmulatorProcess(process=process, pms_url=url, ca_path=tls_material.cert, state=state)
    yield running
    running.stop()


def run_argv(
    state: Path,
    roster: Path,
    url: str,
    ca: Path,
    *extra: str,
    log: Path | None = None,
    mapping: str = "oneroster-users",
) -> list[str]:
    """The `ims-sync run` arguments of these tests (logging to `log` when given)."""
    return [
        "--log-format",
        "json",
        *(["--log-file", str(log)] if log is not None else []),
        "run",
        str(roster),
        "-m",
        mapping,
        "--state",
        str(state),
        "--endpoint",
        url,
        "--ca-bundle",
        str(ca),
        *extra,
    ]


def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0, step: float = 0.003) -> bool:
    """Poll `condition` until it holds (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


class Roster:
    """A roster that changes between trials the way a school's does: joins, leavers, renames, edits."""

    def __init__(self, path: Path, rng: random.Random, size: int) -> None:
        """Start with `size` persons."""
        self.path = path
        self.rng = rng
        self.rows = [person_row(n) for n in range(1, size + 1)]
        self.next = size + 1
        self.edits: Counter[str] = Counter()

    def write(self) -> Path:
        """Write the current rows."""
        return write_roster(self.path, self.rows)

    def edit(self) -> int:
        """Apply a random handful of changes (within the default safety limits); how many."""
        rng = self.rng
        self.rows = [row for row in self.rows if row["status"] == "active"]  # leavers already deleted
        chosen = rng.sample(range(len(self.rows)), k=rng.randint(2, 6))
        changes = 0
        for index in chosen:
            row = dict(self.rows[index])
            kind = rng.choice(["rename", "update", "update", "clear", "leave", "rename+update"])
            if kind.startswith("rename"):
                row["sourcedId"] = f"p{self.next:04d}"
                self.next += 1
            if kind.endswith("update"):
                row["givenName"] = f"G{rng.randrange(10**6)}"
            if kind == "clear":
                row["email"] = "" if row["email"] else f"{row['username']}@new.example"
            if kind == "leave":
                row["status"] = "tobedeleted"
            self.rows[index] = row
            self.edits[kind] += 1
            changes += 1
        for _ in range(rng.randint(0, 3)):
            self.rows.append(person_row(self.next))
            self.next += 1
            self.edits["join"] += 1
            changes += 1
        return changes


def test_sigkill_at_random_moments_loses_nothing(
    forks: ForkServer, emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    """22 seeded trials: kill `ims-sync run` (SIGKILL) mid-run, rerun to completion, compare everything."""
    rng = random.Random(SEED)
    state = tmp_path / "state"
    roster = Roster(tmp_path / "users.csv", rng, size=30)
    figures: Counter[str] = Counter()

    def argv_for(batch_size: int) -> list[str]:
        return run_argv(
            state,
            roster.path,
            emulator_process.pms_url,
            emulator_process.ca_path,
            "--max-attempts",
            "1",
            "--concurrency",
            "4",
            "--batch-size",
            str(batch_size),
            "--deletes",
            log=tmp_path / "runs.log",
        )

    def run() -> int:
        pid = forks.spawn(argv, env=ENV, stdout=tmp_path / "out.txt", stderr=tmp_path / "err.txt")
        return forks.wait(pid)

    for trial in range(TRIALS):
        planned = roster.edit() if trial else len(roster.rows)
        roster.write()
        # Creates one by one (createPerson) or in batches (createPersons), both killed mid-flight.
        batch_size = rng.choice([1, 4])
        argv = argv_for(batch_size)
        figures[f"trials with --batch-size {batch_size}"] += 1
        before = journal_count(state)
        pid = forks.spawn(argv, env=ENV, stdout=tmp_path / "out.txt", stderr=tmp_path / "err.txt")
        if rng.random() < 0.15:
            time.sleep(rng.uniform(0.0, 0.25))  # somewhere in start-up, reading or planning
        else:
            target = before + rng.randint(1, planned)  # after the k-th request was journalled as sent
            wait_until(lambda: forks.exit_code(pid) is not None or journal_count(state) >= target)  # noqa: B023
            time.sleep(rng.uniform(0.0, 0.015))
        if forks.exit_code(pid) is None:
            # The run may end between the check and the kill: then there is nothing left to kill.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        code = forks.wait(pid)
        figures["killed" if code == -signal.SIGKILL else "finished before the kill"] += 1
        figures["requests sent by killed runs"] += journal_count(state) - before
        assert journal_problems(state, allow_unanswered=True) == [], f"trial {trial} after the kill"

        codes = [run()]
        while codes[-1] != EXIT_OK and len(codes) < 12:
            assert codes[-1] == EXIT_FAILED, f"trial {trial}: rerun exit codes {codes}"
            codes.append(run())
        assert codes[-1] == EXIT_OK, f"trial {trial}: no clean rerun: {codes}"
        figures["reruns"] += len(codes)

        held = emulator_file_persons(emulator_process.state)
        assert as_fields(held) == as_fields(expected_persons(roster.rows)), f"trial {trial}"
        assert duplicates(held) == [], f"trial {trial}: a person was created twice"
        assert as_fields(snapshot_persons(state)) == as_fields(held), f"trial {trial}"
        assert journal_problems(state, allow_unanswered=True) == [], f"trial {trial}"
        # Every request the service decided was journalled (as sent) before it went out.
        assert emulator_file_message_ids(emulator_process.state) <= journal_ids(state), f"trial {trial}"

    with StateStore.open(state, exclusive=False) as store:
        journal = store.journal()
    figures["unanswered (in flight at a kill)"] = sum(e.outcome == "sent" for e in journal)
    figures["journalled requests"] = len(journal)
    figures["roster rows at the end"] = len(roster.rows)
    output = emulator_process.stop()
    injected = re.search(r"Faults injected: (.*)", output)
    assert injected is not None, output
    print(f"\ncrash trials: {dict(figures)}; edits {dict(roster.edits)}; {injected.group(0)}")
    assert figures["killed"] >= TRIALS * 2 // 3  # most kills landed mid-run, not after it
    assert figures["unanswered (in flight at a kill)"] > 0  # some kills caught requests in flight


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully(
    signum: signal.Signals,
    emulator_factory: Callable[..., Emulator],
    forks: ForkServer,
    tmp_path: Path,
) -> None:
    """SIGTERM or Ctrl-C: requests in flight finish and are recorded, nothing new is sent, exit 1."""
    emulator = emulator_factory(latency_ms=150)
    state = tmp_path / "state"
    rows = [person_row(n) for n in range(1, 41)]
    roster = write_roster(tmp_path / "users.csv", rows)
    argv = run_argv(state, roster, emulator.pms_url, emulator.ca_path, "--concurrency", "4")
    process = subprocess.Popen(
        [sys.executable, "-m", "sync", *argv],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(emulator.history()) >= 4, step=0.01)
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_FAILED, err
    # The notice is a line on a console and a JSON event under --log-format json: both name the signal.
    assert signum.name in err
    assert "stopped by signal" in err
    assert journal_problems(state) == []  # no request left unanswered: the ones in flight finished
    with StateStore.open(state, exclusive=False) as store:
        journal = store.journal()
        (run,) = store.runs()
    assert run.status == "stopped"
    confirmed = {e.items[0].sync_key for e in journal if e.outcome == "confirmed"}
    assert 4 <= len(confirmed) < len(rows)
    assert set(snapshot_persons(state)) == confirmed == set(emulator.persons())

    code = forks.wait(forks.spawn(argv, env=ENV, stdout=tmp_path / "out.txt", stderr=tmp_path / "err.txt"))
    assert code == EXIT_OK
    assert as_fields(emulator.persons()) == as_fields(expected_persons(rows))
    assert as_fields(snapshot_persons(state)) == as_fields(emulator.persons())


def test_second_run_on_a_state_in_use_is_refused(
    emulator_factory: Callable[..., Emulator], forks: ForkServer, tmp_path: Path
) -> None:
    """While one run holds the state, a second `ims-sync run` exits 2, names the holder, touches nothing."""
    emulator = emulator_factory(latency_ms=100)
    state = tmp_path / "state"
    roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 81)])
    argv = run_argv(state, roster, emulator.pms_url, emulator.ca_path, "--concurrency", "2")
    first = forks.spawn(argv, env=ENV, stdout=tmp_path / "first.out", stderr=tmp_path / "first.err")
    try:
        assert wait_until(lambda: len(emulator.history()) >= 2, step=0.01)
        second = subprocess.run(
            [sys.executable, "-m", "sync", *argv],
            cwd=ROOT,
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert forks.exit_code(first) is None, "the first run ended before the second tried"
    finally:
        if forks.exit_code(first) is None:
            with contextlib.suppress(ProcessLookupError):  # it may end between check and kill
                os.kill(first, signal.SIGTERM)
        forks.wait(first)
    assert second.returncode == EXIT_USAGE
    assert "is in use by another" in second.stderr
    assert f"pid {first}," in second.stderr  # names the run that holds it
    with StateStore.open(state, exclusive=False) as store:
        runs = store.runs()
    assert len(runs) == 1  # the second run began nothing
    assert {e.message_identifier for e in emulator.history()} <= journal_ids(state)
    assert journal_problems(state) == []
