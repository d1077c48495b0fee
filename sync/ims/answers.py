"""Reading IMS ES answers: the HTTP status, a safe parse, SOAP faults, and the statuses checked against
our messageIdentifier.

A foreign exception raised here (zeep's parse errors, `faults.status_error`, `faults.fault`) is left
for the caller to translate with `faults.translate_exception`; our own checks raise `sync.errors`
classes. Imports zeep for its safe parser; sends nothing.
"""

from __future__ import annotations

from typing import Any, Final

import zeep
import zeep.exceptions
from lxml import etree
from zeep.loader import parse_xml

from sync.errors import ProtocolError, UnmatchedAnswerError
from sync.ims.faults import TRANSIENT_HTTP, fault, status_error
from sync.ims.namespaces import BIND, COMMON, SOAP_ENV
from sync.models import Status

__all__ = ["SETTINGS", "check_statuses", "read_answer", "status_from_xml"]

# Answers are parsed strictly (no recovery from broken XML) and refuse DTDs, entities and external refs.
SETTINGS: Final = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)


def read_answer(
    status: int, content: bytes, where: str, transport: Any
) -> tuple[etree._Element, etree._Element]:
    """The (syncResponseHeaderInfo, SOAP Body) of a 200 SOAP answer (HTTP `status`, body `content`);
    `transport` is the WSDL's zeep one."""
    if status in (401, 403) or status in TRANSIENT_HTTP or 300 <= status < 400 or not content:
        raise status_error(status)
    try:
        doc = parse_xml(content, transport, settings=SETTINGS)  # type: ignore[arg-type]  # zeep's hint says str; it parses bytes
    except zeep.exceptions.Error as exc:
        if status != 200:  # an HTML error page or the like: the status is what counts
            raise status_error(status) from exc
        raise
    soap_body = doc.find(f"{{{SOAP_ENV}}}Body")
    soap_fault = soap_body.find(f"{{{SOAP_ENV}}}Fault") if soap_body is not None else None
    if soap_fault is not None:
        raise fault(
            (soap_fault.findtext("faultstring") or "").strip(),
            (soap_fault.findtext("faultcode") or "").strip(),
        )
    if status != 200:
        raise status_error(status)
    if doc.tag != f"{{{SOAP_ENV}}}Envelope" or soap_body is None:
        raise ProtocolError(f"{where}: the answer is not a SOAP 1.1 envelope")
    info = doc.find(f"{{{SOAP_ENV}}}Header/{{{BIND}}}syncResponseHeaderInfo")
    if info is None:
        raise ProtocolError(f"{where}: the answer has no syncResponseHeaderInfo")
    return info, soap_body


def status_from_xml(element: etree._Element) -> Status:
    """A `statusInfo` element as a `Status`.

    Raises:
        ProtocolError: it lacks codeMajor or severity.
    """
    code_major = element.findtext(f"{{{BIND}}}codeMajor")
    severity = element.findtext(f"{{{BIND}}}severity")
    if not code_major or not severity:
        raise ProtocolError("statusInfo without codeMajor or severity")
    code_minor = tuple(
        (field.findtext(f"{{{BIND}}}codeMinorName") or "", field.findtext(f"{{{BIND}}}codeMinorValue") or "")
        for field in element.iterfind(f"{{{BIND}}}codeMinor/{{{BIND}}}codeMinorField")
    )
    return Status(
        code_major=code_major.strip(),
        severity=severity.strip(),
        code_minor=code_minor,
        message_id_ref=element.findtext(f"{{{BIND}}}messageIdRef"),
        description=element.findtext(f"{{{BIND}}}description/{{{COMMON}}}text") or "",
    )


def check_statuses(
    where: str, info: etree._Element, message_id: str, items: int | None = None
) -> tuple[Status, tuple[Status, ...]]:
    """The header status (and `items` item statuses), each checked to answer `message_id`.

    Raises:
        UnmatchedAnswerError: a messageIdRef names another request (what it said is kept on the error).
        ProtocolError: no statusInfo, an unreadable one, or not `items` item statuses.
    """
    element = info.find(f"{{{BIND}}}statusInfo")
    if element is None:
        raise ProtocolError(f"{where}: the answer has no statusInfo")
    try:
        status = status_from_xml(element)
        statuses = tuple(
            status_from_xml(e) for e in info.iterfind(f"{{{BIND}}}statusInfoSet/{{{BIND}}}statusInfo")
        )
    except ProtocolError as exc:
        raise ProtocolError(f"{where}: {exc}") from exc
    # An answer to another request confirms nothing; what it said is kept for the journal.
    kept = statuses if items is not None and len(statuses) == items else ()

    def unmatched(what: str) -> UnmatchedAnswerError:
        return UnmatchedAnswerError(f"{where}: {what} {message_id!r}", status=status, items=kept)

    if status.message_id_ref != message_id:
        raise unmatched(f"messageIdRef {status.message_id_ref!r} does not answer our messageIdentifier")
    if items is not None:
        if len(statuses) != items:
            raise ProtocolError(f"{where}: {len(statuses)} statusInfo items for {items} request items")
        for index, item in enumerate(statuses):
            if item.message_id_ref != message_id:
                raise unmatched(
                    f"item {index} has messageIdRef {item.message_id_ref!r}, not our messageIdentifier"
                )
    return status, statuses
