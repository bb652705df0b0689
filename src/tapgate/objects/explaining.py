"""Explain which method and push profile a user would get, for the CLI, the console and the
console's JSON endpoint alike."""

from __future__ import annotations

from typing import Any

from tapgate.directory.base import DirectoryUser
from tapgate.objects.runtime import Snapshot
from tapgate.policy.selection import PUSH_METHOD, auth_profile_order, explain

__all__ = ["explain_login"]


async def explain_login(
    snapshot: Snapshot, username: str, application: str | None
) -> dict[str, Any]:
    """Resolve `username` through the auth profiles the methods name, then explain selection.

    The result has `username`, `auth_profile` (None when no auth profile finds the user),
    `lookups` (each auth profile asked, in order, with the attributes it returned), and the
    keys of `tapgate.policy.selection.explain`. Raises NotFoundError for an unknown
    application and DirectoryUnavailable when a directory cannot be reached.
    """
    methods: tuple[str, ...] = (PUSH_METHOD,)
    if application:
        methods = snapshot.application(application).methods

    lookups: list[dict[str, Any]] = []
    user: DirectoryUser | None = None
    for name in auth_profile_order(methods, snapshot.routes, list(snapshot.auth_profiles)):
        profile = snapshot.auth_profiles.get(name)
        if profile is None:
            continue
        user = await profile.find_user(username)
        lookups.append(
            {
                "auth_profile": name,
                "found": user is not None,
                "attributes": {}
                if user is None
                else {key: list(values) for key, values in sorted(user.attributes.items())},
            }
        )
        if user is not None:
            break

    if user is None:
        return {
            "username": username,
            "auth_profile": None,
            "lookups": lookups,
            "method": None,
            "push_profile": None,
            "policy": None,
            "decided_by": "no auth profile of these methods knows the user",
            "evaluations": [],
        }
    result = explain(methods, user, snapshot.routes, snapshot.policies)
    return {
        "username": user.username,
        "auth_profile": user.auth_profile,
        "lookups": lookups,
        **result,
    }
