"""The emulator's Group (GMS) and Membership (MMS) services over real HTTPS: semantics, schemas, faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import requests
from lxml import etree

from sync.emulator import Emulator, Group, Membership
from sync.errors import ConfigError
from sync.ims.namespaces import BIND, COMMON, SOAP_ENV, WSSE, WSU
from sync.ims.xsd import safe_parser
from tests.conftest import PASSWORD, USERNAME
from tests.itslearning import IMSGLOBAL_DIR, ITSLEARNING_WSDL_DIR, validate_group

PMS = "http://www.imsglobal.org/services/pms/xsd/imsPersonManMessSchema_v1p0"
GMS = "http://www.imsglobal.org/services/gms/xsd/imsGroupManMessSchema_v1p0"
GDATA = "http://www.imsglobal.org/services/gms/xsd/imsGroupManDataSchema_v1p0"
MMS = "http://www.imsglobal.org/services/mms/xsd/imsMemberManMessSchema_v1p0"
MDATA = "http://www.imsglobal.org/services/mms/xsd/imsMemberManDataSchema_v1p0"
PDATA = "http://www.imsglobal.org/services/pms/xsd/imsPersonManDataSchema_v1p0"
PLAIN = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
NS = {"s": SOAP_ENV, "h": BIND, "c": COMMON, "gm": GMS, "g": GDATA, "mm": MMS, "d": MDATA}
SERVICES = {"pms": ("/PersonManagementService.svc", PMS), "gms": ("/GroupManagementService.svc", GMS)}
SERVICES["mms"] = ("/MembershipManagementService.svc", MMS)
SCHEME = "ItslearningOrganisationTypes"

requires_shared = pytest.mark.skipif(
    not (ITSLEARNING_WSDL_DIR.is_dir() and IMSGLOBAL_DIR.is_dir()),
    reason=f"the itslearning and IMS schemas are not under {ITSLEARNING_WSDL_DIR.parent}",
)


# --- building requests ----------------------------------------------------------------------


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def envelope(service: str, body: str, *, message_id: str = "msg-1", password: str = PASSWORD) -> bytes:
    """A SOAP 1.1 request to `service` (pms, gms or mms) as WCF's UserName client sends it."""
    now = datetime.now(UTC)
    mess = SERVICES[service][1]
    return (
        f"<s:Envelope xmlns:s='{SOAP_ENV}' xmlns:m='{mess}' xmlns:g='{GDATA}' xmlns:d='{MDATA}' "
        f"xmlns:p='{PDATA}' xmlns:c='{COMMON}' xmlns:h='{BIND}' xmlns:wsse='{WSSE}' xmlns:wsu='{WSU}'>"
        "<s:Header><wsse:Security s:mustUnderstand='1'><wsu:Timestamp wsu:Id='TS-1'>"
        f"<wsu:Created>{_instant(now)}</wsu:Created>"
        f"<wsu:Expires>{_instant(now + timedelta(minutes=5))}</wsu:Expires></wsu:Timestamp>"
        f"<wsse:UsernameToken><wsse:Username>{USERNAME}</wsse:Username>"
        f"<wsse:Password Type='{PLAIN}'>{escape(password)}</wsse:Password></wsse:UsernameToken>"
        "</wsse:Security>"
        f"<h:syncRequestHeaderInfo><h:messageIdentifier>{message_id}</h:messageIdentifier>"
        "</h:syncRequestHeaderInfo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def sid(name: str, key: str) -> str:
    """`<m:name><c:identifier>key</c:identifier></m:name>`."""
    return f"<m:{name}><c:identifier>{escape(key)}</c:identifier></m:{name}>"


def group_xml(
    name: str,
    *,
    kind: str = "Course",
    parent: str | None = None,
    level: str | None = "1",
    tag: str = "m:group",
) -> str:
    """A `group` element as IMS's GroupDType orders it (type, Parent relationship, description)."""
    level_xml = f"<g:level>{level}</g:level>" if level is not None else ""
    relation = ""
    if parent is not None:
        relation = (
            "<g:relationship><g:relation>Parent</g:relation>"
            f"<g:sourceId><c:identifier>{escape(parent)}</c:identifier></g:sourceId>"
            "<g:label>Parent</g:label></g:relationship>"
        )
    return (
        f"<{tag}><g:groupType><g:scheme>{SCHEME}</g:scheme><g:typeValue><g:type>{kind}</g:type>{level_xml}"
        f"</g:typeValue></g:groupType>{relation}"
        f"<g:description><g:descShort>{escape(name)}</g:descShort></g:description></{tag}>"
    )


def membership_xml(group: str, person: str, role: str = "Learner") -> str:
    """A `membership` element: the group, the person as member, one role."""
    return (
        f"<m:membership><d:groupSourcedId><c:identifier>{escape(group)}</c:identifier></d:groupSourcedId>"
        f"<d:member><d:memberSourcedId><c:identifier>{escape(person)}</c:identifier></d:memberSourcedId>"
        f"<d:idType>Person</d:idType><d:role><d:roleType>{role}</d:roleType></d:role></d:member>"
        "</m:membership>"
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer, parsed: HTTP status, the header's statusInfo and the per-item statuses, the body child."""

    http: int
    root: etree._Element

    def _status(self, element: etree._Element | None) -> tuple[str, str, str]:
        assert element is not None
        return (
            element.findtext("h:codeMajor", namespaces=NS) or "",
            element.findtext("h:severity", namespaces=NS) or "",
            element.findtext("h:codeMinor/h:codeMinorField/h:codeMinorName", namespaces=NS) or "",
        )

    @property
    def status(self) -> tuple[str, str, str]:
        """(codeMajor, severity, codeMinorName) of the request."""
        return self._status(self.root.find("s:Header/h:syncResponseHeaderInfo/h:statusInfo", NS))

    @property
    def minor_value(self) -> str:
        """The first codeMinorValue: the id the status is about."""
        path = "s:Header/h:syncResponseHeaderInfo/h:statusInfo/h:codeMinor/h:codeMinorField/h:codeMinorValue"
        return self.root.findtext(path, namespaces=NS) or ""

    @property
    def items(self) -> list[tuple[str, str, str]]:
        """(codeMajor, severity, codeMinorName) per item of a mass request."""
        found = self.root.findall("s:Header/h:syncResponseHeaderInfo/h:statusInfoSet/h:statusInfo", NS)
        return [self._status(item) for item in found]

    @property
    def body(self) -> etree._Element:
        """The Body's one child (the response element or a Fault)."""
        body = self.root.find("s:Body", NS)
        assert body is not None
        return body[0]


def call(emulator: Emulator, service: str, operation: str, body: str, **options: str) -> Reply:
    """POST one `<operation>Request` with `body` inside to `service` and parse the answer."""
    path, _ = SERVICES[service]
    request = f"<m:{operation}Request>{body}</m:{operation}Request>"
    response = requests.post(
        emulator.base_url + path,
        data=envelope(service, request, **options),
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"http://www.imsglobal.org/soap/{service}/{operation}"',
        },
        verify=str(emulator.ca_path),
        timeout=10,
    )
    return Reply(response.status_code, etree.fromstring(response.content, safe_parser()))


def person(emulator: Emulator, key: str) -> None:
    """Create a person `key` over PMS (a member needs one)."""
    body = (
        sid("sourcedId", key) + "<m:person><p:formatName>A B</p:formatName><p:institutionRole>"
        "<p:institutionRoleType>Student</p:institutionRoleType><p:primaryRoleType>true</p:primaryRoleType>"
        "</p:institutionRole></m:person>"
    )
    assert call(emulator, "pms", "createPerson", body).status[0] == "success"


def group(emulator: Emulator, key: str, name: str, **options: str | None) -> Reply:
    """createGroup `key` named `name`."""
    return call(emulator, "gms", "createGroup", sid("sourcedId", key) + group_xml(name, **options))  # type: ignore[arg-type]


def school_with_class(emulator: Emulator) -> None:
    """A school s1 with a class c1, and persons p1, p2."""
    assert group(emulator, "s1", "North School", kind="School").status[0] == "success"
    assert group(emulator, "c1", "Maths 7A", parent="s1").status[0] == "success"
    person(emulator, "p1")
    person(emulator, "p2")


# --- groups -----------------------------------------------------------------------------------


class TestGroups:
    def test_create_and_read(self, emulator: Emulator) -> None:
        """A school and a class under it are stored, read back as sent, and recorded in the history."""
        school_with_class(emulator)
        assert emulator.groups() == {
            "c1": Group(
                sync_key="c1", scheme=SCHEME, type="Course", level="1", parent="s1", desc_short="Maths 7A"
            ),
            "s1": Group(sync_key="s1", scheme=SCHEME, type="School", level="1", desc_short="North School"),
        }
        reply = call(emulator, "gms", "readGroup", sid("sourcedId", "c1"))
        assert reply.status == ("success", "status", "fullsuccess")
        assert reply.body.findtext("gm:group/g:relationship/g:sourceId/c:identifier", namespaces=NS) == "s1"
        assert reply.body.findtext("gm:group/g:description/g:descShort", namespaces=NS) == "Maths 7A"
        events = [(e.operation, e.sync_key, e.code_major) for e in emulator.history()]
        assert ("createGroup", "c1", "success") in events
        assert events[-1] == ("readGroup", "c1", "success")

    def test_create_of_existing_updates(self, emulator: Emulator) -> None:
        """createGroup of an id that exists updates it, as createPerson does."""
        group(emulator, "s1", "Old name", kind="School")
        assert group(emulator, "s1", "New name", kind="School").status[0] == "success"
        assert emulator.groups()["s1"].desc_short == "New name"

    def test_update(self, emulator: Emulator) -> None:
        """updateGroup changes a known group and fails with unknownobject for an unknown id."""
        group(emulator, "s1", "North", kind="School")
        group(emulator, "s2", "South", kind="School")
        group(emulator, "c1", "Maths", parent="s1")
        moved = call(
            emulator, "gms", "updateGroup", sid("sourcedId", "c1") + group_xml("Maths B", parent="s2")
        )
        assert moved.status[0] == "success"
        assert (emulator.groups()["c1"].parent, emulator.groups()["c1"].desc_short) == ("s2", "Maths B")
        unknown = call(emulator, "gms", "updateGroup", sid("sourcedId", "nope") + group_xml("X"))
        assert unknown.status == ("failure", "error", "unknownobject")
        assert "nope" not in emulator.groups()

    def test_unknown_parent(self, emulator: Emulator) -> None:
        """A group whose Parent does not exist fails with unknownobject naming the parent."""
        reply = group(emulator, "c1", "Maths", parent="ghost-school")
        assert reply.status == ("failure", "error", "unknownobject")
        assert reply.minor_value == "ghost-school"
        assert emulator.groups() == {}

    def test_cycle(self, emulator: Emulator) -> None:
        """A group cannot become its own ancestor."""
        group(emulator, "s1", "North", kind="School")
        group(emulator, "c1", "Maths", parent="s1")
        reply = call(emulator, "gms", "updateGroup", sid("sourcedId", "s1") + group_xml("North", parent="c1"))
        assert reply.status == ("failure", "error", "invaliddata")
        assert emulator.groups()["s1"].parent == ""

    def test_read_unknown(self, emulator: Emulator) -> None:
        """readGroup of an unknown id fails with unknownobject and no group."""
        reply = call(emulator, "gms", "readGroup", sid("sourcedId", "nope"))
        assert reply.status == ("failure", "error", "unknownobject")
        assert reply.body.find("gm:group", NS) is None

    def test_delete(self, emulator: Emulator) -> None:
        """deleteGroup: unknown fails, a parent of groups fails, a group with members goes with them."""
        school_with_class(emulator)
        call(emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1"))
        assert call(emulator, "gms", "deleteGroup", sid("sourcedId", "x")).status[2] == "unknownobject"
        refused = call(emulator, "gms", "deleteGroup", sid("sourcedId", "s1"))
        assert refused.status == ("failure", "error", "deletefailure")
        assert "s1" in emulator.groups()
        deleted = call(emulator, "gms", "deleteGroup", sid("sourcedId", "c1"))
        assert deleted.status == ("success", "warning", "fullsuccess")
        assert set(emulator.groups()) == {"s1"}
        assert emulator.memberships() == {}
        assert call(emulator, "gms", "deleteGroup", sid("sourcedId", "s1")).status[0] == "success"

    def test_change_identifier(self, emulator: Emulator) -> None:
        """changeGroupIdentifier renames a group (children and memberships follow); an id in use fails."""
        school_with_class(emulator)
        group(emulator, "s2", "South", kind="School")
        call(
            emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("s1", "p1", "Member")
        )
        taken = call(
            emulator, "gms", "changeGroupIdentifier", sid("sourcedId", "s1") + sid("newSourcedId", "s2")
        )
        assert taken.status == ("failure", "error", "objectexists")
        unknown = call(
            emulator, "gms", "changeGroupIdentifier", sid("sourcedId", "x") + sid("newSourcedId", "y")
        )
        assert unknown.status[2] == "unknownobject"
        renamed = call(
            emulator, "gms", "changeGroupIdentifier", sid("sourcedId", "s1") + sid("newSourcedId", "s9")
        )
        assert renamed.status[0] == "success"
        assert renamed.body.tag == f"{{{GMS}}}changeGroupIdentifierResponse"
        groups = emulator.groups()
        assert "s1" not in groups
        assert groups["c1"].parent == "s9"
        assert emulator.memberships()["m1"].group_key == "s9"
        assert emulator.history()[-1].new_key == "s9"

    def test_create_groups_in_mass(self, emulator: Emulator) -> None:
        """createGroups answers one statusInfo per item, in order, parents first within the batch."""
        pairs = "".join(
            f"<m:groupIdPair>{sid('sourcedId', key)}{group_xml(name, **options)}</m:groupIdPair>"
            for key, name, options in (
                ("s1", "North", {"kind": "School"}),
                ("c1", "Maths", {"parent": "s1"}),
                ("c2", "Art", {"parent": "ghost"}),
            )
        )
        reply = call(emulator, "gms", "createGroups", f"<m:groupIdPairSet>{pairs}</m:groupIdPairSet>")
        assert reply.items == [
            ("success", "status", "fullsuccess"),
            ("success", "status", "fullsuccess"),
            ("failure", "error", "unknownobject"),
        ]
        assert reply.status[:2] == ("failure", "warning")
        assert set(emulator.groups()) == {"s1", "c1"}
        assert [e.sync_key for e in emulator.history() if e.operation == "createGroups"] == ["s1", "c1", "c2"]

    def test_read_groups_for_person(self, emulator: Emulator) -> None:
        """readGroupsForPerson lists the groups a person is a member of; an unknown person fails."""
        school_with_class(emulator)
        call(emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1"))
        call(
            emulator, "mms", "createMembership", sid("sourcedId", "m2") + membership_xml("s1", "p1", "Member")
        )
        reply = call(emulator, "gms", "readGroupsForPerson", sid("personSourcedId", "p1"))
        assert reply.status[0] == "success"
        assert reply.body.xpath("gm:groupIdSet/c:identifier/text()", namespaces=NS) == ["c1", "s1"]
        lonely = call(emulator, "gms", "readGroupsForPerson", sid("personSourcedId", "p2"))
        assert lonely.body.xpath("gm:groupIdSet/c:identifier", namespaces=NS) == []
        unknown = call(emulator, "gms", "readGroupsForPerson", sid("personSourcedId", "ghost"))
        assert unknown.status == ("failure", "error", "unknownobject")


# --- memberships ------------------------------------------------------------------------------


class TestMemberships:
    def test_create_and_read(self, emulator: Emulator) -> None:
        """A membership is stored and read back by id, by person and by group, with its role."""
        school_with_class(emulator)
        reply = call(emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1"))
        assert reply.status == ("success", "status", "fullsuccess")
        assert emulator.memberships() == {
            "m1": Membership(sync_key="m1", group_key="c1", person_key="p1", role="Learner")
        }
        read = call(emulator, "mms", "readMembership", sid("sourcedId", "m1"))
        assert read.body.findtext("mm:membership/d:member/d:role/d:roleType", namespaces=NS) == "Learner"
        for operation, key_tag, key in (
            ("readMembershipsForPerson", "personSourcedId", "p1"),
            ("readMembershipsForGroup", "groupSourcedId", "c1"),
        ):
            found = call(emulator, "mms", operation, sid(key_tag, key))
            assert found.status[0] == "success"
            ids = found.body.xpath(
                "mm:membershipIDPairSet/mm:membershipIdPair/mm:sourcedId/c:identifier/text()", namespaces=NS
            )
            assert ids == ["m1"]
        empty = call(emulator, "mms", "readMembershipsForPerson", sid("personSourcedId", "p2"))
        assert empty.body.xpath("mm:membershipIDPairSet/*", namespaces=NS) == []

    def test_unknown_person_or_group(self, emulator: Emulator) -> None:
        """A membership whose person or group does not exist fails with unknownobject naming which."""
        school_with_class(emulator)
        no_person = call(
            emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "ghost")
        )
        assert no_person.status == ("failure", "error", "unknownobject")
        assert no_person.minor_value == "ghost"
        assert "Person" in (no_person.root.findtext(".//h:description/c:text", namespaces=NS) or "")
        no_group = call(
            emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("void", "p1")
        )
        assert (no_group.status[2], no_group.minor_value) == ("unknownobject", "void")
        assert "Group" in (no_group.root.findtext(".//h:description/c:text", namespaces=NS) or "")
        for operation, tag in (
            ("readMembershipsForPerson", "personSourcedId"),
            ("readMembershipsForGroup", "groupSourcedId"),
        ):
            assert call(emulator, "mms", operation, sid(tag, "ghost")).status[2] == "unknownobject"
        assert emulator.memberships() == {}

    def test_update_and_create_of_existing(self, emulator: Emulator) -> None:
        """createMembership of an existing id updates it; updateMembership of an unknown id fails."""
        school_with_class(emulator)
        call(emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1"))
        again = call(
            emulator,
            "mms",
            "createMembership",
            sid("sourcedId", "m1") + membership_xml("c1", "p1", "Instructor"),
        )
        assert again.status[0] == "success"
        assert emulator.memberships()["m1"].role == "Instructor"
        updated = call(
            emulator, "mms", "updateMembership", sid("sourcedId", "m1") + membership_xml("s1", "p2", "Member")
        )
        assert updated.status[0] == "success"
        assert emulator.memberships()["m1"] == Membership(
            sync_key="m1", group_key="s1", person_key="p2", role="Member"
        )
        unknown = call(
            emulator, "mms", "updateMembership", sid("sourcedId", "m9") + membership_xml("c1", "p1")
        )
        assert unknown.status == ("failure", "error", "unknownobject")
        assert set(emulator.memberships()) == {"m1"}

    def test_delete_and_read_unknown(self, emulator: Emulator) -> None:
        """deleteMembership removes one; deleting or reading an unknown id fails with unknownobject."""
        school_with_class(emulator)
        call(emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1"))
        assert call(emulator, "mms", "deleteMembership", sid("sourcedId", "m1")).status[0] == "success"
        assert emulator.memberships() == {}
        assert call(emulator, "mms", "deleteMembership", sid("sourcedId", "m1")).status[2] == "unknownobject"
        read = call(emulator, "mms", "readMembership", sid("sourcedId", "m1"))
        assert read.status[2] == "unknownobject"
        assert read.body.find("mm:membership", NS) is None

    def test_mass_operations(self, emulator: Emulator) -> None:
        """createMemberships and deleteMemberships answer one statusInfo per item, in order."""
        school_with_class(emulator)
        pairs = "".join(
            f"<m:membershipIdPair>{sid('sourcedId', key)}{membership_xml(g, p)}</m:membershipIdPair>"
            for key, g, p in (("m1", "c1", "p1"), ("m2", "c1", "ghost"), ("m3", "c1", "p2"))
        )
        created = call(
            emulator, "mms", "createMemberships", f"<m:membershipIdPairSet>{pairs}</m:membershipIdPairSet>"
        )
        assert [item[0] for item in created.items] == ["success", "failure", "success"]
        assert set(emulator.memberships()) == {"m1", "m3"}
        ids = "".join(f"<c:identifier>{key}</c:identifier>" for key in ("m3", "m2", "m1"))
        deleted = call(emulator, "mms", "deleteMemberships", f"<m:sourcedIdSet>{ids}</m:sourcedIdSet>")
        assert deleted.items == [
            ("success", "status", "fullsuccess"),
            ("failure", "error", "unknownobject"),
            ("success", "status", "fullsuccess"),
        ]
        assert emulator.memberships() == {}

    def test_person_changes_carry_memberships(self, emulator: Emulator) -> None:
        """changePersonIdentifier moves a person's memberships; deletePerson removes them."""
        school_with_class(emulator)
        call(emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1"))
        call(emulator, "mms", "createMembership", sid("sourcedId", "m2") + membership_xml("c1", "p2"))
        call(emulator, "pms", "changePersonIdentifier", sid("sourcedId", "p1") + sid("newSourcedId", "p9"))
        assert emulator.memberships()["m1"].person_key == "p9"
        call(emulator, "pms", "deletePerson", sid("sourcedId", "p2"))
        assert set(emulator.memberships()) == {"m1"}

    def test_change_identifier(self, emulator: Emulator) -> None:
        """changeMembershipIdentifier moves a membership (group, person, role, flag) to a new id; an unknown
        old id is unknownobject, a new id in use objectexists, an empty or over-long id invaliddata."""
        school_with_class(emulator)
        call(
            emulator, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1", "Mentor")
        )
        call(emulator, "mms", "createMembership", sid("sourcedId", "m2") + membership_xml("c1", "p2"))
        off = membership_xml("c1", "p1", "Mentor").replace(
            "</d:roleType>", "</d:roleType><d:status>false</d:status>"
        )
        assert call(emulator, "mms", "updateMembership", sid("sourcedId", "m1") + off).status[0] == "success"

        def change(old: str, new: str) -> Reply:
            return call(
                emulator,
                "mms",
                "changeMembershipIdentifier",
                sid("sourcedId", old) + sid("newSourcedId", new),
                message_id="chg-1",
            )

        unknown = change("ghost", "m9")
        assert (unknown.status, unknown.minor_value) == (("failure", "error", "unknownobject"), "ghost")
        taken = change("m1", "m2")
        assert (taken.status, taken.minor_value) == (("failure", "error", "objectexists"), "m2")
        for old, new in (("", "m9"), ("m1", ""), ("x" * 65, "m9"), ("m1", "y" * 65)):
            assert change(old, new).status == ("failure", "error", "invaliddata")
        assert set(emulator.memberships()) == {"m1", "m2"}
        moved = change("m1", "m9")
        assert moved.status == ("success", "status", "fullsuccess")
        assert moved.body.tag == f"{{{MMS}}}changeMembershipIdentifierResponse"
        assert len(moved.body) == 0
        assert emulator.memberships() == {
            "m2": Membership(sync_key="m2", group_key="c1", person_key="p2", role="Learner"),
            "m9": Membership(sync_key="m9", group_key="c1", person_key="p1", role="Mentor", active=False),
        }
        assert call(emulator, "mms", "readMembership", sid("sourcedId", "m1")).status[2] == "unknownobject"
        found = call(emulator, "mms", "readMembershipsForGroup", sid("groupSourcedId", "c1"))
        ids = found.body.xpath(
            "mm:membershipIDPairSet/mm:membershipIdPair/mm:sourcedId/c:identifier/text()", namespaces=NS
        )
        assert ids == ["m2", "m9"]
        event = next(e for e in reversed(emulator.history()) if e.operation == "changeMembershipIdentifier")
        assert (event.sync_key, event.new_key, event.message_identifier, event.code_major) == (
            "m1",
            "m9",
            "chg-1",
            "success",
        )


# --- protocol: auth, strictness, routing, faults, WSDL ---------------------------------------


class TestProtocol:
    def test_auth_failure(self, emulator: Emulator) -> None:
        """A wrong WS-Security password is an InvalidSecurity fault on GMS and MMS, and changes nothing."""
        for service, operation, body in (
            ("gms", "createGroup", sid("sourcedId", "s1") + group_xml("North", kind="School")),
            ("mms", "deleteMembership", sid("sourcedId", "m1")),
        ):
            reply = call(emulator, service, operation, body, password="wrong")
            assert reply.http == 500
            assert "InvalidSecurity" in (reply.body.findtext("faultcode") or "")
        assert emulator.groups() == {}
        assert emulator.history() == []

    @pytest.mark.invalid_requests
    def test_strict_and_lenient(self, emulator_factory: Callable[..., Emulator]) -> None:
        """A group without typeValue/level (as some production clients send) fails in strict mode only."""
        strict, lenient = emulator_factory(strict=True), emulator_factory(strict=False)
        refused = group(strict, "s1", "North", kind="School", level=None)
        assert refused.status == ("failure", "error", "invaliddata")
        assert "Schema violation" in (refused.root.findtext(".//h:description/c:text", namespaces=NS) or "")
        assert strict.groups() == {}
        role = call(
            strict, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("s1", "p1", "Pupil")
        )
        assert role.status[2] == "invaliddata"
        assert group(lenient, "s1", "North", kind="School", level=None).status[0] == "success"
        assert lenient.groups()["s1"].level == ""

    def test_action_routing(self, emulator: Emulator) -> None:
        """A GMS request on the MMS endpoint, or with a PMS action, is an ActionNotSupported fault."""
        response = requests.post(
            emulator.mms_url,
            data=envelope("gms", f"<m:readGroupRequest>{sid('sourcedId', 's1')}</m:readGroupRequest>"),
            headers={"Content-Type": "text/xml", "SOAPAction": "http://www.imsglobal.org/soap/gms/readGroup"},
            verify=str(emulator.ca_path),
            timeout=10,
        )
        assert response.status_code == 500
        assert b"ActionNotSupported" in response.content
        response = requests.post(
            emulator.gms_url,
            data=envelope("gms", f"<m:readGroupRequest>{sid('sourcedId', 's1')}</m:readGroupRequest>"),
            headers={
                "Content-Type": "text/xml",
                "SOAPAction": "http://www.imsglobal.org/soap/pms/readPerson",
            },
            verify=str(emulator.ca_path),
            timeout=10,
        )
        assert b"ActionNotSupported" in response.content
        assert emulator.history() == []

    def test_faults_on_new_paths(self, emulator_factory: Callable[..., Emulator]) -> None:
        """Fault injection reaches GMS and MMS operations, and fault_operations can target them alone."""
        emulator = emulator_factory(error_rate=1.0, fault_operations=frozenset({"createGroup"}), seed=3)
        reply = requests.post(
            emulator.gms_url,
            data=envelope(
                "gms",
                f"<m:createGroupRequest>{sid('sourcedId', 's1')}{group_xml('N')}</m:createGroupRequest>",
            ),
            headers={
                "Content-Type": "text/xml",
                "SOAPAction": "http://www.imsglobal.org/soap/gms/createGroup",
            },
            verify=str(emulator.ca_path),
            timeout=10,
        )
        assert reply.status_code == 503
        assert emulator.groups() == {}
        assert call(emulator, "mms", "readMembership", sid("sourcedId", "m1")).status[2] == "unknownobject"
        assert emulator.faults_injected() == {"unavailable": 1}
        emulator.reconfigure(
            fault_operations=frozenset({"deleteMemberships"}), error_rate=0.0, fault_rate=1.0
        )
        faulted = call(emulator, "mms", "deleteMemberships", "<m:sourcedIdSet/>")
        assert (faulted.http, faulted.body.findtext("faultcode")) == (500, "s:Server")
        emulator.reconfigure(fault_operations=frozenset({"changeMembershipIdentifier"}))
        change = sid("sourcedId", "m1") + sid("newSourcedId", "m2")
        faulted = call(emulator, "mms", "changeMembershipIdentifier", change)
        assert (faulted.http, faulted.body.findtext("faultcode")) == (500, "s:Server")
        assert call(emulator, "mms", "deleteMemberships", "<m:sourcedIdSet/>").http == 200
        with pytest.raises(ConfigError, match="createGroupp"):
            emulator.reconfigure(fault_operations=frozenset({"createGroupp"}))

    def test_wsdl_documents(self, emulator: Emulator) -> None:
        """?wsdl on the GMS and MMS endpoints serves each service's WSDL pointing at this emulator."""
        for url, service in (
            (emulator.gms_url, "GroupManagementServiceSync"),
            (emulator.mms_url, "MembershipManagementServiceSync"),
        ):
            response = requests.get(url + "?wsdl", verify=str(emulator.ca_path), timeout=10)
            assert response.status_code == 200
            root = etree.fromstring(response.content, safe_parser())
            assert root.get("name") == service
            locations = root.xpath(
                "//soap:address/@location", namespaces={"soap": "http://schemas.xmlsoap.org/wsdl/soap/"}
            )
            assert locations == [url]

    def test_state_survives_restart(self, emulator_factory: Callable[..., Emulator], tmp_path: Path) -> None:
        """Groups and memberships live in the same SQLite state file as persons."""
        state = tmp_path / "emulator.db"
        first = emulator_factory(state=state)
        school_with_class(first)
        call(first, "mms", "createMembership", sid("sourcedId", "m1") + membership_xml("c1", "p1"))
        first.stop()
        second = emulator_factory(state=state)
        assert set(second.groups()) == {"s1", "c1"}
        assert set(second.memberships()) == {"m1"}


@requires_shared
class TestOfficialSchema:
    def test_official_group_schema_catches_a_bad_group(self) -> None:
        """The official GroupDType check fails a group without groupType and passes ours."""
        wrap = f"xmlns:m='{GMS}' xmlns:g='{GDATA}' xmlns:c='{COMMON}'"
        good = etree.fromstring(group_xml("Maths", parent="s1").replace("<m:group>", f"<m:group {wrap}>", 1))
        validate_group(good)
        bad = etree.fromstring(
            f"<m:group {wrap}><g:description><g:descShort>X</g:descShort></g:description></m:group>"
        )
        with pytest.raises(AssertionError, match="official GMS data schema"):
            validate_group(bad)
