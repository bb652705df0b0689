"""Confirmation of a device enrolled from a web page: the person at the screen types the code the
new device shows, which proves that the phone and the person are together.

An enrollment issued by the registration panel or by an administrator's own console sign-in
creates its device on hold: `revoked_at` is set and `delivery["confirmation"]` records the hold.
While held, the device can neither open its channel nor answer a challenge, because both check
`revoked_at`. Typing the right code within the enrollment lifetime releases the hold; five wrong
codes or the end of the lifetime leave the device revoked for good.

The code is not stored. It is derived from the device id with a key from the key file, so every
node computes the same one and only the server and the device that received it know it.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.devices.enrollment import ENROLLMENT_LIFETIME
from tapgate.keys import KeyRing
from tapgate.store.models import DeviceRow, EnrollmentRow

log = logging.getLogger(__name__)

CODE_DIGITS = 6
MAX_ATTEMPTS = 5
# `issued_by` of the enrollments whose web page waits for the confirmation code.
REGISTRATION_PANEL = "registration panel"
CONSOLE_SIGN_IN = "console sign-in"
CONFIRMING_ISSUERS = frozenset({REGISTRATION_PANEL, CONSOLE_SIGN_IN})

PENDING = "pending"
FAILED = "failed"

# Outcomes of `confirm_device`.
CONFIRMED = "confirmed"
WRONG_CODE = "wrong_code"
TOO_MANY_ATTEMPTS = "too_many_attempts"
EXPIRED = "expired"
NOT_PENDING = "not_pending"


def confirmation_code(keyring: KeyRing, device_id: str) -> str:
    """Return the decimal code the device shows and the web page expects for `device_id`."""
    digest = keyring.hash_token(f"device confirmation v1:{device_id}")
    return str(int(digest, 16) % 10**CODE_DIGITS).zfill(CODE_DIGITS)


def confirmation_state(device: DeviceRow) -> str | None:
    """Return "pending" or "failed" for a device enrolled with confirmation, else None."""
    hold = (device.delivery or {}).get("confirmation")
    if not isinstance(hold, dict):
        return None
    state = hold.get("state")
    return state if isinstance(state, str) else None


def is_awaiting_confirmation(device: DeviceRow, now: datetime) -> bool:
    """Return whether the device still waits for its code and may still receive it."""
    return confirmation_state(device) == PENDING and now < device.created_at + ENROLLMENT_LIFETIME


async def hold_for_confirmation(
    session: AsyncSession, keyring: KeyRing, device: DeviceRow, now: datetime
) -> str | None:
    """Put a just-enrolled device on hold when its enrollment needs a confirmation code.

    Call it in the transaction that created the device. Returns the code to send back to the
    device, or None when the enrollment came from a command or an administrator and the device
    is active at once.
    """
    issued_by = (
        await session.scalars(
            select(EnrollmentRow.issued_by).where(EnrollmentRow.device_id == device.id)
        )
    ).first()
    if issued_by not in CONFIRMING_ISSUERS:
        return None

    device.revoked_at = now
    device.delivery = {**(device.delivery or {}), "confirmation": {"state": PENDING, "attempts": 0}}
    return confirmation_code(keyring, device.id)


@dataclass(frozen=True)
class ConfirmationResult:
    outcome: str
    attempts_left: int = 0


def _hold(device: DeviceRow) -> dict[str, Any]:
    hold = (device.delivery or {}).get("confirmation")
    return dict(hold) if isinstance(hold, dict) else {}


async def confirm_device(
    session: AsyncSession,
    keyring: KeyRing,
    device: DeviceRow,
    code: str,
    now: datetime,
    source_ip: str | None,
) -> ConfirmationResult:
    """Check the typed `code` for a held device and release the hold when it matches.

    `device` must be loaded in `session`. Every attempt is audited; the device is left revoked
    after MAX_ATTEMPTS wrong codes or once the enrollment lifetime has passed.
    """
    if confirmation_state(device) != PENDING:
        return ConfirmationResult(NOT_PENDING)

    hold = _hold(device)
    audit: dict[str, Any] = {
        "username": device.username,
        "auth_profile": device.auth_profile,
        "device_id": device.id,
        "source_ip": source_ip,
    }
    if now >= device.created_at + ENROLLMENT_LIFETIME:
        device.delivery = {**device.delivery, "confirmation": {**hold, "state": FAILED}}
        await record_audit(
            session, "enrollment", outcome="rejected", reason="confirmation expired", **audit
        )
        return ConfirmationResult(EXPIRED)

    expected = confirmation_code(keyring, device.id)
    typed = "".join(code.split())
    if hmac.compare_digest(typed.encode(), expected.encode()):
        delivery = {key: value for key, value in device.delivery.items() if key != "confirmation"}
        device.delivery = delivery
        device.revoked_at = None
        await record_audit(session, "enrollment", outcome="confirmed", **audit)
        log.info("device confirmed device=%s user=%r", device.id, device.username)
        return ConfirmationResult(CONFIRMED)

    attempts = int(hold.get("attempts", 0)) + 1
    state = FAILED if attempts >= MAX_ATTEMPTS else PENDING
    device.delivery = {
        **device.delivery,
        "confirmation": {**hold, "state": state, "attempts": attempts},
    }
    await record_audit(
        session,
        "enrollment",
        outcome="rejected",
        reason="wrong confirmation code",
        details={"attempts": attempts},
        **audit,
    )
    if state == FAILED:
        return ConfirmationResult(TOO_MANY_ATTEMPTS)
    return ConfirmationResult(WRONG_CODE, MAX_ATTEMPTS - attempts)
