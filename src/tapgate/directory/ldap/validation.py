"""Checks of single auth profile settings. Each raises `ObjectError` naming the key and the fix."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import parse_dn

from tapgate.errors import ObjectError
from tapgate.secret import Secret

USERNAME_PLACEHOLDER = "{username}"
DEFAULT_USER_FILTER = "(sAMAccountName={username})"
# An attribute description (RFC 4512 section 2.5): a name or an OID, with optional options.
ATTRIBUTE_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)(?:;[A-Za-z0-9-]+)*$")


def check_servers(where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ObjectError(f"{where}: servers must be a non-empty list of ldap:// or ldaps:// URLs")
    for url in value:
        if not isinstance(url, str):
            raise ObjectError(f"{where}: servers: {url!r} is not a URL string")
        parts = urlsplit(url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ObjectError(
                f"{where}: servers: {url!r} is invalid; write ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
            )
        try:
            parts.port  # noqa: B018 - reading it validates the port number
        except ValueError:
            raise ObjectError(f"{where}: servers: {url!r} has an invalid port") from None
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ObjectError(f"{where}: servers: {url!r} may contain only scheme, host and port")
    return tuple(value)


def _parse_dn(where: str, key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ObjectError(f"{where}: {key} must be a distinguished name such as DC=example,DC=com")
    try:
        parse_dn(value)
    except LDAPException:
        raise ObjectError(
            f"{where}: {key} {value!r} is not a valid distinguished name; escape ',', '+', '\"', "
            "'\\', '<', '>', ';' and a leading '#' with a backslash"
        ) from None
    return value


def check_required_dn(where: str, mapping: Mapping[str, Any], key: str) -> str:
    if key not in mapping:
        raise ObjectError(f"{where}: {key} is missing; set the DN under which users are searched")
    return _parse_dn(where, key, mapping[key])


def check_optional_dn(where: str, mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    # Active Directory also accepts a user principal name (svc@example.com) or a down-level
    # logon name (EXAMPLE\svc) as the bind name of a simple bind.
    if isinstance(value, str) and "=" not in value and ("@" in value or "\\" in value):
        return value
    return _parse_dn(where, key, value)


def check_bind_password(
    where: str, mapping: Mapping[str, Any], bind_dn: str | None, given: Secret | None
) -> tuple[Secret | None, str | None]:
    inline = mapping.get("bind_password")
    path = mapping.get("bind_password_file")
    if inline is not None and path is not None:
        raise ObjectError(f"{where}: set bind_password or bind_password_file, not both")
    if inline is not None and not isinstance(inline, str):
        raise ObjectError(f"{where}: bind_password must be a string")
    if path is not None and (not isinstance(path, str) or not path):
        raise ObjectError(f"{where}: bind_password_file must be a file path")

    password = given
    if password is None and inline is not None:
        password = Secret(inline)
    if password is None and path is not None:
        password = Secret(_read_password_file(where, path))

    if bind_dn is None and password:
        raise ObjectError(f"{where}: a bind password is set but bind_dn is missing")
    if bind_dn is not None and not password:
        raise ObjectError(
            f"{where}: bind_dn needs a password; set bind_password_file (or bind_password)"
        )
    return password, path


def _read_password_file(where: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise ObjectError(
            f"{where}: bind_password_file {path!r} cannot be read ({error.strerror}); "
            "create it, readable by the tapgate user"
        ) from None
    # Editors and `echo` add a final newline that is not part of the password.
    return text.removesuffix("\n").removesuffix("\r")


def check_user_filter(where: str, value: object, login_attributes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("(") or not value.endswith(")"):
        raise ObjectError(f"{where}: user_filter must be an LDAP filter in parentheses")
    if USERNAME_PLACEHOLDER not in value and not login_attributes:
        raise ObjectError(
            f"{where}: user_filter must contain {USERNAME_PLACEHOLDER}, for example "
            f"{DEFAULT_USER_FILTER}, unless login_attributes is set"
        )
    try:
        parse_filter(value.replace(USERNAME_PLACEHOLDER, "x"), None, False, True, None, False)
    except (LDAPException, IndexError, ValueError):
        raise ObjectError(f"{where}: user_filter {value!r} is not a valid LDAP filter") from None
    return value


def check_attribute_list(
    where: str, mapping: Mapping[str, Any], key: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = mapping.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not value:
        raise ObjectError(f"{where}: {key} must be a non-empty list of attribute names")
    for name in value:
        if not isinstance(name, str) or not ATTRIBUTE_NAME.match(name):
            raise ObjectError(f"{where}: {key}: {name!r} is not a valid attribute name")
    return tuple(value)


def check_choice(
    where: str, mapping: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str
) -> str:
    value = mapping.get(key, default)
    if value not in choices:
        raise ObjectError(f"{where}: {key} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def check_flag(where: str, mapping: Mapping[str, Any], key: str, default: bool) -> bool:
    value = mapping.get(key, default)
    if not isinstance(value, bool):
        raise ObjectError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def check_seconds(
    where: str, mapping: Mapping[str, Any], key: str, default: float, low: float, high: float
) -> float:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ObjectError(f"{where}: {key} must be a number of seconds from {low:g} to {high:g}")
    return float(value)


def check_ca_file(where: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not os.access(value, os.R_OK) or not os.path.isfile(value):
        raise ObjectError(f"{where}: ca_file {value!r} is not a readable file; give a PEM CA file")
    try:
        ssl.create_default_context(cafile=value)
    except (ssl.SSLError, ValueError):
        raise ObjectError(f"{where}: ca_file {value!r} contains no PEM CA certificate") from None
    return value
