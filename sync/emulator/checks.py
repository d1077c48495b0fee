"""The checks a SOAP request passes before a service sees it, and the faults that refuse it.

In the documented order: well-formed XML without a DTD, a SOAP 1.1 envelope with one body element, a
routed SOAPAction (`action_not_supported`), WS-Security, mustUnderstand headers; the schema check's
message is redacted here. Pure: imports no sockets, storage or services.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Final

from lxml import etree

from sync.ims.namespaces import COMMON, SOAP_ENV, WSA, WSSE, WSU
from sync.ims.security import PASSWORD_TEXT
from sync.ims.xsd import safe_parser

from .http import Reply
from .soap import fault_envelope
from .wsdl import Catalog

__all__ = [
    "INVALID_SECURITY",
    "INVALID_SECURITY_REPLY",
    "action_not_supported",
    "authenticated",
    "envelope",
    "not_understood",
    "schema_problem",
]

INVALID_SECURITY: Final = "An error occurred when verifying security for the message."
INVALID_SECURITY_REPLY: Final = Reply(
    status=500, body=fault_envelope("a:InvalidSecurity", ("a", WSSE), INVALID_SECURITY)
)


def _client_fault(http_status: int, message: str) -> Reply:
    return Reply(status=http_status, body=fault_envelope("s:Client", None, message))


def action_not_supported(action: str) -> Reply:
    """WCF's fault for a SOAPAction the endpoint does not offer (or a body that does not match it)."""
    message = (
        f"The message with Action '{action}' cannot be processed at the receiver, due to a ContractFilter "
        "mismatch at the EndpointDispatcher. This may be because of either a contract mismatch (mismatched "
        "Actions between sender and receiver) or a binding/security mismatch between the sender and the "
        "receiver. Check that sender and receiver have the same contract and the same binding (including "
        "security requirements, e.g. Message, Transport, None)."
    )
    return Reply(status=500, body=fault_envelope("a:ActionNotSupported", ("a", WSA), message))


def envelope(raw: bytes) -> tuple[etree._Element, etree._Element] | Reply:
    """The envelope of a POST and its one body element, or the client fault that refuses it."""
    try:
        root = etree.fromstring(raw, safe_parser())
    except etree.XMLSyntaxError as exc:
        # The parser's message may quote the request's text (credentials included): give the place only.
        line, column = exc.position
        return _client_fault(400, f"The request is not well-formed XML (line {line}, column {column}).")
    if getattr(root.getroottree().docinfo, "doctype", ""):
        return _client_fault(400, "A document type declaration (DTD) is not allowed in a request.")
    body = root.find(f"{{{SOAP_ENV}}}Body") if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
    children = [child for child in body if isinstance(child.tag, str)] if body is not None else []
    if len(children) != 1:
        return _client_fault(500, "The request is not a SOAP 1.1 envelope with one body element.")
    return root, children[0]


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def authenticated(header: etree._Element | None, username: str, password: str) -> bool:
    """WS-Security: the UsernameToken (PasswordText) matches and a Timestamp, if any, is not expired."""
    security = header.find(f"{{{WSSE}}}Security") if header is not None else None
    token = security.find(f"{{{WSSE}}}UsernameToken") if security is not None else None
    if token is None or security is None:
        return False
    sent = token.find(f"{{{WSSE}}}Password")
    if sent is None or sent.get("Type", PASSWORD_TEXT) != PASSWORD_TEXT:
        return False
    username_ok = hmac.compare_digest(
        (token.findtext(f"{{{WSSE}}}Username") or "").encode(), username.encode()
    )
    password_ok = hmac.compare_digest((sent.text or "").encode(), password.encode())
    if not (username_ok and password_ok):
        return False
    expires = security.findtext(f"{{{WSU}}}Timestamp/{{{WSU}}}Expires")
    if security.find(f"{{{WSU}}}Timestamp") is not None:
        try:
            return _parse_instant(expires or "") >= datetime.now(UTC)
        except ValueError:
            return False
    return True


def not_understood(header: etree._Element | None) -> Reply | None:
    """A MustUnderstand fault for a mustUnderstand header the service does not process (as WCF does)."""
    for child in header if header is not None else ():
        if not isinstance(child.tag, str) or child.tag == f"{{{WSSE}}}Security":
            continue
        if child.get(f"{{{SOAP_ENV}}}mustUnderstand") in ("1", "true"):
            name = etree.QName(child)
            message = (
                f"The header '{name.localname}' from the namespace '{name.namespace}' was not understood "
                "by the recipient of this message, causing the message to not be processed."
            )
            return Reply(status=500, body=fault_envelope("s:MustUnderstand", None, message))
    return None


def schema_problem(
    catalog: Catalog, path: str, request: etree._Element, info: etree._Element | None
) -> str | None:
    """Why the request element or its header info breaks the schema of `path`'s WSDL, or None."""
    description = catalog.description(path)
    assert description is not None  # routed requests come to paths a WSDL serves
    validator = description.validator
    problem = validator.error(request) or (validator.error(info) if info is not None else None)
    if problem is None:
        return None
    # A schema message may quote values; a person password must not travel into logs or answers.
    for secret in request.iterfind(f".//{{{COMMON}}}passWord"):
        if secret.text:
            problem = problem.replace(secret.text, "[redacted]")
    return problem
