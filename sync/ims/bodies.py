"""The request bodies every kind shares, built once over `sync.models.kinds` and each kind's `KindXml`.

One record (`sourcedId` + the record's element), id pairs (`<kind>IdPairSet/<kind>IdPair*`), one key
(`sourcedId` or another `*SourcedId`), a key set (`sourcedIdSet`) and an identifier change (`sourcedId`
+ `newSourcedId`), each as zeep's value and as the direct lxml builder. A kind's element is named as
`Kind.name` (person, group, membership); what goes inside it comes from `KIND_XML`.

Imports lxml only; sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from lxml import etree

from sync.ims.groups import GROUP_XML
from sync.ims.memberships import MEMBERSHIP_XML
from sync.ims.namespaces import COMMON
from sync.ims.persons import PERSON_XML
from sync.ims.wire import KindXml, RequestBody, text
from sync.models import Record
from sync.models.kinds import Kind

__all__ = ["KIND_XML", "key_body", "keys_body", "pairs_body", "record_body", "rename_body"]

#: Each kind's XML shape, by `Kind.name`: the one per-kind table of the IMS ES package. Looked up when a
#: body is built, so a test may swap an entry for a client built meanwhile.
KIND_XML: Final[dict[str, KindXml[Any]]] = {
    "person": PERSON_XML,
    "group": GROUP_XML,
    "membership": MEMBERSHIP_XML,
}


def _identifier(parent: etree._Element, tag: str, key: str) -> None:
    """`<tag><identifier>key</identifier></tag>`, `tag` in the message namespace of `parent`'s request."""
    text(etree.SubElement(parent, tag), f"{{{COMMON}}}identifier", key)


def _record_xml(parent: etree._Element, kind: Kind, xml: KindXml[Any], record: Record, password: str) -> None:
    """`sourcedId` and the record's element, appended to `parent`."""
    namespace = xml.spec.message_namespace
    _identifier(parent, f"{{{namespace}}}sourcedId", record.sync_key)
    xml.write(etree.SubElement(parent, f"{{{namespace}}}{kind.name}"), record, password)


def record_body(kind: Kind, record: Record, password: str = "") -> RequestBody:
    """create/update/replace: `sourcedId` + the record; `password` only for a person's create.

    Raises:
        RejectedError: the record cannot be sent (a membership's `active` flag); nothing is rendered.
    """
    xml = KIND_XML[kind.name]
    xml.check(record)

    def value() -> Mapping[str, Any]:
        return {"sourcedId": {"identifier": record.sync_key}, kind.name: xml.value(record, password)}

    def build(request: etree._Element) -> None:
        _record_xml(request, kind, xml, record, password)

    return RequestBody(value, build)


def pairs_body(kind: Kind, items: Sequence[tuple[Record, str]]) -> RequestBody:
    """A mass create: `<kind>IdPairSet/<kind>IdPair*` of (record, password) pairs ("" = no password).

    Raises:
        RejectedError: a record cannot be sent; nothing is rendered.
    """
    xml = KIND_XML[kind.name]
    frozen = list(items)
    for record, _ in frozen:
        xml.check(record)
    namespace = xml.spec.message_namespace

    def value() -> Mapping[str, Any]:
        pairs = [{"sourcedId": {"identifier": r.sync_key}, kind.name: xml.value(r, pw)} for r, pw in frozen]
        return {f"{kind.name}IdPairSet": {f"{kind.name}IdPair": pairs}}

    def build(request: etree._Element) -> None:
        pairs = etree.SubElement(request, f"{{{namespace}}}{kind.name}IdPairSet")
        for record, password in frozen:
            _record_xml(
                etree.SubElement(pairs, f"{{{namespace}}}{kind.name}IdPair"), kind, xml, record, password
            )

    return RequestBody(value, build)


def key_body(kind: Kind, key: str, tag: str = "sourcedId") -> RequestBody:
    """One key: `<tag><identifier>key</identifier></tag>` (delete, read; `personSourcedId`, ...)."""
    namespace = KIND_XML[kind.name].spec.message_namespace

    def build(request: etree._Element) -> None:
        _identifier(request, f"{{{namespace}}}{tag}", key)

    return RequestBody(lambda: {tag: {"identifier": key}}, build)


def keys_body(kind: Kind, keys: Sequence[str]) -> RequestBody:
    """A key set: `sourcedIdSet/identifier*` (mass delete, mass read)."""
    namespace = KIND_XML[kind.name].spec.message_namespace
    frozen = list(keys)

    def build(request: etree._Element) -> None:
        identifiers = etree.SubElement(request, f"{{{namespace}}}sourcedIdSet")
        for key in frozen:
            text(identifiers, f"{{{COMMON}}}identifier", key)

    return RequestBody(lambda: {"sourcedIdSet": {"identifier": frozen}}, build)


def rename_body(kind: Kind, old_id: str, new_id: str) -> RequestBody:
    """An identifier change: `sourcedId` + `newSourcedId`."""
    namespace = KIND_XML[kind.name].spec.message_namespace

    def build(request: etree._Element) -> None:
        _identifier(request, f"{{{namespace}}}sourcedId", old_id)
        _identifier(request, f"{{{namespace}}}newSourcedId", new_id)

    return RequestBody(
        lambda: {"sourcedId": {"identifier": old_id}, "newSourcedId": {"identifier": new_id}}, build
    )
