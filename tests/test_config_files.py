"""Bad mapping files and bad config or credentials files: a ConfigError naming the file and key, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.cli.app import main
from sync.cli.config import load_config_file, load_credentials
from sync.cli.output import EXIT_USAGE
from sync.errors import ConfigError
from sync.read.mapping import load_mapping

ROSTER = Path(__file__).resolve().parents[1] / "samples" / "oneroster" / "users.csv"
MINIMAL = '[columns]\nsync_key = "ID"\n'

# name -> (mapping text, the "[key]" the message must name, a text the message must hold)
BAD_MAPPINGS: dict[str, tuple[str | bytes, str, str]] = {
    "bad-toml": ('[columns\nsync_key = "x"\n', "", "not valid TOML: Expected ']'"),
    "not-utf8": (b'[columns]\nsync_key = "\xff"\n', "", "not UTF-8 text"),
    "empty": ("", "[columns.sync_key]", "every mapping must name the sync key column"),
    "unknown-section": ('[colums]\nsync_key = "ID"\n', "[colums]", "unknown section"),
    "unknown-csv-key": ('[csv]\ndelimter = ";"\n' + MINIMAL, "[csv.delimter]", "unknown key"),
    "bad-delimiter": ('[csv]\ndelimiter = "::"\n' + MINIMAL, "[csv.delimiter]", "'::' is not one of"),
    "unknown-encoding": ('[csv]\nencoding = "klingon"\n' + MINIMAL, "[csv.encoding]", "unknown encoding"),
    "unknown-field": (MINIMAL + 'shoe_size = "Size"\n', "[columns.shoe_size]", "unknown canonical field"),
    "column-not-string": ("[columns]\nsync_key = 5\n", "[columns.sync_key]", "must be a string, not int"),
    "column-blank": ('[columns]\nsync_key = "  "\n', "[columns.sync_key]", "names an empty column"),
    "columns-not-table": ('columns = "ID"\n', "[columns]", "must be a table"),
    "identity-unmapped": (MINIMAL + '[rules]\nidentity = "email"\n', "[rules.identity]", "does not map"),
    "identity-password": (
        MINIMAL + 'password = "P"\n[rules]\nidentity = "password"\n',
        "[rules.identity]",
        "cannot be the password",
    ),
    "identity-reserved": (
        MINIMAL + 'row = "R"\n[rules]\nidentity = "row"\n',
        "[columns.row]",
        "not a usable",
    ),
    "required-not-list": (
        MINIMAL + '[rules]\nrequired = "username"\n',
        "[rules.required]",
        "list of strings",
    ),
    "required-unmapped": (MINIMAL + '[rules]\nrequired = ["username"]\n', "[rules.required]", "does not map"),
    "role-not-ims": (
        MINIMAL + 'role = "R"\n[values.role]\nelev = "Pupil"\n',
        "[values.role.elev]",
        "'Pupil' is not an IMS ES institutionRoleType",
    ),
    "value-map-not-table": (MINIMAL + 'role = "R"\n[values]\nrole = "Student"\n', "[values.role]", "a table"),
    "value-map-unmapped": (MINIMAL + '[values.role]\nelev = "Student"\n', "[values.role]", "not mapped"),
    "value-twice": (
        MINIMAL + 'role = "R"\n[values.role]\nElev = "Student"\nelev = "Staff"\n',
        "[values.role.elev]",
        "given twice",
    ),
    "date-without-year": (MINIMAL + '[rules]\ndate_formats = ["%d.%m"]\n', "[rules.date_formats]", "'%d.%m'"),
    "delete-on-sync-key": (
        MINIMAL + '[delete_when]\nsync_key = ["x"]\n',
        "[delete_when.sync_key]",
        "cannot mark deletions",
    ),
    "delete-when-not-list": (
        MINIMAL + 'status = "S"\n[delete_when]\nstatus = "gone"\n',
        "[delete_when.status]",
        "list of strings",
    ),
}


def write(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    """Write a file byte for byte with the given permission bits and return its path."""
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    path.chmod(mode)
    return path


class TestBadMappings:
    @pytest.mark.parametrize("name", sorted(BAD_MAPPINGS))
    def test_bad_mapping_names_file_and_key(self, tmp_path: Path, name: str):
        """Each bad mapping is a ConfigError naming the file, the key and the problem."""
        content, key, text = BAD_MAPPINGS[name]
        path = write(tmp_path / f"{name}.toml", content)
        with pytest.raises(ConfigError) as caught:
            load_mapping(path)
        message = str(caught.value)
        assert message.startswith(f"mapping {path}: ")
        assert key in message
        assert text in message

    @pytest.mark.parametrize("name", ["bad-toml", "role-not-ims", "unknown-csv-key"])
    def test_bad_mapping_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str):
        """`ims-sync validate` with a bad mapping exits 2 with the message on stderr and no traceback."""
        content, key, text = BAD_MAPPINGS[name]
        path = write(tmp_path / f"{name}.toml", content)
        assert main(["validate", str(ROSTER), "--mapping", str(path)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"mapping {path}: {key}" in err
        assert text.replace("'", "") in err.replace("'", "")
        assert "Traceback" not in err

    def test_missing_mapping_lists_the_builtins(self, tmp_path: Path):
        """A mapping that is neither a file nor a built-in names what was given and the built-ins."""
        with pytest.raises(ConfigError, match=r"'nope' is neither a file nor a built-in \(.*oneroster-users"):
            load_mapping("nope")
        with pytest.raises(ConfigError, match="neither a file"):
            load_mapping(tmp_path)  # a directory

    def test_byte_order_mark_is_accepted(self, tmp_path: Path):
        """A mapping saved by Notepad (UTF-8 with a byte-order mark) loads like one without."""
        path = write(tmp_path / "bom.toml", "\ufeff" + MINIMAL)
        assert load_mapping(path).columns == {"sync_key": "ID"}


class TestBadConfigFiles:
    def test_unknown_key_is_named(self, tmp_path: Path):
        """A misspelt option in [sync] is named, with the known ones."""
        path = write(tmp_path / "c.toml", '[sync]\nstate = "/x"\nconcurency = 5\n')
        with pytest.raises(ConfigError, match=r"c\.toml: unknown key\(s\) \['concurency'\] in \[sync\]"):
            load_config_file(path)

    def test_unknown_table_is_named(self, tmp_path: Path):
        """A misspelt table is named, with the expected ones."""
        path = write(tmp_path / "c.toml", '[synk]\nstate = "/x"\n')
        with pytest.raises(
            ConfigError, match=r"unknown table\(s\) \['synk'\]; expected \[sync\], \[credentials\]"
        ):
            load_config_file(path)

    def test_bad_toml_names_line_and_column(self, tmp_path: Path):
        """Broken TOML is named with tomllib's line and column."""
        path = write(tmp_path / "c.toml", "[sync\n")
        with pytest.raises(ConfigError, match=r"c\.toml is not valid TOML: .*\(at line 1, column 6\)"):
            load_config_file(path)

    @pytest.mark.parametrize(
        ("written", "read"),
        [("true", "delete"), ("false", "off"), ('"deactivate"', "deactivate"), ('"delete"', "delete")],
    )
    def test_deletes_takes_a_mode_or_the_older_boolean(self, tmp_path: Path, written: str, read: str):
        """`deletes = true/false` (configs written before the modes) keeps meaning delete/off."""
        path = write(tmp_path / "c.toml", f"[sync]\ndeletes = {written}\n")
        assert load_config_file(path)["deletes"] == read

    @pytest.mark.parametrize("written", ['"yes"', "1", '"Delete"'])
    def test_an_unknown_deletes_mode_is_named(self, tmp_path: Path, written: str):
        path = write(tmp_path / "c.toml", f"[sync]\ndeletes = {written}\n")
        with pytest.raises(
            ConfigError, match=r"c\.toml: \[sync\] deletes = .*expected one of off, deactivate, delete"
        ):
            load_config_file(path)

    def test_missing_config_file(self, tmp_path: Path):
        """A config file that does not exist is named."""
        with pytest.raises(ConfigError, match=r"config file .*nope\.toml does not exist"):
            load_config_file(tmp_path / "nope.toml")

    def test_extra_credentials_key_is_refused(self, tmp_path: Path):
        """[credentials] takes only username and password; the stray key is named."""
        path = write(tmp_path / "c.toml", '[credentials]\nusername = "u"\npassword = "p"\ntoken = "t"\n')
        with pytest.raises(ConfigError, match=r"c\.toml: unknown key\(s\) \['token'\] in \[credentials\]"):
            load_config_file(path)

    def test_non_string_password_is_refused(self, tmp_path: Path):
        """A password that is not a string (e.g. a number) is a ConfigError, not silently converted."""
        path = write(tmp_path / "c.toml", '[credentials]\nusername = "u"\npassword = 5\n', 0o600)
        with pytest.raises(ConfigError, match="must be strings"):
            load_config_file(path)

    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o660], ids=["group", "others", "group-write"])
    def test_password_in_readable_config_is_refused(self, tmp_path: Path, mode: int):
        """A config file holding a password that group or others can read is refused, with the fix."""
        path = write(
            tmp_path / "c.toml", '[credentials]\nusername = "u"\npassword = "Hunter2-secret"\n', mode
        )
        with pytest.raises(ConfigError) as caught:
            load_config_file(path)
        message = str(caught.value)
        assert f"{path} holds a password but can be read by others" in message
        assert f"chmod 600 {path}" in message
        assert "Hunter2" not in message

    def test_username_only_config_may_be_readable(self, tmp_path: Path):
        """Without a password, a readable config file with a username is fine."""
        path = write(tmp_path / "c.toml", '[sync]\nstate = "/x"\n[credentials]\nusername = "u"\n', 0o644)
        assert load_config_file(path)["_credentials"] == {"username": "u"}

    def test_readable_credentials_file_is_refused(self, tmp_path: Path):
        """A credentials file readable by group is refused even when it is complete."""
        path = write(tmp_path / "cred.toml", 'username = "u"\npassword = "Hunter2-secret"\n', 0o640)
        with pytest.raises(ConfigError, match="can be read by others") as caught:
            load_credentials(environ={}, credentials_file=path)
        assert "Hunter2" not in str(caught.value)

    def test_owner_only_credentials_file_is_read(self, tmp_path: Path):
        """An owner-only credentials file gives the credentials, and their repr hides the password."""
        path = write(tmp_path / "cred.toml", '[credentials]\nusername = "u"\npassword = "Hunter2-secret"\n')
        credentials = load_credentials(environ={}, credentials_file=path)
        assert (credentials.username, credentials.password) == ("u", "Hunter2-secret")
        assert "Hunter2" not in repr(credentials)

    def test_incomplete_credentials_say_where_to_put_them(self, tmp_path: Path):
        """A username without a password anywhere is a ConfigError naming the ways to give both."""
        path = write(tmp_path / "cred.toml", 'username = "u"\n')
        with pytest.raises(
            ConfigError, match="no IMS ES credentials: set IMS_ES_USERNAME and IMS_ES_PASSWORD"
        ):
            load_credentials(environ={"IMS_ES_USERNAME": "u"}, credentials_file=path)


class TestConfigThroughTheCommandLine:
    @pytest.mark.parametrize(
        ("content", "mode", "text"),
        [
            ("[sync]\nconcurency = 5\n", 0o600, "unknown key(s) ['concurency'] in [sync]"),
            ("[sync\n", 0o600, "is not valid TOML"),
            ('[credentials]\nusername = "u"\npassword = "Hunter2-secret"\n', 0o644, "can be read by others"),
        ],
        ids=["unknown-key", "bad-toml", "readable-password"],
    )
    def test_bad_config_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, mode: int, text: str
    ):
        """`--config` with a bad file exits 2, naming the file and the problem, without a traceback."""
        path = write(tmp_path / "c.toml", content, mode)
        code = main(["--config", str(path), "validate", str(ROSTER), "--mapping", "oneroster-users"])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE
        assert str(path) in err
        assert text in err
        assert "Traceback" not in err
        assert "Hunter2" not in err

    def test_bad_option_value_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """A config value of the wrong type is refused by the option it sets (exit 2), before any network."""
        path = write(tmp_path / "c.toml", '[sync]\nconcurrency = "ten"\n')
        code = main(
            [
                "--config",
                str(path),
                "run",
                str(ROSTER),
                "--mapping",
                "oneroster-users",
                "--state",
                str(tmp_path / "state"),
                "--endpoint",
                "https://127.0.0.1:9/PersonManagementService.svc",
            ]
        )
        err = capsys.readouterr().err
        assert code == EXIT_USAGE
        assert "concurrency" in err
        assert "'ten'" in err

    def test_readable_credentials_file_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ):
        """`run --credentials-file` with a group-readable file exits 2 before reading the roster."""
        monkeypatch.delenv("IMS_ES_USERNAME", raising=False)
        monkeypatch.delenv("IMS_ES_PASSWORD", raising=False)
        cred = write(tmp_path / "cred.toml", 'username = "u"\npassword = "Hunter2-secret"\n', 0o640)
        code = main(
            [
                "run",
                str(ROSTER),
                "--mapping",
                "oneroster-users",
                "--state",
                str(tmp_path / "state"),
                "--endpoint",
                "https://127.0.0.1:9/PersonManagementService.svc",
                "--credentials-file",
                str(cred),
            ]
        )
        err = capsys.readouterr().err
        assert code == EXIT_USAGE
        assert f"{cred} holds a password but can be read by others" in err
        assert "Hunter2" not in err
        assert not (tmp_path / "state").exists()

    def test_sync_that_is_not_a_table_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """`sync = 3` instead of a [sync] table is a ConfigError (exit 2), not a TypeError."""
        path = write(tmp_path / "c.toml", "sync = 3\n")
        code = main(["--config", str(path), "validate", str(ROSTER), "--mapping", "oneroster-users"])
        assert code == EXIT_USAGE
        assert "[sync]" in capsys.readouterr().err

    def test_config_that_is_not_utf8_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """A config file that is not UTF-8 is a ConfigError naming it (exit 2)."""
        path = write(tmp_path / "c.toml", b'[sync]\nstate = "\xff"\n')
        code = main(["--config", str(path), "validate", str(ROSTER), "--mapping", "oneroster-users"])
        assert code == EXIT_USAGE
        assert str(path) in capsys.readouterr().err
