"""The kind descriptions: each kind's record, fields, operations and references agree with each other."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from sync.models import (
    KINDS,
    ChangeIdentifier,
    Create,
    Deactivate,
    Group,
    Kind,
    Membership,
    Operation,
    Person,
    Record,
    Update,
    kind_named,
    kind_of,
)
from sync.models.kinds import GROUP, MEMBERSHIP, OPERATION_TYPES, PERSON

#: One record of each kind.
RECORDS: dict[str, Record] = {
    "person": Person(sync_key="p"),
    "group": Group(sync_key="g"),
    "membership": Membership(sync_key="m", group="g", person="p", role="Learner"),
}


def _operation(op_type: type[Operation], record: Record) -> Operation:
    """An operation of `op_type` on `record`, with whatever else that type requires."""
    if op_type is ChangeIdentifier:
        return ChangeIdentifier(record=record, old_id="old", new_id=record.sync_key)
    if op_type is Update:
        return Update(record=record, changes=())
    return op_type(record=record)  # type: ignore[call-arg]


class TestKinds:
    """Every layer is written over these descriptions, so they must be exact."""

    @pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
    def test_fields_are_the_record_fields(self, kind: Kind) -> None:
        """A kind's fields are its record's fields after the sync key, in order, with one column each."""
        names = [f.name for f in dataclasses.fields(kind.record)]
        assert names == ["sync_key", *kind.fields]
        assert len(kind.columns) == len(kind.fields)

    @pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
    def test_references_name_fields_and_kinds(self, kind: Kind) -> None:
        """A reference is one of the kind's fields, stored in that field's column, to a known kind."""
        for ref in kind.references:
            assert kind.columns[kind.fields.index(ref.field)] == ref.column
            assert kind_named(ref.kind).name == ref.kind

    def test_kind_of_records_and_operations(self) -> None:
        """Records and every operation type map back to their kind; names and phases are distinct."""
        assert kind_of(RECORDS["person"]) is PERSON
        assert kind_of(RECORDS["group"]) is GROUP
        assert kind_of(RECORDS["membership"]) is MEMBERSHIP
        for kind in KINDS:
            for _, op_type in kind.typed_operations:
                assert kind_of(_operation(op_type, RECORDS[kind.name])) is kind
        used = {op_type for kind in KINDS for _, op_type in kind.typed_operations}
        assert used == {typing.get_origin(t) for t in typing.get_args(Operation)}
        assert [k.phase for k in KINDS] == sorted({k.phase for k in KINDS})
        assert len({k.name for k in KINDS}) == len(KINDS)

    def test_operation_names(self) -> None:
        """IMS ES operation names follow the object's name, as itslearning's WSDLs spell them."""
        assert PERSON.operation("create") == "createPerson"
        assert GROUP.change_identifier_operation == "changeGroupIdentifier"
        assert MEMBERSHIP.mass_operation("delete") == "deleteMemberships"

    def test_unknown_kind_name(self) -> None:
        """An unknown name is a KeyError, not a silent default."""
        with pytest.raises(KeyError):
            kind_named("course")

    def test_type_of_each_operation(self) -> None:
        """Every operation type has one name per kind; an operation of another kind is refused."""
        for kind in KINDS:
            names = [kind.type_of(_operation(t, RECORDS[kind.name])) for _, t in kind.typed_operations]
            assert names == [name for name, _ in kind.typed_operations]
        assert [name for name, _ in MEMBERSHIP.typed_operations] == list(OPERATION_TYPES)
        with pytest.raises(TypeError, match="no person operation"):
            PERSON.type_of(Create(record=RECORDS["group"]))
        with pytest.raises(TypeError, match="no person operation"):
            PERSON.type_of(Deactivate(record=RECORDS["person"]))
