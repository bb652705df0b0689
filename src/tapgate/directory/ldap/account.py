"""Account state from a bind result or from an entry's attributes, as rejection reasons.

Two directories are understood: Active Directory (userAccountControl, accountExpires, and the
sub-code in a failed bind's diagnostic message) and OpenLDAP with the ppolicy overlay (the
password policy response control of draft-behera-ldap-password-policy-10, and
pwdAccountLockedTime), plus the NIS `shadowExpire` attribute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tapgate.directory.base import (
    ACCOUNT_DISABLED,
    ACCOUNT_EXPIRED,
    ACCOUNT_LOCKED,
    INVALID_CREDENTIALS,
    LOGON_RESTRICTED,
    PASSWORD_CHANGE_REQUIRED,
    PASSWORD_EXPIRED,
    DirectoryUser,
)

# Sent with user binds. Servers without the ppolicy overlay ignore it because it is not critical.
PPOLICY_CONTROL = "1.3.6.1.4.1.42.2.27.8.5.1"
UF_ACCOUNTDISABLE = 0x2
_LDAP_SUCCESS, _LDAP_INVALID_CREDENTIALS = 0, 49
_NEVER_EXPIRES = 0x7FFFFFFFFFFFFFFF
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

# Active Directory names the reason for a rejected bind in its diagnostic message, for example
# "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563".
_AD_SUB_CODE = re.compile(r"\bdata ([0-9a-f]{3,8})\b", re.IGNORECASE)
_AD_SUB_CODES = {
    "525": INVALID_CREDENTIALS,  # no such user
    "52e": INVALID_CREDENTIALS,  # wrong password
    "530": LOGON_RESTRICTED,  # not permitted to log on at this time
    "531": LOGON_RESTRICTED,  # not permitted to log on at this workstation
    "532": PASSWORD_EXPIRED,
    "533": ACCOUNT_DISABLED,
    "701": ACCOUNT_EXPIRED,
    "773": PASSWORD_CHANGE_REQUIRED,  # must reset password
    "775": ACCOUNT_LOCKED,
}
# The `error` values of the ppolicy response control that describe the account.
_PPOLICY_ERRORS = {0: PASSWORD_EXPIRED, 1: ACCOUNT_LOCKED, 2: PASSWORD_CHANGE_REQUIRED}


def bind_rejection(result: Mapping[str, Any]) -> str | None:
    """Return None for a bind that succeeded without conditions, else the rejection reason."""
    code = result.get("result")
    policy_error = ppolicy_error(result)

    if code == _LDAP_SUCCESS:
        # ppolicy lets a reset password bind, but only to change the password.
        return PASSWORD_CHANGE_REQUIRED if policy_error == 2 else None

    if code == _LDAP_INVALID_CREDENTIALS:
        sub_code = _AD_SUB_CODE.search(str(result.get("message") or ""))
        if sub_code and sub_code.group(1).lower() in _AD_SUB_CODES:
            return _AD_SUB_CODES[sub_code.group(1).lower()]
        if policy_error in _PPOLICY_ERRORS:
            return _PPOLICY_ERRORS[policy_error]
    return INVALID_CREDENTIALS


def ppolicy_error(result: Mapping[str, Any]) -> int | None:
    """Return the `error` of a password policy response control in `result`, if any."""
    control = (result.get("controls") or {}).get(PPOLICY_CONTROL)
    value = control.get("value") if isinstance(control, Mapping) else None
    if not isinstance(value, bytes):
        return None
    try:
        return _decode_ppolicy_error(value)
    except IndexError:
        return None


def _decode_ppolicy_error(value: bytes) -> int | None:
    """Read `error [1] ENUMERATED` from a BER-encoded PasswordPolicyResponseValue SEQUENCE."""
    if value[0] != 0x30:
        return None
    position, end = _contents(value, 1)
    while position < end:
        tag = value[position]
        start, stop = _contents(value, position + 1)
        if tag == 0x81:
            return int.from_bytes(value[start:stop], "big")
        position = stop
    return None


def _contents(data: bytes, position: int) -> tuple[int, int]:
    """Return the start and end of the contents whose BER length octets begin at `position`."""
    first = data[position]
    if first < 0x80:
        start, length = position + 1, first
    else:
        size = first & 0x7F
        start = position + 1 + size
        length = int.from_bytes(data[position + 1 : start], "big")
    if start + length > len(data):
        raise IndexError("BER value is truncated")
    return start, start + length


def account_problem(user: DirectoryUser, now: datetime) -> str | None:
    """Return why the account may not log in whatever the password, or None."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    if first_int(user.attribute("useraccountcontrol")) & UF_ACCOUNTDISABLE:
        return ACCOUNT_DISABLED
    if user.locked:
        return ACCOUNT_LOCKED
    expires = account_expiry(user)
    if expires is not None and expires <= now:
        return ACCOUNT_EXPIRED
    return None


def account_expiry(user: DirectoryUser) -> datetime | None:
    """Return when the account expires, from AD's accountExpires or NIS shadowExpire."""
    filetime = first_int(user.attribute("accountexpires"))
    if 0 < filetime < _NEVER_EXPIRES:
        try:
            # FILETIME: 100-nanosecond intervals since 1601-01-01 UTC.
            return _FILETIME_EPOCH + timedelta(microseconds=filetime // 10)
        except OverflowError:
            return None
    days = first_int(user.attribute("shadowexpire"))
    if days > 0:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=days)
    return None


def first_int(values: Sequence[str]) -> int:
    try:
        return int(values[0]) if values else 0
    except ValueError:
        return 0
