"""One operation of any kind sent to IMS ES: its create, update, identifier change, deletion or
deactivation, written once over `sync.models.kinds` (IMS ES's operation names come from the Kind, the
client methods from `sync.send.calls`). What a kind does differently its Kind says
(`follows_lost_renames`, `recreates_vanished`).

Sends through `sync.send.attempts` and `sync.send.resolve`; imports no transport of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from sync.models import (
    ChangeIdentifier,
    ChangeOperation,
    Create,
    Deactivate,
    Delete,
    Kind,
    Operation,
    Outcome,
    Record,
    Update,
    kind_of,
)
from sync.send.attempts import Sender, Step, is_unknown_answer, one
from sync.send.calls import Calls, KindCalls
from sync.send.resolve import Reader, Resolver
from sync.state.changes import Remove, Rename, Upsert

__all__ = ["Operations", "upsert"]


def upsert(op: ChangeOperation | Deactivate[Record]) -> Upsert:
    """The snapshot change that confirms `op`'s record; persons and groups carry an identity value,
    memberships none."""
    return Upsert(record=op.record, identity=getattr(op, "identity", ""))


class Operations:
    """Sends one operation of any kind, resolving "unknown object" answers by reading."""

    def __init__(self, *, sender: Sender, resolver: Resolver, calls: Calls) -> None:
        self._sender = sender
        self._resolver = resolver
        self.calls = calls

    def send(self, op: Operation) -> Step:
        """Send `op` (and, for an identifier change with field changes, the update after it).

        Raises:
            Aborted: the run halted before its first request.
        """
        kind = kind_of(op)
        calls = self.calls.of(kind)
        if isinstance(op, Create):
            return self._sender.step(
                kind.operation("create"),
                one(op.sync_key),
                lambda mid: calls.create(op, message_id=mid),
                lambda: [upsert(op)],
            )
        if isinstance(op, Update):
            return self._update(kind, calls, op)
        if isinstance(op, ChangeIdentifier):
            return self._change_identifier(kind, calls, op)
        if isinstance(op, Delete):
            return self._resolver.remove(
                kind.operation("delete"),
                op.sync_key,
                lambda mid: calls.delete(op.sync_key, message_id=mid),
                Remove(kind=kind.name, sync_key=op.sync_key),
                self.reader(kind),
            )
        return self._deactivate(kind, calls, op)

    def reader(self, kind: Kind) -> Reader:
        """A journalled read of `kind` by sync key (readPerson, readGroup, ...)."""
        calls = self.calls.of(kind)
        operation = kind.operation("read")
        return lambda key: self._resolver.read(operation, key, lambda mid: calls.read(key, message_id=mid))

    def _update(self, kind: Kind, calls: KindCalls, op: Update[Record] | ChangeIdentifier[Record]) -> Step:
        record, change = op.record, upsert(op)
        verb = kind.update_verb(op.changes)
        operation = kind.operation(verb)
        send = calls.replace if verb == "replace" and calls.replace is not None else calls.update
        step = self._sender.step(
            operation, one(record.sync_key), lambda mid: send(record, message_id=mid), lambda: [change]
        )
        if not (kind.recreates_vanished and is_unknown_answer(step)):
            return step
        # The object vanished from IMS ES, but the roster still wants it: created again.
        return _followed(
            step,
            lambda: self._sender.step(
                kind.operation("create"),
                one(record.sync_key),
                lambda mid: calls.create(op, message_id=mid),
                lambda: [change],
            ),
        )

    def _change_identifier(self, kind: Kind, calls: KindCalls, op: ChangeIdentifier[Record]) -> Step:
        store = self._sender.store
        step = self._resolver.rename(
            kind.change_identifier_operation,
            op.old_id,
            op.new_id,
            lambda source, mid: calls.change_identifier(source, op.new_id, message_id=mid),
            Rename(kind=kind.name, old_id=op.old_id, new_id=op.new_id),
            self.reader(kind),
            lost_targets=(
                (lambda old_id: store.unconfirmed_renames(kind, old_id))
                if kind.follows_lost_renames
                else None
            ),
        )
        # After a confirmed identifier change that also changes fields: the update, attempts added up.
        if step.outcome is not Outcome.CONFIRMED or not op.changes:
            return step
        return _followed(step, lambda: self._update(kind, calls, op))

    def _deactivate(self, kind: Kind, calls: KindCalls, op: Operation) -> Step:
        """An update with active false. "Unknown object": it is gone from IMS ES already (by hand, or
        with its group), so nothing is left to deactivate; a read confirms, and the snapshot lets it
        go instead of creating it again only to mark it inactive."""
        if not (kind.deactivatable and isinstance(op, Deactivate)):
            raise TypeError(f"{type(op).__name__} is no operation the executor sends")
        return self._resolver.remove(
            kind.operation("update"),
            op.sync_key,
            lambda mid: calls.update(op.record, message_id=mid),
            upsert(op),
            self.reader(kind),
            resolved=Remove(kind=kind.name, sync_key=op.sync_key),
        )


def _followed(step: Step, follow: Callable[[], Step]) -> Step:
    """The step `follow()` sends after `step`, with the attempts of both."""
    after = follow()
    after.attempts += step.attempts
    return after
