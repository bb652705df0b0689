"""Sealed challenges: ECDH P-256 + HKDF-SHA256 + AES-256-GCM to the device's agreement key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tapgate.crypto.signing import b64url_decode, b64url_encode, new_private_key, public_key_to_text
from tapgate.delivery.sealing import SealError, open_sealed, seal

ENVELOPE: dict[str, Any] = {
    "message": {"transaction_id": "tx-1", "username": "ayşe", "client_ip": "203.0.113.9"},
    "signature": "c2lnbmF0dXJl",
}


def sealed_for(
    key: Any, device_id: str = "device-1", transaction_id: str = "tx-1"
) -> dict[str, Any]:
    return seal(ENVELOPE, public_key_to_text(key.public_key()), transaction_id, device_id)


def test_seal_round_trip() -> None:
    key = new_private_key()
    assert open_sealed(sealed_for(key), key, "device-1") == ENVELOPE


def test_seal_hides_plaintext() -> None:
    sealed = sealed_for(new_private_key())
    text = repr(sealed)
    assert "ayşe" not in text
    assert "203.0.113.9" not in text


def test_seal_uses_fresh_ephemeral_key() -> None:
    key = new_private_key()
    assert sealed_for(key)["epk"] != sealed_for(key)["epk"]


def _flip(text: str) -> str:
    raw = bytearray(b64url_decode(text))
    raw[len(raw) // 2] ^= 0x01
    return b64url_encode(bytes(raw))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: s.update(ciphertext=_flip(s["ciphertext"])), id="ciphertext"),
        pytest.param(lambda s: s.update(iv=_flip(s["iv"])), id="iv"),
        pytest.param(lambda s: s.update(transaction_id="tx-2"), id="transaction-id"),
        pytest.param(
            lambda s: s.update(epk=public_key_to_text(new_private_key().public_key())), id="epk"
        ),
        pytest.param(lambda s: s.update(alg="none"), id="algorithm"),
        pytest.param(lambda s: s.pop("iv"), id="missing-field"),
        pytest.param(lambda s: s.update(extra=1), id="extra-field"),
    ],
)
def test_open_rejects_altered(tamper: Any) -> None:
    key = new_private_key()
    sealed = copy.deepcopy(sealed_for(key))
    tamper(sealed)
    with pytest.raises(SealError):
        open_sealed(sealed, key, "device-1")


def test_open_rejects_other_device() -> None:
    key = new_private_key()
    with pytest.raises(SealError):
        open_sealed(sealed_for(key, device_id="device-2"), key, "device-1")


def test_open_rejects_other_key() -> None:
    with pytest.raises(SealError):
        open_sealed(sealed_for(new_private_key()), new_private_key(), "device-1")


def test_open_rejects_moved_content() -> None:
    """A relay that relabels a sealed challenge for another transaction breaks the AAD."""
    key = new_private_key()
    other = seal(
        {**ENVELOPE, "message": {**ENVELOPE["message"], "transaction_id": "tx-2"}},
        public_key_to_text(key.public_key()),
        "tx-2",
        "device-1",
    )
    other["transaction_id"] = "tx-1"
    with pytest.raises(SealError):
        open_sealed(other, key, "device-1")
