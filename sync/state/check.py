"""`snapshot check`: SQLite's integrity check and the state's own invariants, read without changing anything.

The database is opened read-only (SQLite's `mode=ro`: no write, no checkpoint; SQLite may create the
empty `-wal`/`-shm` companions any reader needs, or, where it may not, reads a checkpointed file as
immutable) and without the run lock, so a check never blocks a run; everything is read in one read
transaction, so a run writing meanwhile cannot show it half a change.
What it checks, each violation one `Problem`:

- `PRAGMA integrity_check` (every page, index and constraint: `quick_check` skips the index contents);
- the schema: the version, and every table, index and trigger as the migrations create them (the
  generation triggers keep the Arrow caches honest), each generation row present, `foreign_key_check`;
- the snapshot (architecture invariant 1, "Confirmed ⇒ journalled ⇒ snapshot"): every row's
  content hash matches its columns, and the request that confirmed it is a confirmed request of the
  journal (answered success with its own messageIdentifier as messageIdRef);
- references (invariant 6, the cascades): a group's parent, a membership's group and person are rows
  of the snapshot;
- the journal: every outcome is one it writes, and nothing is confirmed under another messageIdRef.

Reads through sqlite3 directly (the state package is where that is allowed); knows the tables from
sync.state.tables and the kinds' references from sync.models.
"""

# Statements here are built from the kinds' table and column names (constants of sync.models.kinds and
# this package, never input); every value is a bound parameter.
# ruff: noqa: S608
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sync.errors import StateError
from sync.models import KINDS, Outcome
from sync.state.cache import CACHES
from sync.state.schema import DB_NAME, SCHEMA_VERSION, check_not_orphaned, check_version, explain, migrate
from sync.state.tables import TABLES, content_hash

__all__ = ["TODO", "CheckReport", "Problem", "check_state"]

#: What to do about each kind of problem (`Problem.todo`).
TODO: Final = {
    "damaged": "the database file is damaged: restore the state directory from a backup, or start a new "
    "one (on a populated site, with `ims-sync snapshot adopt`)",
    "edited": "the snapshot was changed outside ims-es-sync and no longer says what IMS ES confirmed: "
    "restore the state directory from a backup, or rebuild it with `ims-sync snapshot adopt` into a new "
    "state directory",
    "reference": "the snapshot names an object it does not hold (a read that failed during `snapshot "
    "adopt` leaves this): the next run creates what the roster still asks for; if it stays, rebuild with "
    "`ims-sync snapshot adopt` into a new state directory",
    "journal": "the journal holds answers ims-es-sync does not write: `ims-sync reconcile --all` lists "
    "the requests; restore the state directory from a backup if it was edited",
}
#: The outcomes the journal writes: "sent" until answered, then one of the answers.
_JOURNAL_OUTCOMES: Final = frozenset({"sent", Outcome.CONFIRMED, Outcome.REJECTED, Outcome.UNCONFIRMED})


@dataclass(frozen=True, slots=True)
class Problem:
    """One violation: where (e.g. "integrity", "persons p0001"), what is wrong, and a `TODO` key."""

    where: str
    what: str
    todo: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What `check_state` found in the database at `path`, and how many rows it read of each table."""

    path: Path
    problems: tuple[Problem, ...]
    rows: dict[str, int]


def check_state(state_dir: Path) -> CheckReport:
    """Check the state in `state_dir` without changing it.

    Raises:
        StateError: the database cannot be read: missing, not a database, damaged beyond reading,
            unreadable, a log without its database, or a schema version this version cannot check.
    """
    path = Path(state_dir) / DB_NAME
    check_not_orphaned(path)
    if not path.is_file():
        raise StateError(f"no state database in {state_dir}: nothing has run there yet (check --state)")
    try:
        connection = _open(path)
    except sqlite3.Error as exc:
        raise StateError(f"opening {path} read-only failed: {explain(exc)}") from exc
    try:
        problems = list(_check(connection, path))
        tables = {str(name) for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        counted = [*(kind.table for kind in KINDS), "requests"]
        rows = {table: _count(connection, table) for table in counted if table in tables}
    except sqlite3.Error as exc:
        raise StateError(f"reading {path} failed: {explain(exc)}") from exc
    finally:
        connection.close()
    return CheckReport(path=path, problems=tuple(problems), rows=rows)


def _open(path: Path) -> sqlite3.Connection:
    """The database read-only, in a read transaction (one consistent state).

    A reader of a WAL database writes the `-shm` index; where it may not (a state directory this user
    can only read) and no `-wal` file holds commits, the file alone is the whole state: it is read as
    immutable then, without SQLite's locks.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=10.0)
    try:
        connection.execute("BEGIN")
        connection.execute("PRAGMA user_version").fetchone()
    except sqlite3.OperationalError as exc:
        connection.close()
        name = getattr(exc, "sqlite_errorname", "")
        if (
            not name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))
            or path.with_name(f"{DB_NAME}-wal").exists()
        ):
            raise
        connection = sqlite3.connect(f"{uri}&immutable=1", uri=True)
        connection.execute("BEGIN")
    return connection


def _count(connection: sqlite3.Connection, table: str) -> int:
    return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _check(connection: sqlite3.Connection, path: Path) -> Iterator[Problem]:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    check_version(version, path)
    if version < SCHEMA_VERSION:
        raise StateError(
            f"{path} has schema version {version}, older than this ims-es-sync's {SCHEMA_VERSION}: "
            "any command that opens it (e.g. `ims-sync plan`) brings it up to date; then check it again"
        )
    integrity = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        yield from (Problem("integrity", line, "damaged") for line in integrity)
        return  # the invariants below would only repeat the damage in other words
    schema = list(_check_schema(connection))
    yield from schema
    if any(p.what.startswith("table ") and p.what.endswith(" is missing") for p in schema):
        return  # the checks below would fail on what is missing
    yield from _check_snapshot(connection)
    yield from _check_references(connection)
    yield from _check_journal(connection)


def _schema_objects(connection: sqlite3.Connection) -> dict[tuple[str, str], str]:
    rows = connection.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    return {(str(kind), str(name)): " ".join(str(sql).split()) for kind, name, sql in rows}


def _check_schema(connection: sqlite3.Connection) -> Iterator[Problem]:
    reference = sqlite3.connect(":memory:")
    try:
        migrate(reference, 0)
        expected = _schema_objects(reference)
    finally:
        reference.close()
    found = _schema_objects(connection)
    for (kind, name), sql in sorted(expected.items()):
        if (kind, name) not in found:
            yield Problem("schema", f"{kind} {name} is missing", "damaged")
        elif found[kind, name] != sql:
            yield Problem(
                "schema", f"{kind} {name} differs from what version {SCHEMA_VERSION} creates", "damaged"
            )
    for kind, name in sorted(set(found) - set(expected)):
        yield Problem("schema", f"{kind} {name} is not part of version {SCHEMA_VERSION}", "damaged")
    if set(expected) - set(found):
        return  # the checks below would fail on what is missing
    for cache in CACHES.values():
        if connection.execute(cache.generation_sql).fetchone() is None:
            yield Problem("schema", f"the generation row of {cache.table.name} is missing", "damaged")
    for table, rowid, parent, _ in connection.execute("PRAGMA foreign_key_check"):
        row = f"row {rowid} of {table}" if rowid is not None else f"a row of {table}"  # WITHOUT ROWID: None
        yield Problem("journal", f"{row} refers to a missing row of {parent}", "journal")


def _check_snapshot(connection: sqlite3.Connection) -> Iterator[Problem]:
    for kind in KINDS:
        table = TABLES[kind.name]
        rows = connection.execute(f"SELECT {', '.join(table.columns)}, content_hash FROM {table.name}")
        for key, *values, stored in rows:
            if content_hash([str(value) for value in values], table.later_fields) != stored:
                yield Problem(f"{table.name} {key}", "its content hash does not match its columns", "edited")
        # Through the journal's primary key: no set of every messageIdentifier in memory.
        unconfirmed = connection.execute(
            f"SELECT s.sync_key, s.message_identifier FROM {table.name} AS s "
            "LEFT JOIN requests AS r ON r.message_identifier = s.message_identifier "
            "AND r.outcome = ? AND r.message_id_ref = r.message_identifier "
            "WHERE r.message_identifier IS NULL ORDER BY s.sync_key",
            (Outcome.CONFIRMED.value,),
        )
        for key, mid in unconfirmed:
            what = f"confirmed by {mid}, which is not a confirmed request in the journal"
            yield Problem(f"{table.name} {key}", what, "edited")


def _check_references(connection: sqlite3.Connection) -> Iterator[Problem]:
    for kind in KINDS:
        for reference in kind.references:
            parent = TABLES[reference.kind].name
            rows = connection.execute(
                f"SELECT c.sync_key, c.{reference.column} FROM {kind.table} AS c "
                f"WHERE c.{reference.column} != '' AND NOT EXISTS "
                f"(SELECT 1 FROM {parent} AS p WHERE p.sync_key = c.{reference.column}) ORDER BY c.sync_key"
            )
            for key, target in rows:
                yield Problem(
                    f"{kind.table} {key}",
                    f"its {reference.field} {target!r} is not in the snapshot's {parent}",
                    "reference",
                )


def _check_journal(connection: sqlite3.Connection) -> Iterator[Problem]:
    for table in ("requests", "request_items"):
        rows = connection.execute(f"SELECT message_identifier, outcome, message_id_ref FROM {table}")
        for mid, outcome, ref in rows:
            what = "request" if table == "requests" else "an item of request"
            if outcome not in _JOURNAL_OUTCOMES:
                yield Problem("journal", f"{what} {mid} has outcome {outcome!r}", "journal")
            elif outcome == Outcome.CONFIRMED and ref != mid:
                yield Problem("journal", f"{what} {mid} is confirmed by an answer to {ref!r}", "journal")
