"""One description per kind of object the engine synchronises: persons, groups, memberships.

Every layer (diff, snapshot and journal, executor, IMS ES clients, reports, CLI export) is written
once over these descriptions instead of once per kind. A new kind of object is a new `Kind` here, its
record and operation types, and its IMS ES request shape in `sync.ims`; its mapping says how to read it.

Pure data: this module imports nothing but the value types beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from sync.models.operations import (
    ChangeGroupIdentifier,
    ChangeIdentifier,
    ChangeMembershipIdentifier,
    Create,
    CreateGroup,
    CreateMembership,
    DeactivateMembership,
    Delete,
    DeleteGroup,
    DeleteMembership,
    Operation,
    Update,
    UpdateGroup,
    UpdateMembership,
)
from sync.models.records import (
    GROUP_FIELDS,
    MEMBERSHIP_FIELDS,
    PERSON_FIELDS,
    Group,
    Membership,
    Person,
    Record,
)

__all__ = [
    "GROUP",
    "KINDS",
    "MEMBERSHIP",
    "OPERATION_TYPES",
    "PERSON",
    "Kind",
    "KindName",
    "OperationType",
    "Reference",
    "kind_named",
    "kind_of",
]

KindName: TypeAlias = Literal["person", "group", "membership"]
#: What an operation does, as plans, limits and metrics name it.
OperationType: TypeAlias = Literal["create", "update", "changeIdentifier", "delete", "deactivate"]
OPERATION_TYPES: Final[tuple[OperationType, ...]] = (
    "create",
    "update",
    "changeIdentifier",
    "delete",
    "deactivate",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """A field that holds another object's sync key (a group's parent, a membership's group or person).

    IMS ES carries references along when the object referred to changes its identifier; when it is
    deleted, objects that `go_with_it` are deleted too (a person's memberships), the others stay (a
    group with children cannot be deleted, so its children were deleted first).
    """

    field: str  # the canonical field holding the sync key
    kind: KindName  # the kind referred to
    column: str  # the snapshot column holding it
    go_with_it: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """What the engine needs to know of one kind of object: data, storage, IMS ES calls, order."""

    name: KindName  # singular, as reports and the journal say it
    plural: str  # the set mapping's section, `snapshot export --kind`, the snapshot table
    record: type[Record]
    fields: tuple[str, ...]  # canonical fields, without the sync key, in a fixed order
    columns: tuple[str, ...]  # the snapshot column of each field, in `fields` order
    identity: bool  # has an identity key (matched when its sync key changes): persons and groups
    references: tuple[Reference, ...]
    ims_name: str  # IMS ES's name in its operations: createPerson, readGroup, deleteMembership, ...
    service: Literal["pms", "gms", "mms"]
    create: type[Create | CreateGroup | CreateMembership]
    update: type[Update | UpdateGroup | UpdateMembership]
    change_identifier: type[ChangeIdentifier | ChangeGroupIdentifier | ChangeMembershipIdentifier]
    delete: type[Delete | DeleteGroup | DeleteMembership]
    deactivate: type[DeactivateMembership] | None = None  # `--deletes deactivate` keeps it, inactive
    summary_prefix: str  # PlanSummary's field prefix ("" for persons, whose counts are unprefixed)
    phase: int  # change phases run in this order (groups, persons, memberships); deletions reversed

    @property
    def table(self) -> str:
        """The snapshot table."""
        return self.plural

    @property
    def typed_operations(self) -> tuple[tuple[OperationType, type[Operation]], ...]:
        """Each operation type of this kind with what it does ("create", "update", ...)."""
        pairs: tuple[tuple[OperationType, type[Operation]], ...] = (
            ("create", self.create),
            ("update", self.update),
            ("changeIdentifier", self.change_identifier),
            ("delete", self.delete),
        )
        return (*pairs, ("deactivate", self.deactivate)) if self.deactivate is not None else pairs

    @property
    def operation_types(self) -> tuple[type[Operation], ...]:
        """Every operation type of this kind."""
        return tuple(op_type for _, op_type in self.typed_operations)

    def type_of(self, op: Operation) -> OperationType:
        """What `op` does: "create", "update", "changeIdentifier", "delete" or "deactivate"."""
        for name, op_type in self.typed_operations:
            if type(op) is op_type:
                return name
        raise TypeError(f"{type(op).__name__} is no {self.name} operation")

    def operation(self, verb: Literal["create", "update", "replace", "delete", "read"]) -> str:
        """IMS ES's operation name: `operation("create")` of persons is "createPerson"."""
        return f"{verb}{self.ims_name}"

    @property
    def change_identifier_operation(self) -> str:
        """IMS ES's identifier change: changePersonIdentifier, changeGroupIdentifier, ..."""
        return f"change{self.ims_name}Identifier"

    def mass_operation(self, verb: Literal["create", "delete"]) -> str:
        """IMS ES's mass form: createPersons, createGroups, deleteMemberships, ..."""
        return f"{verb}{self.ims_name}s"


GROUP: Final = Kind(
    name="group",
    plural="groups",
    record=Group,
    fields=GROUP_FIELDS,
    columns=GROUP_FIELDS,
    identity=True,
    references=(Reference(field="parent", kind="group", column="parent", go_with_it=False),),
    ims_name="Group",
    service="gms",
    create=CreateGroup,
    update=UpdateGroup,
    change_identifier=ChangeGroupIdentifier,
    delete=DeleteGroup,
    summary_prefix="group_",
    phase=0,
)
PERSON: Final = Kind(
    name="person",
    plural="persons",
    record=Person,
    fields=PERSON_FIELDS,
    columns=PERSON_FIELDS,
    identity=True,
    references=(),
    ims_name="Person",
    service="pms",
    create=Create,
    update=Update,
    change_identifier=ChangeIdentifier,
    delete=Delete,
    summary_prefix="",
    phase=1,
)
MEMBERSHIP: Final = Kind(
    name="membership",
    plural="memberships",
    record=Membership,
    fields=MEMBERSHIP_FIELDS,
    columns=("group_key", "person_key", "role", "active"),
    identity=False,
    references=(
        Reference(field="group", kind="group", column="group_key", go_with_it=True),
        Reference(field="person", kind="person", column="person_key", go_with_it=True),
    ),
    ims_name="Membership",
    service="mms",
    create=CreateMembership,
    update=UpdateMembership,
    change_identifier=ChangeMembershipIdentifier,
    delete=DeleteMembership,
    deactivate=DeactivateMembership,
    summary_prefix="membership_",
    phase=2,
)

#: Every kind, in the order their changes are sent (itslearning: hierarchies, then users, then
#: memberships); deletions go the other way round.
KINDS: Final[tuple[Kind, ...]] = (GROUP, PERSON, MEMBERSHIP)

_BY_NAME: Final[dict[str, Kind]] = {kind.name: kind for kind in KINDS}
_BY_TYPE: Final[dict[type, Kind]] = {t: kind for kind in KINDS for t in (kind.record, *kind.operation_types)}


def kind_named(name: str) -> Kind:
    """The kind called `name` ("person", "group", "membership").

    Raises:
        KeyError: no kind has that name.
    """
    return _BY_NAME[name]


def kind_of(value: Record | Operation) -> Kind:
    """The kind a record or an operation is of."""
    return _BY_TYPE[type(value)]
