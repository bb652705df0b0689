"""Delivery receipts: a device's signed statement that a challenge reached it.

A receipt is RFC 8785 canonical JSON signed with the device key, like an answer:
{v, aud, iat, device_id, transaction_id, nonce, type: "receipt"} plus an optional `via` naming
the provider that carried the challenge. `nonce` is the challenge's nonce, so only a device that
received the challenge can produce a receipt. The first receipt of a transaction sets its
`delivered_at`; each device's first receipt sets that device's row in `challenge_deliveries`.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from tapgate.crypto.signing import BadSignature, public_key_from_text, verify
from tapgate.delivery.metrics import DELIVERY_LATENCY, provider_label
from tapgate.errors import DeviceAuthError, NotFoundError, RequestError
from tapgate.identifiers import is_identifier
from tapgate.push.challenge import within_clock_skew
from tapgate.store.database import Database
from tapgate.store.models import ChallengeDeliveryRow, DeviceRow, TransactionRow

log = logging.getLogger(__name__)

RECEIPT_VERSION = 1
_REQUIRED = {"v", "aud", "iat", "device_id", "transaction_id", "nonce", "type"}
_OPTIONAL = {"via"}
RECEIPT_VIA = ("direct", "relay", "fcm", "apns", "webpush", "poll")


@dataclass(frozen=True)
class ReceiptResult:
    transaction_id: str
    delivered_at: datetime
    # True when this receipt was the device's first for the transaction.
    first: bool


def check_receipt_message(message: Any, audience: str, now: datetime) -> dict[str, Any]:
    """Validate a receipt's fields (not yet its signature); raise RequestError when malformed."""
    if not isinstance(message, dict) or not _REQUIRED <= set(message) <= _REQUIRED | _OPTIONAL:
        raise RequestError(
            "receipt message must have v, aud, iat, device_id, transaction_id, nonce, type "
            "and optionally via",
            "invalid_request",
            400,
        )
    if message["type"] != "receipt" or message["v"] != RECEIPT_VERSION:
        raise RequestError('receipt message needs type "receipt" and v 1', "invalid_request", 400)
    if "via" in message and message["via"] not in RECEIPT_VIA:
        raise RequestError(
            f"receipt via must be one of {', '.join(RECEIPT_VIA)}", "invalid_request", 400
        )
    for key in ("device_id", "transaction_id", "nonce"):
        if not is_identifier(message[key]):
            raise RequestError(
                f"receipt {key} must be a string of 1 to 64 characters without NUL",
                "invalid_request",
                400,
            )
    if message["aud"] != audience:
        raise DeviceAuthError("receipt is for another server")
    if not within_clock_skew(message["iat"], now):
        raise DeviceAuthError("receipt iat outside the allowed clock skew")
    return message


async def record_receipt(
    database: Database, audience: str, now: datetime, message: Any, signature: Any
) -> ReceiptResult:
    """Verify a signed receipt and record the delivery; raise DeviceAuthError when it fails."""
    message = check_receipt_message(message, audience, now)
    async with database.read() as session:
        device = await session.get(DeviceRow, message["device_id"])
        row = await session.get(TransactionRow, message["transaction_id"])
    if device is None or device.revoked_at is not None:
        raise DeviceAuthError("receipt from an unknown or revoked device")
    try:
        verify(public_key_from_text(device.signing_key), message, str(signature))
    except BadSignature as exc:
        raise DeviceAuthError("receipt signature invalid") from exc
    if row is None or row.verification == "none":
        raise NotFoundError(f"transaction {message['transaction_id']!r} not found")
    if (row.auth_profile, row.user_id) != (device.auth_profile, device.user_id):
        raise DeviceAuthError("receipt from a device of another user")
    if not hmac.compare_digest(str(message["nonce"]), row.nonce):
        raise DeviceAuthError("receipt nonce does not match the challenge")

    via = message.get("via")
    first = await _mark_delivered(database, row.id, device.id, via, now)
    if first:
        DELIVERY_LATENCY.labels(provider_label(via)).observe(
            max((now - row.created_at).total_seconds(), 0.0)
        )
        log.info(
            "challenge delivered transaction=%s device=%s via=%s latency_ms=%d",
            row.id,
            device.id,
            via,
            (now - row.created_at).total_seconds() * 1000,
        )
    return ReceiptResult(row.id, row.delivered_at or now, first)


async def _mark_delivered(
    database: Database, transaction_id: str, device_id: str, via: str | None, now: datetime
) -> bool:
    """Set the transaction's first delivery time and the device's; return whether the device's
    row was new or had no receipt yet."""
    for _ in range(2):
        try:
            async with database.write() as session:
                await session.execute(
                    update(TransactionRow)
                    .where(
                        TransactionRow.id == transaction_id, TransactionRow.delivered_at.is_(None)
                    )
                    .values(delivered_at=now)
                )
                delivery = await session.get(ChallengeDeliveryRow, (transaction_id, device_id))
                if delivery is None:
                    session.add(
                        ChallengeDeliveryRow(
                            transaction_id=transaction_id,
                            device_id=device_id,
                            delivered_at=now,
                            received_via=via,
                        )
                    )
                    return True
                if delivery.delivered_at is not None:
                    return False
                delivery.delivered_at, delivery.received_via = now, via
                return True
        except IntegrityError:
            # The router inserted the device's row at the same moment: update it instead.
            continue
    return False
