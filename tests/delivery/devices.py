"""Enroll a reference device that registers push addresses (FCM, APNs, Web Push) at enrollment."""

from __future__ import annotations

from typing import Any

import httpx

from tapgate.authenticator.device import split_enrollment_url
from tapgate.authenticator.state import DeviceState
from tapgate.crypto.signing import new_private_key, private_key_to_text, public_key_to_text, sign


def enroll_with_delivery(url: str, delivery: dict[str, Any], name: str = "Telefon") -> DeviceState:
    public_url, token = split_enrollment_url(url)
    signing = new_private_key()
    agreement = new_private_key()
    signing_text = public_key_to_text(signing.public_key())
    agreement_text = public_key_to_text(agreement.public_key())
    proof = {
        "v": 1,
        "aud": public_url,
        "type": "enroll",
        "token": token,
        "signing_key": signing_text,
        "agreement_key": agreement_text,
    }
    response = httpx.post(
        f"{public_url}/device/v1/enroll",
        json={
            "token": token,
            "signing_key": signing_text,
            "agreement_key": agreement_text,
            "name": name,
            "platform": "web",
            "delivery": delivery,
            "proof": sign(signing, proof),
        },
    )
    assert response.status_code == 201, response.text
    data = response.json()
    return DeviceState(
        public_url=public_url,
        device_id=data["device_id"],
        username=data["username"],
        name=name,
        signing_key=private_key_to_text(signing),
        agreement_key=private_key_to_text(agreement),
        server_signing_key=data["server_signing_key"],
    )
