"""Method selection: which of an application's methods admits a user, and why.

An application lists methods in order: push profile names, or `push`, which routes by all
policies. The first method that admits the user is used, and when none does the login is
rejected with reason `no_method`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tapgate.directory.base import DirectoryUser
from tapgate.policy.index import PolicyIndex
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


class _Policies(Protocol):
    """Policies in priority order, with a way to find the first that matches the user."""

    def all(self) -> Sequence[Policy]: ...

    def of_push_profile(self, name: str) -> Sequence[Policy]: ...

    def first_match(self, policies: Sequence[Policy]) -> Policy | None: ...


class _Explained:
    """Policies matched one by one, keeping the explanation of each policy considered."""

    def __init__(self, user: DirectoryUser, policies: Sequence[Policy]) -> None:
        self._user = user
        self._policies = sorted(policies, key=lambda policy: policy.position)
        self.evaluations: dict[int, Evaluation] = {}

    def all(self) -> Sequence[Policy]:
        return self._policies

    def of_push_profile(self, name: str) -> Sequence[Policy]:
        return [policy for policy in self._policies if policy.push_profile == name]

    def first_match(self, policies: Sequence[Policy]) -> Policy | None:
        for policy in policies:
            # `it-push` and then `push` can consider the same policy; record it once.
            evaluation = self.evaluations.get(policy.position)
            if evaluation is None:
                evaluation = self.evaluations[policy.position] = match_policy(policy, self._user)
            if evaluation.matched:
                return policy
        return None


class _Indexed:
    """Policies matched all at once through the index, without explanations."""

    def __init__(self, user: DirectoryUser, index: PolicyIndex) -> None:
        self._index = index
        self._matched = index.matching(user)

    def all(self) -> Sequence[Policy]:
        return self._index.policies

    def of_push_profile(self, name: str) -> Sequence[Policy]:
        return self._index.of_push_profile(name)

    def first_match(self, policies: Sequence[Policy]) -> Policy | None:
        if not self._matched:
            return None
        if policies is self._index.policies:
            return self._index.by_position[min(self._matched)]
        return next((policy for policy in policies if policy.position in self._matched), None)


def select_method(
    methods: Sequence[str],
    user: DirectoryUser,
    push_profiles: Mapping[str, PushProfileRoute],
    policies: Sequence[Policy],
    index: PolicyIndex | None = None,
) -> Selection:
    """Select the first of `methods` that admits `user`.

    `user.auth_profile` is the auth profile that resolved the user. `policies` are all the
    policies, in any order: their positions give the priority. A method that is neither
    `push` nor a key of `push_profiles` is skipped.

    Without `index` each policy considered is matched on its own and explained in the
    selection's `evaluations`. With an index built from the same policies the decision is the
    same, found faster, and `evaluations` is empty: that is the form for logins.
    """
    view: _Explained | _Indexed = (
        _Explained(user, policies) if index is None else _Indexed(user, index)
    )

    reasons: list[str] = []
    for method in methods:
        if method == PUSH_METHOD:
            outcome = _route_by_policies(user, push_profiles, view)
        elif method in push_profiles:
            outcome = _admit(push_profiles[method], user, view)
        else:
            outcome = _Outcome(None, "unknown method")

        if outcome.push_profile is not None:
            return Selection(
                method=method,
                push_profile=outcome.push_profile,
                policy=outcome.policy,
                evaluations=_evaluations(view),
                decided_by=outcome.decided_by,
            )
        reasons.append(f"{method}: {outcome.decided_by}")

    if reasons:
        decided_by = "no method admits the user (" + "; ".join(reasons) + ")"
    else:
        decided_by = "the application has no methods"
    return Selection(None, None, None, _evaluations(view), decided_by)


def _evaluations(view: _Explained | _Indexed) -> tuple[Evaluation, ...]:
    return tuple(view.evaluations.values()) if isinstance(view, _Explained) else ()


def explain(
    methods: Sequence[str],
    user: DirectoryUser,
    push_profiles: Mapping[str, PushProfileRoute],
    policies: Sequence[Policy],
) -> dict[str, object]:
    """Select a method as `select_method` does and return the outcome as a JSON-ready dict,
    with every policy explained, including those the selection did not need to look at."""
    selection = select_method(methods, user, push_profiles, policies)
    considered = {evaluation.position: evaluation for evaluation in selection.evaluations}
    every = [
        considered.get(policy.position) or match_policy(policy, user)
        for policy in sorted(policies, key=lambda policy: policy.position)
    ]
    return selection_to_dict(selection, policies, every, considered)


def selection_to_dict(
    selection: Selection,
    policies: Sequence[Policy],
    evaluations: Sequence[Evaluation] | None = None,
    considered: Collection[int] | None = None,
) -> dict[str, object]:
    """Return a selection in the form of `tapgate policy explain --json`.

    Keys: `method`, `push_profile`, `policy` (1-based position), `decided_by`, and
    `evaluations`: by default the policies the selection considered, in that order, or the
    `evaluations` given. Each entry says whether the selection `considered` the policy (all
    of them when `considered` is None) and whether it `decided` the outcome. The value is
    None where nothing applies.
    """
    by_position = {policy.position: policy for policy in policies}
    entries: list[dict[str, object]] = []
    for evaluation in selection.evaluations if evaluations is None else evaluations:
        policy = by_position[evaluation.position]
        entries.append(
            {
                "position": evaluation.position,
                "push_profile": evaluation.push_profile,
                "auth_profile": policy.auth_profile,
                "attribute": policy.attribute,
                "values": list(policy.values),
                "matched": evaluation.matched,
                "explanation": evaluation.explanation,
                "considered": considered is None or evaluation.position in considered,
                "decided": evaluation.position == selection.policy,
            }
        )

    return {
        "method": selection.method,
        "push_profile": selection.push_profile,
        "policy": selection.policy,
        "decided_by": selection.decided_by,
        "evaluations": entries,
    }


def _admit(route: PushProfileRoute, user: DirectoryUser, view: _Policies) -> _Outcome:
    """Decide whether a named push profile admits the user: its chain must contain the
    user's auth profile, and it must have no policies or one of its policies must match."""
    if user.auth_profile not in route.fallback_auth_profiles:
        return _Outcome(None, _not_in_chain(user, route))

    own = view.of_push_profile(route.name)
    if not own:
        return _Outcome(route.name, f"push profile {route.name} has no policies")

    policy = view.first_match(own)
    if policy is not None:
        return _Outcome(route.name, f"policy {policy.position}", policy.position)

    positions = ", ".join(str(policy.position) for policy in own)
    return _Outcome(None, f"none of its policies ({positions}) matches")


def _route_by_policies(
    user: DirectoryUser, push_profiles: Mapping[str, PushProfileRoute], view: _Policies
) -> _Outcome:
    """Route the method `push`: the first matching policy decides, and with no policies at
    all the default push profile is used."""
    policies = view.all()
    if not policies:
        default = next((route for route in push_profiles.values() if route.default), None)
        if default is None:
            return _Outcome(None, "no policies and no default push profile")
        if user.auth_profile not in default.fallback_auth_profiles:
            return _Outcome(None, f"no policies, and default {_not_in_chain(user, default)}")
        return _Outcome(default.name, "no policies")

    policy = view.first_match(policies)
    if policy is None:
        return _Outcome(None, "no policy matches")

    # `validate_policy` rejects a policy whose auth profile is not in its push profile's
    # chain, and a matching policy has the user's auth profile. So this branch runs only for
    # policies saved before a push profile changed, and the first match still decides: the
    # method admits no user.
    route = push_profiles.get(policy.push_profile)
    if route is None:
        return _Outcome(
            None,
            f"policy {policy.position} matches but push profile "
            f"{policy.push_profile} does not exist",
        )
    if user.auth_profile not in route.fallback_auth_profiles:
        return _Outcome(None, f"policy {policy.position} matches but {_not_in_chain(user, route)}")
    return _Outcome(route.name, f"policy {policy.position}", policy.position)


def _not_in_chain(user: DirectoryUser, route: PushProfileRoute) -> str:
    chain = ", ".join(route.fallback_auth_profiles)
    return (
        f"push profile {route.name} does not have the user's auth profile {user.auth_profile} "
        f"among its fallback auth profiles ({chain})"
    )
