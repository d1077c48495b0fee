"""The Person Management behaviour of itslearning's IMS ES (DESIGN §5), applied to the emulator's Store.

Also what every service (persons here, groups, memberships) shares: statuses, answers, the Service base.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import ClassVar, Final, TypeVar

from lxml import etree

from sync.models import PERSON_FIELDS, CodeMajor, Person, Severity, Status

from .soap import COMMON, MESS, RECOGNISED_ROLES, InvalidDataError, parse_person, person_element
from .store import Store

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PAGE_SIZE",
    "OPERATIONS",
    "Answer",
    "Decision",
    "Events",
    "PersonService",
    "Service",
]

MAX_KEY_LENGTH: Final = 64
MAX_PAGE_SIZE: Final = 100
INSERTED_INSTEAD: Final = "Object did not exist, has been inserted instead"

_PAIR_SET = (f"{{{MESS}}}personIdPairSet", f"{{{MESS}}}personIdPair")
_ID_SET = (f"{{{MESS}}}sourcedIdSet", f"{{{COMMON}}}identifier")
_PAIR_ID_SET = (f"{{{MESS}}}pairSourcedIdSet", f"{{{COMMON}}}identifierPair")
#: Mass operations and where their items are: (set element, item element).
_MASS_ITEMS: Final = {
    "createPersons": _PAIR_SET,
    "updatePersons": _PAIR_SET,
    "replacePersons": _PAIR_SET,
    "deletePersons": _ID_SET,
    "readPersons": _ID_SET,
    "changePersonsIdentifier": _PAIR_ID_SET,
}

#: What a handler records: (sync_key, new_key, code_major) per decided item.
Events = list[tuple[str, str, str]]
#: What one item came to: (sync_key, new_key, status).
Decision = tuple[str, str, Status]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the service says to one request: the response body and the statuses for the header."""

    body: etree._Element
    status: Status
    items: tuple[Status, ...] | None = None  # one per item of a mass request


def success(key: str, *, severity: str = Severity.STATUS, description: str = "") -> Status:
    """A success status about `key`."""
    return Status(
        code_major=CodeMajor.SUCCESS,
        severity=severity,
        code_minor=(("fullsuccess", key),),
        description=description,
    )


def failure(code: str, key: str, description: str) -> Status:
    """A failure/error status with codeMinor `code` about `key`."""
    return Status(
        code_major=CodeMajor.FAILURE,
        severity=Severity.ERROR,
        code_minor=((code, key),),
        description=description,
    )


def _check_key(key: str | None, what: str = "sourcedId") -> Status | None:
    if not key:
        return failure("invaliddata", "", f"{what} is missing or empty")
    if len(key) > MAX_KEY_LENGTH:
        return failure("invaliddata", key, f"{what} is longer than {MAX_KEY_LENGTH} characters")
    return None


def _overall(items: tuple[Status, ...]) -> Status:
    """The header status of a mass answer: its items' verdict in one line."""
    failed = sum(not item.ok for item in items)
    if failed == 0:
        warned = any(item.severity == Severity.WARNING for item in items)
        return success("", severity=Severity.WARNING if warned else Severity.STATUS)
    return Status(
        code_major=CodeMajor.FAILURE,
        severity=Severity.ERROR if failed == len(items) else Severity.WARNING,
        description=f"{failed} of {len(items)} items failed",
    )


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


class Service(ABC):
    """What the PMS, GMS and MMS services share: each operation dispatched to its handler and recorded
    atomically, mass requests applied item by item, whole requests refused, writes and deletes by key."""

    #: The message namespace of requests and answers, and the prefix answers declare for it.
    namespace: ClassVar[str]
    prefix: ClassVar[str]
    #: The element of a write request that carries the object, e.g. `person`.
    object_name: ClassVar[str]
    #: Mass operations and where their items are: (set element, item element).
    mass_items: ClassVar[Mapping[str, tuple[str, str]]]

    def __init__(
        self, store: Store, handlers: Mapping[str, Callable[[etree._Element, Events], Answer]]
    ) -> None:
        """Serve objects held in `store`, each operation by its handler."""
        self._store = store
        self._handlers = handlers

    def handle(self, operation: str, request: etree._Element, message_id: str) -> Answer:
        """Apply one request atomically and record what was decided, item by item.

        Args:
            operation: the operation name (e.g. `createPerson`); one the service implements.
            request: the body's `<operation>Request` element.
            message_id: the request's messageIdentifier (for the history).
        """
        events: Events = []
        with self._store.transaction() as store:
            answer = self._handlers[operation](request, events)
            store.record((operation, key, new, message_id, code) for key, new, code in events)
        return answer

    def reject(self, operation: str, request: etree._Element, status: Status) -> Answer:
        """Refuse a whole request with `status`; a mass request gets it once per item, so counts match."""
        items = None
        if operation in self.mass_items:
            items = tuple(status for _ in self._items(operation, request))
        return Answer(body=self._response(operation), status=status, items=items)

    @abstractmethod
    def _write(self, operation: str, key: str | None, element: etree._Element | None) -> Status:
        """Create, update or replace the object `element` under `key`, as `operation` says."""

    @abstractmethod
    def _delete(self, key: str | None) -> Status:
        """Delete the object under `key`."""

    def _response(self, operation: str) -> etree._Element:
        return etree.Element(f"{{{self.namespace}}}{operation}Response", nsmap={self.prefix: self.namespace})

    def _key(self, parent: etree._Element, name: str) -> str | None:
        element = parent.find(f"{{{self.namespace}}}{name}/{{{COMMON}}}identifier")
        return None if element is None else (element.text or "")

    def _items(self, operation: str, request: etree._Element) -> list[etree._Element]:
        set_tag, item_tag = self.mass_items[operation]
        return request.findall(f"{set_tag}/{item_tag}")

    def _apply_items(
        self,
        operation: str,
        request: etree._Element,
        events: Events,
        decide: Callable[[etree._Element], Decision],
    ) -> Answer:
        """Decide a mass request's items in order; the answer has one statusInfo per item."""
        items: list[Status] = []
        for item in self._items(operation, request):
            key, new, status = decide(item)
            events.append((key, new, status.code_major))
            items.append(status)
        frozen = tuple(items)
        return Answer(body=self._response(operation), status=_overall(frozen), items=frozen)

    def _write_item(self, operation: str, item: etree._Element) -> Decision:
        """Write the object an element carries under its sourcedId (a request, or a mass request's pair)."""
        key = self._key(item, "sourcedId")
        element = item.find(f"{{{self.namespace}}}{self.object_name}")
        return key or "", "", self._write(operation, key, element)

    def _delete_item(self, identifier: etree._Element) -> Decision:
        key = identifier.text or ""
        return key, "", self._delete(key)

    def _single_write(self, request: etree._Element, events: Events) -> Answer:
        return self._answer(request, events, self._write_item(_operation(request), request))

    def _single_delete(self, request: etree._Element, events: Events) -> Answer:
        key = self._key(request, "sourcedId")
        return self._answer(request, events, (key or "", "", self._delete(key)))

    def _single_read(
        self,
        request: etree._Element,
        events: Events,
        get: Callable[[str], _T | None],
        element: Callable[[str, _T], etree._Element],
    ) -> Answer:
        """Answer a read of the object under the request's sourcedId: `get` finds it, `element` renders it."""
        key = self._key(request, "sourcedId")
        status, found = self._lookup(key, get)
        body = self._response(_operation(request))
        if found is not None:
            # Answers carry no sourcedId inside the object: the client knows which key it asked for.
            body.append(element(f"{{{self.namespace}}}{self.object_name}", found))
        events.append((key or "", "", status.code_major))
        return Answer(body=body, status=status)

    def _lookup(self, key: str | None, get: Callable[[str], _T | None]) -> tuple[Status, _T | None]:
        """The object under `key` that `get` finds, and the status of looking: bad key, unknown, success."""
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing"), None
        found = get(key)
        if found is None:
            what = self.object_name.capitalize()
            return failure("unknownobject", key, f"{what} {key!r} does not exist"), None
        return success(key), found

    def _answer(self, request: etree._Element, events: Events, decision: Decision) -> Answer:
        """Record a single request's decision and answer it with an empty response."""
        key, new, status = decision
        events.append((key, new, status.code_major))
        return Answer(body=self._response(_operation(request)), status=status)


class PersonService(Service):
    """Applies PMS requests to a Store with itslearning's semantics and records each decision."""

    namespace = MESS
    prefix = "m"
    object_name = "person"
    mass_items = _MASS_ITEMS

    def __init__(self, store: Store) -> None:
        """Serve persons held in `store`."""
        super().__init__(
            store,
            {
                "createPerson": self._single_write,
                "updatePerson": self._single_write,
                "replacePerson": self._single_write,
                "deletePerson": self._single_delete,
                "readPerson": self._read_person,
                "changePersonIdentifier": self._change_identifier,
                "readPersonsForGroup": self._read_persons_for_group,
                "createPersons": self._mass_write,
                "updatePersons": self._mass_write,
                "replacePersons": self._mass_write,
                "deletePersons": self._delete_persons,
                "readPersons": self._read_persons,
                "changePersonsIdentifier": self._change_identifiers,
                "readAllPersons": self._read_all_persons,
            },
        )

    # --- single requests ------------------------------------------------------------------

    def _write(self, operation: str, key: str | None, element: etree._Element | None) -> Status:
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing")
        if element is None:
            return failure("invaliddata", key, "person is missing")
        try:
            fields = parse_person(element).fields
        except InvalidDataError as exc:
            return failure("invaliddata", key, str(exc))
        current = self._store.get(key)
        if operation.startswith("replace"):
            self._store.put(Person.from_values(key, {name: fields.get(name, "") for name in PERSON_FIELDS}))
            if current is None:
                return success(key, severity=Severity.WARNING, description=INSERTED_INSTEAD)
            return success(key)
        # createPerson of an existing key updates it; updatePerson of an unknown key creates it.
        values = current.values() if current is not None else dict.fromkeys(PERSON_FIELDS, "")
        values.update(fields)
        self._store.put(Person.from_values(key, values))
        return success(key)

    def _delete(self, key: str | None) -> Status:
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing")
        if not self._store.delete(key):
            return failure("unknownobject", key, f"Person {key!r} does not exist")
        return success(key)

    def _read_person(self, request: etree._Element, events: Events) -> Answer:
        return self._single_read(request, events, self._store.get, person_element)

    def _change_identifier(self, request: etree._Element, events: Events) -> Answer:
        old, new = self._key(request, "sourcedId"), self._key(request, "newSourcedId")
        return self._answer(request, events, (old or "", new or "", self._change(old, new)))

    def _change(self, old: str | None, new: str | None) -> Status:
        bad = _check_key(old) or _check_key(new, "newSourcedId")
        if bad is not None or old is None or new is None:
            return bad or failure("invaliddata", "", "sourcedId is missing")
        person = self._store.get(old)
        if person is None:
            return failure("unknownobject", old, f"Person {old!r} does not exist")
        if self._store.get(new) is not None:
            return failure("objectexists", new, f"Person {new!r} already exists")
        if person.role and person.role not in RECOGNISED_ROLES:
            return failure(
                "invaliddata", old, f"institutionRoleType {person.role!r} maps to no itslearning profile"
            )
        self._store.rename(old, new)
        return success(old)

    def _read_persons_for_group(self, request: etree._Element, events: Events) -> Answer:
        # The emulator holds no groups, so every group is unknown (as an unknown group is in production).
        key = self._key(request, "groupSourcedId") or ""
        status = _check_key(key, "groupSourcedId") or failure(
            "unknownobject", key, f"Group {key!r} does not exist"
        )
        return self._answer(request, events, (key, "", status))

    # --- mass requests --------------------------------------------------------------------

    def _mass_write(self, request: etree._Element, events: Events) -> Answer:
        operation = _operation(request)
        return self._apply_items(operation, request, events, partial(self._write_item, operation))

    def _delete_persons(self, request: etree._Element, events: Events) -> Answer:
        return self._apply_items("deletePersons", request, events, self._delete_item)

    def _read_persons(self, request: etree._Element, events: Events) -> Answer:
        found: list[Person] = []

        def read(identifier: etree._Element) -> Decision:
            key = identifier.text or ""
            status, person = self._lookup(key, self._store.get)
            if person is not None:
                found.append(person)
            return key, "", status

        answer = self._apply_items("readPersons", request, events, read)
        person_set = etree.SubElement(answer.body, f"{{{MESS}}}personSet")
        for person in found:
            person_set.append(person_element(f"{{{MESS}}}person", person))
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
            pairs = etree.SubElement(body, f"{{{MESS}}}personIdPairSet")
            for person in self._store.page(page_index * page_size, page_size):
                pair = etree.SubElement(pairs, f"{{{MESS}}}personIdPair")
                sourced_id = etree.SubElement(pair, f"{{{MESS}}}sourcedId")
                etree.SubElement(sourced_id, f"{{{COMMON}}}identifier").text = person.sync_key
                pair.append(person_element(f"{{{MESS}}}person", person))
        etree.SubElement(body, f"{{{MESS}}}virtualCount").text = str(total)
        events.append(("", "", status.code_major))
        return Answer(body=body, status=status)


#: Every operation the service implements (the WSDL decides which of them are offered).
OPERATIONS: Final = frozenset(
    {
        "createPerson",
        "updatePerson",
        "replacePerson",
        "deletePerson",
        "readPerson",
        "changePersonIdentifier",
        "readPersonsForGroup",
        "createPersons",
        "updatePersons",
        "replacePersons",
        "deletePersons",
        "readPersons",
        "changePersonsIdentifier",
        "readAllPersons",
    }
)


def _int_or_default(request: etree._Element, name: str, default: int) -> int:
    element = request.find(f"{{{MESS}}}{name}")
    text = (element.text or "").strip() if element is not None else ""
    if not text:
        return default  # absent or xsi:nil: the service's default
    try:
        return int(text)
    except ValueError:
        raise InvalidDataError(f"{name} {text!r} is not an integer") from None


def _operation(request: etree._Element) -> str:
    """The operation a `<operation>Request` element asks for."""
    return etree.QName(request).localname.removesuffix("Request")


def with_ref(status: Status, message_id_ref: str | None) -> Status:
    """`status` with its messageIdRef set."""
    return replace(status, message_id_ref=message_id_ref)
