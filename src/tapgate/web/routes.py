"""Attach the browser pages to the HTTP application: routes, static files, session, headers."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tapgate.i18n import LANGUAGES
from tapgate.runtime import Runtime
from tapgate.web import hosted_login, register, waiting
from tapgate.web.admin import console_routers
from tapgate.web.admin.session import AdminRequired, admin_required_response
from tapgate.web.rendering import LANGUAGE_COOKIE, render, translator
from tapgate.web.return_to import local_path
from tapgate.web.security import CsrfRejected, install_security

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 60 * 60

language_router = APIRouter(include_in_schema=False)


@language_router.get("/language/{code}")
async def choose_language(request: Request, code: str) -> Response:
    """Remember the chosen page language in a cookie and go back to the page it was chosen on."""
    target = local_path(request.query_params.get("next"), "/register")
    response = RedirectResponse(target, status_code=303)
    if code in LANGUAGES:
        secure = request.app.state.runtime.settings.public_url.startswith("https://")
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            max_age=LANGUAGE_COOKIE_SECONDS,
            httponly=True,
            samesite="lax",
            secure=secure,
        )
    return response


async def _csrf_rejected(request: Request, exc: Exception) -> Response:
    log.info("form rejected without a valid CSRF token path=%r", request.url.path)
    _ = translator(request)
    return render(
        request,
        "error.html",
        {
            "title": _("This form has expired"),
            "message": _(
                "The page was open too long or came from another site. Go back, reload the "
                "page and send the form again."
            ),
        },
        status=403,
    )


def install_routes(app: FastAPI, runtime: Runtime) -> None:
    """Add the pages' routes, static files, session and security headers to `app`."""
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.add_exception_handler(AdminRequired, admin_required_response)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (
        language_router,
        waiting.router,
        hosted_login.router,
        register.router,
        *console_routers(),
    ):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        # The page a person who types the server's address is most likely looking for.
        return RedirectResponse("/register", status_code=303)

    install_security(app, runtime.settings, runtime.keyring.session_key)
