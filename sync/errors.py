"""The exceptions ims-es-sync raises; foreign exceptions are translated once, at the edge that meets them.

```
SyncError
├── ConfigError            bad mapping, settings, credentials file or command line
├── RosterError            the roster file cannot be read at all (a bad row is a Reject, not an error)
├── StateError             the state directory (snapshot + journal) cannot be used
│   └── StateLockedError   another run holds the state's lock
├── SafetyLimitError       a plan exceeds a safety limit and nothing was sent
└── RemoteError            talking to IMS ES went wrong
    ├── TransientError     timeout, connection, HTTP 5xx/503, server busy: retried
    │   └── CircuitOpenError  too many transient failures in a row: the run stops
    ├── RejectedError      a SOAP fault about our request: not retried
    ├── AuthenticationError  the service refused our credentials: not retried
    ├── CertificateError   the service's TLS certificate did not verify: not retried
    └── ProtocolError      an answer we cannot trust (malformed, wrong messageIdRef, wrong count)
        └── UnmatchedAnswerError  its messageIdRef names another request (the statuses are kept)
```
No exception text ever carries a password: build messages from names, never from credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync.models import Status

__all__ = [
    "AuthenticationError",
    "CertificateError",
    "CircuitOpenError",
    "ConfigError",
    "ProtocolError",
    "RejectedError",
    "RemoteError",
    "RosterError",
    "SafetyLimitError",
    "StateError",
    "StateLockedError",
    "SyncError",
    "TransientError",
    "UnmatchedAnswerError",
]


class SyncError(Exception):
    """Base of every error ims-es-sync raises on purpose."""


class ConfigError(SyncError):
    """A mapping, setting, credentials file or command-line value is unusable."""


class RosterError(SyncError):
    """The roster file as a whole cannot be read (missing, wrong encoding, no header, ...)."""


class StateError(SyncError):
    """The state directory (snapshot + journal) cannot be opened or is inconsistent."""


class StateLockedError(StateError):
    """Another ims-es-sync process holds the lock on this state directory."""


class SafetyLimitError(SyncError):
    """A plan would change more than a safety limit allows; nothing was sent."""


class RemoteError(SyncError):
    """Talking to IMS ES failed."""


class TransientError(RemoteError):
    """A fault that may pass: timeout, connection reset, HTTP 5xx/503. Safe to retry."""


class CircuitOpenError(TransientError):
    """Too many consecutive transient failures: the service is treated as unreachable."""


class RejectedError(RemoteError):
    """The service answered with a SOAP fault about our request. Retrying will not help."""


class AuthenticationError(RemoteError):
    """The service refused the WS-Security credentials."""


class CertificateError(RemoteError):
    """The service's TLS certificate did not verify against the trusted CAs."""


class ProtocolError(RemoteError):
    """An answer that cannot be trusted: malformed, missing or wrong messageIdRef, wrong item count."""


class UnmatchedAnswerError(ProtocolError):
    """An answer whose messageIdRef (header or item) is not our messageIdentifier.

    It confirms nothing, but the journal keeps what it said (`status`, and `items` for a mass
    request), so that reconcile can show the request as unmatched.
    """

    def __init__(self, message: str, *, status: Status, items: tuple[Status, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.items = items
