"""The plan fingerprint (sync.plan.fingerprint): every part moves it, `differences` names the part, and the
operations are hashed as their reprs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given

from sync.models import Create, Operation, Person
from sync.plan.fingerprint import Fingerprint, differences, digest, fingerprint, operation_texts
from tests.strategies import operations


def _print(**changed: Any) -> Fingerprint:
    """A fingerprint of fixed parts, with `changed` ones replaced."""
    parts: dict[str, Any] = {
        "roster_files": {"users.csv": digest(b"a,b\n1,2\n"), "orgs.csv": digest(b"x\n")},
        "mapping": b"[columns]\n",
        "snapshot": b"1:2",
        "settings": {"deletes": "off", "only": "all"},
        "operations": ['{"op": "create"}'],
    }
    return fingerprint(**(parts | changed))


def test_every_part_moves_the_fingerprint() -> None:
    """A byte in a roster file, the mapping, the snapshot, a setting or an operation gives another hash."""
    base = _print()
    assert _print().value == base.value
    others = [
        _print(roster_files={"users.csv": digest(b"a,b\n1,2\n\n"), "orgs.csv": digest(b"x\n")}),
        _print(mapping=b"[columns] \n"),
        _print(snapshot=b"1:3"),
        _print(snapshot=None),
        _print(settings={"deletes": "delete", "only": "all"}),
        _print(operations=['{"op": "update"}']),
    ]
    assert len({base.value, *(other.value for other in others)}) == 1 + len(others)


def test_parts_are_in_the_documented_order() -> None:
    """Roster files sorted by name, then mapping, snapshot, settings, operations."""
    assert list(_print().parts) == [
        "roster:orgs.csv",
        "roster:users.csv",
        "mapping",
        "snapshot",
        "setting:deletes",
        "setting:only",
        "operations",
    ]


def test_differences_name_what_changed() -> None:
    """The reviewed parts against today's: the file, the snapshot, the setting with both values."""
    reviewed = _print().parts
    now = _print(
        roster_files={"users.csv": digest(b"changed"), "extra.csv": digest(b"")},
        snapshot=b"9:9",
        settings={"deletes": "delete", "only": "all"},
    )
    assert differences(reviewed, now) == [
        "roster file extra.csv is new",
        "roster file orgs.csv is gone",
        "roster file users.csv changed",
        "the snapshot moved on (a run or adopt changed it since the plan)",
        "setting deletes was off, is now delete",
    ]
    assert differences(reviewed, _print()) == []


@given(operations())
def test_operation_texts_are_the_operations_reprs(ops: list[Operation]) -> None:
    """The operations' texts hash as their reprs did (a plan reviewed before keeps its fingerprint)."""
    assert "\n".join(operation_texts(ops)) == "\n".join(map(repr, ops))
    now = _print(operations=operation_texts(ops))
    assert now.value == _print(operations=map(repr, ops)).value


def test_operation_texts_of_a_first_night_come_in_batches() -> None:
    """More creates than a batch: several texts, newline-joined the reprs, no password in them."""
    ops = [
        Create(record=Person(sync_key=f"p{n}", username=f"u'{n}\\"), password="secret") for n in range(10_005)
    ]
    texts = list(operation_texts(ops))
    assert len(texts) == 2
    assert "\n".join(texts) == "\n".join(map(repr, ops))
    assert "secret" not in texts[0]


@dataclass(frozen=True, slots=True)
class _Shown:
    """A record whose class says itself how it is shown (not as a dataclass does)."""

    record: Person

    def __repr__(self) -> str:
        return f"shown {self.record.sync_key}"


def test_an_operation_with_its_own_repr_is_rendered_by_it() -> None:
    """A class with its own __repr__ is hashed by it, not by the dataclass form."""
    ops = [_Shown(record=Person(sync_key="a")), _Shown(record=Person(sync_key="b"))]
    assert list(operation_texts(ops)) == ["shown a\nshown b"]
