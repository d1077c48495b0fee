"""End to end with the export folders of issue 17 (`samples/sds` with `-m sds`, `samples/oneroster-guardians`
with `-m oneroster`) through `ims-sync run`, against the emulator over real HTTPS through zeep: every person
arrives with the role and birth date the export says, the snapshot holds their gender and children, and
a second night sends nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_OK
from sync.emulator import Emulator
from sync.models.kinds import MEMBERSHIP, PERSON
from sync.read.roster_set import read_roster_set
from sync.state.store import StateStore
from tests.conftest import PASSWORD, USERNAME

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(name="cli")
def fixture_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli(*args)` runs ims-sync with the emulator's credentials and JSON logs: (code, stdout, stderr)."""
    monkeypatch.setenv("IMS_ES_USERNAME", USERNAME)
    monkeypatch.setenv("IMS_ES_PASSWORD", PASSWORD)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--log-format", "json", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def remote(emulator: Emulator) -> list[str]:
    return ["--endpoint", emulator.pms_url, "--ca-bundle", str(emulator.ca_path), "--max-attempts", "2"]


@pytest.mark.parametrize(("folder", "mapping"), [("sds", "sds"), ("oneroster-guardians", "oneroster")])
def test_export_folder_syncs_and_a_second_night_sends_nothing(
    emulator: Emulator, cli: Cli, tmp_path: Path, folder: str, mapping: str
) -> None:
    """The folder syncs with exit 0: the emulator holds every person with the export's role, birth
    date, gender and children, and every membership; so does the snapshot; a second run sends nothing."""
    roster = SAMPLES / folder
    state = tmp_path / "state"
    command = ["run", str(roster), "--mapping", mapping, "--state", str(state), *remote(emulator)]
    code, out, err = cli(*command)
    assert code == EXIT_OK, out + err
    expected = read_roster_set(roster, mapping)
    wanted = expected.persons.frame
    held = emulator.persons()
    assert set(held) == set(wanted.index)
    for key, person in held.items():
        read_back = (person.role, person.birth_date, person.gender, person.children)
        assert read_back == tuple(
            wanted.at[key, name] for name in ("role", "birth_date", "gender", "children")
        ), key
    assert expected.memberships is not None
    assert set(emulator.memberships()) == set(expected.memberships.frame.index)
    with StateStore.open(state, exclusive=False) as store:
        snapshot = store.load(PERSON)
        assert store.count(MEMBERSHIP) == len(expected.memberships.frame)
    for name in ("role", "birth_date", "gender", "children"):
        assert snapshot[name].to_dict() == wanted[name].to_dict(), name
    assert (snapshot["children"] != "").sum() == 3  # the three guardians of each sample
    events = len(emulator.history())
    code, out, err = cli(*command)
    assert code == EXIT_OK, out + err
    assert emulator.history()[events:] == []


def test_guardian_link_removed_from_the_export_is_removed_in_itslearning(
    emulator: Emulator, cli: Cli, tmp_path: Path
) -> None:
    """After a first night, a relationships.csv row removed from the SDS export plans one update (the
    guardian's children without that child), sent as a replacePerson; the emulator then holds the
    guardian with the remaining child only."""
    roster = tmp_path / "sds"
    roster.mkdir()
    for path in (SAMPLES / "sds").iterdir():
        (roster / path.name).write_bytes(path.read_bytes())
    state = tmp_path / "state"
    command = ["--mapping", "sds", "--state", str(state)]
    code, out, err = cli("run", str(roster), *command, *remote(emulator))
    assert code == EXIT_OK, out + err
    relationships = roster / "relationships.csv"
    lines = relationships.read_text(encoding="utf-8").splitlines(keepends=True)
    relationships.write_text("".join(line for line in lines if not line.startswith("stu-1004,")), "utf-8")
    plan = tmp_path / "plan.json"
    code, out, err = cli("plan", str(roster), *command, "--format", "json", "--output", str(plan))
    assert code == EXIT_OK, out + err
    operations = json.loads(plan.read_text(encoding="utf-8"))["operations"]
    assert [(op["op"], op["syncKey"]) for op in operations] == [("update", "gdn-4003")]
    assert operations[0]["changes"] == [{"field": "children", "old": "stu-1003,stu-1004", "new": "stu-1003"}]
    events = len(emulator.history())
    code, out, err = cli("run", str(roster), *command, *remote(emulator))
    assert code == EXIT_OK, out + err
    assert [(e.operation, e.sync_key) for e in emulator.history()[events:]] == [("replacePerson", "gdn-4003")]
    assert emulator.persons()["gdn-4003"].children == "stu-1003"
