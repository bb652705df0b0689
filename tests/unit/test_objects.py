"""Parsing and cross-checking an objects document, and exporting it."""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tapgate.errors import ObjectError
from tapgate.objects.document import ObjectSet, check_references, parse_document
from tapgate.objects.repository import export_document


def base_document() -> dict[str, Any]:
    return {
        "auth_profiles": [
            {"name": "personel", "type": "local"},
            {
                "name": "kurumsal",
                "type": "ldap",
                "servers": ["ldaps://dc1.ornek.com.tr", "ldaps://dc2.ornek.com.tr"],
                "bind_dn": "CN=svc-mfa,OU=Servis,DC=ornek,DC=com,DC=tr",
                "bind_password_file": "/etc/tapgate/ldap-bind-password",
                "base_dn": "DC=ornek,DC=com,DC=tr",
                "user_filter": "(sAMAccountName={username})",
            },
        ],
        "push_profiles": [
            {
                "name": "bilgi-islem",
                "fallback_auth_profiles": ["kurumsal", "personel"],
                "timeout": 60,
                "verification": "number",
                "number_digits": 2,
                "default": True,
            },
            {"name": "satis", "fallback_auth_profiles": ["personel"], "verification": "tap"},
        ],
        "policies": [
            {
                "push_profile": "bilgi-islem",
                "auth_profile": "kurumsal",
                "attribute": "department",
                "values": ["Bilgi İşlem", "Bilgi*", "/^Güvenlik$/"],
            }
        ],
        "applications": [
            {"name": "vpn", "type": "radius", "methods": ["bilgi-islem", "push"]},
            {"name": "portal", "type": "api", "methods": ["push"], "require_password": False},
        ],
        "radius_clients": [
            {
                "name": "fw1",
                "address": "10.0.0.1",
                "secret_file": "/etc/tapgate/fw1.secret",
                "application": "vpn",
            }
        ],
    }


def load(document: Any) -> ObjectSet:
    objects = parse_document(document)
    check_references(objects)
    return objects


def changed(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    document = base_document()
    edit(document)
    return document


def push(document: dict[str, Any], index: int = 0) -> dict[str, Any]:
    profile: dict[str, Any] = document["push_profiles"][index]
    return profile


def test_base_document_valid() -> None:
    assert list(load(base_document()).push_profiles) == ["bilgi-islem", "satis"]


def test_empty_document_valid() -> None:
    assert load(None) == ObjectSet()


# Each case breaks one key, and the error must name the object and the offending key or value.
INVALID = [
    pytest.param(
        changed(lambda d: d.update(gruplar=[])), ["unknown section 'gruplar'"], id="unknown-section"
    ),
    pytest.param(
        changed(lambda d: d["auth_profiles"][0].update(renk="mavi")),
        ["auth_profiles[0] (personel)", "unknown key 'renk'"],
        id="auth-profile-unknown-key",
    ),
    pytest.param(
        changed(lambda d: d["auth_profiles"][0].update(type="ad")),
        ["auth_profiles[0] (personel)", "type", "'ad'"],
        id="auth-profile-bad-type",
    ),
    pytest.param(
        changed(lambda d: d["auth_profiles"][0].pop("name")),
        ["auth_profiles[0]", "name"],
        id="auth-profile-missing-name",
    ),
    pytest.param(
        changed(lambda d: push(d).update(renk="mavi")),
        ["push_profiles[0] (bilgi-islem)", "unknown key 'renk'"],
        id="push-profile-unknown-key",
    ),
    pytest.param(
        changed(lambda d: push(d).pop("name")),
        ["push_profiles[0]", "missing key 'name'"],
        id="push-profile-missing-name",
    ),
    pytest.param(
        changed(lambda d: push(d).update(name="satış")),
        ["push_profiles[0]", "invalid name 'satış'"],
        id="push-profile-bad-name",
    ),
    pytest.param(
        changed(lambda d: push(d).pop("fallback_auth_profiles")),
        ["push_profiles[0] (bilgi-islem)", "missing key 'fallback_auth_profiles'"],
        id="push-profile-missing-fallback",
    ),
    pytest.param(
        changed(lambda d: push(d).update(timeout=0)),
        ["push_profiles[0] (bilgi-islem)", "timeout", "not 0"],
        id="timeout-0",
    ),
    pytest.param(
        changed(lambda d: push(d).update(timeout=601)),
        ["push_profiles[0] (bilgi-islem)", "timeout", "not 601"],
        id="timeout-601",
    ),
    pytest.param(
        changed(lambda d: push(d).update(timeout="60")),
        ["push_profiles[0] (bilgi-islem)", "timeout", "not '60'"],
        id="timeout-string",
    ),
    pytest.param(
        changed(lambda d: push(d).update(timeout=True)),
        ["push_profiles[0] (bilgi-islem)", "timeout", "not True"],
        id="timeout-bool",
    ),
    pytest.param(
        changed(lambda d: push(d).update(verification="sms")),
        ["push_profiles[0] (bilgi-islem)", "verification", "'sms'"],
        id="verification-unknown",
    ),
    pytest.param(
        changed(lambda d: push(d).update(number_digits=1)),
        ["push_profiles[0] (bilgi-islem)", "number_digits", "not 1"],
        id="number-digits-1",
    ),
    pytest.param(
        changed(lambda d: push(d).update(number_digits=9)),
        ["push_profiles[0] (bilgi-islem)", "number_digits", "not 9"],
        id="number-digits-9",
    ),
    pytest.param(
        changed(lambda d: push(d).update(code_digits=3)),
        ["push_profiles[0] (bilgi-islem)", "code_digits", "not 3"],
        id="code-digits-3",
    ),
    pytest.param(
        changed(lambda d: push(d).update(require_user_verification="evet")),
        ["push_profiles[0] (bilgi-islem)", "require_user_verification", "'evet'"],
        id="require-uv-string",
    ),
    pytest.param(
        changed(lambda d: push(d).update(rate_limit={"patlama": 3})),
        ["push_profiles[0] (bilgi-islem): rate_limit", "unknown key 'patlama'"],
        id="rate-limit-unknown-key",
    ),
    pytest.param(
        changed(lambda d: push(d).update(delivery=["sms"])),
        ["push_profiles[0] (bilgi-islem)", "delivery", "['sms']"],
        id="delivery-unknown",
    ),
    pytest.param(
        changed(lambda d: d["push_profiles"].append(copy.deepcopy(push(d)))),
        ["push_profiles", "'bilgi-islem' appears twice"],
        id="push-profile-duplicate",
    ),
    pytest.param(
        changed(lambda d: d["auth_profiles"].append({"name": "personel", "type": "local"})),
        ["auth_profiles", "'personel' appears twice"],
        id="auth-profile-duplicate",
    ),
    pytest.param(
        changed(
            lambda d: d["applications"].append({"name": "vpn", "type": "api", "methods": ["push"]})
        ),
        ["applications", "'vpn' appears twice"],
        id="application-duplicate",
    ),
    pytest.param(
        changed(lambda d: push(d).update(fallback_auth_profiles=["personel", "personel"])),
        ["push_profiles[0] (bilgi-islem)", "fallback_auth_profiles", "twice"],
        id="fallback-duplicate",
    ),
    pytest.param(
        changed(lambda d: push(d, 1).update(default=True)),
        ["default: true", "bilgi-islem", "satis"],
        id="second-default",
    ),
    pytest.param(
        changed(lambda d: push(d).update(fallback_auth_profiles=["kurumsal", "misafir"])),
        ["push profile 'bilgi-islem'", "fallback auth profile 'misafir'"],
        id="fallback-missing",
    ),
    pytest.param(
        changed(lambda d: d["applications"][0].update(methods=["bilgi-islem", "sms-otp"])),
        ["application 'vpn'", "method 'sms-otp'", "'push'"],
        id="method-unknown",
    ),
    pytest.param(
        changed(lambda d: d["applications"][0].update(methods=[])),
        ["applications[0] (vpn)", "methods"],
        id="methods-empty",
    ),
    pytest.param(
        changed(lambda d: d["applications"][0].update(type="vpn")),
        ["applications[0] (vpn)", "type", "'vpn'"],
        id="application-bad-type",
    ),
    pytest.param(
        changed(lambda d: d["applications"][0].update(require_password="evet")),
        ["applications[0] (vpn)", "require_password", "'evet'"],
        id="require-password-string",
    ),
    pytest.param(
        changed(lambda d: d["applications"][0].pop("methods")),
        ["applications[0] (vpn)", "missing key 'methods'"],
        id="application-missing-methods",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(application="portal")),
        ["radius client 'fw1'", "application 'portal'", "'api'"],
        id="radius-client-non-radius-application",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(application="yok")),
        ["radius client 'fw1'", "application 'yok' does not exist"],
        id="radius-client-missing-application",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(address="guvenlik-duvari")),
        ["radius_clients[0] (fw1)", "'guvenlik-duvari'"],
        id="radius-client-bad-address",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(language="de")),
        ["radius_clients[0] (fw1)", "language must be one of", "'de'"],
        id="radius-client-language",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(timeout="30s")),
        ["radius_clients[0] (fw1)", "timeout must be a positive number", "'30s'"],
        id="radius-client-timeout-text",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(timeout=0)),
        ["radius_clients[0] (fw1)", "timeout must be a positive number"],
        id="radius-client-timeout-zero",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(client_ip_attribute="NAS-IP-Address")),
        ["radius_clients[0] (fw1)", "Calling-Station-Id", "'NAS-IP-Address'"],
        id="radius-client-ip-attribute",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(challenge="hayır")),
        ["radius_clients[0] (fw1)", "challenge must be true or false"],
        id="radius-client-challenge-text",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(secret="paylaşılan-sır")),
        ["radius_clients[0] (fw1)", "secret or secret_file"],
        id="radius-client-two-secrets",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].pop("secret_file")),
        ["radius_clients[0] (fw1)", "secret or secret_file"],
        id="radius-client-no-secret",
    ),
    pytest.param(
        changed(lambda d: d["radius_clients"][0].update(renk="mavi")),
        ["radius_clients[0] (fw1)", "unknown key 'renk'"],
        id="radius-client-unknown-key",
    ),
    pytest.param(
        changed(lambda d: d["policies"][0].update(push_profile="satis")),
        ["policies[1]", "auth profile 'kurumsal'", "push profile 'satis'"],
        id="policy-auth-profile-outside-chain",
    ),
    pytest.param(
        changed(lambda d: d["policies"][0].update(push_profile="yok")),
        ["policies[1]", "push profile 'yok'"],
        id="policy-missing-push-profile",
    ),
    pytest.param(
        changed(lambda d: d["policies"][0].update(auth_profile="misafir")),
        ["policies[1]", "auth profile 'misafir'"],
        id="policy-missing-auth-profile",
    ),
    pytest.param(
        changed(lambda d: d["policies"][0].update(attribute="ayakkabiNumarasi")),
        ["policies[1]", "'ayakkabiNumarasi'"],
        id="policy-unknown-attribute",
    ),
    pytest.param(
        changed(lambda d: d["policies"][0].update(values=[])),
        ["policies[1]", "values"],
        id="policy-no-values",
    ),
    pytest.param(
        changed(lambda d: d["policies"][0].update(values=["/(Bilgi/"])),
        ["policies[1]", "'/(Bilgi/'"],
        id="policy-bad-regex",
    ),
    pytest.param(
        changed(
            lambda d: d["policies"].append(
                {
                    "push_profile": "bilgi-islem",
                    "auth_profile": "kurumsal",
                    "attribute": "Department",
                    "values": ["/^Güvenlik$/", "BİLGİ  İŞLEM", "Bilgi*"],
                }
            )
        ),
        ["policies[2]", "same policy as policies[1]", "remove one"],
        id="policy-duplicate",
    ),
    pytest.param(
        changed(lambda d: d["policies"][0].update(sira=1)),
        ["policies[1]", "unknown key 'sira'"],
        id="policy-unknown-key",
    ),
    pytest.param(
        changed(lambda d: d.update(push_profiles={"name": "bilgi-islem"})),
        ["push_profiles must be a list"],
        id="section-not-list",
    ),
    pytest.param(
        changed(lambda d: d["push_profiles"].__setitem__(0, "bilgi-islem")),
        ["push_profiles[0]", "must be a mapping"],
        id="push-profile-not-mapping",
    ),
]


def test_policy_over_the_maximum_rejected_after_merge() -> None:
    objects = load(base_document())
    template = (objects.policies or [])[0]
    objects.policies = [
        dataclasses.replace(template, values=(f"Birim {number}",)) for number in range(1001)
    ]
    with pytest.raises(ObjectError, match="1001 policies, more than the maximum of 1000"):
        check_references(objects)


def test_regexes_differing_in_escape_case_not_duplicates() -> None:
    document = changed(
        lambda d: d["policies"].extend(
            {
                "push_profile": "bilgi-islem",
                "auth_profile": "kurumsal",
                "attribute": "username",
                "values": [value],
            }
            for value in (r"/\d+/", r"/\D+/")
        )
    )
    assert len(load(document).policies or []) == 3


def test_exact_values_differing_in_spacing_are_duplicates() -> None:
    document = changed(
        lambda d: d["policies"].extend(
            {
                "push_profile": "bilgi-islem",
                "auth_profile": "kurumsal",
                "attribute": "title",
                "values": [value],
            }
            for value in ("Uzman  Mühendis", "UZMAN MÜHENDİS")
        )
    )
    with pytest.raises(ObjectError, match="same policy as policies"):
        load(document)


@pytest.mark.parametrize(("document", "fragments"), INVALID)
def test_invalid_document_named(document: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ObjectError) as caught:
        load(document)
    message = str(caught.value)
    assert [fragment for fragment in fragments if fragment not in message] == [], message


def test_auth_profile_not_mapping() -> None:
    document = changed(lambda d: d["auth_profiles"].__setitem__(0, "personel"))
    with pytest.raises(ObjectError, match=re.escape("auth_profiles[0]")):
        load(document)


def export_text(document: dict[str, Any]) -> str:
    return yaml.safe_dump(export_document(load(document)), allow_unicode=True, sort_keys=False)


def test_export_deterministic() -> None:
    assert export_text(base_document()) == export_text(base_document())


def test_export_ignores_option_order() -> None:
    def reverse_ldap_options(document: dict[str, Any]) -> None:
        document["auth_profiles"][1] = dict(reversed(list(document["auth_profiles"][1].items())))

    assert export_text(changed(reverse_ldap_options)) == export_text(base_document())


def test_export_round_trip() -> None:
    exported = export_document(load(base_document()))
    assert load(exported) == load(base_document())


def test_export_stable_after_round_trip() -> None:
    once = export_document(load(base_document()))
    assert export_document(load(once)) == once


def test_export_keeps_policy_values() -> None:
    exported = export_document(load(base_document()))
    assert exported["policies"][0]["values"] == ["Bilgi İşlem", "Bilgi*", "/^Güvenlik$/"]


def test_export_section_order() -> None:
    assert list(export_document(load(base_document()))) == [
        "auth_profiles",
        "push_profiles",
        "policies",
        "applications",
        "radius_clients",
    ]
