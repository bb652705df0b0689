"""The console's Administrators page: list, add, disable or enable, and their devices."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from tapgate.errors import ObjectError
from tapgate.secret import Secret
from tapgate.store.models import AdminRow, DeviceRow
from tapgate.web.admin.accounts import MIN_ADMIN_PASSWORD, create_admin
from tapgate.web.admin.changes import record_change
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import ADMIN_AUTH_PROFILE, AdminDep, AdminIdentity
from tapgate.web.devices import DeviceView, view
from tapgate.web.forms import read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.waiting import runtime_of

router = console_router()


async def _page(
    request: Request,
    admin: AdminIdentity,
    *,
    error: str | None = None,
    new_name: str = "",
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    async with runtime.database.read() as session:
        admins = (await session.scalars(select(AdminRow).order_by(AdminRow.name))).all()
        devices = (
            await session.scalars(
                select(DeviceRow)
                .where(DeviceRow.auth_profile == ADMIN_AUTH_PROFILE, DeviceRow.revoked_at.is_(None))
                .order_by(DeviceRow.created_at)
            )
        ).all()
    by_admin: dict[str, list[DeviceView]] = {}
    for device in devices:
        by_admin.setdefault(device.user_id, []).append(view(runtime, device))
    return render_admin(
        request,
        admin,
        "admin/admins.html",
        "admins",
        {
            "admins": admins,
            "devices": by_admin,
            "error": error,
            "new_name": new_name,
            "min_password": MIN_ADMIN_PASSWORD,
        },
        status=status,
    )


@router.get("/admin/admins")
async def list_page(request: Request, admin: AdminDep) -> Response:
    return await _page(request, admin)


@router.post("/admin/admins")
async def add(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    name = form.text("name", 64)
    password = form.raw("password")
    if password != form.raw("password_repeat"):
        return await _page(
            request, admin, error=_("The two passwords differ."), new_name=name, status=400
        )
    try:
        async with runtime.database.write() as session:
            await create_admin(session, name, Secret(password), runtime.clock.now(), admin.name)
    except ObjectError as exc:
        return await _page(request, admin, error=str(exc), new_name=name, status=400)
    flash(
        request,
        "success",
        _("Administrator %(name)s added. They enroll a phone at their first sign-in.")
        % {"name": name},
    )
    return see_other("/admin/admins")


@router.post("/admin/admins/{admin_id}/disable")
async def set_disabled(request: Request, admin_id: str, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    disable = form.text("disabled", 8) == "1"
    if admin_id == admin.id and disable:
        flash(request, "error", _("You cannot disable yourself."))
        return see_other("/admin/admins")
    async with runtime.database.write() as session:
        row = await session.get(AdminRow, admin_id[:36])
        if row is not None:
            row.disabled = disable
            change = "disabled administrator" if disable else "enabled administrator"
            await record_change(session, admin, f"{change} {row.name}")
    if row is None:
        flash(request, "error", _("That administrator does not exist."))
    else:
        flash(
            request,
            "success",
            (_("%(name)s is disabled.") if disable else _("%(name)s is enabled."))
            % {"name": row.name},
        )
    return see_other("/admin/admins")
