"""Tests for reading groups and memberships: the frames, constants, and every reject with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.models import GROUP_FIELDS, MEMBERSHIP_FIELDS
from sync.read.mapping import ColumnMapping, load_mapping
from sync.read.roster import (
    GROUP_FRAME_COLUMNS,
    MEMBERSHIP_FRAME_COLUMNS,
    ROW_FIELD,
    Roster,
    read_groups,
    read_memberships,
    read_roster,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
ORGS = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId"
CLASSES = "sourcedId,status,title,classCode,schoolSourcedId"
ENROLLMENTS = "sourcedId,status,classSourcedId,userSourcedId,role"
GENERIC_MEMBERSHIPS = "Gruppe-ID;Person-ID;Rolle"


def write(tmp_path: Path, name: str, header: str, *rows: str) -> Path:
    """Write a CSV file from a header and data lines and return its path."""
    path = tmp_path / name
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def rejects(roster: Roster) -> list[tuple[int, str]]:
    """(row, field) of every reject."""
    return [(r.row, r.field) for r in roster.rejects]


def reason(roster: Roster, row: int) -> str:
    """The reason of the reject on `row`."""
    (found,) = [r for r in roster.rejects if r.row == row]
    return found.reason


@pytest.fixture(name="orgs")
def fixture_orgs() -> ColumnMapping:
    return load_mapping("oneroster-orgs")


@pytest.fixture(name="classes")
def fixture_classes() -> ColumnMapping:
    return load_mapping("oneroster-classes")


@pytest.fixture(name="enrollments")
def fixture_enrollments() -> ColumnMapping:
    return load_mapping("oneroster-enrollments")


class TestGroupFrame:
    def test_orgs_frame_has_the_contract_columns(self, tmp_path, orgs):
        """Orgs land indexed by sourcedId with identity, mapped type, parent, file, row and delete."""
        path = write(
            tmp_path,
            "orgs.csv",
            ORGS,
            "d1,active,,Bergvik kommune,district,4601,",
            "s1,active,,Ravnås skole,School,974500001,d1",
            "s2,tobedeleted,,,,,",
        )
        roster = read_roster(path, orgs)
        frame = roster.frame
        assert roster.rejects == ()
        assert roster.file == str(path)
        assert frame.index.name == "sync_key"
        assert (
            tuple(frame.columns)
            == GROUP_FRAME_COLUMNS
            == ("identity", *GROUP_FIELDS, "file", "row", "delete")
        )
        assert list(frame.index) == ["d1", "s1", "s2"]
        assert frame.loc["d1", "type"] == "Unspecified"
        assert frame.loc["s1", "type"] == "School"
        assert (frame.loc["s1", "parent"], frame.loc["s1", "identity"]) == ("d1", "974500001")
        assert frame.loc["s1", "description"] == ""
        assert list(frame["row"]) == [2, 3, 4]
        assert list(frame["delete"]) == [False, False, True]
        assert set(frame["file"]) == {str(path)}
        text = ("identity", *GROUP_FIELDS, "file")
        assert all(str(frame[name].dtype) == "str" for name in text)
        assert (str(frame["row"].dtype), str(frame["delete"].dtype)) == ("int64", "bool")

    def test_constant_type_for_classes(self, tmp_path, classes):
        """classes.csv has no type column: the mapping's constant makes every class a Course."""
        path = write(tmp_path, "classes.csv", CLASSES, "c1,active,5A,5A-2024,s1", "c2,active,6A,,s1")
        roster = read_roster(path, classes)
        assert roster.rejects == ()
        assert list(roster.frame["type"]) == ["Course", "Course"]
        assert roster.frame.loc["c1", "description"] == "5A-2024"
        assert roster.frame.loc["c1", "identity"] == ""

    def test_constant_is_value_mapped_like_a_column(self, tmp_path):
        """A constant in another letter case is normalised through the default value map."""
        mapping = tmp_path / "m.toml"
        mapping.write_text('kind = "groups"\n[columns]\nsync_key = "ID"\n[constants]\ntype = "course"\n')
        roster = read_roster(write(tmp_path, "g.csv", "ID", "g1"), load_mapping(mapping))
        assert roster.frame.loc["g1", "type"] == "Course"

    def test_blank_rows_are_skipped_despite_constants(self, tmp_path, classes):
        """A row of delimiters is a leftover, not a group, even though a constant fills its type."""
        path = write(tmp_path, "classes.csv", CLASSES, "c1,active,5A,,s1", ",,,,", "c2,active,6A,,s1")
        roster = read_roster(path, classes)
        assert roster.rejects == ()
        assert list(roster.frame["row"]) == [2, 4]


class TestGroupRejects:
    def test_every_group_rejection(self, tmp_path, orgs):
        """Each bad org row is rejected by file, line, field and a reason naming the column."""
        long_key = "k" * 65
        path = write(
            tmp_path,
            "orgs.csv",
            ORGS,
            "ok,active,,Good,school,1,",  # 2
            ",active,,No key,school,2,",  # 3
            f"{long_key},active,,Long,school,3,",  # 4
            "bad\u200bkey,active,,Invisible,school,4,",  # 5
            "t1,active,,Typo,skool,5,",  # 6
            "t2,active,,,school,6,",  # 7
            "self,active,,Loop,school,7,self",  # 8
            "dup,active,,One,school,8,",  # 9
            "dup,active,,Two,school,9,",  # 10
            "i1,active,,Same id,school,42,",  # 11
            "i2,active,,Same id,school,42,",  # 12
            f"p1,active,,Long parent,school,10,{long_key}",  # 13
            "p2,active,,Bad parent,school,11,a\x07b",  # 14
            "short,active,,Too few fields",  # 15
            "typeless,active,,No type,,12,",  # 16
        )
        roster = read_roster(path, orgs)
        assert list(roster.frame.index) == ["ok"]
        assert rejects(roster) == [
            (3, "sync_key"),
            (4, "sync_key"),
            (5, "sync_key"),
            (6, "type"),
            (7, "name"),
            (8, "parent"),
            (9, "sync_key"),
            (10, "sync_key"),
            (11, "identifier"),
            (12, "identifier"),
            (13, "parent"),
            (14, "parent"),
            (15, ROW_FIELD),
            (16, "type"),
        ]
        assert all(r.file == str(path) for r in roster.rejects)
        assert reason(roster, 3) == "missing sync key in column 'sourcedId'"
        assert "has 65 characters; IMS ES allows at most 64" in reason(roster, 4)
        assert "contains control characters or invisible marks" in reason(roster, 5)
        assert reason(roster, 6).startswith(
            "unknown type 'skool' in column 'type'; known: department, district"
        )
        assert reason(roster, 7) == "missing required value in column 'name'"
        assert reason(roster, 8) == "group 'self' names itself as parent in column 'parentSourcedId'"
        assert reason(roster, 9) == "sync key 'dup' in column 'sourcedId' is also on line 10"
        assert reason(roster, 12) == "identifier '42' in column 'identifier' is also on line 11"
        assert (
            reason(roster, 13)
            == "parent in column 'parentSourcedId' has 65 characters; IMS ES allows at most 64"
        )
        assert reason(roster, 14) == (
            "parent in column 'parentSourcedId' contains control characters or invisible marks; "
            "control character in column 'parentSourcedId' (XML cannot carry it)"
        )
        assert reason(roster, 16) == "missing required value in column 'type'"
        assert {"42"} <= roster.rejected_identities

    def test_type_targets_are_itslearning_types(self, tmp_path):
        """Without a value map the type column must hold itslearning organisation types (any case)."""
        mapping = tmp_path / "m.toml"
        mapping.write_text('kind = "groups"\n[columns]\nsync_key = "ID"\ntype = "T"\n')
        path = write(tmp_path, "g.csv", "ID,T", "g1,coursegroup", "g2,Klasse")
        roster = read_roster(path, load_mapping(mapping))
        assert roster.frame.loc["g1", "type"] == "CourseGroup"
        assert rejects(roster) == [(3, "type")]

    def test_deleted_row_may_name_itself_and_lack_fields(self, tmp_path, orgs):
        """A tobedeleted org needs only its key (its own-parent loop is not checked either)."""
        path = write(tmp_path, "orgs.csv", ORGS, "x,tobedeleted,,,,,x")
        assert read_roster(path, orgs).rejects == ()


class TestCombinedGroups:
    def test_orgs_and_classes_in_one_roster(self, tmp_path, orgs, classes):
        """Two files become one groups roster; each row says its file, Roster.file joins them."""
        org_path = write(tmp_path, "orgs.csv", ORGS, "s1,active,,School,school,1,")
        class_path = write(tmp_path, "classes.csv", CLASSES, "c1,active,5A,,s1", "c2,active,6A,,s1")
        roster = read_groups([(org_path, orgs), (class_path, classes)])
        assert roster.file == f"{org_path}, {class_path}"
        assert list(roster.frame.index) == ["s1", "c1", "c2"]
        assert list(roster.frame["file"]) == [str(org_path), str(class_path), str(class_path)]
        assert list(roster.frame["row"]) == [2, 2, 3]
        assert list(roster.frame["type"]) == ["School", "Course", "Course"]
        assert tuple(roster.frame.columns) == GROUP_FRAME_COLUMNS

    def test_key_in_both_files_rejects_every_row(self, tmp_path, orgs, classes):
        """A sync key used in orgs.csv and classes.csv rejects both rows, each naming its own file."""
        org_path = write(tmp_path, "orgs.csv", ORGS, "s1,active,,School,school,1,", "x,active,,X,school,2,")
        class_path = write(
            tmp_path, "classes.csv", CLASSES, "c1,active,5A,,s1", "x,active,6A,,s1", "x,active,7A,,s1"
        )
        roster = read_groups([(org_path, orgs), (class_path, classes)])
        assert list(roster.frame.index) == ["s1", "c1"]
        assert [(r.file, r.row, r.field) for r in roster.rejects] == [
            (str(org_path), 3, "sync_key"),
            (str(class_path), 3, "sync_key"),
            (str(class_path), 4, "sync_key"),
        ]
        org_reject = roster.rejects[0]
        assert org_reject.reason == (
            f"sync key 'x' in column 'sourcedId' is also on line 3 of {class_path}; line 4 of {class_path}"
        )
        assert roster.rejects[1].reason.startswith("sync key 'x' in column 'sourcedId' is also on line 4;")
        assert f"is also on line 3 of {org_path}" in roster.rejects[1].reason

    def test_identity_in_two_files_rejects_both(self, tmp_path, orgs):
        """An identity value claimed in two group files (both with an identity) rejects both rows."""
        first = write(tmp_path, "a.csv", ORGS, "s1,active,,A,school,77,")
        second = write(tmp_path, "b.csv", ORGS, "s2,active,,B,school,77,", "s3,tobedeleted,,,,77,")
        roster = read_groups([(first, orgs), (second, orgs)])
        assert list(roster.frame.index) == ["s3"]
        assert [(r.file, r.row, r.field) for r in roster.rejects] == [
            (str(first), 2, "identifier"),
            (str(second), 2, "identifier"),
        ]
        assert roster.rejected_identities == frozenset({"77"})

    def test_read_groups_refuses_other_kinds(self, tmp_path, enrollments):
        """read_groups reads groups mappings only, and at least one file."""
        with pytest.raises(ValueError, match="reads memberships, not groups"):
            read_groups([(tmp_path / "e.csv", enrollments)])
        with pytest.raises(ValueError, match="at least one"):
            read_groups([])


class TestMembershipFrame:
    def test_enrollments_frame_has_the_contract_columns(self, tmp_path, enrollments):
        """Enrollments land indexed by sourcedId, role mapped, active always "true"."""
        path = write(
            tmp_path,
            "enrollments.csv",
            ENROLLMENTS,
            "e1,active,c1,u1,student",
            "e2,active,c1,u2,Teacher",
            "e3,active,c1,u3,aide",
            "e4,active,c1,u4,proctor",
            "e5,active,c1,u5,administrator",
            "e6,tobedeleted,c1,u6,",
        )
        roster = read_roster(path, enrollments)
        frame = roster.frame
        assert roster.rejects == ()
        assert (
            tuple(frame.columns) == MEMBERSHIP_FRAME_COLUMNS == (*MEMBERSHIP_FIELDS, "file", "row", "delete")
        )
        assert frame.index.name == "sync_key"
        assert list(frame["role"]) == [
            "Learner",
            "Instructor",
            "TeachingAssistant",
            "Mentor",
            "Administrator",
            "",
        ]
        assert set(frame["active"]) == {"true"}
        assert list(frame["delete"]) == [False] * 5 + [True]
        assert (frame.loc["e1", "group"], frame.loc["e1", "person"]) == ("c1", "u1")
        assert set(frame["file"]) == {str(path)}
        assert all(str(frame[name].dtype) == "str" for name in (*MEMBERSHIP_FIELDS, "file"))

    def test_derived_key(self, tmp_path):
        """Without a sync_key column the key is group:person (generic-memberships)."""
        path = tmp_path / "medlemskap.csv"
        path.write_text(f"{GENERIC_MEMBERSHIPS}\n5a;10001;elev\n5a;20001;LÆRER\n;;\n", encoding="utf-8")
        roster = read_roster(path, load_mapping("generic-memberships"))
        assert roster.rejects == ()
        assert list(roster.frame.index) == ["5a:10001", "5a:20001"]
        assert list(roster.frame["role"]) == ["Learner", "Instructor"]

    def test_constant_group(self, tmp_path):
        """A constant group puts every person of a file in one group; the key is derived from it."""
        mapping = tmp_path / "m.toml"
        mapping.write_text(
            'kind = "memberships"\n[columns]\nperson = "P"\nrole = "R"\n[constants]\ngroup = "all-staff"\n'
        )
        roster = read_roster(
            write(tmp_path, "m.csv", "P,R", "u1,member", "u2,manager"), load_mapping(mapping)
        )
        assert list(roster.frame.index) == ["all-staff:u1", "all-staff:u2"]
        assert list(roster.frame["role"]) == ["Member", "Manager"]


class TestMembershipRejects:
    def test_every_membership_rejection(self, tmp_path, enrollments):
        """Each bad enrollment row is rejected by file, line, field and a reason naming the column."""
        path = write(
            tmp_path,
            "enrollments.csv",
            ENROLLMENTS,
            "ok,active,c1,u1,student",  # 2
            "g0,active,,u2,student",  # 3
            "p0,active,c1,,student",  # 4
            "r1,active,c1,u3,parent",  # 5
            "r2,active,c1,u4,",  # 6
            "pair1,active,c2,u5,student",  # 7
            "pair2,active,c2,u5,teacher",  # 8
            "pair3,tobedeleted,c2,u5,student",  # 9: deleted rows claim no pair
            "k1,active,c3,u6,student",  # 10
            "k1,active,c3,u7,student",  # 11
            f"long,active,{'c' * 65},u8,student",  # 12
            "ctl,active,c4,u\u202e9,student",  # 13
            ",active,c5,u10,student",  # 14
        )
        roster = read_roster(path, enrollments)
        assert list(roster.frame.index) == ["ok", "pair3"]
        assert rejects(roster) == [
            (3, "group"),
            (4, "person"),
            (5, "role"),
            (6, "role"),
            (7, "person"),
            (8, "person"),
            (10, "sync_key"),
            (11, "sync_key"),
            (12, "group"),
            (13, "person"),
            (14, "sync_key"),
        ]
        assert all(r.file == str(path) for r in roster.rejects)
        assert reason(roster, 3) == "missing required value in column 'classSourcedId'"
        assert reason(roster, 4) == "missing required value in column 'userSourcedId'"
        assert reason(roster, 5).startswith(
            "unknown role 'parent' in column 'role'; known: administrator, aide"
        )
        assert reason(roster, 7) == (
            "membership of 'u5' in group 'c2' (columns 'classSourcedId' and 'userSourcedId') "
            "is also on line 8"
        )
        assert reason(roster, 10) == "sync key 'k1' in column 'sourcedId' is also on line 11"
        assert (
            reason(roster, 12)
            == "group in column 'classSourcedId' has 65 characters; IMS ES allows at most 64"
        )
        assert (
            reason(roster, 13)
            == "person in column 'userSourcedId' contains control characters or invisible marks"
        )

    def test_derived_key_rejections(self, tmp_path):
        """Derived keys: too long names both fields; a repeated pair is rejected once, as the person."""
        mapping = load_mapping("generic-memberships")
        path = tmp_path / "m.csv"
        rows = [
            GENERIC_MEMBERSHIPS,
            "g1;u1;elev",  # 2
            f"{'g' * 40};{'u' * 30};elev",  # 3: 71 characters together
            "g1;u1;lærer",  # 4
            ";u2;elev",  # 5
            "g3;u3;vaktmester",  # 6
            "g4;u4;elev;extra",  # 7
        ]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        roster = read_roster(path, mapping)
        assert roster.frame.empty
        assert rejects(roster) == [
            (2, "person"),
            (3, "sync_key"),
            (4, "person"),
            (5, "group"),
            (6, "role"),
            (7, ROW_FIELD),
        ]
        assert (
            reason(roster, 2)
            == "membership of 'u1' in group 'g1' (columns 'Gruppe-ID' and 'Person-ID') is also on line 4"
        )
        assert reason(roster, 3) == (
            "sync key group:person derived from the fields group and person (columns 'Gruppe-ID' and "
            "'Person-ID') has 71 characters; IMS ES allows at most 64 (map a sync_key column)"
        )
        bad_row = next(r for r in roster.rejects if r.row == 7)
        assert bad_row.sync_key == "g4:u4"
        assert [r.sync_key for r in roster.rejects][:1] == ["g1:u1"]

    def test_derived_key_of_deleted_rows_needs_group_and_person(self, tmp_path):
        """A row marked for deletion still needs group and person when they make its key."""
        mapping = tmp_path / "m.toml"
        mapping.write_text(
            'kind = "memberships"\n[columns]\ngroup = "G"\nperson = "P"\nstatus = "S"\n'
            '[delete_when]\nstatus = ["gone"]\n'
        )
        roster = read_roster(
            write(tmp_path, "m.csv", "G,P,S", "g1,,gone", "g1,u1,gone"), load_mapping(mapping)
        )
        assert rejects(roster) == [(2, "person")]
        assert list(roster.frame.index) == ["g1:u1"]
        assert bool(roster.frame.loc["g1:u1", "delete"])


USERS = "sourcedId,status,orgSourcedIds,role,username"


@pytest.fixture(name="user_orgs")
def fixture_user_orgs() -> ColumnMapping:
    return load_mapping("oneroster-user-orgs")


class TestSplitMemberships:
    def test_one_membership_per_org(self, tmp_path, user_orgs):
        """orgSourcedIds is split: values stripped, empty ones dropped, a repeated one counted once."""
        path = write(
            tmp_path,
            "users.csv",
            USERS,
            "u1,active,s1,student,a",
            'u2,active,"s1, s2",teacher,b',
            'u3,active," s2 ,,s1,s2, ",Administrator,c',
            "u4,tobedeleted,s1,aide,d",
        )
        roster = read_roster(path, user_orgs)
        assert roster.rejects == ()
        frame = roster.frame
        assert tuple(frame.columns) == MEMBERSHIP_FRAME_COLUMNS
        assert list(frame.index) == ["s1:u1", "s1:u2", "s2:u2", "s2:u3", "s1:u3", "s1:u4"]
        assert list(frame["row"]) == [2, 3, 3, 4, 4, 5]
        assert list(frame["group"]) == ["s1", "s1", "s2", "s2", "s1", "s1"]
        assert list(frame["role"]) == [
            "Learner",
            "Instructor",
            "Instructor",
            "Administrator",
            "Administrator",
            "TeachingAssistant",
        ]
        assert list(frame["delete"]) == [False] * 5 + [True]
        assert set(frame["file"]) == {str(path)}

    def test_roles_without_a_membership_are_skipped_not_rejected(self, tmp_path, user_orgs):
        """A parent, guardian or relative (or a role the map does not know) has no school membership."""
        path = write(
            tmp_path,
            "users.csv",
            USERS,
            "u1,active,s1,parent,a",
            'u2,active,"s1,s2",Guardian,b',
            "u3,active,s1,relative,c",
            "u4,active,s1,janitor,d",
            "u5,active,s1,proctor,e",
        )
        roster = read_roster(path, user_orgs)
        assert roster.rejects == ()
        assert list(roster.frame.index) == ["s1:u5"]
        assert roster.frame.at["s1:u5", "role"] == "Mentor"
        assert roster.frame.at["s1:u5", "row"] == 6

    def test_rejects_name_file_row_and_field(self, tmp_path, user_orgs):
        """An empty role or org list is rejected; a bad org rejects its own membership only."""
        path = write(
            tmp_path,
            "users.csv",
            USERS,
            "u1,active,s1,,a",
            "u2,active,,student,b",
            'u3,active," , ",student,c',
            f'u4,active,"s1,{"x" * 65}",student,d',
            "u5,active,s1,student,e",
            "u5,active,s1,student,e",
            'u6,active,"s1,s\u200b2",teacher,f',
        )
        roster = read_roster(path, user_orgs)
        assert [(Path(r.file).name, r.row, r.field) for r in roster.rejects] == [
            ("users.csv", 2, "role"),
            ("users.csv", 3, "group"),
            ("users.csv", 4, "group"),
            ("users.csv", 5, "sync_key"),  # the derived key is too long, and so is the org
            ("users.csv", 6, "person"),
            ("users.csv", 7, "person"),
            ("users.csv", 8, "group"),
        ]
        assert reason(roster, 2) == "missing required value in column 'role'"
        assert reason(roster, 3) == "missing required value in column 'orgSourcedIds'"
        assert "group in column 'orgSourcedIds' has 65 characters" in reason(roster, 5)
        assert reason(roster, 6) == (
            "membership of 'u5' in group 's1' (columns 'orgSourcedIds' and 'sourcedId') is also on line 7"
        )
        assert "control characters" in reason(roster, 8)
        assert list(roster.frame.index) == ["s1:u4", "s1:u6"]

    def test_custom_separator_and_person_split(self, tmp_path):
        """Any kind of value may be split on any separator: here one group row lists its members."""
        mapping = tmp_path / "m.toml"
        mapping.write_text(
            'kind = "memberships"\n[columns]\ngroup = "Gruppe"\nperson = "Medlemmer"\n'
            '[constants]\nrole = "Member"\n[rules]\nsplit = { field = "person", separator = " | " }\n'
        )
        path = write(tmp_path, "m.csv", "Gruppe;Medlemmer", "g1;a | b |  | a", "g2;c")
        roster = read_roster(path, load_mapping(mapping))
        assert roster.rejects == ()
        assert list(roster.frame.index) == ["g1:a", "g1:b", "g2:c"]
        assert list(roster.frame["row"]) == [2, 2, 3]

    def test_bad_line_is_one_reject(self, tmp_path, user_orgs):
        """A line with the wrong number of fields is rejected once, with the file's line."""
        path = write(tmp_path, "users.csv", USERS, "u1,active,s1,student,a", "u2,active,s1,student")
        roster = read_roster(path, user_orgs)
        assert rejects(roster) == [(3, ROW_FIELD)]
        assert list(roster.frame.index) == ["s1:u1"]


class TestCombinedMemberships:
    def test_enrollments_and_school_memberships_in_one_roster(self, tmp_path, enrollments, user_orgs):
        """Several membership files are read into one roster, each row naming its file."""
        enrolled = write(tmp_path, "enrollments.csv", ENROLLMENTS, "e1,active,c1,u1,student")
        users = write(tmp_path, "users.csv", USERS, 'u1,active,"s1,s2",student,a')
        roster = read_memberships([(enrolled, enrollments), (users, user_orgs)])
        assert roster.rejects == ()
        assert list(roster.frame.index) == ["e1", "s1:u1", "s2:u1"]
        assert list(roster.frame["file"]) == [str(enrolled), str(users), str(users)]
        assert roster.file == f"{enrolled}, {users}"

    def test_key_or_pair_in_two_files_rejects_every_row(self, tmp_path, enrollments, user_orgs):
        """A sync key, or a group and person, held by two files rejects the rows of both."""
        enrolled = write(
            tmp_path,
            "enrollments.csv",
            ENROLLMENTS,
            "s1:u1,active,c1,u1,student",  # the key users.csv derives for u1 in s1
            "e2,active,s2,u2,student",  # u2 in s2, as users.csv says too
            "e3,tobedeleted,s2,u3,student",  # marked for deletion: claims no pair
            "e4,active,c1,u2,student",
        )
        users = write(
            tmp_path,
            "users.csv",
            USERS,
            "u1,active,s1,student,a",
            "u2,active,s2,student,b",
            "u3,active,s2,student,c",
        )
        roster = read_memberships([(enrolled, enrollments), (users, user_orgs)])
        assert [(Path(r.file).name, r.row, r.field) for r in roster.rejects] == [
            ("enrollments.csv", 2, "sync_key"),
            ("enrollments.csv", 3, "person"),
            ("users.csv", 2, "sync_key"),
            ("users.csv", 3, "person"),
        ]
        by_file = {(Path(r.file).name, r.row): r.reason for r in roster.rejects}
        assert by_file[("enrollments.csv", 2)] == (
            f"sync key 's1:u1' in column 'sourcedId' is also on line 2 of {users}"
        )
        assert by_file[("users.csv", 3)] == (
            "membership of 'u2' in group 's2' (columns 'orgSourcedIds' and 'sourcedId') is also on "
            f"line 3 of {enrolled}"
        )
        assert list(roster.frame.index) == ["e3", "e4", "s2:u3"]

    def test_read_memberships_refuses_other_kinds(self, tmp_path, orgs):
        with pytest.raises(ValueError, match="reads groups, not memberships"):
            read_memberships([(write(tmp_path, "orgs.csv", ORGS), orgs)])
        with pytest.raises(ValueError, match="at least one file"):
            read_memberships([])
