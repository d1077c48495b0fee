"""Persons on the wire (PMS): the person element as zeep's value, the PMS service, readAllPersons' paging.

Contract: PERSON ⇄ IMS ES XML. `PERSON_XML` is what `bodies` and the clients need of persons; the rest
of a person request (sourcedId, pairs, key sets) is the same shape for every kind and lives in `bodies`.
The element in lxml (written and read) is `sync.ims.person_xml`'s, which the emulator shares.

Imports lxml and zeep's `xsd.Nil` marker only; sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lxml import etree
from zeep import xsd

from sync.ims.namespaces import PMS_DATA, PMS_MESS
from sync.ims.person_xml import (
    ADDRESS_PARTS,
    CHILD,
    NAME_PARTS,
    PARENT,
    UNSPECIFIED_GENDER,
    fill_person,
    person_from_xml,
    person_relations,
    present,
    relations_of,
)
from sync.ims.wire import KindXml, RequestBody, ServiceSpec, nil, text
from sync.models import Person
from sync.models.kinds import PERSON

__all__ = [
    "BUNDLED_WSDL",
    "CHILD",
    "EXTENDED_BINDING",
    "EXTENDED_OPERATIONS",
    "PARENT",
    "PERSON_XML",
    "PMS_SPEC",
    "UNSPECIFIED_GENDER",
    "fill_person",
    "page_body",
    "person_from_xml",
    "person_value",
    "relations_of",
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
    parts = present(person, NAME_PARTS)
    if parts:
        value["name"] = {"partName": [{"namePartType": kind, "namePartValue": part} for kind, part in parts]}
    if person.email:
        value["email"] = person.email
    user: dict[str, str] = {}
    if person.username:
        user["userIdValue"] = person.username
    if password:
        user["passWord"] = password
    if user:
        value["userId"] = user
    address = present(person, ADDRESS_PARTS)
    if address:
        value["address"] = {name: [part] if name == "street" else part for name, part in address}
    if person.birth_date or person.gender:
        value["demographics"] = {"gender": person.gender or UNSPECIFIED_GENDER}
        if person.birth_date:
            value["demographics"]["bday"] = person.birth_date
    if person.role:
        value["institutionRole"] = [{"institutionRoleType": person.role, "primaryRoleType": True}]
    tels = [
        {"telType": kind, "telValue": number}
        for kind, number in (("Voice", person.phone), ("Mobile", person.mobile))
        if number
    ]
    if tels:
        value["tel"] = tels
    relations = person_relations(person, ())
    if relations:
        value["extension"] = {
            "relationship": [{"relation": rel, "sourceId": {"identifier": key}} for rel, key in relations]
        }
    return value


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
    role="Student", birth_date="2000-01-01", phone="1", mobile="2", nickname="n", prefix="Dr",
    street="s 1", street_extra="x", postal_code="0155", city="c", gender="Female", children="a,b",
)  # fmt: skip

PERSON_XML: Final[KindXml[Person]] = KindXml(
    spec=PMS_SPEC,
    value=lambda person, password: person_value(person, password=password),
    fill=fill_person,
    read=person_from_xml,
    samples=(_SAMPLE, Person(sync_key="bare")),
)
