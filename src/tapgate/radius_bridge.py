"""Start the RADIUS front door with RADIUS clients read from the database.

Clients are rebuilt only when the object version changes, so a change made with `apply` or the
console takes effect on the next request without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from tapgate.errors import ConfigError
from tapgate.radius import RadiusClient, RadiusServer, parse_networks
from tapgate.runtime import Runtime
from tapgate.store.models import RadiusClientRow

log = logging.getLogger(__name__)


class DatabaseClients:
    """A client provider that caches the decrypted client list per object version."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._version = -1
        self._clients: tuple[RadiusClient, ...] = ()

    async def __call__(self) -> Sequence[RadiusClient]:
        snapshot = await self._runtime.objects.current()
        if snapshot.version != self._version:
            self._clients = await self._load()
            self._version = snapshot.version
        return self._clients

    async def _load(self) -> tuple[RadiusClient, ...]:
        async with self._runtime.database.read() as session:
            rows = (await session.scalars(select(RadiusClientRow))).all()
        clients = []
        for row in rows:
            config = row.config
            if row.secret is None:
                log.warning("radius client has no stored secret client=%s", row.name)
                continue
            try:
                clients.append(
                    RadiusClient(
                        name=row.name,
                        networks=parse_networks([config["address"]]),
                        secret=self._runtime.keyring.decrypt(
                            row.secret, f"radius_client:{row.name}"
                        ),
                        application=config["application"],
                        require_message_authenticator=bool(
                            config.get("require_message_authenticator", True)
                        ),
                        client_ip_attribute=config.get("client_ip_attribute", "Calling-Station-Id"),
                        timeout=config.get("timeout"),
                        language=config.get("language", "en"),
                        challenge=bool(config.get("challenge", True)),
                    )
                )
            except (ValueError, ConfigError) as exc:
                log.warning("radius client skipped client=%s error=%s", row.name, exc)
        log.info("radius clients loaded count=%d", len(clients))
        return tuple(clients)


async def start_radius(runtime: Runtime) -> RadiusServer:
    listen = runtime.settings.radius_listen
    assert listen is not None
    server = RadiusServer(
        runtime.login, DatabaseClients(runtime), host=listen.host, port=listen.port
    )
    await server.start()
    return server
