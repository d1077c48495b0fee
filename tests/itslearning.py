"""itslearning's and IMS's published schemas for tests: locate, compile once, validate exchanges with them.

PMS and MMS exchanges are checked against itslearning's own WSDLs. itslearning publishes no GMS schema:
a GMS body is checked against our gms.wsdl, every `group` in it against IMS's official
imsGroupManDataSchema_v1p0.xsd (with the official common schema, never mixed with itslearning's), and the
SOAP headers against itslearning's message binding schema (the same in every service).
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Final

import pytest
from lxml import etree

from sync.emulator import Exchange
from sync.ims.xsd import XS, load_wsdl_schema, safe_parser

__all__ = [
    "EXAMPLES_DIR",
    "IMSGLOBAL_DIR",
    "ITSLEARNING_WSDL_DIR",
    "SHARED",
    "extended_schema",
    "gms_group_schema",
    "gms_schema",
    "mms_schema",
    "pms_schema",
    "requires_itslearning",
    "validate_element",
    "validate_exchange",
    "validate_group",
]

#: CI puts shared/ beside the clone.
SHARED: Final = Path(__file__).resolve().parents[2] / "shared"
ITSLEARNING_WSDL_DIR: Final = SHARED / "ims-es" / "wsdl" / "itslearning"
EXAMPLES_DIR: Final = SHARED / "ims-es" / "examples"
IMSGLOBAL_DIR: Final = SHARED / "ims-es" / "wsdl" / "imsglobal"

requires_itslearning = pytest.mark.skipif(
    not ITSLEARNING_WSDL_DIR.is_dir(),
    reason=f"itslearning's WSDLs are not at {ITSLEARNING_WSDL_DIR} (CI puts shared/ beside the clone)",
)

_SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
_BIND: Final = "http://www.imsglobal.org/services/common/imsMessBindSchema_v1p0"
_PMS_MESS: Final = "http://www.imsglobal.org/services/pms/xsd/imsPersonManMessSchema_v1p0"
_MMS_MESS: Final = "http://www.imsglobal.org/services/mms/xsd/imsMemberManMessSchema_v1p0"
_GMS_MESS: Final = "http://www.imsglobal.org/services/gms/xsd/imsGroupManMessSchema_v1p0"
_GMS_DATA: Final = "http://www.imsglobal.org/services/gms/xsd/imsGroupManDataSchema_v1p0"
#: Where the official GMS data schema imports the official common schema from (mapped to the local copy).
_OFFICIAL_COMMON_URL: Final = "http://www.imsglobal.org/services/common/imsCommonSchema_v1p0.xsd"
_BUNDLED_GMS: Final = Path(__file__).resolve().parents[1] / "sync" / "ims" / "wsdl" / "gms.wsdl"
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


@functools.cache
def mms_schema() -> etree.XMLSchema:
    """itslearning's Membership Management schemas (MembershipManagementServiceSync.xml)."""
    return load_wsdl_schema(ITSLEARNING_WSDL_DIR / "MembershipManagementServiceSync.xml")


@functools.cache
def gms_schema() -> etree.XMLSchema:
    """Our own GMS message schemas (sync/ims/wsdl/gms.wsdl): itslearning publishes none."""
    return load_wsdl_schema(_BUNDLED_GMS)


class _OfficialCommon(etree.Resolver):
    """Points the official GMS data schema's import of the common schema at the local copy."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]  # lxml-stubs lag lxml
        """The local official common schema for its imsglobal.org URL; anything else is refused (None)."""
        if system_url == _OFFICIAL_COMMON_URL:
            return self.resolve_filename(str(IMSGLOBAL_DIR / "imsCommonSchema_v1p0.xsd"), context)  # type: ignore[attr-defined]
        return None


@functools.cache
def gms_group_schema() -> etree.XMLSchema:
    """IMS's official imsGroupManDataSchema_v1p0.xsd, with a GMS message `group` element of its GroupDType.

    The official data schema declares the type but no element: the message schema's `group` is declared
    here, in the message namespace, exactly as a message carries it.
    """
    wrapper = etree.Element(
        f"{{{XS}}}schema",
        nsmap={"xs": XS, "g": _GMS_DATA},
        targetNamespace=_GMS_MESS,
        elementFormDefault="qualified",
    )
    data = IMSGLOBAL_DIR / "imsGroupManDataSchema_v1p0.xsd"
    etree.SubElement(wrapper, f"{{{XS}}}import", namespace=_GMS_DATA, schemaLocation=data.as_uri())
    etree.SubElement(wrapper, f"{{{XS}}}element", name="group", type="g:GroupDType")
    parser = safe_parser()
    parser.resolvers.add(_OfficialCommon())
    return etree.XMLSchema(etree.fromstring(etree.tostring(wrapper), parser))


def _assert_valid(schema: etree.XMLSchema, element: etree._Element, what: str = "") -> None:
    document = etree.fromstring(etree.tostring(element), safe_parser())
    with _lock:
        try:
            schema.assertValid(document)
        except etree.DocumentInvalid as exc:
            raise AssertionError(f"{what}{etree.QName(element).localname}: {exc}") from None


def validate_group(element: etree._Element) -> None:
    """Validate a GMS message's `group` element against IMS's official group data schema.

    Raises:
        AssertionError: with the schema's message when it is not valid.
    """
    _assert_valid(gms_group_schema(), element, "official GMS data schema: ")


def validate_element(element: etree._Element, *, extended: bool = False) -> None:
    """Validate one PMS element (ExtendedPersonManagement's if `extended`) as a document of its own.

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
    info = root.find(f"{{{_SOAP_ENV}}}Header/{{{_BIND}}}{header_name}")
    assert info is not None, f"no {header_name} header"
    namespace = etree.QName(children[0]).namespace
    if namespace == _MMS_MESS:
        _assert_valid(mms_schema(), children[0])
        _assert_valid(mms_schema(), info)
    elif namespace == _GMS_MESS:
        _assert_valid(gms_schema(), children[0], "our gms.wsdl: ")
        for group in children[0].iter(f"{{{_GMS_MESS}}}group"):
            validate_group(group)
        validate_element(info)  # itslearning's message binding schema (the same in every service)
    else:
        extended = etree.QName(children[0]).localname.startswith("readAllPersons")
        validate_element(children[0], extended=extended)
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
