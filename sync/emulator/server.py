"""The emulator: its life cycle, where it is, what it holds, and each POST dispatched to its service.

The rooms beside it do the rest: `http` (HTTPS plumbing), `answers` (one POST's answer, through
`checks`: security and protocol checks), `faults` (injected faults), `config` (settings), and the
services (`persons`, `groups`, `memberships` over the `service` base) holding their objects in `store`.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, overload

import structlog

from sync.models import Person

from .answers import reply_to, route
from .config import EmulatorConfig
from .faults import FaultDraws, Faults, injected_reply, reconfigured
from .groups import GroupService
from .http import Exchange, Handler, Reply, Server, tls_material
from .memberships import MembershipService
from .persons import PersonService
from .service import Service
from .soap import fault_envelope
from .store import Event, Group, Membership, Store
from .wsdl import EXTENDED_PATH, GMS_PATH, MMS_PATH, PMS_PATH, Catalog, bundled_catalog

__all__ = ["Emulator"]

_log = structlog.get_logger("sync.emulator")

_STOP_TIMEOUT: Final = 5.0


class _Endpoint:
    """An endpoint's URL, a read-only attribute of a running Emulator."""

    def __init__(self, path: str, doc: str) -> None:
        self._path = path
        self.__doc__ = doc

    @overload
    def __get__(self, emulator: None, owner: type[Emulator]) -> _Endpoint: ...
    @overload
    def __get__(self, emulator: Emulator, owner: type[Emulator] | None = None) -> str: ...
    def __get__(self, emulator: Emulator | None, owner: type[Emulator] | None = None) -> str | _Endpoint:
        return self if emulator is None else emulator.base_url + self._path


class Emulator:
    """A stateful IMS ES service on HTTPS: Person, Group and Membership Management (DESIGN §6).

    Use as a context manager, or call `start()` and `stop()`. URLs and `ca_path` are known once
    started. `on_exchange`, if set, is called with every POST's Exchange before its answer is written.
    """

    on_exchange: Callable[[Exchange], None] | None

    pms_url = _Endpoint(PMS_PATH, "The Person Management service's endpoint.")
    extended_url = _Endpoint(
        EXTENDED_PATH, "itslearning's ExtendedPersonManagement endpoint (readAllPersons)."
    )
    gms_url = _Endpoint(GMS_PATH, "The Group Management service's endpoint.")
    mms_url = _Endpoint(MMS_PATH, "The Membership Management service's endpoint.")

    def __init__(self, config: EmulatorConfig) -> None:
        """Prepare an emulator; nothing is bound until `start()`."""
        self.config = config
        self.on_exchange = None
        self._draws = FaultDraws(config.seed)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        # operation -> its service (persons, groups, memberships), whose namespace its request element is in
        self._services: dict[str, Service[Any]] = {}
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
        material, self._temp_dir = tls_material(config.tls_cert, config.tls_key, config.cert_dir, config.host)
        self._ca_path = material.cert
        self._store = Store(config.state)
        self._services = {
            operation: service
            for service in (
                PersonService(self._store, parent_portal=config.parent_portal),
                GroupService(self._store),
                MembershipService(self._store),
            )
            for operation in service.wire.operations
        }
        try:
            self._server = Server((config.host, config.port), material, self)
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

    def _running(self) -> Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server

    def wsdl_document(self, path: str) -> bytes | None:
        """The ?wsdl document of endpoint `path` (its addresses pointing here), or None."""
        return self._wsdl.get(path)

    # --- state -----------------------------------------------------------------------------

    def _held(self) -> Store:
        self._running()
        assert self._store is not None
        return self._store

    def persons(self) -> dict[str, Person]:
        """The persons held now, by sync key."""
        return self._held().persons()

    def groups(self) -> dict[str, Group]:
        """The groups held now, by sync key."""
        return self._held().groups()

    def memberships(self) -> dict[str, Membership]:
        """The memberships held now, by sync key."""
        return {m.sync_key: m for m in self._held().memberships()}

    def history(self) -> list[Event]:
        """Every operation decided so far (one event per item of a mass request), oldest first."""
        return self._held().history()

    # --- faults ----------------------------------------------------------------------------

    def reconfigure(self, **changes: Any) -> None:
        """Change the injected faults while serving (e.g. the service goes down, then recovers).

        Args:
            changes: new values for fault settings (FAULT_SETTINGS: the rates, latency_ms, slow_ms,
                fault_operations); the fault draws' sequence continues.

        Raises:
            ConfigError: a setting that is not a fault setting, or an invalid value.
        """
        self.config = reconfigured(self.config, changes)

    def faults_injected(self) -> Mapping[str, int]:
        """How many faults took effect so far, by kind: unavailable, fault, drop, wrong_ref, slow."""
        return self._draws.injected()

    # --- requests --------------------------------------------------------------------------

    def _catalog(self) -> Catalog:
        assert self._description is not None
        return self._description

    def _tap(self, exchange: Exchange) -> None:
        tap = self.on_exchange
        if tap is not None:
            tap(exchange)

    def _sleep(self, faults: Faults) -> None:
        delay = self.config.latency_ms + (self.config.slow_ms if faults.slow else 0.0)
        if delay > 0:
            time.sleep(delay / 1000.0)

    def handle_post(self, handler: Handler, path: str, raw: bytes) -> None:
        """Answer one POST on `handler`'s connection: faults, processing, latency, tap, write."""
        action = handler.headers.get("SOAPAction", "")
        faults = self._draws.draw(self.config, route(self._catalog(), path, action))
        reply = injected_reply(faults)
        if reply is None:
            try:
                catalog, services = self._catalog(), self._services
                reply = reply_to(
                    catalog, services, self.config, path, action, raw, wrong_ref=faults.wrong_ref
                )
            except Exception:  # noqa: BLE001  # a bug must cost one answer, not the server
                _log.exception("emulator_internal_error", path=path)
                reply = Reply(status=500, body=fault_envelope("s:Server", None, "Internal error."))
        self._sleep(faults)
        if faults.drop:
            self._tap(Exchange(path=path, soap_action=action, request=raw, status=None, response=None))
            handler.drop()
            return
        self._tap(
            Exchange(path=path, soap_action=action, request=raw, status=reply.status, response=reply.body)
        )
        handler.send(reply.status, reply.body, reply.content_type)
