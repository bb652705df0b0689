"""A running server with three local users, each with an enrolled reference authenticator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tapgate.authenticator.device import enroll
from tapgate.authenticator.state import DeviceState
from tests.support import Server

OBJECTS = """
auth_profiles:
  - {name: personel, type: local}
push_profiles:
  - {name: ofis, fallback_auth_profiles: [personel], timeout: 30, verification: tap, default: true, max_pending: 5}
  - {name: ofis-sayi, fallback_auth_profiles: [personel], verification: number, number_digits: 2, max_pending: 5}
  - {name: ofis-kod, fallback_auth_profiles: [personel], verification: code}
  - {name: ofis-kisa, fallback_auth_profiles: [personel], verification: tap, timeout: 5}
  - {name: ofis-pin, fallback_auth_profiles: [personel], verification: tap, require_user_verification: true}
applications:
  - {name: portal, type: api, methods: [ofis], require_password: true}
  - {name: portal-sayi, type: api, methods: [ofis-sayi], require_password: true}
  - {name: portal-kod, type: api, methods: [ofis-kod], require_password: true}
  - {name: portal-kisa, type: api, methods: [ofis-kisa], require_password: false}
  - {name: portal-pin, type: api, methods: [ofis-pin], require_password: false}
  - {name: parolasiz, type: api, methods: [ofis], require_password: false}
"""
PASSWORD = "Parola-2026!"
USERS = ("ayşe", "İsmail", "berk")


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    instance = Server(tmp_path, db_url)
    instance.start()
    instance.apply(OBJECTS)
    for name in USERS:
        instance.cli(
            "user",
            "add",
            name,
            "--auth-profile",
            "personel",
            "--password-stdin",
            "--email",
            f"{name}@ornek.com.tr",
            "--mobile",
            "05554443322",
            stdin=PASSWORD + "\n",
        )
    yield instance
    if instance.process and instance.process.poll() is None:
        instance.stop()
    assert "Traceback" not in instance.log()


def enroll_device(server: Server, username: str, name: str = "Telefon") -> DeviceState:
    url = server.cli_json("enroll", username, "--json")["enrollment_url"]
    return enroll(url, name)


def state_file(server: Server, username: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{username}-phone.json"
    url = server.cli_json("enroll", username, "--json")["enrollment_url"]
    server.cli("authenticator", "enroll", url, "--state", str(path))
    return path
