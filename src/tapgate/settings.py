"""Process settings: a YAML file (`--config`, `TAPGATE_CONFIG`) with environment overrides.

With no file at all, the embedded default runs: SQLite and the key file under `./tapgate-data/`,
HTTP on 127.0.0.1:8080.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tapgate.errors import ConfigError
from tapgate.yamlfile import YamlFileError, load_yaml_file

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("tapgate-data")

_KNOWN: dict[str, set[str]] = {
    "server": {"listen", "public_url", "trusted_proxies", "log_level", "return_to_origins"},
    "database": {"url"},
    "radius": {"listen"},
    "secrets": {"key_file"},
    "geoip": {"city_database"},
    "retention": {"audit_days", "transaction_days"},
}

_ENV = {
    ("server", "listen"): "TAPGATE_LISTEN",
    ("server", "public_url"): "TAPGATE_PUBLIC_URL",
    ("database", "url"): "TAPGATE_DATABASE_URL",
    ("radius", "listen"): "TAPGATE_RADIUS_LISTEN",
    ("secrets", "key_file"): "TAPGATE_KEY_FILE",
    ("retention", "audit_days"): "TAPGATE_AUDIT_RETENTION_DAYS",
    ("retention", "transaction_days"): "TAPGATE_TRANSACTION_RETENTION_DAYS",
}
# Maximum retention period in days: a hundred years, so a typo of extra digits is caught.
MAX_RETENTION_DAYS = 36_500
FOREVER = "forever"


@dataclass(frozen=True)
class Retention:
    """Days to keep audit records and finished transactions; None keeps them forever."""

    audit_days: int | None = None
    transaction_days: int | None = 30

    def describe(self) -> str:
        return (
            f"audit_days={self.audit_days or FOREVER} "
            f"transaction_days={self.transaction_days or FOREVER}"
        )


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    listen: HostPort
    public_url: str
    database_url: str
    key_file: Path
    radius_listen: HostPort | None = None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    city_database: Path | None = None
    # Origins besides public_url's that the hosted login may send a browser back to.
    return_to_origins: tuple[str, ...] = ()
    retention: Retention = field(default_factory=Retention)
    # True when no settings file was given: `serve` then creates the default objects.
    embedded: bool = False
    source: str = "(embedded default)"
    warnings: tuple[str, ...] = field(default_factory=tuple)


def parse_host_port(value: str, key: str) -> HostPort:
    host, sep, port_text = str(value).rpartition(":")
    if not sep or not host or not port_text.isascii() or not port_text.isdigit():
        raise ConfigError(
            f"{key}: invalid address {value!r}; expected HOST:PORT, e.g. 127.0.0.1:8080"
        )
    if not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"{key}: invalid port {port_text} in {value!r}; use a port from 1 to 65535, "
            "e.g. 127.0.0.1:8080"
        )
    return HostPort(host.strip("[]"), int(port_text))


def parse_retention_days(value: Any, key: str, default: int | None) -> int | None:
    """Return whole days from the settings file or environment, or None for `forever`."""
    if value is None or value == "":
        return default
    text = str(value).strip()
    if text.lower() == FOREVER:
        return None
    plain = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_RETENTION_DAYS))
    if isinstance(value, bool) or not plain or not 1 <= int(text) <= MAX_RETENTION_DAYS:
        raise ConfigError(
            f"{key}: invalid retention {value!r}; expected a whole number of days from 1 to "
            f"{MAX_RETENTION_DAYS}, or {FOREVER} to keep everything"
        )
    return int(text)


def _retention_days(
    section: dict[str, Any], key: str, env: dict[str, str], default: int | None
) -> int | None:
    variable = _ENV[("retention", key)]
    source = variable if env.get(variable) else f"retention.{key}"
    if key in section and section[key] in (None, ""):
        # An empty value in the file; deleting nothing by mistake is as bad as deleting early.
        raise ConfigError(
            f"{source} is empty; give a whole number of days from 1 to {MAX_RETENTION_DAYS}, "
            f"or {FOREVER} to keep everything"
        )
    return parse_retention_days(section.get(key), source, default)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_public_url(url: str) -> list[str]:
    """Validate `public_url`; return warnings (http on loopback) or raise ConfigError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"server.public_url: invalid URL {url!r}; expected https://HOST[:PORT], "
            "the address devices and QR codes use"
        )
    if parts.scheme == "http":
        if not _is_loopback(parts.hostname):
            raise ConfigError(
                f"server.public_url: {url!r} uses http on a non-loopback host; use https "
                "(http is accepted only for loopback addresses)"
            )
        return [f"server.public_url {url} uses plain http; acceptable only for local testing"]
    return []


def _default_public_url(listen: HostPort) -> str:
    try:
        address = ipaddress.ip_address(listen.host)
    except ValueError:
        return f"http://{listen.host}:{listen.port}"
    if address.is_unspecified:
        raise ConfigError(
            f"server.public_url is required when listening on {listen}: set the https address "
            "devices and QR codes use"
        )
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{listen.port}"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml_file(path) or {}
    except YamlFileError as exc:
        raise ConfigError(f"settings file: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path} must be a mapping of sections")
    for section, body in data.items():
        if section not in _KNOWN:
            raise ConfigError(
                f"{path}: unknown section {section!r}; known sections: {', '.join(sorted(_KNOWN))}"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping")
        for key in body:
            if key not in _KNOWN[section]:
                raise ConfigError(
                    f"{path}: unknown key {section}.{key}; known keys: "
                    f"{', '.join(sorted(_KNOWN[section]))}"
                )
    return data


def load_settings(config_file: str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Load settings from `config_file` (or TAPGATE_CONFIG) and environment overrides."""
    env = dict(os.environ) if env is None else env
    path_text = config_file or env.get("TAPGATE_CONFIG")
    data: dict[str, Any] = {}
    source = "(embedded default)"
    if path_text:
        data = _read_file(Path(path_text))
        source = path_text
    for (section, key), variable in _ENV.items():
        if env.get(variable):
            data.setdefault(section, {})[key] = env[variable]

    server = data.get("server", {})
    listen = parse_host_port(server.get("listen", "127.0.0.1:8080"), "server.listen")
    public_url = str(server.get("public_url") or _default_public_url(listen)).rstrip("/")
    warnings = check_public_url(public_url)

    database_url = str(
        data.get("database", {}).get("url") or f"sqlite:///./{DEFAULT_DATA_DIR}/tapgate.db"
    )
    key_file = Path(data.get("secrets", {}).get("key_file") or DEFAULT_DATA_DIR / "secret.key")
    radius_text = data.get("radius", {}).get("listen")
    radius_listen = parse_host_port(radius_text, "radius.listen") if radius_text else None

    proxies = []
    for entry in server.get("trusted_proxies", []) or []:
        try:
            proxies.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"server.trusted_proxies: invalid address {entry!r}; expected an IP or CIDR"
            ) from exc
    city = data.get("geoip", {}).get("city_database")
    origins = server.get("return_to_origins") or []
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError("server.return_to_origins must be a list of https://HOST[:PORT] origins")
    origins += [o.strip() for o in env.get("TAPGATE_RETURN_TO_ORIGINS", "").split(",") if o.strip()]

    retention_section = data.get("retention", {})
    retention = Retention(
        audit_days=_retention_days(retention_section, "audit_days", env, Retention.audit_days),
        transaction_days=_retention_days(
            retention_section, "transaction_days", env, Retention.transaction_days
        ),
    )

    return Settings(
        listen=listen,
        public_url=public_url,
        database_url=database_url,
        key_file=key_file,
        radius_listen=radius_listen,
        trusted_proxies=tuple(proxies),
        city_database=Path(city) if city else None,
        return_to_origins=tuple(origins),
        retention=retention,
        embedded=not path_text,
        source=source,
        warnings=tuple(warnings),
    )
