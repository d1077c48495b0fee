"""Mapping files (`mappings/*.toml`): which CSV column holds which canonical field, and how to read it.

A mapping is a small TOML document an administrator can read and edit:

```toml
[csv]
delimiter = ";"          # ",", ";", "\\t", "|" or "auto" (sniffed from the header line)
encoding = "auto"        # "auto": UTF-8 (BOM or not), else Windows-1252; or a Python codec name

[columns]                # canonical field = "CSV column" (header matched case-insensitively)
sync_key = "Elev-ID"
username = "Brukernavn"

[rules]
required = ["username"]  # sync_key is always required
identity = "username"    # recognises a person whose sync key changed ("" = off)
date_formats = ["%d.%m.%Y"]

[values.role]            # CSV value (case-insensitive) = canonical value
elev = "Student"

[delete_when]            # rows whose field holds one of these values are deletion candidates
status = ["tobedeleted"]
```
`docs/mapping.md` is the full reference.
"""

from __future__ import annotations

import codecs
import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from sync.errors import ConfigError
from sync.models import INSTITUTION_ROLE_TYPES, PERSON_FIELDS

__all__ = [
    "CANONICAL_FIELDS",
    "DELIMITERS",
    "INSTITUTION_ROLE_TYPES",
    "MAX_SYNC_KEY_LENGTH",
    "ColumnMapping",
    "builtin_mappings",
    "load_mapping",
]

#: Fields every mapping may name in [columns]; a mapping may add one more: the field named by
#: `rules.identity` (e.g. national_id), which identifies persons but is never sent to IMS ES.
CANONICAL_FIELDS: Final = ("sync_key", *PERSON_FIELDS, "password", "status")

#: Delimiters a mapping may name (besides "auto").
DELIMITERS: Final = (",", ";", "\t", "|")

#: itslearning's sourcedId limit.
MAX_SYNC_KEY_LENGTH: Final = 64


# Names the roster frame uses for its own columns: an extra field may not shadow them.
_RESERVED: Final = frozenset({"identity", "row", "delete"})
_FIELD_NAME: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
_SECTIONS: Final = frozenset({"description", "csv", "columns", "rules", "values", "delete_when"})
_SECTION_KEYS: Final = {
    "csv": frozenset({"delimiter", "encoding"}),
    "rules": frozenset({"required", "identity", "date_formats"}),
}
_DEFAULT_DATE_FORMATS: Final = ("%Y-%m-%d",)
# A date whose day, month and year differ, to check that a format round-trips all three.
_PROBE_DATE: Final = date(1987, 11, 23)


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMapping:
    """How to read one kind of roster CSV into canonical persons.

    Field names are canonical (`sync_key`, `PERSON_FIELDS`, `password`, `status`, plus the identity
    field when it is an extra one); CSV column names are matched case-insensitively after stripping.
    Value-map keys and `delete_when` values are stored casefolded.
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

    def required_columns(self) -> frozenset[str]:
        """Canonical fields whose CSV column must be present in the header.

        The required fields, the identity field (without it renames would silently go undetected) and
        every `delete_when` field (without it deletions would silently go unmarked).
        """
        fields = set(self.required) | set(self.delete_when)
        if self.identity:
            fields.add(self.identity)
        return frozenset(fields)


def _mappings_dir() -> Path:
    packaged = importlib.resources.files("sync") / "mappings"
    if packaged.is_dir():
        # An installed wheel carries the built-ins inside the package (pyproject force-include).
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "mappings"


def builtin_mappings() -> dict[str, Path]:
    """The built-in mappings by name (the file stem), e.g. `oneroster-users` and `generic`."""
    folder = _mappings_dir()
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def load_mapping(name_or_path: str | Path) -> ColumnMapping:
    """Load a built-in mapping by name, or a mapping TOML file by path.

    Args:
        name_or_path: a built-in name (see `builtin_mappings`) or the path of a `.toml` file.

    Raises:
        ConfigError: the mapping does not exist or is invalid; the message names the file and the key.
    """
    builtins = builtin_mappings()
    if isinstance(name_or_path, str) and name_or_path in builtins:
        path = builtins[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(builtins) or "none"
            raise ConfigError(f"mapping {str(name_or_path)!r} is neither a file nor a built-in ({known})")
    try:
        # Windows editors (Notepad) save UTF-8 with a byte-order mark, which TOML does not allow.
        document = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)": the administrator needs exactly that.
        raise ConfigError(f"mapping {path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"mapping {path}: not UTF-8 text (TOML files are UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"mapping {path}: cannot be read: {exc.strerror}") from None
    return _Parser(path).parse(document)


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
        if "description" in document:
            self.string(document["description"], "description")
        csv_table = self.table(document, "csv")
        rules = self.table(document, "rules")
        for section, allowed in _SECTION_KEYS.items():
            for key in self.table(document, section):
                if key not in allowed:
                    raise self.fail(f"{section}.{key}", f"unknown key; known: {', '.join(sorted(allowed))}")
        identity = self.string(rules.get("identity", ""), "rules.identity").strip()
        columns = self.columns(self.table(document, "columns"), identity)
        required = self.required(rules, columns)
        return ColumnMapping(
            name=self.path.stem,
            source=str(self.path),
            delimiter=self.delimiter(csv_table),
            encoding=self.encoding(csv_table),
            columns=MappingProxyType(columns),
            required=required,
            value_maps=self.value_maps(self.table(document, "values"), columns),
            date_formats=self.date_formats(rules),
            identity=identity,
            delete_when=self.delete_when(self.table(document, "delete_when"), columns),
        )

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

    def columns(self, table: Mapping[str, Any], identity: str) -> dict[str, str]:
        columns: dict[str, str] = {}
        for field, column in table.items():
            if field not in CANONICAL_FIELDS and field != identity:
                raise self.fail(
                    f"columns.{field}",
                    f"unknown canonical field; known: {', '.join(CANONICAL_FIELDS)} "
                    "(or the field named by rules.identity)",
                )
            if field in _RESERVED or not _FIELD_NAME.match(field):
                raise self.fail(f"columns.{field}", "is not a usable field name")
            name = self.string(column, f"columns.{field}").strip()
            if not name:
                raise self.fail(f"columns.{field}", "names an empty column")
            columns[field] = name
        if "sync_key" not in columns:
            raise self.fail("columns.sync_key", "missing: every mapping must name the sync key column")
        if identity and identity not in columns:
            raise self.fail("rules.identity", f"names {identity!r}, which [columns] does not map")
        if identity == "password":
            raise self.fail("rules.identity", "cannot be the password")
        return columns

    def required(self, rules: Mapping[str, Any], columns: Mapping[str, str]) -> frozenset[str]:
        fields = self.strings(rules.get("required", []), "rules.required")
        for field in fields:
            if field not in columns:
                raise self.fail("rules.required", f"names {field!r}, which [columns] does not map")
        return frozenset({"sync_key", *fields})

    def value_maps(
        self, table: Mapping[str, Any], columns: Mapping[str, str]
    ) -> Mapping[str, Mapping[str, str]]:
        maps: dict[str, Mapping[str, str]] = {}
        for field, entries in table.items():
            key = f"values.{field}"
            if field not in columns:
                raise self.fail(key, f"{field!r} is not mapped in [columns]")
            if field in {"sync_key", "password"}:
                raise self.fail(key, f"{field} takes no value map")
            if not isinstance(entries, dict):
                raise self.fail(key, "must be a table of CSV value = canonical value")
            folded: dict[str, str] = {}
            for raw, value in entries.items():
                target = self.string(value, f"{key}.{raw}").strip()
                if field == "role" and target not in INSTITUTION_ROLE_TYPES:
                    raise self.fail(
                        f"{key}.{raw}",
                        f"{target!r} is not an IMS ES institutionRoleType; known: "
                        f"{', '.join(INSTITUTION_ROLE_TYPES)}",
                    )
                fold = raw.strip().casefold()
                if fold in folded and folded[fold] != target:
                    raise self.fail(f"{key}.{raw}", "is given twice (keys ignore case) with different values")
                folded[fold] = target
            maps[field] = MappingProxyType(folded)
        if "role" in columns and "role" not in maps:
            # Without a value map the CSV must hold IMS ES role types already (in any letter case).
            maps["role"] = MappingProxyType({role.casefold(): role for role in INSTITUTION_ROLE_TYPES})
        return MappingProxyType(maps)

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
