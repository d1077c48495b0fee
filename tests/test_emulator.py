"""The IMS ES emulator over real HTTPS: security, protocol checks, itslearning's semantics, faults, state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import requests
from click.testing import CliRunner
from lxml import etree
from structlog.testing import capture_logs

from sync.emulator import Emulator, EmulatorConfig, Exchange
from sync.emulator.command import emulator as emulator_command
from sync.errors import ConfigError
from sync.ims.namespaces import BIND, COMMON, PMS_DATA, PMS_MESS, SOAP_ENV, WSSE, WSU
from sync.ims.xsd import safe_parser
from sync.models import Person, Status
from tests.conftest import PASSWORD, USERNAME, ExchangeLog
from tests.itslearning import EXAMPLES_DIR, requires_itslearning

PLAIN = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
NS = {"s": SOAP_ENV, "m": PMS_MESS, "d": PMS_DATA, "c": COMMON, "h": BIND}
ACTION = "http://www.imsglobal.org/soap/pms/"
PERSON_PASSWORD = "Pupil-Secret-42"


# --- building requests ----------------------------------------------------------------------


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def envelope(
    body: str,
    *,
    message_id: str | None = "msg-1",
    username: str = USERNAME,
    password: str = PASSWORD,
    security: bool = True,
    expires: datetime | None = None,
) -> bytes:
    """A SOAP 1.1 request as WCF's UserName client sends it."""
    now = datetime.now(UTC)
    sec = ""
    if security:
        sec = (
            "<wsse:Security s:mustUnderstand='1'><wsu:Timestamp wsu:Id='TS-1'>"
            f"<wsu:Created>{_instant(now)}</wsu:Created>"
            f"<wsu:Expires>{_instant(expires or now + timedelta(minutes=5))}</wsu:Expires></wsu:Timestamp>"
            f"<wsse:UsernameToken><wsse:Username>{escape(username)}</wsse:Username>"
            f"<wsse:Password Type='{PLAIN}'>{escape(password)}</wsse:Password></wsse:UsernameToken>"
            "</wsse:Security>"
        )
    info = ""
    if message_id is not None:
        info = (
            f"<h:syncRequestHeaderInfo><h:messageIdentifier>{message_id}</h:messageIdentifier>"
            "</h:syncRequestHeaderInfo>"
        )
    return (
        f"<s:Envelope xmlns:s='{SOAP_ENV}' xmlns:m='{PMS_MESS}' xmlns:d='{PMS_DATA}' xmlns:c='{COMMON}' "
        f"xmlns:h='{BIND}' xmlns:wsse='{WSSE}' xmlns:wsu='{WSU}'>"
        f"<s:Header>{sec}{info}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def person_xml(
    *,
    given: str = "",
    family: str = "",
    email: str = "",
    username: str = "",
    password: str = "",
    role: str = "",
    birth_date: str = "",
    phone: str = "",
    mobile: str = "",
    format_name: bool = True,
) -> str:
    """A `person` element in the contract's shape (written independently of the emulator's code)."""
    parts = []
    if format_name:
        full = f"{given} {family}".strip()
        parts.append(f"<d:formatName>{full}</d:formatName>" if full else "<d:formatName xsi:nil='true'/>")
    names = "".join(
        f"<d:partName><d:namePartType>{kind}</d:namePartType><d:namePartValue>{value}</d:namePartValue></d:partName>"
        for kind, value in (("First", given), ("Last", family))
        if value
    )
    if names:
        parts.append(f"<d:name>{names}</d:name>")
    if email:
        parts.append(f"<c:email>{email}</c:email>")
    if username or password:
        user = f"<c:userIdValue>{username}</c:userIdValue>" if username else ""
        user += f"<c:passWord>{password}</c:passWord>" if password else ""
        parts.append(f"<d:userId>{user}</d:userId>")
    if birth_date:
        parts.append(
            f"<d:demographics><d:gender>Gender</d:gender><d:bday>{birth_date}</d:bday></d:demographics>"
        )
    if role:
        parts.append(
            f"<d:institutionRole><d:institutionRoleType>{role}</d:institutionRoleType>"
            "<d:primaryRoleType>true</d:primaryRoleType></d:institutionRole>"
        )
    for kind, value in (("Voice", phone), ("Mobile", mobile)):
        if value:
            parts.append(f"<d:tel><d:telType>{kind}</d:telType><d:telValue>{value}</d:telValue></d:tel>")
    xsi = "xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'"
    return f"<m:person {xsi}>{''.join(parts)}</m:person>"


def sourced(key: str, name: str = "sourcedId") -> str:
    """A `sourcedId`-like element holding one identifier."""
    return f"<m:{name}><c:identifier>{key}</c:identifier></m:{name}>"


def _status(element: etree._Element) -> Status:
    return Status(
        code_major=element.findtext("h:codeMajor", namespaces=NS) or "",
        severity=element.findtext("h:severity", namespaces=NS) or "",
        code_minor=tuple(
            (
                field.findtext("h:codeMinorName", namespaces=NS) or "",
                field.findtext("h:codeMinorValue", namespaces=NS) or "",
            )
            for field in element.iterfind("h:codeMinor/h:codeMinorField", namespaces=NS)
        ),
        message_id_ref=element.findtext("h:messageIdRef", namespaces=NS),
        description=element.findtext("h:description/c:text", namespaces=NS) or "",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A parsed answer: HTTP status, the header status(es), the body element or the fault."""

    http: int
    root: etree._Element
    status: Status | None
    items: tuple[Status, ...] | None
    body: etree._Element | None

    @property
    def fault(self) -> str:
        """The faultcode's text, or "" when the answer is no fault."""
        return self.root.findtext("s:Body/s:Fault/faultcode", namespaces=NS) or ""


def parse_answer(response: requests.Response) -> Answer:
    """Parse an emulator's HTTP answer."""
    root = etree.fromstring(response.content, safe_parser())
    info = root.find("s:Header/h:syncResponseHeaderInfo", namespaces=NS)
    status_el = info.find("h:statusInfo", namespaces=NS) if info is not None else None
    items_el = info.find("h:statusInfoSet", namespaces=NS) if info is not None else None
    body = root.find("s:Body", namespaces=NS)
    return Answer(
        http=response.status_code,
        root=root,
        status=_status(status_el) if status_el is not None else None,
        items=tuple(_status(el) for el in items_el.iterfind("h:statusInfo", namespaces=NS))
        if items_el is not None
        else None,
        body=body[0] if body is not None and len(body) else None,
    )


def post(emulator: Emulator, raw: bytes, action: str, *, url: str | None = None) -> requests.Response:
    """POST raw bytes with a quoted SOAPAction, trusting the emulator's certificate."""
    return requests.post(
        url or emulator.pms_url,
        data=raw,
        headers={"SOAPAction": f'"{action}"', "Content-Type": "text/xml; charset=utf-8"},
        verify=str(emulator.ca_path),
        timeout=10,
    )


def call(emulator: Emulator, operation: str, inner: str, **options: Any) -> Answer:
    """Send `<operation>Request` holding `inner` and parse the answer."""
    url = emulator.extended_url if operation == "readAllPersons" else emulator.pms_url
    raw = envelope(f"<m:{operation}Request>{inner}</m:{operation}Request>", **options)
    return parse_answer(post(emulator, raw, ACTION + operation, url=url))


def create(emulator: Emulator, key: str, **fields: Any) -> Answer:
    """createPerson `key` with the given person fields."""
    return call(emulator, "createPerson", sourced(key) + person_xml(**fields))


def ok(answer: Answer) -> Status:
    """The answer's status, asserting it is a success."""
    assert answer.status is not None, answer.fault
    assert answer.status.code_major == "success", answer.status
    return answer.status


def failed(answer: Answer, code: str) -> Status:
    """The answer's status, asserting failure/error with codeMinor `code`."""
    status = answer.status
    assert status is not None, answer.fault
    assert (status.code_major, status.severity) == ("failure", "error"), status
    assert status.code_minor[0][0] == code, status
    return status


def _example(name: str) -> bytes:
    future = _instant(datetime.now(UTC) + timedelta(minutes=5)).encode()
    return (
        (EXAMPLES_DIR / name)
        .read_bytes()
        .replace(b"username7075", USERNAME.encode())
        .replace(b"9nQa8v", PASSWORD.encode())
        # The seed's Timestamp expired in 2011; the emulator refuses expired Timestamps, as WCF does.
        .replace(b"2011-01-27T10:00:33.000Z", future)
    )


# --- the seed example and security ----------------------------------------------------------


@requires_itslearning
class TestSeedExample:
    """itslearning's documented changePersonIdentifier exchange."""

    def test_seed_request_is_answered_like_the_documented_response(self, emulator: Emulator) -> None:
        """The seed request (our credentials) moves 123 to 876: messageIdRef 1234567890, an empty body."""
        ok(create(emulator, "123", given="Ada", role="Student"))
        answer = parse_answer(
            post(
                emulator,
                _example("changePersonIdentifier-request-with-security.xml"),
                ACTION + "changePersonIdentifier",
            )
        )
        status = ok(answer)
        assert status.severity == "status"
        assert status.message_id_ref == "1234567890"
        assert answer.body is not None
        assert answer.body.tag == f"{{{PMS_MESS}}}changePersonIdentifierResponse"
        assert len(answer.body) == 0
        security = answer.root.find(f"s:Header/{{{WSSE}}}Security", namespaces=NS)
        assert security is not None
        assert security.get(f"{{{SOAP_ENV}}}mustUnderstand") == "1"
        assert security.find(f"{{{WSU}}}Timestamp/{{{WSU}}}Expires") is not None
        assert set(emulator.persons()) == {"876"}

    def test_seed_request_without_security_header_is_an_invalid_security_fault(
        self, emulator: Emulator
    ) -> None:
        """The documented request as printed (no wsse:Security) gets WCF's InvalidSecurity fault, HTTP 500."""
        ok(create(emulator, "123", role="Student"))
        response = post(
            emulator,
            (EXAMPLES_DIR / "changePersonIdentifier-request.xml").read_bytes(),
            ACTION + "changePersonIdentifier",
        )
        answer = parse_answer(response)
        assert answer.http == 500
        assert answer.fault == "a:InvalidSecurity"
        faultcode = answer.root.find("s:Body/s:Fault/faultcode", namespaces=NS)
        assert faultcode is not None
        assert faultcode.nsmap["a"] == WSSE
        assert answer.root.findtext("s:Body/s:Fault/faultstring", namespaces=NS) == (
            "An error occurred when verifying security for the message."
        )
        assert set(emulator.persons()) == {"123"}


class TestSecurity:
    """The WS-Security UsernameToken and Timestamp checks."""

    def test_wrong_password_is_refused_and_changes_nothing(self, emulator: Emulator) -> None:
        """A wrong password gets the InvalidSecurity fault and leaves persons and history untouched."""
        answer = call(emulator, "createPerson", sourced("p1") + person_xml(given="A"), password="wrong")
        assert (answer.http, answer.fault) == (500, "a:InvalidSecurity")
        assert emulator.persons() == {}
        assert emulator.history() == []

    def test_wrong_username_is_refused(self, emulator: Emulator) -> None:
        """A wrong username with the right password is refused too."""
        answer = call(emulator, "readPerson", sourced("p1"), username="someone-else")
        assert answer.fault == "a:InvalidSecurity"

    def test_expired_timestamp_is_refused(self, emulator: Emulator) -> None:
        """A Timestamp whose Expires has passed is refused even with the right credentials."""
        expired = datetime.now(UTC) - timedelta(minutes=1)
        answer = call(emulator, "createPerson", sourced("p1") + person_xml(given="A"), expires=expired)
        assert answer.fault == "a:InvalidSecurity"
        assert emulator.persons() == {}

    @pytest.mark.invalid_requests
    def test_missing_message_identifier_is_invalid_data(self, emulator: Emulator) -> None:
        """A request without a messageIdentifier gets failure/invaliddata and changes nothing."""
        failed(
            call(emulator, "createPerson", sourced("p1") + person_xml(given="A"), message_id=None),
            "invaliddata",
        )
        assert emulator.persons() == {}

    @pytest.mark.invalid_requests
    def test_no_secret_reaches_logs_reprs_or_the_state_file(
        self, emulator_factory: Callable[..., Emulator], tmp_path: Path
    ) -> None:
        """Neither the service password nor a create password shows in logs, reprs or the SQLite file."""
        state = tmp_path / "state.sqlite3"
        with capture_logs() as logs:
            emu = emulator_factory(state=state)
            ok(create(emu, "p1", given="A", password=PERSON_PASSWORD, username="a1"))
            call(
                emu,
                "createPerson",
                sourced("p2") + person_xml(given="B", password=PERSON_PASSWORD),
                password="bad",
            )
            call(
                emu,
                "createPerson",
                sourced("p3") + person_xml(birth_date="no-date", password=PERSON_PASSWORD),
            )
            read = call(emu, "readPerson", sourced("p1"))
            emu.stop()
        text = repr(logs) + repr(emu) + repr(emu.config) + repr(read.root)
        for secret in (PASSWORD, PERSON_PASSWORD):
            assert secret not in text
            assert secret.encode() not in state.read_bytes()
        assert read.body is not None
        assert read.body.find(".//c:passWord", namespaces=NS) is None
        exchange = Exchange(path="/", soap_action="a", request=PASSWORD.encode(), status=200, response=b"")
        assert PASSWORD not in repr(exchange)


# --- protocol checks ------------------------------------------------------------------------


@pytest.mark.invalid_requests
class TestProtocol:
    """Malformed requests, routing and schema strictness."""

    def test_malformed_xml_is_refused_and_the_server_keeps_serving(self, emulator: Emulator) -> None:
        """Broken XML gets HTTP 400 with an s:Client fault, and the next request is answered normally."""
        answer = parse_answer(post(emulator, b"<s:Envelope><oops>", ACTION + "createPerson"))
        assert (answer.http, answer.fault) == (400, "s:Client")
        ok(create(emulator, "p1", given="A"))

    def test_a_dtd_is_refused(self, emulator: Emulator) -> None:
        """A request carrying a DTD (entity expansion) is refused without being processed."""
        raw = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + envelope(sourced("p1"))
        answer = parse_answer(post(emulator, raw, ACTION + "readPerson"))
        assert (answer.http, answer.fault) == (400, "s:Client")

    def test_unknown_soap_action_is_action_not_supported(self, emulator: Emulator) -> None:
        """An unknown SOAPAction gets WCF's ActionNotSupported fault (WS-Addressing namespace)."""
        raw = envelope(f"<m:readPersonRequest>{sourced('p1')}</m:readPersonRequest>")
        answer = parse_answer(post(emulator, raw, ACTION + "explodePerson"))
        assert (answer.http, answer.fault) == (500, "a:ActionNotSupported")
        faultcode = answer.root.find("s:Body/s:Fault/faultcode", namespaces=NS)
        assert faultcode is not None
        assert faultcode.nsmap["a"] == "http://www.w3.org/2005/08/addressing"

    def test_soap_action_must_match_the_body_and_the_endpoint(self, emulator: Emulator) -> None:
        """A SOAPAction naming another operation than the body, or sent to the other endpoint, is refused."""
        raw = envelope(f"<m:readPersonRequest>{sourced('p1')}</m:readPersonRequest>")
        assert parse_answer(post(emulator, raw, ACTION + "deletePerson")).fault == "a:ActionNotSupported"
        wrong_endpoint = post(emulator, raw, ACTION + "readPerson", url=emulator.extended_url)
        assert parse_answer(wrong_endpoint).fault == "a:ActionNotSupported"

    def test_strict_mode_refuses_a_create_without_format_name(self, emulator: Emulator) -> None:
        """Strict: a createPerson without the required formatName is failure/invaliddata, nothing stored."""
        status = failed(
            call(emulator, "createPerson", sourced("p1") + person_xml(given="A", format_name=False)),
            "invaliddata",
        )
        assert "formatName" in status.description or "name" in status.description
        assert emulator.persons() == {}

    def test_lenient_mode_accepts_a_create_without_format_name_and_logs_it(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """Lenient (as production): the same request is applied and a schema_deviation event is logged."""
        emu = emulator_factory(strict=False)
        with capture_logs() as logs:
            ok(call(emu, "createPerson", sourced("p1") + person_xml(given="A", format_name=False)))
        assert emu.persons()["p1"].given_name == "A"
        deviations = [event for event in logs if event["event"] == "schema_deviation"]
        assert len(deviations) == 1
        assert deviations[0]["error"]

    def test_lenient_mode_still_needs_identifiers(self, emulator_factory: Callable[..., Emulator]) -> None:
        """Lenient or not, a createPerson without sourcedId is failure/invaliddata."""
        emu = emulator_factory(strict=False)
        failed(call(emu, "createPerson", person_xml(given="A")), "invaliddata")
        assert emu.persons() == {}

    def test_undeserialisable_values_are_invalid_data(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """A bday that is no date or a role outside the enumeration is refused even when lenient."""
        emu = emulator_factory(strict=False)
        failed(create(emu, "p1", birth_date="31.12.2001"), "invaliddata")
        failed(create(emu, "p2", role="Teacher"), "invaliddata")
        assert emu.persons() == {}


# --- itslearning's semantics ----------------------------------------------------------------


class TestSemantics:
    """The behaviour DESIGN §5 documents for itslearning's service."""

    def test_create_then_read_round_trips_every_field(self, emulator: Emulator) -> None:
        """Every canonical field survives create + read; the answer's person has no sourcedId or password."""
        fields = {
            "given": "Ada",
            "family": "Lovelace",
            "email": "ada@example.org",
            "username": "ada1",
            "role": "Staff",
            "birth_date": "1815-12-10",
            "phone": "+47 1",
            "mobile": "+47 2",
        }
        ok(create(emulator, "p1", password=PERSON_PASSWORD, **fields))
        answer = call(emulator, "readPerson", sourced("p1"), message_id="read-1")
        assert ok(answer).message_id_ref == "read-1"
        assert answer.body is not None
        person = answer.body.find("m:person", namespaces=NS)
        assert person is not None
        assert person.findtext("d:formatName", namespaces=NS) == "Ada Lovelace"
        assert person.find(".//c:identifier", namespaces=NS) is None
        assert emulator.persons()["p1"] == Person(
            sync_key="p1",
            username="ada1",
            given_name="Ada",
            family_name="Lovelace",
            email="ada@example.org",
            role="Staff",
            birth_date="1815-12-10",
            phone="+47 1",
            mobile="+47 2",
        )

    def test_create_of_an_existing_key_updates_it(self, emulator: Emulator) -> None:
        """createPerson of a known key succeeds and updates the stored person."""
        ok(create(emulator, "p1", given="Ada", email="old@example.org"))
        ok(create(emulator, "p1", given="Ada", email="new@example.org"))
        assert emulator.persons()["p1"].email == "new@example.org"

    def test_update_of_an_unknown_key_creates_it(self, emulator: Emulator) -> None:
        """updatePerson of an unknown key succeeds and inserts the person."""
        ok(call(emulator, "updatePerson", sourced("p9") + person_xml(given="New")))
        assert emulator.persons()["p9"].given_name == "New"

    def test_update_merges_present_fields_and_keeps_absent_ones(self, emulator: Emulator) -> None:
        """updatePerson replaces the fields it carries and keeps the others."""
        ok(create(emulator, "p1", given="Ada", family="Lovelace", email="a@example.org", role="Student"))
        ok(call(emulator, "updatePerson", sourced("p1") + person_xml(family="Byron")))
        stored = emulator.persons()["p1"]
        assert (stored.given_name, stored.family_name, stored.email, stored.role) == (
            "Ada",
            "Byron",
            "a@example.org",
            "Student",
        )

    def test_replace_stores_exactly_what_it_gets(self, emulator: Emulator) -> None:
        """replacePerson of a known key drops the fields it does not carry."""
        ok(create(emulator, "p1", given="Ada", family="Lovelace", email="a@example.org"))
        status = ok(call(emulator, "replacePerson", sourced("p1") + person_xml(given="Ada")))
        assert status.severity == "status"
        assert emulator.persons()["p1"] == Person(sync_key="p1", given_name="Ada")

    def test_replace_of_an_unknown_key_inserts_it_with_a_warning(self, emulator: Emulator) -> None:
        """replacePerson of an unknown key inserts it: success + warning + itslearning's description."""
        status = ok(call(emulator, "replacePerson", sourced("p2") + person_xml(given="B")))
        assert status.severity == "warning"
        assert status.description == "Object did not exist, has been inserted instead"
        assert "p2" in emulator.persons()

    def test_delete_and_read_of_an_unknown_key_are_unknown_object(self, emulator: Emulator) -> None:
        """deletePerson and readPerson of an unknown key answer failure/error/unknownobject with the key."""
        assert failed(call(emulator, "deletePerson", sourced("ghost")), "unknownobject").code_minor == (
            ("unknownobject", "ghost"),
        )
        failed(call(emulator, "readPerson", sourced("ghost")), "unknownobject")

    def test_delete_removes_the_person(self, emulator: Emulator) -> None:
        """deletePerson of a known key removes it."""
        ok(create(emulator, "p1", given="A"))
        ok(call(emulator, "deletePerson", sourced("p1")))
        assert emulator.persons() == {}

    def test_change_identifier_failures(self, emulator: Emulator) -> None:
        """Unknown source → unknownobject; target in use → objectexists; unrecognised role → invaliddata."""
        ok(create(emulator, "a", role="Student"))
        ok(create(emulator, "b", role="Student"))
        ok(create(emulator, "f", role="Faculty"))
        change = "changePersonIdentifier"
        failed(call(emulator, change, sourced("ghost") + sourced("z", "newSourcedId")), "unknownobject")
        failed(call(emulator, change, sourced("a") + sourced("b", "newSourcedId")), "objectexists")
        failed(call(emulator, change, sourced("f") + sourced("g", "newSourcedId")), "invaliddata")
        assert set(emulator.persons()) == {"a", "b", "f"}

    def test_sync_keys_are_limited_to_64_characters(self, emulator: Emulator) -> None:
        """A 64-character sync key is accepted; 65 characters or an empty key is failure/invaliddata."""
        ok(create(emulator, "k" * 64, given="A"))
        failed(create(emulator, "k" * 65, given="A"), "invaliddata")
        failed(create(emulator, "", given="A"), "invaliddata")
        assert set(emulator.persons()) == {"k" * 64}

    def test_read_persons_answers_per_item(self, emulator: Emulator) -> None:
        """readPersons: one statusInfo per id in order, one person per found id in the personSet."""
        ok(create(emulator, "a", given="A"))
        ok(create(emulator, "c", given="C"))
        ids = "".join(f"<c:identifier>{key}</c:identifier>" for key in ("a", "ghost", "c"))
        answer = call(emulator, "readPersons", f"<m:sourcedIdSet>{ids}</m:sourcedIdSet>", message_id="rp")
        assert answer.items is not None
        assert [item.code_major for item in answer.items] == ["success", "failure", "success"]
        assert answer.items[1].code_minor == (("unknownobject", "ghost"),)
        assert {item.message_id_ref for item in answer.items} == {"rp"}
        assert answer.body is not None
        names = [
            p.findtext("d:formatName", namespaces=NS)
            for p in answer.body.iterfind("m:personSet/m:person", namespaces=NS)
        ]
        assert names == ["A", "C"]

    def test_create_persons_applies_good_items_and_fails_bad_ones(self, emulator: Emulator) -> None:
        """createPersons: a bad item among good ones fails alone; the header reports the partial failure."""
        pairs = "".join(
            f"<m:personIdPair>{sourced(key)}{person_xml(given=key[:3])}</m:personIdPair>"
            for key in ("good1", "x" * 65, "good2")
        )
        answer = call(emulator, "createPersons", f"<m:personIdPairSet>{pairs}</m:personIdPairSet>")
        assert answer.items is not None
        assert [item.code_major for item in answer.items] == ["success", "failure", "success"]
        assert answer.items[1].code_minor[0][0] == "invaliddata"
        assert answer.status is not None
        assert (answer.status.code_major, answer.status.severity) == ("failure", "warning")
        assert set(emulator.persons()) == {"good1", "good2"}
        assert [event.code_major for event in emulator.history()] == ["success", "failure", "success"]

    def test_delete_persons_answers_per_item(self, emulator: Emulator) -> None:
        """deletePersons removes the known ids and reports the unknown ones per item."""
        ok(create(emulator, "a", given="A"))
        ids = "<c:identifier>a</c:identifier><c:identifier>ghost</c:identifier>"
        answer = call(emulator, "deletePersons", f"<m:sourcedIdSet>{ids}</m:sourcedIdSet>")
        assert answer.items is not None
        assert [item.code_major for item in answer.items] == ["success", "failure"]
        assert emulator.persons() == {}

    def test_read_all_persons_pages_in_key_order(self, emulator: Emulator) -> None:
        """readAllPersons gives PageSize persons per (0-based) PageIndex in key order, and the total."""
        for key in ("e", "b", "d", "a", "c"):
            ok(create(emulator, key, given=key.upper()))

        def page(index: int, size: int) -> tuple[list[str], str | None]:
            inner = (
                f"<m:PageIndex>{index}</m:PageIndex><m:PageSize>{size}</m:PageSize>"
                "<m:CreatedFrom xsi:nil='true' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'/>"
                "<m:OnlyManuallyCreatedUsers>false</m:OnlyManuallyCreatedUsers>"
                "<m:ConvertFromManual>false</m:ConvertFromManual>"
            )
            answer = call(emulator, "readAllPersons", inner)
            ok(answer)
            assert answer.body is not None
            keys = [
                e.text or ""
                for e in answer.body.iterfind(
                    "m:personIdPairSet/m:personIdPair/m:sourcedId/c:identifier", namespaces=NS
                )
            ]
            return keys, answer.body.findtext("m:virtualCount", namespaces=NS)

        assert page(0, 2) == (["a", "b"], "5")
        assert page(1, 2) == (["c", "d"], "5")
        assert page(2, 2) == (["e"], "5")
        assert page(3, 2) == ([], "5")

    def test_read_all_persons_refuses_pages_over_100(self, emulator: Emulator) -> None:
        """readAllPersons with PageSize 101 is failure/invaliddata."""
        inner = (
            "<m:PageIndex>0</m:PageIndex><m:PageSize>101</m:PageSize>"
            "<m:CreatedFrom xsi:nil='true' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'/>"
            "<m:OnlyManuallyCreatedUsers>false</m:OnlyManuallyCreatedUsers><m:ConvertFromManual>false</m:ConvertFromManual>"
        )
        failed(call(emulator, "readAllPersons", inner), "invaliddata")

    def test_history_records_every_decision(self, emulator: Emulator) -> None:
        """history() lists each decided operation with its keys, messageIdentifier and codeMajor."""
        ok(create(emulator, "a", given="A", role="Student"))
        ok(
            call(
                emulator,
                "changePersonIdentifier",
                sourced("a") + sourced("b", "newSourcedId"),
                message_id="m2",
            )
        )
        failed(call(emulator, "deletePerson", sourced("a"), message_id="m3"), "unknownobject")
        assert [
            (e.seq, e.operation, e.sync_key, e.new_key, e.message_identifier, e.code_major)
            for e in emulator.history()
        ] == [
            (1, "createPerson", "a", "", "msg-1", "success"),
            (2, "changePersonIdentifier", "a", "b", "m2", "success"),
            (3, "deletePerson", "a", "", "m3", "failure"),
        ]


# --- faults, state, concurrency -------------------------------------------------------------


class TestFaults:
    """Injected faults, drawn per request from a seeded generator."""

    def test_error_rate_answers_503_before_doing_anything(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """With error_rate 1 every request gets HTTP 503 and nothing is applied."""
        emu = emulator_factory(error_rate=1.0)
        raw = envelope(
            f"<m:createPersonRequest>{sourced('p1')}{person_xml(given='A')}</m:createPersonRequest>"
        )
        assert post(emu, raw, ACTION + "createPerson").status_code == 503
        assert emu.persons() == {}
        assert emu.history() == []

    def test_drop_rate_applies_then_closes_without_answer(
        self, emulator_factory: Callable[..., Emulator], exchange_log: ExchangeLog
    ) -> None:
        """With drop_rate 1 the request is applied but the connection closes with no answer."""
        emu = emulator_factory(drop_rate=1.0)
        raw = envelope(
            f"<m:createPersonRequest>{sourced('p1')}{person_xml(given='A')}</m:createPersonRequest>"
        )
        with pytest.raises(requests.ConnectionError):
            post(emu, raw, ACTION + "createPerson")
        assert "p1" in emu.persons()
        assert exchange_log.exchanges[-1].response is None

    def test_wrong_ref_rate_answers_another_message_id_ref(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """With wrong_ref_rate 1 the request is applied and the answer's messageIdRef is not ours."""
        emu = emulator_factory(wrong_ref_rate=1.0)
        status = ok(create(emu, "p1", given="A"))
        assert status.message_id_ref not in (None, "msg-1")
        assert "p1" in emu.persons()

    def test_latency_delays_every_answer(self, emulator_factory: Callable[..., Emulator]) -> None:
        """latency_ms is added to the answer's time."""
        emu = emulator_factory(latency_ms=150)
        started = time.perf_counter()
        ok(create(emu, "p1", given="A"))
        assert time.perf_counter() - started >= 0.15

    def test_fault_draws_are_reproducible_with_a_seed(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """Two emulators with the same seed fail the same requests."""
        outcomes = []
        for _ in range(2):
            emu = emulator_factory(error_rate=0.5, seed=7)
            raw = envelope(f"<m:readPersonRequest>{sourced('p1')}</m:readPersonRequest>")
            outcomes.append([post(emu, raw, ACTION + "readPerson").status_code for _ in range(12)])
        assert outcomes[0] == outcomes[1]
        assert set(outcomes[0]) == {200, 503}

    def test_bad_rates_are_refused(self) -> None:
        """A rate outside [0, 1] or half a TLS pair is a ConfigError."""
        with pytest.raises(ConfigError):
            EmulatorConfig(username="u", password="p", error_rate=1.5)
        with pytest.raises(ConfigError):
            EmulatorConfig(username="u", password="p", tls_cert=Path("c.pem"))


class TestServer:
    """State file, concurrency, TLS certificate and WSDL serving."""

    def test_sqlite_state_survives_a_restart(
        self, emulator_factory: Callable[..., Emulator], tmp_path: Path
    ) -> None:
        """Persons and history written to a state file are there after a restart."""
        state = tmp_path / "emulator.sqlite3"
        first = emulator_factory(state=state)
        ok(create(first, "p1", given="A"))
        first.stop()
        second = emulator_factory(state=state)
        assert second.persons()["p1"].given_name == "A"
        assert [event.sync_key for event in second.history()] == ["p1"]

    def test_64_concurrent_requests_sleep_in_parallel(
        self, emulator_factory: Callable[..., Emulator]
    ) -> None:
        """64 requests at once with 200 ms latency finish far sooner than one after the other (12.8 s)."""
        emu = emulator_factory(latency_ms=200)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(lambda i: create(emu, f"p{i}", given="A"), range(64)))
        elapsed = time.perf_counter() - started
        assert all(answer.status is not None and answer.status.ok for answer in answers)
        assert len(emu.persons()) == 64
        assert elapsed < 3.0

    def test_generated_certificate_is_a_trust_anchor_for_localhost(
        self, emulator_factory: Callable[..., Emulator], tmp_path: Path
    ) -> None:
        """Without a given pair the emulator writes a CA certificate (key 0600) that verifies https://localhost."""
        emu = emulator_factory(tls_cert=None, tls_key=None, cert_dir=tmp_path / "certs")
        assert emu.ca_path.parent == tmp_path / "certs"
        keys = [p for p in (tmp_path / "certs").iterdir() if p != emu.ca_path]
        assert [oct(p.stat().st_mode & 0o777) for p in keys] == ["0o600"]
        response = requests.get(
            f"https://localhost:{emu.port}/PersonManagementService.svc?wsdl",
            verify=str(emu.ca_path),
            timeout=10,
        )
        assert response.status_code == 200

    def test_wsdl_is_served_with_this_servers_addresses(self, emulator: Emulator) -> None:
        """?wsdl and ?singleWsdl serve our WSDL with soap:address rewritten to this server."""
        for url in (emulator.pms_url + "?wsdl", emulator.extended_url + "?singleWsdl"):
            response = requests.get(url, verify=str(emulator.ca_path), timeout=10)
            assert response.status_code == 200
            root = etree.fromstring(response.content, safe_parser())
            locations = {
                a.get("location") for a in root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")
            }
            assert locations == {emulator.pms_url, emulator.extended_url}

    def test_other_paths_are_404(self, emulator: Emulator) -> None:
        """GET or POST anywhere else is 404."""
        assert (
            requests.get(emulator.base_url + "/nothing", verify=str(emulator.ca_path), timeout=10).status_code
            == 404
        )
        assert requests.get(emulator.pms_url, verify=str(emulator.ca_path), timeout=10).status_code == 404
        assert (
            post(emulator, b"<x/>", ACTION + "readPerson", url=emulator.base_url + "/x.svc").status_code
            == 404
        )


class TestCommand:
    """`ims-sync emulator`."""

    def test_help_has_an_example(self) -> None:
        """--help documents the options and shows an example."""
        result = CliRunner().invoke(emulator_command, ["--help"])
        assert result.exit_code == 0
        for text in ("--strict / --lenient", "--drop-rate", "IMS_ES_PASSWORD", "Example:"):
            assert text in result.output

    def test_missing_credentials_is_a_usage_error(self) -> None:
        """Without IMS_ES_USERNAME/IMS_ES_PASSWORD the command exits 2 with a clear message."""
        result = CliRunner().invoke(
            emulator_command, ["--port", "0"], env={"IMS_ES_USERNAME": None, "IMS_ES_PASSWORD": None}
        )
        assert result.exit_code == 2
        assert "IMS_ES_USERNAME" in result.output

    def test_serves_until_sigterm(self, tmp_path: Path) -> None:
        """The command prints its URLs and certificate, serves, and exits 0 on SIGTERM."""
        env = {**os.environ, "IMS_ES_USERNAME": USERNAME, "IMS_ES_PASSWORD": PASSWORD}
        code = "from sync.emulator.command import emulator; emulator()"
        process = subprocess.Popen(
            [sys.executable, "-c", code, "--port", "0", "--cert-dir", str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            printed: dict[str, str] = {}
            while "Certificate:" not in printed:  # structlog's own lines may come first
                line = process.stdout.readline()
                assert line, "the command exited before printing its URLs"
                label, _, rest = line.partition(":  ")
                printed[label + ":"] = rest.split()[0] if rest.split() else ""
            pms_url = printed["PMS URL:"]
            certificate = Path(printed["Certificate:"])
            response = requests.get(pms_url + "?wsdl", verify=str(certificate), timeout=10)
            assert response.status_code == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
