"""Account state from bind results and entry attributes, without a server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

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
from tapgate.directory.ldap.account import (
    PPOLICY_CONTROL,
    account_expiry,
    account_problem,
    bind_rejection,
    ppolicy_error,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
AD_MESSAGE = (
    "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {}, v4563"
)


def ad_result(sub_code: str) -> dict[str, Any]:
    return {
        "result": 49,
        "description": "invalidCredentials",
        "message": AD_MESSAGE.format(sub_code),
    }


def ppolicy_result(code: int, value: bytes) -> dict[str, Any]:
    control = {"description": "", "criticality": False, "value": value}
    return {"result": code, "message": "", "controls": {PPOLICY_CONTROL: control}}


def user(**attributes: str) -> DirectoryUser:
    values = {name.lower(): (value,) for name, value in attributes.items()}
    return DirectoryUser("corp", "id", "name", attributes=values)


@pytest.mark.parametrize(
    ("sub_code", "reason"),
    [
        ("52e", INVALID_CREDENTIALS),
        ("525", INVALID_CREDENTIALS),
        ("773", PASSWORD_CHANGE_REQUIRED),
        ("532", PASSWORD_EXPIRED),
        ("701", ACCOUNT_EXPIRED),
        ("775", ACCOUNT_LOCKED),
        ("530", LOGON_RESTRICTED),
        ("531", LOGON_RESTRICTED),
        ("533", ACCOUNT_DISABLED),
        ("52E", INVALID_CREDENTIALS),
        ("999", INVALID_CREDENTIALS),
    ],
)
def test_ad_sub_code_maps_to_reason(sub_code: str, reason: str) -> None:
    assert bind_rejection(ad_result(sub_code)) == reason


def test_successful_bind_has_no_reason() -> None:
    assert bind_rejection({"result": 0, "message": ""}) is None


def test_other_result_is_invalid_credentials() -> None:
    assert bind_rejection({"result": 53, "message": "unwilling"}) == INVALID_CREDENTIALS


@pytest.mark.parametrize(
    ("code", "value", "reason"),
    [
        (49, b"\x30\x03\x81\x01\x00", PASSWORD_EXPIRED),
        (49, b"\x30\x03\x81\x01\x01", ACCOUNT_LOCKED),
        (0, b"\x30\x03\x81\x01\x02", PASSWORD_CHANGE_REQUIRED),
        (49, b"\x30\x00", INVALID_CREDENTIALS),
        (0, b"\x30\x00", None),
        # A warning (timeBeforeExpiration 3600) before the error.
        (49, b"\x30\x09\xa0\x04\x80\x02\x0e\x10\x81\x01\x01", ACCOUNT_LOCKED),
        (0, b"\x30\x06\xa0\x04\x80\x02\x0e\x10", None),
    ],
)
def test_ppolicy_control_maps_to_reason(code: int, value: bytes, reason: str | None) -> None:
    assert bind_rejection(ppolicy_result(code, value)) == reason


@pytest.mark.parametrize("value", [b"", b"\x30", b"\x30\x05\x81\x01", b"\x04\x00", b"\x30\x83\x01"])
def test_malformed_ppolicy_control_ignored(value: bytes) -> None:
    assert ppolicy_error(ppolicy_result(49, value)) is None


def test_long_form_ber_length_read() -> None:
    assert ppolicy_error(ppolicy_result(49, b"\x30\x81\x03\x81\x01\x01")) == 1


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"userAccountControl": "512"}, None),
        ({"userAccountControl": "514"}, ACCOUNT_DISABLED),
        ({"userAccountControl": "66050"}, ACCOUNT_DISABLED),
        ({"userAccountControl": "junk"}, None),
        ({"accountExpires": "0"}, None),
        ({"accountExpires": "9223372036854775807"}, None),
        ({"accountExpires": "132223104000000000"}, ACCOUNT_EXPIRED),  # 2020-01-01
        ({"accountExpires": "139428000000000000"}, None),  # 2042-10-31
        ({"shadowExpire": "18262"}, ACCOUNT_EXPIRED),  # 2020-01-01
        ({"shadowExpire": "-1"}, None),
        ({}, None),
    ],
)
def test_account_problem_from_attributes(attributes: dict[str, str], reason: str | None) -> None:
    assert account_problem(user(**attributes), NOW) == reason


def test_locked_user_reported() -> None:
    locked = DirectoryUser("corp", "id", "name", locked=True)
    assert account_problem(locked, NOW) == ACCOUNT_LOCKED


def test_disabled_wins_over_expired() -> None:
    both = user(userAccountControl="514", accountExpires="132223104000000000")
    assert account_problem(both, NOW) == ACCOUNT_DISABLED


def test_naive_time_taken_as_utc() -> None:
    expiring = user(accountExpires="133616736000000000")  # 2024-06-01 00:00 UTC
    assert account_problem(expiring, datetime(2024, 5, 31, 23, 0)) is None
    assert account_problem(expiring, datetime(2024, 6, 1, 1, 0)) == ACCOUNT_EXPIRED


def test_filetime_converted() -> None:
    expiry = account_expiry(user(accountExpires="132223104000000000"))
    assert expiry == datetime(2020, 1, 1, tzinfo=UTC)
