"""State directory faults: a full disk, a read-only state, a damaged database, a newer schema, a state
directory deleted mid-run. Each ends `ims-sync` with one clear error (exit 2: the path, the cause, what to
do), no traceback, nothing lost or half-written; once the cause is gone the next run converges.

The CLI runs as its own process (`python -m sync`) against the emulator over HTTPS. Sessions and CI run
as root: the read-only cases run the CLI as uid 65534 (setpriv), keeping only CAP_DAC_READ_SEARCH so that
it can read the interpreter under /root, never write what it does not own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

import pytest

from sync.cli.output import EXIT_OK, EXIT_USAGE
from sync.emulator import Emulator
from sync.state.schema import DB_NAME, SCHEMA_VERSION
from tests.checks import (
    AS_NOBODY,
    NOBODY,
    as_fields,
    duplicates,
    expected_persons,
    journal_ids,
    journal_problems,
    person_row,
    run_args,
    snapshot_persons,
    write_roster,
)
from tests.conftest import PASSWORD, USERNAME

ROOT: Final = Path(__file__).resolve().parents[1]
ENV: Final = {"IMS_ES_USERNAME": USERNAME, "IMS_ES_PASSWORD": PASSWORD, "IMS_SYNC_LOG_FORMAT": "json"}


def start(args: Sequence[str], *, prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
    """`ims-sync args` as its own process (JSON logs on stderr)."""
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "sync", *args],
        cwd=ROOT,
        env={**os.environ, **ENV, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for `process`: (exit code, stderr)."""
    try:
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err


def cli(args: Sequence[str], *, prefix: Sequence[str] = ()) -> tuple[int, str]:
    """Run `ims-sync args` to the end: (exit code, stderr)."""
    return finish(start(args, prefix=prefix))


def one_clear_error(err: str, *needles: str) -> str:
    """The one exit message on stderr, checked to contain every needle; no traceback anywhere."""
    assert "Traceback" not in err, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [e for e in events if e.get("level") in ("error", "critical") and e["event"] != "exit"] == []
    (exit_event,) = [e for e in events if e["event"] == "exit"]
    assert exit_event["exit_code"] == EXIT_USAGE
    message = str(exit_event["message"])
    for needle in needles:
        assert needle in message, message
    return message


def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def fill(path: Path) -> None:
    """Write zeros to `path` until the file system is full (OSError)."""
    with path.open("wb") as handle:
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()


def digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_converged(emulator: Emulator, state: Path, rows: Sequence[dict[str, str]]) -> None:
    """The service holds the roster once each, the snapshot equals it, the journal accounts for all."""
    persons = emulator.persons()
    assert duplicates(persons) == []
    assert as_fields(persons) == as_fields(expected_persons(rows))
    assert as_fields(snapshot_persons(state)) == as_fields(persons)
    assert journal_problems(state, allow_unanswered=True) == []


def started_run(
    emulator: Emulator, state: Path, tmp_path: Path, *extra: str
) -> tuple[list[dict[str, str]], list[str], subprocess.Popen[str]]:
    """A run creating 40 persons (4 workers, `extra` options), past its 4th request: (rows, args, process)."""
    rows = [person_row(n) for n in range(1, 41)]
    roster = write_roster(tmp_path / "users.csv", rows)
    args = run_args(emulator, roster, state, "--concurrency", "4", *extra)
    process = start(args)
    assert wait_until(lambda: len(emulator.history()) >= 4)
    return rows, args, process


@pytest.fixture(name="small_disk")
def fixture_small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs, unmounted at teardown."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


@pytest.fixture(name="shared_dir")
def fixture_shared_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory uid 65534 may enter (pytest's tmp_path is root's alone), removed at teardown."""
    folder = Path(tempfile.mkdtemp(prefix="state-faults-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    "batch", [pytest.param((), id="single"), pytest.param(("--batch-size", "2"), id="createPersons")]
)
def test_disk_full_mid_run_stops_cleanly_and_the_next_run_converges(
    batch: tuple[str, ...], emulator_factory: Callable[..., Emulator], small_disk: Path, tmp_path: Path
) -> None:
    """The disk fills mid-run: exit 2 saying so, no request leaves unjournalled; freed, a rerun converges."""
    emulator = emulator_factory(latency_ms=60)
    state = small_disk / "state"
    rows, args, process = started_run(emulator, state, tmp_path, *batch)
    filler = small_disk / "filler"
    with pytest.raises(OSError, match="No space left"):
        fill(filler)
    code, err = finish(process)
    assert code == EXIT_USAGE, err
    one_clear_error(err, str(state / DB_NAME), "the disk is full", "free space")
    sent = {event.message_identifier for event in emulator.history()}
    assert len(emulator.history()) < len(rows)  # the run stopped: the rest was never sent
    assert sent == journal_ids(state)  # every request that left was journalled first, and only those
    assert journal_problems(state, allow_unanswered=True) == []
    assert [path.name for path in state.iterdir() if path.name.endswith(".tmp")] == []

    filler.unlink()
    code, err = cli(args)
    assert code == EXIT_OK, err
    assert_converged(emulator, state, rows)


def test_state_directory_deleted_mid_run_stops_cleanly(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """The state directory is removed mid-run: exit 2 saying so, nothing more sent; a rerun converges."""
    emulator = emulator_factory(latency_ms=60)
    state = tmp_path / "state"
    rows, args, process = started_run(emulator, state, tmp_path)
    remover = threading.Thread(target=shutil.rmtree, args=(state,))
    remover.start()
    remover.join()
    seen = len(emulator.history())
    code, err = finish(process)
    assert code == EXIT_USAGE, err
    one_clear_error(err, str(state / DB_NAME), "vanished while in use", "restore the state directory")
    assert len(emulator.history()) <= seen + 4  # at most the requests already in flight
    assert len(emulator.history()) < len(rows)
    assert not state.exists()  # nothing recreated it half-way

    code, err = cli(args)
    assert code == EXIT_OK, err
    assert_converged(emulator, state, rows)


def _own(state: Path, *, database: bool) -> None:
    """Give the state directory and its files to uid 65534; the database itself only when `database`."""
    for path in (state, *state.iterdir()):
        if database or path.name != DB_NAME:
            os.chown(path, NOBODY, NOBODY)


@pytest.mark.parametrize(
    ("read_only", "needles"),
    [
        pytest.param("directory", ("cannot lock state directory", "Permission denied"), id="directory"),
        pytest.param("database", ("attempt to write a readonly database", "is read-only"), id="database"),
    ],
)
def test_read_only_state_is_refused_untouched(
    read_only: str,
    needles: tuple[str, ...],
    emulator_factory: Callable[..., Emulator],
    shared_dir: Path,
) -> None:
    """A state uid 65534 cannot write: exit 2 saying what to do, nothing sent; made writable, it converges."""
    emulator = emulator_factory()
    state = shared_dir / "state"
    rows = [person_row(n) for n in range(1, 11)]
    roster = write_roster(shared_dir / "users.csv", rows)
    ca = shared_dir / "ca.pem"  # where uid 65534 can read it
    shutil.copy(emulator.ca_path, ca)
    ca.chmod(0o644)
    args = [str(ca) if arg == str(emulator.ca_path) else arg for arg in run_args(emulator, roster, state)]
    assert cli(args)[0] == EXIT_OK  # root's run: the state belongs to root
    state.chmod(0o755)
    for path in state.iterdir():
        path.chmod(0o644)
    if read_only == "database":
        _own(state, database=False)
    rows.append(person_row(11))
    write_roster(roster, rows)
    before, sent = digest(state / DB_NAME), len(emulator.history())
    code, err = cli(args, prefix=AS_NOBODY)
    assert code == EXIT_USAGE, err
    one_clear_error(err, str(state), *needles, "writable by the user that runs ims-sync")
    assert digest(state / DB_NAME) == before
    assert len(emulator.history()) == sent

    _own(state, database=True)
    code, err = cli(args, prefix=AS_NOBODY)
    assert code == EXIT_OK, err
    assert_converged(emulator, state, rows)


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(16384))


def _truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _wal_without_database(db: Path) -> None:
    """Commit a change into the write-ahead log, keep the log, lose the database."""
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    connection.execute("INSERT INTO runs (run_id, started_at, command) VALUES ('x', 'y', 'z')")
    wal = db.with_name(f"{DB_NAME}-wal")
    kept = wal.read_bytes()
    connection.close()
    db.unlink()
    wal.write_bytes(kept)


@pytest.mark.parametrize(
    ("damage", "needles"),
    [
        pytest.param(_garbage, ("not an SQLite database", "restore the state directory"), id="garbage"),
        pytest.param(_truncated, ("is corrupt", "restore the state directory"), id="truncated"),
        pytest.param(
            _wal_without_database, ("is missing, but its write-ahead log", "restore both"), id="wal-only"
        ),
    ],
)
def test_damaged_database_is_refused_untouched(
    damage: Callable[[Path], None],
    needles: tuple[str, ...],
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
) -> None:
    """A damaged database: `run` exits 2 saying what to do, sends and changes nothing; restored, converges."""
    emulator = emulator_factory()
    state = tmp_path / "state"
    rows = [person_row(n) for n in range(1, 11)]
    roster = write_roster(tmp_path / "users.csv", rows)
    args = run_args(emulator, roster, state)
    assert cli(args)[0] == EXIT_OK
    backup = tmp_path / "backup"
    shutil.copytree(state, backup)
    damage(state / DB_NAME)
    files = {path.name: digest(path) for path in state.iterdir()}
    rows.append(person_row(11))
    write_roster(roster, rows)
    sent = len(emulator.history())
    code, err = cli(args)
    assert code == EXIT_USAGE, err
    one_clear_error(err, str(state / DB_NAME), *needles)
    assert {path.name: digest(path) for path in state.iterdir() if path.name != "state.lock"} == {
        name: value for name, value in files.items() if name != "state.lock"
    }
    assert len(emulator.history()) == sent

    shutil.rmtree(state)
    shutil.copytree(backup, state)  # the operator restores the backup
    code, err = cli(args)
    assert code == EXIT_OK, err
    assert_converged(emulator, state, rows)


def test_newer_schema_is_refused_by_every_command(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """A schema newer than this version: every command that reads the state exits 2 and changes nothing."""
    emulator = emulator_factory()
    state = tmp_path / "state"
    roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 6)])
    assert cli(run_args(emulator, roster, state))[0] == EXIT_OK
    connection = sqlite3.connect(state / DB_NAME)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    before, sent = digest(state / DB_NAME), len(emulator.history())
    commands = [
        run_args(emulator, roster, state),
        ["plan", str(roster), "-m", "oneroster-users", "--state", str(state)],
        ["reconcile", "--state", str(state)],
        ["snapshot", "export", "--state", str(state)],
        ["snapshot", "check", "--state", str(state)],
    ]
    for args in commands:
        code, err = cli(args)
        assert code == EXIT_USAGE, (args, err)
        newer = f"schema version {SCHEMA_VERSION + 1}"
        one_clear_error(err, str(state / DB_NAME), newer, "upgrade ims-es-sync")
    assert digest(state / DB_NAME) == before
    assert len(emulator.history()) == sent
