"""The IMS ES clients (PMS, GMS, MMS): zeep builds the SOAP messages, requests carries them over HTTPS.

This is the only module that imports zeep and requests; their exceptions are translated here, once, in
`translate_exception`, and never escape. `ServiceClient` holds what the clients of every IMS ES service
share (WS-Security, HTTPS, rendering, the exchange, the status and messageIdRef checks); `PersonClient`
is the PMS one, `GroupClient` and `MembershipClient` the GMS and MMS ones. One client parses its WSDL
once, holds one pooled `requests.Session`, and is safe to call from many threads at once: every piece of
per-call state (the messageIdentifier, the WS-Security nonce and timestamps, the envelope) lives in the
call's locals.

A call goes: Person → zeep value → envelope (zeep, from the WSDL) → WS-Security header (ours) → bytes →
HTTPS POST (requests) → status check → safe parse (zeep's `parse_xml`: no DTD, no entities, no network) →
SOAP fault or `syncResponseHeaderInfo` → `Status` values, checked against our messageIdentifier.

Thread safety, checked against zeep 4.3's code: of zeep the client uses only the parsed WSDL (binding
operations' `create`, which builds new value objects and a new envelope per call) and `parse_xml`. The
parsed WSDL is read-only once loaded except for `functools.cached_property` caches on schema types; the
constructor builds one message of every kind first, so those are filled before threads share it. zeep's
own send path (`Client.service`, its Transport's `post`, which logs whole envelopes, passwords included,
at DEBUG) is not used. requests' Session and urllib3's pool are shared; nothing per call is stored on
them. Each bundled WSDL is parsed once per process and shared by all clients of its service.
"""

from __future__ import annotations

import base64
import copy
import functools
import os
import ssl
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3.exceptions
import zeep
import zeep.exceptions
from lxml import etree
from zeep import xsd
from zeep.loader import parse_xml

from sync.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    ProtocolError,
    RejectedError,
    SyncError,
    TransientError,
    UnmatchedAnswerError,
)
from sync.models import Group, Membership, Person, Status

__all__ = [
    "BUNDLED_GMS_WSDL",
    "BUNDLED_MMS_WSDL",
    "BUNDLED_WSDL",
    "DEFAULT_TIMEOUTS",
    "GMS_SPEC",
    "GROUP_SCHEME",
    "MMS_SPEC",
    "PMS_SPEC",
    "GroupClient",
    "MassReply",
    "MembershipClient",
    "Page",
    "PersonClient",
    "RequestBody",
    "ServiceClient",
    "ServiceSpec",
    "Timeouts",
    "display_url",
    "group_from_xml",
    "group_value",
    "membership_from_xml",
    "membership_value",
    "new_message_id",
    "require_https",
    "service_urls",
    "translate_exception",
]

#: The WSDL shipped with the package (PMS + ExtendedPersonManagement, schemas inline).
BUNDLED_WSDL: Final = Path(__file__).resolve().parent / "wsdl" / "pms.wsdl"

MESS: Final = "http://www.imsglobal.org/services/pms/xsd/imsPersonManMessSchema_v1p0"
DATA: Final = "http://www.imsglobal.org/services/pms/xsd/imsPersonManDataSchema_v1p0"
COMMON: Final = "http://www.imsglobal.org/services/common/imsCommonSchema_v1p0"
BIND: Final = "http://www.imsglobal.org/services/common/imsMessBindSchema_v1p0"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
# The token type's URI, not a password.
PASSWORD_TEXT: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"  # noqa: S105
)
BASE64_BINARY: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
SOAP_ACTION_BASE: Final = "http://www.imsglobal.org/soap/pms/"

_PMS_BINDING: Final = "BasicHttpBinding_PersonManagementServiceSync"
_EXTENDED_BINDING: Final = "BasicHttpBinding_ExtendedPersonManagementServiceSync"
_PMS_OPERATIONS: Final = (
    "createPerson",
    "updatePerson",
    "replacePerson",
    "deletePerson",
    "readPerson",
    "readPersons",
    "changePersonIdentifier",
    "createPersons",
    "deletePersons",
)
_EXTENDED_OPERATIONS: Final = ("readAllPersons",)
_AUTH_FAULTS: Final = frozenset({"InvalidSecurity", "FailedAuthentication"})
_TRANSIENT_HTTP: Final = frozenset({408, 429, 502, 503, 504})
_TOKEN_LIFETIME: Final = timedelta(minutes=5)
# The prefixes itslearning's documentation uses.
_PREFIXES: Final = {"ims": BIND, "ims1": MESS, "ims2": COMMON, "ims3": DATA}


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """HTTP timeouts in seconds: `connect` to open a connection, `read` to wait for each part of an answer."""

    connect: float
    read: float


#: As itslearning's own WCF example client: open 1 min, send/receive 5 min.
DEFAULT_TIMEOUTS: Final = Timeouts(connect=60.0, read=300.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class MassReply:
    """The answer to a mass request: the header's statusInfo and one statusInfo per item, in request order."""

    status: Status
    items: tuple[Status, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of readAllPersons: status, persons (ordered by sync key) and the site's total count."""

    status: Status
    persons: tuple[Person, ...]
    virtual_count: int


def new_message_id() -> str:
    """A fresh messageIdentifier (a random UUID)."""
    return str(uuid.uuid4())


class _Secret:
    """A string that never shows itself in a repr, a log line or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"


def _xml_time(moment: datetime) -> str:
    """UTC with milliseconds and a Z, the form WCF writes and expects."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class UsernameTokenSecurity:
    """A zeep `wsse` object: adds WCF's `wsse:Security` header (Timestamp + UsernameToken, PasswordText).

    Each `apply` builds a fresh header (new nonce, new times, new ids), so one instance serves many
    threads. `verify` accepts the answer's Security header (a Timestamp, mustUnderstand="1") as is.
    """

    __slots__ = ("_password", "_username")

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = _Secret(password)

    def __repr__(self) -> str:
        return f"UsernameTokenSecurity(username={self._username!r})"

    def apply(
        self, envelope: etree._Element, headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Insert the Security header as the first SOAP header block; return the envelope and headers."""
        header = envelope.find(f"{{{SOAP_ENV}}}Header")
        if header is None:
            header = etree.Element(f"{{{SOAP_ENV}}}Header")
            envelope.insert(0, header)
        header.insert(0, self.security_element())
        return envelope, headers

    def verify(self, envelope: etree._Element) -> None:
        """Accept the answer: HTTPS already authenticates the server, and WCF signs nothing here."""

    def security_element(self, now: datetime | None = None) -> etree._Element:
        """A new `wsse:Security` element valid from `now` (default: the current time) for five minutes."""
        created = now or datetime.now(UTC)
        token_id = uuid.uuid4().hex
        security = etree.Element(f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
        security.set(f"{{{SOAP_ENV}}}mustUnderstand", "1")
        timestamp = etree.SubElement(security, f"{{{WSU}}}Timestamp")
        timestamp.set(f"{{{WSU}}}Id", f"TS-{token_id}")
        etree.SubElement(timestamp, f"{{{WSU}}}Created").text = _xml_time(created)
        etree.SubElement(timestamp, f"{{{WSU}}}Expires").text = _xml_time(created + _TOKEN_LIFETIME)
        token = etree.SubElement(security, f"{{{WSSE}}}UsernameToken")
        token.set(f"{{{WSU}}}Id", f"UsernameToken-{token_id}")
        etree.SubElement(token, f"{{{WSSE}}}Username").text = self._username
        password = etree.SubElement(token, f"{{{WSSE}}}Password", Type=PASSWORD_TEXT)
        password.text = self._password.reveal()
        nonce = etree.SubElement(token, f"{{{WSSE}}}Nonce", EncodingType=BASE64_BINARY)
        nonce.text = base64.b64encode(os.urandom(16)).decode("ascii")
        etree.SubElement(token, f"{{{WSU}}}Created").text = _xml_time(created)
        return security


# --- exception translation ----------------------------------------------------------------------


def _is_certificate_failure(exc: BaseException) -> bool:
    """True when the TLS handshake failed because the server's certificate did not verify."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(item):
            return True
        # requests wraps urllib3's MaxRetryError, whose `reason` holds the ssl error.
        todo.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return False


def _http_status_error(status: int, where: str) -> SyncError:
    if status in (401, 403):
        return AuthenticationError(f"{where}: HTTP {status}, the service refused the credentials")
    if status in _TRANSIENT_HTTP or status >= 500:
        return TransientError(f"{where}: HTTP {status} without a SOAP answer")
    if 300 <= status < 400:
        return ProtocolError(f"{where}: unexpected redirect (HTTP {status}); check the service URL")
    if status == 200:
        return ProtocolError(f"{where}: the answer is not a SOAP message")
    return RejectedError(f"{where}: HTTP {status}, the service refused the request")


def translate_exception(  # noqa: PLR0912  # one flat ladder is the point: every mapping in one place
    exc: BaseException, *, operation: str, endpoint: str
) -> SyncError:
    """Map an exception raised by zeep, requests, urllib3 or the socket layer to a `sync.errors` class.

    The message names the operation and endpoint, never a credential. The caller raises the result
    `from exc`.

    Args:
        exc: What a call raised.
        operation: The IMS ES operation (e.g. "createPerson").
        endpoint: The URL that was called (user info is dropped before it is shown).
    """
    where = f"{operation} to {display_url(endpoint)}"
    match exc:
        case SyncError():
            return exc
        # --- zeep
        case zeep.exceptions.Fault():
            code = (exc.code or "").rpartition(":")[2]
            text = f"{where}: SOAP fault {exc.code or '(no code)'}: {exc.message}"
            if code in _AUTH_FAULTS:
                return AuthenticationError(text)
            if code == "Server":
                # SOAP 1.1: the server failed, not our message. itslearning: retry server errors.
                return TransientError(text)
            return RejectedError(text)
        case zeep.exceptions.TransportError():
            return _http_status_error(exc.status_code, where)
        case zeep.exceptions.DTDForbidden() | zeep.exceptions.EntitiesForbidden():
            return ProtocolError(f"{where}: the answer declares a DTD or entities; refused")
        case zeep.exceptions.ExternalReferenceForbidden():
            return ProtocolError(f"{where}: the answer refers to an external document; refused")
        case zeep.exceptions.XMLSyntaxError() | zeep.exceptions.XMLParseError():
            return ProtocolError(f"{where}: the answer is not well-formed XML")
        case zeep.exceptions.UnexpectedElementError():
            return ProtocolError(f"{where}: the answer does not match the WSDL")
        case zeep.exceptions.ValidationError():
            return RejectedError(f"{where}: the request does not fit the schema: {exc.message}")
        case zeep.exceptions.WsdlSyntaxError():
            return ConfigError(f"{where}: the WSDL is unusable: {exc.message}")
        case zeep.exceptions.Error():
            # LookupError, NamespaceError, IncompleteMessage/Operation, SignatureVerificationFailed, ...
            return ProtocolError(f"{where}: {type(exc).__name__}: {exc.message}")
        # --- requests (the order matters: SSLError and ConnectTimeout are ConnectionErrors)
        case requests.exceptions.SSLError():
            if _is_certificate_failure(exc):
                return CertificateError(
                    f"{where}: the server's TLS certificate did not verify; if the service uses a "
                    "private or self-signed CA, pass its certificate with --ca-bundle"
                )
            return TransientError(f"{where}: TLS handshake failed")
        case requests.exceptions.Timeout():
            return TransientError(f"{where}: timed out ({type(exc).__name__})")
        case requests.exceptions.ProxyError():
            return TransientError(f"{where}: the proxy failed")
        case requests.exceptions.ConnectionError():
            return TransientError(f"{where}: connection failed or dropped")
        case requests.exceptions.ChunkedEncodingError() | requests.exceptions.ContentDecodingError():
            return TransientError(f"{where}: the answer was cut off or garbled in transit")
        case requests.exceptions.HTTPError():
            status = exc.response.status_code if exc.response is not None else 0
            return _http_status_error(status, where)
        case requests.exceptions.RetryError():
            return TransientError(f"{where}: gave up after retries")
        case (
            requests.exceptions.URLRequired()
            | requests.exceptions.MissingSchema()
            | requests.exceptions.InvalidSchema()
            | requests.exceptions.InvalidURL()
            | requests.exceptions.InvalidHeader()
        ):
            return ConfigError(f"{where}: invalid URL or header ({type(exc).__name__})")
        case requests.exceptions.TooManyRedirects():
            return ProtocolError(f"{where}: too many redirects")
        case (
            requests.exceptions.InvalidJSONError()
            | requests.exceptions.StreamConsumedError()
            | requests.exceptions.UnrewindableBodyError()
        ):
            return ProtocolError(f"{where}: {type(exc).__name__}")
        case requests.exceptions.RequestException():
            return TransientError(f"{where}: request failed ({type(exc).__name__})")
        # --- below requests: urllib3 and the socket layer, in case something slips through
        case ssl.SSLCertVerificationError():
            return CertificateError(
                f"{where}: the server's TLS certificate did not verify; if the service uses a "
                "private or self-signed CA, pass its certificate with --ca-bundle"
            )
        case urllib3.exceptions.HTTPError() | OSError():
            return TransientError(f"{where}: connection failed ({type(exc).__name__})")
        case etree.LxmlError():
            return ProtocolError(f"{where}: the answer is not usable XML")
        case _:
            return ProtocolError(f"{where}: unexpected {type(exc).__name__}")


def _status_error(status: int) -> zeep.exceptions.TransportError:
    """An HTTP status that is no SOAP answer, raised for `translate_exception` to judge."""
    return zeep.exceptions.TransportError(f"HTTP {status}", status_code=status)  # type: ignore[no-untyped-call]


def _fault(message: str, code: str) -> zeep.exceptions.Fault:
    """A SOAP 1.1 fault of the answer, raised for `translate_exception` to judge."""
    return zeep.exceptions.Fault(message, code=code or None)  # type: ignore[no-untyped-call]


# Everything a call can raise that is not ours: translated by `translate_exception`.
_FOREIGN: Final = (
    zeep.exceptions.Error,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
    etree.LxmlError,
    ValueError,
)


# --- Person <-> zeep value / XML ----------------------------------------------------------------


def person_value(person: Person, *, password: str = "") -> dict[str, Any]:
    """The zeep value of a `person` element (contract: PERSON ⇄ IMS ES XML); `password` only on creates."""
    value: dict[str, Any] = {"formatName": f"{person.given_name} {person.family_name}".strip() or xsd.Nil}
    parts = [
        {"namePartType": kind, "namePartValue": text}
        for kind, text in (("First", person.given_name), ("Last", person.family_name))
        if text
    ]
    if parts:
        value["name"] = {"partName": parts}
    if person.email:
        value["email"] = person.email
    user: dict[str, str] = {}
    if person.username:
        user["userIdValue"] = person.username
    if password:
        user["passWord"] = password
    if user:
        value["userId"] = user
    if person.birth_date:
        # gender is required when demographics is present; the roster has none: "Gender" = unspecified.
        value["demographics"] = {"gender": "Gender", "bday": person.birth_date}
    if person.role:
        value["institutionRole"] = [{"institutionRoleType": person.role, "primaryRoleType": True}]
    tels = [
        {"telType": kind, "telValue": number}
        for kind, number in (("Voice", person.phone), ("Mobile", person.mobile))
        if number
    ]
    if tels:
        value["tel"] = tels
    return value


XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_NSMAP: Final = {"xsi": XSI}


@dataclass(frozen=True, slots=True)
class RequestBody:
    """A request body two ways: zeep's value (`value()`) and a direct builder (`build(request)`).

    The builder appends the request element's children with lxml, exactly as zeep would render them
    from the bundled WSDL; `PersonClient` uses it only for operations where its warm-up showed the
    two renderings byte-identical (see `PersonClient._warm_up`).
    """

    value: Callable[[], Mapping[str, Any]]
    build: Callable[[etree._Element], None]


def _text(parent: etree._Element, tag: str, text: str) -> None:
    etree.SubElement(parent, tag).text = text


def _nil(parent: etree._Element, tag: str) -> None:
    etree.SubElement(parent, tag, nsmap=_XSI_NSMAP).set(f"{{{XSI}}}nil", "true")


def _identifier(parent: etree._Element, tag: str, key: str) -> None:
    _text(etree.SubElement(parent, f"{{{MESS}}}{tag}"), f"{{{COMMON}}}identifier", key)


def _name_xml(name: etree._Element, person: Person) -> None:
    for kind, text in (("First", person.given_name), ("Last", person.family_name)):
        if text:
            part = etree.SubElement(name, f"{{{DATA}}}partName")
            _text(part, f"{{{DATA}}}namePartType", kind)
            _text(part, f"{{{DATA}}}namePartValue", text)


def _person_xml(parent: etree._Element, person: Person, password: str) -> None:
    """The `person` element as zeep renders `person_value(person, password=password)`."""
    element = etree.SubElement(parent, f"{{{MESS}}}person")
    format_name = f"{person.given_name} {person.family_name}".strip()
    if format_name:
        _text(element, f"{{{DATA}}}formatName", format_name)
    else:
        _nil(element, f"{{{DATA}}}formatName")
    if person.given_name or person.family_name:
        _name_xml(etree.SubElement(element, f"{{{DATA}}}name"), person)
    if person.email:
        _text(element, f"{{{COMMON}}}email", person.email)
    if person.username or password:
        user = etree.SubElement(element, f"{{{DATA}}}userId")
        if person.username:
            _text(user, f"{{{COMMON}}}userIdValue", person.username)
        if password:
            _text(user, f"{{{COMMON}}}passWord", password)
    if person.birth_date:
        demographics = etree.SubElement(element, f"{{{DATA}}}demographics")
        _text(demographics, f"{{{DATA}}}gender", "Gender")
        _text(demographics, f"{{{DATA}}}bday", person.birth_date)
    if person.role:
        role = etree.SubElement(element, f"{{{DATA}}}institutionRole")
        _text(role, f"{{{DATA}}}institutionRoleType", person.role)
        _text(role, f"{{{DATA}}}primaryRoleType", "true")
    for kind, number in (("Voice", person.phone), ("Mobile", person.mobile)):
        if number:
            tel = etree.SubElement(element, f"{{{DATA}}}tel")
            _text(tel, f"{{{DATA}}}telType", kind)
            _text(tel, f"{{{DATA}}}telValue", number)


def _person_body(person: Person, password: str = "") -> RequestBody:
    def value() -> Mapping[str, Any]:
        return {
            "sourcedId": {"identifier": person.sync_key},
            "person": person_value(person, password=password),
        }

    def build(request: etree._Element) -> None:
        _identifier(request, "sourcedId", person.sync_key)
        _person_xml(request, person, password)

    return RequestBody(value, build)


def _pairs_body(items: Sequence[tuple[Person, str]]) -> RequestBody:
    def value() -> Mapping[str, Any]:
        pairs = [
            {"sourcedId": {"identifier": p.sync_key}, "person": person_value(p, password=pw)}
            for p, pw in items
        ]
        return {"personIdPairSet": {"personIdPair": pairs}}

    def build(request: etree._Element) -> None:
        pairs = etree.SubElement(request, f"{{{MESS}}}personIdPairSet")
        for person, password in items:
            pair = etree.SubElement(pairs, f"{{{MESS}}}personIdPair")
            _identifier(pair, "sourcedId", person.sync_key)
            _person_xml(pair, person, password)

    return RequestBody(value, build)


def _key_body(sync_key: str) -> RequestBody:
    def build(request: etree._Element) -> None:
        _identifier(request, "sourcedId", sync_key)

    return RequestBody(lambda: {"sourcedId": {"identifier": sync_key}}, build)


def _rename_body(old_id: str, new_id: str) -> RequestBody:
    def build(request: etree._Element) -> None:
        _identifier(request, "sourcedId", old_id)
        _identifier(request, "newSourcedId", new_id)

    return RequestBody(
        lambda: {"sourcedId": {"identifier": old_id}, "newSourcedId": {"identifier": new_id}}, build
    )


def _keys_body(sync_keys: Sequence[str]) -> RequestBody:
    keys = list(sync_keys)

    def build(request: etree._Element) -> None:
        identifiers = etree.SubElement(request, f"{{{MESS}}}sourcedIdSet")
        for key in keys:
            _text(identifiers, f"{{{COMMON}}}identifier", key)

    return RequestBody(lambda: {"sourcedIdSet": {"identifier": keys}}, build)


def _page_body(page_index: int, page_size: int) -> RequestBody:
    def value() -> Mapping[str, Any]:
        return {
            "PageIndex": page_index,
            "PageSize": page_size,
            "CreatedFrom": xsd.Nil,
            "OnlyManuallyCreatedUsers": xsd.Nil,
            "ConvertFromManual": xsd.Nil,
        }

    def build(request: etree._Element) -> None:
        _text(request, f"{{{MESS}}}PageIndex", str(int(page_index)))
        _text(request, f"{{{MESS}}}PageSize", str(int(page_size)))
        for name in ("CreatedFrom", "OnlyManuallyCreatedUsers", "ConvertFromManual"):
            _nil(request, f"{{{MESS}}}{name}")

    return RequestBody(value, build)


_PHONE_TYPES: Final = {"Voice": "phone", "1": "phone", "Mobile": "mobile", "3": "mobile"}


def person_from_xml(element: etree._Element, sync_key: str) -> Person:
    """Read a `person` element (any namespace for the element itself); unknown children are ignored."""
    fields: dict[str, str] = {}
    for part in element.iterfind(f"{{{DATA}}}name/{{{DATA}}}partName"):
        kind = part.findtext(f"{{{DATA}}}namePartType")
        text = part.findtext(f"{{{DATA}}}namePartValue") or ""
        if kind == "First":
            fields["given_name"] = text
        elif kind == "Last":
            fields["family_name"] = text
    fields["email"] = element.findtext(f"{{{COMMON}}}email") or ""
    fields["username"] = element.findtext(f"{{{DATA}}}userId/{{{COMMON}}}userIdValue") or ""
    fields["birth_date"] = element.findtext(f"{{{DATA}}}demographics/{{{DATA}}}bday") or ""
    roles = element.findall(f"{{{DATA}}}institutionRole")
    primary = [r for r in roles if (r.findtext(f"{{{DATA}}}primaryRoleType") or "").strip() in {"true", "1"}]
    if roles:
        fields["role"] = (primary or roles)[0].findtext(f"{{{DATA}}}institutionRoleType") or ""
    for tel in element.iterfind(f"{{{DATA}}}tel"):
        name = _PHONE_TYPES.get(tel.findtext(f"{{{DATA}}}telType") or "")
        if name and name not in fields:
            fields[name] = tel.findtext(f"{{{DATA}}}telValue") or ""
    return Person(sync_key=sync_key, **fields)


def _status_from_xml(element: etree._Element) -> Status:
    code_major = element.findtext(f"{{{BIND}}}codeMajor")
    severity = element.findtext(f"{{{BIND}}}severity")
    if not code_major or not severity:
        raise ProtocolError("statusInfo without codeMajor or severity")
    code_minor = tuple(
        (field.findtext(f"{{{BIND}}}codeMinorName") or "", field.findtext(f"{{{BIND}}}codeMinorValue") or "")
        for field in element.iterfind(f"{{{BIND}}}codeMinor/{{{BIND}}}codeMinorField")
    )
    return Status(
        code_major=code_major.strip(),
        severity=severity.strip(),
        code_minor=code_minor,
        message_id_ref=element.findtext(f"{{{BIND}}}messageIdRef"),
        description=element.findtext(f"{{{BIND}}}description/{{{COMMON}}}text") or "",
    )


# --- the clients --------------------------------------------------------------------------------


def display_url(url: str) -> str:
    """The URL without user info or query, safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def require_https(url: str, what: str) -> str:
    """`url` itself when it is an https:// URL without user info.

    Raises:
        ConfigError: another scheme, no host, or credentials in the URL (`what` names the setting).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            f"{what} must be an https:// URL (IMS ES carries credentials in every request); "
            f"got {display_url(url)!r}"
        )
    if parts.username or parts.password:
        raise ConfigError(f"{what} must not carry credentials; pass them as username and password")
    return url


def _extended_url(url: str) -> str:
    """`.../PersonManagementService.svc` → `.../ExtendedPersonManagementService.svc`."""
    parts = urlsplit(url)
    head, _, last = parts.path.rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/Extended{last}", parts.query, ""))


@dataclass(frozen=True, slots=True)
class _Operation:
    """What one operation needs per call, resolved once from the WSDL."""

    name: str
    soap: Any  # zeep SoapOperation: builds the envelope
    address: str
    headers: Mapping[str, str]
    where: str  # "<operation> to <endpoint>", for error messages


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    """What sets one IMS ES service apart for `ServiceClient`: its WSDL, binding and namespaces.

    Attributes:
        wsdl: The bundled WSDL.
        binding: The local name of the SOAP binding whose operations the client calls.
        operations: Those operations.
        message_namespace: The namespace of the `<op>Request` body elements.
        prefixes: Namespace prefixes declared once on the envelope (zeep's `set_ns_prefix`), in order.
        soap_action_base: The SOAPAction prefix, used when the WSDL gives an operation none.
    """

    wsdl: Path
    binding: str
    operations: tuple[str, ...]
    message_namespace: str
    prefixes: tuple[tuple[str, str], ...]
    soap_action_base: str


# Answers are parsed strictly (no recovery from broken XML) and refuse DTDs, entities and external refs.
_SETTINGS: Final = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)


def _open_wsdl(
    source: str, transport: zeep.Transport | None, prefixes: Mapping[str, str] = _PREFIXES
) -> zeep.Client:
    """Parse a WSDL (the costly step: once per client, or once per process for the bundled one)."""
    client = zeep.Client(source, transport=transport, settings=_SETTINGS)  # type: ignore[no-untyped-call]
    # Declared once on the envelope instead of on every element: a third smaller, a quarter faster.
    for prefix, namespace in prefixes.items():
        client.set_ns_prefix(prefix, namespace)  # type: ignore[no-untyped-call]
    return client


@functools.cache
def _bundled_service_wsdl(spec: ServiceSpec) -> zeep.Client:
    """A service's bundled WSDL, parsed once per process; zeep's parsed WSDL is read-only after loading."""
    return _open_wsdl(str(spec.wsdl), None, dict(spec.prefixes))


def _find_binding(client: zeep.Client, local_name: str) -> Any:
    for qname, binding in client.wsdl.bindings.items():
        if qname.rpartition("}")[2] == local_name:
            return binding
    return None


#: Person Management: the binding PersonClient calls at its main URL (readAllPersons is apart).
PMS_SPEC: Final = ServiceSpec(
    wsdl=BUNDLED_WSDL,
    binding=_PMS_BINDING,
    operations=_PMS_OPERATIONS,
    message_namespace=MESS,
    prefixes=tuple(_PREFIXES.items()),
    soap_action_base=SOAP_ACTION_BASE,
)


def _bundled_wsdl() -> zeep.Client:
    """The bundled PMS WSDL, parsed once per process."""
    return _bundled_service_wsdl(PMS_SPEC)


class ServiceClient:
    """What the IMS ES clients share: WS-Security, HTTPS, rendering, the exchange and the status checks.

    A subclass sets `spec` and adds the operations, each one `_simple`, `_mass` or `_exchange` + `_check`
    call. Every call raises only `sync.errors` classes: `TransientError` (timeouts, connection trouble,
    HTTP 502/503/504, 5xx without a SOAP fault, a SOAP Server fault), `AuthenticationError`,
    `CertificateError`, `RejectedError` (any other SOAP fault) and `ProtocolError` (unparsable answer,
    DTD/entities, missing or wrong messageIdRef, wrong item count). Thread-safe as described in the
    module's docstring: all per-call state lives in the call's locals.

    Args:
        url: The service's endpoint (https only).
        username: The integration's IMS ES user name.
        password: Its password (sent in the WS-Security UsernameToken; never logged or shown).
        ca_bundle: A PEM file to trust instead of the system CAs (requests `verify=`), e.g. the
            emulator's or a private CA.
        timeouts: Connect and read timeouts.
        pool_size: Connections kept open (set it to the number of threads calling the client).
        wsdl: None for the bundled WSDL, a file path, or an https:// URL (the live `?wsdl`).
        adapter: A requests transport adapter to use instead of the pooled HTTPS one (tests).

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
    """

    spec: ClassVar[ServiceSpec]

    def __init__(
        self,
        *,
        url: str,
        username: str,
        password: str,
        ca_bundle: Path | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        pool_size: int = 10,
        wsdl: str | Path | None = None,
        adapter: requests.adapters.BaseAdapter | None = None,
    ) -> None:
        self._url = require_https(url, "the IMS ES URL")
        self._username = username
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise ConfigError(f"the CA bundle {str(ca_bundle)!r} does not exist")
        self._verify: str | bool = str(ca_bundle) if ca_bundle is not None else True
        self._timeout = (timeouts.connect, timeouts.read)
        self._wsse = UsernameTokenSecurity(username, password)
        self._direct: frozenset[str] = frozenset()  # operations the direct builder renders (see _warm_up)
        self._envelope_nsmap = {"soap-env": SOAP_ENV, **dict(self.spec.prefixes)}  # as zeep declares them

        session = requests.Session()
        session.headers["User-Agent"] = "ims-es-sync"
        # Read the proxy settings once: with trust_env, requests re-scans os.environ on every call (a
        # third of a call's CPU) and lets REQUESTS_CA_BUNDLE override an explicit ca_bundle.
        session.proxies.update(requests.utils.get_environ_proxies(url))
        session.trust_env = False
        session.verify = self._verify  # also for fetching a live ?wsdl through zeep
        mounted = adapter or requests.adapters.HTTPAdapter(
            pool_connections=2, pool_maxsize=pool_size, max_retries=0
        )
        session.mount("https://", mounted)
        self._session = session
        self._adapter = mounted
        self._proxies = dict(session.proxies)
        try:
            self._zeep = self._load(wsdl, session)
            self._operations = self._resolve(wsdl)
            self._templates = {
                name: session.prepare_request(
                    requests.Request("POST", operation.address, headers=dict(operation.headers))
                )
                for name, operation in self._operations.items()
            }
            self._warm_up()
        except BaseException:
            session.close()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={display_url(self._url)!r}, username={self._username!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # --- set-up

    def _load(self, wsdl: str | Path | None, session: requests.Session) -> zeep.Client:
        if wsdl is None:
            return _bundled_service_wsdl(self.spec)
        if isinstance(wsdl, str) and "://" in wsdl:
            source = require_https(wsdl, "the WSDL URL")
        elif Path(wsdl).is_file():
            source = str(wsdl)
        else:
            raise ConfigError(f"the WSDL file {str(wsdl)!r} does not exist")
        transport = zeep.Transport(  # type: ignore[no-untyped-call]
            session=session, timeout=self._timeout[1], operation_timeout=self._timeout
        )
        try:
            return _open_wsdl(source, transport, dict(self.spec.prefixes))
        except _FOREIGN as exc:
            error = translate_exception(exc, operation="load WSDL", endpoint=source)
            raise error from exc

    def _resolve(self, wsdl: str | Path | None) -> dict[str, _Operation]:
        """The operations of `spec.binding`, sent to the client's URL."""
        binding = _find_binding(self._zeep, self.spec.binding)
        if binding is None:
            raise ConfigError(f"the WSDL lacks the {self.spec.binding} binding")
        return self._operations_of(binding, self.spec.operations, self._url, self.spec.soap_action_base)

    @staticmethod
    def _operations_of(
        binding: Any, names: Sequence[str], address: str, soap_action_base: str
    ) -> dict[str, _Operation]:
        operations: dict[str, _Operation] = {}
        for name in names:
            soap = binding.get(name)
            action = soap.soapaction or soap_action_base + name
            headers = {"SOAPAction": f'"{action}"', "Content-Type": "text/xml; charset=utf-8"}
            operations[name] = _Operation(
                name=name, soap=soap, address=address, headers=headers,
                where=f"{name} to {display_url(address)}",
            )  # fmt: skip
        return operations

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        """One or more sample bodies per operation, rendered both ways by `_warm_up`."""
        raise NotImplementedError

    def _warm_up(self) -> None:
        """Render one message of each kind both ways: fills zeep's lazy caches before threads share it,
        and enables the direct builder for each operation whose bytes equal zeep's.

        The direct builder skips zeep's per-call schema walk (about half a millisecond of CPU a call);
        zeep stays the reference: with another WSDL (say, one that adds WS-Addressing headers) the
        renderings differ and zeep renders that operation.
        """
        security = self._wsse.security_element()
        fast = set()
        for name, bodies in self._samples().items():
            operation = self._operations[name]
            if all(
                self._render(operation, body, "warm-up", security, direct=False)
                == self._render(operation, body, "warm-up", security, direct=True)
                for body in bodies
            ):
                fast.add(name)
        self._direct = frozenset(fast)

    # --- request building

    def _render(
        self,
        operation: _Operation,
        body: RequestBody,
        message_id: str,
        security: etree._Element | None = None,
        *,
        direct: bool | None = None,
    ) -> bytes:
        """The request's bytes: the SOAP envelope with our header blocks.

        Args:
            operation: what to send.
            body: the request body.
            message_id: the messageIdentifier.
            security: a `wsse:Security` element to use (copied); default: a fresh one.
            direct: True for the direct builder, False for zeep; None: direct when verified equal.
        """
        security = self._wsse.security_element() if security is None else copy.deepcopy(security)
        if operation.name in self._direct if direct is None else direct:
            envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=self._envelope_nsmap)
            header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
            header.append(security)
            info = etree.SubElement(header, f"{{{BIND}}}syncRequestHeaderInfo")
            _text(info, f"{{{BIND}}}messageIdentifier", message_id)
            request = etree.SubElement(
                etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body"),
                f"{{{self.spec.message_namespace}}}{operation.name}Request",
            )
            body.build(request)
        else:
            envelope = operation.soap.create(
                **body.value(), _soapheaders={"syncRequestHeaderInfo": {"messageIdentifier": message_id}}
            ).content
            header = envelope.find(f"{{{SOAP_ENV}}}Header")
            if header is None:
                header = etree.Element(f"{{{SOAP_ENV}}}Header")
                envelope.insert(0, header)
            header.insert(0, security)
        return etree.tostring(envelope, encoding="utf-8", xml_declaration=True)

    # --- the exchange

    def _where(self, name: str) -> str:
        """The "<operation> to <endpoint>" text of error messages."""
        return self._operations[name].where

    def _exchange(
        self, name: str, body: RequestBody, message_id: str | None
    ) -> tuple[str, etree._Element, etree._Element]:
        """Send one request; return (message id, syncResponseHeaderInfo, SOAP Body) of a 200 SOAP answer."""
        operation = self._operations[name]
        mid = message_id or new_message_id()
        try:
            data = self._render(operation, body, mid)
            # The request is prepared once per operation (URL, merged session headers) and copied here;
            # the adapter is called directly, as Session.send would with allow_redirects=False (a
            # redirect would re-send the password to wherever it points), minus the per-call merging
            # of settings, cookies and hooks that the client never uses: a third of a call's CPU.
            request = self._templates[name].copy()
            request.body = data
            request.headers["Content-Length"] = str(len(data))
            response = self._adapter.send(
                request, stream=False, timeout=self._timeout, verify=self._verify, cert=None,
                proxies=self._proxies,
            )  # fmt: skip
            info, soap_body = self._read_answer(response, operation.where)
        except _FOREIGN as exc:
            raise translate_exception(exc, operation=name, endpoint=operation.address) from exc
        return mid, info, soap_body

    def _read_answer(self, response: requests.Response, where: str) -> tuple[etree._Element, etree._Element]:
        status = response.status_code
        if status in (401, 403) or status in _TRANSIENT_HTTP or 300 <= status < 400 or not response.content:
            raise _status_error(status)
        try:
            doc = parse_xml(response.content, self._zeep.transport, settings=_SETTINGS)  # type: ignore[arg-type]  # zeep's hint says str; it parses bytes
        except zeep.exceptions.Error as exc:
            if status != 200:  # an HTML error page or the like: the status is what counts
                raise _status_error(status) from exc
            raise
        soap_body = doc.find(f"{{{SOAP_ENV}}}Body")
        fault = soap_body.find(f"{{{SOAP_ENV}}}Fault") if soap_body is not None else None
        if fault is not None:
            raise _fault(
                (fault.findtext("faultstring") or "").strip(), (fault.findtext("faultcode") or "").strip()
            )
        if status != 200:
            raise _status_error(status)
        if doc.tag != f"{{{SOAP_ENV}}}Envelope" or soap_body is None:
            raise ProtocolError(f"{where}: the answer is not a SOAP 1.1 envelope")
        info = doc.find(f"{{{SOAP_ENV}}}Header/{{{BIND}}}syncResponseHeaderInfo")
        if info is None:
            raise ProtocolError(f"{where}: the answer has no syncResponseHeaderInfo")
        return info, soap_body

    def _check(
        self, name: str, info: etree._Element, message_id: str, items: int | None = None
    ) -> tuple[Status, tuple[Status, ...]]:
        """The header status (and item statuses), each checked to answer `message_id`."""
        where = self._operations[name].where
        element = info.find(f"{{{BIND}}}statusInfo")
        if element is None:
            raise ProtocolError(f"{where}: the answer has no statusInfo")
        try:
            status = _status_from_xml(element)
            statuses = tuple(
                _status_from_xml(e) for e in info.iterfind(f"{{{BIND}}}statusInfoSet/{{{BIND}}}statusInfo")
            )
        except ProtocolError as exc:
            raise ProtocolError(f"{where}: {exc}") from exc
        # An answer to another request confirms nothing; what it said is kept for the journal.
        kept = statuses if items is not None and len(statuses) == items else ()
        if status.message_id_ref != message_id:
            raise UnmatchedAnswerError(
                f"{where}: messageIdRef {status.message_id_ref!r} does not answer our messageIdentifier "
                f"{message_id!r}",
                status=status,
                items=kept,
            )
        if items is not None:
            if len(statuses) != items:
                raise ProtocolError(f"{where}: {len(statuses)} statusInfo items for {items} request items")
            for index, item in enumerate(statuses):
                if item.message_id_ref != message_id:
                    raise UnmatchedAnswerError(
                        f"{where}: item {index} has messageIdRef {item.message_id_ref!r}, "
                        f"not our messageIdentifier {message_id!r}",
                        status=status,
                        items=kept,
                    )
        return status, statuses

    def _simple(self, name: str, body: RequestBody, message_id: str | None) -> Status:
        mid, info, _ = self._exchange(name, body, message_id)
        return self._check(name, info, mid)[0]

    def _mass(
        self, name: str, body: RequestBody, count: int, message_id: str | None
    ) -> tuple[MassReply, etree._Element]:
        mid, info, soap_body = self._exchange(name, body, message_id)
        status, items = self._check(name, info, mid, count)
        return MassReply(status=status, items=items), soap_body


class PersonClient(ServiceClient):
    """A thread-safe IMS ES PMS client (plus itslearning's readAllPersons).

    Every method sends one request and returns the service's verdict as `Status` values (also when
    codeMajor is failure: the caller decides). It raises only `sync.errors` classes:
    `TransientError` (timeouts, connection trouble, HTTP 502/503/504, 5xx without a SOAP fault),
    `AuthenticationError`, `CertificateError`, `RejectedError` (any other SOAP fault) and
    `ProtocolError` (unparsable answer, DTD/entities, missing or wrong messageIdRef, wrong item count).

    Args:
        url: The PMS endpoint, `https://.../PersonManagementService.svc`.
        username: The integration's IMS ES user name.
        password: Its password (sent in the WS-Security UsernameToken; never logged or shown).
        ca_bundle: A PEM file to trust instead of the system CAs (requests `verify=`), e.g. the
            emulator's or a private CA.
        timeouts: Connect and read timeouts.
        pool_size: Connections kept open (set it to the number of threads calling the client).
        wsdl: None for the bundled WSDL, a file path, or an https:// URL (the live `?wsdl`). When that
            WSDL has no ExtendedPersonManagement binding, readAllPersons uses the bundled one.
        extended_url: The ExtendedPersonManagement endpoint; default: `url` with its last path
            segment prefixed "Extended".
        adapter: A requests transport adapter to use instead of the pooled HTTPS one (tests).

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
    """

    spec: ClassVar[ServiceSpec] = PMS_SPEC

    def __init__(
        self,
        *,
        url: str,
        username: str,
        password: str,
        ca_bundle: Path | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        pool_size: int = 10,
        wsdl: str | Path | None = None,
        extended_url: str | None = None,
        adapter: requests.adapters.BaseAdapter | None = None,
    ) -> None:
        require_https(url, "the IMS ES URL")
        self._extended = require_https(extended_url or _extended_url(url), "the Extended URL")
        super().__init__(
            url=url, username=username, password=password, ca_bundle=ca_bundle, timeouts=timeouts,
            pool_size=pool_size, wsdl=wsdl, adapter=adapter,
        )  # fmt: skip

    # --- set-up

    def _resolve(self, wsdl: str | Path | None) -> dict[str, _Operation]:
        pms = _find_binding(self._zeep, _PMS_BINDING)
        extended = _find_binding(self._zeep, _EXTENDED_BINDING)
        if extended is None:  # itslearning's PMS ?wsdl has no readAllPersons: use ours for it
            extended = _find_binding(_bundled_wsdl(), _EXTENDED_BINDING)
        if pms is None or extended is None:
            raise ConfigError(f"the WSDL lacks the {_PMS_BINDING} or {_EXTENDED_BINDING} binding")
        return {
            **self._operations_of(pms, _PMS_OPERATIONS, self._url, SOAP_ACTION_BASE),
            **self._operations_of(extended, _EXTENDED_OPERATIONS, self._extended, SOAP_ACTION_BASE),
        }

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        person = Person(
            sync_key="warm-up", username="u & <v>", given_name="G\u00e5", family_name="f", email="e",
            role="Student", birth_date="2000-01-01", phone="1", mobile="2",
        )  # fmt: skip
        bare = Person(sync_key="bare")
        return {
            "createPerson": (_person_body(person, "p&w"), _person_body(bare)),
            "updatePerson": (_person_body(person), _person_body(bare)),
            "replacePerson": (_person_body(person), _person_body(bare)),
            "deletePerson": (_key_body("k"),),
            "readPerson": (_key_body("k"),),
            "changePersonIdentifier": (_rename_body("a", "b"),),
            "createPersons": (_pairs_body([(person, "p"), (bare, "")]),),
            "deletePersons": (_keys_body(["a", "b"]),),
            "readPersons": (_keys_body(["a", "b"]),),
            "readAllPersons": (_page_body(0, 1),),
        }

    # --- operations

    def create_person(self, person: Person, *, password: str = "", message_id: str | None = None) -> Status:
        """createPerson: create `person` (IMS ES updates it when the sync key exists); `password` if given."""
        return self._simple("createPerson", _person_body(person, password), message_id)

    def update_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """updatePerson: merge the present fields into the stored person (IMS ES creates a missing one)."""
        return self._simple("updatePerson", _person_body(person), message_id)

    def replace_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """replacePerson: store exactly `person` (a missing one is inserted, with a warning)."""
        return self._simple("replacePerson", _person_body(person), message_id)

    def delete_person(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deletePerson."""
        return self._simple("deletePerson", _key_body(sync_key), message_id)

    def read_person(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Person | None]:
        """readPerson: the status and, on success, the person (its sync key is the one asked for).

        Raises:
            ProtocolError: also when a success carries no person.
        """
        mid, info, soap_body = self._exchange("readPerson", _key_body(sync_key), message_id)
        status = self._check("readPerson", info, mid)[0]
        if not status.ok:
            return status, None
        element = soap_body.find(f"{{{MESS}}}readPersonResponse/{{{MESS}}}person")
        if element is None:
            raise ProtocolError(f"{self._operations['readPerson'].where}: success without a person")
        return status, person_from_xml(element, sync_key)

    def read_persons(
        self, sync_keys: Sequence[str], *, message_id: str | None = None
    ) -> tuple[MassReply, tuple[Person | None, ...]]:
        """readPersons: the statuses and, per requested key in order, the person or None (failed item).

        Raises:
            ProtocolError: also when the number of persons differs from the number of successful items.
        """
        keys = list(sync_keys)
        reply, soap_body = self._mass("readPersons", _keys_body(keys), len(keys), message_id)
        elements = soap_body.findall(f"{{{MESS}}}readPersonsResponse/{{{MESS}}}personSet/{{{MESS}}}person")
        if len(elements) != sum(item.ok for item in reply.items):
            raise ProtocolError(
                f"{self._operations['readPersons'].where}: {len(elements)} persons for "
                f"{sum(item.ok for item in reply.items)} successful items"
            )
        found = iter(elements)
        persons = tuple(
            person_from_xml(next(found), key) if item.ok else None
            for key, item in zip(keys, reply.items, strict=True)
        )
        return reply, persons

    def change_person_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changePersonIdentifier: give the person `old_id` the sync key `new_id`."""
        return self._simple("changePersonIdentifier", _rename_body(old_id, new_id), message_id)

    def create_persons(
        self, items: Sequence[tuple[Person, str]], *, message_id: str | None = None
    ) -> MassReply:
        """createPersons: one request for many (person, password) pairs; "" = no password."""
        return self._mass("createPersons", _pairs_body(items), len(items), message_id)[0]

    def delete_persons(self, sync_keys: Sequence[str], *, message_id: str | None = None) -> MassReply:
        """deletePersons: one request for many sync keys."""
        keys = list(sync_keys)
        return self._mass("deletePersons", _keys_body(keys), len(keys), message_id)[0]

    def read_all_persons(
        self, *, page_index: int, page_size: int = 100, message_id: str | None = None
    ) -> Page:
        """readAllPersons (itslearning's ExtendedPersonManagement): one page of the site's persons.

        Raises:
            ProtocolError: also when a success lacks virtualCount or a pair lacks its sync key.
        """
        mid, info, soap_body = self._exchange("readAllPersons", _page_body(page_index, page_size), message_id)
        status = self._check("readAllPersons", info, mid)[0]
        answer = soap_body.find(f"{{{MESS}}}readAllPersonsResponse")
        where = self._operations["readAllPersons"].where
        if not status.ok:
            return Page(status=status, persons=(), virtual_count=0)
        if answer is None:
            raise ProtocolError(f"{where}: success without readAllPersonsResponse")
        persons = []
        for pair in answer.iterfind(f"{{{MESS}}}personIdPairSet/{{{MESS}}}personIdPair"):
            key = pair.findtext(f"{{{MESS}}}sourcedId/{{{COMMON}}}identifier")
            element = pair.find(f"{{{MESS}}}person")
            if not key or element is None:
                raise ProtocolError(f"{where}: a personIdPair lacks its sourcedId or person")
            persons.append(person_from_xml(element, key))
        try:
            count = int(answer.findtext(f"{{{MESS}}}virtualCount") or "")
        except ValueError as exc:
            raise ProtocolError(f"{where}: missing or bad virtualCount") from exc
        return Page(status=status, persons=tuple(persons), virtual_count=count)


# --- Group and Membership Management (GMS, MMS) ---------------------------------------------------

#: The bundled GMS WSDL (ours: itslearning publishes no GMS message schema; see docs/emulator.md).
BUNDLED_GMS_WSDL: Final = Path(__file__).resolve().parent / "wsdl" / "gms.wsdl"
#: The bundled MMS WSDL (itslearning's MembershipManagementServiceSync shapes, schemas inline).
BUNDLED_MMS_WSDL: Final = Path(__file__).resolve().parent / "wsdl" / "mms.wsdl"

GMS_MESS: Final = "http://www.imsglobal.org/services/gms/xsd/imsGroupManMessSchema_v1p0"
GMS_DATA: Final = "http://www.imsglobal.org/services/gms/xsd/imsGroupManDataSchema_v1p0"
MMS_MESS: Final = "http://www.imsglobal.org/services/mms/xsd/imsMemberManMessSchema_v1p0"
MMS_DATA: Final = "http://www.imsglobal.org/services/mms/xsd/imsMemberManDataSchema_v1p0"

#: The groupType scheme itslearning reads (School, Course, CourseGroup, ... are its types).
GROUP_SCHEME: Final = "ItslearningOrganisationTypes"
# IMS's official imsGroupManDataSchema_v1p0 requires typeValue/level (1-2 characters); itslearning's
# production clients send none and itslearning ignores it. We send "1" so that the group is valid
# against the official schema as well.
_GROUP_LEVEL: Final = "1"
_PARENT: Final = "Parent"
_PMS_PATH_SEGMENT: Final = "personmanagementservice.svc"

GMS_SPEC: Final = ServiceSpec(
    wsdl=BUNDLED_GMS_WSDL,
    binding="BasicHttpBinding_GroupManagementServiceSync",
    operations=(
        "createGroup",
        "updateGroup",
        "deleteGroup",
        "readGroup",
        "changeGroupIdentifier",
        "createGroups",
        "readGroupsForPerson",
    ),
    message_namespace=GMS_MESS,
    prefixes=(("ims", BIND), ("ims1", GMS_MESS), ("ims2", COMMON), ("ims3", GMS_DATA)),
    soap_action_base="http://www.imsglobal.org/soap/gms/",
)
MMS_SPEC: Final = ServiceSpec(
    wsdl=BUNDLED_MMS_WSDL,
    binding="BasicHttpBinding_MembershipManagementServiceSync",
    operations=(
        "createMembership",
        "updateMembership",
        "deleteMembership",
        "readMembership",
        "changeMembershipIdentifier",
        "createMemberships",
        "deleteMemberships",
        "readMembershipsForPerson",
        "readMembershipsForGroup",
    ),
    message_namespace=MMS_MESS,
    prefixes=(("ims", BIND), ("ims1", MMS_MESS), ("ims2", COMMON), ("ims3", MMS_DATA)),
    soap_action_base="http://www.imsglobal.org/soap/mms/",
)


def service_urls(pms_url: str) -> tuple[str, str]:
    """The GMS and MMS endpoints next to a PMS endpoint: (`.../GroupManagementService.svc`,
    `.../MembershipManagementService.svc`), replacing the last path segment `PersonManagementService.svc`
    (in any case).

    Raises:
        ConfigError: `pms_url` is not https, carries credentials, or does not end that way (then the
            GMS and MMS endpoints must be given explicitly).
    """
    require_https(pms_url, "the IMS ES URL")
    parts = urlsplit(pms_url)
    head, _, last = parts.path.rpartition("/")
    if last.lower() != _PMS_PATH_SEGMENT:
        raise ConfigError(
            f"cannot derive the GMS and MMS endpoints from {display_url(pms_url)!r}: its path does not "
            "end in PersonManagementService.svc"
        )

    def sibling(name: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, f"{head}/{name}", parts.query, ""))

    return sibling("GroupManagementService.svc"), sibling("MembershipManagementService.svc")


# --- bodies shared by GMS and MMS


def _id_body(namespace: str, tag: str, key: str) -> RequestBody:
    """`<tag><identifier>key</identifier></tag>` in the service's message namespace."""

    def build(request: etree._Element) -> None:
        _text(etree.SubElement(request, f"{{{namespace}}}{tag}"), f"{{{COMMON}}}identifier", key)

    return RequestBody(lambda: {tag: {"identifier": key}}, build)


def _id_set_body(namespace: str, keys: Sequence[str]) -> RequestBody:
    """`sourcedIdSet/identifier*` in the service's message namespace."""
    frozen = list(keys)

    def build(request: etree._Element) -> None:
        identifiers = etree.SubElement(request, f"{{{namespace}}}sourcedIdSet")
        for key in frozen:
            _text(identifiers, f"{{{COMMON}}}identifier", key)

    return RequestBody(lambda: {"sourcedIdSet": {"identifier": frozen}}, build)


def _id_change_body(namespace: str, old_id: str, new_id: str) -> RequestBody:
    """changeGroupIdentifier's and changeMembershipIdentifier's `sourcedId` + `newSourcedId`."""

    def build(request: etree._Element) -> None:
        _text(etree.SubElement(request, f"{{{namespace}}}sourcedId"), f"{{{COMMON}}}identifier", old_id)
        _text(etree.SubElement(request, f"{{{namespace}}}newSourcedId"), f"{{{COMMON}}}identifier", new_id)

    return RequestBody(
        lambda: {"sourcedId": {"identifier": old_id}, "newSourcedId": {"identifier": new_id}}, build
    )


# --- Group <-> zeep value / XML


def group_value(group: Group) -> dict[str, Any]:
    """The zeep value of a `group` element (IMS's GroupDType: groupType, relationship*, description?)."""
    value: dict[str, Any] = {
        "groupType": {"scheme": GROUP_SCHEME, "typeValue": [{"type": group.type, "level": _GROUP_LEVEL}]}
    }
    if group.parent:
        value["relationship"] = [
            {"relation": _PARENT, "sourceId": {"identifier": group.parent}, "label": _PARENT}
        ]
    if group.name:
        description = {"descShort": group.name}
        if group.description:
            description["descLong"] = group.description
        value["description"] = description
    return value


def _group_xml(parent: etree._Element, group: Group) -> None:
    """The `group` element as zeep renders `group_value(group)`."""
    element = etree.SubElement(parent, f"{{{GMS_MESS}}}group")
    group_type = etree.SubElement(element, f"{{{GMS_DATA}}}groupType")
    _text(group_type, f"{{{GMS_DATA}}}scheme", GROUP_SCHEME)
    type_value = etree.SubElement(group_type, f"{{{GMS_DATA}}}typeValue")
    _text(type_value, f"{{{GMS_DATA}}}type", group.type)
    _text(type_value, f"{{{GMS_DATA}}}level", _GROUP_LEVEL)
    if group.parent:
        relationship = etree.SubElement(element, f"{{{GMS_DATA}}}relationship")
        _text(relationship, f"{{{GMS_DATA}}}relation", _PARENT)
        source = etree.SubElement(relationship, f"{{{GMS_DATA}}}sourceId")
        _text(source, f"{{{COMMON}}}identifier", group.parent)
        _text(relationship, f"{{{GMS_DATA}}}label", _PARENT)
    if group.name:
        description = etree.SubElement(element, f"{{{GMS_DATA}}}description")
        _text(description, f"{{{GMS_DATA}}}descShort", group.name)
        if group.description:
            _text(description, f"{{{GMS_DATA}}}descLong", group.description)


def _group_body(group: Group) -> RequestBody:
    def value() -> Mapping[str, Any]:
        return {"sourcedId": {"identifier": group.sync_key}, "group": group_value(group)}

    def build(request: etree._Element) -> None:
        _text(
            etree.SubElement(request, f"{{{GMS_MESS}}}sourcedId"), f"{{{COMMON}}}identifier", group.sync_key
        )
        _group_xml(request, group)

    return RequestBody(value, build)


def _group_pairs_body(groups: Sequence[Group]) -> RequestBody:
    frozen = list(groups)

    def value() -> Mapping[str, Any]:
        pairs = [{"sourcedId": {"identifier": g.sync_key}, "group": group_value(g)} for g in frozen]
        return {"groupIdPairSet": {"groupIdPair": pairs}}

    def build(request: etree._Element) -> None:
        pairs = etree.SubElement(request, f"{{{GMS_MESS}}}groupIdPairSet")
        for group in frozen:
            pair = etree.SubElement(pairs, f"{{{GMS_MESS}}}groupIdPair")
            _text(
                etree.SubElement(pair, f"{{{GMS_MESS}}}sourcedId"), f"{{{COMMON}}}identifier", group.sync_key
            )
            _group_xml(pair, group)

    return RequestBody(value, build)


def group_from_xml(element: etree._Element, sync_key: str) -> Group:
    """Read a `group` element (any namespace for the element itself); unknown children are ignored.

    The first typeValue's type, the Parent relationship's id, descShort as the name and descLong as the
    description; the scheme and level are not kept.
    """
    parent = ""
    for relationship in element.iterfind(f"{{{GMS_DATA}}}relationship"):
        if (relationship.findtext(f"{{{GMS_DATA}}}relation") or "").strip() == _PARENT:
            parent = relationship.findtext(f"{{{GMS_DATA}}}sourceId/{{{COMMON}}}identifier") or ""
            break
    description = element.find(f"{{{GMS_DATA}}}description")
    return Group(
        sync_key=sync_key,
        name=description.findtext(f"{{{GMS_DATA}}}descShort") or "" if description is not None else "",
        type=element.findtext(f"{{{GMS_DATA}}}groupType/{{{GMS_DATA}}}typeValue/{{{GMS_DATA}}}type") or "",
        parent=parent,
        description=description.findtext(f"{{{GMS_DATA}}}descLong") or "" if description is not None else "",
    )


# --- Membership <-> zeep value / XML

_ACTIVE: Final = {"true": True, "1": True, "false": False, "0": False}


def _active(membership: Membership) -> bool:
    """The membership's IMS status flag from its `active` text ("true"/"false"; "1"/"0" accepted).

    Raises:
        RejectedError: any other text (nothing is sent).
    """
    flag = _ACTIVE.get(membership.active.strip().lower())
    if flag is None:
        raise RejectedError(
            f"membership {membership.sync_key!r}: active must be 'true' or 'false', got {membership.active!r}"
        )
    return flag


def membership_value(membership: Membership) -> dict[str, Any]:
    """The zeep value of a `membership` element, in itslearning's MMS order.

    `role/status` is IMS's active flag: a deactivated membership is kept by the service with status false.
    """
    return {
        "groupSourcedId": {"identifier": membership.group},
        "member": {
            "memberSourcedId": {"identifier": membership.person},
            "idType": "Person",
            "role": [{"roleType": membership.role, "status": _active(membership)}],
        },
    }


def _membership_xml(parent: etree._Element, membership: Membership) -> None:
    """The `membership` element as zeep renders `membership_value(membership)`."""
    active = _active(membership)
    element = etree.SubElement(parent, f"{{{MMS_MESS}}}membership")
    group = etree.SubElement(element, f"{{{MMS_DATA}}}groupSourcedId")
    _text(group, f"{{{COMMON}}}identifier", membership.group)
    member = etree.SubElement(element, f"{{{MMS_DATA}}}member")
    _text(
        etree.SubElement(member, f"{{{MMS_DATA}}}memberSourcedId"),
        f"{{{COMMON}}}identifier",
        membership.person,
    )
    _text(member, f"{{{MMS_DATA}}}idType", "Person")
    role = etree.SubElement(member, f"{{{MMS_DATA}}}role")
    _text(role, f"{{{MMS_DATA}}}roleType", membership.role)
    _text(role, f"{{{MMS_DATA}}}status", "true" if active else "false")


def _membership_body(membership: Membership) -> RequestBody:
    _active(membership)  # refuse a bad flag before anything is rendered

    def value() -> Mapping[str, Any]:
        return {"sourcedId": {"identifier": membership.sync_key}, "membership": membership_value(membership)}

    def build(request: etree._Element) -> None:
        sourced = etree.SubElement(request, f"{{{MMS_MESS}}}sourcedId")
        _text(sourced, f"{{{COMMON}}}identifier", membership.sync_key)
        _membership_xml(request, membership)

    return RequestBody(value, build)


def _membership_pairs_body(memberships: Sequence[Membership]) -> RequestBody:
    frozen = list(memberships)
    for membership in frozen:
        _active(membership)

    def value() -> Mapping[str, Any]:
        pairs = [{"sourcedId": {"identifier": m.sync_key}, "membership": membership_value(m)} for m in frozen]
        return {"membershipIdPairSet": {"membershipIdPair": pairs}}

    def build(request: etree._Element) -> None:
        pairs = etree.SubElement(request, f"{{{MMS_MESS}}}membershipIdPairSet")
        for membership in frozen:
            pair = etree.SubElement(pairs, f"{{{MMS_MESS}}}membershipIdPair")
            sourced = etree.SubElement(pair, f"{{{MMS_MESS}}}sourcedId")
            _text(sourced, f"{{{COMMON}}}identifier", membership.sync_key)
            _membership_xml(pair, membership)

    return RequestBody(value, build)


def membership_from_xml(element: etree._Element, sync_key: str) -> Membership:
    """Read a `membership` element (any namespace for the element itself); unknown children are ignored.

    The first role's roleType and its status ("false" only for false or 0; absent means active).
    """
    member = element.find(f"{{{MMS_DATA}}}member")
    role = member.find(f"{{{MMS_DATA}}}role") if member is not None else None
    status = (role.findtext(f"{{{MMS_DATA}}}status") or "").strip() if role is not None else ""
    return Membership(
        sync_key=sync_key,
        group=element.findtext(f"{{{MMS_DATA}}}groupSourcedId/{{{COMMON}}}identifier") or "",
        person=(
            member.findtext(f"{{{MMS_DATA}}}memberSourcedId/{{{COMMON}}}identifier") or ""
            if member is not None
            else ""
        ),
        role=role.findtext(f"{{{MMS_DATA}}}roleType") or "" if role is not None else "",
        active="false" if status in {"false", "0"} else "true",
    )


# --- the GMS and MMS clients


class GroupClient(ServiceClient):
    """A thread-safe IMS ES Group Management (GMS) client, shaped like `PersonClient`.

    Each method sends one request and returns the service's verdict as `Status` values (failures too:
    the caller decides); it raises only `sync.errors` classes, as `ServiceClient` describes. A group is
    sent with groupType scheme `ItslearningOrganisationTypes`, its type, a `Parent` relationship when it
    has a parent, and description descShort = name, descLong = description. A group without a name is
    sent without a description (IMS requires descShort in one).

    Args:
        url: The GMS endpoint, `https://.../GroupManagementService.svc` (see `service_urls`).
        username, password, ca_bundle, timeouts, pool_size, wsdl, adapter: as for `PersonClient`
            (`wsdl`: None for the bundled gms.wsdl).

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
    """

    spec: ClassVar[ServiceSpec] = GMS_SPEC

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        full = Group(sync_key="warm-up", name="N & <m>", type="Course", parent="p", description="D\u00e5")
        bare = Group(sync_key="bare", type="School")
        return {
            "createGroup": (_group_body(full), _group_body(bare)),
            "updateGroup": (_group_body(full), _group_body(bare)),
            "deleteGroup": (_id_body(GMS_MESS, "sourcedId", "k"),),
            "readGroup": (_id_body(GMS_MESS, "sourcedId", "k"),),
            "changeGroupIdentifier": (_id_change_body(GMS_MESS, "a", "b"),),
            "createGroups": (_group_pairs_body([full, bare]),),
            "readGroupsForPerson": (_id_body(GMS_MESS, "personSourcedId", "k"),),
        }

    def create_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """createGroup: create `group` (IMS ES updates it when the sync key exists)."""
        return self._simple("createGroup", _group_body(group), message_id)

    def update_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """updateGroup: replace the elements sent (a missing group is `unknownobject`).

        An empty parent sends no relationship, which leaves the parent held as it is.
        """
        return self._simple("updateGroup", _group_body(group), message_id)

    def delete_group(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteGroup (itslearning refuses a group with child groups: delete bottom-up)."""
        return self._simple("deleteGroup", _id_body(GMS_MESS, "sourcedId", sync_key), message_id)

    def read_group(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Group | None]:
        """readGroup: the status and, on success, the group (its sync key is the one asked for).

        Raises:
            ProtocolError: also when a success carries no group.
        """
        mid, info, soap_body = self._exchange(
            "readGroup", _id_body(GMS_MESS, "sourcedId", sync_key), message_id
        )
        status = self._check("readGroup", info, mid)[0]
        if not status.ok:
            return status, None
        element = soap_body.find(f"{{{GMS_MESS}}}readGroupResponse/{{{GMS_MESS}}}group")
        if element is None:
            raise ProtocolError(f"{self._where('readGroup')}: success without a group")
        return status, group_from_xml(element, sync_key)

    def change_group_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changeGroupIdentifier: give the group `old_id` the sync key `new_id` (children follow)."""
        return self._simple("changeGroupIdentifier", _id_change_body(GMS_MESS, old_id, new_id), message_id)

    def create_groups(self, groups: Sequence[Group], *, message_id: str | None = None) -> MassReply:
        """createGroups: one request for many groups, applied in order (parents first)."""
        frozen = list(groups)
        return self._mass("createGroups", _group_pairs_body(frozen), len(frozen), message_id)[0]

    def read_groups_for_person(
        self, person_key: str, *, message_id: str | None = None
    ) -> tuple[Status, list[str]]:
        """readGroupsForPerson: the status and the sync keys of the person's groups ([] on failure).

        Raises:
            ProtocolError: also when a success carries no readGroupsForPersonResponse.
        """
        body = _id_body(GMS_MESS, "personSourcedId", person_key)
        mid, info, soap_body = self._exchange("readGroupsForPerson", body, message_id)
        status = self._check("readGroupsForPerson", info, mid)[0]
        if not status.ok:
            return status, []
        answer = soap_body.find(f"{{{GMS_MESS}}}readGroupsForPersonResponse")
        if answer is None:
            raise ProtocolError(
                f"{self._where('readGroupsForPerson')}: success without readGroupsForPersonResponse"
            )
        keys = [e.text or "" for e in answer.iterfind(f"{{{GMS_MESS}}}groupIdSet/{{{COMMON}}}identifier")]
        return status, keys


class MembershipClient(ServiceClient):
    """A thread-safe IMS ES Membership Management (MMS) client, shaped like `PersonClient`.

    A membership is sent as itslearning's MMS schema orders it: groupSourcedId, member (memberSourcedId,
    idType Person, role (roleType, status)); `status` is IMS's active flag from `Membership.active`.
    Membership ids cannot be listed without knowing a person or group: keep them in the snapshot.

    Args:
        url: The MMS endpoint, `https://.../MembershipManagementService.svc` (see `service_urls`).
        username, password, ca_bundle, timeouts, pool_size, wsdl, adapter: as for `PersonClient`
            (`wsdl`: None for the bundled mms.wsdl).

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
        RejectedError: (from the calls) a membership whose `active` is neither "true" nor "false".
    """

    spec: ClassVar[ServiceSpec] = MMS_SPEC

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        on = Membership(sync_key="warm-up", group="g & <h>", person="p\u00e5", role="Learner")
        off = Membership(sync_key="off", group="g", person="p", role="Instructor", active="false")
        return {
            "createMembership": (_membership_body(on), _membership_body(off)),
            "updateMembership": (_membership_body(on), _membership_body(off)),
            "deleteMembership": (_id_body(MMS_MESS, "sourcedId", "k"),),
            "readMembership": (_id_body(MMS_MESS, "sourcedId", "k"),),
            "changeMembershipIdentifier": (_id_change_body(MMS_MESS, "a & <b>", "b\u00e5"),),
            "createMemberships": (_membership_pairs_body([on, off]),),
            "deleteMemberships": (_id_set_body(MMS_MESS, ["a", "b"]),),
            "readMembershipsForPerson": (_id_body(MMS_MESS, "personSourcedId", "k"),),
            "readMembershipsForGroup": (_id_body(MMS_MESS, "groupSourcedId", "k"),),
        }

    def create_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """createMembership (IMS ES updates it when the sync key exists)."""
        return self._simple("createMembership", _membership_body(membership), message_id)

    def update_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """updateMembership: new group, person, role or active flag (a missing one is `unknownobject`)."""
        return self._simple("updateMembership", _membership_body(membership), message_id)

    def delete_membership(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteMembership."""
        return self._simple("deleteMembership", _id_body(MMS_MESS, "sourcedId", sync_key), message_id)

    def read_membership(
        self, sync_key: str, *, message_id: str | None = None
    ) -> tuple[Status, Membership | None]:
        """readMembership: the status and, on success, the membership (its sync key is the one asked for).

        Raises:
            ProtocolError: also when a success carries no membership.
        """
        body = _id_body(MMS_MESS, "sourcedId", sync_key)
        mid, info, soap_body = self._exchange("readMembership", body, message_id)
        status = self._check("readMembership", info, mid)[0]
        if not status.ok:
            return status, None
        element = soap_body.find(f"{{{MMS_MESS}}}readMembershipResponse/{{{MMS_MESS}}}membership")
        if element is None:
            raise ProtocolError(f"{self._where('readMembership')}: success without a membership")
        return status, membership_from_xml(element, sync_key)

    def change_membership_identifier(
        self, old_id: str, new_id: str, *, message_id: str | None = None
    ) -> Status:
        """changeMembershipIdentifier: give the membership `old_id` the sync key `new_id`.

        Its group, person, role and active flag stay: no second membership in the course. An unknown
        `old_id` is `unknownobject`, a `new_id` in use `objectexists`.
        """
        body = _id_change_body(MMS_MESS, old_id, new_id)
        return self._simple("changeMembershipIdentifier", body, message_id)

    def create_memberships(
        self, memberships: Sequence[Membership], *, message_id: str | None = None
    ) -> MassReply:
        """createMemberships: one request for many memberships, one status per item in order."""
        frozen = list(memberships)
        return self._mass("createMemberships", _membership_pairs_body(frozen), len(frozen), message_id)[0]

    def delete_memberships(self, sync_keys: Sequence[str], *, message_id: str | None = None) -> MassReply:
        """deleteMemberships: one request for many sync keys, one status per item in order."""
        keys = list(sync_keys)
        return self._mass("deleteMemberships", _id_set_body(MMS_MESS, keys), len(keys), message_id)[0]

    def read_memberships_for_person(
        self, person_key: str, *, message_id: str | None = None
    ) -> tuple[Status, list[Membership]]:
        """readMembershipsForPerson: the status and the person's memberships ([] on failure)."""
        return self._pairs(
            "readMembershipsForPerson", _id_body(MMS_MESS, "personSourcedId", person_key), message_id
        )

    def read_memberships_for_group(
        self, group_key: str, *, message_id: str | None = None
    ) -> tuple[Status, list[Membership]]:
        """readMembershipsForGroup: the status and the group's memberships ([] on failure)."""
        return self._pairs(
            "readMembershipsForGroup", _id_body(MMS_MESS, "groupSourcedId", group_key), message_id
        )

    def _pairs(self, name: str, body: RequestBody, message_id: str | None) -> tuple[Status, list[Membership]]:
        """A readMembershipsFor* call: `membershipIDPairSet/membershipIdPair*` (sourcedId + membership).

        Raises:
            ProtocolError: a success without its response element, or a pair without id or membership.
        """
        mid, info, soap_body = self._exchange(name, body, message_id)
        status = self._check(name, info, mid)[0]
        if not status.ok:
            return status, []
        answer = soap_body.find(f"{{{MMS_MESS}}}{name}Response")
        if answer is None:
            raise ProtocolError(f"{self._where(name)}: success without {name}Response")
        found = []
        for pair in answer.iterfind(f"{{{MMS_MESS}}}membershipIDPairSet/{{{MMS_MESS}}}membershipIdPair"):
            key = pair.findtext(f"{{{MMS_MESS}}}sourcedId/{{{COMMON}}}identifier")
            element = pair.find(f"{{{MMS_MESS}}}membership")
            if not key or element is None:
                raise ProtocolError(
                    f"{self._where(name)}: a membershipIdPair lacks its sourcedId or membership"
                )
            found.append(membership_from_xml(element, key))
        return status, found
