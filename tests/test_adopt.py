"""Adopting a populated site: readAllPersons pages fill the snapshot, so nobody is created twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.emulator import Emulator
from sync.ims.clients import PersonClient
from sync.models import Person
from sync.models.kinds import PERSON
from sync.plan.diff import plan
from sync.read.mapping import load_mapping
from sync.read.roster import read_roster
from sync.state.adopt import adopt
from sync.state.store import StateStore
from tests.conftest import PASSWORD, USERNAME


def client_for(emulator: Emulator) -> PersonClient:
    """A client of the emulator."""
    return PersonClient(
        url=emulator.pms_url, username=USERNAME, password=PASSWORD, ca_bundle=emulator.ca_path
    )


def populate(emulator: Emulator, count: int) -> list[Person]:
    """Create `count` persons on the emulator, as an earlier tool would have."""
    persons = [
        Person(
            sync_key=f"p{n:04d}",
            username=f"user{n:04d}",
            given_name=f"Given{n}",
            family_name=f"Family{n}",
            email=f"user{n:04d}@school.example",
            role="Student",
        )
        for n in range(1, count + 1)
    ]
    with client_for(emulator) as client:
        for person in persons:
            assert client.create_person(person).ok
    return persons


class TestAdopt:
    """`adopt` fills the snapshot from the service, journalled page by page."""

    def test_pages_fill_the_snapshot_and_journal(self, emulator: Emulator, tmp_path: Path) -> None:
        """Seven persons in pages of three: three journalled pages, seven snapshot rows with identities."""
        populate(emulator, 7)
        with StateStore.open(tmp_path / "state") as store, client_for(emulator) as client:
            run_id = store.begin_run(command="adopt", roster="", mapping="")
            result = adopt(client, store, run_id=run_id, page_size=3)
            frame = store.load(PERSON)
            entries = store.journal(run_id)
        assert (result.persons, result.pages, result.reported_total) == (7, 3, 7)
        assert sorted(frame.index) == [f"p{n:04d}" for n in range(1, 8)]
        assert frame.loc["p0003", "identity"] == "user0003"
        assert frame.loc["p0003", "family_name"] == "Family3"
        assert [e.operation for e in entries] == ["readAllPersons"] * 3
        assert all(e.message_id_ref == e.message_identifier for e in entries)

    def test_first_run_after_adoption_plans_no_creates(self, emulator: Emulator, tmp_path: Path) -> None:
        """A roster of the adopted people plans no create; one edited person plans one update."""
        populate(emulator, 4)
        roster_csv = tmp_path / "users.csv"
        rows = [
            f"p{n:04d},active,student,user{n:04d},Given{n},Family{n},user{n:04d}@school.example"
            for n in range(1, 5)
        ]
        rows[1] = "p0002,active,student,user0002,Given2,Changed,user0002@school.example"
        roster_csv.write_text(
            "sourcedId,status,role,username,givenName,familyName,email\n" + "\n".join(rows) + "\n",
            encoding="utf-8",
        )
        with StateStore.open(tmp_path / "state") as store, client_for(emulator) as client:
            adopt(client, store, run_id=store.begin_run(command="adopt", roster="", mapping=""))
            the_plan = plan(read_roster(roster_csv, load_mapping("oneroster-users")), store.load(PERSON))
        summary = the_plan.summary
        assert (summary["create"], summary["update"], summary["unchanged"]) == (0, 1, 3)

    def test_page_size_over_itslearnings_limit_is_refused(self, emulator: Emulator, tmp_path: Path) -> None:
        """itslearning answers at most 100 persons a page; a larger page size is refused before sending."""
        with (
            StateStore.open(tmp_path / "state") as store,
            client_for(emulator) as client,
            pytest.raises(ValueError, match="page_size"),
        ):
            adopt(
                client,
                store,
                run_id=store.begin_run(command="adopt", roster="", mapping=""),
                page_size=101,
            )
