"""Value types shared by every stage: the kinds of object, their records, plan operations, plans, results.

The kinds are described once, in `kinds.py`; the other modules hold the values that travel through
the pipeline.
"""

from __future__ import annotations

from sync.models.kinds import (
    DELETION_ORDER,
    KINDS,
    OPERATION_TYPES,
    Kind,
    KindName,
    OperationType,
    Reference,
    kind_named,
    kind_of,
)
from sync.models.operations import (
    ChangeIdentifier,
    ChangeOperation,
    Create,
    Deactivate,
    Delete,
    DeleteOperation,
    DeletesMode,
    FieldChange,
    GroupOperation,
    MembershipOperation,
    Operation,
    PersonOperation,
    Update,
)
from sync.models.plans import (
    Conflict,
    Plan,
    PlanSummary,
    Reject,
)
from sync.models.records import (
    GROUP_FIELDS,
    GROUP_TYPES,
    INSTITUTION_ROLE_TYPES,
    MEMBERSHIP_FIELDS,
    MEMBERSHIP_ROLE_TYPES,
    PERSON_FIELDS,
    Group,
    Membership,
    Person,
    Record,
    person_hash,
)
from sync.models.results import (
    CodeMajor,
    OperationResult,
    Outcome,
    RunResult,
    Severity,
    Status,
)
from sync.models.schools import NO_SCHOOL, Schools

__all__ = [
    "DELETION_ORDER",
    "GROUP_FIELDS",
    "GROUP_TYPES",
    "INSTITUTION_ROLE_TYPES",
    "KINDS",
    "MEMBERSHIP_FIELDS",
    "MEMBERSHIP_ROLE_TYPES",
    "NO_SCHOOL",
    "OPERATION_TYPES",
    "PERSON_FIELDS",
    "ChangeIdentifier",
    "ChangeOperation",
    "CodeMajor",
    "Conflict",
    "Create",
    "Deactivate",
    "Delete",
    "DeleteOperation",
    "DeletesMode",
    "FieldChange",
    "Group",
    "GroupOperation",
    "Kind",
    "KindName",
    "Membership",
    "MembershipOperation",
    "Operation",
    "OperationResult",
    "OperationType",
    "Outcome",
    "Person",
    "PersonOperation",
    "Plan",
    "PlanSummary",
    "Record",
    "Reference",
    "Reject",
    "RunResult",
    "Schools",
    "Severity",
    "Status",
    "Update",
    "kind_named",
    "kind_of",
    "person_hash",
]
