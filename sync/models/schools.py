"""Which school(s) each object of a plan belongs to: the value the per-school reports and limits read,
with the names and classes those reports show of the people and groups the plan names.

A school is a group of type "School". The attribution itself is computed by `sync.plan.schools`; this
room only holds it and answers questions about it. Pure data: imports nothing but the value types
beside it (no I/O, no pandas).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from sync.models.kinds import kind_of
from sync.models.operations import ChangeIdentifier, Operation

if TYPE_CHECKING:  # plans.py holds a Schools
    from sync.models.plans import Reject

__all__ = ["NO_SCHOOL", "Schools", "SortedPairs"]

#: What reports call the objects that belong to no school.
NO_SCHOOL: Final = "No school"

_NONE: Final[tuple[str, ...]] = ()


class SortedPairs(Mapping[str, tuple[str, ...]]):
    """key -> the values beside it, over two lists sorted by key (then value), a key repeated for each of
    its values: looked up by bisection, so 10^5 keys cost two lists, not a dict of tuples."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: Sequence[str] = (), values: Sequence[str] = ()) -> None:
        self._keys = keys
        self._values = values

    def __getitem__(self, key: str) -> tuple[str, ...]:
        low = bisect.bisect_left(self._keys, key)
        high = bisect.bisect_right(self._keys, key, low)
        if low == high:
            raise KeyError(key)
        return tuple(self._values[low:high])

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self._keys))

    def __len__(self) -> int:
        return len(set(self._keys))


@dataclass(frozen=True, slots=True, kw_only=True)
class Schools:
    """The school groups of a plan and the schools of its objects (empty for a plan without groups).

    Args:
        names: each school's sync key -> its display name (the group's name, or its key when unnamed).
        objects: kind name -> sync key -> the sorted school keys the object belongs to; an object of
            no school is left out.
        rejects: (file, row) -> the sorted school keys of a rejected roster row whose school can be told.
        people: the display name (given and family name) of each person the plan names, directly or
            through a membership (a 1-tuple: `SortedPairs` holds them).
        groups: every group's name, by sync key.
        classes: each planned person's groups other than schools (their classes), sorted by key, as
            the roster and the snapshot hold them.

    Its repr counts the entries instead of listing them (they can be 10^6).
    """

    names: Mapping[str, str] = field(default_factory=dict)
    objects: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    rejects: Mapping[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    people: Mapping[str, tuple[str, ...]] = field(default_factory=SortedPairs)
    groups: Mapping[str, str] = field(default_factory=dict)
    classes: Mapping[str, tuple[str, ...]] = field(default_factory=SortedPairs)

    def __repr__(self) -> str:
        counted = sum(map(len, self.objects.values()))
        return f"Schools({len(self.names)} schools, {counted} objects, {len(self.rejects)} rejects)"

    def __bool__(self) -> bool:
        """True when the plan has at least one school."""
        return bool(self.names)

    def keys(self) -> tuple[str, ...]:
        """Every school's sync key, sorted."""
        return tuple(sorted(self.names))

    def name(self, key: str) -> str:
        """The display name of the school `key` (the key itself when it is no school of the plan)."""
        return self.names.get(key, key)

    def of(self, kind_name: str, sync_key: str) -> tuple[str, ...]:
        """The sorted school keys of the `kind_name` ("person", "group", "membership") `sync_key`."""
        return self.objects.get(kind_name, {}).get(sync_key, _NONE)

    def of_operation(self, op: Operation) -> tuple[str, ...]:
        """The schools of an operation's record; for an identifier change those of the old and new key."""
        kind = kind_of(op).name
        found = self.of(kind, op.sync_key)
        if isinstance(op, ChangeIdentifier):
            old = self.of(kind, op.old_id)
            if old and old != found:
                return tuple(sorted({*found, *old}))
        return found

    def person_name(self, key: str) -> str:
        """A person's given and family name ("" when the plan does not name them)."""
        return self.people.get(key, ("",))[0]

    def group_name(self, key: str) -> str:
        """A group's name (its key when unknown)."""
        return self.groups.get(key, key)

    def classes_of(self, person_key: str) -> tuple[str, ...]:
        """The names of a planned person's classes, sorted."""
        return tuple(sorted(self.group_name(key) for key in self.classes.get(person_key, ())))

    def of_reject(self, reject: Reject) -> tuple[str, ...]:
        """The sorted school keys of a rejected row, when its school can be told (else none)."""
        return self.rejects.get((reject.file, reject.row), _NONE)
