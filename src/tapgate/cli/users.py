"""`tapgate user add`, `client add`, `enroll` and `audit`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
import segno
from sqlalchemy import select

from tapgate.api.clients import add_client, revoke_client
from tapgate.audit import EVENTS, audit_to_dict, list_audit, record_audit
from tapgate.cli.common import (
    Context,
    config_option,
    handle_errors,
    read_stdin_line,
    run,
    with_context,
)
from tapgate.clock import SystemClock
from tapgate.devices.enrollment import IssuedEnrollment, issue_enrollment
from tapgate.directory.base import DirectoryUser
from tapgate.directory.local import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    NewLocalUser,
    add_local_user,
    valid_email,
    valid_mobile,
)
from tapgate.errors import NotFoundError, ObjectError
from tapgate.objects.runtime import ObjectCache
from tapgate.retention import PRUNE_DETAILS
from tapgate.secret import Secret
from tapgate.store.models import ApiClientRow


@click.group()
def user() -> None:
    """Manage users of local auth profiles."""


@user.command("add")
@click.argument("username")
@click.option(
    "--auth-profile", "auth_profile", required=True, help="Local auth profile to add the user to."
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
@click.option("--first-name", default=None, help="First name, shown on the admin pages.")
@click.option("--last-name", default=None, help="Last name, shown on the admin pages.")
@click.option("--email", default=None, help="Email address; policies can match it as email.")
@click.option("--mobile", default=None, help="Mobile number as given, e.g. 05554443322.")
@click.option("--group", "groups", multiple=True, help="Group name; repeat for several.")
@click.option("--expires", default=None, help="Expiration date (YYYY-MM-DD, UTC).")
@config_option
@handle_errors
def user_add(
    username: str,
    auth_profile: str,
    password_stdin: bool,
    first_name: str | None,
    last_name: str | None,
    email: str | None,
    mobile: str | None,
    groups: tuple[str, ...],
    expires: str | None,
    config_file: str | None,
) -> None:
    """Add USERNAME to a local auth profile; without --password-stdin the user has no password."""
    password = None
    if password_stdin:
        line = read_stdin_line("the password").rstrip("\r\n")
        if not line:
            raise ObjectError("--password-stdin read an empty password; pipe the password in")
        check_password_length(line)
        password = Secret(line)
    if email is not None and not valid_email(email):
        raise ObjectError(f"--email {email!r} is not an email address; it must contain @")
    if mobile is not None and not valid_mobile(mobile):
        raise ObjectError(
            f"--mobile {mobile!r} is not a phone number; use digits, spaces and + - ( ), "
            "such as 05554443322"
        )
    expires_at = None
    if expires:
        try:
            expires_at = datetime.fromisoformat(expires).replace(tzinfo=UTC)
        except ValueError as exc:
            raise ObjectError(f"--expires {expires!r} is not a date; use YYYY-MM-DD") from exc
    new = NewLocalUser(
        username=username,
        password=password,
        first_name=first_name,
        last_name=last_name,
        email=email,
        mobile=mobile,
        groups=groups,
        expires_at=expires_at,
    )

    async def body(context: Context) -> str:
        now = SystemClock().now()
        async with context.database.write() as session:
            row = await add_local_user(session, auth_profile, new, now)
            await record_audit(
                session,
                "admin_change",
                username=row.username,
                auth_profile=auth_profile,
                actor="tapgate user add",
                outcome="applied",
                details={"change": "created user"},
            )
            return row.id

    user_id = run(with_context(config_file, body))
    click.echo(f"added user {username} to {auth_profile} (id {user_id})")


@user.command("list")
@click.option(
    "--auth-profile",
    "auth_profile",
    default=None,
    help="Local auth profile to list; may be left out when there is only one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@handle_errors
def user_list(auth_profile: str | None, as_json: bool, config_file: str | None) -> None:
    """List the users of a local auth profile."""
    from sqlalchemy import select

    from tapgate.store.models import AuthProfileRow, LocalUserRow

    async def body(context: Context) -> list[dict[str, object]]:
        async with context.database.read() as session:
            local_profiles = (
                await session.scalars(
                    select(AuthProfileRow)
                    .where(AuthProfileRow.kind == "local")
                    .order_by(AuthProfileRow.name)
                )
            ).all()
            if auth_profile is None:
                if len(local_profiles) != 1:
                    names = ", ".join(p.name for p in local_profiles) or "none"
                    raise NotFoundError(
                        f"there are {len(local_profiles)} local auth profiles ({names}); "
                        "name one with --auth-profile"
                    )
                profile: AuthProfileRow | None = local_profiles[0]
            else:
                profile = next((p for p in local_profiles if p.name == auth_profile), None)
            if profile is None:
                raise NotFoundError(f"local auth profile {auth_profile!r} does not exist")
            rows = (
                await session.scalars(
                    select(LocalUserRow)
                    .where(LocalUserRow.auth_profile_id == profile.id)
                    .order_by(LocalUserRow.username_key)
                )
            ).all()
        return [
            {
                "username": r.username,
                "first_name": r.first_name,
                "last_name": r.last_name,
                "email": r.email,
                "mobile": r.mobile,
                "groups": list(r.groups or []),
                "disabled": r.disabled,
                "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                "has_password": r.password_hash is not None,
            }
            for r in rows
        ]

    users = run(with_context(config_file, body))
    if as_json:
        click.echo(json.dumps(users, ensure_ascii=False))
        return
    rows = [
        [
            str(entry["username"]),
            " ".join(str(part) for part in (entry["first_name"], entry["last_name"]) if part)
            or "-",
            str(entry["email"] or "-"),
            str(entry["mobile"] or "-"),
            "disabled" if entry["disabled"] else "active",
        ]
        for entry in users
    ]
    echo_table(["USERNAME", "NAME", "EMAIL", "MOBILE", "STATE"], rows)


@click.group()
def client() -> None:
    """Manage API clients."""


@client.command("add")
@click.argument("application")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@handle_errors
def client_add(application: str, as_json: bool, config_file: str | None) -> None:
    """Create an API client for APPLICATION; the secret is shown only now."""

    async def body(context: Context) -> tuple[str, str]:
        async with context.database.write() as session:
            created = await add_client(
                session, context.keyring, application, SystemClock().now(), "tapgate client add"
            )
            return created.client_id, created.client_secret

    client_id, client_secret = run(with_context(config_file, body))
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "client_secret": client_secret}))
    else:
        click.echo(
            f"client_id: {client_id}\nclient_secret: {client_secret}\n(the secret is not shown again)"
        )


@client.command("list")
@click.argument("application", required=False)
@click.option("--all", "show_all", is_flag=True, help="Include revoked clients.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@handle_errors
def client_list(
    application: str | None, show_all: bool, as_json: bool, config_file: str | None
) -> None:
    """List API clients (of APPLICATION, when given); secrets are never shown."""

    async def body(context: Context) -> list[dict[str, object]]:
        query = select(ApiClientRow).order_by(ApiClientRow.created_at)
        if application is not None:
            query = query.where(ApiClientRow.application == application)
        if not show_all:
            query = query.where(ApiClientRow.revoked_at.is_(None))
        async with context.database.read() as session:
            rows = (await session.scalars(query)).all()
        return [
            {
                "client_id": row.client_id,
                "application": row.application,
                "created_at": row.created_at.isoformat(),
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in rows
        ]

    listed = run(with_context(config_file, body))
    if as_json:
        click.echo(json.dumps(listed, ensure_ascii=False))
        return
    rows = [
        [
            str(entry["client_id"]),
            str(entry["application"]),
            str(entry["created_at"]),
            f"revoked {entry['revoked_at']}" if entry["revoked_at"] else "active",
        ]
        for entry in listed
    ]
    echo_table(["CLIENT ID", "APPLICATION", "CREATED", "STATE"], rows)


@client.command("revoke")
@click.argument("client_id")
@config_option
@handle_errors
def client_revoke(client_id: str, config_file: str | None) -> None:
    """Revoke CLIENT_ID at once (a leaked secret): its tokens stop working now."""

    async def body(context: Context) -> str:
        async with context.database.write() as session:
            revoked = await revoke_client(session, client_id, SystemClock().now())
            if revoked is None:
                raise NotFoundError(
                    f"no active API client {client_id!r}; see tapgate client list --all"
                )
            await record_audit(
                session,
                "admin_change",
                application=revoked.application,
                actor="tapgate client revoke",
                outcome="applied",
                details={"change": f"revoked API client {client_id}"},
            )
            return revoked.application

    application = run(with_context(config_file, body))
    click.echo(
        f"revoked API client {client_id} of {application}; create a new one with "
        f"tapgate client add {application}"
    )


async def find_user(
    context: Context, username: str, auth_profile: str | None, *, check_account: bool = True
) -> DirectoryUser:
    found, problem = await find_user_and_problem(context, username, auth_profile)
    if check_account and problem is not None:
        raise ObjectError(f"user {found.username!r} cannot enroll: {problem}")
    return found


async def find_user_and_problem(
    context: Context, username: str, auth_profile: str | None
) -> tuple[DirectoryUser, str | None]:
    """Return the user and the reason their account cannot log in now (None when it can)."""
    cache = ObjectCache(context.database, context.keyring, SystemClock())
    try:
        snapshot = await cache.current()
        names = [auth_profile] if auth_profile else list(snapshot.auth_profiles)
        for name in names:
            profile = snapshot.auth_profiles.get(name)
            if profile is None:
                raise NotFoundError(f"auth profile {name!r} does not exist")
            found = await profile.find_user(username)
            if found is not None:
                return found, await profile.account_problem(found, SystemClock().now())
        searched = (
            f"auth profile {names[0]!r}"
            if len(names) == 1
            else f"auth profiles {', '.join(map(repr, names)) or '(none)'}"
        )
        raise NotFoundError(
            f"user {username!r} not found in {searched}; "
            "check the spelling (tapgate user list shows a local auth profile's users) or add "
            "the user first"
        )
    finally:
        await cache.close()


@click.command()
@click.argument("username")
@click.option(
    "--auth-profile",
    "auth_profile",
    default=None,
    help="Auth profile of the user (default: the first that knows them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--qr", is_flag=True, help="Print the QR code in the terminal.")
@click.option(
    "--png",
    "png_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the QR code as PNG.",
)
@config_option
@handle_errors
def enroll(
    username: str,
    auth_profile: str | None,
    as_json: bool,
    qr: bool,
    png_file: str | None,
    config_file: str | None,
) -> None:
    """Issue a one-time enrollment for USERNAME and print its URL."""

    async def body(context: Context) -> IssuedEnrollment:
        found = await find_user(context, username, auth_profile)
        async with context.database.write() as session:
            return await issue_enrollment(
                session,
                context.keyring,
                context.settings.public_url,
                found,
                SystemClock().now(),
                issued_by="tapgate enroll",
            )

    issued = run(with_context(config_file, body))
    code = segno.make(issued.url, error="m")
    if png_file:
        code.save(png_file, scale=6)
    if as_json:
        click.echo(
            json.dumps({"enrollment_url": issued.url, "expires_at": issued.expires_at.isoformat()})
        )
        return
    click.echo(issued.url)
    click.echo(f"expires at {issued.expires_at.isoformat()}", err=True)
    if qr:
        code.terminal(compact=True)


# The longest --since duration, 100 years: it reaches past any audit record and keeps the
# subtraction from now inside datetime's range (years 1 to 9999).
_MAX_SINCE_DAYS = 36_500
# SQLite and PostgreSQL take LIMIT as a signed 64-bit integer; a billion stays well inside it.
_MAX_AUDIT_LIMIT = 1_000_000_000


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:-1].isascii() and value[:-1].isdigit() and value[-1] in units:
        digits = value[:-1]
        # The length test comes first, since int() raises ValueError past 4,300 digits.
        if len(digits) > 20 or int(digits) * units[value[-1]] > _MAX_SINCE_DAYS * 86400:
            short_value = value if len(value) <= 40 else f"{value[:20]}...{value[-20:]}"
            raise ObjectError(
                f"--since {short_value!r} is out of range; a duration must be from 0s to "
                f"{_MAX_SINCE_DAYS}d (100 years), or give an ISO time such as 2026-01-31T08:00"
            )
        return SystemClock().now() - timedelta(seconds=int(digits) * units[value[-1]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ObjectError(
            f"--since {value!r} is neither a duration (30m, 2h, 7d) nor an ISO time"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.command()
@click.option("--user", "username", default=None, help="Only records of this username.")
@click.option(
    "--since", default=None, help="Only records since an ISO time or a duration such as 2h."
)
@click.option("--outcome", default=None, help="Only records with this outcome.")
@click.option("--event", default=None, help="Only records of this event.")
@click.option(
    "--limit",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1, max=_MAX_AUDIT_LIMIT),
    help="Number of newest records to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@config_option
@handle_errors
def audit(
    username: str | None,
    since: str | None,
    outcome: str | None,
    event: str | None,
    limit: int,
    as_json: bool,
    config_file: str | None,
) -> None:
    """List audit records, oldest first."""
    since_time = _parse_since(since)
    if event is not None and event not in EVENTS:
        raise click.BadParameter(
            f"unknown event {event!r}; the events are {', '.join(EVENTS)}", param_hint="--event"
        )

    async def body(context: Context) -> list[dict[str, object]]:
        async with context.database.read() as session:
            rows = await list_audit(
                session,
                username=username,
                since=since_time,
                outcome=outcome,
                event=event,
                limit=limit,
            )
            return [audit_to_dict(r) for r in rows]

    records = run(with_context(config_file, body))
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False))
        return
    for record in records:
        fields = (
            "time",
            "event",
            "username",
            "application",
            "transaction_id",
            "outcome",
            "reason",
            "source_ip",
        )
        line = " ".join(f"{k}={record[k]}" for k in fields if record[k])
        details = record["details"] if isinstance(record["details"], dict) else {}
        if record.get("actor"):
            line += f" actor={record['actor']!r}"
        if details.get("limit"):
            line += f" limit={details['limit']}"
        if details.get("change"):
            line += f" change={details['change']!r}"
        if record["event"] == "records_pruned":
            line += "".join(f" {key}={details.get(key)}" for key in PRUNE_DETAILS)
        click.echo(line)


def echo_table(header: list[str], rows: list[list[str]]) -> None:
    """Print `rows` under `header` in left-aligned columns, or a note when there are none."""
    if not rows:
        click.echo("(none)")
        return
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def check_password_length(password: str) -> None:
    """Raise ObjectError for a local user's password of the wrong length (never echoing it)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ObjectError(
            f"the password has {len(password)} characters; a local user's password must have "
            f"{MIN_PASSWORD} to {MAX_PASSWORD}"
        )
