"""Tests for persons read from several files (`[[persons.join]]`): fields, roles, optional files, the
join syntax's errors and dates in each listed format."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sync.errors import ConfigError
from sync.read.mapping import load_any_mapping
from sync.read.roster_set import read_roster_set

USERS = """id,name,surname,kind
u1,Emma,Hansen,elev
u2,Kari,Nilsen,
u3,Ole,Berg,
"""

MAIN = """
[columns]
sync_key = "id"
given_name = "name"
family_name = "surname"
role = "kind"

[values.role]
elev = "Student"
"""

BIRTHS = """
[columns]
sync_key = "person"
birth_date = "born"

[rules]
date_formats = ["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y"]
"""

ROLES = """
[columns]
sync_key = "user"
role = "role"
primary = "main"

[rules]
many_rows = true
primary_values = ["true", "yes"]

[values.role]
teacher = "Staff"
student = "Student"
admin = "Administrator"
"""


def write_set(tmp_path: Path, joins: str, files: dict[str, str], persons_extra: str = "") -> Path:
    """A folder holding `files`, the mappings above, and a set mapping with `joins`; the set's path."""
    folder = tmp_path / "export"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    for name, text in (("main", MAIN), ("births", BIRTHS), ("roles", ROLES)):
        (tmp_path / f"{name}.toml").write_text(text, encoding="utf-8")
    set_path = tmp_path / "school-set.toml"
    set_path.write_text(
        f'kind = "set"\n[persons]\nfile = "users.csv"\nmapping = "main"\n{persons_extra}\n{joins}',
        encoding="utf-8",
    )
    return set_path


BIRTHS_JOIN = '[[persons.join]]\nfile = "births.csv"\nmapping = "births"\n'
ROLES_JOIN = '[[persons.join]]\nfile = "roles.csv"\nmapping = "roles"\n'


class TestFields:
    def test_joined_file_adds_its_fields(self, tmp_path):
        """A birth date from the joined file reaches its person; a person without a row keeps none."""
        births = "person,born\nu1,2014-03-05\nu2,7/4/1980\n"
        mapping = write_set(tmp_path, BIRTHS_JOIN, {"users.csv": USERS, "births.csv": births})
        roster = read_roster_set(tmp_path / "export", mapping).persons
        assert roster.rejects == ()
        assert roster.frame["birth_date"].to_dict() == {"u1": "2014-03-05", "u2": "1980-07-04", "u3": ""}
        assert roster.rows == {
            str(tmp_path / "export" / "users.csv"): 3,
            str(tmp_path / "export" / "births.csv"): 2,
        }

    @pytest.mark.parametrize(
        ("written", "iso"),
        [
            ("2014-03-05", "2014-03-05"),
            ("3/5/2014", "2014-03-05"),
            ("12/31/2012", "2012-12-31"),
            ("05.03.2014", "2014-03-05"),
            ("03/05/2014", "2014-03-05"),
        ],
    )
    def test_each_date_format(self, tmp_path, written, iso):
        """Dates in each listed format (M/D/YYYY with one-digit months too) are read as ISO dates."""
        births = f"person,born\nu1,{written}\n"
        mapping = write_set(tmp_path, BIRTHS_JOIN, {"users.csv": USERS, "births.csv": births})
        roster = read_roster_set(tmp_path / "export", mapping).persons
        assert roster.rejects == ()
        assert roster.frame.loc["u1", "birth_date"] == iso

    def test_bad_date_rejects_the_row_and_protects_the_person(self, tmp_path):
        """A date in no listed format rejects its row by file and line; the reject names the person."""
        births = "person,born\nu1,2014-03-05\nu2,31/12/1980\n"
        mapping = write_set(tmp_path, BIRTHS_JOIN, {"users.csv": USERS, "births.csv": births})
        roster = read_roster_set(tmp_path / "export", mapping).persons
        [reject] = roster.rejects
        assert (Path(reject.file).name, reject.row, reject.field, reject.sync_key) == (
            "births.csv",
            3,
            "birth_date",
            "u2",
        )
        assert "bad date '31/12/1980'" in reject.reason

    def test_row_of_unknown_person_is_rejected(self, tmp_path):
        """A joined row whose person is not in the persons file is rejected with file, line and reason."""
        births = "person,born\nu1,2014-03-05\nu9,2014-03-05\n"
        mapping = write_set(tmp_path, BIRTHS_JOIN, {"users.csv": USERS, "births.csv": births})
        roster = read_roster_set(tmp_path / "export", mapping).persons
        [reject] = roster.rejects
        assert (Path(reject.file).name, reject.row, reject.field) == ("births.csv", 3, "sync_key")
        assert reject.reason == "person 'u9' (column 'person') is not in the persons file users.csv"
        assert "u9" not in roster.frame.index
        assert roster.frame.loc["u1", "birth_date"] == "2014-03-05"

    def test_same_person_twice_in_a_one_row_file_is_rejected(self, tmp_path):
        """A file with one row per person rejects both rows of a person named twice."""
        births = "person,born\nu1,2014-03-05\nu1,2014-03-06\n"
        mapping = write_set(tmp_path, BIRTHS_JOIN, {"users.csv": USERS, "births.csv": births})
        rejects = read_roster_set(tmp_path / "export", mapping).persons.rejects
        assert [(r.row, r.field) for r in rejects] == [(2, "sync_key"), (3, "sync_key")]

    def test_optional_join_file_may_be_absent(self, tmp_path):
        """An optional joined file missing from the folder adds nothing and stops nothing."""
        joins = BIRTHS_JOIN + "optional = true\n"
        mapping = write_set(tmp_path, joins, {"users.csv": USERS})
        roster = read_roster_set(tmp_path / "export", mapping).persons
        assert roster.rejects == ()
        assert set(roster.frame["birth_date"]) == {""}

    def test_required_join_file_missing_stops_the_run(self, tmp_path):
        """A joined file that is not optional must be in the folder."""
        from sync.errors import RosterError

        mapping = write_set(tmp_path, BIRTHS_JOIN, {"users.csv": USERS})
        with pytest.raises(RosterError, match=r"births\.csv is missing"):
            read_roster_set(tmp_path / "export", mapping)


class TestRoles:
    ROLES_CSV = """user,school,role,main
u2,lia,teacher,false
u2,ravnaas,admin,true
u3,lia,teacher,
u3,ravnaas,student,
u1,ravnaas,teacher,true
"""

    def test_primary_row_gives_the_role(self, tmp_path):
        """The primary row's role wins; without one the first row's; the persons file's own role first."""
        mapping = write_set(tmp_path, ROLES_JOIN, {"users.csv": USERS, "roles.csv": self.ROLES_CSV})
        roster = read_roster_set(tmp_path / "export", mapping).persons
        assert roster.rejects == ()
        assert roster.frame["role"].to_dict() == {"u1": "Student", "u2": "Administrator", "u3": "Staff"}

    def test_person_without_a_role_anywhere_is_rejected(self, tmp_path):
        """`[persons] required` rejects, at its persons-file line, a person no file gives a role."""
        roles = "user,school,role,main\nu2,lia,teacher,true\n"
        mapping = write_set(
            tmp_path, ROLES_JOIN, {"users.csv": USERS, "roles.csv": roles}, 'required = ["role"]'
        )
        roster = read_roster_set(tmp_path / "export", mapping).persons
        [reject] = roster.rejects
        assert (Path(reject.file).name, reject.row, reject.field, reject.sync_key) == (
            "users.csv",
            4,
            "role",
            "u3",
        )
        assert reject.reason == "no role for 'u3' in any file (column 'kind')"
        assert list(roster.frame.index) == ["u1", "u2"]

    def test_person_marked_for_deletion_needs_no_role(self, tmp_path):
        """`[persons] required` leaves a row marked for deletion alone: it needs only its sync key."""
        users = "id,name,surname,kind,status\nu1,Emma,Hansen,elev,active\nu2,Kari,Nilsen,,tobedeleted\n"
        mapping = write_set(
            tmp_path, ROLES_JOIN, {"users.csv": users, "roles.csv": "user,role,main\n"}, 'required = ["role"]'
        )
        (tmp_path / "main.toml").write_text(
            MAIN.replace('role = "kind"', 'role = "kind"\nstatus = "status"')
            + '[delete_when]\nstatus = ["tobedeleted"]\n',
            encoding="utf-8",
        )
        roster = read_roster_set(tmp_path / "export", mapping).persons
        assert roster.rejects == ()
        assert roster.frame["delete"].to_dict() == {"u1": False, "u2": True}

    def test_unknown_role_rejects_its_row(self, tmp_path):
        """A role the joined mapping does not know rejects the row, naming the person."""
        roles = "user,school,role,main\nu2,lia,janitor,true\n"
        mapping = write_set(tmp_path, ROLES_JOIN, {"users.csv": USERS, "roles.csv": roles})
        [reject] = read_roster_set(tmp_path / "export", mapping).persons.rejects
        assert (reject.row, reject.field, reject.sync_key) == (2, "role", "u2")


class TestSyntax:
    @pytest.mark.parametrize(
        ("joins", "persons_extra", "message"),
        [
            (
                '[[persons.join]]\nfile = "b.csv"\nmapping = "births"\nfoo = 1\n',
                "",
                r"\[persons\.join\.1\.foo\] unknown key",
            ),
            (
                '[[persons.join]]\nfile = "users.csv"\nmapping = "births"\n',
                "",
                r"\[persons\.join\.1\.file\] 'users\.csv' is also the file of \[persons\]",
            ),
            (
                '[[persons.join]]\nfile = "b.csv"\nmapping = "roles"\n'
                '[[persons.join]]\nfile = "B.csv"\nmapping = "births"\n',
                "",
                r"\[persons\.join\.2\.file\] 'B\.csv' is also the file of \[persons\.join\.1\]",
            ),
            (
                '[[persons.join]]\nfile = "b.csv"\nmapping = "oneroster-orgs"\n',
                "",
                r"\[persons\.join\.1\.mapping\] 'oneroster-orgs' is a groups mapping",
            ),
            (
                '[[persons.join]]\nfile = "b.csv"\nmapping = "main"\n',
                'required = ["nickname_x"]',
                r"\[persons\.required\] names 'nickname_x'",
            ),
            ("", 'required = "role"', r"\[persons\.required\] must be a list of strings"),
            (
                '[persons.join]\nfile = "b.csv"\nmapping = "births"\n',
                "",
                r"\[persons\.join\] must be an array of tables",
            ),
            (
                '[[persons.join]]\nfile = "b.csv"\nmapping = "oneroster-users"\n',
                "",
                r"\[persons\.join\.1\.mapping\] 'oneroster-users': a joined file adds fields",
            ),
        ],
    )
    def test_bad_join_names_file_and_key(self, tmp_path, joins, persons_extra, message):
        """Every problem of a join is a ConfigError naming the set mapping and the key."""
        mapping = write_set(tmp_path, joins, {}, persons_extra)
        with pytest.raises(ConfigError, match=message) as error:
            load_any_mapping(mapping)
        assert str(mapping) in str(error.value)

    def test_main_persons_file_cannot_have_many_rows(self, tmp_path):
        """The persons file has one row per person: a many_rows mapping there is an error."""
        mapping = write_set(tmp_path, "", {})
        mapping.write_text(
            'kind = "set"\n[persons]\nfile = "users.csv"\nmapping = "roles"\n', encoding="utf-8"
        )
        with pytest.raises(
            ConfigError, match=r"\[persons\.mapping\] the persons file has one row per person"
        ):
            load_any_mapping(mapping)

    def test_many_rows_mapping_alone_is_refused(self, tmp_path):
        """A many_rows mapping given on its own (not in a set) says to name it in [[persons.join]]."""
        write_set(tmp_path, "", {"users.csv": USERS})
        with pytest.raises(ConfigError, match=r"name it in a set mapping's \[\[persons\.join\]\]"):
            read_roster_set(tmp_path / "export" / "users.csv", tmp_path / "roles.toml")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                '[columns]\nsync_key = "a"\nprimary = "p"\n',
                r"\[columns\.primary\] marks a person's main row: it needs rules\.many_rows",
            ),
            (
                '[columns]\nsync_key = "a"\n[rules]\nprimary_values = ["x"]\n',
                r"\[rules\.primary_values\] needs a 'primary' column",
            ),
            (
                '[columns]\nsync_key = "a"\nprimary = "p"\n'
                '[rules]\nmany_rows = true\nprimary_values = [" "]\n',
                r"\[rules\.primary_values\] must list non-empty values",
            ),
            (
                '[columns]\nsync_key = "a"\n[rules]\nmany_rows = "yes"\n',
                r"\[rules\.many_rows\] must be true or false",
            ),
            (
                'kind = "groups"\n[columns]\nsync_key = "a"\nname = "n"\ntype = "t"\n'
                "[rules]\nmany_rows = true\n",
                r"\[rules\.many_rows\] only a persons mapping",
            ),
            (
                '[columns]\nsync_key = "a"\nagents = "b"\n[values.agents]\nx = "y"\n',
                r"\[values\.agents\] agents takes no value map",
            ),
            (
                '[columns]\nsync_key = "a"\n[constants]\nparents = "x"\n',
                r"\[constants\.parents\] parents cannot be a constant",
            ),
            (
                '[columns]\nsync_key = "a"\nagents = "b"\n[rules]\nidentity = "agents"\n',
                r"\[rules\.identity\] cannot be agents",
            ),
        ],
    )
    def test_bad_rules_name_file_and_key(self, tmp_path, text, message):
        """The new rules and list fields are checked with the mapping parser's usual errors."""
        path = tmp_path / "bad.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_any_mapping(path)


SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SDS = SAMPLES / "sds"
GUARDIANS = SAMPLES / "oneroster-guardians"


def fields(frame: pd.DataFrame, key: str, *names: str) -> list[str]:
    """The values of `names` in the row of `key`."""
    return [str(frame.at[key, name]) for name in names]


def copy_folder(source: Path, tmp_path: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    """A copy of the sample folder `source` without the files `leave_out`."""
    target = tmp_path / source.name
    target.mkdir()
    for path in source.iterdir():
        if path.name not in leave_out:
            (target / path.name).write_bytes(path.read_bytes())
    return target


class TestSdsSample:
    def test_persons_have_the_role_birth_date_gender_and_children_the_export_says(self):
        """samples/sds reads clean: roles from roles.csv (Carer from relationships.csv), M/D/YYYY dates,
        sex as gender, and each guardian's children."""
        roster_set = read_roster_set(SDS, "sds")
        assert roster_set.rejects == ()
        frame = roster_set.persons.frame
        assert frame["role"].to_dict() == {
            "stu-1001": "Student",
            "stu-1002": "Student",
            "stu-1003": "Student",
            "stu-1004": "Student",
            "tch-2001": "Staff",
            "tch-2002": "Staff",
            "prf-2003": "Staff",
            "adm-3001": "Administrator",
            "gdn-4001": "Carer",
            "gdn-4002": "Carer",  # no roles.csv row: relationships.csv says guardian
            "gdn-4003": "Carer",
        }
        assert fields(frame, "stu-1001", "birth_date", "gender") == ["2014-03-05", "Female"]
        assert fields(frame, "stu-1004", "birth_date", "gender") == ["2012-12-31", "Male"]
        assert fields(frame, "tch-2002", "birth_date", "gender") == ["", ""]
        children = frame["children"][frame["children"] != ""].to_dict()
        assert children == {"gdn-4001": "stu-1001", "gdn-4002": "stu-1002", "gdn-4003": "stu-1003,stu-1004"}
        assert roster_set.file_rows == {
            "users.csv": 11,
            "roles.csv": 10,
            "relationships.csv": 4,
            "demographics.csv": 5,
            "orgs.csv": 3,
            "classes.csv": 3,
            "enrollments.csv": 8,
        }

    def test_teacher_of_two_schools_gets_both_memberships_and_the_primary_role(self):
        """tch-2001 teaches at Lia (first row) and Ravnås (isPrimary): Staff, and a member of both schools."""
        roster_set = read_roster_set(SDS, "sds")
        assert roster_set.memberships is not None
        members = roster_set.memberships.frame
        schools = members[(members["person"] == "tch-2001") & members["group"].str.startswith("org-")]
        assert schools[["group", "role"]].to_dict("index") == {
            "org-lia:tch-2001": {"group": "org-lia", "role": "Instructor"},
            "org-ravnaas:tch-2001": {"group": "org-ravnaas", "role": "Instructor"},
        }
        assert roster_set.persons.frame.loc["tch-2001", "role"] == "Staff"
        assert not members["person"].str.startswith("gdn-").any()  # guardians belong to no school
        assert members.loc["cls-5a:stu-1001", "role"] == "Learner"

    def test_optional_files_may_be_absent(self, tmp_path):
        """Without relationships, demographics, classes and enrollments the folder still reads; the one
        guardians whose role only relationships.csv gave are rejected for want of a role."""
        leave_out = ("relationships.csv", "demographics.csv", "classes.csv", "enrollments.csv")
        folder = copy_folder(SDS, tmp_path, leave_out=leave_out)
        roster_set = read_roster_set(folder, "sds")
        assert [(Path(r.file).name, r.row, r.field, r.sync_key) for r in roster_set.rejects] == [
            ("users.csv", 11, "role", "gdn-4002"),
            ("users.csv", 12, "role", "gdn-4003"),
        ]
        frame = roster_set.persons.frame
        assert set(frame["children"]) == {""}
        assert set(frame["birth_date"]) == {""}
        assert roster_set.memberships is not None
        assert set(roster_set.memberships.frame["group"]) == {"org-ravnaas", "org-lia"}

    def test_guardian_row_naming_an_unknown_child_is_rejected(self, tmp_path):
        """A relationships.csv row whose student is not in users.csv is rejected by file and line; the
        guardian's other children stay."""
        folder = copy_folder(SDS, tmp_path)
        with (folder / "relationships.csv").open("a", encoding="utf-8") as fh:
            fh.write("stu-9999,gdn-4003,guardian\n")
        roster_set = read_roster_set(folder, "sds")
        [reject] = roster_set.rejects
        assert (Path(reject.file).name, reject.row, reject.field, reject.sync_key) == (
            "relationships.csv",
            6,
            "children",
            "",  # the guardian is not held back: the link is left out
        )
        assert reject.reason == (
            "children value 'stu-9999' in column 'userSourcedId' (person 'gdn-4003') is not a person in "
            "users.csv; the link is left out"
        )
        assert roster_set.persons.frame.loc["gdn-4003", "children"] == "stu-1003,stu-1004"

    def test_relationship_of_an_unknown_guardian_is_rejected(self, tmp_path):
        """A relationships.csv row whose guardian is not in users.csv is rejected by file and line."""
        folder = copy_folder(SDS, tmp_path)
        with (folder / "relationships.csv").open("a", encoding="utf-8") as fh:
            fh.write("stu-1001,gdn-9999,parent\n")
        [reject] = read_roster_set(folder, "sds").rejects
        assert (Path(reject.file).name, reject.row, reject.field) == ("relationships.csv", 6, "sync_key")
        assert (
            reject.reason
            == "person 'gdn-9999' (column 'relationshipUserSourcedId') is not in the persons file users.csv"
        )

    def test_demographics_row_of_an_unknown_person_is_rejected(self, tmp_path):
        """A demographics.csv row for a user not in users.csv is rejected by file and line."""
        folder = copy_folder(SDS, tmp_path)
        with (folder / "demographics.csv").open("a", encoding="utf-8") as fh:
            fh.write("stu-9999,male,1/2/2014,,,,,\n")
        [reject] = read_roster_set(folder, "sds").rejects
        assert (Path(reject.file).name, reject.row, reject.field) == ("demographics.csv", 7, "sync_key")
        assert "stu-9999" in reject.reason

    def test_same_link_in_two_rows_is_one(self, tmp_path):
        """A guardian listed twice for one student (two relationship roles) has that child once."""
        folder = copy_folder(SDS, tmp_path)
        with (folder / "relationships.csv").open("a", encoding="utf-8") as fh:
            fh.write("stu-1001,gdn-4001,parent\n")
        roster_set = read_roster_set(folder, "sds")
        assert roster_set.rejects == ()
        assert roster_set.persons.frame.loc["gdn-4001", "children"] == "stu-1001"


class TestOneRosterGuardians:
    def test_agents_read_in_both_directions_and_demographics_joined(self):
        """agentSourcedIds on parents (children) and on students (parents) make one set of links;
        demographics.csv gives birth dates and sex."""
        roster_set = read_roster_set(GUARDIANS, "oneroster")
        assert roster_set.rejects == ()
        frame = roster_set.persons.frame
        children = frame["children"][frame["children"] != ""].to_dict()
        assert children == {
            "usr-1024": "usr-1001,usr-1002",  # from both sides for usr-1001, from the parent for usr-1002
            "usr-1025": "usr-1003",  # from the student's side only
            "usr-1026": "usr-1003",  # from both sides
        }
        assert fields(frame, "usr-1001", "role", "birth_date", "gender") == [
            "Student",
            "2014-03-05",
            "Female",
        ]
        assert fields(frame, "usr-1024", "role", "birth_date", "gender") == [
            "Carer",
            "1981-02-17",
            "Male",
        ]
        assert fields(frame, "usr-1004", "birth_date", "gender", "children") == ["", "", ""]

    def test_oneroster_sample_without_demographics_reads_as_before(self):
        """samples/oneroster has no demographics.csv (optional) and no agents: nobody gets a field."""
        roster_set = read_roster_set(SAMPLES / "oneroster", "oneroster")
        frame = roster_set.persons.frame
        assert {name: set(frame[name]) for name in ("birth_date", "gender", "children")} == {
            "birth_date": {""},
            "gender": {""},
            "children": {""},
        }

    @pytest.mark.parametrize(
        ("row", "agents", "reason"),
        [
            (
                "usr-1002",
                "usr-9999",
                "is not a person in users.csv",
            ),
            ("usr-1002", "usr-1004", "cannot be told parent from child: neither is a Carer"),
            ("usr-1025", "usr-1026", "cannot be told parent from child: both are a Carer"),
            ("usr-1002", "usr-1002", "is the person itself"),
        ],
    )
    def test_bad_agent_is_rejected_by_file_and_line(self, tmp_path, row, agents, reason):
        """An agent that is unknown, of the same side (both or neither Carers) or the person itself is
        rejected with the file, the line and the person, and left out; the other links stay."""
        folder = copy_folder(GUARDIANS, tmp_path)
        users = (folder / "users.csv").read_text(encoding="utf-8").splitlines()
        line = next(i for i, text in enumerate(users) if text.startswith(f"{row},"))
        cells = users[line].split(",")
        cells[15] = agents
        users[line] = ",".join(cells)
        (folder / "users.csv").write_text("\n".join(users) + "\n", encoding="utf-8")
        roster_set = read_roster_set(folder, "oneroster")
        [reject] = roster_set.rejects
        assert (Path(reject.file).name, reject.row, reject.field, reject.sync_key) == (
            "users.csv",
            line + 1,
            "agents",
            "",  # the person is not held back: the link is left out
        )
        assert reject.reason.startswith(
            f"agents value '{agents}' in column 'agentSourcedIds' (person '{row}') "
        )
        assert reject.reason.endswith(f"{reason}; the link is left out")
        assert roster_set.persons.frame.loc["usr-1024", "children"] == "usr-1001,usr-1002"


class TestChildrenColumn:
    def test_children_column_is_split_sorted_and_unique(self, tmp_path):
        """A persons CSV's own children column (a list of keys) is read sorted, unique, without blanks."""
        (tmp_path / "p.csv").write_text(
            'id,name,surname,kind,kids\nu1,A,B,Student,\nu2,C,D,Student,\nu3,E,F,Carer,"u2, u1,,u2"\n',
            encoding="utf-8",
        )
        (tmp_path / "m.toml").write_text(
            '[columns]\nsync_key = "id"\ngiven_name = "name"\nfamily_name = "surname"\nrole = "kind"\n'
            'children = "kids"\n',
            encoding="utf-8",
        )
        roster = read_roster_set(tmp_path / "p.csv", tmp_path / "m.toml").persons
        assert roster.rejects == ()
        assert roster.frame["children"].to_dict() == {"u1": "", "u2": "", "u3": "u1,u2"}

    def test_parents_column_links_the_other_way(self, tmp_path):
        """A parents column names the row's parents: the link is stored on the parent."""
        (tmp_path / "p.csv").write_text(
            "id,name,surname,kind,mums\nu1,A,B,Student,u3\nu2,C,D,Student,u3\nu3,E,F,Carer,\n",
            encoding="utf-8",
        )
        (tmp_path / "m.toml").write_text(
            '[columns]\nsync_key = "id"\ngiven_name = "name"\nfamily_name = "surname"\nrole = "kind"\n'
            'parents = "mums"\n',
            encoding="utf-8",
        )
        roster = read_roster_set(tmp_path / "p.csv", tmp_path / "m.toml").persons
        assert roster.frame["children"].to_dict() == {"u1": "", "u2": "", "u3": "u1,u2"}


class TestMappingInit:
    def test_sds_folder_is_pointed_at_the_sds_set(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`mapping init` on an SDS folder says to use `--mapping sds` (not oneroster), exit 2."""
        from sync.cli.app import main
        from sync.cli.output import EXIT_USAGE

        assert main(["mapping", "init", str(SDS)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "it looks like a School Data Sync v2.1 folder" in err
        assert "--mapping sds" in err
        assert "--mapping oneroster" not in err

    def test_sds_users_csv_starter_says_to_use_the_set(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`mapping init` on SDS's users.csv (no role column, roles.csv beside it) starts with a note
        naming `--mapping sds`; a OneRoster users.csv gets no such note."""
        from sync.cli.app import main

        assert main(["mapping", "init", str(SDS / "users.csv")]) == 0
        assert capsys.readouterr().out.startswith("# NOTE: this looks like a School Data Sync v2.1 users.csv")
        assert main(["mapping", "init", str(GUARDIANS / "users.csv")]) == 0
        assert "School Data Sync" not in capsys.readouterr().out


class TestEveryField:
    def test_every_person_field_is_mappable(self, tmp_path: Path) -> None:
        """Nickname, prefix, the address lines and gender (through a value map, "" for not given) read
        from their columns like any field."""
        (tmp_path / "p.csv").write_text(
            "id;fornavn;etternavn;kallenavn;tittel;adresse;adresse2;postnr;sted;kjonn\n"
            "u1;Emma;Hansen;Em;Dr.;Storgata 1;Leil. 2;9008;Tromsø;j\n"
            "u2;Noah;Berg;;;;;;;ukjent\n",
            encoding="utf-8",
        )
        (tmp_path / "m.toml").write_text(
            '[columns]\nsync_key = "id"\ngiven_name = "fornavn"\nfamily_name = "etternavn"\n'
            'nickname = "kallenavn"\nprefix = "tittel"\nstreet = "adresse"\nstreet_extra = "adresse2"\n'
            'postal_code = "postnr"\ncity = "sted"\ngender = "kjonn"\n'
            '[values.gender]\nj = "Female"\ng = "Male"\nukjent = ""\n',
            encoding="utf-8",
        )
        roster = read_roster_set(tmp_path / "p.csv", tmp_path / "m.toml").persons
        assert roster.rejects == ()
        names = ("nickname", "prefix", "street", "street_extra", "postal_code", "city", "gender")
        assert fields(roster.frame, "u1", *names) == [
            "Em",
            "Dr.",
            "Storgata 1",
            "Leil. 2",
            "9008",
            "Tromsø",
            "Female",
        ]
        assert fields(roster.frame, "u2", *names) == ["", "", "", "", "", "", ""]

    def test_gender_outside_the_map_or_the_ims_values_is_refused(self, tmp_path: Path) -> None:
        """A gender value the map does not know rejects its row; a map target other than Male, Female
        or "" is a ConfigError naming the key."""
        (tmp_path / "p.csv").write_text("id,sex\nu1,x\nu2,male\n", encoding="utf-8")
        (tmp_path / "m.toml").write_text(
            '[columns]\nsync_key = "id"\ngender = "sex"\n[values.gender]\nmale = "Male"\n', encoding="utf-8"
        )
        roster = read_roster_set(tmp_path / "p.csv", tmp_path / "m.toml").persons
        assert [(r.row, r.field) for r in roster.rejects] == [(2, "gender")]
        assert roster.frame.loc["u2", "gender"] == "Male"
        (tmp_path / "bad.toml").write_text(
            '[columns]\nsync_key = "id"\ngender = "sex"\n[values.gender]\nmale = "M"\n', encoding="utf-8"
        )
        with pytest.raises(ConfigError, match=r"\[values\.gender\.male\] 'M' is not an IMS ES gender"):
            load_any_mapping(tmp_path / "bad.toml")
