"""Finding a user's entry by login name, and turning an entry into a `DirectoryUser`."""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ldap3 import BASE, LEVEL, SUBTREE, Connection

from tapgate.directory.base import DirectoryUser
from tapgate.directory.ldap.account import first_int
from tapgate.directory.ldap.connection import ServerFailed
from tapgate.directory.ldap.settings import USERNAME_PLACEHOLDER, LdapSettings

logger = logging.getLogger(__name__)

LDAP_SCOPES = {"sub": SUBTREE, "one": LEVEL, "base": BASE}
# Fetched for every user whatever `attributes` lists: identity, account state, groups, and the
# password policy attributes of OpenLDAP's ppolicy overlay.
REQUIRED_ATTRIBUTES = (
    "objectGUID",
    "entryUUID",
    "userAccountControl",
    "msDS-User-Account-Control-Computed",
    "accountExpires",
    "shadowExpire",
    "pwdAccountLockedTime",
    "memberOf",
    "displayName",
    "cn",
)
DN_ATTRIBUTE = "distinguishedname"
MAX_LOGIN_NAME_LENGTH = 256

_OK, _SIZE_LIMIT_EXCEEDED, _NO_SUCH_OBJECT, _REFERRAL = 0, 4, 32, 10
_FILTER_ATTRIBUTE = re.compile(r"\(([A-Za-z][A-Za-z0-9-]*)=\{username\}\)")
_FILTER_SPECIALS = {"\\": r"\5c", "*": r"\2a", "(": r"\28", ")": r"\29", "\x00": r"\00"}


@dataclass(frozen=True)
class Entry:
    """One search result: its DN and raw attribute values by attribute name as returned."""

    dn: str
    attributes: Mapping[str, Sequence[bytes]]


def escape_filter_value(value: str) -> str:
    """Escape an assertion value for an LDAP filter string (RFC 4515 section 3)."""
    return "".join(_FILTER_SPECIALS.get(character, character) for character in value)


def login_name(username: str) -> str | None:
    """Return the name to search for, or None for input that cannot match any user.

    A `DOMAIN\\name` login (the Windows form) is reduced to `name`: sAMAccountName cannot
    contain a backslash, and the domain part is not an attribute of the entry.
    """
    name = unicodedata.normalize("NFC", username.strip())
    if "\\" in name:
        name = name.rsplit("\\", 1)[1].strip()
    if not name or len(name) > MAX_LOGIN_NAME_LENGTH:
        return None
    if any(unicodedata.category(character) == "Cc" for character in name):
        return None
    return name


def user_filter(settings: LdapSettings, name: str) -> str:
    """Build the search filter for a login name, which is escaped and never interpreted."""
    value = escape_filter_value(name)
    parts: list[str] = []
    if settings.user_filter is not None:
        parts.append(settings.user_filter.replace(USERNAME_PLACEHOLDER, value))
    if settings.login_attributes:
        alternatives = "".join(f"({attribute}={value})" for attribute in settings.login_attributes)
        parts.append(f"(|{alternatives})" if len(settings.login_attributes) > 1 else alternatives)
    return parts[0] if len(parts) == 1 else f"(&{''.join(parts)})"


def username_attribute(settings: LdapSettings) -> str | None:
    """Return the attribute whose stored value becomes `DirectoryUser.username`."""
    if settings.login_attributes:
        return settings.login_attributes[0]
    match = _FILTER_ATTRIBUTE.search(settings.user_filter or "")
    return match.group(1) if match else None


def requested_attributes(settings: LdapSettings) -> list[str]:
    """Return the attributes to fetch, each once, ignoring case."""
    names = [*REQUIRED_ATTRIBUTES, *settings.login_attributes, *settings.attributes]
    attribute = username_attribute(settings)
    if attribute is not None:
        names.append(attribute)
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(name.lower(), name)
    return list(unique.values())


def search_entries(
    connection: Connection,
    settings: LdapSettings,
    search_filter: str,
    limit: int,
    attributes: list[str] | None = None,
) -> tuple[list[Entry], bool]:
    """Search under base_dn, and return at most `limit` entries and whether more matched.

    `attributes` defaults to everything a `DirectoryUser` needs.

    Raises `ServerFailed` for results that blame the server rather than the request.
    """
    connection.search(
        settings.base_dn,
        search_filter,
        search_scope=LDAP_SCOPES[settings.scope],
        attributes=attributes or requested_attributes(settings),
        size_limit=limit,
        time_limit=max(1, int(settings.operation_timeout)),
    )
    code = connection.result.get("result")
    if code not in (_OK, _SIZE_LIMIT_EXCEEDED, _NO_SUCH_OBJECT, _REFERRAL):
        raise ServerFailed(f"search failed with {connection.result.get('description')}")
    if code == _NO_SUCH_OBJECT:
        logger.warning(
            "auth profile %s: base_dn %s does not exist on the server",
            settings.name,
            settings.base_dn,
        )
    entries = [
        Entry(response["dn"], response["raw_attributes"])
        for response in connection.response or []
        if response.get("type") == "searchResEntry"
    ]
    return entries, code == _SIZE_LIMIT_EXCEEDED


def decode_values(name: str, values: Sequence[bytes]) -> tuple[str, ...]:
    """Decode raw values to text. A binary objectGUID becomes its canonical GUID string."""
    if name.lower() == "objectguid":
        return tuple(str(uuid.UUID(bytes_le=value)) for value in values if len(value) == 16)
    decoded: list[str] = []
    for value in values:
        try:
            decoded.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            decoded.append(value.hex())
    return tuple(decoded)


def entry_to_user(settings: LdapSettings, entry: Entry, typed_name: str) -> DirectoryUser:
    """Build the user of an entry, identified by objectGUID, else entryUUID, else the DN."""
    attributes: dict[str, tuple[str, ...]] = {}
    for name, values in entry.attributes.items():
        decoded = decode_values(name, values)
        if decoded:
            attributes[name.lower()] = decoded
    attributes[DN_ATTRIBUTE] = (entry.dn,)

    if "objectguid" in attributes:
        user_id = attributes["objectguid"][0]
    elif "entryuuid" in attributes:
        user_id = attributes["entryuuid"][0].lower()
    else:
        # NOTE: a DN changes when the entry is renamed or moved, so the user's devices stay
        # with the old identity. Only directories without objectGUID and entryUUID get here.
        user_id = entry.dn
    attribute = username_attribute(settings)
    stored_names = attributes.get(attribute.lower(), ()) if attribute else ()
    display_names = attributes.get("displayname") or attributes.get("cn") or (None,)
    computed = first_int(attributes.get("msds-user-account-control-computed", ()))

    return DirectoryUser(
        auth_profile=settings.name,
        user_id=user_id,
        username=stored_names[0] if stored_names else typed_name,
        display_name=display_names[0],
        attributes=attributes,
        # UF_LOCKOUT (0x10) is reliable only in the computed AD attribute. "000001010000Z" is
        # the ppolicy value for an account locked until an administrator unlocks it.
        locked=bool(computed & 0x10)
        or "000001010000Z" in attributes.get("pwdaccountlockedtime", ()),
    )
