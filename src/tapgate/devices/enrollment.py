"""Enrollment: a single-use token shown as a QR code, exchanged by the device for registration.

The token has 128 bits from a secure random source, lives 10 minutes, is stored only as a keyed
hash, and replaces any earlier unused token of the same user.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.crypto.signing import BadSignature, public_key_from_text, verify
from tapgate.devices.protocol import ENROLLMENT_PATH
from tapgate.directory.base import DirectoryUser
from tapgate.errors import DeviceAuthError, RequestError
from tapgate.keys import KeyRing
from tapgate.store.models import DeviceRow, EnrollmentRow

log = logging.getLogger(__name__)

ENROLLMENT_LIFETIME = timedelta(minutes=10)
_MAX_NAME = 128
_PLATFORMS_MAX = 64


class EnrollmentRejected(DeviceAuthError):
    """An enrollment token that is unknown, used or expired; the caller audits it in a
    transaction of its own, since the enrollment's transaction is rolled back."""

    def __init__(self, detail: str, username: str | None, auth_profile: str | None) -> None:
        super().__init__(detail)
        self.username = username
        self.auth_profile = auth_profile


@dataclass(frozen=True)
class IssuedEnrollment:
    url: str
    token: str
    expires_at: datetime


async def issue_enrollment(
    session: AsyncSession,
    keyring: KeyRing,
    public_url: str,
    user: DirectoryUser,
    now: datetime,
    issued_by: str,
    source_ip: str | None = None,
) -> IssuedEnrollment:
    """Create a new enrollment token for `user`, voiding any earlier unused one."""
    await session.execute(
        update(EnrollmentRow)
        .where(
            EnrollmentRow.auth_profile == user.auth_profile,
            EnrollmentRow.user_id == user.user_id,
            EnrollmentRow.used_at.is_(None),
            EnrollmentRow.expires_at > now,
        )
        .values(expires_at=now)
    )
    token = secrets.token_urlsafe(16)
    expires_at = now + ENROLLMENT_LIFETIME
    session.add(
        EnrollmentRow(
            id=str(uuid.uuid4()),
            token_hash=keyring.hash_token(token),
            auth_profile=user.auth_profile,
            user_id=user.user_id,
            username=user.username,
            created_at=now,
            expires_at=expires_at,
            issued_by=issued_by,
        )
    )
    await record_audit(
        session,
        "enrollment",
        username=user.username,
        auth_profile=user.auth_profile,
        outcome="issued",
        actor=issued_by,
        source_ip=source_ip,
        details={"expires_at": expires_at.isoformat()},
    )
    return IssuedEnrollment(f"{public_url}{ENROLLMENT_PATH}{token}", token, expires_at)


def _text(body: dict[str, Any], key: str, limit: int, required: bool = True) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    # PostgreSQL rejects NUL in text, so it is turned away here rather than by the database.
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise RequestError(
            f"{key} must be a non-empty string of at most {limit} characters, without NUL",
            "invalid_request",
            400,
        )
    return value.strip()


async def complete_enrollment(
    session: AsyncSession,
    keyring: KeyRing,
    public_url: str,
    body: dict[str, Any],
    now: datetime,
    source_ip: str | None,
) -> DeviceRow:
    """Register a device from its enrollment request; the token is spent in the same transaction.

    The request proves possession of the signing key: `proof` is the device's signature over the
    request fields, so a token cannot be bound to a key its sender does not hold.
    """
    token = _text(body, "token", 64)
    signing_key = _text(body, "signing_key", 128)
    agreement_key = _text(body, "agreement_key", 128)
    name = _text(body, "name", _MAX_NAME)
    platform = _text(body, "platform", _PLATFORMS_MAX)
    delivery = body.get("delivery", {"direct": True})
    if not isinstance(delivery, dict) or len(str(delivery)) > 4096:
        raise RequestError("delivery must be an object", "invalid_request", 400)
    try:
        public_key = public_key_from_text(signing_key)
        public_key_from_text(agreement_key)
        proof_message = {
            "v": 1,
            "aud": public_url,
            "type": "enroll",
            "token": token,
            "signing_key": signing_key,
            "agreement_key": agreement_key,
        }
        verify(public_key, proof_message, body.get("proof", ""))
    except BadSignature as exc:
        raise RequestError(
            "signing_key, agreement_key or proof is invalid", "invalid_key", 400
        ) from exc

    row = (
        await session.scalars(
            select(EnrollmentRow).where(EnrollmentRow.token_hash == keyring.hash_token(token))
        )
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        if row is None:
            problem = "unknown"
        elif row.used_at is not None:
            problem = "already used"
        elif row.expires_at < row.created_at + ENROLLMENT_LIFETIME:
            # Issuing a new link ends the older unused one at that moment (see above).
            problem = "replaced by a newer link"
        else:
            problem = "expired"
        log.info("enrollment rejected problem=%s source_ip=%s", problem, source_ip)
        raise EnrollmentRejected(
            f"token {problem}", row.username if row else None, row.auth_profile if row else None
        )

    device = DeviceRow(
        id=str(uuid.uuid4()),
        auth_profile=row.auth_profile,
        user_id=row.user_id,
        username=row.username,
        name=name,
        platform=platform,
        signing_key=signing_key,
        agreement_key=agreement_key,
        delivery=delivery,
        enrolled_ip=source_ip,
        created_at=now,
    )
    result = await session.execute(
        update(EnrollmentRow)
        .where(EnrollmentRow.id == row.id, EnrollmentRow.used_at.is_(None))
        .values(used_at=now, device_id=device.id)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise DeviceAuthError("enrollment token already used")
    session.add(device)
    await record_audit(
        session,
        "enrollment",
        username=row.username,
        auth_profile=row.auth_profile,
        device_id=device.id,
        outcome="enrolled",
        source_ip=source_ip,
        details={"device_name": name, "platform": platform},
    )
    return device
