"""Reply-Message texts the RADIUS front door sends, and their translation.

The English text is the gettext message id; the Turkish catalog translates it. Each outcome has
one text, so a message reveals no more than the reason the login service chose to give.
"""

from __future__ import annotations

from tapgate.i18n import gettext_for
from tapgate.push import ports

INVALID_CREDENTIALS = "Invalid username or password."
DENIED = "The login was denied on your phone."
FRAUD = "The login was reported as fraud. Your administrator has been notified."
EXPIRED = "The login request expired before it was approved."
CANCELED = "The login was canceled."
REJECTED = "The login was rejected."
TIMED_OUT = "The login timed out before you answered on your phone."
STATE_INVALID = "This login prompt has expired. Start the login again."
CODE_INVALID = "Invalid code. Start the login again."
PAP_ONLY = "Only password (PAP) logins are supported."
CHALLENGE_UNAVAILABLE = (
    "This login needs a prompt that your VPN cannot show. Contact your administrator."
)
SERVER_ERROR = "The login failed because of a server error. Try again later."
NUMBER_CHALLENGE = "Type {number} on your phone to approve this login, then continue here."
CODE_CHALLENGE = "Approve the login on your phone, then enter the code it shows."

BY_STATUS = {
    ports.DENIED: DENIED,
    ports.FRAUD: FRAUD,
    ports.EXPIRED: EXPIRED,
    ports.CANCELED: CANCELED,
}

BY_REASON = {
    "invalid_credentials": INVALID_CREDENTIALS,
    "account_disabled": "Your account is disabled.",
    "account_locked": "Your account is locked.",
    "account_expired": "Your account has expired.",
    "password_expired": "Your password has expired. Change it, then try again.",
    "password_change_required": "You must change your password before you log in.",
    "logon_restricted": "Your account may not log in from here or at this time.",
    "directory_unavailable": "The user directory is unavailable. Try again later.",
    "no_method": "No second factor is set up for your account. Contact your administrator.",
    "no_device": "No phone is enrolled for your account. Enroll one, then try again.",
    "rate_limited": "Too many login attempts. Try again later.",
    "fraud_locked": "Logins are locked after a fraud report. Contact your administrator.",
}


def translate(language: str, message: str, **values: str) -> str:
    """Translate `message` into `language` and fill in its `{name}` fields."""
    text = gettext_for(language, message)
    return text.format(**values) if values else text


RATE_LIMITED_FOR = "Too many login attempts. Try again in {minutes} min."


def for_status(
    language: str, status: str, reason: str | None, retry_after: int | None = None
) -> str:
    """Return the Reply-Message for a final status other than approved.

    With `retry_after` (seconds), a `rate_limited` rejection names the minutes to wait.
    """
    if status == ports.REJECTED and reason == "rate_limited" and retry_after is not None:
        return translate(language, RATE_LIMITED_FOR, minutes=str(-(-retry_after // 60)))
    if status == ports.REJECTED:
        message = BY_REASON.get(reason or "", REJECTED)
    else:
        message = BY_STATUS.get(status, REJECTED)
    return translate(language, message)
