"""`verify --repair`: each missing or changed object recorded in the snapshot, one transaction per
object, stamped with the journalled read that saw the drift, so that the next plan puts it right.

A missing object leaves the snapshot (the next plan creates it; its memberships go with it, as IMS ES
deletes them with it); a changed one takes IMS ES's values (the next plan updates exactly the fields
the roster wants otherwise). An extra one is only reported: it is never deleted by a repair.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from sync.models import KINDS
from sync.models.drift import Drift, RepairedDrift
from sync.state.changes import Remove, SnapshotChange, Upsert
from sync.state.store import StateStore
from sync.verify.check import held_values

__all__ = ["repair"]


def repair(
    store: StateStore,
    rows: tuple[Drift, ...],
    snapshots: Mapping[str, pd.DataFrame],
    seen: Mapping[tuple[str, str], str],
) -> int:
    """Record the missing and changed objects of `rows`; how many were recorded.

    Args:
        store: the state, opened with the run lock.
        rows: what the verify found.
        snapshots: the snapshot's frames by kind name, as the verify compared them.
        seen: the messageIdentifier of the read that saw each (kind, sync key).
    """
    recorded = 0
    for row in rows:
        if row.drift == "extra":
            continue
        kind = next(k for k in KINDS if k.name == row.kind)
        change: SnapshotChange
        if row.drift == "missing":
            change = Remove(kind=kind.name, sync_key=row.sync_key)
        else:
            frame = snapshots[kind.name]
            identity = str(frame.at[row.sync_key, "identity"]) if kind.identity else ""
            record = kind.record.from_values(row.sync_key, held_values(row, frame))
            change = Upsert(record=record, identity=identity)
        mid = seen[row.kind, row.sync_key]
        store.record_repair(
            RepairedDrift(kind=row.kind, sync_key=row.sync_key, drift=row.drift, message_identifier=mid),
            change,
        )
        recorded += 1
    return recorded
