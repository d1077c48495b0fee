"""The run's figures in the Prometheus text format, for node_exporter's textfile collector.

`--metrics-file FILE` (a `.prom` file in the collector's directory) is rewritten atomically at the end of
every `run` (prometheus_client's `write_to_textfile`: a temporary file beside it, then a rename), so the
collector never reads half a file. Every series carries the state directory as its `state` label: one
file per site, many sites on one host, no clashes. The time of the last run that exited 0 is carried
over from the previous file, so "no successful run for 26 hours" can be alerted on after failed nights.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from sync.models import KINDS, Outcome, Plan, RunResult, kind_of
from sync.plan.selection import HELD_CAUSES

if TYPE_CHECKING:
    from sync.state.journal import JournalEntry

__all__ = ["LAST_SUCCESS", "RunFigures", "metrics_registry", "write_metrics"]

_PREFIX: Final = "ims_sync_last_run_"
#: The series that outlives failed runs: when the last run that exited 0 ended (Unix seconds).
LAST_SUCCESS: Final = "ims_sync_last_success_timestamp_seconds"


@dataclass(slots=True, kw_only=True)
class RunFigures:
    """What a run did, as the people on call count it: filled in as the run goes, written at its end."""

    state: str  # the state directory: the `state` label of every series
    started_at: datetime
    finished_at: datetime | None = None  # None until the run ends
    exit_code: int = 0
    plan: Plan | None = None  # None when the run stopped before planning (bad input, a locked state)
    result: RunResult | None = None  # None when nothing was sent (a safety limit, bad input)
    requests: int = 0  # requests journalled by this run (first attempts, retries and reads)
    retries: int = 0  # of those, attempts after the first
    #: Operations held back, by cause: a safety limit, `--only`, a pause window (`sync.plan.selection`).
    held: Counter[str] = field(default_factory=Counter)

    def count_requests(self, journal: Sequence[JournalEntry]) -> None:
        """Requests this run journalled, and how many of them were second or later attempts."""
        self.requests = len(journal)
        self.retries = sum(entry.attempt > 1 for entry in journal)


def metrics_registry(figures: RunFigures, *, last_success: float | None) -> CollectorRegistry:
    """The run's series in a registry of their own (nothing of the process's default registry).

    Args:
        figures: the run.
        last_success: the previous file's LAST_SUCCESS, carried over unless this run exited 0.
    """
    registry = CollectorRegistry(auto_describe=True)
    labels = {"state": figures.state}
    plan = figures.plan
    started = _seconds(figures.started_at)
    finished = _seconds(figures.finished_at or figures.started_at)
    success = finished if figures.exit_code == 0 else last_success
    series: list[tuple[str, str, float | None]] = [
        (f"{_PREFIX}start_timestamp_seconds", "When the last run started (Unix seconds).", started),
        (f"{_PREFIX}end_timestamp_seconds", "When the last run ended (Unix seconds).", finished),
        (f"{_PREFIX}duration_seconds", "How long the last run took.", finished - started),
        (f"{_PREFIX}exit_code", "The last run's exit code (see docs/scheduling.md).", figures.exit_code),
        (f"{_PREFIX}rejects", "Roster rows the last run rejected.", len(plan.rejects) if plan else 0),
        (f"{_PREFIX}requests", "Requests sent to IMS ES (retries and reads included).", figures.requests),
        (f"{_PREFIX}retries", "Attempts after the first.", figures.retries),
        (LAST_SUCCESS, "When the last run that exited 0 ended (Unix seconds).", success),
    ]
    for name, doc, value in series:
        if value is not None:
            Gauge(name, doc, list(labels), registry=registry).labels(**labels).set(value)
    held = Gauge(
        f"{_PREFIX}held_operations",
        "Operations the last run held back, by cause: a safety limit, --only, a pause window.",
        [*labels, "cause"],
        registry=registry,
    )
    for cause in HELD_CAUSES:  # every cause present, 0 included
        held.labels(**labels, cause=cause).set(figures.held[cause])
    operations = Gauge(
        f"{_PREFIX}operations",
        "The last run's operations by kind, type and outcome.",
        [*labels, "kind", "type", "outcome"],
        registry=registry,
    )
    counts = _operation_counts(figures.result)
    for kind in KINDS:  # every series present, 0 included: an alert rule needs no absent() guards
        for op_type, _ in kind.typed_operations:
            for outcome in Outcome:
                count = counts[kind.name, op_type, outcome.value]
                operations.labels(**labels, kind=kind.name, type=op_type, outcome=outcome.value).set(count)
    return registry


def write_metrics(path: Path, figures: RunFigures) -> None:
    """Rewrite `path` atomically with the run's series, keeping the last success of the previous file.

    Raises:
        OSError: the file or its directory cannot be written (the previous file is then left whole).
    """
    registry = metrics_registry(figures, last_success=_previous_success(path, figures.state))
    write_to_textfile(str(path), registry)


def _operation_counts(result: RunResult | None) -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for item in result.results if result is not None else ():
        kind = kind_of(item.operation)
        counts[kind.name, kind.type_of(item.operation), item.outcome.value] += 1
    return counts


def _previous_success(path: Path, state: str) -> float | None:
    """The previous file's LAST_SUCCESS for this state; None when there is no readable one."""
    try:
        text = path.read_text(encoding="utf-8")
        families = list(text_string_to_metric_families(text))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    for family in families:
        for sample in family.samples:
            if sample.name == LAST_SUCCESS and sample.labels.get("state") == state:
                return float(sample.value)
    return None


def _seconds(moment: datetime) -> float:
    return moment.timestamp()
