"""A misbehaving IMS ES on loopback HTTPS: the emulator decides (and applies) every request as IMS ES
would, then this server delivers the answer badly: a trickle, headers then a stall, a body without
end, or one far too large.

Each misbehaviour gives up after `GIVE_UP` seconds (the connection is closed), so that a client
without a wall-clock bound fails a test by its slowness instead of hanging it.
"""

from __future__ import annotations

import contextlib
import select
import time
from dataclasses import dataclass
from typing import Any, Final

from sync.emulator import Emulator, EmulatorConfig
from sync.emulator.http import XML, Handler

__all__ = ["GIVE_UP", "MODES", "Misbehaving"]

#: How long a misbehaviour lasts at most (seconds): far past the bounds the tests set.
GIVE_UP: Final = 10.0
#: The ways of delivering an answer; "well" delivers it as the emulator would.
MODES: Final = ("well", "trickle", "slow-headers-then-stall", "endless", "oversized", "oversized-declared")
#: Padding of the oversized answers: whitespace after the envelope, so that the XML stays well-formed.
OVERSIZE: Final = 2 * 1024 * 1024


@dataclass(slots=True)
class _Captured:
    """Stands in for the handler while the emulator decides: keeps its answer instead of sending it."""

    headers: Any
    status: int = 0
    body: bytes = b""
    dropped: bool = False

    def send(self, status: int, body: bytes, content_type: str) -> None:
        """Keep the answer."""
        del content_type
        self.status, self.body = status, body

    def drop(self) -> None:
        """Remember that the emulator would have dropped the connection."""
        self.dropped = True


class Misbehaving(Emulator):
    """The emulator with a `mode` (one of MODES) for delivering its answers; change it at any time."""

    def __init__(self, config: EmulatorConfig, mode: str) -> None:
        """An emulator for `config` that delivers its answers in `mode`."""
        super().__init__(config)
        self.mode = mode

    def handle_post(self, handler: Handler, path: str, raw: bytes) -> None:
        """Decide the POST as the emulator does, then deliver the answer in the current mode."""
        captured = _Captured(handler.headers)
        super().handle_post(captured, path, raw)  # type: ignore[arg-type]
        if captured.dropped:
            handler.drop()
            return
        deliver = getattr(self, "_" + self.mode.replace("-", "_"))
        handler.close_connection = True
        with contextlib.suppress(OSError):  # the client gave up: what the tests want
            deliver(handler, captured.status, captured.body)

    def _well(self, handler: Handler, status: int, body: bytes) -> None:
        handler.close_connection = False
        handler.send(status, body, XML)

    @staticmethod
    def _head(handler: Handler, status: int, **headers: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", XML)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.flush()

    def _trickle(self, handler: Handler, status: int, body: bytes) -> None:
        """The right headers, then the body a byte every 0.1 s: each read gets something in time."""
        self._head(handler, status, Content_Length=str(len(body)))
        ends = time.monotonic() + GIVE_UP
        for index in range(len(body)):
            if time.monotonic() > ends:
                return
            handler.wfile.write(body[index : index + 1])
            time.sleep(0.1)

    def _slow_headers_then_stall(self, handler: Handler, status: int, body: bytes) -> None:
        """Each header line 0.5 s after the last (within any read timeout), then no body at all."""
        handler.wfile.write(f"HTTP/1.1 {status} OK\r\n".encode())
        for index in range(8):
            time.sleep(0.5)
            handler.wfile.write(f"X-Pad-{index}: {index}\r\n".encode())
        handler.wfile.write(f"Content-Type: {XML}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        select.select([handler.connection], [], [], GIVE_UP)  # until the client or the server closes

    def _endless(self, handler: Handler, status: int, body: bytes) -> None:
        """The answer, then whitespace in chunks every 0.05 s, on and on (until GIVE_UP)."""
        self._head(handler, status, Transfer_Encoding="chunked")
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
        ends = time.monotonic() + GIVE_UP
        while time.monotonic() < ends:
            handler.wfile.write(b"200\r\n" + b" " * 0x200 + b"\r\n")
            time.sleep(0.05)
        handler.wfile.write(b"0\r\n\r\n")

    def _oversized(self, handler: Handler, status: int, body: bytes) -> None:
        """The answer and OVERSIZE bytes of whitespace after it, at full speed, chunked (no length)."""
        self._head(handler, status, Transfer_Encoding="chunked")
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
        pad = b" " * 0x10000
        for _ in range(OVERSIZE // len(pad)):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(pad), pad))
        handler.wfile.write(b"0\r\n\r\n")

    def _oversized_declared(self, handler: Handler, status: int, body: bytes) -> None:
        """The answer and OVERSIZE bytes of whitespace after it, its Content-Length saying so."""
        self._head(handler, status, Content_Length=str(len(body) + OVERSIZE))
        handler.wfile.write(body)
        pad = b" " * 0x10000
        for _ in range(OVERSIZE // len(pad)):
            handler.wfile.write(pad)
