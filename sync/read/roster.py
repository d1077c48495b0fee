"""Roster CSV + mapping → canonical persons, groups or memberships (a DataFrame) and the rows set
aside as rejects.

Reading is column-wise so that a million rows take about a second: the file is checked (Arrow's UTF-8
validator) or decoded to UTF-8 once, pyarrow parses the values into large strings that pandas wraps
without a copy, record lines follow from row numbers (files without quotes), a count of line ends
or a vectorised scan (numpy), and validation runs on whole columns, skipping work a cheap byte-level
check shows is not needed (trimming, control characters) and hashing key columns on two threads.
Python touches single rows only to describe the (few) rejects.
Files whose quoting the scan cannot mirror exactly (a quote inside an unquoted value) are parsed with
the standard csv module instead: slower, same answers.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

from sync.errors import RosterError
from sync.models import GROUP_FIELDS, MEMBERSHIP_FIELDS, PERSON_FIELDS, Reject
from sync.read.mapping import DELIMITERS, MAX_SYNC_KEY_LENGTH, MAX_VALUE_LENGTH, ColumnMapping

__all__ = [
    "FRAME_COLUMNS",
    "GROUP_FRAME_COLUMNS",
    "MAX_VALUE_LENGTH",
    "MEMBERSHIP_FRAME_COLUMNS",
    "ROW_FIELD",
    "Roster",
    "read_groups",
    "read_memberships",
    "read_roster",
]

#: The columns of a persons `Roster.frame`, in order (the index is "sync_key").
FRAME_COLUMNS: Final = ("identity", *PERSON_FIELDS, "password", "row", "delete")

#: The columns of a groups `Roster.frame` (index "sync_key"): text, except row (int) and delete (bool).
GROUP_FRAME_COLUMNS: Final = ("identity", *GROUP_FIELDS, "file", "row", "delete")

#: The columns of a memberships `Roster.frame` (index "sync_key"): text ("active" is always "true"),
#: except row (int) and delete (bool).
MEMBERSHIP_FRAME_COLUMNS: Final = (*MEMBERSHIP_FIELDS, "file", "row", "delete")

#: `Reject.field` of a row that could not be split into the header's columns.
ROW_FIELD: Final = "row"

_QUOTE: Final = 0x22
_LF: Final = 0x0A
_CR: Final = 0x0D
_UTF8_BOM: Final = codecs.BOM_UTF8
# Control characters (C0 without NUL, DEL, C1) and invisible format characters (soft hyphen,
# zero-width and bidirectional marks, BOM): not allowed in a sync key. NUL is reported on its own.
_CONTROL_RE: Final = r"[\x01-\x1f\x7f-\x9f\x{ad}\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2060}-\x{2064}\x{feff}]"
_SHOWN_VALUE_LENGTH: Final = 40
_SHOWN_LINES: Final = 5  # other lines named in a duplicate's reason
_BLOCK_SIZE: Final = 1 << 20  # pyarrow's default: blocks parsed in parallel
_SHOWN_CELLS: Final = 12  # header cells named when a required column is missing
# Characters XML 1.0 forbids (NUL is reported on its own): a value holding one cannot be sent.
_XML_INVALID_RE: Final = r"[\x01-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"
_PARALLEL_ROWS: Final = 50_000  # below this, a thread costs more than it saves
_PAIR: Final = "\x1f"  # joins a membership's group and person (neither can hold it: a control character)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)  # a DataFrame has no plain ==
class Roster:
    """A roster file read through a mapping.

    `frame` is indexed by "sync_key" (unique) and holds the accepted rows only, in file order. For
    persons its columns are `FRAME_COLUMNS`: "identity", the PERSON_FIELDS, "password" (text, "" =
    absent), "row" (the record's 1-based line number in the file) and "delete" (True for rows the
    mapping's `delete_when` marks). For groups they are `GROUP_FRAME_COLUMNS` and for memberships
    `MEMBERSHIP_FRAME_COLUMNS`, both with a "file" column naming the file each row came from (a groups
    roster may combine several files; `file` then joins their names with ", "). `rejected_identities`
    holds the identity values of rejected rows, so that the diff can protect the persons (groups) they
    belong to. The repr leaves out the frame: it holds passwords.
    """

    file: str
    frame: pd.DataFrame = field(repr=False)
    rejects: tuple[Reject, ...]
    rejected_identities: frozenset[str] = frozenset()


def read_roster(path: Path, mapping: ColumnMapping) -> Roster:
    """Read and validate a roster CSV file of the mapping's kind (persons, groups or memberships).

    Args:
        path: the CSV file.
        mapping: how to read it (see `sync.read.mapping.load_mapping`).

    Raises:
        RosterError: the file as a whole cannot be read: missing, not decodable in the mapping's
            encoding, no header, or a required column missing from the header. Bad rows are not
            errors: they come back as `Roster.rejects`.
    """
    if mapping.kind != "persons":
        return _read_many([(path, mapping)], mapping.kind)
    validator = _validator(path, mapping)
    validator.check()
    return validator.build()


def read_groups(sources: Sequence[tuple[Path, ColumnMapping]]) -> Roster:
    """Read several group files (e.g. OneRoster's orgs.csv and classes.csv) into one groups roster.

    Each file is read with its own mapping and validated as `read_roster` does; then a sync key used
    in more than one file rejects every row that holds it (so does an identity value claimed in more
    than one file). The frame holds the accepted rows file by file; its "file" column names each
    row's file, and `Roster.file` joins the file names with ", ".

    Raises:
        RosterError: as `read_roster`, for any of the files.
        ValueError: no sources, or a mapping that does not read groups.
    """
    return _read_many(sources, "groups")


def read_memberships(sources: Sequence[tuple[Path, ColumnMapping]]) -> Roster:
    """Read several membership files (e.g. OneRoster's enrollments.csv and the school memberships of
    users.csv) into one memberships roster.

    As `read_groups`: each file is validated on its own, then a sync key used in more than one file
    rejects every row that holds it, and so does a group and person pair (not marked for deletion)
    held in more than one file.

    Raises:
        RosterError: as `read_roster`, for any of the files.
        ValueError: no sources, or a mapping that does not read memberships.
    """
    return _read_many(sources, "memberships")


def _read_many(sources: Sequence[tuple[Path, ColumnMapping]], kind: str) -> Roster:
    if not sources:
        raise ValueError(f"read_{kind} needs at least one file")
    for _, mapping in sources:
        if mapping.kind != kind:
            raise ValueError(f"mapping {mapping.name} reads {mapping.kind}, not {kind}")
    validators = [_validator(path, mapping) for path, mapping in sources]
    for validator in validators:
        validator.check()
    if len(validators) > 1:
        _flag_across(validators)
    rosters = [validator.build() for validator in validators]
    if len(rosters) == 1:
        return rosters[0]
    return Roster(
        file=", ".join(roster.file for roster in rosters),
        frame=pd.concat([roster.frame for roster in rosters]),
        rejects=tuple(reject for roster in rosters for reject in roster.rejects),
        rejected_identities=frozenset().union(*(roster.rejected_identities for roster in rosters)),
    )


def _validator(path: Path, mapping: ColumnMapping) -> _Validator:
    """Read, decode and parse a file: a validator ready to check it."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RosterError(f"roster {file} does not exist") from None
    except OSError as exc:
        raise RosterError(f"roster {file} cannot be read: {exc.strerror}") from None
    data = _to_utf8(raw, mapping.encoding, file)
    delimiter = _delimiter(data, mapping, file)
    parsed = _parse(data, delimiter, mapping, file)
    return _Validator(parsed, mapping, file)


@dataclass(frozen=True, slots=True)
class _Claim:
    """The values of one file that must not appear in another file: `values[i]` where `eligible[i]`."""

    validator: _Validator
    field: str  # the canonical field a reject names
    values: Any
    eligible: BoolArray


def _flag_across(validators: Sequence[_Validator]) -> None:
    """Reject every row of a sync key (or identity value, or membership pair) that more than one file
    holds."""
    flagged = {id(validator): np.zeros(validator.count, dtype=bool) for validator in validators}
    if validators[0].mapping.kind == "memberships":
        # Two files holding the same group and person: the person would be in the group twice.
        pairs = []
        for validator in validators:
            groups, persons = validator.raw["group"], validator.raw["person"]
            eligible = ~validator.delete & ~_mask(pc.equal(groups, "")) & ~_mask(pc.equal(persons, ""))
            values = pc.binary_join_element_wise(groups, persons, pa.scalar(_PAIR, type=pa.large_string()))
            pairs.append(_Claim(validator, "person", values, eligible))
        for claim, mask, where in _shared(pairs):
            claim.validator.flag_across(
                "person", mask, where, values=claim.values, describe=claim.validator.describe_pair
            )
            flagged[id(claim.validator)] |= mask
    for canonical in ("sync_key", "identity"):
        claims: list[_Claim] = []
        for validator in validators:
            name = "sync_key" if canonical == "sync_key" else validator.mapping.identity
            if not name:
                continue
            eligible = np.ones(validator.count, dtype=bool) if canonical == "sync_key" else ~validator.delete
            eligible &= ~_mask(pc.equal(validator.raw[name], "")) & ~flagged[id(validator)]
            claims.append(_Claim(validator, name, validator.raw[name], eligible))
        for claim, mask, where in _shared(claims):
            claim.validator.flag_across(claim.field, mask, where)


def _shared(
    claims: Sequence[_Claim],
) -> list[tuple[_Claim, BoolArray, Mapping[str, list[tuple[str, int]]]]]:
    """Per claim with values another claim holds too: the rows holding them, and where each value is."""
    # Each file's distinct values, counted across files in Arrow: no Python object per value.
    distinct = [
        pc.unique(claim.values.filter(pa.array(claim.eligible))).cast(pa.large_string()) for claim in claims
    ]
    counted = pc.value_counts(pa.chunked_array(distinct, type=pa.large_string()))
    shared = counted.field("values").filter(pc.greater(counted.field("counts"), 1))
    if not len(shared):
        return []
    hits = [(claim, claim.eligible & _mask(pc.is_in(claim.values, value_set=shared))) for claim in claims]
    where: dict[str, list[tuple[str, int]]] = {}
    for claim, mask in hits:
        for position in np.flatnonzero(mask):
            where.setdefault(str(claim.values[int(position)].as_py()), []).append(
                (claim.validator.file, int(claim.validator.lines[position]))
            )
    return [(claim, mask, where) for claim, mask in hits if mask.any()]


# --- decoding ----------------------------------------------------------------------------------


def _to_utf8(raw: bytes, encoding: str, file: str) -> bytes:
    """The file's bytes as UTF-8 without a byte-order mark."""
    if encoding == "auto":
        if raw.startswith(_UTF8_BOM):
            return _checked_utf8(raw[len(_UTF8_BOM) :], "utf-8", file)
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return _transcode(raw, "utf-16", file)  # Excel's "Unicode text"
        if _is_utf8(raw):
            return raw
        try:
            codecs.decode(raw, "utf-8")
        except UnicodeDecodeError as exc:
            # Valid multi-byte UTF-8 before the bad byte: a damaged UTF-8 file. Read as Windows-1252
            # it would turn every "å" into "Ã¥" and rename people; better to stop and say where.
            if not raw[: exc.start].isascii():
                raise _undecodable(raw, exc, "utf-8", file) from None
        return _transcode(raw, "cp1252", file, auto=True)
    if codecs.lookup(encoding).name == "utf-8":
        return _checked_utf8(raw.removeprefix(_UTF8_BOM), encoding, file)
    return _transcode(raw, encoding, file)


def _is_utf8(raw: bytes) -> bool:
    """Whether `raw` is valid UTF-8, checked by Arrow's validator (8x faster than decoding)."""
    if raw.isascii():
        return True
    offsets = pa.py_buffer(np.asarray([0, len(raw)], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(raw)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _checked_utf8(raw: bytes, encoding: str, file: str) -> bytes:
    if _is_utf8(raw):
        return raw
    try:  # only to find the offending byte for the message
        codecs.decode(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(raw, exc, encoding, file) from None
    raise RosterError(f"roster {file} is not valid UTF-8")  # pragma: no cover - the validators disagree


def _transcode(raw: bytes, encoding: str, file: str, *, auto: bool = False) -> bytes:
    try:
        text = codecs.decode(raw, encoding)
    except UnicodeDecodeError as exc:
        raise _undecodable(raw, exc, "auto" if auto else encoding, file) from None
    return text.removeprefix("\ufeff").encode("utf-8")


def _undecodable(raw: bytes, exc: UnicodeDecodeError, encoding: str, file: str) -> RosterError:
    line = raw.count(b"\n", 0, exc.start) + 1
    shown = "UTF-8 nor Windows-1252 text" if encoding == "auto" else f"valid {encoding}"
    article = "neither" if encoding == "auto" else "not"
    return RosterError(
        f"roster {file} is {article} {shown}: byte 0x{raw[exc.start]:02x} on line {line} "
        "(a binary file? else set [csv] encoding in the mapping)"
    )


def _delimiter(data: bytes, mapping: ColumnMapping, file: str) -> str:
    if mapping.delimiter != "auto":
        return mapping.delimiter
    first = next((line for line in data.splitlines() if line.strip()), b"")
    if not first:
        raise RosterError(f"roster {file} has no header line")
    counts = {d: first.count(d.encode()) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties: the earlier (",") wins
    return best if counts[best] else ","


# --- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _BadRow:
    """A record whose field count differs from the header's."""

    line: int
    cells: list[str]
    last_line: int = 0  # the line the record ends on, when it spans lines (an unbalanced quote?)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Parsed:
    """The records of a file: header positions, the raw cells of each mapped column, line numbers."""

    header_length: int
    positions: Mapping[str, int]  # canonical field -> header position (mapped columns present only)
    columns: Mapping[str, Any]  # canonical field -> pyarrow string array, one value per good record
    lines: IntArray  # line number of each good record
    bad: list[_BadRow]
    has_nul: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _Header:
    line: int
    cells: list[str]
    body_start: int  # offset of the first byte after the header's line terminator
    body_end: int  # offset after the last record (trailing line terminators excluded)


def _header_positions(cells: Sequence[str], mapping: ColumnMapping, file: str, line: int) -> dict[str, int]:
    found: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        found.setdefault(cell.strip().casefold(), []).append(index)
    required = mapping.required_columns()
    positions: dict[str, int] = {}
    for canonical, column in mapping.columns.items():
        hits = found.get(column.casefold(), [])
        if len(hits) > 1:
            raise RosterError(f"roster {file}: column {column!r} appears {len(hits)} times in the header")
        if hits:
            positions[canonical] = hits[0]
        elif canonical in required:
            if any("\x00" in cell for cell in cells):
                raise RosterError(
                    f"roster {file}: the header on line {line} holds NUL bytes: UTF-16 text without a "
                    "byte-order mark? (set [csv] encoding = 'utf-16-le' in the mapping)"
                )
            shown = ", ".join(repr(_shown(cell.strip())) for cell in cells[:_SHOWN_CELLS])
            more = f" and {len(cells) - _SHOWN_CELLS} more" if len(cells) > _SHOWN_CELLS else ""
            raise RosterError(
                f"roster {file}: required column {column!r} (for {canonical}) is missing from the "
                f"header on line {line}; found: {shown}{more}"
            )
    return positions


def _split(text: str, delimiter: str) -> list[str]:
    return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])


def _is_blank(cells: Sequence[str]) -> bool:
    return all(not cell.strip() for cell in cells)


def _parse(data: bytes, delimiter: str, mapping: ColumnMapping, file: str) -> _Parsed:
    """Parse the file with pyarrow, finding each record's line at the least cost the file allows.

    Most exports have one record per line: then counting line terminators proves it, and the lines
    follow from the row numbers. Otherwise (blank lines inside, quoted newlines) a vectorised scan
    finds every record's line; and when the scan cannot mirror the file's quoting, the csv module
    parses it record by record.
    """
    header = _find_header(data, delimiter, file)
    if header is None:
        return _parse_slow(data, delimiter, mapping, file)
    positions = _header_positions(header.cells, mapping, file, header.line)
    # Without a quote no value can span lines, so every line is one record (blank lines too, as
    # rows of empty values): the line numbers follow from the row numbers without counting, and
    # pyarrow may split the file into blocks at any line end, which parses twice as fast.
    quoted = data.find(b'"', header.body_start, header.body_end) >= 0
    read = _read_arrow(data, header, delimiter, positions, quoted=quoted)
    if read is None:
        return _parse_slow(data, delimiter, mapping, file)
    table, invalid = read
    records = None if quoted else table.num_rows + len(invalid)
    located = _locate_simple(data, header, table.num_rows, invalid, records) or _locate_scanned(
        data, header, delimiter, table.num_rows, invalid
    )
    if located is None:
        return _parse_slow(data, delimiter, mapping, file)
    lines, bad_lines = located
    return _Parsed(
        header_length=len(header.cells),
        positions=positions,
        columns={canonical: table.column(f"c{index}") for canonical, index in positions.items()},
        lines=lines,
        bad=[
            _BadRow(line=line, cells=_split(text, delimiter), last_line=last)
            for (line, last), text in zip(bad_lines, invalid, strict=True)
        ],
        has_nul=b"\x00" in data,
    )


def _terminators(data: bytes, start: int, end: int) -> int:
    """How many line terminators ("\r\n", "\n" or a lone "\r") data[start:end] holds."""
    if data.find(b"\r", start, end) < 0:  # a fast memchr spares two counting passes
        return data.count(b"\n", start, end)
    lf = data.count(b"\n", start, end)
    cr = data.count(b"\r", start, end)
    if not lf:
        return cr
    return lf + cr - data.count(b"\r\n", start, end)


def _line_end(data: bytes, start: int) -> tuple[int, int]:
    """The end of the line starting at `start`, and the start of the next line."""
    lf = data.find(b"\n", start)
    cr = data.find(b"\r", start, lf if lf >= 0 else len(data))
    if cr >= 0:
        return cr, cr + 2 if data[cr + 1 : cr + 2] == b"\n" else cr + 1
    if lf >= 0:
        return lf, lf + 1
    return len(data), len(data)


def _find_header(data: bytes, delimiter: str, file: str) -> _Header | None:
    """The first non-blank line, split; None when its quoting spans lines (left to the csv module)."""
    start, line = 0, 1
    while start < len(data):
        end, following = _line_end(data, start)
        if data[start:end].strip():
            if data.count(b'"', start, end) % 2:
                return None
            body_end = len(data)
            while body_end > following and data[body_end - 1] in b"\r\n":
                body_end -= 1
            cells = _split(data[start:end].decode("utf-8"), delimiter)
            return _Header(line=line, cells=cells, body_start=following, body_end=body_end)
        start, line = following, line + 1
    raise RosterError(f"roster {file} has no header line")


def _read_arrow(
    data: bytes, header: _Header, delimiter: str, positions: Mapping[str, int], *, quoted: bool
) -> tuple[Any, list[str]] | None:
    """The mapped columns of every well-formed record, and the text of the others, in file order.

    Values are large strings: pandas' "str" dtype wraps them without a copy. None when pyarrow
    cannot parse the file (left to the csv module).
    """
    names = [f"c{i}" for i in range(len(header.cells))]
    include = [names[i] for i in sorted(set(positions.values()))]
    size = header.body_end - header.body_start
    if size <= 0:
        return pa.table({name: pa.array([], type=pa.large_string()) for name in include}), []
    try:
        return _read_blocks(data, header, delimiter, names, include, quoted=quoted, block_size=_BLOCK_SIZE)
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc) or size <= _BLOCK_SIZE:
            return None
    # A record longer than a block (an enormous field): one block, one thread.
    try:
        return _read_blocks(data, header, delimiter, names, include, quoted=quoted, block_size=size + 1)
    except pa.ArrowInvalid:
        return None


def _read_blocks(
    data: bytes,
    header: _Header,
    delimiter: str,
    names: list[str],
    include: list[str],
    *,
    quoted: bool,
    block_size: int,
) -> tuple[Any, list[str]]:
    invalid: list[str] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row.text)
        return "skip"

    table = pa_csv.read_csv(
        pa.BufferReader(pa.py_buffer(data)[header.body_start : header.body_end]),
        read_options=pa_csv.ReadOptions(column_names=names, use_threads=True, block_size=block_size),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter,
            newlines_in_values=quoted,
            ignore_empty_lines=quoted,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pa_csv.ConvertOptions(
            include_columns=include,
            column_types=dict.fromkeys(names, pa.large_string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table, invalid


def _locate_simple(
    data: bytes, header: _Header, rows: int, invalid: Sequence[str], records: int | None
) -> tuple[IntArray, list[tuple[int, int]]] | None:
    """Lines of the records when each takes exactly one line (no blank lines, no quoted newlines).

    `records` is the number of lines when it is known to equal the number of records; otherwise
    (None) the line terminators are counted to prove it.
    """
    start, end = header.body_start, header.body_end
    if records is not None:
        lines = records
    else:
        lines = _terminators(data, start, end) + 1 if end > start else 0
        if lines != rows + len(invalid):
            return None
    first = header.line + 1
    bad_lines: list[int] = []
    cursor, cursor_line = start, first
    for text in invalid:
        # Every line is one record, so an invalid record is a whole line: find it after the last one.
        needle = text.encode("utf-8")
        position = data.find(needle, cursor, end)
        while position >= 0 and not (
            (position == start or data[position - 1] in b"\r\n")
            and (position + len(needle) == end or data[position + len(needle)] in b"\r\n")
        ):
            position = data.find(needle, position + 1, end)
        if position < 0:
            return None
        cursor_line += _terminators(data, cursor, position)
        bad_lines.append(cursor_line)
        cursor = position + len(needle)
    every = np.arange(first, first + lines, dtype=np.int64)
    return np.delete(every, np.asarray(bad_lines, dtype=np.int64) - first), [
        (line, line) for line in bad_lines
    ]


def _locate_scanned(
    data: bytes, header: _Header, delimiter: str, rows: int, invalid: Sequence[str]
) -> tuple[IntArray, list[tuple[int, int]]] | None:
    """Lines of the records found by a vectorised scan of terminators, quotes and delimiters.

    Returns None when the file's quoting is outside what the scan mirrors (a quote that neither
    opens, closes nor doubles a quote, e.g. `5" floppy`), or when the scan and pyarrow disagree.
    """
    offset, size = header.body_start, header.body_end - header.body_start
    buf = np.frombuffer(data, dtype=np.uint8, count=size, offset=offset)
    delim = ord(delimiter)
    quotes = np.flatnonzero(buf == _QUOTE)
    if len(quotes) % 2:
        return None  # a quote never closed: the csv module says where
    if len(quotes):
        before = np.where(quotes > 0, buf[np.maximum(quotes - 1, 0)], _LF)
        after = np.where(quotes < size - 1, buf[np.minimum(quotes + 1, size - 1)], _LF)
        edge = np.asarray([delim, _LF, _CR, _QUOTE], dtype=np.uint8)
        if not (np.isin(before, edge) | np.isin(after, edge)).all():
            return None
    lf = np.flatnonzero(buf == _LF)
    cr = np.flatnonzero(buf == _CR)
    lone_cr = cr[(cr == size - 1) | (buf[np.minimum(cr + 1, size - 1)] != _LF)]
    ends = np.sort(np.concatenate([lf, lone_cr])) + 1  # one past each terminator
    starts = ends - 1  # first byte of each terminator ("\r" of "\r\n")
    crlf = (buf[starts] == _LF) & (starts > 0) & (buf[np.maximum(starts - 1, 0)] == _CR)
    starts[crlf] -= 1
    # A terminator outside quotes (an even number of quotes before it) ends a record.
    outside = np.searchsorted(quotes, starts) % 2 == 0
    rec_start = np.concatenate([[0], ends[outside]]).astype(np.int64)
    rec_end = np.concatenate([starts[outside], [size]]).astype(np.int64)
    rec_line = np.searchsorted(ends, rec_start, side="right").astype(np.int64) + header.line + 1
    delims = np.flatnonzero(buf == delim)
    delims = delims[np.searchsorted(quotes, delims) % 2 == 0]
    rec_fields = np.searchsorted(delims, rec_end) - np.searchsorted(delims, rec_start) + 1
    body = np.flatnonzero(rec_end > rec_start)
    good = body[rec_fields[body] == len(header.cells)]
    bad = body[rec_fields[body] != len(header.cells)]
    # The scan and pyarrow must agree record for record; if they do not, trust the csv module.
    texts = [data[offset + rec_start[i] : offset + rec_end[i]].decode("utf-8") for i in bad]
    if rows != len(good) or list(invalid) != texts:
        return None
    # The line a record ends on: one more than the terminators before its end.
    last_line = np.searchsorted(ends, rec_end[bad], side="right") + header.line + 1
    return rec_line[good], [(int(a), int(b)) for a, b in zip(rec_line[bad], last_line, strict=True)]


def _parse_slow(data: bytes, delimiter: str, mapping: ColumnMapping, file: str) -> _Parsed:
    """Parse with the csv module, record by record (files with unusual quoting).

    A strict reader first, to notice a quote that is never closed (it would swallow the rest of
    the file, rows that then are neither read nor rejected); a lenient one where strictness objects
    only to text after a closing quote (`"a"b` reads as `ab`).
    """
    text = data.decode("utf-8")
    try:
        return _parse_records(text, delimiter, mapping, file, strict=True)
    except csv.Error as exc:
        if "expected after" not in str(exc):
            raise _csv_error(exc, file) from None
    try:
        return _parse_records(text, delimiter, mapping, file, strict=False)
    except csv.Error as exc:
        raise _csv_error(exc, file) from None


def _csv_error(exc: csv.Error, file: str) -> RosterError:
    line = getattr(exc, "line", 0)
    if "unexpected end of data" in str(exc):
        return RosterError(
            f"roster {file}: a quote opened in the record on line {line} is never closed, so the rest "
            "of the file cannot be read (truncated or hand-edited export?)"
        )
    return RosterError(f"roster {file}: cannot be parsed from line {line}: {exc}")


def _parse_records(text: str, delimiter: str, mapping: ColumnMapping, file: str, *, strict: bool) -> _Parsed:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict)
    header: list[str] | None = None
    positions: dict[str, int] = {}
    values: dict[str, list[str]] = {}
    lines: list[int] = []
    bad: list[_BadRow] = []
    consumed = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            exc.line = consumed + 1  # type: ignore[attr-defined]  # carried to the message
            raise
        line, consumed = consumed + 1, reader.line_num
        if _is_blank(record) and (header is None or len(record) <= 1):
            continue  # a blank line, or whitespace only
        if header is None:
            header = record
            positions = _header_positions(header, mapping, file, line)
            values = {canonical: [] for canonical in positions}
        elif len(record) != len(header):
            bad.append(_BadRow(line=line, cells=record, last_line=consumed))
        else:
            lines.append(line)
            for canonical, index in positions.items():
                values[canonical].append(record[index])
    if header is None:
        raise RosterError(f"roster {file} has no header line")
    return _Parsed(
        header_length=len(header),
        positions=positions,
        columns={
            canonical: pa.chunked_array([cells], type=pa.large_string())
            for canonical, cells in values.items()
        },
        lines=np.asarray(lines, dtype=np.int64),
        bad=bad,
        has_nul="\x00" in text,
    )


# --- validation --------------------------------------------------------------------------------


def _shown(value: str) -> str:
    value = "".join(ch if ch.isprintable() else "?" for ch in value)
    return value if len(value) <= _SHOWN_VALUE_LENGTH else value[: _SHOWN_VALUE_LENGTH - 1] + "…"


def _map_unique(values: Any, function: Callable[[str], str | None]) -> Any:
    """Apply `function` to each distinct value (few in practice) and spread the results back."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    results = pa.array([function(value) for value in encoded.dictionary.to_pylist()], type=pa.large_string())
    return pc.take(results, encoded.indices)


def _byte_table(chars: Sequence[int]) -> BoolArray:
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    return table


# The whitespace pyarrow's utf8_trim_whitespace removes is exactly str.isspace (a test checks), all of it
# below U+3001. A value needs trimming only if it starts with a first byte or ends with a last byte of
# one of those characters; the tables allow a cheap, conservative check on the raw UTF-8 bytes.
_WHITESPACE: Final = [chr(code).encode() for code in range(0x3001) if chr(code).isspace()]
_TRIM_FIRST: Final = _byte_table([ws[0] for ws in _WHITESPACE])
_TRIM_LAST: Final = _byte_table([ws[-1] for ws in _WHITESPACE])


def _string_bytes(values: Any) -> tuple[Any, Any]:
    """The offsets and UTF-8 bytes (numpy views, no copy) of a string or large-string array."""
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    _, offsets, data = values.buffers()
    offsets = np.frombuffer(offsets, dtype=width)[values.offset : values.offset + len(values) + 1]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def _trimmed(values: Any) -> Any:
    """The values without surrounding whitespace; trimmed only when some value may need it."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not len(values) or values.null_count:
        return pc.utf8_trim_whitespace(values)
    offsets, data = _string_bytes(values)
    if not len(data):
        return values  # every value is empty
    # An empty value reads a neighbour's byte here: at worst a needless trim, never a missed one.
    first = _TRIM_FIRST[data.take(offsets[:-1], mode="clip")]
    if first.any() or _TRIM_LAST[data.take(offsets[1:] - 1, mode="clip")].any():
        return pc.utf8_trim_whitespace(values)
    return values


def _value_bytes(values: Any) -> Any:
    """The UTF-8 bytes of all values, back to back (a numpy view)."""
    offsets, data = _string_bytes(values)
    return data[offsets[0] : offsets[-1]] if len(values) else data[:0]


def _may_hold(values: Any, lead_bytes: Sequence[int]) -> bool:
    """False when no value holds a byte below 0x20 or one of `lead_bytes`: a few fast passes that
    spare the (slow) regular expression on clean columns."""
    if values.null_count:
        return True
    data = _value_bytes(values)
    return bool((data < 0x20).any() or any((data == lead).any() for lead in lead_bytes))


def _claimed_twice(values: Any, claims: BoolArray) -> BoolArray | None:
    """The claiming rows whose value another claiming row has too; None when there are none.

    A column whose claims are in strictly ascending order (as exports sorted by key are) proves
    uniqueness without hashing. Otherwise the claims are split in two by a bit of their first and
    last bytes (equal values fall on the same side) and the halves are hashed on two threads:
    pyarrow's kernels release the GIL.
    """
    claimed = values if claims.all() else values.filter(pa.array(claims))
    if len(claimed) < 2 or pc.all(pc.less(claimed[:-1], claimed[1:])).as_py():
        return None
    positions = np.flatnonzero(claims)
    if len(positions) < _PARALLEL_ROWS:
        parts = [positions]
    else:
        offsets, data = _string_bytes(claimed)
        # Claimed values are never empty, so both bytes exist.
        side = ((data[offsets[:-1]] ^ data[offsets[1:] - 1]) & 1).astype(bool)
        parts = [positions[~side], positions[side]]
    mask = np.zeros(len(claims), dtype=bool)
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        for part, twice in zip(
            parts, pool.map(lambda p: _repeated(values.take(pa.array(p))), parts), strict=True
        ):
            mask[part[twice]] = True
    return mask if mask.any() else None


def _repeated(values: Any) -> BoolArray:
    """Which values occur more than once."""
    if len(pc.unique(values)) == len(values):
        return np.zeros(len(values), dtype=bool)
    encoded = pc.dictionary_encode(values)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(np.bincount(codes, minlength=len(encoded.dictionary))[codes] > 1)


def _always(reason: str) -> Callable[[int], str]:
    """A reason that is the same for every row."""
    return lambda _: reason


def _marker(marks: frozenset[str]) -> Callable[[str], str]:
    """Maps a value to "1" when it (casefolded) is one of `marks`, else to ""."""
    return lambda value: "1" if value.casefold() in marks else ""


def _mask(values: Any) -> BoolArray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _skip_unmapped(
    raw: dict[str, Any], lines: IntArray, mapping: ColumnMapping
) -> tuple[dict[str, Any], IntArray]:
    """Without the rows whose `rules.skip_unmapped` field holds a value its value map does not know.

    Such a row is not this mapping's business (a parent in users.csv has no school membership): it is
    dropped silently, not rejected. An empty value is not skipped: `required` decides about it.
    """
    if not mapping.skip_unmapped or not len(lines):
        return raw, lines
    skip = np.zeros(len(lines), dtype=bool)
    for canonical in sorted(mapping.skip_unmapped):
        table = mapping.value_maps[canonical]
        hit = _map_unique(raw[canonical], _unmapped(table))
        skip |= _mask(pc.equal(hit, "1"))
    if not skip.any():
        return raw, lines
    keep = pa.array(~skip)
    return {canonical: values.filter(keep) for canonical, values in raw.items()}, lines[~skip]


def _unmapped(table: Mapping[str, str]) -> Callable[[str], str]:
    """Maps a value to "1" when it is not empty and not a key of the value map `table`, else to ""."""
    return lambda value: "1" if value and value.casefold() not in table else ""


def _split_values(
    raw: dict[str, Any], lines: IntArray, canonical: str, separator: str
) -> tuple[dict[str, Any], IntArray]:
    """One row per value of the multi-valued `canonical` column (`rules.split`).

    Values are stripped; empty ones are dropped and a value repeated in one cell counts once. A cell
    with no value at all keeps one row with an empty value (for `required` to reject). Rows stay in
    file order, each value carrying its record's line number.
    """
    values = raw[canonical]
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not len(values) or not _mask(pc.match_substring(values, separator)).any():
        return raw, lines  # one value per cell (already stripped)
    lists = pc.split_pattern(values, pattern=separator)
    parents = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    encoded = pc.dictionary_encode(flat)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    # The first occurrence of each (row, value): np.unique's indices point at first occurrences.
    _, first = np.unique(parents * len(encoded.dictionary) + codes, return_index=True)
    keep = np.zeros(len(flat), dtype=bool)
    keep[first] = True
    keep &= ~_mask(pc.equal(flat, ""))
    has_value = np.zeros(len(values), dtype=bool)
    has_value[parents[keep]] = True
    if not has_value.all():
        offsets = np.asarray(lists.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        keep[offsets[:-1][~has_value]] = True  # the (empty) first value of a cell without values
    chosen = np.flatnonzero(keep)
    rows = pa.array(parents[chosen])
    split = {name: column.take(rows) for name, column in raw.items() if name != canonical}
    split[canonical] = flat.take(pa.array(chosen))
    return split, lines[parents[chosen]]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Problem:
    field: str
    mask: BoolArray
    reason: Callable[[int], str]  # row position -> reason (built only for flagged rows)


class _Validator:
    """Checks the parsed columns, builds the frame of accepted rows and the rejects."""

    def __init__(self, parsed: _Parsed, mapping: ColumnMapping, file: str) -> None:
        self.mapping = mapping
        self.file = file
        self.bad = parsed.bad
        self.has_nul = parsed.has_nul
        self.positions = parsed.positions
        self.header_length = parsed.header_length
        count = len(parsed.lines)
        empty = pa.array([""] * count, type=pa.large_string())
        raw = {
            canonical: _trimmed(parsed.columns[canonical]) if canonical in parsed.columns else empty
            for canonical in mapping.columns
        }
        # Rows with nothing in any mapped column are spreadsheet leftovers (";;;;"), not records.
        # Only a row without a sync key can be one, so the other columns are checked only then.
        lead = "sync_key" if "sync_key" in raw else next(iter(raw))
        blank = _mask(pc.equal(raw[lead], ""))
        if blank.any():
            for values in raw.values():
                blank &= _mask(pc.equal(values, ""))
        if blank.any():
            keep = pa.array(~blank)
            raw = {canonical: values.filter(keep) for canonical, values in raw.items()}
        lines = parsed.lines[~blank]
        raw, lines = _skip_unmapped(raw, lines, mapping)
        if mapping.split is not None:
            raw, lines = _split_values(raw, lines, mapping.split.field, mapping.split.separator)
        self.lines = lines
        self.count = len(self.lines)
        for canonical, constant in mapping.constants.items():
            raw[canonical] = pa.repeat(pa.scalar(constant, type=pa.large_string()), self.count)
        if mapping.derived_key:
            raw["sync_key"] = pc.binary_join_element_wise(
                raw["group"], raw["person"], pa.scalar(":", type=pa.large_string())
            )
        self.raw = raw
        self.problems: list[_Problem] = []
        self.values: dict[str, Any] = {}
        self.delete = np.zeros(self.count, dtype=bool)
        self.pairs_twice: BoolArray | None = None

    def column(self, canonical: str) -> str:
        if canonical in self.mapping.columns:
            return self.mapping.columns[canonical]
        if canonical == "sync_key":  # derived
            return f"{self.column('group')}:{self.column('person')}"
        return f"[constants] {canonical}"

    def text(self, canonical: str, position: int) -> str:
        return str(self.raw[canonical][position].as_py())

    def flag(self, canonical: str, mask: BoolArray, reason: Callable[[int], str]) -> None:
        if mask.any():
            self.problems.append(_Problem(field=canonical, mask=mask, reason=reason))

    def check(self) -> None:
        """Run every check of the file's own rows; `build` then makes the roster."""
        kind = self.mapping.kind
        delete = self.deletions()
        self.check_nul()
        self.check_sync_key()
        self.check_references()
        self.check_values()
        self.check_required(delete)
        values = dict(self.raw)
        for canonical, table in self.mapping.value_maps.items():
            values[canonical] = self.map_values(canonical, table, delete)
        if "birth_date" in values and kind == "persons":
            values["birth_date"] = self.parse_dates(values["birth_date"], delete)
        if kind == "groups":
            self.check_own_parent(delete)
        if kind == "memberships":
            self.check_pairs(delete)
        self.check_duplicates(delete)
        self.values = values
        self.delete = delete

    def deletions(self) -> BoolArray:
        delete = np.zeros(self.count, dtype=bool)
        for canonical, marks in self.mapping.delete_when.items():
            if marks:
                hit = _map_unique(self.raw[canonical], _marker(marks))
                delete |= _mask(pc.equal(hit, "1"))
        return delete

    def check_nul(self) -> None:
        if not self.has_nul:
            return  # one pass over the file's bytes spares a pass over every column
        for canonical in self.mapping.columns:
            mask = _mask(pc.match_substring(self.raw[canonical], "\x00"))
            self.flag(canonical, mask, _always(f"NUL byte in column {self.column(canonical)!r}"))

    def check_sync_key(self) -> None:
        if self.mapping.derived_key:
            # group and person are checked as keys on their own; only the joined length is new here.
            keys = self.raw["sync_key"]
            if _mask(pc.greater(pc.binary_length(keys), MAX_SYNC_KEY_LENGTH)).any():
                lengths = np.asarray(pc.utf8_length(keys).to_numpy(zero_copy_only=False))
                columns = f"{self.column('group')!r} and {self.column('person')!r}"
                self.flag(
                    "sync_key",
                    lengths > MAX_SYNC_KEY_LENGTH,
                    lambda i: (
                        f"sync key group:person derived from the fields group and person (columns "
                        f"{columns}) has {lengths[i]} characters; IMS ES allows at most "
                        f"{MAX_SYNC_KEY_LENGTH} (map a sync_key column)"
                    ),
                )
            return
        column = self.column("sync_key")
        keys = self.raw["sync_key"]
        self.flag("sync_key", _mask(pc.equal(keys, "")), lambda _: f"missing sync key in column {column!r}")
        self.check_key("sync_key", "sync key")

    def check_references(self) -> None:
        """Fields that hold another object's sync key obey the sync key's rules."""
        for canonical in ("parent", "group", "person"):
            if canonical in self.mapping.columns and self.mapping.kind != "persons":
                self.check_key(canonical, canonical)

    def check_key(self, canonical: str, what: str) -> None:
        """At most MAX_SYNC_KEY_LENGTH characters, no control characters or invisible marks."""
        keys = self.raw[canonical]
        column = self.column(canonical)
        # A key has at least as many bytes as characters: count characters only when bytes exceed.
        if _mask(pc.greater(pc.binary_length(keys), MAX_SYNC_KEY_LENGTH)).any():
            lengths = np.asarray(pc.utf8_length(keys).to_numpy(zero_copy_only=False))
            self.flag(
                canonical,
                lengths > MAX_SYNC_KEY_LENGTH,
                lambda i: (
                    f"{what} in column {column!r} has {lengths[i]} characters; "
                    f"IMS ES allows at most {MAX_SYNC_KEY_LENGTH}"
                ),
            )
        # C1 and U+00AD start with 0xC2, the marks with 0xE2, BOM with 0xEF.
        if _may_hold(keys, (0x7F, 0xC2, 0xE2, 0xEF)):
            self.flag(
                canonical,
                _mask(pc.match_substring_regex(keys, _CONTROL_RE)),
                lambda _: f"{what} in column {column!r} contains control characters or invisible marks",
            )

    def check_own_parent(self, delete: BoolArray) -> None:
        """A group cannot be its own parent."""
        if "parent" not in self.raw:
            return
        parents = self.raw["parent"]
        mask = _mask(pc.and_(pc.equal(parents, self.raw["sync_key"]), pc.not_equal(parents, ""))) & ~delete
        column = self.column("parent")

        def reason(i: int) -> str:
            return f"group {_shown(self.text('sync_key', i))!r} names itself as parent in column {column!r}"

        self.flag("parent", mask, reason)

    def check_pairs(self, delete: BoolArray) -> None:
        """Two rows (not marked for deletion) with the same group and person: every such row."""
        groups, persons = self.raw["group"], self.raw["person"]
        claims = ~delete & ~_mask(pc.equal(groups, "")) & ~_mask(pc.equal(persons, ""))
        pairs = pc.binary_join_element_wise(groups, persons, pa.scalar(_PAIR, type=pa.large_string()))
        mask = _claimed_twice(pairs, claims)
        self.pairs_twice = mask
        if mask is None:
            return
        self.flag_duplicates("person", mask, pairs, self.describe_pair)

    def describe_pair(self, text: str) -> str:
        """A membership's group and person joined by _PAIR, as a reason names them."""
        group, _, person = text.partition(_PAIR)
        columns = f"columns {self.column('group')!r} and {self.column('person')!r}"
        return f"membership of {_shown(person)!r} in group {_shown(group)!r} ({columns})"

    def check_values(self) -> None:
        """Values that cannot be sent: too long, or holding characters XML forbids.

        The sync key has its own, stricter checks.
        """
        for canonical, values in self.raw.items():
            if canonical == "sync_key" or not len(values):
                continue
            column = self.column(canonical)
            # A value has at least as many bytes as characters: count characters only when bytes exceed.
            if pc.max(pc.binary_length(values)).as_py() > MAX_VALUE_LENGTH:
                lengths = np.asarray(pc.utf8_length(values).to_numpy(zero_copy_only=False))
                self.flag(canonical, lengths > MAX_VALUE_LENGTH, self._too_long(column, lengths))
            if _may_hold(values, (0xEF,)):  # U+FFFE and U+FFFF start with 0xEF
                self.flag(
                    canonical,
                    _mask(pc.match_substring_regex(values, _XML_INVALID_RE)),
                    _always(f"control character in column {column!r} (XML cannot carry it)"),
                )

    @staticmethod
    def _too_long(column: str, lengths: IntArray) -> Callable[[int], str]:
        return lambda i: (
            f"value in column {column!r} has {lengths[i]} characters; at most {MAX_VALUE_LENGTH} are allowed"
        )

    def check_required(self, delete: BoolArray) -> None:
        # A row marked for deletion needs only its sync key: exports often blank the rest. A derived
        # key needs its group and person.
        key_fields = {"group", "person"} if self.mapping.derived_key else set()
        for canonical in sorted(self.mapping.required - {"sync_key"}):
            mask = _mask(pc.equal(self.raw[canonical], ""))
            if canonical not in key_fields:
                mask &= ~delete
            reason = f"missing required value in column {self.column(canonical)!r}"
            self.flag(canonical, mask, _always(reason))

    def map_values(self, canonical: str, table: Mapping[str, str], delete: BoolArray) -> Any:
        mapped = _map_unique(self.raw[canonical], lambda v: table.get(v.casefold()) if v else "")
        unknown = _mask(pc.is_null(mapped))
        known = ", ".join(sorted(table))
        column = self.column(canonical)
        self.flag(
            canonical,
            unknown & ~delete,
            lambda i: (
                f"unknown {canonical} {_shown(self.text(canonical, i))!r} in column {column!r}; "
                f"known: {known}"
            ),
        )
        return pc.fill_null(mapped, "")

    def parse_dates(self, values: Any, delete: BoolArray) -> Any:
        formats = self.mapping.date_formats

        def iso(value: str) -> str | None:
            if not value:
                return ""
            for fmt in formats:
                try:
                    return datetime.strptime(value, fmt).date().isoformat()
                except ValueError:
                    continue
            return None

        parsed = _map_unique(values, iso)
        column = self.column("birth_date")
        expected = " or ".join(formats)
        self.flag(
            "birth_date",
            _mask(pc.is_null(parsed)) & ~delete,
            lambda i: (
                f"bad date {_shown(self.text('birth_date', i))!r} in column {column!r}; expected {expected}"
            ),
        )
        return pc.fill_null(parsed, "")

    def check_duplicates(self, delete: BoolArray) -> None:
        """Sync keys on two rows; identities claimed by two rows not marked for deletion."""
        checks = {"sync_key": np.ones(self.count, dtype=bool)}
        if self.mapping.identity:
            checks[self.mapping.identity] = ~delete
        for canonical, eligible in checks.items():
            claims = eligible & ~_mask(pc.equal(self.raw[canonical], ""))
            mask = _claimed_twice(self.raw[canonical], claims)
            if canonical == "sync_key" and self.mapping.derived_key and self.pairs_twice is not None:
                # A derived key repeats with its group and person: those rows need not be told twice.
                mask = None if mask is None else mask & ~self.pairs_twice
            if mask is not None and mask.any():
                self.flag_duplicates(canonical, mask)

    def flag_duplicates(
        self,
        canonical: str,
        mask: BoolArray,
        values: Any = None,
        describe: Callable[[str], str] | None = None,
    ) -> None:
        """Flag the rows of `mask`, naming the other lines that hold the same value (of `values`, by
        default the field's own)."""
        values = self.raw[canonical] if values is None else values
        positions = np.flatnonzero(mask)
        texts = values.take(pa.array(positions)).to_pylist()
        lines_of: dict[str, list[int]] = {}
        for text, position in zip(texts, positions, strict=True):
            lines_of.setdefault(text, []).append(int(self.lines[position]))
        if describe is None:
            column = self.column(canonical)
            what = "sync key" if canonical == "sync_key" else canonical

            def describe(text: str) -> str:
                return f"{what} {_shown(text)!r} in column {column!r}"

        shown = describe

        def reason(i: int) -> str:
            text = str(values[i].as_py())
            lines = lines_of[text]
            # A value repeated on thousands of rows must not make each message thousands of lines long.
            others = [line for line in lines[: _SHOWN_LINES + 1] if line != self.lines[i]][:_SHOWN_LINES]
            also = ", ".join(str(line) for line in others)
            if len(lines) - 1 > len(others):
                also += f" and {len(lines) - 1 - len(others)} more"
            return f"{shown(text)} is also on line {also}"

        self.flag(canonical, mask, reason)

    def flag_across(
        self,
        canonical: str,
        mask: BoolArray,
        where: Mapping[str, list[tuple[str, int]]],
        *,
        values: Any = None,
        describe: Callable[[str], str] | None = None,
    ) -> None:
        """Flag the rows of `mask` whose value (of `values`, by default the field's own) another file
        holds too; `where` lists every holder."""
        column = self.column(canonical)
        what = "sync key" if canonical == "sync_key" else canonical
        values = self.raw[canonical] if values is None else values

        def shown(text: str) -> str:
            return f"{what} {_shown(text)!r} in column {column!r}"

        described = shown if describe is None else describe

        def reason(i: int) -> str:
            text = str(values[i].as_py())
            others = [(file, line) for file, line in where[text] if file != self.file][:_SHOWN_LINES]
            also = "; ".join(f"line {line} of {file}" for file, line in others)
            return f"{described(text)} is also on {also}"

        self.flag(canonical, mask, reason)

    def build(self) -> Roster:
        """The roster of the accepted rows and the rejects (after `check`)."""
        values, delete = self.values, self.delete
        rejected = np.zeros(self.count, dtype=bool)
        for problem in self.problems:
            rejected |= problem.mask
        rejects = [self.reject(int(position)) for position in np.flatnonzero(rejected)]
        identity = self.mapping.identity
        rejected_identities: set[str] = set()
        if identity:
            rejected_identities.update(
                str(v) for v in self.raw[identity].filter(pa.array(rejected)).to_pylist()
            )
        rejects.extend(
            self.bad_row_reject(bad, rejected_identities) for bad in self.bad if not _is_blank(bad.cells)
        )
        rejects.sort(key=lambda r: (r.row, r.field))
        accepted = pa.array(~rejected) if rejected.any() else None

        def column(values: Any) -> Any:
            # Large strings become pandas' "str" dtype without a copy; filter only if rows were rejected.
            return pd.array(values if accepted is None else values.filter(accepted), dtype="str")

        index = pd.Index(column(self.raw["sync_key"]), name="sync_key")

        def constant(text: str) -> Any:
            return pd.array(pa.repeat(pa.scalar(text, type=pa.large_string()), len(index)), dtype="str")

        frame_values: dict[str, Any] = {}
        kind = self.mapping.kind
        if kind != "memberships":
            frame_values["identity"] = column(self.raw[identity]) if identity else constant("")
        if kind == "persons":
            for name in (*PERSON_FIELDS, "password"):
                frame_values[name] = column(values[name]) if name in values else constant("")
        else:
            fields = GROUP_FIELDS if kind == "groups" else MEMBERSHIP_FIELDS
            for name in fields:
                if name == "active":
                    frame_values[name] = constant("true")  # a membership in the roster is active
                else:
                    frame_values[name] = column(values[name]) if name in values else constant("")
            frame_values["file"] = constant(self.file)
        frame_values["row"] = self.lines[~rejected]
        frame_values["delete"] = delete[~rejected]
        frame = pd.DataFrame(frame_values, index=index)
        rejected_identities.discard("")
        return Roster(
            file=self.file,
            frame=frame,
            rejects=tuple(rejects),
            rejected_identities=frozenset(rejected_identities),
        )

    def reject(self, position: int) -> Reject:
        found = [problem for problem in self.problems if problem.mask[position]]
        return Reject(
            file=self.file,
            row=int(self.lines[position]),
            field=found[0].field,
            reason="; ".join(problem.reason(position) for problem in found),
            sync_key=_shown(self.text("sync_key", position)),
        )

    def bad_row_reject(self, bad: _BadRow, rejected_identities: set[str]) -> Reject:
        # The cells may be shifted, but a key or identity found there protects its person all the same.
        def cell(canonical: str) -> str:
            index = self.positions.get(canonical)
            return bad.cells[index].strip() if index is not None and index < len(bad.cells) else ""

        if self.mapping.identity:
            rejected_identities.add(cell(self.mapping.identity))
        return Reject(
            file=self.file,
            row=bad.line,
            field=ROW_FIELD,
            reason=f"line has {len(bad.cells)} fields; the header has {self.header_length}"
            + (
                f" (the record runs over lines {bad.line}-{bad.last_line}: an unbalanced quote?)"
                if bad.last_line > bad.line
                else ""
            ),
            sync_key=_shown(
                f"{cell('group')}:{cell('person')}" if self.mapping.derived_key else cell("sync_key")
            ),
        )
