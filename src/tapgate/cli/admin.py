"""`tapgate admin`: console administrators (create, list, password, disable, enable, reset devices)."""

from __future__ import annotations

import json

import click
from sqlalchemy import func, select

from tapgate.audit import record_audit
from tapgate.cli.common import (
    Context,
    config_option,
    handle_errors,
    read_stdin_line,
    run,
    with_context,
)
from tapgate.clock import SystemClock
from tapgate.directory.passwords import hash_password
from tapgate.errors import NotFoundError, ObjectError
from tapgate.secret import Secret
from tapgate.store.models import AdminRow, DeviceRow
from tapgate.web.admin.accounts import ADMIN_AUTH_PROFILE, check_admin_password, create_admin

password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    required=True,
    help="Read the password from standard input (one line); it is never taken as an argument.",
)


def _read_password() -> Secret:
    line = read_stdin_line("the password").rstrip("\r\n")
    if not line:
        raise ObjectError("--password-stdin read an empty password; pipe the password in")
    check_admin_password(line)
    return Secret(line)


async def _admin(context: Context, name: str) -> AdminRow:
    async with context.database.read() as session:
        row = (await session.scalars(select(AdminRow).where(AdminRow.name == name))).first()
    if row is None:
        raise NotFoundError(
            f"administrator {name!r} does not exist; create it with tapgate admin create"
        )
    return row


@click.group()
def admin() -> None:
    """Manage administrators of the web console."""


@admin.command("create")
@click.argument("name")
@password_stdin_option
@config_option
@handle_errors
def admin_create(name: str, password_stdin: bool, config_file: str | None) -> None:
    """Create administrator NAME; at the first console sign-in they enroll a phone."""
    password = _read_password()

    async def body(context: Context) -> tuple[str, str]:
        async with context.database.write() as session:
            row = await create_admin(
                session, name, password, SystemClock().now(), "tapgate admin create"
            )
            return row.id, context.settings.public_url

    admin_id, public_url = run(with_context(config_file, body))
    click.echo(
        f"created administrator {name} (id {admin_id}); sign in at {public_url}/admin to enroll "
        "a phone"
    )


@admin.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@config_option
@handle_errors
def admin_list(as_json: bool, config_file: str | None) -> None:
    """List administrators with their number of active phones."""

    async def body(context: Context) -> list[dict[str, object]]:
        async with context.database.read() as session:
            admins = (await session.scalars(select(AdminRow).order_by(AdminRow.name))).all()
            counts = dict(
                (
                    await session.execute(
                        select(DeviceRow.user_id, func.count())
                        .where(
                            DeviceRow.auth_profile == ADMIN_AUTH_PROFILE,
                            DeviceRow.revoked_at.is_(None),
                        )
                        .group_by(DeviceRow.user_id)
                    )
                ).all()
            )
        return [
            {
                "name": row.name,
                "id": row.id,
                "created_at": row.created_at.isoformat(),
                "disabled": row.disabled,
                "devices": int(counts.get(row.id, 0)),
            }
            for row in admins
        ]

    records = run(with_context(config_file, body))
    if as_json:
        click.echo(json.dumps(records))
        return
    for record in records:
        state = "disabled" if record["disabled"] else "active"
        click.echo(
            f"{record['name']}  {state}  phones={record['devices']}  created={record['created_at']}"
        )


@admin.command("password")
@click.argument("name")
@password_stdin_option
@config_option
@handle_errors
def admin_password(name: str, password_stdin: bool, config_file: str | None) -> None:
    """Set a new password for administrator NAME."""
    password = _read_password()

    async def body(context: Context) -> None:
        row = await _admin(context, name)
        password_hash = await hash_password(password)
        async with context.database.write() as session:
            stored = await session.get(AdminRow, row.id)
            if stored is not None:
                stored.password_hash = password_hash
                await record_audit(
                    session,
                    "admin_change",
                    actor="tapgate admin password",
                    outcome="applied",
                    details={"change": f"set the password of administrator {name}"},
                )

    run(with_context(config_file, body))
    click.echo(f"password of administrator {name} changed")


def _set_disabled(name: str, disabled: bool, config_file: str | None) -> None:
    async def body(context: Context) -> None:
        row = await _admin(context, name)
        async with context.database.write() as session:
            stored = await session.get(AdminRow, row.id)
            if stored is not None:
                stored.disabled = disabled
                command, change = ("disable", "disabled") if disabled else ("enable", "enabled")
                await record_audit(
                    session,
                    "admin_change",
                    actor=f"tapgate admin {command}",
                    outcome="applied",
                    details={"change": f"{change} administrator {name}"},
                )

    run(with_context(config_file, body))


@admin.command("disable")
@click.argument("name")
@config_option
@handle_errors
def admin_disable(name: str, config_file: str | None) -> None:
    """Stop administrator NAME from signing in to the console."""
    _set_disabled(name, True, config_file)
    click.echo(f"administrator {name} disabled")


@admin.command("enable")
@click.argument("name")
@config_option
@handle_errors
def admin_enable(name: str, config_file: str | None) -> None:
    """Let a disabled administrator NAME sign in again."""
    _set_disabled(name, False, config_file)
    click.echo(f"administrator {name} enabled")


@admin.command("reset-devices")
@click.argument("name")
@config_option
@handle_errors
def admin_reset_devices(name: str, config_file: str | None) -> None:
    """Revoke every phone of administrator NAME (a lost phone); they enroll one at the next sign-in."""

    async def body(context: Context) -> int:
        row = await _admin(context, name)
        now = SystemClock().now()
        async with context.database.write() as session:
            devices = (
                await session.scalars(
                    select(DeviceRow).where(
                        DeviceRow.auth_profile == ADMIN_AUTH_PROFILE,
                        DeviceRow.user_id == row.id,
                        DeviceRow.revoked_at.is_(None),
                    )
                )
            ).all()
            for device in devices:
                device.revoked_at = now
                await record_audit(
                    session,
                    "device_revoked",
                    username=name,
                    auth_profile=ADMIN_AUTH_PROFILE,
                    device_id=device.id,
                    outcome="revoked",
                    reason="administrator devices reset",
                    actor="tapgate admin reset-devices",
                )
        return len(devices)

    count = run(with_context(config_file, body))
    click.echo(
        f"revoked {count} phones of administrator {name}; they can no longer approve sign-ins"
    )
