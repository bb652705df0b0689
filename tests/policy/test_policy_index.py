"""The policy index must decide exactly as matching policy by policy does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.policy.test_policy_matching import GROUPS, PLAIN, POLICIES, make_user

from tapgate.directory.base import DirectoryUser
from tapgate.errors import ObjectError
from tapgate.policy import index as index_module
from tapgate.policy.index import PolicyIndex, check_program_size
from tapgate.policy.matching import match_policy
from tapgate.policy.model import Policy, PushProfileRoute
from tapgate.policy.selection import select_method


def matched_by_policy(policies: list[Policy], user: DirectoryUser) -> frozenset[int]:
    return frozenset(policy.position for policy in policies if match_policy(policy, user).matched)


@pytest.mark.parametrize(("value", "candidate", "expected"), PLAIN)
def test_index_plain_table(value: str, candidate: str, expected: bool) -> None:
    rule = Policy(1, "it-push", "corp", "department", (value,))
    found = PolicyIndex([rule]).matching(make_user(department=(candidate,)))
    assert (1 in found) is expected


@pytest.mark.parametrize(("value", "member", "expected"), GROUPS)
def test_index_group_table(value: str, member: str, expected: bool) -> None:
    rule = Policy(1, "it-push", "corp", "memberOf", (value,))
    found = PolicyIndex([rule]).matching(make_user(memberOf=(member,)))
    assert (1 in found) is expected


@pytest.mark.parametrize(("rule", "attributes", "matched", "_explanation"), POLICIES)
def test_index_policy_table(
    rule: Policy, attributes: dict[str, tuple[str, ...]], matched: bool, _explanation: str
) -> None:
    assert (rule.position in PolicyIndex([rule]).matching(make_user(**attributes))) is matched


def test_regex_anchored_in_index() -> None:
    rule = Policy(1, "it-push", "corp", "department", ("/IT/",))
    index = PolicyIndex([rule])
    assert index.matching(make_user(department=("Non-IT",))) == frozenset()
    assert index.matching(make_user(department=("it",))) == {1}


def test_missing_attribute_never_matches_star() -> None:
    rule = Policy(1, "it-push", "corp", "title", ("*",))
    assert PolicyIndex([rule]).matching(make_user(department=("IT",))) == frozenset()


# Values of every kind, with Turkish letters, DNs, escapes and stars in different places.
POLICY_VALUES = [
    "IT",
    "Bilgi İşlem",
    "bilgi  işlem",
    "Bilgi*",
    "*İŞLEM",
    "*",
    r"a\*b",
    "/(bilgi|güvenlik) işlem( birimi)?/",
    "/IT/",
    "/.*ş.*/",
    "/[a-c]+/",
    "Straße",
    "CN=Bilgi İşlem,OU=Gruplar,DC=ornek,DC=com,DC=tr",
    r"CN=Kaya\, İrem,OU=Kullanıcılar,DC=ornek",
    "Kaya, İrem",
    "*OU=Gruplar*",
    "/cn=.*,ou=gruplar,.*/",
    "/(a)\\1/",
]
ATTRIBUTE_VALUES = [
    "IT",
    "it",
    "Non-IT",
    "BİLGİ İŞLEM",
    "Bilgi İşlem Birimi",
    "güvenlik işlem",
    "a*b",
    "aXb",
    "abc",
    "STRASSE",
    "Finans",
    "CN=Bilgi İşlem,OU=Gruplar,DC=ornek,DC=com,DC=tr",
    "cn=bilgi işlem, ou=GRUPLAR, dc=ornek, dc=com, dc=tr",
    "CN=Bilgi İşlem,OU=Eski,DC=ornek,DC=com,DC=tr",
    r"cn=kaya\2C irem,ou=kullanicilar,dc=ornek",
    "Kaya, İrem",
    "",
]
ATTRIBUTES = ["department", "memberOf", "title", "username"]

policy_rule = st.tuples(
    st.sampled_from(["it-push", "finans-push"]),
    st.sampled_from(["corp", "staff"]),
    st.sampled_from(ATTRIBUTES),
    st.lists(st.sampled_from(POLICY_VALUES), min_size=1, max_size=3, unique=True),
)
user_attributes = st.dictionaries(
    st.sampled_from(["department", "memberof", "title"]),
    st.lists(st.sampled_from(ATTRIBUTE_VALUES), max_size=3).map(tuple),
)
ROUTES = {
    "it-push": PushProfileRoute("it-push", ("corp", "staff")),
    "finans-push": PushProfileRoute("finans-push", ("corp",), default=True),
}


def build(rules: list[tuple[str, str, str, list[str]]]) -> list[Policy]:
    return [
        Policy(position, push_profile, auth_profile, attribute, tuple(values))
        for position, (push_profile, auth_profile, attribute, values) in enumerate(rules, 1)
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(policy_rule, max_size=8),
    user_attributes,
    st.sampled_from(["corp", "staff"]),
    st.sampled_from(["ayilmaz", "İsmail", "Non-IT"]),
)
def test_index_agrees_with_policy_by_policy(
    rules: list[tuple[str, str, str, list[str]]],
    attributes: dict[str, tuple[str, ...]],
    auth_profile: str,
    username: str,
) -> None:
    policies = build(rules)
    user = DirectoryUser(auth_profile, "guid-1", username, attributes=attributes)
    index = PolicyIndex(policies)
    assert index.matching(user) == matched_by_policy(policies, user)

    for methods in (("push",), ("it-push",), ("finans-push", "push"), ("it-push", "push")):
        explained = select_method(methods, user, ROUTES, policies)
        indexed = select_method(methods, user, ROUTES, policies, index)
        assert (indexed.method, indexed.push_profile, indexed.policy, indexed.decided_by) == (
            explained.method,
            explained.push_profile,
            explained.policy,
            explained.decided_by,
        )
        assert indexed.evaluations == ()


def test_index_fallback_without_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A memory limit this small makes RE2 refuse to compile the set of these patterns, so the
    # index must fall back to its per-value matchers and still give the same results.
    monkeypatch.setattr(index_module, "_SET_MEMORY", 1 << 16)
    policies = [
        Policy(number + 1, "it-push", "corp", "department", (f"/.*a.{{{14 + number}}}/",))
        for number in range(8)
    ]
    policies.append(Policy(9, "it-push", "corp", "department", ("*İşlem",)))
    index = PolicyIndex(policies)
    for text in ("a" + "b" * 15, "a" + "b" * 21, "bilgi işlem", "x"):
        user = make_user(department=(text,))
        assert index.matching(user) == matched_by_policy(policies, user)


def test_thousand_policies_last_one_decides() -> None:
    policies = [
        Policy(number, "it-push", "corp", "department", (f"/^(Bilgi|Güvenlik) İşlem {number}$/",))
        for number in range(1, 1001)
    ]
    index = PolicyIndex(policies)
    user = make_user(department=("GÜVENLİK İŞLEM 1000",))
    selection = select_method(("push",), user, ROUTES, policies, index)
    assert (selection.push_profile, selection.policy) == ("it-push", 1000)
    assert index.matching(make_user(department=("Güvenlik İşlem 10000",))) == frozenset()


def test_heavy_regexes_of_one_attribute_rejected() -> None:
    policies = [
        Policy(number, "it-push", "corp", "title", (f"/[^a]{{200}}q{number}/",))
        for number in range(1, 201)
    ]
    with pytest.raises(ObjectError, match="title for auth profile corp compile to"):
        check_program_size(policies)


def test_program_size_counted_per_attribute() -> None:
    policies = [
        Policy(number, "it-push", "corp", attribute, (f"/[^a]{{200}}q{number}/",))
        for number, attribute in enumerate(["title", "department"] * 60, start=1)
    ]
    check_program_size(policies)
