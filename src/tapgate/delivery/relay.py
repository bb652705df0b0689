"""The `relay` provider: an outbound WebSocket link from tapgate to a `tapgate relay`.

tapgate opens the connection, so it needs no inbound port from the internet. Over the link it
sends sealed challenges and receives the answers and receipts that devices post to the relay;
those stay signed by the device key, so the relay cannot forge them. The link reconnects with
backoff while the provider is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tapgate import jsondepth
from tapgate.delivery.base import DeliveryResult, DeliveryTarget, Outcome
from tapgate.delivery.config import ProviderSettings
from tapgate.relay import protocol
from tapgate.secret import Secret

log = logging.getLogger(__name__)

CONNECT_WAIT_SECONDS = 3.0
ACK_TIMEOUT_SECONDS = 10.0
_RECONNECT_MAX_SECONDS = 10.0


def link_url(relay_url: str) -> str:
    """Return the WebSocket URL of the server link for a relay base URL (https or wss)."""
    scheme, _, rest = relay_url.rstrip("/").partition("://")
    websocket_scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{websocket_scheme}://{rest}{protocol.LINK_PATH}"


def same_relay(a: str, b: str) -> bool:
    return link_url(a) == link_url(b)


class RelayProvider:
    name = "relay"

    def __init__(self, settings: ProviderSettings, on_device_request: Any = None) -> None:
        self._url = str(settings.options["url"])
        self._server_id = str(settings.options["server_id"])
        self._key: Secret = settings.credential
        self._ssl: ssl.SSLContext | None = None
        if link_url(self._url).startswith("wss://"):
            self._ssl = ssl.create_default_context(cafile=settings.options.get("ca_file") or None)
        self._on_device_request = on_device_request
        self._connection: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._acks: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._link = asyncio.create_task(self._run(), name="relay-link")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _run(self) -> None:
        delay = 0.5
        url = link_url(self._url)
        headers = {"Authorization": f"Bearer {self._server_id}:{self._key.reveal()}"}
        while True:
            try:
                async with connect(
                    url,
                    additional_headers=headers,
                    ssl=self._ssl,
                    open_timeout=5,
                    max_size=protocol.MAX_FRAME_BYTES,
                    ping_interval=20,
                ) as connection:
                    self._connection = connection
                    self._connected.set()
                    delay = 0.5
                    log.info("relay link up relay=%s server_id=%s", self._url, self._server_id)
                    async for raw in connection:
                        self._handle(raw)
                log.warning("relay link closed by the relay relay=%s", self._url)
            except (OSError, TimeoutError, WebSocketException) as exc:
                log.warning(
                    "relay link failed, reconnecting in %.1f s relay=%s error=%s",
                    delay,
                    self._url,
                    exc or type(exc).__name__,
                )
            finally:
                self._connection = None
                self._connected.clear()
                for future in self._acks.values():
                    if not future.done():
                        future.set_exception(ConnectionError("relay link lost"))
                self._acks.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    def _handle(self, raw: str | bytes) -> None:
        try:
            frame = jsondepth.loads(raw)
        except ValueError:
            log.warning("relay sent a frame that is not JSON relay=%s", self._url)
            return
        if not isinstance(frame, dict):
            return
        if frame.get("type") == "ack":
            future = self._acks.pop(frame.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif frame.get("type") == "device_request":
            task = asyncio.create_task(self._answer_device_request(frame))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer_device_request(self, frame: dict[str, Any]) -> None:
        kind, address, body = frame.get("kind"), frame.get("address"), frame.get("body")
        status, reply = 503, {"error": "unavailable", "message": "server cannot take answers"}
        if kind not in protocol.DEVICE_REQUEST_KINDS or not isinstance(body, dict):
            status, reply = 400, {"error": "invalid_request", "message": "unknown request"}
        elif self._on_device_request is not None:
            status, reply = await self._on_device_request(str(kind), str(address), body)
        connection = self._connection
        if connection is None:
            return
        with contextlib.suppress(WebSocketException):
            await connection.send(
                json.dumps(
                    {"type": "reply", "id": frame.get("id"), "status": status, "body": reply}
                )
            )

    async def send(
        self, device: DeliveryTarget, envelope: dict[str, Any], ttl: int
    ) -> DeliveryResult:
        address = device.address.get("address")
        if not isinstance(address, str) or not address:
            return self._result(device, Outcome.FAILED, "device has no relay address")
        device_relay = device.address.get("url")
        if isinstance(device_relay, str) and not same_relay(device_relay, self._url):
            return self._result(device, Outcome.FAILED, "device uses another relay")
        try:
            await asyncio.wait_for(self._connected.wait(), CONNECT_WAIT_SECONDS)
        except TimeoutError:
            return self._result(device, Outcome.RETRY, "relay link is down")
        connection = self._connection
        if connection is None:
            return self._result(device, Outcome.RETRY, "relay link is down")
        frame_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[frame_id] = future
        frame = {
            "type": "deliver",
            "id": frame_id,
            "address": address,
            "ttl": ttl,
            "sealed": envelope,
        }
        try:
            await connection.send(json.dumps(frame, separators=(",", ":")))
            ack = await asyncio.wait_for(future, ACK_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionError, WebSocketException) as exc:
            return self._result(device, Outcome.RETRY, f"relay did not acknowledge: {exc}")
        finally:
            self._acks.pop(frame_id, None)
        return self._map(device, ack)

    def _map(self, device: DeliveryTarget, ack: dict[str, Any]) -> DeliveryResult:
        result = ack.get("result")
        if result in protocol.ACCEPTED_RESULTS:
            return self._result(device, Outcome.DELIVERED, str(result))
        if result == protocol.UNKNOWN_ADDRESS:
            return self._result(device, Outcome.STALE, str(result))
        if result == protocol.RATE_LIMITED:
            retry_after = ack.get("retry_after")
            return DeliveryResult(
                Outcome.RETRY,
                self.name,
                device.device_id,
                retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
                detail=str(result),
            )
        return self._result(device, Outcome.FAILED, str(result))

    def _result(self, device: DeliveryTarget, outcome: Outcome, detail: str) -> DeliveryResult:
        return DeliveryResult(outcome, self.name, device.device_id, detail=detail)

    async def close(self) -> None:
        for task in [self._link, *self._tasks]:
            task.cancel()
        for task in [self._link, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
