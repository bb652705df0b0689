"""Settings of one `ldap` auth profile, validated from the mapping an administrator wrote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tapgate.directory.ldap.validation import (
    DEFAULT_USER_FILTER,
    USERNAME_PLACEHOLDER,
    check_attribute_list,
    check_bind_password,
    check_ca_file,
    check_choice,
    check_flag,
    check_optional_dn,
    check_required_dn,
    check_seconds,
    check_servers,
    check_user_filter,
)
from tapgate.errors import ObjectError
from tapgate.secret import Secret

__all__ = ["DEFAULT_ATTRIBUTES", "DEFAULT_USER_FILTER", "USERNAME_PLACEHOLDER", "LdapSettings"]

DEFAULT_ATTRIBUTES = ("memberOf", "department", "title", "mail", "mobile", "displayName")
SCOPES = ("sub", "one", "base")

_KEYS = frozenset(
    [
        "servers",
        "bind_dn",
        "bind_password",
        "bind_password_file",
        "base_dn",
        "scope",
        "user_filter",
        "login_attributes",
        "attributes",
        "start_tls",
        "ca_file",
        "connect_timeout",
        "operation_timeout",
        "nested_groups",
        "follow_referrals",
    ]
)


@dataclass(frozen=True)
class LdapSettings:
    """Connection, search and identity settings of one `ldap` auth profile.

    `user_filter` is None only when `login_attributes` alone decide which entry a name reaches.
    """

    name: str
    servers: tuple[str, ...]
    base_dn: str
    bind_dn: str | None = None
    bind_password: Secret | None = field(default=None, repr=False)
    bind_password_file: str | None = None
    scope: str = "sub"
    user_filter: str | None = DEFAULT_USER_FILTER
    login_attributes: tuple[str, ...] = ()
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    start_tls: bool = True
    ca_file: str | None = None
    connect_timeout: float = 5.0
    operation_timeout: float = 10.0
    nested_groups: bool = False
    follow_referrals: bool = False

    @classmethod
    def from_mapping(
        cls, name: str, mapping: Mapping[str, Any], bind_password: Secret | None
    ) -> LdapSettings:
        """Validate an auth profile mapping and build its settings.

        Raises `ObjectError` naming the key and the fix.

        `bind_password` is the password the caller read from `bind_password_file` or from
        storage. When it is None and the mapping names a file, the file is read here.
        """
        where = f"auth profile {name!r}"
        if mapping.get("type", "ldap") != "ldap":
            raise ObjectError(f"{where}: type must be 'ldap' for these settings")
        unknown = sorted(set(mapping) - _KEYS - {"name", "type"})
        if unknown:
            raise ObjectError(
                f"{where}: unknown key {unknown[0]!r}; valid keys are {', '.join(sorted(_KEYS))}"
            )

        login_attributes = check_attribute_list(where, mapping, "login_attributes", ())
        default_filter = None if login_attributes else DEFAULT_USER_FILTER
        user_filter = check_user_filter(
            where, mapping.get("user_filter", default_filter), login_attributes
        )
        bind_dn = check_optional_dn(where, mapping, "bind_dn")
        password, password_file = check_bind_password(where, mapping, bind_dn, bind_password)

        return cls(
            name=name,
            servers=check_servers(where, mapping.get("servers")),
            base_dn=check_required_dn(where, mapping, "base_dn"),
            bind_dn=bind_dn,
            bind_password=password,
            bind_password_file=password_file,
            scope=check_choice(where, mapping, "scope", SCOPES, "sub"),
            user_filter=user_filter,
            login_attributes=login_attributes,
            attributes=check_attribute_list(where, mapping, "attributes", DEFAULT_ATTRIBUTES),
            start_tls=check_flag(where, mapping, "start_tls", True),
            ca_file=check_ca_file(where, mapping.get("ca_file")),
            connect_timeout=check_seconds(where, mapping, "connect_timeout", 5.0, 0.5, 60.0),
            operation_timeout=check_seconds(where, mapping, "operation_timeout", 10.0, 1.0, 300.0),
            nested_groups=check_flag(where, mapping, "nested_groups", False),
            follow_referrals=check_flag(where, mapping, "follow_referrals", False),
        )

    @property
    def time_budget(self) -> float:
        """Seconds one directory call may take in all, across every server it tries."""
        return self.connect_timeout + self.operation_timeout
