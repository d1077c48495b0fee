"""A large snapshot table read from SQLite by two connections at once (sync.state.loading.read_table):
the same frame as one connection reads, and a change committed between the two connections' reads
leaves the second one's columns to the first (the frame stays what the first connection saw)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sync.models import MEMBERSHIP_FIELDS, PERSON_FIELDS
from sync.models.kinds import MEMBERSHIP, PERSON, Kind
from sync.state import loading
from sync.state.store import StateStore


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as store:
        yield store


@pytest.fixture(name="helper_calls")
def fixture_helper_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each read by the second connection ended in ("helped", or the exception's name); every
    table is read by two connections (in chunks of 3 rows), however busy the machine is."""
    calls: list[str] = []
    real = loading._helped

    def helped(*args: Any) -> Any:
        try:
            result = real(*args)
        except Exception as exc:
            calls.append(type(exc).__name__)
            raise
        calls.append("helped")
        return result

    monkeypatch.setattr(loading, "_helped", helped)
    monkeypatch.setattr(loading, "_idle_cpu", lambda: True)  # whatever else the machine runs
    monkeypatch.setattr(loading, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(loading, "LOAD_CHUNK", 3)
    return calls


def _rows(kind: Kind, count: int) -> pd.DataFrame:
    """`count` rows of `kind` (persons or memberships) with a distinct value in every column."""
    keys = [f"k{i:02d}" for i in range(count, 0, -1)]  # seeded out of key order
    fields = PERSON_FIELDS if kind is PERSON else MEMBERSHIP_FIELDS
    columns = {name: [f"{name}-{key}" for key in keys] for name in fields}
    if kind is PERSON:
        columns["identity"] = [f"id-{key}" for key in keys]
    else:
        columns["active"] = ["true", "false"] * (count // 2) + ["true"] * (count % 2)
    return pd.DataFrame(columns, index=pd.Index(keys))


def _load(store: StateStore, kind: Kind) -> pd.DataFrame:
    """`kind`'s frame as SQLite gives it (the Arrow cache removed first)."""
    store.cache_path(kind).unlink(missing_ok=True)
    return store.load(kind)


@pytest.mark.parametrize("kind", [PERSON, MEMBERSHIP], ids=["persons", "memberships"])
def test_two_connections_read_what_one_reads(
    store: StateStore, helper_calls: list[str], monkeypatch: pytest.MonkeyPatch, kind: Kind
) -> None:
    """Half of the columns from a second connection: the frame is the one a single connection reads."""
    store.seed(kind, _rows(kind, 11))
    both = _load(store, kind)
    assert helper_calls == ["helped"]
    monkeypatch.setattr(loading, "PARALLEL_ROWS", 10**9)
    alone = _load(store, kind)
    assert helper_calls == ["helped"]
    pd.testing.assert_frame_equal(both, alone, check_exact=True)
    assert list(both.index) == sorted(both.index)
    fields = PERSON_FIELDS if kind is PERSON else MEMBERSHIP_FIELDS
    assert all(both.loc["k07", name] == f"{name}-k07" for name in fields if name != "active")


def test_a_change_committed_between_the_reads_leaves_the_columns_to_the_first_connection(
    store: StateStore, helper_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change committed after the first connection's read began and before the second one's: the
    second sees another generation, so the first reads those columns too and the frame holds no
    value of the change (the snapshot stays what SQLite held when the load began)."""
    store.seed(PERSON, _rows(PERSON, 7))
    spied = loading._helped  # records what the second connection's read ended in
    changed = ("username", "given_name", "email")  # the first connection's column, two of the second's

    def change_first(*args: Any) -> Any:
        writer = sqlite3.connect(store.path, timeout=10)
        try:
            with writer:
                writer.execute(f"UPDATE persons SET {', '.join(f'{c} = {c} || 1' for c in changed)}")
        finally:
            writer.close()
        return spied(*args)

    monkeypatch.setattr(loading, "_helped", change_first)
    before = _load(store, PERSON)
    assert helper_calls == ["_Unhelped"]
    for name in changed:
        assert set(before[name]) == {f"{name}-k{i:02d}" for i in range(1, 8)}
    monkeypatch.setattr(loading, "_helped", spied)
    after = _load(store, PERSON)
    assert helper_calls == ["_Unhelped", "helped"]
    for name in changed:
        assert set(after[name]) == {f"{name}-k{i:02d}1" for i in range(1, 8)}


@pytest.mark.parametrize(
    ("figures", "cpus", "idle"),
    [
        ("1.90 1.50 1.20 1/120 4242\n", 2, True),  # busy last minute, only this process runnable now
        ("0.10 0.10 0.10 2/120 4242\n", 2, False),  # quiet last minute, another process running now
        ("0.10 0.10 0.10 3/120 4242\n", 4, True),
        ("0.10 0.10 0.10 4/120 4242\n", 4, False),
    ],
)
def test_a_second_connection_is_used_when_a_cpu_is_idle_now(
    figures: str, cpus: int, idle: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runnable entities at this moment decide (this process among them), not the minute's average."""
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(figures, encoding="ascii")
    monkeypatch.setattr(loading, "_LOADAVG", loadavg)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert loading._idle_cpu() is idle


def test_without_the_runnable_count_the_minutes_average_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loading, "_LOADAVG", tmp_path / "absent")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert loading._idle_cpu() is True
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 0.5, 0.5))
    assert loading._idle_cpu() is False


def test_giving_freed_memory_back_keeps_what_is_in_use() -> None:
    """After the read and the parallel load the freed memory is given back; what is still held (Arrow
    arrays, Python objects) is untouched."""
    import pyarrow as pa  # type: ignore[import-untyped]

    from sync.read.memory import give_back_freed

    kept = pa.array([f"value-{i}" for i in range(50_000)], type=pa.large_string())
    dropped = pa.array([f"gone-{i}" for i in range(200_000)], type=pa.large_string())
    before = pa.default_memory_pool().bytes_allocated()
    del dropped
    give_back_freed()
    assert pa.default_memory_pool().bytes_allocated() < before
    assert kept[49_999].as_py() == "value-49999"
    assert kept.to_pylist()[:2] == ["value-0", "value-1"]
