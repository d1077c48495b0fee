"""Operator experience: terminal and JSON output, `mapping init`/`list`, help, run reports, and the docs."""

from __future__ import annotations

import codecs
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

from sync import __version__
from sync.cli.app import main
from sync.cli.clidoc import BEGIN, END, commands, options_reference
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sync.emulator import Emulator
from sync.read.mapping import load_mapping
from tests.checks import CREDENTIALS, person_row, run_args, set_credentials, write_roster
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SAMPLES = ROOT / "samples"


@pytest.fixture(name="env")
def fixture_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's credentials in the environment, as an operator would set them."""
    set_credentials(monkeypatch)


def in_terminal(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    """Run `ims-sync args` in a child process whose stdout and stderr are a pseudo-terminal."""
    leader, follower = pty.openpty()
    child_env = {**os.environ, **(env or {}), "COLUMNS": "120", "TERM": "xterm"}
    child_env.pop("IMS_SYNC_LOG_FORMAT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "sync", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=child_env,
        cwd=ROOT,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, b"".join(chunks).decode("utf-8", "replace")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` parsed as JSON (fails the test on a line that is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TestTerminal:
    """On a terminal: rich summary tables; no JSON."""

    def test_plan_on_a_terminal_shows_a_summary_table(self, tmp_path: Path) -> None:
        """`plan` on a TTY prints the Markdown report and a rich table of counts by kind, and no JSON."""
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 8)])
        code, screen = in_terminal(
            ["plan", str(roster), "-m", "oneroster-users", "--state", str(tmp_path / "s")]
        )
        assert code == EXIT_OK, screen
        assert "# Dry run: planned changes" in screen  # the Markdown report
        assert "Dry run" in screen
        assert re.search(r"│ create\s+│\s+7 │", screen), screen  # a rich table row
        assert not any(line.lstrip().startswith("{") for line in screen.splitlines())

    def test_run_on_a_terminal_shows_outcomes_by_operation(self, emulator: Emulator, tmp_path: Path) -> None:
        """`run` on a TTY ends with a table of operations by outcome; problems are listed in plain text."""
        rows = [person_row(n) for n in range(1, 6)] + [person_row(6, role="wizard")]
        roster = write_roster(tmp_path / "users.csv", rows)
        code, screen = in_terminal(run_args(emulator, roster, tmp_path / "s"), env=CREDENTIALS)
        assert code == EXIT_FAILED, screen  # a rejected row
        assert re.search(r"│ Create\s+│\s+5 │\s+5 │\s+0 │\s+0 │\s+0 │", screen), screen
        assert "rejected: " in screen
        assert "wizard" in screen
        assert "5 confirmed" in screen
        assert PASSWORD not in screen
        assert not any(line.lstrip().startswith("{") for line in screen.splitlines())


class TestJsonLogs:
    """Without a terminal or with --log-format json: structlog JSON lines only."""

    def test_json_run_writes_only_json_lines_to_stderr(
        self, emulator: Emulator, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every stderr line is JSON: run_start, one ims_request per request, rejects, run_end."""
        rows = [person_row(n) for n in range(1, 5)] + [person_row(5, role="wizard")]
        roster = write_roster(tmp_path / "users.csv", rows)
        args = run_args(emulator, roster, tmp_path / "s", "--report", str(tmp_path / "run.md"))
        assert main(["--log-format", "json", *args]) == EXIT_FAILED
        out, err = capsys.readouterr()
        events = json_lines(err)
        names = [e["event"] for e in events]
        assert names.count("ims_request") == 4
        assert names.index("run_start") < names.index("ims_request") < names.index("run_end")
        rejected = next(e for e in events if e["event"] == "row_rejected")
        assert rejected["where"].endswith("users.csv:6")
        assert rejected["field"] == "role"
        assert any(e["event"] == "report_written" for e in events)
        assert next(e for e in events if e["event"] == "run_end")["confirmed"] == 4
        assert out.startswith("run ")  # the one-line result stays on stdout
        assert PASSWORD not in out + err

    def test_json_failure_is_an_exit_event(
        self, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A command that fails under JSON logging says why in an `exit` event with the exit code."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        code = main(["--log-format", "json", "validate", str(roster), "-m", str(tmp_path / "missing.toml")])
        assert code == EXIT_USAGE
        events = json_lines(capsys.readouterr().err)
        assert events[-1]["event"] == "exit"
        assert events[-1]["exit_code"] == EXIT_USAGE
        assert "is neither a file nor a built-in" in events[-1]["message"]

    def test_log_file_gets_events_and_stderr_only_the_reason(
        self, emulator: Emulator, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--log-file appends JSON events to the file; stderr stays empty on success, one line on failure."""
        log = tmp_path / "sync.log"
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        assert main(["--log-file", str(log), *run_args(emulator, roster, tmp_path / "s")]) == EXIT_OK
        out, err = capsys.readouterr()
        assert err == ""
        assert "3 confirmed" in out
        first = json_lines(log.read_text(encoding="utf-8"))
        assert [e["event"] for e in first].count("ims_request") == 3
        code = main(["--log-file", str(log), "reconcile", "--state", str(tmp_path / "nowhere")])
        assert code == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("ims-sync: no state in")
        events = json_lines(log.read_text(encoding="utf-8"))
        assert len(events) == len(first) + 1
        assert events[-1]["event"] == "exit"

    def test_config_file_sets_the_log_format(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`log_format` and `log_file` in the config file's [sync] table are honoured."""
        log = tmp_path / "from-config.log"
        config = tmp_path / "config.toml"
        config.write_text(f'[sync]\nlog_format = "json"\nlog_file = "{log}"\n', encoding="utf-8")
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        assert (
            main(["--config", str(config), "plan", str(roster), "-m", "oneroster-users", "--state", "x"]) == 0
        )
        capsys.readouterr()
        assert [e["event"] for e in json_lines(log.read_text(encoding="utf-8"))] == ["plan"]


# Rosters `mapping init` should read without help: (file name, bytes, expected guesses, persons).
_SWEDISH = "\ufeffAnvändarnamn\tFörnamn\tEfternamn\tE-post\tRoll\tFödelsedatum\tPersonID\r\n" + "".join(
    f"anv{n}\tÅsa{n}\tÖberg\tanv{n}@skola.se\t{'elev' if n % 3 else 'lärare'}\t2010-01-{n:02d}\tS{n}\r\n"
    for n in range(1, 10)
)
_NYNORSK = "Elev-ID;Brukarnamn;Fornavn;Etternamn;Rolle;Fødselsdato\n" + "".join(
    f"{n};bn{n};Kari{n};Ås;{'Elev' if n % 2 else 'Foresatt'};0{n}.02.2011\n" for n in range(1, 8)
)
_ROSTERS = {
    "oneroster": ((SAMPLES / "oneroster" / "users.csv").read_bytes(), ",", "sourcedId"),
    "generic-cp1252": ((SAMPLES / "generic" / "students.csv").read_bytes(), ";", "Elev-ID"),
    "swedish-bom-tabs": (codecs.BOM_UTF8 + _SWEDISH.removeprefix("\ufeff").encode("utf-8"), "\t", "PersonID"),
    "nynorsk-windows-1252": (_NYNORSK.encode("cp1252"), ";", "Elev-ID"),
}


class TestMappingInit:
    """`mapping init` writes a starter mapping that loads and validates the CSV it came from."""

    @pytest.mark.parametrize("name", sorted(_ROSTERS))
    def test_starter_mapping_loads_and_validates_its_roster(
        self, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The guess finds the sync key, delimiter and username identity; validate accepts every row."""
        data, delimiter, sync_column = _ROSTERS[name]
        roster = tmp_path / "export.csv"
        roster.write_bytes(data)
        target = tmp_path / "mine.toml"
        assert main(["mapping", "init", str(roster), "-o", str(target)]) == EXIT_OK
        assert "review its TODOs" in capsys.readouterr().err
        mapping = load_mapping(target)
        assert mapping.delimiter == delimiter
        assert mapping.columns["sync_key"] == sync_column
        assert mapping.identity == "username"
        assert {"given_name", "family_name", "role"} <= set(mapping.columns)
        assert main(["validate", str(roster), "-m", str(target)]) == EXIT_OK
        assert " 0 rejected rows" in capsys.readouterr().out

    @pytest.mark.parametrize("oneroster", [True, False])
    def test_a_folder_is_pointed_at_a_set_mapping(
        self, oneroster: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A folder is no CSV: a OneRoster one is pointed at `--mapping oneroster`, any other at its files."""
        names = ("users.csv", "orgs.csv", "classes.csv") if oneroster else ("export.csv",)
        for name in names:
            (tmp_path / name).write_text("sourcedId\n", encoding="utf-8")
        assert main(["mapping", "init", str(tmp_path)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "is a folder and mapping init reads one CSV file" in err
        assert ("--mapping oneroster" in err) is oneroster

    def test_role_values_are_listed_with_todos(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Known role words are mapped with a TODO; an unknown one stays commented out and its rows reject."""
        roster = tmp_path / "export.csv"
        roster.write_bytes(_NYNORSK.replace(";Elev;", ";Trollmann;", 1).encode("cp1252"))
        assert main(["mapping", "init", str(roster)]) == EXIT_OK
        text = capsys.readouterr().out
        assert re.search(r'^Elev = "Student"  # TODO: check \(3 rows\)$', text, re.M), text
        assert re.search(r'^Foresatt = "Carer"  # TODO: check \(3 rows\)$', text, re.M), text
        assert re.search(r'^# Trollmann = "Student"  # TODO: which type\? \(1 row rejected', text, re.M), text
        target = tmp_path / "m.toml"
        target.write_text(text, encoding="utf-8")
        assert load_mapping(target).value_maps["role"] == {"elev": "Student", "foresatt": "Carer"}
        assert main(["validate", str(roster), "-m", str(target)]) == EXIT_FAILED
        assert "unknown role 'Trollmann'" in capsys.readouterr().out

    def test_fallbacks_without_username_or_id(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No id column: the first column is the sync key with a TODO; no username: e-mail is the identity."""
        roster = tmp_path / "odd.csv"
        roster.write_text("Kode,Mail,Fornavn\nA1,a@x.no,Ola\nA2,b@x.no,\n", encoding="utf-8")
        assert main(["mapping", "init", str(roster)]) == EXIT_OK
        text = capsys.readouterr().out
        assert 'sync_key   = "Kode"  # TODO' in text
        assert "given_name is empty in 1 row" in text
        target = tmp_path / "m.toml"
        target.write_text(text, encoding="utf-8")
        mapping = load_mapping(target)
        assert (mapping.identity, mapping.encoding, mapping.required) == (
            "email",
            "auto",
            frozenset({"sync_key"}),
        )

    def test_existing_output_is_kept_unless_forced(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An existing --output file is not overwritten without --force; a missing roster is exit 2."""
        roster = tmp_path / "export.csv"
        roster.write_bytes(_NYNORSK.encode("cp1252"))
        target = tmp_path / "m.toml"
        target.write_text("# mine\n", encoding="utf-8")
        assert main(["mapping", "init", str(roster), "-o", str(target)]) == EXIT_USAGE
        assert target.read_text(encoding="utf-8") == "# mine\n"
        assert main(["mapping", "init", str(roster), "-o", str(target), "--force"]) == EXIT_OK
        assert "[values.role]" in target.read_text(encoding="utf-8")
        assert main(["mapping", "init", str(tmp_path / "none.csv")]) == EXIT_USAGE
        assert "does not exist" in capsys.readouterr().err

    def test_mapping_list_and_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`mapping list` names the built-ins with their descriptions; `--version` prints the version."""
        assert main(["mapping", "list"]) == EXIT_OK
        listing = capsys.readouterr().out
        assert re.search(r"^oneroster-users\s+OneRoster 1\.1 users\.csv", listing, re.M), listing
        assert re.search(r"^generic\s+", listing, re.M)
        assert main(["--version"]) == EXIT_OK
        assert capsys.readouterr().out.strip() == f"ims-sync, version {__version__}"


def _all_commands() -> list[str]:
    return [name for name, _ in commands()]


class TestHelp:
    """Every command explains itself."""

    @pytest.mark.parametrize("name", _all_commands())
    def test_every_command_has_help_with_an_example(
        self, name: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--help` of every command and group exits 0 and shows an example that uses the command."""
        words = name.split()[1:]
        assert main([*words, "--help"]) == EXIT_OK
        text = capsys.readouterr().out
        assert "Example" in text
        example = text[text.index("Example") :]
        assert all(word in example for word in ["ims-sync", *words]), example


class TestRunReport:
    """The run report lists what failed, stayed unconfirmed or was skipped, each with a reason."""

    def test_report_lists_every_problem_with_a_reason(
        self,
        emulator_factory: Callable[..., Emulator],
        tmp_path: Path,
        env: None,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A run cut short by a dead service reports unconfirmed and skipped work, and unsent deletions."""
        state = tmp_path / "s"
        healthy = emulator_factory()
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 13)])
        assert main(["--log-format", "json", *run_args(healthy, roster, state)]) == EXIT_OK
        dead = emulator_factory(error_rate=1.0, seed=2)
        changed = [person_row(n, givenName="New") for n in range(1, 11)] + [
            person_row(n) for n in range(13, 40)
        ]
        write_roster(roster, changed)  # 10 updates, 27 creates, 2 deletion candidates (deletes off)
        report = tmp_path / "run.md"
        args = run_args(dead, roster, state, "--circuit-threshold", "3", "--concurrency", "1")
        code = main(["--log-format", "json", *args, "--accept-changes", "10", "--report", str(report)])
        assert code == 4
        capsys.readouterr()
        text = report.read_text(encoding="utf-8")
        problems = [line for line in _section(text, "Not confirmed") if line.startswith("| ")][2:]
        assert len(problems) == 37
        outcomes = {line.split("|")[1].strip() for line in problems}
        assert outcomes == {"unconfirmed", "skipped"}
        for line in problems:
            error = line.split("|")[7].strip()
            assert error, line  # every problem says why
        assert any("not sent: the run stopped before reaching it" in line for line in problems)
        assert any("HTTP 503" in line for line in problems)
        unsent = [line for line in _section(text, "Deletion candidates not sent") if line.startswith("| ")][
            2:
        ]
        assert sorted(line.split("|")[1].strip() for line in unsent) == ["p0011", "p0012"]
        assert "The run stopped early" in text

    @pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Chromium not installed: browser check skipped"
    )
    def test_html_run_report_renders_in_chromium(
        self, emulator: Emulator, tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Real headless Chromium runs the run report's script: rows render, and a rejected row shows."""
        roster = write_roster(
            tmp_path / "users.csv", [person_row(1), person_row(2), person_row(3, role="wizard")]
        )
        report = tmp_path / "run.html"
        args = run_args(emulator, roster, tmp_path / "s", "--report", str(report))
        assert main(["--log-format", "json", *args]) == EXIT_FAILED
        capsys.readouterr()
        completed = subprocess.run(
            [
                str(shutil.which("chromium")),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                report.as_uri() + "#q=p0002",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        dom = completed.stdout
        assert 'data-ready="1"' in dom, "the report's script did not run under its CSP"
        confirmed = dom[dom.index('id="t-confirmed"') : dom.index("</table>", dom.index('id="t-confirmed"'))]
        rows = re.findall(r"<tr( hidden=\"\")?>", confirmed.split("<tbody>")[1])
        assert len(rows) == 2
        assert sum(1 for hidden in rows if hidden) == 1  # the filter #q=p0002 hides p0001
        assert "unknown role 'wizard'" in dom


def _section(markdown: str, heading: str) -> list[str]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {heading}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


# A distinctive, fixed fragment of every message the tool prints when it stops or rejects a row.
# The test below checks each is in docs/troubleshooting.md, and still in the code.
MESSAGES = (
    "writes HTML pages: add",
    "writes a folder of pages: name it with",
    "must name a folder",
    "is neither a file nor a built-in",
    "not valid TOML",
    "not UTF-8 text (TOML files are UTF-8)",
    "unknown section",
    "unknown canonical field",
    "names an empty column",
    "missing: every mapping must name the sync key column",
    "is not an IMS ES institutionRoleType",
    "is given twice (keys ignore case) with different values",
    "is not a strptime format with day, month and year",
    "unknown encoding",
    "cannot be the password",
    "holds a password but can be read by others",
    "unknown table(s)",
    "unknown key(s)",
    "it takes only username and password",
    "must be a table",
    "is not UTF-8",
    "username and password must be strings",
    "no IMS ES credentials",
    "exceeds the in-flight budget",
    "nothing has run there yet, so there is nothing to verify",
    "repeat with --seed",
    "objects created by hand (extra) are not searched in a sample",
    "persons created by hand not searched: readAllPersons answered",
    "the next run puts them right (extras are only reported)",
    "emulator-admin needs --state FILE",
    "failures in a row: ",
    "exists already: edit it",
    "in the emulator's state",
    "a new membership needs",
    "must be an https:// URL",
    "must not carry credentials",
    "the CA bundle",
    "cannot write",
    "cannot open log file",
    "choose another --output or add --force",
    "has no header line",
    "appears",
    "is missing from the",
    "set [csv] encoding in the mapping",
    "missing sync key in column",
    "IMS ES allows at most",
    "contains control characters",
    "is also on line",
    "missing required value in column",
    "bad date",
    "NUL byte in column",
    "fields; the header has",
    "who has a rejected row: fix that row first",
    "whose sync keys left the roster",
    "over the safety limit of",
    "these are held, the rest is",
    "over the school limit of",
    "is not a limit: give a count (50), a share (5%) or off",
    "is not an operation type",
    "expected KEY=VALUE, e.g. person.delete=50 or membership.update=5%",
    "[limits] must be a table, e.g. [limits] on its own line",
    "so nothing is removed; add",
    "to send exactly this plan, add --approve",
    "the plan made now is not the one reviewed",
    "the snapshot moved on",
    "the mapping changed",
    "the planned operations differ",
    "no fingerprint in it",
    "not a JSON plan",
    "is not this plan's fingerprint",
    "a truncated export would read as everybody leaving",
    "no data rows; plan and run refuse it",
    "is in use by another ims-es-sync run",
    "nothing has run there yet",
    "no run recorded in",
    "cannot create state directory",
    "is not a directory",
    "is the file system local?",
    "written by a newer ims-es-sync",
    "the service refused the credentials",
    "parent portal is disabled on this site",
    "TLS certificate did not verify",
    "IMS ES unreachable",
    "without a SOAP answer",
    "unexpected redirect",
    "the service refused the request",
    "the answer is not a SOAP message",
    "not well-formed XML",
    "does not match the WSDL",
    "declares a DTD or entities; refused",
    "has no syncResponseHeaderInfo",
    "is not a date (write e.g.",
    "is before from",
    "expected operation types among",
    "expected a list of operation types among",
    "pause must be [[pause]] tables",
    "it takes from, to and allow",
    "--deletes is off, so no deletions are sent",
    "operations held",
    "does not answer our messageIdentifier",
    "statusInfo items for",
    "the request does not fit the schema",
    "not sent: the run stopped before reaching it",
    "(connect + read timeout); abandoned",
    "exceeds the size limit of",
    "max run time reached",
    "is not a duration",
    # groups and memberships: references between files, dependants, set mappings, endpoints
    "has a rejected row in",
    "is marked for deletion in",
    "the parent chain loops",
    "no group file is read",
    "was not confirmed in this run",
    "refuses to delete a group with children",
    "could not verify by reading it back",
    "is a set mapping: give the folder holding",
    "give --gms-endpoint and --mms-endpoint",
    "[sync] deletes = ",
    "not adopted:",
    "mapping init reads one CSV file",
    # persons from several files ([[persons.join]]) and the links between persons
    "must be an array of tables ([[persons.join]])",
    "a joined file adds fields; identity, password and deletions",
    "the persons file has one row per person: no rules.many_rows",
    "which no persons mapping maps",
    "only a persons mapping (of a [[persons.join]] file) has it",
    "marks a person's main row: it needs rules.many_rows = true",
    "must list non-empty values such as 'true'",
    "is not an IMS ES gender",
    "has several rows per person (rules.many_rows)",
    "is not in the persons file",
    "in any file (column",
    "is not a person in",
    "cannot be told parent from child",
    "is the person itself",
    # the state directory's faults, and `snapshot check`
    "make the state directory and its files writable by the user that runs ims-sync",
    "the disk is full: free space on it",
    "restore the state directory from a backup, or start a new one",
    "is missing, but its write-ahead log",
    "vanished while in use",
    "its group's transaction failed",
    "stopped: the state directory failed; nothing more was sent",
    "not recorded: the state directory failed",
    "no state database in",
    "brings it up to date; then check it again",
    "the snapshot was changed outside ims-es-sync",
    "the snapshot names an object it does not hold",
    "the journal holds answers ims-es-sync does not write",
    "is not a confirmed request in the journal",
    "its content hash does not match its columns",
)


class TestDocs:
    """The operator docs exist, cover every option and every message, and stay true to the code."""

    def test_every_option_of_every_command_is_documented(self) -> None:
        """Each option of each command appears in configuration.md, whose generated block is current."""
        doc = (DOCS / "configuration.md").read_text(encoding="utf-8")
        missing = [
            f"{name} {flag}"
            for name, command in commands()
            for param in command.params
            if isinstance(param, click.Option)
            for flag in param.opts
            if flag.startswith("--") and f"`{flag}`" not in doc
        ]
        assert not missing, (
            f"undocumented options {missing}: run `python -m sync.cli.clidoc docs/configuration.md`"
        )
        generated = doc[doc.index(BEGIN) + len(BEGIN) : doc.index(END)].strip()
        assert generated == options_reference().strip(), (
            "run `python -m sync.cli.clidoc docs/configuration.md`"
        )

    def test_every_message_is_in_troubleshooting(self) -> None:
        """Each listed message fragment appears in troubleshooting.md and still in the code under sync/."""
        doc = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
        source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "sync").rglob("*.py"))
        assert [m for m in MESSAGES if m not in doc] == []
        assert [m for m in MESSAGES if m not in source] == []

    def test_operator_docs_cover_what_a_scheduler_needs(self) -> None:
        """scheduling.md has a systemd timer with OnFailure=, cron, log rotation and every exit code."""
        scheduling = (DOCS / "scheduling.md").read_text(encoding="utf-8")
        for needle in (
            "OnCalendar=",
            "OnFailure=",
            "Persistent=true",
            "logrotate",
            "journald",
            "MAILTO=",
            "lock",
        ):
            assert needle in scheduling, needle
        for code in range(5):
            assert f"`{code}`" in scheduling, code
        first_night = (DOCS / "first-night.md").read_text(encoding="utf-8")
        steps = [
            "mapping init",
            "ims-sync validate",
            "ims-sync plan",
            "Review the report",
            "ims-sync run",
            "Schedule",
        ]
        positions = [first_night.index(step) for step in steps]
        assert positions == sorted(positions)
        architecture = (DOCS / "architecture.md").read_text(encoding="utf-8")
        assert "Confirmed ⇒ journalled ⇒ snapshot" in architecture


_HEAVY_IMPORTS = """
import sys
from sync.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted({name.split(".")[0] for name in sys.modules} & {"numpy", "pandas", "pyarrow"}))
"""


@pytest.mark.parametrize("argv", [["--help"], ["plan", "--help"], ["mapping", "list"]])
def test_help_and_listings_import_no_data_libraries(argv: list[str]) -> None:
    """`--help`, a command's help and `mapping list` start without numpy, pandas or pyarrow: the
    pipeline's stages import them when a command runs them (the plan's fingerprint once did at
    start-up, 0.1 s on every command)."""
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run(
        [sys.executable, "-c", _HEAVY_IMPORTS, *argv],
        env=os.environ | {"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip().splitlines()[-1] == "[]"
