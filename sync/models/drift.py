"""Drift: where what IMS ES holds differs from the snapshot, as `verify` finds it and reports it.

Pure data: imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

__all__ = ["DRIFT_KINDS", "Drift", "DriftKind", "FieldDrift", "RepairedDrift"]

#: `missing`: in the snapshot, not in IMS ES; `changed`: fields differ; `extra`: in IMS ES only.
DriftKind: TypeAlias = Literal["missing", "changed", "extra"]
DRIFT_KINDS: Final[tuple[DriftKind, ...]] = get_args(DriftKind)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldDrift:
    """One field whose value in IMS ES differs from the snapshot's."""

    field: str
    snapshot: str
    itslearning: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    """One object that drifted: its kind ("person", "group", "membership"), sync key and how.

    `fields` only for `changed`; `next_run` says what the next run does about it (reports only).
    """

    kind: str
    sync_key: str
    drift: DriftKind
    fields: tuple[FieldDrift, ...] = ()
    next_run: str = ""

    def as_dict(self) -> dict[str, object]:
        """The JSON row: exactly `kind`, `sync_key`, `drift`, and `fields` for a changed object."""
        row: dict[str, object] = {"kind": self.kind, "sync_key": self.sync_key, "drift": self.drift}
        if self.drift == "changed":
            row["fields"] = [
                {"field": f.field, "snapshot": f.snapshot, "itslearning": f.itslearning} for f in self.fields
            ]
        return row


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairedDrift:
    """What `verify --repair` recorded of one object, as the next plan shows it beside its operation."""

    kind: str
    sync_key: str
    drift: DriftKind
    message_identifier: str  # the journalled read that saw it
