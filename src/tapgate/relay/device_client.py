"""The device side of the relay: create a mailbox, listen on it, send answers and receipts.

The reference authenticator uses these when it enrolled with `--relay URL`; a phone app does
the same over HTTPS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from tapgate.relay import protocol

TIMEOUT = httpx.Timeout(10.0, read=30.0)


class RelayError(Exception):
    """The relay refused a request or could not reach the server."""


def _check(response: httpx.Response, action: str) -> None:
    if response.status_code >= 400:
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = response.text[:200]
        raise RelayError(f"relay {action} failed: HTTP {response.status_code} {message}".strip())


def create_mailbox(
    relay_url: str, server_url: str, wake: dict[str, Any] | None = None
) -> dict[str, str]:
    """Create a mailbox for the tapgate server at `server_url`; return {"address", "token"}."""
    body: dict[str, Any] = {"server": server_url}
    if wake:
        body["wake"] = wake
    response = httpx.post(relay_url.rstrip("/") + protocol.MAILBOX_PATH, json=body, timeout=TIMEOUT)
    _check(response, "mailbox creation")
    data = response.json()
    return {"address": str(data["address"]), "token": str(data["token"])}


def _mailbox_url(relay: dict[str, str], suffix: str) -> str:
    return f"{relay['url'].rstrip('/')}{protocol.MAILBOX_PATH}/{relay['address']}{suffix}"


def _headers(relay: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {relay['token']}"}


def stream_sealed(relay: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Yield sealed challenges from the mailbox stream until it drops (the caller reconnects)."""
    with httpx.stream(
        "GET",
        _mailbox_url(relay, "/stream"),
        headers={**_headers(relay), "Accept": "text/event-stream"},
        timeout=httpx.Timeout(10.0, read=60.0),
    ) as response:
        if response.status_code != 200:
            raise RelayError(f"relay stream rejected: HTTP {response.status_code}")
        for line in response.iter_lines():
            if line.startswith("data: "):
                sealed = json.loads(line[6:]).get("sealed")
                if isinstance(sealed, dict):
                    yield sealed


def fetch_sealed(relay: dict[str, str]) -> list[dict[str, Any]]:
    response = httpx.get(_mailbox_url(relay, "/messages"), headers=_headers(relay), timeout=TIMEOUT)
    _check(response, "polling")
    sealed = response.json().get("sealed", [])
    return [item for item in sealed if isinstance(item, dict)]


def post_through_relay(relay: dict[str, str], kind: str, body: dict[str, Any]) -> httpx.Response:
    """Post a signed answer or receipt to the relay, which forwards it to the server."""
    return httpx.post(
        _mailbox_url(relay, f"/{kind}"), json=body, headers=_headers(relay), timeout=TIMEOUT
    )
