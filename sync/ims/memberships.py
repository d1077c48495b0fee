"""Memberships on the wire (MMS): the membership element written and read, and the MMS service.

`MEMBERSHIP_XML` is what `bodies` and the clients need of memberships; the rest of a membership request
(sourcedId, pairs, key sets) is the same shape for every kind and lives in `bodies`.

Imports lxml only; sends nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from lxml import etree

from sync.errors import RejectedError
from sync.ims.namespaces import COMMON, MMS_DATA, MMS_MESS
from sync.ims.wire import KindXml, ServiceSpec
from sync.models import Membership
from sync.models.kinds import MEMBERSHIP

__all__ = ["BUNDLED_MMS_WSDL", "MEMBERSHIP_XML", "MMS_SPEC", "membership_from_xml", "membership_value"]

#: The bundled MMS WSDL (itslearning's MembershipManagementServiceSync shapes, schemas inline).
BUNDLED_MMS_WSDL: Final = Path(__file__).resolve().parent / "wsdl" / "mms.wsdl"


#: What Membership Management offers besides the operations every kind has.
_MORE: Final = ("deleteMemberships", "readMembershipsForPerson", "readMembershipsForGroup")
MMS_SPEC: Final = ServiceSpec.itslearning(
    MEMBERSHIP, wsdl=BUNDLED_MMS_WSDL, messages=MMS_MESS, data=MMS_DATA, more=_MORE
)

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


MEMBERSHIP_XML: Final[KindXml[Membership]] = KindXml(
    spec=MMS_SPEC,
    value=lambda membership, _password: membership_value(membership),
    read=membership_from_xml,
    check=_active,  # refuse a bad flag before anything is rendered
    samples=(
        Membership(sync_key="warm-up", group="g & <h>", person="p\u00e5", role="Learner"),
        Membership(sync_key="off", group="g", person="p", role="Instructor", active="false"),
    ),
)
