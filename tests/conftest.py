"""Shared fixtures: TLS material, emulators whose every exchange is checked against itslearning's schemas."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, settings

from sync.emulator import Emulator, EmulatorConfig, Exchange
from sync.emulator.tls import TlsMaterial, generate_self_signed
from tests.itslearning import IMSGLOBAL_DIR, ITSLEARNING_WSDL_DIR, validate_exchange

# Property tests check behaviour, not speed (that is benchmarks/' job): on a loaded 2-core machine an
# example may take longer than Hypothesis' default 200 ms deadline without anything being wrong.
settings.register_profile("ims-sync", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ims-sync")

#: The WS-Security credentials every test emulator accepts.
USERNAME: Final = "sync-test-user"
PASSWORD: Final = "Test-Pa55word!"


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers these fixtures understand."""
    config.addinivalue_line(
        "markers",
        "invalid_requests: the test sends deliberately invalid requests; only answers are schema-checked",
    )


class ExchangeLog:
    """A tap for `Emulator.on_exchange`: keeps every exchange and the schema problems found in them."""

    def __init__(self, *, validate: bool, validate_requests: bool) -> None:
        """Collect exchanges; validate them against itslearning's schemas when `validate`."""
        self.exchanges: list[Exchange] = []
        self.failures: list[str] = []
        self._validate = validate
        self._validate_requests = validate_requests
        self._lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> None:
        """Record one exchange (called from the emulator's threads)."""
        # One at a time: an lxml XMLSchema is not safe to use from several threads at once.
        with self._lock:
            self.exchanges.append(exchange)
            if self._validate:
                try:
                    validate_exchange(exchange, request=self._validate_requests)
                except AssertionError as exc:
                    self.failures.append(f"{exchange.soap_action}: {exc}")


@pytest.fixture(name="tls_material", scope="session")
def fixture_tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """One generated certificate and key for the whole session (generation is the slow part)."""
    return generate_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(name="exchange_log")
def fixture_exchange_log(request: pytest.FixtureRequest) -> Iterator[ExchangeLog]:
    """Every exchange of the test's emulators; fails the test at teardown if one broke the schemas.

    PMS and MMS exchanges are checked against itslearning's WSDLs, GMS ones against our gms.wsdl and
    IMS's official group data schema (tests/itslearning.py).
    """
    log = ExchangeLog(
        validate=ITSLEARNING_WSDL_DIR.is_dir() and IMSGLOBAL_DIR.is_dir(),
        validate_requests=request.node.get_closest_marker("invalid_requests") is None,
    )
    yield log
    assert not log.failures, "exchanges that break itslearning's schemas:\n" + "\n".join(log.failures)


@pytest.fixture(name="emulator_factory")
def fixture_emulator_factory(
    tls_material: TlsMaterial, exchange_log: ExchangeLog
) -> Iterator[Callable[..., Emulator]]:
    """`emulator_factory(**config_overrides)` starts an emulator (lenient by default); stopped at teardown.

    `make` builds the server from its config: an Emulator, or a subclass that misbehaves
    (tests/misbehaving.py).
    """
    started: list[Emulator] = []

    def factory(*, make: Callable[[EmulatorConfig], Emulator] = Emulator, **overrides: Any) -> Emulator:
        options: dict[str, Any] = {
            "username": USERNAME,
            "password": PASSWORD,
            "tls_cert": tls_material.cert,
            "tls_key": tls_material.key,
        }
        options.update(overrides)
        emulator = make(EmulatorConfig(**options))
        emulator.on_exchange = exchange_log
        emulator.start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


@pytest.fixture(name="emulator")
def fixture_emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A running strict emulator with an empty in-memory state."""
    return emulator_factory(strict=True)
