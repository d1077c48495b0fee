"""A plan's fingerprint: one SHA-256 over what the plan was made from and what it holds, so that a run
sends exactly the plan that was reviewed (`run --plan`) or the breaches that were approved (`--approve`).

The parts, in this order, each one `name<TAB>value` line of the hashed text:

1. `roster:<file name>`: the SHA-256 of each roster file's bytes, sorted by file name;
2. `mapping`: the SHA-256 of the mapping's files (its own, a built-in's too, and those a set mapping
   names: each file's name and SHA-256, one line each);
3. `snapshot`: the SHA-256 of the snapshot's state (the generation counters and nonces that every
   change to the persons and memberships tables advances, and the groups' content); "" without state;
4. `setting:<name>`: each setting that shapes what a run sends (`deletes`, `max_change_share`,
   `max_change_count`, `only`, `limits`: the `--limit` and `[limits]` rules), as its value;
5. `operations`: the SHA-256 of the plan's operations and deletion candidates (each one's type and
   every field but a password, `sync.plan.operation_bytes`).

Pure: imports no I/O, and nothing heavy (the CLI imports it at start-up); the CLI gathers the bytes
and values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sync.models.records import collector_paused

__all__ = ["Fingerprint", "differences", "digest", "fingerprint"]


def digest(data: bytes) -> str:
    """The SHA-256 of `data`, in hex."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Fingerprint:
    """The fingerprint (`value`) and the parts it was hashed from, in order (name -> value)."""

    value: str
    parts: dict[str, str]


def fingerprint(
    *,
    roster_files: Mapping[str, str],
    mapping: bytes,
    snapshot: bytes | None,
    settings: Mapping[str, object],
    operations: Iterable[bytes],
) -> Fingerprint:
    """The fingerprint of a plan: `roster_files` (each file's SHA-256 by name), the `mapping`'s files (as
    the CLI lists them), the `snapshot`'s state (None: no state yet), the `settings` and the `operations`
    (their bytes, `operation_bytes`: hashed as they come)."""
    parts = {f"roster:{name}": roster_files[name] for name in sorted(roster_files)}
    parts["mapping"] = digest(mapping)
    parts["snapshot"] = "" if snapshot is None else digest(snapshot)
    parts |= {f"setting:{name}": str(value) for name, value in settings.items()}
    with collector_paused():  # 10^5-10^6 operations' bytes, none in a cycle
        parts["operations"] = _stream_digest(operations)
    text = "".join(f"{name}\t{value}\n" for name, value in parts.items())
    return Fingerprint(value=digest(text.encode()), parts=parts)


def _stream_digest(pieces: Iterable[bytes]) -> str:
    """The SHA-256 of `pieces` one after the other, hashed as they come (never all in memory)."""
    h = hashlib.sha256()
    for piece in pieces:
        h.update(piece)
    return h.hexdigest()


def differences(reviewed: Mapping[str, object], now: Fingerprint) -> list[str]:
    """What differs between a reviewed plan's parts and `now`'s, in plain words (empty: none)."""
    said: list[str] = []
    for name in sorted(set(reviewed) | set(now.parts), key=_order):
        before, after = reviewed.get(name), now.parts.get(name)
        if before == after:
            continue
        kind, _, what = name.partition(":")
        if kind == "roster":
            state = "is new" if before is None else "is gone" if after is None else "changed"
            said.append(f"roster file {what} {state}")
        elif kind == "setting":
            said.append(f"setting {what} was {before}, is now {after}")
        elif name == "snapshot":
            said.append("the snapshot moved on (a run or adopt changed it since the plan)")
        elif name == "mapping":
            said.append("the mapping changed")
        elif name == "operations":
            said.append("the planned operations differ")
    return said


def _order(name: str) -> tuple[int, str]:
    kinds = ("roster", "mapping", "snapshot", "setting", "operations")
    kind = name.partition(":")[0]
    return (kinds.index(kind) if kind in kinds else len(kinds), name)
