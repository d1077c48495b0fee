"""The XML namespaces of IMS ES and of SOAP around it: one place for the client and the emulator.

Pure constants; imports nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BIND",
    "COMMON",
    "GMS_DATA",
    "GMS_MESS",
    "MMS_DATA",
    "MMS_MESS",
    "PMS_DATA",
    "PMS_MESS",
    "SOAP_ENV",
    "WSA",
    "WSDL",
    "WSDL_SOAP",
    "WSSE",
    "WSU",
    "XML_NS",
    "XSI",
]

#: IMS ES: the common types (identifier) and the message binding (syncRequest/ResponseHeaderInfo).
COMMON: Final = "http://www.imsglobal.org/services/common/imsCommonSchema_v1p0"
BIND: Final = "http://www.imsglobal.org/services/common/imsMessBindSchema_v1p0"
#: Person, Group and Membership Management: each service's messages and data.
PMS_MESS: Final = "http://www.imsglobal.org/services/pms/xsd/imsPersonManMessSchema_v1p0"
PMS_DATA: Final = "http://www.imsglobal.org/services/pms/xsd/imsPersonManDataSchema_v1p0"
GMS_MESS: Final = "http://www.imsglobal.org/services/gms/xsd/imsGroupManMessSchema_v1p0"
GMS_DATA: Final = "http://www.imsglobal.org/services/gms/xsd/imsGroupManDataSchema_v1p0"
MMS_MESS: Final = "http://www.imsglobal.org/services/mms/xsd/imsMemberManMessSchema_v1p0"
MMS_DATA: Final = "http://www.imsglobal.org/services/mms/xsd/imsMemberManDataSchema_v1p0"
#: SOAP 1.1, WSDL 1.1 and its SOAP binding.
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL: Final = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
#: WS-Security (UsernameToken, Timestamp) and WS-Addressing (which production clients do not send).
WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSA: Final = "http://www.w3.org/2005/08/addressing"
#: XML Schema instance (xsi:nil) and the xml: prefix (xml:lang).
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS: Final = "http://www.w3.org/XML/1998/namespace"
