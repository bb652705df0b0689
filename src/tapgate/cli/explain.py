"""The work behind `policy explain` and `auth-profile test`."""

from __future__ import annotations

from typing import Any

from tapgate.cli.common import Context
from tapgate.clock import SystemClock
from tapgate.errors import DirectoryUnavailable, NotFoundError
from tapgate.objects.explaining import explain_login
from tapgate.objects.runtime import ObjectCache
from tapgate.secret import Secret


async def explain_user(context: Context, username: str, application: str | None) -> dict[str, Any]:
    cache = ObjectCache(context.database, context.keyring, SystemClock())
    try:
        result = await explain_login(await cache.current(), username, application)
    finally:
        await cache.close()
    if result["auth_profile"] is None:
        raise NotFoundError(
            f"no auth profile of {application or 'the method push'} knows user {username!r}"
        )
    return result


async def test_auth_profile(
    context: Context, name: str, username: str, password: str | None
) -> tuple[list[str], bool]:
    cache = ObjectCache(context.database, context.keyring, SystemClock())
    lines: list[str] = []
    try:
        snapshot = await cache.current()
        profile = snapshot.auth_profiles.get(name)
        if profile is None:
            raise NotFoundError(f"auth profile {name!r} does not exist")
        lines.append(f"auth profile {name} (type {profile.kind})")
        tester = getattr(profile, "test_connection", None)
        if tester is not None:
            lines.extend(await tester())
        try:
            user = await profile.find_user(username)
        except DirectoryUnavailable as exc:
            lines.append(f"directory unavailable: {exc}")
            return lines, False
        if user is None:
            lines.append(f"user {username!r}: not found")
            return lines, False
        lines.append(f"user {user.username!r}: found, id {user.user_id}")
        for key, values in sorted(user.attributes.items()):
            lines.append(f"  {key}: {', '.join(values)}")
        problem = await profile.account_problem(user, SystemClock().now())
        lines.append(f"account state: {problem or 'ok'}")
        ok = problem is None
        if password is not None:
            reason = await profile.verify_password(user, Secret(password))
            lines.append(f"password: {'ok' if reason is None else reason}")
            ok = ok and reason is None
        return lines, ok
    finally:
        await cache.close()
