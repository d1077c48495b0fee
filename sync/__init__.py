"""ims-es-sync: batch CSV synchronisation of school rosters into itslearning over IMS ES v1.0.

The public API: read a roster through a mapping, plan against the snapshot, execute with a client.
Light names are imported here; the heavier stages (pandas, zeep) load when first used.
"""

from __future__ import annotations

from sync.errors import (
    AuthenticationError,
    CertificateError,
    CircuitOpenError,
    ConfigError,
    ProtocolError,
    RejectedError,
    RemoteError,
    RosterError,
    SafetyLimitError,
    StateError,
    StateLockedError,
    SyncError,
    TransientError,
    UnmatchedAnswerError,
)
from sync.models import (
    PERSON_FIELDS,
    ChangeIdentifier,
    Conflict,
    Create,
    Deactivate,
    Delete,
    FieldChange,
    Operation,
    OperationResult,
    Outcome,
    Person,
    Plan,
    Reject,
    RunResult,
    Status,
    Update,
)

__version__ = "0.1.0"

__all__ = [
    "PERSON_FIELDS",
    "AuthenticationError",
    "CertificateError",
    "ChangeIdentifier",
    "CircuitOpenError",
    "ConfigError",
    "Conflict",
    "Create",
    "Deactivate",
    "Delete",
    "FieldChange",
    "Operation",
    "OperationResult",
    "Outcome",
    "Person",
    "Plan",
    "ProtocolError",
    "Reject",
    "RejectedError",
    "RemoteError",
    "RosterError",
    "RunResult",
    "SafetyLimitError",
    "StateError",
    "StateLockedError",
    "Status",
    "SyncError",
    "TransientError",
    "UnmatchedAnswerError",
    "Update",
    "__version__",
]
