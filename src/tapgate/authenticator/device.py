"""The device side of the protocol, as a phone app implements it (see docs/device-protocol.md)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from tapgate.authenticator.state import DeviceState
from tapgate.crypto.signing import (
    BadSignature,
    b64url_encode,
    canonical,
    new_private_key,
    private_key_from_text,
    private_key_to_text,
    public_key_from_text,
    public_key_to_text,
    sign,
    verify,
)
from tapgate.delivery.sealing import SealError, open_sealed
from tapgate.devices.protocol import DEVICE_AUTH_SCHEME as SCHEME
from tapgate.devices.protocol import ENROLLMENT_PATH
from tapgate.errors import ConfigError
from tapgate.relay.device_client import (
    RelayError,
    create_mailbox,
    fetch_sealed,
    post_through_relay,
    stream_sealed,
)

TIMEOUT = httpx.Timeout(10.0, read=30.0)


class ProtocolError(Exception):
    """The server answered something the device cannot accept."""


def split_enrollment_url(url: str) -> tuple[str, str]:
    """Return (public_url, token) from an enrollment URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or ENROLLMENT_PATH not in parts.path:
        raise ConfigError(f"invalid enrollment URL {url!r}; expected https://HOST/e/TOKEN")
    prefix, _, token = parts.path.rpartition(ENROLLMENT_PATH)
    if not token or "/" in token:
        raise ConfigError(f"invalid enrollment URL {url!r}: no token after {ENROLLMENT_PATH}")
    return f"{parts.scheme}://{parts.netloc}{prefix}", token


def enroll(
    url: str, name: str, platform: str = "tapgate-cli", relay_url: str | None = None
) -> DeviceState:
    public_url, token = split_enrollment_url(url)
    relay = None
    delivery: dict[str, Any] = {"direct": True}
    if relay_url is not None:
        relay = {"url": relay_url.rstrip("/"), **_relay_call(create_mailbox, relay_url, public_url)}
        delivery = {"relay": {"url": relay["url"], "address": relay["address"]}}
    signing = new_private_key()
    agreement = new_private_key()
    signing_text = public_key_to_text(signing.public_key())
    agreement_text = public_key_to_text(agreement.public_key())
    proof_message = {
        "v": 1,
        "aud": public_url,
        "type": "enroll",
        "token": token,
        "signing_key": signing_text,
        "agreement_key": agreement_text,
    }
    body = {
        "token": token,
        "signing_key": signing_text,
        "agreement_key": agreement_text,
        "name": name,
        "platform": platform,
        "delivery": delivery,
        "proof": sign(signing, proof_message),
    }
    response = httpx.post(f"{public_url}/device/v1/enroll", json=body, timeout=TIMEOUT)
    if response.status_code == 401:
        # A link made by `tapgate enroll` carries the address from the settings of the shell it
        # ran in, which can name another server than the one that issued the token.
        raise ProtocolError(
            f"enrollment failed: HTTP 401 {_message(response)}; the link points at "
            f"{public_url}, so if the issuing server runs at another address, issue the link "
            "with the same TAPGATE_LISTEN or TAPGATE_PUBLIC_URL as the server"
        )
    if response.status_code != 201:
        raise ProtocolError(f"enrollment failed: HTTP {response.status_code} {_message(response)}")
    data = response.json()
    return DeviceState(
        public_url=public_url,
        device_id=data["device_id"],
        username=data["username"],
        name=name,
        signing_key=private_key_to_text(signing),
        agreement_key=private_key_to_text(agreement),
        server_signing_key=data["server_signing_key"],
        confirmation_code=data.get("confirmation_code"),
        relay=relay,
    )


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except ValueError:
        return response.text[:200]


def request_header(state: DeviceState, method: str, path: str) -> str:
    payload = {
        "v": 1,
        "aud": state.public_url,
        "iat": int(time.time()),
        "device_id": state.device_id,
        "nonce": secrets.token_urlsafe(16),
        "method": method,
        "path": path,
    }
    signature = sign(private_key_from_text(state.signing_key), payload)
    return f"{SCHEME} {b64url_encode(canonical(payload))}.{signature}"


def _path(state: DeviceState, suffix: str) -> str:
    return urlsplit(state.public_url).path.rstrip("/") + suffix


def verify_challenge(state: DeviceState, envelope: dict[str, Any]) -> dict[str, Any]:
    """Return the challenge message if the pinned server key signed it, else raise ProtocolError."""
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise ProtocolError("challenge without a message")
    try:
        verify(
            public_key_from_text(state.server_signing_key),
            message,
            str(envelope.get("signature", "")),
        )
    except BadSignature as exc:
        raise ProtocolError("challenge signature does not match the pinned server key") from exc
    if message.get("aud") != state.public_url:
        raise ProtocolError("challenge is for another server")
    return message


def fetch_challenges(state: DeviceState) -> list[dict[str, Any]]:
    if state.relay is not None:
        return [open_challenge(state, sealed) for sealed in _relay_call(fetch_sealed, state.relay)]
    path = _path(state, "/device/v1/challenges")
    response = httpx.get(
        state.public_url + "/device/v1/challenges",
        headers={"Authorization": request_header(state, "GET", path)},
        timeout=TIMEOUT,
    )
    if response.status_code != 200:
        raise ProtocolError(f"polling failed: HTTP {response.status_code} {_message(response)}")
    return [verify_challenge(state, envelope) for envelope in response.json()["challenges"]]


def stream_events(state: DeviceState) -> Iterator[dict[str, Any]]:
    """Yield events from the direct stream, or the relay mailbox, until it drops (the caller
    reconnects). A challenge event carries `via`, the provider that brought it."""
    if state.relay is not None:
        for sealed in _relay_call(stream_sealed, state.relay):
            yield {"event": "challenge", "message": open_challenge(state, sealed), "via": "relay"}
        return
    path = _path(state, "/device/v1/stream")
    headers = {"Authorization": request_header(state, "GET", path), "Accept": "text/event-stream"}
    with httpx.stream(
        "GET",
        state.public_url + "/device/v1/stream",
        headers=headers,
        timeout=httpx.Timeout(10.0, read=60.0),
    ) as response:
        if response.status_code != 200:
            raise ProtocolError(f"stream rejected: HTTP {response.status_code}")
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event.get("event") == "challenge":
                    event["message"] = verify_challenge(state, event)
                    event["via"] = "direct"
                yield event


def send_answer(
    state: DeviceState, challenge: dict[str, Any], decision: str, *, number: str | None, uv: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "v": 1,
        "aud": state.public_url,
        "iat": int(time.time()),
        "device_id": state.device_id,
        "transaction_id": challenge["transaction_id"],
        "nonce": challenge["nonce"],
        "decision": decision,
        "uv": uv,
    }
    if number is not None:
        message["number"] = number
    body = {
        "message": message,
        "signature": sign(private_key_from_text(state.signing_key), message),
    }
    response = _post_signed(state, "answer", body)
    if response.status_code not in (200, 409):
        raise ProtocolError(f"answer failed: HTTP {response.status_code} {_message(response)}")
    result: dict[str, Any] = response.json()
    return result


def _relay_call(function: Any, *args: Any) -> Any:
    """Call a relay client function, turning relay failures into ProtocolError."""
    try:
        return function(*args)
    except RelayError as exc:
        raise ProtocolError(str(exc)) from exc


def _post_signed(state: DeviceState, kind: str, body: dict[str, Any]) -> httpx.Response:
    """Post a signed answer or receipt to the server, or through the relay when enrolled so."""
    if state.relay is not None:
        return post_through_relay(state.relay, kind, body)
    return httpx.post(f"{state.public_url}/device/v1/{kind}", json=body, timeout=TIMEOUT)


def open_challenge(state: DeviceState, sealed: dict[str, Any]) -> dict[str, Any]:
    """Decrypt a sealed challenge with the agreement key and verify the server's signature."""
    try:
        envelope = open_sealed(sealed, private_key_from_text(state.agreement_key), state.device_id)
    except SealError as exc:
        raise ProtocolError(f"sealed challenge rejected: {exc}") from exc
    return verify_challenge(state, envelope)


def send_receipt(state: DeviceState, challenge: dict[str, Any], via: str) -> dict[str, Any]:
    """Tell the server, by a signed receipt, that the challenge reached this device."""
    message = {
        "v": 1,
        "aud": state.public_url,
        "iat": int(time.time()),
        "device_id": state.device_id,
        "transaction_id": challenge["transaction_id"],
        "nonce": challenge["nonce"],
        "type": "receipt",
        "via": via,
    }
    body = {
        "message": message,
        "signature": sign(private_key_from_text(state.signing_key), message),
    }
    response = _post_signed(state, "receipt", body)
    if response.status_code != 200:
        raise ProtocolError(f"receipt failed: HTTP {response.status_code} {_message(response)}")
    result: dict[str, Any] = response.json()
    return result
