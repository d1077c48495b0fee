"""The person element in lxml (contract: PERSON ⇄ IMS ES XML): written (`fill_person`, also the
emulator's answers) and read (`person_from_xml`), with what both sides name: name parts, address parts,
the unspecified gender, the relations of `extension/relationship`.

Imports lxml and the models only (no zeep): the emulator builds its answers with it too.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from sync.ims.namespaces import COMMON, PMS_DATA
from sync.ims.wire import nil, text
from sync.models import Person, join_children, split_children

__all__ = [
    "ADDRESS_PARTS",
    "CHILD",
    "NAME_PARTS",
    "PARENT",
    "UNSPECIFIED_GENDER",
    "fill_person",
    "person_from_xml",
    "person_relations",
    "present",
    "relations_of",
]

#: The name parts a person carries, in the order they are written: (IMS namePartType, field).
NAME_PARTS: Final = (
    ("First", "given_name"),
    ("Last", "family_name"),
    ("Nick", "nickname"),
    ("Prefix", "prefix"),
)
#: The address's parts in the schema's order (AddressDType): (element, field).
ADDRESS_PARTS: Final = (
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


def present(person: Person, parts: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """(IMS name, value) of each part whose field is not empty, in order."""
    return [(ims, getattr(person, name)) for ims, name in parts if getattr(person, name)]


def person_relations(person: Person, parents: tuple[str, ...]) -> list[tuple[str, str]]:
    """(relation, sync key): the person's children as Child, then (in answers only) its parents as Parent."""
    return [(CHILD, key) for key in split_children(person.children)] + [(PARENT, key) for key in parents]


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
    parts = present(person, NAME_PARTS)
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
    address = present(person, ADDRESS_PARTS)
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
    relations = person_relations(person, parents)
    if relations:
        extension = etree.SubElement(element, f"{{{PMS_DATA}}}extension")
        for relation, key in relations:
            relationship = etree.SubElement(extension, f"{{{COMMON}}}relationship")
            text(relationship, f"{{{COMMON}}}relation", relation)
            text(etree.SubElement(relationship, f"{{{COMMON}}}sourceId"), f"{{{COMMON}}}identifier", key)


_PHONE_TYPES: Final = {"Voice": "phone", "1": "phone", "Mobile": "mobile", "3": "mobile"}
_PART_FIELDS: Final = dict(NAME_PARTS)


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
    for ims, name in ADDRESS_PARTS:
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
