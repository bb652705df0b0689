"""The relay as a separate process between a tapgate server and a device.

Shows that the relay routes ciphertext only (its log, its state file and the stream it sends
contain none of the login context) and that a relay which alters a challenge or an answer is
caught by the device or the server.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tapgate.crypto.signing import private_key_from_text, public_key_to_text
from tapgate.relay.config import RateLimit
from tapgate.relay.ratelimit import TokenBuckets
from tests.delivery.mocks import WebPushMock
from tests.delivery.relayproc import RelayProcess
from tests.support import TAPGATE, Api, Server, cli_env, database_url

USERNAME = "zeynep.gizli"
CLIENT_IP = "198.51.100.77"
USER_AGENT = "GizliTarayici/7.1"
APPLICATION = "gizli-vpn"
SECRETS = (USERNAME, CLIENT_IP, USER_AGENT, APPLICATION)

OBJECTS = """
auth_profiles:
  - {name: personel, type: local}
push_profiles:
  - {name: uzak, fallback_auth_profiles: [personel], timeout: 20, verification: tap, default: true, delivery: [relay]}
applications:
  - {name: gizli-vpn, type: api, methods: [uzak], require_password: false}
delivery_providers:
"""


@dataclass
class Setup:
    server: Server
    relay: RelayProcess
    api: Api
    state: Path
    env: dict[str, str]
    workdir: Path
    streams_before: int = 0

    def listen(self, flag: str) -> subprocess.Popen[str]:
        self.streams_before = self.relay.log().count("device stream opened")
        with open(self.workdir / f"listen{flag}.log", "w") as log:
            return subprocess.Popen(
                [*TAPGATE, "authenticator", "listen", "--state", str(self.state), flag],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env=self.env,
            )

    def listen_log(self, flag: str) -> str:
        return (self.workdir / f"listen{flag}.log").read_text(encoding="utf-8")

    def wait_listening(self) -> None:
        """Wait until one more device stream to the relay is open than before the last
        `listen`, so a login reaches the device live."""
        _wait_for(lambda: self.relay.log().count("device stream opened") > self.streams_before)

    def wait_listener_output(self, flag: str, text: str) -> None:
        _wait_for(lambda: text in self.listen_log(flag))

    def login(self) -> str:
        response = self.api.login(USERNAME, client_ip=CLIENT_IP, user_agent=USER_AGENT)
        assert response.status_code == 202, response.text
        return str(response.json()["transaction_id"])


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(0.05)


def _wait_relay_link(relay: RelayProcess) -> None:
    _wait_for(lambda: "server link up" in relay.log())


def _wake_settings(workdir: Path, ca_file: Path) -> str:
    """A relay `wake` section that sends Web Push with a new VAPID key to the local mock."""
    vapid = workdir / "relay-vapid.pem"
    vapid.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (
        "wake:\n  webpush:\n"
        f"    vapid_private_key_file: {vapid}\n"
        "    subject: mailto:relay@example.com\n"
        "    allowed_endpoint_hosts: [127.0.0.1]\n"
        f"    ca_file: {ca_file}\n"
    )


def _make_setup(workdir: Path, pki: tuple[trustme.CA, Path], evil: bool) -> Iterator[Setup]:
    with database_url(workdir) as db_url:
        server = Server(workdir, db_url)
        relay = RelayProcess(
            workdir,
            pki[0],
            pki[1],
            server.base,
            evil=evil,
            extra_settings=_wake_settings(workdir, pki[1]),
        )
        env = cli_env()
        env["SSL_CERT_FILE"] = str(pki[1])
        try:
            relay.start()
            server.start()
            server.apply(OBJECTS + relay.provider_entry())
            server.cli("user", "add", USERNAME, "--auth-profile", "personel")
            url = server.cli_json("enroll", USERNAME, "--json")["enrollment_url"]
            state = workdir / "phone.json"
            enrolled = subprocess.run(
                [
                    *TAPGATE,
                    "authenticator",
                    "enroll",
                    url,
                    "--state",
                    str(state),
                    "--relay",
                    relay.url,
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert enrolled.returncode == 0, enrolled.stderr
            # A forging relay learns the device's public agreement key; that is not enough.
            agreement = private_key_from_text(json.loads(state.read_text())["agreement_key"])
            relay.forge_key_file.write_text(public_key_to_text(agreement.public_key()))
            _wait_relay_link(relay)
            yield Setup(server, relay, Api(server, APPLICATION), state, env, workdir)
        finally:
            relay.stop()
            if server.process and server.process.poll() is None:
                server.stop()
    assert "Traceback" not in server.log()
    assert "Traceback" not in relay.log()


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, pki: tuple[trustme.CA, Path]
) -> Iterator[Setup]:
    """A server, the real relay and an enrolled device, shared by this module's tests."""
    yield from _make_setup(tmp_path_factory.mktemp("relay"), pki, evil=False)


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory, pki: tuple[trustme.CA, Path]) -> Iterator[Setup]:
    """The same with a tampering relay (evil_relay.py) in place of the real one."""
    yield from _make_setup(tmp_path_factory.mktemp("evil-relay"), pki, evil=True)


def _latency_count(server: Server, provider: str) -> float:
    for line in httpx.get(server.base + "/metrics").text.splitlines():
        if line.startswith(f'tapgate_delivery_latency_seconds_count{{provider="{provider}"}}'):
            return float(line.split()[-1])
    return 0.0


def _capture_stream(
    state: dict[str, object], ca_file: Path, seconds: float
) -> tuple[threading.Thread, list[bytes]]:
    """Read the device's relay stream as a second listener, keeping every raw byte it sends."""
    relay = state["relay"]
    assert isinstance(relay, dict)
    captured: list[bytes] = []

    def read() -> None:
        url = f"{relay['url']}/relay/v1/mailboxes/{relay['address']}/stream"
        deadline = time.monotonic() + seconds
        try:
            with httpx.stream(
                "GET",
                url,
                headers={"Authorization": f"Bearer {relay['token']}"},
                verify=ssl.create_default_context(cafile=str(ca_file)),
                timeout=httpx.Timeout(5.0, read=seconds),
            ) as response:
                for chunk in response.iter_raw():
                    captured.append(chunk)
                    if b"event: sealed" in b"".join(captured) or time.monotonic() > deadline:
                        return
        except httpx.HTTPError:
            return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, captured


def test_relay_login_approved(setup: Setup) -> None:
    receipts_before = _latency_count(setup.server, "relay")
    listener = setup.listen("--approve")
    try:
        setup.wait_listening()
        transaction_id = setup.login()
        status = setup.api.status(transaction_id, wait=15)
        assert status["status"] == "approved"
    finally:
        _stop(listener)
    assert _latency_count(setup.server, "relay") == receipts_before + 1


def test_relay_sees_only_ciphertext(setup: Setup, pki: tuple[trustme.CA, Path]) -> None:
    state = json.loads(setup.state.read_text())
    setup.streams_before = setup.relay.log().count("device stream opened")
    thread, captured = _capture_stream(state, pki[1], 15)
    setup.wait_listening()
    transaction_id = setup.login()
    thread.join(20)

    traffic = b"".join(captured).decode("utf-8", errors="replace")
    assert "event: sealed" in traffic
    assert "ciphertext" in traffic
    log = setup.relay.log()
    assert transaction_id in log, "the relay log is not the log of this relay"
    stored = setup.relay.state_file.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in traffic, f"{secret!r} crossed the relay in plaintext"
        assert secret not in log, f"{secret!r} is in the relay log"
        assert secret not in stored, f"{secret!r} is in the relay state file"


def test_relay_tampered_challenge_rejected(evil: Setup) -> None:
    evil.relay.tamper("challenge")
    listener = evil.listen("--approve")
    try:
        evil.wait_listening()
        transaction_id = evil.login()
        evil.wait_listener_output("--approve", "sealed challenge rejected")
        assert evil.api.status(transaction_id)["status"] == "pending"
    finally:
        _stop(listener)


def test_relay_forged_challenge_rejected(evil: Setup) -> None:
    evil.relay.tamper("forge")
    listener = evil.listen("--approve")
    try:
        evil.wait_listening()
        transaction_id = evil.login()
        evil.wait_listener_output("--approve", "pinned server key")
        assert evil.api.status(transaction_id)["status"] == "pending"
    finally:
        _stop(listener)


def test_relay_altered_answer_rejected(evil: Setup) -> None:
    evil.relay.tamper("answer")
    listener = evil.listen("--deny")
    try:
        evil.wait_listening()
        transaction_id = evil.login()
        evil.wait_listener_output("--deny", f"transaction {transaction_id} is")
        assert evil.api.status(transaction_id)["status"] == "pending"
    finally:
        _stop(listener)
    audit = evil.server.cli_json("audit", "--json")
    rejected = [
        r
        for r in audit
        if r["event"] == "answer_rejected" and r["transaction_id"] == transaction_id
    ]
    assert rejected, "the server did not record the altered answer"


def _link(relay: RelayProcess, ca_file: Path, credential: str):  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(ca_file))
    return connect(
        f"wss://127.0.0.1:{relay.port}/relay/v1/link",
        additional_headers={"Authorization": f"Bearer {credential}"},
        ssl=context,
        open_timeout=5,
    )


def test_relay_rejects_wrong_server_key(setup: Setup, pki: tuple[trustme.CA, Path]) -> None:
    with pytest.raises(InvalidStatus):
        _link(setup.relay, pki[1], "corp:not-the-key").close()


def test_relay_keeps_servers_apart(setup: Setup, pki: tuple[trustme.CA, Path]) -> None:
    address = json.loads(setup.state.read_text())["relay"]["address"]
    with _link(setup.relay, pki[1], "other:other-key") as link:
        link.send(
            json.dumps({"type": "deliver", "id": 1, "address": address, "ttl": 10, "sealed": {}})
        )
        ack = json.loads(link.recv(timeout=5))
    assert ack["result"] == "unknown_address"


def test_relay_mailbox_needs_token(setup: Setup, pki: tuple[trustme.CA, Path]) -> None:
    address = json.loads(setup.state.read_text())["relay"]["address"]
    response = httpx.get(
        f"{setup.relay.url}/relay/v1/mailboxes/{address}/messages",
        headers={"Authorization": "Bearer wrong"},
        verify=ssl.create_default_context(cafile=str(pki[1])),
    )
    assert response.status_code == 401


def test_token_bucket_limits_burst() -> None:
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    limit = RateLimit(per_second=2.0, burst=3)
    assert [buckets.take("server:corp", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("server:corp", limit) == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("server:corp", limit) == 0.0
    assert buckets.take("server:other", limit) == 0.0


def test_relay_wakes_through_webpush(
    setup: Setup, pki: tuple[trustme.CA, Path], webpush_mock: WebPushMock
) -> None:
    """A device with no open stream is woken through the relay's own Web Push credentials."""
    subscription = webpush_mock.subscribe()
    created = httpx.post(
        f"{setup.relay.url}/relay/v1/mailboxes",
        json={"server": setup.server.base, "wake": {"webpush": subscription.as_json()}},
        verify=ssl.create_default_context(cafile=str(pki[1])),
    )
    assert created.status_code == 201
    address = created.json()["address"]
    sealed = {"v": 1, "transaction_id": "tx-wake", "device_id": "device-wake", "ciphertext": "x"}

    with _link(setup.relay, pki[1], f"corp:{setup.relay.key}") as link:
        link.send(
            json.dumps(
                {"type": "deliver", "id": 7, "address": address, "ttl": 30, "sealed": sealed}
            )
        )
        ack = json.loads(link.recv(timeout=10))

    assert ack == {"type": "ack", "id": 7, "result": "woken"}
    pushed = [
        r
        for r in webpush_mock.received
        if r["subscription"] == subscription.endpoint.rsplit("/", 1)[1]
    ]
    assert [r["payload"] for r in pushed] == [sealed]
