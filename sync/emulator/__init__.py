"""A stateful IMS ES emulator on HTTPS (persons, groups, memberships): the demo target and test peer."""

from __future__ import annotations

from .config import EmulatorConfig
from .http import Exchange
from .server import Emulator
from .store import Event, Group, Membership

__all__ = ["Emulator", "EmulatorConfig", "Event", "Exchange", "Group", "Membership"]
