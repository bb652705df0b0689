"""`tapgate admin`: creating, listing, disabling and resetting console administrators."""

from __future__ import annotations

import json

from tests.support import Server
from tests.web.conftest import run_commands


def test_admin_commands(server: Server) -> None:
    outcomes = run_commands(
        server,
        [
            (["admin", "create", "yonetici", "--password-stdin"], "Baska-Parola-123\n"),
            (["admin", "create", "kisa", "--password-stdin"], "kisa\n"),
            (["admin", "create", "bad name", "--password-stdin"], "Uzun-Parola-123\n"),
            (["admin", "create", "denetci", "--password-stdin"], "Denetci-Parola-1\n"),
            (["admin", "disable", "denetci"], None),
            (["admin", "password", "denetci", "--password-stdin"], "Yeni-Parola-1234\n"),
            (["admin", "reset-devices", "denetci"], None),
            (["admin", "list", "--json"], None),
            (["admin", "disable", "nobody"], None),
        ],
        check=False,
    )
    duplicate, short, bad_name, created, disabled, password, reset, listed, missing = outcomes

    assert duplicate[0] == 1
    assert "already exists" in duplicate[2]
    assert short[0] == 1
    assert "at least 10 characters" in short[2]
    assert bad_name[0] == 1
    assert "invalid administrator name" in bad_name[2]
    assert created[0] == 0
    assert disabled[0] == 0
    assert password[0] == 0
    assert reset[0] == 0
    assert "revoked 0 phones" in reset[1]
    admins = {entry["name"]: entry for entry in json.loads(listed[1])}
    assert admins["denetci"]["disabled"] is True
    assert admins["yonetici"]["disabled"] is False
    assert missing[0] == 1
    assert "does not exist" in missing[2]
