"""`ims-sync mapping init`: a starter mapping TOML guessed from a roster CSV's header and values.

The guess is a draft for an administrator to review, never a silent decision: every guessed role value
carries a TODO comment, values it cannot place are left commented out (their rows are rejected until
someone maps them), and columns it could not place are listed. The result always loads with
`sync.read.mapping.load_mapping`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from sync.errors import RosterError
from sync.models import INSTITUTION_ROLE_TYPES
from sync.read.encoding import read_file
from sync.read.mapping_types import DELIMITERS

__all__ = [
    "MappingGuess",
    "RosterSketch",
    "folder_hint",
    "guess_mapping",
    "render_mapping",
    "sketch_roster",
    "starter_mapping",
]

# Header names per canonical field, normalised (see `_norm`), in order of preference. English, Norwegian
# (bokmål and nynorsk), Swedish, and OneRoster's users.csv; the first field to claim a column keeps it.
_SYNONYMS: Final[Mapping[str, tuple[str, ...]]] = {
    "sync_key": (
        "sourcedid", "synckey", "syncid", "elevid", "ansattid", "personid", "brukerid", "elevnummer",
        "elevnr", "studentid", "sisid", "externalid", "guid", "uuid", "id",
    ),
    "username": (
        "username", "brukernavn", "brukarnamn", "anvandarnamn", "användarnamn", "login", "loginname",
        "userlogin", "userid", "feidenavn", "feideid",
    ),
    "given_name": (
        "givenname", "firstname", "fornavn", "förnamn", "fornamn", "tilltalsnamn", "first", "given",
    ),
    "family_name": (
        "familyname", "lastname", "surname", "etternavn", "etternamn", "efternamn", "last", "family",
    ),
    "email": (
        "email", "epost", "mail", "emailaddress", "epostadresse", "epostadress", "mailadress",
    ),
    "role": (
        "role", "rolle", "roll", "usertype", "persontype", "brukertype", "anvandartyp", "användartyp",
        "profile", "profil", "type", "typ",
    ),
    "birth_date": (
        "birthdate", "dateofbirth", "dob", "fødselsdato", "fodselsdato", "födelsedatum", "fodelsedatum",
        "birthday", "bday", "fødd", "född",
    ),
    "phone": ("phone", "telefon", "tlf", "tel", "telephone", "phonenumber", "telefonnummer"),
    "mobile": (
        "sms", "mobile", "mobil", "mobilnummer", "mobiltelefon", "mobilephone", "mobiltlf", "cell",
        "cellphone",
    ),
    "password": ("password", "passord", "lösenord", "losenord", "pwd"),
    "status": ("status",),
    # An extra identity field: used only when there is no username column.
    "national_id": (
        "nationalid", "personnummer", "fødselsnummer", "fodselsnummer", "fnr", "personnr", "ssn",
    ),
}  # fmt: skip

# CSV role value (normalised) -> institutionRoleType, for the names schools' exports use.
_STUDENT_WORDS: Final = ("elev", "elever", "student", "students", "pupil", "learner")
_STAFF_WORDS: Final = (
    "lærer", "larer", "lærar", "lärare", "larare", "teacher", "staff", "ansatt", "tilsett",
    "anställd", "anstalld", "personal", "employee", "aide", "proctor", "instructor",
)  # fmt: skip
_ADMIN_WORDS: Final = ("admin", "administrator", "administratør", "administratör")
_CARER_WORDS: Final = (
    "parent", "guardian", "relative", "foresatt", "foresatte", "føresett", "forelder",
    "förälder", "foralder", "vårdnadshavare", "vardnadshavare",
)  # fmt: skip
_ROLE_GUESSES: Final[Mapping[str, str]] = {
    **dict.fromkeys(_STUDENT_WORDS, "Student"),
    **dict.fromkeys(_STAFF_WORDS, "Staff"),
    **dict.fromkeys(_ADMIN_WORDS, "Administrator"),
    **dict.fromkeys(_CARER_WORDS, "Carer"),
    **dict.fromkeys(("guest", "gjest", "gäst", "gast"), "Guest"),
    **{role.casefold(): role for role in INSTITUTION_ROLE_TYPES},
}

# Values of a status column that OneRoster uses to say "delete this person".
_DELETE_MARKS: Final = frozenset({"tobedeleted"})

# Tried in order on the birth dates seen; day-first before month-first (Nordic and OneRoster exports).
_DATE_FORMATS: Final = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%Y%m%d", "%m/%d/%Y")

_REQUIRED_IF_PRESENT: Final = ("username", "given_name", "family_name", "role")
_MAX_ROLE_VALUES: Final = 50
_SAMPLE_DATES: Final = 1000


def _norm(text: str) -> str:
    """A header name without case, spaces or punctuation: "E-post" and "e post" both become "epost"."""
    folded = unicodedata.normalize("NFC", text).strip().casefold()
    return "".join(ch for ch in folded if ch.isalnum())


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterSketch:
    """What `mapping init` learns from a roster: dialect, header and the values it needs to guess."""

    file: str
    encoding: str  # "auto" (plain ASCII) or the codec the bytes decode with
    encoding_note: str
    delimiter: str
    header: tuple[str, ...]
    rows: int
    values: Mapping[str, Counter[str]] = field(repr=False)  # header position (as text) -> counts
    blanks: Mapping[int, int] = field(repr=False)  # header position -> rows where it is empty


def _decode(raw: bytes, file: str) -> tuple[str, str, str]:
    """The text, the encoding to write in the mapping, and a note on what was detected."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8", "replace"), "utf-8", "UTF-8 with a byte-order mark"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16").removeprefix("\ufeff"), "utf-16", "UTF-16 (Excel's Unicode text)"
        except UnicodeDecodeError:
            raise RosterError(f"roster {file} starts like UTF-16 but is not valid UTF-16") from None
    if raw.isascii():
        return raw.decode("ascii"), "auto", "plain ASCII so far: auto-detection covers later exports"
    try:
        return raw.decode("utf-8"), "utf-8", "UTF-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace"), "cp1252", "not UTF-8: read as Windows-1252 (Excel's CSV)"


def sketch_roster(path: Path) -> RosterSketch:
    """Read a roster's dialect, header and per-column values (for guessing a mapping).

    Raises:
        RosterError: the file is missing, unreadable, or has no header line.
    """
    file = str(path)
    text, encoding, note = _decode(read_file(path), file)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise RosterError(f"roster {file} has no header line")
    counts = {d: first.count(d) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: counts[d])  # ties: the earlier (",") wins
    if not counts[delimiter]:
        delimiter = ","
    reader = csv.reader(io.StringIO(text.lstrip("\r\n")), delimiter=delimiter)
    header = tuple(cell.strip() for cell in next(reader))
    values: dict[str, Counter[str]] = {str(i): Counter() for i in range(len(header))}
    blanks = dict.fromkeys(range(len(header)), 0)
    rows = 0
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue  # blank or ";;;;" lines: the reader skips them too
        rows += 1
        for i in range(len(header)):
            cell = record[i].strip() if i < len(record) else ""
            if cell:
                values[str(i)][cell] += 1
            else:
                blanks[i] += 1
    return RosterSketch(
        file=file,
        encoding=encoding,
        encoding_note=note,
        delimiter=delimiter,
        header=header,
        rows=rows,
        values=values,
        blanks=blanks,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingGuess:
    """The guessed mapping, before it becomes TOML."""

    columns: dict[str, int]  # canonical field -> header position
    identity: str
    required: tuple[str, ...]
    not_required: dict[str, int]  # usually required field -> rows where it is empty
    date_format: str
    date_format_sure: bool
    roles: list[tuple[str, str, int]]  # (CSV value, guessed role or "", rows)
    roles_left_out: int
    delete_marks: tuple[str, ...]
    unmapped: tuple[str, ...]


def guess_mapping(sketch: RosterSketch) -> MappingGuess:
    """Place the header's columns on canonical fields and guess rules and role values."""
    normalised = [_norm(name) for name in sketch.header]
    seen = Counter(normalised)
    columns: dict[str, int] = {}
    taken: set[int] = set()
    for canonical, synonyms in _SYNONYMS.items():
        for synonym in synonyms:
            hits = [i for i, name in enumerate(normalised) if name == synonym and i not in taken]
            # A column named twice in the header cannot be mapped (the roster reader refuses it).
            if hits and seen[normalised[hits[0]]] == 1:
                columns[canonical] = hits[0]
                taken.add(hits[0])
                break
    if "sync_key" not in columns:
        # Something must be the sync key for the mapping to load; the first free column, flagged TODO.
        first_free = next((i for i in range(len(sketch.header)) if i not in taken), None)
        if first_free is None:
            raise RosterError(f"roster {sketch.file}: no column left to use as the sync key")
        columns["sync_key"] = first_free
        taken.add(first_free)
    if "username" in columns:
        columns.pop("national_id", None)
        identity = "username"
    elif "national_id" in columns:
        identity = "national_id"
    elif "email" in columns:
        identity = "email"
    else:
        identity = ""
    required = tuple(f for f in _REQUIRED_IF_PRESENT if f in columns and not sketch.blanks[columns[f]])
    not_required: dict[str, int] = {
        f: sketch.blanks[columns[f]] for f in _REQUIRED_IF_PRESENT if f in columns and f not in required
    }
    date_format, sure = _guess_date_format(sketch, columns.get("birth_date"))
    roles, left_out = _guess_roles(sketch, columns.get("role"))
    marks: tuple[str, ...] = ()
    if "status" in columns:
        marks = tuple(
            sorted({v for v in sketch.values[str(columns["status"])] if v.casefold() in _DELETE_MARKS})
        )
        if not marks and all(
            v.casefold() in {"active", "tobedeleted"} for v in sketch.values[str(columns["status"])]
        ):
            marks = ("tobedeleted",)  # a OneRoster status column: none marked this time, but they will be
    unmapped = tuple(name for i, name in enumerate(sketch.header) if i not in taken)
    return MappingGuess(
        columns=columns,
        identity=identity,
        required=required,
        not_required=not_required,
        date_format=date_format,
        date_format_sure=sure,
        roles=roles,
        roles_left_out=left_out,
        delete_marks=marks,
        unmapped=unmapped,
    )


def _guess_date_format(sketch: RosterSketch, position: int | None) -> tuple[str, bool]:
    if position is None:
        return _DATE_FORMATS[0], True
    samples = list(sketch.values[str(position)])[:_SAMPLE_DATES]
    if not samples:
        return _DATE_FORMATS[0], False
    for fmt in _DATE_FORMATS:
        try:
            for value in samples:
                datetime.strptime(value, fmt)
        except ValueError:
            continue
        return fmt, True
    return _DATE_FORMATS[0], False


def _guess_roles(sketch: RosterSketch, position: int | None) -> tuple[list[tuple[str, str, int]], int]:
    if position is None:
        return [], 0
    merged: dict[str, tuple[str, int]] = {}  # casefolded -> (first spelling, rows)
    for value, count in sketch.values[str(position)].most_common():
        key = value.casefold()
        spelling, total = merged.get(key, (value, 0))
        merged[key] = (spelling, total + count)
    ordered = sorted(merged.values(), key=lambda item: (-item[1], item[0].casefold()))
    shown = ordered[:_MAX_ROLE_VALUES]
    roles = [
        (value, _ROLE_GUESSES.get(_norm(value), _ROLE_GUESSES.get(value.casefold(), "")), n)
        for value, n in shown
    ]
    return roles, len(ordered) - len(shown)


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _key(text: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    bare = text and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in text)
    return text if bare else _toml(text)


_DELIMITER_NAMES: Final = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _columns_lines(sketch: RosterSketch, guess: MappingGuess) -> list[str]:
    header = sketch.header
    out = [
        '# canonical field = "CSV column". Column names ignore letter case and surrounding spaces.',
        "[columns]",
    ]
    width = max(len(f) for f in guess.columns)
    for canonical, position in guess.columns.items():
        note = _COLUMN_NOTES.get(canonical, "")
        if canonical == "sync_key" and _norm(header[position]) not in _SYNONYMS["sync_key"]:
            note = "TODO: no obvious id column; pick the one that never changes for a person"
        elif canonical == guess.identity and canonical != "username":
            note = "identifies a person whose sync key changed; never sent"
        comment = f"  # {note}" if note else ""
        out.append(f"{canonical.ljust(width)} = {_toml(header[position])}{comment}")
    if guess.unmapped:
        out.append("# Not mapped (read and ignored): " + ", ".join(guess.unmapped))
    return out


_COLUMN_NOTES: Final = {
    "sync_key": "the IMS ES sourcedId: stable, unique, at most 64 characters",
    "password": "sent with createPerson only; never stored, never compared",
}


def _rules_lines(guess: MappingGuess) -> list[str]:
    out = ["[rules]", f"required = [{', '.join(_toml(f) for f in guess.required)}]"]
    out += [
        f"# TODO: {name} is empty in {_rows(blanks)}, so it is not required yet; "
        "add it once the export is complete"
        for name, blanks in guess.not_required.items()
    ]
    if guess.identity:
        out.append(f"identity = {_toml(guess.identity)}  # recognises a person whose sync key changed")
    else:
        out.append('identity = ""  # TODO: no username, national id or e-mail column: renames go undetected')
    fmt_note = "" if guess.date_format_sure else "  # TODO: no format matched the birth dates seen; adjust"
    out.append(f"date_formats = [{_toml(guess.date_format)}]{fmt_note}")
    return out


def _role_lines(guess: MappingGuess) -> list[str]:
    if "role" not in guess.columns:
        return []
    out = [
        "",
        "# CSV role value -> IMS ES institutionRoleType (itslearning: Student → Pupil, Staff → Staff,",
        "# Administrator → Administrator, Carer → Parent, Guest → Guest). Case is ignored; a value",
        "# not listed (or commented out) rejects its rows. Known types:",
        "#   " + ", ".join(INSTITUTION_ROLE_TYPES),
        "[values.role]",
    ]
    for value, role, rows in guess.roles:
        if role:
            out.append(f"{_key(value)} = {_toml(role)}  # TODO: check ({_rows(rows)})")
        else:
            out.append(
                f'# {_key(value)} = "Student"  # TODO: which type? ({_rows(rows)} rejected until mapped)'
            )
    if guess.roles_left_out:
        out.append(f"# TODO: {guess.roles_left_out} more role values not listed here")
    return out


def render_mapping(sketch: RosterSketch, guess: MappingGuess, *, source_name: str) -> str:
    """The starter mapping as commented TOML.

    Args:
        sketch: what `sketch_roster` read.
        guess: what `guess_mapping` made of it.
        source_name: the roster's name as the comments should show it.
    """
    out = [
        f"# Starter mapping guessed by `ims-sync mapping init` from {source_name}",
        f"# ({_rows(sketch.rows)}, {len(sketch.header)} columns). Review every TODO, then check it with",
        f"#   ims-sync validate {source_name} --mapping <this file>",
        "# The full reference is docs/mapping.md.",
        "",
        f"description = {_toml(f'Starter mapping for {source_name}')}",
        "",
        "[csv]",
        f"delimiter = {_toml(sketch.delimiter)}  # detected: {_DELIMITER_NAMES[sketch.delimiter]}",
        f"encoding = {_toml(sketch.encoding)}  # detected: {sketch.encoding_note}",
        "",
        *_columns_lines(sketch, guess),
        "",
        *_rules_lines(guess),
        *_role_lines(guess),
    ]
    if guess.delete_marks:
        out += [
            "",
            "# Rows with one of these statuses are deletion candidates and are never created.",
            "[delete_when]",
            f"status = [{', '.join(_toml(m) for m in guess.delete_marks)}]",
        ]
    return "\n".join(out) + "\n"


def starter_mapping(path: Path, *, source_name: str | None = None) -> str:
    """Read `path` and return a starter mapping for it as TOML text.

    Raises:
        RosterError: the roster cannot be read or has no header line.
    """
    sketch = sketch_roster(path)
    text = render_mapping(sketch, guess_mapping(sketch), source_name=source_name or path.name)
    if _is_sds_users(path, sketch.header):
        text = (
            "# NOTE: this looks like a School Data Sync v2.1 users.csv: it has no role column; the roles\n"
            "# are in roles.csv, guardians in relationships.csv. Rather than this starter, use the built-in\n"
            f"# set mapping on the folder: ims-sync validate {path.parent} --mapping sds\n\n"
        ) + text
    return text


def folder_hint(folder: Path) -> str:
    """What to use for a roster folder, which `mapping init` cannot read: the built-in set mapping its
    files look like (SDS v2.1: users.csv without a role column and roles.csv; OneRoster: users.csv,
    orgs.csv and classes.csv), else a pointer to the set mappings."""
    users = folder / "users.csv"
    if users.is_file() and (folder / "roles.csv").is_file():
        try:
            header = sketch_roster(users).header
        except RosterError:
            header = ()
        if _is_sds_users(users, header):
            return (
                "it looks like a School Data Sync v2.1 folder (users.csv without roles, roles.csv): use "
                "the built-in set mapping, --mapping sds"
            )
    if all((folder / name).is_file() for name in ("users.csv", "orgs.csv", "classes.csv")):
        return "it looks like a OneRoster folder: use the built-in set mapping, --mapping oneroster"
    return "give one of its CSV files; a set mapping (see `ims-sync mapping list`) reads a folder"


def _is_sds_users(path: Path, header: tuple[str, ...]) -> bool:
    """An SDS v2.1 users.csv: next to a roles.csv, with a sourcedId and no role column."""
    names = {_norm(name) for name in header}
    return (
        path.name.casefold() == "users.csv"
        and (path.parent / "roles.csv").is_file()
        and ("sourcedid" in names and "role" not in names)
    )
