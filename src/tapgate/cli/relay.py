"""`tapgate relay`: run the relay service, and make keys for the servers it serves."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import signal
from pathlib import Path

import click
import uvicorn

from tapgate.cli.common import handle_errors
from tapgate.errors import ConfigError
from tapgate.logsetup import setup_logging

log = logging.getLogger("tapgate.relay")


@click.group()
def relay() -> None:
    """The relay: carries sealed challenges to devices for servers that connect out to it."""


@relay.command("serve")
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Relay settings file (YAML).",
)
@handle_errors
def serve(config_file: str) -> None:
    """Run the relay until SIGTERM."""
    from tapgate.relay.config import load_relay_settings

    setup_logging()
    settings = load_relay_settings(Path(config_file))
    asyncio.run(_serve(settings))


async def _serve(settings: object) -> None:
    from tapgate.api.header_deadline import header_deadline_protocol
    from tapgate.delivery.base import DeliveryProvider
    from tapgate.delivery.router import build_provider
    from tapgate.relay.app import Relay, create_relay_app
    from tapgate.relay.config import RelaySettings

    assert isinstance(settings, RelaySettings)
    wake: dict[str, DeliveryProvider] = {
        kind: build_provider(value, None) for kind, value in settings.wake.items()
    }
    app = create_relay_app(Relay(settings, wake))
    config = uvicorn.Config(
        app,
        # The relay faces the internet: connections whose headers do not arrive are closed.
        http=header_deadline_protocol(),
        host=settings.listen.host,
        port=settings.listen.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        ws_max_size=64 * 1024,
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
    await server.serve()
    if not server.started:
        raise ConfigError(
            f"could not listen on {settings.listen}; is another process using the port?"
        )


@relay.command("server-key")
@click.option("--server-id", required=True, help="The id the relay's settings give this server.")
@click.option(
    "--key-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the new key (mode 0600); the tapgate server's relay provider reads it.",
)
@handle_errors
def server_key(server_id: str, key_file: str) -> None:
    """Make a key for one tapgate server; print the relay settings entry with its SHA-256."""
    key = secrets.token_urlsafe(32)
    path = Path(key_file)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"key file {path} already exists; pick another path") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    digest = hashlib.sha256(key.encode()).hexdigest()
    click.echo(
        f"  - id: {server_id}\n    public_url: https://mfa.example.com\n    key_sha256: {digest}"
    )
