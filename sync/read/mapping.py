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
A top-level `kind` says what the file holds: "persons" (the default), "groups" or "memberships"; a
`[constants]` table gives a field the same value on every row. `rules.skip_unmapped` drops rows whose
value a value map does not know (instead of rejecting them), and a memberships mapping's `rules.split`
reads a multi-valued group or person column as one membership per value. `kind = "set"` names the
files of a roster folder and the mapping of each (`SetMapping`, see `load_any_mapping`).
`docs/mapping.md` is the full reference.

This module loads mappings by name or path; `sync.read.mapping_types` holds the types and the
built-ins' folder, `sync.read.mapping_toml` the parsing. Reads the mapping files it is given.
"""

from __future__ import annotations

from pathlib import Path

from sync.errors import ConfigError
from sync.models import INSTITUTION_ROLE_TYPES
from sync.read.mapping_toml import parse_file
from sync.read.mapping_types import ColumnMapping, SetEntry, SetMapping, Split, builtin_mappings, listed

__all__ = [
    "INSTITUTION_ROLE_TYPES",
    "ColumnMapping",
    "SetEntry",
    "SetMapping",
    "Split",
    "builtin_mappings",
    "load_any_mapping",
    "load_mapping",
]


def load_mapping(name_or_path: str | Path) -> ColumnMapping:
    """Load a built-in mapping by name, or a mapping TOML file by path (persons, groups or memberships).

    Args:
        name_or_path: a built-in name (see `builtin_mappings`) or the path of a `.toml` file.

    Raises:
        ConfigError: the mapping does not exist or is invalid, or it is a set mapping (read those
            with `sync.read.roster_set.read_roster_set`); the message names the file and the key.
    """
    mapping = load_any_mapping(name_or_path)
    if isinstance(mapping, SetMapping):
        raise ConfigError(
            f"mapping {mapping.source}: {mapping.name} is a set mapping: give the folder holding "
            f"{listed(mapping.files)}"
        )
    return mapping


def load_any_mapping(name_or_path: str | Path) -> ColumnMapping | SetMapping:
    """Load a mapping of any kind, set mappings included.

    The mappings a set names resolve like `load_mapping`: a built-in name, else a path relative to the
    set mapping's own folder (".toml" may be left out).

    Raises:
        ConfigError: the mapping (or one a set names) does not exist or is invalid.
    """
    builtins = builtin_mappings()
    if isinstance(name_or_path, str) and name_or_path in builtins:
        path = builtins[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(builtins) or "none"
            raise ConfigError(f"mapping {str(name_or_path)!r} is neither a file nor a built-in ({known})")
    return parse_file(path)
