"""`ims-sync verify`: drift made by hand on the emulator (emulator-admin), found, repaired and put right,
over real HTTPS against the emulator, with each read journalled."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.cli.output import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from sync.emulator import Emulator
from sync.state.store import StateStore
from tests.conftest import PASSWORD
from tests.test_cli_groups import Cli, fixture_cli

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
BASE = SAMPLES / "oneroster"

__all__ = ["fixture_cli"]  # the `cli` fixture, shared with the OneRoster end-to-end tests


@pytest.fixture(name="site")
def fixture_site(emulator_factory: Callable[..., Emulator], tmp_path: Path, cli: Cli) -> Site:
    """An emulator with a state file, holding the OneRoster sample after one run."""
    emulator = emulator_factory(strict=True, state=tmp_path / "emulator.sqlite3")
    site = Site(emulator, tmp_path / "emulator.sqlite3", tmp_path / "state", cli)
    code, _, err = site.run()
    assert code == EXIT_OK, err
    return site


class Site:
    """The emulator, its state file, the engine's state directory and the commands against them."""

    def __init__(self, emulator: Emulator, emulator_state: Path, state: Path, cli: Cli) -> None:
        self.emulator = emulator
        self.emulator_state = emulator_state
        self.state = state
        self.cli = cli

    def remote(self) -> list[str]:
        return ["--endpoint", self.emulator.pms_url, "--ca-bundle", str(self.emulator.ca_path)]

    def run(self) -> tuple[int, str, str]:
        return self.cli(
            "run",
            str(BASE),
            "-m",
            "oneroster",
            "--state",
            str(self.state),
            *self.remote(),
            "--max-attempts",
            "2",
        )

    def verify(self, *args: str) -> tuple[int, str, str]:
        return self.cli(
            "verify", str(BASE), "-m", "oneroster", "--state", str(self.state), *self.remote(), *args
        )

    def admin(self, *args: str) -> tuple[int, str, str]:
        return self.cli("emulator-admin", "--state", str(self.emulator_state), *args)

    def drift(self, *args: str) -> list[dict[str, object]]:
        code, out, err = self.verify("--format", "json", *args)
        assert code in (EXIT_OK, EXIT_FAILED), err
        rows: list[dict[str, object]] = json.loads(out)["rows"]
        return rows


def test_a_site_that_matches_its_snapshot_has_no_drift(site: Site) -> None:
    """Right after a run, verify reads every object back and finds nothing: exit 0."""
    code, out, err = site.verify("--format", "json")
    assert code == EXIT_OK, err
    document = json.loads(out)
    assert document["rows"] == []
    assert document["meta"]["checked"]["person"] > 0
    assert document["meta"]["checked"]["membership"] > 0


def snapshot_keys(state: Path, kind: str) -> list[str]:
    """The snapshot's sync keys of one kind."""
    from sync.models import kind_named

    with StateStore.open(state, exclusive=False) as store:
        return [str(key) for key in store.load(kind_named(kind)).index]


def memberships_of(state: Path, *, person: str = "", group: str = "") -> set[str]:
    """The snapshot's memberships of a person or a group."""
    from sync.models.kinds import MEMBERSHIP

    with StateStore.open(state, exclusive=False) as store:
        frame = store.load(MEMBERSHIP)
    chosen = frame[(frame["person"] == person) | (frame["group"] == group)]
    return {str(key) for key in chosen.index}


def make_drift(site: Site) -> set[tuple[str, str, str]]:
    """Drift of every kind made by hand; the (kind, sync key, drift) rows verify must find."""
    in_5a = sorted(memberships_of(site.state, group="cls-5a") - memberships_of(site.state, person="usr-1003"))
    changed_membership, deleted_membership = in_5a[0], in_5a[1]
    hand_made = [
        ("edit", "person", "usr-1002", "--set", "given_name=Nora"),
        ("delete", "person", "usr-1003"),
        ("create", "person", "usr-9999", "--set", "given_name=Hand", "--set", "family_name=Made"),
        ("edit", "group", "cls-6a", "--set", "desc_short=6A (renamed)"),
        ("delete", "group", "cls-7a"),
        ("edit", "membership", changed_membership, "--set", "role=Instructor"),
        ("delete", "membership", deleted_membership),
        (
            "create",
            "membership",
            "enr-by-hand",
            "--set",
            "group_key=cls-5a",
            "--set",
            "person_key=usr-1001",
            "--set",
            "role=Learner",
        ),
    ]
    for args in hand_made:
        code, out, err = site.admin(*args)
        assert code == EXIT_OK, err
        assert out.startswith(f"{args[0]}"[:4])
    gone = memberships_of(site.state, person="usr-1003") | memberships_of(site.state, group="cls-7a")
    return {
        ("person", "usr-1002", "changed"),
        ("person", "usr-1003", "missing"),
        ("person", "usr-9999", "extra"),
        ("group", "cls-6a", "changed"),
        ("group", "cls-7a", "missing"),
        ("membership", changed_membership, "changed"),
        ("membership", deleted_membership, "missing"),
        ("membership", "enr-by-hand", "extra"),
        *(("membership", key, "missing") for key in gone),
    }


def found(rows: list[dict[str, object]]) -> set[tuple[str, str, str]]:
    return {(str(r["kind"]), str(r["sync_key"]), str(r["drift"])) for r in rows}


def test_drift_of_every_kind_is_found_with_exactly_its_keys(site: Site) -> None:
    """Every hand-made drift is one JSON row with exactly kind, sync_key, drift (and fields when changed)."""
    expected = make_drift(site)
    rows = site.drift()
    assert found(rows) == expected
    for row in rows:
        keys = {"kind", "sync_key", "drift"} | ({"fields"} if row["drift"] == "changed" else set())
        assert set(row) == keys
    by_key = {(r["kind"], r["sync_key"]): r for r in rows}
    assert by_key["person", "usr-1002"]["fields"] == [
        {"field": "given_name", "snapshot": "Noah", "itslearning": "Nora"}
    ]
    assert by_key["group", "cls-6a"]["fields"] == [
        {"field": "name", "snapshot": "6A", "itslearning": "6A (renamed)"}
    ]


def test_every_format_names_the_drift_and_what_the_next_run_does(site: Site, tmp_path: Path) -> None:
    """Table, CSV, Markdown and HTML list each drifted object and its next run; exit 1 for all."""
    make_drift(site)
    code, out, _ = site.verify()
    assert code == EXIT_FAILED
    assert "usr-1002" in out
    assert "Noah → Nora" in out
    assert "update given_name once repaired" in out
    code, out, _ = site.verify("--format", "csv")
    assert code == EXIT_FAILED
    table = list(csv.DictReader(io.StringIO(out)))
    assert {(r["kind"], r["sync_key"], r["drift"]) for r in table} >= {("person", "usr-9999", "extra")}
    assert (
        next(r for r in table if r["sync_key"] == "usr-1003")["next_run"]
        == "create once repaired (verify --repair)"
    )
    for suffix in ("md", "html"):
        report = tmp_path / f"drift.{suffix}"
        code, _, err = site.verify("--output", str(report))
        assert code == EXIT_FAILED, err
        text = report.read_text(encoding="utf-8")
        assert "usr-1003" in text
        assert "cls-6a" in text
        assert "enr-by-hand" in text
        assert "Missing" in text
        assert "Changed" in text
        assert "Extra" in text


def test_repair_then_run_leaves_only_the_extras(site: Site) -> None:
    """verify --repair records missing and changed objects; the plan says which operations come from
    drift; one run puts them right; verify then reports only the extras."""
    expected = make_drift(site)
    code, _, err = site.verify("--repair", "--format", "json")
    assert code == EXIT_FAILED, err
    assert "recorded" in err
    code, out, err = site.cli("snapshot", "check", "--state", str(site.state))
    assert code == EXIT_OK, out + err
    code, out, err = site.cli(
        "plan", str(BASE), "-m", "oneroster", "--state", str(site.state), "--format", "json"
    )
    assert code == EXIT_OK, err
    from_drift = {(d["object"], d["syncKey"], d["drift"]) for d in json.loads(out)["meta"]["fromDrift"]}
    assert ("person", "usr-1002", "changed") in from_drift
    assert ("person", "usr-1003", "missing") in from_drift
    assert ("group", "cls-7a", "missing") in from_drift
    assert all(drift != "extra" for _, _, drift in from_drift)
    for fmt, marker in (
        ("csv", "drift: missing (verify --repair)"),
        ("md", "From drift"),
        ("html", "From drift"),
    ):
        code, out, _ = site.cli(
            "plan", str(BASE), "-m", "oneroster", "--state", str(site.state), "--format", fmt
        )
        assert code == EXIT_OK
        assert marker in out
    code, _, err = site.run()
    assert code == EXIT_OK, err
    rows = site.drift()
    assert found(rows) == {row for row in expected if row[2] == "extra"}
    assert site.emulator.persons()["usr-1002"].given_name == "Noah"
    code, out, _ = site.cli(
        "plan", str(BASE), "-m", "oneroster", "--state", str(site.state), "--format", "json"
    )
    assert "fromDrift" not in json.loads(out)["meta"]


def test_a_sample_is_seeded_printed_and_repeatable(site: Site) -> None:
    """--sample N checks N objects chosen with a printed seed; the same seed checks the same ones."""
    make_drift(site)
    code, out, err = site.verify("--sample", "5", "--format", "json")
    assert code in (EXIT_OK, EXIT_FAILED)
    seed = json.loads(next(line for line in err.splitlines() if "verify_sample" in line))["seed"]
    document = json.loads(out)
    assert sum(document["meta"]["checked"].values()) == 5
    assert f"seed {seed}" in document["meta"]["notes"][0]
    assert all(row["drift"] != "extra" for row in document["rows"])
    again = site.drift("--sample", "5", "--seed", str(seed))
    assert again == document["rows"]


def test_reads_are_journalled_with_their_message_ids(site: Site) -> None:
    """Each read of a verify is a journal request whose answer refers to its messageIdentifier, and
    reconcile finds every one of them answered and matched."""
    site.verify()
    with StateStore.open(site.state, exclusive=False) as store:
        run = store.runs()[-1]
        entries = store.journal(run.run_id)
    assert run.command == "verify"
    operations = {entry.operation for entry in entries}
    assert {"readPersons", "readAllPersons", "readGroup", "readMembershipsForGroup"} <= operations
    for entry in entries:
        assert entry.message_id_ref == entry.message_identifier
    persons = {item.sync_key for entry in entries if entry.operation == "readPersons" for item in entry.items}
    assert persons == set(snapshot_keys(site.state, "person"))
    assert max(len(entry.items) for entry in entries) <= 10
    code, out, err = site.cli("reconcile", "--state", str(site.state))
    assert code == EXIT_OK, out + err


def test_no_secret_reaches_any_output(site: Site, tmp_path: Path) -> None:
    """Neither the password of the service nor a person's initial password appears in any output."""
    make_drift(site)
    for fmt in ("table", "json", "csv", "md", "html"):
        code, out, err = site.verify("--format", fmt)
        assert code == EXIT_FAILED
        for secret in (PASSWORD, "Start-1001!"):
            assert secret not in out
            assert secret not in err


def test_exit_codes_for_usage_and_an_unreachable_service(site: Site, tmp_path: Path) -> None:
    """No state or a batch beyond the budget is exit 2; a service that is gone is exit 4, at once."""
    code, _, err = site.cli(
        "verify", str(BASE), "-m", "oneroster", "--state", str(tmp_path / "none"), *site.remote()
    )
    assert code == EXIT_USAGE
    assert "nothing to verify" in err
    code, _, err = site.verify("--batch-size", "20")
    assert code == EXIT_USAGE
    assert "in-flight budget" in err
    remote = site.remote()
    site.emulator.stop()
    code, _, err = site.cli("verify", str(BASE), "-m", "oneroster", "--state", str(site.state), *remote)
    assert code == EXIT_UNREACHABLE, err
    with StateStore.open(site.state, exclusive=False) as store:
        last = store.runs()[-1]
        assert last.status == "failed"
        # Ten reads failed in a row (the budget) ended the check: fewer tries than 9 groups x 3.
        assert 10 <= len(store.journal(last.run_id)) < 27
