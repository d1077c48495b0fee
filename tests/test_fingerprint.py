"""The plan fingerprint (sync.plan.fingerprint): every part moves it, and `differences` names the part."""

from __future__ import annotations

from typing import Any

from sync.plan.fingerprint import Fingerprint, differences, digest, fingerprint


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
