"""The IMS ES clients: `PersonClient` (PMS), `GroupClient` (GMS) and `MembershipClient` (MMS).

`KindClient` holds the operations every kind has (create, update, delete, read, change identifier, mass
create and delete), written once over `sync.models.kinds` and `bodies`; each client names them for its
kind and adds what only its service has (replacePerson, readPersons, readAllPersons,
readGroupsForPerson, readMembershipsFor*). Every method sends one request and returns the service's
verdict as `Status` values (failures too: the caller decides); it raises only `sync.errors` classes, as
`ServiceClient` describes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, Literal, TypeVar, Unpack, cast

from lxml import etree

from sync.errors import ConfigError, ProtocolError
from sync.ims.bodies import KIND_XML, key_body, keys_body, pairs_body, record_body, rename_body
from sync.ims.exchange import (
    BoundOperation,
    ClientOptions,
    MassReply,
    ServiceClient,
    bundled_wsdl,
    find_binding,
)
from sync.ims.groups import GMS_SPEC
from sync.ims.memberships import MMS_SPEC
from sync.ims.namespaces import COMMON, GMS_MESS, PMS_MESS
from sync.ims.persons import EXTENDED_BINDING, EXTENDED_OPERATIONS, PMS_SPEC, page_body
from sync.ims.urls import extended_url as _extended_url
from sync.ims.urls import require_https
from sync.ims.wire import KindXml, RequestBody, ServiceSpec
from sync.models import Group, Membership, Person, Record, Status
from sync.models.kinds import GROUP, MEMBERSHIP, PERSON, Kind

__all__ = ["GroupClient", "KindClient", "MembershipClient", "Page", "PersonClient"]

R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of readAllPersons: status, persons (ordered by sync key) and the site's total count."""

    status: Status
    persons: tuple[Person, ...]
    virtual_count: int


class KindClient(ServiceClient, Generic[R]):
    """The operations of one kind of object (`kind`), as its IMS ES service names them."""

    kind: ClassVar[Kind]

    @property
    def _xml(self) -> KindXml[R]:
        return cast(KindXml[R], KIND_XML[self.kind.name])

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        kind = self.kind
        full, bare = self._xml.samples
        records = (record_body(kind, full), record_body(kind, bare))
        samples = {
            kind.operation("create"): (record_body(kind, full, "p&w"), record_body(kind, bare)),
            kind.operation("update"): records,
            kind.operation("replace"): records,
            kind.operation("delete"): (key_body(kind, "k"),),
            kind.operation("read"): (key_body(kind, "k"),),
            kind.change_identifier_operation: (rename_body(kind, "a & <b>", "b\u00e5"),),
            kind.mass_operation("create"): (pairs_body(kind, [(full, "p"), (bare, "")]),),
            kind.mass_operation("delete"): (keys_body(kind, ["a", "b"]),),
        }
        return {name: bodies for name, bodies in samples.items() if name in self._operations}

    def _send(
        self, verb: Literal["create", "update", "replace"], record: R, password: str, message_id: str | None
    ) -> Status:
        return self._simple(self.kind.operation(verb), record_body(self.kind, record, password), message_id)

    def _delete(self, sync_key: str, message_id: str | None) -> Status:
        return self._simple(self.kind.operation("delete"), key_body(self.kind, sync_key), message_id)

    def _read(self, sync_key: str, message_id: str | None) -> tuple[Status, R | None]:
        """The status and, on success, the record (its sync key is the one asked for)."""
        name, namespace = self.kind.operation("read"), self.spec.message_namespace
        path = f"{{{namespace}}}{name}Response/{{{namespace}}}{self.kind.name}"
        body = key_body(self.kind, sync_key)
        status, element = self._answer(name, body, message_id, path, f"a {self.kind.name}")
        return status, self._xml.read(element, sync_key) if element is not None else None

    def _change_identifier(self, old_id: str, new_id: str, message_id: str | None) -> Status:
        body = rename_body(self.kind, old_id, new_id)
        return self._simple(self.kind.change_identifier_operation, body, message_id)

    def _create_many(self, items: Sequence[tuple[R, str]], message_id: str | None) -> MassReply:
        body = pairs_body(self.kind, items)
        return self._mass(self.kind.mass_operation("create"), body, len(items), message_id)[0]

    def _delete_many(self, sync_keys: Sequence[str], message_id: str | None) -> MassReply:
        keys = list(sync_keys)
        return self._mass(
            self.kind.mass_operation("delete"), keys_body(self.kind, keys), len(keys), message_id
        )[0]

    def _read_pairs(self, name: str, answer: etree._Element, pair_set: str) -> list[R]:
        """The records of an answer's `pair_set/<kind>IdPair*` (sourcedId + the record's element).

        Raises:
            ProtocolError: a pair without its id or record.
        """
        namespace, element_name = self.spec.message_namespace, self.kind.name
        found = []
        for pair in answer.iterfind(f"{{{namespace}}}{pair_set}/{{{namespace}}}{element_name}IdPair"):
            key = pair.findtext(f"{{{namespace}}}sourcedId/{{{COMMON}}}identifier")
            element = pair.find(f"{{{namespace}}}{element_name}")
            if not key or element is None:
                raise ProtocolError(
                    f"{self._where(name)}: a {element_name}IdPair lacks its sourcedId or {element_name}"
                )
            found.append(self._xml.read(element, key))
        return found


class PersonClient(KindClient[Person]):
    """A thread-safe IMS ES PMS client (plus itslearning's readAllPersons).

    Every method sends one request and returns the service's verdict as `Status` values (also when
    codeMajor is failure: the caller decides); it raises only `sync.errors` classes, as `ServiceClient`
    describes.

    Args:
        url: The PMS endpoint, `https://.../PersonManagementService.svc`.
        username, password, ca_bundle, timeouts, pool_size, adapter: as for `ServiceClient`.
        wsdl: None for the bundled WSDL, a file path, or an https:// URL (the live `?wsdl`). When that
            WSDL has no ExtendedPersonManagement binding, readAllPersons uses the bundled one.
        extended_url: The ExtendedPersonManagement endpoint; default: `url` with its last path
            segment prefixed "Extended".

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
    """

    spec: ClassVar[ServiceSpec] = PMS_SPEC
    kind: ClassVar[Kind] = PERSON

    def __init__(
        self,
        *,
        url: str,
        username: str,
        password: str,
        extended_url: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        require_https(url, "the IMS ES URL")
        self._extended = require_https(extended_url or _extended_url(url), "the Extended URL")
        super().__init__(url=url, username=username, password=password, **options)

    def _resolve(self, wsdl: str | Path | None) -> dict[str, BoundOperation]:
        pms = find_binding(self._zeep, PMS_SPEC.binding)
        extended = find_binding(self._zeep, EXTENDED_BINDING)
        if extended is None:  # itslearning's PMS ?wsdl has no readAllPersons: use ours for it
            extended = find_binding(bundled_wsdl(PMS_SPEC), EXTENDED_BINDING)
        if pms is None or extended is None:
            raise ConfigError(f"the WSDL lacks the {PMS_SPEC.binding} or {EXTENDED_BINDING} binding")
        return {
            **self._operations_of(pms, PMS_SPEC.operations, self._url),
            **self._operations_of(extended, EXTENDED_OPERATIONS, self._extended),
        }

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        return {
            **super()._samples(),
            "readPersons": (keys_body(PERSON, ["a", "b"]),),
            "readAllPersons": (page_body(0, 1),),
        }

    def create_person(self, person: Person, *, password: str = "", message_id: str | None = None) -> Status:
        """createPerson: create `person` (IMS ES updates it when the sync key exists); `password` if given."""
        return self._send("create", person, password, message_id)

    def update_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """updatePerson: merge the present fields into the stored person (IMS ES creates a missing one)."""
        return self._send("update", person, "", message_id)

    def replace_person(self, person: Person, *, message_id: str | None = None) -> Status:
        """replacePerson: store exactly `person` (a missing one is inserted, with a warning)."""
        return self._send("replace", person, "", message_id)

    def delete_person(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deletePerson."""
        return self._delete(sync_key, message_id)

    def read_person(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Person | None]:
        """readPerson: the status and, on success, the person (its sync key is the one asked for).

        Raises:
            ProtocolError: also when a success carries no person.
        """
        return self._read(sync_key, message_id)

    def read_persons(
        self, sync_keys: Sequence[str], *, message_id: str | None = None
    ) -> tuple[MassReply, tuple[Person | None, ...]]:
        """readPersons: the statuses and, per requested key in order, the person or None (failed item).

        Raises:
            ProtocolError: also when the number of persons differs from the number of successful items.
        """
        keys = list(sync_keys)
        reply, soap_body = self._mass("readPersons", keys_body(PERSON, keys), len(keys), message_id)
        elements = soap_body.findall(
            f"{{{PMS_MESS}}}readPersonsResponse/{{{PMS_MESS}}}personSet/{{{PMS_MESS}}}person"
        )
        if len(elements) != sum(item.ok for item in reply.items):
            raise ProtocolError(
                f"{self._where('readPersons')}: {len(elements)} persons for "
                f"{sum(item.ok for item in reply.items)} successful items"
            )
        found = iter(elements)
        persons = tuple(
            self._xml.read(next(found), key) if item.ok else None
            for key, item in zip(keys, reply.items, strict=True)
        )
        return reply, persons

    def change_person_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changePersonIdentifier: give the person `old_id` the sync key `new_id`."""
        return self._change_identifier(old_id, new_id, message_id)

    def create_persons(
        self, items: Sequence[tuple[Person, str]], *, message_id: str | None = None
    ) -> MassReply:
        """createPersons: one request for many (person, password) pairs; "" = no password."""
        return self._create_many(items, message_id)

    def delete_persons(self, sync_keys: Sequence[str], *, message_id: str | None = None) -> MassReply:
        """deletePersons: one request for many sync keys."""
        return self._delete_many(sync_keys, message_id)

    def read_all_persons(
        self, *, page_index: int, page_size: int = 100, message_id: str | None = None
    ) -> Page:
        """readAllPersons (itslearning's ExtendedPersonManagement): one page of the site's persons.

        Raises:
            ProtocolError: also when a success lacks virtualCount or a pair lacks its sync key.
        """
        name = "readAllPersons"
        body = page_body(page_index, page_size)
        status, answer = self._answer(
            name, body, message_id, f"{{{PMS_MESS}}}{name}Response", f"{name}Response"
        )
        if answer is None:
            return Page(status=status, persons=(), virtual_count=0)
        persons = self._read_pairs(name, answer, "personIdPairSet")
        try:
            count = int(answer.findtext(f"{{{PMS_MESS}}}virtualCount") or "")
        except ValueError as exc:
            raise ProtocolError(f"{self._where(name)}: missing or bad virtualCount") from exc
        return Page(status=status, persons=tuple(persons), virtual_count=count)


class GroupClient(KindClient[Group]):
    """A thread-safe IMS ES Group Management (GMS) client, shaped like `PersonClient`.

    Each method sends one request and returns the service's verdict as `Status` values (failures too:
    the caller decides); it raises only `sync.errors` classes, as `ServiceClient` describes. A group is
    sent with groupType scheme `ItslearningOrganisationTypes`, its type, a `Parent` relationship when it
    has a parent, and description descShort = name, descLong = description. A group without a name is
    sent without a description (IMS requires descShort in one).

    Args:
        url: The GMS endpoint, `https://.../GroupManagementService.svc` (see `service_urls`).
        username, password, ca_bundle, timeouts, pool_size, wsdl, adapter: as for `ServiceClient`
            (`wsdl`: None for the bundled gms.wsdl).

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
    """

    spec: ClassVar[ServiceSpec] = GMS_SPEC
    kind: ClassVar[Kind] = GROUP

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        return {**super()._samples(), "readGroupsForPerson": (key_body(GROUP, "k", "personSourcedId"),)}

    def create_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """createGroup: create `group` (IMS ES updates it when the sync key exists)."""
        return self._send("create", group, "", message_id)

    def update_group(self, group: Group, *, message_id: str | None = None) -> Status:
        """updateGroup: replace the elements sent (a missing group is `unknownobject`).

        An empty parent sends no relationship, which leaves the parent held as it is.
        """
        return self._send("update", group, "", message_id)

    def delete_group(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteGroup (itslearning refuses a group with child groups: delete bottom-up)."""
        return self._delete(sync_key, message_id)

    def read_group(self, sync_key: str, *, message_id: str | None = None) -> tuple[Status, Group | None]:
        """readGroup: the status and, on success, the group (its sync key is the one asked for).

        Raises:
            ProtocolError: also when a success carries no group.
        """
        return self._read(sync_key, message_id)

    def change_group_identifier(self, old_id: str, new_id: str, *, message_id: str | None = None) -> Status:
        """changeGroupIdentifier: give the group `old_id` the sync key `new_id` (children follow)."""
        return self._change_identifier(old_id, new_id, message_id)

    def create_groups(self, groups: Sequence[Group], *, message_id: str | None = None) -> MassReply:
        """createGroups: one request for many groups, applied in order (parents first)."""
        return self._create_many([(group, "") for group in groups], message_id)

    def read_groups_for_person(
        self, person_key: str, *, message_id: str | None = None
    ) -> tuple[Status, list[str]]:
        """readGroupsForPerson: the status and the sync keys of the person's groups ([] on failure).

        Raises:
            ProtocolError: also when a success carries no readGroupsForPersonResponse.
        """
        name = "readGroupsForPerson"
        body = key_body(GROUP, person_key, "personSourcedId")
        status, answer = self._answer(
            name, body, message_id, f"{{{GMS_MESS}}}{name}Response", f"{name}Response"
        )
        if answer is None:
            return status, []
        keys = [e.text or "" for e in answer.iterfind(f"{{{GMS_MESS}}}groupIdSet/{{{COMMON}}}identifier")]
        return status, keys


class MembershipClient(KindClient[Membership]):
    """A thread-safe IMS ES Membership Management (MMS) client, shaped like `PersonClient`.

    A membership is sent as itslearning's MMS schema orders it: groupSourcedId, member (memberSourcedId,
    idType Person, role (roleType, status)); `status` is IMS's active flag from `Membership.active`.
    Membership ids cannot be listed without knowing a person or group: keep them in the snapshot.

    Args:
        url: The MMS endpoint, `https://.../MembershipManagementService.svc` (see `service_urls`).
        username, password, ca_bundle, timeouts, pool_size, wsdl, adapter: as for `ServiceClient`
            (`wsdl`: None for the bundled mms.wsdl).

    Raises:
        ConfigError: a non-https URL, a missing CA bundle or WSDL file, or an unusable WSDL.
        RejectedError: (from the calls) a membership whose `active` is neither "true" nor "false".
    """

    spec: ClassVar[ServiceSpec] = MMS_SPEC
    kind: ClassVar[Kind] = MEMBERSHIP

    def _samples(self) -> Mapping[str, tuple[RequestBody, ...]]:
        return {
            **super()._samples(),
            **{name: (key_body(MEMBERSHIP, "k", tag),) for name, tag in _MEMBERSHIPS_FOR.items()},
        }

    def create_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """createMembership (IMS ES updates it when the sync key exists)."""
        return self._send("create", membership, "", message_id)

    def update_membership(self, membership: Membership, *, message_id: str | None = None) -> Status:
        """updateMembership: new group, person, role or active flag (a missing one is `unknownobject`)."""
        return self._send("update", membership, "", message_id)

    def delete_membership(self, sync_key: str, *, message_id: str | None = None) -> Status:
        """deleteMembership."""
        return self._delete(sync_key, message_id)

    def read_membership(
        self, sync_key: str, *, message_id: str | None = None
    ) -> tuple[Status, Membership | None]:
        """readMembership: the status and, on success, the membership (its sync key is the one asked for).

        Raises:
            ProtocolError: also when a success carries no membership.
        """
        return self._read(sync_key, message_id)

    def change_membership_identifier(
        self, old_id: str, new_id: str, *, message_id: str | None = None
    ) -> Status:
        """changeMembershipIdentifier: give the membership `old_id` the sync key `new_id`.

        Its group, person, role and active flag stay: no second membership in the course. An unknown
        `old_id` is `unknownobject`, a `new_id` in use `objectexists`.
        """
        return self._change_identifier(old_id, new_id, message_id)

    def create_memberships(
        self, memberships: Sequence[Membership], *, message_id: str | None = None
    ) -> MassReply:
        """createMemberships: one request for many memberships, one status per item in order."""
        return self._create_many([(membership, "") for membership in memberships], message_id)

    def delete_memberships(self, sync_keys: Sequence[str], *, message_id: str | None = None) -> MassReply:
        """deleteMemberships: one request for many sync keys, one status per item in order."""
        return self._delete_many(sync_keys, message_id)

    def read_memberships_for_person(
        self, person_key: str, *, message_id: str | None = None
    ) -> tuple[Status, list[Membership]]:
        """readMembershipsForPerson: the status and the person's memberships ([] on failure)."""
        return self._memberships_for("readMembershipsForPerson", person_key, message_id)

    def read_memberships_for_group(
        self, group_key: str, *, message_id: str | None = None
    ) -> tuple[Status, list[Membership]]:
        """readMembershipsForGroup: the status and the group's memberships ([] on failure)."""
        return self._memberships_for("readMembershipsForGroup", group_key, message_id)

    def _memberships_for(
        self, name: str, key: str, message_id: str | None
    ) -> tuple[Status, list[Membership]]:
        """A readMembershipsFor* call: `membershipIDPairSet/membershipIdPair*` (sourcedId + membership).

        Raises:
            ProtocolError: a success without its response element, or a pair without id or membership.
        """
        namespace = self.spec.message_namespace
        body = key_body(MEMBERSHIP, key, _MEMBERSHIPS_FOR[name])
        status, answer = self._answer(
            name, body, message_id, f"{{{namespace}}}{name}Response", f"{name}Response"
        )
        if answer is None:
            return status, []
        return status, self._read_pairs(name, answer, "membershipIDPairSet")


#: readMembershipsFor*: the element holding the key asked for.
_MEMBERSHIPS_FOR: dict[str, str] = {
    "readMembershipsForPerson": "personSourcedId",
    "readMembershipsForGroup": "groupSourcedId",
}
