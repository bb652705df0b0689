"""The RADIUS front door: Access-Request with PAP from VPN gateways and firewalls.

    server = RadiusServer(login, static_clients([client]), host="127.0.0.1", port=1812)
    await server.start()
    ...
    await server.stop()

Modules: `codec` (packets, Message-Authenticator, PAP), `duplicates` (RFC 5080 retransmission
cache), `state` (Access-Challenge State values), `flow` (requests to logins), `messages`
(Reply-Message texts), `clients` (RADIUS clients), `throttle` (log rate limit), `server` (UDP).
"""

from tapgate.radius.clients import (
    ClientProvider,
    RadiusClient,
    find_client,
    parse_networks,
    static_clients,
)
from tapgate.radius.flow import RadiusFlow
from tapgate.radius.server import RadiusServer

__all__ = [
    "ClientProvider",
    "RadiusClient",
    "RadiusFlow",
    "RadiusServer",
    "find_client",
    "parse_networks",
    "static_clients",
]
