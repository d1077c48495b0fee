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

from sync.ims.namespaces import BIND, COMMON, PMS_DATA, PMS_MESS
from sync.ims.wire import KindXml, RequestBody, ServiceSpec, nil, text
from sync.models import Person, join_children, split_children

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

#: Person Management: the binding PersonClient calls at its main URL (readAllPersons is apart).
PMS_SPEC: Final = ServiceSpec(
    wsdl=BUNDLED_WSDL,
    binding="BasicHttpBinding_PersonManagementServiceSync",
    operations=(
        "createPerson",
        "updatePerson",
        "replacePerson",
        "deletePerson",
        "readPerson",
        "readPersons",
        "changePersonIdentifier",
        "createPersons",
        "deletePersons",
    ),
    message_namespace=PMS_MESS,
    # The prefixes itslearning's documentation uses.
    prefixes=(("ims", BIND), ("ims1", PMS_MESS), ("ims2", COMMON), ("ims3", PMS_DATA)),
    soap_action_base="http://www.imsglobal.org/soap/pms/",
)


#: The name parts a person carries, in the order they are written: (IMS namePartType, field).
_NAME_PARTS: Final = (
    ("First", "given_name"),
    ("Last", "family_name"),
    ("Nick", "nickname"),
    ("Prefix", "prefix"),
)
#: The address's parts in the schema's order (AddressDType): (element, field).
_ADDRESS_PARTS: Final = (
    ("extadd", "street_extra"),
    ("locality", "city"),
    ("postcode", "postal_code"),
    ("street", "street"),
)
#: What demographics/gender says when the person's gender is not given (gender is required there).
UNSPECIFIED_GENDER: Final = "Gender"
#: The relations of a person's `extension/relationship` itslearning uses: a parent's Child (the only one
#: it accepts in a write), a child's Parent (in answers).
CHILD: Final = "Child"
PARENT: Final = "Parent"


def _present(person: Person, parts: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """(IMS name, value) of each part whose field is not empty, in order."""
    return [(ims, getattr(person, name)) for ims, name in parts if getattr(person, name)]


def _relations(person: Person, parents: tuple[str, ...]) -> list[tuple[str, str]]:
    """(relation, sync key): the person's children as Child, then (in answers only) its parents as Parent."""
    return [(CHILD, key) for key in split_children(person.children)] + [(PARENT, key) for key in parents]


def person_value(person: Person, *, password: str = "") -> dict[str, Any]:
    """The zeep value of a `person` element (contract: PERSON ⇄ IMS ES XML); `password` only on creates."""
    value: dict[str, Any] = {"formatName": f"{person.given_name} {person.family_name}".strip() or xsd.Nil}
    parts = _present(person, _NAME_PARTS)
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
    address = _present(person, _ADDRESS_PARTS)
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
    relations = _relations(person, ())
    if relations:
        value["extension"] = {
            "relationship": [{"relation": rel, "sourceId": {"identifier": key}} for rel, key in relations]
        }
    return value


def fill_person(
    element: etree._Element, person: Person, password: str = "", parents: tuple[str, ...] = ()
) -> None:
    """The `person` element's children as zeep renders `person_value(person, password=password)`; an
    answer (the emulator's) also names the person's `parents` as Parent relationships."""
    format_name = f"{person.given_name} {person.family_name}".strip()
    if format_name:
        text(element, f"{{{PMS_DATA}}}formatName", format_name)
    else:
        nil(element, f"{{{PMS_DATA}}}formatName")
    parts = _present(person, _NAME_PARTS)
    if parts:
        _typed(
            etree.SubElement(element, f"{{{PMS_DATA}}}name"),
            ("partName", "namePartType", "namePartValue"),
            parts,
        )
    if person.email:
        text(element, f"{{{COMMON}}}email", person.email)
    if person.username or password:
        user = etree.SubElement(element, f"{{{PMS_DATA}}}userId")
        if person.username:
            text(user, f"{{{COMMON}}}userIdValue", person.username)
        if password:
            text(user, f"{{{COMMON}}}passWord", password)
    _fill_tail(element, person, parents)


def _typed(parent: etree._Element, tags: tuple[str, str, str], pairs: list[tuple[str, str]]) -> None:
    """Append one `tags[0]` element per (type, value) pair, holding `tags[1]` = type and `tags[2]` = value."""
    item_tag, type_tag, value_tag = (f"{{{PMS_DATA}}}{tag}" for tag in tags)
    for kind, value in pairs:
        item = etree.SubElement(parent, item_tag)
        text(item, type_tag, kind)
        text(item, value_tag, value)


def _fill_tail(element: etree._Element, person: Person, parents: tuple[str, ...]) -> None:
    """`fill_person` after userId: address, demographics, institutionRole, tel, extension."""
    address = _present(person, _ADDRESS_PARTS)
    if address:
        parent = etree.SubElement(element, f"{{{PMS_DATA}}}address")
        for name, part in address:
            text(parent, f"{{{PMS_DATA}}}{name}", part)
    if person.birth_date or person.gender:
        demographics = etree.SubElement(element, f"{{{PMS_DATA}}}demographics")
        text(demographics, f"{{{PMS_DATA}}}gender", person.gender or UNSPECIFIED_GENDER)
        if person.birth_date:
            text(demographics, f"{{{PMS_DATA}}}bday", person.birth_date)
    if person.role:
        role = etree.SubElement(element, f"{{{PMS_DATA}}}institutionRole")
        text(role, f"{{{PMS_DATA}}}institutionRoleType", person.role)
        text(role, f"{{{PMS_DATA}}}primaryRoleType", "true")
    tels = [(kind, number) for kind, number in (("Voice", person.phone), ("Mobile", person.mobile)) if number]
    _typed(element, ("tel", "telType", "telValue"), tels)
    relations = _relations(person, parents)
    if relations:
        extension = etree.SubElement(element, f"{{{PMS_DATA}}}extension")
        for relation, key in relations:
            relationship = etree.SubElement(extension, f"{{{COMMON}}}relationship")
            text(relationship, f"{{{COMMON}}}relation", relation)
            text(etree.SubElement(relationship, f"{{{COMMON}}}sourceId"), f"{{{COMMON}}}identifier", key)


_PHONE_TYPES: Final = {"Voice": "phone", "1": "phone", "Mobile": "mobile", "3": "mobile"}
_PART_FIELDS: Final = dict(_NAME_PARTS)


def relations_of(element: etree._Element) -> list[tuple[str, str]]:
    """(relation, sync key) of each `extension/relationship` of a `person` element, in order; a relation
    without a key (a person without a sync key) has ""."""
    found = []
    for relationship in element.iterfind(f"{{{PMS_DATA}}}extension/{{{COMMON}}}relationship"):
        relation = (relationship.findtext(f"{{{COMMON}}}relation") or "").strip()
        key = relationship.findtext(f"{{{COMMON}}}sourceId/{{{COMMON}}}identifier") or ""
        found.append((relation, key))
    return found


def person_from_xml(element: etree._Element, sync_key: str) -> Person:
    """Read a `person` element (any namespace for the element itself); unknown children are ignored.

    Children are the keys of its Child relationships only (a child answers its Parent ones; a relation to
    a person without a sync key comes back with an empty key and is left out); an unspecified gender
    ("Gender") reads as "".
    """
    fields: dict[str, str] = {}
    for part in element.iterfind(f"{{{PMS_DATA}}}name/{{{PMS_DATA}}}partName"):
        name = _PART_FIELDS.get(part.findtext(f"{{{PMS_DATA}}}namePartType") or "")
        if name:
            fields[name] = part.findtext(f"{{{PMS_DATA}}}namePartValue") or ""
    fields["email"] = element.findtext(f"{{{COMMON}}}email") or ""
    fields["username"] = element.findtext(f"{{{PMS_DATA}}}userId/{{{COMMON}}}userIdValue") or ""
    for ims, name in _ADDRESS_PARTS:
        fields[name] = element.findtext(f"{{{PMS_DATA}}}address/{{{PMS_DATA}}}{ims}") or ""
    fields["birth_date"] = element.findtext(f"{{{PMS_DATA}}}demographics/{{{PMS_DATA}}}bday") or ""
    gender = element.findtext(f"{{{PMS_DATA}}}demographics/{{{PMS_DATA}}}gender") or ""
    fields["gender"] = "" if gender == UNSPECIFIED_GENDER else gender
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
    fields["children"] = join_children(key for relation, key in relations_of(element) if relation == CHILD)
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
