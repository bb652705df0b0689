"""Answers and receipts that devices post to a relay, handled as the device API handles them.

The relay forwards the device's signed body unchanged; the signature check here is the same as
for a direct request, so a relay that alters an answer gets it rejected. A device may use only
its own relay mailbox, so one device's mailbox cannot carry another's messages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tapgate.delivery.receipts import record_receipt
from tapgate.errors import DeviceAuthError, NotFoundError, RequestError
from tapgate.push.answers import record_answer
from tapgate.store.models import DeviceRow

if TYPE_CHECKING:
    from tapgate.push.service import LoginService

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": code, "message": message}


async def handle_relayed_request(
    service: LoginService, kind: str, address: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Process one forwarded device request; return the HTTP status and body for the device."""
    message, signature = body.get("message"), body.get("signature")
    if not isinstance(message, dict) or not isinstance(signature, str):
        return _error(400, "invalid_request", 'body must be {"message": {...}, "signature": "..."}')
    device_id = message.get("device_id")
    if not isinstance(device_id, str) or len(device_id) > 64:
        return _error(
            400,
            "invalid_request",
            "message.device_id is missing; it must be the device's id, a string of at most 64 "
            "characters",
        )
    async with service.database.read() as session:
        device = await session.get(DeviceRow, device_id)
    relay = (device.delivery or {}).get("relay") if device is not None else None
    if device is None or not isinstance(relay, dict) or relay.get("address") != address:
        log.info("relayed request rejected device=%s problem=mailbox mismatch", device_id)
        return _error(401, "device_auth_failed", "device request rejected")
    try:
        if kind == "receipt":
            receipt = await record_receipt(
                service.database, service.public_url, service.clock.now(), message, signature
            )
            return 200, {"recorded": True, "first": receipt.first}
        result = await record_answer(service, device, message, signature)
    except DeviceAuthError as exc:
        log.info(
            "relayed request rejected device=%s kind=%s detail=%s", device_id, kind, exc.detail
        )
        return _error(401, "device_auth_failed", "device request rejected")
    except NotFoundError as exc:
        return _error(404, "not_found", str(exc))
    except RequestError as exc:
        return _error(exc.status, exc.code, str(exc))
    reply: dict[str, Any] = {"accepted": result.accepted, "status": result.status}
    if result.code is not None:
        reply["code"] = result.code
    return (200 if result.accepted else 409), reply
