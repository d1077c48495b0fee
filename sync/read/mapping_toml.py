"""TOML documents to mappings: `[csv]`, `[columns]`, `[constants]`, `[rules]`, `[values.*]` and
`[delete_when]` into a `ColumnMapping`, a `kind = "set"` document into a `SetMapping`; every error names
the file and the key.

Reads the mapping files it is given (and the mappings a set names); `sync.read.mapping` is the entry.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from sync.errors import ConfigError
from sync.read.mapping_types import (
    DELIMITERS,
    KINDS,
    MAX_SYNC_KEY_LENGTH,
    MAX_VALUE_LENGTH,
    SET_KIND,
    ColumnMapping,
    SetEntry,
    SetMapping,
    Split,
    builtin_mappings,
    canonical_fields,
)
from sync.read.reading import LIST_FIELDS, PRIMARY_FIELD, READINGS

__all__ = ["parse_file", "read_document"]

# Names the roster frame uses for its own columns: an extra field may not shadow them.
_RESERVED: Final = frozenset({"identity", "row", "delete"})
_RESERVED_FILE: Final = _RESERVED | {"file"}  # the kinds whose frame names each row's file
_FIELD_NAME: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
_SECTIONS: Final = frozenset(
    {"kind", "description", "csv", "columns", "constants", "rules", "values", "delete_when"}
)
_SET_SECTIONS: Final = frozenset({"kind", "description", *KINDS})
_SET_ENTRY_KEYS: Final = frozenset({"file", "mapping", "optional"})
# Fields that cannot be the same on every row.
_NOT_CONSTANT: Final = frozenset({"sync_key", "password", "status", *LIST_FIELDS, PRIMARY_FIELD})
_JOIN_KEY: Final = "join"  # [[persons.join]]: files joined to the persons file on the sync key
# Fields that hold another object's sync key: not an identity.
_REFERENCE_FIELDS: Final = frozenset(
    reference.field for reading in READINGS.values() for reference in reading.kind.references
)
# Fields that hold sync keys (their own or another object's, or lists of them): no value map, no constant.
_KEY_FIELDS: Final = _REFERENCE_FIELDS | {"sync_key", *LIST_FIELDS}
_SECTION_KEYS: Final = {
    "csv": frozenset({"delimiter", "encoding"}),
    "rules": frozenset(
        {"required", "identity", "date_formats", "split", "skip_unmapped", "many_rows", "primary_values"}
    ),
}
_SPLIT_KEYS: Final = frozenset({"field", "separator"})
# The kinds that may split a column (a derived key's: one row names several groups or persons).
_SPLITTING: Final = tuple(plural for plural, reading in READINGS.items() if reading.derived_key)
_DEFAULT_DATE_FORMATS: Final = ("%Y-%m-%d",)
# A date whose day, month and year differ, to check that a format round-trips all three.
_PROBE_DATE: Final = date(1987, 11, 23)


def parse_file(path: Path) -> ColumnMapping | SetMapping:
    """The mapping the TOML file `path` describes.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or is not a valid mapping.
    """
    document = read_document(path)
    if document.get("kind") == SET_KIND:
        return _SetParser(path).parse(document)
    return _Parser(path).parse(document)


def read_document(path: Path) -> dict[str, Any]:
    try:
        # Windows editors (Notepad) save UTF-8 with a byte-order mark, which TOML does not allow.
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)": the administrator needs exactly that.
        raise ConfigError(f"mapping {path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"mapping {path}: not UTF-8 text (TOML files are UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"mapping {path}: cannot be read: {exc.strerror}") from None


def _typed(kind: str) -> dict[str, tuple[tuple[str, ...], str]]:
    """The fields of `kind` whose values must be one of a list: that list and what a value outside is not."""
    reading = READINGS[kind]
    return {reading.typed_field: (reading.types, reading.types_described), **reading.typed_fields}


class _Parser:
    """Turns a TOML document into a ColumnMapping, naming the file and key in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"mapping {self.path}: [{key}] {problem}")

    def table(self, document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = document.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return value

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        return value

    def strings(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(key, "must be a list of strings")
        return tuple(value)

    def parse(self, document: Mapping[str, Any]) -> ColumnMapping:
        for key in document:
            if key not in _SECTIONS:
                raise self.fail(key, f"unknown section; known: {', '.join(sorted(_SECTIONS))}")
        kind = self.kind(document)
        if "description" in document:
            self.string(document["description"], "description")
        csv_table = self.table(document, "csv")
        rules = self.table(document, "rules")
        for section, allowed in _SECTION_KEYS.items():
            for key in self.table(document, section):
                if key not in allowed:
                    raise self.fail(f"{section}.{key}", f"unknown key; known: {', '.join(sorted(allowed))}")
        identity = self.string(rules.get("identity", ""), "rules.identity").strip()
        if identity and not READINGS[kind].kind.identity:
            raise self.fail("rules.identity", f"{kind} have no identity field (their key is the sync key)")
        columns = self.columns(self.table(document, "columns"), identity, kind)
        constants = self.constants(self.table(document, "constants"), columns, identity, kind)
        required = self.required(rules, columns, constants, kind)
        value_maps = self.value_maps(self.table(document, "values"), columns, {*columns, *constants}, kind)
        self.check_constants(constants, value_maps, kind)
        split = self.split(rules, columns, kind)
        many_rows, primary_values = _many_rows(self, rules, columns, kind)
        return ColumnMapping(
            name=self.path.stem,
            source=str(self.path),
            delimiter=self.delimiter(csv_table),
            encoding=self.encoding(csv_table),
            columns=MappingProxyType(columns),
            required=required,
            value_maps=value_maps,
            date_formats=self.date_formats(rules),
            identity=identity,
            delete_when=self.delete_when(self.table(document, "delete_when"), columns),
            kind=kind,
            constants=MappingProxyType(constants),
            split=split,
            skip_unmapped=self.skip_unmapped(rules, columns, value_maps),
            many_rows=many_rows,
            primary_values=primary_values,
        )

    def split(self, rules: Mapping[str, Any], columns: Mapping[str, str], kind: str) -> Split | None:
        """`rules.split = { field = "group", separator = "," }`: a multi-valued group or person column."""
        if "split" not in rules:
            return None
        table = rules["split"]
        if not isinstance(table, dict):
            raise self.fail("rules.split", 'must be a table: { field = "group", separator = "," }')
        for name in table:
            if name not in _SPLIT_KEYS:
                known = ", ".join(sorted(_SPLIT_KEYS))
                raise self.fail(f"rules.split.{name}", f"unknown key; known: {known}")
        if kind not in _SPLITTING:
            raise self.fail("rules.split", f"only a {' or '.join(_SPLITTING)} mapping can split a column")
        split_fields = READINGS[kind].derived_key
        field_name = self.string(table.get("field", ""), "rules.split.field").strip()
        if field_name not in split_fields:
            only = " or ".join(split_fields)
            raise self.fail("rules.split.field", f"{field_name!r} cannot be split; only {only}")
        if field_name not in columns:
            raise self.fail("rules.split.field", f"names {field_name!r}, which [columns] does not map")
        separator = self.string(table.get("separator", ""), "rules.split.separator")
        if not separator or not separator.strip() or not separator.isprintable():
            raise self.fail("rules.split.separator", "must be a printable, non-blank string such as ','")
        if "sync_key" in columns:
            raise self.fail(
                "rules.split",
                "a split row makes several memberships, which cannot share its sync key: remove "
                "columns.sync_key (the key is then group:person)",
            )
        return Split(field=field_name, separator=separator)

    def skip_unmapped(
        self,
        rules: Mapping[str, Any],
        columns: Mapping[str, str],
        value_maps: Mapping[str, Mapping[str, str]],
    ) -> frozenset[str]:
        """`rules.skip_unmapped = ["role"]`: value-mapped columns whose unknown values skip the row."""
        fields = self.strings(rules.get("skip_unmapped", []), "rules.skip_unmapped")
        for field_name in fields:
            if field_name not in columns:
                raise self.fail("rules.skip_unmapped", f"names {field_name!r}, which [columns] does not map")
            if field_name not in value_maps:
                raise self.fail("rules.skip_unmapped", f"names {field_name!r}, which has no value map")
        return frozenset(fields)

    def kind(self, document: Mapping[str, Any]) -> str:
        kind = self.string(document.get("kind", "persons"), "kind").strip()
        if kind not in KINDS:
            raise self.fail("kind", f"{kind!r} is not one of {', '.join(KINDS)} or {SET_KIND}")
        return kind

    def delimiter(self, csv_table: Mapping[str, Any]) -> str:
        value = self.string(csv_table.get("delimiter", "auto"), "csv.delimiter")
        if value != "auto" and value not in DELIMITERS:
            raise self.fail("csv.delimiter", f"{value!r} is not one of {DELIMITERS!r} or 'auto'")
        return value

    def encoding(self, csv_table: Mapping[str, Any]) -> str:
        value = self.string(csv_table.get("encoding", "auto"), "csv.encoding").strip()
        if value.lower() == "auto":
            return "auto"
        try:
            codec = codecs.lookup(value)
        except LookupError:
            raise self.fail("csv.encoding", f"unknown encoding {value!r}") from None
        return codec.name

    def columns(self, table: Mapping[str, Any], identity: str, kind: str) -> dict[str, str]:
        known = canonical_fields(kind)
        reading = READINGS[kind]
        reserved = _RESERVED_FILE if reading.file_column else _RESERVED
        columns: dict[str, str] = {}
        for field_name, column in table.items():
            if field_name not in known and field_name != identity:
                extra = " (or the field named by rules.identity)" if reading.kind.identity else ""
                raise self.fail(
                    f"columns.{field_name}",
                    f"unknown canonical field; known: {', '.join(known)}{extra}",
                )
            if field_name in reserved or not _FIELD_NAME.match(field_name):
                raise self.fail(f"columns.{field_name}", "is not a usable field name")
            name = self.string(column, f"columns.{field_name}").strip()
            if not name:
                raise self.fail(f"columns.{field_name}", "names an empty column")
            columns[field_name] = name
        if "sync_key" not in columns and not reading.derived_key:
            raise self.fail("columns.sync_key", "missing: every mapping must name the sync key column")
        if identity and identity not in columns:
            raise self.fail("rules.identity", f"names {identity!r}, which [columns] does not map")
        if identity == "password":
            raise self.fail("rules.identity", "cannot be the password")
        if identity in _REFERENCE_FIELDS or identity in LIST_FIELDS:
            raise self.fail("rules.identity", f"cannot be {identity}: it holds another object's sync key")
        if identity == PRIMARY_FIELD:
            raise self.fail("rules.identity", f"cannot be {identity}: it marks a person's main row")
        return columns

    def constants(
        self, table: Mapping[str, Any], columns: Mapping[str, str], identity: str, kind: str
    ) -> dict[str, str]:
        constants: dict[str, str] = {}
        for field_name, value in table.items():
            key = f"constants.{field_name}"
            if field_name not in canonical_fields(kind):
                raise self.fail(key, f"unknown canonical field; known: {', '.join(canonical_fields(kind))}")
            if field_name in _NOT_CONSTANT or field_name == identity:
                raise self.fail(key, f"{field_name} cannot be a constant")
            if field_name in columns:
                raise self.fail(
                    key, f"{field_name} is also mapped in [columns]: a field is a column or a constant"
                )
            text = self.string(value, key).strip()
            if not text:
                raise self.fail(key, "is empty")
            if len(text) > MAX_VALUE_LENGTH or not text.isprintable():
                raise self.fail(key, f"must be printable text of at most {MAX_VALUE_LENGTH} characters")
            if field_name in _KEY_FIELDS and len(text) > MAX_SYNC_KEY_LENGTH:
                raise self.fail(key, f"holds a sync key: at most {MAX_SYNC_KEY_LENGTH} characters")
            constants[field_name] = text
        # A derived key's fields (a membership's group and person) may not all be the same on every row.
        derived = READINGS[kind].derived_key
        if derived and all(field_name in constants for field_name in derived):
            both = " and ".join(derived)
            raise self.fail(f"constants.{derived[-1]}", f"{both} cannot both be constants")
        for field_name in READINGS[kind].required:
            if field_name not in columns and field_name not in constants:
                raise self.fail(
                    f"columns.{field_name}", f"missing: a {kind} mapping must name the {field_name} column"
                )
        return constants

    def required(
        self, rules: Mapping[str, Any], columns: Mapping[str, str], constants: Mapping[str, str], kind: str
    ) -> frozenset[str]:
        fields = self.strings(rules.get("required", []), "rules.required")
        for field_name in fields:
            if field_name not in columns and field_name not in constants:
                raise self.fail("rules.required", f"names {field_name!r}, which [columns] does not map")
        always = {"sync_key"} if "sync_key" in columns else set()
        always |= set(READINGS[kind].required)
        return frozenset({*always, *fields})

    def value_maps(
        self, table: Mapping[str, Any], columns: Mapping[str, str], fields: set[str], kind: str
    ) -> Mapping[str, Mapping[str, str]]:
        typed = _typed(kind)
        maps: dict[str, Mapping[str, str]] = {}
        for field_name, entries in table.items():
            key = f"values.{field_name}"
            if field_name not in columns:
                raise self.fail(key, f"{field_name!r} is not mapped in [columns]")
            if field_name in _KEY_FIELDS or field_name in {"password", PRIMARY_FIELD}:
                raise self.fail(key, f"{field_name} takes no value map")
            if not isinstance(entries, dict):
                raise self.fail(key, "must be a table of CSV value = canonical value")
            folded: dict[str, str] = {}
            for raw, value in entries.items():
                target = self.string(value, f"{key}.{raw}").strip()
                # Only the role (type) must be given; another typed field may map a value to "" (not given).
                optional = field_name != READINGS[kind].typed_field and not target
                if field_name in typed and target not in typed[field_name][0] and not optional:
                    targets, described = typed[field_name]
                    raise self.fail(f"{key}.{raw}", f"{target!r} {described}; known: {', '.join(targets)}")
                fold = raw.strip().casefold()
                if fold in folded and folded[fold] != target:
                    raise self.fail(f"{key}.{raw}", "is given twice (keys ignore case) with different values")
                folded[fold] = target
            maps[field_name] = MappingProxyType(folded)
        for field_name, (targets, _) in typed.items():
            if field_name in fields and field_name not in maps:
                # Without a value map the CSV (or a constant) must hold the target values already (any case).
                maps[field_name] = MappingProxyType({value.casefold(): value for value in targets})
        return MappingProxyType(maps)

    def check_constants(
        self, constants: Mapping[str, str], value_maps: Mapping[str, Mapping[str, str]], kind: str
    ) -> None:
        """A constant must pass the checks its column would: a value-mapped field's value is a target."""
        for field_name, (targets, described) in _typed(kind).items():
            value = constants.get(field_name)
            if value is not None and value.casefold() not in value_maps[field_name]:
                raise self.fail(
                    f"constants.{field_name}", f"{value!r} {described}; known: {', '.join(targets)}"
                )

    def date_formats(self, rules: Mapping[str, Any]) -> tuple[str, ...]:
        formats = self.strings(rules.get("date_formats", list(_DEFAULT_DATE_FORMATS)), "rules.date_formats")
        for fmt in formats:
            try:
                round_trip = datetime.strptime(_PROBE_DATE.strftime(fmt), fmt).date()
            except ValueError:
                round_trip = None
            if round_trip != _PROBE_DATE:
                raise self.fail(
                    "rules.date_formats",
                    f"{fmt!r} is not a strptime format with day, month and year (e.g. '%d.%m.%Y')",
                )
        return formats or _DEFAULT_DATE_FORMATS

    def delete_when(
        self, table: Mapping[str, Any], columns: Mapping[str, str]
    ) -> Mapping[str, frozenset[str]]:
        result: dict[str, frozenset[str]] = {}
        for field, values in table.items():
            key = f"delete_when.{field}"
            if field not in columns:
                raise self.fail(key, f"{field!r} is not mapped in [columns]")
            if field in {"sync_key", "password"}:
                raise self.fail(key, f"{field} cannot mark deletions")
            result[field] = frozenset(v.strip().casefold() for v in self.strings(values, key))
        return MappingProxyType(result)


def _many_rows(
    parser: _Parser, rules: Mapping[str, Any], columns: Mapping[str, str], kind: str
) -> tuple[bool, frozenset[str]]:
    """`rules.many_rows = true`: several rows per person (a file joined to the persons file), and
    `rules.primary_values`: what the `primary` column holds on a person's main row."""
    many_rows = rules.get("many_rows", False)
    if not isinstance(many_rows, bool):
        raise parser.fail("rules.many_rows", "must be true or false")
    if many_rows and kind != "persons":
        raise parser.fail("rules.many_rows", "only a persons mapping (of a [[persons.join]] file) has it")
    values = parser.strings(rules.get("primary_values", ["true"]), "rules.primary_values")
    if PRIMARY_FIELD not in columns:
        if "primary_values" in rules:
            raise parser.fail("rules.primary_values", f"needs a {PRIMARY_FIELD!r} column in [columns]")
        return many_rows, frozenset()
    if not many_rows:
        raise parser.fail(
            f"columns.{PRIMARY_FIELD}", "marks a person's main row: it needs rules.many_rows = true"
        )
    folded = frozenset(value.strip().casefold() for value in values)
    if not folded or "" in folded:
        raise parser.fail("rules.primary_values", "must list non-empty values such as 'true'")
    return many_rows, folded


class _SetParser:
    """Turns a `kind = "set"` document into a SetMapping, naming the file and key in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"mapping {self.path}: [{key}] {problem}")

    def parse(self, document: Mapping[str, Any]) -> SetMapping:
        for key in document:
            if key not in _SET_SECTIONS:
                raise self.fail(key, f"unknown section; known: {', '.join(sorted(_SET_SECTIONS))}")
        description = document.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"must be a string, not {type(description).__name__}")
        if "persons" not in document:
            raise self.fail("persons", "missing: a set names its persons file and mapping")
        persons = self.persons(document["persons"])
        groups, group_keys = self.entries(document, "groups", numbered=True)
        memberships, membership_keys = self.entries(document, "memberships", numbered=False)
        # A file may be read once per kind: users.csv holds the persons and their school memberships.
        for entries, keys in ((groups, group_keys), (memberships, membership_keys)):
            files: dict[str, str] = {}
            for entry, key in zip(entries, keys, strict=True):
                fold = entry.file.casefold()
                if fold in files:
                    raise self.fail(f"{key}.file", f"{entry.file!r} is also the file of [{files[fold]}]")
                files[fold] = key
        return SetMapping(
            name=self.path.stem,
            source=str(self.path),
            description=description,
            persons=persons,
            groups=groups,
            memberships=memberships,
        )

    def entries(
        self, document: Mapping[str, Any], kind: str, *, numbered: bool
    ) -> tuple[tuple[SetEntry, ...], list[str]]:
        """The entries of `kind` (a table or an array of tables) and the key of each: [kind.N], or
        [kind] for a single table unless `numbered`."""
        value = document.get(kind, [])
        single = isinstance(value, dict)
        if single:
            value = [value]
        if not isinstance(value, list):
            raise self.fail(kind, f"must be a table or an array of tables ([[{kind}]])")
        keys = [kind] if single and not numbered else [f"{kind}.{n}" for n in range(1, len(value) + 1)]
        return tuple(self.entry(item, key, kind) for item, key in zip(value, keys, strict=True)), keys

    def persons(self, value: object) -> SetEntry:
        """[persons] and the files joined to it ([[persons.join]])."""
        table = dict(value) if isinstance(value, dict) else value
        joins = table.pop(_JOIN_KEY, []) if isinstance(table, dict) else []
        required = table.pop("required", []) if isinstance(table, dict) else []
        persons = self.entry(table, "persons", "persons", (*_SET_ENTRY_KEYS, _JOIN_KEY, "required"))
        if persons.optional:
            raise self.fail("persons.optional", "the persons file cannot be optional")
        if persons.mapping.many_rows:
            raise self.fail("persons.mapping", "the persons file has one row per person: no rules.many_rows")
        if not isinstance(joins, list):
            raise self.fail(f"persons.{_JOIN_KEY}", "must be an array of tables ([[persons.join]])")
        files = {persons.file.casefold(): "persons"}
        entries = []
        for number, item in enumerate(joins, start=1):
            key = f"persons.{_JOIN_KEY}.{number}"
            entry = self.entry(item, key, "persons")
            fold = entry.file.casefold()
            if fold in files:
                raise self.fail(f"{key}.file", f"{entry.file!r} is also the file of [{files[fold]}]")
            files[fold] = key
            joined = entry.mapping
            if joined.identity or joined.delete_when or "password" in joined.columns:
                raise self.fail(
                    f"{key}.mapping",
                    f"{joined.name!r}: a joined file adds fields; identity, password and deletions "
                    "come from the persons file",
                )
            entries.append(entry)
        fields = self.required(required, (persons, *entries))
        return dataclasses.replace(persons, joins=tuple(entries), required=fields)

    def required(self, value: object, entries: tuple[SetEntry, ...]) -> frozenset[str]:
        """`[persons] required`: fields a person must have from one of the files."""
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail("persons.required", "must be a list of strings")
        for name in value:
            if not any(name in {*e.mapping.columns, *e.mapping.constants} for e in entries):
                raise self.fail("persons.required", f"names {name!r}, which no persons mapping maps")
            if name in LIST_FIELDS or name == PRIMARY_FIELD:
                raise self.fail("persons.required", f"{name!r} cannot be required")
        return frozenset(value)

    def entry(
        self, value: object, key: str, kind: str, allowed: tuple[str, ...] = tuple(_SET_ENTRY_KEYS)
    ) -> SetEntry:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table with file and mapping")
        for name in value:
            if name not in allowed:
                raise self.fail(f"{key}.{name}", f"unknown key; known: {', '.join(sorted(allowed))}")
        for name in ("file", "mapping"):
            if not isinstance(value.get(name), str) or not value[name].strip():
                raise self.fail(f"{key}.{name}", "missing: must be a non-empty string")
        file = value["file"].strip()
        parts = Path(file).parts
        if Path(file).is_absolute() or ".." in parts or "\\" in file:
            raise self.fail(f"{key}.file", f"{file!r} must be a file name inside the roster folder")
        optional = value.get("optional", False)
        if not isinstance(optional, bool):
            raise self.fail(f"{key}.optional", "must be true or false")
        mapping = self.mapping(value["mapping"].strip(), f"{key}.mapping")
        if mapping.kind != kind:
            raise self.fail(
                f"{key}.mapping",
                f"{mapping.name!r} is a {mapping.kind} mapping; this entry needs a {kind} mapping",
            )
        return SetEntry(file=file, mapping=mapping, optional=optional)

    def mapping(self, name: str, key: str) -> ColumnMapping:
        builtins = builtin_mappings()
        if name in builtins:
            path = builtins[name]
        else:
            folder = self.path.parent
            candidates = [folder / name, folder / f"{name}.toml"]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise self.fail(
                    key,
                    f"{name!r} is neither a built-in nor a file next to this mapping ({', '.join(builtins)})",
                )
            path = found
        if path.resolve() == self.path.resolve():
            raise self.fail(key, "names this set mapping itself")
        document = read_document(path)
        if document.get("kind") == SET_KIND:
            raise self.fail(
                key, f"{name!r} is a set mapping; a set names {', '.join(KINDS[:-1])} or {KINDS[-1]} mappings"
            )
        return _Parser(path).parse(document)
