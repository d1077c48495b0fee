"""GroupClient (GMS) against the emulator over real HTTPS on loopback, and `service_urls`.

Every exchange is validated by the `exchange_log` fixture: GMS bodies against our gms.wsdl, every group in
them against IMS's official group data schema, headers against itslearning's binding schema.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from lxml import etree

from sync.emulator import Emulator
from sync.errors import AuthenticationError, ConfigError, ProtocolError, TransientError
from sync.ims.bodies import pairs_body
from sync.ims.clients import GroupClient, MembershipClient, PersonClient
from sync.ims.exchange import new_message_id
from sync.ims.groups import GMS_SPEC
from sync.ims.namespaces import GMS_DATA, GMS_MESS
from sync.ims.urls import service_urls
from sync.models import Group, Membership, Person, Status
from sync.models.kinds import GROUP
from tests.clients import connect, minor

SCHOOL = Group(sync_key="SCH-1", name="North School", type="School")
COURSE = Group(
    sync_key="CRS-7A", name="Maths 7A", type="Course", parent="SCH-1", description="Algebra & <geometry>"
)
TEAM = Group(sync_key="GRP-7A-1", name="Team 1", type="CourseGroup", parent="CRS-7A")


@pytest.fixture(name="client")
def fixture_client(emulator: Emulator) -> Iterator[GroupClient]:
    """A GMS client connected to the strict emulator."""
    with connect(emulator, GroupClient, emulator.gms_url) as client:
        yield client


class TestSingleGroup:
    """createGroup, readGroup, updateGroup, deleteGroup, changeGroupIdentifier."""

    def test_create_then_read(self, client: GroupClient, emulator: Emulator) -> None:
        """A created group is stored as sent (scheme, type, level 1, parent, texts) and read back equal."""
        assert client.create_group(SCHOOL).ok
        status = client.create_group(COURSE, message_id="m-1")
        assert (status.code_major, status.message_id_ref, minor(status)) == (
            "success",
            "m-1",
            ("fullsuccess", COURSE.sync_key),
        )
        held = emulator.groups()[COURSE.sync_key]
        assert (held.scheme, held.type, held.level, held.parent) == (
            "ItslearningOrganisationTypes",
            "Course",
            "1",
            "SCH-1",
        )
        assert (held.desc_short, held.desc_long, held.desc_full) == ("Maths 7A", "Algebra & <geometry>", "")
        read_status, group = client.read_group(COURSE.sync_key, message_id="m-2")
        assert read_status.ok
        assert read_status.message_id_ref == "m-2"
        assert group == COURSE

    def test_bare_group_round_trips(self, client: GroupClient, emulator: Emulator) -> None:
        """A group without parent, name or description is sent without relationship and description."""
        bare = Group(sync_key="B-1", type="School")
        assert client.create_group(bare).ok
        held = emulator.groups()["B-1"]
        assert (held.parent, held.desc_short, held.desc_long) == ("", "", "")
        assert client.read_group("B-1")[1] == bare

    def test_create_existing_updates(self, client: GroupClient, emulator: Emulator) -> None:
        """createGroup of an existing key succeeds and replaces what it carries."""
        client.create_group(SCHOOL)
        renamed = Group(sync_key=SCHOOL.sync_key, name="South School", type="School", description="Moved")
        assert client.create_group(renamed).ok
        assert len(emulator.groups()) == 1
        assert client.read_group(SCHOOL.sync_key)[1] == renamed

    def test_update(self, client: GroupClient, emulator: Emulator) -> None:
        """updateGroup changes name, type, description and parent; an unknown key is unknownobject."""
        client.create_group(SCHOOL)
        client.create_group(Group(sync_key="SCH-2", name="Other", type="School"))
        client.create_group(COURSE)
        moved = Group(sync_key=COURSE.sync_key, name="Maths 7B", type="Course", parent="SCH-2")
        assert client.update_group(moved).ok
        assert client.read_group(COURSE.sync_key)[1] == moved
        assert emulator.groups()[COURSE.sync_key].desc_long == ""
        status = client.update_group(Group(sync_key="ghost", name="G", type="Course"))
        assert (status.code_major, status.severity, minor(status)) == (
            "failure",
            "error",
            ("unknownobject", "ghost"),
        )
        assert "ghost" not in emulator.groups()

    def test_read_unknown(self, client: GroupClient) -> None:
        """readGroup of an unknown key is a failure status naming it, and no group."""
        status, group = client.read_group("nowhere")
        assert group is None
        assert (status.code_major, minor(status)) == ("failure", ("unknownobject", "nowhere"))

    def test_unknown_parent(self, client: GroupClient, emulator: Emulator) -> None:
        """A parent that does not exist is unknownobject naming the parent; nothing is stored."""
        status = client.create_group(COURSE)
        assert (status.code_major, minor(status)) == ("failure", ("unknownobject", "SCH-1"))
        assert emulator.groups() == {}

    def test_delete(self, client: GroupClient, emulator: Emulator) -> None:
        """deleteGroup refuses a group with children, deletes a leaf, and reports an unknown key."""
        client.create_groups([SCHOOL, COURSE])
        refused = client.delete_group(SCHOOL.sync_key)
        assert (refused.code_major, minor(refused)) == ("failure", ("deletefailure", SCHOOL.sync_key))
        assert client.delete_group(COURSE.sync_key).ok
        assert client.delete_group(SCHOOL.sync_key).ok
        assert emulator.groups() == {}
        assert minor(client.delete_group(SCHOOL.sync_key)) == ("unknownobject", SCHOOL.sync_key)

    def test_change_identifier(self, client: GroupClient, emulator: Emulator) -> None:
        """changeGroupIdentifier moves a group, its children follow; unknown and taken ids fail."""
        client.create_groups([SCHOOL, COURSE, Group(sync_key="SCH-2", name="Other", type="School")])
        assert (
            client.change_group_identifier(SCHOOL.sync_key, "SCH-9", message_id="r-1").message_id_ref == "r-1"
        )
        assert set(emulator.groups()) == {"SCH-9", "SCH-2", COURSE.sync_key}
        assert client.read_group(COURSE.sync_key)[1] == Group(
            **{**COURSE.values(), "sync_key": COURSE.sync_key, "parent": "SCH-9"}
        )
        taken = client.change_group_identifier("SCH-9", "SCH-2")
        assert (taken.code_major, minor(taken)) == ("failure", ("objectexists", "SCH-2"))
        assert minor(client.change_group_identifier("missing", "SCH-10")) == ("unknownobject", "missing")
        assert set(emulator.groups()) == {"SCH-9", "SCH-2", COURSE.sync_key}


class TestMass:
    """createGroups and readGroupsForPerson."""

    def test_create_groups_items_in_order(self, client: GroupClient, emulator: Emulator) -> None:
        """Items are applied in order (a parent earlier in the batch counts) and answered in order."""
        orphan = Group(sync_key="ORPHAN", name="Lost", type="Course", parent="NO-SUCH-SCHOOL")
        too_long = Group(sync_key="x" * 65, name="Long", type="School")
        reply = client.create_groups([SCHOOL, orphan, COURSE, too_long, TEAM], message_id="mass-1")
        assert [(s.code_major, minor(s)) for s in reply.items] == [
            ("success", ("fullsuccess", SCHOOL.sync_key)),
            ("failure", ("unknownobject", "NO-SUCH-SCHOOL")),
            ("success", ("fullsuccess", COURSE.sync_key)),
            ("failure", ("invaliddata", "x" * 65)),
            ("success", ("fullsuccess", TEAM.sync_key)),
        ]
        assert all(s.message_id_ref == "mass-1" for s in (reply.status, *reply.items))
        assert (reply.status.code_major, reply.status.severity) == ("failure", "warning")
        assert set(emulator.groups()) == {SCHOOL.sync_key, COURSE.sync_key, TEAM.sync_key}
        assert client.read_group(TEAM.sync_key)[1] == TEAM

    def test_create_groups_all_ok(self, client: GroupClient) -> None:
        """A batch without failures has a success header and one success per item."""
        reply = client.create_groups([SCHOOL, COURSE])
        assert reply.status.ok
        assert [s.ok for s in reply.items] == [True, True]

    def test_read_groups_for_person(self, client: GroupClient, emulator: Emulator) -> None:
        """The groups a person is a member of, sorted; none for a person without memberships; an unknown
        person is unknownobject."""
        client.create_groups([SCHOOL, COURSE, TEAM])
        with (
            connect(emulator, PersonClient, emulator.pms_url) as persons,
            connect(emulator, MembershipClient, emulator.mms_url) as memberships,
        ):
            persons.create_persons(
                [(Person(sync_key="P-1", given_name="Ann"), ""), (Person(sync_key="P-2"), "")]
            )
            reply = memberships.create_memberships(
                [
                    Membership(sync_key="M-1", group=TEAM.sync_key, person="P-1", role="Learner"),
                    Membership(sync_key="M-2", group=COURSE.sync_key, person="P-1", role="Learner"),
                ]
            )
            assert [s.ok for s in reply.items] == [True, True]
        status, keys = client.read_groups_for_person("P-1", message_id="q-1")
        assert (status.ok, status.message_id_ref) == (True, "q-1")
        assert keys == [COURSE.sync_key, TEAM.sync_key]
        assert client.read_groups_for_person("P-2")[1] == []
        status, keys = client.read_groups_for_person("P-404")
        assert (status.code_major, minor(status), keys) == ("failure", ("unknownobject", "P-404"), [])


class TestFailures:
    """Faults on the wire become the documented exceptions, as for PersonClient."""

    def test_service_unavailable(self, emulator_factory: Any) -> None:
        """HTTP 503 is a TransientError naming the operation."""
        emulator = emulator_factory(error_rate=1.0)
        with connect(emulator, GroupClient, emulator.gms_url) as client:
            with pytest.raises(TransientError, match=r"createGroup to .*503"):
                client.create_group(SCHOOL)
            with pytest.raises(TransientError, match="503"):
                client.read_group(SCHOOL.sync_key)

    def test_server_fault(self, emulator_factory: Any) -> None:
        """A SOAP Server fault is a TransientError (itslearning: retry server errors)."""
        emulator = emulator_factory(fault_rate=1.0, fault_operations=frozenset({"createGroups"}))
        with connect(emulator, GroupClient, emulator.gms_url) as client:
            assert client.create_group(SCHOOL).ok
            with pytest.raises(TransientError, match="SOAP fault"):
                client.create_groups([COURSE])

    def test_wrong_message_id_ref(self, emulator_factory: Any) -> None:
        """An answer carrying another messageIdRef is a ProtocolError naming ours, single and mass alike."""
        emulator = emulator_factory(wrong_ref_rate=1.0)
        with connect(emulator, GroupClient, emulator.gms_url) as client:
            with pytest.raises(ProtocolError, match="g-7"):
                client.create_group(SCHOOL, message_id="g-7")
            with pytest.raises(ProtocolError, match="g-8"):
                client.create_groups([SCHOOL], message_id="g-8")
            with pytest.raises(ProtocolError, match="g-9"):
                client.read_group(SCHOOL.sync_key, message_id="g-9")

    def test_wrong_password(self, emulator: Emulator) -> None:
        """A wrong password is an AuthenticationError that does not show it; nothing is applied."""
        with (
            connect(emulator, GroupClient, emulator.gms_url, password="wrong-group-pw-1") as client,
            pytest.raises(AuthenticationError) as caught,
        ):
            client.create_group(SCHOOL)
        assert "wrong-group-pw-1" not in str(caught.value)
        assert "createGroup" in str(caught.value)
        assert emulator.groups() == {}

    def test_http_url_refused(self, emulator: Emulator) -> None:
        """Plain HTTP is refused before anything is sent."""
        with pytest.raises(ConfigError, match="https"):
            GroupClient(url="http://127.0.0.1/GroupManagementService.svc", username="u", password="p")


class TestClient:
    """The client as a shared, long-lived object, and its messages."""

    def test_repr_hides_password(self, client: GroupClient, emulator: Emulator) -> None:
        """The repr names the class, URL and user, never the password."""
        text = repr(client)
        assert text.startswith("GroupClient(")
        assert emulator.password not in text
        assert emulator.username in text

    def test_live_wsdl(self, emulator: Emulator) -> None:
        """The client can parse the WSDL the emulator serves at ?wsdl and work with it."""
        with connect(emulator, GroupClient, emulator.gms_url, wsdl=f"{emulator.gms_url}?wsdl") as client:
            assert client.create_group(SCHOOL).ok
            assert client.read_group(SCHOOL.sync_key)[1] == SCHOOL

    def test_direct_rendering_equals_zeep(self, client: GroupClient) -> None:
        """Every GMS operation uses the direct builder, whose bytes equal zeep's for varied groups."""
        assert client._direct == frozenset(GMS_SPEC.operations)
        security = client._wsse.security_element()
        operation = client._operations["createGroups"]
        body = pairs_body(
            GROUP, [(g, "") for g in (SCHOOL, COURSE, TEAM, Group(sync_key="b", type="T", description="d"))]
        )
        direct = client._render(operation, body, "mid", security, direct=True)
        assert direct == client._render(operation, body, "mid", security, direct=False)
        groups = etree.fromstring(direct).findall(f".//{{{GMS_MESS}}}group")
        assert [
            g.findtext(f"{{{GMS_DATA}}}groupType/{{{GMS_DATA}}}typeValue/{{{GMS_DATA}}}level") for g in groups
        ] == ["1"] * 4
        # a description without a name cannot be sent (descShort is required): no description at all
        assert groups[3].find(f"{{{GMS_DATA}}}description") is None

    def test_concurrent_calls(self, client: GroupClient, emulator: Emulator) -> None:
        """Eight threads on one client: every call succeeds and answers its own message id."""
        start = threading.Barrier(8)

        def work(thread: int) -> list[tuple[str, Status]]:
            start.wait()
            results = []
            for n in range(5):
                message_id = new_message_id()
                group = Group(sync_key=f"T{thread}-{n}", name=f"Group {thread}.{n}", type="Course")
                results.append((message_id, client.create_group(group, message_id=message_id)))
            return results

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [r for batch in pool.map(work, range(8)) for r in batch]
        assert len(results) == 40
        assert all(status.ok and status.message_id_ref == mid for mid, status in results)
        assert len(emulator.groups()) == 40


class TestServiceUrls:
    """The GMS and MMS endpoints derived from the PMS endpoint."""

    @pytest.mark.parametrize(
        ("pms", "gms", "mms"),
        [
            (
                "https://ims.example.test/PersonManagementService.svc",
                "https://ims.example.test/GroupManagementService.svc",
                "https://ims.example.test/MembershipManagementService.svc",
            ),
            (
                "https://ims.example.test:8443/site/v1/personmanagementservice.SVC",
                "https://ims.example.test:8443/site/v1/GroupManagementService.svc",
                "https://ims.example.test:8443/site/v1/MembershipManagementService.svc",
            ),
            (
                "https://ims.example.test/PersonManagementService.svc?tenant=7",
                "https://ims.example.test/GroupManagementService.svc?tenant=7",
                "https://ims.example.test/MembershipManagementService.svc?tenant=7",
            ),
        ],
    )
    def test_derived(self, pms: str, gms: str, mms: str) -> None:
        """The last path segment is replaced, whatever its case; host, port, path and query are kept."""
        assert service_urls(pms) == (gms, mms)

    def test_emulator_paths(self, emulator: Emulator) -> None:
        """From the emulator's PMS URL come exactly its GMS and MMS URLs."""
        assert service_urls(emulator.pms_url) == (emulator.gms_url, emulator.mms_url)

    @pytest.mark.parametrize(
        "pms",
        [
            "https://ims.example.test/ExtendedPersonManagementService.svc",
            "https://ims.example.test/PersonManagementService.svc/",
            "https://ims.example.test/PersonManagementService",
            "https://ims.example.test/",
            "https://ims.example.test/PersonManagementService.svc/extra",
        ],
    )
    def test_other_paths_refused(self, pms: str) -> None:
        """A PMS URL that does not end in PersonManagementService.svc is a ConfigError naming it."""
        with pytest.raises(ConfigError, match=r"PersonManagementService\.svc") as caught:
            service_urls(pms)
        assert pms.split("://", 1)[1].rstrip("/").split("?")[0] in str(caught.value)

    def test_http_refused(self) -> None:
        """HTTPS only, like the clients."""
        with pytest.raises(ConfigError, match="https://"):
            service_urls("http://ims.example.test/PersonManagementService.svc")

    def test_credentials_in_url_refused_without_showing_them(self) -> None:
        """User info in the URL is refused, and the password is not echoed."""
        with pytest.raises(ConfigError) as caught:
            service_urls("https://user:s3cret-in-url@ims.example.test/PersonManagementService.svc")
        assert "s3cret-in-url" not in str(caught.value)
