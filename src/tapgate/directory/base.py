"""The narrow interface every auth profile implements, and the user it returns.

An auth profile finds a user by login name, verifies a password, and reports account state.
Attribute names are kept lower-case (`memberof`, `department`, `group_name`, ...) so policy
matching compares names without caring how the directory spells them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tapgate.folding import fold
from tapgate.secret import Secret

# Rejection reasons an auth profile may return; the transaction's `reason` uses the same strings.
INVALID_CREDENTIALS = "invalid_credentials"
ACCOUNT_DISABLED = "account_disabled"
ACCOUNT_LOCKED = "account_locked"
ACCOUNT_EXPIRED = "account_expired"
PASSWORD_EXPIRED = "password_expired"
PASSWORD_CHANGE_REQUIRED = "password_change_required"
LOGON_RESTRICTED = "logon_restricted"
DIRECTORY_UNAVAILABLE = "directory_unavailable"


def normalize_username(username: str) -> str:
    """Return the comparison form of a login name: trimmed, NFC-normalized and case-folded.

    Folding is the one policies use, right for Turkish and English alike: `AYŞE`, `Ayşe` and
    `ayşe` are one user, and so are `İSMAİL` and `ismail`.
    """
    return fold(username.strip())


# The C0 control characters and DEL, written as \xNN.
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


def escape_control_characters(text: str) -> str:
    """Return `text` with its control characters written as `\\xNN`.

    No directory has a login name with control characters, and PostgreSQL cannot store a NUL,
    so a typed name with them is looked up and recorded in this form, which matches no user.
    """
    if text.isprintable():
        return text
    return text.translate(_CONTROL_ESCAPES)


@dataclass(frozen=True)
class DirectoryUser:
    """A user as one auth profile knows them; identity is (auth_profile, user_id)."""

    auth_profile: str
    user_id: str
    username: str
    display_name: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Set when the directory reports a state that rejects the login before the password counts.
    locked: bool = False

    def attribute(self, name: str) -> tuple[str, ...]:
        return self.attributes.get(name.lower(), ())


class AuthProfile(Protocol):
    """A first-factor user source; every method may raise `DirectoryUnavailable`."""

    name: str
    kind: str

    async def find_user(self, username: str) -> DirectoryUser | None:
        """Return the user this profile knows by `username`, or None when it knows nobody by it."""
        ...

    async def verify_password(self, user: DirectoryUser, password: Secret) -> str | None:
        """Return None when the password is right, else a rejection reason."""
        ...

    async def account_problem(self, user: DirectoryUser, now: datetime) -> str | None:
        """Return the reason the account may not log in (disabled, expired), or None."""
        ...

    async def check_unknown_user(self, password: Secret) -> None:
        """Spend about the time a wrong password of a known user costs, and check nothing.

        Called when no auth profile finds the name, so that timing does not tell which names
        exist.
        """
        ...

    async def close(self) -> None: ...
