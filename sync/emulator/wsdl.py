"""Our WSDL as the emulator uses it: the offered operations, the schema validator and the ?wsdl document."""

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

from sync.xsd import load_wsdl_schema, safe_parser

__all__ = [
    "EXTENDED_PATH",
    "PMS_PATH",
    "SchemaValidator",
    "ServiceDescription",
    "bundled_description",
]

PMS_PATH: Final = "/PersonManagementService.svc"
EXTENDED_PATH: Final = "/ExtendedPersonManagementService.svc"

_WSDL: Final = "http://schemas.xmlsoap.org/wsdl/"
_SOAP: Final = "http://schemas.xmlsoap.org/wsdl/soap/"


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
    """Which of our two endpoints a WSDL address names (by its last path segment)."""
    segment = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
    return EXTENDED_PATH if segment.startswith("Extended") else PMS_PATH


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
        for port in root.iterfind(f"{{{_WSDL}}}service/{{{_WSDL}}}port"):
            address = port.find(f"{{{_SOAP}}}address")
            endpoint = _path_of(address.get("location", "") if address is not None else "")
            binding_name = port.get("binding", "").rsplit(":", 1)[-1]
            for binding in root.iterfind(f"{{{_WSDL}}}binding"):
                if binding.get("name") != binding_name:
                    continue
                for operation in binding.iterfind(f"{{{_WSDL}}}operation"):
                    soap_operation = operation.find(f"{{{_SOAP}}}operation")
                    if soap_operation is not None:
                        action = soap_operation.get("soapAction", "")
                        routes[(endpoint, action)] = operation.get("name", "")
        return cls(document=document, routes=routes, validator=SchemaValidator(load_wsdl_schema(path)))

    def render(self, *, pms_url: str, extended_url: str) -> bytes:
        """The WSDL with every soap:address pointing at this server's endpoints."""
        root = etree.fromstring(self.document, safe_parser())
        for address in root.iterfind(f"{{{_WSDL}}}service/{{{_WSDL}}}port/{{{_SOAP}}}address"):
            endpoint = _path_of(address.get("location", ""))
            address.set("location", extended_url if endpoint == EXTENDED_PATH else pms_url)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


@functools.cache
def bundled_description() -> ServiceDescription:
    """Our own WSDL, `sync/wsdl/pms.wsdl` (package data), loaded once per process."""
    resource = importlib.resources.files("sync") / "wsdl" / "pms.wsdl"
    with importlib.resources.as_file(resource) as path:
        return ServiceDescription.load(path)
