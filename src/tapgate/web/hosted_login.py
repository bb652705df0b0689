"""The hosted login page: `/login` for applications of type `sso` and for the console.

An application sends the browser to `/login?application=NAME&return_to=URL`. After the user
approves on the phone, the page links back to `return_to` with `tapgate_transaction=ID` added.
The application must then check that transaction through the Auth API with its own API client
(`GET /api/v1/auth/{transaction_id}`, which returns only the client's own transactions). It
accepts the sign-in only when the status is `approved`, and accepts each id once.

Without `application`, `/login` signs an administrator in to the console.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from tapgate.objects.specs import ApplicationSpec
from tapgate.push.ports import PENDING, LoginRequest
from tapgate.runtime import Runtime
from tapgate.secret import Secret
from tapgate.store.models import TransactionRow
from tapgate.web.admin.sign_in import start_console_sign_in
from tapgate.web.forms import read_form
from tapgate.web.messages import rejection_message
from tapgate.web.rendering import render, request_language, translator
from tapgate.web.return_to import RETURN_TO_ORIGINS_ENV, allowed_origins, safe_return_to
from tapgate.web.security import client_ip, require_csrf
from tapgate.web.waiting import (
    PURPOSE_SSO,
    PendingLogin,
    login_url,
    register_completion,
    runtime_of,
)

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

TRANSACTION_PARAMETER = "tapgate_transaction"
MAX_USERNAME = 256
MAX_PASSWORD = 1024


def with_transaction(return_to: str, transaction_id: str) -> str:
    """Add `tapgate_transaction=ID` to `return_to`, keeping its own query parameters."""
    parts = urlsplit(return_to)
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key != TRANSACTION_PARAMETER
    ]
    query.append((TRANSACTION_PARAMETER, transaction_id))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class _Target:
    """The application and return address of one `/login` request, or why they were rejected."""

    def __init__(
        self, application: ApplicationSpec | None, return_to: str | None, error: str | None
    ) -> None:
        self.application = application
        self.return_to = return_to
        self.error = error


async def _target(
    request: Request, runtime: Runtime, application_name: str, return_to_text: str
) -> _Target:
    _ = translator(request)
    application = None
    if application_name:
        snapshot = await runtime.objects.current()
        application = snapshot.objects.applications.get(application_name[:64])
        if application is None or application.kind != "sso":
            # The message covers an api or radius application of that name too. A link then
            # cannot tell which names exist.
            return _Target(
                None,
                None,
                _(
                    "This sign-in link names an application that does not exist or does not "
                    "use the hosted login."
                ),
            )

    return_to = None
    if return_to_text:
        origins = allowed_origins(
            runtime.settings.public_url,
            {RETURN_TO_ORIGINS_ENV: ",".join(runtime.settings.return_to_origins)},
        )
        return_to = safe_return_to(return_to_text, origins)
        if return_to is None:
            log.info("return_to rejected application=%s", application_name[:64])
            return _Target(
                application,
                None,
                _(
                    "This sign-in link would send you to an address tapgate does not trust, so it "
                    "was stopped. Open the application again and start from there."
                ),
            )
    return _Target(application, return_to, None)


def _form_page(
    request: Request,
    target: _Target,
    *,
    username: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "login/sign_in.html",
        {
            "application": target.application,
            "return_to": target.return_to,
            "username": username,
            "error": error,
            "console": target.application is None,
        },
        status=status,
    )


@router.get("/login")
async def sign_in_form(request: Request) -> Response:
    runtime = runtime_of(request)
    application_name = request.query_params.get("application", "")
    target = await _target(
        request, runtime, application_name, request.query_params.get("return_to", "")
    )
    if target.error is not None:
        return render(request, "login/link_error.html", {"error": target.error}, status=400)
    return _form_page(request, target)


@router.post("/login")
async def sign_in(request: Request) -> Response:
    runtime = runtime_of(request)
    _ = translator(request)
    form = await read_form(request)
    target = await _target(
        request, runtime, form.text("application", 64), form.text("return_to", 2048)
    )
    if target.error is not None:
        return render(request, "login/link_error.html", {"error": target.error}, status=400)

    username = form.text("username", MAX_USERNAME)
    password = form.raw("password")
    needs_password = target.application is None or target.application.require_password
    if not username:
        return _form_page(request, target, error=_("Enter your username."), status=400)
    if needs_password and (not password or len(password) > MAX_PASSWORD):
        return _form_page(
            request, target, username=username, error=_("Enter your password."), status=400
        )

    if target.application is None:
        outcome = await start_console_sign_in(
            request, runtime, username, Secret(password), target.return_to
        )
        if outcome.redirect is not None:
            return RedirectResponse(outcome.redirect, status_code=303)
        return _form_page(request, target, username=username, error=outcome.error)

    application = target.application
    status = await runtime.login.start_login(
        LoginRequest(
            application=application.name,
            username=username,
            password=Secret(password) if needs_password else None,
            client_ip=client_ip(request, runtime.settings),
            user_agent=request.headers.get("user-agent"),
            source="hosted login",
            language=request_language(request),
        )
    )
    if status.status == PENDING and status.transaction_id and status.expires_at:
        PendingLogin(
            transaction_id=status.transaction_id,
            purpose=PURPOSE_SSO,
            username=status.username or username,
            verification=status.verification or "tap",
            expires_at=status.expires_at.isoformat(),
            retry_url=login_url(application.name, target.return_to),
            number=status.number,
            application=application.name,
            return_to=target.return_to,
        ).save(request)
        return RedirectResponse("/login/wait", status_code=303)
    return _form_page(
        request,
        target,
        username=username,
        error=rejection_message(_, status.reason, status.retry_after),
    )


async def _complete_sso(
    request: Request, runtime: Runtime, pending: PendingLogin, row: TransactionRow
) -> Response:
    continue_url = with_transaction(pending.return_to, row.id) if pending.return_to else None
    log.info("hosted login approved transaction=%s application=%s", row.id, row.application)
    return render(
        request,
        "login/approved.html",
        {
            "application": pending.application,
            "continue_url": continue_url,
            "retry_url": pending.retry_url,
        },
    )


register_completion(PURPOSE_SSO, _complete_sso)
