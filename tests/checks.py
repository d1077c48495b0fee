"""Test helpers: OneRoster rosters, `run` arguments, state readers, the invariants every run keeps."""

from __future__ import annotations

import csv
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import pytest

from sync.emulator import Emulator
from sync.models import PERSON_FIELDS, Person
from sync.models.kinds import PERSON
from sync.state.schema import DB_NAME
from sync.state.store import StateStore
from tests.conftest import PASSWORD, USERNAME

HEADER: Final = [
    "sourcedId",
    "status",
    "orgSourcedIds",
    "role",
    "username",
    "givenName",
    "familyName",
    "email",
    "sms",
    "password",
]
#: OneRoster role -> the institutionRoleType the oneroster-users mapping sends.
ROLES: Final = {"student": "Student", "teacher": "Staff"}
#: OneRoster role -> the membership roleType oneroster-enrollments (in a class) and oneroster-user-orgs
#: (in a school) send; a user of another role (parent, guardian, relative) belongs to no school.
MEMBERSHIP_ROLES: Final = {
    "student": "Learner",
    "teacher": "Instructor",
    "administrator": "Administrator",
    "aide": "TeachingAssistant",
    "proctor": "Mentor",
}
#: Journal outcomes that account for a request: answered one way or another.
ACCOUNTED: Final = frozenset({"confirmed", "rejected", "unconfirmed"})
#: An unprivileged user (sessions and CI run as root, for whom permissions test nothing).
NOBODY: Final = 65534
#: A command prefix running it as uid/gid 65534 without groups, able to read (never write) what it does not
#: own: CAP_DAC_READ_SEARCH lets it read the interpreter and the tests' files under root's directories.
AS_NOBODY: Final = (
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={NOBODY}",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
)
#: The emulator's credentials, as the environment variables an operator sets.
CREDENTIALS: Final = {"IMS_ES_USERNAME": USERNAME, "IMS_ES_PASSWORD": PASSWORD}


def person_row(n: int, **overrides: str) -> dict[str, str]:
    """A OneRoster users.csv row for person number n (its password is `Secret-<n>-pw`)."""
    row = {
        "sourcedId": f"p{n:04d}",
        "status": "active",
        "role": "student" if n % 5 else "teacher",
        "username": f"user{n:04d}",
        "givenName": f"Given{n}",
        "familyName": f"Family{n}",
        "email": f"user{n:04d}@school.example",
        "sms": "",
        "password": f"Secret-{n}-pw",
    }
    row.update(overrides)
    return row


def write_roster(path: Path, rows: Sequence[Mapping[str, str]]) -> Path:
    """Write OneRoster users.csv rows to `path`."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts by header ([] when the file does not exist)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def oneroster_memberships(folder: Path) -> dict[str, dict[str, str]]:
    """The memberships a OneRoster folder asks for, by sync key, as {group, person, role, active}.

    Every active enrollment of enrollments.csv (keyed by its sourcedId), and every active user of
    users.csv in each org its orgSourcedIds lists (keyed org:user; values stripped, empty and repeated
    ones dropped) unless its role has no membership (a parent, guardian, relative). Written for folders
    whose rows are valid: a rejected row asks for nothing, which this does not know.
    """
    found: dict[str, dict[str, str]] = {}
    for row in csv_rows(folder / "enrollments.csv"):
        role = row["role"].strip().casefold()
        if row["status"] == "active" and role in MEMBERSHIP_ROLES:
            found[row["sourcedId"]] = {
                "group": row["classSourcedId"],
                "person": row["userSourcedId"],
                "role": MEMBERSHIP_ROLES[role],
                "active": "true",
            }
    for row in csv_rows(folder / "users.csv"):
        role = row["role"].strip().casefold()
        if row["status"] != "active" or role not in MEMBERSHIP_ROLES:
            continue
        orgs = dict.fromkeys(org.strip() for org in row.get("orgSourcedIds", "").split(","))
        for org in orgs:
            if org:
                found[f"{org}:{row['sourcedId']}"] = {
                    "group": org,
                    "person": row["sourcedId"],
                    "role": MEMBERSHIP_ROLES[role],
                    "active": "true",
                }
    return dict(sorted(found.items()))


def set_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the emulator's credentials in the environment, as an operator would set them."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def run_args(emulator: Emulator, roster: Path, state: Path, *extra: str) -> list[str]:
    """The arguments of `ims-sync run` against `emulator`: one attempt per request, `extra` appended."""
    return [
        "run",
        str(roster),
        "-m",
        "oneroster-users",
        "--state",
        str(state),
        "--endpoint",
        emulator.pms_url,
        "--ca-bundle",
        str(emulator.ca_path),
        "--max-attempts",
        "1",
        *extra,
    ]


def expected_persons(rows: Sequence[Mapping[str, str]]) -> dict[str, Person]:
    """The persons IMS ES should hold for these (active) roster rows, by sync key."""
    return {
        row["sourcedId"]: Person(
            sync_key=row["sourcedId"],
            username=row["username"],
            given_name=row["givenName"],
            family_name=row["familyName"],
            email=row["email"],
            role=ROLES[row["role"]],
            mobile=row["sms"],
        )
        for row in rows
        if row["status"] == "active"
    }


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)


def emulator_file_persons(path: Path) -> dict[str, Person]:
    """The persons in an emulator's `--state` SQLite file (read-only, safe while it serves)."""
    columns = ", ".join(PERSON_FIELDS)
    connection = _read_only(path)
    try:
        rows = connection.execute(f"SELECT sync_key, {columns} FROM persons ORDER BY sync_key").fetchall()
    finally:
        connection.close()
    return {
        row[0]: Person.from_values(row[0], dict(zip(PERSON_FIELDS, row[1:], strict=True))) for row in rows
    }


def emulator_file_message_ids(path: Path) -> set[str]:
    """The messageIdentifiers of every request an emulator's `--state` file recorded as decided."""
    connection = _read_only(path)
    try:
        rows = connection.execute("SELECT message_identifier FROM history").fetchall()
    finally:
        connection.close()
    return {row[0] for row in rows if row[0]}


def journal_count(state: Path) -> int:
    """How many requests the journal in `state` holds (0 before the database exists)."""
    if not (state / DB_NAME).exists():
        return 0
    connection = _read_only(state / DB_NAME)
    try:
        return int(connection.execute("SELECT count(*) FROM requests").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        connection.close()


def snapshot_persons(state: Path) -> dict[str, Person]:
    """The snapshot's persons (what IMS ES confirmed), by sync key."""
    with StateStore.open(state, exclusive=False) as store:
        frame = store.load(PERSON)
    return {
        str(key): Person.from_values(str(key), {name: str(row[name]) for name in PERSON_FIELDS})
        for key, row in frame.iterrows()
    }


def duplicates(persons: Mapping[str, Person]) -> list[str]:
    """Usernames (the identity key) held by more than one live person: a person created twice."""
    counts = Counter(p.username for p in persons.values())
    return sorted(name for name, n in counts.items() if n > 1)


def journal_problems(state: Path, *, allow_unanswered: bool = False) -> list[str]:
    """Break the journal/snapshot invariants and this says how (an empty list: all hold).

    - every request is accounted for: confirmed, rejected or unconfirmed (a killed run may leave
      requests *sent* and unanswered when `allow_unanswered`);
    - nothing is confirmed without a messageIdRef equal to its messageIdentifier, item by item;
    - every snapshot row was written by a confirmed request whose messageIdRef matches.
    """
    problems: list[str] = []
    if not (state / DB_NAME).exists():
        return problems  # nothing has been journalled yet
    connection = _read_only(state / DB_NAME)
    try:
        requests = connection.execute(
            "SELECT message_identifier, operation, outcome, message_id_ref, answered_at FROM requests"
        ).fetchall()
        items = connection.execute(
            "SELECT message_identifier, item_index, outcome, message_id_ref FROM request_items"
        ).fetchall()
        rows = connection.execute("SELECT sync_key, message_identifier FROM persons").fetchall()
    finally:
        connection.close()
    confirmed: set[str] = set()
    for mid, operation, outcome, ref, answered_at in requests:
        if outcome == "sent" and allow_unanswered:
            continue
        if outcome not in ACCOUNTED:
            problems.append(f"{operation} {mid}: outcome {outcome!r}")
        if answered_at is None:
            problems.append(f"{operation} {mid}: {outcome} without an answer time")
        if outcome == "confirmed":
            confirmed.add(mid)
            if ref != mid:
                problems.append(f"{operation} {mid}: confirmed with messageIdRef {ref!r}")
    for mid, index, outcome, ref in items:
        if outcome == "confirmed" and ref != mid:
            problems.append(f"item {index} of {mid}: confirmed with messageIdRef {ref!r}")
    for key, mid in rows:
        if mid not in confirmed:
            problems.append(f"snapshot row {key} written by {mid}, which is not a confirmed request")
    return problems


def journal_ids(state: Path) -> set[str]:
    """Every messageIdentifier the journal in `state` holds."""
    connection = _read_only(state / DB_NAME)
    try:
        return {row[0] for row in connection.execute("SELECT message_identifier FROM requests")}
    finally:
        connection.close()


def as_fields(persons: Mapping[str, Person]) -> dict[str, dict[str, str]]:
    """Persons as plain field dicts, for readable assertion diffs."""
    return {key: person.values() for key, person in sorted(persons.items())}
