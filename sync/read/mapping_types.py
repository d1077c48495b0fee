"""The mapping types (`ColumnMapping`, `SetMapping`, `Split`, `SetEntry`), the limits and names a
mapping may use, and where the built-in mappings are.

`sync.read.mapping_toml` makes these from TOML; `sync.read.mapping` loads them by name or path.
Pure data apart from listing the built-ins' folder.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from sync.read.reading import READINGS

#: Fields every persons mapping may name in [columns]; a mapping may add one more: the field named by
#: `rules.identity` (e.g. national_id), which identifies persons but is never sent to IMS ES.
#: ("sync_key", the PERSON_FIELDS, "password", "status")
CANONICAL_FIELDS: Final = READINGS["persons"].canonical_fields

#: Fields a groups mapping may name (plus the identity field, as for persons).
GROUP_CANONICAL_FIELDS: Final = READINGS["groups"].canonical_fields

#: Fields a memberships mapping may name. `active` is never read: a membership in the roster is active.
#: sync_key is optional: without it the key is group + ":" + person.
MEMBERSHIP_CANONICAL_FIELDS: Final = READINGS["memberships"].canonical_fields

#: What a (non-set) mapping may read.
KINDS: Final = tuple(READINGS)

#: The `kind` of a set mapping.
SET_KIND: Final = "set"

#: Delimiters a mapping may name (besides "auto").
DELIMITERS: Final = (",", ";", "\t", "|")

#: itslearning's sourcedId limit.
MAX_SYNC_KEY_LENGTH: Final = 64

#: The longest value (in characters) a mapped field may hold: no field needs more, and a runaway field
#: (a broken export, a pasted document) must not reach IMS ES.
MAX_VALUE_LENGTH: Final = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """`rules.split` of a memberships mapping: `field` (group or person) holds several values in one
    cell, separated by `separator`; each (stripped, non-empty, distinct) value makes its own membership."""

    field: str
    separator: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMapping:
    """How to read one kind of roster CSV into canonical persons, groups or memberships.

    Field names are canonical (for persons `sync_key`, `PERSON_FIELDS`, `password`, `status`; for
    groups `sync_key`, `GROUP_FIELDS`, `status`; for memberships `sync_key`, `group`, `person`,
    `role`, `status`), plus the identity field when it is an extra one; CSV column names are matched
    case-insensitively after stripping. Value-map keys and `delete_when` values are stored casefolded.
    `constants` gives fields the same value on every row (a field is a column or a constant, never
    both). A memberships mapping without a sync_key column derives the key as group + ":" + person.
    `split` (memberships only, derived keys only) turns a row into one membership per value of a
    multi-valued group or person column. `skip_unmapped` names value-mapped fields whose non-empty
    values outside the map drop the row silently instead of rejecting it (e.g. parents in users.csv
    when reading school memberships). `many_rows` (a persons mapping of a set's `[[persons.join]]`
    file) lets a file hold several rows per person: the row whose `primary` column holds one of
    `primary_values` (casefolded) gives the person's fields, else the person's first row.
    """

    name: str
    source: str
    delimiter: str
    encoding: str
    columns: Mapping[str, str]
    required: frozenset[str]
    value_maps: Mapping[str, Mapping[str, str]]
    date_formats: tuple[str, ...]
    identity: str
    delete_when: Mapping[str, frozenset[str]]
    kind: str = "persons"
    constants: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    split: Split | None = None
    skip_unmapped: frozenset[str] = frozenset()
    many_rows: bool = False
    primary_values: frozenset[str] = frozenset()

    def required_columns(self) -> frozenset[str]:
        """Canonical fields whose CSV column must be present in the header.

        The required fields, the identity field (without it renames would silently go undetected) and
        every `delete_when` field (without it deletions would silently go unmarked), and the
        `skip_unmapped` fields (without them nothing would be skipped); constants are not columns.
        """
        fields = set(self.required) | set(self.delete_when) | set(self.skip_unmapped)
        if self.identity:
            fields.add(self.identity)
        return frozenset(fields & set(self.columns))

    @property
    def derived_key(self) -> bool:
        """True for a memberships mapping without a sync_key column: the key is group:person."""
        return "sync_key" not in self.columns


@dataclass(frozen=True, slots=True, kw_only=True)
class SetEntry:
    """One file of a set mapping: its name in the roster folder and the mapping that reads it. The
    persons entry may name files joined to it on the person's sync key (`[[persons.join]]`)."""

    file: str
    mapping: ColumnMapping
    optional: bool = False
    joins: tuple[SetEntry, ...] = ()
    #: Fields every person must have once the joined files are read (`[persons] required`).
    required: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class SetMapping:
    """A set mapping (`kind = "set"`): the files of a roster folder and the mapping of each."""

    name: str
    source: str
    description: str
    persons: SetEntry
    groups: tuple[SetEntry, ...] = ()
    memberships: tuple[SetEntry, ...] = ()

    @property
    def entries(self) -> tuple[SetEntry, ...]:
        """Every entry of the set: persons and the files joined to them, groups, memberships (a file may
        be read by several)."""
        return (self.persons, *self.persons.joins, *self.groups, *self.memberships)

    @property
    def files(self) -> tuple[str, ...]:
        """The files the set names, each once, in the order of `entries`."""
        return tuple(dict.fromkeys(entry.file for entry in self.entries))


def canonical_fields(kind: str) -> tuple[str, ...]:
    """The fields a mapping of `kind` may name in [columns] or [constants] (besides the identity field)."""
    return READINGS[kind].canonical_fields


def _mappings_dir() -> Path:
    packaged = importlib.resources.files("sync") / "mappings"
    if packaged.is_dir():
        # An installed wheel carries the built-ins inside the package (pyproject force-include).
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "mappings"


def builtin_mappings() -> dict[str, Path]:
    """The built-in mappings by name (the file stem), e.g. `oneroster-users`, `generic` and the set
    `oneroster`."""
    folder = _mappings_dir()
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def listed(names: Iterable[str]) -> str:
    """Names joined as "a", "a and b", "a, b and c"."""
    items = list(names)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
