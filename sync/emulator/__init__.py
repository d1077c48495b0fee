"""A stateful IMS ES emulator on HTTPS (persons, groups, memberships): the demo target and test peer."""

from __future__ import annotations

from .server import Emulator, EmulatorConfig, Exchange
from .store import Event, Group, Membership

__all__ = ["Emulator", "EmulatorConfig", "Event", "Exchange", "Group", "Membership"]
