"""Times as the state store writes them: aware UTC datetimes as fixed-width ISO 8601 text.

Pure: imports nothing but the standard library.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "now", "parse_time"]


def iso(moment: datetime) -> str:
    """ISO 8601 UTC text with fixed width, so that text order is time order."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the state store needs aware datetimes (UTC), got a naive one")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str | None) -> datetime | None:
    """A stored time (None stays None)."""
    return None if text is None else datetime.fromisoformat(text)


def now() -> datetime:
    """The current time, aware (UTC)."""
    return datetime.now(UTC)
