"""What every IMS ES request shares on the wire, and what each kind of object supplies to it.

The namespaces of SOAP and of IMS's common and binding schemas; `RequestBody`, a request body two ways
(zeep's value and a direct lxml builder); `ServiceSpec`, what sets one service (PMS, GMS, MMS) apart;
`KindXml`, one kind's XML shape (its element, written and read). `persons`, `groups` and `memberships`
each fill in one `KindXml`; `bodies` builds the request bodies of every kind from them.

Pure data and lxml: imports no zeep, no requests and nothing else of `sync.ims`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from lxml import etree

from sync.ims.namespaces import XSI
from sync.models import Record

__all__ = [
    "KindXml",
    "RequestBody",
    "ServiceSpec",
    "nil",
    "text",
]

_XSI_NSMAP: Final = {"xsi": XSI}

R = TypeVar("R", bound=Record)


def text(parent: etree._Element, tag: str, value: str) -> None:
    """Append `<tag>value</tag>` to `parent`."""
    etree.SubElement(parent, tag).text = value


def nil(parent: etree._Element, tag: str) -> None:
    """Append `<tag xsi:nil="true"/>` to `parent`, as zeep renders `xsd.Nil`."""
    etree.SubElement(parent, tag, nsmap=_XSI_NSMAP).set(f"{{{XSI}}}nil", "true")


@dataclass(frozen=True, slots=True)
class RequestBody:
    """A request body two ways: zeep's value (`value()`) and a direct builder (`build(request)`).

    The builder appends the request element's children with lxml, exactly as zeep would render them
    from the bundled WSDL; a client uses it only for operations where its warm-up showed the two
    renderings byte-identical (see `ServiceClient._warm_up`).
    """

    value: Callable[[], Mapping[str, Any]]
    build: Callable[[etree._Element], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    """What sets one IMS ES service apart for `ServiceClient`: its WSDL, binding and namespaces.

    Attributes:
        wsdl: The bundled WSDL.
        binding: The local name of the SOAP binding whose operations the client calls.
        operations: Those operations.
        message_namespace: The namespace of the `<op>Request` body elements.
        prefixes: Namespace prefixes declared once on the envelope (zeep's `set_ns_prefix`), in order.
        soap_action_base: The SOAPAction prefix, used when the WSDL gives an operation none.
    """

    wsdl: Path
    binding: str
    operations: tuple[str, ...]
    message_namespace: str
    prefixes: tuple[tuple[str, str], ...]
    soap_action_base: str


def _accept(record: Record) -> None:
    """Every record of the kind can be sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KindXml(Generic[R]):
    """One kind's XML shape: its element (named as `Kind.name`) as zeep's value, as lxml, and read back.

    Attributes:
        spec: The kind's service.
        value: The zeep value of the element for (record, password); only persons carry a password.
        fill: Append the element's children to the (empty) element, exactly as zeep renders `value`.
        read: The record in an element of an answer, given its sync key.
        check: Raise (a `sync.errors` class) for a record that cannot be sent; called before rendering.
        samples: A record with every field and a bare one, rendered both ways by the warm-up.
    """

    spec: ServiceSpec
    value: Callable[[R, str], dict[str, Any]]
    fill: Callable[[etree._Element, R, str], None]
    read: Callable[[etree._Element, str], R]
    check: Callable[[R], object] = _accept
    samples: tuple[R, R]
