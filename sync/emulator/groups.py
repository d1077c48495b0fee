"""The Group Management (GMS) behaviour of itslearning's IMS ES, applied to the emulator's Store.

Semantics (docs/emulator.md): createGroup of an existing id updates it; updateGroup, readGroup, deleteGroup
and changeGroupIdentifier of an unknown id fail with `unknownobject`; a group whose Parent does not exist
fails with `unknownobject` naming the parent; a group with child groups cannot be deleted (`deletefailure`),
one with memberships can and takes them along; changeGroupIdentifier onto an id in use fails with
`objectexists`; createGroups answers one statusInfo per item, applied in order (parents first).

GMS decisions over the Store, on the Service base (service.py); no sockets, HTTP or TLS here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from lxml import etree

from sync.ims.namespaces import COMMON, GMS_DATA, GMS_MESS
from sync.models import Severity, Status
from sync.models.kinds import GROUP

from .service import Answer, Events, Handler, Service, Wire, _check_key, _text, failure, success
from .soap import InvalidDataError, _sub
from .store import Group, Store

__all__ = [
    "GROUP_OPERATIONS",
    "MASS_ITEMS",
    "GroupService",
    "group_element",
    "parse_group",
]

_PARENT: Final = "Parent"
_GROUP_FIELDS: Final = ("scheme", "type", "level", "parent", "desc_short", "desc_long", "desc_full")

#: Every GMS operation the service implements.
GROUP_OPERATIONS: Final = frozenset(
    {
        *(GROUP.operation(verb) for verb in ("create", "update", "delete", "read")),
        GROUP.change_identifier_operation,
        GROUP.mass_operation("create"),
        "readGroupsForPerson",
    }
)
#: Mass operations and where their items are: (set element, item element).
MASS_ITEMS: Final = {"createGroups": (f"{{{GMS_MESS}}}groupIdPairSet", f"{{{GMS_MESS}}}groupIdPair")}


def parse_group(element: etree._Element) -> dict[str, str]:
    """The group fields a `group` element carries (only those present; "" clears a description part).

    A `relationship` list replaces the parent: the one with relation Parent, or none.

    Raises:
        InvalidDataError: a groupType without scheme or type, or a Parent without an identifier.
    """
    fields: dict[str, str] = {}
    group_type = element.find(f"{{{GMS_DATA}}}groupType")
    if group_type is not None:
        value = group_type.find(f"{{{GMS_DATA}}}typeValue")
        fields["scheme"] = _text(group_type.find(f"{{{GMS_DATA}}}scheme"))
        fields["type"] = _text(value.find(f"{{{GMS_DATA}}}type") if value is not None else None)
        fields["level"] = _text(value.find(f"{{{GMS_DATA}}}level") if value is not None else None)
        if not fields["scheme"] or not fields["type"]:
            raise InvalidDataError("groupType needs a scheme and a typeValue/type")
    relationships = element.findall(f"{{{GMS_DATA}}}relationship")
    if relationships:
        parents = [r for r in relationships if _text(r.find(f"{{{GMS_DATA}}}relation")) == _PARENT]
        if len(parents) > 1:
            raise InvalidDataError("a group has at most one Parent relationship")
        fields["parent"] = ""
        if parents:
            parent = _text(parents[0].find(f"{{{GMS_DATA}}}sourceId/{{{COMMON}}}identifier"))
            if not parent:
                raise InvalidDataError("the Parent relationship has no sourceId/identifier")
            fields["parent"] = parent
    description = element.find(f"{{{GMS_DATA}}}description")
    if description is not None:
        for name in ("descShort", "descLong", "descFull"):
            fields[f"desc_{name[4:].lower()}"] = _text(description.find(f"{{{GMS_DATA}}}{name}"))
    return fields


def group_element(tag: str, group: Group) -> etree._Element:
    """Build a `group` element (named `tag`) as IMS's GroupDType orders it.

    Args:
        tag: the element's qualified name, e.g. `{GMS_MESS}group`.
        group: the values; "" means absent.
    """
    root = etree.Element(tag, nsmap={"gd": GMS_DATA, "c": COMMON})
    group_type = _sub(root, f"{{{GMS_DATA}}}groupType")
    _sub(group_type, f"{{{GMS_DATA}}}scheme", group.scheme)
    value = _sub(group_type, f"{{{GMS_DATA}}}typeValue")
    _sub(value, f"{{{GMS_DATA}}}type", group.type)
    if group.level:
        _sub(value, f"{{{GMS_DATA}}}level", group.level)
    if group.parent:
        relationship = _sub(root, f"{{{GMS_DATA}}}relationship")
        _sub(relationship, f"{{{GMS_DATA}}}relation", _PARENT)
        _sub(_sub(relationship, f"{{{GMS_DATA}}}sourceId"), f"{{{COMMON}}}identifier", group.parent)
        _sub(relationship, f"{{{GMS_DATA}}}label", _PARENT)
    if group.desc_short:
        description = _sub(root, f"{{{GMS_DATA}}}description")
        _sub(description, f"{{{GMS_DATA}}}descShort", group.desc_short)
        if group.desc_long:
            _sub(description, f"{{{GMS_DATA}}}descLong", group.desc_long)
        if group.desc_full:
            _sub(description, f"{{{GMS_DATA}}}descFull", group.desc_full)
    return root


#: GMS as the base serves it: kind, operations, namespace, prefix, mass items, XML, lookup.
_WIRE: Final = Wire(GROUP, GROUP_OPERATIONS, GMS_MESS, "gm", MASS_ITEMS, group_element, Store.get_group)


class GroupService(Service[Group]):
    """Applies GMS requests to a Store with itslearning's semantics and records each decision."""

    wire = _WIRE

    def _own(self) -> dict[str, Handler]:
        return {"readGroupsForPerson": self._read_groups_for_person}

    def _put(self, operation: str, key: str, element: etree._Element) -> Status:
        fields = parse_group(element)
        current = self._store.get_group(key)
        if current is None:
            if operation == "updateGroup":
                return failure("unknownobject", key, f"Group {key!r} does not exist")
            if "scheme" not in fields:
                return failure("invaliddata", key, "groupType is missing (a new group needs one)")
            current = Group(sync_key=key, scheme="", type="")
        group = replace(current, **{name: fields[name] for name in _GROUP_FIELDS if name in fields})
        problem = self._parent_problem(key, group.parent)
        if problem is not None:
            return problem
        self._store.put_group(group)
        return success(key)

    def _parent_problem(self, key: str, parent: str) -> Status | None:
        """Why `parent` cannot be `key`'s parent (unknown, itself, or a descendant), or None."""
        if not parent:
            return None
        bad = _check_key(parent, "Parent sourceId")
        if bad is not None:
            return replace(bad, code_minor=(("invaliddata", key),))
        seen = {key}
        ancestor: str = parent
        while ancestor:
            if ancestor in seen:
                return failure("invaliddata", key, f"Parent {parent!r} would make a cycle of groups")
            seen.add(ancestor)
            found = self._store.get_group(ancestor)
            if found is None:
                if ancestor == parent:
                    return failure("unknownobject", parent, f"Parent group {parent!r} does not exist")
                break  # an ancestor further up vanished: not this request's business
            ancestor = found.parent
        return None

    def _remove(self, key: str) -> Status:
        if children := self._store.children(key):
            return failure(
                "deletefailure",
                key,
                f"Group {key!r} has {len(children)} child group(s) (e.g. {children[0]!r}): delete them first",
            )
        removed = self._store.delete_group(key)
        note = f"{len(removed)} membership(s) removed with the group" if removed else ""
        return success(key, severity=Severity.WARNING if removed else Severity.STATUS, description=note)

    def _rename(self, old: str, new: str) -> None:
        self._store.rename_group(old, new)

    def _read_groups_for_person(self, request: etree._Element, events: Events) -> Answer:
        key = self._key(request, "personSourcedId")
        body = self._response("readGroupsForPerson")
        bad = _check_key(key, "personSourcedId")
        if bad is not None or key is None:
            status = bad or failure("invaliddata", "", "personSourcedId is missing")
        elif self._store.get(key) is None:
            status = failure("unknownobject", key, f"Person {key!r} does not exist")
        else:
            id_set = _sub(body, f"{{{GMS_MESS}}}groupIdSet")
            for group_key in sorted({m.group_key for m in self._store.memberships(person=key)}):
                _sub(id_set, f"{{{COMMON}}}identifier", group_key)
            status = success(key)
        events.append((key or "", "", status.code_major))
        return Answer(body=body, status=status)
