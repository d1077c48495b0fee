"""What `verify --repair` records in the state: the snapshot change with its repair, in one
transaction, and the repairs the plan shows until a run puts them right."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.errors import StateError
from sync.models import Person
from sync.models.drift import RepairedDrift
from sync.models.kinds import PERSON
from sync.state.changes import Remove, Upsert
from sync.state.store import StateStore
from tests.journal import confirmed, db_rows, sent_request


def _seeded(state: Path) -> StateStore:
    """A store with persons p1 and p2 confirmed by request m0."""
    store = StateStore.open(state)
    run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
    for mid, key in (("m0", "p1"), ("m00", "p2")):
        store.record_sent(sent_request(run_id, mid, key))
        store.record_answer(confirmed(mid), [Upsert(record=Person(sync_key=key, given_name="Ada"))])
    store.record_sent(sent_request(run_id, "read-1", "p1", "p2", operation="readPersons"))
    store.record_answer(confirmed("read-1"))
    return store


def test_a_changed_repair_stays_current_until_a_run_confirms_the_object(tmp_path: Path) -> None:
    """A changed object takes IMS ES's values stamped with the read; a later confirmation lapses it."""
    with _seeded(tmp_path / "s") as store:
        repair = RepairedDrift(kind="person", sync_key="p1", drift="changed", message_identifier="read-1")
        store.record_repair(repair, Upsert(record=Person(sync_key="p1", given_name="Eve")))
        assert store.load(PERSON).loc["p1", "given_name"] == "Eve"
        assert store.repairs() == [repair]
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        store.record_sent(sent_request(run_id, "m1", "p1", operation="updatePerson"))
        store.record_answer(confirmed("m1"), [Upsert(record=Person(sync_key="p1", given_name="Ada"))])
        assert store.repairs() == []


def test_a_missing_repair_stays_current_until_the_object_is_back(tmp_path: Path) -> None:
    """A missing object leaves the snapshot; the repair lapses once a run creates it again."""
    with _seeded(tmp_path / "s") as store:
        repair = RepairedDrift(kind="person", sync_key="p2", drift="missing", message_identifier="read-1")
        store.record_repair(repair, Remove(kind="person", sync_key="p2"))
        assert "p2" not in store.load(PERSON).index
        assert store.repairs() == [repair]
        run_id = store.begin_run(command="run", roster="r.csv", mapping="m")
        store.record_sent(sent_request(run_id, "m2", "p2"))
        store.record_answer(confirmed("m2"), [Upsert(record=Person(sync_key="p2"))])
        assert store.repairs() == []


def test_a_failed_repair_writes_nothing(tmp_path: Path) -> None:
    """The snapshot change and the repair's record are one transaction: when recording the repair
    fails after the change was applied, neither is written."""
    state = tmp_path / "s"
    with _seeded(state) as store:
        bad = RepairedDrift(kind="person", sync_key="p1", drift=None, message_identifier="read-1")  # type: ignore[arg-type]
        with pytest.raises(StateError):
            store.record_repair(bad, Upsert(record=Person(sync_key="p1", given_name="Eve")))
        assert store.load(PERSON).loc["p1", "given_name"] == "Ada"
    assert db_rows(state, "SELECT COUNT(*) FROM drift_repairs") == [(0,)]
    assert db_rows(state, "SELECT given_name FROM persons WHERE sync_key = 'p1'") == [("Ada",)]
