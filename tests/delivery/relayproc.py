"""A `tapgate relay serve` process with a trustme certificate, and its settings."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme

from tests.support import TAPGATE, cli_env, free_port

EVIL_RELAY = [sys.executable, str(Path(__file__).with_name("evil_relay.py"))]


@dataclass
class RelayProcess:
    workdir: Path
    ca: trustme.CA
    ca_file: Path
    server_url: str
    server_id: str = "corp"
    port: int = field(default_factory=free_port)
    # True runs evil_relay.py, whose tampering mode the test writes to `tamper_file`.
    evil: bool = False
    # Extra settings appended to relay.yaml, e.g. a `wake:` section.
    extra_settings: str = ""
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.key = secrets.token_urlsafe(32)
        self.key_file = self.workdir / "relay-server.key"
        self.key_file.write_text(self.key + "\n")
        self.key_file.chmod(0o600)
        certificate = self.ca.issue_cert("127.0.0.1")
        self.cert_file = self.workdir / "relay-cert.pem"
        self.tls_key_file = self.workdir / "relay-key.pem"
        certificate.cert_chain_pems[0].write_to_path(str(self.cert_file))
        certificate.private_key_pem.write_to_path(str(self.tls_key_file))
        self.state_file = self.workdir / "relay-state" / "mailboxes.json"
        self.log_path = self.workdir / "relay.log"
        self.config = self.workdir / "relay.yaml"
        # evil_relay.py in `forge` mode seals its forgeries to the key written here.
        self.forge_key_file = self.workdir / "forge-agreement-key.txt"
        self.tamper_file = self.workdir / "tamper-mode.txt"
        digest = hashlib.sha256(self.key.encode()).hexdigest()
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"tls: {{cert_file: {self.cert_file}, key_file: {self.tls_key_file}}}\n"
            f"state_file: {self.state_file}\n"
            "servers:\n"
            f"  - {{id: {self.server_id}, public_url: '{self.server_url}', key_sha256: {digest}}}\n"
            "  - {id: other, public_url: 'https://other.example.com', "
            f"key_sha256: {hashlib.sha256(b'other-key').hexdigest()}}}\n"
            "devices:\n  rate_limit: {per_second: 50, burst: 100}\n" + self.extra_settings
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def provider_entry(self) -> str:
        return (
            f"  - {{type: relay, url: '{self.url}', server_id: {self.server_id}, "
            f"key_file: '{self.key_file}', ca_file: '{self.ca_file}'}}\n"
        )

    def start(self) -> RelayProcess:
        env = cli_env()
        # DEBUG makes the relay log every WebSocket frame it receives and sends, so the log is
        # also a capture of the traffic between it and the server.
        env["TAPGATE_LOG_LEVEL"] = "DEBUG"
        env["FORGE_KEY_FILE"] = str(self.forge_key_file)
        env["TAMPER_MODE_FILE"] = str(self.tamper_file)
        command = (
            [*EVIL_RELAY, str(self.config)]
            if self.evil
            else [*TAPGATE, "relay", "serve", "--config", str(self.config)]
        )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(
                        self.url + "/healthz",
                        verify=ssl.create_default_context(cafile=str(self.ca_file)),
                        timeout=1,
                    ).status_code
                    == 200
                ):
                    return self
            time.sleep(0.1)
        raise RuntimeError("relay did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tamper(self, mode: str) -> None:
        self.tamper_file.write_text(mode)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
