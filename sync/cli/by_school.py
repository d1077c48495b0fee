"""`plan --by-school` and `run --report-by-school`: a report per school, written to a folder.

The option, its checks (HTML only, a folder to write to; without it the report target stays a file,
as before) and the writing of `index.html` and the schools' pages (`sync.report.as_school_html`).
Imports click and the CLI's output helpers; the report is imported when one is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from sync.cli.output import EXIT_USAGE, fail, notice, write_file

__all__ = ["by_school_opt", "check_target", "target_opt", "write_folder"]

_F = TypeVar("_F", bound=Callable[..., Any])


def by_school_opt(flag: str) -> Callable[[_F], _F]:
    """The flag asking for a report per school (`--by-school`, `--report-by-school`)."""
    return click.option(
        flag,
        is_flag=True,
        default=False,
        help="Write the HTML report per school into a folder: index.html and one page per school, "
        "each listing only that school's people, classes and rejected rows (in plain words).",
    )


def target_opt(*decls: str, help: str) -> Callable[[_F], _F]:
    """A report file option that may name a folder with the per-school flag (checked by `check_target`)."""
    return click.option(*decls, type=click.Path(path_type=Path), default=None, help=help)


def check_target(
    target: Path | None, fmt: str, *, by_school: bool, option: str, flag: str, format_flag: str
) -> None:
    """Refuse (exit 2) a per-school report that is not HTML or has no folder; without the flag, refuse a
    folder as the report file exactly as a file option does."""
    ctx = click.get_current_context()
    if not by_school:
        if target is not None:
            param = next(p for p in ctx.command.params if p.name == option)
            click.Path(path_type=Path, dir_okay=False).convert(str(target), param, ctx)
        return
    names = next(p for p in ctx.command.params if p.name == option).opts
    if fmt != "html":
        raise click.UsageError(f"{flag} writes HTML pages: add {format_flag} html", ctx)
    if target is None:
        raise click.UsageError(f"{flag} writes a folder of pages: name it with {names[0]} DIR", ctx)
    if target.exists() and not target.is_dir():
        raise click.UsageError(f"{flag}: {target} is a file; {names[0]} must name a folder", ctx)


def write_folder(files: Mapping[str, str], folder: Path) -> None:
    """Write the pages into `folder` (made when missing); a page that cannot be written ends the command."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(EXIT_USAGE, f"cannot write {folder}: {exc.strerror}")
    root = folder.resolve()
    for name, text in files.items():
        path = folder / name
        if path.resolve().parent != root:  # a page's name is made safe; this guards the guarantee
            raise AssertionError(f"report page {name!r} would leave {folder}")
        write_file(path, text)
    notice(
        "report_written",
        f"report written to {folder} ({len(files) - 1} school pages; open index.html)",
        path=str(folder),
    )
