"""Connections whose request headers do not arrive in time are closed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn

from tapgate.api.header_deadline import header_deadline_protocol

DEADLINE = 0.5


async def _app(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"tamam"})  # type: ignore[operator]


@pytest.fixture
async def port() -> AsyncIterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app, http=header_deadline_protocol(DEADLINE), lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield int(listener.getsockname()[1])
    server.should_exit = True
    await task
    listener.close()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


async def test_silent_connection_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_within(reader, DEADLINE + 2)
    writer.close()


async def test_partial_headers_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: ornek\r\nX-Yarim: ")
    await writer.drain()
    assert await _closed_within(reader, DEADLINE + 2)
    writer.close()


async def test_complete_request_answered_after_deadline(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: ornek\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"tamam"), 2)
    assert head.startswith(b"HTTP/1.1 200")
    # Past the deadline the kept-alive connection still serves a second request.
    await asyncio.sleep(DEADLINE + 0.2)
    writer.write(b"GET / HTTP/1.1\r\nHost: ornek\r\n\r\n")
    await writer.drain()
    again = await asyncio.wait_for(reader.readuntil(b"tamam"), 2)
    # The first response's last chunk may come first.
    assert b"HTTP/1.1 200" in again
    writer.close()


async def test_partial_second_request_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: ornek\r\n\r\n")
    await writer.drain()
    # Up to the last chunk of the chunked response, so only the close is left to read.
    await asyncio.wait_for(reader.readuntil(b"tamam\r\n0\r\n\r\n"), 2)
    writer.write(b"GET / HTTP/1.1\r\nHost: orn")
    await writer.drain()
    # Well before uvicorn's own 5 s keep-alive limit.
    assert await _closed_within(reader, DEADLINE + 2)
    writer.close()
