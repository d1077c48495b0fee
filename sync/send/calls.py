"""Each kind's IMS ES client methods, bound once in one table: the clients name them after the kind
(create_person, create_group, create_memberships, ...); the executor calls them the same way for every
kind, by what they do. A new kind is a new row here.

Only binds: sends nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sync.ims.exchange import MassReply
from sync.models import Create, Delete, Kind, Operation, Status, kind_of
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
from sync.send.services import GroupService, MembershipService, PersonService

__all__ = ["Calls", "KindCalls"]


class _Send(Protocol):
    def __call__(self, value: Any, /, *, message_id: str | None = None) -> Status: ...


class _SendMany(Protocol):
    def __call__(self, values: Any, /, *, message_id: str | None = None) -> MassReply: ...


class _Read(Protocol):
    def __call__(self, sync_key: str, /, *, message_id: str | None = None) -> tuple[Status, Any]: ...


class _Rename(Protocol):
    def __call__(self, old_id: str, new_id: str, /, *, message_id: str | None = None) -> Status: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class KindCalls:
    """One kind's IMS ES calls; each takes `message_id=`."""

    create: _Send  # of a create operation
    create_many: _SendMany  # of create operations
    update: _Send  # of a record
    read: _Read  # by sync key
    delete: _Send  # by sync key
    change_identifier: _Rename
    replace: _Send | None = None  # persons only: what `Kind.update_verb` says "replace" for
    delete_many: _SendMany | None = None  # memberships only: IMS ES has no mass delete of persons or groups


def _created(method: _Send) -> _Send:
    """`method` (create_group, ...) given a create operation: its record."""
    return lambda op, *, message_id=None: method(op.record, message_id=message_id)


def _all_created(method: _SendMany) -> _SendMany:
    """`method` (create_groups, ...) given create operations: their records."""
    return lambda ops, *, message_id=None: method([op.record for op in ops], message_id=message_id)


def _named_calls(client: Any, kind: Kind, **overrides: Any) -> KindCalls:
    """The calls a client names after `kind` (create_group, create_groups, update_group, read_group,
    delete_group, change_group_identifier), with what a kind does otherwise in `overrides`."""
    name = kind.name
    calls: dict[str, Any] = {
        "create": _created(getattr(client, f"create_{name}")),
        "create_many": _all_created(getattr(client, f"create_{kind.plural}")),
        "update": getattr(client, f"update_{name}"),
        "read": getattr(client, f"read_{name}"),
        "delete": getattr(client, f"delete_{name}"),
        "change_identifier": getattr(client, f"change_{name}_identifier"),
    }
    return KindCalls(**(calls | overrides))


def _person_calls(pms: PersonService) -> KindCalls:
    # Persons are created with their initial password ("" = none), carried by the operation.
    return _named_calls(
        pms,
        PERSON,
        create=lambda op, *, message_id=None: pms.create_person(
            op.record, password=op.password, message_id=message_id
        ),
        create_many=lambda ops, *, message_id=None: pms.create_persons(
            [(op.record, op.password) for op in ops], message_id=message_id
        ),
        replace=pms.replace_person,
    )


#: How each kind's calls are bound to its service's client, by kind name.
_BINDINGS: Final[dict[str, Callable[[Any], KindCalls]]] = {
    "person": _person_calls,
    "group": lambda gms: _named_calls(gms, GROUP),
    "membership": lambda mms: _named_calls(mms, MEMBERSHIP, delete_many=mms.delete_memberships),
}


class Calls:
    """The calls of every kind whose client the executor was given."""

    def __init__(
        self,
        *,
        persons: PersonService,
        groups: GroupService | None = None,
        memberships: MembershipService | None = None,
    ) -> None:
        clients: dict[str, object] = {"person": persons, "group": groups, "membership": memberships}
        self._bound = {
            name: bind(clients[name]) for name, bind in _BINDINGS.items() if clients[name] is not None
        }

    def of(self, kind: Kind) -> KindCalls:
        """The calls of `kind`.

        Raises:
            ValueError: the executor was not given `kind`'s client.
        """
        calls = self._bound.get(kind.name)
        if calls is None:
            raise ValueError(
                f"the operations include {kind.plural}, but the executor has no {kind.service.upper()} client"
            )
        return calls

    def mass_operation(self, op: Operation) -> str:
        """The mass request `op` may travel in (createPersons, ..., deleteMemberships), or "" if none."""
        kind = kind_of(op)
        if isinstance(op, Create):
            return kind.mass_operation("create")
        if isinstance(op, Delete) and self.of(kind).delete_many is not None:
            return kind.mass_operation("delete")
        return ""
