"""Our WSDLs as the emulator uses them: the offered operations, the schema validators and ?wsdl documents.

Reads the bundled WSDLs (package data); imports nothing of the emulator.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from lxml import etree

from sync.ims.namespaces import WSDL, WSDL_SOAP
from sync.ims.urls import endpoint
from sync.ims.xsd import load_wsdl_schema, safe_parser
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON

__all__ = [
    "EXTENDED_PATH",
    "GMS_PATH",
    "MMS_PATH",
    "PATHS",
    "PMS_PATH",
    "Catalog",
    "SchemaValidator",
    "ServiceDescription",
    "bundled_catalog",
]

PMS_PATH: Final = f"/{endpoint(PERSON)}"
EXTENDED_PATH: Final = f"/{endpoint(PERSON, extended=True)}"
GMS_PATH: Final = f"/{endpoint(GROUP)}"
MMS_PATH: Final = f"/{endpoint(MEMBERSHIP)}"
#: Every endpoint the emulator serves.
PATHS: Final = (PMS_PATH, EXTENDED_PATH, GMS_PATH, MMS_PATH)


class SchemaValidator:
    """Validates single elements against compiled schemas; safe to share between threads."""

    def __init__(self, schema: etree.XMLSchema) -> None:
        """Wrap a compiled schema."""
        self._schema = schema
        # An XMLSchema keeps its error log on the object: validations must not interleave.
        self._lock = threading.Lock()

    def error(self, element: etree._Element) -> str | None:
        """None when `element` (as a document of its own) is valid, else the first schema error."""
        document = etree.fromstring(etree.tostring(element), safe_parser())
        with self._lock:
            try:
                self._schema.assertValid(document)
            except etree.DocumentInvalid as exc:
                return str(exc)
        return None


def _path_of(location: str) -> str:
    """Which of our endpoints a WSDL address names (by its last path segment)."""
    segment = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
    for prefix, path in (("Extended", EXTENDED_PATH), ("Group", GMS_PATH), ("Membership", MMS_PATH)):
        if segment.startswith(prefix):
            return path
    return PMS_PATH


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceDescription:
    """What a WSDL tells the emulator: which (endpoint path, SOAPAction) pairs exist, and the schemas."""

    document: bytes
    routes: Mapping[tuple[str, str], str]  # (path, soapAction) -> operation name
    validator: SchemaValidator

    @classmethod
    def load(cls, path: Path) -> ServiceDescription:
        """Read a self-contained WSDL file (schemas inline, services with soap:address).

        Raises:
            etree.XMLSyntaxError: the file is not well-formed.
            etree.XMLSchemaParseError: its schemas do not compile.
        """
        document = path.read_bytes()
        root = etree.fromstring(document, safe_parser())
        routes: dict[tuple[str, str], str] = {}
        for port in root.iterfind(f"{{{WSDL}}}service/{{{WSDL}}}port"):
            address = port.find(f"{{{WSDL_SOAP}}}address")
            endpoint = _path_of(address.get("location", "") if address is not None else "")
            binding_name = port.get("binding", "").rsplit(":", 1)[-1]
            for binding in root.iterfind(f"{{{WSDL}}}binding"):
                if binding.get("name") != binding_name:
                    continue
                for operation in binding.iterfind(f"{{{WSDL}}}operation"):
                    soap_operation = operation.find(f"{{{WSDL_SOAP}}}operation")
                    if soap_operation is not None:
                        action = soap_operation.get("soapAction", "")
                        routes[(endpoint, action)] = operation.get("name", "")
        return cls(document=document, routes=routes, validator=SchemaValidator(load_wsdl_schema(path)))

    @property
    def paths(self) -> frozenset[str]:
        """The endpoint paths this WSDL's services are at."""
        return frozenset(path for path, _ in self.routes)

    def render(self, base_url: str) -> bytes:
        """The WSDL with every soap:address pointing at this server's endpoints under `base_url`."""
        root = etree.fromstring(self.document, safe_parser())
        for address in root.iterfind(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{WSDL_SOAP}}}address"):
            address.set("location", base_url + _path_of(address.get("location", "")))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """Several WSDLs served side by side (PMS, GMS, MMS), each validated by its own schemas.

    Each WSDL keeps its own validator: our GMS and PMS WSDLs declare the common namespace with different
    contents, so their schemas cannot be compiled into one.
    """

    descriptions: tuple[ServiceDescription, ...]
    routes: Mapping[tuple[str, str], str]  # (path, soapAction) -> operation name, over every WSDL

    @classmethod
    def of(cls, *descriptions: ServiceDescription) -> Catalog:
        """Serve these WSDLs together."""
        merged: dict[tuple[str, str], str] = {}
        for description in descriptions:
            merged.update(description.routes)
        return cls(descriptions=descriptions, routes=merged)

    def description(self, path: str) -> ServiceDescription | None:
        """The WSDL that serves `path`, or None."""
        return next((d for d in self.descriptions if path in d.paths), None)


@functools.cache
def _load(name: str) -> ServiceDescription:
    resource = importlib.resources.files("sync.ims") / "wsdl" / name
    with importlib.resources.as_file(resource) as path:
        return ServiceDescription.load(path)


@functools.cache
def bundled_catalog() -> Catalog:
    """Our PMS (with ExtendedPersonManagement), GMS and MMS WSDLs, loaded once per process."""
    return Catalog.of(_load("pms.wsdl"), _load("gms.wsdl"), _load("mms.wsdl"))
