"""Simulated phones: one server-sent-events stream each, and a signed answer to each challenge.

A device answers only when the application side has told it the number shown on the login
screen (or, in tap mode, that the login is the benchmark's own), as a person carries the number
from the screen to the phone. Logins started only to be held open are never answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tapgate.authenticator.device import request_header
from tapgate.authenticator.state import DeviceState
from tapgate.bench.httpclient import Connection, HttpError, Pool
from tapgate.bench.provision import BenchDevice
from tapgate.crypto.signing import (
    BadSignature,
    private_key_to_text,
    public_key_to_text,
    sign,
    verify,
)

log = logging.getLogger(__name__)

STREAM_PATH = "/device/v1/stream"
ANSWER_PATH = "/device/v1/answer"
# A held login's "number": the device receives the challenge but never answers it.
HOLD = "hold"
# How long a device waits for the login screen's number before it drops a challenge.
_GO_SECONDS = 60.0
_RECONNECT_SECONDS = 0.5
# Failed attempts after which a device that never connected makes `Fleet.connect` fail.
_CONNECT_ATTEMPTS = 5


@dataclass
class Slot:
    """The state that the application side and the device side of one transaction share."""

    go: asyncio.Future[str | None]
    challenge_at: float | None = None
    answer_sent_at: float | None = None
    answer_status: int | None = None
    # When the 200 for the answer arrived: the latest instant at which the server had accepted it.
    answer_accepted_at: float | None = None
    # Set when a device takes an expected slot, because that login's side never learns the id.
    transaction_id: str | None = None
    # The think time the device drew for this login, with a think-time jitter.
    think_seconds: float | None = None


@dataclass
class Rendezvous:
    """Slots by transaction id; whichever side sees a transaction first creates its slot.

    A front door that never shows the transaction id to the application (RADIUS in tap mode)
    instead registers an expected slot for the user's device, which the device's next
    challenge takes.
    """

    slots: dict[str, Slot] = field(default_factory=dict)
    expected: dict[str, list[Slot]] = field(default_factory=dict)

    def slot(self, transaction_id: str) -> Slot:
        found = self.slots.get(transaction_id)
        if found is None:
            found = Slot(asyncio.get_running_loop().create_future())
            self.slots[transaction_id] = found
        return found

    def release(self, transaction_id: str) -> None:
        self.slots.pop(transaction_id, None)

    def expect(self, device_id: str) -> Slot:
        """Register a slot for the next challenge to `device_id`; its device approves at once."""
        go: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        go.set_result(None)
        slot = Slot(go)
        self.expected.setdefault(device_id, []).append(slot)
        return slot

    def forget(self, device_id: str, slot: Slot) -> None:
        """Drop an expected slot, whether or not a challenge took it."""
        waiting = [other for other in self.expected.get(device_id, []) if other is not slot]
        if waiting:
            self.expected[device_id] = waiting
        else:
            self.expected.pop(device_id, None)
        if slot.transaction_id is not None:
            self.release(slot.transaction_id)

    def challenge_slot(self, device_id: str, transaction_id: str) -> Slot:
        """Return the slot of a challenge that arrived on `device_id`'s stream: the one the
        application side made for the transaction, else the device's oldest expected one."""
        if transaction_id not in self.slots and self.expected.get(device_id):
            slot = self.expected[device_id].pop(0)
            slot.transaction_id = transaction_id
            self.slots[transaction_id] = slot
            return slot
        return self.slot(transaction_id)


@dataclass
class FleetCounters:
    connected: int = 0
    challenges: int = 0
    answers: int = 0
    answer_failures: int = 0
    bad_challenges: int = 0
    stream_failures: int = 0


def draw_think(seconds: float, jitter: float, rng: random.Random) -> float:
    """Return a think time drawn uniformly from `seconds` × (1 ± `jitter`).

    People approve at different speeds. With one fixed think time, logins whose challenges
    went out together are approved together too."""
    return seconds * (1 + jitter * rng.uniform(-1.0, 1.0))


class Fleet:
    """Streams and answers for a list of simulated devices."""

    def __init__(
        self,
        host: str,
        port: int,
        public_url: str,
        server_key: ec.EllipticCurvePublicKey,
        rendezvous: Rendezvous,
        *,
        think_seconds: float = 0.0,
        think_jitter: float = 0.0,
        verify_challenges: bool = True,
        answer_connections: int = 64,
    ) -> None:
        self.host = host
        self.port = port
        self.public_url = public_url
        self.server_key = server_key
        self.server_key_text = public_key_to_text(server_key)
        self.rendezvous = rendezvous
        self.think_seconds = think_seconds
        # Each think time is drawn uniformly from think_seconds × (1 ± think_jitter).
        self.think_jitter = think_jitter
        self._random = random.Random()
        self.verify_challenges = verify_challenges
        self.answers = Pool(host, port, answer_connections)
        self.counters = FleetCounters()
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: list[Connection] = []
        self._answer_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def connect(self, devices: list[BenchDevice], parallel: int = 50) -> float:
        """Open a stream for every device, `parallel` at a time; return the seconds it took."""
        started = time.monotonic()
        gate = asyncio.Semaphore(parallel)
        ready: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for device in devices:
            future: asyncio.Future[None] = loop.create_future()
            ready.append(future)
            self._tasks.append(asyncio.create_task(self._hold(device, gate, future)))
        await asyncio.gather(*ready)
        return time.monotonic() - started

    def _state(self, device: BenchDevice) -> DeviceState:
        return DeviceState(
            public_url=self.public_url,
            device_id=device.device_id,
            username=device.username,
            name="bench phone",
            signing_key=private_key_to_text(device.key),
            agreement_key="",
            server_signing_key=self.server_key_text,
        )

    async def _hold(
        self, device: BenchDevice, gate: asyncio.Semaphore, ready: asyncio.Future[None]
    ) -> None:
        """Keep the device's stream open, reconnecting when it drops, until `stop`."""
        state = self._state(device)
        connection = Connection(self.host, self.port)
        self._connections.append(connection)
        failed_attempts = 0
        while not self._stopping:
            try:
                async with gate if not ready.done() else contextlib.nullcontext():
                    headers = {
                        "Authorization": request_header(state, "GET", STREAM_PATH),
                        "Accept": "text/event-stream",
                    }
                    status, chunks = await connection.open_stream(STREAM_PATH, headers)
                    if status != 200:
                        raise HttpError(f"stream rejected with HTTP {status}")
                    first = await anext(chunks)
                if not ready.done():
                    ready.set_result(None)
                self.counters.connected += 1
                try:
                    await self._read_events(device, first, chunks)
                finally:
                    self.counters.connected -= 1
            except (HttpError, OSError, asyncio.IncompleteReadError, StopAsyncIteration) as exc:
                if self._stopping:
                    return
                self.counters.stream_failures += 1
                log.warning("device stream failed device=%s error=%s", device.device_id, exc)
                failed_attempts += 1
                if not ready.done() and failed_attempts >= _CONNECT_ATTEMPTS:
                    ready.set_exception(
                        RuntimeError(f"device {device.device_id} could not open its stream: {exc}")
                    )
                    return
            connection.close()
            await asyncio.sleep(_RECONNECT_SECONDS)

    async def _read_events(self, device: BenchDevice, first: bytes, chunks: Any) -> None:
        buffer = first
        while True:
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                self._on_block(device, block)
            buffer += await anext(chunks)

    def _on_block(self, device: BenchDevice, block: bytes) -> None:
        received = time.monotonic()
        data = next((line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")), None)
        if data is None:
            return
        try:
            event = json.loads(data)
        except ValueError:
            self.counters.bad_challenges += 1
            return
        if event.get("event") != "challenge":
            return
        message = event.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("transaction_id"), str):
            self.counters.bad_challenges += 1
            return
        if self.verify_challenges:
            try:
                verify(self.server_key, message, str(event.get("signature", "")))
            except BadSignature:
                self.counters.bad_challenges += 1
                return
        self.counters.challenges += 1
        slot = self.rendezvous.challenge_slot(device.device_id, message["transaction_id"])
        if slot.challenge_at is None:
            slot.challenge_at = received
        task = asyncio.create_task(self._answer(device, message, slot))
        self._answer_tasks.add(task)
        task.add_done_callback(self._answer_tasks.discard)

    async def _answer(self, device: BenchDevice, challenge: dict[str, Any], slot: Slot) -> None:
        try:
            number = await asyncio.wait_for(asyncio.shield(slot.go), _GO_SECONDS)
        except TimeoutError:
            return
        if number == HOLD:
            return
        if self.think_seconds:
            think = self.think_seconds
            if self.think_jitter:
                think = slot.think_seconds = draw_think(think, self.think_jitter, self._random)
            await asyncio.sleep(think)
        message: dict[str, Any] = {
            "v": 1,
            "aud": self.public_url,
            "iat": int(time.time()),
            "device_id": device.device_id,
            "transaction_id": challenge["transaction_id"],
            "nonce": challenge["nonce"],
            "decision": "approve",
            "uv": False,
        }
        if challenge.get("verification") == "number":
            message["number"] = number
        body = {"message": message, "signature": sign(device.key, message)}
        slot.answer_sent_at = time.monotonic()
        try:
            response = await self.answers.post_json(ANSWER_PATH, body)
        except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
            self.counters.answer_failures += 1
            log.warning("answer failed transaction=%s error=%s", challenge["transaction_id"], exc)
            return
        slot.answer_status = response.status
        if response.status == 200:
            slot.answer_accepted_at = time.monotonic()
            self.counters.answers += 1
        else:
            self.counters.answer_failures += 1

    async def stop(self) -> None:
        self._stopping = True
        for task in [*self._tasks, *self._answer_tasks]:
            task.cancel()
        for task in [*self._tasks, *self._answer_tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in self._connections:
            connection.close()
        self.answers.close()
