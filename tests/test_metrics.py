"""The run's metrics file: Prometheus text for node_exporter, rewritten atomically, last success kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync.cli.app import main
from sync.cli.metrics import LAST_SUCCESS, RunFigures, write_metrics
from sync.cli.output import EXIT_OK, EXIT_SAFETY, EXIT_USAGE
from sync.emulator import Emulator
from sync.models import (
    ChangeOperation,
    Create,
    Deactivate,
    Membership,
    Operation,
    OperationResult,
    Outcome,
    Person,
    Plan,
    Reject,
    RunResult,
    Update,
)
from sync.state.store import StateStore
from tests.checks import person_row, run_args, set_credentials, write_roster

T0 = datetime(2026, 12, 5, 2, 30, tzinfo=UTC)
STATE = "/var/lib/ims-sync/north"


def _member(key: str) -> Membership:
    return Membership(sync_key=key, group="g1", person="p1", role="Learner")


def _figures(exit_code: int, *, at: datetime = T0, state: str = STATE) -> RunFigures:
    changes: tuple[ChangeOperation, ...] = (
        Create(record=Person(sync_key="p1")),
        Create(record=Person(sync_key="p2")),
        Update(record=Person(sync_key="p3"), changes=()),
        Create(record=_member("m1")),
    )
    ops: tuple[Operation, ...] = (*changes, Deactivate(record=_member("m2")))
    plan = Plan(
        operations=changes,
        deletions=(),
        rejects=(Reject(file="users.csv", row=7, field="role", reason="unknown role"),),
        conflicts=(),
        unchanged_by={"person": 10},
        snapshot_sizes={"person": 12},
    )
    outcomes = (Outcome.CONFIRMED, Outcome.CONFIRMED, Outcome.REJECTED, Outcome.SKIPPED, Outcome.CONFIRMED)
    result = RunResult(
        run_id="r1",
        plan=plan,
        results=tuple(OperationResult(operation=o, outcome=c) for o, c in zip(ops, outcomes, strict=True)),
        started_at=at.isoformat(),
        finished_at=(at + timedelta(minutes=3)).isoformat(),
    )
    return RunFigures(
        state=state,
        started_at=at,
        finished_at=at + timedelta(minutes=3),
        exit_code=exit_code,
        plan=plan,
        result=result,
        requests=9,
        retries=2,
    )


def _read(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(path.read_text(encoding="utf-8"))
        for sample in family.samples
    }


def _value(values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return values[name, frozenset({"state": STATE, **labels}.items())]


class TestMetricsFile:
    """What the people on call alert on: exit code, last success, operations, rejects, requests."""

    def test_a_successful_run(self, tmp_path: Path) -> None:
        """Every figure of an exit-0 run is written under the state label; its end is the last success."""
        path = tmp_path / "ims-sync.prom"
        write_metrics(path, _figures(0))
        values = _read(path)
        end = (T0 + timedelta(minutes=3)).timestamp()
        assert _value(values, "ims_sync_last_run_exit_code") == 0
        assert _value(values, "ims_sync_last_run_start_timestamp_seconds") == T0.timestamp()
        assert _value(values, "ims_sync_last_run_end_timestamp_seconds") == end
        assert _value(values, "ims_sync_last_run_duration_seconds") == 180
        assert _value(values, LAST_SUCCESS) == end
        assert _value(values, "ims_sync_last_run_rejects") == 1
        assert _value(values, "ims_sync_last_run_requests") == 9
        assert _value(values, "ims_sync_last_run_retries") == 2
        for cause in ("limit", "only", "pause"):  # one series per cause, 0 included
            assert _value(values, "ims_sync_last_run_held_operations", cause=cause) == 0
        ops = "ims_sync_last_run_operations"
        assert _value(values, ops, kind="person", type="create", outcome="confirmed") == 2
        assert _value(values, ops, kind="person", type="update", outcome="rejected") == 1
        assert _value(values, ops, kind="membership", type="create", outcome="skipped") == 1
        assert _value(values, ops, kind="membership", type="deactivate", outcome="confirmed") == 1
        assert _value(values, ops, kind="group", type="delete", outcome="confirmed") == 0
        assert not [
            k for k in values if k[0] == ops and ("kind", "person") in k[1] and ("type", "deactivate") in k[1]
        ]
        assert [p.name for p in tmp_path.iterdir()] == ["ims-sync.prom"]  # no temporary file left

    def test_a_failed_night_keeps_the_last_success(self, tmp_path: Path) -> None:
        """A run that exits non-zero rewrites the figures but carries the previous success over."""
        path = tmp_path / "ims-sync.prom"
        write_metrics(path, _figures(0))
        write_metrics(path, _figures(4, at=T0 + timedelta(days=1)))
        values = _read(path)
        assert _value(values, "ims_sync_last_run_exit_code") == 4
        assert _value(values, LAST_SUCCESS) == (T0 + timedelta(minutes=3)).timestamp()
        assert (
            _value(values, "ims_sync_last_run_start_timestamp_seconds")
            == (T0 + timedelta(days=1)).timestamp()
        )

    @pytest.mark.parametrize("previous", [None, b"garbage {{{\n", b"\xff\xfe not utf-8"])
    def test_no_success_yet(self, tmp_path: Path, previous: bytes | None) -> None:
        """Without a readable previous success, a failed run writes no last-success series at all."""
        path = tmp_path / "ims-sync.prom"
        if previous is not None:
            path.write_bytes(previous)
        write_metrics(path, _figures(1))
        values = _read(path)
        assert _value(values, "ims_sync_last_run_exit_code") == 1
        assert not [k for k in values if k[0] == LAST_SUCCESS]

    def test_another_sites_success_is_not_taken(self, tmp_path: Path) -> None:
        """The last success is carried over only for the same state directory (one file per site)."""
        path = tmp_path / "ims-sync.prom"
        write_metrics(path, _figures(0, state="/var/lib/ims-sync/south"))
        write_metrics(path, _figures(1))
        assert not [k for k in _read(path) if k[0] == LAST_SUCCESS]


class TestRunWritesMetrics:
    """`ims-sync run --metrics-file` against the emulator: every exit code leaves its figures."""

    def test_nights_good_and_held(
        self, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A good night counts its creates and requests; a night stopped at a limit holds its updates
        (exit 3) and keeps the good night's success; a locked state exits 2, recorded too."""
        set_credentials(monkeypatch)
        state, prom = tmp_path / "state", tmp_path / "metrics" / "ims-sync.prom"
        prom.parent.mkdir()
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 31)])
        assert main([*run_args(emulator, roster, state), "--metrics-file", str(prom)]) == EXIT_OK
        first = _read_for(prom, state)
        ops = "ims_sync_last_run_operations"
        assert first["ims_sync_last_run_exit_code", ()] == EXIT_OK
        assert first[ops, (("kind", "person"), ("outcome", "confirmed"), ("type", "create"))] == 30
        assert first["ims_sync_last_run_requests", ()] == len(emulator.history()) == 30
        assert first["ims_sync_last_run_retries", ()] == 0
        success = first[LAST_SUCCESS, ()]
        assert success == first["ims_sync_last_run_end_timestamp_seconds", ()]

        write_roster(roster, [person_row(n, givenName="Changed") for n in range(1, 31)])
        assert main([*run_args(emulator, roster, state), "--metrics-file", str(prom)]) == EXIT_SAFETY
        held = _read_for(prom, state)
        assert held["ims_sync_last_run_exit_code", ()] == EXIT_SAFETY
        assert held["ims_sync_last_run_held_operations", (("cause", "limit"),)] == 30
        assert held["ims_sync_last_run_held_operations", (("cause", "only"),)] == 0
        assert held["ims_sync_last_run_requests", ()] == 0
        assert held[LAST_SUCCESS, ()] == success

        with StateStore.open(state):
            assert main([*run_args(emulator, roster, state), "--metrics-file", str(prom)]) == EXIT_USAGE
        locked = _read_for(prom, state)
        assert locked["ims_sync_last_run_exit_code", ()] == EXIT_USAGE
        assert locked[LAST_SUCCESS, ()] == success
        assert sorted(p.name for p in prom.parent.iterdir()) == ["ims-sync.prom"]


def _read_for(path: Path, state: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The file's samples by name and labels, the `state` label checked and left out."""
    found = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("state") == str(state.resolve())
            found[sample.name, tuple(sorted(labels.items()))] = sample.value
    return found
