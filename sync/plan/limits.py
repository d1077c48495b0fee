"""The safety limits' settings: one bound per kind of object and operation type, and per school.

`--limit KEY=VALUE` (repeatable) and the config file's `[limits]` table name them the same way:

- KEY is `SCOPE.TYPE` or `SCOPE` (every type): SCOPE a kind (`person`, `group`, `membership`), `*`
  (every kind) or `school` (each school's persons and memberships); TYPE an operation type (`create`,
  `update`, `changeIdentifier`, `delete`, `deactivate`) or `*`.
- VALUE is a count (`50`), a share of the snapshot (`5%`: at least the floor, at most
  `--max-change-count` for a kind; at least `SCHOOL_FLOOR` for a school) or `off` (no limit).

Without a rule a kind's updates, identifier changes, deletions and deactivations are limited to
`--max-change-share` of its snapshot (at least 10, at most `--max-change-count`), a school's to
`SCHOOL_SHARE` of its persons or memberships, or `--max-change-share` when that is more (at least
`SCHOOL_FLOOR`; `--max-change-share 1` lifts it); creates are not limited.
The rule for an operation: one from the command line before one from the config file; then the most
specific (`person.delete` before `person` before `*.delete` before `*`); then the last given.

Pure: imports nothing but the value types of `sync.models`; no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sync.models.kinds import KINDS, OPERATION_TYPES, OperationType

__all__ = [
    "LIMITED_TYPES",
    "SCHOOL",
    "SCHOOL_FLOOR",
    "SCHOOL_KINDS",
    "SCHOOL_SHARE",
    "Bound",
    "Rule",
    "parse_bound",
    "parse_rule",
    "rules_text",
]

#: The operation types limited when no rule says otherwise (creates are not).
LIMITED_TYPES: Final[frozenset[OperationType]] = frozenset(OPERATION_TYPES) - {"create"}
#: The scope of the per-school limits, and what it measures: each school's persons and memberships.
SCHOOL: Final = "school"
SCHOOL_KINDS: Final = ("person", "membership")
SCHOOL_SHARE: Final = 0.25
SCHOOL_FLOOR: Final = 5

_SCOPES: Final = (*(kind.name for kind in KINDS), "*", SCHOOL)
_VALUE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(%?)")


@dataclass(frozen=True, slots=True)
class Bound:
    """A limit on one count: a fixed `count`, a `share` of a snapshot, or neither (no limit)."""

    count: int | None = None
    share: float | None = None

    def of(self, size: int, *, floor: int, cap: int | None = None) -> int | None:
        """The limit for a snapshot of `size` (None: no limit): a share is at least `floor`, at most `cap`."""
        if self.count is not None:
            return self.count
        if self.share is None:
            return None
        limit = max(floor, math.ceil(self.share * size))
        return limit if cap is None else min(cap, limit)

    def text(self) -> str:
        """As `--limit` takes it: "50", "5%", "off"."""
        if self.count is not None:
            return str(self.count)
        return "off" if self.share is None else f"{self.share * 100:g}%"


def parse_bound(value: object) -> Bound:
    """A rule's VALUE: a whole number, "N%" (0 to 100) or "off".

    Raises:
        ValueError: anything else (a float such as 0.05 is refused: write "5%").
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Bound(count=value)
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if text in ("off", "none"):
        return Bound()
    match = _VALUE.fullmatch(text)
    if match is not None and match[2] and float(match[1]) <= 100:
        return Bound(share=float(match[1]) / 100)
    if match is not None and not match[2] and match[1].isdigit():
        return Bound(count=int(match[1]))
    raise ValueError(f"{value!r} is not a limit: give a count (50), a share (5%) or off")


@dataclass(frozen=True, slots=True)
class Rule:
    """One `--limit` or `[limits]` setting: `scope` and `op_type` (either may be "*") and its bound."""

    scope: str
    op_type: str
    bound: Bound
    from_flag: bool = False

    @property
    def key(self) -> str:
        return self.scope if self.op_type == "*" else f"{self.scope}.{self.op_type}"

    def matches(self, scope: str, op_type: str) -> bool:
        """Whether the rule covers `op_type` operations in `scope` (a kind's name, or SCHOOL)."""
        in_scope = self.scope == scope or (self.scope == "*" and scope != SCHOOL)
        return in_scope and self.op_type in (op_type, "*")

    def rank(self) -> tuple[bool, bool, bool]:
        """Flags before the config file; then a named scope, then a named type."""
        return (self.from_flag, self.scope != "*", self.op_type != "*")


def parse_rule(key: str, value: object, *, from_flag: bool = False) -> Rule:
    """A rule from its KEY and VALUE.

    Raises:
        ValueError: an unknown scope or operation type, or a bad value.
    """
    scope, _, op_type = key.strip().partition(".")
    op_type = op_type or "*"
    if scope not in _SCOPES:
        raise ValueError(f"{key!r}: the scope {scope!r} is not one of {', '.join(_SCOPES)}")
    if op_type not in (*OPERATION_TYPES, "*"):
        raise ValueError(f"{key!r}: {op_type!r} is not an operation type ({', '.join(OPERATION_TYPES)}, *)")
    return Rule(scope=scope, op_type=op_type, bound=parse_bound(value), from_flag=from_flag)


def rules_text(rules: Iterable[Rule]) -> str:
    """The rules as the fingerprint and the reports name them ("" for none): flags' after the file's."""
    return ",".join(
        f"{rule.key}={rule.bound.text()}"
        for rule in sorted(rules, key=lambda r: r.from_flag)  # (stable: each source in its order)
    )
