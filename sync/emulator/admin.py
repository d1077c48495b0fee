"""`ims-sync emulator-admin`: what a site administrator does by hand in itslearning, done to the emulator's
state file directly, without IMS ES: create, edit and delete persons, groups and memberships.

Tests and demos make drift with it (`verify` then finds it). Fields are the emulator's own columns:
a person's canonical fields (`PERSON_FIELDS`); a group's `scheme`, `type`, `level`, `parent`,
`desc_short` (its name), `desc_long` (its description), `desc_full`; a membership's `group_key`,
`person_key`, `role`, `active` (true/false). Deleting a person or a group deletes its memberships,
as itslearning does. Imports the emulator's store only.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import click

from sync.models import PERSON_FIELDS, Person

from .store import Group, Membership, Store

__all__ = ["emulator_admin"]

_KINDS: Final = ("person", "group", "membership")
_SCHEME: Final = "ItslearningOrganisationTypes"  # the groupType scheme the engine sends
_EXAMPLE: Final = "Example: ims-sync emulator-admin --state emu.sqlite3"  # each command's epilog begins so


def _fields(kind: str) -> tuple[str, ...]:
    if kind == "person":
        return PERSON_FIELDS
    record = Group if kind == "group" else Membership
    return tuple(f.name for f in dataclasses.fields(record) if f.name != "sync_key")


def _parse(kind: str, pairs: tuple[str, ...]) -> dict[str, Any]:
    """`--set FIELD=VALUE` pairs as the record's values (a membership's `active` a bool).

    Raises:
        click.BadParameter: no `=`, or a field the kind has not.
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or field not in _fields(kind):
            raise click.BadParameter(
                f"{pair!r}: expected FIELD=VALUE with a {kind} field: {', '.join(_fields(kind))}",
                param_hint="--set",
            )
        values[field] = value.lower() == "true" if field == "active" else value
    return values


def _get(store: Store, kind: str, key: str) -> Any:
    getters: Mapping[str, Callable[[str], Any]] = {
        "person": store.get,
        "group": store.get_group,
        "membership": store.get_membership,
    }
    return getters[kind](key)


def _put(store: Store, record: Any) -> None:
    if isinstance(record, Person):
        store.put(record)
    elif isinstance(record, Group):
        store.put_group(record)
    else:
        store.put_membership(record)


def _new(kind: str, key: str, values: dict[str, Any]) -> Any:
    """A new record of `kind`: unset fields empty (a group's scheme the engine's, a membership active).

    Raises:
        click.UsageError: a membership without its group_key, person_key or role.
    """
    if kind == "person":
        return Person(sync_key=key, **values)
    if kind == "group":
        return Group(sync_key=key, **({"scheme": _SCHEME, "type": "Course"} | values))
    missing = [name for name in ("group_key", "person_key", "role") if name not in values]
    if missing:
        raise click.UsageError(f"a new membership needs --set {'=... --set '.join(missing)}=...")
    return Membership(sync_key=key, **values)


@click.group(
    "emulator-admin",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"{_EXAMPLE} edit person s1 --set given_name=Kari",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The emulator's state file (`ims-sync emulator --state FILE`); required.",
)
@click.pass_context
def emulator_admin(ctx: click.Context, state: Path | None) -> None:
    """Change the emulator's state by hand, as a site administrator would in itslearning (no IMS ES)."""
    ctx.obj = None if state is None else ctx.with_resource(contextlib.closing(Store(state)))


def _store(store: Store | None) -> Store:
    """The opened state; a usage error without `--state`."""
    if store is None:
        raise click.UsageError("emulator-admin needs --state FILE (the emulator's state file)")
    return store


_kind_arg = click.argument("kind", type=click.Choice(_KINDS))
_key_arg = click.argument("sync_key")
_set_opt = click.option("--set", "pairs", multiple=True, metavar="FIELD=VALUE", help="A field's new value.")


def _on_record(example: str, *, sets: bool) -> Callable[[Callable[..., None]], click.Command]:
    """An emulator-admin command on one record: KIND SYNC_KEY (with `sets`, the `--set FIELD=VALUE`
    pairs) and the state `--state` opened (None without it); `example` its arguments in the epilog."""

    def command(function: Callable[..., None]) -> click.Command:
        with_args = click.pass_obj(function)
        if sets:
            with_args = _set_opt(with_args)
        return emulator_admin.command(epilog=f"{_EXAMPLE} {example}")(_kind_arg(_key_arg(with_args)))

    return command


def _existing(store: Store, kind: str, key: str) -> Any:
    """The record of `kind` with sync key `key`.

    Raises:
        click.UsageError: the emulator's state holds none.
    """
    current = _get(store, kind, key)
    if current is None:
        raise click.UsageError(f"no {kind} {key!r} in the emulator's state")
    return current


@_on_record("create person s9 --set given_name=Ann", sets=True)
def create(store: Store | None, kind: str, sync_key: str, pairs: tuple[str, ...]) -> None:
    """Create a person, group or membership (refused when the sync key exists)."""
    values = _parse(kind, pairs)
    with _store(store).transaction() as opened:
        if _get(opened, kind, sync_key) is not None:
            raise click.UsageError(f"{kind} {sync_key!r} exists already: edit it")
        _put(opened, _new(kind, sync_key, values))
    click.echo(f"created {kind} {sync_key}")


@_on_record("edit group cls-6a --set desc_short=6B", sets=True)
def edit(store: Store | None, kind: str, sync_key: str, pairs: tuple[str, ...]) -> None:
    """Change fields of a person, group or membership."""
    values = _parse(kind, pairs)
    with _store(store).transaction() as opened:
        _put(opened, dataclasses.replace(_existing(opened, kind, sync_key), **values))
    click.echo(f"edited {kind} {sync_key}")


@_on_record("delete membership enr-5a-1001", sets=False)
def delete(store: Store | None, kind: str, sync_key: str) -> None:
    """Delete a person, group or membership (a person's or group's memberships with it)."""
    with _store(store).transaction() as opened:
        _existing(opened, kind, sync_key)
        if kind == "person":
            opened.delete(sync_key)
        elif kind == "group":
            opened.delete_group(sync_key)
        else:
            opened.delete_membership(sync_key)
    click.echo(f"deleted {kind} {sync_key}")
