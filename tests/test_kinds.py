"""The kind descriptions: each kind's record, fields, operations and references agree with each other."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from sync.models import KINDS, Group, Kind, Membership, Operation, Person, kind_named, kind_of
from sync.models.kinds import GROUP, MEMBERSHIP, OPERATION_TYPES, PERSON


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
        assert kind_of(Person(sync_key="p")) is PERSON
        assert kind_of(Group(sync_key="g")) is GROUP
        assert kind_of(Membership(sync_key="m", group="g", person="p", role="Learner")) is MEMBERSHIP
        owned = [t for kind in KINDS for t in kind.operation_types]
        assert sorted(owned, key=str) == sorted(typing.get_args(Operation), key=str)
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
        names = {kind.type_of(t.__new__(t)) for kind in KINDS for t in kind.operation_types}
        assert names == set(OPERATION_TYPES)
        with pytest.raises(TypeError, match="no person operation"):
            PERSON.type_of(GROUP.create.__new__(GROUP.create))
