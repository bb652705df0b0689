"""Devices for the cluster tests: a stream held in a thread, and answers sent to a chosen node."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import httpx

from tapgate.authenticator.device import ProtocolError, send_answer, stream_events
from tapgate.authenticator.state import DeviceState
from tapgate.crypto.signing import private_key_from_text, sign
from tests.support import Server

_RECONNECT_SECONDS = 0.2


class StreamingDevice:
    """A device holding its direct stream through the balancer, reconnecting when it drops.

    Challenges are collected, not answered, so the test decides when and where the answer goes.
    """

    def __init__(self, state: DeviceState) -> None:
        self.state = state
        self.challenges: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.drops = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reconnecting; the open stream ends when its node or the balancer stops."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                for event in stream_events(self.state):
                    if event.get("event") == "challenge":
                        self.challenges.put((time.monotonic(), event["message"]))
            except (ProtocolError, httpx.HTTPError):
                pass
            self.drops += 1
            time.sleep(_RECONNECT_SECONDS)

    def challenge_for(self, transaction_id: str, timeout: float) -> tuple[float, dict[str, Any]]:
        """Return (monotonic arrival time, challenge) for one transaction, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no challenge for {transaction_id} within {timeout} s")
            try:
                arrived, message = self.challenges.get(timeout=remaining)
            except queue.Empty:
                continue
            if message["transaction_id"] == transaction_id:
                return arrived, message


def approve(state: DeviceState, challenge: dict[str, Any]) -> bool:
    """Approve through the balancer, as the phone does; return whether the answer was accepted."""
    return bool(send_answer(state, challenge, "approve", number=None, uv=False)["accepted"])


def signed_answer(state: DeviceState, challenge: dict[str, Any], decision: str) -> dict[str, Any]:
    """Build the body of POST /device/v1/answer, as `send_answer` does, for any node."""
    message = {
        "v": 1,
        "aud": state.public_url,
        "iat": int(time.time()),
        "device_id": state.device_id,
        "transaction_id": challenge["transaction_id"],
        "nonce": challenge["nonce"],
        "decision": decision,
        "uv": False,
    }
    return {
        "message": message,
        "signature": sign(private_key_from_text(state.signing_key), message),
    }


def post_answer(node: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(node.base + "/device/v1/answer", json=body, timeout=10)
