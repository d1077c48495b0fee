"""Every person field and the parent/child relationships on the wire: PersonClient (zeep) against the
emulator over HTTPS, every exchange checked against itslearning's WSDL (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from sync.emulator import Emulator
from sync.emulator.persons import PARENT_PORTAL_DISABLED
from sync.emulator.soap import InvalidDataError, parse_person, person_element
from sync.ims.clients import PersonClient
from sync.ims.namespaces import COMMON, PMS_DATA
from sync.models import Person, Severity
from sync.models.kinds import PERSON
from sync.state.adopt import adopt
from sync.state.store import StateStore
from tests.clients import connect
from tests.conftest import ExchangeLog

FULL = Person(
    sync_key="kid-1",
    username="ola",
    given_name="Ola",
    family_name="Nordmann",
    email="ola@school.test",
    role="Student",
    birth_date="2012-03-04",
    phone="+47 22 00 00 00",
    mobile="+47 900 00 000",
    nickname="Olli",
    prefix="Mr",
    street="Storgata 1",
    street_extra="c/o Hansen",
    postal_code="0155",
    city="Oslo",
    gender="Male",
)


def _carer(key: str, children: str = "") -> Person:
    return Person(
        sync_key=key, username=key, given_name="Kari", family_name=key, role="Carer", children=children
    )


def _relations(response: bytes) -> list[tuple[str, str | None]]:
    """(relation, sourceId) of every relationship in an answer, in order."""
    root = etree.fromstring(response)
    return [
        (
            r.findtext(f"{{{COMMON}}}relation") or "",
            r.findtext(f"{{{COMMON}}}sourceId/{{{COMMON}}}identifier") or "",
        )
        for r in root.iter(f"{{{COMMON}}}relationship")
    ]


@pytest.fixture(name="client")
def fixture_client(emulator: Emulator) -> PersonClient:
    """A PMS client of the strict emulator."""
    return connect(emulator, PersonClient, emulator.pms_url)


class TestFields:
    """Each field itslearning takes is sent, stored and read back."""

    def test_every_field_round_trips(self, client: PersonClient, emulator: Emulator) -> None:
        """createPerson with every field set reads back the same person, and the emulator holds it."""
        assert client.create_person(FULL, password="Pw-1234567!").ok
        status, read = client.read_person("kid-1")
        assert status.ok
        assert read == FULL
        assert emulator.persons()["kid-1"] == FULL

    @pytest.mark.parametrize(
        ("gender", "birth_date", "sent"),
        [("", "2012-03-04", "Gender"), ("Female", "", "Female"), ("", "", None)],
    )
    def test_gender_sent_as_itslearning_requires(
        self, client: PersonClient, exchange_log: ExchangeLog, gender: str, birth_date: str, sent: str | None
    ) -> None:
        """Demographics carry the gender ("Gender", unspecified, with only a birth date), or are left out."""
        person = Person(sync_key="p", given_name="A", role="Student", gender=gender, birth_date=birth_date)
        assert client.update_person(person).ok
        request = etree.fromstring(exchange_log.exchanges[-1].request)
        assert request.findtext(f".//{{{PMS_DATA}}}demographics/{{{PMS_DATA}}}gender") == sent
        assert client.read_person("p")[1] == person


class TestRelationships:
    """Children go out as Child relationships; reads answer Child on the parent, Parent on the child."""

    def test_reads_answer_child_on_the_parent_and_parent_on_the_child(
        self, client: PersonClient, exchange_log: ExchangeLog
    ) -> None:
        """A parent reads back its children; a child's answer names its parent as Parent, not as a child."""
        for key in ("kid-1", "kid-2"):
            assert client.create_person(Person(sync_key=key, given_name=key, role="Student")).ok
        assert client.create_person(_carer("mum", "kid-1,kid-2")).ok
        request = etree.fromstring(exchange_log.exchanges[-1].request)
        assert _relations(etree.tostring(request)) == [("Child", "kid-1"), ("Child", "kid-2")]
        assert client.read_person("mum")[1] == _carer("mum", "kid-1,kid-2")
        status, kid = client.read_person("kid-1")
        assert status.ok
        assert kid is not None
        assert kid.children == ""
        response = exchange_log.exchanges[-1].response
        assert response is not None
        assert _relations(response) == [("Parent", "mum")]

    def test_update_adds_and_replace_replaces(self, client: PersonClient, emulator: Emulator) -> None:
        """updatePerson adds the children it carries to those held; replacePerson keeps only its own."""
        for key in ("kid-1", "kid-2", "kid-3"):
            assert client.create_person(Person(sync_key=key, given_name=key, role="Student")).ok
        assert client.create_person(_carer("dad", "kid-1,kid-2")).ok
        assert client.update_person(_carer("dad", "kid-3")).ok
        assert emulator.persons()["dad"].children == "kid-1,kid-2,kid-3"
        assert client.update_person(_carer("dad")).ok  # no relationship: nothing removed
        assert emulator.persons()["dad"].children == "kid-1,kid-2,kid-3"
        assert client.replace_person(_carer("dad", "kid-2")).ok
        assert emulator.persons()["dad"].children == "kid-2"
        assert client.replace_person(_carer("dad")).ok
        assert emulator.persons()["dad"].children == ""

    def test_a_child_not_there_is_skipped(self, client: PersonClient, emulator: Emulator) -> None:
        """A relationship to a person the site does not hold is left out; the others are created."""
        assert client.create_person(Person(sync_key="kid-1", given_name="K", role="Student")).ok
        status = client.create_person(_carer("mum", "ghost,kid-1"))
        assert (status.ok, status.severity) == (True, Severity.STATUS)
        assert emulator.persons()["mum"].children == "kid-1"

    def test_links_follow_a_renamed_child_and_go_with_a_deleted_one(
        self, client: PersonClient, emulator: Emulator
    ) -> None:
        """A child's identifier change keeps its parent's link (under the new key); its deletion drops it."""
        for key in ("kid-1", "kid-2"):
            assert client.create_person(Person(sync_key=key, given_name=key, role="Student")).ok
        assert client.create_person(_carer("mum", "kid-1,kid-2")).ok
        assert client.change_person_identifier("kid-1", "kid-9").ok
        assert emulator.persons()["mum"].children == "kid-2,kid-9"
        assert client.delete_person("kid-2").ok
        assert client.read_person("mum")[1] == _carer("mum", "kid-9")

    def test_a_parent_relation_cannot_be_written(self) -> None:
        """Only Child can be written: a person element naming a Parent is refused as invalid data."""
        element = person_element(f"{{{PMS_DATA}}}person", _carer("kid-1"), parents=("mum",))
        with pytest.raises(InvalidDataError, match="only 'Child'"):
            parse_person(element)
        assert parse_person(person_element(f"{{{PMS_DATA}}}person", _carer("mum", "a,b"))).children == (
            "a",
            "b",
        )


class TestParentPortalOff:
    """A site whose parent portal is off writes the person and refuses the relationships, with a warning."""

    def test_warning_and_no_relationship(self, emulator_factory: Callable[..., Emulator]) -> None:
        """The answer is a success with severity warning naming the portal; the person is there, unlinked."""
        emulator = emulator_factory(strict=True, parent_portal=False)
        client = connect(emulator, PersonClient, emulator.pms_url)
        assert client.create_person(Person(sync_key="kid-1", given_name="K", role="Student")).ok
        status = client.create_person(_carer("mum", "kid-1"))
        assert (status.ok, status.severity, status.description) == (
            True,
            Severity.WARNING,
            PARENT_PORTAL_DISABLED,
        )
        assert "parent portal is disabled" in status.description
        assert emulator.persons()["mum"] == _carer("mum")
        plain = client.update_person(_carer("mum"))
        assert (plain.ok, plain.severity) == (True, Severity.STATUS)


class TestAdopt:
    """Adopting a site keeps only the later fields the mapping reads; the others stay empty, as the
    roster has them."""

    def test_adopt_keeps_mapped_children_and_leaves_unmapped_fields_empty(
        self, client: PersonClient, tmp_path: Path
    ) -> None:
        """A parent's links are adopted when the mapping reads children; its city (not read) is not."""
        assert client.create_person(Person(sync_key="kid-1", given_name="K", role="Student")).ok
        assert client.create_person(replace(_carer("mum", "kid-1"), city="Oslo")).ok
        for mapped, children in ((frozenset({"children"}), "kid-1"), (frozenset(), "")):
            state = tmp_path / f"state-{len(mapped)}"
            with StateStore.open(state) as store:
                run_id = store.begin_run(command="adopt", roster="", mapping="")
                adopt(client, store, run_id=run_id, mapped=mapped)
                frame = store.load(PERSON)
            assert (frame.loc["mum", "children"], frame.loc["mum", "city"]) == (children, "")
            assert frame.loc["mum", "username"] == "mum"
