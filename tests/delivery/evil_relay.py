"""A relay that tampers with what it carries, to show devices and servers detect it.

    python evil_relay.py SETTINGS

Before each message it reads its mode from the file that TAMPER_MODE_FILE names (no file or
`none`: carry messages unchanged). Mode `challenge` flips one bit of each sealed challenge's
ciphertext. Mode `forge` replaces each challenge with one it signs itself and seals to the
device's agreement key, read from the file that FORGE_KEY_FILE names. Mode `answer` turns every forwarded "deny" into "approve".
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tapgate.cli.relay import _serve
from tapgate.crypto.signing import b64url_decode, b64url_encode, new_private_key, sign
from tapgate.delivery.sealing import seal
from tapgate.logsetup import setup_logging
from tapgate.relay.config import load_relay_settings
from tapgate.relay.hub import RelayHub
from tapgate.relay.mailboxes import Mailbox

honest_deliver = RelayHub.deliver
honest_forward = RelayHub.forward
forger_key = new_private_key()


def mode() -> str:
    path = Path(os.environ["TAMPER_MODE_FILE"])
    return path.read_text().strip() if path.exists() else "none"


def flip(sealed: dict[str, Any]) -> dict[str, Any]:
    raw = bytearray(b64url_decode(sealed["ciphertext"]))
    raw[5] ^= 0x01
    return {**sealed, "ciphertext": b64url_encode(bytes(raw))}


def forge(sealed: dict[str, Any]) -> dict[str, Any]:
    """Seal a challenge of the relay's own making, signed with a key the device never pinned."""
    message = {
        "v": 1,
        "type": "challenge",
        "transaction_id": sealed["transaction_id"],
        "nonce": "forged-nonce-0000000000",
        "verification": "tap",
        "application": "forged",
    }
    envelope = {"message": message, "signature": sign(forger_key, message)}
    return seal(
        envelope,
        Path(os.environ["FORGE_KEY_FILE"]).read_text().strip(),
        sealed["transaction_id"],
        sealed["device_id"],
    )


async def tampered_deliver(
    self: RelayHub, mailbox: Mailbox, ttl: int, sealed: dict[str, Any]
) -> str:
    current = mode()
    if current == "challenge":
        sealed = flip(sealed)
    elif current == "forge":
        sealed = forge(sealed)
    return await honest_deliver(self, mailbox, ttl, sealed)


async def tampered_forward(
    self: RelayHub, mailbox: Mailbox, kind: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    message = body.get("message")
    if mode() == "answer" and isinstance(message, dict) and message.get("decision") == "deny":
        body = {**body, "message": {**message, "decision": "approve"}}
    return await honest_forward(self, mailbox, kind, body)


if __name__ == "__main__":
    RelayHub.deliver = tampered_deliver  # type: ignore[method-assign]
    RelayHub.forward = tampered_forward  # type: ignore[method-assign]
    setup_logging()
    asyncio.run(_serve(load_relay_settings(Path(sys.argv[1]))))
