"""Routing inside the relay: server links, device streams and the queue of undelivered messages.

Queued messages live only in memory and only until their TTL, so a restart drops them. The
devices then get those challenges by polling, as after any push that did not arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

from tapgate.delivery.base import DeliveryProvider, DeliveryTarget, Outcome
from tapgate.relay import protocol
from tapgate.relay.mailboxes import Mailbox

log = logging.getLogger(__name__)

MAX_QUEUED = 16
STREAM_QUEUE = 32
FORWARD_TIMEOUT_SECONDS = 10.0


class ServerLink:
    """One connected tapgate server: frames go out through `send`, replies come back by id."""

    def __init__(self, server_id: str, send: Any) -> None:
        self.server_id = server_id
        self.send = send
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}


class RelayHub:
    def __init__(self, wake: dict[str, DeliveryProvider] | None = None) -> None:
        self.wake = wake or {}
        self.links: dict[str, list[ServerLink]] = defaultdict(list)
        self.streams: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self.queued: dict[str, deque[tuple[float, dict[str, Any]]]] = defaultdict(
            lambda: deque(maxlen=MAX_QUEUED)
        )
        self._ids = itertools.count(1)

    # ---- devices ------------------------------------------------------------------------------

    def connect(self, address: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(STREAM_QUEUE)
        for sealed in self.take_queued(address):
            queue.put_nowait(sealed)
        self.streams[address].add(queue)
        return queue

    def disconnect(self, address: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        streams = self.streams.get(address)
        if streams is not None:
            streams.discard(queue)
            if not streams:
                del self.streams[address]

    def take_queued(self, address: str) -> list[dict[str, Any]]:
        """Remove and return the unexpired queued messages of a mailbox."""
        now = time.monotonic()
        messages = [sealed for expires, sealed in self.queued.pop(address, ()) if expires > now]
        return messages[-STREAM_QUEUE:]

    async def deliver(self, mailbox: Mailbox, ttl: int, sealed: dict[str, Any]) -> str:
        """Hand a sealed message to the device's streams, else wake it, else queue it."""
        taken = False
        for queue in list(self.streams.get(mailbox.address, ())):
            try:
                queue.put_nowait(sealed)
                taken = True
            except asyncio.QueueFull:
                log.warning("device stream full, message dropped address=%s", mailbox.address[:8])
        if taken:
            return protocol.DELIVERED
        self.queued[mailbox.address].append((time.monotonic() + max(ttl, 0), sealed))
        if await self._wake(mailbox, ttl, sealed):
            return protocol.WOKEN
        return protocol.QUEUED

    async def _wake(self, mailbox: Mailbox, ttl: int, sealed: dict[str, Any]) -> bool:
        for kind, address in mailbox.wake.items():
            provider = self.wake.get(kind)
            if provider is None or not isinstance(address, dict):
                continue
            target = DeliveryTarget(
                device_id=str(sealed.get("device_id", "")),
                transaction_id=str(sealed.get("transaction_id", "")),
                address=address,
                registered_at=datetime.fromtimestamp(mailbox.created_at, UTC),
            )
            result = await provider.send(target, sealed, ttl)
            log.info(
                "wake-up sent address=%s provider=%s outcome=%s detail=%s",
                mailbox.address[:8],
                kind,
                result.outcome,
                result.detail,
            )
            if result.outcome == Outcome.DELIVERED:
                return True
        return False

    # ---- servers ------------------------------------------------------------------------------

    def add_link(self, link: ServerLink) -> None:
        self.links[link.server_id].append(link)

    def remove_link(self, link: ServerLink) -> None:
        links = self.links.get(link.server_id, [])
        if link in links:
            links.remove(link)
        for future in link.replies.values():
            if not future.done():
                future.set_exception(ConnectionError("server link closed"))

    async def forward(
        self, mailbox: Mailbox, kind: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Send a device's signed request to its server over a link; return the server's reply."""
        links = self.links.get(mailbox.server_id)
        if not links:
            return 503, {
                "error": "server_unavailable",
                "message": "the server is not connected; retry shortly",
            }
        link = links[-1]
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.replies[request_id] = future
        frame = {
            "type": "device_request",
            "id": request_id,
            "address": mailbox.address,
            "kind": kind,
            "body": body,
        }
        try:
            await link.send(frame)
            reply = await asyncio.wait_for(future, FORWARD_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionError) as exc:
            log.warning(
                "forward failed server_id=%s kind=%s error=%s", mailbox.server_id, kind, exc
            )
            return 504, {"error": "server_timeout", "message": "the server did not answer; retry"}
        finally:
            link.replies.pop(request_id, None)
        status = reply.get("status")
        answer = reply.get("body")
        if not isinstance(status, int) or not isinstance(answer, dict):
            return 502, {"error": "bad_gateway", "message": "the server sent an invalid reply"}
        return status, answer
