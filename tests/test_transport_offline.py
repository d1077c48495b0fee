"""PersonClient without a server: messages against itslearning's schemas, answers, errors, secrets.

Requests go through the client's real code path into `ReplayAdapter`, a requests transport adapter that
records what was sent and answers from a handler (httpx's MockTransport idea): nothing is mocked.
"""

from __future__ import annotations

import base64
import inspect
import io
import re
import ssl
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
import requests
import requests.adapters
import requests.exceptions
import urllib3
import zeep
import zeep.exceptions
from lxml import etree

from sync.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    ProtocolError,
    RejectedError,
    SyncError,
    TransientError,
)
from sync.ims.clients import Page, PersonClient
from sync.ims.exchange import DEFAULT_TIMEOUTS, MassReply, Timeouts, new_message_id
from sync.ims.faults import translate_exception
from sync.ims.namespaces import BIND, COMMON, PMS_DATA, PMS_MESS, SOAP_ENV, WSSE, WSU
from sync.ims.persons import BUNDLED_WSDL
from sync.ims.security import UsernameTokenSecurity
from sync.ims.xsd import load_wsdl_schema, safe_parser
from sync.models import Person, Status

SHARED: Final = Path(__file__).resolve().parents[2] / "shared"
ITSLEARNING: Final = SHARED / "ims-es" / "wsdl" / "itslearning"
requires_itslearning = pytest.mark.skipif(
    not ITSLEARNING.is_dir(),
    reason=f"itslearning's WSDLs are not at {ITSLEARNING} (CI puts shared/ beside the clone)",
)

URL: Final = "https://ims.example.org/WCFServiceLibrary/PersonManagementService.svc"
EXTENDED_URL: Final = "https://ims.example.org/WCFServiceLibrary/ExtendedPersonManagementService.svc"
USERNAME: Final = "integration-user"
PASSWORD: Final = "S3cret-IMS-pw!"
PERSON_PASSWORD: Final = "Pupil-pw-123"
WSA_NAMESPACES: Final = (
    "http://www.w3.org/2005/08/addressing",
    "http://schemas.xmlsoap.org/ws/2004/08/addressing",
)

FULL: Final = Person(
    sync_key="S-1001",
    username="ann.lee",
    given_name="Ann",
    family_name="Lee",
    email="ann.lee@school.example",
    role="Student",
    birth_date="2009-04-30",
    phone="+47 22 00 00 00",
    mobile="+47 900 00 000",
)
EMPTY: Final = Person(sync_key="S-EMPTY")


# --- a replaying transport adapter and answers ---------------------------------------------------

Reply = tuple[int, bytes] | BaseException
Handler = Callable[[requests.PreparedRequest], Reply]


class ReplayAdapter(requests.adapters.BaseAdapter):
    """Records every request and answers it from `handler` (a status and body, or an exception to raise)."""

    def __init__(self, handler: Handler) -> None:
        """Answer with `handler`."""
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """Record the request, then answer it or raise what the handler returns."""
        self.requests.append(request)
        reply = self.handler(request)
        if isinstance(reply, BaseException):
            raise reply
        status, body = reply
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers={"Content-Type": "text/xml; charset=utf-8"},
            status=status,
            preload_content=False,
        )
        return requests.adapters.HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        """Nothing to release."""

    def envelope(self, index: int = -1) -> etree._Element:
        """The envelope of a recorded request."""
        body = self.requests[index].body
        assert isinstance(body, bytes)
        return etree.fromstring(body, safe_parser())


def message_id_of(request: requests.PreparedRequest) -> str:
    """The syncRequestHeaderInfo/messageIdentifier of a request."""
    assert isinstance(request.body, bytes)
    root = etree.fromstring(request.body, safe_parser())
    return (
        root.findtext(f"{{{SOAP_ENV}}}Header/{{{BIND}}}syncRequestHeaderInfo/{{{BIND}}}messageIdentifier")
        or ""
    )


def status_xml(tag: str, status: Status) -> str:
    """A statusInfo element (BIND namespace declared by the caller as `b`)."""
    minor = "".join(
        f"<b:codeMinorField><b:codeMinorName>{n}</b:codeMinorName><b:codeMinorValue>{v}</b:codeMinorValue>"
        "</b:codeMinorField>"
        for n, v in status.code_minor
    )
    parts = [f"<b:codeMajor>{status.code_major}</b:codeMajor>", f"<b:severity>{status.severity}</b:severity>"]
    if minor:
        parts.append(f"<b:codeMinor>{minor}</b:codeMinor>")
    if status.message_id_ref is not None:
        parts.append(f"<b:messageIdRef>{status.message_id_ref}</b:messageIdRef>")
    if status.description:
        parts.append(
            f"<b:description><c:language>en-US</c:language><c:text>{status.description}</c:text></b:description>"
        )
    return f"<b:{tag}>{''.join(parts)}</b:{tag}>"


def answer(
    ref: str | None,
    body: str = "",
    *,
    status: Status | None = None,
    items: Sequence[Status] | None = None,
    header: bool = True,
) -> bytes:
    """A 200 answer shaped like itslearning's: status in syncResponseHeaderInfo, then a Security Timestamp."""
    head = status or Status(code_major="success", severity="status", message_id_ref=ref)
    item_xml = ""
    if items is not None:
        item_xml = (
            "<b:statusInfoSet>" + "".join(status_xml("statusInfo", i) for i in items) + "</b:statusInfoSet>"
        )
    info = (
        f"<b:syncResponseHeaderInfo><b:messageIdentifier>{uuid.uuid4()}</b:messageIdentifier>"
        f"{status_xml('statusInfo', head)}{item_xml}</b:syncResponseHeaderInfo>"
    )
    security = (
        f'<o:Security s:mustUnderstand="1" xmlns:o="{WSSE}"><u:Timestamp u:Id="_0">'
        "<u:Created>2026-01-27T09:55:33.756Z</u:Created><u:Expires>2026-01-27T10:00:33.756Z</u:Expires>"
        "</u:Timestamp></o:Security>"
    )
    return (
        f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:u="{WSU}" xmlns:b="{BIND}" xmlns:c="{COMMON}" '
        f'xmlns:m="{PMS_MESS}" xmlns:d="{PMS_DATA}">'
        f"<s:Header>{info if header else ''}{security}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def ok(ref: str | None, key: str = "") -> Status:
    """A success statusInfo answering `ref`."""
    return Status(
        code_major="success", severity="status", code_minor=(("fullsuccess", key),), message_id_ref=ref
    )


def failed(ref: str | None, key: str, code: str = "unknownobject") -> Status:
    """A failure statusInfo answering `ref`."""
    return Status(
        code_major="failure",
        severity="error",
        code_minor=((code, key),),
        message_id_ref=ref,
        description="no",
    )


def fault(
    code: str, namespace: str, text: str = "An error occurred when verifying security for the message."
) -> bytes:
    """A SOAP 1.1 fault as WCF writes it."""
    return (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault>'
        f'<faultcode xmlns:a="{namespace}">{code}</faultcode>'
        f'<faultstring xml:lang="en-US">{text}</faultstring>'
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()


def person_element_xml(request: requests.PreparedRequest) -> str:
    """The request's first `person` element re-serialized (for echoing it in a read answer)."""
    assert isinstance(request.body, bytes)
    root = etree.fromstring(request.body, safe_parser())
    person = next(root.iter(f"{{{PMS_MESS}}}person"))
    return etree.tostring(person).decode()


def success_handler(request: requests.PreparedRequest) -> Reply:
    """Answer any request with a success (one item status per item for mass requests; reads find nobody)."""
    ref = message_id_of(request)
    assert isinstance(request.body, bytes)
    root = etree.fromstring(request.body, safe_parser())
    items = len(list(root.iter(f"{{{PMS_MESS}}}personIdPair"))) + len(
        list(root.iterfind(f".//{{{PMS_MESS}}}sourcedIdSet/{{{COMMON}}}identifier"))
    )
    action = request.headers["SOAPAction"].strip('"').rpartition("/")[2]
    if action in {"createPersons", "deletePersons"}:
        return 200, answer(ref, items=[ok(ref)] * items)
    if action == "readPersons":
        return 200, answer(ref, "<m:readPersonsResponse/>", items=[failed(ref, "x")] * items)
    if action == "readAllPersons":
        body = "<m:readAllPersonsResponse><m:virtualCount>0</m:virtualCount></m:readAllPersonsResponse>"
        return 200, answer(ref, body)
    if action == "readPerson":
        return 200, answer(None, status=failed(ref, "x"))
    return 200, answer(ref)


@pytest.fixture(name="make_client")
def fixture_make_client() -> Callable[[Handler], tuple[PersonClient, ReplayAdapter]]:
    """`make_client(handler)`: a PersonClient whose requests a ReplayAdapter answers."""

    def make(handler: Handler) -> tuple[PersonClient, ReplayAdapter]:
        adapter = ReplayAdapter(handler)
        return PersonClient(url=URL, username=USERNAME, password=PASSWORD, adapter=adapter), adapter

    return make


# Each operation called once, with what it needs; used to drive every operation through the client.
CALLS: Final[Mapping[str, Callable[[PersonClient], object]]] = {
    "createPerson": lambda c: c.create_person(FULL, password=PERSON_PASSWORD),
    "updatePerson": lambda c: c.update_person(FULL),
    "replacePerson": lambda c: c.replace_person(FULL),
    "deletePerson": lambda c: c.delete_person(FULL.sync_key),
    "readPerson": lambda c: c.read_person(FULL.sync_key),
    "readPersons": lambda c: c.read_persons(["a", "b"]),
    "changePersonIdentifier": lambda c: c.change_person_identifier("old", "new"),
    "createPersons": lambda c: c.create_persons([(FULL, PERSON_PASSWORD), (EMPTY, "")]),
    "deletePersons": lambda c: c.delete_persons(["a", "b", "c"]),
    "readAllPersons": lambda c: c.read_all_persons(page_index=0, page_size=100),
}


# --- the WSDL -------------------------------------------------------------------------------------


class TestWsdl:
    """sync/ims/wsdl/pms.wsdl: loadable by both consumers, and without what would change the wire format."""

    def test_compiles_with_load_wsdl_schema(self) -> None:
        """The emulator's validator compiles our WSDL's inline schemas and validates with them."""
        schema = load_wsdl_schema(BUNDLED_WSDL)
        good = f'<syncRequestHeaderInfo xmlns="{BIND}"><messageIdentifier>1</messageIdentifier>'
        good += "</syncRequestHeaderInfo>"
        bad = f'<syncRequestHeaderInfo xmlns="{BIND}"><unknown/></syncRequestHeaderInfo>'
        assert schema.validate(etree.fromstring(good))
        assert not schema.validate(etree.fromstring(bad))

    def test_declares_every_operation_with_its_soap_action(self) -> None:
        """Each of the ten operations has the soapAction itslearning expects and header parts both ways."""
        client = zeep.Client(str(BUNDLED_WSDL))  # type: ignore[no-untyped-call]
        found: dict[str, str] = {}
        for binding in client.wsdl.bindings.values():
            for name, operation in binding._operations.items():
                found[name] = operation.soapaction
                assert [e.qname.localname for _, e in operation.input.header.type.elements] == [
                    "syncRequestHeaderInfo"
                ]
                assert [e.qname.localname for _, e in operation.output.header.type.elements] == [
                    "syncResponseHeaderInfo"
                ]
        assert found == {name: f"http://www.imsglobal.org/soap/pms/{name}" for name in CALLS}

    def test_has_no_addressing_or_policy(self) -> None:
        """No wsaw:Action (zeep would add WS-Addressing headers) nor WS-Policy, in elements or attributes."""
        root = etree.parse(str(BUNDLED_WSDL), safe_parser()).getroot()
        namespaces = {etree.QName(e).namespace for e in root.iter() if isinstance(e.tag, str)}
        namespaces |= {
            etree.QName(a).namespace for e in root.iter() if isinstance(e.tag, str) for a in e.attrib
        }
        assert not {ns for ns in namespaces if ns and ("addressing" in ns or "policy" in ns)}

    def test_services_point_at_the_documented_paths(self) -> None:
        """The two services' addresses end in the documented .svc paths."""
        text = BUNDLED_WSDL.read_text(encoding="utf-8")
        assert 'location="https://localhost/PersonManagementService.svc"' in text
        assert 'location="https://localhost/ExtendedPersonManagementService.svc"' in text


# --- requests -------------------------------------------------------------------------------------


@pytest.fixture(name="schemas", scope="module")
def fixture_schemas() -> dict[str, etree.XMLSchema]:
    """itslearning's PMS and Extended validators (compiled once)."""
    return {
        "pms": load_wsdl_schema(ITSLEARNING / "PersonManagementServiceSync.svc.xml"),
        "extended": load_wsdl_schema(ITSLEARNING / "ExtendedPersonManagementServiceSync.xml"),
    }


@requires_itslearning
class TestRequestsAgainstItslearning:
    """Every request the client sends is valid against itslearning's own published schemas."""

    @pytest.mark.parametrize("operation", list(CALLS))
    def test_body_and_header_validate(self, operation, schemas, make_client) -> None:
        """The body child and syncRequestHeaderInfo of each operation validate against itslearning's WSDL."""
        client, adapter = make_client(success_handler)
        CALLS[operation](client)
        root = adapter.envelope()
        schema = schemas["extended" if operation == "readAllPersons" else "pms"]
        (body_child,) = root.find(f"{{{SOAP_ENV}}}Body")
        info = root.find(f"{{{SOAP_ENV}}}Header/{{{BIND}}}syncRequestHeaderInfo")
        assert etree.QName(body_child).localname == f"{operation}Request"
        for element in (body_child, info):
            document = etree.fromstring(etree.tostring(element), safe_parser())
            assert schema.validate(document), schema.error_log

    def test_empty_person_validates(self, schemas, make_client) -> None:
        """A person with only a sync key (formatName nil, nothing else) is still valid."""
        client, adapter = make_client(success_handler)
        client.create_person(EMPTY)
        (body_child,) = adapter.envelope().find(f"{{{SOAP_ENV}}}Body")
        assert schemas["pms"].validate(etree.fromstring(etree.tostring(body_child))), schemas["pms"].error_log

    def test_example_request_shape(self, make_client) -> None:
        """changePersonIdentifier carries the same elements as itslearning's documented example."""
        client, adapter = make_client(success_handler)
        client.change_person_identifier("123", "876")
        ours = adapter.envelope().find(f"{{{SOAP_ENV}}}Body/{{{PMS_MESS}}}changePersonIdentifierRequest")
        example = etree.parse(
            str(SHARED / "ims-es" / "examples" / "changePersonIdentifier-request.xml"), safe_parser()
        ).find(f"{{{SOAP_ENV}}}Body/{{{PMS_MESS}}}changePersonIdentifierRequest")
        assert ours is not None
        assert example is not None
        assert [(e.tag, (e.text or "").strip()) for e in ours.iter()] == [
            (e.tag, (e.text or "").strip()) for e in example.iter() if isinstance(e.tag, str)
        ]


class TestRequestShape:
    """HTTP and SOAP details of what goes on the wire."""

    def test_http_headers(self, make_client) -> None:
        """SOAPAction is quoted and names the operation; the content type is text/xml UTF-8."""
        client, adapter = make_client(success_handler)
        client.delete_person("k")
        headers = adapter.requests[0].headers
        assert headers["SOAPAction"] == '"http://www.imsglobal.org/soap/pms/deletePerson"'
        assert headers["Content-Type"] == "text/xml; charset=utf-8"
        assert adapter.requests[0].url == URL
        assert adapter.requests[0].method == "POST"

    def test_read_all_persons_goes_to_the_extended_service(self, make_client) -> None:
        """readAllPersons is sent to the Extended endpoint derived from the PMS URL."""
        client, adapter = make_client(success_handler)
        client.read_all_persons(page_index=3, page_size=50)
        assert adapter.requests[0].url == EXTENDED_URL
        body = adapter.envelope().find(f"{{{SOAP_ENV}}}Body/{{{PMS_MESS}}}readAllPersonsRequest")
        assert body.findtext(f"{{{PMS_MESS}}}PageIndex") == "3"
        assert body.findtext(f"{{{PMS_MESS}}}PageSize") == "50"

    def test_explicit_extended_url(self) -> None:
        """An explicit extended_url wins over the derived one."""
        adapter = ReplayAdapter(success_handler)
        other = "https://other.example.org/x/Ext.svc"
        client = PersonClient(
            url=URL, username=USERNAME, password=PASSWORD, extended_url=other, adapter=adapter
        )
        client.read_all_persons(page_index=0)
        assert adapter.requests[0].url == other

    def test_security_header(self, make_client) -> None:
        """wsse:Security (mustUnderstand=1) first: a 5-minute Timestamp, a PasswordText UsernameToken."""
        client, adapter = make_client(success_handler)
        before = datetime.now().astimezone()
        client.update_person(FULL)
        header = adapter.envelope().find(f"{{{SOAP_ENV}}}Header")
        security, info = list(header)
        assert security.tag == f"{{{WSSE}}}Security"
        assert info.tag == f"{{{BIND}}}syncRequestHeaderInfo"
        assert security.get(f"{{{SOAP_ENV}}}mustUnderstand") == "1"
        timestamp, token = list(security)
        assert timestamp.tag == f"{{{WSU}}}Timestamp"
        assert timestamp.get(f"{{{WSU}}}Id")
        created = datetime.fromisoformat(timestamp.findtext(f"{{{WSU}}}Created").replace("Z", "+00:00"))
        expires = datetime.fromisoformat(timestamp.findtext(f"{{{WSU}}}Expires").replace("Z", "+00:00"))
        assert expires - created == timedelta(minutes=5)
        assert abs(created - before) < timedelta(seconds=30)
        assert token.tag == f"{{{WSSE}}}UsernameToken"
        assert token.get(f"{{{WSU}}}Id")
        assert [etree.QName(e).localname for e in token] == ["Username", "Password", "Nonce", "Created"]
        assert token.findtext(f"{{{WSSE}}}Username") == USERNAME
        password = token.find(f"{{{WSSE}}}Password")
        assert password.text == PASSWORD
        assert password.get("Type").endswith("#PasswordText")
        nonce = token.find(f"{{{WSSE}}}Nonce")
        assert nonce.get("EncodingType").endswith("#Base64Binary")
        assert len(base64.b64decode(nonce.text, validate=True)) == 16
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", token.findtext(f"{{{WSU}}}Created"))

    def test_each_request_has_a_fresh_nonce_and_message_id(self, make_client) -> None:
        """Two requests differ in nonce, ids and messageIdentifier (UUIDs when none is given)."""
        client, adapter = make_client(success_handler)
        client.delete_person("a")
        client.delete_person("a")
        nonces = {adapter.envelope(i).findtext(f".//{{{WSSE}}}Nonce") for i in (0, 1)}
        ids = {message_id_of(r) for r in adapter.requests}
        assert len(nonces) == 2
        assert len(ids) == 2
        assert all(uuid.UUID(i).version == 4 for i in ids)

    def test_given_message_id_is_sent(self, make_client) -> None:
        """A caller's message_id is the request's messageIdentifier."""
        client, adapter = make_client(success_handler)
        status = client.delete_person("a", message_id="journal-42")
        assert message_id_of(adapter.requests[0]) == "journal-42"
        assert status.message_id_ref == "journal-42"

    def test_no_ws_addressing(self, make_client) -> None:
        """No element of any WS-Addressing namespace appears in any request."""
        client, adapter = make_client(success_handler)
        for call in CALLS.values():
            call(client)
        for index in range(len(adapter.requests)):
            namespaces = {etree.QName(e).namespace for e in adapter.envelope(index).iter()}
            assert not namespaces & set(WSA_NAMESPACES)

    def test_password_only_on_create(self, make_client) -> None:
        """passWord goes in createPerson(s) only; update and replace never carry it."""
        client, adapter = make_client(success_handler)
        client.create_person(FULL, password=PERSON_PASSWORD)
        client.update_person(FULL)
        client.replace_person(FULL)
        client.create_persons([(FULL, PERSON_PASSWORD), (EMPTY, "")])
        passwords = [[e.text for e in adapter.envelope(i).iter(f"{{{COMMON}}}passWord")] for i in range(4)]
        assert passwords == [[PERSON_PASSWORD], [], [], [PERSON_PASSWORD]]

    def test_full_person_element_order(self, make_client) -> None:
        """The person's children follow the contract: names, values and the schema's order."""
        client, adapter = make_client(success_handler)
        client.create_person(FULL, password=PERSON_PASSWORD)
        person = next(adapter.envelope().iter(f"{{{PMS_MESS}}}person"))
        assert [etree.QName(e).localname for e in person] == [
            "formatName", "name", "email", "userId", "demographics", "institutionRole", "tel", "tel",
        ]  # fmt: skip
        assert person.findtext(f"{{{PMS_DATA}}}formatName") == "Ann Lee"
        assert person.findtext(f"{{{PMS_DATA}}}demographics/{{{PMS_DATA}}}gender") == "Gender"
        assert person.findtext(f"{{{PMS_DATA}}}institutionRole/{{{PMS_DATA}}}primaryRoleType") == "true"
        assert [t.findtext(f"{{{PMS_DATA}}}telType") for t in person.iterfind(f"{{{PMS_DATA}}}tel")] == [
            "Voice",
            "Mobile",
        ]

    def test_empty_person_has_nil_format_name_only(self, make_client) -> None:
        """A person with only a sync key is a nil formatName and nothing else; the key is beside it."""
        client, adapter = make_client(success_handler)
        client.update_person(EMPTY)
        request = adapter.envelope().find(f"{{{SOAP_ENV}}}Body/{{{PMS_MESS}}}updatePersonRequest")
        person = request.find(f"{{{PMS_MESS}}}person")
        (format_name,) = list(person)
        assert format_name.tag == f"{{{PMS_DATA}}}formatName"
        assert format_name.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"
        assert request.findtext(f"{{{PMS_MESS}}}sourcedId/{{{COMMON}}}identifier") == EMPTY.sync_key


# --- answers --------------------------------------------------------------------------------------


class TestRoundTrip:
    """Person ⇄ XML: what the client writes, it reads back to the same Person."""

    @pytest.mark.parametrize("person", [FULL, EMPTY, Person(sync_key="k", family_name="Solo", mobile="1")])
    def test_read_person_returns_what_create_wrote(self, person, make_client) -> None:
        """A readPerson answer echoing the created person element yields the same Person."""
        written: list[str] = []

        def handler(request: requests.PreparedRequest) -> Reply:
            ref = message_id_of(request)
            if "createPerson" in request.headers["SOAPAction"]:
                written.append(person_element_xml(request))
                return 200, answer(ref)
            element = written[0]
            return 200, answer(ref, f"<m:readPersonResponse>{element}</m:readPersonResponse>")

        client, _ = make_client(handler)
        client.create_person(person, password=PERSON_PASSWORD)
        status, read = client.read_person(person.sync_key)
        assert status.ok
        assert read == person

    def test_unknown_elements_are_ignored(self, make_client) -> None:
        """Extra elements (address, photo, extension, a second role) do not disturb reading."""
        person_xml = (
            "<m:person><d:formatName>X Y</d:formatName><d:name><d:nameType>Full</d:nameType>"
            "<d:partName><d:namePartType>Middle</d:namePartType><d:namePartValue>Q</d:namePartValue></d:partName>"
            "<d:partName><d:namePartType>First</d:namePartType><d:namePartValue>X</d:namePartValue></d:partName>"
            "</d:name><d:address><d:region>Oslo</d:region></d:address>"
            "<d:institutionRole><d:institutionRoleType>Guest</d:institutionRoleType>"
            "<d:primaryRoleType>false</d:primaryRoleType></d:institutionRole>"
            "<d:institutionRole><d:institutionRoleType>Staff</d:institutionRoleType>"
            "<d:primaryRoleType>true</d:primaryRoleType></d:institutionRole>"
            "<d:tel><d:telType>Fax</d:telType><d:telValue>9</d:telValue></d:tel>"
            "<d:photo><d:extRef>x</d:extRef></d:photo><d:extension/></m:person>"
        )
        client, _ = make_client(
            lambda r: (
                200,
                answer(message_id_of(r), f"<m:readPersonResponse>{person_xml}</m:readPersonResponse>"),
            )
        )
        _, person = client.read_person("k7")
        assert person == Person(sync_key="k7", given_name="X", role="Staff")


class TestAnswers:
    """How answers become values, and which answers are refused."""

    def test_failure_status_is_returned_not_raised(self, make_client) -> None:
        """A well-formed failure answer comes back as a Status with codeMinor and description."""
        client, _ = make_client(
            lambda r: (200, answer(None, status=failed(message_id_of(r), "k", "objectexists")))
        )
        status = client.change_person_identifier("a", "k")
        assert not status.ok
        assert status.code_minor == (("objectexists", "k"),)
        assert status.description == "no"
        assert status.severity == "error"

    def test_warning_is_a_success(self, make_client) -> None:
        """success + warning (replace of a missing person) is ok and keeps its description."""
        warning = "Object did not exist, has been inserted instead"

        def handler(r: requests.PreparedRequest) -> Reply:
            head = Status(
                code_major="success", severity="warning", message_id_ref=message_id_of(r), description=warning
            )
            return 200, answer(None, status=head)

        client, _ = make_client(handler)
        status = client.replace_person(FULL)
        assert status.ok
        assert (status.severity, status.description) == ("warning", warning)

    def test_wrong_message_id_ref(self, make_client) -> None:
        """An answer to another messageIdentifier is a ProtocolError naming both ids."""
        client, _ = make_client(lambda r: (200, answer("someone-else")))
        with pytest.raises(ProtocolError, match="someone-else"):
            client.delete_person("k", message_id="mine")

    def test_missing_message_id_ref(self, make_client) -> None:
        """A statusInfo without messageIdRef is a ProtocolError."""
        client, _ = make_client(lambda r: (200, answer(None)))
        with pytest.raises(ProtocolError, match="messageIdRef"):
            client.delete_person("k")

    def test_missing_response_header(self, make_client) -> None:
        """An answer without syncResponseHeaderInfo is a ProtocolError."""
        client, _ = make_client(lambda r: (200, answer(message_id_of(r), header=False)))
        with pytest.raises(ProtocolError, match="syncResponseHeaderInfo"):
            client.delete_person("k")

    def test_mass_reply_items_in_order(self, make_client) -> None:
        """createPersons returns the header status and one item status per pair, in order."""

        def handler(r: requests.PreparedRequest) -> Reply:
            ref = message_id_of(r)
            head = Status(code_major="failure", severity="warning", message_id_ref=ref)
            return 200, answer(
                None, status=head, items=[ok(ref, "a"), failed(ref, "b", "invaliddata"), ok(ref, "c")]
            )

        client, _ = make_client(handler)
        reply = client.create_persons([(Person(sync_key=k), "") for k in "abc"])
        assert isinstance(reply, MassReply)
        assert [i.code_minor[0] for i in reply.items] == [
            ("fullsuccess", "a"),
            ("invaliddata", "b"),
            ("fullsuccess", "c"),
        ]
        assert reply.status.code_major == "failure"

    @pytest.mark.parametrize("count", [0, 2, 4])
    def test_mass_item_count_must_match(self, count, make_client) -> None:
        """A statusInfoSet with more or fewer items than the request is a ProtocolError."""
        client, _ = make_client(
            lambda r: (200, answer(message_id_of(r), items=[ok(message_id_of(r))] * count))
        )
        with pytest.raises(ProtocolError, match="statusInfo items for 3"):
            client.delete_persons(["a", "b", "c"])

    def test_mass_item_wrong_ref(self, make_client) -> None:
        """One item answering another messageIdentifier is a ProtocolError."""
        client, _ = make_client(
            lambda r: (200, answer(message_id_of(r), items=[ok(message_id_of(r)), ok("other")]))
        )
        with pytest.raises(ProtocolError, match="item 1"):
            client.delete_persons(["a", "b"])

    def test_read_persons_aligns_persons_with_keys(self, make_client) -> None:
        """readPersons pairs each successful item with the next person, unknown ids with None."""

        def handler(r: requests.PreparedRequest) -> Reply:
            ref = message_id_of(r)
            people = "".join(
                f"<m:person><d:formatName>{n}</d:formatName><d:name><d:partName><d:namePartType>First"
                f"</d:namePartType><d:namePartValue>{n}</d:namePartValue></d:partName></d:name></m:person>"
                for n in ("A", "C")
            )
            body = f"<m:readPersonsResponse><m:personSet>{people}</m:personSet></m:readPersonsResponse>"
            return 200, answer(ref, body, items=[ok(ref, "a"), failed(ref, "b"), ok(ref, "c")])

        client, _ = make_client(handler)
        reply, persons = client.read_persons(["a", "b", "c"])
        assert persons == (Person(sync_key="a", given_name="A"), None, Person(sync_key="c", given_name="C"))
        assert [i.ok for i in reply.items] == [True, False, True]

    def test_read_persons_count_mismatch(self, make_client) -> None:
        """More persons than successful items is a ProtocolError."""
        body = (
            "<m:readPersonsResponse><m:personSet><m:person/><m:person/></m:personSet></m:readPersonsResponse>"
        )
        client, _ = make_client(lambda r: (200, answer(message_id_of(r), body, items=[ok(message_id_of(r))])))
        with pytest.raises(ProtocolError, match="2 persons for 1"):
            client.read_persons(["a"])

    def test_read_person_success_without_person(self, make_client) -> None:
        """A readPerson success without a person element is a ProtocolError."""
        client, _ = make_client(lambda r: (200, answer(message_id_of(r), "<m:readPersonResponse/>")))
        with pytest.raises(ProtocolError, match="without a person"):
            client.read_person("k")

    def test_read_all_persons_page(self, make_client) -> None:
        """readAllPersons yields the pairs' persons with their keys, and virtualCount."""
        pairs = "".join(
            f"<m:personIdPair><m:sourcedId><c:identifier>{k}</c:identifier></m:sourcedId>"
            f"<m:person><d:formatName xsi:nil='true' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'/>"
            f"</m:person></m:personIdPair>"
            for k in ("k1", "k2")
        )
        body = (
            f"<m:readAllPersonsResponse><m:personIdPairSet>{pairs}</m:personIdPairSet>"
            "<m:virtualCount>7</m:virtualCount></m:readAllPersonsResponse>"
        )
        client, _ = make_client(lambda r: (200, answer(message_id_of(r), body)))
        page = client.read_all_persons(page_index=0, page_size=2)
        assert page == Page(
            status=Status(code_major="success", severity="status", message_id_ref=page.status.message_id_ref),
            persons=(Person(sync_key="k1"), Person(sync_key="k2")),
            virtual_count=7,
        )

    def test_read_all_persons_failure(self, make_client) -> None:
        """A readAllPersons failure (e.g. PageSize over 100) is an empty page carrying the status."""
        client, _ = make_client(
            lambda r: (200, answer(None, status=failed(message_id_of(r), "", "invaliddata")))
        )
        page = client.read_all_persons(page_index=0, page_size=101)
        assert page.persons == ()
        assert page.status.code_minor == (("invaliddata", ""),)

    def test_response_security_header_is_accepted(self, make_client) -> None:
        """The answer's mustUnderstand Security header does not make the client refuse it."""
        client, _ = make_client(lambda r: (200, answer(message_id_of(r))))
        assert client.delete_person("k").ok


class TestFailures:
    """What goes wrong on the wire becomes the right sync.errors class, with a safe message."""

    @pytest.mark.parametrize(
        ("reply", "error"),
        [
            ((503, b"Service Unavailable"), TransientError),
            ((502, b""), TransientError),
            ((504, fault("s:Server", SOAP_ENV, "busy")), TransientError),
            ((500, b"<html><body>Runtime Error</body></html>"), TransientError),
            ((500, b"<!DOCTYPE html><html><body>IIS</body></html>"), TransientError),
            ((500, b""), TransientError),
            ((401, b""), AuthenticationError),
            ((403, b"Forbidden"), AuthenticationError),
            ((500, fault("a:InvalidSecurity", WSSE)), AuthenticationError),
            ((500, fault("a:FailedAuthentication", WSSE)), AuthenticationError),
            (
                (500, fault("a:ActionNotSupported", "http://www.w3.org/2005/08/addressing", "no")),
                RejectedError,
            ),
            ((500, fault("s:Client", SOAP_ENV, "bad request")), RejectedError),
            ((400, b"Bad Request"), RejectedError),
            ((404, b"Not Found"), RejectedError),
            ((302, b""), ProtocolError),
            ((200, b"this is not xml"), ProtocolError),
            ((200, b""), ProtocolError),
            ((200, b"<x/>"), ProtocolError),
        ],
    )
    def test_http_answers(self, reply, error, make_client) -> None:
        """Each status/body combination maps to its documented exception."""
        client, _ = make_client(lambda r: reply)
        with pytest.raises(error) as caught:
            client.delete_person("k")
        assert type(caught.value) is error
        assert "deletePerson" in str(caught.value)
        assert "ims.example.org" in str(caught.value)

    @pytest.mark.parametrize(
        "raised",
        [
            requests.exceptions.ConnectTimeout("connect timed out"),
            requests.exceptions.ReadTimeout("read timed out"),
            requests.exceptions.ConnectionError("Connection aborted. RemoteDisconnected"),
            requests.exceptions.ChunkedEncodingError("IncompleteRead"),
        ],
    )
    def test_network_failures_are_transient(self, raised, make_client) -> None:
        """Timeouts, refused and dropped connections are TransientError, chained to the cause."""
        client, _ = make_client(lambda r: raised)
        with pytest.raises(TransientError) as caught:
            client.update_person(FULL)
        assert caught.value.__cause__ is raised

    def test_certificate_failure(self, make_client) -> None:
        """An unverifiable certificate is a CertificateError that suggests --ca-bundle."""
        cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed certificate")
        client, _ = make_client(lambda r: requests.exceptions.SSLError(cause))
        with pytest.raises(CertificateError, match="--ca-bundle"):
            client.update_person(FULL)

    def test_other_tls_failure_is_transient(self, make_client) -> None:
        """A TLS failure that is not about the certificate is transient."""
        client, _ = make_client(
            lambda r: requests.exceptions.SSLError("EOF occurred in violation of protocol")
        )
        with pytest.raises(TransientError):
            client.update_person(FULL)

    @pytest.mark.parametrize(
        "body",
        [
            b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            b"<s>&b;</s>",
            b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s>&x;</s>',
            b'<?xml version="1.0"?><!DOCTYPE s SYSTEM "http://example.invalid/x.dtd"><s/>',
        ],
        ids=["billion-laughs", "xxe", "external-dtd"],
    )
    def test_dtd_and_entities_refused(self, body, make_client) -> None:
        """An answer with a DTD or entities is a ProtocolError; nothing is expanded or fetched."""
        client, _ = make_client(lambda r: (200, body))
        with pytest.raises(ProtocolError, match=r"DTD|entities|well-formed"):
            client.delete_person("k")

    def test_secrets_never_in_errors(self, make_client) -> None:
        """Neither the IMS ES password nor a person's password appears in any error message."""
        replies: list[Reply] = [
            (500, fault("a:InvalidSecurity", WSSE)),
            (503, b""),
            (200, b"junk"),
            requests.exceptions.ConnectionError("reset"),
        ]
        for reply in replies:
            client, _ = make_client(lambda r, reply=reply: reply)
            with pytest.raises(SyncError) as caught:
                client.create_person(FULL, password=PERSON_PASSWORD)
            for text in (str(caught.value), repr(caught.value)):
                assert PASSWORD not in text
                assert PERSON_PASSWORD not in text


# --- construction and secrets ---------------------------------------------------------------------


class TestConstruction:
    """Configuration checks and what the client shows of itself."""

    @pytest.mark.parametrize(
        "url", ["http://ims.example.org/PersonManagementService.svc", "ftp://x/y", "ims.example.org/x.svc"]
    )
    def test_non_https_url_refused(self, url) -> None:
        """Anything but https:// is a ConfigError that says so."""
        with pytest.raises(ConfigError, match="https://"):
            PersonClient(url=url, username=USERNAME, password=PASSWORD)

    def test_http_extended_url_refused(self) -> None:
        """An http:// Extended URL is refused too."""
        with pytest.raises(ConfigError, match="https://"):
            PersonClient(url=URL, username=USERNAME, password=PASSWORD, extended_url="http://x/E.svc")

    def test_http_wsdl_url_refused(self) -> None:
        """A WSDL fetched over plain HTTP is refused."""
        with pytest.raises(ConfigError, match="https://"):
            PersonClient(url=URL, username=USERNAME, password=PASSWORD, wsdl="http://x/P.svc?wsdl")

    def test_credentials_in_url_refused(self) -> None:
        """User info in the URL is refused, and its password is not echoed."""
        with pytest.raises(ConfigError) as caught:
            PersonClient(url="https://u:hunter2@x.example/P.svc", username=USERNAME, password=PASSWORD)
        assert "hunter2" not in str(caught.value)

    def test_missing_files_refused(self, tmp_path) -> None:
        """A missing CA bundle or WSDL file is a ConfigError."""
        with pytest.raises(ConfigError, match="CA bundle"):
            PersonClient(url=URL, username=USERNAME, password=PASSWORD, ca_bundle=tmp_path / "none.pem")
        with pytest.raises(ConfigError, match="WSDL"):
            PersonClient(url=URL, username=USERNAME, password=PASSWORD, wsdl=tmp_path / "none.wsdl")

    @requires_itslearning
    def test_itslearning_wsdl_works_too(self) -> None:
        """With itslearning's PMS WSDL the client sends no WS-Addressing; readAllPersons uses ours."""
        adapter = ReplayAdapter(success_handler)
        client = PersonClient(
            url=URL,
            username=USERNAME,
            password=PASSWORD,
            wsdl=ITSLEARNING / "PersonManagementServiceSync.svc.xml",
            adapter=adapter,
        )
        client.change_person_identifier("a", "b")
        client.read_all_persons(page_index=0)
        namespaces = {etree.QName(e).namespace for e in adapter.envelope(0).iter()}
        assert not namespaces & set(WSA_NAMESPACES)
        assert adapter.requests[1].url == EXTENDED_URL

    def test_repr_shows_url_and_username_only(self, make_client) -> None:
        """repr(client) and repr of its security object never show the password."""
        client, _ = make_client(success_handler)
        assert repr(client) == f"PersonClient(url={URL!r}, username={USERNAME!r})"
        assert PASSWORD not in repr(UsernameTokenSecurity(USERNAME, PASSWORD))
        assert PASSWORD not in repr(vars(client))

    def test_context_manager_closes(self, make_client) -> None:
        """Leaving the with block closes the client's session."""
        closed: list[bool] = []

        class Closing(ReplayAdapter):
            def close(self) -> None:
                closed.append(True)

        with PersonClient(url=URL, username=USERNAME, password=PASSWORD, adapter=Closing(success_handler)):
            pass
        assert closed == [True]

    def test_defaults(self) -> None:
        """The default timeouts are the WCF client's: one minute to connect, five to read."""
        assert Timeouts(connect=60.0, read=300.0) == DEFAULT_TIMEOUTS
        assert uuid.UUID(new_message_id()).version == 4


# --- exception mapping completeness ---------------------------------------------------------------


def _all_classes(module: object) -> list[type[BaseException]]:
    return sorted(
        (
            cls
            for cls in vars(module).values()
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == module.__name__  # type: ignore[attr-defined]
        ),
        key=lambda cls: cls.__name__,
    )


def _lxml_syntax_error() -> etree.XMLSyntaxError:
    """A real lxml syntax error."""
    try:
        etree.fromstring(b"<unclosed")
    except etree.XMLSyntaxError as exc:
        return exc
    raise AssertionError("lxml parsed a broken document")


def _build(cls: type[BaseException]) -> BaseException:
    """An instance of any zeep/requests exception class, whatever its constructor wants."""
    make: Callable[..., BaseException] = cls  # zeep's constructors carry no annotations
    if cls is zeep.exceptions.DTDForbidden:
        return make("name", "sysid", "pubid")
    if cls is zeep.exceptions.EntitiesForbidden:
        return make("name", "content")
    if cls is zeep.exceptions.ExternalReferenceForbidden:
        return make("http://example.invalid/")
    if cls is zeep.exceptions.TransportError:
        return make("HTTP 500", status_code=500)
    if cls is zeep.exceptions.Fault:
        return make("something", code="s:Client")
    if cls is requests.exceptions.JSONDecodeError:
        return make("message", "document", 0)
    return make("message")


def test_server_fault_is_transient() -> None:
    """A SOAP 1.1 Server fault is the service failing, not our data: retried like a 503."""
    fault = zeep.exceptions.Fault("internal error", code="s:Server")  # type: ignore[no-untyped-call]
    mapped = translate_exception(fault, operation="createPerson", endpoint="https://x/")
    assert isinstance(mapped, TransientError)
    client_fault = zeep.exceptions.Fault("bad", code="s:Client")  # type: ignore[no-untyped-call]
    assert isinstance(
        translate_exception(client_fault, operation="createPerson", endpoint="https://x/"), RejectedError
    )


# What each class maps to. A class added by a new zeep or requests version fails the test below
# until it is listed here, on purpose: someone must decide whether it is transient.
EXPECTED: Final[dict[type[BaseException], type[SyncError]]] = {
    zeep.exceptions.DTDForbidden: ProtocolError,
    zeep.exceptions.EntitiesForbidden: ProtocolError,
    zeep.exceptions.Error: ProtocolError,
    zeep.exceptions.ExternalReferenceForbidden: ProtocolError,
    zeep.exceptions.Fault: RejectedError,
    zeep.exceptions.IncompleteMessage: ProtocolError,
    zeep.exceptions.IncompleteOperation: ProtocolError,
    zeep.exceptions.LookupError: ProtocolError,
    zeep.exceptions.NamespaceError: ProtocolError,
    zeep.exceptions.SignatureVerificationFailed: ProtocolError,
    zeep.exceptions.TransportError: TransientError,  # built with status 500
    zeep.exceptions.UnexpectedElementError: ProtocolError,
    zeep.exceptions.ValidationError: RejectedError,
    zeep.exceptions.WsdlSyntaxError: ConfigError,
    zeep.exceptions.XMLParseError: ProtocolError,
    zeep.exceptions.XMLSyntaxError: ProtocolError,
    zeep.exceptions.ZeepWarning: ProtocolError,
    requests.exceptions.ChunkedEncodingError: TransientError,
    requests.exceptions.ConnectTimeout: TransientError,
    requests.exceptions.ConnectionError: TransientError,
    requests.exceptions.ContentDecodingError: TransientError,
    requests.exceptions.FileModeWarning: ProtocolError,
    requests.exceptions.HTTPError: RejectedError,  # no response: status unknown
    requests.exceptions.InvalidHeader: ConfigError,
    requests.exceptions.InvalidJSONError: ProtocolError,
    requests.exceptions.InvalidProxyURL: ConfigError,
    requests.exceptions.InvalidSchema: ConfigError,
    requests.exceptions.InvalidURL: ConfigError,
    requests.exceptions.JSONDecodeError: ProtocolError,
    requests.exceptions.MissingSchema: ConfigError,
    requests.exceptions.ProxyError: TransientError,
    requests.exceptions.ReadTimeout: TransientError,
    requests.exceptions.RequestException: TransientError,
    requests.exceptions.RequestsDependencyWarning: ProtocolError,
    requests.exceptions.RequestsWarning: ProtocolError,
    requests.exceptions.RetryError: TransientError,
    requests.exceptions.SSLError: TransientError,  # not a certificate failure (see TestFailures)
    requests.exceptions.StreamConsumedError: ProtocolError,
    requests.exceptions.Timeout: TransientError,
    requests.exceptions.TooManyRedirects: ProtocolError,
    requests.exceptions.URLRequired: ConfigError,
    requests.exceptions.UnrewindableBodyError: ProtocolError,
}


class TestExceptionMapping:
    """Every exception class zeep and requests define is translated (httpx's all-exceptions-mapped test)."""

    def test_every_class_is_listed(self) -> None:
        """The expectation table covers exactly the classes the installed zeep and requests define."""
        defined = set(_all_classes(zeep.exceptions)) | set(_all_classes(requests.exceptions))
        assert defined == set(EXPECTED)

    @pytest.mark.parametrize(
        "cls", [*_all_classes(zeep.exceptions), *_all_classes(requests.exceptions)], ids=lambda c: c.__name__
    )
    def test_each_class_is_mapped(self, cls) -> None:
        """An instance of each class becomes exactly the expected sync.errors class, naming the operation."""
        mapped = translate_exception(_build(cls), operation="createPerson", endpoint=URL)
        assert type(mapped) is EXPECTED[cls]
        assert "createPerson" in str(mapped)
        assert "ims.example.org" in str(mapped)

    @pytest.mark.parametrize(
        ("status", "error"),
        [(401, AuthenticationError), (403, AuthenticationError), (408, TransientError), (429, TransientError),
         (500, TransientError), (503, TransientError), (400, RejectedError), (301, ProtocolError)],
    )  # fmt: skip
    def test_http_status_mapping(self, status, error) -> None:
        """Statuses carried by zeep's TransportError and requests' HTTPError map alike."""
        response = requests.Response()
        response.status_code = status
        for exc in (
            zeep.exceptions.TransportError("x", status_code=status),  # type: ignore[no-untyped-call]
            requests.exceptions.HTTPError("x", response=response),
        ):
            assert type(translate_exception(exc, operation="op", endpoint=URL)) is error

    def test_endpoint_user_info_is_dropped(self) -> None:
        """An endpoint with user info is shown without it."""
        mapped = translate_exception(
            requests.exceptions.ConnectionError("x"), operation="op", endpoint="https://u:pw99@h.example/p"
        )
        assert "pw99" not in str(mapped)
        assert "https://h.example/p" in str(mapped)

    def test_lower_layers_are_mapped(self) -> None:
        """urllib3, socket and ssl errors that slip past requests are still translated."""
        cases: list[tuple[BaseException, type[SyncError]]] = [
            (urllib3.exceptions.ProtocolError("x"), TransientError),
            (ConnectionResetError(104, "reset"), TransientError),
            (ssl.SSLCertVerificationError(1, "bad"), CertificateError),
            (_lxml_syntax_error(), ProtocolError),
            (RuntimeError("x"), ProtocolError),
        ]
        for exc, error in cases:
            assert type(translate_exception(exc, operation="op", endpoint=URL)) is error

    def test_sync_errors_pass_through(self) -> None:
        """An exception that already is a SyncError is returned as is."""
        error = ProtocolError("ours")
        assert translate_exception(error, operation="op", endpoint=URL) is error


def test_status_values_are_frozen() -> None:
    """Status answers are immutable values (the executor shares them across threads)."""
    status = ok("r")
    with pytest.raises(AttributeError):
        status.code_major = "failure"  # type: ignore[misc]


# --- our WSDL's schemas against itslearning's, structurally -------------------------------------

XS: Final = "http://www.w3.org/2001/XMLSchema"
WSDL_NS: Final = "http://schemas.xmlsoap.org/wsdl/"


class SchemaIndex:
    """The global declarations of every schema inline in one WSDL, for walking content models."""

    def __init__(self, path: Path) -> None:
        """Index `path`'s inline schemas by (namespace, kind, name)."""
        self.declarations: dict[tuple[str, str, str], etree._Element] = {}
        self.namespace_of: dict[etree._Element, str] = {}
        root = etree.parse(str(path), safe_parser()).getroot()
        for schema in root.iterfind(f"{{{WSDL_NS}}}types/{{{XS}}}schema"):
            namespace = schema.get("targetNamespace", "")
            for child in schema:
                if isinstance(child.tag, str) and child.get("name"):
                    self.declarations[(namespace, etree.QName(child).localname, child.get("name", ""))] = (
                        child
                    )
            for element in schema.iter():
                self.namespace_of[element] = namespace

    def resolve(self, context: etree._Element, qname: str, kind: str) -> etree._Element | None:
        """The global declaration a prefixed name refers to (None for XML Schema's built-in types)."""
        prefix, _, local = qname.rpartition(":")
        namespace = context.nsmap.get(prefix or None, "")
        if namespace == XS:
            return None
        return self.declarations[(namespace, kind, local)]

    def element(self, declaration: etree._Element) -> tuple[object, ...]:
        """An element's name, occurrence, nillability and content, with every reference followed."""
        occurs = (declaration.get("minOccurs", "1"), declaration.get("maxOccurs", "1"))
        if declaration.get("ref"):
            target = self.resolve(declaration, declaration.get("ref", ""), "element")
            assert target is not None
            return (*occurs, *self.element(target)[2:])
        name = (self.namespace_of[declaration], declaration.get("name"), declaration.get("nillable", "false"))
        type_name = declaration.get("type")
        content: tuple[object, ...]
        if type_name:
            prefix, _, local = type_name.rpartition(":")
            namespace = declaration.nsmap.get(prefix or None, "")
            named = self.declarations.get((namespace, "complexType", local))
            if namespace == XS:
                content = ("builtin", local)
            else:
                content = self.type(
                    named if named is not None else self.declarations[(namespace, "simpleType", local)]
                )
        else:
            inline = [
                c for c in declaration if isinstance(c.tag, str) and etree.QName(c).localname != "annotation"
            ]
            content = self.type(inline[0]) if inline else ("empty",)
        return (*occurs, *name, content)

    def type(self, declaration: etree._Element) -> tuple[object, ...]:
        """A simple or complex type's content: enumerations, or child elements in order (bases first)."""
        kind = etree.QName(declaration).localname
        if kind == "simpleType":
            restriction = declaration.find(f"{{{XS}}}restriction")
            assert restriction is not None
            values = tuple(e.get("value") for e in restriction.iterfind(f"{{{XS}}}enumeration"))
            return ("simple", restriction.get("base", "").rpartition(":")[2], values)
        children: list[tuple[object, ...]] = []
        extension = declaration.find(f"{{{XS}}}complexContent/{{{XS}}}extension")
        if extension is not None:
            base = self.resolve(extension, extension.get("base", ""), "complexType")
            assert base is not None
            children.extend(self.type(base)[1])  # type: ignore[arg-type]
            declaration = extension
        sequence = declaration.find(f"{{{XS}}}sequence")
        if sequence is not None:
            children.extend(self.element(e) for e in sequence.iterfind(f"{{{XS}}}element"))
        return ("complex", tuple(children))


@requires_itslearning
class TestWsdlMatchesItslearning:
    """Every element our WSDL declares has itslearning's names, namespaces, types, occurrence and order."""

    @pytest.mark.parametrize(
        "name",
        [f"{op}{kind}" for op in CALLS for kind in ("Request", "Response")]
        + ["syncRequestHeaderInfo", "syncResponseHeaderInfo"],
    )
    def test_global_element_is_identical(self, name) -> None:
        """The fully expanded content model of each message element equals itslearning's."""
        ours = SchemaIndex(BUNDLED_WSDL)
        theirs = SchemaIndex(
            ITSLEARNING
            / (
                "ExtendedPersonManagementServiceSync.xml"
                if name.startswith("readAllPersons")
                else "PersonManagementServiceSync.svc.xml"
            )
        )
        namespace = BIND if name.startswith("sync") else PMS_MESS
        mine = ours.element(ours.declarations[(namespace, "element", name)])
        reference = theirs.element(theirs.declarations[(namespace, "element", name)])
        assert mine == reference

    def test_walker_sees_differences(self) -> None:
        """The comparison is not vacuous: the person's model is deep and differs between two messages."""
        ours = SchemaIndex(BUNDLED_WSDL)
        create = ours.element(ours.declarations[(PMS_MESS, "element", "createPersonRequest")])
        delete = ours.element(ours.declarations[(PMS_MESS, "element", "deletePersonRequest")])
        assert create != delete
        assert "bday" in repr(create)
        assert "primaryRoleType" in repr(create)
