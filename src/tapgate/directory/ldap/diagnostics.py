"""Blocking helpers for administrators: connection diagnostics and attribute value suggestions."""

from __future__ import annotations

import ssl

from ldap3 import BASE, Connection

from tapgate.directory.base import DirectoryUser
from tapgate.directory.ldap.connection import Connector, ServerFailed, close_quietly
from tapgate.directory.ldap.groups import is_active_directory
from tapgate.directory.ldap.pool import ServiceConnections
from tapgate.directory.ldap.search import (
    DN_ATTRIBUTE,
    decode_values,
    escape_filter_value,
    search_entries,
)
from tapgate.directory.ldap.settings import USERNAME_PLACEHOLDER, LdapSettings
from tapgate.directory.ldap.validation import ATTRIBUTE_NAME
from tapgate.errors import DirectoryUnavailable, ObjectError

MAX_COUNTED_USERS = 1000
MAX_SUGGESTIONS = 100
_GROUP_CLASSES = "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"


def describe_directory(
    connector: Connector, service: ServiceConnections, deadline: float
) -> list[str]:
    """Return one line per server (TLS, service bind), then the base DN, type and user count."""
    settings = connector.settings
    bind_name = settings.bind_dn or "anonymous"
    lines: list[str] = []
    for url in settings.servers:
        try:
            connection = connector.bind_server(
                url, settings.bind_dn, settings.bind_password, deadline
            )
        except ServerFailed as error:
            lines.append(f"{url}: failed: {error}")
            continue
        security = _security(connection)
        if connection.bound:
            lines.append(f"{url}: connected ({security}); bind as {bind_name} succeeded")
        else:
            description = connection.result.get("description")
            lines.append(
                f"{url}: connected ({security}); bind as {bind_name} rejected: {description}"
            )
        close_quietly(connection)

    try:
        lines += service.run(lambda connection: _describe_content(connection, settings), deadline)
    except DirectoryUnavailable as error:
        lines.append(f"directory search failed: {error}")
    return lines


def describe_user(username: str, user: DirectoryUser | None) -> str:
    """Return one line on what `find_user` returned for `username`."""
    if user is None:
        return f"user {username!r}: not found, or matches more than one entry (see the log)"
    return (
        f"user {username!r}: found {user.attribute(DN_ATTRIBUTE)[0]}, user_id {user.user_id}, "
        f"username {user.username!r}, {len(user.attribute('memberof'))} groups"
    )


def suggest_values(
    service: ServiceConnections, attribute: str, prefix: str, limit: int, deadline: float
) -> list[str]:
    """Return up to `limit` distinct values of `attribute` starting with `prefix`, sorted."""
    settings = service.settings
    if not ATTRIBUTE_NAME.match(attribute):
        raise ObjectError(f"{attribute!r} is not a valid attribute name")
    limit = max(1, min(limit, MAX_SUGGESTIONS))
    pattern = escape_filter_value(prefix.strip()) + "*"
    groups = attribute.lower() == "memberof"
    search_filter = f"(&{_GROUP_CLASSES}(cn={pattern}))" if groups else f"({attribute}={pattern})"

    def operation(connection: Connection) -> list[str]:
        entries, _ = search_entries(
            connection, settings, search_filter, limit * 5, attributes=[attribute]
        )
        if groups:
            return [entry.dn for entry in entries]
        values: list[str] = []
        for entry in entries:
            for name, raw in entry.attributes.items():
                if name.lower() == attribute.lower():
                    values += decode_values(name, raw)
        return values

    folded_prefix = prefix.strip().casefold()
    distinct: dict[str, str] = {}
    for value in service.run(operation, deadline):
        if groups or value.casefold().startswith(folded_prefix):
            distinct.setdefault(value.casefold(), value)
    return sorted(distinct.values(), key=str.casefold)[:limit]


def _security(connection: Connection) -> str:
    socket = connection.socket
    if isinstance(socket, ssl.SSLSocket):
        kind = "ldaps" if connection.server.ssl else "StartTLS"
        return f"{kind}, {socket.version()}, certificate verified"
    return "no TLS"


def _describe_content(connection: Connection, settings: LdapSettings) -> list[str]:
    connection.search(settings.base_dn, "(objectClass=*)", BASE, attributes=["1.1"])
    found = bool(connection.response) and connection.result.get("result") == 0
    lines = [f"base DN {settings.base_dn}: {'found' if found else 'not found'}"]

    kind = "Active Directory" if is_active_directory(connection) else "LDAP"
    lines.append(f"directory type: {kind}")

    any_user = settings.user_filter or ""
    any_user = any_user.replace(USERNAME_PLACEHOLDER, "*")
    if settings.login_attributes:
        any_user = f"(&{any_user}(|{''.join(f'({name}=*)' for name in settings.login_attributes)}))"
    entries, more = search_entries(
        connection, settings, any_user, MAX_COUNTED_USERS, attributes=["1.1"]
    )
    count = f"at least {len(entries)}" if more else str(len(entries))
    lines.append(f"user filter {any_user} matches {count} entries")
    return lines
