"""The emulator's HTTPS plumbing: a threaded HTTP/1.1 server that does TLS per connection, and its handler.

It knows HTTP and TLS, not IMS ES: GET asks the application for a ?wsdl document, POST hands the body
to the application's `handle_post`. Imports nothing of the emulator but its TLS helpers and the
endpoint paths.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, Protocol

import structlog

from .tls import TlsMaterial, generate_self_signed, server_context
from .wsdl import PATHS

__all__ = ["XML", "Application", "Exchange", "Handler", "Reply", "Server", "tls_material"]

_log = structlog.get_logger("sync.emulator")

XML: Final = "text/xml; charset=utf-8"
_TEXT: Final = "text/plain; charset=utf-8"
_HANDSHAKE_TIMEOUT: Final = 10.0
_IDLE_TIMEOUT: Final = 60.0  # an idle keep-alive connection is closed after this long


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One POST as the emulator saw it (for test taps). `status` and `response` are None when dropped."""

    path: str
    soap_action: str
    request: bytes = field(repr=False)  # holds the UsernameToken password: never in a repr
    status: int | None
    response: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A complete HTTP answer."""

    status: int
    body: bytes
    content_type: str = XML


class Application(Protocol):
    """What the server serves: WSDL documents and SOAP POSTs."""

    def wsdl_document(self, path: str) -> bytes | None:
        """The ?wsdl document of endpoint `path`, or None."""

    def handle_post(self, handler: Handler, path: str, raw: bytes) -> None:
        """Answer one POST to one of the endpoints on `handler`'s connection."""


def tls_material(
    cert: Path | None, key: Path | None, cert_dir: Path | None, host: str
) -> tuple[TlsMaterial, Path | None]:
    """The pair to serve: the given one, or a generated self-signed one (with the temporary directory
    made for it, which the caller removes; None when `cert_dir` was given)."""
    if cert is not None and key is not None:
        return TlsMaterial(cert=cert, key=key), None
    temp_dir = None
    directory = cert_dir
    if directory is None:
        temp_dir = directory = Path(tempfile.mkdtemp(prefix="ims-es-emulator-"))
    return generate_self_signed(directory, host=host), temp_dir


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: GET for the WSDL, POST for SOAP."""

    protocol_version = "HTTP/1.1"
    server_version = "ims-es-emulator"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    server: Server

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        document = self.server.application.wsdl_document(path)
        if document is not None and query.lower() in ("wsdl", "singlewsdl"):
            self.send(200, document, XML)
        else:
            self.send(404, b"Not Found", _TEXT)

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            self.send(411, b"Length Required", _TEXT)
            return
        raw = self.rfile.read(int(length))
        path = self.path.partition("?")[0]
        if path not in PATHS:
            self.send(404, b"Not Found", _TEXT)
            return
        self.server.application.handle_post(self, path, raw)

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


class Server(ThreadingHTTPServer):
    """A threaded server that does each TLS handshake in the connection's own thread."""

    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], material: TlsMaterial, application: Application) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context = server_context(material)
        self.application = application
        self._active: set[socket.socket] = set()
        self._busy = 0
        self._idle = threading.Condition()
        super().__init__(address, Handler)

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
                Handler(connection, client_address, self)
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
