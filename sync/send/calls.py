"""Each kind's IMS ES client methods, bound once in one table: the clients name them per kind
(create_person, create_group, create_membership, ...); the executor calls them the same way for every
kind, by what they do. A new kind is a new row here.

Only binds: sends nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sync.ims.exchange import MassReply
from sync.models import Create, Delete, Kind, Operation, Status, kind_of
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
    replace: _Send | None = None  # persons only: updatePerson merges, so a cleared field needs replacePerson
    delete_many: _SendMany | None = None  # memberships only: IMS ES has no mass delete of persons or groups


def _created(method: _Send) -> _Send:
    """`method` (create_group, ...) given a create operation: its record."""
    return lambda op, *, message_id=None: method(op.record, message_id=message_id)


def _all_created(method: _SendMany) -> _SendMany:
    """`method` (create_groups, ...) given create operations: their records."""
    return lambda ops, *, message_id=None: method([op.record for op in ops], message_id=message_id)


def _person_calls(pms: PersonService) -> KindCalls:
    # Persons are created with their initial password ("" = none), carried by the operation.
    return KindCalls(
        create=lambda op, *, message_id=None: pms.create_person(
            op.record, password=op.password, message_id=message_id
        ),
        create_many=lambda ops, *, message_id=None: pms.create_persons(
            [(op.record, op.password) for op in ops], message_id=message_id
        ),
        update=pms.update_person,
        replace=pms.replace_person,
        read=pms.read_person,
        delete=pms.delete_person,
        change_identifier=pms.change_person_identifier,
    )


def _group_calls(gms: GroupService) -> KindCalls:
    return KindCalls(
        create=_created(gms.create_group),
        create_many=_all_created(gms.create_groups),
        update=gms.update_group,
        read=gms.read_group,
        delete=gms.delete_group,
        change_identifier=gms.change_group_identifier,
    )


def _membership_calls(mms: MembershipService) -> KindCalls:
    return KindCalls(
        create=_created(mms.create_membership),
        create_many=_all_created(mms.create_memberships),
        update=mms.update_membership,
        read=mms.read_membership,
        delete=mms.delete_membership,
        change_identifier=mms.change_membership_identifier,
        delete_many=mms.delete_memberships,
    )


#: How each kind's calls are bound to its service's client, by kind name.
_BINDINGS: Final[dict[str, Callable[[Any], KindCalls]]] = {
    "person": _person_calls,
    "group": _group_calls,
    "membership": _membership_calls,
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
