"""Bad input to the administrative commands: one `error:` line, exit status 1 or 2, no traceback
and nothing written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tapgate.cli.main import cli
from tests.support import TAPGATE, Server, cli_env

OBJECTS = """
auth_profiles:
  - {name: personel, type: local}
"""
PASSWORD = "Parola-2026!"
# What Python makes of the argument bytes b"ay\xfee": 0xfe is never valid in UTF-8, so it
# becomes the lone surrogate U+DCFE.
BAD_TEXT = b"ay\xfee".decode("utf-8", "surrogateescape")
BAD_SHOWN = "is not valid UTF-8 (byte 0xfe at character 3); pass it as UTF-8 text"
BAD_PASSWORD = b"Parola-\xff\xfe-2026\n"


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    """Return the settings file of a database with one local user, deniz; no server runs."""
    server = Server(tmp_path, db_url)
    server.write_settings()
    server.cli("db", "upgrade")
    server.apply(OBJECTS)
    server.cli(
        "user", "add", "deniz", "--auth-profile", "personel", "--password-stdin", stdin=PASSWORD
    )
    return server.config


def invoke(config: Path, args: list[str], stdin: bytes | None = None) -> Result:
    # Without catching, an unexpected exception fails the test with its traceback.
    return CliRunner().invoke(
        cli, [*args, "--config", str(config)], input=stdin, catch_exceptions=False
    )


def stored_state(config: Path) -> tuple[int, list[str]]:
    """Return the number of audit records and the names of the local users.

    Every command under test that writes (user add, set-password, admin create and password,
    client add) also adds an audit record.
    """
    records = json.loads(invoke(config, ["audit", "--json"]).stdout)
    users = json.loads(invoke(config, ["user", "list", "--json"]).stdout)
    return len(records), [u["username"] for u in users]


@pytest.mark.parametrize(
    ("args", "label"),
    [
        pytest.param(
            ["user", "add", BAD_TEXT, "--auth-profile", "personel"], "USERNAME", id="user add"
        ),
        pytest.param(["user", "show", BAD_TEXT], "USERNAME", id="user show"),
        pytest.param(
            ["user", "disable", BAD_TEXT, "--auth-profile", "personel"],
            "USERNAME",
            id="user disable",
        ),
        pytest.param(["user", "unlock", BAD_TEXT], "USERNAME", id="user unlock"),
        pytest.param(["enroll", BAD_TEXT], "USERNAME", id="enroll"),
        pytest.param(["device", "list", BAD_TEXT], "USERNAME", id="device list"),
        pytest.param(["policy", "explain", BAD_TEXT], "USERNAME", id="policy explain"),
        pytest.param(["admin", "disable", BAD_TEXT], "NAME", id="admin disable"),
        pytest.param(["client", "add", BAD_TEXT], "APPLICATION", id="client add"),
        pytest.param(
            ["user", "add", "ece", "--auth-profile", "personel", "--first-name", BAD_TEXT],
            "--first-name",
            id="option",
        ),
        pytest.param(
            [
                "user",
                "add",
                "ece",
                "--auth-profile",
                "personel",
                "--group",
                "ok",
                "--group",
                BAD_TEXT,
            ],
            "--group",
            id="repeated option",
        ),
        pytest.param(["audit", "--user", BAD_TEXT], "--user", id="audit --user"),
    ],
)
def test_non_utf8_argument_rejected(config: Path, args: list[str], label: str) -> None:
    before = stored_state(config)

    result = invoke(config, args)

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {label} {BAD_SHOWN} (check the character encoding of the terminal or script)\n"
    )
    assert result.stdout == ""
    assert stored_state(config) == before


def test_non_utf8_argument_from_shell(config: Path) -> None:
    # A real process, so that Python itself decodes the argument bytes.
    result = subprocess.run(
        [*TAPGATE, "user", "add", b"ay\xfee", "--auth-profile", "personel", "--config", config],
        capture_output=True,
        env=cli_env(),
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"error: USERNAME {BAD_SHOWN}")
    assert stored_state(config)[1] == ["deniz"]


@pytest.mark.parametrize(
    "args",
    [
        ["user", "add", "ece", "--auth-profile", "personel", "--password-stdin"],
        ["user", "set-password", "deniz", "--auth-profile", "personel"],
        ["admin", "create", "yonetici", "--password-stdin"],
        ["admin", "password", "yonetici", "--password-stdin"],
        ["auth-profile", "test", "personel", "deniz", "--password-stdin"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_non_utf8_password_stdin_rejected(config: Path, args: list[str]) -> None:
    before = stored_state(config)

    result = invoke(config, args, stdin=BAD_PASSWORD)

    assert result.exit_code == 1
    assert result.stderr == (
        "error: the password on standard input is not valid UTF-8; pipe it in as UTF-8 text\n"
    )
    assert stored_state(config) == before


def test_non_utf8_pin_stdin_rejected(config: Path, tmp_path: Path) -> None:
    state = tmp_path / "telefon.json"
    # The PIN is read before the URL is used, so nothing listens on this port.
    url = "http://127.0.0.1:9/enroll#kod"

    result = invoke(
        config, ["authenticator", "enroll", url, "--state", str(state), "--pin-stdin"], b"12\xff4\n"
    )

    assert result.exit_code == 1
    assert "error: the PIN on standard input is not valid UTF-8" in result.stderr
    assert not state.exists()


@pytest.mark.parametrize(
    ("since", "shown"),
    [
        ("99999999999h", "'99999999999h'"),
        ("36501d", "'36501d'"),
        ("52560001m", "'52560001m'"),
        ("9" * 5000 + "d", "'99999999999999999999...9999999999999999999d'"),
    ],
    ids=["hours", "days", "minutes", "5000 digits"],
)
def test_audit_since_out_of_range(config: Path, since: str, shown: str) -> None:
    result = invoke(config, ["audit", "--since", since])

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: --since {shown} is out of range; ")
    assert "from 0s to 36500d" in result.stderr


def test_audit_since_longest_accepted(config: Path) -> None:
    result = invoke(config, ["audit", "--since", "36500d"])

    assert result.exit_code == 0
    assert "created user" in result.stdout


@pytest.mark.parametrize("limit", ["0", "-1", "1000000001", "99999999999999999999"])
def test_audit_limit_out_of_range(config: Path, limit: str) -> None:
    result = invoke(config, ["audit", "--limit", limit])

    assert result.exit_code == 2
    assert "'--limit'" in result.stderr
    assert f"{limit} is not in the range 1<=x<=1000000000" in result.stderr
    assert result.stdout == ""
