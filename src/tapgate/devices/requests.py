"""Authentication of device requests (polling, opening a stream): signed, timestamped, one-time.

The `Authorization` header carries `TapgateDevice <payload>.<signature>`, where payload is the
base64url of the canonical JSON {v, aud, iat, device_id, nonce, method, path}. A nonce is
accepted once within the clock-skew window, so a captured request cannot be replayed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from tapgate import jsondepth
from tapgate.crypto.signing import BadSignature, b64url_decode, public_key_from_text, verify
from tapgate.devices.protocol import DEVICE_AUTH_SCHEME
from tapgate.errors import DeviceAuthError
from tapgate.identifiers import is_identifier
from tapgate.push.challenge import MAX_CLOCK_SKEW, within_clock_skew
from tapgate.store.database import Database
from tapgate.store.models import DeviceNonceRow, DeviceRow

SCHEME = DEVICE_AUTH_SCHEME
_KEYS = {"v", "aud", "iat", "device_id", "nonce", "method", "path"}


def parse_header(header: str | None) -> tuple[dict[str, Any], str]:
    if not header or not header.startswith(SCHEME + " ") or len(header) > 4096:
        raise DeviceAuthError("missing or malformed device authorization")
    payload_text, _, signature = header[len(SCHEME) + 1 :].partition(".")
    try:
        payload = jsondepth.loads(b64url_decode(payload_text))
    except (BadSignature, ValueError) as exc:
        raise DeviceAuthError("device authorization payload is not JSON") from exc
    if not isinstance(payload, dict) or set(payload) != _KEYS:
        raise DeviceAuthError("device authorization payload has wrong fields")
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DeviceAuthError("device authorization payload is not valid text") from exc
    return payload, signature


async def authenticate_device(
    database: Database, header: str | None, *, audience: str, method: str, path: str, now: datetime
) -> DeviceRow:
    """Return the device that signed this request, or raise DeviceAuthError."""
    payload, signature = parse_header(header)
    if (
        type(payload["v"]) is not int
        or payload["v"] != 1
        or payload["aud"] != audience
        or payload["method"] != method
        or payload["path"] != path
    ):
        raise DeviceAuthError("device authorization is for another server or request")
    if not within_clock_skew(payload["iat"], now):
        raise DeviceAuthError("device authorization iat outside the allowed clock skew")
    nonce = payload["nonce"]
    if (
        not isinstance(nonce, str)
        or not 16 <= len(nonce) <= 64
        or "\x00" in nonce
        or not is_identifier(payload["device_id"])
    ):
        raise DeviceAuthError("device authorization nonce is invalid")

    async with database.read() as session:
        device = await session.get(DeviceRow, payload["device_id"])
    if device is None or device.revoked_at is not None:
        raise DeviceAuthError("device unknown or revoked")
    try:
        verify(public_key_from_text(device.signing_key), payload, signature)
    except BadSignature as exc:
        raise DeviceAuthError("device authorization signature invalid") from exc

    try:
        async with database.write() as session:
            session.add(
                DeviceNonceRow(
                    device_id=device.id,
                    nonce=nonce,
                    expires_at=now + timedelta(seconds=2 * MAX_CLOCK_SKEW),
                )
            )
            device_row = await session.get(DeviceRow, device.id)
            if device_row is not None:
                device_row.last_seen_at = now
    except IntegrityError as exc:
        raise DeviceAuthError("device authorization replayed") from exc
    return device


async def prune_nonces(database: Database, now: datetime) -> None:
    async with database.write() as session:
        await session.execute(delete(DeviceNonceRow).where(DeviceNonceRow.expires_at < now))
