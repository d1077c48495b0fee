"""The Membership Management (MMS) behaviour of itslearning's IMS ES, applied to the emulator's Store.

Semantics (docs/emulator.md): createMembership of an existing id updates it; updateMembership,
readMembership and deleteMembership of an unknown id fail with `unknownobject`; a membership whose person or
group does not exist fails with `unknownobject` naming which; the member is a person (idType Person or 1)
with one role, an IMS ES roletype, whose `status` (IMS's active flag, true when absent) is kept: a deactivated
membership stays, with status false; createMemberships/deleteMemberships answer one statusInfo per item;
changeMembershipIdentifier moves a membership (group, person, role, flag) to a new id: an unknown old id is
`unknownobject`, a new id in use `objectexists`.

Imports no sockets, HTTP or TLS: MMS is decided over the Store, on the Service base (service.py).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Final

from lxml import etree

from sync.ims.namespaces import COMMON, MMS_DATA, MMS_MESS
from sync.models import MEMBERSHIP_ROLE_TYPES, Kind, Status
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON

from .service import Answer, Events, Handler, Service, Wire, _check_key, _text, failure, success
from .soap import InvalidDataError, _sub
from .store import Membership, Store

__all__ = [
    "MEMBERSHIP_OPERATIONS",
    "ROLE_TYPES",
    "MembershipService",
    "membership_element",
]


#: roleType values itslearning's MMS schema allows (IMS ES roletypes, their codes, Default and Guest).
ROLE_TYPES: Final = frozenset(
    {
        *MEMBERSHIP_ROLE_TYPES,
        *(f"{n:02d}" for n in range(1, 9)),
        "Default",
        "Guest",
    }
)
_PERSON_ID_TYPES: Final = frozenset({"Person", "1"})
#: xs:boolean's lexical forms.
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}
#: Mass operations and where their items are: (set element, item element).
_MASS_ITEMS: Final = {
    "createMemberships": (f"{{{MMS_MESS}}}membershipIdPairSet", f"{{{MMS_MESS}}}membershipIdPair"),
    "deleteMemberships": (f"{{{MMS_MESS}}}sourcedIdSet", f"{{{COMMON}}}identifier"),
}

#: Every MMS operation the service implements.
MEMBERSHIP_OPERATIONS: Final = frozenset(
    {
        *(MEMBERSHIP.operation(verb) for verb in ("create", "update", "delete", "read")),
        MEMBERSHIP.change_identifier_operation,
        "readMembershipsForPerson",
        "readMembershipsForGroup",
        *_MASS_ITEMS,
    }
)


def _parse(element: etree._Element) -> tuple[dict[str, str], bool | None]:
    """The fields a `membership` element carries (group_key, person_key, role: only those present) and its
    `active` flag: the role's status, true when the role has none, None when no role is sent (the role
    element is replaced whole).
    """
    fields: dict[str, str] = {}
    active: bool | None = None
    group = element.find(f"{{{MMS_DATA}}}groupSourcedId/{{{COMMON}}}identifier")
    if group is not None:
        fields["group_key"] = group.text or ""
    member = element.find(f"{{{MMS_DATA}}}member")
    if member is not None:
        person = member.find(f"{{{MMS_DATA}}}memberSourcedId/{{{COMMON}}}identifier")
        if person is not None:
            fields["person_key"] = person.text or ""
        id_type = member.find(f"{{{MMS_DATA}}}idType")
        if id_type is not None and _text(id_type) not in _PERSON_ID_TYPES:
            raise InvalidDataError(f"idType {_text(id_type)!r}: only persons can be members here")
        roles = member.findall(f"{{{MMS_DATA}}}role")
        if roles:
            role = _text(roles[0].find(f"{{{MMS_DATA}}}roleType"))
            if role not in ROLE_TYPES:
                raise InvalidDataError(f"roleType {role!r} is not a known role type")
            fields["role"] = role
            status = roles[0].find(f"{{{MMS_DATA}}}status")
            active = _BOOLEANS.get(_text(status)) if status is not None else True
            if active is None:
                raise InvalidDataError(f"role status {_text(status)!r} is not a boolean")
    return fields, active


def membership_element(tag: str, membership: Membership) -> etree._Element:
    """Build a `membership` element (named `tag`) in itslearning's MMS shape."""
    root = etree.Element(tag, nsmap={"d": MMS_DATA, "c": COMMON})
    group = _sub(root, f"{{{MMS_DATA}}}groupSourcedId")
    _sub(group, f"{{{COMMON}}}identifier", membership.group_key)
    member = _sub(root, f"{{{MMS_DATA}}}member")
    _sub(_sub(member, f"{{{MMS_DATA}}}memberSourcedId"), f"{{{COMMON}}}identifier", membership.person_key)
    _sub(member, f"{{{MMS_DATA}}}idType", "Person")
    role = _sub(member, f"{{{MMS_DATA}}}role")
    _sub(role, f"{{{MMS_DATA}}}roleType", membership.role)
    _sub(role, f"{{{MMS_DATA}}}status", "true" if membership.active else "false")
    return root


#: MMS as the base serves it: kind, operations, namespace, prefix, mass items, XML, lookup.
_WIRE: Final = Wire(
    MEMBERSHIP, MEMBERSHIP_OPERATIONS, MMS_MESS, "m", _MASS_ITEMS, membership_element, Store.get_membership
)


class MembershipService(Service[Membership]):
    """Applies MMS requests to a Store with itslearning's semantics and records each decision."""

    wire = _WIRE

    def _own(self) -> dict[str, Handler]:
        return {
            "readMembershipsForPerson": partial(self._read_for, PERSON),
            "readMembershipsForGroup": partial(self._read_for, GROUP),
        }

    def _put(self, operation: str, key: str, element: etree._Element) -> Status:
        fields, active = _parse(element)
        current = self._store.get_membership(key)
        if current is None:
            if operation == "updateMembership":
                return failure("unknownobject", key, f"Membership {key!r} does not exist")
            missing = [name for name in ("group_key", "person_key", "role") if not fields.get(name)]
            if missing:
                wanted = {"group_key": "groupSourcedId", "person_key": "memberSourcedId", "role": "roleType"}
                return failure("invaliddata", key, f"a new membership needs {wanted[missing[0]]}")
            current = Membership(sync_key=key, group_key="", person_key="", role="")
        membership = replace(
            current,
            group_key=fields.get("group_key", current.group_key),
            person_key=fields.get("person_key", current.person_key),
            role=fields.get("role", current.role),
            active=current.active if active is None else active,
        )
        if self._store.get(membership.person_key) is None:
            person = membership.person_key
            return failure("unknownobject", person, f"Person {person!r} of membership {key!r} does not exist")
        if self._store.get_group(membership.group_key) is None:
            group = membership.group_key
            return failure("unknownobject", group, f"Group {group!r} of membership {key!r} does not exist")
        self._store.put_membership(membership)
        return success(key)

    def _remove(self, key: str) -> None:
        self._store.delete_membership(key)

    def _rename(self, old: str, new: str) -> None:
        current = self._store.get_membership(old)
        assert current is not None  # the caller checked
        self._store.delete_membership(old)
        self._store.put_membership(replace(current, sync_key=new))

    def _read_for(self, owner: Kind, request: etree._Element, events: Events) -> Answer:
        """readMembershipsForPerson or readMembershipsForGroup: the memberships of one person or group."""
        # readMembershipsForGroup's groupSourcedId extends the data schema's BaseId: same wire form.
        field = f"{owner.name}SourcedId"
        key = self._key(request, field)
        status = _check_key(key, field)
        held = self._store.get if owner is PERSON else self._store.get_group
        if status is None and key is not None and held(key) is None:
            status = failure("unknownobject", key, f"{owner.ims_name} {key!r} does not exist")
        body = self._response(f"readMembershipsFor{owner.ims_name}")
        if status is None:
            found = self._store.memberships(**{owner.name: key}) if key else []
            pairs = _sub(body, f"{{{MMS_MESS}}}membershipIDPairSet")
            for membership in found:
                pair = _sub(pairs, f"{{{MMS_MESS}}}membershipIdPair")
                _sub(_sub(pair, f"{{{MMS_MESS}}}sourcedId"), f"{{{COMMON}}}identifier", membership.sync_key)
                pair.append(membership_element(f"{{{MMS_MESS}}}membership", membership))
            status = success(key or "")
        events.append((key or "", "", status.code_major))
        return Answer(body=body, status=status)
