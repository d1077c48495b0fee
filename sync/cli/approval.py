"""Approved plans: gather what a plan's fingerprint hashes (roster files, mapping, snapshot state,
settings, operations), hold a run to the plan that was reviewed (`run --plan`) and to the breaches
that were approved (`--approve`).

Reads the roster and mapping files and a reviewed plan file; the hash itself is
`sync.plan.fingerprint` (pure). Imports the state store and pandas only inside functions.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import click

from sync.cli.output import EXIT_SAFETY, EXIT_USAGE, fail, notice
from sync.models.blocks import Ops
from sync.plan.fingerprint import Fingerprint, differences, digest, fingerprint

__all__ = [
    "Digests",
    "approve_opt",
    "check_approved",
    "check_reviewed",
    "of_plan",
    "plan_file_opt",
    "snapshot_state",
]

#: Neither is a config file key: each names one reviewed plan, on one command line.
plan_file_opt = click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A plan reviewed as JSON (`plan --format json -o PLAN.json`): send only when the plan made now "
    "has the same fingerprint (else send nothing, exit 2, say what differs).",
)
approve_opt = click.option(
    "--approve",
    metavar="FINGERPRINT",
    default=None,
    help="Send a plan that breaches a safety limit when its fingerprint (printed by `plan` and by a "
    "run that held operations at a limit) is FINGERPRINT; exactly that plan's breaches are accepted "
    "(else exit 3).",
)


def snapshot_state(store: Any, snapshots: Any) -> bytes:
    """The snapshot's state, as the fingerprint hashes it: the generation stamps of the persons and
    memberships tables (every change to them advances them) and the groups' content (no counter)."""
    import pandas as pd  # noqa: PLC0415

    stamps = "\n".join(store.generation()).encode()
    groups = pd.util.hash_pandas_object(snapshots.groups, index=False).to_numpy().tobytes()
    return stamps + b"\n" + groups


class Digests:
    """The SHA-256 of a roster's files (the file, or a folder's CSV files), hashed by a thread of its own
    while the roster is read (hashlib lets go of the interpreter: the hash of a 10^6-row roster, about
    0.2 s, costs no wall time on a second CPU). A file not hashed ahead is hashed when asked."""

    def __init__(self, roster: Path) -> None:
        files = sorted(roster.glob("*.csv")) if roster.is_dir() else [roster]
        self._ahead: dict[Path, Future[str]] = {file.resolve(): Future() for file in files if file.is_file()}
        threading.Thread(target=self._hash, name="roster-digests", daemon=True).start()

    def _hash(self) -> None:
        for file, future in self._ahead.items():
            try:
                future.set_result(_file_digest(file))
            except Exception as exc:  # noqa: BLE001 - raised where the hash is asked for (`of`)
                future.set_exception(exc)

    def of(self, file: Path) -> str:
        """The SHA-256 of `file`, in hex."""
        ahead = self._ahead.get(file.resolve())
        return ahead.result() if ahead is not None else _file_digest(file)


def of_plan(
    roster: Any,
    mapping: str,
    snapshot: bytes | None,
    the_plan: Any,
    *,
    deletes: str,
    max_share: float,
    max_count: int,
    only: frozenset[str] | None,
    limits: str = "default",
    digests: Digests | None = None,
) -> Fingerprint:
    """The fingerprint of `the_plan`, made from `roster` (a RosterSet) through `mapping` against a
    snapshot in state `snapshot` (None: no state yet), with these settings; the roster files' hashes
    from `digests` when given (hashed while the roster was read)."""
    from sync.plan.operation_bytes import operation_bytes  # noqa: PLC0415 - numpy and pyarrow

    digest_of = digests.of if digests is not None else _file_digest
    files = {
        Path(file).name: digest_of(Path(file))
        for part in (roster.persons, roster.groups, roster.memberships)
        if part is not None
        for file in part.rows
    }
    settings = {
        "deletes": deletes,
        "max_change_share": f"{max_share:g}",
        "max_change_count": max_count,
        "only": ",".join(sorted(only)) if only else "all",
        "limits": limits,
    }
    return fingerprint(
        roster_files=files,
        mapping=_mapping_bytes(mapping),
        snapshot=snapshot,
        settings=settings,
        # Each operation's type and every field (a password left out).
        operations=operation_bytes(Ops(the_plan.operations, the_plan.deletions)),
    )


def _mapping_bytes(mapping: str) -> bytes:
    """What the fingerprint hashes of a mapping: each file's name and SHA-256, the mapping's own file
    (a built-in's too) and, for a set mapping, each mapping it names, in the set's order."""
    from sync.read.mapping import SetMapping, load_any_mapping  # noqa: PLC0415

    loaded = load_any_mapping(mapping)
    sources = [loaded.source]
    if isinstance(loaded, SetMapping):
        sources += [entry.mapping.source for entry in loaded.entries]
    return "".join(
        f"{Path(source).name}\t{digest(Path(source).read_bytes())}\n" for source in dict.fromkeys(sources)
    ).encode()


def check_reviewed(plan_file: Path, now: Fingerprint) -> None:
    """Refuse (exit 2, nothing sent) unless the plan made now is the one reviewed in `plan_file`."""
    try:
        reviewed = json.loads(plan_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(EXIT_USAGE, f"--plan {plan_file}: not a JSON plan ({exc}); nothing was sent")
    if not isinstance(reviewed, dict) or not isinstance(reviewed.get("fingerprint"), str):
        fail(
            EXIT_USAGE,
            f"--plan {plan_file}: no fingerprint in it; write the plan with `ims-sync plan --format json` "
            "and review it; nothing was sent",
        )
    if reviewed["fingerprint"] == now.value:
        notice("plan_matches", f"the plan matches the reviewed {plan_file} (fingerprint {now.value})")
        return
    parts = reviewed.get("fingerprintParts")
    said = differences(parts if isinstance(parts, dict) else {}, now) or ["the plan differs"]
    fail(
        EXIT_USAGE,
        f"--plan {plan_file}: the plan made now is not the one reviewed (fingerprint {now.value}, "
        f"reviewed {reviewed['fingerprint']}): {'; '.join(said)}; nothing was sent. Review the plan "
        "again with `ims-sync plan --format json`",
    )


def check_approved(approve: str | None, now: Fingerprint, breaches: Sequence[Any]) -> bool:
    """True when `--approve` approves this plan's `breaches` (none: nothing to approve); exit 3 when it
    names another plan; False without `--approve` (the limits then hold what breaches them)."""
    if approve is None:
        return not breaches
    if approve.strip().lower() != now.value:
        fail(
            EXIT_SAFETY,
            f"--approve {approve} is not this plan's fingerprint {now.value}: the plan changed since it "
            "was reviewed; nothing was sent. Review it again with `ims-sync plan`",
        )
    if breaches:
        notice("plan_approved", f"safety limits breached, approved by --approve {now.value}: sending")
    return True


def _file_digest(path: Path) -> str:
    """A file's SHA-256, read in chunks (a roster of 10^6 people is never held twice in memory)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
