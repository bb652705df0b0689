"""The RADIUS UDP listener: receives datagrams, finds the client, replies from a task.

pyrad serves only as the codec. The server loop of pyrad 2.6 binds with SO_REUSEPORT, so a second
server could share the port unnoticed, and it runs the handler again for every retransmission.
Here the socket is bound plainly, so a port in use stops the start, and every request passes
through the duplicate cache before it reaches the login flow.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tapgate.errors import ConfigError
from tapgate.push.ports import LoginPort
from tapgate.radius import messages
from tapgate.radius.clients import ClientProvider, RadiusClient, find_client
from tapgate.radius.codec import (
    ACCESS_ACCEPT,
    ACCESS_REJECT,
    STATUS_SERVER,
    PacketDropped,
    RadiusReply,
    RadiusRequest,
    decode_request,
    encode_reply,
)
from tapgate.radius.duplicates import DuplicateCache, DuplicateKey, Verdict
from tapgate.radius.flow import RadiusFlow
from tapgate.radius.throttle import LogThrottle

log = logging.getLogger(__name__)

DEFAULT_PORT = 1812
# Maximum number of requests handled at once. Datagrams beyond it are dropped, and the NAS
# retransmits them.
DEFAULT_MAX_CONCURRENT = 10_000

Source = tuple[str, int]


class RadiusServer:
    """A RADIUS authentication server on one UDP address.

    `clients` is called for every request, `login` runs the logins. Use `start` and `stop`, or
    `async with`. `address` gives the bound host and port (useful with port 0).
    """

    def __init__(
        self,
        login: LoginPort,
        clients: ClientProvider,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        flow: RadiusFlow | None = None,
        duplicates: DuplicateCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    ) -> None:
        self._clients = clients
        self._host = host
        self._port = port
        self._clock = clock
        self._flow = flow or RadiusFlow(login, clock=clock)
        self._duplicates = duplicates or DuplicateCache(clock)
        self._throttle = LogThrottle(clock)
        self._max_concurrent = max_concurrent
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Set by `begin_drain`: the loop time until which `stop` lets requests finish.
        self._drain_deadline: float | None = None

    @property
    def address(self) -> Source:
        if self._transport is None:
            raise RuntimeError("the RADIUS server is not running")
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    async def start(self) -> None:
        """Bind the socket and start receiving; raises ConfigError when the address is in use."""
        sock = _bind(self._host, self._port)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        host, port = self.address
        log.info("radius started listen=%s:%d", host, port)

    def begin_drain(self, seconds: float) -> None:
        """Drop new requests from now on, and let `stop` wait up to `seconds` from now for the
        requests being handled, so that they get their replies. A NAS retransmits a dropped
        request, or sends it to another server."""
        if self._drain_deadline is None:
            self._drain_deadline = asyncio.get_running_loop().time() + seconds
            log.info("radius draining requests=%d seconds=%.1f", len(self._tasks), seconds)

    async def stop(self) -> None:
        """Close the socket and cancel the requests still being handled (they get no reply).

        After `begin_drain` it first waits, until the drain's deadline, for those requests."""
        if self._transport is None:
            return
        if self._drain_deadline is not None and self._tasks:
            remaining = self._drain_deadline - asyncio.get_running_loop().time()
            if remaining > 0:
                await asyncio.wait(list(self._tasks), timeout=remaining)
        if self._transport is None:
            return  # another caller stopped the server meanwhile
        host, port = self.address
        self._transport.close()
        self._transport = None

        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("radius stopped listen=%s:%d canceled_requests=%d", host, port, len(tasks))

    async def __aenter__(self) -> RadiusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _receive(self, data: bytes, source: Source) -> None:
        if self._drain_deadline is not None:
            self._log_limited(
                "draining", "radius request dropped during shutdown source=%s", source[0]
            )
            return
        if len(self._tasks) >= self._max_concurrent:
            self._log_limited("overloaded", "radius overloaded source=%s", source[0])
            return
        task = asyncio.get_running_loop().create_task(self._answer(data, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, source: Source) -> None:
        try:
            reply = await self.handle_datagram(data, source)
        except Exception:
            log.exception("radius datagram failed source=%s", source[0])
            return
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, source)

    async def handle_datagram(self, data: bytes, source: Source) -> bytes | None:
        """Process one datagram and return the reply to send, or None to send nothing."""
        received_at = self._clock()
        host, port = source[0], source[1]

        try:
            clients = await self._clients()
        except Exception as error:
            # Whatever broke in the provider (a database outage), the packet is dropped and the
            # NAS retransmits it. The line is rate-limited like the other drops.
            self._log_limited("provider", "radius clients unavailable error=%s", error)
            return None
        client = find_client(clients, host)
        if client is None:
            self._log_limited(("unknown", host), "radius unknown client source=%s", host)
            return None

        try:
            request = decode_request(
                data,
                client.secret_bytes,
                require_message_authenticator=client.require_message_authenticator,
            )
        except PacketDropped as error:
            reason = type(error).__name__
            self._log_limited(
                ("dropped", client.name, reason),
                "radius request dropped client=%s source=%s reason=%s error=%s",
                client.name,
                host,
                reason,
                error,
            )
            return None

        if request.code == STATUS_SERVER:
            # RFC 5997: Status-Server gets an Access-Accept and is never cached as a duplicate.
            return encode_reply(request, RadiusReply(ACCESS_ACCEPT), client.secret_bytes)
        if not request.has_message_authenticator:
            log.warning(
                "radius request without Message-Authenticator accepted (legacy setting) "
                "client=%s id=%d",
                client.name,
                request.identifier,
            )

        key: DuplicateKey = (host, port, request.identifier, request.authenticator)
        return await self._answer_once(key, client, request, received_at)

    async def _answer_once(
        self, key: DuplicateKey, client: RadiusClient, request: RadiusRequest, received_at: float
    ) -> bytes | None:
        lookup = self._duplicates.begin(key)
        if lookup.verdict is Verdict.IN_FLIGHT:
            log.debug("radius duplicate in flight client=%s id=%d", client.name, request.identifier)
            return None
        if lookup.verdict is Verdict.ANSWERED:
            log.debug("radius duplicate replied client=%s id=%d", client.name, request.identifier)
            return lookup.reply
        if lookup.verdict is Verdict.FULL:
            self._log_limited("cache", "radius duplicate cache full client=%s", client.name)
            return None

        reply: bytes | None = None
        try:
            try:
                answer = await self._flow.handle(client, request, received_at)
            except Exception:
                # A LoginPort failure that is not a TapgateError is a bug: log the traceback,
                # and still reply so that the NAS does not retransmit into a second login.
                log.exception(
                    "radius request failed client=%s id=%d", client.name, request.identifier
                )
                text = messages.translate(client.language, messages.SERVER_ERROR)
                answer = RadiusReply(ACCESS_REJECT, message=text)
            reply = encode_reply(request, answer, client.secret_bytes)
            self._duplicates.finish(key, reply)
            return reply
        finally:
            if reply is None:
                self._duplicates.forget(key)

    def _log_limited(self, key: object, message: str, *args: object) -> None:
        """Log a warning about a packet an outsider can repeat at will, rate-limited by `key`."""
        suppressed = self._throttle.allow(key)
        if suppressed is not None:
            log.warning(message + " suppressed=%d", *args, suppressed)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: RadiusServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._server._receive(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from earlier replies (a NAS that went away) surface here and need no action.
        log.debug("radius socket error error=%s", exc)


def _bind(host: str, port: int) -> socket.socket:
    """Bind a UDP socket without SO_REUSEADDR or SO_REUSEPORT, so that a port already in use
    fails here instead of being shared with another server."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ConfigError(f"invalid RADIUS listen host {host!r}: {error}") from error

    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen for RADIUS on {host}:{port}: {error.strerror}; "
            "stop the process using the port or change radius.listen"
        ) from error
    sock.setblocking(False)
    return sock
