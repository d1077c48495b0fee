"""The `ims-sync` command group: global options (config file, logging), the commands, `main` and the
mapping of errors to exit codes. `sync.cli.app:main` is the console script.

Exit codes (for schedulers): 0 all done; 1 some operations failed or rows were rejected (recorded);
2 bad usage, config, input or state in use; 3 stopped by a safety limit; 4 IMS ES unreachable.

Each command lives in a module of its own and imports its heavy stages (pandas, zeep) when it runs;
the emulator is imported only when `ims-sync emulator` is asked for.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

import click

from sync import __version__
from sync.cli.logs import configure_logging
from sync.cli.mapping import mapping
from sync.cli.options import load_config
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, Output, exit_message, exit_of, fail
from sync.cli.plan import plan, validate
from sync.cli.reconcile import reconcile
from sync.cli.run import run
from sync.cli.snapshot import snapshot
from sync.cli.verify import verify
from sync.errors import SyncError

__all__ = ["cli", "main"]


class _Commands(click.Group):
    """The command group; `emulator` and `emulator-admin` are imported only when asked for (the
    emulator loads TLS and HTTP code)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "emulator", "emulator-admin"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "emulator" and cmd_name not in self.commands:
            from sync.emulator.command import emulator  # noqa: PLC0415

            self.add_command(emulator)
        if cmd_name == "emulator-admin" and cmd_name not in self.commands:
            from sync.emulator.admin import emulator_admin  # noqa: PLC0415

            self.add_command(emulator_admin)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: ims-sync plan samples/oneroster/users.csv --mapping oneroster-users --state ./state",
)
@click.version_option(__version__, prog_name="ims-sync")
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="IMS_SYNC_CONFIG",
    callback=load_config,
    is_eager=True,
    expose_value=False,
    help="TOML config file ([sync] options, [credentials], [[pause]] windows); flags and environment "
    "override it.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    envvar="IMS_SYNC_LOG_FORMAT",
    default=None,
    help="json: one JSON event a line (default without a terminal); console: readable (default on one).",
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="IMS_SYNC_LOG_FILE",
    default=None,
    help="Append log events (JSON lines) to this file instead of standard error.",
)
def cli(log_format: str | None, log_file: Path | None) -> None:
    """Synchronise a school roster (CSV) into itslearning over IMS Enterprise Services v1.0.

    Start with `validate`, review a dry run with `plan`, then `run`; `reconcile` checks the journal.
    """
    stream: TextIO | None = None
    if log_file is not None:
        try:
            # Closed by `main`, after the reason for a failure has been logged to it too.
            stream = log_file.open("a", encoding="utf-8")
        except OSError as exc:
            fail(EXIT_USAGE, f"cannot open log file {log_file}: {exc.strerror}")
        fmt = log_format or "json"
    else:
        fmt = log_format or ("console" if sys.stderr.isatty() else "json")
    Output.json = fmt == "json"
    Output.log_file = stream
    Output.terminal = fmt == "console" and sys.stderr.isatty()
    # On a terminal only warnings interrupt the progress bar; a log file or cron gets every event.
    level = logging.WARNING if fmt == "console" and log_file is None else logging.INFO
    configure_logging(fmt="json" if fmt == "json" else "console", stream=stream, level=level)


for _command in (validate, plan, run, reconcile, verify, snapshot, mapping):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (also for tests: `main([...])`)."""
    Output.reset()
    try:
        return _main(argv)
    finally:
        Output.close()


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="ims-sync", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except (Exit, click.exceptions.Abort, SyncError) as exc:
        code, message = exit_of(exc) or (EXIT_FAILED, str(exc))
        if message or not isinstance(exc, Exit):
            exit_message(code, message)
        return code
    return EXIT_OK
