"""Roster CSV text (UTF-8 bytes) to columns: the delimiter, the header and the mapped columns' positions,
the raw cells of every well-formed record with its line number, and the records that are not.

Most files are parsed by pyarrow in parallel blocks, each record's line following from its row number,
a count of line ends or a vectorised scan (numpy); files whose quoting the scan cannot mirror exactly
(a quote inside an unquoted value) are parsed with the standard csv module instead: slower, same
answers. Imports no I/O: it parses the bytes it is given.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

from sync.errors import RosterError
from sync.read.columnar import IntArray, shown_value
from sync.read.mapping_types import DELIMITERS, ColumnMapping

__all__ = ["BadRow", "Parsed", "find_delimiter", "is_blank", "parse", "parse_slow"]

_QUOTE: Final = 0x22
_LF: Final = 0x0A
_CR: Final = 0x0D
_BLOCK_SIZE: Final = 1 << 20  # pyarrow's default: blocks parsed in parallel
_SHOWN_CELLS: Final = 12  # header cells named when a required column is missing


def find_delimiter(data: bytes, mapping: ColumnMapping, file: str) -> str:
    if mapping.delimiter != "auto":
        return mapping.delimiter
    first = next((line for line in data.splitlines() if line.strip()), b"")
    if not first:
        raise RosterError(f"roster {file} has no header line")
    counts = {d: first.count(d.encode()) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties: the earlier (",") wins
    return best if counts[best] else ","


@dataclass(frozen=True, slots=True, kw_only=True)
class BadRow:
    """A record whose field count differs from the header's."""

    line: int
    cells: list[str]
    last_line: int = 0  # the line the record ends on, when it spans lines (an unbalanced quote?)


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed:
    """The records of a file: header positions, the raw cells of each mapped column, line numbers."""

    header_length: int
    positions: Mapping[str, int]  # canonical field -> header position (mapped columns present only)
    columns: Mapping[str, Any]  # canonical field -> pyarrow string array, one value per good record
    lines: IntArray  # line number of each good record
    bad: list[BadRow]
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
            shown = ", ".join(repr(shown_value(cell.strip())) for cell in cells[:_SHOWN_CELLS])
            more = f" and {len(cells) - _SHOWN_CELLS} more" if len(cells) > _SHOWN_CELLS else ""
            raise RosterError(
                f"roster {file}: required column {column!r} (for {canonical}) is missing from the "
                f"header on line {line}; found: {shown}{more}"
            )
    return positions


def _split(text: str, delimiter: str) -> list[str]:
    return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])


def is_blank(cells: Sequence[str]) -> bool:
    return all(not cell.strip() for cell in cells)


def parse(data: bytes, delimiter: str, mapping: ColumnMapping, file: str) -> Parsed:
    """Parse the file with pyarrow, finding each record's line at the least cost the file allows.

    Most exports have one record per line: then counting line terminators proves it, and the lines
    follow from the row numbers. Otherwise (blank lines inside, quoted newlines) a vectorised scan
    finds every record's line; and when the scan cannot mirror the file's quoting, the csv module
    parses it record by record.
    """
    header = _find_header(data, delimiter, file)
    if header is None:
        return parse_slow(data, delimiter, mapping, file)
    positions = _header_positions(header.cells, mapping, file, header.line)
    # Without a quote no value can span lines, so every line is one record (blank lines too, as
    # rows of empty values): the line numbers follow from the row numbers without counting, and
    # pyarrow may split the file into blocks at any line end, which parses twice as fast.
    quoted = data.find(b'"', header.body_start, header.body_end) >= 0
    read = _read_arrow(data, header, delimiter, positions, quoted=quoted)
    if read is None:
        return parse_slow(data, delimiter, mapping, file)
    table, invalid = read
    records = None if quoted else table.num_rows + len(invalid)
    located = _locate_simple(data, header, table.num_rows, invalid, records) or _locate_scanned(
        data, header, delimiter, table.num_rows, invalid
    )
    if located is None:
        return parse_slow(data, delimiter, mapping, file)
    lines, bad_lines = located
    return Parsed(
        header_length=len(header.cells),
        positions=positions,
        columns={canonical: table.column(f"c{index}") for canonical, index in positions.items()},
        lines=lines,
        bad=[
            BadRow(line=line, cells=_split(text, delimiter), last_line=last)
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


def parse_slow(data: bytes, delimiter: str, mapping: ColumnMapping, file: str) -> Parsed:
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


def _parse_records(text: str, delimiter: str, mapping: ColumnMapping, file: str, *, strict: bool) -> Parsed:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict)
    header: list[str] | None = None
    positions: dict[str, int] = {}
    values: dict[str, list[str]] = {}
    lines: list[int] = []
    bad: list[BadRow] = []
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
        if is_blank(record) and (header is None or len(record) <= 1):
            continue  # a blank line, or whitespace only
        if header is None:
            header = record
            positions = _header_positions(header, mapping, file, line)
            values = {canonical: [] for canonical in positions}
        elif len(record) != len(header):
            bad.append(BadRow(line=line, cells=record, last_line=consumed))
        else:
            lines.append(line)
            for canonical, index in positions.items():
                values[canonical].append(record[index])
    if header is None:
        raise RosterError(f"roster {file} has no header line")
    return Parsed(
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
