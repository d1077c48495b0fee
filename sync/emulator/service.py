"""The Person Management behaviour of itslearning's IMS ES (DESIGN §5), applied to the emulator's Store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from lxml import etree

from sync.models import PERSON_FIELDS, CodeMajor, Person, Severity, Status

from .soap import COMMON, MESS, RECOGNISED_ROLES, InvalidDataError, parse_person, person_element
from .store import Store

__all__ = ["MAX_KEY_LENGTH", "MAX_PAGE_SIZE", "OPERATIONS", "Answer", "PersonService"]

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


def _key(parent: etree._Element, name: str) -> str | None:
    element = parent.find(f"{{{MESS}}}{name}/{{{COMMON}}}identifier")
    return None if element is None else (element.text or "")


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


class PersonService:
    """Applies PMS requests to a Store with itslearning's semantics and records each decision."""

    def __init__(self, store: Store) -> None:
        """Serve persons held in `store`."""
        self._store = store
        self._handlers: dict[str, Callable[[etree._Element, list[tuple[str, str, str]]], Answer]] = {
            "createPerson": self._single_write,
            "updatePerson": self._single_write,
            "replacePerson": self._single_write,
            "deletePerson": self._delete_person,
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
        }

    def handle(self, operation: str, request: etree._Element, message_id: str) -> Answer:
        """Apply one request atomically and record what was decided, item by item.

        Args:
            operation: the operation name (e.g. `createPerson`); must be one of OPERATIONS.
            request: the body's `<operation>Request` element.
            message_id: the request's messageIdentifier (for the history).
        """
        events: list[tuple[str, str, str]] = []  # (sync_key, new_key, code_major)
        with self._store.transaction() as store:
            answer = self._handlers[operation](request, events)
            store.record((operation, key, new, message_id, code) for key, new, code in events)
        return answer

    def reject(self, operation: str, request: etree._Element, status: Status) -> Answer:
        """Refuse a whole request with `status`; a mass request gets it once per item, so counts match."""
        items = None
        if operation in _MASS_ITEMS:
            set_tag, item_tag = _MASS_ITEMS[operation]
            items = tuple(status for _ in request.iterfind(f"{set_tag}/{item_tag}"))
        return Answer(body=_response(operation, request), status=status, items=items)

    # --- single requests ------------------------------------------------------------------

    def _single_write(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        operation = etree.QName(request).localname.removesuffix("Request")
        key = _key(request, "sourcedId")
        status = self._write(operation, key, request.find(f"{{{MESS}}}person"))
        events.append((key or "", "", status.code_major))
        return Answer(body=_response(operation, request), status=status)

    def _write(self, operation: str, key: str | None, person: etree._Element | None) -> Status:
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing")
        if person is None:
            return failure("invaliddata", key, "person is missing")
        try:
            fields = parse_person(person).fields
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

    def _delete_person(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        key = _key(request, "sourcedId")
        status = self._delete(key)
        events.append((key or "", "", status.code_major))
        return Answer(body=_response("deletePerson", request), status=status)

    def _delete(self, key: str | None) -> Status:
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing")
        if not self._store.delete(key):
            return failure("unknownobject", key, f"Person {key!r} does not exist")
        return success(key)

    def _read_person(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        key = _key(request, "sourcedId")
        status, person = self._read(key)
        events.append((key or "", "", status.code_major))
        body = _response("readPerson", request)
        if person is not None:
            # Answers carry no sourcedId inside the person: the client knows which key it asked for.
            body.append(person_element(f"{{{MESS}}}person", person))
        return Answer(body=body, status=status)

    def _read(self, key: str | None) -> tuple[Status, Person | None]:
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing"), None
        person = self._store.get(key)
        if person is None:
            return failure("unknownobject", key, f"Person {key!r} does not exist"), None
        return success(key), person

    def _change_identifier(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        old, new = _key(request, "sourcedId"), _key(request, "newSourcedId")
        status = self._change(old, new)
        events.append((old or "", new or "", status.code_major))
        return Answer(body=_response("changePersonIdentifier", request), status=status)

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

    def _read_persons_for_group(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        # The emulator holds no groups, so every group is unknown (as an unknown group is in production).
        key = _key(request, "groupSourcedId") or ""
        status = _check_key(key, "groupSourcedId") or failure(
            "unknownobject", key, f"Group {key!r} does not exist"
        )
        events.append((key, "", status.code_major))
        return Answer(body=_response("readPersonsForGroup", request), status=status)

    # --- mass requests --------------------------------------------------------------------

    def _mass_write(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        operation = etree.QName(request).localname.removesuffix("Request")
        items: list[Status] = []
        for pair in request.iterfind(f"{_PAIR_SET[0]}/{_PAIR_SET[1]}"):
            key = _key(pair, "sourcedId")
            status = self._write(operation, key, pair.find(f"{{{MESS}}}person"))
            events.append((key or "", "", status.code_major))
            items.append(status)
        return _mass_answer(operation, request, items)

    def _delete_persons(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        items: list[Status] = []
        for identifier in request.iterfind(f"{_ID_SET[0]}/{_ID_SET[1]}"):
            key = identifier.text or ""
            status = self._delete(key)
            events.append((key, "", status.code_major))
            items.append(status)
        return _mass_answer("deletePersons", request, items)

    def _read_persons(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        items: list[Status] = []
        found: list[Person] = []
        for identifier in request.iterfind(f"{_ID_SET[0]}/{_ID_SET[1]}"):
            key = identifier.text or ""
            status, person = self._read(key)
            events.append((key, "", status.code_major))
            items.append(status)
            if person is not None:
                found.append(person)
        answer = _mass_answer("readPersons", request, items)
        person_set = etree.SubElement(answer.body, f"{{{MESS}}}personSet")
        for person in found:
            person_set.append(person_element(f"{{{MESS}}}person", person))
        return answer

    def _change_identifiers(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        items: list[Status] = []
        for pair in request.iterfind(f"{_PAIR_ID_SET[0]}/{_PAIR_ID_SET[1]}"):
            old = pair.findtext(f"{{{COMMON}}}firstId")
            new = pair.findtext(f"{{{COMMON}}}secondId")
            status = self._change(old, new)
            events.append((old or "", new or "", status.code_major))
            items.append(status)
        return _mass_answer("changePersonsIdentifier", request, items)

    # --- itslearning's ExtendedPersonManagement -------------------------------------------

    def _read_all_persons(self, request: etree._Element, events: list[tuple[str, str, str]]) -> Answer:
        body = _response("readAllPersons", request)
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


def _response(operation: str, request: etree._Element) -> etree._Element:
    del request  # the answer's shape depends on the operation only
    return etree.Element(f"{{{MESS}}}{operation}Response", nsmap={"m": MESS})


def _mass_answer(operation: str, request: etree._Element, items: list[Status]) -> Answer:
    frozen = tuple(items)
    return Answer(body=_response(operation, request), status=_overall(frozen), items=frozen)


def with_ref(status: Status, message_id_ref: str | None) -> Status:
    """`status` with its messageIdRef set."""
    return replace(status, message_id_ref=message_id_ref)
