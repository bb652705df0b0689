"""A small TCP load balancer for the cluster tests, standing in for HAProxy or a cloud balancer.

Each new client connection goes to the next backend in round-robin order, skipping backends
that refuse the connection, so a killed node drops out by itself. `pin()` sends new connections
to one backend while it accepts them, which lets a test choose the node a device is held by.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable

from tests.support import free_port

_CONNECT_TIMEOUT_SECONDS = 2.0
_CHUNK_BYTES = 65536


class Balancer:
    """Round-robin TCP forwarding from one loopback port to several loopback ports."""

    def __init__(self, backend_ports: Iterable[int]) -> None:
        self.port = free_port()
        self.backend_ports = list(backend_ports)
        self.pinned: int | None = None
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=5)

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        future.result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def pin(self, port: int | None) -> None:
        """Send new connections to `port` while it accepts them; None restores round-robin."""
        self.pinned = port

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends every pipe with an end of stream. Cancelling the connection
        # tasks instead makes asyncio's stream callback log the cancellation as an error.
        for writer in list(self._writers):
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2)

    def _candidates(self) -> list[int]:
        start = self._next % len(self.backend_ports)
        self._next += 1
        ordered = self.backend_ports[start:] + self.backend_ports[:start]
        if self.pinned is not None:
            ordered.remove(self.pinned)
            ordered.insert(0, self.pinned)
        return ordered

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(client_writer)
        try:
            backend = await self._connect_backend()
            if backend is None:
                return
            backend_reader, backend_writer = backend
            self._writers.add(backend_writer)
            try:
                await asyncio.gather(
                    _pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer)
                )
            finally:
                backend_writer.close()
                self._writers.discard(backend_writer)
        finally:
            client_writer.close()
            self._writers.discard(client_writer)
            self._connections.discard(task)

    async def _connect_backend(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for port in self._candidates():
            with contextlib.suppress(OSError, TimeoutError):
                return await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), _CONNECT_TIMEOUT_SECONDS
                )
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until end of stream or a reset, then half-close the other side."""
    try:
        while chunk := await reader.read(_CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()
