"""PersonClient's direct envelope builder: byte-identical to zeep's rendering for every operation."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from sync.ims import bodies
from sync.ims.bodies import key_body, keys_body, pairs_body, record_body, rename_body
from sync.ims.clients import PersonClient
from sync.ims.namespaces import COMMON, PMS_MESS
from sync.ims.persons import page_body
from sync.models import Person
from sync.models.kinds import PERSON

URL: Final = "https://ims.example.test/PersonManagementService.svc"
ALL_OPERATIONS: Final = frozenset(
    {
        "createPerson",
        "updatePerson",
        "replacePerson",
        "deletePerson",
        "readPerson",
        "readPersons",
        "changePersonIdentifier",
        "createPersons",
        "deletePersons",
        "readAllPersons",
    }
)

# XML-compatible text (lxml refuses control characters either way), with markup-like and non-ASCII text.
xml_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff", max_codepoint=0x1FFFF
    )
    | st.sampled_from("&<>\"' \t\n"),
    max_size=12,
)
persons = st.builds(
    Person,
    sync_key=xml_text.filter(bool),
    username=xml_text,
    given_name=xml_text,
    family_name=xml_text,
    email=xml_text,
    role=st.sampled_from(["", "Student", "Staff", "Carer", "Administrator"]),
    birth_date=st.sampled_from(["", "2001-02-03", "1999-12-31"]),
    phone=xml_text,
    mobile=xml_text,
)


@pytest.fixture(name="client", scope="module")
def fixture_client() -> PersonClient:
    """A client of the bundled WSDL (no request is sent by these tests)."""
    return PersonClient(url=URL, username="integration", password="not-sent-here")


def both(client: PersonClient, name: str, body: Any) -> tuple[bytes, bytes]:
    """The (zeep, direct) renderings of one request, with one shared Security header and message id."""
    security = client._wsse.security_element()
    operation = client._operations[name]
    zeep_bytes = client._render(operation, body, "mid-1", security, direct=False)
    direct_bytes = client._render(operation, body, "mid-1", security, direct=True)
    return zeep_bytes, direct_bytes


class TestDirectRendering:
    """The direct builder renders exactly what zeep renders, and is used only where verified."""

    def test_every_operation_is_verified_at_construction(self, client: PersonClient) -> None:
        """With the bundled WSDL, the warm-up finds the direct builder identical for every operation."""
        assert client._direct == ALL_OPERATIONS

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(person=persons, password=xml_text)
    @pytest.mark.parametrize("name", ["createPerson", "updatePerson", "replacePerson"])
    def test_single_person_operations_match_zeep(
        self, client: PersonClient, name: str, person: Person, password: str
    ) -> None:
        """createPerson/updatePerson/replacePerson bytes equal zeep's for any person and password."""
        zeep_bytes, direct_bytes = both(client, name, record_body(PERSON, person, password))
        assert direct_bytes == zeep_bytes

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(items=st.lists(st.tuples(persons, xml_text), min_size=1, max_size=4))
    def test_create_persons_matches_zeep(self, client: PersonClient, items: list[tuple[Person, str]]) -> None:
        """createPersons bytes equal zeep's for any batch of persons and passwords."""
        zeep_bytes, direct_bytes = both(client, "createPersons", pairs_body(PERSON, items))
        assert direct_bytes == zeep_bytes

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(keys=st.lists(xml_text.filter(bool), min_size=1, max_size=5), old=xml_text, new=xml_text)
    def test_key_operations_match_zeep(
        self, client: PersonClient, keys: list[str], old: str, new: str
    ) -> None:
        """deletePerson, readPerson, readPersons, deletePersons, changePersonIdentifier equal zeep's."""
        cases: list[tuple[str, Any]] = [
            ("deletePerson", key_body(PERSON, keys[0])),
            ("readPerson", key_body(PERSON, keys[0])),
            ("readPersons", keys_body(PERSON, keys)),
            ("deletePersons", keys_body(PERSON, keys)),
            ("changePersonIdentifier", rename_body(PERSON, old, new)),
        ]
        for name, body in cases:
            zeep_bytes, direct_bytes = both(client, name, body)
            assert direct_bytes == zeep_bytes, name

    @pytest.mark.parametrize(("index", "size"), [(0, 1), (7, 100), (12345, 50)])
    def test_read_all_persons_matches_zeep(self, client: PersonClient, index: int, size: int) -> None:
        """readAllPersons (paging, three nil filters) bytes equal zeep's."""
        zeep_bytes, direct_bytes = both(client, "readAllPersons", page_body(index, size))
        assert direct_bytes == zeep_bytes

    def test_text_that_xml_cannot_carry_fails_alike(self, client: PersonClient) -> None:
        """A control character is refused by both renderings with lxml's ValueError, nothing is sent."""
        body = record_body(PERSON, Person(sync_key="k1", given_name="bad\x01name"))
        for direct in (False, True):
            with pytest.raises(ValueError, match="XML compatible"):
                client._render(client._operations["updatePerson"], body, "m", direct=direct)

    def test_an_operation_that_differs_falls_back_to_zeep(self, client: PersonClient) -> None:
        """When the warm-up finds a difference (here: the person left empty), zeep renders."""
        original = bodies.KIND_XML["person"]
        try:
            bodies.KIND_XML["person"] = dataclasses.replace(
                original, fill=lambda element, person, password: None
            )
            other = PersonClient(url=URL, username="integration", password="not-sent-here")
        finally:
            bodies.KIND_XML["person"] = original
        assert "createPerson" not in other._direct
        assert "createPersons" not in other._direct
        assert "deletePerson" in other._direct
        data = other._render(
            other._operations["createPerson"], record_body(PERSON, Person(sync_key="k9", email="e@x")), "m"
        )
        person = etree.fromstring(data).find(f".//{{{PMS_MESS}}}person")
        assert person is not None
        assert person.findtext(f"{{{COMMON}}}email") == "e@x"
