"""Console pages for users' devices: search, revoke, issue an enrollment, lift fraud locks."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select

from tapgate.directory.base import DirectoryUser
from tapgate.errors import DirectoryUnavailable
from tapgate.store.models import DeviceRow, UserLockRow
from tapgate.web import enrollment
from tapgate.web.admin.changes import record_change
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import ADMIN_AUTH_PROFILE, AdminDep, AdminIdentity
from tapgate.web.devices import revoke_device, view
from tapgate.web.forms import read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.security import client_ip
from tapgate.web.waiting import runtime_of

router = console_router()

MAX_LISTED = 200


async def _page(
    request: Request,
    admin: AdminIdentity,
    *,
    error: str | None = None,
    status: int = 200,
    enroll_username: str = "",
    enroll_profile: str = "",
) -> Response:
    runtime = runtime_of(request)
    search = request.query_params.get("q", "").strip()[:256]
    include_revoked = request.query_params.get("revoked") == "1"
    query = select(DeviceRow).where(DeviceRow.auth_profile != ADMIN_AUTH_PROFILE)
    if search:
        query = query.where(func.lower(DeviceRow.username).contains(search.lower()))
    if not include_revoked:
        query = query.where(DeviceRow.revoked_at.is_(None))
    async with runtime.database.read() as session:
        rows = (
            await session.scalars(query.order_by(DeviceRow.created_at.desc()).limit(MAX_LISTED))
        ).all()
        locks = (
            await session.scalars(select(UserLockRow).order_by(UserLockRow.created_at.desc()))
        ).all()
    snapshot = await runtime.objects.current()
    return render_admin(
        request,
        admin,
        "admin/devices.html",
        "devices",
        {
            "devices": [view(runtime, row) for row in rows],
            "search": search,
            "include_revoked": include_revoked,
            "locks": locks,
            "auth_profile_names": list(snapshot.objects.auth_profiles),
            "error": error,
            "enroll_username": enroll_username,
            "enroll_profile": enroll_profile,
            "max_listed": MAX_LISTED,
        },
        status=status,
    )


@router.get("/admin/devices")
async def list_page(request: Request, admin: AdminDep) -> Response:
    return await _page(request, admin)


@router.post("/admin/devices/{device_id}/revoke")
async def revoke(request: Request, device_id: str, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    device = await revoke_device(
        runtime,
        device_id[:64],
        None,
        admin.name,
        "revoked by an administrator",
        client_ip(request, runtime.settings),
    )
    if device is None:
        flash(request, "error", _("That device does not exist or is already revoked."))
    else:
        flash(
            request,
            "success",
            _("%(device)s of %(user)s was revoked.")
            % {"device": device.name, "user": device.username},
        )
    back = form.text("back", 512)
    return see_other(back if back.startswith("/admin/") else "/admin/devices")


async def _find_user(request: Request, username: str, profile_name: str) -> DirectoryUser | str:
    """Return the user, or a message saying why no enrollment can be issued."""
    _ = translator(request)
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    names = [profile_name] if profile_name else list(snapshot.auth_profiles)
    try:
        for name in names:
            profile = snapshot.auth_profiles.get(name)
            if profile is None:
                return str(_("That auth profile does not exist."))
            user = await profile.find_user(username)
            if user is None:
                continue
            problem = await profile.account_problem(user, runtime.clock.now())
            if problem is not None:
                return str(
                    _("%(name)s cannot enroll a device: %(problem)s")
                    % {"name": user.username, "problem": problem}
                )
            return user
    except DirectoryUnavailable as exc:
        return str(_("The directory could not be reached: %(error)s") % {"error": exc})
    return str(_("No auth profile knows the user %(name)s.") % {"name": username})


@router.post("/admin/devices/enroll")
async def issue(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    username = form.text("username", 256)
    profile_name = form.text("auth_profile", 64)
    if not username:
        return await _page(
            request, admin, error=_("Enter the username."), status=400, enroll_profile=profile_name
        )
    found = await _find_user(request, username, profile_name)
    if isinstance(found, str):
        return await _page(
            request,
            admin,
            error=found,
            status=400,
            enroll_username=username,
            enroll_profile=profile_name,
        )

    owner = enrollment.Owner(found.auth_profile, found.user_id, found.username)
    started = await enrollment.start_enrollment(
        runtime,
        owner,
        admin.name,
        client_ip(request, runtime.settings),
        title=_("QR code for enrolling a phone of %(name)s") % {"name": found.username},
    )
    await enrollment.notify_devices(
        runtime,
        owner,
        {
            "notice": "enrollment_issued",
            "issued_by": admin.name,
            "time": runtime.clock.now().isoformat(),
        },
    )
    return render_admin(
        request,
        admin,
        "admin/enrollment_issued.html",
        "devices",
        {
            "started": started,
            "user": found,
        },
    )


@router.post("/admin/devices/locks/lift")
async def lift_lock(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    auth_profile, user_id = form.text("auth_profile", 64), form.text("user_id", 256)
    async with runtime.database.write() as session:
        lock = await session.get(UserLockRow, (auth_profile, user_id))
        if lock is not None:
            await session.execute(
                sql_delete(UserLockRow).where(
                    UserLockRow.auth_profile == auth_profile, UserLockRow.user_id == user_id
                )
            )
            await record_change(
                session,
                admin,
                "lifted push lock",
                username=lock.username,
                auth_profile=auth_profile,
            )
    if lock is None:
        flash(request, "error", _("That lock does not exist."))
    else:
        flash(
            request, "success", _("Pushes to %(name)s are allowed again.") % {"name": lock.username}
        )
    return see_other("/admin/devices")
