"""End-to-end encryption of a challenge to the device's key-agreement key.

Every provider except `direct` carries the challenge sealed, so a relay or a push service sees
only ciphertext. The scheme (also in docs/device-protocol.md, "Sealed challenges"):

- The sender makes a fresh ephemeral P-256 key pair for each message and computes the ECDH
  shared secret Z with the device's registered agreement key.
- key = HKDF-SHA256(IKM = Z, salt = EPK || RPK, info = "tapgate seal v1", length = 32), where
  EPK and RPK are the 65-byte uncompressed points of the ephemeral and the device key (RFC 5869).
- The plaintext is the RFC 8785 canonical JSON of the signed envelope {"message", "signature"},
  so the device still checks the server's signature after decrypting.
- AES-256-GCM with a random 96-bit IV; the associated data is the canonical JSON of
  {"v": 1, "type": "sealed", "transaction_id", "device_id"}, so a sealed challenge moved to
  another transaction or device fails to decrypt.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tapgate.crypto.signing import (
    BadSignature,
    b64url_decode,
    b64url_encode,
    canonical,
    public_key_from_text,
)

SEAL_VERSION = 1
ALGORITHM = "ECDH-P256+HKDF-SHA256+A256GCM"
_INFO = b"tapgate seal v1"
_IV_BYTES = 12
_FIELDS = {"v", "alg", "transaction_id", "device_id", "epk", "iv", "ciphertext"}


class SealError(Exception):
    """A sealed challenge that cannot be opened; one error for every cause, as with signatures."""


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _derive_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_INFO).derive(shared)


def associated_data(transaction_id: str, device_id: str) -> bytes:
    return canonical(
        {
            "v": SEAL_VERSION,
            "type": "sealed",
            "transaction_id": transaction_id,
            "device_id": device_id,
        }
    )


def seal(
    envelope: dict[str, Any], recipient_key: str, transaction_id: str, device_id: str
) -> dict[str, Any]:
    """Encrypt the signed `envelope` to the device's agreement key (base64url P-256 point)."""
    try:
        recipient = public_key_from_text(recipient_key)
    except BadSignature as exc:
        raise SealError("the device's agreement key is not a P-256 point") from exc
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    ephemeral_point = _point(ephemeral.public_key())
    key = _derive_key(ephemeral.exchange(ec.ECDH(), recipient), ephemeral_point, _point(recipient))
    iv = secrets.token_bytes(_IV_BYTES)
    ciphertext = AESGCM(key).encrypt(
        iv, canonical(envelope), associated_data(transaction_id, device_id)
    )
    return {
        "v": SEAL_VERSION,
        "alg": ALGORITHM,
        "transaction_id": transaction_id,
        "device_id": device_id,
        "epk": b64url_encode(ephemeral_point),
        "iv": b64url_encode(iv),
        "ciphertext": b64url_encode(ciphertext),
    }


def open_sealed(
    sealed: Any, private_key: ec.EllipticCurvePrivateKey, device_id: str
) -> dict[str, Any]:
    """Decrypt a sealed challenge addressed to `device_id`; return the signed envelope.

    The caller must still verify the envelope's server signature. Raises SealError when the
    sealed object is malformed, addressed to another device, altered, or not for this key.
    """
    if not isinstance(sealed, dict) or set(sealed) != _FIELDS:
        raise SealError("sealed challenge has wrong fields")
    if sealed["v"] != SEAL_VERSION or sealed["alg"] != ALGORITHM:
        raise SealError("sealed challenge uses an unknown version or algorithm")
    transaction_id = sealed["transaction_id"]
    if sealed["device_id"] != device_id or not isinstance(transaction_id, str):
        raise SealError("sealed challenge is addressed to another device")
    try:
        ephemeral_point = b64url_decode(sealed["epk"])
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ephemeral_point)
        iv = b64url_decode(sealed["iv"])
        ciphertext = b64url_decode(sealed["ciphertext"])
    except (BadSignature, ValueError, TypeError) as exc:
        raise SealError("sealed challenge is malformed") from exc
    if len(iv) != _IV_BYTES:
        raise SealError("sealed challenge is malformed")
    key = _derive_key(
        private_key.exchange(ec.ECDH(), ephemeral),
        ephemeral_point,
        _point(private_key.public_key()),
    )
    try:
        plain = AESGCM(key).decrypt(iv, ciphertext, associated_data(transaction_id, device_id))
    except InvalidTag as exc:
        raise SealError("sealed challenge does not decrypt: altered or not for this key") from exc
    try:
        envelope = json.loads(plain)
    except ValueError as exc:
        raise SealError("sealed challenge does not contain JSON") from exc
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict) or message.get("transaction_id") != transaction_id:
        raise SealError("sealed challenge names another transaction than its content")
    opened: dict[str, Any] = envelope
    return opened
