"""The run's metrics file: Prometheus text for node_exporter, rewritten atomically, last success kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync.cli.metrics import LAST_SUCCESS, RunFigures, write_metrics
from sync.models import (
    ChangeOperation,
    Create,
    CreateMembership,
    DeactivateMembership,
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

T0 = datetime(2026, 12, 5, 2, 30, tzinfo=UTC)
STATE = "/var/lib/ims-sync/north"


def _member(key: str) -> Membership:
    return Membership(sync_key=key, group="g1", person="p1", role="Learner")


def _figures(exit_code: int, *, at: datetime = T0, state: str = STATE) -> RunFigures:
    changes: tuple[ChangeOperation, ...] = (
        Create(person=Person(sync_key="p1")),
        Create(person=Person(sync_key="p2")),
        Update(person=Person(sync_key="p3"), changes=()),
        CreateMembership(membership=_member("m1")),
    )
    ops: tuple[Operation, ...] = (*changes, DeactivateMembership(membership=_member("m2")))
    plan = Plan(
        operations=changes,
        deletions=(),
        rejects=(Reject(file="users.csv", row=7, field="role", reason="unknown role"),),
        conflicts=(),
        unchanged=10,
        snapshot_size=12,
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
        assert _value(values, "ims_sync_last_run_held_operations") == 0
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
