"""Shared by the GMS and MMS client tests: a client connected to the emulator, a status's codeMinor."""

from __future__ import annotations

from typing import Any, TypeVar

from sync.emulator import Emulator
from sync.ims.exchange import ServiceClient
from sync.models import Status

C = TypeVar("C", bound=ServiceClient)


def connect(emulator: Emulator, cls: type[C], url: str, **options: Any) -> C:
    """A `cls` client for `emulator`'s `url`, trusting its certificate unless told otherwise."""
    settings: dict[str, Any] = {
        "url": url,
        "username": emulator.username,
        "password": emulator.password,
        "ca_bundle": emulator.ca_path,
    }
    settings.update(options)
    return cls(**settings)


def minor(status: Status) -> tuple[str, str]:
    """The first codeMinor field (name, value) of a status (("", "") if none)."""
    return status.code_minor[0] if status.code_minor else ("", "")
