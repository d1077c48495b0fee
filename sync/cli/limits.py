"""The safety limits as `plan` and `run` apply them: the rules from the config file's `[limits]` and
`--limit`, the breaches found, the breaching operations held (with the flag or fingerprint that releases
them), and the message a run that held some ends with (exit 3).

Imports click, structlog and the pure core (`sync.plan.safety`, `sync.plan.selection`) only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click
import structlog

from sync.models import DeletesMode, Plan
from sync.plan.limits import Rule, rules_text
from sync.plan.safety import Breach, SafetyLimits, SchoolCounts, breaching, check_limits
from sync.plan.selection import Held, Selection

__all__ = [
    "config_rules",
    "hold_breaches",
    "limits_setting",
    "log_breaches",
    "safety_limits",
    "stopped_message",
]

_log = structlog.get_logger(__name__)


def config_rules() -> tuple[Rule, ...]:
    """The config file's `[limits]` rules (none without a config file or table)."""
    options = click.get_current_context().find_root().meta.get("config_options", {})
    rules: tuple[Rule, ...] = options.get("_limits", ())
    return rules


def safety_limits(
    *,
    max_share: float,
    max_count: int,
    flags: Sequence[Rule],
    accept_changes: int = 0,
    accept_deletes: int = 0,
) -> SafetyLimits:
    """The limits a command applies: `--max-change-share`/`--max-change-count` as the default, the
    config file's rules, then the `flags` (`--limit`), and what `--accept-*` accepts."""
    return SafetyLimits(
        max_share=max_share,
        max_count=max_count,
        accept_changes=accept_changes,
        accept_deletes=accept_deletes,
        rules=(*config_rules(), *flags),
    )


def limits_setting(flags: Sequence[Rule]) -> str:
    """The rules as the fingerprint's `limits` setting: "default" when there are none."""
    return rules_text((*config_rules(), *flags)) or "default"


def hold_breaches(
    the_plan: Plan,
    selection: Selection,
    limits: SafetyLimits,
    *,
    deletes: DeletesMode,
    fingerprint: Callable[[], str],
    schools: SchoolCounts | None = None,
) -> tuple[Selection, list[Breach]]:
    """`selection` with the operations that breach a limit held (each with its reason and what releases
    it: the flag, or `--approve` with the plan's `fingerprint`), and the breaches."""
    breaches = check_limits(the_plan, limits, deletes=deletes, sent=selection.send, schools=schools)
    if not breaches:
        return selection, []
    value = fingerprint()
    send, held = breaching(selection.send, breaches, schools)
    return selection.holding(
        send,
        (
            Held(
                operation=op,
                reason=f"{breach.reason()}; release with {breach.release()} or --approve {value}",
                cause="limit",
            )
            for op, breach in held
        ),
    ), breaches


def log_breaches(breaches: Sequence[Breach]) -> None:
    """One `safety_limit` event per breach that holds operations in a run."""
    for breach in breaches:
        _log.error(
            "safety_limit",
            kind=breach.kind,
            limit_key=breach.key,
            school=breach.school or None,
            count=breach.count,
            limit=breach.limit,
        )


def stopped_message(breaches: Sequence[Breach], fingerprint: str) -> str:
    """What a run that held operations at a limit ends with: each breach, then how to approve the plan."""
    lines = [f"safety limit: {breach.message()}" for breach in breaches]
    lines.append(f"plan fingerprint {fingerprint}: to send exactly this plan, add --approve {fingerprint}")
    return "\n".join(lines)
