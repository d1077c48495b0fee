"""Crash safety with groups and memberships: `ims-sync run --mapping oneroster` killed at random moments
against a faulty emulator process loses nothing, creates nothing twice, and converges to the roster."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Final

import pytest

from sync.cli.output import EXIT_FAILED, EXIT_OK
from sync.emulator.store import Event
from sync.state.reconcile import Flag, reconcile
from sync.state.store import StateStore
from tests.checks import (
    emulator_file_message_ids,
    emulator_file_persons,
    journal_count,
    journal_ids,
)
from tests.forkserver import ForkServer
from tests.test_crash import (
    ENV,
    EmulatorProcess,
    fixture_emulator_process,  # noqa: F401  # the emulator process with latency, drops, 503s, faults
    fixture_forks,  # noqa: F401  # the warm interpreter that forks `ims-sync` runs
    run_argv,
    wait_until,
)
from tests.test_faults_groups import (
    Held,
    School,
    created_twice,
    expected_held,
    membership_pairs_twice,
    person_fields,
    snapshot_held,
    state_problems,
)

pytestmark = pytest.mark.slow

TRIALS: Final = 14
SEED: Final = 20261127
MODES: Final = ("off", "deactivate", "delete", "delete")


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)


def emulator_file_held(path: Path) -> Held:
    """What an emulator process holds, read from its `--state` SQLite file (safe while it serves)."""
    connection = _read_only(path)
    try:
        groups = connection.execute(
            "SELECT sync_key, desc_short, type, parent, desc_long FROM groups ORDER BY sync_key"
        ).fetchall()
        memberships = connection.execute(
            "SELECT sync_key, group_key, person_key, role, active FROM memberships ORDER BY sync_key"
        ).fetchall()
    finally:
        connection.close()
    return Held(
        groups={
            key: {"name": name, "type": kind, "parent": parent, "description": description}
            for key, name, kind, parent, description in groups
        },
        memberships={
            key: {"group": group, "person": person, "role": role, "active": "true" if active else "false"}
            for key, group, person, role, active in memberships
        },
        persons=person_fields(emulator_file_persons(path)),
    )


def emulator_file_history(path: Path) -> list[Event]:
    """Every operation an emulator process decided, oldest first, from its `--state` file."""
    connection = _read_only(path)
    try:
        rows = connection.execute(
            "SELECT seq, operation, sync_key, new_key, message_identifier, code_major "
            "FROM history ORDER BY seq"
        ).fetchall()
    finally:
        connection.close()
    return [
        Event(seq=seq, operation=op, sync_key=key, new_key=new, message_identifier=mid, code_major=code)
        for seq, op, key, new, mid, code in rows
    ]


def check_held(held: Held, school: School, mode: str) -> None:
    """What the roster names is held exactly; what left it is gone (delete), inactive (deactivate: its
    memberships) or may stay (off)."""
    expected = expected_held(school)
    for kind in ("groups", "memberships", "persons"):
        have, want = getattr(held, kind), getattr(expected, kind)
        assert {k: have.get(k) for k in want} == want, kind
        if mode == "delete":
            assert sorted(have) == sorted(want), kind
    if mode == "deactivate":
        left = {k: m for k, m in held.memberships.items() if k not in expected.memberships}
        assert all(m["active"] == "false" for m in left.values()), left


def test_sigkill_at_random_moments_loses_no_group_or_membership(
    forks: ForkServer, emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    """Seeded trials: edit the OneRoster folder, kill `ims-sync run` mid-run, rerun, compare everything."""
    rng = random.Random(SEED)
    state = tmp_path / "state"
    school = School.generate(tmp_path / "roster", rng, schools=2, classes=6, users=24)
    emulator_state = emulator_process.state
    figures: Counter[str] = Counter()

    def argv_for(mode: str, batch_size: int) -> list[str]:
        return run_argv(
            state,
            school.folder,
            emulator_process.pms_url,
            emulator_process.ca_path,
            "--max-attempts",
            "1",
            "--concurrency",
            "4",
            "--batch-size",
            str(batch_size),
            "--deletes",
            mode,
            "--max-change-share",
            "1",
            log=tmp_path / "runs.log",
            mapping="oneroster",
        )

    def run(argv: list[str]) -> int:
        pid = forks.spawn(argv, env=ENV, stdout=tmp_path / "out.txt", stderr=tmp_path / "err.txt")
        return forks.wait(pid)

    def converge(argv: list[str], trial: int | str) -> None:
        codes = [run(argv)]
        while codes[-1] != EXIT_OK and len(codes) < 12:
            assert codes[-1] == EXIT_FAILED, f"trial {trial}: rerun exit codes {codes}"
            codes.append(run(argv))
        assert codes[-1] == EXIT_OK, f"trial {trial}: no clean rerun: {codes}"
        figures["reruns"] += len(codes)

    for trial in range(TRIALS):
        planned = school.edit() if trial else 60
        if trial == 1:
            # The edits are random; these make sure a group is deleted and a membership updated
            # whichever edits the seed picks (the school memberships make the draws vary).
            planned += school.apply("remove-class") + school.apply("role-enrollment")
        school.write()
        mode = rng.choice(MODES) if trial else "off"
        # Creates one by one or in mass requests (createGroups, createMemberships, deleteMemberships).
        batch_size = rng.choice([1, 4])
        argv = argv_for(mode, batch_size)
        figures[f"trials with --deletes {mode}"] += 1
        before = journal_count(state)
        pid = forks.spawn(argv, env=ENV, stdout=tmp_path / "out.txt", stderr=tmp_path / "err.txt")
        if rng.random() < 0.15:
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere in start-up, reading or planning
        else:
            target = before + rng.randint(1, max(1, planned))  # after the k-th request was journalled
            wait_until(lambda: forks.exit_code(pid) is not None or journal_count(state) >= target)  # noqa: B023
            time.sleep(rng.uniform(0.0, 0.015))
        if forks.exit_code(pid) is None:
            with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
                os.kill(pid, signal.SIGKILL)
        code = forks.wait(pid)
        figures["killed" if code == -signal.SIGKILL else "finished before the kill"] += 1
        figures["requests sent by killed runs"] += journal_count(state) - before
        assert state_problems(state, allow_unanswered=True) == [], f"trial {trial} after the kill"

        converge(argv, trial)
        held = emulator_file_held(emulator_state)
        assert snapshot_held(state) == held, f"trial {trial}: the snapshot is not what IMS ES holds"
        check_held(held, school, mode)
        assert membership_pairs_twice(held.memberships) == [], f"trial {trial}"
        assert state_problems(state, allow_unanswered=True) == [], f"trial {trial}"
        # Every request the service decided was journalled (as sent) before it went out.
        assert emulator_file_message_ids(emulator_state) <= journal_ids(state), f"trial {trial}"

    # The final clean run: everything that left the roster goes, and what stays is exactly the roster.
    converge(argv_for("delete", 4), "final")
    held = emulator_file_held(emulator_state)
    assert held == expected_held(school)
    assert snapshot_held(state) == held
    assert membership_pairs_twice(held.memberships) == []
    identities = school.org_identity | school.user_identity
    assert created_twice(emulator_file_history(emulator_state), identities) == []
    assert state_problems(state, allow_unanswered=True) == []
    assert emulator_file_message_ids(emulator_state) <= journal_ids(state)
    before = journal_count(state)
    assert run(argv_for("delete", 1)) == EXIT_OK
    assert journal_count(state) == before  # nothing left to send

    with StateStore.open(state, exclusive=False) as store:
        journal = store.journal()
    rows = reconcile(journal)
    unanswered = {row.entry.message_identifier for row in rows if Flag.UNANSWERED in row.flags}
    assert unanswered == {e.message_identifier for e in journal if e.outcome == "sent"}
    assert all(row.entry.outcome == "sent" for row in rows if Flag.UNANSWERED in row.flags)
    figures["unanswered (in flight at a kill)"] = len(unanswered)
    figures["journalled requests"] = len(journal)
    operations = Counter(e.operation for e in journal)
    figures["GMS requests"] = sum(n for op, n in operations.items() if "Group" in op)
    figures["MMS requests"] = sum(n for op, n in operations.items() if "Membership" in op)
    output = emulator_process.stop()
    injected = re.search(r"Faults injected: (.*)", output)
    assert injected is not None, output
    print(
        f"\ngroup crash trials: {dict(figures)}; edits {dict(school.edits)}; "
        f"held {len(held.groups)} groups, {len(held.memberships)} memberships, {len(held.persons)} persons; "
        f"{injected.group(0)}"
    )
    assert figures["killed"] >= TRIALS * 2 // 3  # most kills landed mid-run, not after it
    assert figures["unanswered (in flight at a kill)"] > 0  # some kills caught requests in flight
    assert operations["changeGroupIdentifier"] > 0  # schools were re-keyed
    assert {"deleteGroup", "updateMembership"} <= set(operations)
