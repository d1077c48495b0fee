"""Bounded exchanges: each request ends within a wall-clock bound, and each answer within a size limit.

requests' read timeout bounds each socket read, not the request: a server that trickles its answer a
byte at a time, or sends headers slowly and then stalls, or streams without end, would hold a call for
ever. Here a call gets a `Watch` with a deadline; one watchdog thread per process shuts the socket of
every call past its deadline down, so that a read blocked in it fails at once, whatever phase the
call is in (connecting, sending, waiting for headers, reading the body). The body is read in chunks,
counted against the size limit as it comes.

The socket is found through the connection class `BoundedAdapter` gives its pools: the connection
attaches itself to the calling thread's current Watch (a context variable) when it connects and when
it sends. Another adapter (tests' replaying one) is bounded between chunks only.

Imports requests and urllib3 for the adapter and the connection; raises `sync.errors` classes.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from sync.errors import ProtocolError, TransientError
from sync.ims.faults import FOREIGN

__all__ = ["MB", "Bound", "BoundedAdapter", "Watch", "send_bounded"]

#: The unit of `--max-answer-mb`.
MB: Final = 1024 * 1024
_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """How long one exchange may take in all (seconds), and how large its answer may be (bytes)."""

    seconds: float
    max_bytes: int


class Watch:
    """One call's deadline; past it, the connection the call runs on is shut down."""

    __slots__ = ("_connection", "_finished", "_lock", "deadline", "expired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._finished = False
        self._connection: Any = None
        self._lock = threading.Lock()

    def attach(self, connection: Any) -> None:
        """The call now runs on `connection` (cut at once if the deadline has passed)."""
        with self._lock:
            if self._finished:
                return
            self._connection = connection
            if self.expired:
                _cut(connection)

    def fire(self) -> None:
        """The deadline passed (the watchdog's thread): cut the connection unless the call finished."""
        with self._lock:
            if self._finished:
                return
            self.expired = True
            if self._connection is not None:
                _cut(self._connection)

    def finish(self) -> bool:
        """The call is over, its connection no longer ours to cut; whether the deadline had passed."""
        with self._lock:
            self._finished = True
            self._connection = None
            return self.expired

    @property
    def finished(self) -> bool:
        return self._finished


def _cut(connection: Any) -> None:
    """Shut the connection's socket down: a read blocked in it (another thread's) returns at once.

    `socket.socket.shutdown` on the plain socket, not `SSLSocket.shutdown`, which would also drop the
    TLS object under the reading thread's feet.
    """
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One thread that fires the Watches whose deadline has passed (a heap of deadlines)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._compact_at = 1024

    def watch(self, seconds: float) -> Watch:
        """A Watch that fires `seconds` from now unless finished first."""
        watch = Watch(time.monotonic() + seconds)
        with self._wake:
            if len(self._heap) >= self._compact_at:  # finished Watches wait for their deadline: drop them
                self._heap = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
                self._compact_at = max(1024, 2 * len(self._heap))
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ims-es-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._wake.notify()
        return watch

    def _run(self) -> None:
        while True:
            due: list[Watch] = []
            with self._wake:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2].finished):
                    watch = heapq.heappop(self._heap)[2]
                    if not watch.finished:
                        due.append(watch)
                if not due:
                    self._wake.wait(self._heap[0][0] - now if self._heap else None)
            for watch in due:
                watch.fire()


_WATCHDOG = _Watchdog()
#: The Watch of the call the current thread is making, for the connection to attach to.
_CURRENT: ContextVar[Watch | None] = ContextVar("ims_es_watch", default=None)


def _reset_after_fork() -> None:
    global _WATCHDOG  # noqa: PLW0603 - a forked child has no watchdog thread: it starts its own
    _WATCHDOG = _Watchdog()


os.register_at_fork(after_in_child=_reset_after_fork)


def _attach_current(connection: Any) -> None:
    watch = _CURRENT.get()
    if watch is not None:
        watch.attach(connection)


class _WatchedConnection(urllib3.connection.HTTPSConnection):
    """An HTTPS connection that the current call's Watch can cut, from connecting to the last byte."""

    def connect(self) -> None:
        _attach_current(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self)  # a pooled connection, connected by an earlier call
        super().request(*args, **kwargs)


class _WatchedPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedConnection


def _watched(manager: Any) -> Any:
    """A pool manager whose HTTPS pools make watched connections (SOCKS pools are left alone)."""
    classes = getattr(manager, "pool_classes_by_scheme", None)
    if classes is not None and classes.get("https") is urllib3.connectionpool.HTTPSConnectionPool:
        manager.pool_classes_by_scheme = {**classes, "https": _WatchedPool}
    return manager


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """requests' pooled HTTPS adapter, with connections a call's Watch can cut (see `send_bounded`)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watched(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _watched(super().proxy_manager_for(proxy, **proxy_kwargs))


@contextlib.contextmanager
def _watching(seconds: float) -> Iterator[Watch]:
    watch = _WATCHDOG.watch(seconds)
    token = _CURRENT.set(watch)
    try:
        yield watch
    finally:
        _CURRENT.reset(token)
        watch.finish()


def send_bounded(
    adapter: requests.adapters.BaseAdapter,
    request: requests.PreparedRequest,
    *,
    bound: Bound,
    where: str,
    **options: Any,
) -> tuple[int, bytes]:
    """Send `request` and read its whole answer within `bound`: (HTTP status, body).

    `options` go to `adapter.send` (timeouts, TLS verification, proxies). Foreign exceptions of a call
    that kept its bound are left for `faults.translate_exception`.

    Raises:
        TransientError: the bound passed first: the call was abandoned, its answer unknown.
        ProtocolError: the answer is larger than `bound.max_bytes`: refused unread.
    """
    with _watching(bound.seconds) as watch:
        try:
            response = adapter.send(request, stream=True, **options)
            try:
                body = _read(response, watch, bound.max_bytes, where)
            finally:
                response.close()
        except FOREIGN as exc:
            if watch.finish():
                raise _abandoned(where, bound) from exc
            raise
        if watch.finish():  # the answer may be cut short: it proves nothing
            raise _abandoned(where, bound)
    return response.status_code, body


def _read(response: requests.Response, watch: Watch, limit: int, where: str) -> bytes:
    """The answer's body, read in chunks; refused as soon as it proves larger than `limit`."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(where, limit)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK):
        if watch.expired:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(where, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _abandoned(where: str, bound: Bound) -> TransientError:
    return TransientError(
        f"{where}: no complete answer within {bound.seconds:g} s (connect + read timeout); abandoned"
    )


def _too_large(where: str, limit: int) -> ProtocolError:
    return ProtocolError(f"{where}: the answer exceeds the size limit of {limit / MB:g} MB; refused")
