"""Parse and cross-check an objects document (the YAML `tapgate apply` reads).

`parse_document` validates each object on its own; `check_references` validates the merged state
(what is stored plus what the file declares), so a file may refer to objects stored earlier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tapgate.delivery.config import DeliveryProviderSpec, parse_delivery_provider
from tapgate.errors import ObjectError, PolicyValueError
from tapgate.folding import fold
from tapgate.objects.specs import (
    MAX_POLICIES,
    ROUTING_METHOD,
    ApplicationSpec,
    AuthProfileSpec,
    PolicySpec,
    PushProfileSpec,
    RadiusClientSpec,
    parse_application,
    parse_auth_profile,
    parse_policy,
    parse_push_profile,
    parse_radius_client,
)
from tapgate.policy.validation import POLICY_ATTRIBUTES

__all__ = ["POLICY_ATTRIBUTES", "SECTIONS", "ObjectSet", "check_references", "parse_document"]

SECTIONS = (
    "auth_profiles",
    "push_profiles",
    "policies",
    "applications",
    "radius_clients",
    "delivery_providers",
)


@dataclass
class ObjectSet:
    """Objects by kind; named kinds keep declaration order, policies keep priority order."""

    auth_profiles: dict[str, AuthProfileSpec] = field(default_factory=dict)
    push_profiles: dict[str, PushProfileSpec] = field(default_factory=dict)
    applications: dict[str, ApplicationSpec] = field(default_factory=dict)
    radius_clients: dict[str, RadiusClientSpec] = field(default_factory=dict)
    policies: list[PolicySpec] | None = None
    delivery_providers: dict[str, DeliveryProviderSpec] = field(default_factory=dict)


def _unique(kind: str, specs: Sequence[Any]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    for spec in specs:
        if spec.name in named:
            raise ObjectError(f"{kind}: the name {spec.name!r} appears twice")
        named[spec.name] = spec
    return named


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key) or []
    if not isinstance(value, list):
        raise ObjectError(f"{key} must be a list")
    return value


def parse_document(document: object) -> ObjectSet:
    if document is None:
        return ObjectSet()
    if not isinstance(document, Mapping):
        raise ObjectError("the objects file must be a mapping of sections")
    for key in document:
        if key not in SECTIONS:
            raise ObjectError(f"unknown section {key!r}; known sections: {', '.join(SECTIONS)}")
    parsed = ObjectSet(
        auth_profiles=_unique(
            "auth_profiles",
            [parse_auth_profile(d, i) for i, d in enumerate(_list(document, "auth_profiles"))],
        ),
        push_profiles=_unique(
            "push_profiles",
            [parse_push_profile(d, i) for i, d in enumerate(_list(document, "push_profiles"))],
        ),
        applications=_unique(
            "applications",
            [parse_application(d, i) for i, d in enumerate(_list(document, "applications"))],
        ),
        radius_clients=_unique(
            "radius_clients",
            [parse_radius_client(d, i) for i, d in enumerate(_list(document, "radius_clients"))],
        ),
        delivery_providers=_unique(
            "delivery_providers",
            [
                parse_delivery_provider(d, i)
                for i, d in enumerate(_list(document, "delivery_providers"))
            ],
        ),
    )
    if "policies" in document:
        if len(_list(document, "policies")) > MAX_POLICIES:
            raise ObjectError(f"policies: at most {MAX_POLICIES} policies are supported")
        parsed.policies = [parse_policy(d, i) for i, d in enumerate(_list(document, "policies"))]
    return parsed


def _check_policy(position: int, policy: PolicySpec, merged: ObjectSet) -> None:
    from tapgate.policy.model import Policy, PushProfileRoute
    from tapgate.policy.validation import validate_policy

    if policy.push_profile not in merged.push_profiles:
        raise ObjectError(
            f"policies[{position}]: push profile {policy.push_profile!r} does not exist"
        )
    if policy.auth_profile not in merged.auth_profiles:
        raise ObjectError(
            f"policies[{position}]: auth profile {policy.auth_profile!r} does not exist"
        )
    routes = {
        name: PushProfileRoute(name, spec.fallback_auth_profiles, spec.default)
        for name, spec in merged.push_profiles.items()
    }
    candidate = Policy(
        position, policy.push_profile, policy.auth_profile, policy.attribute, policy.values
    )
    # validate_policy names the policy as "policy N" in its errors. A document's errors name it
    # by its place in the list, as "policies[N]", so the prefix is rewritten.
    try:
        validate_policy(candidate, routes)
    except PolicyValueError as error:
        raise PolicyValueError(
            _document_prefix(str(error), position), error.value, error.position
        ) from error
    except ObjectError as error:
        raise ObjectError(_document_prefix(str(error), position)) from error


def _document_prefix(message: str, position: int) -> str:
    prefix = f"policy {position}: "
    if message.startswith(prefix):
        return f"policies[{position}]: {message.removeprefix(prefix)}"
    return message


def _comparison_form(value: str) -> str:
    """Return a policy value in the form two values that always match alike share.

    A regular expression is kept as written, because folding it would merge case-sensitive
    escapes such as `\\d` and `\\D`. Wildcards are folded, and exact values are folded with
    whitespace collapsed, as matching compares them.
    """
    from tapgate.policy.matching import compile_value

    # `_check_policy` has compiled every value already, so this never raises.
    kind = compile_value(value).kind
    if kind == "regex":
        return value
    if kind == "wildcard":
        return fold(value)
    return " ".join(fold(value).split())


def _check_policy_program_size(merged: ObjectSet) -> None:
    from tapgate.policy.index import check_program_size
    from tapgate.policy.model import Policy

    check_program_size(
        [
            Policy(position, p.push_profile, p.auth_profile, p.attribute, p.values)
            for position, p in enumerate(merged.policies or [], start=1)
        ]
    )


def check_references(merged: ObjectSet) -> None:
    """Raise ObjectError for any reference the merged objects cannot satisfy."""
    defaults = [p.name for p in merged.push_profiles.values() if p.default]
    if len(defaults) > 1:
        raise ObjectError(
            f"push_profiles: default: true is set on more than one push profile ({', '.join(defaults)}); "
            "keep it on one"
        )
    for profile in merged.push_profiles.values():
        for auth_name in profile.fallback_auth_profiles:
            if auth_name not in merged.auth_profiles:
                raise ObjectError(
                    f"push profile {profile.name!r}: fallback auth profile {auth_name!r} does not exist"
                )
    for application in merged.applications.values():
        for method in application.methods:
            if method != ROUTING_METHOD and method not in merged.push_profiles:
                raise ObjectError(
                    f"application {application.name!r}: method {method!r} is neither a push "
                    f"profile nor {ROUTING_METHOD!r}"
                )
    for client in merged.radius_clients.values():
        target = merged.applications.get(client.application)
        if target is None:
            raise ObjectError(
                f"radius client {client.name!r}: application {client.application!r} does not exist"
            )
        if target.kind != "radius":
            raise ObjectError(
                f"radius client {client.name!r}: application {client.application!r} has type "
                f"{target.kind!r}; a RADIUS client needs an application of type 'radius'"
            )
    if len(merged.policies or []) > MAX_POLICIES:
        raise ObjectError(
            f"policies: {len(merged.policies or [])} policies, more than the maximum of "
            f"{MAX_POLICIES}; remove one before adding another"
        )
    seen: dict[tuple[str, str, str, frozenset[str]], int] = {}
    for position, policy in enumerate(merged.policies or [], start=1):
        _check_policy(position, policy, merged)
        # A repeated policy can never decide anything, so it is almost always a mistake made
        # while adding one that already exists.
        key = (
            policy.push_profile,
            policy.auth_profile,
            policy.attribute.lower(),
            frozenset(_comparison_form(value) for value in policy.values),
        )
        if key in seen:
            raise ObjectError(
                f"policies[{position}]: the same policy as policies[{seen[key]}] "
                f"({policy.push_profile}, {policy.auth_profile}, {policy.attribute}, "
                f"{list(policy.values)}); remove one of them"
            )
        seen[key] = position
    _check_policy_program_size(merged)
