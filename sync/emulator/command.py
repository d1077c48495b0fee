"""`ims-sync emulator`: run the IMS ES emulator in the foreground until SIGINT or SIGTERM.

The CLI face only: it imports the Emulator and its config, nothing of the emulator's inside.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click

from sync.errors import ConfigError

from .config import EmulatorConfig
from .server import Emulator

__all__ = ["emulator", "serve"]

_EPILOG = """\b
Example:
  export IMS_ES_USERNAME=demo IMS_ES_PASSWORD='choose-one'
  ims-sync emulator --port 8443 --state /tmp/emulator.sqlite3 --strict
  ims-sync run users.csv -m generic --state ./state \\
      --endpoint https://127.0.0.1:8443/PersonManagementService.svc \\
      --ca-bundle <the certificate path it prints>
"""


def serve(
    config: EmulatorConfig,
    *,
    stop: threading.Event | None = None,
    echo: Callable[[str], None] = click.echo,
) -> None:
    """Start an emulator, print where it is, serve until SIGINT/SIGTERM (or `stop` is set), stop cleanly.

    Args:
        config: the emulator's settings.
        stop: an event that ends serving when set (signal handlers set it too, in the main thread).
        echo: where the URLs and the certificate path are printed.

    Raises:
        OSError: the address cannot be bound.
    """
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def _on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _on_signal)
    try:
        with Emulator(config) as running:
            echo(f"PMS URL:      {running.pms_url}")
            echo(f"Extended URL: {running.extended_url}")
            echo(f"GMS URL:      {running.gms_url}")
            echo(f"MMS URL:      {running.mms_url}")
            echo(f"Certificate:  {running.ca_path}  (trust it with --ca-bundle)")
            echo("Serving; stop with Ctrl-C (SIGINT) or SIGTERM.")
            while not stop.wait(0.5):
                pass
            injected = running.faults_injected()
        if injected:
            kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(injected.items()))
            echo(f"Faults injected: {kinds}")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _number(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A fault setting's option: a number, 0 unless given."""
    return click.option(name, default=0.0, show_default=True, type=float, help=help_text)


@click.command("emulator", epilog=_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8443, show_default=True, type=int, help="TCP port (0: any free port).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="PEM certificate to serve.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM key of --tls-cert.")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where a generated self-signed pair is written (default: a temporary directory).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file that keeps persons, groups and memberships across restarts (default: in memory).",
)
@click.option(
    "--strict/--lenient",
    default=False,
    show_default=True,
    help="Refuse requests that break the schema (lenient, like production, logs them).",
)
@click.option(
    "--parent-portal/--no-parent-portal",
    default=True,
    show_default=True,
    help="Act as a site with itslearning's parent portal on (off: relationships are refused with a warning).",
)
@_number("--latency-ms", "Delay added to every answer.")
@_number("--error-rate", "Share answered HTTP 503.")
@_number("--fault-rate", "Share answered with a SOAP fault s:Server (HTTP 500) before anything is done.")
@_number("--drop-rate", "Share applied, then dropped unanswered.")
@_number("--wrong-ref-rate", "Share answered with a wrong messageIdRef.")
@_number("--slow-rate", "Share applied, then answered late.")
@_number("--slow-ms", "How late a slow answer is (set it past the client's read timeout to lose the answer).")
@click.option(
    "--fault-operations",
    default=None,
    help="Comma-separated operations that get the faults above (default: every operation).",
)
@click.option("--seed", type=int, help="Seed for reproducible fault draws.")
def emulator(fault_operations: str | None, **settings: Any) -> None:
    """Run a local IMS ES emulator (Person, Group and Membership Management) over HTTPS.

    It accepts the WS-Security credentials in IMS_ES_USERNAME and IMS_ES_PASSWORD, behaves like
    itslearning's service and keeps its persons in memory or in --state. Use it to try a mapping
    safely before pointing a run at production.
    """
    username = os.environ.get("IMS_ES_USERNAME", "")
    password = os.environ.get("IMS_ES_PASSWORD", "")
    if not username or not password:
        raise click.UsageError(
            "set IMS_ES_USERNAME and IMS_ES_PASSWORD: the credentials the emulator will accept"
        )
    try:
        config = EmulatorConfig(
            username=username,
            password=password,
            fault_operations=(
                None
                if fault_operations is None
                else frozenset(name.strip() for name in fault_operations.split(",") if name.strip())
            ),
            **settings,  # every other option is the config field of its name
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        serve(config)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from None
