"""Persons on the wire (PMS): the person element written and read, the PMS service, readAllPersons' paging.

Contract: PERSON ⇄ IMS ES XML. `PERSON_XML` is what `bodies` and the clients need of persons; the rest
of a person request (sourcedId, pairs, key sets) is the same shape for every kind and lives in `bodies`.

Imports lxml and zeep's `xsd.Nil` marker only; sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lxml import etree
from zeep import xsd

from sync.ims.namespaces import COMMON, PMS_DATA, PMS_MESS
from sync.ims.wire import KindXml, RequestBody, ServiceSpec, nil, text
from sync.models import Person
from sync.models.kinds import PERSON

__all__ = [
    "BUNDLED_WSDL",
    "EXTENDED_BINDING",
    "EXTENDED_OPERATIONS",
    "PERSON_XML",
    "PMS_SPEC",
    "page_body",
    "person_from_xml",
    "person_value",
]

#: The WSDL shipped with the package (PMS + ExtendedPersonManagement, schemas inline).
BUNDLED_WSDL: Final = Path(__file__).resolve().parent / "wsdl" / "pms.wsdl"


#: itslearning's ExtendedPersonManagement binding (readAllPersons), at its own URL.
EXTENDED_BINDING: Final = "BasicHttpBinding_ExtendedPersonManagementServiceSync"
EXTENDED_OPERATIONS: Final = ("readAllPersons",)

#: What Person Management offers besides the operations every kind has (readAllPersons is apart).
_MORE: Final = ("replacePerson", "readPersons", "deletePersons")
PMS_SPEC: Final = ServiceSpec.itslearning(
    PERSON, wsdl=BUNDLED_WSDL, messages=PMS_MESS, data=PMS_DATA, more=_MORE
)


def person_value(person: Person, *, password: str = "") -> dict[str, Any]:
    """The zeep value of a `person` element (contract: PERSON ⇄ IMS ES XML); `password` only on creates."""
    value: dict[str, Any] = {"formatName": f"{person.given_name} {person.family_name}".strip() or xsd.Nil}
    parts = [
        {"namePartType": kind, "namePartValue": part}
        for kind, part in (("First", person.given_name), ("Last", person.family_name))
        if part
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


_PHONE_TYPES: Final = {"Voice": "phone", "1": "phone", "Mobile": "mobile", "3": "mobile"}


def person_from_xml(element: etree._Element, sync_key: str) -> Person:
    """Read a `person` element (any namespace for the element itself); unknown children are ignored."""
    fields: dict[str, str] = {}
    for part in element.iterfind(f"{{{PMS_DATA}}}name/{{{PMS_DATA}}}partName"):
        kind = part.findtext(f"{{{PMS_DATA}}}namePartType")
        value = part.findtext(f"{{{PMS_DATA}}}namePartValue") or ""
        if kind == "First":
            fields["given_name"] = value
        elif kind == "Last":
            fields["family_name"] = value
    fields["email"] = element.findtext(f"{{{COMMON}}}email") or ""
    fields["username"] = element.findtext(f"{{{PMS_DATA}}}userId/{{{COMMON}}}userIdValue") or ""
    fields["birth_date"] = element.findtext(f"{{{PMS_DATA}}}demographics/{{{PMS_DATA}}}bday") or ""
    roles = element.findall(f"{{{PMS_DATA}}}institutionRole")
    primary = [
        r for r in roles if (r.findtext(f"{{{PMS_DATA}}}primaryRoleType") or "").strip() in {"true", "1"}
    ]
    if roles:
        fields["role"] = (primary or roles)[0].findtext(f"{{{PMS_DATA}}}institutionRoleType") or ""
    for tel in element.iterfind(f"{{{PMS_DATA}}}tel"):
        name = _PHONE_TYPES.get(tel.findtext(f"{{{PMS_DATA}}}telType") or "")
        if name and name not in fields:
            fields[name] = tel.findtext(f"{{{PMS_DATA}}}telValue") or ""
    return Person(sync_key=sync_key, **fields)


def page_body(page_index: int, page_size: int) -> RequestBody:
    """readAllPersons' request: one page of the site's persons, no filters (three nils)."""

    def value() -> Mapping[str, Any]:
        return {
            "PageIndex": page_index,
            "PageSize": page_size,
            "CreatedFrom": xsd.Nil,
            "OnlyManuallyCreatedUsers": xsd.Nil,
            "ConvertFromManual": xsd.Nil,
        }

    def build(request: etree._Element) -> None:
        text(request, f"{{{PMS_MESS}}}PageIndex", str(int(page_index)))
        text(request, f"{{{PMS_MESS}}}PageSize", str(int(page_size)))
        for name in ("CreatedFrom", "OnlyManuallyCreatedUsers", "ConvertFromManual"):
            nil(request, f"{{{PMS_MESS}}}{name}")

    return RequestBody(value, build)


_SAMPLE: Final = Person(
    sync_key="warm-up", username="u & <v>", given_name="G\u00e5", family_name="f", email="e",
    role="Student", birth_date="2000-01-01", phone="1", mobile="2",
)  # fmt: skip

PERSON_XML: Final[KindXml[Person]] = KindXml(
    spec=PMS_SPEC,
    value=lambda person, password: person_value(person, password=password),
    read=person_from_xml,
    samples=(_SAMPLE, Person(sync_key="bare")),
)
