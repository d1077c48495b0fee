"""Settings from a TOML file and credentials from the environment or an owner-only file.

Precedence is flags > environment > config file > built-in defaults; click applies the first two,
and the config file reaches click as its `default_map` (see `sync.cli.options.load_config`).
Reads files only: imports neither click nor any stage of the pipeline (but for the pure parser of
the safety limits' rules, `sync.plan.limits`, when a file has a `[limits]` table).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from sync.errors import ConfigError

__all__ = [
    "CONFIG_KEYS",
    "OPERATION_NAMES",
    "Credentials",
    "PauseRow",
    "load_config_file",
    "load_credentials",
]

#: Keys a config file may set, each the name of a command-line option (dashes as underscores).
CONFIG_KEYS: Final = frozenset(
    {
        "mapping",
        "state",
        "endpoint",
        "gms_endpoint",
        "mms_endpoint",
        "ca_bundle",
        "concurrency",
        "max_in_flight",
        "connect_timeout",
        "read_timeout",
        "max_answer_mb",
        "max_run_time",
        "max_attempts",
        "circuit_threshold",
        "deletes",
        "max_change_share",
        "max_change_count",
        "report",
        "report_format",
        "report_by_school",
        "metrics_file",
        "log_format",
        "log_file",
        "credentials_file",
        "only",
    }
)

#: The operation types `--only` and a pause window's `allow` name (as `sync.models.kinds` does).
OPERATION_NAMES: Final = ("create", "update", "changeIdentifier", "delete", "deactivate")

#: A checked `[[pause]]` window: from, to (inclusive), the operation types it allows.
PauseRow = tuple[date, date, tuple[str, ...]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """The IMS ES integration's WS-Security credentials. The password never shows in a repr."""

    username: str
    password: str = field(repr=False)


def _owner_only(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds a password but can be read by others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


_DELETES_MODES: Final = ("off", "deactivate", "delete")


def _deletes_mode(value: object, path: Path) -> str:
    """`deletes` as `--deletes` takes it; true/false (the older boolean form) mean delete/off."""
    if isinstance(value, bool):
        return "delete" if value else "off"
    if isinstance(value, str) and value in _DELETES_MODES:
        return value
    raise ConfigError(
        f"config file {path}: [sync] deletes = {value!r}; expected one of {', '.join(_DELETES_MODES)}"
    )


def _only(value: object, path: Path) -> str:
    """`only` as `--only` takes it: a list of operation types, or their comma-separated names."""
    names = value if isinstance(value, list) else str(value).split(",")
    if not all(isinstance(name, str) and name.strip() in OPERATION_NAMES for name in names):
        raise ConfigError(
            f"config file {path}: [sync] only = {value!r}; expected operation types among "
            f"{', '.join(OPERATION_NAMES)}"
        )
    return ",".join(name.strip() for name in names)


def _pause_windows(value: object, path: Path) -> list[PauseRow]:
    """The `[[pause]]` windows, checked: dates, `to` not before `from`, `allow` known operation types."""
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise ConfigError(f"config file {path}: pause must be [[pause]] tables (from, to, allow)")
    windows: list[PauseRow] = []
    for number, row in enumerate(value, start=1):
        where = f"config file {path}: [[pause]] number {number}"
        unknown = sorted(set(row) - {"from", "to", "allow"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; it takes from, to and allow")
        for key in ("from", "to"):
            if type(row.get(key)) is not date:
                raise ConfigError(f"{where}: {key} = {row.get(key)!r} is not a date (write e.g. 2027-06-20)")
        if row["to"] < row["from"]:
            raise ConfigError(f"{where}: to = {row['to']} is before from = {row['from']}")
        allow = row.get("allow", [])
        if not isinstance(allow, list) or not all(name in OPERATION_NAMES for name in allow):
            raise ConfigError(
                f"{where}: allow = {allow!r}; expected a list of operation types among "
                f"{', '.join(OPERATION_NAMES)}"
            )
        windows.append((row["from"], row["to"], tuple(allow)))
    return windows


def _limit_rules(value: object, path: Path) -> tuple[Any, ...]:
    """The `[limits]` table's rules (`sync.plan.limits.Rule`), in the file's order: `person.delete = 50`,
    `membership = "5%"`, `school = "25%"`, `"*.update" = "off"` (a dotted key is a nested table)."""
    from sync.plan.limits import parse_rule  # noqa: PLC0415 - pure, and only for a file with limits

    if not isinstance(value, dict):
        raise ConfigError(f"config file {path}: [limits] must be a table, e.g. [limits] on its own line")
    flat: list[tuple[str, object]] = []
    for key, setting in value.items():
        if isinstance(setting, dict):
            flat += [(f"{key}.{op_type}", bound) for op_type, bound in setting.items()]
        else:
            flat.append((key, setting))
    try:
        return tuple(parse_rule(key, setting) for key, setting in flat)
    except ValueError as exc:
        raise ConfigError(f"config file {path}: [limits] {exc}") from None


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a config file into option defaults (keys as option names, dashes as underscores).

    The file has a `[sync]` table of options, an optional `[credentials]` table (username,
    password; a file with a password must be readable by its owner only), optional `[[pause]]`
    windows (checked, under the key `_pause`) and an optional `[limits]` table (the safety limits'
    rules, under the key `_limits`).

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key, or a password in a file others can read.
    """
    data = _read_toml(path)
    unknown = set(data) - {"sync", "credentials", "pause", "limits"}
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown table(s) {sorted(unknown)}; expected [sync], [credentials], "
            "[[pause]], [limits]"
        )
    for table in ("sync", "credentials"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(
                f"config file {path}: [{table}] must be a table, e.g. [{table}] on its own line"
            )
    options = dict(data.get("sync", {}))
    bad = {key.replace("-", "_") for key in options} - CONFIG_KEYS
    if bad:
        raise ConfigError(
            f"config file {path}: unknown key(s) {sorted(bad)} in [sync]; known: {sorted(CONFIG_KEYS)}"
        )
    options = {key.replace("-", "_"): value for key, value in options.items()}
    if "deletes" in options:
        options["deletes"] = _deletes_mode(options["deletes"], path)
    if "only" in options:
        options["only"] = _only(options["only"], path)
    if "pause" in data:
        options["_pause"] = _pause_windows(data["pause"], path)
    if "limits" in data:
        options["_limits"] = _limit_rules(data["limits"], path)
    credentials = data.get("credentials", {})
    if credentials:
        unknown_keys = sorted(set(credentials) - {"username", "password"})
        if unknown_keys:
            raise ConfigError(
                f"config file {path}: unknown key(s) {unknown_keys} in [credentials]; "
                "it takes only username and password"
            )
        if not all(isinstance(value, str) for value in credentials.values()):
            raise ConfigError(f"config file {path}: [credentials] username and password must be strings")
        if "password" in credentials:
            _owner_only(path)
        options["_credentials"] = credentials
    return options


def load_credentials(
    *,
    environ: Mapping[str, str] = os.environ,
    credentials_file: Path | None = None,
    from_config: Mapping[str, str] | None = None,
) -> Credentials:
    """Find the IMS ES credentials: environment, then a credentials file, then the config file.

    Raises:
        ConfigError: no complete pair of username and password, or a file readable by others.
    """
    username = environ.get("IMS_ES_USERNAME", "")
    password = environ.get("IMS_ES_PASSWORD", "")
    if username and password:
        return Credentials(username=username, password=password)
    if credentials_file is not None:
        data = _read_toml(credentials_file)
        _owner_only(credentials_file)
        section = data.get("credentials", data)
        username = username or str(section.get("username", ""))
        password = password or str(section.get("password", ""))
    if from_config:
        username = username or str(from_config.get("username", ""))
        password = password or str(from_config.get("password", ""))
    if not (username and password):
        raise ConfigError(
            "no IMS ES credentials: set IMS_ES_USERNAME and IMS_ES_PASSWORD, or give a credentials "
            "file (owner-only, with username and password) with --credentials-file"
        )
    return Credentials(username=username, password=password)
