"""Tests for reading a roster: encodings, CSV dialects, normalisation, every reject with its line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.errors import RosterError
from sync.models import PERSON_FIELDS
from sync.read.columnar import WHITESPACE
from sync.read.csvparse import Parsed, parse, parse_slow
from sync.read.mapping import ColumnMapping, load_mapping
from sync.read.roster import FRAME_COLUMNS, ROW_FIELD, Roster, read_roster

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
HEADER = "Elev-ID;Brukernavn;Fornavn;Etternavn;E-post;Rolle;Fødselsdato;Mobil"


@pytest.fixture(name="generic")
def fixture_generic() -> ColumnMapping:
    """The built-in generic (Nordic SIS export) mapping."""
    return load_mapping("generic")


@pytest.fixture(name="oneroster")
def fixture_oneroster() -> ColumnMapping:
    """The built-in OneRoster users.csv mapping."""
    return load_mapping("oneroster-users")


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "roster.csv") -> Path:
    """Write `text` byte for byte (no newline translation) and return the path."""
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def generic_rows(*rows: str, newline: str = "\n", header: str = HEADER) -> str:
    """A generic-mapping file from data lines."""
    return newline.join((header, *rows)) + newline


ROW_A = "1;ada;Ada;Lovelace;ada@x;elev;10.12.2010;"
ROW_B = "2;bo;Bo;Ek;;lærer;;+4790000000"


def reasons(roster: Roster) -> list[tuple[int, str]]:
    """(row, field) of every reject."""
    return [(r.row, r.field) for r in roster.rejects]


class TestFrame:
    def test_frame_has_the_contract_columns_and_values(self, tmp_path, generic):
        """Accepted rows land indexed by sync key, mapped and normalised, with line and delete flag."""
        roster = read_roster(write(tmp_path, generic_rows(ROW_A, ROW_B)), generic)
        frame = roster.frame
        assert frame.index.name == "sync_key"
        assert tuple(frame.columns) == FRAME_COLUMNS
        assert list(frame.index) == ["1", "2"]
        assert frame.loc["1", "identity"] == "ada"
        assert frame.loc["1", "role"] == "Student"
        assert frame.loc["2", "role"] == "Staff"
        assert frame.loc["1", "birth_date"] == "2010-12-10"
        assert frame.loc["2", "mobile"] == "+4790000000"
        assert frame.loc["1", "phone"] == ""  # not mapped: absent
        assert list(frame["row"]) == [2, 3]
        assert not frame["delete"].any()
        assert roster.rejects == ()
        assert all(str(frame[name].dtype) == "str" for name in ("identity", *PERSON_FIELDS, "password"))

    def test_samples_read_clean(self, oneroster, generic):
        """The shipped samples read without rejects; their -changed variants have one bad row."""
        assert read_roster(SAMPLES / "oneroster/users.csv", oneroster).rejects == ()
        assert read_roster(SAMPLES / "generic/students.csv", generic).rejects == ()
        changed = read_roster(SAMPLES / "generic/students-changed.csv", generic)
        assert reasons(changed) == [(27, "role")]
        assert len(changed.frame) == 25

    def test_repr_hides_passwords(self, tmp_path, oneroster):
        """The roster's repr never shows the password column's values."""
        path = write(
            tmp_path,
            "sourcedId,status,role,username,givenName,familyName,password\n"
            "k1,active,student,u1,A,B,Hunter2-secret\n"
            "k2,active,student,u2,A,B,Other-secret,extra\n",
        )
        roster = read_roster(path, oneroster)
        assert roster.frame.loc["k1", "password"] == "Hunter2-secret"
        assert "secret" not in repr(roster)
        assert reasons(roster) == [(3, ROW_FIELD)]

    def test_delete_when_marks_rows_and_relaxes_required(self, tmp_path, oneroster):
        """A tobedeleted row is accepted with only its sync key and flagged for deletion."""
        path = write(
            tmp_path,
            "sourcedId,status,role,username,givenName,familyName\n"
            "k1,active,student,u1,A,B\n"
            "k2,TobeDeleted,,,,\n",
        )
        roster = read_roster(path, oneroster)
        assert roster.rejects == ()
        assert list(roster.frame["delete"]) == [False, True]

    def test_tobedeleted_row_claims_no_identity(self, tmp_path, oneroster):
        """A row marked for deletion may share its username with an active row."""
        path = write(
            tmp_path,
            "sourcedId,status,role,username,givenName,familyName\n"
            "old,tobedeleted,student,u1,A,B\nnew,active,student,u1,A,B\n",
        )
        assert read_roster(path, oneroster).rejects == ()


class TestEncodingAndDialect:
    @pytest.mark.parametrize(
        ("prefix", "encoding"),
        [("", "utf-8"), ("\ufeff", "utf-8"), ("", "cp1252"), ("\ufeff", "utf-16")],
        ids=["utf8", "utf8-bom", "windows-1252", "utf16-bom"],
    )
    def test_auto_encoding(self, tmp_path, generic, prefix, encoding):
        """UTF-8 with or without BOM, Windows-1252 and BOM-marked UTF-16 are all recognised."""
        path = write(tmp_path, prefix + generic_rows(ROW_A, ROW_B, newline="\r\n"), encoding)
        roster = read_roster(path, generic)
        assert roster.rejects == ()
        assert roster.frame.loc["2", "role"] == "Staff"  # "lærer" decoded right

    def test_explicit_encoding_that_does_not_fit_is_an_error(self, tmp_path, generic):
        """A Windows-1252 file read as UTF-8 is a RosterError naming the file, encoding and line."""
        mapping = _with(generic, encoding="utf-8")
        path = write(tmp_path, generic_rows(ROW_A, ROW_B), "cp1252")
        with pytest.raises(RosterError, match=r"roster\.csv is not valid utf-8: byte 0x.. on line 1"):
            read_roster(path, mapping)

    def test_explicit_latin1(self, tmp_path, generic):
        """An explicit single-byte encoding is honoured."""
        roster = read_roster(
            write(tmp_path, generic_rows(ROW_B), "latin-1"), _with(generic, encoding="latin-1")
        )
        assert roster.frame.loc["2", "role"] == "Staff"

    @pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
    def test_line_endings_give_the_same_rows(self, tmp_path, generic, newline):
        """LF, CRLF and lone CR files read the same, with the same line numbers."""
        text = generic_rows(ROW_A, "3;x;X;Y;;alien;;", ROW_B, newline=newline)
        roster = read_roster(write(tmp_path, text), generic)
        assert list(roster.frame["row"]) == [2, 4]
        assert reasons(roster) == [(3, "role")]

    def test_comma_delimiter_is_sniffed(self, tmp_path, generic):
        """With delimiter auto, a comma-separated file is read too."""
        text = generic_rows(ROW_A.replace(";", ","), header=HEADER.replace(";", ","))
        assert list(read_roster(write(tmp_path, text), generic).frame.index) == ["1"]

    def test_header_case_whitespace_and_extra_columns(self, tmp_path, generic):
        """Header names match ignoring case and spaces; unknown columns are ignored."""
        header = " elev-id ;BRUKERNAVN;fornavn;Etternavn ;Klasse;e-post;rolle;FØDSELSDATO;mobil"
        text = generic_rows("  1 ; ada ;Ada;Lovelace;5A;ada@x; Elev ;10.12.2010;", header=header)
        frame = read_roster(write(tmp_path, text), generic).frame
        assert list(frame.index) == ["1"]
        assert frame.loc["1", "username"] == "ada"
        assert frame.loc["1", "role"] == "Student"

    def test_trailing_and_inner_blank_lines(self, tmp_path, generic):
        """Blank lines (also whitespace-only or delimiter-only) are skipped and still counted."""
        text = generic_rows(ROW_A, "", "   ", ";;;;;;;", "3;x;X;Y;;alien;;", ROW_B, "", "", newline="\r\n")
        roster = read_roster(write(tmp_path, text), generic)
        assert list(roster.frame["row"]) == [2, 7]
        assert reasons(roster) == [(6, "role")]

    def test_quoted_newline_shifts_later_line_numbers(self, tmp_path, generic):
        """A value spanning lines keeps its newline, and later records get their true line numbers."""
        text = generic_rows(
            '1;ada;"Ada\r\nMaria";Lovelace;;elev;;', "3;x;X;Y;;alien;;", ROW_B, newline="\r\n"
        )
        roster = read_roster(write(tmp_path, text), generic)
        assert roster.frame.loc["1", "given_name"] == "Ada\r\nMaria"
        assert list(roster.frame["row"]) == [2, 5]
        assert reasons(roster) == [(4, "role")]

    def test_nul_byte_rejects_the_row(self, tmp_path, generic):
        """A NUL byte in a value rejects that row (named by column) without failing the file."""
        roster = read_roster(write(tmp_path, generic_rows(ROW_A, "2;b\x00o;Bo;Ek;;elev;;")), generic)
        assert reasons(roster) == [(3, "username")]
        assert "NUL byte in column 'Brukernavn'" in roster.rejects[0].reason

    def test_formula_is_plain_text(self, tmp_path, generic):
        """Spreadsheet formulas are kept as text, never evaluated or altered."""
        text = generic_rows('1;ada;"=HYPERLINK(""x"";""y"")";Lovelace;;elev;;')
        assert (
            read_roster(write(tmp_path, text), generic).frame.loc["1", "given_name"] == '=HYPERLINK("x";"y")'
        )

    def test_stray_quote_inside_a_value(self, tmp_path, generic):
        """A quote inside an unquoted value is text, and line numbers stay right (csv-module path)."""
        text = generic_rows('1;ada;Ada "the first";Lovelace;;elev;;', "", "3;x;X;Y;;alien;;", ROW_B)
        roster = read_roster(write(tmp_path, text), generic)
        assert roster.frame.loc["1", "given_name"] == 'Ada "the first"'
        assert list(roster.frame["row"]) == [2, 5]
        assert reasons(roster) == [(4, "role")]

    def test_optional_column_missing_from_header_reads_as_empty(self, tmp_path, generic):
        """A mapped but optional column absent from the header leaves that field empty."""
        header = HEADER.removesuffix(";Mobil")
        text = generic_rows(ROW_A.removesuffix(";"), header=header)
        assert read_roster(write(tmp_path, text), generic).frame.loc["1", "mobile"] == ""


class TestFileErrors:
    def test_missing_file(self, tmp_path, generic):
        """A missing file is a RosterError naming it."""
        with pytest.raises(RosterError, match=r"nope\.csv does not exist"):
            read_roster(tmp_path / "nope.csv", generic)

    @pytest.mark.parametrize("text", ["", "\r\n\r\n", "   \n"], ids=["empty", "blank-lines", "spaces"])
    def test_no_header(self, tmp_path, generic, text):
        """A file without a header line is a RosterError."""
        with pytest.raises(RosterError, match="has no header line"):
            read_roster(write(tmp_path, text), generic)

    def test_required_column_missing(self, tmp_path, generic):
        """A required column absent from the header names the column, its field and what was found."""
        text = generic_rows(header="Elev-ID;Fornavn;Etternavn;Rolle")
        with pytest.raises(RosterError, match=r"'Brukernavn' \(for username\).*found: 'Elev-ID', 'Fornavn'"):
            read_roster(write(tmp_path, text), generic)

    def test_column_twice_in_header(self, tmp_path, generic):
        """A mapped column that appears twice in the header is ambiguous: a RosterError."""
        with pytest.raises(RosterError, match="'Rolle' appears 2 times"):
            read_roster(write(tmp_path, generic_rows(header=HEADER + ";rolle")), generic)

    def test_header_only_is_an_empty_roster(self, tmp_path, generic):
        """A header without rows reads as an empty roster with the contract columns."""
        roster = read_roster(write(tmp_path, generic_rows()), generic)
        assert roster.frame.empty
        assert tuple(roster.frame.columns) == FRAME_COLUMNS


class TestRejects:
    def test_every_reject_reason_with_its_line(self, tmp_path, generic):
        """Each kind of bad row is rejected with its line, field and a reason naming the column."""
        text = generic_rows(
            ROW_A,  # 2 ok
            ";nokey;A;B;;elev;;",  # 3 missing sync key
            f"{'k' * 65};long;A;B;;elev;;",  # 4 sync key too long
            "k\x01;ctl;A;B;;elev;;",  # 5 control character in sync key
            "5;;A;B;;elev;;",  # 6 missing required username
            "6;u6;A;B;;vaktmester;;",  # 7 unknown role
            "7;u7;A;B;;elev;31.02.2010;",  # 8 bad date
            "8;u8;A;B;;elev",  # 9 wrong number of fields
            "9;dup;A;B;;elev;;",  # 10 identity claimed twice
            "10;dup;A;B;;elev;;",  # 11 identity claimed twice
            "11;u11;A;B;;elev;;",  # 12 sync key twice
            "11;u12;A;B;;elev;;",  # 13 sync key twice
            "12;;A;B;;elev;;",  # 14 empty identity: no claim (but username is required)
            "13;u13;A;B;;elev;;",  # 15 ok
        )
        roster = read_roster(write(tmp_path, text), generic)
        assert reasons(roster) == [
            (3, "sync_key"),
            (4, "sync_key"),
            (5, "sync_key"),
            (6, "username"),
            (7, "role"),
            (8, "birth_date"),
            (9, ROW_FIELD),
            (10, "username"),
            (11, "username"),
            (12, "sync_key"),
            (13, "sync_key"),
            (14, "username"),
        ]
        by_row = {r.row: r for r in roster.rejects}
        assert by_row[3].reason == "missing sync key in column 'Elev-ID'"
        assert "65 characters" in by_row[4].reason
        assert "control characters or invisible marks" in by_row[5].reason
        assert by_row[6].reason == "missing required value in column 'Brukernavn'"
        assert by_row[7].reason == (
            "unknown role 'vaktmester' in column 'Rolle'; known: admin, elev, foresatt, lærer"
        )
        assert by_row[8].reason.startswith("bad date '31.02.2010' in column 'Fødselsdato'")
        assert by_row[9].reason == "line has 6 fields; the header has 8"
        assert by_row[9].sync_key == "8"
        assert by_row[10].reason == "username 'dup' in column 'Brukernavn' is also on line 11"
        assert by_row[13].reason == "sync key '11' in column 'Elev-ID' is also on line 12"
        assert by_row[13].sync_key == "11"
        assert list(roster.frame.index) == ["1", "13"]
        assert {"dup", "u11", "u12", "u7", "u6", "u8"} <= roster.rejected_identities

    def test_row_with_several_problems_is_one_reject(self, tmp_path, generic):
        """All of a row's problems go into one reject, named by the first field."""
        roster = read_roster(write(tmp_path, generic_rows("1;;A;B;;alien;99.99.2010;")), generic)
        (only,) = roster.rejects
        assert only.field == "username"
        assert "unknown role 'alien'" in only.reason
        assert "bad date" in only.reason

    def test_duplicate_key_with_a_bad_row_rejects_every_row(self, tmp_path, generic):
        """A sync key on an otherwise valid row and on a bad row rejects both."""
        roster = read_roster(write(tmp_path, generic_rows(ROW_A, "1;ada2;A;B;;alien;;")), generic)
        assert reasons(roster) == [(2, "sync_key"), (3, "role")]


def _with(mapping: ColumnMapping, *, encoding: str) -> ColumnMapping:
    """The mapping with another encoding."""
    return replace(mapping, encoding=encoding)


_UNQUOTABLE = str.maketrans("", "", '";\r\n')
cell = st.sampled_from(["a", "", " b ", "ø", '"q"', 'x"y', "1\n2", "3\r\n4", "k;m", "=1+2"])


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """CSV text in the generic layout with quoting, blank lines, bad rows and mixed line endings."""
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    # Unquoted files take another parsing path than quoted ones: draw both often.
    quote = st.just(False) if draw(st.booleans()) else st.booleans()
    lines = [HEADER]
    for i in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "short"]))
        if kind == "blank":
            lines.append("")
            continue
        cells = [str(i), *(draw(cell) for _ in range(7))]
        if kind == "row" and draw(st.booleans()):
            cells[1:] = [c.translate(_UNQUOTABLE) for c in cells[1:]]
        if kind == "short":
            cells = cells[:5]
        quoted = [
            '"' + c.replace('"', '""') + '"' if any(ch in c for ch in '";\r\n') or draw(quote) else c
            for c in cells
        ]
        lines.append(";".join(quoted))
    return newline.join(lines) + draw(st.sampled_from(["", newline, newline * 2]))


@given(csv_texts())
@settings(max_examples=40, deadline=None)
def test_fast_parse_agrees_with_the_csv_module(text):
    """The vectorised parse gives the same values, lines and bad rows as the csv module."""
    mapping = load_mapping("generic")
    data = text.encode("utf-8")
    fast, slow = parse(data, ";", mapping, "f.csv"), parse_slow(data, ";", mapping, "f.csv")
    assert _records(fast) == _records(slow)
    assert [(b.line, b.cells) for b in fast.bad if any(c.strip() for c in b.cells)] == [
        (b.line, b.cells) for b in slow.bad if any(c.strip() for c in b.cells)
    ]


def _records(parsed: Parsed) -> list[tuple[int, tuple[str, ...]]]:
    """(line, mapped values) of each record that is not a blank line (the validator drops those)."""
    names = sorted(parsed.columns)
    columns = [parsed.columns[name].to_pylist() for name in names]
    rows = zip(parsed.lines.tolist(), zip(*columns, strict=True), strict=True)
    return [(line, values) for line, values in rows if any(value.strip() for value in values)]


class TestLargeAndHostileInputs:
    """The fast paths (parallel hashing, skipped trimming, sorted keys) give the same answers."""

    def test_whitespace_tables_match_pyarrow(self):
        """The whitespace the trim check looks for is exactly what pyarrow's trim removes."""
        codes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
        trimmed = pc.utf8_trim_whitespace(pa.array(["x" + chr(c) for c in codes])).to_pylist()
        assert {chr(c).encode() for c, t in zip(codes, trimmed, strict=True) if t == "x"} == set(WHITESPACE)

    def test_duplicates_in_a_large_unsorted_file(self, tmp_path, oneroster):
        """Above the parallel threshold, duplicate keys and identities are found wherever they fall."""
        n = 60_000
        order = [(i * 7919) % n for i in range(n)]  # a fixed permutation: unsorted keys
        rows = [f"k{i},active,student,u{i},A,B" for i in order]
        rows[10] = rows[10].split(",")[0] + ",active,student,twin,A,B"
        rows[59_000] = rows[59_000].split(",")[0] + ",active,student,twin,A,B"
        rows[20_000] = rows[30_000].split(",")[0] + ",active,student,other,A,B"
        path = write(
            tmp_path, "sourcedId,status,role,username,givenName,familyName\n" + "\n".join(rows) + "\n"
        )
        roster = read_roster(path, oneroster)
        assert reasons(roster) == [
            (12, "username"),
            (20_002, "sync_key"),
            (30_002, "sync_key"),
            (59_002, "username"),
        ]
        assert len(roster.frame) == n - 4

    def test_sorted_keys_with_an_adjacent_duplicate(self, tmp_path, oneroster):
        """Keys in order are not proof of uniqueness when two neighbours are equal."""
        path = write(
            tmp_path,
            "sourcedId,status,role,username,givenName,familyName\n"
            "a,active,student,u1,A,B\nb,active,student,u2,A,B\nb,active,student,u3,A,B\n",
        )
        assert reasons(read_roster(path, oneroster)) == [(3, "sync_key"), (4, "sync_key")]

    def test_duplicate_reason_names_at_most_five_other_lines(self, tmp_path, generic):
        """A key repeated on many rows names five other lines and counts the rest."""
        roster = read_roster(
            write(tmp_path, generic_rows(*[f"7;u{i};A;B;;elev;;" for i in range(8)])), generic
        )
        assert len(roster.rejects) == 8
        assert (
            roster.rejects[0].reason
            == "sync key '7' in column 'Elev-ID' is also on line 3, 4, 5, 6, 7 and 2 more"
        )
        assert roster.rejects[7].reason.endswith("is also on line 2, 3, 4, 5, 6 and 2 more")

    def test_damaged_utf8_is_not_read_as_windows_1252(self, tmp_path, generic):
        """A UTF-8 file with one bad byte stops with its line instead of turning "å" into "Ã¥"."""
        data = generic_rows(ROW_A, "3;åse;Åse;Bråten;;elev;;").encode() + b"4;x;\xff;y;;elev;;\n"
        path = tmp_path / "roster.csv"
        path.write_bytes(data)
        with pytest.raises(RosterError, match="is not valid utf-8: byte 0xff on line 4"):
            read_roster(path, generic)

    def test_untrimmed_column_keeps_inner_spaces(self, tmp_path, generic):
        """Columns needing no trim are left alone; inner whitespace is never touched."""
        text = generic_rows("1;ada;Ada  Maria;Lovelace;;elev;;", "2;bo; Bo ;Ek;;elev;;")
        frame = read_roster(write(tmp_path, text), generic).frame
        assert list(frame["given_name"]) == ["Ada  Maria", "Bo"]


def test_persons_constant_fills_every_row(tmp_path):
    """A [constants] field of a persons mapping is in every row, value-mapped like a column."""
    mapping = tmp_path / "staff.toml"
    mapping.write_text(
        '[columns]\nsync_key = "ID"\nusername = "U"\n'
        '[constants]\nrole = "staff"\n[rules]\nrequired = ["role"]\n',
        encoding="utf-8",
    )
    roster = read_roster(write(tmp_path, "ID,U\nk1,u1\n,\nk2,u2\n"), load_mapping(mapping))
    assert roster.rejects == ()
    assert tuple(roster.frame.columns) == FRAME_COLUMNS
    assert list(roster.frame["role"]) == ["Staff", "Staff"]
    assert list(roster.frame["row"]) == [2, 4]


class TestSkipUnmapped:
    def test_rows_with_an_unmapped_value_are_skipped_not_rejected(self, tmp_path, generic):
        """rules.skip_unmapped: an unknown role drops the row silently; an empty one is still rejected."""
        mapping = replace(generic, skip_unmapped=frozenset({"role"}))
        path = write(tmp_path, generic_rows(ROW_A, "3;cy;Cy;Ek;;vaktmester;;", "4;di;Di;Ek;;;;", ROW_B))
        roster = read_roster(path, mapping)
        assert list(roster.frame.index) == ["1", "2"]
        assert list(roster.frame["row"]) == [2, 5]
        assert reasons(roster) == [(4, "role")]
        assert reasons(read_roster(path, generic)) == [(3, "role"), (4, "role")]
