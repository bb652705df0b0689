"""Turn a transaction into the signed challenge envelope and hand it to delivery providers."""

from __future__ import annotations

from typing import Any

from tapgate.crypto.signing import sign
from tapgate.delivery.direct import DirectHub
from tapgate.keys import KeyRing
from tapgate.push.challenge import TransactionView, challenge_message
from tapgate.store.models import TransactionRow

_CONTEXT_KEYS = ("application", "client_ip", "location", "user_agent", "created_at")


def transaction_view(row: TransactionRow) -> TransactionView:
    return TransactionView(
        id=row.id,
        status=row.status,
        nonce=row.nonce,
        verification=row.verification,
        auth_profile=row.auth_profile,
        user_id=row.user_id,
        expires_at=row.expires_at,
        number_hash=row.number_hash,
        require_user_verification=row.require_user_verification,
        code_issued=row.code_hash is not None,
    )


def signed_challenge(keyring: KeyRing, audience: str, row: TransactionRow) -> dict[str, Any]:
    """Return {"message": challenge, "signature": server ES256 signature} for one transaction."""
    context = {key: row.context.get(key) for key in _CONTEXT_KEYS}
    context["username"] = row.username
    message = challenge_message(
        audience=audience,
        transaction=transaction_view(row),
        context=context,
        number_digits=row.number_digits,
    )
    return {"message": message, "signature": sign(keyring.server_signing_key(), message)}


def publish_challenge(
    hub: DirectHub, keyring: KeyRing, audience: str, row: TransactionRow, device_ids: list[str]
) -> int:
    """Send the challenge to every connected device; return how many streams took it."""
    envelope = {"event": "challenge", **signed_challenge(keyring, audience, row)}
    return sum(hub.send(device_id, envelope) for device_id in device_ids)


def publish_closed(hub: DirectHub, device_ids: list[str], transaction_id: str, status: str) -> None:
    """Tell devices a transaction is closed, so they drop its prompt."""
    for device_id in device_ids:
        hub.send(device_id, {"event": "closed", "transaction_id": transaction_id, "status": status})
