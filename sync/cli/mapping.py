"""`mapping init` and `mapping list`: a starter mapping for a CSV export, and the built-in mappings.

Reads mappings and CSV headers only: no state, no network.
"""

from __future__ import annotations

from pathlib import Path

import click

from sync.cli.options import output_opt, roster_arg
from sync.cli.output import EXIT_USAGE, fail, notice, write_file

__all__ = ["mapping"]


@click.group(epilog="Example: ims-sync mapping init export.csv -o my-school.toml")
def mapping() -> None:
    """Built-in mappings, and a starter mapping for your own CSV export."""


@mapping.command("init", epilog="Example: ims-sync mapping init export.csv -o my-school.toml")
@roster_arg
@output_opt("Write the mapping here (default: standard output). An existing file is kept unless --force.")
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
def mapping_init(roster: Path, output: Path | None, force: bool) -> None:
    """Guess a starter mapping TOML from a roster's header and values; review its TODOs, then validate.

    Columns are recognised by common English, Norwegian, Swedish and OneRoster names; the delimiter and
    encoding are detected; every role value seen is listed under [values.role].
    """
    from sync.read.mapping import load_mapping  # noqa: PLC0415
    from sync.read.mapping_init import folder_hint, starter_mapping  # noqa: PLC0415

    if roster.is_dir():
        fail(EXIT_USAGE, f"{roster} is a folder and mapping init reads one CSV file; {folder_hint(roster)}")
    text = starter_mapping(roster)
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        fail(EXIT_USAGE, f"{output} exists; choose another --output or add --force")
    write_file(output, text)
    load_mapping(output)  # the guess must always load; a ConfigError here is a bug worth seeing
    notice(
        "mapping_written",
        f"mapping written to {output}; review its TODOs, then: ims-sync validate {roster} --mapping {output}",
        path=str(output),
    )


@mapping.command("list", epilog="Example: ims-sync mapping list")
def mapping_list() -> None:
    """List the built-in mappings (usable by name with --mapping) and where their files are."""
    import tomllib  # noqa: PLC0415

    from sync.read.mapping import builtin_mappings  # noqa: PLC0415

    for name, path in builtin_mappings().items():
        with path.open("rb") as fh:
            description = str(tomllib.load(fh).get("description", ""))
        click.echo(f"{name:<20} {description}  ({path})")
