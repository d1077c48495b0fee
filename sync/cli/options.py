"""The options the commands share, and how settings are resolved: flags > environment > config file.

click applies flags and environment variables; the config file reaches click as its `default_map`
(`load_config`); credentials come from the environment, a credentials file or the config file.
Imports click and the config readers only; the IMS ES transport is imported when endpoints are derived.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from sync.cli.config import OPERATION_NAMES, Credentials, load_config_file, load_credentials
from sync.cli.output import EXIT_USAGE, fail
from sync.errors import ConfigError
from sync.models import KINDS, DeletesMode, Kind
from sync.models.kinds import GROUP, MEMBERSHIP
from sync.plan.limits import Rule, parse_rule
from sync.plan.shrinkage import ACCEPT_SHRUNK_FLAG, MAX_LOSS

__all__ = [
    "DURATION",
    "LISTED_KINDS",
    "REPORT_FORMATS",
    "accept_shrunk_opt",
    "connection",
    "credentials",
    "deletes_opt",
    "file_opt",
    "format_opt",
    "group_endpoint_opts",
    "group_endpoints",
    "limit_opts",
    "load_config",
    "mapping_opt",
    "number_opt",
    "output_opt",
    "report_format",
    "roster_arg",
    "service_opts",
    "state_opt",
]

REPORT_FORMATS: Final = ("md", "json", "csv", "html")

_F = TypeVar("_F", bound=Callable[..., Any])


def load_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """The `--config` callback: the file's [sync] options become every command's defaults."""
    if value is None:
        return None
    try:
        options = load_config_file(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    commands = ctx.command.commands if isinstance(ctx.command, click.Group) else {}
    ctx.default_map = dict.fromkeys(commands, options)
    ctx.default_map.update({"snapshot": {"export": options, "adopt": options}})
    # The group's own options (log format and file) read the same file.
    ctx.default_map.update({key: options[key] for key in ("log_format", "log_file") if key in options})
    ctx.meta["config_options"] = options
    return value


roster_arg = click.argument("roster", type=click.Path(path_type=Path))
mapping_opt = click.option(
    "--mapping",
    "-m",
    envvar="IMS_SYNC_MAPPING",
    required=True,
    help="A built-in mapping name (oneroster, oneroster-users, generic) or the path of a mapping TOML "
    "file. A set mapping (oneroster) reads a folder: persons, groups and memberships.",
)
state_opt = click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="IMS_SYNC_STATE",
    required=True,
    help="State directory: snapshot and journal (SQLite) and the run lock.",
)
#: Not a config file key, as --accept-changes: it accepts one reviewed export, on one command line.
accept_shrunk_opt = click.option(
    ACCEPT_SHRUNK_FLAG,
    is_flag=True,
    default=False,
    help=f"Accept roster files with no data rows, or with more than {MAX_LOSS:.0%} fewer than the last "
    "successful run read (refused otherwise, exit 2: a truncated export reads as everybody leaving).",
)
_endpoint_opt = click.option(
    "--endpoint", envvar="IMS_ES_ENDPOINT", required=True, help="The PMS endpoint URL (https only)."
)


def _service_endpoint_opt(kind: Kind) -> Callable[[_F], _F]:
    """`--gms-endpoint`, `--mms-endpoint`: the endpoint of the service that manages `kind`."""
    name = f"{kind.ims_name} Management"
    return click.option(
        f"--{kind.service}-endpoint",
        envvar=f"IMS_ES_{kind.service.upper()}_ENDPOINT",
        default=None,
        help=f"The {name} endpoint (default: next to --endpoint, {name.replace(' ', '')}Service.svc).",
    )


_gms_opt = _service_endpoint_opt(GROUP)
_mms_opt = _service_endpoint_opt(MEMBERSHIP)
_ca_bundle_opt = click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar="IMS_ES_CA_BUNDLE",
    default=None,
    help="PEM file of extra CA certificates to trust (e.g. the emulator's).",
)
_credentials_opt = click.option(
    "--credentials-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Owner-only TOML file with username and password (else IMS_ES_USERNAME / IMS_ES_PASSWORD).",
)


def group_endpoint_opts(command: _F) -> _F:
    """`--gms-endpoint` and `--mms-endpoint`, for the commands that reach groups and memberships."""
    return _gms_opt(_mms_opt(command))


def service_opts(command: _F) -> _F:
    """`--endpoint`, `--ca-bundle`, `--credentials-file`: how to reach IMS ES and who we are to it."""
    return _endpoint_opt(_ca_bundle_opt(_credentials_opt(command)))


def number_opt(
    flag: str, kind: click.ParamType[Any] | type[float], default: float, help: str
) -> Callable[[_F], _F]:
    """A number option whose default `--help` shows."""
    return click.option(flag, type=kind, default=default, show_default=True, help=help)


_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


class Duration(click.ParamType[float, Any]):
    """A positive duration in seconds: a number of seconds, or parts like `90m`, `3h`, `1h30m`."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            parts = _DURATION_PART.findall(text)
            if not parts or _DURATION_PART.sub("", text).strip():
                self.fail(f"{value!r} is not a duration: give seconds, or e.g. 90m, 4h, 1h30m", param, ctx)
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
        if seconds <= 0:
            self.fail(f"{value!r} is not a duration: it must be more than 0 seconds", param, ctx)
        return seconds


DURATION: Final = Duration()


def _only_types(_ctx: click.Context, param: click.Parameter, value: str | None) -> frozenset[str] | None:
    """`--only`'s operation types (None: every type)."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in OPERATION_NAMES]
    if unknown or not names:
        raise click.BadParameter(
            f"{value!r}: expected operation types among {', '.join(OPERATION_NAMES)}, comma-separated",
            param=param,
        )
    return frozenset(names)


only_opt = click.option(
    "--only",
    default=None,
    callback=_only_types,
    help="Send only these operation types (comma-separated among create, update, changeIdentifier, "
    "delete, deactivate); the others are listed as held. Deletions still need --deletes.",
)


def file_opt(*decls: str, help: str) -> Callable[[_F], _F]:
    """An option naming a file to write (none by default)."""
    return click.option(*decls, type=click.Path(path_type=Path, dir_okay=False), default=None, help=help)


def output_opt(help: str) -> Callable[[_F], _F]:
    """`--output`/`-o`: a file to write instead of standard output; `help` says what is written."""
    return file_opt("--output", "-o", help=help)


def credentials(credentials_file: Path | None) -> Credentials:
    """Credentials from the environment, a credentials file or the config file, in that order."""
    root = click.get_current_context().find_root()
    return load_credentials(
        credentials_file=credentials_file,
        from_config=root.meta.get("config_options", {}).get("_credentials"),
    )


def connection(credentials: Credentials, ca_bundle: Path | None, **settings: Any) -> dict[str, Any]:
    """The keyword arguments every IMS ES client takes (and `settings`, e.g. timeouts)."""
    return {
        "username": credentials.username,
        "password": credentials.password,
        "ca_bundle": ca_bundle,
        **settings,
    }


def group_endpoints(
    endpoint: str, gms_endpoint: str | None, mms_endpoint: str | None, *, needs_gms: bool, needs_mms: bool
) -> tuple[str, str]:
    """The GMS and MMS endpoint URLs a command needs ("" for a service it does not use): as given, or
    derived from the PMS endpoint."""
    from sync.ims.urls import service_urls  # noqa: PLC0415

    if (needs_gms and not gms_endpoint) or (needs_mms and not mms_endpoint):
        try:
            derived_gms, derived_mms = service_urls(endpoint)
        except ConfigError as exc:
            fail(EXIT_USAGE, f"{exc}; give --gms-endpoint and --mms-endpoint")
        gms_endpoint = gms_endpoint or derived_gms
        mms_endpoint = mms_endpoint or derived_mms
    return (gms_endpoint or "") if needs_gms else "", (mms_endpoint or "") if needs_mms else ""


def format_opt(formats: Sequence[str], *, default: str, what: str) -> Callable[[_F], _F]:
    """`--format` among `formats`; without it, `report_format(output, None, formats, default)` chooses.
    `what` names the output in the help ("Report", ...)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(formats),
        default=None,
        help=f"{what} format (default: from the --output suffix, else {default}).",
    )


def report_format(
    output: Path | None, fmt: str | None, formats: Sequence[str] = REPORT_FORMATS, default: str = "md"
) -> str:
    """The format asked for, else the one the output file's suffix names (among `formats`), else
    `default` (a report: Markdown)."""
    if fmt is not None:
        return fmt
    if output is not None and output.suffix.lstrip(".").lower() in formats:
        return output.suffix.lstrip(".").lower()
    return default


#: The kinds in the order the command line lists them (`snapshot export --kind`, plan summaries):
#: the kind whose counts PlanSummary leaves unprefixed (persons) first, then the others in KINDS order.
LISTED_KINDS: Final[tuple[Kind, ...]] = (
    *(kind for kind in KINDS if not kind.summary_prefix),
    *(kind for kind in KINDS if kind.summary_prefix),
)


deletes_opt = click.option(
    "--deletes",
    type=click.Choice([m.value for m in DeletesMode]),
    default=DeletesMode.OFF.value,
    is_flag=False,
    flag_value=DeletesMode.DELETE.value,
    show_default=True,
    help="What to do with what left the roster. off: only list it; deactivate: memberships set "
    "inactive, persons and groups kept; delete (also bare --deletes): memberships, groups, persons deleted.",
)
_max_share_opt = number_opt(
    "--max-change-share",
    click.FloatRange(0, 1),
    0.10,
    "Safety limit: share of the snapshot a run may update, re-identify or delete (exit 3 above it).",
)
_max_count_opt = number_opt(
    "--max-change-count",
    click.IntRange(0),
    500,
    "Safety limit: at most this many persons, groups or memberships (each kind on its own) changed "
    "or deleted in one run, whatever the share.",
)


def _limit_rules(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[Rule, ...]:
    """`--limit KEY=VALUE` (repeatable), as the safety limits' rules (`sync.plan.limits`)."""
    rules = []
    for value in values:
        key, equals, bound = value.partition("=")
        try:
            if not equals:
                raise ValueError("expected KEY=VALUE, e.g. person.delete=50 or membership.update=5%")
            rules.append(parse_rule(key, bound, from_flag=True))
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {exc}", param=param) from None
    return tuple(rules)


_limit_opt = click.option(
    "--limit",
    "limit_rules",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_limit_rules,
    help="Safety limit per kind and operation type, repeatable: KEY is person, group, membership, * or "
    "school (each school's persons and memberships), optionally .create, .update, .changeIdentifier, "
    ".delete or .deactivate; VALUE a count (50), a share of the snapshot (5%) or off. What breaches is "
    "held, the rest sent (exit 3). Adds to the config file's [limits]; see docs/configuration.md.",
)


def limit_opts(command: _F) -> _F:
    """`--max-change-share`, `--max-change-count`, `--limit`: the safety limits (they shape what a run
    sends)."""
    return _max_share_opt(_max_count_opt(_limit_opt(command)))
