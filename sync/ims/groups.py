"""Groups on the wire (GMS): the group element written and read, and the GMS service.

`GROUP_XML` is what `bodies` and the clients need of groups; the rest of a group request (sourcedId,
pairs, keys) is the same shape for every kind and lives in `bodies`.

Imports lxml only; sends nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from lxml import etree

from sync.ims.namespaces import COMMON, GMS_DATA, GMS_MESS
from sync.ims.wire import KindXml, ServiceSpec
from sync.models import Group
from sync.models.kinds import GROUP

__all__ = ["BUNDLED_GMS_WSDL", "GMS_SPEC", "GROUP_SCHEME", "GROUP_XML", "group_from_xml", "group_value"]

#: The bundled GMS WSDL (ours: itslearning publishes no GMS message schema; see docs/emulator.md).
BUNDLED_GMS_WSDL: Final = Path(__file__).resolve().parent / "wsdl" / "gms.wsdl"


#: The groupType scheme itslearning reads (School, Course, CourseGroup, ... are its types).
GROUP_SCHEME: Final = "ItslearningOrganisationTypes"
# IMS's official imsGroupManDataSchema_v1p0 requires typeValue/level (1-2 characters); itslearning's
# production clients send none and itslearning ignores it. We send "1" so that the group is valid
# against the official schema as well.
_GROUP_LEVEL: Final = "1"
_PARENT: Final = "Parent"

GMS_SPEC: Final = ServiceSpec.itslearning(
    GROUP, wsdl=BUNDLED_GMS_WSDL, messages=GMS_MESS, data=GMS_DATA, more=("readGroupsForPerson",)
)


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


GROUP_XML: Final[KindXml[Group]] = KindXml(
    spec=GMS_SPEC,
    value=lambda group, _password: group_value(group),
    read=group_from_xml,
    samples=(
        Group(sync_key="warm-up", name="N & <m>", type="Course", parent="p", description="D\u00e5"),
        Group(sync_key="bare", type="School"),
    ),
)
