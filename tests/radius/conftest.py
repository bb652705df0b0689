from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tapgate.radius import RadiusServer, static_clients
from tests.radius.fake_login import FakeLogin, make_client


class UdpPeer(asyncio.DatagramProtocol):
    """A NAS stand-in: sends datagrams from one port and queues what comes back."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.replies.put_nowait(data)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    async def reply(self, timeout: float = 2.0) -> bytes | None:
        try:
            return await asyncio.wait_for(self.replies.get(), timeout)
        except TimeoutError:
            return None


@pytest.fixture
def login() -> FakeLogin:
    return FakeLogin()


@pytest.fixture
def clients() -> list:
    return [make_client()]


@pytest.fixture
async def server(login: FakeLogin, clients: list) -> AsyncIterator[RadiusServer]:
    radius = RadiusServer(login, static_clients(clients), host="127.0.0.1", port=0)
    await radius.start()
    yield radius
    await radius.stop()


@pytest.fixture
async def peer(server: RadiusServer) -> AsyncIterator[UdpPeer]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(UdpPeer, remote_addr=server.address)
    yield protocol
    transport.close()
