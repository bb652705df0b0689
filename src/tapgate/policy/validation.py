"""Checks a policy must pass before it is saved (`tapgate apply`, the CLI, the console).

Every check raises at save time what would otherwise surface at login time as a policy that
silently never matches. Messages name the policy by its 1-based position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tapgate.errors import ObjectError, PolicyValueError
from tapgate.policy.matching import compile_value
from tapgate.policy.model import Policy, PushProfileRoute

__all__ = ["POLICY_ATTRIBUTES", "canonical_attribute", "validate_policies", "validate_policy"]

# The attributes a policy may test, spelled as the documentation and `tapgate export` spell them.
POLICY_ATTRIBUTES = (
    "memberOf",
    "department",
    "title",
    "mail",
    "username",
    "group_name",
    "email",
    "mobile",
    "displayName",
)

_BY_LOWER_NAME = {name.lower(): name for name in POLICY_ATTRIBUTES}


def canonical_attribute(attribute: str) -> str:
    """Return the standard spelling of a policy attribute given in any case.

    Raises ObjectError, listing the allowed attributes, when `attribute` is not one of them.
    """
    canonical = _BY_LOWER_NAME.get(attribute.lower())
    if canonical is None:
        allowed = ", ".join(POLICY_ATTRIBUTES)
        raise ObjectError(f"attribute {attribute!r} is not supported; use one of: {allowed}")
    return canonical


def validate_policy(policy: Policy, push_profiles: Mapping[str, PushProfileRoute]) -> None:
    """Raise ObjectError, or PolicyValueError for a value, unless `policy` can be saved.

    Checks the attribute, that the push profile exists, that the policy's auth profile is one
    of that push profile's fallback auth profiles, and that every value compiles. A `memberOf`
    value that starts like a DN (`CN=...`) must parse as one, so a typo is not read as a
    group name.
    """
    prefix = f"policy {policy.position}"
    try:
        canonical_attribute(policy.attribute)
    except ObjectError as error:
        raise ObjectError(f"{prefix}: {error}") from error

    if not policy.values:
        raise ObjectError(f"{prefix}: values is empty; give at least one value to match")

    route = push_profiles.get(policy.push_profile)
    if route is None:
        raise ObjectError(f"{prefix}: push profile {policy.push_profile!r} not found")
    if policy.auth_profile not in route.fallback_auth_profiles:
        chain = ", ".join(route.fallback_auth_profiles)
        raise ObjectError(
            f"{prefix}: auth profile {policy.auth_profile!r} is not one of the fallback auth "
            f"profiles of push profile {route.name!r} ({chain}); add it there or use one of those"
        )

    is_member_of = policy.attribute.lower() == "memberof"
    for value in policy.values:
        try:
            matcher = compile_value(value)
        except PolicyValueError as error:
            raise PolicyValueError(f"{prefix}: {error}", value, error.position) from error

        if is_member_of and matcher.dn_error is not None:
            raise PolicyValueError(
                f"{prefix}: memberOf value {value!r} is not a valid DN: {matcher.dn_error} "
                f"at offset {matcher.dn_error.position}; escape a ',' in a name as '\\,'",
                value,
                matcher.dn_error.position,
            )


def validate_policies(
    policies: Sequence[Policy], push_profiles: Mapping[str, PushProfileRoute]
) -> None:
    """Validate each policy, and that positions are unique and start at 1; raise on the first
    problem."""
    seen: set[int] = set()
    for policy in policies:
        if policy.position < 1:
            raise ObjectError(f"policy position {policy.position} is invalid; positions start at 1")
        if policy.position in seen:
            raise ObjectError(f"policy position {policy.position} is used twice")
        seen.add(policy.position)
        validate_policy(policy, push_profiles)
