"""The columnar plan equals the object plan: a plan whose creates are kept as columns (`Block`s in an
`Ops` sequence, as the diff makes them) reads, counts, selects, fingerprints and renders exactly as the
same plan with every operation an object."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.models import (
    Create,
    Delete,
    DeletesMode,
    Operation,
    OperationResult,
    Outcome,
    Person,
    Plan,
    RunResult,
)
from sync.models.blocks import CHUNK, Block, Ops, runs
from sync.models.kinds import KINDS
from sync.models.plans import classes_of
from sync.models.results import Unreached
from sync.plan.limits import parse_rule
from sync.plan.operation_bytes import operation_bytes
from sync.plan.ordering import phases
from sync.plan.safety import SafetyLimits, breaching, check_limits
from sync.plan.selection import select_operations
from sync.report.arrow_lines import ByteSet
from sync.report.meta import FORMATS, Format
from sync.report.render import render_plan
from tests.report_golden import generated_meta, generated_plan
from tests.strategies import operations


def column(values: Iterable[str]) -> Any:
    """Texts as an Arrow text column, as the diff keeps them."""
    return pa.array(list(values), type=pa.large_string())


def block_of(ops: Sequence[Any]) -> Block:
    """The creates `ops` (one record class) as a block of columns."""
    first = ops[0]
    record = type(first.record)
    own = [f.name for f in dataclasses.fields(first) if f.name != "record"]
    return Block(
        operation=type(first),
        record=record,
        keys=column(op.sync_key for op in ops),
        columns={
            **{name: column(getattr(op.record, name) for op in ops) for name in record.FIELDS},
            **{name: column(getattr(op, name) for op in ops) for name in own},
        },
    )


def columnar(ops: Sequence[Any]) -> Ops[Any]:
    """`ops` with each run of creates or deletions of one record class as a block (what the diff keeps
    as columns)."""
    parts: list[Sequence[Any]] = []
    for (op_class, _), run in itertools.groupby(ops, key=classes_of):
        some = list(run)
        parts.append(block_of(some) if op_class in (Create, Delete) else some)
    return Ops(*parts)


def columnar_plan(plan: Plan) -> Plan:
    return dataclasses.replace(plan, operations=columnar(plan.operations), deletions=columnar(plan.deletions))


def _digest(ops: Sequence[Any]) -> bytes:
    return b"".join(operation_bytes(ops))


def test_a_block_is_its_operations() -> None:
    """Length, items (negative too), slices, iteration across chunks and equality with the objects."""
    ops = [
        Create(
            record=Person(sync_key=f"p{n:05}", given_name=f"G{n}", role="Student"),
            identity=f"i{n}",
            password="x",
        )
        for n in range(CHUNK + 5)
    ]
    block = block_of(ops)
    assert len(block) == len(ops)
    assert block[0] == ops[0]
    assert block[-1] == ops[-1]
    assert block[CHUNK] == ops[CHUNK]
    assert block[CHUNK - 2 : CHUNK + 2] == ops[CHUNK - 2 : CHUNK + 2]
    assert block[::5000] == ops[::5000]
    assert list(block) == ops
    assert block.sync_keys() == [op.sync_key for op in ops]
    with pytest.raises(IndexError):
        block[len(ops)]
    together = Ops(ops[:3], block, ops[3:4])
    assert together == (*ops[:3], *ops, ops[3])
    assert together[2:6] == [*ops[2:3], *ops[:3]]
    assert together[-1] == ops[3]
    assert len(together) == 3 + len(ops) + 1
    assert [len(run) for _, run in runs(together)] == [3, len(ops), 1]


@given(operations())
def test_a_columnar_run_fingerprints_as_its_objects(ops: list[Operation]) -> None:
    """The fingerprint's bytes are those of the operations, whatever holds them."""
    assert _digest(columnar(ops)) == _digest(ops)
    assert Ops(*columnar(ops).parts) == ops


def test_batches_run_across_blocks_and_objects() -> None:
    """A run of creates split between objects and a block past a batch's length hashes as one run."""
    ops = [
        Create(record=Person(sync_key=f"p{n}", username=f"u'{n}\\"), identity="") for n in range(CHUNK + 7)
    ]
    assert _digest(Ops(ops[:9], block_of(ops[9:]))) == _digest(ops)
    assert _digest(block_of(ops)) != _digest(block_of(ops[:-1]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_columnar_plan_renders_as_the_object_plan(fmt: Format) -> None:
    """Every kind and type of operation, odd texts (formulas, quotes, scripts) among them."""
    plan = generated_plan()
    meta = generated_meta(plan)
    made = columnar_plan(plan)
    assert any(isinstance(part, Block) for part in made.operations.parts)  # type: ignore[attr-defined]
    assert render_plan(made, fmt=fmt, meta=meta) == render_plan(plan, fmt=fmt, meta=meta)
    capped = render_plan(made, fmt=fmt, meta=meta, max_rows=2)
    assert capped == render_plan(plan, fmt=fmt, meta=meta, max_rows=2)


def test_the_columnar_plan_counts_selects_and_limits_as_the_object_plan() -> None:
    plan = generated_plan()
    made = columnar_plan(plan)
    assert made == plan
    assert made.summary == plan.summary
    assert _digest(Ops(made.operations, made.deletions)) == _digest((*plan.operations, *plan.deletions))
    for only in (None, frozenset({"create"}), frozenset({"update", "delete"})):
        ours = select_operations(made.operations, made.deletions, deletes=DeletesMode.DELETE, only=only)  # type: ignore[arg-type]
        theirs = select_operations(plan.operations, plan.deletions, deletes=DeletesMode.DELETE, only=only)  # type: ignore[arg-type]
        assert list(ours.send) == list(theirs.send)
        assert ours.held == theirs.held
    limits = SafetyLimits(max_share=0.01, max_count=1, floor=0, rules=(parse_rule("*.create", "1"),))
    breaches = check_limits(made, limits, deletes=True)
    assert breaches
    assert breaches == check_limits(plan, limits, deletes=True)
    sent = Ops(made.operations, made.deletions)
    send, held = breaching(sent, breaches)
    assert (list(send), held) == tuple(map(list, breaching((*plan.operations, *plan.deletions), breaches)))


@given(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=40))
def test_ops_slices_as_a_tuple(start: int, stop: int) -> None:
    ops = [Create(record=Person(sync_key=f"p{n}")) for n in range(30)]
    joined = Ops(ops[:4], block_of(ops[4:20]), ops[20:])
    assert joined[start:stop] == ops[start:stop]
    assert list(joined) == ops
    assert joined == tuple(ops)
    assert len(joined) == len(ops)


@given(operations())
def test_a_columnar_run_is_placed_in_the_same_phases(ops: list[Operation]) -> None:
    """The executor's phases of a plan with blocks are those of its objects, position for position."""
    valid = {(op_class, kind.record) for kind in KINDS for _, op_class in kind.typed_operations}
    ops = [op for op in ops if classes_of(op) in valid]  # (no deactivated group: no plan holds one)
    assert phases(columnar(ops)) == phases(ops)


#: Texts every writer treats specially: escaped in JSON, quoted or neutralised in CSV, or plain.
_ODD_TEXTS = (
    'a"b',
    "back\\slash",
    "tab\there",
    "nul\x00",
    "line\nbreak",
    "=1+2",
    "-5",
    "@x",
    "a,b",
    "100%s",
    "Åse",
    "",
)


@pytest.mark.parametrize("odd", _ODD_TEXTS)
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_every_odd_text_is_written_from_columns_as_from_objects(odd: str, fmt: Format) -> None:
    """One odd text among plain ones (in a field shown in the first columns, and in a later one) gives
    the same report from a block as from the objects."""
    ops = [
        Create(
            record=Person(sync_key=f"p{n}", given_name=odd if n == 3 else "Kari", city=odd if n == 5 else ""),
            identity=f"i{n}",
        )
        for n in range(8)
    ]
    plan = Plan(operations=tuple(ops), deletions=(), rejects=(), conflicts=())
    made = columnar_plan(plan)
    held = generated_meta(plan)  # (a held row and a drift row among them: their reasons shown)
    for meta in (held, dataclasses.replace(held, held=(), drift=())):
        assert render_plan(made, fmt=fmt, meta=meta) == render_plan(plan, fmt=fmt, meta=meta)


def test_a_stopped_runs_unreached_creates_are_made_as_read() -> None:
    """A block's unreached tail is its operations as skipped results; a run's counts and its parent
    portal notice read it without making them."""
    ops = [
        Create(record=Person(sync_key=f"p{n}", children="c1" if n == 1 else ""), identity="")
        for n in range(CHUNK + 3)
    ]
    block = block_of(ops)
    unreached = Unreached(block, 2, len(ops))
    expected = [OperationResult(operation=op, outcome=Outcome.SKIPPED) for op in ops[2:]]
    assert len(unreached) == len(expected)
    assert list(unreached) == expected
    assert unreached[0] == expected[0]
    assert unreached[-1] == expected[-1]
    assert unreached[3:6] == expected[3:6]
    sent = [OperationResult(operation=op, outcome=Outcome.CONFIRMED, attempts=1) for op in ops[:2]]
    run = RunResult(
        run_id="r", plan=generated_plan(), results=Ops(sent, unreached), started_at="", finished_at=""
    )
    assert run.count(Outcome.SKIPPED) == len(expected)
    assert run.count(Outcome.CONFIRMED) == 2
    assert run.results == (*sent, *expected)
    assert run.parent_portal_disabled() == ()


@given(st.binary(max_size=200), st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=1, max_size=8))
def test_a_byte_set_finds_exactly_its_characters(data: bytes, characters: str) -> None:
    """Runs of consecutive codes compared at once find what a byte-by-byte look finds, no more."""
    found = ByteSet(characters).found_in(np.frombuffer(data, dtype=np.uint8))
    assert found == any(chr(byte) in characters for byte in data)


@pytest.mark.parametrize(
    "characters", ['"\\' + "".join(map(chr, range(0x20))), ',"\r\n\x00', "=+-@\t\r", "abcxyz", "\x7f"]
)
def test_a_byte_set_tells_every_byte(characters: str) -> None:
    """Each of the 256 byte values alone, and beside a byte that is not in the set."""
    found = ByteSet(characters)
    other = next(code for code in range(0x80) if chr(code) not in characters)
    for byte in range(256):
        expected = byte < 0x80 and chr(byte) in characters
        assert found.found_in(np.array([byte], dtype=np.uint8)) is expected
        assert found.found_in(np.array([other, byte, other], dtype=np.uint8)) is expected
