"""End to end with a OneRoster folder: orgs, classes, users and enrollments through `ims-sync`, against the
emulator over real HTTPS; a second night sends exactly the planned changes; reconcile and adopt cover all."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.cli.app import main
from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_SAFETY
from sync.cli.summaries import _operation_name
from sync.emulator import Emulator
from sync.models import KINDS
from sync.models.kinds import GROUP, MEMBERSHIP
from sync.state.store import StateStore
from tests.checks import oneroster_memberships
from tests.conftest import PASSWORD, USERNAME
from tests.test_kinds import RECORDS, _operation

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
BASE = SAMPLES / "oneroster"
CHANGED = SAMPLES / "oneroster-changed"

Cli = Callable[..., tuple[int, str, str]]

#: The IMS ES operation a plan entry becomes, when sent one object per request.
SENT_AS = {
    ("group", "create"): "createGroup",
    ("group", "update"): "updateGroup",
    ("group", "changeIdentifier"): "changeGroupIdentifier",
    ("group", "delete"): "deleteGroup",
    ("person", "create"): "createPerson",
    ("person", "update"): "updatePerson",
    ("person", "changeIdentifier"): "changePersonIdentifier",
    ("person", "delete"): "deletePerson",
    ("membership", "create"): "createMembership",
    ("membership", "update"): "updateMembership",
    ("membership", "changeIdentifier"): "changeMembershipIdentifier",
    ("membership", "delete"): "deleteMembership",
}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


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


def sent(emulator: Emulator, since: int = 0) -> list[tuple[str, str]]:
    """(operation, sync key) of every object the emulator decided after the first `since` events."""
    return [(e.operation, e.sync_key) for e in emulator.history()[since:]]


class TestOneRosterFolder:
    def test_validate_counts_every_kind(self, cli: Cli) -> None:
        code, out, _ = cli("validate", str(BASE), "--mapping", "oneroster")
        assert code == EXIT_OK, out
        assert (
            f"{len(rows(BASE / 'users.csv'))} valid persons, "
            f"{len(rows(BASE / 'orgs.csv')) + len(rows(BASE / 'classes.csv'))} valid groups, "
            f"{len(oneroster_memberships(BASE))} valid memberships, 0 rejected rows"
        ) in out

    def test_a_file_instead_of_the_folder_is_a_clear_error(self, cli: Cli, tmp_path: Path) -> None:
        code, _, err = cli(
            "plan", str(BASE / "users.csv"), "--mapping", "oneroster", "--state", str(tmp_path)
        )
        assert code != EXIT_OK
        assert "set mapping" in err
        assert "folder" in err

    def test_first_night_builds_the_hierarchy_and_enrolments(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        state = tmp_path / "state"
        code, out, err = cli(
            "run", str(BASE), "--mapping", "oneroster", "--state", str(state), *remote(emulator)
        )
        assert code == EXIT_OK, out + err
        groups = emulator.groups()
        orgs, classes = rows(BASE / "orgs.csv"), rows(BASE / "classes.csv")
        assert set(groups) == {r["sourcedId"] for r in orgs + classes}
        for org in orgs:
            assert groups[org["sourcedId"]].parent == org["parentSourcedId"]
            assert groups[org["sourcedId"]].type == ("School" if org["type"] == "school" else "Unspecified")
        for cls in classes:
            held = groups[cls["sourcedId"]]
            assert (held.parent, held.type, held.desc_short) == (
                cls["schoolSourcedId"],
                "Course",
                cls["title"],
            )
        memberships = emulator.memberships()
        held_memberships = {
            key: {
                "group": m.group_key,
                "person": m.person_key,
                "role": m.role,
                "active": str(m.active).lower(),
            }
            for key, m in memberships.items()
        }
        assert held_memberships == oneroster_memberships(BASE)  # classes, and every user's school
        assert memberships["org-ravnaas:usr-1001"].role == "Learner"
        assert "org-ravnaas:usr-1024" not in memberships  # a parent belongs to no school
        # groups, then persons, then memberships: the order itslearning asks for
        order = [op for op, _ in sent(emulator)]
        assert max(i for i, op in enumerate(order) if op == "createGroup") < order.index("createPerson")
        assert max(i for i, op in enumerate(order) if op == "createPerson") < order.index("createMembership")
        with StateStore.open(state, exclusive=False) as store:
            assert (store.count(GROUP), store.count(MEMBERSHIP)) == (len(groups), len(memberships))

    def test_second_night_sends_exactly_the_planned_changes_then_nothing(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        state = tmp_path / "state"
        common = ["--mapping", "oneroster", "--state", str(state)]
        assert cli("run", str(BASE), *common, *remote(emulator))[0] == EXIT_OK
        before = len(emulator.history())
        code, out, _ = cli("plan", str(CHANGED), *common, "--format", "json")
        assert code == EXIT_OK
        planned = json.loads(out)
        assert planned["summary"]["groupCreate"] == 1
        assert planned["summary"]["groupUpdate"] == 1
        assert planned["summary"]["groupDelete"] == 1
        # Nora's sourcedId changed: her two enrolments and her school membership follow it
        assert planned["summary"]["membershipChangeIdentifier"] == 3
        expected = Counter(
            (
                SENT_AS[(op["object"], op["op"])],
                op["syncKey"] if op["op"] != "changeIdentifier" else op["oldId"],
            )
            for op in planned["operations"]
        )
        expected.update((SENT_AS[(d["object"], "delete")], d["syncKey"]) for d in planned["deletions"])
        report = tmp_path / "run2.json"
        code, out, err = cli(
            "run",
            str(CHANGED),
            *common,
            *remote(emulator),
            "--deletes",
            "delete",
            "--accept-deletes",
            "20",
            "--report",
            str(report),
        )
        assert code == EXIT_FAILED, out + err  # the changed users.csv has one bad row on purpose
        # A person's update may go as replacePerson (a cleared field); the rest is one request each.
        got = Counter(
            ("updatePerson" if op == "replacePerson" else op, key)
            for op, key in sent(emulator, before)
            if not op.startswith("read")
        )
        assert got == expected
        result = json.loads(report.read_text(encoding="utf-8"))
        assert {r["outcome"] for r in result["results"]} == {"confirmed"}
        assert "cls-kor" not in emulator.groups()
        assert emulator.groups()["cls-mat7"].desc_short == "Matematikk 7 (fordypning)"
        assert emulator.memberships()["enr-eng6-1020"].role == "TeachingAssistant"
        # a third night: nothing left to send
        after = len(emulator.history())
        code, _, _ = cli("run", str(CHANGED), *common, *remote(emulator), "--deletes", "delete")
        assert code == EXIT_FAILED  # still the one bad row
        assert sent(emulator, after) == []

    def test_deactivate_keeps_memberships_inactive_and_groups_in_place(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        common = ["--mapping", "oneroster", "--state", str(tmp_path / "state")]
        assert cli("run", str(BASE), *common, *remote(emulator))[0] == EXIT_OK
        before = len(emulator.history())
        deactivate = ["run", str(CHANGED), *common, *remote(emulator), "--deletes", "deactivate"]
        code, _, err = cli(*deactivate, "--max-change-count", "5")
        assert code == EXIT_SAFETY
        # 9 enrolments, and the school membership of the leaver (usr-1008)
        assert "the plan would deactivate 10 memberships" in err
        assert "--accept-deletes 10" in err
        # a breach holds only the deactivations: the rest (groups, persons, new enrolments) is sent
        held_run = sent(emulator, before)
        assert ("createGroup", "cls-nat6") in held_run
        assert not [key for _, key in held_run if key == "enr-kor-1001"]
        assert emulator.memberships()["enr-kor-1001"].active is True
        code, _, _ = cli(*deactivate)
        assert code == EXIT_FAILED  # the one bad row
        memberships = emulator.memberships()
        assert memberships["enr-kor-1001"].active is False
        assert memberships["enr-nat6-1002"].active is True
        # Nora's sourcedId changed, and with it her enrolments' ids: renamed, not enrolled twice
        assert "enr-6a-1005" not in memberships
        assert (memberships["enr-6a-2005"].person_key, memberships["enr-6a-2005"].active) == (
            "usr-2005",
            True,
        )
        assert "cls-kor" in emulator.groups()  # groups are kept under deactivate
        assert "usr-1008" in emulator.persons()  # and so are persons

    def test_reconcile_covers_group_and_membership_requests(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        state = tmp_path / "state"
        assert (
            cli("run", str(BASE), "--mapping", "oneroster", "--state", str(state), *remote(emulator))[0] == 0
        )
        code, out, _ = cli("reconcile", "--state", str(state), "--format", "json")
        assert code == EXIT_OK
        data = json.loads(out)
        operations = Counter(r["operation"] for r in data["requests"])
        assert operations["createGroup"] == len(emulator.groups())
        assert operations["createMembership"] == len(emulator.memberships())
        assert all(r["flags"] == ["ok"] for r in data["requests"])
        assert all(r["messageIdRef"] == r["messageIdentifier"] for r in data["requests"])

    def test_snapshot_export_of_groups_and_memberships(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        state = tmp_path / "state"
        assert (
            cli("run", str(BASE), "--mapping", "oneroster", "--state", str(state), *remote(emulator))[0] == 0
        )
        code, out, _ = cli("snapshot", "export", "--state", str(state), "--kind", "groups")
        assert code == EXIT_OK
        exported = {r["sync_key"]: r for r in csv.DictReader(out.splitlines())}
        assert exported["cls-5a"]["parent"] == "org-ravnaas"
        code, out, _ = cli("snapshot", "export", "--state", str(state), "--kind", "memberships")
        exported = {r["sync_key"]: r for r in csv.DictReader(out.splitlines())}
        assert exported["enr-5a-1001"]["person"] == "usr-1001"
        assert exported["enr-5a-1001"]["active"] == "true"


class TestAdopt:
    def test_adopting_a_populated_site_leaves_nothing_to_create(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        # An earlier tool (here: another state directory) populated the site.
        first = ["--mapping", "oneroster", "--state", str(tmp_path / "old-state")]
        assert cli("run", str(BASE), *first, *remote(emulator))[0] == EXIT_OK
        state = tmp_path / "state"
        code, out, err = cli(
            "snapshot",
            "adopt",
            "--state",
            str(state),
            "--mapping",
            "oneroster",
            "--endpoint",
            emulator.pms_url,
            "--ca-bundle",
            str(emulator.ca_path),
            "--roster",
            str(BASE),
        )
        assert code == EXIT_OK, out + err
        assert f"adopted {len(emulator.groups())} groups and {len(emulator.memberships())} memberships" in out
        code, out, _ = cli(
            "plan", str(BASE), "--mapping", "oneroster", "--state", str(state), "--format", "json"
        )
        summary = json.loads(out)["summary"]
        creates = (summary["create"], summary["groupCreate"], summary["membershipCreate"])
        assert creates == (0, 0, 0)
        assert (summary["groupDelete"], summary["membershipDelete"]) == (0, 0)

    def test_without_the_roster_a_group_without_members_is_not_found(
        self, emulator: Emulator, cli: Cli, tmp_path: Path
    ) -> None:
        first = ["--mapping", "oneroster", "--state", str(tmp_path / "old-state")]
        assert cli("run", str(BASE), *first, *remote(emulator))[0] == EXIT_OK
        state = tmp_path / "state"
        adopt = ["snapshot", "adopt", "--state", str(state), "--mapping", "oneroster"]
        code, _, _ = cli(*adopt, "--endpoint", emulator.pms_url, "--ca-bundle", str(emulator.ca_path))
        assert code == EXIT_OK
        with StateStore.open(state, exclusive=False) as store:
            adopted = set(store.load(GROUP).index)
        # org-lia has no classes with members: only the roster names it
        assert adopted == set(emulator.groups()) - {"org-lia"}


def test_run_lines_name_each_operation_as_they_always_did() -> None:
    """The run's terminal table and problem lines name an operation by its verb and kind, as before."""
    names = [_operation_name(_operation(t, RECORDS[k.name])) for k in KINDS for _, t in k.typed_operations]
    assert names == [
        "CreateGroup",
        "UpdateGroup",
        "ChangeGroupIdentifier",
        "DeleteGroup",
        "Create",
        "Update",
        "ChangeIdentifier",
        "Delete",
        "CreateMembership",
        "UpdateMembership",
        "ChangeMembershipIdentifier",
        "DeleteMembership",
        "DeactivateMembership",
    ]
