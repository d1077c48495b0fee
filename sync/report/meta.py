"""What every report is given: its format, its header context (`ReportMeta`) and its table cap.

Pure: imports nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, TypeAlias, get_args
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "FORMATS",
    "MAX_TABLE_ROWS",
    "DriftRow",
    "Format",
    "HeldRow",
    "ReportMeta",
    "check_format",
    "meta_items",
    "safe_endpoint",
]

Format: TypeAlias = Literal["json", "csv", "md", "html"]


class HeldRow(NamedTuple):
    """An operation a run does not send (`--only`, a pause window, a safety limit), as reports show it
    (`ops.held_rows`)."""

    operation: str  # the tables' label ("Update person")
    op: str  # its type, as the JSON and CSV name it ("update")
    object: str  # its kind of object ("person")
    sync_key: str
    reason: str
    cause: str = ""  # "only", "pause" or "limit" (`sync.plan.selection.HELD_CAUSES`)


class DriftRow(NamedTuple):
    """A planned operation that comes from drift `verify --repair` recorded, as reports show it."""

    object: str  # its kind of object ("person")
    sync_key: str
    drift: str  # "missing" or "changed"


#: Every format the renderers accept, for CLI choices.
FORMATS: Final[tuple[Format, ...]] = get_args(Format)

#: Rows shown per table in Markdown and HTML; the rest is counted in a visible note (CSV has them all).
MAX_TABLE_ROWS: Final = 5000


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportMeta:
    """Context shown in a report's header, supplied by the CLI (the renderers read no clock).

    `endpoint` is shown without any user:password@ part, query or fragment, so a URL that carries
    credentials cannot leak them into a report.
    """

    title: str
    roster: str
    mapping: str
    state: str
    generated_at: str
    endpoint: str = ""
    tool_version: str
    sending: str = ""  # which operation types the run sends, when not all (`--only`, a pause window)
    held: tuple[HeldRow, ...] = ()  # what the run holds back, and why
    fingerprint: str = ""  # a plan's fingerprint (sync.plan.fingerprint); "" for none
    fingerprint_parts: tuple[tuple[str, str], ...] = ()  # what it was hashed from, in order
    drift: tuple[DriftRow, ...] = ()  # the plan's operations that come from drift (verify --repair)

    def as_dict(self) -> dict[str, object]:
        """The meta under the names the JSON reports use (endpoint sanitised); `sending` and `held`
        only when the run sends less than the plan, `fromDrift` only when operations come from drift."""
        restricted: dict[str, object] = {"sending": self.sending} if self.sending else {}
        if self.held:
            restricted["held"] = [
                {
                    "op": row.op,
                    "object": row.object,
                    "syncKey": row.sync_key,
                    "reason": row.reason,
                    "cause": row.cause,
                }
                for row in self.held
            ]
        if self.drift:
            restricted["fromDrift"] = [
                {"object": row.object, "syncKey": row.sync_key, "drift": row.drift} for row in self.drift
            ]
        return {
            "title": self.title,
            "roster": self.roster,
            "mapping": self.mapping,
            "state": self.state,
            "generatedAt": self.generated_at,
            "endpoint": safe_endpoint(self.endpoint),
            "toolVersion": self.tool_version,
        } | restricted


def safe_endpoint(url: str) -> str:
    """The URL without userinfo, query or fragment (the places a secret could hide)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparseable endpoint)"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def meta_items(meta: ReportMeta, extra: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The header's label/value pairs, in order, without the empty ones (endpoint sanitised)."""
    items = [
        ("Roster", meta.roster),
        ("Mapping", meta.mapping),
        ("State", meta.state),
        ("Endpoint", safe_endpoint(meta.endpoint)),
        ("Sending", meta.sending),
        ("Fingerprint", meta.fingerprint),
        *extra,
        ("Generated", meta.generated_at),
        ("Tool version", meta.tool_version),
    ]
    return [(label, value) for label, value in items if value]


def check_format(fmt: str) -> None:
    """Raise ValueError unless `fmt` is one of `FORMATS`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
