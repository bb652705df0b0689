"""The `direct` delivery provider: devices hold a server-sent-events stream to tapgate.

Each connected stream has a bounded queue; a device too slow to drain it is disconnected and
falls back to signed polling, which always returns every open challenge.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

log = logging.getLogger(__name__)

_QUEUE_SIZE = 64


class DirectHub:
    """Connected device streams by device id."""

    def __init__(self) -> None:
        self._streams: dict[str, set[asyncio.Queue[dict[str, Any] | None]]] = defaultdict(set)

    def connect(self, device_id: str) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE_SIZE)
        self._streams[device_id].add(queue)
        log.info("device connected device=%s streams=%d", device_id, len(self._streams[device_id]))
        return queue

    def disconnect(self, device_id: str, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        streams = self._streams.get(device_id)
        if streams is not None:
            streams.discard(queue)
            if not streams:
                del self._streams[device_id]
        log.info("device disconnected device=%s", device_id)

    def is_connected(self, device_id: str) -> bool:
        return bool(self._streams.get(device_id))

    @property
    def connected_count(self) -> int:
        return len(self._streams)

    def send(self, device_id: str, event: dict[str, Any]) -> bool:
        """Queue `event` on every stream of the device; return whether any stream took it."""
        delivered = False
        for queue in list(self._streams.get(device_id, ())):
            try:
                queue.put_nowait(event)
                delivered = True
            except asyncio.QueueFull:
                log.warning("device stream full, closing it device=%s", device_id)
                _end_stream(queue)
                self.disconnect(device_id, queue)
        return delivered

    def close_all(self) -> None:
        """End every stream (the server is stopping), so open connections finish at once."""
        for device_id in list(self._streams):
            self.close_device(device_id)

    def close_device(self, device_id: str) -> None:
        """End every stream of a device (revoked)."""
        for queue in list(self._streams.get(device_id, ())):
            _end_stream(queue)
            self.disconnect(device_id, queue)


def _end_stream(queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    """Queue the end marker that makes the stream's reader stop; when the queue is full, drop
    what the reader has not read first. The device reconnects and gets every open challenge
    again, so nothing dropped is lost."""
    if queue.full():
        while not queue.empty():
            queue.get_nowait()
    queue.put_nowait(None)
