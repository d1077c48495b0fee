"""What a report says of one operation: its name and kind, keys, record values, changes and labels.

Written once over `sync.models.kinds`: a new kind of object needs nothing here.
Pure: imports only the models.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from sync.models import (
    Delete,
    DeleteOperation,
    FieldChange,
    Operation,
    Record,
    RunResult,
    Status,
    split_children,
)
from sync.models.kinds import KINDS, PERSON, KindName, OperationType, kind_of, operation_type
from sync.report.meta import HeldRow

if TYPE_CHECKING:
    from sync.plan.selection import Held

__all__ = [
    "FIELD_LABELS",
    "OP_LABELS",
    "PERSON_LABELS",
    "OperationType",
    "changes_of",
    "changes_text",
    "code_minor_text",
    "describe",
    "held_rows",
    "identity_of",
    "op_keys",
    "reason_of",
    "record_of",
    "shown_changes",
    "status_text",
    "texts_of",
    "unsent_deletions",
    "values_of",
]

FIELD_LABELS: Final[Mapping[str, str]] = {
    "username": "Username",
    "given_name": "Given name",
    "family_name": "Family name",
    "email": "E-mail",
    "role": "Role",
    "birth_date": "Birth date",
    "phone": "Phone",
    "mobile": "Mobile",
    "nickname": "Nickname",
    "prefix": "Prefix",
    "street": "Street",
    "street_extra": "Street (extra line)",
    "postal_code": "Postal code",
    "city": "City",
    "gender": "Gender",
    "children": "Children",
    # groups
    "name": "Name",
    "type": "Type",
    "parent": "Parent",
    "description": "Description",
    # memberships (their "role" is labelled as a person's)
    "group": "Group",
    "person": "Person",
    "active": "Active",
}

_VERBS: Final[Mapping[OperationType, str]] = {
    "create": "Create {}",
    "update": "Update {}",
    "changeIdentifier": "Change {} identifier",
    "delete": "Delete {}",
    "deactivate": "Deactivate {}",
}


def _label(name: OperationType, kind: str) -> str:
    return " ".join(_VERBS[name].format(kind).split())


#: The tables' operation labels: a person's are those of the persons-only reports (`PERSON_LABELS`
#: once groups or memberships show too); groups and memberships say what they are.
OP_LABELS: Final[Mapping[tuple[OperationType, KindName], str]] = {
    (name, kind.name): _label(name, "" if kind is PERSON else kind.name)
    for kind in KINDS
    for name, _ in kind.typed_operations
}
PERSON_LABELS: Final[Mapping[OperationType, str]] = {
    name: _label(name, PERSON.name) for name, _ in PERSON.typed_operations
}

# Record.values() builds its dict with getattr per field; these getters are several times faster,
# which matters for 10^5-operation reports.
_GETTERS: Final[Mapping[type, Callable[[Record], tuple[str, ...]]]] = {
    kind.record: operator.attrgetter(*kind.fields) for kind in KINDS
}


#: Per kind of record: whether it has an identity, whether its deletion shows its record.
_IDENTIFIED: Final[Mapping[type, bool]] = {kind.record: kind.identity for kind in KINDS}
_SHOWN_DELETED: Final[Mapping[type, bool]] = {kind.record: kind.deactivatable for kind in KINDS}
#: `describe` of each (operation class, record class), found on first use.
_DESCRIBED: Final[dict[tuple[type, type], tuple[OperationType, KindName]]] = {}


def describe(op: Operation) -> tuple[OperationType, KindName]:
    """The operation's JSON name ("create", ...) and the kind of object it changes."""
    shape = (type(op), type(op.record))
    described = _DESCRIBED.get(shape)
    if described is None:
        described = _DESCRIBED[shape] = (operation_type(op), kind_of(op).name)
    return described


def texts_of(attributes: Sequence[str]) -> Callable[[Operation], tuple[str, ...]]:
    """A getter of these attributes (dotted: "record.name") of an operation, as a tuple even of one."""
    if len(attributes) != 1:
        getter: Callable[[Operation], tuple[str, ...]] = operator.attrgetter(*attributes)
        return getter
    one: Callable[[Operation], str] = operator.attrgetter(attributes[0])
    return lambda op: (one(op),)


def values_of(record: Record) -> tuple[str, ...]:
    """The record's field values in its kind's `fields` order."""
    return _GETTERS[type(record)](record)


def record_of(op: Operation) -> Record | None:
    """The record a report shows of an operation. A deletion of a kind that cannot be deactivated shows
    none, only the references its record holds (a group's parent): what it sends is its sync key."""
    record = op.record
    return None if isinstance(op, Delete) and not _SHOWN_DELETED[type(record)] else record


def op_keys(op: Operation) -> dict[str, str]:
    """The keys naming an operation's object: syncKey, plus oldId/newId for an identifier change."""
    new_id: str | None = getattr(op, "new_id", None)
    if new_id is not None:
        old_id: str = getattr(op, "old_id", "")
        return {"syncKey": new_id, "oldId": old_id, "newId": new_id}
    return {"syncKey": op.sync_key}


def held_rows(held: Iterable[Held]) -> tuple[HeldRow, ...]:
    """The operations a run holds back (`--only`, a pause window, a safety limit) as the reports show them."""
    rows = []
    for h in held:
        name, kind = describe(h.operation)
        label = PERSON_LABELS[name] if kind == PERSON.name else OP_LABELS[name, kind]
        rows.append(HeldRow(label, name, kind, op_keys(h.operation)["syncKey"], h.reason, h.cause))
    return tuple(rows)


def changes_of(op: Operation) -> tuple[FieldChange, ...]:
    """The field changes of an update or identifier change (none for the others)."""
    changes: tuple[FieldChange, ...] = getattr(op, "changes", ())
    return changes


def identity_of(op: Operation) -> str:
    """The identity value of an operation ("" for a kind without identity: memberships)."""
    identity: str = getattr(op, "identity", "") if _IDENTIFIED[type(op.record)] else ""
    return identity


def reason_of(op: Operation) -> str:
    """Why a deletion or deactivation is planned ("" for the others)."""
    reason: str = getattr(op, "reason", "")
    return reason


def shown_change(change: FieldChange) -> FieldChange:
    """`change` as a report shows it: a person's children one ", " apart (kid-1, kid-2)."""
    if change.field != PERSON.links:
        return change
    return FieldChange(
        field=change.field,
        old=", ".join(split_children(change.old)),
        new=", ".join(split_children(change.new)),
    )


def shown_changes(op: Operation) -> tuple[FieldChange, ...]:
    """The field changes of `op` as a report shows them (`shown_change`)."""
    return tuple(map(shown_change, changes_of(op)))


def change_text(change: FieldChange) -> str:
    shown = shown_change(change)
    old = shown.old if shown.old else "(empty)"
    new = shown.new if shown.new else "(empty)"
    text = f"{FIELD_LABELS.get(change.field, change.field)}: {old} → {new}"
    if shown is change:
        return text
    before, after = set(split_children(change.old)), set(split_children(change.new))
    moves = [*(f"+{key}" for key in sorted(after - before)), *(f"-{key}" for key in sorted(before - after))]
    return f"{text} ({' '.join(moves)})"


def changes_text(changes: Iterable[FieldChange]) -> str:
    return "; ".join(change_text(c) for c in changes)


def status_text(status: Status | None) -> str:
    if status is None:
        return ""
    return f"{status.code_major}/{status.severity}"


def code_minor_text(status: Status | None) -> str:
    if status is None:
        return ""
    return "; ".join(f"{name}={value}" for name, value in status.code_minor)


def _deletion_key(op: Operation) -> tuple[KindName, str] | None:
    """Which deletion candidate an operation of a run carries out (a deactivation counts), if any."""
    name, kind = describe(op)
    return (kind, op.sync_key) if name in ("delete", "deactivate") else None


def unsent_deletions(result: RunResult, held: Iterable[HeldRow] = ()) -> list[DeleteOperation]:
    """The plan's deletion candidates the run did not send: all under `--deletes off`, persons and
    groups under `deactivate` (a deactivated membership was sent), none under `delete`; less those
    `held` (`--only`, a pause window, a safety limit), listed as held instead."""
    if not result.plan.deletions:  # (a first night: no need to look at 10^5-10^6 results)
        return []
    sent: set[tuple[str, str] | None] = {_deletion_key(r.operation) for r in result.results}
    sent |= {(row.object, row.sync_key) for row in held if row.op in ("delete", "deactivate")}
    return [d for d in result.plan.deletions if _deletion_key(d) not in sent]
