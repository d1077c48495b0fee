"""`ims-sync snapshot check`: SQLite's integrity check and the state's invariants, each violation a line;
exit 0 when all is well, 1 when something is wrong, 2 when the state cannot be read; nothing changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sync.models import Group, Membership, Person
from sync.state.changes import Upsert
from sync.state.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION
from sync.state.store import StateStore
from tests.checks import AS_NOBODY
from tests.journal import confirmed, sent_request

Checked = Callable[[], tuple[int, str, str]]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(name="state")
def fixture_state(tmp_path: Path) -> Path:
    """A state holding two groups (a school and its class), two persons and a membership, each confirmed
    by its own journalled request, as the executor records them."""
    state = tmp_path / "state"
    with StateStore.open(state) as store:
        run_id = store.begin_run(command="run", roster="r", mapping="m")
        records: list[Person | Group | Membership] = [
            Group(sync_key="s1", name="School"),
            Group(sync_key="c1", name="Class 1", parent="s1"),
            Person(sync_key="p1", username="u1", given_name="Ada", family_name="Lovelace", role="Student"),
            Person(sync_key="p2", username="u2", given_name="Alan", family_name="Turing", role="Staff"),
            Membership(sync_key="c1:p1", group="c1", person="p1", role="Learner"),
        ]
        for n, record in enumerate(records):
            mid = f"m{n}"
            store.record_sent(sent_request(run_id, mid, record.sync_key))
            identity = getattr(record, "username", "")
            store.record_answer(confirmed(mid), [Upsert(record=record, identity=identity)])
        store.end_run(run_id, status="ok", summary={})
    return state


@pytest.fixture(name="check")
def fixture_check(state: Path, capsys: pytest.CaptureFixture[str]) -> Checked:
    """`check()` runs `ims-sync snapshot check --state STATE`: (exit code, stdout, stderr)."""

    def check() -> tuple[int, str, str]:
        code = main(["--log-format", "console", "snapshot", "check", "--state", str(state)])
        out, err = capsys.readouterr()
        return code, out, err

    return check


def edit(state: Path, *statements: str) -> None:
    """Change the database behind ims-sync's back, as an operator's sqlite3 shell would (no foreign keys)."""
    connection = sqlite3.connect(state / DB_NAME)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_healthy_state_is_ok_and_left_as_it_was(state: Path, check: Checked) -> None:
    """A state written by ims-es-sync: exit 0, one ok line with what was read; the file is unchanged."""
    before = digest(state / DB_NAME)
    code, out, _ = check()
    assert code == EXIT_OK, out
    assert out.startswith(f"{state / DB_NAME}: ok")
    assert "2 groups, 2 persons, 1 memberships, 5 requests" in out
    assert digest(state / DB_NAME) == before


def test_check_runs_while_a_run_holds_the_lock(state: Path, check: Checked) -> None:
    """The check takes no lock: it reads while a run holds the state, and the run can still write after."""
    with StateStore.open(state) as store:
        assert check()[0] == EXIT_OK
        store.begin_run(command="run", roster="r", mapping="m")  # the check left the run free to write


def test_a_state_the_user_may_only_read_is_checked_without_a_trace(state: Path) -> None:
    """uid 65534 on a state it may read, not write (nor the index a reader needs): checked, nothing added."""
    shared = Path(tempfile.mkdtemp(prefix="check-", dir="/tmp"))  # pytest's tmp_path is root's alone
    try:
        readable = shared / "state"
        shutil.copytree(state, readable)
        for path in (shared, readable, *readable.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        files = sorted(readable.iterdir())
        before = digest(readable / DB_NAME)
        completed = subprocess.run(
            [*AS_NOBODY, sys.executable, "-m", "sync", "snapshot", "check", "--state", str(readable)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == EXIT_OK, completed.stderr
        assert ": ok (" in completed.stdout
        assert sorted(readable.iterdir()) == files
        assert digest(readable / DB_NAME) == before
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize(
    ("statements", "line"),
    [
        pytest.param(
            ["UPDATE persons SET family_name = 'Byron' WHERE sync_key = 'p1'"],
            "persons p1: its content hash does not match its columns",
            id="content-hash",
        ),
        pytest.param(
            ["UPDATE groups SET message_identifier = 'm9' WHERE sync_key = 'c1'"],
            "groups c1: confirmed by m9, which is not a confirmed request in the journal",
            id="unjournalled-row",
        ),
        pytest.param(
            ["UPDATE requests SET outcome = 'rejected' WHERE message_identifier = 'm2'"],
            "persons p1: confirmed by m2, which is not a confirmed request in the journal",
            id="row-of-a-rejected-request",
        ),
        pytest.param(
            ["DELETE FROM persons WHERE sync_key = 'p1'"],
            "memberships c1:p1: its person 'p1' is not in the snapshot's persons",
            id="membership-person",
        ),
        pytest.param(
            ["DELETE FROM groups WHERE sync_key = 'c1'"],
            "memberships c1:p1: its group 'c1' is not in the snapshot's groups",
            id="membership-group",
        ),
        pytest.param(
            ["DELETE FROM groups WHERE sync_key = 's1'"],
            "groups c1: its parent 's1' is not in the snapshot's groups",
            id="group-parent",
        ),
        pytest.param(
            ["DROP TRIGGER persons_updated"],
            "schema: trigger persons_updated is missing",
            id="missing-trigger",
        ),
        pytest.param(
            [
                "DROP INDEX memberships_person_key",
                "CREATE INDEX memberships_person_key ON memberships (role)",
            ],
            "schema: index memberships_person_key differs from what version",
            id="changed-index",
        ),
        pytest.param(
            ["DELETE FROM membership_generation"],
            "schema: the generation row of memberships is missing",
            id="generation-row",
        ),
        pytest.param(
            ["INSERT INTO request_items (message_identifier, item_index, sync_key) VALUES ('gone', 0, 'k')"],
            "journal: a row of request_items refers to a missing row of requests",
            id="foreign-key",
        ),
        pytest.param(
            ["UPDATE request_items SET outcome = 'maybe' WHERE message_identifier = 'm3'"],
            "journal: an item of request m3 has outcome 'maybe'",
            id="unknown-outcome",
        ),
        pytest.param(
            ["UPDATE request_items SET message_id_ref = 'm0' WHERE message_identifier = 'm4'"],
            "journal: an item of request m4 is confirmed by an answer to 'm0'",
            id="item-confirmed-by-another",
        ),
    ],
)
def test_each_violation_is_a_line_and_exit_1(
    statements: list[str], line: str, state: Path, check: Checked
) -> None:
    """Each invariant broken behind ims-sync's back is reported on its own line with what to do; exit 1."""
    edit(state, *statements)
    before = digest(state / DB_NAME)
    code, out, _ = check()
    assert code == EXIT_FAILED, out
    lines = out.splitlines()
    assert lines[0].startswith(f"{state / DB_NAME}: 1 problem")
    assert lines[1].strip().startswith(line), out
    assert lines[2].startswith("what to do: ")
    assert digest(state / DB_NAME) == before


def test_a_missing_table_is_reported_with_its_indexes(state: Path, check: Checked) -> None:
    """A table dropped by hand: the table and its indexes are reported missing (exit 1), not a crash."""
    edit(state, "DROP TABLE groups")
    code, out, err = check()
    assert code == EXIT_FAILED, err
    assert "  schema: table groups is missing" in out
    assert "  schema: index groups_parent is missing" in out
    assert "(read 2 persons, 1 memberships, 5 requests)" in out


def test_a_damaged_page_is_reported_by_the_integrity_check(state: Path, check: Checked) -> None:
    """An index entry damaged on disk: the integrity check's findings, one a line; exit 1."""
    connection = sqlite3.connect(state / DB_NAME)
    (page_size,) = connection.execute("PRAGMA page_size").fetchone()
    query = "SELECT rootpage FROM sqlite_master WHERE name = 'persons_identity'"
    (root,) = connection.execute(query).fetchone()
    connection.close()
    with (state / DB_NAME).open("r+b") as handle:
        # The page's last byte: the low byte of the rowid its first entry points to (the cells grow down
        # from the end), so the index stays readable but no longer matches its table.
        handle.seek(root * page_size - 1)
        last = handle.read(1)[0]
        handle.seek(root * page_size - 1)
        handle.write(bytes([last ^ 0x40]))
    code, out, _ = check()
    assert code == EXIT_FAILED, out
    assert "  integrity: " in out
    assert "what to do: the database file is damaged: restore the state directory from a backup" in out


def _truncate(db: Path) -> None:
    db.write_bytes(db.read_bytes()[:4096])


def _garbage(db: Path) -> None:
    db.write_bytes(b"not a database " * 1000)


def _wal_only(db: Path) -> None:
    shutil.copy(db, db.with_name(f"{DB_NAME}-wal"))
    db.unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(_garbage, "the file is not an SQLite database", id="garbage"),
        pytest.param(_truncate, "the database file is corrupt", id="truncated"),
        pytest.param(_wal_only, "is missing, but its write-ahead log", id="wal-only"),
        pytest.param(lambda db: db.unlink(), "nothing has run there yet", id="missing"),
    ],
)
def test_a_state_that_cannot_be_read_exits_2(
    damage: Callable[[Path], None], message: str, state: Path, check: Checked
) -> None:
    """Garbage, a truncated file, a log without its database, no database: one error, exit 2."""
    damage(state / DB_NAME)
    code, out, err = check()
    assert code == EXIT_USAGE, err
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("version", "message"),
    [
        pytest.param(SCHEMA_VERSION + 1, "written by a newer ims-es-sync", id="newer"),
        pytest.param(SCHEMA_VERSION - 1, "brings it up to date; then check it again", id="older"),
    ],
)
def test_a_schema_this_version_cannot_check_exits_2(
    version: int, message: str, state: Path, check: Checked
) -> None:
    """A schema version other than this one's: exit 2 saying what to do, the file unchanged."""
    edit(state, f"PRAGMA user_version = {version}")
    before = digest(state / DB_NAME)
    code, _, err = check()
    assert code == EXIT_USAGE
    assert message in err
    assert digest(state / DB_NAME) == before


#: sha256 of each released migration's text, as databases in the field were created from it.
RELEASED_MIGRATIONS = (
    "ee88ec875214ccf3dc8692938969c3b8a39e12f3491d790e379712f5cd8ef9fb",
    "85afea60fe6a1b328400cb3b57188a6e1a4e1abe4cb8d012e077bd7105e25cff",
    "f40481930f3d70d6b0c4556d49fb95be92c6b228702a595e825c23f1cf31b235",
    "368d462e7fb48ec90cf38e651704de0666a2e498798482909a3d95f9d921097e",
)


def test_released_migrations_are_never_edited() -> None:
    """A released migration's text (however it is built) is byte for byte what databases were made by."""
    released = [hashlib.sha256(text.encode()).hexdigest() for text in MIGRATIONS[: len(RELEASED_MIGRATIONS)]]
    assert released == list(RELEASED_MIGRATIONS)
