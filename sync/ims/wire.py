"""What every IMS ES request shares on the wire, and what each kind of object supplies to it.

The namespaces of SOAP and of IMS's common and binding schemas; `RequestBody`, a request body two ways
(zeep's value and a direct lxml builder); `ServiceSpec`, what sets one service (PMS, GMS, MMS) apart;
`KindXml`, one kind's XML shape (its element, written and read). `persons`, `groups` and `memberships`
each fill in one `KindXml`; `bodies` builds the request bodies of every kind from them.

Pure data and lxml (and zeep's `xsd.Nil` marker): imports no zeep client, no requests and nothing else of
`sync.ims` but its namespaces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from lxml import etree
from zeep import xsd

from sync.ims.namespaces import BIND, COMMON, XSI
from sync.models import Record
from sync.models.kinds import Kind

__all__ = [
    "KindXml",
    "RequestBody",
    "ServiceSpec",
    "nil",
    "text",
    "write_value",
]

_XSI_NSMAP: Final = {"xsi": XSI}

#: The elements of a kind's element that are IMS's common types (imsCommonSchema), not the service's data.
_COMMON_ELEMENTS: Final = frozenset({"identifier", "email", "userIdValue", "passWord"})

R = TypeVar("R", bound=Record)


def text(parent: etree._Element, tag: str, value: str) -> None:
    """Append `<tag>value</tag>` to `parent`."""
    etree.SubElement(parent, tag).text = value


def nil(parent: etree._Element, tag: str) -> None:
    """Append `<tag xsi:nil="true"/>` to `parent`, as zeep renders `xsd.Nil`."""
    etree.SubElement(parent, tag, nsmap=_XSI_NSMAP).set(f"{{{XSI}}}nil", "true")


def write_value(parent: etree._Element, value: Mapping[str, Any], namespace: str) -> None:
    """Append the elements of zeep `value` to `parent`, in `namespace`, exactly as zeep renders them.

    The value of an element: a mapping (its children), a list (the element repeated), text, a number,
    a bool ("true"/"false") or `xsd.Nil` (`xsi:nil`). The IMS common types (`identifier`, `email`,
    `userId` parts) are in IMS's common namespace, as the bundled WSDLs declare them. The direct builder
    of a kind's element is this over its zeep value, so the two renderings cannot drift apart.
    """
    for name, item in value.items():
        tag = f"{{{COMMON if name in _COMMON_ELEMENTS else namespace}}}{name}"
        for one in item if isinstance(item, list) else (item,):
            if isinstance(one, Mapping):
                write_value(etree.SubElement(parent, tag), one, namespace)
            elif one is xsd.Nil:
                nil(parent, tag)
            elif isinstance(one, bool):
                text(parent, tag, "true" if one else "false")
            else:
                text(parent, tag, str(one))


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
        data_namespace: The namespace of the service's data (a kind's element and its children).
        prefixes: Namespace prefixes declared once on the envelope (zeep's `set_ns_prefix`), in order.
        soap_action_base: The SOAPAction prefix, used when the WSDL gives an operation none.
    """

    wsdl: Path
    binding: str
    operations: tuple[str, ...]
    message_namespace: str
    data_namespace: str
    prefixes: tuple[tuple[str, str], ...]
    soap_action_base: str

    @classmethod
    def itslearning(
        cls, kind: Kind, *, wsdl: Path, messages: str, data: str, more: tuple[str, ...] = ()
    ) -> ServiceSpec:
        """The IMS ES service of `kind` as itslearning publishes it.

        The binding `BasicHttpBinding_<service name>Sync`; the operations every kind has
        (create, update, delete, read, change identifier, mass create), then `more`; the envelope
        prefixes itslearning's documentation uses (ims, ims1 to ims3); SOAPActions under
        `http://www.imsglobal.org/soap/<service>/`.
        """
        return cls(
            wsdl=wsdl,
            binding=f"BasicHttpBinding_{kind.service_name}Sync",
            operations=(
                *(kind.operation(verb) for verb in ("create", "update", "delete", "read")),
                kind.change_identifier_operation,
                kind.mass_operation("create"),
                *more,
            ),
            message_namespace=messages,
            data_namespace=data,
            prefixes=(("ims", BIND), ("ims1", messages), ("ims2", COMMON), ("ims3", data)),
            soap_action_base=f"http://www.imsglobal.org/soap/{kind.service}/",
        )


def _accept(record: Record) -> None:
    """Every record of the kind can be sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KindXml(Generic[R]):
    """One kind's XML shape: its element (named as `Kind.name`) as zeep's value, as lxml, and read back.

    Attributes:
        spec: The kind's service.
        value: The zeep value of the element for (record, password); only persons carry a password.
        read: The record in an element of an answer, given its sync key.
        check: Raise (a `sync.errors` class) for a record that cannot be sent; called before rendering.
        samples: A record with every field and a bare one, rendered both ways by the warm-up.
        fill: Append the element's children to the (empty) element; by default `value` written with
            `write_value`, i.e. exactly as zeep renders it. Persons bring their own (`person_xml`'s, which
            the emulator's answers share); the warm-up checks any builder against zeep's rendering.
    """

    spec: ServiceSpec
    value: Callable[[R, str], dict[str, Any]]
    read: Callable[[etree._Element, str], R]
    check: Callable[[R], object] = _accept
    samples: tuple[R, R]
    fill: Callable[[etree._Element, R, str], None] | None = None

    def write(self, element: etree._Element, record: R, password: str) -> None:
        """Append `record`'s children to its (empty) element, as zeep renders `value(record, password)`."""
        if self.fill is not None:
            self.fill(element, record, password)
        else:
            write_value(element, self.value(record, password), self.spec.data_namespace)
