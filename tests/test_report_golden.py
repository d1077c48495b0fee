"""The report writers write exactly what they wrote before they were made fast (issue 16): every format
of the sample sets' plans and of a generated plan and run with every kind of entry, byte for byte against
golden files captured from the old writers (tests/report_golden.py says how they were made)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.models import ChangeOperation, Create, FieldChange, Group, Membership, Person, Plan, Update
from sync.models.kinds import PERSON
from sync.report import as_csv, json_ops
from sync.report.as_csv import PLAN_CSV_HEADER, neutralise_cell, plan_csv, write_csv
from sync.report.as_json import LINE_SEP, to_json
from sync.report.meta import HeldRow
from sync.report.render import plan_to_dict, render_plan, render_run, run_to_dict
from tests.report_golden import GOLDEN, generated_meta, generated_plan, generated_run, renderings, stored
from tests.reports import make_person
from tests.test_blocks import columnar

RENDERINGS = dict(renderings())


@pytest.mark.parametrize("file_name", sorted(RENDERINGS))
def test_rendering_equals_the_old_writers(file_name: str) -> None:
    """Each rendering is byte for byte the golden file the old writers wrote."""
    render: Callable[[], str] = RENDERINGS[file_name]
    assert stored(render()) == (GOLDEN / file_name).read_bytes().decode("utf-8")


def test_generated_plan_json_parses_to_what_the_old_writer_wrote() -> None:
    """The generated plan's JSON (every operation type, held, drift, rejects, conflicts) parses to the
    old writer's document, key order included."""
    plan = generated_plan()
    new = json.loads(render_plan(plan, fmt="json", meta=generated_meta(plan)))
    old = json.loads((GOLDEN / "generated.json").read_text(encoding="utf-8"))
    assert new == old
    assert list(new) == list(old)
    assert [list(op) for op in new["operations"]] == [list(op) for op in old["operations"]]
    kinds = {(op["op"], op["object"]) for op in new["operations"] + new["deletions"]}
    assert {("create", "person"), ("update", "group"), ("changeIdentifier", "membership")} <= kinds
    assert {("delete", "person"), ("delete", "group"), ("delete", "membership")} <= kinds


def _many(n: int) -> Plan:
    """A plan of `n` person creates with every person field filled, some non-ASCII."""
    later = dict.fromkeys(PERSON.fields[-PERSON.record.LATER_FIELDS :], "x")
    creates = tuple(
        Create(record=make_person(f"k{i:05d}", given_name=f"Åse-{i}", **later), identity=f"id-{i}")
        for i in range(n)
    )
    return Plan(operations=creates, deletions=(), rejects=(), conflicts=())


def test_a_large_plan_lists_every_operation_in_json_and_csv() -> None:
    """JSON and CSV stay complete past the Markdown and HTML cap, each create with its record's fields."""
    plan = _many(5100)
    meta = generated_meta(plan)
    document = json.loads(render_plan(plan, fmt="json", meta=meta))
    assert len(document["operations"]) == 5100
    last = document["operations"][-1]
    assert last["syncKey"] == "k05099"
    assert last["person"] == dict(
        zip(PERSON.fields, plan.operations[-1].record.values().values(), strict=True)
    )
    rows = list(csv.reader(io.StringIO(render_plan(plan, fmt="csv", meta=meta))))
    assert len(rows) == 1 + 5100
    assert rows[-1][:2] == ["create", "k05099"]
    assert isinstance(plan.operations[0].record, Person)


def test_json_lines_are_the_encoded_dicts_even_for_a_value_that_is_not_text() -> None:
    """The JSON plan's lines equal its dicts encoded by the stdlib, and a record holding a value that is
    not text (which a template cannot fill) is encoded from its dict as before."""
    plan = generated_plan()
    meta = generated_meta(plan)
    assert render_plan(plan, fmt="json", meta=meta) == to_json(plan_to_dict(plan, meta=meta))
    odd = Person(sync_key="k1", username=7, given_name=None)  # type: ignore[arg-type]
    plan = Plan(operations=(Create(record=odd, identity="id-1"),), deletions=(), rejects=(), conflicts=())
    text = render_plan(plan, fmt="json", meta=meta)
    assert text == to_json(plan_to_dict(plan, meta=meta))
    assert '"username": 7, "given_name": null' in text


_CELL_TEXT = st.text(alphabet=st.sampled_from(list("ab,\"'\r\n\t =+-@ø😀\x00;|")), max_size=5)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.one_of(_CELL_TEXT, st.integers(-5, 5), st.none()), max_size=5), max_size=4))
def test_csv_rows_are_what_the_csv_module_writes_of_the_neutralised_cells(rows: list[list[object]]) -> None:
    """write_csv writes exactly what csv.writer writes of every cell neutralised (blank cells as they
    are), whatever the cells hold: commas, quotes, line breaks, formula characters, numbers, None."""
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(("h1", "h2"))
    writer.writerows([neutralise_cell(str(cell)) if cell != "" else "" for cell in row] for row in rows)
    assert write_csv(("h1", "h2"), rows) == expected.getvalue()


def test_run_json_lines_are_the_encoded_dicts_even_for_a_value_that_is_not_text() -> None:
    """The JSON run's lines equal its dicts encoded by the stdlib, and a result whose attempts are not an
    int (which a template does not write) is encoded from its dict as before."""
    plan = generated_plan()
    meta = generated_meta(plan)
    run = generated_run(plan)
    assert render_run(run, fmt="json", meta=meta) == to_json(run_to_dict(run, meta=meta))
    odd = dataclasses.replace(run, results=(dataclasses.replace(run.results[0], attempts=True),))
    text = render_run(odd, fmt="json", meta=meta)
    assert text == to_json(run_to_dict(odd, meta=meta))
    assert '"attempts": true' in text


def test_the_json_lines_leave_unescaped_exactly_what_the_stdlib_encoder_leaves() -> None:
    """Of every code point, the JSON lines put between quotes as it is exactly those the stdlib encoder
    (ensure_ascii=False) writes as they are: a text holding any other is encoded by the stdlib."""
    escaped = [chr(c) for c in range(0x110000) if json_ops._ESCAPED.search(chr(c))]
    assert escaped == [chr(c) for c in range(0x110000) if encode_basestring(chr(c)) != f'"{chr(c)}"']


@settings(max_examples=100, deadline=None)
@given(st.lists(_CELL_TEXT, min_size=1, max_size=40), st.integers(1, 5))
def test_json_lines_of_runs_are_the_stdlib_encoding_of_each_operation(names: list[str], chunk: int) -> None:
    """The JSON lines written run by run of one shape, a chunk of texts searched at once (a chunk holding
    a text to escape, one that does not, runs of several shapes), are the stdlib's encoding of each
    operation's dict, one by one."""
    operations: list[ChangeOperation] = [
        Create(record=make_person(f"p{i}", given_name=name), identity=name)
        if i % 7 != 3
        else Create(record=Group(sync_key=f"g{i}", name=name, type="Course", parent=""))
        for i, name in enumerate(names)
    ]
    operations.append(
        Update(
            record=make_person("u", role=names[0]),
            identity="u",
            changes=(FieldChange(field="role", old="", new=names[0]),),
        )
    )

    def refused(_: object) -> list[str]:
        raise AssertionError("every value is text: no operation's dict is encoded")

    def lines_of(pieces: Iterable[list[str] | bytes]) -> list[str]:
        """The lines of `operation_lines`' pieces (a block's chunk comes as bytes, its lines joined)."""
        return [
            line
            for piece in pieces
            for line in (piece.decode("utf-8").split(LINE_SEP) if isinstance(piece, bytes) else piece)
        ]

    lines = lines_of(json_ops.operation_lines(operations, fallback=refused, joined_by=LINE_SEP, chunk=chunk))
    in_columns = json_ops.operation_lines(
        columnar(operations), fallback=refused, joined_by=LINE_SEP, chunk=chunk
    )
    assert lines_of(in_columns) == lines
    plan = Plan(operations=tuple(operations), deletions=(), rejects=(), conflicts=())
    dicts = plan_to_dict(plan)["operations"]
    assert isinstance(dicts, list)
    assert lines == [json.dumps(d, ensure_ascii=False) for d in dicts]
    assert lines == [json_ops.operation_line(op) for op in operations]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_CELL_TEXT, min_size=3, max_size=3), min_size=1, max_size=30), st.booleans())
def test_plan_csv_lines_written_run_by_run_are_what_the_csv_module_writes(
    rows: list[list[str]], held: bool
) -> None:
    """Runs of creates of one shape (their texts searched and neutralised at once) give the lines the
    csv module writes of each row's cells neutralised: a run holding a text to quote, a formula, a
    NUL, or none; with a held operation's reason and without."""
    operations = tuple(
        Create(record=make_person(f"p{i}", given_name=name, phone=phone), identity=identity)
        for i, (name, phone, identity) in enumerate(rows)
    )
    plan = Plan(operations=operations, deletions=(), rejects=(), conflicts=())
    reasons = (HeldRow("Create person", "create", "person", "p0", "held: limit, =1"),) if held else ()
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(PLAN_CSV_HEADER)
    for op in plan.operations:
        row = as_csv._operation_row(op, reasons[0].reason if reasons and op.sync_key == "p0" else "")
        writer.writerow([neutralise_cell(str(cell)) if cell != "" else "" for cell in row])
    assert plan_csv(plan, reasons) == expected.getvalue()
    # the same creates kept as columns (as the diff keeps them): filled by Arrow where they can be
    in_columns = dataclasses.replace(plan, operations=columnar(operations))
    assert plan_csv(in_columns, reasons) == expected.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.lists(_CELL_TEXT, min_size=4, max_size=4), st.sampled_from(["", "why, =x", "held: limit"]))
def test_plan_csv_lines_are_what_the_csv_module_writes_of_each_row(texts: list[str], reason: str) -> None:
    """Each operation's plan CSV line (filled from its shape's template where it can be) is what the csv
    module writes of its row's cells neutralised, whatever its texts hold."""
    name, email, role, children = texts
    held = (HeldRow("Update person", "update", "person", "p2", reason),)
    plan = Plan(
        operations=(
            Create(record=make_person("p1", given_name=name, email=email, children=children), identity=role),
            Update(
                record=make_person("p2", role=role),
                identity=name,
                changes=(FieldChange(field="role", old=email, new=role),),
            ),
            Create(record=Group(sync_key=name or "g", name=name, type="Course", parent=email)),
            Create(record=Membership(sync_key="m", group=email, person=name, role=role, active="true")),
        ),
        deletions=(),
        rejects=(),
        conflicts=(),
    )
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(PLAN_CSV_HEADER)
    for op in plan.operations:
        row = as_csv._operation_row(op, reason if op.sync_key == "p2" else "")
        writer.writerow([neutralise_cell(str(cell)) if cell != "" else "" for cell in row])
    assert plan_csv(plan, held) == expected.getvalue()
    assert (
        plan_csv(dataclasses.replace(plan, operations=columnar(plan.operations)), held) == expected.getvalue()
    )
