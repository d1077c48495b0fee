"""Tests for set mappings and `read_roster_set`: folders, missing and optional files, the samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from sync.errors import ConfigError, RosterError
from sync.read.mapping import SetMapping, load_any_mapping, load_mapping
from sync.read.roster import FRAME_COLUMNS, GROUP_FRAME_COLUMNS, MEMBERSHIP_FRAME_COLUMNS
from sync.read.roster_set import RosterSet, read_roster_set

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
BASE = SAMPLES / "oneroster"
CHANGED = SAMPLES / "oneroster-changed"
FILES = ("users.csv", "orgs.csv", "classes.csv", "enrollments.csv")


def folder(tmp_path: Path, *names: str) -> Path:
    """A copy of the base sample folder holding only `names`."""
    target = tmp_path / "export"
    target.mkdir()
    for name in names:
        shutil.copy(BASE / name, target / name)
    return target


class TestSamples:
    def test_base_set_reads_clean(self):
        """The OneRoster sample folder reads end to end with zero rejects."""
        roster_set = read_roster_set(BASE, "oneroster")
        assert roster_set.rejects == ()
        assert tuple(roster_set.persons.frame.columns) == FRAME_COLUMNS
        assert roster_set.groups is not None
        assert roster_set.memberships is not None
        assert tuple(roster_set.groups.frame.columns) == GROUP_FRAME_COLUMNS
        assert tuple(roster_set.memberships.frame.columns) == MEMBERSHIP_FRAME_COLUMNS
        assert roster_set.groups.file == f"{BASE / 'orgs.csv'}, {BASE / 'classes.csv'}"
        groups = roster_set.groups.frame
        assert len(groups) == 9
        assert groups.loc["org-bergvik", "type"] == "Unspecified"
        assert groups.loc["org-ravnaas", "parent"] == "org-bergvik"
        assert set(groups.loc[groups["file"] == str(BASE / "classes.csv"), "type"]) == {"Course"}

    def test_samples_are_consistent(self):
        """Every membership names a sample class and person; every student and teacher is in 1-3 classes."""
        roster_set = read_roster_set(BASE, "oneroster")
        assert roster_set.groups is not None
        assert roster_set.memberships is not None
        persons, groups, members = (
            roster_set.persons.frame,
            roster_set.groups.frame,
            roster_set.memberships.frame,
        )
        assert set(members["group"]) <= set(groups.index)
        assert set(members["person"]) <= set(persons.index)
        assert set(groups["parent"]) - {""} <= set(groups.index)
        in_class = members["file"] == str(BASE / "enrollments.csv")
        counts = members[in_class].groupby("person").size()
        for key in persons.index[persons["role"].isin(["Student"])]:
            assert 1 <= counts.get(key, 0) <= 3, key
        teachers = ["usr-1019", "usr-1020", "usr-1021"]
        assert all(1 <= counts[key] <= 3 for key in teachers)
        # Everybody but the parent and the guardian belongs to the school (users.csv's orgSourcedIds).
        schools = members[~in_class]
        assert set(schools["group"]) == {"org-ravnaas"}
        assert set(persons.index) - set(schools["person"]) == {"usr-1024", "usr-1025"}
        assert (schools.index == schools["group"] + ":" + schools["person"]).all()
        assert schools.at["org-ravnaas:usr-1023", "role"] == "Administrator"
        assert schools.at["org-ravnaas:usr-1022", "role"] == "TeachingAssistant"

    def test_changed_set(self):
        """The changed folder: a class renamed, one removed with its enrollments, one new, a role change."""
        base = read_roster_set(BASE, "oneroster")
        changed = read_roster_set(CHANGED, "oneroster")
        assert (CHANGED / "users.csv").read_bytes() == (BASE / "users-changed.csv").read_bytes()
        assert [(r.row, r.field) for r in changed.rejects] == [(27, "role")]  # the janitor of users-changed
        assert base.groups is not None
        assert changed.groups is not None
        assert base.memberships is not None
        assert changed.memberships is not None
        old, new = base.groups.frame, changed.groups.frame
        assert set(old.index) - set(new.index) == {"cls-kor"}
        assert set(new.index) - set(old.index) == {"cls-nat6"}
        assert (old.at["cls-mat7", "name"], new.at["cls-mat7", "name"]) == (
            "Matematikk 7",
            "Matematikk 7 (fordypning)",
        )
        members = changed.memberships.frame
        assert "cls-kor" not in set(members["group"])
        assert set(members["person"]) <= set(changed.persons.frame.index)
        assert members.loc["enr-eng6-1020", "role"] == "TeachingAssistant"
        assert base.memberships.frame.loc["enr-eng6-1020", "role"] == "Instructor"
        # Ida teaches at Lia skole too now ("org-ravnaas,org-lia"); the janitor (rejected as a person)
        # and the leaver have no school membership; the newcomer has one; Nora's follows her new
        # sourcedId.
        assert members.loc["org-lia:usr-1019", "role"] == "Instructor"
        assert "org-lia:usr-1019" not in base.memberships.frame.index
        assert not members["person"].isin(["usr-1008", "usr-1027"]).any()
        assert members.loc["org-ravnaas:usr-1026", "role"] == "Learner"  # the newcomer
        assert "org-ravnaas:usr-2005" in members.index


class TestSetFolder:
    def test_file_instead_of_folder(self):
        """A set mapping with a file path says which folder it needs."""
        with pytest.raises(RosterError) as caught:
            read_roster_set(BASE / "users.csv", "oneroster")
        assert str(caught.value).startswith(
            "oneroster is a set mapping: give the folder holding users.csv, demographics.csv, orgs.csv, "
            "classes.csv and enrollments.csv"
        )

    def test_missing_file_is_named(self, tmp_path):
        """A file the set names that the folder lacks is an error naming it (all of them)."""
        path = folder(tmp_path, "users.csv", "orgs.csv")
        with pytest.raises(RosterError, match=r"classes\.csv and enrollments\.csv are missing") as caught:
            read_roster_set(path, "oneroster")
        assert str(path) in str(caught.value)

    def test_optional_file_may_be_missing(self, tmp_path):
        """An optional file may be missing: its kind is then None (left alone), or contributes nothing."""
        mapping = tmp_path / "set.toml"
        mapping.write_text(
            'kind = "set"\n[persons]\nfile = "users.csv"\nmapping = "oneroster-users"\n'
            '[[groups]]\nfile = "orgs.csv"\nmapping = "oneroster-orgs"\n'
            '[[groups]]\nfile = "classes.csv"\nmapping = "oneroster-classes"\noptional = true\n'
            '[memberships]\nfile = "enrollments.csv"\nmapping = "oneroster-enrollments"\noptional = true\n'
        )
        path = folder(tmp_path, "users.csv", "orgs.csv")
        roster_set = read_roster_set(path, mapping)
        assert roster_set.memberships is None
        assert roster_set.groups is not None
        assert list(roster_set.groups.frame.index) == ["org-bergvik", "org-ravnaas", "org-lia"]
        assert roster_set.groups.file == str(path / "orgs.csv")
        shutil.copy(BASE / "enrollments.csv", path / "enrollments.csv")
        assert read_roster_set(path, mapping).memberships is not None

    def test_several_membership_files(self, tmp_path):
        """[[memberships]] files are read into one roster; a missing optional one contributes nothing,
        and a file read by two entries is named once when missing."""
        mapping = tmp_path / "set.toml"
        mapping.write_text(
            'kind = "set"\n[persons]\nfile = "users.csv"\nmapping = "oneroster-users"\n'
            '[[groups]]\nfile = "orgs.csv"\nmapping = "oneroster-orgs"\n'
            '[[memberships]]\nfile = "enrollments.csv"\nmapping = "oneroster-enrollments"\noptional = true\n'
            '[[memberships]]\nfile = "users.csv"\nmapping = "oneroster-user-orgs"\n'
        )
        path = folder(tmp_path, "users.csv", "orgs.csv")
        roster_set = read_roster_set(path, mapping)
        assert roster_set.rejects == ()
        assert roster_set.memberships is not None
        assert roster_set.memberships.file == str(path / "users.csv")
        assert len(roster_set.memberships.frame) == 23  # everybody but the parent and the guardian
        shutil.copy(BASE / "enrollments.csv", path / "enrollments.csv")
        both = read_roster_set(path, mapping).memberships
        assert both is not None
        assert both.file == f"{path / 'enrollments.csv'}, {path / 'users.csv'}"
        assert len(both.frame) == 23 + len(pd.read_csv(BASE / "enrollments.csv"))
        (path / "users.csv").unlink()
        with pytest.raises(
            RosterError, match=r": users\.csv is missing \(set mapping set names users\.csv, "
        ):
            read_roster_set(path, mapping)

    def test_file_names_ignore_letter_case(self, tmp_path):
        """An export that writes Users.csv is found by a set that names users.csv."""
        path = folder(tmp_path, *FILES[1:])
        shutil.copy(BASE / "users.csv", path / "Users.CSV")
        assert read_roster_set(path, "oneroster").persons.file == str(path / "Users.CSV")

    def test_persons_mapping_reads_one_file(self):
        """With a persons mapping the path is the CSV, and the set holds persons only."""
        roster_set = read_roster_set(BASE / "users.csv", "oneroster-users")
        assert isinstance(roster_set, RosterSet)
        assert (roster_set.groups, roster_set.memberships) == (None, None)
        assert len(roster_set.persons.frame) == 25
        with pytest.raises(RosterError, match="is a folder; mapping oneroster-users reads one persons CSV"):
            read_roster_set(BASE, "oneroster-users")

    def test_groups_mapping_alone_is_refused(self):
        """A groups or memberships mapping cannot make a set on its own (persons are always read)."""
        with pytest.raises(ConfigError, match="reads groups; give a persons mapping or a set mapping"):
            read_roster_set(BASE / "orgs.csv", "oneroster-orgs")

    def test_rejects_of_every_kind(self, tmp_path):
        """RosterSet.rejects holds persons', groups' and memberships' rejects, each naming its file."""
        path = folder(tmp_path, *FILES)
        with (path / "classes.csv").open("a", encoding="utf-8") as fh:
            fh.write("org-lia,active,,Clash,,,,,,org-ravnaas,,,,\n")  # a key orgs.csv holds too
        with (path / "enrollments.csv").open("a", encoding="utf-8") as fh:
            fh.write("enr-x,active,,cls-5a,org-ravnaas,usr-1025,guardian,false,,\n")
        roster_set = read_roster_set(path, "oneroster")
        assert [(Path(r.file).name, r.row, r.field) for r in roster_set.rejects] == [
            ("orgs.csv", 4, "sync_key"),
            ("classes.csv", 8, "sync_key"),
            ("enrollments.csv", 41, "role"),
        ]


class TestSetMappingFile:
    def test_builtin_sets_load(self):
        """The built-in sets name their files and load the mappings of each."""
        oneroster = load_any_mapping("oneroster")
        assert isinstance(oneroster, SetMapping)
        # demographics.csv is joined to users.csv (optional), then come the groups and memberships.
        assert [entry.file for entry in oneroster.entries] == [
            "users.csv",
            "demographics.csv",
            *FILES[1:],
            "users.csv",
        ]
        assert oneroster.files == ("users.csv", "demographics.csv", *FILES[1:])
        assert [entry.mapping.kind for entry in oneroster.entries] == [
            "persons",
            "persons",
            "groups",
            "groups",
            "memberships",
            "memberships",
        ]
        assert [entry.mapping.name for entry in oneroster.memberships] == [
            "oneroster-enrollments",
            "oneroster-user-orgs",
        ]
        generic = load_any_mapping("generic-set")
        assert isinstance(generic, SetMapping)
        assert len(generic.memberships) == 1
        assert generic.memberships[0].optional

    def test_load_mapping_refuses_a_set(self):
        """load_mapping (one CSV) explains that a set needs a folder."""
        with pytest.raises(
            ConfigError, match=r"oneroster is a set mapping: give the folder holding users\.csv"
        ):
            load_mapping("oneroster")

    def test_mapping_names_resolve_next_to_the_set(self, tmp_path):
        """A set's mapping names are built-ins or files beside it, with or without .toml."""
        (tmp_path / "mine.toml").write_text('[columns]\nsync_key = "sourcedId"\n')
        (tmp_path / "set.toml").write_text('kind = "set"\n[persons]\nfile = "users.csv"\nmapping = "mine"\n')
        mapping = load_any_mapping(tmp_path / "set.toml")
        assert isinstance(mapping, SetMapping)
        assert mapping.persons.mapping.source == str(tmp_path / "mine.toml")
        assert read_roster_set(BASE, tmp_path / "set.toml").groups is None

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('kind = "set"\n', r"\[persons\] missing"),
            (
                'kind = "set"\nextra = 1\n[persons]\nfile = "u.csv"\nmapping = "generic"\n',
                r"\[extra\] unknown section",
            ),
            ('kind = "set"\n[persons]\nfile = "u.csv"\n', r"\[persons\.mapping\] missing"),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "generic"\nwho = 1\n',
                r"\[persons\.who\] unknown key",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "nope"\n',
                r"\[persons\.mapping\] 'nope' is neither",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "oneroster-orgs"\n',
                r"\[persons\.mapping\] 'oneroster-orgs' is a groups mapping; this entry needs a persons",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "generic"\n'
                '[[groups]]\nfile = "g.csv"\nmapping = "generic-memberships"\n',
                r"\[groups\.1\.mapping\] 'generic-memberships' is a memberships mapping",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "oneroster"\n',
                r"\[persons\.mapping\] 'oneroster' is a set mapping",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "generic"\noptional = true\n',
                r"\[persons\.optional\] the persons file cannot be optional",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "generic"\noptional = "yes"\n',
                r"\[persons\.optional\] must be true or false",
            ),
            (
                'kind = "set"\n[persons]\nfile = "/etc/u.csv"\nmapping = "generic"\n',
                r"\[persons\.file\] '/etc/u\.csv'",
            ),
            (
                'kind = "set"\n[persons]\nfile = "../u.csv"\nmapping = "generic"\n',
                r"\[persons\.file\] '\.\./u\.csv'",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "generic"\n'
                '[[memberships]]\nfile = "m.csv"\nmapping = "generic-memberships"\n'
                '[[memberships]]\nfile = "M.csv"\nmapping = "generic-memberships"\n',
                r"\[memberships\.2\.file\] 'M\.csv' is also the file of \[memberships\.1\]",
            ),
            (
                'kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "generic"\n'
                '[[groups]]\nfile = "g.csv"\nmapping = "generic-groups"\n'
                '[[groups]]\nfile = "G.csv"\nmapping = "generic-groups"\n',
                r"\[groups\.2\.file\] 'G\.csv' is also the file of \[groups\.1\]",
            ),
            (
                'kind = "set"\nmemberships = 3\n[persons]\nfile = "u.csv"\nmapping = "generic"\n',
                r"\[memberships\] must be a table or an array of tables",
            ),
            (
                'kind = "set"\ngroups = 3\n[persons]\nfile = "u.csv"\nmapping = "generic"\n',
                r"\[groups\] must be",
            ),
            ('kind = "set"\npersons = "users.csv"\n', r"\[persons\] must be a table"),
        ],
    )
    def test_bad_set_mapping_names_file_and_key(self, tmp_path, text, message):
        """Every kind of bad set mapping is a ConfigError naming the file and the key."""
        path = tmp_path / "set.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message) as caught:
            load_any_mapping(path)
        assert str(caught.value).startswith(f"mapping {path}: [")

    def test_set_naming_itself(self, tmp_path):
        """A set whose entry names the set's own file is refused, not recursed into."""
        path = tmp_path / "set.toml"
        path.write_text('kind = "set"\n[persons]\nfile = "u.csv"\nmapping = "set"\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=r"\[persons\.mapping\] names this set mapping itself"):
            load_any_mapping(path)
