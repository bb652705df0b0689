"""Console sign-in: the administrator's password, then a push to their phone.

An administrator without a device (the first sign-in, or after every device was revoked)
enrolls one right after the password and confirms it with the code it shows. From then on every
sign-in needs the push. Failed passwords count against the same limits as logins: 5 per
administrator and 50 per source address in 15 minutes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.devices.confirmation import CONFIRMED, CONSOLE_SIGN_IN, MAX_ATTEMPTS, WRONG_CODE
from tapgate.directory.base import (
    DIRECTORY_UNAVAILABLE,
    INVALID_CREDENTIALS,
    DirectoryUser,
    escape_control_characters,
)
from tapgate.directory.passwords import verify_password
from tapgate.errors import DirectoryUnavailable
from tapgate.objects.specs import PushProfileSpec
from tapgate.push import ratelimit
from tapgate.push.direct_push import push_to_user
from tapgate.push.ports import PENDING, LoginRequest
from tapgate.runtime import Runtime
from tapgate.secret import Secret
from tapgate.store.models import AdminRow, DeviceRow, TransactionRow
from tapgate.web import enrollment
from tapgate.web.admin.session import (
    ADMIN_AUTH_PROFILE,
    CONSOLE_APPLICATION,
    AdminIdentity,
    current_admin,
    end_admin_session,
    enrolling_admin,
    start_admin_session,
    start_enrolling_session,
)
from tapgate.web.forms import read_form
from tapgate.web.messages import rejection_message
from tapgate.web.rendering import flash, render, request_language, translator
from tapgate.web.security import client_ip, require_csrf
from tapgate.web.waiting import (
    PURPOSE_CONSOLE,
    PendingLogin,
    login_url,
    register_completion,
    runtime_of,
)

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

# The push settings of console sign-ins. The number has six digits, so guessing it succeeds once
# in a million tries for the most privileged sign-in there is.
CONSOLE_PUSH_PROFILE = PushProfileSpec(
    name=CONSOLE_APPLICATION,
    fallback_auth_profiles=(ADMIN_AUTH_PROFILE,),
    timeout=120,
    verification="number",
    number_digits=6,
    max_pending=1,
    rate_limit_count=10,
    rate_limit_window=600,
)
_ENROLLMENT_KEY = "admin_enrollment"
# Rate-limit keys hold at most 320 characters; longer typed names share a counter.
_NAME_KEY_CHARACTERS = 256


@dataclass(frozen=True)
class ConsoleOutcome:
    redirect: str | None = None
    error: str | None = None


def admin_user(admin: AdminRow | AdminIdentity) -> DirectoryUser:
    """Return an administrator as the user a push goes to."""
    return DirectoryUser(auth_profile=ADMIN_AUTH_PROFILE, user_id=admin.id, username=admin.name)


async def active_device_count(runtime: Runtime, admin_id: str) -> int:
    async with runtime.database.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(DeviceRow)
            .where(
                DeviceRow.auth_profile == ADMIN_AUTH_PROFILE,
                DeviceRow.user_id == admin_id,
                DeviceRow.revoked_at.is_(None),
            )
        )
    return int(count or 0)


@dataclass(frozen=True)
class PasswordCheck:
    """The outcome of a console password check: the administrator, or why there is none."""

    admin: AdminRow | None
    reason: str | None = None
    # Whole seconds until a rate limit that was reached admits another attempt.
    retry_after: int | None = None


async def _check_password(
    runtime: Runtime,
    name: str,
    password: Secret,
    source_ip: str | None,
) -> PasswordCheck:
    """Check an administrator's password and return the administrator or the rejection reason."""
    now = runtime.clock.now()
    source_key = f"{CONSOLE_APPLICATION}:{source_ip or 'unknown'}"
    async with runtime.database.write() as session:
        await record_audit(
            session,
            "login_started",
            username=name,
            application=CONSOLE_APPLICATION,
            source_ip=source_ip,
            details={"source": "console"},
        )
        source_limit = (ratelimit.FAILED_SOURCE, source_key, ratelimit.SOURCE_FAILURES)
        if await ratelimit.over_limit(session, *source_limit, now):
            return await _rate_limited(session, source_limit, now)
        admin = (await session.scalars(select(AdminRow).where(AdminRow.name == name))).first()
        # Unknown names get a counter of their own too, so `rate_limited` cannot tell which
        # administrator names exist.
        user_key = (
            f"{ADMIN_AUTH_PROFILE}:{admin.id}"
            if admin
            else f"{ADMIN_AUTH_PROFILE}:unknown:{name[:_NAME_KEY_CHARACTERS]}"
        )
        user_limit = (ratelimit.FAILED_USER, user_key, ratelimit.USER_FAILURES)
        if await ratelimit.over_limit(session, *user_limit, now):
            return await _rate_limited(session, user_limit, now)

    try:
        right = await verify_password(admin.password_hash if admin else None, password)
    except DirectoryUnavailable as exc:
        # The server is shutting down: nothing was checked, so nothing is counted.
        log.warning("console sign-in rejected reason=directory_unavailable error=%s", exc)
        async with runtime.database.write() as session:
            await _audit_rejection(session, name, DIRECTORY_UNAVAILABLE, source_ip)
        return PasswordCheck(None, DIRECTORY_UNAVAILABLE)
    if not right or admin is None:
        async with runtime.database.write() as session:
            ratelimit.add_event(session, ratelimit.FAILED_SOURCE, source_key, now)
            ratelimit.add_event(session, ratelimit.FAILED_USER, user_key, now)
            await _audit_rejection(session, name, INVALID_CREDENTIALS, source_ip)
        return PasswordCheck(None, INVALID_CREDENTIALS)

    async with runtime.database.write() as session:
        await ratelimit.clear_failures(session, f"{ADMIN_AUTH_PROFILE}:{admin.id}")
        outcome, reason = ("rejected", "account_disabled") if admin.disabled else ("success", None)
        await record_audit(
            session,
            "first_factor",
            username=admin.name,
            auth_profile=ADMIN_AUTH_PROFILE,
            application=CONSOLE_APPLICATION,
            outcome=outcome,
            reason=reason,
            source_ip=source_ip,
            details={"password_checked": True},
        )
    if admin.disabled:
        return PasswordCheck(None, "account_disabled")
    return PasswordCheck(admin)


async def _rate_limited(
    session: AsyncSession, limit: tuple[str, str, ratelimit.Limit], now: datetime
) -> PasswordCheck:
    wait = await ratelimit.wait_for_room(session, [limit], now)
    retry_after = None if wait is None else max(1, math.ceil(wait.total_seconds()))
    return PasswordCheck(None, "rate_limited", retry_after)


async def _audit_rejection(
    session: AsyncSession, name: str, reason: str, source_ip: str | None
) -> None:
    await record_audit(
        session,
        "first_factor",
        username=name,
        auth_profile=ADMIN_AUTH_PROFILE,
        application=CONSOLE_APPLICATION,
        outcome="rejected",
        reason=reason,
        source_ip=source_ip,
    )


async def start_console_sign_in(
    request: Request,
    runtime: Runtime,
    name: str,
    password: Secret,
    return_to: str | None,
) -> ConsoleOutcome:
    """Check an administrator's password and send the push, or start the first enrollment."""
    _ = translator(request)
    source_ip = client_ip(request, runtime.settings)
    # A name with control characters matches no administrator, and the records keep it escaped.
    check = await _check_password(runtime, escape_control_characters(name), password, source_ip)
    admin = check.admin
    if admin is None:
        return ConsoleOutcome(error=rejection_message(_, check.reason, check.retry_after))

    if await active_device_count(runtime, admin.id) == 0:
        start_enrolling_session(request, admin)
        log.info("console sign-in needs a first device admin=%s", admin.name)
        return ConsoleOutcome(redirect="/admin/enroll")

    status = await push_to_user(
        runtime.login,
        LoginRequest(
            application=CONSOLE_APPLICATION,
            username=admin.name,
            password=None,
            client_ip=source_ip,
            user_agent=request.headers.get("user-agent"),
            source="console",
            language=request_language(request),
        ),
        admin_user(admin),
        CONSOLE_PUSH_PROFILE,
        "console sign-in",
    )
    if status.status != PENDING or not status.transaction_id or not status.expires_at:
        return ConsoleOutcome(error=rejection_message(_, status.reason, status.retry_after))

    PendingLogin(
        transaction_id=status.transaction_id,
        purpose=PURPOSE_CONSOLE,
        username=admin.name,
        verification=status.verification or "number",
        expires_at=status.expires_at.isoformat(),
        retry_url=login_url(None, return_to),
        number=status.number,
        return_to=return_to,
        admin_id=admin.id,
    ).save(request)
    return ConsoleOutcome(redirect="/login/wait")


async def _complete_console(
    request: Request,
    runtime: Runtime,
    pending: PendingLogin,
    row: TransactionRow,
) -> Response:
    _ = translator(request)
    if row.auth_profile != ADMIN_AUTH_PROFILE or row.user_id != pending.admin_id:
        return RedirectResponse("/login", status_code=303)
    async with runtime.database.read() as session:
        admin = await session.get(AdminRow, row.user_id)
    if admin is None or admin.disabled:
        flash(request, "error", _("This administrator account is disabled."))
        return RedirectResponse("/login", status_code=303)
    start_admin_session(request, admin)
    log.info("console sign-in admin=%s transaction=%s", admin.name, row.id)
    return RedirectResponse(pending.return_to or "/admin", status_code=303)


register_completion(PURPOSE_CONSOLE, _complete_console)


async def _enrolling_identity(request: Request) -> tuple[AdminIdentity | None, bool]:
    """Return the administrator who may enroll a device now, and whether it is their first."""
    signed_in = await current_admin(request)
    if signed_in is not None:
        return signed_in, False
    return await enrolling_admin(request), True


def _owner(admin: AdminIdentity) -> enrollment.Owner:
    return enrollment.Owner(ADMIN_AUTH_PROFILE, admin.id, admin.name)


def _confirm_context(
    progress: enrollment.EnrollmentProgress, error: str | None
) -> dict[str, object]:
    return {
        "progress": progress,
        "error": error,
        "confirm_url": "/admin/enroll/confirm",
        "back_url": "/admin/enroll",
        "restart_url": "/admin/enroll",
    }


@router.get("/admin/enroll")
async def enroll_intro(request: Request) -> Response:
    admin, first = await _enrolling_identity(request)
    if admin is None:
        return RedirectResponse("/login?return_to=/admin", status_code=303)
    return render(
        request,
        "admin/enroll_intro.html",
        {"admin_name": admin.name, "first": first, "signed_in_admin": None if first else admin},
    )


@router.post("/admin/enroll")
async def enroll(request: Request) -> Response:
    admin, _first = await _enrolling_identity(request)
    if admin is None:
        return RedirectResponse("/login?return_to=/admin", status_code=303)
    _ = translator(request)
    runtime = runtime_of(request)
    started = await enrollment.start_enrollment(
        runtime,
        _owner(admin),
        CONSOLE_SIGN_IN,
        client_ip(request, runtime.settings),
        title=_("QR code for enrolling your phone"),
    )
    request.session[_ENROLLMENT_KEY] = started.enrollment_id
    return render(
        request,
        "enroll/qr.html",
        {
            "started": started,
            "owner_name": admin.name,
            "status_url": "/admin/enroll/status",
            "confirm_url": "/admin/enroll/confirm",
            "back_url": "/admin/enroll",
        },
    )


def _enrollment_id(request: Request) -> str | None:
    value = request.session.get(_ENROLLMENT_KEY)
    return value if isinstance(value, str) else None


@router.get("/admin/enroll/status")
async def enroll_status(request: Request) -> JSONResponse:
    admin, _first = await _enrolling_identity(request)
    enrollment_id = _enrollment_id(request)
    if admin is None or enrollment_id is None:
        return JSONResponse({"state": enrollment.MISSING, "next": "/login"})
    progress = await enrollment.enrollment_progress(
        runtime_of(request), enrollment_id, _owner(admin)
    )
    return JSONResponse({"state": progress.state, "next": "/admin/enroll/confirm"})


@router.get("/admin/enroll/confirm")
async def confirm_form(request: Request) -> Response:
    admin, _first = await _enrolling_identity(request)
    enrollment_id = _enrollment_id(request)
    if admin is None or enrollment_id is None:
        return RedirectResponse("/login?return_to=/admin", status_code=303)
    progress = await enrollment.enrollment_progress(
        runtime_of(request), enrollment_id, _owner(admin)
    )
    if progress.state == enrollment.DONE:
        return RedirectResponse("/admin", status_code=303)
    return render(request, "enroll/confirm.html", _confirm_context(progress, None))


@router.post("/admin/enroll/confirm")
async def confirm(request: Request) -> Response:
    admin, first = await _enrolling_identity(request)
    enrollment_id = _enrollment_id(request)
    if admin is None or enrollment_id is None:
        return RedirectResponse("/login?return_to=/admin", status_code=303)
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    code = "".join(form.text("code", 32).split())

    progress = await enrollment.enrollment_progress(runtime, enrollment_id, _owner(admin))
    if progress.state != enrollment.REGISTERED:
        return render(request, "enroll/confirm.html", _confirm_context(progress, None), status=409)
    if not (code.isascii() and code.isdigit()):
        return render(
            request,
            "enroll/confirm.html",
            _confirm_context(progress, _("Type the digits the new device shows.")),
            status=400,
        )

    result, device = await enrollment.confirm_enrollment(
        runtime, enrollment_id, _owner(admin), code, client_ip(request, runtime.settings)
    )
    if result.outcome == CONFIRMED and device is not None:
        request.session.pop(_ENROLLMENT_KEY, None)
        if first:
            async with runtime.database.read() as session:
                row = await session.get(AdminRow, admin.id)
            if row is None or row.disabled:
                end_admin_session(request)
                return RedirectResponse("/login", status_code=303)
            # The password and the confirmed device together are both factors of this sign-in.
            start_admin_session(request, row)
        flash(
            request,
            "success",
            _("%(name)s is enrolled and approves your console sign-ins.") % {"name": device.name},
        )
        return RedirectResponse("/admin", status_code=303)

    progress = await enrollment.enrollment_progress(runtime, enrollment_id, _owner(admin))
    error: str | None = None
    if result.outcome == WRONG_CODE:
        error = _("That code is wrong. Attempts left: %(count)d of %(total)d.") % {
            "count": result.attempts_left,
            "total": MAX_ATTEMPTS,
        }
    return render(request, "enroll/confirm.html", _confirm_context(progress, error), status=400)


@router.post("/admin/sign-out")
async def sign_out(request: Request) -> Response:
    end_admin_session(request)
    _ = translator(request)
    flash(request, "info", _("You are signed out of the console."))
    return RedirectResponse("/login", status_code=303)
