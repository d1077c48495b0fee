"""itslearning's published schemas for tests: locate them, compile them once, validate exchanges with them."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Final

import pytest
from lxml import etree

from sync.emulator import Exchange
from sync.xsd import load_wsdl_schema, safe_parser

__all__ = [
    "EXAMPLES_DIR",
    "ITSLEARNING_WSDL_DIR",
    "SHARED",
    "extended_schema",
    "pms_schema",
    "requires_itslearning",
    "validate_element",
    "validate_exchange",
]

#: CI puts shared/ beside the clone.
SHARED: Final = Path(__file__).resolve().parents[2] / "shared"
ITSLEARNING_WSDL_DIR: Final = SHARED / "ims-es" / "wsdl" / "itslearning"
EXAMPLES_DIR: Final = SHARED / "ims-es" / "examples"

requires_itslearning = pytest.mark.skipif(
    not ITSLEARNING_WSDL_DIR.is_dir(),
    reason=f"itslearning's WSDLs are not at {ITSLEARNING_WSDL_DIR} (CI puts shared/ beside the clone)",
)

_SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
_BIND: Final = "http://www.imsglobal.org/services/common/imsMessBindSchema_v1p0"
# Validators keep their error log on the object, and taps run in the server's threads.
_lock = threading.Lock()


@functools.cache
def pms_schema() -> etree.XMLSchema:
    """itslearning's Person Management schemas (PersonManagementServiceSync.svc.xml)."""
    return load_wsdl_schema(ITSLEARNING_WSDL_DIR / "PersonManagementServiceSync.svc.xml")


@functools.cache
def extended_schema() -> etree.XMLSchema:
    """itslearning's ExtendedPersonManagement schemas (readAllPersons)."""
    return load_wsdl_schema(ITSLEARNING_WSDL_DIR / "ExtendedPersonManagementServiceSync.xml")


def validate_element(element: etree._Element, *, extended: bool = False) -> None:
    """Validate one element as a document of its own.

    Raises:
        AssertionError: with the schema's message when it is not valid.
    """
    schema = extended_schema() if extended else pms_schema()
    document = etree.fromstring(etree.tostring(element), safe_parser())
    with _lock:
        try:
            schema.assertValid(document)
        except etree.DocumentInvalid as exc:
            raise AssertionError(f"{etree.QName(element).localname}: {exc}") from None


def _validate_envelope(raw: bytes, header_name: str) -> None:
    root = etree.fromstring(raw, safe_parser())
    body = root.find(f"{{{_SOAP_ENV}}}Body")
    assert body is not None, "no SOAP Body"
    children = [child for child in body if isinstance(child.tag, str)]
    assert len(children) == 1, f"the Body holds {len(children)} elements, not 1"
    extended = etree.QName(children[0]).localname.startswith("readAllPersons")
    validate_element(children[0], extended=extended)
    info = root.find(f"{{{_SOAP_ENV}}}Header/{{{_BIND}}}{header_name}")
    assert info is not None, f"no {header_name} header"
    validate_element(info, extended=extended)


def validate_exchange(exchange: Exchange, *, request: bool = True) -> None:
    """Check an exchange against itslearning's schemas.

    The request's body child and syncRequestHeaderInfo are validated (unless `request` is False); so
    are the answer's body child and syncResponseHeaderInfo when it is a 200 answer (not a fault, a 503
    or a dropped connection).

    Raises:
        AssertionError: naming the element and the schema error.
    """
    if request:
        _validate_envelope(exchange.request, "syncRequestHeaderInfo")
    if exchange.status == 200 and exchange.response is not None:
        _validate_envelope(exchange.response, "syncResponseHeaderInfo")
