"""Shared test helpers: free ports, databases on SQLite or PostgreSQL, and a real server process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PG_URL_ENV = "TAPGATE_TEST_DATABASE_URL"
TAPGATE = [sys.executable, "-m", "tapgate.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database_url(tmp_path: Path) -> Iterator[str]:
    """Yield a fresh database URL: a new PostgreSQL database when TAPGATE_TEST_DATABASE_URL is
    set (the URL of any database on that server), else a SQLite file under `tmp_path`."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield f"sqlite:///{tmp_path}/tapgate.db"
        return
    import psycopg

    name = f"tg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    prefix = base.rsplit("/", 1)[0]
    try:
        yield f"{prefix}/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TAPGATE_PASSWORD_HASH"] = "fast"
    env.pop("TAPGATE_CONFIG", None)
    return env


@dataclass
class Server:
    """A `tapgate serve` process on a free loopback port with its own settings file."""

    workdir: Path
    database: str
    port: int = field(default_factory=free_port)
    extra_settings: str = ""
    # "fast" for the cheap test profile, "default" for argon2-cffi's production one.
    password_hash: str = "fast"
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.workdir / "tapgate.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def write_settings(self) -> None:
        self.config.write_text(
            f"server:\n  listen: 127.0.0.1:{self.port}\n  public_url: {self.base}\n"
            f"database:\n  url: {self.database}\n"
            f"secrets:\n  key_file: {self.workdir}/secret.key\n{self.extra_settings}",
            encoding="utf-8",
        )

    def start(self) -> None:
        if not self.config.exists():
            self.write_settings()
        env = cli_env()
        if self.password_hash != "fast":
            del env["TAPGATE_PASSWORD_HASH"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*TAPGATE, "serve", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                env=env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def cli(
        self, *args: str, stdin: str | None = None, check: bool = True, process: bool | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a tapgate command; the authenticator runs as its own process, as a phone app would,
        and administrative commands run in this process for speed unless `process` is set."""
        if process is None:
            process = args[0] == "authenticator"
        if process:
            result = subprocess.run(
                [*TAPGATE, *args, "--config", str(self.config)],
                input=stdin,
                capture_output=True,
                text=True,
                env=cli_env(),
                timeout=60,
            )
        else:
            result = run_in_process([*args, "--config", str(self.config)], stdin)
        if check and result.returncode != 0:
            raise AssertionError(f"tapgate {' '.join(args)} failed: {result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args).stdout)

    def apply(self, document: str) -> str:
        path = self.workdir / f"objects-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(document, encoding="utf-8")
        return self.cli("apply", str(path)).stdout


def run_in_process(args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    from click.testing import CliRunner

    from tapgate.cli.main import cli

    outcome = CliRunner().invoke(cli, args, input=stdin, catch_exceptions=False)
    return subprocess.CompletedProcess(args, outcome.exit_code, outcome.stdout, outcome.stderr)


class Api:
    """An API client of one application, with its bearer token."""

    def __init__(self, server: Server, application: str) -> None:
        created = server.cli_json("client", "add", application, "--json")
        response = httpx.post(
            server.base + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(created["client_id"], created["client_secret"]),
        )
        response.raise_for_status()
        self.base = server.base
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    def login(self, username: str, password: str | None = None, **extra: Any) -> httpx.Response:
        body: dict[str, Any] = {"username": username, **extra}
        if password is not None:
            body["password"] = password
        return httpx.post(self.base + "/api/v1/auth", json=body, headers=self.headers, timeout=30)

    def status(self, transaction_id: str, wait: float = 0) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base}/api/v1/auth/{transaction_id}",
            params={"wait": wait} if wait else None,
            headers=self.headers,
            timeout=wait + 10,
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result
