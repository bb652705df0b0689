"""The `delivery_providers` objects section: settings and credentials of each push provider.

One entry per provider type, named by its `type`:

    delivery_providers:
      - {type: fcm, service_account_file: /etc/tapgate/fcm.json}
      - {type: apns, team_id: T, key_id: K, key_file: /etc/tapgate/apns.p8, topic: com.example.app}
      - {type: webpush, vapid_private_key_file: /etc/tapgate/vapid.pem, subject: mailto:it@example.com}
      - {type: relay, url: https://relay.example.com, server_id: corp, key_file: /etc/tapgate/relay.key}

`tapgate apply` reads the credential file named by each entry and stores its content encrypted
with the key file. The path is kept only so that `export` prints the entry back. The service base URLs
are options so a test or an on-premises gateway can stand in for Google's and Apple's services.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.errors import ObjectError
from tapgate.keys import KeyRing
from tapgate.secret import Secret
from tapgate.store.models import DeliveryProviderRow

SECTION = "delivery_providers"
FCM_TOKEN_URL = "https://oauth2.googleapis.com/token"
FCM_SEND_URL = "https://fcm.googleapis.com"
APNS_URL = "https://api.push.apple.com"
# Push service hosts of Chrome, Firefox, Edge and Safari. An endpoint on any other host is
# rejected, so a device cannot make tapgate send requests to an arbitrary host.
WEBPUSH_HOSTS = (
    "fcm.googleapis.com",
    "*.push.services.mozilla.com",
    "*.notify.windows.com",
    "web.push.apple.com",
)

# type: (required keys, optional keys, the key naming the credential file)
_KINDS: dict[str, tuple[set[str], set[str], str]] = {
    "relay": ({"url", "server_id", "key_file"}, {"ca_file"}, "key_file"),
    "fcm": ({"service_account_file"}, {"token_url", "send_url", "ca_file"}, "service_account_file"),
    "apns": (
        {"team_id", "key_id", "key_file", "topic"},
        {"base_url", "ca_file"},
        "key_file",
    ),
    "webpush": (
        {"vapid_private_key_file", "subject"},
        {"allowed_endpoint_hosts", "ca_file"},
        "vapid_private_key_file",
    ),
}
PROVIDER_KINDS = tuple(_KINDS)
_URL_KEYS = ("url", "token_url", "send_url", "base_url")


@dataclass(frozen=True)
class DeliveryProviderSpec:
    name: str  # the provider type; one entry per type
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def secret_key(self) -> str:
        return _KINDS[self.name][2]


@dataclass(frozen=True)
class ProviderSettings:
    """A provider's options with its decrypted credential, as the router builds it from."""

    kind: str
    options: Mapping[str, Any]
    credential: Secret = field(repr=False)


def check_service_url(where: str, url: object) -> str:
    """Accept https URLs (wss for the relay), and plain http or ws only on loopback hosts."""
    if not isinstance(url, str):
        raise ObjectError(f"{where}: must be a URL string, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "wss", "http", "ws") or not parts.hostname:
        raise ObjectError(f"{where}: invalid URL {url!r}; expected https://HOST[:PORT][/PATH]")
    if parts.scheme in ("http", "ws"):
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            raise ObjectError(
                f"{where}: {url!r} is not encrypted; use https (plain http is accepted only "
                "for loopback addresses)"
            )
    return url.rstrip("/")


def parse_delivery_provider(data: Any, index: int) -> DeliveryProviderSpec:
    kind = data.get("type") if isinstance(data, Mapping) else None
    where = f"{SECTION}[{index}]" + (f" ({kind})" if isinstance(kind, str) else "")
    if not isinstance(data, Mapping):
        raise ObjectError(f"{where}: must be a mapping")
    if kind not in _KINDS:
        raise ObjectError(f"{where}: type must be one of {', '.join(PROVIDER_KINDS)}, not {kind!r}")
    required, optional, _ = _KINDS[kind]
    allowed = required | optional | {"type"}
    for key in data:
        if key not in allowed:
            raise ObjectError(
                f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}"
            )
    for key in sorted(required):
        if data.get(key) in (None, ""):
            raise ObjectError(f"{where}: missing key {key!r}")
    options: dict[str, Any] = {}
    for key, value in data.items():
        if key == "type":
            continue
        if key in _URL_KEYS:
            options[key] = check_service_url(f"{where}: {key}", value)
        elif key == "allowed_endpoint_hosts":
            if not isinstance(value, list) or not all(isinstance(h, str) and h for h in value):
                raise ObjectError(f"{where}: allowed_endpoint_hosts must be a list of host names")
            options[key] = list(value)
        elif not isinstance(value, str | int) or isinstance(value, bool):
            raise ObjectError(f"{where}: {key} must be a string, not {value!r}")
        else:
            options[key] = str(value)
    return DeliveryProviderSpec(name=kind, options=options)


def read_credential(spec: DeliveryProviderSpec) -> Secret:
    path = str(spec.options[spec.secret_key])
    where = f"delivery provider {spec.name!r}: {spec.secret_key}"
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ObjectError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ObjectError(f"{where}: {path} is empty")
    return Secret(value)


def _context(kind: str) -> str:
    return f"delivery_provider:{kind}"


async def load_provider_specs(session: AsyncSession) -> dict[str, DeliveryProviderSpec]:
    rows = (
        await session.scalars(select(DeliveryProviderRow).order_by(DeliveryProviderRow.kind))
    ).all()
    return {row.kind: DeliveryProviderSpec(row.kind, dict(row.config)) for row in rows}


async def load_provider_settings(
    session: AsyncSession, keyring: KeyRing
) -> dict[str, ProviderSettings]:
    """Return every configured provider with its credential decrypted."""
    rows = (await session.scalars(select(DeliveryProviderRow))).all()
    return {
        row.kind: ProviderSettings(
            row.kind, dict(row.config), keyring.decrypt(row.secret or "", _context(row.kind))
        )
        for row in rows
    }


async def write_delivery_providers(
    session: AsyncSession,
    keyring: KeyRing,
    merged: Mapping[str, DeliveryProviderSpec],
    incoming: Mapping[str, DeliveryProviderSpec],
) -> list[str]:
    """Store the merged providers; the credentials of `incoming` ones are read and encrypted."""
    sealed = {
        kind: keyring.encrypt(read_credential(spec), _context(kind))
        for kind, spec in incoming.items()
    }
    changes: list[str] = []
    rows = {row.kind: row for row in (await session.scalars(select(DeliveryProviderRow))).all()}
    for kind in [k for k in rows if k not in merged]:
        await session.delete(rows.pop(kind))
        changes.append(f"deleted delivery provider {kind}")
    for kind, spec in merged.items():
        row = rows.get(kind)
        if row is None:
            session.add(
                DeliveryProviderRow(kind=kind, config=dict(spec.options), secret=sealed[kind])
            )
            changes.append(f"created delivery provider {kind}")
            continue
        credential_changed = kind in sealed and _credential(keyring, row) != _credential_of(
            keyring, sealed[kind], kind
        )
        if row.config != dict(spec.options) or credential_changed:
            row.config = dict(spec.options)
            changes.append(f"updated delivery provider {kind}")
        if kind in sealed:
            row.secret = sealed[kind]
    return changes


def _credential(keyring: KeyRing, row: DeliveryProviderRow) -> str | None:
    return _credential_of(keyring, row.secret, row.kind) if row.secret else None


def _credential_of(keyring: KeyRing, stored: str, kind: str) -> str:
    return keyring.decrypt(stored, _context(kind)).reveal()


def export_delivery_providers(specs: Mapping[str, DeliveryProviderSpec]) -> list[dict[str, Any]]:
    return [{"type": kind, **dict(sorted(spec.options.items()))} for kind, spec in specs.items()]
