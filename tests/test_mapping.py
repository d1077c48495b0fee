"""Tests for mapping files: the built-ins, the TOML format, and every ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.errors import ConfigError
from sync.read.mapping import INSTITUTION_ROLE_TYPES, Split, builtin_mappings, load_mapping

MINIMAL = '[columns]\nsync_key = "ID"\n'


def mapping_file(tmp_path: Path, text: str, name: str = "school.toml") -> Path:
    """Write a mapping file and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class TestBuiltins:
    def test_builtins_are_listed_by_name(self):
        """Both shipped mappings are found by their file stem."""
        assert {"oneroster-users", "generic"} <= set(builtin_mappings())

    def test_oneroster_users(self):
        """The OneRoster mapping maps its roles, sms, identity and tobedeleted as the brief says."""
        mapping = load_mapping("oneroster-users")
        assert mapping.name == "oneroster-users"
        assert mapping.delimiter == ","
        assert mapping.columns["sync_key"] == "sourcedId"
        assert mapping.columns["mobile"] == "sms"
        assert "birth_date" not in mapping.columns
        assert mapping.identity == "username"
        assert mapping.delete_when == {"status": frozenset({"tobedeleted"})}
        roles = mapping.value_maps["role"]
        assert (roles["student"], roles["teacher"], roles["aide"], roles["proctor"]) == (
            "Student",
            "Staff",
            "Staff",
            "Staff",
        )
        assert roles["administrator"] == "Administrator"
        assert {roles["parent"], roles["guardian"], roles["relative"]} == {"Carer"}

    def test_generic(self):
        """The generic mapping reads Norwegian headers, dd.mm.yyyy dates and SIS roles."""
        mapping = load_mapping("generic")
        assert mapping.delimiter == "auto"
        assert mapping.encoding == "auto"
        assert mapping.columns["birth_date"] == "Fødselsdato"
        assert mapping.date_formats[0] == "%d.%m.%Y"
        assert dict(mapping.value_maps["role"]) == {
            "elev": "Student",
            "lærer": "Staff",
            "admin": "Administrator",
            "foresatt": "Carer",
        }
        assert {"sync_key", "username", "role"} <= mapping.required

    def test_load_by_path(self, tmp_path):
        """A mapping file is loaded by path, named by its stem, with the documented defaults."""
        path = mapping_file(tmp_path, MINIMAL)
        mapping = load_mapping(path)
        assert (mapping.name, mapping.source) == ("school", str(path))
        assert (mapping.delimiter, mapping.encoding, mapping.identity) == ("auto", "auto", "")
        assert mapping.required == frozenset({"sync_key"})
        assert mapping.date_formats == ("%Y-%m-%d",)
        assert load_mapping(str(path)) == mapping


class TestFormat:
    def test_value_map_keys_ignore_case_and_spaces(self, tmp_path):
        """Value-map keys are stored casefolded and stripped."""
        text = MINIMAL + 'role = "R"\n[values.role]\n" Elev " = "Student"\n'
        assert dict(load_mapping(mapping_file(tmp_path, text)).value_maps["role"]) == {"elev": "Student"}

    def test_role_without_value_map_accepts_ims_role_types(self, tmp_path):
        """A role column without a value map must hold IMS ES role types, in any letter case."""
        mapping = load_mapping(mapping_file(tmp_path, MINIMAL + 'role = "R"\n'))
        assert mapping.value_maps["role"]["carer"] == "Carer"
        assert len(mapping.value_maps["role"]) == len(INSTITUTION_ROLE_TYPES)

    def test_extra_identity_field(self, tmp_path):
        """The identity may be an extra field such as a national id that IMS ES never receives."""
        text = MINIMAL + 'national_id = "Fnr"\n[rules]\nidentity = "national_id"\n'
        mapping = load_mapping(mapping_file(tmp_path, text))
        assert mapping.identity == "national_id"
        assert mapping.required_columns() == frozenset({"sync_key", "national_id"})

    def test_explicit_encoding_is_normalised(self, tmp_path):
        """A codec alias is stored under its canonical name."""
        text = '[csv]\nencoding = "Windows-1252"\n' + MINIMAL
        assert load_mapping(mapping_file(tmp_path, text)).encoding == "cp1252"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[columns]\nsync_key = "ID"\nshoe_size = "9"\n', r"\[columns\.shoe_size\] unknown canonical field"),
        ('[columns]\nusername = "U"\n', r"\[columns\.sync_key\] missing"),
        ('[columns]\nsync_key = ""\n', r"\[columns\.sync_key\] names an empty column"),
        ("[columns]\nsync_key = 5\n", r"\[columns\.sync_key\] must be a string"),
        ("columns = 3\n", r"\[columns\] must be a table"),
        ('[csv]\nencoding = "klingon-8"\n' + MINIMAL, r"\[csv\.encoding\] unknown encoding 'klingon-8'"),
        ('[csv]\ndelimiter = ":"\n' + MINIMAL, r"\[csv\.delimiter\] ':' is not one of"),
        ('[csv]\nquote = "x"\n' + MINIMAL, r"\[csv\.quote\] unknown key"),
        ("[extras]\n" + MINIMAL, r"\[extras\] unknown section"),
        (MINIMAL + '[rules]\ndate_formats = ["dd.mm.yyyy"]\n', r"\[rules\.date_formats\] 'dd\.mm\.yyyy'"),
        (MINIMAL + '[rules]\ndate_formats = ["%d.%m"]\n', r"\[rules\.date_formats\] '%d\.%m'"),
        (MINIMAL + '[rules]\ndate_formats = ["%Q"]\n', r"\[rules\.date_formats\] '%Q'"),
        (MINIMAL + '[rules]\ndate_formats = "%d"\n', r"\[rules\.date_formats\] must be a list of strings"),
        (MINIMAL + '[rules]\nidentity = "username"\n', r"\[rules\.identity\] names 'username'"),
        (MINIMAL + 'password = "P"\n[rules]\nidentity = "password"\n', r"\[rules\.identity\] cannot be"),
        (MINIMAL + '[rules]\nrequired = ["email"]\n', r"\[rules\.required\] names 'email'"),
        (MINIMAL + '[values.role]\nelev = "Student"\n', r"\[values\.role\] 'role' is not mapped"),
        (MINIMAL + 'role = "R"\n[values.role]\nelev = "Pupil"\n', r"\[values\.role\.elev\] 'Pupil' is not"),
        (
            MINIMAL + 'role = "R"\n[values.role]\nElev = "Student"\nelev = "Staff"\n',
            r"\[values\.role\.elev\] is given twice",
        ),
        (MINIMAL + "[values]\nsync_key = {a = 'b'}\n", r"\[values\.sync_key\] sync_key takes no value map"),
        (MINIMAL + '[delete_when]\nstatus = ["x"]\n', r"\[delete_when\.status\] 'status' is not mapped"),
        (MINIMAL + 'status = "S"\n[delete_when]\nstatus = "x"\n', r"\[delete_when\.status\] must be a list"),
        (MINIMAL + 'row = "R"\n[rules]\nidentity = "row"\n', r"\[columns\.row\] is not a usable field name"),
    ],
)
def test_bad_mapping_names_file_and_key(tmp_path, text, message):
    """Every kind of bad mapping is a ConfigError naming the file and the offending key."""
    path = mapping_file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value)


def test_bad_toml_names_the_line(tmp_path):
    """A TOML syntax error is a ConfigError naming the file and the line."""
    path = mapping_file(tmp_path, MINIMAL + "\nrole = \n")
    with pytest.raises(ConfigError, match=r"school\.toml: not valid TOML: .*line 4"):
        load_mapping(path)


def test_unknown_name(tmp_path):
    """A name that is neither a built-in nor a file is a ConfigError listing the built-ins."""
    with pytest.raises(ConfigError, match=r"'no-such' is neither a file nor a built-in.*generic"):
        load_mapping("no-such")


def test_unreadable_file(tmp_path):
    """A mapping file that cannot be decoded is a ConfigError naming it."""
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe[columns]")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_mapping(path)


class TestKinds:
    def test_default_kind_is_persons(self, tmp_path):
        """A mapping without `kind` reads persons, with no constants: every existing mapping is unchanged."""
        mapping = load_mapping(mapping_file(tmp_path, MINIMAL))
        assert (mapping.kind, dict(mapping.constants)) == ("persons", {})
        assert {load_mapping(name).kind for name in ("generic", "oneroster-users")} == {"persons"}

    def test_builtin_group_and_membership_mappings(self):
        """The OneRoster orgs, classes and enrollments mappings map types and roles as documented."""
        assert {
            "oneroster",
            "oneroster-orgs",
            "oneroster-classes",
            "oneroster-enrollments",
            "generic-groups",
            "generic-memberships",
            "generic-set",
        } <= set(builtin_mappings())
        orgs = load_mapping("oneroster-orgs")
        assert (orgs.kind, orgs.identity, orgs.columns["parent"]) == (
            "groups",
            "identifier",
            "parentSourcedId",
        )
        assert orgs.value_maps["type"]["school"] == "School"
        assert {
            orgs.value_maps["type"][t] for t in ("district", "state", "national", "local", "department")
        } == {"Unspecified"}
        assert orgs.delete_when == {"status": frozenset({"tobedeleted"})}
        classes = load_mapping("oneroster-classes")
        assert dict(classes.constants) == {"type": "Course"}
        assert (classes.columns["name"], classes.columns["description"], classes.columns["parent"]) == (
            "title",
            "classCode",
            "schoolSourcedId",
        )
        assert "type" not in classes.required_columns()
        enrollments = load_mapping("oneroster-enrollments")
        assert enrollments.kind == "memberships"
        assert dict(enrollments.value_maps["role"]) == {
            "student": "Learner",
            "teacher": "Instructor",
            "administrator": "Administrator",
            "aide": "TeachingAssistant",
            "proctor": "Mentor",
        }
        assert {"sync_key", "group", "person", "role"} <= enrollments.required
        generic = load_mapping("generic-memberships")
        assert generic.derived_key
        assert "sync_key" not in generic.required_columns()

    def test_builtin_user_orgs(self):
        """oneroster-user-orgs: users.csv's orgSourcedIds split into school memberships, parents skipped."""
        user_orgs = load_mapping("oneroster-user-orgs")
        assert (user_orgs.kind, user_orgs.derived_key) == ("memberships", True)
        assert (user_orgs.columns["group"], user_orgs.columns["person"]) == ("orgSourcedIds", "sourcedId")
        assert user_orgs.split == Split(field="group", separator=",")
        assert user_orgs.skip_unmapped == frozenset({"role"})
        enrollments = load_mapping("oneroster-enrollments")
        assert user_orgs.value_maps["role"] == enrollments.value_maps["role"]
        assert user_orgs.required_columns() == frozenset({"group", "person", "role", "status"})
        assert user_orgs.delete_when == {"status": frozenset({"tobedeleted"})}
        assert (enrollments.split, enrollments.skip_unmapped) == (None, frozenset())

    def test_skip_unmapped_on_persons(self, tmp_path):
        """Any value-mapped column may skip rows; its column becomes required in the header."""
        text = '[columns]\nsync_key = "ID"\nrole = "R"\n[values.role]\nelev = "Student"\n'
        mapping = load_mapping(mapping_file(tmp_path, text + '[rules]\nskip_unmapped = ["role"]\n'))
        assert mapping.skip_unmapped == frozenset({"role"})
        assert mapping.required_columns() == frozenset({"sync_key", "role"})

    def test_membership_role_without_map_accepts_ims_membership_roles(self, tmp_path):
        """A memberships role column without a value map must hold IMS ES membership roleTypes."""
        text = 'kind = "memberships"\n[columns]\ngroup = "G"\nperson = "P"\nrole = "R"\n'
        mapping = load_mapping(mapping_file(tmp_path, text))
        assert mapping.value_maps["role"]["contentdeveloper"] == "ContentDeveloper"
        assert mapping.required == frozenset({"group", "person"})

    def test_constants_are_not_columns(self, tmp_path):
        """A constant is stored stripped, and is never a required header column."""
        text = '[columns]\nsync_key = "ID"\n[constants]\nrole = " Staff "\n[rules]\nrequired = ["role"]\n'
        mapping = load_mapping(mapping_file(tmp_path, text))
        assert dict(mapping.constants) == {"role": "Staff"}
        assert mapping.required_columns() == frozenset({"sync_key"})


GROUPS = 'kind = "groups"\n[columns]\nsync_key = "ID"\n'
MEMBERSHIPS = 'kind = "memberships"\n[columns]\ngroup = "G"\nperson = "P"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'kind = "teachers"\n' + MINIMAL,
            r"\[kind\] 'teachers' is not one of persons, groups, memberships or set",
        ),
        ("kind = 3\n" + MINIMAL, r"\[kind\] must be a string"),
        (
            GROUPS + 'username = "U"\n',
            r"\[columns\.username\] unknown canonical field; known: sync_key, name",
        ),
        (MINIMAL + 'parent = "P"\n', r"\[columns\.parent\] unknown canonical field"),
        (MEMBERSHIPS + 'active = "A"\n', r"\[columns\.active\] unknown canonical field"),
        ('kind = "groups"\n[columns]\nname = "N"\n', r"\[columns\.sync_key\] missing"),
        (
            'kind = "memberships"\n[columns]\ngroup = "G"\n',
            r"\[columns\.person\] missing: a memberships mapping",
        ),
        (MEMBERSHIPS + '[rules]\nidentity = "group"\n', r"\[rules\.identity\] memberships have no identity"),
        (GROUPS + 'parent = "P"\n[rules]\nidentity = "parent"\n', r"\[rules\.identity\] cannot be parent"),
        (
            GROUPS + 'file = "F"\n[rules]\nidentity = "file"\n',
            r"\[columns\.file\] is not a usable field name",
        ),
        (
            GROUPS + 'type = "T"\n[values.type]\nklasse = "Class"\n',
            r"\[values\.type\.klasse\] 'Class' is not an itslearning",
        ),
        (
            GROUPS + 'parent = "P"\n[values.parent]\na = "b"\n',
            r"\[values\.parent\] parent takes no value map",
        ),
        (
            MEMBERSHIPS + 'role = "R"\n[values.role]\nelev = "Student"\n',
            r"\[values\.role\.elev\] 'Student' is not an IMS ES membership roleType; known: Learner",
        ),
        (MEMBERSHIPS + '[values.group]\na = "b"\n', r"\[values\.group\] group takes no value map"),
        (MINIMAL + '[constants]\nshoe_size = "x"\n', r"\[constants\.shoe_size\] unknown canonical field"),
        (GROUPS + '[constants]\nusername = "x"\n', r"\[constants\.username\] unknown canonical field"),
        (MEMBERSHIPS + '[constants]\nactive = "false"\n', r"\[constants\.active\] unknown canonical field"),
        (MINIMAL + '[constants]\nsync_key = "x"\n', r"\[constants\.sync_key\] sync_key cannot be a constant"),
        (MINIMAL + '[constants]\npassword = "x"\n', r"\[constants\.password\] password cannot be a constant"),
        (
            MINIMAL + 'role = "R"\n[constants]\nrole = "Staff"\n',
            r"\[constants\.role\] role is also mapped in",
        ),
        (
            MINIMAL + '[constants]\nrole = "Pupil"\n',
            r"\[constants\.role\] 'Pupil' is not an IMS ES institution",
        ),
        (GROUPS + '[constants]\ntype = "Klasse"\n', r"\[constants\.type\] 'Klasse' is not an itslearning"),
        (MINIMAL + '[constants]\nemail = ""\n', r"\[constants\.email\] is empty"),
        (MINIMAL + "[constants]\nemail = 3\n", r"\[constants\.email\] must be a string"),
        (MINIMAL + '[constants]\nemail = "a\\u0007b"\n', r"\[constants\.email\] must be printable text"),
        (GROUPS + f'[constants]\nparent = "{"p" * 65}"\n', r"\[constants\.parent\] holds a sync key"),
        ("constants = 1\n" + MINIMAL, r"\[constants\] must be a table"),
        (
            'kind = "memberships"\n[columns]\nrole = "R"\n[constants]\ngroup = "g"\nperson = "p"\n',
            r"\[constants\.person\] group and person cannot both be constants",
        ),
        (GROUPS + '[rules]\nrequired = ["type"]\n', r"\[rules\.required\] names 'type'"),
        (
            GROUPS + 'parent = "P"\n[rules]\nsplit = { field = "parent", separator = "," }\n',
            r"\[rules\.split\] only a memberships mapping can split",
        ),
        (MEMBERSHIPS + '[rules]\nsplit = "group"\n', r"\[rules\.split\] must be a table"),
        (
            MEMBERSHIPS + 'role = "R"\n[rules]\nsplit = { field = "role", separator = "," }\n',
            r"\[rules\.split\.field\] 'role' cannot be split; only group or person",
        ),
        (
            MEMBERSHIPS + '[rules]\nsplit = { field = "group", separator = " " }\n',
            r"\[rules\.split\.separator\] must be a printable, non-blank string",
        ),
        (
            MEMBERSHIPS + '[rules]\nsplit = { field = "group" }\n',
            r"\[rules\.split\.separator\] must be a printable",
        ),
        (
            MEMBERSHIPS + '[rules]\nsplit = { field = "group", separator = ",", max = 3 }\n',
            r"\[rules\.split\.max\] unknown key; known: field, separator",
        ),
        (
            MEMBERSHIPS + 'sync_key = "ID"\n[rules]\nsplit = { field = "group", separator = "," }\n',
            r"\[rules\.split\] a split row makes several memberships.*remove columns\.sync_key",
        ),
        (
            'kind = "memberships"\n[columns]\nperson = "P"\n[constants]\ngroup = "g"\n'
            '[rules]\nsplit = { field = "group", separator = "," }\n',
            r"\[rules\.split\.field\] names 'group', which \[columns\] does not map",
        ),
        (MEMBERSHIPS + '[rules]\nskip_unmapped = "role"\n', r"\[rules\.skip_unmapped\] must be a list"),
        (MEMBERSHIPS + '[rules]\nskip_unmapped = ["role"]\n', r"\[rules\.skip_unmapped\] names 'role'"),
        (
            MEMBERSHIPS + '[rules]\nskip_unmapped = ["group"]\n',
            r"\[rules\.skip_unmapped\] names 'group', which has no value map",
        ),
    ],
)
def test_bad_kind_mapping_names_file_and_key(tmp_path, text, message):
    """Every kind, constant and role-target error is a ConfigError naming the file and the key."""
    path = mapping_file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"mapping {path}: [")
