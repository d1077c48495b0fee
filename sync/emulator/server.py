"""The emulator's HTTPS server: WS-Security, SOAPAction routing, schema checks, fault injection, answers."""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import random
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import structlog
from lxml import etree

from sync.errors import ConfigError
from sync.ims.xsd import safe_parser
from sync.models import Person

from .groups import GROUP_OPERATIONS, GroupService
from .memberships import MEMBERSHIP_OPERATIONS, MembershipService
from .service import OPERATIONS, PersonService, Service, failure, with_ref
from .soap import BIND, COMMON, SOAP_ENV, WSA, WSSE, WSU, fault_envelope, response_envelope
from .store import Event, Group, Membership, Store
from .tls import TlsMaterial, generate_self_signed, server_context
from .wsdl import EXTENDED_PATH, GMS_PATH, MMS_PATH, PATHS, PMS_PATH, Catalog, bundled_catalog

__all__ = ["FAULT_SETTINGS", "Emulator", "EmulatorConfig", "Exchange"]

_log = structlog.get_logger("sync.emulator")

_PLAIN_TEXT_TYPE: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
)
INVALID_SECURITY: Final = "An error occurred when verifying security for the message."
_XML: Final = "text/xml; charset=utf-8"
_HANDSHAKE_TIMEOUT: Final = 10.0
_IDLE_TIMEOUT: Final = 60.0  # an idle keep-alive connection is closed after this long
_STOP_TIMEOUT: Final = 5.0
_RATES: Final = ("error_rate", "fault_rate", "drop_rate", "wrong_ref_rate", "slow_rate")
#: The settings `Emulator.reconfigure` may change while serving: the injected faults.
FAULT_SETTINGS: Final = frozenset({*_RATES, "latency_ms", "slow_ms", "fault_operations"})
#: Every operation the emulator implements, over PMS (with readAllPersons), GMS and MMS.
ALL_OPERATIONS: Final = OPERATIONS | GROUP_OPERATIONS | MEMBERSHIP_OPERATIONS
INTERNAL_ERROR: Final = (
    "The server was unable to process the request due to an internal error. For more information about "
    "the error, either turn on IncludeExceptionDetailInFaults (either from ServiceBehaviorAttribute or "
    "from the <serviceDebug> configuration behavior) on the server in order to send the exception "
    "information back to the client, or turn on tracing as per the Microsoft .NET Framework SDK "
    "documentation and inspect the server trace logs."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatorConfig:
    """How an emulator serves: address, TLS, state, strictness and injected faults.

    Raises:
        ConfigError: a rate outside [0, 1], a negative latency, or only one of tls_cert/tls_key.
    """

    username: str
    password: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    tls_cert: Path | None = None  # None (with tls_key None): generate a self-signed pair
    tls_key: Path | None = None
    cert_dir: Path | None = None  # where a generated pair is written (None: a temporary directory)
    state: Path | None = None  # SQLite file; None: in memory
    strict: bool = False  # enforce the schema (production is lenient)
    latency_ms: float = 0.0  # added to every answer, sleeping
    error_rate: float = 0.0  # share of requests answered HTTP 503 before anything is done
    fault_rate: float = 0.0  # share answered with a 500 SOAP fault s:Server before anything is done
    drop_rate: float = 0.0  # share of requests applied, then closed without an answer
    wrong_ref_rate: float = 0.0  # share of answers with a wrong messageIdRef (the request is applied)
    slow_rate: float = 0.0  # share of answers delayed slow_ms more, after the request was applied
    slow_ms: float = 0.0  # e.g. past a client's read timeout: the answer is lost, the change is not
    fault_operations: frozenset[str] | None = None  # inject faults into these operations only (None: all)
    seed: int | None = None  # reproducible fault draws

    def __post_init__(self) -> None:
        for name in _RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1")
        if self.latency_ms < 0 or self.slow_ms < 0:
            raise ConfigError("latency_ms and slow_ms must not be negative")
        if self.fault_operations is not None:
            unknown = set(self.fault_operations) - ALL_OPERATIONS
            if unknown:
                known = sorted(ALL_OPERATIONS)
                raise ConfigError(f"fault_operations: unknown operation(s) {sorted(unknown)}; known: {known}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("give both tls_cert and tls_key, or neither (to generate a pair)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One POST as the emulator saw it (for test taps). `status` and `response` are None when dropped."""

    path: str
    soap_action: str
    request: bytes = field(repr=False)  # holds the UsernameToken password: never in a repr
    status: int | None
    response: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = _XML


@dataclass(frozen=True, slots=True, kw_only=True)
class _Faults:
    unavailable: bool = False
    fault: bool = False
    drop: bool = False
    wrong_ref: bool = False
    slow: bool = False


def _client_fault(http_status: int, message: str) -> _Reply:
    return _Reply(status=http_status, body=fault_envelope("s:Client", None, message))


def _action_not_supported(action: str) -> _Reply:
    message = (
        f"The message with Action '{action}' cannot be processed at the receiver, due to a ContractFilter "
        "mismatch at the EndpointDispatcher. This may be because of either a contract mismatch (mismatched "
        "Actions between sender and receiver) or a binding/security mismatch between the sender and the "
        "receiver. Check that sender and receiver have the same contract and the same binding (including "
        "security requirements, e.g. Message, Transport, None)."
    )
    return _Reply(status=500, body=fault_envelope("a:ActionNotSupported", ("a", WSA), message))


_INVALID_SECURITY_REPLY: Final = _Reply(
    status=500, body=fault_envelope("a:InvalidSecurity", ("a", WSSE), INVALID_SECURITY)
)


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Emulator:
    """A stateful IMS ES service on HTTPS: Person, Group and Membership Management (DESIGN §6).

    Use as a context manager, or call `start()` and `stop()`. URLs and `ca_path` are known once
    started. `on_exchange`, if set, is called with every POST's Exchange before its answer is written.
    """

    on_exchange: Callable[[Exchange], None] | None

    def __init__(self, config: EmulatorConfig) -> None:
        """Prepare an emulator; nothing is bound until `start()`."""
        self.config = config
        self.on_exchange = None
        self._rng = random.Random(config.seed)  # noqa: S311  # fault draws, not cryptography
        # The later faults draw from their own generator, so a seed gives the original three the
        # same sequence as before they existed.
        self._extra_rng = random.Random(f"{config.seed}/extra")  # noqa: S311
        self._rng_lock = threading.Lock()
        self._injected: Counter[str] = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        # operation -> its service (persons, groups, memberships), whose namespace its request element is in
        self._services: dict[str, Service] = {}
        self._description: Catalog | None = None
        self._temp_dir: Path | None = None
        self._ca_path: Path | None = None
        self._wsdl: dict[str, bytes] = {}  # endpoint path -> its ?wsdl document

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"Emulator({where}, username={self.config.username!r}, strict={self.config.strict})"

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Bind, then serve from background threads; returns once connections are accepted.

        Raises:
            RuntimeError: already started.
            OSError: the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        config = self.config
        self._description = bundled_catalog()
        if config.tls_cert is not None and config.tls_key is not None:
            material = TlsMaterial(cert=config.tls_cert, key=config.tls_key)
        else:
            directory = config.cert_dir
            if directory is None:
                self._temp_dir = directory = Path(tempfile.mkdtemp(prefix="ims-es-emulator-"))
            material = generate_self_signed(directory, host=config.host)
        self._ca_path = material.cert
        self._store = Store(config.state)
        persons, groups = PersonService(self._store), GroupService(self._store)
        memberships = MembershipService(self._store)
        self._services = {
            **dict.fromkeys(OPERATIONS, persons),
            **dict.fromkeys(GROUP_OPERATIONS, groups),
            **dict.fromkeys(MEMBERSHIP_OPERATIONS, memberships),
        }
        try:
            self._server = _Server((config.host, config.port), server_context(material), self)
        except BaseException:
            self._cleanup()
            raise
        self._wsdl = {
            path: document
            for description in self._description.descriptions
            for document in (description.render(self.base_url),)
            for path in description.paths
        }
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ims-es-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("emulator_started", pms_url=self.pms_url, strict=config.strict)

    def stop(self) -> None:
        """Stop serving, close open connections, wait for requests in progress, close the state."""
        server = self._server
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections(timeout=_STOP_TIMEOUT)
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
        self._server = None
        self._thread = None
        self._cleanup()
        _log.info("emulator_stopped")

    def _cleanup(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- where it is -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._running().server_address[1])

    @property
    def base_url(self) -> str:
        """`https://HOST:PORT` (a wildcard bind address is reached through 127.0.0.1)."""
        host = self.config.host
        if host in ("", "0.0.0.0", "::"):  # noqa: S104  # recognising a wildcard, not binding one
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def pms_url(self) -> str:
        """The Person Management service's endpoint."""
        return self.base_url + PMS_PATH

    @property
    def extended_url(self) -> str:
        """itslearning's ExtendedPersonManagement endpoint (readAllPersons)."""
        return self.base_url + EXTENDED_PATH

    @property
    def gms_url(self) -> str:
        """The Group Management service's endpoint."""
        return self.base_url + GMS_PATH

    @property
    def mms_url(self) -> str:
        """The Membership Management service's endpoint."""
        return self.base_url + MMS_PATH

    @property
    def ca_path(self) -> Path:
        """The certificate clients must trust (PEM)."""
        self._running()
        assert self._ca_path is not None
        return self._ca_path

    @property
    def username(self) -> str:
        """The UsernameToken username the emulator accepts."""
        return self.config.username

    @property
    def password(self) -> str:
        """The UsernameToken password the emulator accepts."""
        return self.config.password

    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server

    # --- state -----------------------------------------------------------------------------

    def persons(self) -> dict[str, Person]:
        """The persons held now, by sync key."""
        self._running()
        assert self._store is not None
        return self._store.persons()

    def groups(self) -> dict[str, Group]:
        """The groups held now, by sync key."""
        self._running()
        assert self._store is not None
        return self._store.groups()

    def memberships(self) -> dict[str, Membership]:
        """The memberships held now, by sync key."""
        self._running()
        assert self._store is not None
        return {m.sync_key: m for m in self._store.memberships()}

    def history(self) -> list[Event]:
        """Every operation decided so far (one event per item of a mass request), oldest first."""
        self._running()
        assert self._store is not None
        return self._store.history()

    # --- faults ----------------------------------------------------------------------------

    def reconfigure(self, **changes: Any) -> None:
        """Change the injected faults while serving (e.g. the service goes down, then recovers).

        Args:
            changes: new values for fault settings (FAULT_SETTINGS: the rates, latency_ms, slow_ms,
                fault_operations); the fault draws' sequence continues.

        Raises:
            ConfigError: a setting that is not a fault setting, or an invalid value.
        """
        other = set(changes) - FAULT_SETTINGS
        if other:
            raise ConfigError(f"only fault settings can change while serving, not {sorted(other)}")
        self.config = dataclasses.replace(self.config, **changes)

    def faults_injected(self) -> Mapping[str, int]:
        """How many faults took effect so far, by kind: unavailable, fault, drop, wrong_ref, slow."""
        with self._rng_lock:
            return dict(self._injected)

    # --- requests --------------------------------------------------------------------------

    def _draw(self, path: str, action: str) -> _Faults:
        # Always the same draws per request, so one rate does not shift the others' sequence.
        config = self.config
        with self._rng_lock:
            error, drop, wrong = self._rng.random(), self._rng.random(), self._rng.random()
            fault, slow = self._extra_rng.random(), self._extra_rng.random()
            if config.fault_operations is not None:
                assert self._description is not None
                operation = self._description.routes.get((path, action.strip().strip('"')))
                if operation not in config.fault_operations:
                    return _Faults()
            faults = _Faults(
                unavailable=error < config.error_rate,
                fault=fault < config.fault_rate,
                drop=drop < config.drop_rate,
                wrong_ref=wrong < config.wrong_ref_rate,
                slow=slow < config.slow_rate,
            )
            # What takes effect: a 503 comes before anything, a SOAP fault before processing; a drop
            # and a wrong messageIdRef only for a processed request (a dropped answer carries no ref).
            if faults.unavailable:
                faults = _Faults(unavailable=True, slow=faults.slow)
            elif faults.fault:
                faults = _Faults(fault=True, slow=faults.slow)
            elif faults.drop:
                faults = _Faults(drop=True, slow=faults.slow)
            for kind in ("unavailable", "fault", "drop", "wrong_ref", "slow"):
                if getattr(faults, kind):
                    self._injected[kind] += 1
        return faults

    def _tap(self, exchange: Exchange) -> None:
        tap = self.on_exchange
        if tap is not None:
            tap(exchange)

    def _sleep(self, *, slow: bool) -> None:
        delay = self.config.latency_ms + (self.config.slow_ms if slow else 0.0)
        if delay > 0:
            time.sleep(delay / 1000.0)

    def _process(self, path: str, action_header: str, raw: bytes, *, wrong_ref: bool) -> _Reply:
        """Decide the answer to one POST, in the documented order of checks."""
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
        request = children[0]

        action = action_header.strip().strip('"')
        assert self._description is not None
        operation = self._description.routes.get((path, action))
        service = self._services.get(operation or "")
        if (
            operation is None
            or service is None
            or request.tag != f"{{{service.namespace}}}{operation}Request"
        ):
            return _action_not_supported(action)

        header = root.find(f"{{{SOAP_ENV}}}Header")
        if not self._authenticated(header):
            return _INVALID_SECURITY_REPLY
        not_understood = self._not_understood(header)
        if not_understood is not None:
            return not_understood

        info = header.find(f"{{{BIND}}}syncRequestHeaderInfo") if header is not None else None
        message_id = (info.findtext(f"{{{BIND}}}messageIdentifier") or "").strip() if info is not None else ""
        if not message_id:
            missing = failure("invaliddata", "", "syncRequestHeaderInfo/messageIdentifier is missing")
            answer = service.reject(operation, request, missing)
        else:
            problem = self._schema_problem(path, request, info)
            if problem is not None and self.config.strict:
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
        return _Reply(status=200, body=response_envelope(answer.body, with_ref(answer.status, ref), items))

    def _authenticated(self, header: etree._Element | None) -> bool:
        """WS-Security: the UsernameToken (PasswordText) matches and a Timestamp, if any, is not expired."""
        security = header.find(f"{{{WSSE}}}Security") if header is not None else None
        token = security.find(f"{{{WSSE}}}UsernameToken") if security is not None else None
        if token is None or security is None:
            return False
        password = token.find(f"{{{WSSE}}}Password")
        if password is None or password.get("Type", _PLAIN_TEXT_TYPE) != _PLAIN_TEXT_TYPE:
            return False
        username_ok = hmac.compare_digest(
            (token.findtext(f"{{{WSSE}}}Username") or "").encode(), self.config.username.encode()
        )
        password_ok = hmac.compare_digest((password.text or "").encode(), self.config.password.encode())
        if not (username_ok and password_ok):
            return False
        expires = security.findtext(f"{{{WSU}}}Timestamp/{{{WSU}}}Expires")
        if security.find(f"{{{WSU}}}Timestamp") is not None:
            try:
                return _parse_instant(expires or "") >= datetime.now(UTC)
            except ValueError:
                return False
        return True

    @staticmethod
    def _not_understood(header: etree._Element | None) -> _Reply | None:
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
                return _Reply(status=500, body=fault_envelope("s:MustUnderstand", None, message))
        return None

    def _schema_problem(self, path: str, request: etree._Element, info: etree._Element | None) -> str | None:
        assert self._description is not None
        description = self._description.description(path)
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

    def handle_post(self, handler: _Handler, path: str, raw: bytes) -> None:
        """Answer one POST on `handler`'s connection: faults, processing, latency, tap, write."""
        action = handler.headers.get("SOAPAction", "")
        faults = self._draw(path, action)
        if faults.unavailable:
            reply = _Reply(status=503, body=b"Service Unavailable", content_type="text/plain; charset=utf-8")
        elif faults.fault:
            reply = _Reply(status=500, body=fault_envelope("s:Server", None, INTERNAL_ERROR))
        else:
            try:
                reply = self._process(path, action, raw, wrong_ref=faults.wrong_ref)
            except Exception:  # noqa: BLE001  # a bug must cost one answer, not the server
                _log.exception("emulator_internal_error", path=path)
                reply = _Reply(status=500, body=fault_envelope("s:Server", None, "Internal error."))
        self._sleep(slow=faults.slow)
        if faults.drop:
            self._tap(Exchange(path=path, soap_action=action, request=raw, status=None, response=None))
            handler.drop()
            return
        self._tap(
            Exchange(path=path, soap_action=action, request=raw, status=reply.status, response=reply.body)
        )
        handler.send(reply.status, reply.body, reply.content_type)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: GET for the WSDL, POST for SOAP."""

    protocol_version = "HTTP/1.1"
    server_version = "ims-es-emulator"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    server: _Server

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        document = self.server.emulator._wsdl.get(path)
        if document is not None and query.lower() in ("wsdl", "singlewsdl"):
            self.send(200, document, _XML)
        else:
            self.send(404, b"Not Found", "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            self.send(411, b"Length Required", "text/plain; charset=utf-8")
            return
        raw = self.rfile.read(int(length))
        path = self.path.partition("?")[0]
        if path not in PATHS:
            self.send(404, b"Not Found", "text/plain; charset=utf-8")
            return
        self.server.emulator.handle_post(self, path, raw)

    def send(self, status: int, body: bytes, content_type: str) -> None:
        """Write a complete response."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection without answering (the request was applied)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        """Write no access log: `request_answered` events already describe every SOAP request."""


class _Server(ThreadingHTTPServer):
    """A threaded server that does each TLS handshake in the connection's own thread."""

    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, emulator: Emulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context = context
        self.emulator = emulator
        self._active: set[socket.socket] = set()
        self._busy = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can take seconds: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._idle:
            self._busy += 1
        try:
            request.settimeout(_HANDSHAKE_TIMEOUT)
            # Headers and body leave in separate writes: without NODELAY, Nagle plus the client's delayed
            # ACK would add ~40 ms to every answer.
            with contextlib.suppress(OSError):
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                connection = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # a client that fails or abandons the handshake
            with self._idle:
                self._active.add(connection)
            try:
                _Handler(connection, client_address, self)
            except OSError:
                pass  # the client went away mid-request
            finally:
                with self._idle:
                    self._active.discard(connection)
                connection.close()
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def close_connections(self, *, timeout: float) -> None:
        """Shut every open connection (idle keep-alives included) and wait for their threads to end."""
        with self._idle:
            for connection in list(self._active):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._idle.wait_for(lambda: self._busy == 0, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("connection_error", client=str(client_address), exc_info=True)
