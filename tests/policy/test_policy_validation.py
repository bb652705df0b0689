"""Checks a policy must pass before it is saved."""

from __future__ import annotations

import pytest

from tapgate.errors import ObjectError, PolicyValueError
from tapgate.policy.model import Policy, PushProfileRoute
from tapgate.policy.validation import (
    POLICY_ATTRIBUTES,
    canonical_attribute,
    validate_policies,
    validate_policy,
)

PUSH_PROFILES = {
    "it-push": PushProfileRoute("it-push", ("corp", "staff"), default=True),
    "sms": PushProfileRoute("sms", ("staff",)),
}


def make_policy(
    attribute: str = "department",
    values: tuple[str, ...] = ("IT",),
    *,
    push_profile: str = "it-push",
    auth_profile: str = "corp",
    position: int = 3,
) -> Policy:
    return Policy(position, push_profile, auth_profile, attribute, values)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("memberof", "memberOf"), ("MEMBEROF", "memberOf"), ("displayname", "displayName")]
    + [(name, name) for name in POLICY_ATTRIBUTES],
)
def test_canonical_attribute(given: str, expected: str) -> None:
    assert canonical_attribute(given) == expected


def test_unknown_attribute_lists_allowed() -> None:
    with pytest.raises(ObjectError, match="use one of: memberOf, department, title, mail"):
        canonical_attribute("office")


@pytest.mark.parametrize(
    "rule",
    [
        make_policy(),
        make_policy("MemberOf", ("CN=IT,OU=Gruplar,DC=ornek", "Bilgi İşlem", "/^Sec.*$/")),
        make_policy("displayName", ("Ayşe*",), push_profile="sms", auth_profile="staff"),
    ],
)
def test_valid_policy(rule: Policy) -> None:
    validate_policy(rule, PUSH_PROFILES)


# A DN whose comma inside the CN should have been escaped as `\,`.
UNESCAPED_COMMA = "CN=Kaya, İrem,OU=Kullanıcılar,DC=ornek,DC=com,DC=tr"

# (policy, exception type, words the message must contain)
INVALID = [
    (make_policy("office"), ObjectError, "policy 3: attribute 'office' is not supported"),
    (make_policy(values=()), ObjectError, "policy 3: values is empty"),
    (make_policy(push_profile="nope"), ObjectError, "push profile 'nope' not found"),
    (
        make_policy(push_profile="sms"),
        ObjectError,
        "auth profile 'corp' is not one of the fallback auth profiles of push profile 'sms'",
    ),
    (make_policy(values=("IT", "//")), PolicyValueError, "policy 3: regular expression '//'"),
    (make_policy(values=("/(?=a)/",)), PolicyValueError, "policy 3: invalid regular expression"),
    (make_policy("memberOf", (UNESCAPED_COMMA,)), PolicyValueError, "is not a valid DN"),
]


@pytest.mark.parametrize(("rule", "error", "message"), INVALID)
def test_invalid_policy(rule: Policy, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        validate_policy(rule, PUSH_PROFILES)
    assert message in str(caught.value)


def test_invalid_dn_position() -> None:
    with pytest.raises(PolicyValueError) as caught:
        validate_policy(make_policy("memberOf", (UNESCAPED_COMMA,)), PUSH_PROFILES)
    assert caught.value.position == 9


def test_dn_like_value_allowed_elsewhere() -> None:
    validate_policy(make_policy("title", (UNESCAPED_COMMA,)), PUSH_PROFILES)


def test_duplicate_position_rejected() -> None:
    with pytest.raises(ObjectError, match="position 3 is used twice"):
        validate_policies([make_policy(), make_policy("title")], PUSH_PROFILES)


def test_zero_position_rejected() -> None:
    with pytest.raises(ObjectError, match="positions start at 1"):
        validate_policies([make_policy(position=0)], PUSH_PROFILES)
