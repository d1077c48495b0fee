"""One operation (a plan's) or one result (a run's) as one line of the JSON report, written from a
template per shape (operation type and kind of record) instead of a dict per operation (issue 16: a
first night has 10^5-10^6 of them).

A shape's template is the line `json.JSONEncoder(ensure_ascii=False).encode` wrote of the operation's
dict (`as_json._operation_dict` and `_result_dict` define what a line holds), with a slot for each text.
Texts holding a character the encoder escapes go through its own escaping (`encode_basestring`), the
others between quotes as they are (as it writes them), so the bytes are the encoder's. A value that is
not text (never, in a plan) makes `TypeError`: the caller then encodes the dicts instead.

orjson is not used: it writes either compact JSON (`{"a":1}`) or every key on a line of its own, and
the report's lines are `{"a": 1, "b": 2}` (the stdlib's separators), which no option of it gives.
Pure: imports only the models and the report's `ops`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from json.encoder import encode_basestring
from typing import Final, NamedTuple

from sync.models import Delete, FieldChange, Operation, OperationResult, split_children
from sync.models.blocks import Block, runs
from sync.models.kinds import kind_of, operation_type
from sync.report.arrow_lines import ByteSet, any_byte, filled
from sync.report.ops import texts_of

__all__ = ["changes_json", "operation_line", "operation_lines", "result_line"]

#: What a shape makes of an operation: its line.
_Line = Callable[[Operation], str]


class _Writer(NamedTuple):
    """A shape's line writer, one operation at a time (`line`) and a run of them at once (`lines`)."""

    line: _Line
    lines: Callable[[Sequence[Operation]], list[str]]
    columns: Callable[[Block, int, int, str], list[str] | bytes]


_CHANGE: Final = '{"field": %s, "old": %s, "new": %s}'


def changes_json(changes: tuple[FieldChange, ...]) -> str:
    """A list of field changes as the JSON report writes it."""
    if not changes:
        return "[]"
    enc = encode_basestring
    return "[" + ", ".join([_CHANGE % (enc(c.field), enc(c.old), enc(c.new)) for c in changes]) + "]"


def _const(value: str) -> str:
    """A text as a template's constant part (`%` doubled)."""
    return encode_basestring(value).replace("%", "%%")


def _key(name: str) -> str:
    """`"name": ` as a template's constant part."""
    return _const(name) + ": "


def _shape(op: Operation) -> _Writer:
    """The line writer of every operation of `op`'s type and kind (what `_operation_dict` puts where)."""
    name, kind = operation_type(op), kind_of(op)
    deletion = name == "delete"
    parts = [_key("op") + _const(name), _key("object") + _const(kind.name)]
    attributes: list[str] = []  # the operation's texts, one per _SLOT of the template, in order

    def text(key: str, attribute: str) -> None:
        parts.append(_key(key) + _SLOT)
        attributes.append(attribute)

    if getattr(op, "new_id", None) is not None:
        for key, attribute in (("syncKey", "new_id"), ("oldId", "old_id"), ("newId", "new_id")):
            text(key, attribute)
    else:
        text("syncKey", "record.sync_key")
    if kind.identity:  # an operation without one (none is) has the "" `identity_of` gives it
        if hasattr(op, "identity"):
            text("identity", "identity")
        else:
            parts.append(_key("identity") + '""')
    if deletion:
        text("reason", "reason")
    if not (isinstance(op, Delete) and not kind.deactivatable):
        parts.append(_key(kind.name) + "{" + ", ".join(_key(f) + _SLOT for f in kind.fields) + "}")
        attributes += (f"record.{f}" for f in kind.fields)
    elif deletion:
        for ref in kind.references:
            text(ref.field, f"record.{ref.field}")
    with_changes = not deletion and hasattr(op, "changes")
    if not deletion:
        parts.append(_key("changes") + ("%s" if with_changes else "[]"))
    return _writer("{" + ", ".join(parts) + "}", attributes, with_changes)


def _writer(template: str, attributes: list[str], with_changes: bool) -> _Writer:
    """A line writer filling `template`'s slots with the texts of the operation's `attributes`, then
    its changes when `with_changes`. Texts without a character the encoder escapes (the common case)
    are put between quotes as they are: one search instead of one encoding per text."""
    encoded, plain = template.replace(_SLOT, "%s"), template.replace(_SLOT, '"%s"')
    getter = texts_of(attributes)

    def line(op: Operation) -> str:
        return _filled(plain, encoded, getter(op))

    def line_with_changes(op: Operation) -> str:
        return _filled(plain, encoded, getter(op), changes_json(op.changes))  # type: ignore[union-attr]

    def fill(texts: list[tuple[str, ...]]) -> list[str]:
        """The lines of `texts` (no changes): one search for the escaped characters for all of them
        instead of one per operation, and the template filled at C speed."""
        if _ESCAPED.search("".join(chain.from_iterable(texts))) is None:  # TypeError: not text
            return list(map(plain.__mod__, texts))
        return [_filled(plain, encoded, each) for each in texts]

    def lines(ops: Sequence[Operation]) -> list[str]:
        return fill(list(map(getter, ops)))

    pieces = template.split(_SLOT)
    parts = [pieces[0] + '"', *(f'"{piece}"' for piece in pieces[1:-1]), '"' + pieces[-1]]
    parts = [part.replace("%%", "%") for part in parts]  # (the constants as %-format holds them)

    def columns(block: Block, start: int, stop: int, joined_by: str) -> list[str] | bytes:
        """The lines of a block's operations from `start` to `stop`, their texts read off its columns:
        joined by `joined_by` as UTF-8 bytes, filled by Arrow, when no text holds a character to escape."""
        arrays = [block.column(name).slice(start, stop - start) for name in attributes]
        if not with_changes and not any_byte(arrays, _ESCAPED_BYTES):
            return filled(parts, arrays, end=joined_by, drop_last_end=True)
        return fill(list(zip(*(block.texts(name, start, stop) for name in attributes), strict=True)))

    if with_changes:
        return _Writer(line_with_changes, lambda ops: list(map(line_with_changes, ops)), columns)
    return _Writer(line, lines, columns)


#: How many operations' texts `operation_lines` searches at once (a few MB of text).
_CHUNK: Final = 8192


def _filled(plain: str, encoded: str, texts: tuple[str, ...], *written: str) -> str:
    """`texts` in a template's slots, then the `written` JSON: between quotes as they are when none
    holds a character the encoder escapes (`plain`), else each through its escaping (`encoded`)."""
    if _ESCAPED.search("".join(texts)) is None:
        return plain % (*texts, *written)
    return encoded % (*map(encode_basestring, texts), *written)


#: Where a text goes in a template being built (a NUL: never in an encoded constant).
_SLOT: Final = "\x00"
#: The characters `encode_basestring` escapes (ensure_ascii=False): quote, backslash, controls.
_ESCAPED: Final = re.compile(r'["\\\x00-\x1f]')
#: The same characters, to look up byte by byte in a block's columns (`arrow_lines.any_byte`).
_ESCAPED_BYTES: Final = ByteSet('"\\' + "".join(map(chr, range(0x20))))


_SHAPES: Final[dict[tuple[type, type], _Writer]] = {}


def _writer_of(op: Operation) -> _Writer:
    shape = (type(op), type(op.record))
    writer = _SHAPES.get(shape)
    if writer is None:
        writer = _SHAPES[shape] = _shape(op)
    return writer


def operation_line(op: Operation) -> str:
    """The operation's line of the JSON report (its shape's writer, made on first use).

    Raises:
        TypeError: a value is not text (the caller encodes the operation's dict instead).
    """
    return _writer_of(op).line(op)


def operation_lines(
    operations: Sequence[Operation],
    *,
    fallback: Callable[[Sequence[Operation]], list[str]],
    joined_by: str,
    chunk: int = _CHUNK,
) -> Iterator[list[str] | bytes]:
    """Each operation's `operation_line`, a list of up to `chunk` of them at a time (the report is
    written as they come), run by run of one shape (a first night's runs are 10^5 creates long), the
    texts of a chunk searched at once for characters to escape. A block's chunk without such a
    character comes as one piece of UTF-8 bytes, its lines joined by `joined_by` (`arrow_lines`). A
    chunk with a value that is not text gets `fallback`'s lines of its operations (their dicts,
    encoded) instead.
    """
    for _, run in runs(operations):
        writer = _writer_of(run[0])
        for start in range(0, len(run), chunk):
            stop = min(len(run), start + chunk)
            try:
                if isinstance(run, Block):
                    yield writer.columns(run, start, stop, joined_by)
                else:
                    yield writer.lines(run[start:stop])
            except TypeError:  # (a value that is not text: never in a plan)
                yield fallback(run[start:stop])


# --- a run's results -----------------------------------------------------------------------------


class _ResultShape(NamedTuple):
    """What every result of one operation type and kind writes before its outcome."""

    template: str  # the line's start: op, object, keys, a record without identity (a membership)
    plain: str  # the same with quotes around its slots (for texts the encoder leaves as they are)
    texts: Callable[[Operation], tuple[str, ...]]
    links: str  # the record's field of links written as a list (a person's children), "" for none


def _result_shape(op: Operation) -> _ResultShape:
    """The start of every result line of `op`'s type and kind (what `as_json._result_dict` puts where)."""
    kind = kind_of(op)
    parts = [_key("op") + _const(operation_type(op)), _key("object") + _const(kind.name)]
    attributes = ["new_id", "old_id", "new_id"] if getattr(op, "new_id", None) is not None else ["sync_key"]
    parts += [_key(key) + _SLOT for key in ("syncKey", "oldId", "newId")[: len(attributes)]]
    shown = not (isinstance(op, Delete) and not kind.deactivatable)
    if shown and not kind.identity:
        parts.append(_key(kind.name) + "{" + ", ".join(_key(f) + _SLOT for f in kind.fields) + "}")
        attributes += (f"record.{f}" for f in kind.fields)
    links = kind.links if shown and kind.identity else ""
    template = "{" + ", ".join(parts)
    return _ResultShape(
        template.replace(_SLOT, "%s"), template.replace(_SLOT, '"%s"'), texts_of(attributes), links
    )


_RESULT_SHAPES: Final[dict[tuple[type, type], _ResultShape]] = {}
_TAIL: Final = ', "outcome": %s, "messageIdentifier": %s, "status": %s, "error": %s, "attempts": %s}'


def result_line(result: OperationResult, status: str) -> str:
    """A run's result as its line of the JSON report, `status` its status already encoded.

    Raises:
        TypeError: a value is not text, or attempts no int (the caller encodes the result's dict).
    """
    op = result.operation
    key = (type(op), type(op.record))
    shape = _RESULT_SHAPES.get(key)
    if shape is None:
        shape = _RESULT_SHAPES[key] = _result_shape(op)
    enc = encode_basestring
    line = _filled(shape.plain, shape.template, shape.texts(op))
    if shape.links:
        children = getattr(op.record, shape.links)
        if children:
            line += f", {enc(shape.links)}: [" + ", ".join(map(enc, split_children(children))) + "]"
    attempts = result.attempts
    if type(attempts) is not int:
        raise TypeError("attempts is no int")
    outcome = enc(result.outcome.value)
    return line + _TAIL % (outcome, enc(result.message_identifier), status, enc(result.error), attempts)
