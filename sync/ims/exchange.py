"""The exchange every IMS ES client shares: one WSDL, one pooled HTTPS session, one request at a time.

`ServiceClient` loads its service's WSDL (zeep), renders each request (zeep, or the direct lxml builder
where its warm-up found the bytes identical), adds the WS-Security header, sends it (requests) and reads
and checks the answer (`answers`). The clients of each kind (`clients`) add the operations.

This package is the only place that imports zeep and requests; their exceptions are translated once, by
`faults.translate_exception`, and never escape (the hierarchy is drawn in `sync/errors.py`).

A call goes: record → zeep value → envelope (zeep, from the WSDL) → WS-Security header (ours) → bytes →
HTTPS POST (requests, within a wall-clock bound and a size limit: `deadline`) → status check →
safe parse (zeep's `parse_xml`: no DTD, no entities, no network) → SOAP fault or
`syncResponseHeaderInfo` → `Status` values, checked against our messageIdentifier.

Thread safety, checked against zeep 4.3's code: one client parses its WSDL once, holds one pooled
`requests.Session`, and is safe to call from many threads at once: every piece of per-call state (the
messageIdentifier, the WS-Security nonce and timestamps, the envelope) lives in the call's locals. Of zeep
the client uses only the parsed WSDL (binding operations' `create`, which builds new value objects and a
new envelope per call) and `parse_xml`. The parsed WSDL is read-only once loaded except for
`functools.cached_property` caches on schema types; the constructor builds one message of every kind
first, so those are filled before threads share it. zeep's own send path (`Client.service`, its
Transport's `post`, which logs whole envelopes, passwords included, at DEBUG) is not used. requests'
Session and urllib3's pool are shared; nothing per call is stored on them. Each bundled WSDL is parsed
once per process and shared by all clients of its service.
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self, TypedDict

import requests
import requests.adapters
import zeep
from lxml import etree

from sync.errors import ConfigError, ProtocolError
from sync.ims.answers import SETTINGS, check_statuses, read_answer
from sync.ims.deadline import MB, Bound, BoundedAdapter, send_bounded
from sync.ims.faults import FOREIGN, translate_exception
from sync.ims.namespaces import BIND, SOAP_ENV
from sync.ims.security import UsernameTokenSecurity, insert_header
from sync.ims.urls import display_url, require_https
from sync.ims.wire import RequestBody, ServiceSpec, text
from sync.models import Status

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_TIMEOUTS",
    "BoundOperation",
    "ClientOptions",
    "MassReply",
    "ServiceClient",
    "Timeouts",
    "bundled_wsdl",
    "find_binding",
    "new_message_id",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """HTTP timeouts in seconds: `connect` to open a connection, `read` to wait for each part of an answer.

    Their sum bounds a whole exchange: past it the request is abandoned, whatever the server does.
    """

    connect: float
    read: float


#: As itslearning's own WCF example client: open 1 min, send/receive 5 min.
DEFAULT_TIMEOUTS: Final = Timeouts(connect=60.0, read=300.0)
#: Answers larger than this are refused (IMS ES answers are kilobytes; a read page of 100 persons, ~100 KB).
DEFAULT_MAX_ANSWER_BYTES: Final = 50 * MB


@dataclass(frozen=True, slots=True, kw_only=True)
class MassReply:
    """The answer to a mass request: the header's statusInfo and one statusInfo per item, in request order."""

    status: Status
    items: tuple[Status, ...]


class ClientOptions(TypedDict, total=False):
    """`ServiceClient`'s optional settings, for a subclass that passes them on as keywords."""

    ca_bundle: Path | None
    timeouts: Timeouts
    pool_size: int
    wsdl: str | Path | None
    adapter: requests.adapters.BaseAdapter | None
    max_answer_bytes: int


def new_message_id() -> str:
    """A fresh messageIdentifier (a random UUID)."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class BoundOperation:
    """What one operation needs per call, resolved once from the WSDL."""

    name: str
    soap: Any  # zeep SoapOperation: builds the envelope
    address: str
    headers: Mapping[str, str]
    where: str  # "<operation> to <endpoint>", for error messages


def _open_wsdl(source: str, transport: zeep.Transport | None, prefixes: Mapping[str, str]) -> zeep.Client:
    """Parse a WSDL (the costly step: once per client, or once per process for the bundled one)."""
    client = zeep.Client(source, transport=transport, settings=SETTINGS)  # type: ignore[no-untyped-call]
    # Declared once on the envelope instead of on every element: a third smaller, a quarter faster.
    for prefix, namespace in prefixes.items():
        client.set_ns_prefix(prefix, namespace)  # type: ignore[no-untyped-call]
    return client


@functools.cache
def bundled_wsdl(spec: ServiceSpec) -> zeep.Client:
    """A service's bundled WSDL, parsed once per process; zeep's parsed WSDL is read-only after loading."""
    return _open_wsdl(str(spec.wsdl), None, dict(spec.prefixes))


def find_binding(client: zeep.Client, local_name: str) -> Any:
    """The WSDL's binding of that local name, or None."""
    for qname, binding in client.wsdl.bindings.items():
        if qname.rpartition("}")[2] == local_name:
            return binding
    return None


class ServiceClient:
    """What the IMS ES clients share: WS-Security, HTTPS, rendering, the exchange and the status checks.

    A subclass sets `spec` and adds the operations, each one `_simple`, `_mass` or `_answer` call. Every
    call raises only `sync.errors` classes: `TransientError` (timeouts, connection trouble, HTTP
    502/503/504, 5xx without a SOAP fault, a SOAP Server fault), `AuthenticationError`,
    `CertificateError`, `RejectedError` (any other SOAP fault) and `ProtocolError` (unparsable answer,
    DTD/entities, missing or wrong messageIdRef, wrong item count). Thread-safe as described in the
    module's docstring: all per-call state lives in the call's locals.

    Args:
        url: The service's endpoint (https only).
        username: The integration's IMS ES user name.
        password: Its password (sent in the WS-Security UsernameToken; never logged or shown).
        ca_bundle: A PEM file to trust instead of the system CAs (requests `verify=`), e.g. the
            emulator's or a private CA.
        timeouts: Connect and read timeouts; their sum bounds each exchange's wall time.
        pool_size: Connections kept open (set it to the number of threads calling the client).
        wsdl: None for the bundled WSDL, a file path, or an https:// URL (the live `?wsdl`).
        adapter: A requests transport adapter to use instead of the pooled HTTPS one (tests).
        max_answer_bytes: Answers larger than this are refused (ProtocolError).

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
    """

    spec: ClassVar[ServiceSpec]

    def __init__(
        self,
        *,
        url: str,
        username: str,
        password: str,
        ca_bundle: Path | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        pool_size: int = 10,
        wsdl: str | Path | None = None,
        adapter: requests.adapters.BaseAdapter | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._url = require_https(url, "the IMS ES URL")
        self._username = username
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise ConfigError(f"the CA bundle {str(ca_bundle)!r} does not exist")
        self._verify: str | bool = str(ca_bundle) if ca_bundle is not None else True
        self._timeout = (timeouts.connect, timeouts.read)
        self._bound = Bound(seconds=timeouts.connect + timeouts.read, max_bytes=max_answer_bytes)
        self._wsse = UsernameTokenSecurity(username, password)
        self._direct: frozenset[str] = frozenset()  # operations the direct builder renders (see _warm_up)
        self._envelope_nsmap = {"soap-env": SOAP_ENV, **dict(self.spec.prefixes)}  # as zeep declares them

        session = requests.Session()
        session.headers["User-Agent"] = "ims-es-sync"
        # Read the proxy settings once: with trust_env, requests re-scans os.environ on every call (a
        # third of a call's CPU) and lets REQUESTS_CA_BUNDLE override an explicit ca_bundle.
        session.proxies.update(requests.utils.get_environ_proxies(url))
        session.trust_env = False
        session.verify = self._verify  # also for fetching a live ?wsdl through zeep
        mounted = adapter or BoundedAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        session.mount("https://", mounted)
        self._session = session
        self._adapter = mounted
        self._proxies = dict(session.proxies)
        try:
            self._zeep = self._load(wsdl, session)
            self._operations = self._resolve(wsdl)
            self._templates = {
                name: session.prepare_request(
                    requests.Request("POST", operation.address, headers=dict(operation.headers))
                )
                for name, operation in self._operations.items()
            }
            self._warm_up()
        except BaseException:
            session.close()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={display_url(self._url)!r}, username={self._username!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # --- set-up

    def _load(self, wsdl: str | Path | None, session: requests.Session) -> zeep.Client:
        if wsdl is None:
            return bundled_wsdl(self.spec)
        if isinstance(wsdl, str) and "://" in wsdl:
            source = require_https(wsdl, "the WSDL URL")
        elif Path(wsdl).is_file():
            source = str(wsdl)
        else:
            raise ConfigError(f"the WSDL file {str(wsdl)!r} does not exist")
        transport = zeep.Transport(  # type: ignore[no-untyped-call]
            session=session, timeout=self._timeout[1], operation_timeout=self._timeout
        )
        try:
            return _open_wsdl(source, transport, dict(self.spec.prefixes))
        except FOREIGN as exc:
            error = translate_exception(exc, operation="load WSDL", endpoint=source)
            raise error from exc

    def _resolve(self, wsdl: str | Path | None) -> dict[str, BoundOperation]:
        """The operations of `spec.binding`, sent to the client's URL."""
        binding = find_binding(self._zeep, self.spec.binding)
        if binding is None:
            raise ConfigError(f"the WSDL lacks the {self.spec.binding} binding")
        return self._operations_of(binding, self.spec.operations, self._url)

    def _operations_of(self, binding: Any, names: Sequence[str], address: str) -> dict[str, BoundOperation]:
        operations: dict[str, BoundOperation] = {}
        for name in names:
            soap = binding.get(name)
            action = soap.soapaction or self.spec.soap_action_base + name
            headers = {"SOAPAction": f'"{action}"', "Content-Type": "text/xml; charset=utf-8"}
            operations[name] = BoundOperation(
                name=name, soap=soap, address=address, headers=headers,
                where=f"{name} to {display_url(address)}",
            )  # fmt: skip
        return operations

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        """One or more sample bodies per operation, rendered both ways by `_warm_up`."""
        raise NotImplementedError

    def _warm_up(self) -> None:
        """Render one message of each kind both ways: fills zeep's lazy caches before threads share it,
        and enables the direct builder for each operation whose bytes equal zeep's.

        The direct builder skips zeep's per-call schema walk (about half a millisecond of CPU a call);
        zeep stays the reference: with another WSDL (say, one that adds WS-Addressing headers) the
        renderings differ and zeep renders that operation.
        """
        security = self._wsse.security_element()
        fast = set()
        for name, bodies in self._samples().items():
            operation = self._operations[name]
            if all(
                self._render(operation, body, "warm-up", security, direct=False)
                == self._render(operation, body, "warm-up", security, direct=True)
                for body in bodies
            ):
                fast.add(name)
        self._direct = frozenset(fast)

    # --- request building

    def _render(
        self,
        operation: BoundOperation,
        body: RequestBody,
        message_id: str,
        security: etree._Element | None = None,
        *,
        direct: bool | None = None,
    ) -> bytes:
        """The request's bytes: the SOAP envelope with our header blocks.

        Args:
            operation: what to send.
            body: the request body.
            message_id: the messageIdentifier.
            security: a `wsse:Security` element to use (copied); default: a fresh one.
            direct: True for the direct builder, False for zeep; None: direct when verified equal.
        """
        security = self._wsse.security_element() if security is None else copy.deepcopy(security)
        if operation.name in self._direct if direct is None else direct:
            envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=self._envelope_nsmap)
            header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
            header.append(security)
            info = etree.SubElement(header, f"{{{BIND}}}syncRequestHeaderInfo")
            text(info, f"{{{BIND}}}messageIdentifier", message_id)
            request = etree.SubElement(
                etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body"),
                f"{{{self.spec.message_namespace}}}{operation.name}Request",
            )
            body.build(request)
        else:
            envelope = operation.soap.create(
                **body.value(), _soapheaders={"syncRequestHeaderInfo": {"messageIdentifier": message_id}}
            ).content
            insert_header(envelope, security)
        return etree.tostring(envelope, encoding="utf-8", xml_declaration=True)

    # --- the exchange

    def _where(self, name: str) -> str:
        """The "<operation> to <endpoint>" text of error messages."""
        return self._operations[name].where

    def _exchange(
        self, name: str, body: RequestBody, message_id: str | None
    ) -> tuple[str, etree._Element, etree._Element]:
        """Send one request; return (message id, syncResponseHeaderInfo, SOAP Body) of a 200 SOAP answer."""
        operation = self._operations[name]
        mid = message_id or new_message_id()
        try:
            data = self._render(operation, body, mid)
            # The request is prepared once per operation (URL, merged session headers) and copied here;
            # the adapter is called directly, as Session.send would with allow_redirects=False (a
            # redirect would re-send the password to wherever it points), minus the per-call merging
            # of settings, cookies and hooks that the client never uses: a third of a call's CPU.
            request = self._templates[name].copy()
            request.body = data
            request.headers["Content-Length"] = str(len(data))
            status, content = send_bounded(
                self._adapter, request, bound=self._bound, where=operation.where,
                timeout=self._timeout, verify=self._verify, cert=None, proxies=self._proxies,
            )  # fmt: skip
            info, soap_body = read_answer(status, content, operation.where, self._zeep.transport)
        except FOREIGN as exc:
            raise translate_exception(exc, operation=name, endpoint=operation.address) from exc
        return mid, info, soap_body

    def _check(
        self, name: str, info: etree._Element, message_id: str, items: int | None = None
    ) -> tuple[Status, tuple[Status, ...]]:
        """The header status (and item statuses), each checked to answer `message_id`."""
        return check_statuses(self._where(name), info, message_id, items)

    def _simple(self, name: str, body: RequestBody, message_id: str | None) -> Status:
        mid, info, _ = self._exchange(name, body, message_id)
        return self._check(name, info, mid)[0]

    def _mass(
        self, name: str, body: RequestBody, count: int, message_id: str | None
    ) -> tuple[MassReply, etree._Element]:
        mid, info, soap_body = self._exchange(name, body, message_id)
        status, items = self._check(name, info, mid, count)
        return MassReply(status=status, items=items), soap_body

    def _answer(
        self, name: str, body: RequestBody, message_id: str | None, path: str, what: str
    ) -> tuple[Status, etree._Element | None]:
        """Send a read: its status and, on success, the element at `path` under the SOAP Body.

        Raises:
            ProtocolError: also when a success lacks that element ("success without `what`").
        """
        mid, info, soap_body = self._exchange(name, body, message_id)
        status = self._check(name, info, mid)[0]
        if not status.ok:
            return status, None
        element = soap_body.find(path)
        if element is None:
            raise ProtocolError(f"{self._where(name)}: success without {what}")
        return status, element
