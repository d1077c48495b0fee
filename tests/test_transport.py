"""PersonClient against the emulator over real HTTPS on loopback: every operation, every failure mode."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sync.emulator import Emulator
from sync.errors import AuthenticationError, CertificateError, ProtocolError, TransientError
from sync.ims.clients import PersonClient
from sync.ims.exchange import Timeouts, new_message_id
from sync.models import Person, Status

ANN = Person(
    sync_key="S-1",
    username="ann",
    given_name="Ann",
    family_name="Lee",
    email="ann@school.example",
    role="Student",
    birth_date="2009-04-30",
    phone="+47 22 00 00 00",
    mobile="+47 900 00 000",
)
BOB = Person(sync_key="S-2", username="bob", given_name="Bob", family_name="Berg", role="Staff")


def connect(emulator: Emulator, **options: Any) -> PersonClient:
    """A client for `emulator`, trusting its certificate unless told otherwise."""
    settings: dict[str, Any] = {
        "url": emulator.pms_url,
        "username": emulator.username,
        "password": emulator.password,
        "ca_bundle": emulator.ca_path,
    }
    settings.update(options)
    return PersonClient(**settings)


def minor(status: Status) -> str:
    """The first codeMinorName of a status ("" if none)."""
    return status.code_minor[0][0] if status.code_minor else ""


@pytest.fixture(name="client")
def fixture_client(emulator: Emulator) -> Iterator[PersonClient]:
    """A client connected to the strict emulator."""
    with connect(emulator) as client:
        yield client


class TestSinglePerson:
    """createPerson, updatePerson, replacePerson, deletePerson, readPerson, changePersonIdentifier."""

    def test_create_then_read(self, client, emulator) -> None:
        """A created person is stored and read back field for field; the status answers our message id."""
        status = client.create_person(ANN, password="pupil-pw", message_id="m-1")
        assert status.ok
        assert status.message_id_ref == "m-1"
        assert emulator.persons() == {ANN.sync_key: ANN}
        read_status, person = client.read_person(ANN.sync_key)
        assert read_status.ok
        assert person == ANN

    def test_create_existing_updates(self, client, emulator) -> None:
        """createPerson of an existing key succeeds and updates it."""
        client.create_person(ANN)
        changed = Person(**{**ANN.values(), "sync_key": ANN.sync_key, "email": "new@school.example"})
        assert client.create_person(changed).ok
        assert emulator.persons()[ANN.sync_key].email == "new@school.example"

    def test_update_merges_and_creates(self, client, emulator) -> None:
        """updatePerson keeps fields it does not carry, and creates an unknown key."""
        client.create_person(ANN)
        assert client.update_person(Person(sync_key=ANN.sync_key, given_name="Anne")).ok
        merged = emulator.persons()[ANN.sync_key]
        assert (merged.given_name, merged.family_name, merged.email) == ("Anne", "Lee", ANN.email)
        assert client.update_person(BOB).ok
        assert emulator.persons()[BOB.sync_key] == BOB

    def test_replace_stores_exactly_and_inserts_with_warning(self, client, emulator) -> None:
        """replacePerson stores exactly what it gets; an unknown key is inserted with a warning."""
        client.create_person(ANN)
        assert client.replace_person(Person(sync_key=ANN.sync_key, given_name="Only")).ok
        assert emulator.persons()[ANN.sync_key] == Person(sync_key=ANN.sync_key, given_name="Only")
        status = client.replace_person(BOB)
        assert status.ok
        assert status.severity == "warning"
        assert status.description == "Object did not exist, has been inserted instead"

    def test_delete(self, client, emulator) -> None:
        """deletePerson removes a person; deleting an unknown key fails with unknownobject."""
        client.create_person(ANN)
        assert client.delete_person(ANN.sync_key).ok
        assert emulator.persons() == {}
        status = client.delete_person(ANN.sync_key)
        assert (status.code_major, status.severity, minor(status)) == ("failure", "error", "unknownobject")

    def test_read_unknown(self, client) -> None:
        """readPerson of an unknown key is a failure status and no person."""
        status, person = client.read_person("nobody")
        assert person is None
        assert minor(status) == "unknownobject"
        assert status.code_minor[0][1] == "nobody"

    def test_change_identifier(self, client, emulator) -> None:
        """changePersonIdentifier moves a person; unknown, taken and unrecognised-role cases fail."""
        client.create_person(ANN)
        client.create_person(BOB)
        assert client.change_person_identifier(ANN.sync_key, "S-9").ok
        assert set(emulator.persons()) == {"S-9", BOB.sync_key}
        assert minor(client.change_person_identifier("missing", "S-10")) == "unknownobject"
        assert minor(client.change_person_identifier("S-9", BOB.sync_key)) == "objectexists"
        client.create_person(Person(sync_key="S-F", role="Faculty"))
        assert minor(client.change_person_identifier("S-F", "S-G")) == "invaliddata"

    @pytest.mark.parametrize("key", ["x" * 65, ""])
    def test_bad_sync_key(self, key, client) -> None:
        """A sync key over 64 characters or empty is invaliddata."""
        status = client.create_person(Person(sync_key=key, given_name="K"))
        assert (status.code_major, minor(status)) == ("failure", "invaliddata")


class TestMass:
    """createPersons, deletePersons, readPersons and readAllPersons."""

    def test_create_persons_with_one_bad_item(self, client, emulator) -> None:
        """One invalid item fails alone; the others are created; items come in request order."""
        items = [(ANN, "pw-a"), (Person(sync_key="y" * 65), ""), (BOB, "")]
        reply = client.create_persons(items, message_id="mass-1")
        assert [(s.code_major, minor(s)) for s in reply.items] == [
            ("success", "fullsuccess"),
            ("failure", "invaliddata"),
            ("success", "fullsuccess"),
        ]
        assert all(s.message_id_ref == "mass-1" for s in (reply.status, *reply.items))
        assert set(emulator.persons()) == {ANN.sync_key, BOB.sync_key}

    def test_read_persons_with_unknown_ids(self, client) -> None:
        """readPersons returns a person per known key and None per unknown one, in order."""
        client.create_persons([(ANN, ""), (BOB, "")])
        reply, persons = client.read_persons(["nobody", BOB.sync_key, "ghost", ANN.sync_key])
        assert persons == (None, BOB, None, ANN)
        assert [minor(s) for s in reply.items] == [
            "unknownobject",
            "fullsuccess",
            "unknownobject",
            "fullsuccess",
        ]

    def test_delete_persons(self, client, emulator) -> None:
        """deletePersons deletes the known keys and reports the unknown ones."""
        client.create_persons([(ANN, ""), (BOB, "")])
        reply = client.delete_persons([ANN.sync_key, "ghost", BOB.sync_key])
        assert [s.ok for s in reply.items] == [True, False, True]
        assert emulator.persons() == {}

    def test_read_all_persons_pages(self, client) -> None:
        """readAllPersons pages through everybody in sync-key order, with the total count."""
        people = [Person(sync_key=f"K-{n}", given_name=f"P{n}") for n in (4, 1, 3, 0, 2)]
        client.create_persons([(p, "") for p in people])
        pages = [client.read_all_persons(page_index=i, page_size=2) for i in range(3)]
        assert [p.virtual_count for p in pages] == [5, 5, 5]
        assert [len(p.persons) for p in pages] == [2, 2, 1]
        assert [p for page in pages for p in page.persons] == sorted(people, key=lambda p: p.sync_key)

    def test_read_all_persons_page_size_limit(self, client) -> None:
        """A page size over 100 is refused with invaliddata."""
        page = client.read_all_persons(page_index=0, page_size=101)
        assert (page.status.code_major, minor(page.status)) == ("failure", "invaliddata")
        assert page.persons == ()


class TestFailures:
    """Faults on the wire become the documented exceptions."""

    def test_wrong_password(self, emulator) -> None:
        """A wrong password is an AuthenticationError that does not show it."""
        with (
            connect(emulator, password="wrong-password-123") as client,
            pytest.raises(AuthenticationError) as caught,
        ):
            client.create_person(ANN)
        assert "wrong-password-123" not in str(caught.value)
        assert "createPerson" in str(caught.value)

    def test_service_unavailable(self, emulator_factory) -> None:
        """HTTP 503 is a TransientError."""
        with connect(emulator_factory(error_rate=1.0)) as client, pytest.raises(TransientError, match="503"):
            client.update_person(ANN)

    def test_dropped_connection(self, emulator_factory) -> None:
        """A connection closed without an answer is a TransientError."""
        with connect(emulator_factory(drop_rate=1.0)) as client, pytest.raises(TransientError):
            client.update_person(ANN)

    def test_wrong_message_id_ref(self, emulator_factory) -> None:
        """An answer carrying another messageIdRef is a ProtocolError."""
        with (
            connect(emulator_factory(wrong_ref_rate=1.0)) as client,
            pytest.raises(ProtocolError, match="m-7"),
        ):
            client.update_person(ANN, message_id="m-7")

    def test_read_timeout(self, emulator_factory) -> None:
        """An answer slower than the read timeout is a TransientError."""
        emulator = emulator_factory(latency_ms=400)
        client = connect(emulator, timeouts=Timeouts(connect=5.0, read=0.1))
        with client, pytest.raises(TransientError, match="timed out"):
            client.delete_person("k")

    def test_untrusted_certificate(self, emulator) -> None:
        """Without the CA, the certificate does not verify: a CertificateError that names --ca-bundle."""
        with (
            connect(emulator, ca_bundle=None) as client,
            pytest.raises(CertificateError, match="--ca-bundle"),
        ):
            client.delete_person("k")


class TestClient:
    """The client as a shared, long-lived object."""

    def test_live_wsdl(self, emulator) -> None:
        """The client can parse the WSDL the emulator serves at ?wsdl and work with it."""
        with connect(emulator, wsdl=f"{emulator.pms_url}?wsdl") as client:
            assert client.create_person(ANN).ok
            assert client.read_all_persons(page_index=0).persons == (ANN,)

    def test_concurrent_calls(self, client, emulator) -> None:
        """Sixteen threads on one client: every call succeeds and answers its own message id."""
        start = threading.Barrier(16)

        def work(thread: int) -> list[tuple[str, Status]]:
            start.wait()
            results = []
            for n in range(8):
                message_id = new_message_id()
                person = Person(sync_key=f"T{thread:02d}-{n}", given_name=f"T{thread}", role="Student")
                results.append((message_id, client.create_person(person, message_id=message_id)))
            return results

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = [r for batch in pool.map(work, range(16)) for r in batch]
        assert len(results) == 128
        assert all(status.ok and status.message_id_ref == mid for mid, status in results)
        assert len(emulator.persons()) == 128
