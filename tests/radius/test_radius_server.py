"""The UDP listener in-process: client lookup, drops, duplicates, Status-Server, start and stop."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad.packet import StatusServer

from tapgate.errors import ConfigError
from tapgate.push.ports import APPROVED
from tapgate.radius import RadiusServer, static_clients
from tapgate.radius.codec import ACCESS_ACCEPT, ACCESS_REJECT
from tests.radius.fake_login import SECRET, FakeLogin, build_request, make_client

KEY = SECRET.encode()
NAS = ("127.0.0.1", 40000)


def radius_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("tapgate.radius") and record.levelno >= logging.INFO
    ]


async def test_accept_over_udp(server, peer, login):
    peer.send(build_request())
    await login.started.wait()
    login.decide(APPROVED)

    reply = await peer.reply()

    assert reply is not None
    assert reply[0] == ACCESS_ACCEPT


async def test_retransmission_in_flight_dropped(server, peer, login):
    data = build_request()
    peer.send(data)
    await login.started.wait()

    peer.send(data)
    peer.send(data)
    assert await peer.reply(timeout=0.2) is None

    login.decide(APPROVED)
    first = await peer.reply()
    assert first is not None
    assert await peer.reply(timeout=0.2) is None
    assert len(login.requests) == 1


async def test_retransmission_after_answer_gets_cached_reply(server, peer, login):
    data = build_request()
    peer.send(data)
    await login.started.wait()
    login.decide(APPROVED)
    first = await peer.reply()

    peer.send(data)
    again = await peer.reply()

    assert again == first
    assert len(login.requests) == 1


async def test_unknown_source_dropped_and_logged_once(login, caplog):
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    first = await radius.handle_datagram(build_request(), ("192.0.2.50", 1812))
    second = await radius.handle_datagram(build_request(), ("192.0.2.50", 1812))

    assert first is None
    assert second is None
    assert radius_lines(caplog) == ["radius unknown client source=192.0.2.50 suppressed=0"]
    assert login.requests == []


async def test_missing_message_authenticator_dropped(login, caplog):
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    reply = await radius.handle_datagram(build_request(with_message_authenticator=False), NAS)

    assert reply is None
    assert login.requests == []
    [line] = radius_lines(caplog)
    assert line.startswith("radius request dropped client=fw1 source=127.0.0.1")
    assert "reason=MissingMessageAuthenticator" in line


async def test_wrong_secret_dropped(login, caplog):
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    reply = await radius.handle_datagram(build_request(secret="wrong-secret"), NAS)

    assert reply is None
    assert login.requests == []
    [line] = radius_lines(caplog)
    assert "reason=InvalidMessageAuthenticator" in line
    assert SECRET not in caplog.text


async def test_legacy_client_logged_every_time(caplog):
    login = FakeLogin()
    client = make_client(require_message_authenticator=False, timeout=0.05)
    radius = RadiusServer(login, static_clients([client]), port=0)

    for identifier in (1, 2):
        data = build_request(with_message_authenticator=False, identifier=identifier)
        reply = await radius.handle_datagram(data, NAS)
        assert reply is not None

    legacy = [line for line in radius_lines(caplog) if "without Message-Authenticator" in line]
    assert legacy == [
        "radius request without Message-Authenticator accepted (legacy setting) client=fw1 id=1",
        "radius request without Message-Authenticator accepted (legacy setting) client=fw1 id=2",
    ]


async def test_status_server_answered(login):
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    reply = await radius.handle_datagram(build_request(code=StatusServer, password=None), NAS)

    assert reply is not None
    assert reply[0] == ACCESS_ACCEPT
    assert reply[20] == 80
    assert login.requests == []


async def test_status_server_without_message_authenticator_dropped():
    login = FakeLogin()
    client = make_client(require_message_authenticator=False)
    radius = RadiusServer(login, static_clients([client]), port=0)
    data = build_request(code=StatusServer, password=None, with_message_authenticator=False)

    assert await radius.handle_datagram(data, NAS) is None


async def test_login_port_bug_answered_with_reject(caplog):
    class BrokenLogin(FakeLogin):
        async def start_login(self, request):
            raise RuntimeError("bug in the login service")

    radius = RadiusServer(BrokenLogin(), static_clients([make_client()]), port=0)
    data = build_request()

    reply = await radius.handle_datagram(data, NAS)
    again = await radius.handle_datagram(data, NAS)

    assert reply is not None
    assert reply[0] == ACCESS_REJECT
    assert again == reply
    [failure] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert failure.getMessage() == "radius request failed client=fw1 id=7"
    assert failure.exc_info is not None


async def test_client_provider_failure_dropped(login, caplog):
    async def broken_provider():
        raise OSError("database is down")

    radius = RadiusServer(login, broken_provider, port=0)

    assert await radius.handle_datagram(build_request(), NAS) is None

    assert radius_lines(caplog) == [
        "radius clients unavailable error=database is down suppressed=0"
    ]


async def test_port_in_use_refused(login):
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    radius = RadiusServer(login, static_clients([make_client()]), port=port)

    try:
        with pytest.raises(ConfigError, match="in use"):
            await radius.start()
    finally:
        taken.close()


async def test_port_shared_with_reuseport_socket_refused(login):
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    radius = RadiusServer(login, static_clients([make_client()]), port=port)

    try:
        with pytest.raises(ConfigError):
            await radius.start()
    finally:
        taken.close()


async def test_second_server_on_same_port_refused(server, login):
    second = RadiusServer(login, static_clients([make_client()]), port=server.address[1])

    with pytest.raises(ConfigError):
        await second.start()


async def test_stop_cancels_held_requests(login, caplog):
    caplog.set_level(logging.INFO, logger="tapgate.radius")
    radius = RadiusServer(login, static_clients([make_client()]), port=0)
    await radius.start()
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=radius.address
    )
    transport.sendto(build_request())
    await login.waiting.wait()

    address = radius.address
    await radius.stop()
    transport.close()

    stopped = f"radius stopped listen={address[0]}:{address[1]} canceled_requests=1"
    assert radius_lines(caplog)[-1] == stopped
    assert login.canceled == ["tx-1"]


async def test_start_and_stop_logged(login, caplog):
    caplog.set_level(logging.INFO, logger="tapgate.radius")
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    async with radius:
        port = radius.address[1]

    assert radius_lines(caplog) == [
        f"radius started listen=127.0.0.1:{port}",
        f"radius stopped listen=127.0.0.1:{port} canceled_requests=0",
    ]


async def test_address_before_start_raises(login):
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    with pytest.raises(RuntimeError):
        _ = radius.address


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_random_datagrams_never_answered(data):
    login = FakeLogin()
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    reply = asyncio.run(radius.handle_datagram(data, NAS))

    assert reply is None
    assert login.requests == []


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=200),
    value=st.integers(min_value=0, max_value=255),
    extra=st.binary(max_size=8),
)
def test_mutated_requests_never_answered(position, value, extra):
    data = bytearray(build_request(attributes={"User-Name": "şükrü", "NAS-Identifier": "fw1"}))
    original = bytes(data)
    data[position % len(data)] = value
    if bytes(data) == original:
        # Unchanged apart from padding after the Length field: still a valid request.
        return
    login = FakeLogin()
    radius = RadiusServer(login, static_clients([make_client()]), port=0)

    reply = asyncio.run(radius.handle_datagram(bytes(data) + extra, NAS))

    assert reply is None
    assert login.requests == []


async def test_listener_survives_garbage(server, peer, login):
    for size in (0, 1, 19, 20, 21, 4096, 5000):
        peer.send(bytes(size))
    peer.send(b"\x01" * 64)
    assert await peer.reply(timeout=0.2) is None

    peer.send(build_request(code=StatusServer, password=None))
    reply = await peer.reply()

    assert reply is not None
    assert reply[0] == ACCESS_ACCEPT
