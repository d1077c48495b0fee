"""Where the command line talks: exit codes, notices to the operator, rich tables, written files.

Exit codes (for schedulers): 0 all done; 1 some operations failed or rows were rejected (recorded);
2 bad usage, config, input or state in use; 3 stopped by a safety limit; 4 IMS ES unreachable.

Imports click, structlog and the log set-up only; rich is imported when a terminal asks for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn, TextIO

import click
import structlog

from sync.cli.logs import configure_logging
from sync.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    RemoteError,
    RosterError,
    StateError,
    SyncError,
)
from sync.models import Plan

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SAFETY",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "SHOWN_LINES",
    "Exit",
    "Output",
    "exit_message",
    "exit_of",
    "fail",
    "notice",
    "now_iso",
    "print_rejects",
    "rich_table",
    "write",
    "write_file",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_SAFETY: Final = 3
EXIT_UNREACHABLE: Final = 4

#: Rejected rows, failed reads and unconfirmed operations listed on stderr; the reports have them all.
SHOWN_LINES: Final = 20

_log = structlog.get_logger(__name__)


class Exit(Exception):
    """Leave the command with an exit code after printing `message` (if any) to stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail(code: int, message: str) -> NoReturn:
    raise Exit(code, message)


class Output:
    """Where this invocation talks: JSON log lines only (cron, --log-format json) or a person at a terminal.

    Set by the group callback; `main` resets it, so one process can run many commands (tests do).
    """

    json = False  # stderr (or the log file) carries structlog JSON lines only
    log_file: TextIO | None = None  # --log-file, open until `main` has logged the exit
    terminal = False  # console format on a TTY: progress bar and rich summary tables

    @classmethod
    def reset(cls) -> None:
        cls.json = cls.terminal = False
        cls.log_file = None

    @classmethod
    def close(cls) -> None:
        """Close the log file, pointing structlog back at stderr (for whatever logs after `main`)."""
        if cls.log_file is not None:
            configure_logging(fmt="json")
            cls.log_file.close()
        cls.reset()


def notice(event: str, message: str, **fields: Any) -> None:
    """Tell the operator something: a plain stderr line on a console, a JSON event under cron."""
    if Output.json:
        _log.info(event, message=message, **fields)
    else:
        click.echo(message, err=True)


def exit_of(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and message an exception ends a command with; None for one that is not ours
    (click's usage errors show themselves; anything else is a bug and keeps its traceback)."""
    match exc:
        case Exit():
            return exc.code, exc.message
        case click.exceptions.Abort():
            return EXIT_FAILED, "aborted"
        case AuthenticationError() | CertificateError():
            return EXIT_USAGE, str(exc)
        case RemoteError():
            return EXIT_UNREACHABLE, f"IMS ES unreachable: {exc}"
        case ConfigError() | RosterError() | StateError():
            return EXIT_USAGE, str(exc)
        case SyncError():
            return EXIT_FAILED, str(exc)
    return None


def exit_message(code: int, message: str) -> int:
    """Say why the command ends: a JSON `exit` event under JSON logging, a plain stderr line otherwise.

    With --log-file the plain line goes to stderr as well, so cron mail and the systemd journal show it.
    """
    if Output.json:
        _log.error("exit", exit_code=code, message=message)
    if not Output.json or Output.log_file is not None:
        click.echo(f"ims-sync: {message}", err=True)
    return code


def rich_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A rich table on stderr (only ever called on a terminal)."""
    from rich.console import Console  # noqa: PLC0415 - rich only for people at a terminal
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(stderr=True).print(table)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


#: Characters written at once: a first night's report (10^8 characters) is encoded piece by piece, not
#: copied whole into bytes beside itself.
_WRITE_CHUNK: Final = 1 << 22


def write_file(path: Path, text: str | Iterable[str | bytes]) -> None:
    """Write `text` (or its pieces as they are made, texts or UTF-8 bytes) to `path` in UTF-8; a file
    that cannot be written ends the command (exit 2).

    The bytes are written by a thread of their own while the next pieces are made (Arrow and the file
    system both let go of the interpreter meanwhile: a first night's JSON report is 450 MB), at most
    `_AHEAD` pieces ahead, in order.
    """
    try:
        with path.open("wb") as file, ThreadPoolExecutor(1, thread_name_prefix="report-writer") as writer:
            ahead: deque[Future[int]] = deque()
            for data in _encoded((text,) if isinstance(text, str) else text):
                ahead.append(writer.submit(file.write, data))
                while len(ahead) > _AHEAD or (ahead and ahead[0].done()):
                    ahead.popleft().result()
            while ahead:
                ahead.popleft().result()
    except OSError as exc:
        fail(EXIT_USAGE, f"cannot write {path}: {exc.strerror}")


#: How many pieces the report writer may lag behind (each at most a few MB).
_AHEAD: Final = 4


def _encoded(pieces: Iterable[str | bytes]) -> Iterator[bytes]:
    """`pieces` as UTF-8 bytes, a text `_WRITE_CHUNK` characters at a time."""
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
            continue
        for start in range(0, len(piece), _WRITE_CHUNK):
            yield piece[start : start + _WRITE_CHUNK].encode("utf-8")


def write(text: str | Iterable[str | bytes], output: Path | None) -> None:
    """A report, export or listing (or its pieces as they are made, texts or UTF-8 bytes): to standard
    output, or to the `--output` file (and say so)."""
    if output is None:
        last: str | bytes = ""
        for piece in (text,) if isinstance(text, str) else text:
            if piece:
                click.echo(piece, nl=False)
                last = piece
        if not (last.endswith(b"\n") if isinstance(last, bytes) else last.endswith("\n")):
            click.echo("")
        return
    write_file(output, text)
    notice("report_written", f"report written to {output}", path=str(output))


def print_rejects(plan: Plan) -> None:
    for reject in plan.rejects[:SHOWN_LINES]:
        notice(
            "row_rejected",
            f"rejected: {reject.file}:{reject.row} [{reject.field}] {reject.reason}",
            where=f"{reject.file}:{reject.row}",
            field=reject.field,
            reason=reject.reason,
        )
    if len(plan.rejects) > SHOWN_LINES:
        more = len(plan.rejects) - SHOWN_LINES
        notice("rows_rejected_more", f"... and {more} more rejected rows (see the report)", more=more)
