"""API clients and their bearer tokens (OAuth 2.0 client credentials, RFC 6749 §4.4).

Client secrets and access tokens are high-entropy random strings, stored only as keyed hashes.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.errors import NotFoundError
from tapgate.keys import KeyRing
from tapgate.store.models import AccessTokenRow, ApiClientRow, ApplicationRow
from tapgate.store.prepared import Prepared, Statements
from tapgate.store.tables import ACCESS_TOKENS

TOKEN_LIFETIME = timedelta(hours=1)
# Built once, because every Auth API request runs it.
_TOKEN_APPLICATION = Prepared(
    select(ACCESS_TOKENS.c.application).where(
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


async def application_for_token(
    rows: Statements, keyring: KeyRing, token: str, now: datetime
) -> str | None:
    parameters = {"token_hash": keyring.hash_token(token), "now": now}
    application: str | None = await rows.scalar(_TOKEN_APPLICATION, parameters)
    return application
