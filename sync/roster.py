"""Roster CSV + mapping → canonical persons (a DataFrame) and the rows set aside as rejects.

Reading is column-wise so that a million rows take about a second: the file is decoded to UTF-8 once,
a vectorised scan (numpy) finds every record's first line and field count, pyarrow parses the values,
and validation runs on whole columns. Python touches single rows only to describe the (few) rejects.
Files whose quoting the scan cannot mirror exactly (a quote inside an unquoted value) are parsed with
the standard csv module instead: slower, same answers.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Mapping, Sequence
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
from sync.mapping import DELIMITERS, MAX_SYNC_KEY_LENGTH, ColumnMapping
from sync.models import PERSON_FIELDS, Reject

__all__ = ["FRAME_COLUMNS", "ROW_FIELD", "Roster", "read_roster"]

#: The columns of `Roster.frame`, in order (the index is "sync_key").
FRAME_COLUMNS: Final = ("identity", *PERSON_FIELDS, "password", "row", "delete")

#: `Reject.field` of a row that could not be split into the header's columns.
ROW_FIELD: Final = "row"

_QUOTE: Final = 0x22
_LF: Final = 0x0A
_CR: Final = 0x0D
_UTF8_BOM: Final = codecs.BOM_UTF8
# Control characters (C0 without NUL, DEL, C1): not allowed in a sync key. NUL is reported on its own.
_CONTROL_RE: Final = r"[\x01-\x1f\x7f-\x9f]"
_SHOWN_VALUE_LENGTH: Final = 40

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)  # a DataFrame has no plain ==
class Roster:
    """A roster file read through a mapping.

    `frame` is indexed by "sync_key" (unique) and holds the accepted rows only, in file order, with
    the columns `FRAME_COLUMNS`: "identity", the PERSON_FIELDS, "password" (text, "" = absent), "row"
    (the record's 1-based line number in the file) and "delete" (True for rows the mapping's
    `delete_when` marks). `rejected_identities` holds the identity values of rejected rows, so that
    the diff can protect the persons they belong to. The repr leaves out the frame: it holds passwords.
    """

    file: str
    frame: pd.DataFrame = field(repr=False)
    rejects: tuple[Reject, ...]
    rejected_identities: frozenset[str] = frozenset()


def read_roster(path: Path, mapping: ColumnMapping) -> Roster:
    """Read and validate a roster CSV file.

    Args:
        path: the CSV file.
        mapping: how to read it (see `sync.mapping.load_mapping`).

    Raises:
        RosterError: the file as a whole cannot be read: missing, not decodable in the mapping's
            encoding, no header, or a required column missing from the header. Bad rows are not
            errors: they come back as `Roster.rejects`.
    """
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
    return _Validator(parsed, mapping, file).roster()


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
        return _transcode(raw, "cp1252", file)
    if codecs.lookup(encoding).name == "utf-8":
        return _checked_utf8(raw.removeprefix(_UTF8_BOM), encoding, file)
    return _transcode(raw, encoding, file)


def _is_utf8(raw: bytes) -> bool:
    if raw.isascii():
        return True
    try:
        codecs.decode(raw, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _checked_utf8(raw: bytes, encoding: str, file: str) -> bytes:
    try:
        codecs.decode(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(raw, exc, encoding, file) from None
    return raw


def _transcode(raw: bytes, encoding: str, file: str) -> bytes:
    try:
        text = codecs.decode(raw, encoding)
    except UnicodeDecodeError as exc:
        raise _undecodable(raw, exc, encoding, file) from None
    return text.removeprefix("\ufeff").encode("utf-8")


def _undecodable(raw: bytes, exc: UnicodeDecodeError, encoding: str, file: str) -> RosterError:
    line = raw.count(b"\n", 0, exc.start) + 1
    shown = "UTF-8 or Windows-1252" if encoding == "auto" else encoding
    return RosterError(
        f"roster {file} is not valid {shown}: byte 0x{raw[exc.start]:02x} on line {line} "
        "(set [csv] encoding in the mapping)"
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
            shown = ", ".join(repr(cell.strip()) for cell in cells)
            raise RosterError(
                f"roster {file}: required column {column!r} (for {canonical}) is missing from the "
                f"header on line {line}; found: {shown}"
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
    read = _read_arrow(data, header, delimiter, positions)
    if read is None:
        return _parse_slow(data, delimiter, mapping, file)
    table, invalid = read
    located = _locate_simple(data, header, table.num_rows, invalid) or _locate_scanned(
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
            _BadRow(line=line, cells=_split(text, delimiter))
            for line, text in zip(bad_lines, invalid, strict=True)
        ],
        has_nul=b"\x00" in data,
    )


def _terminators(data: bytes, start: int, end: int) -> int:
    """How many line terminators ("\r\n", "\n" or a lone "\r") data[start:end] holds."""
    lf = data.count(b"\n", start, end)
    cr = data.count(b"\r", start, end)
    if not cr or not lf:
        return lf + cr
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
    data: bytes, header: _Header, delimiter: str, positions: Mapping[str, int]
) -> tuple[Any, list[str]] | None:
    """The mapped columns of every well-formed record, and the text of the others, in file order."""
    names = [f"c{i}" for i in range(len(header.cells))]
    invalid: list[str] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row.text)
        return "skip"

    include = [names[i] for i in sorted(set(positions.values()))]
    if header.body_end <= header.body_start:
        return pa.table({name: pa.array([], type=pa.string()) for name in include}), invalid
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)[header.body_start : header.body_end]),
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pa_csv.ConvertOptions(
                include_columns=include,
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    return table, invalid


def _locate_simple(
    data: bytes, header: _Header, rows: int, invalid: Sequence[str]
) -> tuple[IntArray, list[int]] | None:
    """Lines of the records when each takes exactly one line (no blank lines, no quoted newlines)."""
    start, end = header.body_start, header.body_end
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
    return np.delete(every, np.asarray(bad_lines, dtype=np.int64) - first), bad_lines


def _locate_scanned(
    data: bytes, header: _Header, delimiter: str, rows: int, invalid: Sequence[str]
) -> tuple[IntArray, list[int]] | None:
    """Lines of the records found by a vectorised scan of terminators, quotes and delimiters.

    Returns None when the file's quoting is outside what the scan mirrors (a quote that neither
    opens, closes nor doubles a quote, e.g. `5" floppy`), or when the scan and pyarrow disagree.
    """
    offset, size = header.body_start, header.body_end - header.body_start
    buf = np.frombuffer(data, dtype=np.uint8, count=size, offset=offset)
    delim = ord(delimiter)
    quotes = np.flatnonzero(buf == _QUOTE)
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
    return rec_line[good], [int(line) for line in rec_line[bad]]


def _parse_slow(data: bytes, delimiter: str, mapping: ColumnMapping, file: str) -> _Parsed:
    """Parse with the csv module, record by record (files with unusual quoting)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter)
    header: list[str] | None = None
    positions: dict[str, int] = {}
    values: dict[str, list[str]] = {}
    lines: list[int] = []
    bad: list[_BadRow] = []
    consumed = 0
    for record in reader:
        line, consumed = consumed + 1, reader.line_num
        if _is_blank(record) and (header is None or len(record) <= 1):
            continue  # a blank line, or whitespace only
        if header is None:
            header = record
            positions = _header_positions(header, mapping, file, line)
            values = {canonical: [] for canonical in positions}
        elif len(record) != len(header):
            bad.append(_BadRow(line=line, cells=record))
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
            canonical: pa.chunked_array([cells], type=pa.string()) for canonical, cells in values.items()
        },
        lines=np.asarray(lines, dtype=np.int64),
        bad=bad,
        has_nul=b"\x00" in data,
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
    results = pa.array([function(value) for value in encoded.dictionary.to_pylist()], type=pa.string())
    return pc.take(results, encoded.indices)


def _always(reason: str) -> Callable[[int], str]:
    """A reason that is the same for every row."""
    return lambda _: reason


def _marker(marks: frozenset[str]) -> Callable[[str], str]:
    """Maps a value to "1" when it (casefolded) is one of `marks`, else to ""."""
    return lambda value: "1" if value.casefold() in marks else ""


def _mask(values: Any) -> BoolArray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


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
        empty = pa.array([""] * count, type=pa.string()) if count else pa.array([], type=pa.string())
        raw = {
            canonical: pc.utf8_trim_whitespace(parsed.columns[canonical]).combine_chunks()
            if canonical in parsed.columns
            else empty
            for canonical in mapping.columns
        }
        # Rows with nothing in any mapped column are spreadsheet leftovers (";;;;"), not persons.
        # Only a row without a sync key can be one, so the other columns are checked only then.
        blank = _mask(pc.equal(raw["sync_key"], ""))
        if blank.any():
            for values in raw.values():
                blank &= _mask(pc.equal(values, ""))
        if blank.any():
            keep = pa.array(~blank)
            raw = {canonical: values.filter(keep) for canonical, values in raw.items()}
        self.raw = raw
        self.lines = parsed.lines[~blank]
        self.count = len(self.lines)
        self.problems: list[_Problem] = []

    def column(self, canonical: str) -> str:
        return self.mapping.columns[canonical]

    def text(self, canonical: str, position: int) -> str:
        return str(self.raw[canonical][position].as_py())

    def flag(self, canonical: str, mask: BoolArray, reason: Callable[[int], str]) -> None:
        if mask.any():
            self.problems.append(_Problem(field=canonical, mask=mask, reason=reason))

    def roster(self) -> Roster:
        delete = self.deletions()
        self.check_nul()
        self.check_sync_key()
        self.check_required(delete)
        values = dict(self.raw)
        for canonical, table in self.mapping.value_maps.items():
            values[canonical] = self.map_values(canonical, table, delete)
        if "birth_date" in values:
            values["birth_date"] = self.parse_dates(values["birth_date"], delete)
        self.check_duplicates("sync_key", np.ones(self.count, dtype=bool))
        if self.mapping.identity:
            self.check_duplicates(self.mapping.identity, ~delete)
        return self.build(values, delete)

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
        keys = self.raw["sync_key"]
        column = self.column("sync_key")
        self.flag("sync_key", _mask(pc.equal(keys, "")), lambda _: f"missing sync key in column {column!r}")
        lengths = np.asarray(pc.utf8_length(keys).to_numpy(zero_copy_only=False))
        self.flag(
            "sync_key",
            lengths > MAX_SYNC_KEY_LENGTH,
            lambda i: (
                f"sync key in column {column!r} has {lengths[i]} characters; "
                f"IMS ES allows at most {MAX_SYNC_KEY_LENGTH}"
            ),
        )
        self.flag(
            "sync_key",
            _mask(pc.match_substring_regex(keys, _CONTROL_RE)),
            lambda _: f"sync key in column {column!r} contains control characters",
        )

    def check_required(self, delete: BoolArray) -> None:
        # A row marked for deletion needs only its sync key: exports often blank the rest.
        for canonical in sorted(self.mapping.required - {"sync_key"}):
            mask = _mask(pc.equal(self.raw[canonical], "")) & ~delete
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

    def check_duplicates(self, canonical: str, eligible: BoolArray) -> None:
        values = self.raw[canonical]
        encoded = pc.dictionary_encode(values)
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        claims = eligible & ~_mask(pc.equal(values, ""))
        counts = np.bincount(codes[claims], minlength=len(encoded.dictionary))
        mask = claims & (counts[codes] > 1)
        if not mask.any():
            return
        positions = np.flatnonzero(mask)
        lines_of: dict[int, list[int]] = {}
        for position in positions:
            lines_of.setdefault(int(codes[position]), []).append(int(self.lines[position]))
        column = self.column(canonical)
        what = "sync key" if canonical == "sync_key" else canonical

        def reason(i: int) -> str:
            also = ", ".join(str(line) for line in lines_of[int(codes[i])] if line != self.lines[i])
            return f"{what} {_shown(self.text(canonical, i))!r} in column {column!r} is also on line {also}"

        self.flag(canonical, mask, reason)

    def build(self, values: Mapping[str, Any], delete: BoolArray) -> Roster:
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
        accepted = pa.array(~rejected)
        index = pd.Index(pd.array(self.raw["sync_key"].filter(accepted), dtype="str"), name="sync_key")
        empty = pd.array([""] * len(index), dtype="str")
        frame_values: dict[str, Any] = {
            "identity": pd.array(self.raw[identity].filter(accepted), dtype="str") if identity else empty
        }
        for name in (*PERSON_FIELDS, "password"):
            frame_values[name] = (
                pd.array(values[name].filter(accepted), dtype="str") if name in values else empty
            )
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
            reason=f"line has {len(bad.cells)} fields; the header has {self.header_length}",
            sync_key=_shown(cell("sync_key")),
        )
