"""Where an IP address is, for the login context shown on the phone.

Country from iptocc (data inside the wheel, nothing downloaded); private and reserved ranges are
named as such; a city from an operator-supplied MaxMind `.mmdb` when configured.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# RFC 1918, RFC 6598 (carrier-grade NAT), RFC 4193 and link-local: addresses inside some network.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(text)
    for text in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


class Locator:
    def __init__(self, city_database: Path | None = None) -> None:
        self._reader: Any = None
        if city_database is not None:
            import maxminddb

            self._reader = maxminddb.open_database(str(city_database))

    @lru_cache(maxsize=4096)  # noqa: B019 - one Locator lives as long as the process
    def locate(self, address: str | None) -> str:
        """Return a short place for `address`: "Istanbul, TR", "TR", "private network", or "unknown"."""
        if not address:
            return "unknown"
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "unknown"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
            ip = ip.ipv4_mapped
            address = str(ip)
        if ip.is_loopback:
            return "loopback"
        if any(ip in network for network in _PRIVATE_NETWORKS if network.version == ip.version):
            return "private network"
        if not ip.is_global:
            return "reserved range"
        city = self._city(address)
        country = self._country(address)
        return f"{city}, {country}" if city and country else country or "unknown"

    def _country(self, address: str) -> str | None:
        import iptocc

        try:
            code = iptocc.country_code(address)
        except ValueError as exc:
            log.warning("country lookup failed address=%s error=%s", address, exc)
            return None
        return str(code) if code else None

    def _city(self, address: str) -> str | None:
        if self._reader is None:
            return None
        record = self._reader.get(address)
        if not isinstance(record, dict):
            return None
        names = record.get("city", {}).get("names", {})
        name = names.get("en")
        return str(name) if name else None
