"""Truncated exports: a roster file with no data rows, or one that lost more than half of its rows
since the last successful run, is refused before planning, whatever the snapshot's size.

A truncated export reads as everybody leaving; the safety limits measure a share of the snapshot with
a floor, so a small school could be deleted whole. This check measures the files themselves.
Pure: imports no I/O (no sqlite3, zeep, files, clocks, logging); values in, values out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["ACCEPT_SHRUNK_FLAG", "MAX_LOSS", "Shrinkage", "check_shrinkage"]

#: A file may lose at most this share of the data rows it had in the last successful run.
MAX_LOSS: Final = 0.5

#: The flag that accepts one reviewed export despite its shrinkage (command line only).
ACCEPT_SHRUNK_FLAG: Final = "--accept-shrunk-roster"


@dataclass(frozen=True, slots=True, kw_only=True)
class Shrinkage:
    """One roster file refused: its data rows now, and in the last successful run (None: no record)."""

    file: str
    now: int
    before: int | None

    def message(self, *, accepted: bool = False) -> str:
        """What an operator reads: the file, the counts, and how to accept it (or that it was)."""
        if self.before is None:
            counts = "no data rows (no earlier run to compare with)"
        elif self.now == 0:
            counts = f"no data rows; the last successful run read {self.before:,}"
        else:
            lost = 1 - self.now / self.before
            counts = (
                f"{self.now:,} data rows; the last successful run read {self.before:,} "
                f"({lost:.0%} fewer, more than {MAX_LOSS:.0%})"
            )
        if accepted:
            return f"roster file {self.file} has {counts}: accepted with {ACCEPT_SHRUNK_FLAG}"
        return (
            f"roster file {self.file} has {counts}: a truncated export would read as everybody leaving; "
            f"nothing was planned or sent. Check the export; if it is right, accept it with "
            f"{ACCEPT_SHRUNK_FLAG}"
        )


def check_shrinkage(now: Mapping[str, int], before: Mapping[str, int] | None) -> list[Shrinkage]:
    """The files of `now` to refuse, in its order (empty when the roster may be planned).

    Args:
        now: each roster file's data rows, by file name.
        before: the same, as the last successful run recorded them; None (or a file missing from
            it) when there is no such record: then only a file with no data rows is refused.
    """
    refused: list[Shrinkage] = []
    for file, count in now.items():
        previous = None if before is None else before.get(file)
        if count == 0 or (previous is not None and count < previous * (1 - MAX_LOSS)):
            refused.append(Shrinkage(file=file, now=count, before=previous))
    return refused
