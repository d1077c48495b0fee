"""MembershipClient (MMS) against the emulator over real HTTPS on loopback, and the emulator's active flag.

Every exchange is validated by the `exchange_log` fixture against itslearning's MembershipManagement WSDL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sync.emulator import Emulator
from sync.emulator.store import Membership as HeldMembership
from sync.emulator.store import Store
from sync.errors import AuthenticationError, ProtocolError, RejectedError, TransientError
from sync.ims.bodies import pairs_body, rename_body
from sync.ims.clients import GroupClient, MembershipClient, PersonClient
from sync.ims.memberships import MMS_SPEC
from sync.ims.namespaces import COMMON, MMS_DATA, MMS_MESS
from sync.ims.wire import RequestBody
from sync.models import Group, Membership, Person
from sync.models.kinds import MEMBERSHIP
from tests.clients import connect, minor
from tests.conftest import ExchangeLog

ANN = Membership(sync_key="M-1", group="CRS-1", person="P-1", role="Learner")
BOB = Membership(sync_key="M-2", group="CRS-1", person="P-2", role="Instructor")
ANN_2 = Membership(sync_key="M-3", group="CRS-2", person="P-1", role="Learner", active="false")


def populate(emulator: Emulator) -> None:
    """Persons P-1, P-2, P-3 and groups SCH-1 > CRS-1, CRS-2, created through the PMS and GMS clients."""
    with (
        connect(emulator, PersonClient, emulator.pms_url) as persons,
        connect(emulator, GroupClient, emulator.gms_url) as groups,
    ):
        reply = persons.create_persons(
            [(Person(sync_key=f"P-{n}", given_name=f"N{n}"), "") for n in (1, 2, 3)]
        )
        assert all(item.ok for item in reply.items)
        reply = groups.create_groups(
            [
                Group(sync_key="SCH-1", name="School", type="School"),
                Group(sync_key="CRS-1", name="Maths", type="Course", parent="SCH-1"),
                Group(sync_key="CRS-2", name="Music", type="Course", parent="SCH-1"),
            ]
        )
        assert all(item.ok for item in reply.items)


@pytest.fixture(name="world")
def fixture_world(emulator: Emulator) -> Emulator:
    """The strict emulator holding three persons and three groups."""
    populate(emulator)
    return emulator


@pytest.fixture(name="client")
def fixture_client(world: Emulator) -> Iterator[MembershipClient]:
    """An MMS client connected to the populated strict emulator."""
    with connect(world, MembershipClient, world.mms_url) as client:
        yield client


class TestSingleMembership:
    """createMembership, readMembership, updateMembership, deleteMembership."""

    def test_create_then_read(self, client: MembershipClient, world: Emulator) -> None:
        """A created membership is stored (active) and read back equal; the status answers our id."""
        status = client.create_membership(ANN, message_id="m-1")
        assert (status.code_major, status.message_id_ref, minor(status)) == (
            "success",
            "m-1",
            ("fullsuccess", ANN.sync_key),
        )
        assert world.memberships() == {
            ANN.sync_key: HeldMembership(sync_key="M-1", group_key="CRS-1", person_key="P-1", role="Learner")
        }
        read_status, membership = client.read_membership(ANN.sync_key, message_id="m-2")
        assert (read_status.ok, read_status.message_id_ref) == (True, "m-2")
        assert membership == ANN

    def test_create_inactive(self, client: MembershipClient, world: Emulator) -> None:
        """A membership created with active "false" is held and read back inactive."""
        assert client.create_membership(ANN_2).ok
        assert world.memberships()[ANN_2.sync_key].active is False
        assert client.read_membership(ANN_2.sync_key)[1] == ANN_2

    def test_deactivate_and_reactivate(self, client: MembershipClient, world: Emulator) -> None:
        """updateMembership with active false keeps the membership with status false; true restores it."""
        client.create_membership(ANN)
        off = Membership(**{**ANN.values(), "sync_key": ANN.sync_key, "active": "false"})
        assert client.update_membership(off).ok
        assert world.memberships()[ANN.sync_key].active is False
        assert client.read_membership(ANN.sync_key)[1] == off
        assert client.update_membership(ANN).ok
        assert client.read_membership(ANN.sync_key)[1] == ANN

    def test_update_role_and_group(self, client: MembershipClient) -> None:
        """updateMembership changes role and group; an unknown key is unknownobject."""
        client.create_membership(ANN)
        changed = Membership(sync_key=ANN.sync_key, group="CRS-2", person="P-1", role="TeachingAssistant")
        assert client.update_membership(changed).ok
        assert client.read_membership(ANN.sync_key)[1] == changed
        status = client.update_membership(
            Membership(sync_key="ghost", group="CRS-1", person="P-1", role="Learner")
        )
        assert (status.code_major, status.severity, minor(status)) == (
            "failure",
            "error",
            ("unknownobject", "ghost"),
        )

    def test_create_existing_updates(self, client: MembershipClient, world: Emulator) -> None:
        """createMembership of an existing key succeeds and updates it."""
        client.create_membership(ANN)
        assert client.create_membership(
            Membership(**{**ANN.values(), "sync_key": ANN.sync_key, "role": "Mentor"})
        ).ok
        assert len(world.memberships()) == 1
        assert world.memberships()[ANN.sync_key].role == "Mentor"

    @pytest.mark.parametrize(
        ("membership", "missing", "kind"),
        [
            (Membership(sync_key="M-9", group="CRS-1", person="P-404", role="Learner"), "P-404", "Person"),
            (Membership(sync_key="M-9", group="CRS-404", person="P-1", role="Learner"), "CRS-404", "Group"),
        ],
    )
    def test_unknown_person_or_group(
        self, client: MembershipClient, world: Emulator, membership: Membership, missing: str, kind: str
    ) -> None:
        """A person or group that does not exist is unknownobject naming it; nothing is stored."""
        status = client.create_membership(membership)
        assert (status.code_major, minor(status)) == ("failure", ("unknownobject", missing))
        assert status.description.startswith(f"{kind} '{missing}'")
        assert world.memberships() == {}

    def test_delete(self, client: MembershipClient, world: Emulator) -> None:
        """deleteMembership removes it; a second delete is unknownobject."""
        client.create_membership(ANN)
        assert client.delete_membership(ANN.sync_key).ok
        assert world.memberships() == {}
        assert minor(client.delete_membership(ANN.sync_key)) == ("unknownobject", ANN.sync_key)

    def test_read_unknown(self, client: MembershipClient) -> None:
        """readMembership of an unknown key is a failure status and no membership."""
        status, membership = client.read_membership("nobody")
        assert membership is None
        assert (status.code_major, minor(status)) == ("failure", ("unknownobject", "nobody"))

    @pytest.mark.parametrize("active", ["yes", "", "on"])
    def test_bad_active_flag_sends_nothing(
        self, client: MembershipClient, world: Emulator, active: str
    ) -> None:
        """An active text that is no boolean is refused before anything is sent."""
        before = len(world.history())
        bad = Membership(sync_key="M-9", group="CRS-1", person="P-1", role="Learner", active=active)
        with pytest.raises(RejectedError, match="active"):
            client.create_membership(bad)
        with pytest.raises(RejectedError, match="active"):
            client.create_memberships([ANN, bad])
        assert len(world.history()) == before
        assert world.memberships() == {}

    def test_lenient_flag_spellings(self, client: MembershipClient) -> None:
        """ "1"/"0" and any case are accepted and read back canonical."""
        client.create_membership(Membership(**{**ANN.values(), "sync_key": ANN.sync_key, "active": "0"}))
        client.create_membership(Membership(**{**BOB.values(), "sync_key": BOB.sync_key, "active": "True"}))
        assert client.read_membership(ANN.sync_key)[1] == Membership(
            **{**ANN.values(), "sync_key": ANN.sync_key, "active": "false"}
        )
        assert client.read_membership(BOB.sync_key)[1] == BOB


class TestMass:
    """createMemberships, deleteMemberships, readMembershipsForPerson/ForGroup."""

    def test_create_memberships_items_in_order(self, client: MembershipClient, world: Emulator) -> None:
        """Each item succeeds or fails alone; statuses come in request order, answering our id."""
        ghost_person = Membership(sync_key="M-X", group="CRS-1", person="P-404", role="Learner")
        ghost_group = Membership(sync_key="M-Y", group="CRS-404", person="P-2", role="Learner")
        reply = client.create_memberships([ANN, ghost_person, BOB, ghost_group, ANN_2], message_id="mass-1")
        assert [(s.code_major, minor(s)) for s in reply.items] == [
            ("success", ("fullsuccess", "M-1")),
            ("failure", ("unknownobject", "P-404")),
            ("success", ("fullsuccess", "M-2")),
            ("failure", ("unknownobject", "CRS-404")),
            ("success", ("fullsuccess", "M-3")),
        ]
        assert all(s.message_id_ref == "mass-1" for s in (reply.status, *reply.items))
        assert (reply.status.code_major, reply.status.severity) == ("failure", "warning")
        assert set(world.memberships()) == {"M-1", "M-2", "M-3"}
        assert world.memberships()["M-3"].active is False

    def test_delete_memberships_items_in_order(self, client: MembershipClient, world: Emulator) -> None:
        """Known keys are deleted, unknown ones fail, each in its place."""
        client.create_memberships([ANN, BOB, ANN_2])
        reply = client.delete_memberships(["M-1", "ghost", "M-3", "M-1"], message_id="del-1")
        assert [(s.code_major, minor(s)) for s in reply.items] == [
            ("success", ("fullsuccess", "M-1")),
            ("failure", ("unknownobject", "ghost")),
            ("success", ("fullsuccess", "M-3")),
            ("failure", ("unknownobject", "M-1")),
        ]
        assert all(s.message_id_ref == "del-1" for s in reply.items)
        assert set(world.memberships()) == {"M-2"}

    def test_read_for_person_and_group(self, client: MembershipClient) -> None:
        """The reads list every membership (inactive ones too) with its id, in key order."""
        client.create_memberships([BOB, ANN_2, ANN])
        status, found = client.read_memberships_for_person("P-1", message_id="r-1")
        assert (status.ok, status.message_id_ref) == (True, "r-1")
        assert found == [ANN, ANN_2]
        status, found = client.read_memberships_for_group("CRS-1")
        assert status.ok
        assert found == [ANN, BOB]
        status, found = client.read_memberships_for_person("P-3")
        assert (status.ok, found) == (True, [])

    def test_read_for_unknown_person_or_group(self, client: MembershipClient) -> None:
        """An unknown person or group is unknownobject and no memberships."""
        status, found = client.read_memberships_for_person("P-404")
        assert (status.code_major, minor(status), found) == ("failure", ("unknownobject", "P-404"), [])
        status, found = client.read_memberships_for_group("CRS-404")
        assert (status.code_major, minor(status), found) == ("failure", ("unknownobject", "CRS-404"), [])

    def test_group_deletion_takes_memberships(self, client: MembershipClient, world: Emulator) -> None:
        """After its group is deleted, a membership reads as unknownobject."""
        client.create_memberships([ANN, ANN_2])
        with connect(world, GroupClient, world.gms_url) as groups:
            assert groups.delete_group("CRS-2").severity == "warning"
        assert minor(client.read_membership(ANN_2.sync_key)[0]) == ("unknownobject", ANN_2.sync_key)
        assert client.read_membership(ANN.sync_key)[1] == ANN


class TestChangeIdentifier:
    """changeMembershipIdentifier: a new sync key for a membership whose group and person stay."""

    def test_moves_to_the_new_id(
        self, client: MembershipClient, world: Emulator, exchange_log: ExchangeLog
    ) -> None:
        """Group, person, role and flag stay under the new id; the old id is gone; no second membership.

        The exchange is validated against itslearning's MMS schemas (the `exchange_log` fixture).
        """
        client.create_memberships([ANN_2, BOB])
        status = client.change_membership_identifier(ANN_2.sync_key, "M-3b", message_id="c-1")
        assert (status.code_major, status.message_id_ref, minor(status)) == (
            "success",
            "c-1",
            ("fullsuccess", ANN_2.sync_key),
        )
        moved = Membership(**{**ANN_2.values(), "sync_key": "M-3b"})
        assert client.read_membership("M-3b")[1] == moved
        assert moved.active == "false"
        assert minor(client.read_membership(ANN_2.sync_key)[0]) == ("unknownobject", ANN_2.sync_key)
        assert client.read_memberships_for_group("CRS-2")[1] == [moved]
        assert set(world.memberships()) == {"M-2", "M-3b"}
        events = [e for e in world.history() if e.operation == "changeMembershipIdentifier"]
        assert [(e.sync_key, e.new_key, e.message_identifier, e.code_major) for e in events] == [
            (ANN_2.sync_key, "M-3b", "c-1", "success")
        ]
        changes = [
            e
            for e in exchange_log.exchanges
            if e.soap_action.strip('"').endswith("/changeMembershipIdentifier")
        ]
        assert len(changes) == 1
        assert changes[0].status == 200
        assert not exchange_log.failures

    def test_unknown_old_id(self, client: MembershipClient, world: Emulator) -> None:
        """An old id that does not exist is unknownobject naming it; nothing changes."""
        client.create_membership(ANN)
        status = client.change_membership_identifier("ghost", "M-9")
        assert (status.code_major, status.severity, minor(status)) == (
            "failure",
            "error",
            ("unknownobject", "ghost"),
        )
        assert set(world.memberships()) == {ANN.sync_key}

    def test_new_id_in_use(self, client: MembershipClient, world: Emulator) -> None:
        """A new id another membership holds is objectexists naming it; both stay as they were."""
        client.create_memberships([ANN, BOB])
        status = client.change_membership_identifier(ANN.sync_key, BOB.sync_key)
        assert (status.code_major, minor(status)) == ("failure", ("objectexists", BOB.sync_key))
        assert client.read_membership(ANN.sync_key)[1] == ANN
        assert client.read_membership(BOB.sync_key)[1] == BOB

    @pytest.mark.parametrize(
        ("old", "new"),
        [("", "M-9"), ("M-1", ""), ("x" * 65, "M-9"), ("M-1", "y" * 65)],
        ids=["empty-old", "empty-new", "long-old", "long-new"],
    )
    def test_invalid_ids(self, client: MembershipClient, world: Emulator, old: str, new: str) -> None:
        """An empty id or one over 64 characters is invaliddata; nothing changes."""
        client.create_membership(ANN)
        status = client.change_membership_identifier(old, new)
        assert (status.code_major, minor(status)[0]) == ("failure", "invaliddata")
        assert set(world.memberships()) == {ANN.sync_key}

    def test_faults_apply(self, emulator_factory: Any) -> None:
        """fault_operations may name changeMembershipIdentifier: a 503 there is a TransientError."""
        emulator = emulator_factory(
            error_rate=1.0, fault_operations=frozenset({"changeMembershipIdentifier"})
        )
        with connect(emulator, MembershipClient, emulator.mms_url) as client:
            assert minor(client.delete_membership("M-1")) == ("unknownobject", "M-1")
            with pytest.raises(TransientError, match=r"changeMembershipIdentifier to .*503"):
                client.change_membership_identifier("M-1", "M-2")


class TestFailures:
    """Faults on the wire become the documented exceptions, as for PersonClient."""

    def test_service_unavailable(self, emulator_factory: Any) -> None:
        """HTTP 503 is a TransientError, for single and mass calls."""
        emulator = emulator_factory(error_rate=1.0)
        with connect(emulator, MembershipClient, emulator.mms_url) as client:
            with pytest.raises(TransientError, match=r"createMembership to .*503"):
                client.create_membership(ANN)
            with pytest.raises(TransientError, match="503"):
                client.delete_memberships(["M-1"])

    def test_wrong_message_id_ref(self, emulator_factory: Any) -> None:
        """An answer carrying another messageIdRef is a ProtocolError naming ours."""
        emulator = emulator_factory(wrong_ref_rate=1.0)
        with connect(emulator, MembershipClient, emulator.mms_url) as client:
            with pytest.raises(ProtocolError, match="w-1"):
                client.delete_membership("M-1", message_id="w-1")
            with pytest.raises(ProtocolError, match="w-2"):
                client.delete_memberships(["M-1", "M-2"], message_id="w-2")
            with pytest.raises(ProtocolError, match="w-3"):
                client.read_memberships_for_group("CRS-1", message_id="w-3")

    def test_wrong_password(self, world: Emulator) -> None:
        """A wrong password is an AuthenticationError that does not show it; nothing is applied."""
        with (
            connect(world, MembershipClient, world.mms_url, password="wrong-mms-pw-2") as client,
            pytest.raises(AuthenticationError) as caught,
        ):
            client.create_membership(ANN)
        assert "wrong-mms-pw-2" not in str(caught.value)
        assert world.memberships() == {}


class TestRendering:
    """The messages the client sends."""

    def test_direct_rendering_equals_zeep(self, client: MembershipClient) -> None:
        """Every MMS operation uses the direct builder, whose bytes equal zeep's; role/status is the flag."""
        assert client._direct == frozenset(MMS_SPEC.operations)
        security = client._wsse.security_element()
        operation = client._operations["createMemberships"]
        body = pairs_body(
            MEMBERSHIP,
            [(m, "") for m in (ANN, ANN_2, Membership(sync_key="a&b", group="<g>", person="p", role="07"))],
        )
        direct = client._render(operation, body, "mid", security, direct=True)
        assert direct == client._render(operation, body, "mid", security, direct=False)
        roles = etree.fromstring(direct).findall(f".//{{{MMS_DATA}}}role")
        assert [
            (r.findtext(f"{{{MMS_DATA}}}roleType"), r.findtext(f"{{{MMS_DATA}}}status")) for r in roles
        ] == [
            ("Learner", "true"),
            ("Learner", "false"),
            ("07", "true"),
        ]

    def test_change_identifier_rendering(self, client: MembershipClient) -> None:
        """changeMembershipIdentifier sends sourcedId then newSourcedId, escaped, the same bytes as zeep."""
        security = client._wsse.security_element()
        operation = client._operations["changeMembershipIdentifier"]
        body = rename_body(MEMBERSHIP, "m & <1>", "m\u00e5-2")
        direct = client._render(operation, body, "mid", security, direct=True)
        assert direct == client._render(operation, body, "mid", security, direct=False)
        request = etree.fromstring(direct).find(f".//{{{MMS_MESS}}}changeMembershipIdentifierRequest")
        assert request is not None
        assert [(etree.QName(e).localname, e.findtext(f"{{{COMMON}}}identifier")) for e in request] == [
            ("sourcedId", "m & <1>"),
            ("newSourcedId", "m\u00e5-2"),
        ]


class TestEmulatorActiveFlag:
    """The emulator keeps the role's status flag (sync/emulator/store.py, memberships.py)."""

    def test_role_without_status_is_active(self, client: MembershipClient, world: Emulator) -> None:
        """A role sent without status makes the membership active, also over an inactive one."""
        client.create_membership(ANN_2)

        def build(request: etree._Element) -> None:
            etree.SubElement(
                etree.SubElement(request, f"{{{MMS_MESS}}}sourcedId"), f"{{{COMMON}}}identifier"
            ).text = ANN_2.sync_key
            membership = etree.SubElement(request, f"{{{MMS_MESS}}}membership")
            member = etree.SubElement(membership, f"{{{MMS_DATA}}}member")
            role = etree.SubElement(
                etree.SubElement(member, f"{{{MMS_DATA}}}role"), f"{{{MMS_DATA}}}roleType"
            )
            role.text = "Mentor"

        value = {
            "sourcedId": {"identifier": ANN_2.sync_key},
            "membership": {"member": {"role": [{"roleType": "Mentor"}]}},
        }
        status = client._simple("updateMembership", RequestBody(lambda: value, build), None)
        assert status.ok
        held = world.memberships()[ANN_2.sync_key]
        assert (held.role, held.active, held.group_key) == ("Mentor", True, "CRS-2")

    def test_old_state_file_gains_the_flag(self, tmp_path: Path) -> None:
        """A state file written before the flag existed opens, its memberships active."""
        path = tmp_path / "old.sqlite"
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TABLE memberships (sync_key TEXT PRIMARY KEY, group_key TEXT NOT NULL, "
                "person_key TEXT NOT NULL, role TEXT NOT NULL)"
            )
            db.execute("INSERT INTO memberships VALUES ('M-1', 'G', 'P', 'Learner')")
        db.close()
        store = Store(path)
        try:
            assert store.memberships() == [
                HeldMembership(sync_key="M-1", group_key="G", person_key="P", role="Learner", active=True)
            ]
            store.put_membership(
                HeldMembership(sync_key="M-2", group_key="G", person_key="P", role="Mentor", active=False)
            )
            assert store.get_membership("M-2") == HeldMembership(
                sync_key="M-2", group_key="G", person_key="P", role="Mentor", active=False
            )
        finally:
            store.close()
