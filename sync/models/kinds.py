"""One description per kind of object the engine synchronises: persons, groups, memberships.

Every layer (diff, snapshot and journal, executor, IMS ES clients, reports, CLI export) is written
once over these descriptions instead of once per kind. A new kind of object is a new `Kind` here, its
record type, and its IMS ES request shape in `sync.ims`; its mapping says how to read it.

Pure data: this module imports nothing but the value types beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

from sync.models.operations import (
    ChangeIdentifier,
    Create,
    Deactivate,
    Delete,
    FieldChange,
    Operation,
    Update,
)
from sync.models.records import (
    Group,
    Membership,
    Person,
    Record,
    split_children,
)

__all__ = [
    "DELETION_ORDER",
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
    "operation_type",
]

KindName: TypeAlias = Literal["person", "group", "membership"]
#: What an operation does, as plans, limits and metrics name it.
OperationType: TypeAlias = Literal["create", "update", "changeIdentifier", "delete", "deactivate"]
OPERATION_TYPES: Final[tuple[OperationType, ...]] = get_args(OperationType)
_TYPED_OPERATIONS: Final[tuple[tuple[OperationType, type[Operation]], ...]] = tuple(
    zip(OPERATION_TYPES, (Create, Update, ChangeIdentifier, Delete, Deactivate), strict=True)
)
_TYPE_NAMES: Final[dict[type, OperationType]] = {op_type: name for name, op_type in _TYPED_OPERATIONS}


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
    record: type[Record]
    columns: tuple[str, ...] = ()  # the snapshot column of each field, in `fields` order (default: its name)
    identity: bool  # has an identity key (matched when its sync key changes): persons and groups
    references: tuple[Reference, ...]
    service: Literal["pms", "gms", "mms"]
    #: Roster columns a create carries (`Create`'s field of that name) but the plan never compares nor
    #: the snapshot keeps: a person's initial password.
    created_with: tuple[str, ...] = ()
    deactivatable: bool = False  # `--deletes deactivate` keeps it, inactive, instead of deleting it
    #: Fields an update cannot empty: IMS ES's update keeps what it is not sent (a group's parent and
    #: name), so the plan sets such an update aside as a conflict.
    unclearable: tuple[str, ...] = ()
    #: An "unknown object" answer to an identifier change follows the journal's targets of this kind's
    #: unconfirmed renames from the old id (persons, groups).
    follows_lost_renames: bool = False
    #: An update answered "unknown object" creates the object again: unlike updatePerson,
    #: updateMembership does not create, and the roster still wants it (memberships).
    recreates_vanished: bool = False
    #: IMS ES's update merges what it is sent (updatePerson): clearing a field needs the kind's replace.
    merging_update: bool = False
    #: A field holding sync keys of records of this kind (a person's children, `join_children`): IMS ES's
    #: update only adds to them (so an update that drops one needs the replace) and skips those that do
    #: not exist yet (so a run sends the record after those of them it changes).
    links: str = ""
    summary_prefix: str  # PlanSummary's field prefix ("" for persons, whose counts are unprefixed)
    phase: int  # change phases run in this order (groups, persons, memberships); deletions: DELETION_ORDER

    def __post_init__(self) -> None:
        if not self.columns:
            object.__setattr__(self, "columns", self.fields)

    @property
    def plural(self) -> str:
        """The set mapping's section, `snapshot export --kind`, the snapshot table: "persons", ..."""
        return f"{self.name}s"

    @property
    def table(self) -> str:
        """The snapshot table."""
        return self.plural

    @property
    def fields(self) -> tuple[str, ...]:
        """The canonical fields, without the sync key, in a fixed order: the record's."""
        return self.record.FIELDS

    @property
    def ims_name(self) -> str:
        """IMS ES's name in its operations: createPerson, readGroup, deleteMembership, ..."""
        return self.name.capitalize()

    @property
    def service_name(self) -> str:
        """IMS ES's service of this kind, as itslearning names it: PersonManagementService, ... (its
        endpoint `<name>.svc`, its SOAP binding `BasicHttpBinding_<name>Sync`)."""
        return f"{self.ims_name}ManagementService"

    @property
    def typed_operations(self) -> tuple[tuple[OperationType, type[Operation]], ...]:
        """Each operation type of this kind with what it does ("create", "update", ...)."""
        return _TYPED_OPERATIONS if self.deactivatable else _TYPED_OPERATIONS[:-1]

    def type_of(self, op: Operation) -> OperationType:
        """What `op` (of this kind) does: "create", "update", "changeIdentifier", "delete" or "deactivate"."""
        name = operation_type(op)
        if kind_of(op) is not self or (name == "deactivate" and not self.deactivatable):
            raise TypeError(f"{type(op).__name__} of a {kind_of(op).name} is no {self.name} operation")
        return name

    def update_verb(self, changes: Iterable[FieldChange]) -> Literal["update", "replace"]:
        """How IMS ES must be sent an update with these changes (the one place this is decided): "replace"
        (replacePerson) when its update merges and a field is cleared or the links lose a key; else
        "update" (so adding a child is an updatePerson)."""
        if not self.merging_update:
            return "update"
        for change in changes:
            if not change.new:
                return "replace"
            if change.field == self.links and not set(split_children(change.old)) <= set(
                split_children(change.new)
            ):
                return "replace"
        return "update"

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
    record=Group,
    identity=True,
    references=(Reference(field="parent", kind="group", column="parent", go_with_it=False),),
    service="gms",
    unclearable=("parent", "name"),
    follows_lost_renames=True,
    summary_prefix="group_",
    phase=0,
)
PERSON: Final = Kind(
    name="person",
    record=Person,
    identity=True,
    references=(),
    service="pms",
    created_with=("password",),
    merging_update=True,
    links="children",
    follows_lost_renames=True,
    summary_prefix="",
    phase=1,
)
MEMBERSHIP: Final = Kind(
    name="membership",
    record=Membership,
    columns=("group_key", "person_key", "role", "active"),
    identity=False,
    references=(
        Reference(field="group", kind="group", column="group_key", go_with_it=True),
        Reference(field="person", kind="person", column="person_key", go_with_it=True),
    ),
    service="mms",
    deactivatable=True,
    recreates_vanished=True,
    summary_prefix="membership_",
    phase=2,
)

#: Every kind, in the order their changes are sent (itslearning: hierarchies, then users, then
#: memberships); deletions go in DELETION_ORDER.
KINDS: Final[tuple[Kind, ...]] = (GROUP, PERSON, MEMBERSHIP)

_BY_NAME: Final[dict[str, Kind]] = {kind.name: kind for kind in KINDS}
_BY_RECORD: Final[dict[type, Kind]] = {kind.record: kind for kind in KINDS}


def kind_named(name: str) -> Kind:
    """The kind called `name` ("person", "group", "membership").

    Raises:
        KeyError: no kind has that name.
    """
    return _BY_NAME[name]


def kind_of(value: Record | Operation) -> Kind:
    """The kind a record or an operation (by the record it carries) is of."""
    return _BY_RECORD[type(value if isinstance(value, Record) else value.record)]


def operation_type(op: Operation) -> OperationType:
    """What `op` does, whatever its kind: "create", "update", "changeIdentifier", "delete", "deactivate"."""
    return _TYPE_NAMES[type(op)]


def _level(kind: Kind) -> int:
    """How many kinds deep `kind` refers to others: persons and groups 0, memberships 1."""
    others = [kind_named(ref.kind) for ref in kind.references if ref.kind != kind.name]
    return 1 + max(map(_level, others)) if others else 0


#: The order deletions run in (and the reports list them): a kind before those it refers to; kinds that
#: refer to none of each other keep their phase order: memberships, then groups, then persons. (Not the
#: change phases reversed, which `Kind.phase` suggests.)
DELETION_ORDER: Final[tuple[Kind, ...]] = tuple(sorted(KINDS, key=lambda kind: (-_level(kind), kind.phase)))
