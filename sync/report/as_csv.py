"""CSV: a plan, a run, a reconciliation or a DataFrame as one CSV table, complete and every cell
neutralised against spreadsheet formula injection.

Pure: imports the models and the report's own helpers; pandas only for type checking.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain, repeat
from typing import TYPE_CHECKING, Final, NamedTuple

from sync.models import PERSON_FIELDS, PERSON_LATER_FIELDS, DeleteOperation, Operation, Plan, RunResult
from sync.models.blocks import Block, runs
from sync.models.kinds import KINDS, PERSON, kind_of
from sync.report import ops
from sync.report.arrow_lines import ByteSet, any_byte, filled, prefixed
from sync.report.as_json import iso
from sync.report.meta import DriftRow, HeldRow

if TYPE_CHECKING:
    import pandas as pd

    from sync.state.reconcile import ReconcileRow

__all__ = [
    "PLAN_CSV_HEADER",
    "RECONCILE_CSV_HEADER",
    "RUN_CSV_HEADER",
    "frame_to_csv",
    "neutralise_cell",
    "plan_csv",
    "plan_csv_pieces",
    "reconcile_csv_row",
    "run_csv_rows",
    "write_csv",
]

# OWASP CSV injection: a spreadsheet treats a cell starting with one of these as a formula.
# A set lookup on the first character: this runs once per cell of 10^5-row exports.
_FORMULA_FIRST: Final = frozenset({"=", "+", "-", "@", "\t", "\r"})


def neutralise_cell(value: str) -> str:
    """Prefix `'` to a cell a spreadsheet would run as a formula (OWASP CSV injection).

    Args:
        value: the cell's text.
    """
    return "'" + value if value[:1] in _FORMULA_FIRST else value


def _row_text(row: Sequence[object]) -> str:
    """One row as CSV text, every cell neutralised: when no cell holds a comma, a quote or a line break
    (the csv module quotes none then), its cells joined, a `'` put before each one's formula character."""
    try:
        line = ",".join(row)  # type: ignore[arg-type]
    except TypeError:  # a cell that is not text (a row number): as its text
        texts = [str(cell) for cell in row]
        line, row = ",".join(texts), texts
    # (one blank cell alone is written quoted)
    if line and line.count(",") == len(row) - 1 and _QUOTED.search(line) is None:
        line = "," + line  # each cell after a comma
        return (_RISKY.sub(",'\\1", line) if _RISKY.search(line) else line)[1:] + "\r\n"
    first = _FORMULA_FIRST
    return _written(["'" + cell if cell[:1] in first else cell for cell in row])  # type: ignore[index, operator]


#: A cell that starts with a formula character, in a row's cells each after a comma.
_RISKY: Final = re.compile(",([" + re.escape("".join(sorted(_FORMULA_FIRST))) + "])")
#: What makes the csv module quote a cell (besides the comma).
_QUOTED: Final = re.compile('["\r\n]')


def _written(row: Sequence[object]) -> str:
    """One row through the csv module (quoted where a cell needs it)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(row)
    return buffer.getvalue()


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The header and rows as CSV text, every cell neutralised."""
    return "".join([_row_text(header), *map(_row_text, rows)])


#: The kinds whose fields have `<kind>_<field>` columns; a person's fields have the persons-only
#: columns they always had.
_COLUMN_KINDS: Final = tuple(kind for kind in KINDS if kind is not PERSON)

# Appended after the persons-only columns, so a reader that indexes columns keeps working.
_OBJECT_CSV_COLUMNS: Final = (
    "object",
    *(f"{kind.name}_{field}" for kind in _COLUMN_KINDS for field in kind.fields),
)

#: Rejected rows' and conflicts' columns (a deletion candidate's reason too), in the plan and run CSV.
_SET_ASIDE_CSV_COLUMNS: Final = ("file", "row", "field", "reason", "roster_keys", "snapshot_keys")

#: The person fields the plan CSV always had, in their place; the later ones (issue 17) come last, so a
#: reader that indexes columns keeps working.
_FIRST_PERSON_FIELDS: Final = len(PERSON_FIELDS) - PERSON_LATER_FIELDS

PLAN_CSV_HEADER: Final = (
    "kind",
    "sync_key",
    "old_id",
    "new_id",
    "identity",
    *PERSON_FIELDS[:_FIRST_PERSON_FIELDS],
    "changes",
    *_SET_ASIDE_CSV_COLUMNS,
    *_OBJECT_CSV_COLUMNS,
    *PERSON_FIELDS[_FIRST_PERSON_FIELDS:],
)

_BLANK_PERSON: Final = ("",) * len(PERSON_FIELDS)
_LATER_BLANK: Final = _BLANK_PERSON[_FIRST_PERSON_FIELDS:]


def _object_cells(op: Operation) -> tuple[str, ...]:
    """The `_OBJECT_CSV_COLUMNS` cells of an operation: its record's fields in its kind's columns (a
    deletion that shows no record has only the references it holds, a group's parent)."""
    kind = kind_of(op)
    record = ops.record_of(op)
    cells: list[str] = [kind.name]
    for column_kind in _COLUMN_KINDS:
        if column_kind is not kind:
            cells += ("",) * len(column_kind.fields)
        elif record is not None:
            cells += ops.values_of(record)
        else:
            refs = {ref.field for ref in kind.references}
            cells += (str(getattr(op.record, f)) if f in refs else "" for f in kind.fields)
    return tuple(cells)


def _person_cells(op: Operation) -> tuple[str, ...]:
    record = ops.record_of(op)
    return ops.values_of(record) if record is not None and kind_of(op) is PERSON else _BLANK_PERSON


class _Shape(NamedTuple):
    """What every operation of one type and kind of record fills in its plan CSV row (found once)."""

    name: str
    kind: str
    shown: bool  # its record's fields are shown (not a deletion that shows none)
    person: bool
    ids: bool  # an identifier change: old and new id
    identity: bool
    changes: bool
    before: tuple[str, ...]  # the object columns before its kind's (its kind's name first)
    after: tuple[str, ...]


_SHAPES: Final[dict[tuple[type, type], _Shape]] = {}


def _shape(op: Operation) -> _Shape:
    shape = _SHAPES.get((type(op), type(op.record)))
    if shape is None:
        kind = kind_of(op)
        # the object columns: the kind's name, then each column kind's (a person has none of its own)
        widths = [len(k.fields) for k in _COLUMN_KINDS]
        at = _COLUMN_KINDS.index(kind) if kind in _COLUMN_KINDS else len(_COLUMN_KINDS)
        shape = _SHAPES[type(op), type(op.record)] = _Shape(
            name=ops.describe(op)[0],
            kind=kind.name,
            shown=ops.record_of(op) is not None,
            person=kind is PERSON,
            ids=getattr(op, "new_id", None) is not None,
            identity=kind.identity,
            changes=hasattr(op, "changes"),
            before=(kind.name, *("",) * sum(widths[:at])),
            after=("",) * sum(widths[at + 1 :]),
        )
    return shape


def _shaped_object_cells(op: Operation, s: _Shape, values: tuple[str, ...]) -> tuple[str, ...]:
    """`_object_cells(op)` from its shape and its record's `values`."""
    if not s.shown:
        return _object_cells(op)
    return s.before if s.person else (*s.before, *values, *s.after)


def _operation_row(op: Operation, reason: str) -> tuple[object, ...]:
    """An operation's plan CSV row, `reason` in the reason column."""
    s = _shape(op)
    values = ops.values_of(op.record) if s.shown else _BLANK_PERSON
    person = values if s.person else _BLANK_PERSON
    objects = _shaped_object_cells(op, s, values)
    return (
        s.name,
        op.sync_key,
        getattr(op, "old_id", "") if s.ids else "",
        getattr(op, "new_id", "") if s.ids else "",
        getattr(op, "identity", "") if s.identity else "",
        *person[:_FIRST_PERSON_FIELDS],
        ops.changes_text(ops.changes_of(op)) if s.changes else "",
        "",
        "",
        "",
        reason,
        "",
        "",
        *objects,
        *person[_FIRST_PERSON_FIELDS:],
    )


class _Line(NamedTuple):
    """An operation's plan CSV line of one shape: a template with a slot per text, its texts in order."""

    template: str
    head: Callable[[Operation], tuple[str, ...]]  # the texts before its changes and reason
    changes: bool
    tail: Callable[[Operation], tuple[str, ...]]  # the texts after them
    names: tuple[tuple[str, ...], tuple[str, ...]]  # the attributes `head` and `tail` read


_SLOT: Final = "\x00"
_LINES: Final[dict[tuple[type, type], _Line | None]] = {}
#: What makes a text be written quoted (a comma, a quote, a line break).
_QUOTES: Final = re.compile('[,"\r\n]')
#: Before a formula character first in a text, among texts each after a NUL.
_FORMULA: Final = re.compile("\x00(?=[" + re.escape("".join(sorted(_FORMULA_FIRST))) + "])")


def _line(op: Operation) -> _Line | None:
    """The line of `op`'s shape (None for a deletion that shows no record: cell by cell)."""
    key = (type(op), type(op.record))
    if key in _LINES:
        return _LINES[key]
    s, kind = _shape(op), kind_of(op)
    head = ["sync_key", *(("old_id", "new_id") if s.ids else ()), *(("identity",) if s.identity else ())]
    cells = [s.name, _SLOT, *([_SLOT] * 2 if s.ids else ["", ""]), _SLOT if s.identity else ""]
    first, later = kind.fields[:_FIRST_PERSON_FIELDS], kind.fields[_FIRST_PERSON_FIELDS:]
    head += [f"record.{f}" for f in first] if s.person else []
    cells += [_SLOT if s.person else ""] * _FIRST_PERSON_FIELDS
    cells += [_SLOT, "", "", "", _SLOT, "", ""]  # changes, set-aside columns with the reason
    tail = [f"record.{f}" for f in (later if s.person else kind.fields)]
    if s.person:
        cells += [*s.before, *[_SLOT] * len(later)]
    else:
        cells += [*s.before, *[_SLOT] * len(kind.fields), *s.after, *_LATER_BLANK]
    template = ",".join(cells).replace(_SLOT, "%s") + "\r\n"
    safe = s.shown and not any(_QUOTES.search(c) or _FORMULA.search(_SLOT + c) or "%" in c for c in cells)
    names = (tuple(head), tuple(tail))
    line = _LINES[key] = (
        _Line(template, ops.texts_of(head), s.changes, ops.texts_of(tail), names) if safe else None
    )
    return line


def _operation_line(op: Operation, reason: str) -> str:
    """An operation's plan CSV line, `reason` in the reason column: its shape's template filled when no
    text needs quoting or neutralising, else its row cell by cell."""
    line = _line(op)
    if line is not None:
        changes = ops.changes_text(op.changes) if line.changes else ""  # type: ignore[union-attr]
        try:
            texts = (*line.head(op), changes, reason, *line.tail(op))
            joined = _SLOT + _SLOT.join(texts)
        except TypeError:  # a text that is not text
            return _row_text(_operation_row(op, reason))
        if _QUOTES.search(joined) is None:
            if _FORMULA.search(joined) is None:
                return line.template % texts
            if joined.count(_SLOT) == len(texts):  # (no text holds a NUL): neutralised in one go
                return line.template % tuple(_FORMULA.sub(_SLOT + "'", joined)[1:].split(_SLOT))
    return _row_text(_operation_row(op, reason))


def _run_lines(run: Sequence[Operation], reasons: Sequence[str]) -> Iterator[str | bytes]:
    """`_operation_line` of each operation of `run` (all of one shape) with its reason, `_CHUNK` lines
    joined at a time: the texts of a chunk searched at once for what needs quoting and neutralised at
    once, the template filled at C speed; a chunk with a text to quote (or holding a NUL, or not text)
    line by line. A block's chunk without a reason or a text to quote comes filled by Arrow, as UTF-8
    bytes (`_block_lines`)."""
    line = _line(run[0])
    if line is None or line.changes:
        yield "".join(map(_operation_line, run, reasons))
        return
    head, tail, fill = line.head, line.tail, line.template.__mod__
    for start in range(0, len(run), _CHUNK):
        why = reasons[start : start + _CHUNK]
        arrowed = _block_lines(run, line, start, why) if isinstance(run, Block) else None
        if arrowed is not None:
            yield arrowed
            continue
        if isinstance(run, Block):  # (its texts read off its columns: no object made)
            texts = _block_texts(run, line, start, why)
        else:
            some = run[start : start + len(why)]
            texts = [(*h, "", r, *t) for h, r, t in zip(map(head, some), why, map(tail, some), strict=True)]
        try:
            joined = _SLOT + _SLOT.join(chain.from_iterable(texts))
        except TypeError:  # a text that is not text
            joined = _QUOTES_FOUND
        width = len(texts[0]) if texts else 0
        if _QUOTES.search(joined) is None and joined.count(_SLOT) == width * len(texts):
            if _FORMULA.search(joined) is not None:
                joined = _FORMULA.sub(_SLOT + "'", joined)
            yield "".join(map(fill, zip(*[iter(joined[1:].split(_SLOT))] * width, strict=True)))
        else:
            yield "".join(map(_operation_line, run[start : start + len(why)], why))


def _block_texts(block: Block, line: _Line, start: int, why: Sequence[str]) -> list[tuple[str, ...]]:
    """The texts `line` fills of a block's operations from `start` (one per reason in `why`): what its
    `head` and `tail` give of each, read off the block's columns (changes "": a block holds creates)."""
    count = len(why)

    def cells(names: tuple[str, ...]) -> list[list[str]]:
        return [block.texts(name, start, start + count) for name in names]

    head, tail = line.names
    return list(zip(*cells(head), repeat("", count), why, *cells(tail), strict=True))


def _block_lines(block: Block, line: _Line, start: int, why: Sequence[str]) -> bytes | None:
    """The lines of a block's operations from `start` (one per reason in `why`; no changes) filled by
    Arrow (`arrow_lines`), each text neutralised as `_row_text` does; None when one has a reason, or a
    text needs quoting (or holds a NUL): line by line then."""
    if any(why):
        return None
    stop = start + len(why)
    head, tail = line.names
    arrays = [block.column(name).slice(start, stop - start) for name in (*head, *tail)]
    if any_byte(arrays, _QUOTED_BYTES):
        return None
    arrays = [prefixed(array, _FORMULA_BYTES, "'") for array in arrays]
    slots = line.template.split("%s")  # (a template with a "%" of its own has no _Line)
    # the changes' and the reason's slots (after the head's) are "": their constants join
    at = len(head)
    parts = [*slots[:at], slots[at] + slots[at + 1] + slots[at + 2], *slots[at + 3 :]]
    return filled(parts, arrays)


#: What a text must not hold to be written by Arrow: what makes it quoted, and a NUL.
_QUOTED_BYTES: Final = ByteSet(',"\r\n\x00')
#: What makes a text a formula, first in it (`_FORMULA_FIRST`).
_FORMULA_BYTES: Final = ByteSet("".join(sorted(_FORMULA_FIRST)))


#: How many operations `_run_lines` writes at once (a few MB of text).
_CHUNK: Final = 8192
#: What stands for the joined texts of a chunk that must go line by line.
_QUOTES_FOUND: Final = ","


def _plan_csv_lines(plan: Plan, held: Sequence[HeldRow], drift: Sequence[DriftRow]) -> Iterator[str | bytes]:
    """The plan CSV's lines of operations (a held one's `reason` says why the run holds it, one from
    drift which drift), written run by run of one shape, a chunk of lines joined at a time."""
    reasons = {(row.op, row.object, row.sync_key): row.reason for row in held}
    drifted = {(row.object, row.sync_key): f"drift: {row.drift} (verify --repair)" for row in drift}
    for _, run in runs(plan.operations):
        if not (reasons or drifted):
            yield from _run_lines(run, list(repeat("", len(run))))
            continue
        s = _shape(run[0])
        keys = run.sync_keys() if isinstance(run, Block) else [op.sync_key for op in run]
        why = [reasons.get((s.name, s.kind, key), "") or drifted.get((s.kind, key), "") for key in keys]
        yield from _run_lines(run, why)


def plan_csv(plan: Plan, held: Sequence[HeldRow] = (), drift: Sequence[DriftRow] = ()) -> str:
    """The plan CSV: operations (a held one's `reason` says why the run holds it, one from drift which
    drift), deletion candidates, rejected rows, conflicts; every cell neutralised."""
    pieces = plan_csv_pieces(plan, held, drift)
    return "".join(piece if isinstance(piece, str) else piece.decode("utf-8") for piece in pieces)


def plan_csv_pieces(
    plan: Plan, held: Sequence[HeldRow] = (), drift: Sequence[DriftRow] = ()
) -> Iterator[str | bytes]:
    """`plan_csv`'s text in pieces, made as they are written (a first night's lines a chunk at a time)."""
    yield _row_text(PLAN_CSV_HEADER)
    yield from _plan_csv_lines(plan, held, drift)
    yield "".join(map(_row_text, _plan_csv_rest(plan, held)))


def _plan_csv_rest(plan: Plan, held: Sequence[HeldRow]) -> Iterable[tuple[object, ...]]:
    """The plan CSV's rows after the operations: deletion candidates, rejected rows, conflicts."""
    # A deletion candidate a run would hold (a safety limit, --only, a pause window) says so after its own.
    removals = {(row.object, row.sync_key): row.reason for row in held if row.op in ("delete", "deactivate")}
    for cells in _deletion_and_set_aside_cells(plan.deletions, plan):
        why = (
            removals.get((str(cells.get("object")), str(cells["sync_key"])))
            if cells["kind"] == "delete"
            else None
        )
        yield _csv_row(PLAN_CSV_HEADER, cells | {"reason": f"{cells['reason']}; {why}"} if why else cells)


def _csv_row(header: Sequence[str], cells: Mapping[str, object]) -> tuple[object, ...]:
    """A row of `header`'s columns from the named cells, blank where none is given."""
    return tuple(cells.get(name, "") for name in header)


#: A rejected row's columns, each named as the Reject field it holds.
_REJECT_COLUMNS: Final = ("sync_key", "file", "row", "field", "reason")


def _deletion_and_set_aside_cells(
    deletions: Iterable[DeleteOperation], plan: Plan
) -> Iterable[dict[str, object]]:
    """The named cells of deletion candidates, then of the plan's rejected rows and conflicts (the plan
    and the run CSV share these columns)."""
    for d in deletions:
        yield {
            "kind": "delete",
            "sync_key": d.sync_key,
            "identity": ops.identity_of(d),
            "reason": d.reason,
            **dict(zip(_OBJECT_CSV_COLUMNS, _object_cells(d), strict=True)),
        }
    for r in plan.rejects:
        yield {"kind": "reject", **{name: getattr(r, name) for name in _REJECT_COLUMNS}}
    for c in plan.conflicts:
        keys = {"roster_keys": " ".join(c.roster_keys), "snapshot_keys": " ".join(c.snapshot_keys)}
        yield {"kind": "conflict", "identity": c.identity, "reason": c.reason, **keys}


RUN_CSV_HEADER: Final = (
    "kind",
    "sync_key",
    "old_id",
    "new_id",
    "outcome",
    "message_identifier",
    "code_major",
    "severity",
    "code_minor",
    "message_id_ref",
    "description",
    "error",
    "attempts",
    # appended for groups, memberships, unsent deletion candidates, rejected rows and conflicts
    "identity",
    *_OBJECT_CSV_COLUMNS,
    *_SET_ASIDE_CSV_COLUMNS,
    # appended for a person's parent/child links as sent (issue 17)
    PERSON.links,
)


#: Where a person's links (`Person.children`) are among its values.
_LINKS_AT: Final = PERSON.fields.index(PERSON.links)


#: The run CSV's `outcome` for a deletion candidate the run did not send (`--deletes` kept it).
_UNSENT_OUTCOME: Final = "not sent"


def run_csv_rows(result: RunResult, held: Sequence[HeldRow] = ()) -> Iterable[tuple[object, ...]]:
    """The run CSV's rows: every result, then the held operations (outcome `held`, with their reason),
    unsent deletion candidates, rejected rows, conflicts."""
    for r in result.results:
        op = r.operation
        s = _shape(op)
        values = ops.values_of(op.record) if s.shown else _BLANK_PERSON
        status = r.status
        yield (
            s.name,
            op.sync_key,
            getattr(op, "old_id", "") if s.ids else "",
            getattr(op, "new_id", "") if s.ids else "",
            r.outcome.value,
            r.message_identifier,
            status.code_major if status else "",
            status.severity if status else "",
            ops.code_minor_text(status),
            (status.message_id_ref or "") if status else "",
            status.description if status else "",
            r.error,
            str(r.attempts),  # (as the CSV writes it: a row of text is written the fast way)
            getattr(op, "identity", "") if s.identity else "",
            *_shaped_object_cells(op, s, values),
            "",
            "",
            "",
            ops.reason_of(op),
            "",
            "",
            values[_LINKS_AT] if s.person and s.shown else "",  # a person's links as sent
        )
    for row in held:
        held_cells = {"kind": row.op, "sync_key": row.sync_key, "object": row.object, "reason": row.reason}
        yield _csv_row(RUN_CSV_HEADER, held_cells | {"outcome": "held"})
    for cells in _deletion_and_set_aside_cells(ops.unsent_deletions(result, held), result.plan):
        if cells["kind"] == "delete":
            cells["outcome"] = _UNSENT_OUTCOME
        yield _csv_row(RUN_CSV_HEADER, cells)


def frame_to_csv(frame: pd.DataFrame) -> str:
    """A DataFrame (e.g. a snapshot export) as CSV, every cell neutralised against formula injection.

    Args:
        frame: the table; a named index (such as the snapshot's "sync_key") is written as the first
            column, an unnamed one is left out.
    """
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    header = [str(c) for c in frame.columns]
    rows = frame.astype(object).where(frame.notna(), "").itertuples(index=False, name=None)
    return write_csv(header, rows)


RECONCILE_CSV_HEADER: Final = (
    "flags",
    "run_id",
    "message_identifier",
    "operation",
    "attempt",
    "sent_at",
    "answered_at",
    "message_id_ref",
    "code_major",
    "severity",
    "code_minor",
    "description",
    "outcome",
    "error",
    "items",
    "item_sync_keys",
)


def reconcile_csv_row(row: ReconcileRow) -> tuple[object, ...]:
    """One journalled request of `reconcile --format csv`."""
    e = row.entry
    return (
        " ".join(sorted(row.flags)),
        e.run_id,
        e.message_identifier,
        e.operation,
        e.attempt,
        iso(e.sent_at),
        iso(e.answered_at),
        e.message_id_ref or "",
        e.code_major or "",
        e.severity or "",
        "; ".join(f"{name}={value}" for name, value in e.code_minor),
        e.description,
        e.outcome,
        e.error,
        len(e.items),
        " ".join(i.sync_key for i in e.items),
    )
