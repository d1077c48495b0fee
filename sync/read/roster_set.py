"""A roster set: the persons, groups and memberships of one roster folder, read through a set mapping.

A set mapping (`kind = "set"`, e.g. the built-in `oneroster`) names the files of a folder and the
mapping of each: one persons file, any number of group files (read into one groups roster) and any
number of membership files (read into one memberships roster). A file may be read by mappings of
different kinds: OneRoster's users.csv holds the persons and their school memberships. With a
persons mapping instead, the path is the persons CSV itself and the set holds persons only, so every
command can read its input through `read_roster_set`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sync.errors import ConfigError, RosterError
from sync.models import Reject
from sync.read.mapping import ColumnMapping, SetEntry, SetMapping, load_any_mapping
from sync.read.mapping_types import listed
from sync.read.memory import give_back_freed
from sync.read.persons import read_persons
from sync.read.roster import Roster, read_groups, read_memberships

__all__ = ["RosterSet", "read_roster_set"]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)  # a Roster holds a DataFrame
class RosterSet:
    """What one run reads: persons always; groups and memberships when the mapping is a set.

    `groups` and `memberships` are None when the input does not hold them (a persons mapping, or a
    set whose optional files of that kind are all missing): the run then leaves that kind alone.
    """

    persons: Roster
    groups: Roster | None = None
    memberships: Roster | None = None

    @property
    def rejects(self) -> tuple[Reject, ...]:
        """Every rejected row: persons', then groups', then memberships'."""
        rosters = (self.persons, self.groups, self.memberships)
        return tuple(reject for roster in rosters if roster is not None for reject in roster.rejects)

    @property
    def file_rows(self) -> dict[str, int]:
        """Each file's data rows (see `Roster.rows`) by the file's name, in reading order. A file
        read by two mappings (OneRoster's users.csv: persons and school memberships) is counted once."""
        counts: dict[str, int] = {}
        for roster in (self.persons, self.groups, self.memberships):
            for file, count in (roster.rows if roster is not None else {}).items():
                name = Path(file).name
                counts[name] = max(count, counts.get(name, 0))
        return counts


def read_roster_set(path: Path, mapping_name_or_path: str | Path) -> RosterSet:
    """Read a roster folder through a set mapping, or a persons CSV through a persons mapping.

    Args:
        path: the folder the set mapping's files are in; for a persons mapping, the persons CSV.
        mapping_name_or_path: a built-in mapping name or a mapping file (see `load_any_mapping`).

    Raises:
        ConfigError: the mapping is unusable, or reads groups or memberships alone.
        RosterError: the path is a file where the set mapping needs a folder (or the other way
            round), a file the set names is missing from the folder (an `optional` one may be
            missing), or a file cannot be read at all (see `read_roster`).
    """
    mapping = load_any_mapping(mapping_name_or_path)
    read = _read_single(path, mapping) if isinstance(mapping, ColumnMapping) else _read_set(path, mapping)
    give_back_freed()  # (the file's and the parsing's buffers: the snapshot's load would count beside them)
    return read


def _read_single(path: Path, mapping: ColumnMapping) -> RosterSet:
    if mapping.kind != "persons":
        raise ConfigError(
            f"mapping {mapping.source}: reads {mapping.kind}; give a persons mapping or a set mapping "
            "(such as oneroster) that names the persons file too"
        )
    if path.is_dir():
        raise RosterError(f"roster {path} is a folder; mapping {mapping.name} reads one persons CSV file")
    if mapping.many_rows:
        raise ConfigError(
            f"mapping {mapping.source}: has several rows per person (rules.many_rows): name it in a set "
            "mapping's [[persons.join]]"
        )
    return RosterSet(persons=read_persons(path, mapping))


def _read_set(folder: Path, mapping: SetMapping) -> RosterSet:
    files = listed(mapping.files)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file"
        raise RosterError(
            f"{mapping.name} is a set mapping: give the folder holding {files} ({folder} {what})"
        )
    found = {file: _find(folder, file) for file in mapping.files}
    missing = list(
        dict.fromkeys(
            entry.file for entry in mapping.entries if found[entry.file] is None and not entry.optional
        )
    )
    if missing:
        raise RosterError(
            f"roster folder {folder}: {listed(missing)} {'is' if len(missing) == 1 else 'are'} missing "
            f"(set mapping {mapping.name} names {files})"
        )

    def present(entries: tuple[SetEntry, ...]) -> list[tuple[Path, ColumnMapping]]:
        return [(path, entry.mapping) for entry in entries if (path := found[entry.file]) is not None]

    persons_path = found[mapping.persons.file]
    assert persons_path is not None  # never optional: checked above
    groups = present(mapping.groups)
    memberships = present(mapping.memberships)
    return RosterSet(
        persons=read_persons(
            persons_path,
            mapping.persons.mapping,
            present(mapping.persons.joins),
            mapping.persons.required,
        ),
        groups=read_groups(groups) if groups else None,
        memberships=read_memberships(memberships) if memberships else None,
    )


def _find(folder: Path, name: str) -> Path | None:
    """The file `name` in `folder`; else the one file whose name differs only in letter case."""
    path = folder / name
    if path.is_file():
        return path
    parent = path.parent
    if not parent.is_dir():
        return None
    matches = [p for p in parent.iterdir() if p.name.casefold() == path.name.casefold() and p.is_file()]
    return matches[0] if len(matches) == 1 else None
