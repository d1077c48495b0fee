"""SOAP 1.1 and IMS ES XML for the emulator: namespaces, Person ⇄ XML, statuses, envelopes and faults.

Pure XML: imports no I/O and nothing of the emulator.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from lxml import etree

from sync.ims.namespaces import BIND, COMMON, PMS_DATA, SOAP_ENV, WSSE, WSU, XML_NS
from sync.ims.person_xml import CHILD, UNSPECIFIED_GENDER, fill_person, relations_of
from sync.models import GENDERS, INSTITUTION_ROLE_TYPES, PERSON_FIELDS, Person, Status

__all__ = [
    "RECOGNISED_ROLES",
    "ROLE_TYPES",
    "InvalidDataError",
    "ParsedPerson",
    "fault_envelope",
    "parse_person",
    "person_element",
    "response_envelope",
    "status_element",
]


#: institutionRoleType values the schema allows (itslearning's WSDL enumeration).
ROLE_TYPES: Final = frozenset(INSTITUTION_ROLE_TYPES)
#: Roles itslearning maps to a profile of its own; changePersonIdentifier needs one of them.
RECOGNISED_ROLES: Final = frozenset({"Student", "Staff", "Guest", "Administrator", "Carer"})

# itslearning's LangStringDType enumerates "en-US" and "en-GB" but not a bare "en": an answer with
# "en" would not validate against the schema every client holds, so the emulator says "en-US".
DESCRIPTION_LANGUAGE: Final = "en-US"

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: namePartType -> field, and address element -> field (the rest of a name or address is ignored).
_NAME_FIELDS: Final = {"First": "given_name", "Last": "family_name", "Nick": "nickname", "Prefix": "prefix"}
#: Fields read as the text of one element, when it is there: (path, field).
_TEXT_FIELDS: Final = (
    (f"{{{COMMON}}}email", "email"),
    (f"{{{PMS_DATA}}}userId/{{{COMMON}}}userIdValue", "username"),
    *(
        (f"{{{PMS_DATA}}}address/{{{PMS_DATA}}}{ims}", name)
        for ims, name in (
            ("street", "street"),
            ("extadd", "street_extra"),
            ("postcode", "postal_code"),
            ("locality", "city"),
        )
    ),
)
_NSMAP_RESPONSE: Final = {"s": SOAP_ENV, "u": WSU}


class InvalidDataError(ValueError):
    """A request value the service cannot deserialise or accept (answered as `invaliddata`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedPerson:
    """The canonical fields a `person` element carries: only those present in it."""

    fields: Mapping[str, str]  # children are apart: what a write does with them depends on the operation
    children: tuple[str, ...] | None = None  # the Child relationships' keys; None: the element has none


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def person_element(
    tag: str, person: Person, *, password: str = "", parents: tuple[str, ...] = ()
) -> etree._Element:
    """Build a `person` element (named `tag`) in the shared contract's shape (`sync.ims.persons`).

    Args:
        tag: the element's qualified name, e.g. `{PMS_MESS}person`.
        person: the values; "" means absent. Its children are answered as Child relationships.
        password: a create password (only createPerson(s) carries one); never stored or echoed.
        parents: the persons whose child it is, answered as Parent relationships (as itslearning reads do).
    """
    root = etree.Element(tag, nsmap={"d": PMS_DATA, "c": COMMON})
    fill_person(root, person, password, parents)
    return root


def _text(element: etree._Element | None) -> str:
    return (element.text or "") if element is not None else ""


def parse_person(element: etree._Element) -> ParsedPerson:
    """Read the canonical fields present in a `person` element (the inverse of `person_element`).

    Unknown elements are ignored; a password is read past and never kept.

    Raises:
        InvalidDataError: a value the service cannot deserialise (bday not a date, unknown role type).
    """
    fields: dict[str, str] = {}
    for part in element.iterfind(f"{{{PMS_DATA}}}name/{{{PMS_DATA}}}partName"):
        part_type = _text(part.find(f"{{{PMS_DATA}}}namePartType"))
        name = _NAME_FIELDS.get(part_type)
        if name is not None:
            fields[name] = _text(part.find(f"{{{PMS_DATA}}}namePartValue"))
    for path, name in _TEXT_FIELDS:
        found = element.find(path)
        if found is not None:
            fields[name] = _text(found)
    bday = element.find(f"{{{PMS_DATA}}}demographics/{{{PMS_DATA}}}bday")
    if bday is not None:
        fields["birth_date"] = _check_date(_text(bday).strip())
    gender = element.find(f"{{{PMS_DATA}}}demographics/{{{PMS_DATA}}}gender")
    if gender is not None:
        fields["gender"] = _check_gender(_text(gender).strip())
    roles = element.findall(f"{{{PMS_DATA}}}institutionRole")
    if roles:
        primary = [
            r for r in roles if _text(r.find(f"{{{PMS_DATA}}}primaryRoleType")).strip() in {"true", "1"}
        ]
        role = _text((primary or roles)[0].find(f"{{{PMS_DATA}}}institutionRoleType")).strip()
        if role not in ROLE_TYPES:
            raise InvalidDataError(f"institutionRoleType {role!r} is not a known role type")
        fields["role"] = role
    for tel in element.iterfind(f"{{{PMS_DATA}}}tel"):
        tel_type = _text(tel.find(f"{{{PMS_DATA}}}telType")).strip()
        target = {"Voice": "phone", "Mobile": "mobile"}.get(tel_type)
        if target is not None:
            fields[target] = _text(tel.find(f"{{{PMS_DATA}}}telValue"))
    relations = relations_of(element)
    wrong = sorted({relation for relation, _ in relations if relation != CHILD})
    if wrong:
        raise InvalidDataError(f"relationship relation {wrong[0]!r}: only {CHILD!r} can be written")
    return ParsedPerson(
        fields={name: fields[name] for name in PERSON_FIELDS if name in fields},
        children=tuple(key for _, key in relations) if relations else None,
    )


def _check_gender(value: str) -> str:
    if value not in (*GENDERS, UNSPECIFIED_GENDER):
        raise InvalidDataError(f"gender {value!r} is not one of Male, Female, Gender")
    return "" if value == UNSPECIFIED_GENDER else value


def _check_date(value: str) -> str:
    if not _DATE.fullmatch(value):
        raise InvalidDataError(f"bday {value!r} is not a date (yyyy-mm-dd)")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise InvalidDataError(f"bday {value!r} is not a date (yyyy-mm-dd)") from None
    return value


def status_element(tag: str, status: Status) -> etree._Element:
    """Render a statusInfo (named `tag`, in the BIND namespace) from a `Status`."""
    root = etree.Element(tag, nsmap={"h": BIND})
    _sub(root, f"{{{BIND}}}codeMajor", status.code_major)
    _sub(root, f"{{{BIND}}}severity", status.severity)
    if status.code_minor:
        code_minor = _sub(root, f"{{{BIND}}}codeMinor")
        for name, value in status.code_minor:
            field = _sub(code_minor, f"{{{BIND}}}codeMinorField")
            _sub(field, f"{{{BIND}}}codeMinorName", name)
            _sub(field, f"{{{BIND}}}codeMinorValue", value)
    if status.message_id_ref is not None:
        _sub(root, f"{{{BIND}}}messageIdRef", status.message_id_ref)
    if status.description:
        description = _sub(root, f"{{{BIND}}}description")
        _sub(description, f"{{{COMMON}}}language", DESCRIPTION_LANGUAGE)
        _sub(description, f"{{{COMMON}}}text", status.description)
    return root


def _timestamp(now: datetime) -> tuple[str, str]:
    def fmt(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    return fmt(now), fmt(now + timedelta(minutes=5))


def response_envelope(
    body: etree._Element,
    status: Status,
    items: Sequence[Status] | None = None,
    *,
    now: datetime | None = None,
) -> bytes:
    """A complete answer: syncResponseHeaderInfo, then a mustUnderstand Security Timestamp, then the body.

    Args:
        body: the `<operation>Response` element.
        status: the request's statusInfo (its messageIdRef already set).
        items: one statusInfo per item of a mass request, in request order; None for a single request.
        now: the answer's time (default: the clock).
    """
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=_NSMAP_RESPONSE)
    header = _sub(envelope, f"{{{SOAP_ENV}}}Header")
    info = etree.SubElement(header, f"{{{BIND}}}syncResponseHeaderInfo", nsmap={"h": BIND})
    _sub(info, f"{{{BIND}}}messageIdentifier", str(uuid.uuid4()))
    info.append(status_element(f"{{{BIND}}}statusInfo", status))
    if items is not None:
        status_set = _sub(info, f"{{{BIND}}}statusInfoSet")
        for item in items:
            status_set.append(status_element(f"{{{BIND}}}statusInfo", item))
    security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"o": WSSE})
    security.set(f"{{{SOAP_ENV}}}mustUnderstand", "1")
    timestamp = _sub(security, f"{{{WSU}}}Timestamp")
    timestamp.set(f"{{{WSU}}}Id", "_0")
    created, expires = _timestamp(now or datetime.now(UTC))
    _sub(timestamp, f"{{{WSU}}}Created", created)
    _sub(timestamp, f"{{{WSU}}}Expires", expires)
    _sub(envelope, f"{{{SOAP_ENV}}}Body").append(body)
    return bytes(etree.tostring(envelope, xml_declaration=False, encoding="utf-8"))


def fault_envelope(code: str, code_namespace: tuple[str, str] | None, message: str) -> bytes:
    """A SOAP 1.1 Fault as WCF writes it.

    Args:
        code: the faultcode's QName text, e.g. `a:InvalidSecurity` or `s:Client`.
        code_namespace: (prefix, namespace) declared on faultcode for `code`'s prefix, if not `s`.
        message: the faultstring.
    """
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"s": SOAP_ENV})
    fault = _sub(_sub(envelope, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault")
    nsmap = {code_namespace[0]: code_namespace[1]} if code_namespace else None
    faultcode = etree.SubElement(fault, "faultcode", nsmap=nsmap)
    faultcode.text = code
    faultstring = _sub(fault, "faultstring", message)
    faultstring.set(f"{{{XML_NS}}}lang", "en-US")
    return bytes(etree.tostring(envelope, encoding="utf-8"))
