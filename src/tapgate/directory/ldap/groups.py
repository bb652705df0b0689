"""Nested group membership: the groups a user belongs to through other groups.

Active Directory resolves the whole chain in one search with the LDAP_MATCHING_RULE_IN_CHAIN
matching rule. Other directories are walked level by level through `member` and `uniqueMember`,
remembering every group seen, so a cycle of groups ends the walk instead of looping.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from ldap3 import BASE, SUBTREE, Connection
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn

from tapgate.directory.ldap.connection import ServerFailed
from tapgate.directory.ldap.search import escape_filter_value
from tapgate.directory.ldap.settings import LdapSettings

logger = logging.getLogger(__name__)

AD_CAPABILITY = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID in the root DSE
AD_IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
MAX_GROUPS = 1000
MAX_DEPTH = 32
_DNS_PER_SEARCH = 50
_OK, _SIZE_LIMIT_EXCEEDED = 0, 4
_DN_ESCAPE = re.compile(rb"\\([0-9A-Fa-f]{2}|.)", re.DOTALL)


def is_active_directory(connection: Connection) -> bool:
    """Return whether the root DSE announces Active Directory."""
    connection.search("", "(objectClass=*)", BASE, attributes=["supportedCapabilities"])
    for response in connection.response or []:
        values = response.get("raw_attributes", {}).get("supportedCapabilities", [])
        if AD_CAPABILITY.encode() in values:
            return True
    return False


def nested_groups(
    connection: Connection, settings: LdapSettings, user_dn: str, active_directory: bool
) -> list[str]:
    """Return the DNs of every group the user is in, directly or through other groups."""
    if active_directory:
        rule_filter = f"(member:{AD_IN_CHAIN_RULE}:={escape_filter_value(user_dn)})"
        return _group_dns(connection, settings, rule_filter)

    seen = {dn_key(user_dn)}
    groups: list[str] = []
    level = [user_dn]
    for _ in range(MAX_DEPTH):
        next_level: list[str] = []
        for start in range(0, len(level), _DNS_PER_SEARCH):
            for group in _groups_containing(
                connection, settings, level[start : start + _DNS_PER_SEARCH]
            ):
                key = dn_key(group)
                if key not in seen:
                    seen.add(key)
                    groups.append(group)
                    next_level.append(group)
        if not next_level or len(groups) >= MAX_GROUPS:
            break
        level = next_level
    return groups[:MAX_GROUPS]


def merge_groups(direct: Sequence[str], nested: Iterable[str]) -> tuple[str, ...]:
    """Return the direct groups followed by the nested ones not among them, compared as DNs."""
    merged = list(direct)
    keys = {dn_key(dn) for dn in direct}
    for dn in nested:
        if dn_key(dn) not in keys:
            keys.add(dn_key(dn))
            merged.append(dn)
    return tuple(merged)


def dn_key(dn: str) -> str:
    """Return a comparison form of a DN: attribute types lower-case, values unescaped, folded."""
    try:
        components = parse_dn(dn)
    except LDAPException:
        return dn.casefold()
    return ",".join(
        f"{kind.lower()}={_unescape(value).casefold()}" for kind, value, _ in components
    )


def _unescape(value: str) -> str:
    def replace(match: re.Match[bytes]) -> bytes:
        escaped = match.group(1)
        return bytes.fromhex(escaped.decode()) if len(escaped) == 2 else escaped

    return _DN_ESCAPE.sub(replace, value.encode()).decode("utf-8", "replace")


def _groups_containing(
    connection: Connection, settings: LdapSettings, member_dns: Sequence[str]
) -> list[str]:
    terms = []
    for dn in member_dns:
        value = escape_filter_value(dn)
        terms.append(f"(member={value})(uniqueMember={value})")
    return _group_dns(connection, settings, f"(|{''.join(terms)})")


def _group_dns(connection: Connection, settings: LdapSettings, search_filter: str) -> list[str]:
    connection.search(
        settings.base_dn, search_filter, SUBTREE, attributes=["1.1"], size_limit=MAX_GROUPS
    )
    code = connection.result.get("result")
    if code == _SIZE_LIMIT_EXCEEDED:
        logger.warning(
            "auth profile %s: a user is in more than %d groups, so only the first %d are used",
            settings.name,
            MAX_GROUPS,
            MAX_GROUPS,
        )
    elif code != _OK:
        raise ServerFailed(f"group search failed with {connection.result.get('description')}")
    return [
        response["dn"]
        for response in connection.response or []
        if response.get("type") == "searchResEntry"
    ]
