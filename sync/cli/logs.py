"""structlog set-up: JSON lines for schedulers and files, a readable console on a terminal.

Every event passes `redact`, so a key that names a secret never reaches an output.
Imports structlog only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, Literal, TextIO

import structlog

__all__ = ["LogFormat", "configure_logging", "redact"]

LogFormat = Literal["json", "console"]

_SECRET_WORDS: Final = ("password", "passwd", "secret", "token")


def redact(_logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret (password, token, ...) with "[redacted]"."""
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "[redacted]"
    return event


class _Stderr:
    """Writes to whatever `sys.stderr` is at the moment (tests and embedders swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(*, fmt: LogFormat, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Configure structlog once per process.

    Args:
        fmt: "json" (one JSON object a line) or "console" (human-readable).
        stream: where events go (default stderr).
        level: the least severe level written.
    """
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream or _Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
