"""The relay's settings file (YAML), given as `tapgate relay serve --config FILE`:

    listen: 0.0.0.0:8443
    tls: {cert_file: /etc/tapgate-relay/cert.pem, key_file: /etc/tapgate-relay/key.pem}
    state_file: /var/lib/tapgate-relay/mailboxes.json
    servers:                  # the tapgate servers this relay serves, each with its own key
      - id: corp
        public_url: https://mfa.corp.example     # the server's public_url, as devices know it
        key_sha256: 9f86d0...                    # `tapgate relay server-key` prints key and hash
        rate_limit: {per_second: 50, burst: 200} # challenges this server may send
    devices:
      rate_limit: {per_second: 2, burst: 20}     # requests per device source address
    wake:                     # optional: wake phones with no open stream through a push service
      webpush: {vapid_private_key_file: /etc/tapgate-relay/vapid.pem, subject: mailto:it@example.com}

TLS is required unless `listen` is a loopback address. Server keys are stored only as SHA-256
hashes; the wake providers take the options of the `delivery_providers` objects section.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tapgate.delivery.config import (
    ProviderSettings,
    check_service_url,
    parse_delivery_provider,
    read_credential,
)
from tapgate.errors import ConfigError, ObjectError
from tapgate.settings import HostPort, _is_loopback, parse_host_port
from tapgate.yamlfile import YamlFileError, load_yaml_file

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = {"listen", "tls", "state_file", "servers", "devices", "wake"}


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int


@dataclass(frozen=True)
class RelayServer:
    id: str
    public_url: str
    key_sha256: str = field(repr=False)
    rate_limit: RateLimit = RateLimit(50.0, 200)


@dataclass(frozen=True)
class RelaySettings:
    listen: HostPort
    state_file: Path
    servers: Mapping[str, RelayServer]
    tls_cert: Path | None = None
    tls_key: Path | None = None
    device_rate_limit: RateLimit = RateLimit(2.0, 20)
    wake: Mapping[str, ProviderSettings] = field(default_factory=dict)


def _rate(where: str, value: Any, default: RateLimit) -> RateLimit:
    if value is None:
        return default
    if not isinstance(value, dict) or set(value) - {"per_second", "burst"}:
        raise ConfigError(f"{where}: rate_limit must be a mapping with per_second and burst")
    per_second = value.get("per_second", default.per_second)
    burst = value.get("burst", default.burst)
    if not isinstance(per_second, int | float) or per_second <= 0:
        raise ConfigError(f"{where}: rate_limit.per_second must be a positive number")
    if not isinstance(burst, int) or burst < 1:
        raise ConfigError(f"{where}: rate_limit.burst must be a positive integer")
    return RateLimit(float(per_second), burst)


def _server(index: int, data: Any) -> RelayServer:
    where = f"servers[{index}]"
    if not isinstance(data, dict) or set(data) - {"id", "public_url", "key_sha256", "rate_limit"}:
        raise ConfigError(f"{where}: must be a mapping with id, public_url, key_sha256, rate_limit")
    server_id = data.get("id")
    if not isinstance(server_id, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", server_id):
        raise ConfigError(f"{where}: id must be 1-64 letters, digits, '.', '_' or '-'")
    key_hash = str(data.get("key_sha256", "")).lower()
    if not _SHA256_HEX.match(key_hash):
        raise ConfigError(
            f"{where}: key_sha256 must be 64 hex digits; `tapgate relay server-key` prints one"
        )
    try:
        public_url = check_service_url(f"{where}: public_url", data.get("public_url"))
    except ObjectError as exc:
        raise ConfigError(str(exc)) from exc
    return RelayServer(
        server_id, public_url, key_hash, _rate(where, data.get("rate_limit"), RateLimit(50.0, 200))
    )


def _wake(data: Any) -> dict[str, ProviderSettings]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("wake must be a mapping of provider type to options")
    providers: dict[str, ProviderSettings] = {}
    for index, (kind, options) in enumerate(data.items()):
        if kind == "relay" or not isinstance(options, dict):
            raise ConfigError(f"wake.{kind}: must be the options of fcm, apns or webpush")
        try:
            spec = parse_delivery_provider({"type": kind, **options}, index)
            credential = read_credential(spec)
        except ObjectError as exc:
            raise ConfigError(f"wake.{kind}: {exc}") from exc
        providers[kind] = ProviderSettings(kind, spec.options, credential)
    return providers


def load_relay_settings(path: Path) -> RelaySettings:
    try:
        data = load_yaml_file(path) or {}
    except YamlFileError as exc:
        raise ConfigError(f"relay settings: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"relay settings {path} must be a mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {sorted(unknown)[0]!r}; known keys: {', '.join(sorted(_TOP_KEYS))}"
        )
    listen = parse_host_port(data.get("listen", "127.0.0.1:8443"), "listen")
    tls = data.get("tls") or {}
    if not isinstance(tls, dict) or set(tls) - {"cert_file", "key_file"}:
        raise ConfigError(f"{path}: tls must be a mapping with cert_file and key_file")
    if bool(tls.get("cert_file")) != bool(tls.get("key_file")):
        raise ConfigError(f"{path}: tls needs both cert_file and key_file")
    if not tls and not _is_loopback(listen.host):
        raise ConfigError(
            f"{path}: tls.cert_file and tls.key_file are required when listening on {listen}; "
            "plain HTTP is accepted only on loopback addresses"
        )
    servers_data = data.get("servers")
    if not isinstance(servers_data, list) or not servers_data:
        raise ConfigError(f"{path}: servers must list at least one tapgate server")
    servers: dict[str, RelayServer] = {}
    for index, item in enumerate(servers_data):
        server = _server(index, item)
        if server.id in servers:
            raise ConfigError(f"{path}: server id {server.id!r} appears twice")
        servers[server.id] = server
    devices = data.get("devices") or {}
    if not isinstance(devices, dict) or set(devices) - {"rate_limit"}:
        raise ConfigError(f"{path}: devices must be a mapping with rate_limit")
    return RelaySettings(
        listen=listen,
        state_file=Path(data.get("state_file") or "relay-data/mailboxes.json"),
        servers=servers,
        tls_cert=Path(tls["cert_file"]) if tls else None,
        tls_key=Path(tls["key_file"]) if tls else None,
        device_rate_limit=_rate("devices", devices.get("rate_limit"), RateLimit(2.0, 20)),
        wake=_wake(data.get("wake")),
    )
