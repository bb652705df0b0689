"""The RADIUS front door inside the real server: radclient, the login service, a real device."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapgate.authenticator.device import enroll, fetch_challenges, send_answer
from tapgate.authenticator.state import DeviceState
from tests.support import Server, free_port

pytestmark = pytest.mark.skipif(
    shutil.which("radclient") is None,
    reason="radclient (Debian package freeradius-utils) is not installed",
)

SECRET = "paylasilan-sir-123"
PASSWORD = "Vpn,Parola-1ğ"


def objects(secret_file: Path) -> str:
    return f"""
auth_profiles:
  - {{name: personel, type: local}}
push_profiles:
  - {{name: vpn-dokun, fallback_auth_profiles: [personel], verification: tap, timeout: 20, default: true}}
  - {{name: vpn-sayi, fallback_auth_profiles: [personel], verification: number, timeout: 20}}
applications:
  - {{name: vpn, type: radius, methods: [vpn-dokun], require_password: true}}
  - {{name: vpn-sayi, type: radius, methods: [vpn-sayi], require_password: true}}
radius_clients:
  - {{name: fw1, address: 127.0.0.1/32, secret_file: {secret_file}, application: vpn, language: tr}}
"""


class RadiusServer:
    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.port = port

    def request(self, attributes: str, *options: str, timeout: float = 30) -> str:
        result = subprocess.run(
            ["radclient", "-x", *options, f"127.0.0.1:{self.port}", "auth", SECRET],
            input=attributes + "Message-Authenticator = 0x00\n",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result.stdout + result.stderr


@pytest.fixture
def radius(tmp_path: Path, db_url: str) -> Iterator[RadiusServer]:
    port = free_port()
    server = Server(tmp_path, db_url, extra_settings=f"radius:\n  listen: 127.0.0.1:{port}\n")
    server.start()
    secret_file = tmp_path / "fw1.secret"
    secret_file.write_text(SECRET, encoding="utf-8")
    server.apply(objects(secret_file))
    server.cli(
        "user",
        "add",
        "selin",
        "--auth-profile",
        "personel",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    yield RadiusServer(server, port)
    server.stop()
    assert "Traceback" not in server.log()


def phone(server: Server) -> DeviceState:
    return enroll(
        server.cli_json("enroll", "selin", "--json")["enrollment_url"], "Selin'in telefonu"
    )


def answer_when_pending(
    device: DeviceState, decision: str, number: str | None = None
) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            challenges = fetch_challenges(device)
            if challenges:
                send_answer(device, challenges[0], decision, number=number, uv=False)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def request_for(password: str = PASSWORD) -> str:
    return (
        f'User-Name = "selin"\nUser-Password = "{password}"\n'
        'Calling-Station-Id = "85.105.1.1"\nNAS-Identifier = "fw1"\n'
    )


def test_accept_after_approval_one_push(radius: RadiusServer) -> None:
    device = phone(radius.server)
    thread = answer_when_pending(device, "approve")
    output = radius.request(request_for(), "-t", "3", "-r", "5")
    thread.join(5)
    assert "Access-Accept" in output
    pushes = radius.server.cli_json("audit", "--user", "selin", "--event", "push_sent", "--json")
    assert len(pushes) == 1
    assert pushes[0]["source_ip"] == "85.105.1.1"


def test_reject_after_deny_in_turkish(radius: RadiusServer) -> None:
    device = phone(radius.server)
    thread = answer_when_pending(device, "deny")
    output = radius.request(request_for())
    thread.join(5)
    assert "Access-Reject" in output
    assert "Reply-Message" in output


def test_wrong_password_rejected_without_push(radius: RadiusServer) -> None:
    phone(radius.server)
    output = radius.request(request_for("yanlış"))
    assert "Access-Reject" in output
    pushes = radius.server.cli_json("audit", "--user", "selin", "--event", "push_sent", "--json")
    assert pushes == []


def test_number_mode_challenge_then_accept(radius: RadiusServer, tmp_path: Path) -> None:
    secret_file = tmp_path / "fw1.secret"
    radius.server.apply(
        "radius_clients:\n"
        f"  - {{name: fw1, address: 127.0.0.1/32, secret_file: {secret_file}, application: vpn-sayi}}\n"
    )
    device = phone(radius.server)
    first = radius.request(request_for())
    assert "Access-Challenge" in first
    state = re.search(r"State = (0x[0-9a-fA-F]+)", first)
    digits = re.search(r"Reply-Message = \"[^\"]*?(\d{2})[^\"]*\"", first)
    assert state is not None
    assert digits is not None
    thread = answer_when_pending(device, "approve", number=digits.group(1))
    second = radius.request(
        f'User-Name = "selin"\nUser-Password = "ok"\nState = {state.group(1)}\n'
    )
    thread.join(5)
    assert "Access-Accept" in second


def test_sigterm_answers_requests_in_flight(tmp_path: Path, db_url: str) -> None:
    """Requests being handled when the server stops get their Access-Reject."""
    port = free_port()
    server = Server(
        tmp_path,
        db_url,
        extra_settings=f"radius:\n  listen: 127.0.0.1:{port}\n",
        password_hash="default",
    )
    server.start()
    secret_file = tmp_path / "fw1.secret"
    secret_file.write_text(SECRET, encoding="utf-8")
    server.apply(objects(secret_file))
    radius = RadiusServer(server, port)
    replies: list[str] = []

    def log_in(index: int) -> None:
        # Unknown names still cost one production hash each, so the checks queue for slots.
        attributes = f'User-Name = "bilinmeyen-ş{index}"\nUser-Password = "{PASSWORD}"\n'
        replies.append(radius.request(attributes, "-r", "1", "-t", "10", timeout=20))

    threads = [threading.Thread(target=log_in, args=(index,)) for index in range(30)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.8)
        assert server.stop() == 0
    finally:
        for thread in threads:
            thread.join(timeout=25)
    assert len(replies) == len(threads)
    answered = [reply for reply in replies if "Received Access-" in reply]
    # A request that arrived after the drain began was dropped, and radclient saw no reply.
    assert len(answered) >= 10
    for reply in answered:
        assert "Received Access-Reject" in reply, reply
    log = server.log()
    assert "radius draining" in log
    assert "canceled_requests=0" in log
    assert "Traceback" not in log
