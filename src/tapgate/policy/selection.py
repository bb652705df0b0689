"""Method selection: which of an application's methods admits a user, and why.

An application lists methods in order: push profile names, or `push`, which routes by all
policies. The first method that admits the user is used, and when none does the login is
rejected with reason `no_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tapgate.directory.base import DirectoryUser
from tapgate.policy.matching import match_policy
from tapgate.policy.model import Evaluation, Policy, PushProfileRoute, Selection

__all__ = ["PUSH_METHOD", "auth_profile_order", "explain", "select_method", "selection_to_dict"]

# The method that routes by all policies. It takes precedence over a push profile of the
# same name.
PUSH_METHOD = "push"


def auth_profile_order(
    methods: Sequence[str],
    push_profiles: Mapping[str, PushProfileRoute],
    declared_auth_profiles: Sequence[str],
) -> list[str]:
    """Return the auth profiles to ask for a user, in order, each once.

    A push profile method contributes its fallback auth profiles; `push` contributes every
    auth profile in declared order. Unknown methods are skipped: the caller validates them.
    """
    order: dict[str, None] = {}
    for method in methods:
        if method == PUSH_METHOD:
            chain: Sequence[str] = declared_auth_profiles
        elif method in push_profiles:
            chain = push_profiles[method].fallback_auth_profiles
        else:
            continue
        for auth_profile in chain:
            order.setdefault(auth_profile, None)
    return list(order)


@dataclass(frozen=True)
class _Outcome:
    """Decision of one method: a push profile, or None with the reason in `decided_by`."""

    push_profile: str | None
    decided_by: str
    policy: int | None = None


def select_method(
    methods: Sequence[str],
    user: DirectoryUser,
    push_profiles: Mapping[str, PushProfileRoute],
    policies: Sequence[Policy],
) -> Selection:
    """Select the first of `methods` that admits `user`, recording each policy considered.

    `user.auth_profile` is the auth profile that resolved the user. `policies` are all the
    policies, in any order: their positions give the priority. A method that is neither
    `push` nor a key of `push_profiles` is skipped.
    """
    ordered = sorted(policies, key=lambda policy: policy.position)
    evaluations: dict[int, Evaluation] = {}

    def evaluate(policy: Policy) -> Evaluation:
        # `it-push` and then `push` can consider the same policy; record it once.
        if policy.position not in evaluations:
            evaluations[policy.position] = match_policy(policy, user)
        return evaluations[policy.position]

    reasons: list[str] = []
    for method in methods:
        if method == PUSH_METHOD:
            outcome = _route_by_policies(user, push_profiles, ordered, evaluate)
        elif method in push_profiles:
            outcome = _admit(push_profiles[method], user, ordered, evaluate)
        else:
            outcome = _Outcome(None, "unknown method")

        if outcome.push_profile is not None:
            return Selection(
                method=method,
                push_profile=outcome.push_profile,
                policy=outcome.policy,
                evaluations=tuple(evaluations.values()),
                decided_by=outcome.decided_by,
            )
        reasons.append(f"{method}: {outcome.decided_by}")

    if reasons:
        decided_by = "no method admits the user (" + "; ".join(reasons) + ")"
    else:
        decided_by = "the application has no methods"
    return Selection(None, None, None, tuple(evaluations.values()), decided_by)


def explain(
    methods: Sequence[str],
    user: DirectoryUser,
    push_profiles: Mapping[str, PushProfileRoute],
    policies: Sequence[Policy],
) -> dict[str, object]:
    """Select a method as `select_method` does and return the outcome as a JSON-ready dict."""
    return selection_to_dict(select_method(methods, user, push_profiles, policies), policies)


def selection_to_dict(selection: Selection, policies: Sequence[Policy]) -> dict[str, object]:
    """Return a selection in the form of `tapgate policy explain --json`.

    Keys: `method`, `push_profile`, `policy` (1-based position), `decided_by`, and
    `evaluations`, one entry per policy considered, in the order they were considered. The
    value is None where nothing applies.
    """
    by_position = {policy.position: policy for policy in policies}
    evaluations: list[dict[str, object]] = []
    for evaluation in selection.evaluations:
        policy = by_position[evaluation.position]
        evaluations.append(
            {
                "position": evaluation.position,
                "push_profile": evaluation.push_profile,
                "auth_profile": policy.auth_profile,
                "attribute": policy.attribute,
                "values": list(policy.values),
                "matched": evaluation.matched,
                "explanation": evaluation.explanation,
            }
        )

    return {
        "method": selection.method,
        "push_profile": selection.push_profile,
        "policy": selection.policy,
        "decided_by": selection.decided_by,
        "evaluations": evaluations,
    }


def _admit(
    route: PushProfileRoute,
    user: DirectoryUser,
    policies: Sequence[Policy],
    evaluate: Callable[[Policy], Evaluation],
) -> _Outcome:
    """Decide whether a named push profile admits the user: its chain must contain the
    user's auth profile, and it must have no policies or one of its policies must match."""
    if user.auth_profile not in route.fallback_auth_profiles:
        return _Outcome(None, _not_in_chain(user, route))

    own = [policy for policy in policies if policy.push_profile == route.name]
    if not own:
        return _Outcome(route.name, f"push profile {route.name} has no policies")

    for policy in own:
        if evaluate(policy).matched:
            return _Outcome(route.name, f"policy {policy.position}", policy.position)

    positions = ", ".join(str(policy.position) for policy in own)
    return _Outcome(None, f"none of its policies ({positions}) matches")


def _route_by_policies(
    user: DirectoryUser,
    push_profiles: Mapping[str, PushProfileRoute],
    policies: Sequence[Policy],
    evaluate: Callable[[Policy], Evaluation],
) -> _Outcome:
    """Route the method `push`: the first matching policy decides, and with no policies at
    all the default push profile is used."""
    if not policies:
        default = next((route for route in push_profiles.values() if route.default), None)
        if default is None:
            return _Outcome(None, "no policies and no default push profile")
        if user.auth_profile not in default.fallback_auth_profiles:
            return _Outcome(None, f"no policies, and default {_not_in_chain(user, default)}")
        return _Outcome(default.name, "no policies")

    for policy in policies:
        if not evaluate(policy).matched:
            continue

        # `validate_policy` rejects a policy whose auth profile is not in its push profile's
        # chain, and a matching policy has the user's auth profile. So this branch runs only
        # for policies saved before a push profile changed, and the first match still
        # decides: the method admits no user.
        route = push_profiles.get(policy.push_profile)
        if route is None:
            return _Outcome(
                None,
                f"policy {policy.position} matches but push profile "
                f"{policy.push_profile} does not exist",
            )
        if user.auth_profile not in route.fallback_auth_profiles:
            return _Outcome(
                None, f"policy {policy.position} matches but {_not_in_chain(user, route)}"
            )
        return _Outcome(route.name, f"policy {policy.position}", policy.position)

    return _Outcome(None, "no policy matches")


def _not_in_chain(user: DirectoryUser, route: PushProfileRoute) -> str:
    chain = ", ".join(route.fallback_auth_profiles)
    return (
        f"push profile {route.name} does not have the user's auth profile {user.auth_profile} "
        f"among its fallback auth profiles ({chain})"
    )
