"""Fill a fresh database with users and devices directly through tapgate's models.

Enrolling through the device API costs an enrollment token, two HTTP round trips and a
signature check per device, which makes 100,000 devices take many minutes. The benchmark
measures logins, not enrollment, so it writes the rows that enrollment would write: one local
user with an Argon2id password hash and one device with a freshly generated P-256 signing key
per user. Every user shares one password, so one hash is computed per run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert, select

from tapgate.api.clients import add_client
from tapgate.clock import SystemClock
from tapgate.crypto.signing import new_private_key, public_key_to_text
from tapgate.directory.base import normalize_username
from tapgate.keys import KeyRing, load_or_create_key_file
from tapgate.objects.document import parse_document
from tapgate.objects.repository import apply_objects
from tapgate.store.database import Database
from tapgate.store.migrate import upgrade
from tapgate.store.models import AuthProfileRow, DeviceRow, LocalUserRow

AUTH_PROFILE = "bench"
PUSH_PROFILE = "bench-push"
APPLICATION = "bench-api"
PASSWORD = "Bench-Parola-2026!"
_INSERT_BATCH = 5000
# The objects for the LDAP first factor and the RADIUS front door, added when a run uses them.
LDAP_AUTH_PROFILE = "bench-ldap"
RADIUS_PUSH_PROFILE = "bench-push-tap"
RADIUS_APPLICATION = "bench-radius"
RADIUS_CLIENT = "bench-nas"
# The RADIUS client's response time budget, a little below the benchmark NAS's 60 s wait.
RADIUS_CLIENT_TIMEOUT = 55


# The hash parameters `tapgate serve` uses with TAPGATE_PASSWORD_HASH=fast (cheap) and by
# default (argon2-cffi's RFC 9106 low-memory profile). The server verifies with the parameters
# stored in each hash, so the stored hash decides the cost of the first factor.
def _cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


HASHERS: dict[str, Callable[[], PasswordHasher]] = {
    "fast": _cheap_hasher,
    "default": PasswordHasher,
    # No first factor in tapgate: the application does not ask it to check the password, as
    # when a VPN checks the password itself and calls tapgate for the push only.
    "none": _cheap_hasher,
}


@dataclass(frozen=True)
class BenchDevice:
    """A simulated phone: its user, its device id and the private half of its signing key."""

    index: int
    username: str
    device_id: str
    key: ec.EllipticCurvePrivateKey
    # The user's id in its auth profile: the local user row's id, or the LDAP entry's objectGUID.
    user_id: str = ""


@dataclass(frozen=True)
class Provisioned:
    devices: list[BenchDevice]
    client_id: str
    client_secret: str
    server_key: ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class BenchFiles:
    """The work directory of one server under test: settings, key file and SQLite database."""

    workdir: Path
    port: int

    @property
    def config(self) -> Path:
        return self.workdir / "tapgate.yaml"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir}/tapgate.db"

    @property
    def key_file(self) -> Path:
        return self.workdir / "secret.key"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_settings(self, radius_port: int | None = None) -> None:
        text = (
            f"server:\n  listen: 127.0.0.1:{self.port}\n  public_url: {self.public_url}\n"
            f"database:\n  url: {self.database_url}\n"
            f"secrets:\n  key_file: {self.key_file}\n"
        )
        if radius_port is not None:
            text += f"radius:\n  listen: 127.0.0.1:{radius_port}\n"
        self.config.write_text(text, encoding="utf-8")


def bench_objects(
    verification: str,
    timeout: int,
    *,
    ldap_options: dict[str, Any] | None = None,
    radius_secret: str | None = None,
    check_password: bool = True,
) -> dict[str, Any]:
    """Return the objects document of the benchmark: one local auth profile, one push profile
    without a practical rate limit, and one API application that checks the password unless
    `check_password` is false.

    With `ldap_options` the auth profile is an `ldap` one with those settings. With
    `radius_secret` the document adds a RADIUS application with its own push profile and a
    RADIUS client for 127.0.0.1.
    """
    auth_profile = AUTH_PROFILE if ldap_options is None else LDAP_AUTH_PROFILE
    document = {
        "auth_profiles": [
            {"name": AUTH_PROFILE, "type": "local"}
            if ldap_options is None
            else {"name": LDAP_AUTH_PROFILE, "type": "ldap", **ldap_options}
        ],
        "push_profiles": [
            {
                "name": PUSH_PROFILE,
                "fallback_auth_profiles": [auth_profile],
                "timeout": timeout,
                "verification": verification,
                "number_digits": 2,
                # A simulated user logs in many times a second; the default 10 pushes in
                # 10 minutes would reject nearly every login.
                "rate_limit": {"count": 10_000, "window": 1},
                "max_pending": 20,
                "default": True,
            }
        ],
        "applications": [
            {
                "name": APPLICATION,
                "type": "api",
                "methods": [PUSH_PROFILE],
                "require_password": check_password,
            }
        ],
    }
    if radius_secret is not None:
        _add_radius_objects(document, auth_profile, timeout, radius_secret, check_password)
    return document


def _add_radius_objects(
    document: dict[str, Any], auth_profile: str, timeout: int, secret: str, check_password: bool
) -> None:
    # Tap mode: tapgate replies to the Access-Request once the device approves, so the NAS
    # needs no second round trip, which number mode's Access-Challenge would add.
    tap_profile = {
        **document["push_profiles"][0],
        "name": RADIUS_PUSH_PROFILE,
        "fallback_auth_profiles": [auth_profile],
        "verification": "tap",
        # A transaction must expire before the RADIUS client's budget ends, so the NAS gets
        # the expiry's Access-Reject rather than the budget's.
        "timeout": min(timeout, RADIUS_CLIENT_TIMEOUT - 5),
        "default": False,
    }
    document["push_profiles"].append(tap_profile)
    document["applications"].append(
        {
            "name": RADIUS_APPLICATION,
            "type": "radius",
            "methods": [RADIUS_PUSH_PROFILE],
            "require_password": check_password,
        }
    )
    document["radius_clients"] = [
        {
            "name": RADIUS_CLIENT,
            "address": "127.0.0.1/32",
            "secret": secret,
            "application": RADIUS_APPLICATION,
            "client_ip_attribute": "Calling-Station-Id",
            "timeout": RADIUS_CLIENT_TIMEOUT,
            "require_message_authenticator": True,
        }
    ]


def username_for(index: int) -> str:
    return f"bench{index:06d}"


async def provision(
    files: BenchFiles,
    users: int,
    password_hash: str,
    verification: str,
    timeout: int,
    database_url: str | None = None,
    *,
    ldap_options: dict[str, Any] | None = None,
    radius_secret: str | None = None,
) -> Provisioned:
    """Create the schema, the objects, `users` users with one device each and an API client,
    in `database_url` (default: the SQLite file of `files`).

    With `ldap_options` the users' auth profile is an `ldap` one, and only the devices are
    written: the caller loads the users into the directory with each device's `user_id` as
    the entry's objectGUID. `radius_secret` adds the RADIUS objects (see `bench_objects`).
    """
    auth_profile = AUTH_PROFILE if ldap_options is None else LDAP_AUTH_PROFILE
    url = database_url or files.database_url
    upgrade(url)
    keyring = KeyRing(load_or_create_key_file(files.key_file))
    database = Database(url)
    now = SystemClock().now()
    stored_hash = HASHERS[password_hash]().hash(PASSWORD)
    try:
        async with database.write() as session:
            await apply_objects(
                session,
                keyring,
                parse_document(
                    bench_objects(
                        verification,
                        timeout,
                        ldap_options=ldap_options,
                        radius_secret=radius_secret,
                        check_password=password_hash != "none",
                    )
                ),
                prune=False,
                actor="tapgate bench",
            )
            client = await add_client(session, keyring, APPLICATION, now, "tapgate bench")
        async with database.read() as session:
            profile_id = (
                await session.scalars(
                    select(AuthProfileRow.id).where(AuthProfileRow.name == auth_profile)
                )
            ).one()

        devices: list[BenchDevice] = []
        for start in range(0, users, _INSERT_BATCH):
            user_rows: list[dict[str, Any]] = []
            device_rows: list[dict[str, Any]] = []
            for index in range(start, min(start + _INSERT_BATCH, users)):
                username = username_for(index)
                user_id = str(uuid.uuid4())
                key = new_private_key()
                device = BenchDevice(index, username, str(uuid.uuid4()), key, user_id)
                devices.append(device)
                user_rows.append(
                    {
                        "id": user_id,
                        "auth_profile_id": profile_id,
                        "username": username,
                        "username_key": normalize_username(username),
                        "groups": [],
                        "disabled": False,
                        "password_hash": stored_hash,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                device_rows.append(
                    {
                        "id": device.device_id,
                        "auth_profile": auth_profile,
                        "user_id": user_id,
                        "username": username,
                        "name": "bench phone",
                        "platform": "tapgate-bench",
                        "signing_key": public_key_to_text(key.public_key()),
                        "agreement_key": public_key_to_text(new_private_key().public_key()),
                        "delivery": {"direct": True},
                        "created_at": now - timedelta(days=1),
                    }
                )
            async with database.write() as session:
                if ldap_options is None:
                    await session.execute(insert(LocalUserRow), user_rows)
                await session.execute(insert(DeviceRow), device_rows)
    finally:
        await database.close()
    return Provisioned(
        devices=devices,
        client_id=client.client_id,
        client_secret=client.client_secret,
        server_key=keyring.server_signing_key().public_key(),
    )
