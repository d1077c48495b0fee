"""Comparing the snapshot with what IMS ES holds, field by field, and choosing a sample.

Written once over `Kind.fields`: a field a kind gains is compared without an edit here. Pure: imports
the models only (no I/O, no pandas).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeAlias

from sync.models import Kind
from sync.models.drift import Drift, DriftKind, FieldDrift

__all__ = ["Values", "by_kind", "compare", "differing", "next_run", "sample"]

#: One object's canonical fields (without the sync key): field -> value, "" for absent.
Values: TypeAlias = Mapping[str, str]

_NOT_IN_ROSTER: Final = "none: not in the roster"


def differing(kind: Kind, snapshot: Values, held: Values) -> tuple[FieldDrift, ...]:
    """The fields of `kind` whose values differ, in `kind.fields` order."""
    return tuple(
        FieldDrift(field=field, snapshot=snapshot.get(field, ""), itslearning=held.get(field, ""))
        for field in kind.fields
        if snapshot.get(field, "") != held.get(field, "")
    )


def compare(
    kind: Kind,
    snapshot: Mapping[str, Values],
    held: Mapping[str, Values | None],
    extras: Mapping[str, Values] | None = None,
) -> list[Drift]:
    """The drift of the objects of `kind` that were read, sorted by sync key.

    Args:
        kind: what was read.
        snapshot: the snapshot's values of (at least) every key in `held`.
        held: for each sync key read, what IMS ES holds, or None: IMS ES does not know it (`missing`).
        extras: objects IMS ES holds that the snapshot does not know (`extra`).
    """
    rows: list[Drift] = []
    for key in sorted(held):
        found = held[key]
        if found is None:
            rows.append(Drift(kind=kind.name, sync_key=key, drift="missing"))
        elif fields := differing(kind, snapshot[key], found):
            rows.append(Drift(kind=kind.name, sync_key=key, drift="changed", fields=fields))
    rows.extend(
        Drift(kind=kind.name, sync_key=key, drift="extra")
        for key in sorted(extras or {})
        if key not in snapshot
    )
    return rows


def next_run(
    kind: Kind, drift: DriftKind, roster: Values | None, held: Values | None, *, repaired: bool
) -> str:
    """What the next run does about one drifted object, given the roster's values (None: not in it).

    A missing or changed object is put right only once `--repair` recorded it; an extra one is never
    deleted (it is not in the snapshot): a run creates it when the roster has it (IMS ES then updates
    the one it holds), else it stays until the administrator decides.
    """
    once = "" if repaired else " once repaired (verify --repair)"
    if drift == "extra":
        if roster is None:
            return "none: not in the snapshot, never deleted by a run; delete it by hand if unwanted"
        return "create (IMS ES updates the one it holds)"
    if roster is None:
        return _NOT_IN_ROSTER
    if drift == "missing":
        return f"create{once}"
    fields = [f.field for f in differing(kind, roster, held or {})]
    if not fields:
        return "none: IMS ES holds the roster's values" + ("" if repaired else "; repair to record them")
    return f"update {', '.join(fields)}{once}"


def sample(keys: Sequence[tuple[str, str]], size: int, seed: int) -> list[tuple[str, str]]:
    """`size` of `keys` ((kind, sync key) pairs) chosen at random with `seed`, in their given order.

    The same keys, size and seed choose the same sample: a check can be repeated.
    """
    if size >= len(keys):
        return list(keys)
    chosen = set(random.Random(seed).sample(range(len(keys)), size))  # noqa: S311 - not for secrets
    return [key for i, key in enumerate(keys) if i in chosen]


def by_kind(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(kind, sync key) pairs grouped by kind name, in their order."""
    grouped: dict[str, list[str]] = {}
    for kind, key in pairs:
        grouped.setdefault(kind, []).append(key)
    return grouped
