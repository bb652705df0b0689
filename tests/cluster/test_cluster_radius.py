"""A RADIUS retransmission that reaches another node joins the first login: one push."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tapgate.authenticator.device import enroll, fetch_challenges, send_answer
from tests.cluster.nodes import requires_postgresql
from tests.radius.fake_login import build_request
from tests.support import Server

pytestmark = [requires_postgresql, pytest.mark.slow]

SECRET = "paylasilan-sir-123"
OBJECTS = """
auth_profiles:
  - {{name: personel, type: local}}
push_profiles:
  - {{name: vpn, fallback_auth_profiles: [personel], verification: tap, timeout: 30, default: true}}
applications:
  - {{name: vpn, type: radius, methods: [vpn], require_password: true}}
radius_clients:
  - {{name: fw1, address: 127.0.0.1/32, secret_file: {secret_file}, application: vpn}}
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def send(port: int, packet: bytes, timeout: float = 25) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, ("127.0.0.1", port))
        reply, _ = sock.recvfrom(4096)
        return reply


def test_retransmission_to_another_node_makes_one_push(tmp_path: Path, db_url: str) -> None:
    key_file = tmp_path / "shared.key"
    nodes = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        radius_port = free_udp_port()
        node = Server(
            folder, db_url, extra_settings=f"radius:\n  listen: 127.0.0.1:{radius_port}\n"
        )
        node.write_settings()
        node.config.write_text(
            node.config.read_text().replace(f"{folder}/secret.key", str(key_file)), encoding="utf-8"
        )
        node.radius_port = radius_port  # type: ignore[attr-defined]
        nodes.append(node)
    try:
        for node in nodes:
            node.start()
        secret_file = tmp_path / "fw1.secret"
        secret_file.write_text(SECRET, encoding="utf-8")
        nodes[0].apply(OBJECTS.format(secret_file=secret_file))
        nodes[0].cli(
            "user",
            "add",
            "selin",
            "--auth-profile",
            "personel",
            "--password-stdin",
            stdin="Vpn,Parola-1\n",
        )
        phone = enroll(nodes[0].cli_json("enroll", "selin", "--json")["enrollment_url"], "Telefon")

        packet = build_request(secret=SECRET, identifier=42)
        approved = threading.Event()

        def approve() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not approved.is_set():
                challenges = fetch_challenges(phone)
                if challenges:
                    time.sleep(1.0)  # let the copy on the other node arrive and join first
                    send_answer(phone, challenges[0], "approve", number=None, uv=False)
                    approved.set()
                    return
                time.sleep(0.2)

        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(send, nodes[0].radius_port, packet)  # type: ignore[attr-defined]
            time.sleep(0.3)
            second = pool.submit(send, nodes[1].radius_port, packet)  # type: ignore[attr-defined]
            pool.submit(approve)
            replies = [first.result(), second.result()]
        assert [reply[0] for reply in replies] == [2, 2]  # Access-Accept on both nodes
        pushes = nodes[0].cli_json("audit", "--user", "selin", "--event", "push_sent", "--json")
        assert len(pushes) == 1
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.stop()
    for node in nodes:
        assert "Traceback" not in node.log()
