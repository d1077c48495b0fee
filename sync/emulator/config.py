"""How an emulator serves (EmulatorConfig) and which of its settings may change while it serves.

Plain settings: imports no I/O, only the operation names the services implement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sync.errors import ConfigError

from .groups import GROUP_OPERATIONS
from .memberships import MEMBERSHIP_OPERATIONS
from .persons import OPERATIONS

__all__ = ["ALL_OPERATIONS", "FAULT_SETTINGS", "RATES", "EmulatorConfig"]

RATES: Final = ("error_rate", "fault_rate", "drop_rate", "wrong_ref_rate", "slow_rate")
#: The settings `Emulator.reconfigure` may change while serving: the injected faults.
FAULT_SETTINGS: Final = frozenset({*RATES, "latency_ms", "slow_ms", "fault_operations"})
#: Every operation the emulator implements, over PMS (with readAllPersons), GMS and MMS.
ALL_OPERATIONS: Final = OPERATIONS | GROUP_OPERATIONS | MEMBERSHIP_OPERATIONS


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
    parent_portal: bool = True  # False: a site with the parent portal off (relationships refused, warned)
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
        for name in RATES:
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
