"""Console pages for users of local auth profiles: list, add, edit, disable, reset password."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from tapgate.directory.base import normalize_username
from tapgate.directory.local import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    NewLocalUser,
    add_local_user,
    valid_email,
    valid_mobile,
    validate_username,
)
from tapgate.directory.passwords import hash_password
from tapgate.errors import NotFoundError, ObjectError
from tapgate.secret import Secret
from tapgate.store.models import AuthProfileRow, LocalUserRow
from tapgate.web.admin.changes import record_change
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import AdminDep, AdminIdentity
from tapgate.web.forms import Form, read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.waiting import runtime_of

router = console_router()

MAX_LISTED = 200
_FIELD_LIMITS = {"first_name": 128, "last_name": 128, "email": 256, "mobile": 32}


async def _local_profiles(request: Request) -> list[str]:
    snapshot = await runtime_of(request).objects.current()
    return [name for name, spec in snapshot.objects.auth_profiles.items() if spec.kind == "local"]


@router.get("/admin/users")
async def list_page(request: Request, admin: AdminDep) -> Response:
    runtime = runtime_of(request)
    profiles = await _local_profiles(request)
    chosen = request.query_params.get("auth_profile", "")
    if chosen not in profiles:
        chosen = profiles[0] if profiles else ""
    search = request.query_params.get("q", "").strip()[:256]

    users: list[LocalUserRow] = []
    if chosen:
        query = (
            select(LocalUserRow)
            .join(AuthProfileRow, AuthProfileRow.id == LocalUserRow.auth_profile_id)
            .where(AuthProfileRow.name == chosen)
            .order_by(LocalUserRow.username_key)
            .limit(MAX_LISTED + 1)
        )
        if search:
            query = query.where(LocalUserRow.username_key.contains(normalize_username(search)))
        async with runtime.database.read() as session:
            users = list((await session.scalars(query)).all())
    return render_admin(
        request,
        admin,
        "admin/users.html",
        "users",
        {
            "profiles": profiles,
            "chosen": chosen,
            "search": search,
            "users": users[:MAX_LISTED],
            "truncated": len(users) > MAX_LISTED,
            "now": runtime.clock.now(),
        },
    )


def _values(row: LocalUserRow | None, profile: str) -> dict[str, Any]:
    if row is None:
        return {
            "auth_profile": profile,
            "username": "",
            "first_name": "",
            "last_name": "",
            "email": "",
            "mobile": "",
            "groups": "",
            "expires": "",
            "disabled": False,
        }
    return {
        "auth_profile": profile,
        "username": row.username,
        "first_name": row.first_name or "",
        "last_name": row.last_name or "",
        "email": row.email or "",
        "mobile": row.mobile or "",
        "groups": ", ".join(row.groups or []),
        "expires": row.expires_at.date().isoformat() if row.expires_at else "",
        "disabled": row.disabled,
    }


def _submitted(form: Form, profile: str) -> dict[str, Any]:
    values: dict[str, Any] = {key: form.text(key, 1024) for key in _FIELD_LIMITS}
    values.update(
        auth_profile=profile,
        username=form.text("username", 1024),
        groups=", ".join(form.items("groups")),
        expires=form.text("expires", 32),
        disabled=form.checked("disabled"),
    )
    return values


def _check_fields(values: dict[str, Any], gettext: Any) -> tuple[dict[str, Any], datetime | None]:
    """Return the cleaned optional fields and the expiry, or raise ObjectError with the problem."""
    cleaned: dict[str, Any] = {}
    for key, limit in _FIELD_LIMITS.items():
        value = values[key]
        if len(value) > limit:
            raise ObjectError(
                gettext("%(field)s may have at most %(count)d characters.")
                % {"field": key, "count": limit}
            )
        cleaned[key] = value or None
    if cleaned["email"] and not valid_email(cleaned["email"]):
        raise ObjectError(gettext("The email address must contain @."))
    if cleaned["mobile"] and not valid_mobile(cleaned["mobile"]):
        raise ObjectError(gettext("The mobile number may contain only digits, spaces and + - ( )."))

    expires_at = None
    if values["expires"]:
        try:
            expires_at = datetime.fromisoformat(values["expires"]).replace(tzinfo=UTC)
        except ValueError:
            raise ObjectError(gettext("The expiry date must look like 2026-12-31.")) from None
    return cleaned, expires_at


def _groups(values: dict[str, Any]) -> list[str]:
    return [group.strip() for group in values["groups"].split(",") if group.strip()]


async def _form_page(
    request: Request,
    admin: AdminIdentity,
    values: dict[str, Any],
    user_id: str | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render_admin(
        request,
        admin,
        "admin/user_form.html",
        "users",
        {
            "values": values,
            "user_id": user_id,
            "error": error,
            "profiles": await _local_profiles(request),
            "min_password": MIN_PASSWORD,
        },
        status=status,
    )


def _password_problem(password: str, repeated: str, gettext: Any) -> str | None:
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        return str(
            gettext("The password must have at least %(count)d characters.")
            % {"count": MIN_PASSWORD}
        )
    if password != repeated:
        return str(gettext("The two passwords differ."))
    return None


@router.get("/admin/users/new")
async def new_form(request: Request, admin: AdminDep) -> Response:
    profile = request.query_params.get("auth_profile", "")[:64]
    return await _form_page(request, admin, _values(None, profile), None)


@router.post("/admin/users")
async def add(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    profile = form.text("auth_profile", 64)
    values = _submitted(form, profile)
    password = form.raw("password")
    if password:
        problem = _password_problem(password, form.raw("password_repeat"), _)
        if problem:
            return await _form_page(request, admin, values, None, error=problem, status=400)

    try:
        cleaned, expires_at = _check_fields(values, _)
        new = NewLocalUser(
            username=values["username"],
            password=Secret(password) if password else None,
            groups=_groups(values),
            expires_at=expires_at,
            disabled=values["disabled"],
            **cleaned,
        )
        async with runtime.database.write() as session:
            row = await add_local_user(session, profile, new, runtime.clock.now())
            await record_change(
                session, admin, "created user", username=row.username, auth_profile=profile
            )
    except (ObjectError, NotFoundError) as exc:
        return await _form_page(request, admin, values, None, error=str(exc), status=400)
    flash(request, "success", _("User %(name)s added.") % {"name": row.username})
    return see_other(f"/admin/users/{row.id}")


async def _user(request: Request, user_id: str) -> tuple[LocalUserRow, str] | None:
    async with runtime_of(request).database.read() as session:
        found = (
            await session.execute(
                select(LocalUserRow, AuthProfileRow.name)
                .join(AuthProfileRow, AuthProfileRow.id == LocalUserRow.auth_profile_id)
                .where(LocalUserRow.id == user_id[:36])
            )
        ).first()
    return (found[0], found[1]) if found else None


@router.get("/admin/users/{user_id}")
async def edit_form(request: Request, user_id: str, admin: AdminDep) -> Response:
    found = await _user(request, user_id)
    if found is None:
        _ = translator(request)
        flash(request, "error", _("That user does not exist."))
        return see_other("/admin/users")
    row, profile = found
    return await _form_page(request, admin, _values(row, profile), row.id)


@router.post("/admin/users/{user_id}")
async def update(request: Request, user_id: str, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    found = await _user(request, user_id)
    if found is None:
        flash(request, "error", _("That user does not exist."))
        return see_other("/admin/users")
    form = await read_form(request)
    values = _submitted(form, found[1])

    try:
        cleaned, expires_at = _check_fields(values, _)
        username = validate_username(values["username"])
        async with runtime.database.write() as session:
            row = await session.get(LocalUserRow, found[0].id)
            if row is None:
                raise NotFoundError("user not found")
            key = normalize_username(username)
            other_user = (
                await session.scalars(
                    select(LocalUserRow.id).where(
                        LocalUserRow.auth_profile_id == row.auth_profile_id,
                        LocalUserRow.username_key == key,
                        LocalUserRow.id != row.id,
                    )
                )
            ).first()
            if other_user is not None:
                raise ObjectError(_("Another user of this auth profile already has that username."))
            old_name = row.username
            row.username, row.username_key = username, key
            row.first_name, row.last_name = cleaned["first_name"], cleaned["last_name"]
            row.email, row.mobile = cleaned["email"], cleaned["mobile"]
            row.groups, row.expires_at, row.disabled = (
                _groups(values),
                expires_at,
                values["disabled"],
            )
            row.updated_at = runtime.clock.now()
            change = (
                "updated user" if old_name == username else f"renamed user {old_name} to {username}"
            )
            await record_change(session, admin, change, username=username, auth_profile=found[1])
    except (ObjectError, NotFoundError) as exc:
        return await _form_page(request, admin, values, found[0].id, error=str(exc), status=400)
    flash(request, "success", _("Saved."))
    return see_other(f"/admin/users/{found[0].id}")


@router.post("/admin/users/{user_id}/password")
async def reset_password(request: Request, user_id: str, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    found = await _user(request, user_id)
    if found is None:
        flash(request, "error", _("That user does not exist."))
        return see_other("/admin/users")
    form = await read_form(request)
    password = form.raw("password")
    problem = _password_problem(password, form.raw("password_repeat"), _)
    if problem:
        return await _form_page(
            request, admin, _values(found[0], found[1]), found[0].id, error=problem, status=400
        )

    password_hash = await hash_password(Secret(password))
    async with runtime.database.write() as session:
        row = await session.get(LocalUserRow, found[0].id)
        if row is not None:
            row.password_hash = password_hash
            row.updated_at = runtime.clock.now()
            await record_change(
                session, admin, "reset password", username=row.username, auth_profile=found[1]
            )
    flash(
        request, "success", _("The password of %(name)s was reset.") % {"name": found[0].username}
    )
    return see_other(f"/admin/users/{found[0].id}")


@router.post("/admin/users/{user_id}/disable")
async def set_disabled(request: Request, user_id: str, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    disable = form.text("disabled", 8) == "1"
    async with runtime.database.write() as session:
        row = await session.get(LocalUserRow, user_id[:36])
        if row is not None:
            row.disabled = disable
            row.updated_at = runtime.clock.now()
            profile = await session.get(AuthProfileRow, row.auth_profile_id)
            await record_change(
                session,
                admin,
                "disabled user" if disable else "enabled user",
                username=row.username,
                auth_profile=profile.name if profile else None,
            )
    if row is None:
        flash(request, "error", _("That user does not exist."))
        return see_other("/admin/users")
    flash(
        request,
        "success",
        (_("%(name)s is disabled.") if disable else _("%(name)s is enabled."))
        % {"name": row.username},
    )
    return see_other(f"/admin/users/{row.id}")
