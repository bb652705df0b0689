"""RADIUS clients: the network access servers allowed to send requests, and how to find one.

The server calls its `ClientProvider` for the current list on every request, so clients changed
by `apply` or the console take effect without a restart. A provider that reads the database
should cache the list and refresh it when objects change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from tapgate.i18n import LANGUAGES
from tapgate.secret import Secret

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The attribute that carries the end user's address, named as RADIUS dictionaries name it.
ClientIpAttribute = Literal["Calling-Station-Id", "Framed-IP-Address"]
CLIENT_IP_ATTRIBUTES: tuple[ClientIpAttribute, ...] = ("Calling-Station-Id", "Framed-IP-Address")


@dataclass(frozen=True)
class RadiusClient:
    """A network access server (VPN gateway, firewall) and its settings.

    `timeout` is the response time budget in seconds. When no decision arrives within it, the
    server replies with Access-Reject and cancels the transaction, so the user gets a message
    instead of a NAS that gives up silently. Set it a little below the time the NAS waits in
    all, which is its timeout times its number of tries. `challenge` false marks a NAS that
    cannot show an Access-Challenge prompt.
    """

    name: str
    networks: tuple[IPNetwork, ...]
    secret: Secret
    application: str
    require_message_authenticator: bool = True
    client_ip_attribute: ClientIpAttribute = "Calling-Station-Id"
    timeout: float | None = None
    language: str = "en"
    challenge: bool = True

    def __post_init__(self) -> None:
        if not self.networks:
            raise ValueError(f"RADIUS client {self.name!r} has no address or network")
        if not self.secret:
            raise ValueError(f"RADIUS client {self.name!r} has an empty shared secret")
        if self.client_ip_attribute not in CLIENT_IP_ATTRIBUTES:
            raise ValueError(
                f"RADIUS client {self.name!r}: client_ip_attribute must be one of "
                f"{', '.join(CLIENT_IP_ATTRIBUTES)}, not {self.client_ip_attribute!r}"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"RADIUS client {self.name!r}: timeout must be a positive number")
        if self.language not in LANGUAGES:
            raise ValueError(
                f"RADIUS client {self.name!r}: language must be one of "
                f"{', '.join(LANGUAGES)}, not {self.language!r}"
            )

    @property
    def secret_bytes(self) -> bytes:
        return self.secret.reveal().encode("utf-8")


ClientProvider = Callable[[], Awaitable[Sequence[RadiusClient]]]


def parse_networks(addresses: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse addresses and CIDR blocks ("192.0.2.1", "10.0.0.0/8"); raises ValueError."""
    return tuple(ipaddress.ip_network(address.strip(), strict=False) for address in addresses)


def static_clients(clients: Iterable[RadiusClient]) -> ClientProvider:
    """Wrap a fixed list as a `ClientProvider`."""
    frozen = tuple(clients)

    async def provide() -> Sequence[RadiusClient]:
        return frozen

    return provide


def find_client(clients: Iterable[RadiusClient], address: str) -> RadiusClient | None:
    """Return the client whose network contains `address`, preferring the longest prefix, or
    None for an unknown source. An IPv4-mapped IPv6 source matches IPv4 networks."""
    try:
        source: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
        source = source.ipv4_mapped

    best: RadiusClient | None = None
    best_prefix = -1
    for client in clients:
        for network in client.networks:
            if source.version != network.version or source not in network:
                continue
            if network.prefixlen > best_prefix:
                best, best_prefix = client, network.prefixlen
    return best
