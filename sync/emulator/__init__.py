"""A stateful IMS ES Person Management emulator on HTTPS: the demo's target and the tests' peer."""

from __future__ import annotations

from .server import Emulator, EmulatorConfig, Exchange
from .store import Event

__all__ = ["Emulator", "EmulatorConfig", "Event", "Exchange"]
