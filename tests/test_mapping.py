"""Tests for mapping files: the built-ins, the TOML format, and every ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.errors import ConfigError
from sync.mapping import INSTITUTION_ROLE_TYPES, builtin_mappings, load_mapping

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
        ('[columns]\nsync_key = "ID"\nnickname = "Nick"\n', r"\[columns\.nickname\] unknown canonical field"),
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
