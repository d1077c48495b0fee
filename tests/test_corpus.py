"""The bad-input corpus (`tests/corpus/`): every malformed or hostile roster is answered, never a traceback.

Each file has one case: either a RosterError (the file as a whole is unusable) whose message names the
file and what is wrong, or the accepted rows and the rejects, by line number and field. One case runs a
mixed file end to end through `ims-sync run` against the emulator: nothing is sent for a bad row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_FAILED
from sync.emulator import Emulator
from sync.errors import RosterError
from sync.models.kinds import PERSON
from sync.read.mapping import load_mapping
from sync.read.roster import MAX_VALUE_LENGTH, ROW_FIELD, read_roster
from sync.state.store import StateStore
from tests.conftest import PASSWORD, USERNAME

CORPUS = Path(__file__).resolve().parent / "corpus"
ONEROSTER = "oneroster-users"
GENERIC = "generic"
HEADER = "sourcedId,status,role,username,givenName,familyName,email,password"


@dataclass(frozen=True, slots=True)
class Case:
    """One corpus file and what reading it must give."""

    file: str
    mapping: str
    rows: list[int] = field(default_factory=list)  # line numbers of the accepted rows
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (line, field) of each reject
    error: str = ""  # a regex the RosterError must match (then rows and rejects are unused)
    values: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (sync key, field) -> value
    reasons: Mapping[int, str] = field(default_factory=dict)  # line -> text the reject's reason holds


CASES = [
    # --- the file as a whole is unusable: RosterError -------------------------------------------
    Case("empty.csv", ONEROSTER, error="has no header line"),
    Case("bom-only.csv", ONEROSTER, error="has no header line"),
    Case("blank-lines-only.csv", ONEROSTER, error="has no header line"),
    Case("no-header.csv", ONEROSTER, error=r"required column 'sourcedId' .* on line 1; found: 'p1'"),
    Case("missing-required-column.csv", ONEROSTER, error=r"required column 'username' \(for username\)"),
    Case("duplicate-column.csv", ONEROSTER, error="column 'role' appears 2 times in the header"),
    Case("semicolon-for-comma.csv", ONEROSTER, error=r"'sourcedId' .* found: 'sourcedId;status;"),
    Case("excel-sep-line.csv", ONEROSTER, error=r"'sourcedId' .* on line 1; found: 'sep=', ''"),
    Case("binary-garbage.csv", ONEROSTER, error=r"neither UTF-8 nor Windows-1252 text: byte 0x8d on line 3"),
    Case("gzip-renamed.csv", ONEROSTER, error=r"neither UTF-8 nor Windows-1252 text: byte 0x90 on line 1"),
    Case(
        "latin1-undefined-bytes.csv",
        GENERIC,
        error="neither UTF-8 nor Windows-1252 text: byte 0x81 on line 2",
    ),
    Case("utf8-then-invalid.csv", GENERIC, error="not valid utf-8: byte 0xff on line 4"),
    Case(
        "utf16-no-bom.csv",
        GENERIC,
        error=r"header on line 1 holds NUL bytes: UTF-16 text without a byte-order",
    ),
    Case("unterminated-quote.csv", ONEROSTER, error="a quote opened in the record on line 4 is never closed"),
    # --- accepted as they are -------------------------------------------------------------------
    Case("header-only.csv", ONEROSTER),
    Case("only-delimiters.csv", ONEROSTER),
    Case("extra-columns.csv", ONEROSTER, rows=[2, 3]),
    Case("header-case.csv", ONEROSTER, rows=[2, 3]),
    Case("header-not-first-line.csv", ONEROSTER, rows=[4, 5]),
    Case("trailing-blank-lines.csv", ONEROSTER, rows=[2, 3]),
    Case("huge-line-count-blank.csv", ONEROSTER, rows=[5002]),
    Case("quoted-everything.csv", ONEROSTER, rows=[2, 3], values={("p2", "role"): "Staff"}),
    Case("generic-comma.csv", GENERIC, rows=[2, 3]),
    Case("tabs-as-delimiter.csv", GENERIC, rows=[2], values={("1", "given_name"): "Åse"}),
    Case("utf16-bom.csv", GENERIC, rows=[2, 3], values={("2", "family_name"): "Bråten"}),
    Case(
        "windows-1252.csv",
        GENERIC,
        rows=[2, 3, 4],
        values={
            ("1", "given_name"): "Øyvind",
            ("1", "family_name"): "Ærø",
            ("2", "family_name"): "Müller\u2013Lüdenscheidt",
            ("3", "role"): "Staff",
        },
    ),
    Case(
        "stray-whitespace.csv",
        ONEROSTER,
        rows=[2, 3],
        values={
            ("p1", "username"): "u1",
            ("p1", "given_name"): "Ada",
            ("p1", "role"): "Student",
            ("p2", "given_name"): "Bo",  # U+3000 ideographic space trimmed; p2 had NBSPs round its key
        },
    ),
    Case(
        "formulas.csv",
        ONEROSTER,
        rows=[2, 3, 4, 5, 6],
        values={
            ("p1", "given_name"): '=HYPERLINK("http://evil.example","click")',
            ("p2", "family_name"): "+cmd|' /C calc'!A0",
            ("p4", "family_name"): "@SUM(A1:A9)",
            ("p5", "email"): "=1+1",
        },
    ),
    Case("delete-marked.csv", ONEROSTER, rows=[2, 3, 4]),
    # --- bad rows rejected by line and field, good rows read -------------------------------------
    Case(
        "duplicate-keys.csv",
        ONEROSTER,
        rows=[2, 4, 6],
        rejects=[(3, "sync_key"), (5, "sync_key")],
        reasons={3: "sync key 'p9' in column 'sourcedId' is also on line 5"},
    ),
    Case(
        "blank-keys.csv",
        ONEROSTER,
        rows=[2, 5],
        rejects=[(3, "sync_key"), (4, "sync_key"), (6, "sync_key")],
        reasons={4: "missing sync key in column 'sourcedId'"},
    ),
    Case(
        "duplicate-identity.csv",
        ONEROSTER,
        rows=[2, 4, 6],  # line 6 marks "same" for deletion: no claim on the identity
        rejects=[(3, "username"), (5, "username")],
        reasons={5: "username 'same' in column 'username' is also on line 3"},
    ),
    Case(
        "unknown-role.csv",
        ONEROSTER,
        rows=[2, 5],
        rejects=[(3, "role"), (4, "role")],
        reasons={3: "unknown role 'janitor' in column 'role'", 4: "missing required value in column 'role'"},
    ),
    Case(
        "bad-date.csv",
        GENERIC,
        rows=[2, 6, 7],
        rejects=[(3, "birth_date"), (4, "birth_date"), (5, "birth_date")],
        reasons={3: "bad date '31.02.2010' in column 'Fødselsdato'", 5: "bad date 'yesterday'"},
        values={("5", "birth_date"): "2011-03-05", ("6", "birth_date"): ""},
    ),
    Case(
        "nul-bytes.csv",
        ONEROSTER,
        rows=[2, 5],
        rejects=[(3, "given_name"), (4, "sync_key")],
        reasons={3: "NUL byte in column 'givenName'"},
    ),
    Case(
        "control-chars-in-key.csv",
        ONEROSTER,
        rows=[2, 7],
        rejects=[(3, "sync_key"), (4, "sync_key"), (5, "sync_key"), (6, "sync_key")],
        reasons={4: "contains control characters or invisible marks"},
    ),
    Case(
        "control-chars-in-values.csv",
        ONEROSTER,
        rows=[2, 5, 7],  # a tab (line 5) is text XML can carry
        rejects=[(3, "given_name"), (4, "email"), (6, "given_name")],
        reasons={4: "control character in column 'email' (XML cannot carry it)"},
        values={("p4", "family_name"): "Tab\tOK"},
    ),
    Case(
        "nbsp-and-zero-width.csv",
        ONEROSTER,
        rows=[2, 4],
        rejects=[(3, "sync_key")],
        values={("p1", "given_name"): "Ada"},
    ),
    Case(
        "key-65-chars.csv",
        ONEROSTER,
        rows=[2, 4],  # 64 characters, also when they take 128 bytes
        rejects=[(3, "sync_key"), (5, "sync_key")],
        reasons={5: "has 65 characters; IMS ES allows at most 64"},
    ),
    Case(
        "mixed-line-ends.csv",
        ONEROSTER,
        rows=[2, 4, 5],
        rejects=[(3, "role")],
    ),
    Case(
        "quoted-newlines.csv",
        ONEROSTER,
        rows=[2, 5],
        rejects=[(4, "role"), (8, "role")],
        values={("p1", "given_name"): "Ada\r\nMaria", ("p3", "family_name"): "Two\nLines\nHere"},
    ),
    Case(
        "stray-quote.csv",
        ONEROSTER,
        rows=[2, 3, 5],
        rejects=[(4, "role")],
        values={("p2", "given_name"): 'Ada "the first"'},
    ),
    Case(
        "unbalanced-quote.csv",
        ONEROSTER,
        rows=[2, 6],
        rejects=[(3, ROW_FIELD)],
        reasons={3: "the record runs over lines 3-5: an unbalanced quote?"},
    ),
    Case(
        "too-many-fields.csv",
        ONEROSTER,
        rows=[2, 5],
        rejects=[(3, ROW_FIELD), (4, ROW_FIELD)],
        reasons={3: "line has 9 fields; the header has 8", 4: "line has 10 fields"},
    ),
    Case(
        "too-few-fields.csv",
        ONEROSTER,
        rows=[2, 4, 6],
        rejects=[(3, ROW_FIELD), (5, ROW_FIELD)],
        reasons={5: "line has 1 fields; the header has 8"},
    ),
    Case(
        "all-rows-bad.csv",
        ONEROSTER,
        rejects=[(2, "role"), (3, "username"), (4, ROW_FIELD)],
    ),
    Case(
        "mixed-good-and-bad.csv",
        ONEROSTER,
        rows=[2, 13, 14, 16],
        rejects=[
            (3, "sync_key"),
            (4, "sync_key"),
            (5, "role"),
            (6, "given_name"),
            (7, ROW_FIELD),
            (8, "sync_key"),
            (9, "sync_key"),
            (10, "username"),
            (11, "username"),
            (12, "family_name"),
        ],
        values={("p13", "given_name"): "Spaced", ("p13", "email"): "u13@school.example"},
    ),
    # --- groups and memberships ----------------------------------------------------------------
    Case(
        "orgs-hostile.csv",
        "oneroster-orgs",
        rows=[2, 12],
        rejects=[
            (4, "parent"),
            (5, "identifier"),
            (6, "sync_key"),
            (8, "type"),
            (9, ROW_FIELD),
            (10, "identifier"),
            (11, "sync_key"),
        ],
        reasons={4: "group 's1' names itself as parent in column 'parentSourcedId'", 6: "is also on line 11"},
        values={("d1", "name"): "Bergvik\r\nkommune", ("d1", "type"): "Unspecified", ("s7", "parent"): "d1"},
    ),
    Case(
        "enrollments-hostile.csv",
        "oneroster-enrollments",
        rows=[4, 9],  # line 4 marks u1's membership in c1 for deletion: no claim on the pair
        rejects=[(2, "person"), (3, "person"), (5, "role"), (6, "person"), (7, "group"), (8, "group")],
        reasons={
            2: "membership of 'u1' in group 'c1' (columns 'classSourcedId' and 'userSourcedId') is also on",
            6: "NUL byte in column 'userSourcedId'",
            7: "contains control characters or invisible marks",
        },
        values={("e8", "role"): "Instructor", ("e8", "active"): "true", ("e3", "role"): ""},
    ),
    Case(
        "memberships-cp1252.csv",
        "generic-memberships",
        rows=[3],
        rejects=[(2, "person"), (4, "person"), (6, "sync_key"), (7, "role")],
        reasons={6: "has 71 characters; IMS ES allows at most 64 (map a sync_key column)"},
        values={("5a:10002", "role"): "Instructor"},
    ),
]


def test_every_corpus_file_has_a_case():
    """The table covers every file in the corpus, and the corpus holds at least 30 files."""
    files = sorted(path.name for path in CORPUS.glob("*.csv"))
    assert sorted(case.file for case in CASES) == files
    assert len(files) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.file.removesuffix(".csv") for case in CASES])
def test_corpus_file(case: Case):
    """The file is refused with a message naming it, or read into exactly the expected rows and rejects."""
    path = CORPUS / case.file
    mapping = load_mapping(case.mapping)
    if case.error:
        with pytest.raises(RosterError, match=case.error) as caught:
            read_roster(path, mapping)
        assert str(path) in str(caught.value)
        return
    roster = read_roster(path, mapping)
    assert list(roster.frame["row"]) == case.rows
    assert [(r.row, r.field) for r in roster.rejects] == case.rejects
    for reject in roster.rejects:
        assert reject.file == str(path)
        assert reject.reason
        assert reject.sync_key.isprintable()
    by_row = {r.row: r for r in roster.rejects}
    for line, text in case.reasons.items():
        assert text in by_row[line].reason
    for (key, name), value in case.values.items():
        assert roster.frame.loc[key, name] == value
    for value in roster.frame.index:
        assert value == value.strip()
        assert "\x00" not in value


class TestEnormousField:
    """A runaway field (generated here, not committed) is rejected; its neighbours are read."""

    @pytest.mark.parametrize("quote", ["", '"'], ids=["bare", "quoted"])
    def test_enormous_field_rejects_its_row_only(self, tmp_path: Path, quote: str):
        """An 8 MiB given name, longer than a parse block, rejects only its row, by line and field."""
        path = tmp_path / "users.csv"
        huge = quote + "x" * (8 << 20) + quote
        path.write_text(
            f"{HEADER}\np1,active,student,u1,A,B,,\np2,active,student,u2,{huge},B,,\np3,active,student,u3,A,B,,\n",
            encoding="utf-8",
        )
        roster = read_roster(path, load_mapping(ONEROSTER))
        assert list(roster.frame.index) == ["p1", "p3"]
        (reject,) = roster.rejects
        assert (reject.row, reject.field) == (3, "given_name")
        assert reject.reason == (
            f"value in column 'givenName' has {8 << 20} characters; at most {MAX_VALUE_LENGTH} are allowed"
        )

    def test_longest_allowed_value_is_accepted(self, tmp_path: Path):
        """A value of exactly the limit (in characters, not bytes) is read; one more is rejected."""
        path = tmp_path / "users.csv"
        path.write_text(
            f"{HEADER}\np1,active,student,u1,{'ø' * MAX_VALUE_LENGTH},B,,\n"
            f"p2,active,student,u2,{'ø' * (MAX_VALUE_LENGTH + 1)},B,,\n",
            encoding="utf-8",
        )
        roster = read_roster(path, load_mapping(ONEROSTER))
        assert list(roster.frame.index) == ["p1"]
        assert [(r.row, r.field) for r in roster.rejects] == [(3, "given_name")]


def test_bad_rows_are_never_sent(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """`ims-sync run` on the mixed file creates the good rows only, reports every bad one and exits 1."""
    monkeypatch.setenv("IMS_ES_USERNAME", USERNAME)
    monkeypatch.setenv("IMS_ES_PASSWORD", PASSWORD)
    state = tmp_path / "state"
    roster = CORPUS / "mixed-good-and-bad.csv"
    code = main(
        [
            "--log-format",
            "json",
            "run",
            str(roster),
            "--mapping",
            ONEROSTER,
            "--state",
            str(state),
            "--endpoint",
            emulator.pms_url,
            "--ca-bundle",
            str(emulator.ca_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_FAILED, err
    good = {"p1", "p12", "p13", "p14"}
    assert set(emulator.persons()) == good
    assert {event.sync_key for event in emulator.history()} == good
    assert emulator.persons()["p12"].given_name == '=HYPERLINK("http://evil.example","x")'
    assert emulator.persons()["p13"].given_name == "Spaced"
    for line in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12):
        assert f"rejected: {roster}:{line} [" in err
    with StateStore.open(state, exclusive=False) as store:
        assert set(store.load(PERSON).index) == good
