"""One POST's answer, in the documented order of checks (docs/emulator.md): the envelope, the route
(SOAPAction and body element), WS-Security, mustUnderstand headers, the messageIdentifier, the schema
(strict refuses, lenient logs), then the service's answer, its statuses carrying the messageIdRef.

Injected faults are decided before this (faults.py); the HTTP plumbing is http.py, which this room
only names (Reply): it imports no sockets, threads or servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import structlog

from sync.ims.namespaces import BIND, SOAP_ENV

from .checks import (
    INVALID_SECURITY_REPLY,
    action_not_supported,
    authenticated,
    envelope,
    not_understood,
    schema_problem,
)
from .config import EmulatorConfig
from .http import Reply
from .service import Service, failure, with_ref
from .soap import response_envelope
from .wsdl import Catalog

__all__ = ["reply_to", "route"]

_log = structlog.get_logger("sync.emulator")


def route(catalog: Catalog, path: str, action: str) -> str | None:
    """The operation a SOAPAction (quoted or not) names at endpoint `path`, or None."""
    return catalog.routes.get((path, action.strip().strip('"')))


def reply_to(
    catalog: Catalog,
    services: Mapping[str, Service[Any]],
    config: EmulatorConfig,
    path: str,
    action_header: str,
    raw: bytes,
    *,
    wrong_ref: bool,
) -> Reply:
    """Decide the answer to one POST to `path`, in the documented order of checks.

    Args:
    catalog: the WSDLs served (routes and schemas).
    services: operation -> the service that implements it.
    config: the credentials accepted and whether the schema is enforced.
    path: the endpoint path.
    action_header: the SOAPAction header as sent.
    raw: the request body.
    wrong_ref: answer with a wrong messageIdRef (an injected fault).
    """
    parsed = envelope(raw)
    if isinstance(parsed, Reply):
        return parsed
    root, request = parsed
    action = action_header.strip().strip('"')
    operation = route(catalog, path, action)
    service = services.get(operation or "")
    if operation is None or service is None or request.tag != f"{{{service.namespace}}}{operation}Request":
        return action_not_supported(action)
    header = root.find(f"{{{SOAP_ENV}}}Header")
    if not authenticated(header, config.username, config.password):
        return INVALID_SECURITY_REPLY
    refused = not_understood(header)
    if refused is not None:
        return refused
    info = header.find(f"{{{BIND}}}syncRequestHeaderInfo") if header is not None else None
    message_id = (info.findtext(f"{{{BIND}}}messageIdentifier") or "").strip() if info is not None else ""
    if not message_id:
        missing = failure("invaliddata", "", "syncRequestHeaderInfo/messageIdentifier is missing")
        answer = service.reject(operation, request, missing)
    else:
        problem = schema_problem(catalog, path, request, info)
        if problem is not None and config.strict:
            answer = service.reject(
                operation, request, failure("invaliddata", "", f"Schema violation: {problem}")
            )
        else:
            if problem is not None:
                _log.warning(
                    "schema_deviation", operation=operation, message_identifier=message_id, error=problem
                )
            answer = service.handle(operation, request, message_id)
    ref: str | None = str(uuid.uuid4()) if wrong_ref else (message_id or None)
    items = None if answer.items is None else tuple(with_ref(item, ref) for item in answer.items)
    _log.debug(
        "request_answered",
        operation=operation,
        message_identifier=message_id,
        code_major=answer.status.code_major,
    )
    return Reply(status=200, body=response_envelope(answer.body, with_ref(answer.status, ref), items))
