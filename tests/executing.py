"""Shared by the executor and fault tests: a numbered valid person, a PersonClient trusting the emulator."""

from __future__ import annotations

from sync.emulator import Emulator
from sync.ims.clients import PersonClient
from sync.ims.exchange import Timeouts
from sync.models import Person
from tests.conftest import PASSWORD, USERNAME


def person(n: int, **fields: str) -> Person:
    """A valid person number n."""
    values = {
        "sync_key": f"k{n:03d}",
        "username": f"u{n:03d}",
        "given_name": f"G{n}",
        "family_name": f"F{n}",
        "role": "Student",
    }
    values.update(fields)
    return Person(**values)


def client_for(emulator: Emulator, *, read_timeout: float = 5.0) -> PersonClient:
    """A PersonClient that trusts `emulator`."""
    return PersonClient(
        url=emulator.pms_url,
        username=USERNAME,
        password=PASSWORD,
        ca_bundle=emulator.ca_path,
        timeouts=Timeouts(connect=5.0, read=read_timeout),
    )
