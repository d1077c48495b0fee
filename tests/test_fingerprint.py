"""The plan fingerprint (sync.plan.fingerprint): every part moves it, `differences` names the part, and the
operations' bytes tell them apart as their reprs do, the same in every process."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hypothesis import given

from sync.models import Create, FieldChange, Operation, Person, Update
from sync.plan.fingerprint import Fingerprint, differences, digest, fingerprint
from sync.plan.operation_bytes import operation_bytes
from tests.strategies import operations


def _print(**changed: Any) -> Fingerprint:
    """A fingerprint of fixed parts, with `changed` ones replaced."""
    parts: dict[str, Any] = {
        "roster_files": {"users.csv": digest(b"a,b\n1,2\n"), "orgs.csv": digest(b"x\n")},
        "mapping": b"[columns]\n",
        "snapshot": b"1:2",
        "settings": {"deletes": "off", "only": "all"},
        "operations": [b'{"op": "create"}'],
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
        _print(operations=[b'{"op": "update"}']),
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


def _digest(ops: list[Any]) -> str:
    """The fingerprint's operations part of `ops`."""
    return _print(operations=operation_bytes(ops)).parts["operations"]


@given(operations(), operations())
def test_operations_hash_apart_exactly_when_their_reprs_differ(
    one: list[Operation], other: list[Operation]
) -> None:
    """Two lists of operations share a hash only when every operation's repr (type and every field but
    a password) is the same; copies (other objects, equal values) hash alike."""
    assert (_digest(one) == _digest(other)) == (list(map(repr, one)) == list(map(repr, other)))
    assert _digest(copy.deepcopy(one)) == _digest(one)


def test_a_first_night_hashes_in_batches_and_leaves_passwords_out() -> None:
    """More creates than a batch: the last one moves the hash; a password is nowhere in the bytes."""
    ops = [
        Create(record=Person(sync_key=f"p{n}", username=f"u'{n}\\"), password="Pw-7731!")
        for n in range(10_005)
    ]
    assert _digest(ops) != _digest(ops[:-1])
    assert _digest([replace(op, password="other") for op in ops]) == _digest(ops)
    assert not any(b"Pw-7731!" in piece for piece in operation_bytes(ops))


def test_field_changes_are_hashed_too() -> None:
    """An update's field changes (what marshal cannot write) move the hash."""
    person = Person(sync_key="p1", family_name="Berg")
    update = Update(record=person, changes=(FieldChange(field="family_name", old="Berge", new="Berg"),))
    other = replace(update, changes=(FieldChange(field="family_name", old="Bergh", new="Berg"),))
    assert _digest([update]) != _digest([other])


_OPERATIONS = """
from sync.models import Create, FieldChange, Person, Update
person = Person(sync_key="p1", given_name="\\u00c5se", children="c1,c2")
changes = (FieldChange(field="a", old="b", new=""),)
ops = [Create(record=person, password="x"), Update(record=person, changes=changes)]
"""


def test_the_same_operations_hash_alike_in_another_process() -> None:
    """Other processes (other hash seeds, other string objects) give the same operations hash."""
    root = Path(__file__).resolve().parents[1]
    made: dict[str, Any] = {}
    exec(_OPERATIONS, made)  # (the same source, here and in the other processes)
    show = "from tests.test_fingerprint import _digest\nprint(_digest(ops))"
    values = {
        subprocess.run(
            [sys.executable, "-c", _OPERATIONS + show],
            env=os.environ | {"PYTHONHASHSEED": seed, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert values == {_digest(made["ops"])}


@dataclass(frozen=True, slots=True)
class _Shown:
    """A record whose class says itself how it is shown (not as a dataclass does)."""

    record: Person

    def __repr__(self) -> str:
        return f"shown {self.record.sync_key}"


def test_an_operation_with_its_own_repr_is_hashed_by_it() -> None:
    """A class with its own __repr__ is hashed by it: two that show alike hash alike, others apart."""
    shown = [_Shown(record=Person(sync_key="a")), _Shown(record=Person(sync_key="b"))]
    assert _digest(shown) == _digest([_Shown(record=Person(sync_key="a", username="u")), shown[1]])
    assert _digest(shown) != _digest(shown[::-1])
