"""The `local` auth profile: users kept in tapgate's own database, one set per profile."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.clock import Clock
from tapgate.directory.base import (
    ACCOUNT_DISABLED,
    ACCOUNT_EXPIRED,
    INVALID_CREDENTIALS,
    DirectoryUser,
    normalize_username,
)
from tapgate.directory.passwords import hash_password, verify_password
from tapgate.errors import NotFoundError, ObjectError
from tapgate.secret import Secret
from tapgate.store.database import Database
from tapgate.store.models import AuthProfileRow, LocalUserRow
from tapgate.store.prepared import Prepared
from tapgate.store.stamped import StampedCache
from tapgate.store.tables import AUTH_PROFILES, LOCAL_USERS

MAX_USERNAME = 256


# The same rules for the CLI and the admin console.
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_MOBILE_CHARACTERS = frozenset("0123456789+ -()")


def valid_email(email: str) -> bool:
    return "@" in email


def valid_mobile(mobile: str) -> bool:
    return all(c in _MOBILE_CHARACTERS for c in mobile)


def validate_username(username: str) -> str:
    cleaned = username.strip()
    if not cleaned or len(cleaned) > MAX_USERNAME or any(ord(c) < 32 for c in cleaned):
        raise ObjectError(
            f"invalid username {username!r}: use 1-{MAX_USERNAME} printable characters"
        )
    return cleaned


# Built once, because every login runs it.
_FIND_USER = Prepared(
    select(LOCAL_USERS)
    .join(AUTH_PROFILES, AUTH_PROFILES.c.id == LOCAL_USERS.c.auth_profile_id)
    .where(
        AUTH_PROFILES.c.name == bindparam("profile"),
        LOCAL_USERS.c.username_key == bindparam("key"),
    )
)
_USER_BY_ID = Prepared(select(LOCAL_USERS).where(LOCAL_USERS.c.id == bindparam("id")))


@dataclass(frozen=True)
class LocalUser(DirectoryUser):
    """A local user with the password hash and account state of the same row read.

    A login then reads the row once. The password and the account are checked as they stood
    when the user was found, one password hash earlier (about 0.2 s with Argon2's defaults).
    """

    password_hash: str | None = field(default=None, repr=False)
    disabled: bool = False
    expires_at: datetime | None = None


def _user_from_row(profile: str, row: Any) -> LocalUser:
    display = " ".join(p for p in (row.first_name, row.last_name) if p) or None
    attributes: dict[str, tuple[str, ...]] = {
        "username": (row.username,),
        "group_name": tuple(row.groups or ()),
    }
    if row.email:
        attributes["email"] = (row.email,)
        attributes["mail"] = (row.email,)
    if row.mobile:
        attributes["mobile"] = (row.mobile,)
    if display:
        attributes["displayname"] = (display,)
    return LocalUser(
        auth_profile=profile,
        user_id=row.id,
        username=row.username,
        display_name=display,
        attributes=attributes,
        password_hash=row.password_hash,
        disabled=bool(row.disabled),
        expires_at=row.expires_at,
    )


class LocalAuthProfile:
    """Users of one `local` auth profile."""

    kind = "local"

    def __init__(self, name: str, database: Database, clock: Clock) -> None:
        self.name = name
        self._database = database
        self._clock = clock
        # Users found, by normalized name. Local users change only through sessions and the
        # CLI, so an unchanged stamp means an unchanged row (see tapgate.store.stamped).
        self._found: StampedCache[str, LocalUser] = StampedCache(max_entries=4096)

    async def find_user(self, username: str) -> DirectoryUser | None:
        key = normalize_username(username)
        stamp = self._database.change_stamp()
        cached = self._found.get(stamp, key)
        if cached is not None:
            return cached
        async with self._database.read_rows() as rows:
            row = await rows.first(_FIND_USER, {"profile": self.name, "key": key})
        if row is None:
            return None
        user = _user_from_row(self.name, row)
        self._found.put(stamp, key, user)
        return user

    async def _current(self, user: DirectoryUser) -> LocalUser | None:
        """Return `user` with its row's state: as found, or read again for a user built
        elsewhere."""
        if isinstance(user, LocalUser):
            return user
        async with self._database.read_rows() as rows:
            row = await rows.first(_USER_BY_ID, {"id": user.user_id})
        return _user_from_row(self.name, row) if row else None

    async def verify_password(self, user: DirectoryUser, password: Secret) -> str | None:
        current = await self._current(user)
        stored = current.password_hash if current else None
        if not password or not await verify_password(stored, password):
            return INVALID_CREDENTIALS
        return None

    async def check_unknown_user(self, password: Secret) -> None:
        """Hash `password` against nothing, as a wrong password of a known user does."""
        if password:
            await verify_password(None, password)

    async def account_problem(self, user: DirectoryUser, now: datetime) -> str | None:
        current = await self._current(user)
        if current is None or current.disabled:
            return ACCOUNT_DISABLED
        if current.expires_at is not None and current.expires_at <= now:
            return ACCOUNT_EXPIRED
        return None

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class NewLocalUser:
    username: str
    password: Secret | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    mobile: str | None = None
    groups: Sequence[str] = ()
    expires_at: datetime | None = None
    disabled: bool = False


async def add_local_user(
    session: AsyncSession, profile_name: str, user: NewLocalUser, now: datetime
) -> LocalUserRow:
    """Add a user to a local auth profile; raise ObjectError if the name is taken."""
    username = validate_username(user.username)
    # Hash before the first statement: on SQLite the first statement takes the write lock, and a
    # hash takes as long as a login.
    password_hash = await hash_password(user.password) if user.password else None
    profile = (
        await session.scalars(select(AuthProfileRow).where(AuthProfileRow.name == profile_name))
    ).first()
    if profile is None:
        raise NotFoundError(
            f"auth profile {profile_name!r} does not exist; create it with tapgate apply"
        )
    if profile.kind != "local":
        raise ObjectError(
            f"auth profile {profile_name!r} has type {profile.kind!r}; users can be added only to a local auth profile"
        )
    key = normalize_username(username)
    taken = await session.scalars(
        select(LocalUserRow.id).where(
            LocalUserRow.auth_profile_id == profile.id, LocalUserRow.username_key == key
        )
    )
    if taken.first() is not None:
        raise ObjectError(f"user {username!r} already exists in auth profile {profile_name!r}")
    for group in user.groups:
        if not group.strip() or len(group) > 256:
            raise ObjectError(f"invalid group name {group!r}")
    row = LocalUserRow(
        id=str(uuid.uuid4()),
        auth_profile_id=profile.id,
        username=username,
        username_key=key,
        first_name=user.first_name,
        last_name=user.last_name,
        email=user.email,
        mobile=user.mobile,
        groups=list(user.groups),
        expires_at=user.expires_at,
        disabled=user.disabled,
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    return row
