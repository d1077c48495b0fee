"""`write_file` writes a report piece by piece (a first night's is 10^8 characters): the file holds the
text exactly, multi-byte characters across the pieces' edges included, and an unwritable path ends the
command with exit 2 naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.cli import output
from sync.cli.output import EXIT_USAGE, Exit, write_file


@pytest.mark.parametrize("chunk", [1, 7, 1 << 22])
def test_the_file_holds_the_text_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(output, "_WRITE_CHUNK", chunk)
    text = "Åse Ødegård, \u00e6\u00f8\u00e5 \U0001f600 line\n" * 50 + "end without newline"
    path = tmp_path / "report.md"
    path.write_text("an older, longer report " * 100, encoding="utf-8")
    write_file(path, text)
    assert path.read_bytes() == text.encode("utf-8")
    write_file(path, "")
    assert path.read_bytes() == b""


def test_an_unwritable_path_ends_the_command(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "report.md"
    with pytest.raises(Exit) as raised:
        write_file(path, "text")
    assert raised.value.code == EXIT_USAGE
    assert raised.value.message == f"cannot write {path}: No such file or directory"
