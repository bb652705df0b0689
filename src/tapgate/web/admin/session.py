"""The console sign-in kept in the session, and the dependency every console page requires."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tapgate.store.models import AdminRow
from tapgate.web.admin.accounts import ADMIN_AUTH_PROFILE, CONSOLE_APPLICATION
from tapgate.web.security import rotate_csrf_token
from tapgate.web.waiting import runtime_of

# A console sign-in ends after this long, whatever the activity.
ADMIN_SESSION_LIFETIME = timedelta(hours=8)
# A password-only sign-in that must enroll a first device lasts this long.
ENROLLING_LIFETIME = timedelta(minutes=15)
_ADMIN_KEY = "admin"
_ENROLLING_KEY = "admin_enrolling"

__all__ = [
    "ADMIN_AUTH_PROFILE",
    "CONSOLE_APPLICATION",
    "AdminDep",
    "AdminIdentity",
    "require_admin",
]


@dataclass(frozen=True)
class AdminIdentity:
    id: str
    name: str
    since: str


class AdminRequired(Exception):
    """The request needs a console sign-in it does not have."""

    def __init__(self, path: str, wants_json: bool) -> None:
        super().__init__(path)
        self.path = path
        self.wants_json = wants_json


def start_admin_session(request: Request, admin: AdminRow) -> None:
    """Sign `admin` in to the console in this browser session."""
    rotate_csrf_token(request)
    request.session.pop(_ENROLLING_KEY, None)
    now = runtime_of(request).clock.now()
    request.session[_ADMIN_KEY] = asdict(AdminIdentity(admin.id, admin.name, now.isoformat()))


def start_enrolling_session(request: Request, admin: AdminRow) -> None:
    """Let `admin`, who has passed the password and has no device, enroll a first one."""
    rotate_csrf_token(request)
    now = runtime_of(request).clock.now()
    request.session[_ENROLLING_KEY] = asdict(AdminIdentity(admin.id, admin.name, now.isoformat()))


def end_admin_session(request: Request) -> None:
    request.session.pop(_ADMIN_KEY, None)
    request.session.pop(_ENROLLING_KEY, None)


async def _session_admin(request: Request, key: str, lifetime: timedelta) -> AdminIdentity | None:
    data = request.session.get(key)
    if not isinstance(data, dict):
        return None
    try:
        identity = AdminIdentity(**data)
        since = datetime.fromisoformat(identity.since)
    except (TypeError, ValueError):
        request.session.pop(key, None)
        return None

    runtime = runtime_of(request)
    if runtime.clock.now() - since > lifetime:
        request.session.pop(key, None)
        return None
    async with runtime.database.read() as session:
        row = await session.get(AdminRow, identity.id)
    if row is None or row.disabled:
        request.session.pop(key, None)
        return None
    return AdminIdentity(row.id, row.name, identity.since)


async def current_admin(request: Request) -> AdminIdentity | None:
    return await _session_admin(request, _ADMIN_KEY, ADMIN_SESSION_LIFETIME)


async def enrolling_admin(request: Request) -> AdminIdentity | None:
    return await _session_admin(request, _ENROLLING_KEY, ENROLLING_LIFETIME)


async def require_admin(request: Request) -> AdminIdentity:
    admin = await current_admin(request)
    if admin is None:
        # A script fetching an export may send no Accept header, so a .json path counts too.
        wants_json = "application/json" in request.headers.get(
            "accept", ""
        ) or request.url.path.endswith(".json")
        raise AdminRequired(request.url.path, wants_json)
    return admin


AdminDep = Annotated[AdminIdentity, Depends(require_admin)]


async def admin_required_response(request: Request, exc: Exception) -> Response:
    """Send a browser without a console sign-in to the sign-in page (JSON callers get 401)."""
    assert isinstance(exc, AdminRequired)
    if exc.wants_json:
        return JSONResponse(
            {"error": "unauthorized", "message": "sign in to the console first"}, status_code=401
        )
    target = exc.path if request.method == "GET" else "/admin"
    return RedirectResponse("/login?" + urlencode({"return_to": target}), status_code=303)
