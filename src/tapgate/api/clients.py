"""API clients and their bearer tokens (OAuth 2.0 client credentials, RFC 6749 §4.4).

Client secrets and access tokens are high-entropy random strings, stored only as keyed hashes.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.errors import NotFoundError
from tapgate.keys import KeyRing
from tapgate.store.database import Database
from tapgate.store.models import AccessTokenRow, ApiClientRow, ApplicationRow
from tapgate.store.prepared import Prepared
from tapgate.store.stamped import StampedCache
from tapgate.store.tables import ACCESS_TOKENS

TOKEN_LIFETIME = timedelta(hours=1)
# Built once, because every Auth API request runs it.
_TOKEN_APPLICATION = Prepared(
    select(ACCESS_TOKENS.c.application, ACCESS_TOKENS.c.expires_at).where(
        ACCESS_TOKENS.c.token_hash == bindparam("token_hash"),
        ACCESS_TOKENS.c.expires_at > bindparam("now"),
    )
)


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str


async def add_client(
    session: AsyncSession, keyring: KeyRing, application: str, now: datetime, actor: str
) -> NewClient:
    app = (
        await session.scalars(select(ApplicationRow).where(ApplicationRow.name == application))
    ).first()
    if app is None:
        raise NotFoundError(
            f"application {application!r} does not exist; create it with tapgate apply"
        )
    client_id = "tg_" + secrets.token_urlsafe(12)
    client_secret = secrets.token_urlsafe(32)
    session.add(
        ApiClientRow(
            client_id=client_id,
            secret_hash=keyring.hash_token(client_secret),
            application=application,
            created_at=now,
        )
    )
    await record_audit(
        session,
        "admin_change",
        application=application,
        actor=actor,
        outcome="applied",
        details={"change": f"created API client {client_id}"},
    )
    return NewClient(client_id, client_secret)


async def revoke_client(
    session: AsyncSession, client_id: str, now: datetime, application: str | None = None
) -> ApiClientRow | None:
    """Revoke an active API client and delete its tokens; return it, or None when no active
    client has that id (in `application`, when given). The caller records the change."""
    client = await session.get(ApiClientRow, client_id[:64])
    if client is None or client.revoked_at is not None:
        return None
    if application is not None and client.application != application:
        return None
    client.revoked_at = now
    # Tokens already issued stop working now, not when they would expire.
    await session.execute(delete(AccessTokenRow).where(AccessTokenRow.client_id == client_id))
    return client


async def issue_token(
    session: AsyncSession, keyring: KeyRing, client_id: str, client_secret: str, now: datetime
) -> tuple[str, int] | None:
    """Return (access token, lifetime seconds) for valid credentials, else None."""
    client = await session.get(ApiClientRow, client_id[:64])
    expected = client.secret_hash if client is not None else keyring.hash_token("")
    if (
        not hmac.compare_digest(keyring.hash_token(client_secret), expected)
        or client is None
        or client.revoked_at
    ):
        return None
    token = secrets.token_urlsafe(32)
    session.add(
        AccessTokenRow(
            token_hash=keyring.hash_token(token),
            client_id=client.client_id,
            application=client.application,
            expires_at=now + TOKEN_LIFETIME,
        )
    )
    return token, int(TOKEN_LIFETIME.total_seconds())


class TokenCache(StampedCache[str, tuple[str, datetime]]):
    """Valid access tokens by their keyed hash: (application, expiry).

    Tokens are issued, revoked and deleted only through sessions and by other processes, so a
    revoked token is never served from here (see tapgate.store.stamped).
    """

    def __init__(self) -> None:
        super().__init__(max_entries=10_000)


async def application_for_token(
    database: Database, keyring: KeyRing, cache: TokenCache, token: str, now: datetime
) -> str | None:
    """Return the application of a valid, unexpired access token, else None."""
    token_hash = keyring.hash_token(token)
    # Taken before the read, so a commit during the read moves the stamp past this entry.
    stamp = database.change_stamp()
    cached = cache.get(stamp, token_hash)
    if cached is not None and now < cached[1]:
        return cached[0]
    async with database.read_rows() as rows:
        row = await rows.first(_TOKEN_APPLICATION, {"token_hash": token_hash, "now": now})
    if row is None:
        return None
    cache.put(stamp, token_hash, (row.application, row.expires_at))
    found: str = row.application
    return found
