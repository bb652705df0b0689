"""The registration panel: a user signs in and enrolls, renames or removes their phones.

Sign-in goes through the application of type `registration`, so its methods and the policies
decide which auth profiles apply. A user with no device yet is let in by the first factor alone,
and only when that application checks the password. A user who has a device approves the
sign-in on it, so a stolen password cannot add an attacker's phone.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tapgate.devices.confirmation import (
    CONFIRMED,
    MAX_ATTEMPTS,
    REGISTRATION_PANEL,
    WRONG_CODE,
)
from tapgate.objects.runtime import Snapshot
from tapgate.objects.specs import ApplicationSpec
from tapgate.push.ports import PENDING, REJECTED, LoginRequest
from tapgate.runtime import Runtime
from tapgate.secret import Secret
from tapgate.store.models import TransactionRow
from tapgate.web import enrollment
from tapgate.web.devices import rename_device, revoke_device, user_devices, valid_device_name
from tapgate.web.forms import read_form
from tapgate.web.messages import rejection_message
from tapgate.web.rendering import flash, render, request_language, translator
from tapgate.web.security import client_ip, require_csrf, rotate_csrf_token
from tapgate.web.waiting import (
    PURPOSE_REGISTRATION,
    PendingLogin,
    register_completion,
    runtime_of,
)

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

# How long a registration sign-in lasts: long enough to enroll, short enough for a shared screen.
REGISTRANT_LIFETIME = timedelta(minutes=15)
_REGISTRANT_KEY = "registrant"
_ENROLLMENT_KEY = "register_enrollment"
MAX_USERNAME = 256
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class Registrant:
    auth_profile: str
    user_id: str
    username: str
    since: str

    @property
    def owner(self) -> enrollment.Owner:
        return enrollment.Owner(self.auth_profile, self.user_id, self.username)

    @property
    def actor(self) -> str:
        return f"{self.username} (registration panel)"


def _start_registrant(request: Request, runtime: Runtime, row: TransactionRow) -> None:
    rotate_csrf_token(request)
    request.session.pop(_ENROLLMENT_KEY, None)
    request.session[_REGISTRANT_KEY] = asdict(
        Registrant(
            auth_profile=row.auth_profile or "",
            user_id=row.user_id or "",
            username=row.username,
            since=runtime.clock.now().isoformat(),
        )
    )


def current_registrant(request: Request) -> Registrant | None:
    data = request.session.get(_REGISTRANT_KEY)
    if not isinstance(data, dict):
        return None
    try:
        registrant = Registrant(**data)
        since = datetime.fromisoformat(registrant.since)
    except (TypeError, ValueError):
        request.session.pop(_REGISTRANT_KEY, None)
        return None
    if runtime_of(request).clock.now() - since > REGISTRANT_LIFETIME or not registrant.user_id:
        request.session.pop(_REGISTRANT_KEY, None)
        return None
    return registrant


def registration_application(snapshot: Snapshot) -> ApplicationSpec | None:
    """Return the application named `registration`, else the first of type registration."""
    named = snapshot.objects.applications.get("registration")
    if named is not None and named.kind == "registration":
        return named
    return next(
        (app for app in snapshot.objects.applications.values() if app.kind == "registration"), None
    )


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _sign_in_page(
    request: Request,
    application: ApplicationSpec | None,
    *,
    username: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "register/sign_in.html",
        {
            "application": application,
            "username": username,
            "error": error,
        },
        status=status,
    )


@router.get("/register")
async def sign_in_form(request: Request) -> Response:
    if current_registrant(request) is not None:
        return _see_other("/register/devices")
    snapshot = await runtime_of(request).objects.current()
    application = registration_application(snapshot)
    if application is None:
        _ = translator(request)
        return _sign_in_page(
            request,
            None,
            error=_(
                "The registration panel is not set up yet. Ask your administrator to add an "
                "application of type registration."
            ),
            status=503,
        )
    return _sign_in_page(request, application)


@router.post("/register")
async def sign_in(request: Request) -> Response:
    runtime = runtime_of(request)
    _ = translator(request)
    snapshot = await runtime.objects.current()
    application = registration_application(snapshot)
    if application is None:
        return _see_other("/register")

    form = await read_form(request)
    username = form.text("username", MAX_USERNAME)
    password = form.raw("password")
    if not username:
        return _sign_in_page(request, application, error=_("Enter your username."), status=400)
    if application.require_password and (not password or len(password) > MAX_PASSWORD):
        return _sign_in_page(
            request, application, username=username, error=_("Enter your password."), status=400
        )

    status = await runtime.login.start_login(
        LoginRequest(
            application=application.name,
            username=username,
            password=Secret(password) if application.require_password else None,
            client_ip=client_ip(request, runtime.settings),
            user_agent=request.headers.get("user-agent"),
            source="registration panel",
            language=request_language(request),
        )
    )
    if status.status == PENDING and status.transaction_id and status.expires_at:
        PendingLogin(
            transaction_id=status.transaction_id,
            purpose=PURPOSE_REGISTRATION,
            username=status.username or username,
            verification=status.verification or "tap",
            expires_at=status.expires_at.isoformat(),
            retry_url="/register",
            number=status.number,
        ).save(request)
        return _see_other("/login/wait")

    if status.status == REJECTED and status.reason == "no_device" and status.transaction_id:
        if not application.require_password:
            # Without a checked password, a user name alone would let anyone enroll a phone.
            return _sign_in_page(
                request,
                application,
                username=username,
                error=_(
                    "Your first phone must be enrolled by your administrator. Ask them for an "
                    "enrollment QR code."
                ),
            )
        async with runtime.database.read() as session:
            row = await session.get(TransactionRow, status.transaction_id)
        if row is not None and row.user_id:
            _start_registrant(request, runtime, row)
            return _see_other("/register/devices")

    return _sign_in_page(
        request,
        application,
        username=username,
        error=rejection_message(_, status.reason, status.retry_after),
    )


async def _complete_registration(
    request: Request,
    runtime: Runtime,
    pending: PendingLogin,
    row: TransactionRow,
) -> Response:
    _ = translator(request)
    _start_registrant(request, runtime, row)
    flash(request, "success", _("Approved on your phone. You can now manage your devices."))
    return _see_other("/register/devices")


register_completion(PURPOSE_REGISTRATION, _complete_registration)


@router.get("/register/devices")
async def devices_page(request: Request) -> Response:
    registrant = current_registrant(request)
    if registrant is None:
        return _see_other("/register")
    runtime = runtime_of(request)
    devices = await user_devices(runtime, registrant.auth_profile, registrant.user_id)
    return render(request, "register/devices.html", {"registrant": registrant, "devices": devices})


@router.post("/register/devices/{device_id}/rename")
async def rename(request: Request, device_id: str) -> Response:
    registrant = current_registrant(request)
    if registrant is None:
        return _see_other("/register")
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    name = form.text("name", 200)
    if not valid_device_name(name):
        flash(request, "error", _("A device name must have 1 to 64 characters."))
        return _see_other("/register/devices")
    device = await rename_device(
        runtime,
        device_id[:64],
        (registrant.auth_profile, registrant.user_id),
        name,
        registrant.actor,
        client_ip(request, runtime.settings),
    )
    if device is None:
        flash(request, "error", _("That device was not found."))
    else:
        flash(request, "success", _("The device is now called %(name)s.") % {"name": name})
    return _see_other("/register/devices")


@router.get("/register/devices/{device_id}/remove")
async def remove_form(request: Request, device_id: str) -> Response:
    registrant = current_registrant(request)
    if registrant is None:
        return _see_other("/register")
    devices = await user_devices(runtime_of(request), registrant.auth_profile, registrant.user_id)
    device = next((item for item in devices if item.id == device_id), None)
    if device is None:
        _ = translator(request)
        flash(request, "error", _("That device was not found."))
        return _see_other("/register/devices")
    return render(request, "register/remove.html", {"registrant": registrant, "device": device})


@router.post("/register/devices/{device_id}/remove")
async def remove(request: Request, device_id: str) -> Response:
    registrant = current_registrant(request)
    if registrant is None:
        return _see_other("/register")
    _ = translator(request)
    runtime = runtime_of(request)
    device = await revoke_device(
        runtime,
        device_id[:64],
        (registrant.auth_profile, registrant.user_id),
        registrant.actor,
        "removed by the user",
        client_ip(request, runtime.settings),
    )
    if device is None:
        flash(request, "error", _("That device was not found."))
    else:
        flash(
            request,
            "success",
            _("%(name)s was removed. It can no longer approve sign-ins.") % {"name": device.name},
        )
    return _see_other("/register/devices")


@router.post("/register/enroll")
async def enroll(request: Request) -> Response:
    registrant = current_registrant(request)
    if registrant is None:
        return _see_other("/register")
    _ = translator(request)
    runtime = runtime_of(request)
    started = await enrollment.start_enrollment(
        runtime,
        registrant.owner,
        REGISTRATION_PANEL,
        client_ip(request, runtime.settings),
        title=_("QR code for enrolling your phone"),
    )
    request.session[_ENROLLMENT_KEY] = started.enrollment_id
    return render(
        request,
        "enroll/qr.html",
        {
            "started": started,
            "owner_name": registrant.username,
            "status_url": "/register/enroll/status",
            "confirm_url": "/register/enroll/confirm",
            "back_url": "/register/devices",
        },
    )


def _enrollment_id(request: Request) -> str | None:
    value = request.session.get(_ENROLLMENT_KEY)
    return value if isinstance(value, str) else None


@router.get("/register/enroll/status")
async def enroll_status(request: Request) -> JSONResponse:
    registrant = current_registrant(request)
    enrollment_id = _enrollment_id(request)
    if registrant is None or enrollment_id is None:
        return JSONResponse({"state": enrollment.MISSING, "next": "/register"})
    progress = await enrollment.enrollment_progress(
        runtime_of(request), enrollment_id, registrant.owner
    )
    return JSONResponse({"state": progress.state, "next": "/register/enroll/confirm"})


def _confirm_page(
    request: Request,
    progress: enrollment.EnrollmentProgress,
    error: str | None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "enroll/confirm.html",
        {
            "progress": progress,
            "error": error,
            "confirm_url": "/register/enroll/confirm",
            "back_url": "/register/devices",
            "restart_url": "/register/enroll",
        },
        status=status,
    )


@router.get("/register/enroll/confirm")
async def confirm_form(request: Request) -> Response:
    registrant = current_registrant(request)
    enrollment_id = _enrollment_id(request)
    if registrant is None or enrollment_id is None:
        return _see_other("/register")
    progress = await enrollment.enrollment_progress(
        runtime_of(request), enrollment_id, registrant.owner
    )
    if progress.state == enrollment.DONE:
        return _see_other("/register/devices")
    return _confirm_page(request, progress, None)


@router.post("/register/enroll/confirm")
async def confirm(request: Request) -> Response:
    registrant = current_registrant(request)
    enrollment_id = _enrollment_id(request)
    if registrant is None or enrollment_id is None:
        return _see_other("/register")
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    code = "".join(form.text("code", 32).split())

    progress = await enrollment.enrollment_progress(runtime, enrollment_id, registrant.owner)
    if progress.state != enrollment.REGISTERED:
        return _confirm_page(request, progress, None, status=409)
    if not (code.isascii() and code.isdigit()):
        return _confirm_page(
            request, progress, _("Type the digits the new device shows."), status=400
        )

    result, device = await enrollment.confirm_enrollment(
        runtime, enrollment_id, registrant.owner, code, client_ip(request, runtime.settings)
    )
    if result.outcome == CONFIRMED and device is not None:
        request.session.pop(_ENROLLMENT_KEY, None)
        flash(
            request,
            "success",
            _("%(name)s is enrolled and can approve your sign-ins.") % {"name": device.name},
        )
        return _see_other("/register/devices")

    progress = await enrollment.enrollment_progress(runtime, enrollment_id, registrant.owner)
    error: str | None = None
    if result.outcome == WRONG_CODE:
        error = _("That code is wrong. Attempts left: %(count)d of %(total)d.") % {
            "count": result.attempts_left,
            "total": MAX_ATTEMPTS,
        }
    return _confirm_page(request, progress, error, status=400)


@router.post("/register/sign-out")
async def sign_out(request: Request) -> Response:
    request.session.pop(_REGISTRANT_KEY, None)
    request.session.pop(_ENROLLMENT_KEY, None)
    _ = translator(request)
    flash(request, "info", _("You are signed out of the registration panel."))
    return _see_other("/register")
