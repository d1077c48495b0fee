"""The Person Management behaviour of itslearning's IMS ES (DESIGN §5), applied to the emulator's Store.

Semantics (docs/emulator.md): createPerson of an existing key updates it, updatePerson of an unknown key
creates it, replacePerson replaces the whole record; changePersonIdentifier refuses a person whose role
itslearning maps to no profile; readAllPersons pages through every person (ExtendedPersonManagement).

A service over the Store (see service.py): imports no sockets, HTTP or TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lxml import etree

from sync.ims.namespaces import COMMON, PMS_MESS
from sync.models import PERSON_FIELDS, Person, Severity, Status, join_children, split_children
from sync.models.kinds import PERSON

from .service import Answer, Decision, Events, Handler, Service, Wire, _check_key, failure, success
from .soap import RECOGNISED_ROLES, InvalidDataError, parse_person, person_element
from .store import Store

__all__ = ["MAX_PAGE_SIZE", "OPERATIONS", "PARENT_PORTAL_DISABLED", "PersonService"]

MAX_PAGE_SIZE: Final = 100
INSERTED_INSTEAD: Final = "Object did not exist, has been inserted instead"
#: The warning of a site whose parent portal is switched off, to a write that carries relationships: the
#: person is written, the relationships are not.
PARENT_PORTAL_DISABLED: Final = (
    "The parent portal is disabled for this site, so the relationship could not be created"
)

_PAIR_SET = (f"{{{PMS_MESS}}}personIdPairSet", f"{{{PMS_MESS}}}personIdPair")
_ID_SET = (f"{{{PMS_MESS}}}sourcedIdSet", f"{{{COMMON}}}identifier")
_PAIR_ID_SET = (f"{{{PMS_MESS}}}pairSourcedIdSet", f"{{{COMMON}}}identifierPair")
#: Mass operations and where their items are: (set element, item element).
_MASS_ITEMS: Final = {
    "createPersons": _PAIR_SET,
    "updatePersons": _PAIR_SET,
    "replacePersons": _PAIR_SET,
    "deletePersons": _ID_SET,
    "readPersons": _ID_SET,
    "changePersonsIdentifier": _PAIR_ID_SET,
}

#: Every operation the service implements (the WSDL decides which of them are offered).
OPERATIONS: Final = frozenset(
    {
        *(PERSON.operation(verb) for verb in ("create", "update", "replace", "delete", "read")),
        PERSON.change_identifier_operation,
        "readPersonsForGroup",
        *_MASS_ITEMS,
        "readAllPersons",
    }
)


@dataclass(frozen=True, slots=True)
class _Held:
    """A person as a read answers it: its record and the persons whose child it is."""

    person: Person
    parents: tuple[str, ...]


def _held(store: Store, key: str) -> _Held | None:
    person = store.get(key)
    return None if person is None else _Held(person, store.parents(key))


def _element(tag: str, held: _Held) -> etree._Element:
    return person_element(tag, held.person, parents=held.parents)


#: PMS as the base serves it: kind, operations, namespace, prefix, mass items, XML, lookup.
_WIRE: Final = Wire(PERSON, OPERATIONS, PMS_MESS, "m", _MASS_ITEMS, _element, _held)


class PersonService(Service[_Held]):
    """Applies PMS requests to a Store with itslearning's semantics and records each decision."""

    wire = _WIRE

    def _own(self) -> dict[str, Handler]:
        return {
            "readPersonsForGroup": self._read_persons_for_group,
            "updatePersons": self._mass_write,
            "replacePersons": self._mass_write,
            "readPersons": self._read_persons,
            "changePersonsIdentifier": self._change_identifiers,
            "readAllPersons": self._read_all_persons,
        }

    def __init__(self, store: Store, *, parent_portal: bool = True) -> None:
        """Serve persons held in `store`; without `parent_portal` (a site that switched it off) no
        relationship is written and a request carrying one is answered with PARENT_PORTAL_DISABLED."""
        super().__init__(store)
        self._parent_portal = parent_portal

    def _put(self, operation: str, key: str, element: etree._Element) -> Status:
        parsed = parse_person(element)
        current = self._store.get(key)
        replacing = operation.startswith("replace")
        if replacing:
            values = {name: parsed.fields.get(name, "") for name in PERSON_FIELDS}
        else:
            # createPerson of an existing key updates it; updatePerson of an unknown key creates it.
            values = current.values() if current is not None else dict.fromkeys(PERSON_FIELDS, "")
            values.update(parsed.fields)
        held = split_children(current.children) if current is not None else ()
        values["children"], refused = self._children(key, held, parsed.children, replacing)
        self._store.put(Person.from_values(key, values))
        if refused:
            return success(key, severity=Severity.WARNING, description=PARENT_PORTAL_DISABLED)
        if replacing and current is None:
            return success(key, severity=Severity.WARNING, description=INSERTED_INSTEAD)
        return success(key)

    def _children(
        self, key: str, held: tuple[str, ...], sent: tuple[str, ...] | None, replacing: bool
    ) -> tuple[str, bool]:
        """(the person's children after a write, True when the parent portal refused the request's).

        create/update add the children sent, replace replaces them all (none sent: none kept); a child
        that is not here is skipped, as itslearning does. With the portal off nothing changes.
        """
        if not self._parent_portal:
            return join_children(held), bool(sent)
        known = [child for child in sent or () if child and child != key and self._store.get(child)]
        return join_children(known if replacing else (*held, *known)), False

    def _remove(self, key: str) -> None:
        self._store.delete(key)

    def _rename(self, old: str, new: str) -> Status | None:
        person = self._store.get(old)
        if person is not None and person.role and person.role not in RECOGNISED_ROLES:
            return failure(
                "invaliddata", old, f"institutionRoleType {person.role!r} maps to no itslearning profile"
            )
        self._store.rename(old, new)
        return None

    def _read_persons_for_group(self, request: etree._Element, events: Events) -> Answer:
        # The emulator holds no groups, so every group is unknown (as an unknown group is in production).
        key = self._key(request, "groupSourcedId") or ""
        status = _check_key(key, "groupSourcedId") or failure(
            "unknownobject", key, f"Group {key!r} does not exist"
        )
        return self._answer(request, events, (key, "", status))

    # --- mass requests --------------------------------------------------------------------

    def _read_persons(self, request: etree._Element, events: Events) -> Answer:
        found: list[_Held] = []

        def read(identifier: etree._Element) -> Decision:
            key = identifier.text or ""
            status, person = self._lookup(key)
            if person is not None:
                found.append(person)
            return key, "", status

        answer = self._apply_items("readPersons", request, events, read)
        person_set = etree.SubElement(answer.body, f"{{{PMS_MESS}}}personSet")
        for held in found:
            person_set.append(_element(f"{{{PMS_MESS}}}person", held))
        return answer

    def _change_identifiers(self, request: etree._Element, events: Events) -> Answer:
        def change(pair: etree._Element) -> Decision:
            old = pair.findtext(f"{{{COMMON}}}firstId")
            new = pair.findtext(f"{{{COMMON}}}secondId")
            return old or "", new or "", self._change(old, new)

        return self._apply_items("changePersonsIdentifier", request, events, change)

    # --- itslearning's ExtendedPersonManagement -------------------------------------------

    def _read_all_persons(self, request: etree._Element, events: Events) -> Answer:
        body = self._response("readAllPersons")
        try:
            page_index = _int_or_default(request, "PageIndex", 0)
            page_size = _int_or_default(request, "PageSize", MAX_PAGE_SIZE)
        except InvalidDataError as exc:
            status = failure("invaliddata", "", str(exc))
        else:
            if not 1 <= page_size <= MAX_PAGE_SIZE:
                status = failure("invaliddata", "", f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
            elif page_index < 0:
                status = failure("invaliddata", "", "PageIndex must not be negative")
            else:
                status = success("")
        total = 0
        if status.ok:
            total = self._store.count()
            pairs = etree.SubElement(body, f"{{{PMS_MESS}}}personIdPairSet")
            for person in self._store.page(page_index * page_size, page_size):
                pair = etree.SubElement(pairs, f"{{{PMS_MESS}}}personIdPair")
                sourced_id = etree.SubElement(pair, f"{{{PMS_MESS}}}sourcedId")
                etree.SubElement(sourced_id, f"{{{COMMON}}}identifier").text = person.sync_key
                pair.append(
                    _element(f"{{{PMS_MESS}}}person", _Held(person, self._store.parents(person.sync_key)))
                )
        etree.SubElement(body, f"{{{PMS_MESS}}}virtualCount").text = str(total)
        events.append(("", "", status.code_major))
        return Answer(body=body, status=status)


def _int_or_default(request: etree._Element, name: str, default: int) -> int:
    element = request.find(f"{{{PMS_MESS}}}{name}")
    text = (element.text or "").strip() if element is not None else ""
    if not text:
        return default  # absent or xsi:nil: the service's default
    try:
        return int(text)
    except ValueError:
        raise InvalidDataError(f"{name} {text!r} is not an integer") from None
