"""The format-neutral page of a plan or a run: header context, summary counts and tables of text
rows, which Markdown and HTML draw each in their own way.

Written once over `sync.models.kinds` (tables per kind, in the order a run sends them) and the
per-kind presentation in `sync.report.looks`. Pure: imports only the models and the report's helpers.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, TypeAlias, TypeVar

from sync.models import (
    ChangeIdentifier,
    ChangeOperation,
    Create,
    Delete,
    DeleteOperation,
    FieldChange,
    Operation,
    OperationResult,
    Outcome,
    Plan,
    Record,
    RunResult,
    Update,
    parent_portal_notice,
    split_children,
)
from sync.models.blocks import Ops, runs
from sync.models.kinds import DELETION_ORDER, KINDS, PERSON, Kind
from sync.plan.safety import LIMIT_REASON
from sync.report.looks import look_of
from sync.report.meta import ReportMeta
from sync.report.ops import (
    FIELD_LABELS,
    OP_LABELS,
    PERSON_LABELS,
    changes_of,
    changes_text,
    code_minor_text,
    describe,
    identity_of,
    op_keys,
    shown_changes,
    status_text,
    unsent_deletions,
    values_of,
)

__all__ = ["Count", "Page", "Section", "plan_page", "run_page", "section"]

_T = TypeVar("_T")
_Op = TypeVar("_Op", bound="Operation")

#: One summary row: label, count, and the colour of its bar in the HTML chart ("" for no bar).
Count: TypeAlias = tuple[str, int, str]

_CREATE, _UPDATE, _CHANGE, _DELETE = "#2f855a", "#2b6cb0", "#805ad5", "#c53030"
_WARN, _REJECT, _MUTED = "#b7791f", "#9b2c2c", "#718096"

_OUTCOME_COLOURS: Final = {
    Outcome.CONFIRMED: _CREATE,
    Outcome.REJECTED: _REJECT,
    Outcome.UNCONFIRMED: _WARN,
    Outcome.SKIPPED: _MUTED,
}

#: A kind's PlanSummary counts (after its `summary_prefix`): label, field, colour of the bar.
_KIND_COUNTS: Final = (
    ("create", "create", _CREATE),
    ("update", "update", _UPDATE),
    ("change identifier", "change_identifier", _CHANGE),
    ("deletion candidates", "delete", _DELETE),
    ("unchanged", "unchanged", ""),
    ("in snapshot", "snapshot_size", ""),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """A table of a report: built once as plain text rows, rendered as Markdown or HTML."""

    anchor: str
    heading: str
    hint: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    total: int
    numeric: frozenset[int] = frozenset()  # columns that sort as numbers
    changes_column: int = -1  # column holding "; "-joined changes, drawn as before → after in HTML
    changes: list[tuple[FieldChange, ...]] = dataclasses.field(default_factory=list)
    outcome_column: int = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """What the Markdown and HTML renderers draw: header, summary counts and the tables."""

    meta: ReportMeta
    counts: Sequence[Count]
    sections: Sequence[Section]
    extra_meta: Sequence[tuple[str, str]] = ()
    banner: str = ""
    summary_label: str = "Kind"


def _section(
    items: Sequence[_T],
    row: Callable[[_T], tuple[str, ...]],
    max_rows: int,
    *,
    anchor: str,
    heading: str,
    hint: str,
    header: tuple[str, ...],
    changes_column: int = -1,
    changes: Callable[[_T], tuple[FieldChange, ...]] = lambda _: (),
    numeric: frozenset[int] = frozenset(),
    outcome_column: int = -1,
) -> Section:
    """One table of `items`, the first `max_rows` of them as rows; `changes` gives the field changes
    that HTML draws as before → after in `changes_column`."""
    shown = items[:max_rows]
    return Section(
        anchor=anchor,
        heading=heading,
        hint=hint,
        header=header,
        rows=[row(item) for item in shown],
        total=len(items),
        numeric=numeric,
        changes_column=changes_column,
        changes=[changes(item) for item in shown] if changes_column >= 0 else [],
        outcome_column=outcome_column,
    )


#: One table of items (the per-school pages build theirs with it too).
section: Final = _section


def _if_rows(table: Section) -> list[Section]:
    """An optional table (held, from drift, links sent): the table when it has rows, else none."""
    return [table] if table.total else []


# --- what a plan deals with ----------------------------------------------------------------------


def _present(plan: Plan, kind: Kind) -> bool:
    """Whether the plan deals with the kind: held in the snapshot, or changed."""
    s = plan.summary
    return any(s.of(kind, field) for _, field, _ in _KIND_COUNTS)


def _kinds_shown(plan: Plan) -> tuple[Kind, ...]:
    """The kinds the plan's tables show, in the order a run sends them: persons always (the reports
    began with them), the others when the plan deals with them."""
    return tuple(kind for kind in KINDS if not look_of(kind).title or _present(plan, kind))


def _mixed(plan: Plan) -> bool:
    """Whether the plan deals with more than persons (its tables then say which kind each row is)."""
    return any(look_of(kind).title for kind in _kinds_shown(plan))


def _plan_counts(plan: Plan) -> list[Count]:
    """The summary: as it always was for persons only; per object kind once groups or memberships show."""
    s = plan.summary
    set_aside = [("Conflicts", s["conflicts"], _WARN), ("Rejected rows", s["rejected"], _REJECT)]
    if not _mixed(plan):
        return [
            *((label.capitalize(), s[field], colour) for label, field, colour in _KIND_COUNTS[:4]),
            *set_aside,
            *((label.capitalize(), s[field], colour) for label, field, colour in _KIND_COUNTS[4:]),
        ]
    # persons first, as in the persons-only summary
    kinds = sorted(_kinds_shown(plan), key=lambda kind: bool(look_of(kind).title))
    return [
        (f"{look_of(kind).noun.capitalize()}: {label}", s.of(kind, field), colour)
        for kind in kinds
        for label, field, colour in _KIND_COUNTS
    ] + set_aside


# --- tables of operations ------------------------------------------------------------------------


def _cell(record: Record, field: str) -> str:
    """A column's text: a record field (a person's children one ", " apart), or a person's full name."""
    if field == "full_name":
        parts = (getattr(record, "given_name", ""), getattr(record, "family_name", ""))
        return " ".join(part for part in parts if part)
    value: str = getattr(record, field)
    return ", ".join(split_children(value)) if field == "children" else value


def _create_columns(kind: Kind, ops: Sequence[ChangeOperation]) -> tuple[str, ...]:
    """The fields a kind's create table shows: every one, but the later ones (`Record.LATER_FIELDS`,
    e.g. a person's address and children) only when a created record has them (a table of persons
    without them looks as it always did)."""
    first = len(kind.fields) - kind.record.LATER_FIELDS
    later = [f for f in kind.fields[first:] if any(getattr(op.record, f) for op in ops)]
    return (*kind.fields[:first], *later)


def _labels(fields: Sequence[str]) -> tuple[str, ...]:
    return tuple("Name" if f == "full_name" else FIELD_LABELS[f] for f in fields)


#: The operations of one kind and type (`_by_type`).
_OfType: TypeAlias = Callable[[Kind, type], Sequence[_Op]]


def _by_type(ops: Sequence[_Op]) -> _OfType[_Op]:
    """The operations of each kind and type, in their order: one walk over them all (a first night's
    block of 10^5-10^6 creates is taken whole, not walked), however many tables show them."""
    buckets: dict[tuple[type, type], list[Sequence[_Op]]] = {}
    for shape, run in runs(ops):
        buckets.setdefault(shape, []).append(run)
    return lambda kind, op_type: Ops(*buckets.get((op_type, kind.record), ()))


def _create_row(kind: Kind, columns: tuple[str, ...], op: ChangeOperation) -> tuple[str, ...]:
    identity = (identity_of(op),) if kind.identity else ()
    values = values_of(op.record) if columns == kind.fields else (_cell(op.record, f) for f in columns)
    return (op.sync_key, *values, *identity)


def _update_row(columns: tuple[str, ...], op: ChangeOperation) -> tuple[str, ...]:
    return (op.sync_key, *(_cell(op.record, f) for f in columns), changes_text(changes_of(op)))


def _rename_row(kind: Kind, columns: tuple[str, ...], op: ChangeOperation) -> tuple[str, ...]:
    keys = op_keys(op)
    identity = (identity_of(op),) if kind.identity else ()
    cells = (_cell(op.record, f) for f in columns)
    return (keys["oldId"], keys["newId"], *cells, *identity, changes_text(changes_of(op)))


def _change_sections(kind: Kind, of_type: _OfType[ChangeOperation], max_rows: int) -> list[Section]:
    """A kind's creates, updates and identifier changes."""
    look = look_of(kind)
    identity = ("Identity",) if kind.identity else ()
    update_header = ("Sync key", *_labels(look.update_columns), "Changes")
    rename_header = ("Old sync key", "New sync key", *_labels(look.rename_columns), *identity, "Changes")
    creates = of_type(kind, Create)
    create_columns = _create_columns(kind, creates[:max_rows])
    return [
        _section(
            creates,
            partial(_create_row, kind, create_columns),
            max_rows,
            anchor=f"{look.anchor}creates",
            heading=f"New {look.noun} (create)",
            hint=look.create_hint,
            header=("Sync key", *(FIELD_LABELS[f] for f in create_columns), *identity),
        ),
        _section(
            of_type(kind, Update),
            partial(_update_row, look.update_columns),
            max_rows,
            anchor=f"{look.anchor}updates",
            heading=f"Changed {look.noun} (update)",
            hint=look.update_hint,
            header=update_header,
            changes_column=len(update_header) - 1,
            changes=shown_changes,
        ),
        _section(
            of_type(kind, ChangeIdentifier),
            partial(_rename_row, kind, look.rename_columns),
            max_rows,
            anchor=f"{look.anchor}identifiers",
            heading=look.heading("identifier changes"),
            hint=look.rename_hint,
            header=rename_header,
            changes_column=len(rename_header) - 1,
            changes=shown_changes,
        ),
    ]


def _deletion_row(kind: Kind, columns: tuple[str, ...], d: DeleteOperation) -> tuple[str, ...]:
    identity = (identity_of(d),) if kind.identity else ()
    return (d.sync_key, *(_cell(d.record, f) for f in columns), *identity, d.reason)


def _deletion_sections(
    deletions: Sequence[DeleteOperation], max_rows: int, *, kinds: Sequence[Kind], not_sent: bool
) -> list[Section]:
    """Deletion candidates by kind, in the order a run deletes them: memberships, groups, persons."""
    prefix, suffix = ("unsent-", " not sent") if not_sent else ("", "")
    out = []
    of_type = _by_type(deletions)
    for kind in sorted(kinds, key=DELETION_ORDER.index):
        look = look_of(kind)
        identity = ("Identity",) if kind.identity else ()
        out.append(
            _section(
                of_type(kind, Delete),
                partial(_deletion_row, kind, look.deletion_columns),
                max_rows,
                anchor=f"{prefix}{look.anchor}deletions",
                heading=look.heading("deletion candidates") + suffix,
                hint=look.unsent_hint if not_sent else look.deletion_hint,
                header=("Sync key", *_labels(look.deletion_columns), *identity, "Reason"),
            )
        )
    return out


def _set_aside_sections(plan: Plan, max_rows: int) -> list[Section]:
    return [
        _section(
            plan.conflicts,
            lambda c: (c.identity, " ".join(c.roster_keys), " ".join(c.snapshot_keys), c.reason),
            max_rows,
            anchor="conflicts",
            heading="Conflicts",
            hint="Identity matches that cannot be resolved safely; nothing is sent for these keys.",
            header=("Identity", "Roster keys", "Snapshot keys", "Reason"),
        ),
        _section(
            plan.rejects,
            lambda r: (r.file, str(r.row), r.field, r.sync_key, r.reason),
            max_rows,
            anchor="rejects",
            heading="Rejected rows",
            hint="Roster rows that were not accepted and are never sent: fix them in the source system.",
            header=("File", "Row", "Field", "Sync key", "Reason"),
            numeric=frozenset({1}),
        ),
    ]


def _held_hint(meta: ReportMeta) -> str:
    """What the held table's reader needs to know: why they are held, and what releases them."""
    hints = []
    if meta.sending:
        hints.append(f"Not sent by this run ({meta.sending}); a run without the restriction sends them.")
    if any(row.reason.startswith(LIMIT_REASON) for row in meta.held):
        hints.append(
            "Held at a safety limit (the rest of the plan is sent; exit 3): each reason names the limit, "
            "the counts, and the flag or --approve fingerprint that releases them, after review."
        )
    return " ".join(hints)


def _held_sections(meta: ReportMeta, max_rows: int) -> list[Section]:
    """The operations the run holds back (`--only`, a pause window, a safety limit), when it holds any."""
    return _if_rows(
        _section(
            meta.held,
            lambda row: (row.operation, row.sync_key, row.reason),
            max_rows,
            anchor="held",
            heading="Held",
            hint=_held_hint(meta),
            header=("Operation", "Sync key", "Reason"),
        )
    )


def _drift_sections(meta: ReportMeta, max_rows: int) -> list[Section]:
    """The plan's operations that come from drift `verify --repair` recorded, when there are any."""
    return _if_rows(
        _section(
            meta.drift,
            lambda row: (row.object, row.sync_key, row.drift),
            max_rows,
            anchor="from-drift",
            heading="From drift",
            hint="Operations that put right what `verify --repair` found changed in or missing from "
            "itslearning.",
            header=("Kind", "Sync key", "Drift"),
        )
    )


def plan_page(plan: Plan, meta: ReportMeta, max_rows: int) -> Page:
    """A plan's page: its tables in the order a run sends them; group and membership tables only when
    the plan deals with groups or memberships."""
    kinds = _kinds_shown(plan)
    of_type = _by_type(plan.operations)
    sections = [
        *_held_sections(meta, max_rows),
        *_drift_sections(meta, max_rows),
        *(section for kind in kinds for section in _change_sections(kind, of_type, max_rows)),
        *_deletion_sections(plan.deletions, max_rows, kinds=kinds, not_sent=False),
        *_set_aside_sections(plan, max_rows),
    ]
    return Page(meta=meta, counts=_plan_counts(plan), sections=sections)


# --- a run ---------------------------------------------------------------------------------------

# What the tables say for an operation that carries no error text of its own.
_NOT_SENT: Final = {Outcome.SKIPPED: "not sent: the run stopped before reaching it"}

_RESULT_HEADER: Final = (
    "Outcome",
    "Operation",
    "Sync key",
    "Status",
    "Code minor",
    "Description",
    "Error",
    "Attempts",
    "Message id",
)


def _result_row(r: OperationResult, *, mixed: bool) -> tuple[str, ...]:
    """A row of a run's results table; `mixed` when the run also deals with groups or memberships,
    so a person's operation says it is one."""
    keys = op_keys(r.operation)
    key = f"{keys['oldId']} → {keys['newId']}" if "oldId" in keys else keys["syncKey"]
    name, kind = describe(r.operation)
    status = r.status
    return (
        r.outcome.value,
        PERSON_LABELS[name] if mixed and kind == PERSON.name else OP_LABELS[name, kind],
        key,
        status_text(status),
        code_minor_text(status),
        status.description if status else "",
        r.error or _NOT_SENT.get(r.outcome, ""),
        str(r.attempts),
        r.message_identifier,
    )


def _results_section(
    rows: list[OperationResult], max_rows: int, *, mixed: bool, anchor: str, heading: str, hint: str
) -> Section:
    return _section(
        rows,
        partial(_result_row, mixed=mixed),
        max_rows,
        anchor=anchor,
        heading=heading,
        hint=hint,
        header=_RESULT_HEADER,
        numeric=frozenset({7}),
        outcome_column=0,
    )


def _link_row(r: OperationResult) -> tuple[str, ...]:
    return (r.outcome.value, op_keys(r.operation)["syncKey"], _cell(r.operation.record, PERSON.links))


def _sends_links(op: Operation) -> bool:
    """Whether a person's operation sends its links: it holds some, or changes them (a deletion never)."""
    if isinstance(op, Delete):
        return False
    links = getattr(op.record, PERSON.links)
    return bool(links and split_children(links)) or any(c.field == PERSON.links for c in changes_of(op))


def _links_sections(result: RunResult, max_rows: int) -> list[Section]:
    """The persons whose parent/child links the run sent (a section only when there are some)."""
    sent = [
        r for r in result.results if type(r.operation.record) is PERSON.record and _sends_links(r.operation)
    ]
    return _if_rows(
        _section(
            sent,
            _link_row,
            max_rows,
            anchor="links",
            heading="Parent/child links sent",
            hint="Each parent's children as sent (itslearning's parent portal); a child itslearning does "
            "not hold is skipped by it.",
            header=("Outcome", "Sync key", "Children"),
            outcome_column=0,
        )
    )


def _run_sections(result: RunResult, meta: ReportMeta, max_rows: int) -> list[Section]:
    mixed = _mixed(result.plan)
    confirmed: list[OperationResult] = []
    problems: list[OperationResult] = []
    for r in result.results:  # one walk (a first night's run has 10^5-10^6 results)
        (confirmed if r.outcome is Outcome.CONFIRMED else problems).append(r)
    return [
        _results_section(
            problems,
            max_rows,
            mixed=mixed,
            anchor="problems",
            heading="Not confirmed",
            hint="Rejected: itslearning refused the data (fix and rerun). Unconfirmed: sent without a "
            "trustworthy answer (the next run resends). Skipped: not sent, and why.",
        ),
        _results_section(
            confirmed,
            max_rows,
            mixed=mixed,
            anchor="confirmed",
            heading="Confirmed",
            hint="itslearning confirmed these; the snapshot records them.",
        ),
        *_links_sections(result, max_rows),
        *_held_sections(meta, max_rows),
        *_set_aside_sections(result.plan, max_rows),
        *_deletion_sections(
            unsent_deletions(result, meta.held), max_rows, kinds=_kinds_shown(result.plan), not_sent=True
        ),
    ]


_LISTED: Final = 20  # sync keys a banner names before it says how many more


def _listed(keys: Sequence[str]) -> str:
    more = f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else ""
    return ", ".join(keys[:_LISTED]) + more


def _run_banner(result: RunResult) -> str:
    """Why the run stopped early, and (once) that the parent portal refused links."""
    portal = result.parent_portal_disabled()
    parts = [
        f"The run stopped early: {result.stopped}" if result.stopped else "",
        f"Warning: {parent_portal_notice(len(portal))}: {_listed(portal)}." if portal else "",
    ]
    return " ".join(part for part in parts if part)


def run_page(result: RunResult, meta: ReportMeta, max_rows: int) -> Page:
    """A run's page: outcomes, why it stopped early, and what it did not send."""
    counted = Counter(r.outcome for r in result.results)  # (`RunResult.count` walks them per outcome)
    return Page(
        meta=meta,
        counts=[(o.value.capitalize(), counted[o], _OUTCOME_COLOURS[o]) for o in Outcome],
        sections=_run_sections(result, meta, max_rows),
        extra_meta=(
            ("Run id", result.run_id),
            ("Started", result.started_at),
            ("Finished", result.finished_at),
        ),
        banner=_run_banner(result),
        summary_label="Outcome",
    )
