"""The pure core of a push: new challenge values, the signed challenge, and checking a decision.

No I/O here: the caller passes the transaction and device as values and the current time, and
gets back what to do. Every rule of invariant 1 (signature, ownership, nonce, expiry, number,
exactly once) is decided in `check_decision`.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tapgate.crypto.signing import BadSignature, public_key_from_text, verify

MESSAGE_VERSION = 1
DECISIONS = ("approve", "deny", "fraud")
# How far a device's clock may be from the server's, in seconds.
MAX_CLOCK_SKEW = 300


def within_clock_skew(issued: object, now: datetime) -> bool:
    """Return whether a signed message's `iat` is an integer within MAX_CLOCK_SKEW of `now`.

    The difference is taken in integers: a float conversion of a huge `iat` would raise
    OverflowError before the signature was even checked.
    """
    if isinstance(issued, bool) or not isinstance(issued, int):
        return False
    return abs(issued - int(now.timestamp())) <= MAX_CLOCK_SKEW


_DECISION_KEYS = {
    "v",
    "aud",
    "iat",
    "transaction_id",
    "nonce",
    "decision",
    "uv",
    "device_id",
    "number",
}


def new_transaction_id() -> str:
    # Hex, not base64url: an id that starts with "-" would read as an option on a command line.
    return secrets.token_hex(16)


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def new_digits(count: int) -> str:
    """Return `count` random decimal digits, leading zeros kept."""
    return str(secrets.randbelow(10**count)).zfill(count)


@dataclass(frozen=True)
class TransactionView:
    id: str
    status: str
    nonce: str
    verification: str
    auth_profile: str | None
    user_id: str | None
    expires_at: datetime
    number_hash: str | None
    require_user_verification: bool
    code_issued: bool


@dataclass(frozen=True)
class DeviceView:
    id: str
    auth_profile: str
    user_id: str
    signing_key: str
    revoked: bool


@dataclass(frozen=True)
class DecisionCheck:
    """The verdict on one device answer.

    `accepted` answers resolve the transaction with `status`; rejected ones change nothing and
    carry `problem` for the audit log only. `wrong_number` answers end the transaction as denied,
    because a second guess at a 2-digit number would succeed one time in a hundred.
    """

    accepted: bool
    status: str | None = None
    problem: str | None = None


def _unknown_fields(names: set[str]) -> str:
    """Return the number of unknown fields and the first one, in at most 64 characters.

    The problem becomes the audit record's reason, and a client may send thousands of fields
    with long names."""
    listed = sorted(names)
    first = repr(listed[0][:24])
    if len(listed) == 1:
        return f"unknown field {first}"[:64]
    return f"{len(listed)} unknown fields, first {first}"[:64]


def check_decision(
    message: Any,
    signature: Any,
    transaction: TransactionView,
    device: DeviceView,
    *,
    audience: str,
    now: datetime,
    hash_number: Any,
) -> DecisionCheck:
    """Decide what a signed device answer does to a transaction."""
    if not isinstance(message, dict) or not isinstance(signature, str):
        return DecisionCheck(False, problem="malformed answer")
    unknown = set(message) - _DECISION_KEYS
    if unknown:
        return DecisionCheck(False, problem=_unknown_fields(unknown))
    if (
        type(message.get("v")) is not int
        or message["v"] != MESSAGE_VERSION
        or message.get("aud") != audience
    ):
        return DecisionCheck(False, problem="wrong version or audience")
    if message.get("device_id") != device.id or message.get("transaction_id") != transaction.id:
        return DecisionCheck(False, problem="answer names another device or transaction")
    if device.revoked:
        return DecisionCheck(False, problem="device revoked")
    if (device.auth_profile, device.user_id) != (transaction.auth_profile, transaction.user_id):
        return DecisionCheck(False, problem="device belongs to another user")
    try:
        verify(public_key_from_text(device.signing_key), message, signature)
    except BadSignature:
        return DecisionCheck(False, problem="bad signature")
    nonce = message.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode(), transaction.nonce.encode()
    ):
        return DecisionCheck(False, problem="nonce does not match the challenge")
    if not within_clock_skew(message.get("iat"), now):
        return DecisionCheck(False, problem="iat outside the allowed clock skew")
    decision = message.get("decision")
    if decision not in DECISIONS or not isinstance(message.get("uv"), bool):
        return DecisionCheck(False, problem="invalid decision or uv")
    if transaction.status != "pending" or transaction.code_issued:
        return DecisionCheck(False, problem=f"transaction already {transaction.status}")
    if now >= transaction.expires_at:
        return DecisionCheck(False, problem="answer arrived after expiry")
    if decision == "deny":
        return DecisionCheck(True, status="denied")
    if decision == "fraud":
        return DecisionCheck(True, status="fraud")
    if transaction.require_user_verification and not message["uv"]:
        return DecisionCheck(False, problem="user verification required but not performed")
    if transaction.verification == "number":
        number = message.get("number")
        if number is not None and not isinstance(number, str):
            # A client's type error, not the person's wrong guess: the login stays open.
            return DecisionCheck(False, problem="number is not a string")
        expected = transaction.number_hash or ""
        if number is None or not hmac.compare_digest(hash_number(number), expected):
            return DecisionCheck(True, status="denied", problem="wrong_number")
    return DecisionCheck(True, status="approved")


def challenge_message(
    *,
    audience: str,
    transaction: TransactionView,
    context: dict[str, Any],
    number_digits: int,
) -> dict[str, Any]:
    """Build the challenge a device receives; the server signs it. Never contains the number."""
    return {
        "v": MESSAGE_VERSION,
        "aud": audience,
        "type": "challenge",
        "transaction_id": transaction.id,
        "nonce": transaction.nonce,
        "verification": transaction.verification,
        "number_digits": number_digits if transaction.verification == "number" else 0,
        "require_user_verification": transaction.require_user_verification,
        "expires_at": transaction.expires_at.isoformat(),
        **context,
    }
