"""The records IMS ES holds: persons, groups, memberships, with their canonical fields and code lists."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, Self, TypeAlias

#: The canonical person fields sent to IMS ES, in a fixed order (the sync key is separate).
#: Every value is a string; "" means absent. birth_date is ISO yyyy-mm-dd; role is an
#: IMS ES institutionRoleType (Student, Staff, Administrator, Carer, Guest, ...).
PERSON_FIELDS: Final = (
    "username",
    "given_name",
    "family_name",
    "email",
    "role",
    "birth_date",
    "phone",
    "mobile",
)

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


#: The canonical group fields (the sync key is separate). name is IMS's description/descShort,
#: description its descLong; type is an itslearning organisation type (GROUP_TYPES); parent is the
#: sync key of the parent group ("" for a group at the top of the hierarchy).
GROUP_FIELDS: Final = ("name", "type", "parent", "description")

#: itslearning's organisation types (groupType scheme ItslearningOrganisationTypes).
GROUP_TYPES: Final = ("Unspecified", "Site", "School", "Course", "CourseGroup")

#: The canonical membership fields (the membership's own sync key is separate): the group's and the
#: person's sync keys, the member's roleType, and "true"/"false" for an active/deactivated membership.
MEMBERSHIP_FIELDS: Final = ("group", "person", "role", "active")

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


class _Fields:
    """What every record does with its canonical fields (`FIELDS`, without the sync key)."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]]

    def values(self) -> dict[str, str]:
        """The canonical fields (without the sync key) as a dict, in `FIELDS` order."""
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_values(cls, sync_key: str, values: Mapping[str, str]) -> Self:
        """The record of `sync_key` from a mapping that holds (at least) every canonical field."""
        return cls(sync_key=sync_key, **{name: values[name] for name in cls.FIELDS})  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True, kw_only=True)
class Person(_Fields):
    """One person as IMS ES holds it. Never carries a password."""

    FIELDS: ClassVar[tuple[str, ...]] = PERSON_FIELDS

    sync_key: str
    username: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    role: str = ""
    birth_date: str = ""
    phone: str = ""
    mobile: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Group(_Fields):
    """One group (school, course, ...) as IMS ES GMS holds it."""

    FIELDS: ClassVar[tuple[str, ...]] = GROUP_FIELDS

    sync_key: str
    name: str = ""
    type: str = ""
    parent: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership(_Fields):
    """One membership: a person in a group with a role, as IMS ES MMS holds it."""

    FIELDS: ClassVar[tuple[str, ...]] = MEMBERSHIP_FIELDS

    sync_key: str
    group: str
    person: str
    role: str
    active: str = "true"


def person_hash(person: Person, identity: str = "") -> str:
    """A stable content hash of a person's canonical fields and identity value (sha256, hex)."""
    h = hashlib.sha256()
    for value in (identity, *person.values().values()):
        h.update(value.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


Record: TypeAlias = Person | Group | Membership
