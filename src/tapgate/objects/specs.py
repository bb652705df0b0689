"""Validated administrative objects, as `tapgate apply` reads them and the database stores them.

Each parser checks every key and names the key, the object and the fix in its error; nothing is
written until the whole file validates.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tapgate.errors import ObjectError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VERIFICATION_MODES = ("tap", "number", "code")
APPLICATION_TYPES = ("api", "radius", "sso", "registration")
DELIVERY_PROVIDERS = ("direct", "relay", "fcm", "apns", "webpush")
ROUTING_METHOD = "push"
MAX_TIMEOUT = 600
MAX_POLICY_VALUES = 100
MAX_POLICIES = 1000


def short(value: object, limit: int = 80) -> str:
    """Return repr(value) cut to `limit` characters, so an error never echoes a huge value."""
    text = (
        repr(value)
        if not isinstance(value, (dict, list)) or len(value) < 50
        else f"<{type(value).__name__} of {len(value)}>"
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(kind: str, index: int, name: object = None) -> str:
    return f"{kind}[{index}]" + (f" ({str(name)[:40]})" if name else "")


def check_keys(where: str, data: Mapping[str, Any], allowed: set[str], required: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ObjectError(
                f"{where}: unknown key {short(key)}; allowed keys: {', '.join(sorted(allowed))}"
            )
    for key in sorted(required):
        if key not in data or data[key] in (None, ""):
            raise ObjectError(f"{where}: missing key {short(key)}")


def check_name(where: str, value: object) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ObjectError(
            f"{where}: invalid name {short(value)}; use 1-64 letters, digits, '.', '_' or '-'"
        )
    return value


def _int(where: str, key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ObjectError(
            f"{where}: {key} must be an integer from {low} to {high}, not {short(value)}"
        )
    return value


def _bool(where: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ObjectError(f"{where}: {key} must be true or false, not {short(value)}")
    return value


def _names(where: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ObjectError(f"{where}: {key} must be a non-empty list of names")
    names = tuple(check_name(f"{where}: {key}", item) for item in value)
    if len(set(names)) != len(names):
        raise ObjectError(f"{where}: {key} lists a name twice: {list(names)}")
    return names


@dataclass(frozen=True)
class AuthProfileSpec:
    name: str
    kind: str
    # Everything but name and type, as written; the auth profile's own parser validates it.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PushProfileSpec:
    name: str
    fallback_auth_profiles: tuple[str, ...]
    timeout: int = 60
    verification: str = "number"
    number_digits: int = 2
    code_digits: int = 6
    require_user_verification: bool = False
    default: bool = False
    max_pending: int = 1
    rate_limit_count: int = 10
    rate_limit_window: int = 600
    delivery: tuple[str, ...] = ("direct",)

    def to_config(self) -> dict[str, Any]:
        return {
            "fallback_auth_profiles": list(self.fallback_auth_profiles),
            "timeout": self.timeout,
            "verification": self.verification,
            "number_digits": self.number_digits,
            "code_digits": self.code_digits,
            "require_user_verification": self.require_user_verification,
            "max_pending": self.max_pending,
            "rate_limit": {"count": self.rate_limit_count, "window": self.rate_limit_window},
            "delivery": list(self.delivery),
        }


@dataclass(frozen=True)
class ApplicationSpec:
    name: str
    kind: str
    methods: tuple[str, ...]
    require_password: bool = True


@dataclass(frozen=True)
class PolicySpec:
    push_profile: str
    auth_profile: str
    attribute: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class RadiusClientSpec:
    name: str
    address: str
    application: str
    secret: str | None = None
    secret_file: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def parse_auth_profile(data: Mapping[str, Any], index: int) -> AuthProfileSpec:
    where = _where("auth_profiles", index, data.get("name") if isinstance(data, Mapping) else None)
    if not isinstance(data, Mapping):
        raise ObjectError(f"{where}: must be a mapping")
    name = check_name(where, data.get("name"))
    kind = data.get("type")
    if kind not in ("local", "ldap"):
        raise ObjectError(f"{where}: type must be 'local' or 'ldap', not {short(kind)}")
    if kind == "local":
        check_keys(where, data, {"name", "type"}, {"name", "type"})
    options = {k: v for k, v in data.items() if k not in ("name", "type")}
    return AuthProfileSpec(name=name, kind=kind, options=options)


_PUSH_KEYS = {
    "name",
    "fallback_auth_profiles",
    "timeout",
    "verification",
    "number_digits",
    "code_digits",
    "require_user_verification",
    "default",
    "max_pending",
    "rate_limit",
    "delivery",
}


def parse_push_profile(data: Mapping[str, Any], index: int) -> PushProfileSpec:
    where = _where("push_profiles", index, data.get("name") if isinstance(data, Mapping) else None)
    if not isinstance(data, Mapping):
        raise ObjectError(f"{where}: must be a mapping")
    check_keys(where, data, _PUSH_KEYS, {"name", "fallback_auth_profiles"})
    verification = data.get("verification", "number")
    if verification not in VERIFICATION_MODES:
        raise ObjectError(
            f"{where}: verification must be one of {', '.join(VERIFICATION_MODES)}, not {short(verification)}"
        )
    rate = data.get("rate_limit", {}) or {}
    if not isinstance(rate, Mapping):
        raise ObjectError(f"{where}: rate_limit must be a mapping with count and window")
    check_keys(f"{where}: rate_limit", rate, {"count", "window"}, set())
    delivery = data.get("delivery", ["direct"])
    if (
        not isinstance(delivery, list)
        or not delivery
        or any(p not in DELIVERY_PROVIDERS for p in delivery)
    ):
        raise ObjectError(
            f"{where}: delivery must be a list of providers from {', '.join(DELIVERY_PROVIDERS)}, "
            f"not {short(delivery)}"
        )
    return PushProfileSpec(
        name=check_name(where, data["name"]),
        fallback_auth_profiles=_names(
            where, "fallback_auth_profiles", data["fallback_auth_profiles"]
        ),
        timeout=_int(where, "timeout", data.get("timeout", 60), 5, MAX_TIMEOUT),
        verification=verification,
        number_digits=_int(where, "number_digits", data.get("number_digits", 2), 2, 8),
        code_digits=_int(where, "code_digits", data.get("code_digits", 6), 4, 10),
        require_user_verification=_bool(
            where, "require_user_verification", data.get("require_user_verification", False)
        ),
        default=_bool(where, "default", data.get("default", False)),
        max_pending=_int(where, "max_pending", data.get("max_pending", 1), 1, 20),
        rate_limit_count=_int(where, "rate_limit.count", rate.get("count", 10), 1, 10_000),
        rate_limit_window=_int(where, "rate_limit.window", rate.get("window", 600), 1, 86_400),
        delivery=tuple(delivery),
    )


def parse_application(data: Mapping[str, Any], index: int) -> ApplicationSpec:
    where = _where("applications", index, data.get("name") if isinstance(data, Mapping) else None)
    if not isinstance(data, Mapping):
        raise ObjectError(f"{where}: must be a mapping")
    check_keys(
        where, data, {"name", "type", "methods", "require_password"}, {"name", "type", "methods"}
    )
    kind = data["type"]
    if kind not in APPLICATION_TYPES:
        raise ObjectError(
            f"{where}: type must be one of {', '.join(APPLICATION_TYPES)}, not {short(kind)}"
        )
    return ApplicationSpec(
        name=check_name(where, data["name"]),
        kind=kind,
        methods=_names(where, "methods", data["methods"]),
        require_password=_bool(where, "require_password", data.get("require_password", True)),
    )


def parse_policy(data: Mapping[str, Any], index: int) -> PolicySpec:
    where = _where("policies", index + 1)
    if not isinstance(data, Mapping):
        raise ObjectError(f"{where}: must be a mapping")
    check_keys(
        where,
        data,
        {"push_profile", "auth_profile", "attribute", "values"},
        {"push_profile", "auth_profile", "attribute"},
    )
    values = data.get("values")
    if isinstance(values, list) and len(values) > MAX_POLICY_VALUES:
        raise ObjectError(
            f"{where}: {len(values)} values; a policy takes at most {MAX_POLICY_VALUES}, so split it"
        )
    if not isinstance(values, list) or not values:
        raise ObjectError(
            f"{where}: values must be a non-empty list of exact, wildcard or /regex/ values"
        )
    if any(not isinstance(v, str | int) or isinstance(v, bool) or str(v) == "" for v in values):
        raise ObjectError(f"{where}: every value must be a non-empty string, got {short(values)}")
    attribute = data["attribute"]
    if not isinstance(attribute, str):
        raise ObjectError(f"{where}: attribute must be a string, not {short(attribute)}")
    return PolicySpec(
        push_profile=check_name(f"{where}: push_profile", data["push_profile"]),
        auth_profile=check_name(f"{where}: auth_profile", data["auth_profile"]),
        attribute=attribute,
        values=tuple(str(v) for v in values),
    )


_RADIUS_OPTIONS = {
    "require_message_authenticator",
    "client_ip_attribute",
    "timeout",
    "language",
    "challenge",
}


def _check_radius_options(where: str, data: Mapping[str, Any]) -> None:
    """Reject option values the RADIUS server could not use, which it would otherwise skip the
    client for at start with only a log line."""
    from tapgate.i18n import LANGUAGES
    from tapgate.radius.clients import CLIENT_IP_ATTRIBUTES

    for key in ("require_message_authenticator", "challenge"):
        if key in data and not isinstance(data[key], bool):
            raise ObjectError(f"{where}: {key} must be true or false, not {short(data[key])}")
    attribute = data.get("client_ip_attribute", CLIENT_IP_ATTRIBUTES[0])
    if attribute not in CLIENT_IP_ATTRIBUTES:
        raise ObjectError(
            f"{where}: client_ip_attribute must be one of {', '.join(CLIENT_IP_ATTRIBUTES)}, "
            f"not {short(attribute)}"
        )
    language = data.get("language", "en")
    if language not in LANGUAGES:
        raise ObjectError(
            f"{where}: language must be one of {', '.join(LANGUAGES)}, not {short(language)}"
        )
    timeout = data.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ObjectError(
            f"{where}: timeout must be a positive number of seconds, not {short(timeout)}"
        )


def parse_radius_client(data: Mapping[str, Any], index: int) -> RadiusClientSpec:
    where = _where("radius_clients", index, data.get("name") if isinstance(data, Mapping) else None)
    if not isinstance(data, Mapping):
        raise ObjectError(f"{where}: must be a mapping")
    check_keys(
        where,
        data,
        {"name", "address", "secret", "secret_file", "application"} | _RADIUS_OPTIONS,
        {"name", "address", "application"},
    )
    address = str(data["address"])
    try:
        ipaddress.ip_network(address, strict=False)
    except ValueError as exc:
        raise ObjectError(
            f"{where}: address {short(address)} is not an IP address or CIDR"
        ) from exc
    if ("secret" in data) == ("secret_file" in data):
        raise ObjectError(f"{where}: give exactly one of secret or secret_file")
    _check_radius_options(where, data)
    return RadiusClientSpec(
        name=check_name(where, data["name"]),
        address=address,
        application=check_name(f"{where}: application", data["application"]),
        secret=str(data["secret"]) if "secret" in data else None,
        secret_file=str(data["secret_file"]) if "secret_file" in data else None,
        options={k: v for k, v in data.items() if k in _RADIUS_OPTIONS},
    )
