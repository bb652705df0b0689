"""The `ldap` auth profile against a real slapd: lookup, passwords, account state, groups."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import pytest
from ldap_server import (
    BASE_DN,
    GMOSER_GUID,
    GROUPS_OU,
    SERVICE_DN,
    ProfileFactory,
    Slapd,
)

from tapgate.directory.base import (
    ACCOUNT_DISABLED,
    ACCOUNT_EXPIRED,
    ACCOUNT_LOCKED,
    INVALID_CREDENTIALS,
    PASSWORD_CHANGE_REQUIRED,
)
from tapgate.secret import Secret

NOW = datetime.now(UTC)
VPN_GROUP = f"cn=VPN Kullanicilari,{GROUPS_OU}"


async def test_find_user_over_starttls(make_profile: ProfileFactory) -> None:
    user = await make_profile().find_user("ikaya")
    assert user is not None
    assert user.auth_profile == "corp"
    assert str(uuid.UUID(user.user_id)) == user.user_id
    assert user.username == "ikaya"
    assert user.display_name == "Kaya, İrem"
    assert user.attribute("department") == ("Bilgi İşlem",)
    assert user.attribute("mail") == ("ikaya@ornek.com.tr",)
    assert user.attribute("title") == ("Uzman",)
    assert VPN_GROUP in user.attribute("memberOf")
    assert user.attribute("distinguishedname")[0].startswith("cn=Kaya\\2C İrem,")
    assert user.locked is False


async def test_find_user_over_ldaps(make_profile: ProfileFactory, slapd: Slapd) -> None:
    user = await make_profile([slapd.ldaps_url]).find_user("ikaya")
    assert user is not None
    assert user.username == "ikaya"


async def test_same_identity_over_both_transports(
    make_profile: ProfileFactory, slapd: Slapd
) -> None:
    over_starttls = await make_profile().find_user("ikaya")
    over_ldaps = await make_profile([slapd.ldaps_url]).find_user("ikaya")
    assert over_starttls is not None and over_ldaps is not None
    assert over_starttls.user_id == over_ldaps.user_id


async def test_object_guid_is_identity(make_profile: ProfileFactory) -> None:
    user = await make_profile().find_user("gmoser")
    assert user is not None
    assert user.user_id == str(GMOSER_GUID)


async def test_unknown_user_not_found(make_profile: ProfileFactory) -> None:
    assert await make_profile().find_user("yok-boyle-biri") is None


async def test_case_insensitive_lookup(make_profile: ProfileFactory) -> None:
    user = await make_profile().find_user("IKAYA")
    assert user is not None
    assert user.username == "ikaya"


@pytest.mark.parametrize(
    "username", ["ikay*", "*", ")(uid=*", "ikaya)(sAMAccountName=*", "*)(|(cn=*", "ikaya\\"]
)
async def test_filter_injection_finds_nobody(make_profile: ProfileFactory, username: str) -> None:
    assert await make_profile().find_user(username) is None


async def test_ambiguous_login_rejected(
    make_profile: ProfileFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert await make_profile().find_user("ademir") is None
    assert "matches more than one entry" in caplog.text
    assert "auth profile corp" in caplog.text


@pytest.mark.parametrize("transport", ["ldap_url", "ldaps_url"])
async def test_right_password_accepted(
    make_profile: ProfileFactory, slapd: Slapd, transport: str
) -> None:
    profile = make_profile([getattr(slapd, transport)])
    user = await profile.find_user("ikaya")
    assert user is not None
    assert await profile.verify_password(user, Secret("İrem-Parola1")) is None


async def test_wrong_password_rejected(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("gmoser")
    assert user is not None
    assert await profile.verify_password(user, Secret("wrong-password")) == INVALID_CREDENTIALS


async def test_empty_password_rejected(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("gmoser")
    assert user is not None
    assert await profile.verify_password(user, Secret("")) == INVALID_CREDENTIALS


async def test_escaped_dn_binds(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("aliveli")
    assert user is not None
    assert user.display_name == "#Ekip Ali+Veli"
    assert await profile.verify_password(user, Secret("Ali+Veli#1")) is None


async def test_login_attributes_reach_one_user(make_profile: ProfileFactory) -> None:
    profile = make_profile(login_attributes=["sAMAccountName", "userPrincipalName"])
    found = [
        await profile.find_user(name)
        for name in ("gmoser", "gmoser@ornek.com.tr", "ORNEK\\gmoser", "GMoser@Ornek.com.tr")
    ]
    assert all(user is not None for user in found)
    assert {user.user_id for user in found if user} == {str(GMOSER_GUID)}
    assert {user.username for user in found if user} == {"gmoser"}


async def test_disabled_account_reported(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("dvogt")
    assert user is not None
    assert await profile.verify_password(user, Secret("Deniz-Parola1")) is None
    assert await profile.account_problem(user, NOW) == ACCOUNT_DISABLED


async def test_enabled_account_has_no_problem(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("ikaya")
    assert user is not None
    assert await profile.account_problem(user, NOW) is None


async def test_expired_account_reported(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("suresi")
    assert user is not None
    assert await profile.account_problem(user, NOW) == ACCOUNT_EXPIRED


async def test_ppolicy_lock_reported(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("kilitli")
    assert user is not None
    assert user.locked is True
    assert await profile.verify_password(user, Secret("Kilit-Parola1")) == ACCOUNT_LOCKED
    assert await profile.account_problem(user, NOW) == ACCOUNT_LOCKED


async def test_ppolicy_reset_requires_change(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    user = await profile.find_user("sifirla")
    assert user is not None
    assert await profile.verify_password(user, Secret("Sifir-Parola1")) == PASSWORD_CHANGE_REQUIRED
    assert await profile.verify_password(user, Secret("wrong")) == INVALID_CREDENTIALS


async def test_direct_groups_without_nesting(make_profile: ProfileFactory) -> None:
    user = await make_profile().find_user("ikaya")
    assert user is not None
    assert sorted(user.attribute("memberof")) == sorted(
        [VPN_GROUP, f"cn=Bilgi İşlem Ekibi,{GROUPS_OU}"]
    )


async def test_nested_groups_with_cycle(make_profile: ProfileFactory) -> None:
    user = await make_profile(nested_groups=True).find_user("ikaya")
    assert user is not None
    groups = user.attribute("memberof")
    expected = {
        VPN_GROUP,
        f"cn=Bilgi İşlem Ekibi,{GROUPS_OU}",
        f"cn=Tüm Personel,{GROUPS_OU}",
        f"cn=Döngü Grubu,{GROUPS_OU}",
    }
    assert set(groups) == expected
    assert len(groups) == len(expected)


async def test_nested_groups_leave_others_alone(make_profile: ProfileFactory) -> None:
    user = await make_profile(nested_groups=True).find_user("gmoser")
    assert user is not None
    assert user.attribute("memberof") == (VPN_GROUP,)


async def test_concurrent_lookups_share_pool(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    names = ["ikaya", "gmoser", "dvogt", "aliveli"] * 5
    users = await asyncio.gather(*(profile.find_user(name) for name in names))
    assert [user.username if user else None for user in users] == names


async def test_connection_diagnostics(make_profile: ProfileFactory, slapd: Slapd) -> None:
    lines = await make_profile([slapd.ldap_url, slapd.ldaps_url]).test_connection("ikaya")
    text = "\n".join(lines)
    assert f"{slapd.ldap_url}: connected (StartTLS, TLSv1." in text
    assert f"{slapd.ldaps_url}: connected (ldaps, TLSv1." in text
    assert f"bind as {SERVICE_DN} succeeded" in text
    assert f"base DN {BASE_DN}: found" in text
    assert "directory type: LDAP" in text
    # The count stops at the diagnostics' cap, which the generated users exceed.
    assert "user filter (sAMAccountName=*) matches at least" in text
    assert "user 'ikaya': found cn=Kaya\\2C İrem," in text


async def test_diagnostics_report_dead_server(make_profile: ProfileFactory, slapd: Slapd) -> None:
    dead = "ldap://127.0.0.1:1"
    lines = await make_profile([dead, slapd.ldap_url]).test_connection()
    assert any(line.startswith(f"{dead}: failed: ") for line in lines)
    assert f"base DN {BASE_DN}: found" in lines


async def test_suggest_attribute_values(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    assert await profile.suggest_values("department", "bil") == ["Bilgi İşlem"]
    departments = await profile.suggest_values("department", "")
    assert {"Bilgi İşlem", "Finans", "Satış"} <= set(departments)
    assert len(departments) == len(set(departments))
    assert await profile.suggest_values("department", "*") == []


async def test_suggest_groups(make_profile: ProfileFactory) -> None:
    profile = make_profile()
    assert await profile.suggest_values("memberOf", "vpn") == [VPN_GROUP]
    assert len(await profile.suggest_values("memberOf", "", limit=2)) == 2
