"""Texts a person reads for each rejection reason and final transaction status.

The texts are marked with `N_` for extraction and translated when a page is rendered.
"""

from __future__ import annotations

from collections.abc import Callable


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for a marker that translates later
    """Mark `message` for the catalog without translating it yet."""
    return message


REJECTIONS = {
    "invalid_credentials": N_("The username or password is wrong."),
    "account_disabled": N_("This account is disabled. Contact your administrator."),
    "account_locked": N_("This account is locked. Contact your administrator."),
    "account_expired": N_("This account has expired. Contact your administrator."),
    "password_expired": N_("Your password has expired. Change it, then sign in again."),
    "password_change_required": N_("You must change your password before you sign in."),
    "logon_restricted": N_("This account may not sign in at this time or from this place."),
    "directory_unavailable": N_(
        "The user directory cannot be reached. Try again in a few minutes."
    ),
    "no_method": N_(
        "Your account is not allowed to use this application. Contact your administrator."
    ),
    "no_device": N_("You have no enrolled phone yet. Enroll one in the registration panel first."),
    "rate_limited": N_("Too many attempts. Wait a few minutes, then try again."),
    "fraud_locked": N_(
        "Sign-in is locked because a login was reported as fraud. Contact your administrator."
    ),
    "too_many_code_attempts": N_("The code was typed wrong too many times."),
    "superseded": N_("A newer sign-in replaced this one."),
}

STATUSES = {
    "approved": N_("The sign-in was approved."),
    "denied": N_("The sign-in was denied on your phone."),
    "fraud": N_("You reported this sign-in as fraud. Your administrator has been notified."),
    "expired": N_("The request expired before it was approved on your phone."),
    "canceled": N_("The sign-in was canceled."),
    "rejected": N_("The sign-in was rejected."),
}


RATE_LIMITED_FOR = N_("Too many attempts. Try again in {minutes} min.")


def rejection_message(
    gettext: Callable[[str], str], reason: str | None, retry_after: int | None = None
) -> str:
    """Return the translated text for a rejection `reason`, or a general one.

    With `retry_after` (seconds), a `rate_limited` rejection names the minutes to wait.
    """
    if reason == "rate_limited" and retry_after is not None:
        return gettext(RATE_LIMITED_FOR).format(minutes=-(-retry_after // 60))
    text = REJECTIONS.get(reason or "")
    return gettext(text) if text else gettext("The sign-in was rejected.")


def status_message(gettext: Callable[[str], str], status: str, reason: str | None) -> str:
    """Return the translated text for a final status, preferring the reason when there is one."""
    if reason in REJECTIONS:
        return gettext(REJECTIONS[reason])
    text = STATUSES.get(status)
    return gettext(text) if text else gettext("The sign-in was rejected.")
