"""Injected faults: drawing them per request, counting those that took effect, changing them while serving.

Pure decisions and counters: imports no I/O (the server applies what is drawn).
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sync.errors import ConfigError

from .config import FAULT_SETTINGS, EmulatorConfig
from .http import Reply
from .soap import fault_envelope

__all__ = ["INTERNAL_ERROR", "FaultDraws", "Faults", "injected_reply", "reconfigured"]

INTERNAL_ERROR: Final = (
    "The server was unable to process the request due to an internal error. For more information about "
    "the error, either turn on IncludeExceptionDetailInFaults (either from ServiceBehaviorAttribute or "
    "from the <serviceDebug> configuration behavior) on the server in order to send the exception "
    "information back to the client, or turn on tracing as per the Microsoft .NET Framework SDK "
    "documentation and inspect the server trace logs."
)
_KINDS: Final = ("unavailable", "fault", "drop", "wrong_ref", "slow")


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """The faults one request gets."""

    unavailable: bool = False
    fault: bool = False
    drop: bool = False
    wrong_ref: bool = False
    slow: bool = False


class FaultDraws:
    """Draws each request's faults from seeded generators and counts those that take effect."""

    def __init__(self, seed: int | None) -> None:
        """Draw reproducibly from `seed` (None: from the system's randomness)."""
        self._rng = random.Random(seed)  # noqa: S311  # fault draws, not cryptography
        # The later faults draw from their own generator, so a seed gives the original three the
        # same sequence as before they existed.
        self._extra_rng = random.Random(f"{seed}/extra")  # noqa: S311
        self._lock = threading.Lock()
        self._injected: Counter[str] = Counter()

    def draw(self, config: EmulatorConfig, operation: str | None) -> Faults:
        """The faults a request for `operation` (None: not routed) gets under `config`'s rates."""
        # Always the same draws per request, so one rate does not shift the others' sequence.
        with self._lock:
            error, drop, wrong = self._rng.random(), self._rng.random(), self._rng.random()
            fault, slow = self._extra_rng.random(), self._extra_rng.random()
            if config.fault_operations is not None and operation not in config.fault_operations:
                return Faults()
            faults = Faults(
                unavailable=error < config.error_rate,
                fault=fault < config.fault_rate,
                drop=drop < config.drop_rate,
                wrong_ref=wrong < config.wrong_ref_rate,
                slow=slow < config.slow_rate,
            )
            # What takes effect: a 503 comes before anything, a SOAP fault before processing; a drop
            # and a wrong messageIdRef only for a processed request (a dropped answer carries no ref).
            if faults.unavailable:
                faults = Faults(unavailable=True, slow=faults.slow)
            elif faults.fault:
                faults = Faults(fault=True, slow=faults.slow)
            elif faults.drop:
                faults = Faults(drop=True, slow=faults.slow)
            for kind in _KINDS:
                if getattr(faults, kind):
                    self._injected[kind] += 1
        return faults

    def injected(self) -> Mapping[str, int]:
        """How many faults took effect so far, by kind: unavailable, fault, drop, wrong_ref, slow."""
        with self._lock:
            return dict(self._injected)


def injected_reply(faults: Faults) -> Reply | None:
    """The answer that replaces processing (HTTP 503, or a SOAP fault s:Server), or None."""
    if faults.unavailable:
        return Reply(status=503, body=b"Service Unavailable", content_type="text/plain; charset=utf-8")
    if faults.fault:
        return Reply(status=500, body=fault_envelope("s:Server", None, INTERNAL_ERROR))
    return None


def reconfigured(config: EmulatorConfig, changes: Mapping[str, Any]) -> EmulatorConfig:
    """`config` with new fault settings.

    Raises:
        ConfigError: a setting that is not a fault setting, or an invalid value.
    """
    other = set(changes) - FAULT_SETTINGS
    if other:
        raise ConfigError(f"only fault settings can change while serving, not {sorted(other)}")
    return dataclasses.replace(config, **changes)
