"""Method selection: which method admits a user, and the explanation of why."""

from __future__ import annotations

import json

import pytest

from tapgate.directory.base import DirectoryUser
from tapgate.policy.model import Policy, PushProfileRoute
from tapgate.policy.selection import auth_profile_order, explain, select_method

OPS_GROUP = "CN=Operasyon,OU=Gruplar,DC=ornek,DC=com,DC=tr"

PUSH_PROFILES = {
    "it-push": PushProfileRoute("it-push", ("corp", "staff"), default=True),
    "ops-push": PushProfileRoute("ops-push", ("corp",)),
    "local-push": PushProfileRoute("local-push", ("staff",)),
    "plain": PushProfileRoute("plain", ("corp", "staff")),
}

POLICIES = (
    Policy(1, "it-push", "corp", "department", ("IT", "Bilgi*")),
    Policy(2, "ops-push", "corp", "memberOf", (OPS_GROUP,)),
    Policy(3, "local-push", "staff", "group_name", ("admins",)),
)


def make_user(
    username: str, auth_profile: str = "corp", **attributes: tuple[str, ...]
) -> DirectoryUser:
    return DirectoryUser(
        auth_profile=auth_profile,
        user_id=f"id-{username}",
        username=username,
        attributes={name.lower(): values for name, values in attributes.items()},
    )


AYSE = make_user("ayilmaz", department=("Bilgi İşlem",))
IREM = make_user(
    "ikaya", department=("Finans",), memberOf=(r"cn=OPERASYON, ou=gruplar,dc=ornek,dc=com,dc=tr",)
)
MEHMET = make_user("mdemir", department=("Finans",))
ADMIN = make_user("admin", "staff", group_name=("admins",))
CLERK = make_user("clerk", "staff", group_name=("users",))

# (methods, user, method, push profile, policy)
CASES = [
    (["push"], AYSE, "push", "it-push", 1),
    (["push"], IREM, "push", "ops-push", 2),
    (["push"], ADMIN, "push", "local-push", 3),
    (["push"], MEHMET, None, None, None),
    (["push"], CLERK, None, None, None),
    (["it-push"], AYSE, "it-push", "it-push", 1),
    (["it-push"], IREM, None, None, None),
    (["ops-push", "push"], AYSE, "push", "it-push", 1),
    (["ops-push", "push"], IREM, "ops-push", "ops-push", 2),
    (["local-push"], AYSE, None, None, None),
    (["local-push", "plain"], AYSE, "plain", "plain", None),
    (["plain"], CLERK, "plain", "plain", None),
    (["totp", "plain"], MEHMET, "plain", "plain", None),
    (["it-push", "push", "plain"], MEHMET, "plain", "plain", None),
    ([], AYSE, None, None, None),
]


@pytest.mark.parametrize(("methods", "user", "method", "_profile", "_policy"), CASES)
def test_selected_method(
    methods: list[str], user: DirectoryUser, method: str | None, _profile: str, _policy: int
) -> None:
    assert select_method(methods, user, PUSH_PROFILES, POLICIES).method == method


@pytest.mark.parametrize(("methods", "user", "_method", "profile", "_policy"), CASES)
def test_selected_push_profile(
    methods: list[str], user: DirectoryUser, _method: str, profile: str | None, _policy: int
) -> None:
    assert select_method(methods, user, PUSH_PROFILES, POLICIES).push_profile == profile


@pytest.mark.parametrize(("methods", "user", "_method", "_profile", "policy"), CASES)
def test_selected_policy(
    methods: list[str], user: DirectoryUser, _method: str, _profile: str, policy: int | None
) -> None:
    assert select_method(methods, user, PUSH_PROFILES, POLICIES).policy == policy


# (methods, user, policies, decided_by)
DECISIONS = [
    (["push"], AYSE, POLICIES, "policy 1"),
    (["plain"], AYSE, POLICIES, "push profile plain has no policies"),
    (["push"], AYSE, (), "no policies"),
    (["push"], MEHMET, POLICIES, "no method admits the user (push: no policy matches)"),
    (
        ["it-push"],
        MEHMET,
        POLICIES,
        "no method admits the user (it-push: none of its policies (1) matches)",
    ),
    (
        ["local-push"],
        AYSE,
        POLICIES,
        "no method admits the user (local-push: push profile local-push does not have the "
        "user's auth profile corp among its fallback auth profiles (staff))",
    ),
    (["totp"], AYSE, POLICIES, "no method admits the user (totp: unknown method)"),
    ([], AYSE, POLICIES, "the application has no methods"),
    (
        ["push"],
        make_user("x", "other"),
        (),
        "no method admits the user (push: no policies, and default push profile it-push does "
        "not have the user's auth profile other among its fallback auth profiles (corp, staff))",
    ),
]


@pytest.mark.parametrize(("methods", "user", "policies", "decided_by"), DECISIONS)
def test_decided_by(
    methods: list[str], user: DirectoryUser, policies: tuple[Policy, ...], decided_by: str
) -> None:
    assert select_method(methods, user, PUSH_PROFILES, policies).decided_by == decided_by


def test_default_push_profile() -> None:
    assert select_method(["push"], AYSE, PUSH_PROFILES, ()).push_profile == "it-push"


def test_no_default_push_profile() -> None:
    routes = {name: route for name, route in PUSH_PROFILES.items() if not route.default}
    selection = select_method(["push"], AYSE, routes, ())
    assert selection.decided_by == (
        "no method admits the user (push: no policies and no default push profile)"
    )


def test_policies_in_position_order() -> None:
    shuffled = (POLICIES[2], POLICIES[0], POLICIES[1])
    selection = select_method(["push"], MEHMET, PUSH_PROFILES, shuffled)
    assert [evaluation.position for evaluation in selection.evaluations] == [1, 2, 3]


def test_first_match_decides() -> None:
    policies = (
        Policy(1, "it-push", "corp", "department", ("*",)),
        Policy(2, "plain", "corp", "department", ("Finans",)),
    )
    assert select_method(["push"], MEHMET, PUSH_PROFILES, policies).policy == 1


def test_evaluations_stop_at_match() -> None:
    selection = select_method(["push"], IREM, PUSH_PROFILES, POLICIES)
    assert [evaluation.matched for evaluation in selection.evaluations] == [False, True]


def test_evaluations_recorded_once() -> None:
    selection = select_method(["it-push", "push"], MEHMET, PUSH_PROFILES, POLICIES)
    assert [evaluation.position for evaluation in selection.evaluations] == [1, 2, 3]


def test_evaluation_auth_profile_explained() -> None:
    selection = select_method(["push"], ADMIN, PUSH_PROFILES, POLICIES)
    assert selection.evaluations[0].explanation == "auth profile corp is not the user's (staff)"


def test_evaluation_missing_attribute_explained() -> None:
    selection = select_method(["push"], MEHMET, PUSH_PROFILES, POLICIES)
    assert selection.evaluations[1].explanation == "user has no attribute memberOf"


def test_matching_policy_of_missing_profile_admits_nobody() -> None:
    stale = (Policy(1, "gone", "corp", "department", ("Finans",)), *POLICIES[1:])
    selection = select_method(["push"], MEHMET, PUSH_PROFILES, stale)
    assert selection.decided_by == (
        "no method admits the user (push: policy 1 matches but push profile gone does not exist)"
    )


# (methods, declared auth profiles, expected order)
ORDERS = [
    (["it-push"], [], ["corp", "staff"]),
    (["local-push", "it-push"], [], ["staff", "corp"]),
    (["push"], ["staff", "corp", "ldap2"], ["staff", "corp", "ldap2"]),
    (["ops-push", "push"], ["staff", "corp", "ldap2"], ["corp", "staff", "ldap2"]),
    (["totp", "ops-push"], ["staff"], ["corp"]),
    ([], ["staff"], []),
]


@pytest.mark.parametrize(("methods", "declared", "expected"), ORDERS)
def test_auth_profile_order(methods: list[str], declared: list[str], expected: list[str]) -> None:
    assert auth_profile_order(methods, PUSH_PROFILES, declared) == expected


def test_explain_round_trips_json() -> None:
    result = explain(["push"], IREM, PUSH_PROFILES, POLICIES)
    assert json.loads(json.dumps(result)) == result


def test_explain_top_level() -> None:
    result = explain(["push"], IREM, PUSH_PROFILES, POLICIES)
    assert {key: result[key] for key in ("method", "push_profile", "policy")} == {
        "method": "push",
        "push_profile": "ops-push",
        "policy": 2,
    }


def test_explain_evaluation_entry() -> None:
    result = explain(["push"], MEHMET, PUSH_PROFILES, POLICIES)
    assert result["evaluations"] == [
        {
            "position": 1,
            "push_profile": "it-push",
            "auth_profile": "corp",
            "attribute": "department",
            "values": ["IT", "Bilgi*"],
            "matched": False,
            "explanation": "department 'Finans' matches none of ['IT', 'Bilgi*']",
            "considered": True,
            "decided": False,
        },
        {
            "position": 2,
            "push_profile": "ops-push",
            "auth_profile": "corp",
            "attribute": "memberOf",
            "values": [OPS_GROUP],
            "matched": False,
            "explanation": "user has no attribute memberOf",
            "considered": True,
            "decided": False,
        },
        {
            "position": 3,
            "push_profile": "local-push",
            "auth_profile": "staff",
            "attribute": "group_name",
            "values": ["admins"],
            "matched": False,
            "explanation": "auth profile staff is not the user's (corp)",
            "considered": True,
            "decided": False,
        },
    ]


def test_explain_lists_policies_after_the_decision() -> None:
    result = explain(["push"], IREM, PUSH_PROFILES, POLICIES)
    entries = result["evaluations"]
    assert isinstance(entries, list)
    assert [(entry["position"], entry["considered"], entry["decided"]) for entry in entries] == [
        (1, True, False),
        (2, True, True),
        (3, False, False),
    ]


def test_explain_no_method_nulls() -> None:
    result = explain(["push"], MEHMET, PUSH_PROFILES, POLICIES)
    assert (result["method"], result["push_profile"], result["policy"]) == (None, None, None)
