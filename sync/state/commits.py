"""Group commits: journal writes that arrive together share one SQLite transaction.

The executor's workers write to the journal at the same moments (their answers arrive together, and so
do the requests they send next). Each write goes through `GroupCommit.write`, which returns once the
write is committed, so a request is still journalled as sent before it goes out and an answer, with the
snapshot changes it confirms, before its worker goes on. A writer that finds no commit under way leads:
it takes every write waiting at that moment and commits them in one transaction, in the order they
arrived; writes arriving meanwhile wait for the next group, led by one of their writers. A lone write
costs what it did before (no thread, no wait); a group costs one transaction instead of one per write.

Each write of a group runs in its own savepoint: a write that refuses (StateError: an unknown request, a
rename onto an existing key, ...) is undone alone and raises in its own writer; the others commit. A
failure of the database itself (disk full, database gone, a failing COMMIT) fails the whole group:
none of its writes is written, and every writer of it gets the StateError.

Knows nothing of what is written (each write is a function of the connection) nor of how a transaction
is opened (the store's `transaction` is given); imports no package of the engine but `sync.errors`.
"""

from __future__ import annotations

import contextlib
import copy
import sqlite3
import threading
from collections.abc import Callable
from typing import Final

from sync.errors import StateError

__all__ = ["GroupCommit", "Transaction", "Write"]

#: One journal write: statements on the connection, inside the group's transaction; never commits.
Write = Callable[[sqlite3.Connection], None]
#: Opens one write transaction named `what` (committed when the block ends, rolled back when it raises).
Transaction = Callable[[str], contextlib.AbstractContextManager[sqlite3.Connection]]

_SAVEPOINT: Final = "journal_write"


class _Ticket:
    """One write waiting for its group's commit, and how that ended."""

    __slots__ = ("done", "error", "what", "write")

    def __init__(self, what: str, write: Write) -> None:
        self.what = what
        self.write = write
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """Commits the writes of concurrent writers in groups, one transaction each (thread-safe).

    Args:
        transaction: opens the store's write transaction (its errors are StateError).
    """

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction
        self._condition = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._leading = False

    def write(self, what: str, write: Write) -> None:
        """Run `write` in a transaction, maybe with the writes of other threads; return once committed.

        Raises:
            StateError: `write` refused (then it alone was undone), or its group's transaction failed
                (then nothing of the group was written).
        """
        ticket = _Ticket(what, write)
        with self._condition:
            self._waiting.append(ticket)
            while self._leading and not ticket.done:
                self._condition.wait()
            leading = not ticket.done  # no commit under way, and this write not in one that ended
            if leading:
                self._leading = True
                group, self._waiting = self._waiting, []
        if leading:
            try:
                self._commit(group)
            finally:
                with self._condition:
                    self._leading = False
                    self._condition.notify_all()
        if ticket.error is not None:
            raise _own(ticket.error)

    def _commit(self, group: list[_Ticket]) -> None:
        """Apply the group's writes in order, each in a savepoint, and commit them together."""
        what = group[0].what if len(group) == 1 else f"journalling {len(group)} requests and answers"
        try:
            with self._transaction(what) as connection:
                if len(group) == 1:
                    group[0].write(connection)
                else:
                    for ticket in group:
                        _write_alone(connection, ticket)
        except BaseException as exc:
            for ticket in group:  # nothing of the group was written
                ticket.error = ticket.error or exc
            if not isinstance(exc, StateError):
                raise
        finally:
            for ticket in group:
                ticket.done = True


def _write_alone(connection: sqlite3.Connection, ticket: _Ticket) -> None:
    """`ticket`'s write in a savepoint: undone alone when it refuses (StateError), kept otherwise."""
    connection.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        ticket.write(connection)
    except StateError as exc:
        connection.execute(f"ROLLBACK TO {_SAVEPOINT}")
        ticket.error = exc
    connection.execute(f"RELEASE {_SAVEPOINT}")


def _own(error: BaseException) -> StateError:
    """The error to raise in one writer's thread: a copy of the group's StateError (writers of one group
    may share it), or a StateError saying that the leader's transaction failed otherwise (the leader
    raises that error itself)."""
    if not isinstance(error, StateError):
        own = StateError(f"the journal write was not committed: its group's transaction failed ({error!r})")
        own.__cause__ = error
        return own
    copied = copy.copy(error)
    copied.__cause__, copied.__traceback__ = error.__cause__, None
    return copied
