"""The plan of many new rows (a first night): built column by column, it equals the plan row by row."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from sync.models import (
    PERSON_FIELDS,
    ChangeIdentifier,
    Conflict,
    Create,
    Delete,
    FieldChange,
    Person,
    Reject,
)
from sync.models.kinds import PERSON
from sync.models.records import Group, instances
from sync.plan.diff import DiffPolicy, empty_snapshot, plan
from tests.plan_golden import GOLDEN, sample_plans
from tests.strategies import make_roster, snapshot_frame

#: Keys out of order, beyond ASCII (sorted by code point: "B" < "a" < "z" < "Ø" < "ü").
KEYS = ("z1", "a2", "Ø3", "B4", "ü5", "a10", "held", "twin1", "twin2", "marked", "idheld")


def values(key: str, **fields: str) -> dict[str, str]:
    """One person's values, every field different per key (some left empty)."""
    row = {name: f"{name[:3]}-{key}" if i % 3 else "" for i, name in enumerate(PERSON_FIELDS)}
    row.update(identity=f"id-{key}")
    row.update(fields)
    return row


def roster_rows() -> dict[str, dict[str, str]]:
    """The roster: two rows share an identity, one row is marked, two are protected by rejects."""
    rows = {key: values(key) for key in KEYS}
    rows["twin2"]["identity"] = "id-twin1"
    return rows


def new_roster() -> object:
    """The roster of `roster_rows` with passwords, a mark and rejects sharing a key and an identity."""
    return make_roster(
        roster_rows(),
        delete=["marked"],
        passwords={key: f"pw-{key}" for key in KEYS[::2]},
        rejects=[Reject(file="roster.csv", row=40, field="role", reason="unknown role", sync_key="held")],
        rejected_identities=["id-idheld"],
    )


def one_by_one() -> tuple[list[Create[Person]], list[Conflict]]:
    """What a first night plans, written row by row with the records' own constructors."""
    rows = roster_rows()
    passwords = {key: f"pw-{key}" for key in KEYS[::2]}
    creates = [
        Create(
            record=Person.from_values(key, rows[key]),
            identity=rows[key]["identity"],
            password=passwords.get(key, ""),
        )
        for key in sorted(KEYS)
        if key not in ("held", "marked", "idheld")
    ]
    held = [
        Conflict(
            identity=rows[key]["identity"],
            roster_keys=(key,),
            snapshot_keys=(),
            reason="a rejected row shares this person's sync key or identity: nothing is changed until it "
            "is fixed",
        )
        for key in ("held", "idheld")
    ]
    return creates, held


class TestFirstNight:
    def test_every_row_is_a_create_in_sync_key_order_and_protected_rows_are_held(self) -> None:
        """Against an empty snapshot each unprotected, unmarked row is a Create equal to the one-by-one
        construction, by code point order of sync keys; rows sharing an identity are both created."""
        result = plan(new_roster(), empty_snapshot(PERSON))  # type: ignore[arg-type]
        creates, held = one_by_one()
        assert list(result.operations) == creates
        assert [op.sync_key for op in result.operations] == sorted(op.sync_key for op in result.operations)
        assert list(result.conflicts) == sorted(held, key=lambda c: (c.identity, c.roster_keys))
        assert result.deletions == ()
        assert result.unchanged_of(PERSON) == 0

    @pytest.mark.parametrize("detect", [True, False])
    def test_an_unrelated_snapshot_changes_nothing_but_its_deletions(self, detect: bool) -> None:
        """Beside a snapshot of other persons (other keys and identities) the creates and conflicts are
        those of the empty snapshot, and the snapshot's persons are deletion candidates."""
        policy = DiffPolicy(detect_identifier_changes=detect)
        first = plan(new_roster(), empty_snapshot(PERSON), policy)  # type: ignore[arg-type]
        others = {"o1": values("o1"), "o2": values("o2")}
        result = plan(new_roster(), snapshot_frame(others), policy)  # type: ignore[arg-type]
        assert result.operations == first.operations
        assert result.conflicts == first.conflicts
        assert result.deletions == tuple(
            Delete(record=Person.from_values(key, others[key]), identity=f"id-{key}", reason="not in roster")
            for key in ("o1", "o2")
        )

    def test_a_snapshot_record_gone_by_identity_contests_only_its_claimers(self) -> None:
        """A gone snapshot person whose identity one new row has becomes that row's identifier change,
        the two rows claiming one gone identity a conflict, and every other row the same Create as on a
        first night."""
        creates, _ = one_by_one()
        old_a2 = roster_rows()["a2"] | {"given_name": "Old"}
        old_twin = values("old2", identity="id-twin1")
        result = plan(new_roster(), snapshot_frame({"old": old_a2, "old2": old_twin}))  # type: ignore[arg-type]
        a2 = next(c for c in creates if c.sync_key == "a2")
        rename = ChangeIdentifier(
            old_id="old",
            new_id="a2",
            record=a2.record,
            identity="id-a2",
            changes=(FieldChange(field="given_name", old="Old", new="giv-a2"),),
        )
        others = [c for c in creates if c.sync_key not in ("a2", "twin1", "twin2")]
        assert list(result.operations) == [rename, *others]
        assert [c.roster_keys for c in result.conflicts if c.identity == "id-twin1"] == [("twin1", "twin2")]
        assert result.deletions == ()

    def test_a_large_first_night_with_repeated_values_equals_the_row_by_row_creates(self) -> None:
        """Columns of a few repeated values (taken through a dictionary past 1,000 rows) and all-empty
        columns give the same Creates as the constructors row by row."""
        rows = {
            f"k{i:05d}": values(f"{i}", role=("Student", "Staff", "Guest")[i % 3], given_name=f"N{i % 7}")
            | {"city": "", "children": ""}
            for i in range(2500, 0, -1)
        }
        result = plan(make_roster(rows), empty_snapshot(PERSON))
        expected = [
            Create(record=Person.from_values(key, rows[key]), identity=rows[key]["identity"])
            for key in sorted(rows)
        ]
        assert list(result.operations) == expected


class TestSamplePlans:
    def test_the_sample_sets_plan_as_the_golden_file_says(self) -> None:
        """The sample sets' plans (first nights and nights after another set) equal, line for line, the
        ones the row-by-row planner wrote (tests/golden/sample_plans.txt)."""
        assert sample_plans() == GOLDEN.read_text(encoding="utf-8").splitlines()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Loose:
    """A dataclass with a __post_init__: `instances` must refuse it."""

    seen: ClassVar[list[str]] = []
    name: str

    def __post_init__(self) -> None:
        self.seen.append(self.name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _NoSlots:
    """A dataclass without slots: `instances` must refuse it."""

    name: str


class TestInstances:
    def test_instances_equal_the_constructor_row_by_row_with_defaults(self) -> None:
        """Each built instance equals (and hashes as) the constructor's, the missing fields defaulted."""
        built = instances(Group, 2, {"sync_key": ["g1", "g2"], "name": ["One", "Two"], "parent": ["", "g1"]})
        expected = [Group(sync_key="g1", name="One"), Group(sync_key="g2", name="Two", parent="g1")]
        assert built == expected
        assert [hash(b) for b in built] == [hash(e) for e in expected]
        with pytest.raises(dataclasses.FrozenInstanceError):
            built[0].name = "x"  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("cls", "columns"),
        [
            (_Loose, {"name": ["a"]}),
            (_NoSlots, {"name": ["a"]}),
            (Group, {"sync_key": ["g1"], "nmae": ["typo"]}),
            (Group, {"sync_key": ["g1", "g2"]}),
            (Group, {"name": ["no key"]}),
        ],
    )
    def test_instances_refuses_what_the_constructor_would_not_build_alike(
        self, cls: type, columns: dict[str, list[str]]
    ) -> None:
        """A class with __post_init__ or without slots, an unknown field, a short column or a required
        field without a column is a TypeError, not a half-built object."""
        with pytest.raises(TypeError):
            instances(cls, 1, columns)
        assert _Loose.seen == []
