"""verify's pure comparison: field by field over `Kind.fields`, the three kinds of drift, the sample, and
what the next run does about each."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from sync.models import PERSON_FIELDS, Person
from sync.models.drift import Drift, FieldDrift
from sync.models.kinds import MEMBERSHIP, PERSON
from sync.verify.compare import compare, next_run, sample

EMMA = dict.fromkeys(PERSON_FIELDS, "") | {"given_name": "Emma", "family_name": "Hansen", "role": "Student"}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WiderPerson(Person):
    """A person with a field the engine does not have yet (as another branch adds them)."""

    FIELDS: ClassVar[tuple[str, ...]] = (*PERSON_FIELDS, "pronouns")

    pronouns: str = ""


def test_the_same_values_are_no_drift() -> None:
    """An object IMS ES holds exactly as the snapshot does is not reported."""
    assert compare(PERSON, {"p1": EMMA}, {"p1": dict(EMMA)}) == []


def test_missing_changed_and_extra_rows() -> None:
    """Unknown to IMS ES is missing, differing fields are changed (with both values), unknown to the
    snapshot is extra; an "extra" the snapshot knows is not one."""
    held = {"p1": None, "p2": EMMA | {"given_name": "Emmy", "email": "e@x.no"}}
    rows = compare(PERSON, {"p1": EMMA, "p2": EMMA}, held, {"p3": {}, "p2": {}})
    assert rows == [
        Drift(kind="person", sync_key="p1", drift="missing"),
        Drift(
            kind="person",
            sync_key="p2",
            drift="changed",
            fields=(
                FieldDrift(field="given_name", snapshot="Emma", itslearning="Emmy"),
                FieldDrift(field="email", snapshot="", itslearning="e@x.no"),
            ),
        ),
        Drift(kind="person", sync_key="p3", drift="extra"),
    ]


def test_a_field_a_kind_gains_is_compared_without_an_edit() -> None:
    """The comparison runs over `Kind.fields`: a new person field (pronouns) is compared as it comes."""
    wider = dataclasses.replace(PERSON, record=WiderPerson)
    rows = compare(wider, {"p1": EMMA | {"pronouns": "she"}}, {"p1": EMMA | {"pronouns": "they"}})
    assert [f.field for row in rows for f in row.fields] == ["pronouns"]


def test_json_rows_carry_exactly_their_keys() -> None:
    """A JSON row has kind, sync_key and drift, and fields only when changed."""
    changed = Drift(
        kind="membership",
        sync_key="m1",
        drift="changed",
        fields=(FieldDrift(field="role", snapshot="Learner", itslearning="Instructor"),),
        next_run="update role",
    )
    assert changed.as_dict() == {
        "kind": "membership",
        "sync_key": "m1",
        "drift": "changed",
        "fields": [{"field": "role", "snapshot": "Learner", "itslearning": "Instructor"}],
    }
    assert set(Drift(kind="person", sync_key="p", drift="extra").as_dict()) == {"kind", "sync_key", "drift"}


def test_a_sample_is_the_same_for_the_same_seed() -> None:
    """The same keys, size and seed choose the same objects; the whole set when the sample is larger."""
    keys = [("person", f"p{i}") for i in range(1000)]
    first = sample(keys, 50, 7)
    assert first == sample(keys, 50, 7)
    assert len(first) == 50
    assert len(set(first)) == 50
    assert first != sample(keys, 50, 8)
    assert sample(keys[:10], 50, 7) == keys[:10]


def test_what_the_next_run_does() -> None:
    """Missing: created once repaired; changed: the fields the roster wants otherwise; extra: kept."""
    roster = EMMA
    assert (
        next_run(PERSON, "missing", roster, None, repaired=False) == "create once repaired (verify --repair)"
    )
    assert next_run(PERSON, "missing", roster, None, repaired=True) == "create"
    held = EMMA | {"given_name": "Emmy"}
    assert next_run(PERSON, "changed", roster, held, repaired=True) == "update given_name"
    assert next_run(PERSON, "changed", held, held, repaired=True) == "none: IMS ES holds the roster's values"
    assert next_run(PERSON, "missing", None, None, repaired=True) == "none: not in the roster"
    assert next_run(MEMBERSHIP, "extra", None, None, repaired=True).startswith("none: not in the snapshot")
    assert next_run(PERSON, "extra", roster, None, repaired=False).startswith("create")
