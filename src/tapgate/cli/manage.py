"""`tapgate policy list|add|move|remove`, `tapgate device list|revoke` and user maintenance."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import delete, select, update

from tapgate.audit import record_audit
from tapgate.cli.common import (
    Context,
    config_option,
    handle_errors,
    read_stdin_line,
    run,
    with_context,
)
from tapgate.cli.objects import policy
from tapgate.cli.users import check_password_length, find_user, find_user_and_problem, user
from tapgate.clock import SystemClock
from tapgate.directory.base import normalize_username
from tapgate.directory.passwords import hash_password
from tapgate.errors import NotFoundError, ObjectError
from tapgate.objects.document import ObjectSet
from tapgate.objects.repository import apply_objects, load_objects
from tapgate.objects.specs import PolicySpec, parse_policy
from tapgate.policy.validation import POLICY_ATTRIBUTES
from tapgate.push import ratelimit
from tapgate.secret import Secret
from tapgate.store.models import AuthProfileRow, DeviceRow, LocalUserRow, UserLockRow


def _policy_rows(policies: list[PolicySpec]) -> list[dict[str, Any]]:
    return [
        {
            "position": i,
            "push_profile": p.push_profile,
            "auth_profile": p.auth_profile,
            "attribute": p.attribute,
            "values": list(p.values),
        }
        for i, p in enumerate(policies, start=1)
    ]


async def _replace_policies(context: Context, change: Any, actor: str) -> list[PolicySpec]:
    async with context.database.write() as session:
        stored = await load_objects(session)
        policies: list[PolicySpec] = change(list(stored.policies or []))
        await apply_objects(
            session, context.keyring, ObjectSet(policies=policies), prune=False, actor=actor
        )
        return policies


@policy.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@handle_errors
def policy_list(as_json: bool, config_file: str | None) -> None:
    """List policies in priority order (first match wins)."""

    async def body(context: Context) -> list[PolicySpec]:
        async with context.database.read() as session:
            return list((await load_objects(session)).policies or [])

    rows = _policy_rows(run(with_context(config_file, body)))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        click.echo(
            f"{row['position']}. {row['push_profile']} <- {row['auth_profile']} "
            f"{row['attribute']} in {row['values']}"
        )


@policy.command("add")
@click.option("--push-profile", required=True, help="Push profile the matching users get.")
@click.option("--auth-profile", required=True, help="Auth profile whose users this policy matches.")
@click.option(
    "--attribute",
    required=True,
    help=f"Attribute to match, in any case: {', '.join(POLICY_ATTRIBUTES)}.",
)
@click.option(
    "--value",
    "values",
    multiple=True,
    required=True,
    help="Exact, wildcard (*) or /regex/; repeat for several.",
)
@click.option("--position", type=int, default=None, help="1-based position; default: last.")
@config_option
@handle_errors
def policy_add(
    push_profile: str,
    auth_profile: str,
    attribute: str,
    values: tuple[str, ...],
    position: int | None,
    config_file: str | None,
) -> None:
    """Add a policy."""
    spec = parse_policy(
        {
            "push_profile": push_profile,
            "auth_profile": auth_profile,
            "attribute": attribute,
            "values": list(values),
        },
        0,
    )

    def change(policies: list[PolicySpec]) -> list[PolicySpec]:
        at = len(policies) if position is None else position - 1
        if not 0 <= at <= len(policies):
            raise ObjectError(
                f"--position {position} is out of range; use 1 to {len(policies) + 1}"
            )
        policies.insert(at, spec)
        return policies

    result = run(
        with_context(config_file, lambda c: _replace_policies(c, change, "tapgate policy add"))
    )
    click.echo(f"added policy at position {result.index(spec) + 1}")


@policy.command("move")
@click.argument("position", type=int)
@click.argument("to", type=int)
@config_option
@handle_errors
def policy_move(position: int, to: int, config_file: str | None) -> None:
    """Move the policy at POSITION to position TO."""

    def change(policies: list[PolicySpec]) -> list[PolicySpec]:
        for value in (position, to):
            if not 1 <= value <= len(policies):
                raise ObjectError(
                    f"position {value} is out of range; there are {len(policies)} policies"
                )
        policies.insert(to - 1, policies.pop(position - 1))
        return policies

    run(with_context(config_file, lambda c: _replace_policies(c, change, "tapgate policy move")))
    click.echo(f"moved policy {position} to {to}")


@policy.command("remove")
@click.argument("position", type=int)
@config_option
@handle_errors
def policy_remove(position: int, config_file: str | None) -> None:
    """Remove the policy at POSITION."""

    def change(policies: list[PolicySpec]) -> list[PolicySpec]:
        if not 1 <= position <= len(policies):
            raise ObjectError(
                f"position {position} is out of range; there are {len(policies)} policies"
            )
        policies.pop(position - 1)
        return policies

    run(with_context(config_file, lambda c: _replace_policies(c, change, "tapgate policy remove")))
    click.echo(f"removed policy {position}")


@click.group()
def device() -> None:
    """List and revoke enrolled devices."""


@device.command("list")
@click.argument("username")
@click.option(
    "--auth-profile",
    default=None,
    help="Auth profile of the user; default: the first auth profile that has the name.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@handle_errors
def device_list(
    username: str, auth_profile: str | None, as_json: bool, config_file: str | None
) -> None:
    """List the devices of USERNAME."""

    async def body(context: Context) -> list[dict[str, Any]]:
        found = await find_user(context, username, auth_profile, check_account=False)
        async with context.database.read() as session:
            rows = (
                await session.scalars(
                    select(DeviceRow)
                    .where(
                        DeviceRow.auth_profile == found.auth_profile,
                        DeviceRow.user_id == found.user_id,
                    )
                    .order_by(DeviceRow.created_at)
                )
            ).all()
        return [
            {
                "device_id": r.id,
                "name": r.name,
                "platform": r.platform,
                "created_at": r.created_at.isoformat(),
                "last_seen_at": r.last_seen_at.isoformat() if r.last_seen_at else None,
                "revoked": r.revoked_at is not None,
            }
            for r in rows
        ]

    rows = run(with_context(config_file, body))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"{username} has no devices; tapgate enroll USERNAME issues an enrollment link")
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        click.echo(
            f"{row['device_id']}  {row['name']} ({row['platform']})  {state}  enrolled {row['created_at']}"
        )


@device.command("revoke")
@click.argument("device_id")
@config_option
@handle_errors
def device_revoke(device_id: str, config_file: str | None) -> None:
    """Revoke DEVICE_ID at once (a lost phone): it can no longer answer or poll."""

    async def body(context: Context) -> str:
        now = SystemClock().now()
        async with context.database.write() as session:
            row = await session.get(DeviceRow, device_id)
            if row is None:
                raise NotFoundError(
                    f"device {device_id!r} not found; see tapgate device list USERNAME"
                )
            if row.revoked_at is None:
                row.revoked_at = now
            await record_audit(
                session,
                "device_revoked",
                username=row.username,
                auth_profile=row.auth_profile,
                device_id=row.id,
                actor="tapgate device revoke",
                outcome="revoked",
            )
            return row.username

    owner = run(with_context(config_file, body))
    click.echo(f"revoked device {device_id} of {owner}")


async def _local_user(session: Any, auth_profile: str, username: str) -> LocalUserRow:
    query = (
        select(LocalUserRow)
        .join(AuthProfileRow, AuthProfileRow.id == LocalUserRow.auth_profile_id)
        .where(
            AuthProfileRow.name == auth_profile,
            LocalUserRow.username_key == normalize_username(username),
        )
    )
    row = (await session.scalars(query)).first()
    if row is None:
        raise NotFoundError(f"user {username!r} not found in local auth profile {auth_profile!r}")
    return row  # type: ignore[no-any-return]


def _set_user(
    username: str, auth_profile: str, config_file: str | None, change: str, values: dict[str, Any]
) -> None:
    async def body(context: Context) -> None:
        now = SystemClock().now()
        async with context.database.write() as session:
            row = await _local_user(session, auth_profile, username)
            await session.execute(
                update(LocalUserRow)
                .where(LocalUserRow.id == row.id)
                .values(updated_at=now, **values)
            )
            await record_audit(
                session,
                "admin_change",
                username=row.username,
                auth_profile=auth_profile,
                actor=f"tapgate user {change}",
                outcome="applied",
                details={"change": f"{change} user"},
            )

    run(with_context(config_file, body))
    click.echo(f"{change}: {username}")


@user.command("disable")
@click.argument("username")
@click.option("--auth-profile", required=True, help="Local auth profile of the user.")
@config_option
@handle_errors
def user_disable(username: str, auth_profile: str, config_file: str | None) -> None:
    """Disable a local user: logins are rejected with account_disabled."""
    _set_user(username, auth_profile, config_file, "disable", {"disabled": True})


@user.command("enable")
@click.argument("username")
@click.option("--auth-profile", required=True, help="Local auth profile of the user.")
@config_option
@handle_errors
def user_enable(username: str, auth_profile: str, config_file: str | None) -> None:
    """Enable a disabled local user."""
    _set_user(username, auth_profile, config_file, "enable", {"disabled": False})


@user.command("set-password")
@click.argument("username")
@click.option("--auth-profile", required=True, help="Local auth profile of the user.")
@config_option
@handle_errors
def user_set_password(username: str, auth_profile: str, config_file: str | None) -> None:
    """Set a local user's password from standard input (one line)."""
    line = read_stdin_line("the password").rstrip("\r\n")
    if not line:
        raise ObjectError("no password on standard input; pipe the new password in")
    check_password_length(line)
    password_hash = run(hash_password(Secret(line)))
    _set_user(username, auth_profile, config_file, "set-password", {"password_hash": password_hash})


@user.command("show")
@click.argument("username")
@click.option(
    "--auth-profile",
    default=None,
    help="Auth profile of the user; default: the first auth profile that has the name.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@handle_errors
def user_show(
    username: str, auth_profile: str | None, as_json: bool, config_file: str | None
) -> None:
    """Show USERNAME as its auth profile stores it: attributes, account state, push lock and
    devices."""

    async def body(context: Context) -> dict[str, Any]:
        found, problem = await find_user_and_problem(context, username, auth_profile)
        owner = (
            DeviceRow.auth_profile == found.auth_profile,
            DeviceRow.user_id == found.user_id,
        )
        async with context.database.read() as session:
            lock = await session.scalar(
                select(UserLockRow.reason).where(
                    UserLockRow.auth_profile == found.auth_profile,
                    UserLockRow.user_id == found.user_id,
                )
            )
            devices = (
                await session.scalars(
                    select(DeviceRow).where(*owner).order_by(DeviceRow.created_at)
                )
            ).all()
        return {
            "username": found.username,
            "auth_profile": found.auth_profile,
            "user_id": found.user_id,
            "display_name": found.display_name,
            "attributes": {name: list(values) for name, values in sorted(found.attributes.items())},
            "account_problem": problem,
            "push_lock": lock,
            "devices": [
                {
                    "device_id": row.id,
                    "name": row.name,
                    "platform": row.platform,
                    "revoked": row.revoked_at is not None,
                }
                for row in devices
            ],
        }

    user_info = run(with_context(config_file, body))
    if as_json:
        click.echo(json.dumps(user_info, ensure_ascii=False))
        return
    click.echo(f"username: {user_info['username']}")
    click.echo(f"auth profile: {user_info['auth_profile']} (user id {user_info['user_id']})")
    click.echo(f"display name: {user_info['display_name'] or '-'}")
    click.echo(f"account: {user_info['account_problem'] or 'can log in'}")
    click.echo(f"push lock: {user_info['push_lock'] or 'none'}")
    for name, values in user_info["attributes"].items():
        click.echo(f"attribute {name}: {', '.join(values) or '-'}")
    for row in user_info["devices"]:
        state = "revoked" if row["revoked"] else "active"
        click.echo(f"device {row['device_id']}: {row['name']} ({row['platform']}) {state}")
    if not user_info["devices"]:
        click.echo("devices: none; tapgate enroll USERNAME issues an enrollment link")


@user.command("unlock")
@click.argument("username")
@click.option(
    "--auth-profile",
    default=None,
    help="Auth profile of the user; default: the first auth profile that has the name.",
)
@config_option
@handle_errors
def user_unlock(username: str, auth_profile: str | None, config_file: str | None) -> None:
    """Lift the push lock a fraud report put on USERNAME, and forget the user's failed
    passwords, so that neither keeps the user's logins rejected."""

    async def body(context: Context) -> tuple[bool, int]:
        found = await find_user(context, username, auth_profile, check_account=False)
        async with context.database.write() as session:
            result = await session.execute(
                delete(UserLockRow).where(
                    UserLockRow.auth_profile == found.auth_profile,
                    UserLockRow.user_id == found.user_id,
                )
            )
            lifted = getattr(result, "rowcount", 0) > 0
            forgotten = await ratelimit.clear_failures(
                session, ratelimit.user_key(found.auth_profile, found.user_id)
            )
            changes = [
                *(["lifted fraud lock"] if lifted else []),
                *([f"forgot {forgotten} failed passwords"] if forgotten else []),
            ]
            await record_audit(
                session,
                "admin_change",
                username=found.username,
                auth_profile=found.auth_profile,
                actor="tapgate user unlock",
                outcome="applied" if changes else "unchanged",
                details={"change": ", ".join(changes) or "nothing to unlock"},
            )
            return lifted, forgotten

    lifted, forgotten = run(with_context(config_file, body))
    if not lifted and not forgotten:
        click.echo(
            f"{username} had no fraud lock and no failed passwords. A login rejected with "
            "rate_limited after the first factor hit the push profile's rate_limit, which "
            "unlock does not lift: it ends when the window passes (tapgate audit shows "
            "limit=push_rate_limit)."
        )
        return
    done = [
        *(["lifted the fraud lock"] if lifted else []),
        *([f"forgot {forgotten} failed passwords"] if forgotten else []),
    ]
    click.echo(f"unlocked {username}: {' and '.join(done)}")
