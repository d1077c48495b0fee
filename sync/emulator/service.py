"""What every IMS ES service of the emulator (persons, groups, memberships) shares: statuses, answers and
the Service base, which serves a kind's create, update, replace, delete, read and identifier change, single
and mass, once for every kind; each service adds only its object's data and its own operations.

Decisions over the Store: imports no network I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Generic, TypeVar

from lxml import etree

from sync.ims.namespaces import COMMON
from sync.models import CodeMajor, Kind, Severity, Status

from .soap import InvalidDataError
from .store import Store

__all__ = [
    "MAX_KEY_LENGTH",
    "Answer",
    "Decision",
    "Events",
    "Handler",
    "Service",
    "Wire",
    "failure",
    "success",
]

MAX_KEY_LENGTH: Final = 64

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


#: How a service answers one operation: the request element, the events to record.
Handler = Callable[[etree._Element, Events], Answer]


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


@dataclass(frozen=True, slots=True)
class Wire(Generic[_T]):
    """What the emulator needs to know of one kind's IMS ES service beyond its Kind: the data that differs."""

    kind: Kind  # its name and IMS ES operation names
    operations: frozenset[str]  # every operation the service implements (the WSDL decides which are offered)
    namespace: str  # the message namespace of requests and answers
    prefix: str  # the prefix answers declare for `namespace`
    mass_items: Mapping[str, tuple[str, str]]  # mass operations and where their items are: (set, item)
    element: Callable[[str, _T], etree._Element]  # an object held, as an element named `tag` (reads)
    held: Callable[[Store, str], _T | None]  # the object held under a key, or None


class Service(ABC, Generic[_T]):
    """What the PMS, GMS and MMS services share: each operation dispatched to its handler and recorded
    atomically, mass requests applied item by item, whole requests refused, writes, reads, deletes and
    identifier changes by key, all as the service's `wire` describes its kind."""

    wire: Wire[_T]

    def __init__(self, store: Store) -> None:
        """Serve objects held in `store`: the kind's shared operations it implements, and its own."""
        self._store = store
        kind = self.wire.kind
        shared: dict[str, Handler] = {
            **dict.fromkeys(
                (kind.operation(verb) for verb in ("create", "update", "replace")), self._single_write
            ),
            kind.operation("delete"): self._single_delete,
            kind.operation("read"): self._single_read,
            kind.change_identifier_operation: self._change_identifier,
            kind.mass_operation("create"): self._mass_write,
            kind.mass_operation("delete"): self._mass_delete,
        }
        operations = self.wire.operations
        self._handlers = {op: handler for op, handler in shared.items() if op in operations} | self._own()
        assert set(self._handlers) == operations, "every operation needs a handler"

    @property
    def namespace(self) -> str:
        """The message namespace of requests and answers."""
        return self.wire.namespace

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
        if operation in self.wire.mass_items:
            items = tuple(status for _ in self._items(operation, request))
        return Answer(body=self._response(operation), status=status, items=items)

    # --- what each kind says ------------------------------------------------------------------

    @abstractmethod
    def _own(self) -> dict[str, Handler]:
        """The handlers of the operations only this kind has."""

    @abstractmethod
    def _put(self, operation: str, key: str, element: etree._Element) -> Status:
        """Create, update or replace the object `element` carries under `key`, as `operation` says.

        Raises:
            InvalidDataError: the element carries what the service cannot accept.
        """

    @abstractmethod
    def _remove(self, key: str) -> Status | None:
        """Delete the object held under `key` (it exists); None when that is all there is to say."""

    @abstractmethod
    def _rename(self, old: str, new: str) -> Status | None:
        """Move the object held under `old` to `new` (which is free); a refusal, or None when moved."""

    # --- by key -------------------------------------------------------------------------------

    def _write(self, operation: str, key: str | None, element: etree._Element | None) -> Status:
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing")
        if element is None:
            return failure("invaliddata", key, f"{self.wire.kind.name} is missing")
        try:
            return self._put(operation, key, element)
        except InvalidDataError as exc:
            return failure("invaliddata", key, str(exc))

    def _delete(self, key: str | None) -> Status:
        status, found = self._lookup(key)
        return status if found is None or key is None else (self._remove(key) or success(key))

    def _change(self, old: str | None, new: str | None) -> Status:
        bad = _check_key(old) or _check_key(new, "newSourcedId")
        if bad is not None or old is None or new is None:
            return bad or failure("invaliddata", "", "sourcedId is missing")
        name = self.wire.kind.ims_name
        if self._get_held(old) is None:
            return failure("unknownobject", old, f"{name} {old!r} does not exist")
        if self._get_held(new) is not None:
            return failure("objectexists", new, f"{name} {new!r} already exists")
        return self._rename(old, new) or success(old)

    def _get_held(self, key: str) -> _T | None:
        return self.wire.held(self._store, key)

    def _lookup(self, key: str | None) -> tuple[Status, _T | None]:
        """The object under `key`, and the status of looking: bad key, unknown, success."""
        bad = _check_key(key)
        if bad is not None or key is None:
            return bad or failure("invaliddata", "", "sourcedId is missing"), None
        found = self._get_held(key)
        if found is None:
            return failure("unknownobject", key, f"{self.wire.kind.ims_name} {key!r} does not exist"), None
        return success(key), found

    # --- requests -----------------------------------------------------------------------------

    def _response(self, operation: str) -> etree._Element:
        return etree.Element(
            f"{{{self.namespace}}}{operation}Response", nsmap={self.wire.prefix: self.namespace}
        )

    def _key(self, parent: etree._Element, name: str) -> str | None:
        element = parent.find(f"{{{self.namespace}}}{name}/{{{COMMON}}}identifier")
        return None if element is None else (element.text or "")

    def _items(self, operation: str, request: etree._Element) -> list[etree._Element]:
        set_tag, item_tag = self.wire.mass_items[operation]
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
        element = item.find(f"{{{self.namespace}}}{self.wire.kind.name}")
        return key or "", "", self._write(operation, key, element)

    def _delete_item(self, identifier: etree._Element) -> Decision:
        key = identifier.text or ""
        return key, "", self._delete(key)

    def _single_write(self, request: etree._Element, events: Events) -> Answer:
        return self._answer(request, events, self._write_item(_operation(request), request))

    def _single_delete(self, request: etree._Element, events: Events) -> Answer:
        key = self._key(request, "sourcedId")
        return self._answer(request, events, (key or "", "", self._delete(key)))

    def _single_read(self, request: etree._Element, events: Events) -> Answer:
        """Answer a read of the object under the request's sourcedId."""
        key = self._key(request, "sourcedId")
        status, found = self._lookup(key)
        body = self._response(_operation(request))
        if found is not None:
            # Answers carry no sourcedId inside the object: the client knows which key it asked for.
            body.append(self.wire.element(f"{{{self.namespace}}}{self.wire.kind.name}", found))
        events.append((key or "", "", status.code_major))
        return Answer(body=body, status=status)

    def _change_identifier(self, request: etree._Element, events: Events) -> Answer:
        old, new = self._key(request, "sourcedId"), self._key(request, "newSourcedId")
        return self._answer(request, events, (old or "", new or "", self._change(old, new)))

    def _mass_write(self, request: etree._Element, events: Events) -> Answer:
        operation = _operation(request)
        return self._apply_items(operation, request, events, lambda item: self._write_item(operation, item))

    def _mass_delete(self, request: etree._Element, events: Events) -> Answer:
        return self._apply_items(_operation(request), request, events, self._delete_item)

    def _answer(self, request: etree._Element, events: Events, decision: Decision) -> Answer:
        """Record a single request's decision and answer it with an empty response."""
        key, new, status = decision
        events.append((key, new, status.code_major))
        return Answer(body=self._response(_operation(request)), status=status)


def _operation(request: etree._Element) -> str:
    """The operation a `<operation>Request` element asks for."""
    return etree.QName(request).localname.removesuffix("Request")


def with_ref(status: Status, message_id_ref: str | None) -> Status:
    """`status` with its messageIdRef set."""
    return replace(status, message_id_ref=message_id_ref)
