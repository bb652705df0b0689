"""A network access server stand-in: PAP Access-Requests over one UDP socket, replies verified.

Packets are built with pyrad's codec as a NAS builds them: a random Request Authenticator, a
Message-Authenticator, the hidden User-Password (RFC 2865 section 5.2) and the end user's
address in Calling-Station-Id. A reply counts only when its Identifier, Response Authenticator
and Message-Authenticator match the request. Nothing is retransmitted: on loopback a lost
datagram is not expected, and a retransmission would hide how long the server held the request.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct

from pyrad.packet import AccessRequest, AuthPacket, Packet, PacketError

from tapgate.radius.codec import HEADER_SIZE, dictionary
from tapgate.radius.pap import hide_password

NAS_IDENTIFIER = "tapgate-bench"


class RadiusClientError(Exception):
    """A request that got no valid reply."""


class RadiusTimeout(RadiusClientError):
    pass


class InvalidReply(RadiusClientError):
    """A reply whose authenticators do not match the request, or that cannot be decoded."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Endpoint(asyncio.DatagramProtocol):
    """Hands each reply to the request waiting with the same Identifier."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(data) < HEADER_SIZE:
            return
        future = self.waiting.get(data[1])
        if future is not None and not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)


class RadiusNas:
    """One UDP socket that sends Access-Requests to one server with one shared secret.

    Requests may overlap up to the 256 values of the Identifier.
    """

    def __init__(
        self, transport: asyncio.DatagramTransport, endpoint: _Endpoint, secret: bytes
    ) -> None:
        self._transport = transport
        self._endpoint = endpoint
        self._secret = secret
        self._next_identifier = 0

    @classmethod
    async def open(cls, host: str, port: int, secret: str) -> RadiusNas:
        loop = asyncio.get_running_loop()
        transport, endpoint = await loop.create_datagram_endpoint(
            _Endpoint, remote_addr=(host, port)
        )
        return cls(transport, endpoint, secret.encode("utf-8"))

    def close(self) -> None:
        self._transport.close()

    def build_request(
        self, identifier: int, username: str, password: str, calling_station_id: str
    ) -> AuthPacket:
        packet = AuthPacket(
            code=AccessRequest,
            id=identifier,
            secret=self._secret,
            authenticator=os.urandom(16),
            dict=dictionary(),
        )
        packet.add_message_authenticator()
        packet["User-Name"] = [username]
        packet["User-Password"] = [hide_password(password, self._secret, packet.authenticator)]
        packet["Calling-Station-Id"] = [calling_station_id]
        packet["NAS-Identifier"] = [NAS_IDENTIFIER]
        return packet

    async def authenticate(
        self, username: str, password: str, calling_station_id: str, timeout: float
    ) -> int:
        """Send one Access-Request and return the code of its verified reply.

        Raises RadiusTimeout when no reply arrives within `timeout` seconds, InvalidReply for a
        reply that fails verification, and RadiusClientError when all Identifiers are in use.
        """
        identifier = self._take_identifier()
        request = self.build_request(identifier, username, password, calling_station_id)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._endpoint.waiting[identifier] = future
        try:
            self._transport.sendto(bytes(request.RequestPacket()))
            try:
                data = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise RadiusTimeout(f"no reply within {timeout:.0f} s") from None
        finally:
            del self._endpoint.waiting[identifier]
        return self._verify(request, data)

    def _take_identifier(self) -> int:
        for _ in range(256):
            identifier = self._next_identifier
            self._next_identifier = (identifier + 1) % 256
            if identifier not in self._endpoint.waiting:
                return identifier
        raise RadiusClientError("all 256 RADIUS Identifiers are waiting for replies")

    def _verify(self, request: AuthPacket, data: bytes) -> int:
        try:
            reply = Packet(packet=data, secret=self._secret, dict=dictionary())
        except (PacketError, struct.error) as error:
            raise InvalidReply(f"reply cannot be decoded: {error}") from None
        if not request.VerifyReply(reply, data, enforce_ma=True):
            raise InvalidReply("reply authenticators do not match the request")
        return int(reply.code)
