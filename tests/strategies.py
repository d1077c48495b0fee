"""Hypothesis strategies and builders for roster and snapshot frames (the diff's inputs), and operations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from sync.models import PERSON_FIELDS, Reject
from sync.models import operations as op
from sync.models.kinds import KINDS, PERSON
from sync.plan.diff import snapshot_columns
from sync.read.roster import FRAME_COLUMNS, Roster

SNAPSHOT_COLUMNS = snapshot_columns(PERSON)

#: One person's values: "identity" and the PERSON_FIELDS, all text.
Values = Mapping[str, str]


def snapshot_frame(persons: Mapping[str, Values]) -> pd.DataFrame:
    """A snapshot frame (as `StateStore.load(PERSON)` returns) from {sync key: values}."""
    index = pd.Index(list(persons), dtype="str", name="sync_key")
    return pd.DataFrame(
        {
            name: pd.array([values.get(name, "") for values in persons.values()], dtype="str")
            for name in SNAPSHOT_COLUMNS
        },
        index=index,
    )


def make_roster(
    persons: Mapping[str, Values],
    *,
    delete: Iterable[str] = (),
    passwords: Mapping[str, str] | None = None,
    rejects: Iterable[Reject] = (),
    rejected_identities: Iterable[str] = (),
) -> Roster:
    """A Roster (as `read_roster` returns) from {sync key: values}; keys in `delete` are marked."""
    marked = set(delete)
    passwords = passwords or {}
    keys = list(persons)
    columns: dict[str, Any] = {
        name: pd.array([persons[key].get(name, "") for key in keys], dtype="str")
        for name in ("identity", *PERSON_FIELDS)
    }
    columns["password"] = pd.array([passwords.get(key, "") for key in keys], dtype="str")
    columns["row"] = list(range(2, len(keys) + 2))
    columns["delete"] = [key in marked for key in keys]
    frame = pd.DataFrame(columns, index=pd.Index(keys, dtype="str", name="sync_key"))
    assert tuple(frame.columns) == FRAME_COLUMNS
    return Roster(
        file="roster.csv",
        frame=frame,
        rejects=tuple(rejects),
        rejected_identities=frozenset(rejected_identities),
    )


def roster_persons(roster: Roster) -> pd.DataFrame:
    """The persons a roster wants IMS ES to hold (rows not marked for deletion), sorted by key."""
    frame = roster.frame.loc[~roster.frame["delete"].to_numpy(dtype=bool), list(SNAPSHOT_COLUMNS)]
    return frame.sort_index()


sync_keys = st.text(alphabet="abk0129-", min_size=1, max_size=4)
identities = st.sampled_from(["", "ada", "bo", "cy", "di", "eve", "fay"])
field_values = st.sampled_from(["", "x", "y", "Øy", "a b"])


@st.composite
def person_values(draw: st.DrawFn, identity: st.SearchStrategy[str] = identities) -> dict[str, str]:
    """One person's values; the username is the identity when there is one, as mappings usually do."""
    values = {name: draw(field_values) for name in PERSON_FIELDS}
    values["identity"] = draw(identity)
    return values


@st.composite
def snapshots(draw: st.DrawFn) -> dict[str, dict[str, str]]:
    """{sync key: values} for a snapshot; identities may repeat, as an old snapshot's can."""
    keys = draw(st.lists(sync_keys, unique=True, max_size=8))
    return {key: draw(person_values()) for key in keys}


@st.composite
def roster_and_snapshot(draw: st.DrawFn) -> tuple[Roster, dict[str, dict[str, str]]]:
    """A snapshot and a roster derived from it by edits: keep, change, rename, drop, add, mark.

    The roster is what validation lets through: unique keys, unique non-empty identities among the
    rows not marked for deletion, no rejects.
    """
    snapshot = draw(snapshots())
    persons: dict[str, dict[str, str]] = {}
    marked: list[str] = []
    for key, values in snapshot.items():
        edit = draw(st.sampled_from(["keep", "keep", "change", "rename", "drop", "mark"]))
        if edit == "keep":
            persons[key] = dict(values)
        elif edit == "change":
            persons[key] = draw(person_values(st.just(values["identity"]) | identities))
        elif edit == "rename":
            new_key = draw(sync_keys.filter(lambda k: k not in snapshot))
            persons[new_key] = dict(values) | draw(st.fixed_dictionaries({"email": field_values}))
        elif edit == "mark":
            persons[key] = dict(values)
            marked.append(key)
    for key in draw(st.lists(sync_keys, unique=True, max_size=3)):
        persons.setdefault(key, draw(person_values()))
    # Validation rejects two active rows claiming one identity: keep the first claim only.
    seen: set[str] = set()
    for key, values in persons.items():
        if key in marked or not values["identity"]:
            continue
        if values["identity"] in seen:
            values["identity"] = ""
        seen.add(values["identity"])
    return make_roster(persons, delete=marked), snapshot


_any_text = st.text(max_size=6)  # quotes, backslashes, %, newlines and any other character


@st.composite
def operations(draw: st.DrawFn) -> list[op.Operation]:
    """Operations of every kind and type, in any order, with any text in their fields."""
    ops: list[op.Operation] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(KINDS))
        values = dict.fromkeys(kind.fields, "") | {draw(st.sampled_from(kind.fields)): draw(_any_text)}
        record = kind.record.from_values(draw(_any_text), values)
        text = draw(_any_text)
        changes = (op.FieldChange(field="name", old=text, new=""),) * draw(st.integers(0, 2))
        made: list[op.Operation] = [
            op.Create(record=record, identity=text, password="secret"),
            op.Update(record=record, identity=text, changes=changes),
            op.ChangeIdentifier(record=record, old_id=text, new_id="n", changes=changes),
            op.Delete(record=record, reason=text),
            op.Deactivate(record=record, reason=text),
        ]
        ops.append(draw(st.sampled_from(made)))
    return ops
