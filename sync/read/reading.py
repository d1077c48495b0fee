"""What reading needs to know of each kind beyond `sync.models.kinds`: the fields a mapping may read
besides the kind's own, the fields never read, whether the roster frame names each row's file, the
field whose values must be one of IMS ES's types, and the fields every row needs.

Pure data: imports nothing but `sync.models`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from sync.models import GENDERS, GROUP_TYPES, INSTITUTION_ROLE_TYPES, MEMBERSHIP_ROLE_TYPES
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON, Kind

__all__ = ["LIST_FIELDS", "PRIMARY_FIELD", "READINGS", "Reading", "reading"]

#: A person's links to other persons, each a list of sync keys separated by ",": `children` (the
#: person's children), `parents` (the person's parents) and `agents` (OneRoster's agentSourcedIds: on
#: a Carer its children, on anyone else their parents).
LIST_FIELDS: Final = ("children", "parents", "agents")

#: Marks the row that gives a person's fields in a file with several rows per person (`rules.many_rows`).
PRIMARY_FIELD: Final = "primary"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """How a mapping reads one kind of object (`ColumnMapping.kind` is its `kind.plural`)."""

    kind: Kind
    extra_fields: tuple[str, ...] = ()  # read besides kind.fields: a person's password (create only)
    #: Fields never read, the same on every row: a membership in the roster is active.
    fixed: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    file_column: bool  # the frame names each row's file: the kind may be read from several files
    typed_field: str  # the field whose (value-mapped) values must be one of `types`
    types: tuple[str, ...]
    types_described: str  # what a value outside `types` is not, as an error says it
    required: tuple[str, ...] = ()  # needed on every row besides the sync key
    date_fields: tuple[str, ...] = ()  # dates, read in the mapping's `date_formats`, kept as ISO dates
    #: Without a sync_key column the key is these fields' values joined by ":" (a membership's
    #: group:person), and `rules.split` may make one row per value of one of them.
    derived_key: tuple[str, ...] = ()
    #: Fields read but kept out of the frame: a person's links to other persons (lists of sync keys,
    #: `LIST_FIELDS`) and the primary-row marker of a file with several rows per person.
    link_fields: tuple[str, ...] = ()
    #: Other value-mapped fields whose values must be one of a list, with what a value outside it is not.
    typed_fields: Mapping[str, tuple[tuple[str, ...], str]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def canonical_fields(self) -> tuple[str, ...]:
        """The fields a mapping may name in [columns] or [constants] (besides the identity field)."""
        read = (name for name in self.kind.fields if name not in self.fixed)
        return ("sync_key", *read, *self.extra_fields, *self.link_fields, "status")

    @property
    def frame_columns(self) -> tuple[str, ...]:
        """The columns of the roster frame (its index is "sync_key"), in order."""
        identity = ("identity",) if self.kind.identity else ()
        file = ("file",) if self.file_column else ()
        return (*identity, *self.kind.fields, *self.extra_fields, *file, "row", "delete")


#: How each kind is read, by `Kind.plural` (the mapping's `kind`), in the order mappings list them.
READINGS: Final[Mapping[str, Reading]] = MappingProxyType(
    {
        reading.kind.plural: reading
        for reading in (
            Reading(
                kind=PERSON,
                extra_fields=("password",),
                file_column=False,
                typed_field="role",
                types=INSTITUTION_ROLE_TYPES,
                types_described="is not an IMS ES institutionRoleType",
                date_fields=("birth_date",),
                link_fields=(*(name for name in LIST_FIELDS if name not in PERSON.fields), PRIMARY_FIELD),
                typed_fields=MappingProxyType({"gender": (GENDERS, "is not an IMS ES gender")}),
            ),
            Reading(
                kind=GROUP,
                file_column=True,
                typed_field="type",
                types=GROUP_TYPES,
                types_described="is not an itslearning organisation type",
            ),
            Reading(
                kind=MEMBERSHIP,
                fixed=MappingProxyType({"active": "true"}),
                file_column=True,
                typed_field="role",
                types=MEMBERSHIP_ROLE_TYPES,
                types_described="is not an IMS ES membership roleType",
                required=("group", "person"),
                derived_key=("group", "person"),
            ),
        )
    }
)


def reading(plural: str) -> Reading:
    """How a mapping of kind `plural` ("persons", "groups", "memberships") reads.

    Raises:
        KeyError: no kind is called so.
    """
    return READINGS[plural]
