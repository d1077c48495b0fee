"""The records IMS ES holds: persons, groups, memberships, with their canonical fields and code lists."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import hashlib
import itertools
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self, TypeAlias, TypeVar

T = TypeVar("T")

#: How many of the PERSON_FIELDS (the last ones) came after the first snapshots: a content hash leaves
#: them out while they and every field after them are empty, so a snapshot written before them keeps
#: its hashes valid without rehashing a row.
PERSON_LATER_FIELDS: Final = 8

#: The IMS ES demographics genders a person may have ("" = not given). itslearning's schema also has
#: "Gender" (unspecified): what is sent when only a birth date is known (gender is required there).
GENDERS: Final = ("Male", "Female")

#: What separates the children's sync keys in `Person.children` (a key holding it cannot be a child).
CHILDREN_SEP: Final = ","

#: The institutionRoleType values itslearning's PMS schema allows (InstitutionRoleDType), in its order.
INSTITUTION_ROLE_TYPES: Final = (
    "Student",
    "Faculty",
    "Member",
    "Learner",
    "Instructor",
    "Mentor",
    "Staff",
    "Alumni",
    "ProspectiveStudent",
    "Guest",
    "Other",
    "Administrator",
    "Observer",
    "Carer",
)


#: itslearning's organisation types (groupType scheme ItslearningOrganisationTypes).
GROUP_TYPES: Final = ("Unspecified", "Site", "School", "Course", "CourseGroup")

#: The IMS ES membership roleType values itslearning's MMS schema allows by name (it also allows
#: their numeric codes 01-08). itslearning maps Learner to Student and Instructor to Teacher in a
#: course, ContentDeveloper and Member to Guest.
MEMBERSHIP_ROLE_TYPES: Final = (
    "Learner",
    "Instructor",
    "ContentDeveloper",
    "Member",
    "Manager",
    "Mentor",
    "Administrator",
    "TeachingAssistant",
)


def instances(cls: type[T], count: int, columns: Mapping[str, Sequence[Any]]) -> list[T]:
    """`count` instances of the frozen, slotted dataclass `cls`, the i-th equal to
    `cls(**{name: column[i] for name, column in columns.items()})` (a field without a column: its default).

    Built column by column through the slots (one `object.__new__` per row, then one loop per field),
    not through `__init__`, whose frozen per-field `object.__setattr__` calls cost five times as much:
    a first night builds a record and an operation for every row of the roster. The collector is off
    meanwhile: the new objects form no cycles, and a pass per 700 of them would walk the whole heap.

    Raises:
        TypeError: `cls` is not such a dataclass (a field without a slot, or a `__post_init__`), a
            column names no field or has not `count` values, or a field without a column has no
            plain default.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    slots: dict[str, Any] = {name: getattr(cls, name, None) for name in fields}
    if (
        hasattr(cls, "__post_init__")
        or not all(isinstance(slot, types.MemberDescriptorType) for slot in slots.values())
        or set(columns) - set(fields)
        or any(len(values) != count for values in columns.values())
    ):
        raise TypeError(f"cannot build {count} {cls.__name__} from columns {sorted(columns)}")
    filled: dict[str, Sequence[Any]] = {}
    for name, field in fields.items():
        if name in columns:
            filled[name] = columns[name]
        elif field.default is not dataclasses.MISSING:
            filled[name] = itertools.repeat(field.default, count)  # type: ignore[assignment]
        else:
            raise TypeError(f"{cls.__name__}.{name} has no column and no default")
    with collector_paused():
        new = object.__new__
        made: list[T] = list(map(new, itertools.repeat(cls, count)))
        for name, values in filled.items():
            # the slot's own descriptor (a frozen __setattr__ refuses), called over the column in C
            collections.deque(map(slots[name].__set__, made, values), maxlen=0)
        return made


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off meanwhile, as it was after. For work that makes 10^5-10^6
    objects forming no cycles (a first night's operations and records, a plan's lookups, a report's
    lines): the collector, started every 700 new objects, would walk the whole heap of them, again and
    again. Nothing is leaked: what has no references left is freed as ever."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def join_children(keys: Iterable[str]) -> str:
    """The canonical `children` value of these sync keys: sorted, unique, joined by CHILDREN_SEP.

    Empty keys are left out. The caller rejects a key that holds CHILDREN_SEP (it would read back as two).
    """
    return CHILDREN_SEP.join(sorted({key for key in keys if key}))


def split_children(value: str) -> tuple[str, ...]:
    """The children's sync keys in a `children` value (the inverse of `join_children`)."""
    return tuple(key for key in value.split(CHILDREN_SEP) if key) if value else ()


class _Fields:
    """What every record does with its canonical fields (`FIELDS`, without the sync key)."""

    __slots__ = ()
    #: The record's fields but the sync key, in their order (`_canonical` reads them off the dataclass).
    FIELDS: ClassVar[tuple[str, ...]]
    #: How many of the last FIELDS a content hash leaves out while they are empty (see PERSON_LATER_FIELDS).
    LATER_FIELDS: ClassVar[int] = 0

    def values(self) -> dict[str, str]:
        """The canonical fields (without the sync key) as a dict, in `FIELDS` order."""
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_values(cls, sync_key: str, values: Mapping[str, str]) -> Self:
        """The record of `sync_key` from a mapping that holds (at least) every canonical field."""
        return cls(sync_key=sync_key, **{name: values[name] for name in cls.FIELDS})  # type: ignore[call-arg]

    @classmethod
    def from_columns(cls, sync_keys: Sequence[str], columns: Mapping[str, Sequence[str]]) -> list[Self]:
        """The records of `sync_keys`, each from its row of `columns` (every canonical field, whole
        columns in the keys' order): what `from_values` gives row by row, built column by column."""
        return instances(cls, len(sync_keys), {"sync_key": sync_keys, **{f: columns[f] for f in cls.FIELDS}})


_R = TypeVar("_R", bound="type[_Fields]")


def _canonical(cls: _R) -> _R:
    """The record dataclass `cls`, its `FIELDS` read off its fields: the one list of them."""
    cls.FIELDS = tuple(f.name for f in dataclasses.fields(cls) if f.name != "sync_key")  # type: ignore[arg-type]
    return cls


@_canonical
@dataclass(frozen=True, slots=True, kw_only=True)
class Person(_Fields):
    """One person as IMS ES holds it. Never carries a password."""

    LATER_FIELDS: ClassVar[int] = PERSON_LATER_FIELDS

    sync_key: str
    username: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    role: str = ""
    birth_date: str = ""
    phone: str = ""
    mobile: str = ""
    # Added in schema version 5 (issue 17): `person_hash` leaves them out while they are all empty.
    nickname: str = ""
    prefix: str = ""
    street: str = ""
    street_extra: str = ""
    postal_code: str = ""
    city: str = ""
    gender: str = ""
    children: str = ""


@_canonical
@dataclass(frozen=True, slots=True, kw_only=True)
class Group(_Fields):
    """One group (school, course, ...) as IMS ES GMS holds it."""

    sync_key: str
    name: str = ""
    type: str = ""
    parent: str = ""
    description: str = ""


@_canonical
@dataclass(frozen=True, slots=True, kw_only=True)
class Membership(_Fields):
    """One membership: a person in a group with a role, as IMS ES MMS holds it."""

    sync_key: str
    group: str
    person: str
    role: str
    active: str = "true"


#: The canonical person fields sent to IMS ES, in a fixed order (the sync key is separate).
#: Every value is a string; "" means absent. birth_date is ISO yyyy-mm-dd; role is an
#: IMS ES institutionRoleType (Student, Staff, Administrator, Carer, Guest, ...); gender is one of
#: GENDERS; children holds the sync keys of the person's children (a parent's links, itslearning's
#: parent portal) as one canonical string (`join_children`).
PERSON_FIELDS: Final = Person.FIELDS
#: The canonical group fields (the sync key is separate). name is IMS's description/descShort,
#: description its descLong; type is an itslearning organisation type (GROUP_TYPES); parent is the
#: sync key of the parent group ("" for a group at the top of the hierarchy).
GROUP_FIELDS: Final = Group.FIELDS
#: The canonical membership fields (the membership's own sync key is separate): the group's and the
#: person's sync keys, the member's roleType, and "true"/"false" for an active/deactivated membership.
MEMBERSHIP_FIELDS: Final = Membership.FIELDS


def hashed_values(values: Sequence[str], later: int) -> Sequence[str]:
    """`values` without the trailing empty ones among their last `later` (the fields added after the first
    snapshots): what a content hash covers, so that an upgraded snapshot's hashes still hold."""
    end = len(values)
    while end > len(values) - later and not values[end - 1]:
        end -= 1
    return values[:end]


def person_hash(person: Person, identity: str = "") -> str:
    """A stable content hash of a person's canonical fields and identity value (sha256, hex); the later
    fields (PERSON_LATER_FIELDS) count only up to the last non-empty one."""
    h = hashlib.sha256()
    for value in hashed_values((identity, *person.values().values()), PERSON_LATER_FIELDS):
        h.update(value.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


Record: TypeAlias = Person | Group | Membership
