"""The page that waits for a push, shared by the hosted login, the console and registration.

A sign-in that sent a push stores a `PendingLogin` in the session and sends the browser to
`/login/wait`. That page shows the number to type on the phone and follows the transaction over
server-sent events. When the transaction is final, the browser goes to `/login/done`. An approved
transaction is handed to the completion of its purpose (sso, console or registration); any other
end is shown with its reason and a way to try again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from tapgate.errors import NotFoundError, RequestError
from tapgate.push.ports import APPROVED, PENDING
from tapgate.runtime import Runtime
from tapgate.store.models import TransactionRow
from tapgate.web.forms import read_form
from tapgate.web.messages import status_message
from tapgate.web.rendering import render, translator
from tapgate.web.security import require_csrf

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

PURPOSE_SSO = "sso"
PURPOSE_CONSOLE = "console"
PURPOSE_REGISTRATION = "registration"
_SESSION_KEY = "pending_login"
# An approved transaction completes a sign-in only this soon after it was approved, and once.
COMPLETION_WINDOW = timedelta(minutes=5)
_HEARTBEAT_SECONDS = 15.0
_CONSUMED = "web_completed"


@dataclass
class PendingLogin:
    """A transaction this browser started and waits for; kept in the signed session cookie."""

    transaction_id: str
    purpose: str
    username: str
    verification: str
    expires_at: str
    retry_url: str
    number: str | None = None
    application: str | None = None
    return_to: str | None = None
    admin_id: str | None = None

    def save(self, request: Request) -> None:
        request.session[_SESSION_KEY] = asdict(self)

    @classmethod
    def load(cls, request: Request) -> PendingLogin | None:
        data = request.session.get(_SESSION_KEY)
        if not isinstance(data, dict):
            return None
        try:
            return cls(**data)
        except TypeError:
            return None

    @staticmethod
    def clear(request: Request) -> None:
        request.session.pop(_SESSION_KEY, None)


Completion = Callable[[Request, Runtime, PendingLogin, TransactionRow], Awaitable[Response]]
_completions: dict[str, Completion] = {}


def register_completion(purpose: str, completion: Completion) -> None:
    """Set what `/login/done` does with an approved transaction of `purpose`."""
    _completions[purpose] = completion


def login_url(application: str | None, return_to: str | None) -> str:
    """Return the `/login` address that starts a sign-in to `application` (None: the console)."""
    query = {
        key: value
        for key, value in (("application", application), ("return_to", return_to))
        if value
    }
    return "/login" + (f"?{urlencode(query)}" if query else "")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def consume_approved(runtime: Runtime, pending: PendingLogin) -> TransactionRow | None:
    """Return the approved transaction and mark it used, or None if it may not complete a sign-in.

    Marking it in the row means an old copy of the session cookie cannot complete the same
    sign-in a second time.
    """
    now = runtime.clock.now()
    async with runtime.database.write() as session:
        row = await session.get(TransactionRow, pending.transaction_id)
        if row is None or row.status != APPROVED or row.resolved_at is None:
            return None
        if now - row.resolved_at > COMPLETION_WINDOW or row.context.get(_CONSUMED):
            return None
        row.context = {**row.context, _CONSUMED: now.isoformat()}
        return row


@router.get("/login/wait")
async def wait_page(request: Request) -> Response:
    pending = PendingLogin.load(request)
    if pending is None:
        return _see_other("/login")
    runtime = runtime_of(request)
    try:
        status = await runtime.login.get_status(pending.transaction_id)
    except NotFoundError:
        PendingLogin.clear(request)
        return _see_other(pending.retry_url)
    if status.final:
        return _see_other("/login/done")

    return render(
        request,
        "login/wait.html",
        {
            "pending": pending,
            "expires_at": datetime.fromisoformat(pending.expires_at),
            "code_error": None,
        },
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/login/events")
async def wait_events(request: Request) -> Response:
    """Stream the transaction's status: comments while it is pending, one event when it ends."""
    pending = PendingLogin.load(request)
    if pending is None:
        return JSONResponse(
            {"error": "not_found", "message": "no sign-in is waiting"}, status_code=404
        )
    runtime = runtime_of(request)
    transaction_id = pending.transaction_id
    expires_at = datetime.fromisoformat(pending.expires_at)

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        while True:
            try:
                status = await runtime.login.wait_for_status(transaction_id, _HEARTBEAT_SECONDS)
            except NotFoundError:
                yield _event("status", {"status": "missing", "final": True, "next": "/login/done"})
                return
            if status.final:
                yield _event(
                    "status", {"status": status.status, "final": True, "next": "/login/done"}
                )
                return
            if runtime.clock.now() > expires_at + timedelta(seconds=30):
                # The sweeper expires the transaction; stop instead of waiting on a stuck one.
                yield _event(
                    "status", {"status": status.status, "final": False, "next": "/login/done"}
                )
                return
            yield b": pending\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/login/status")
async def wait_status(request: Request) -> JSONResponse:
    """Return the waiting transaction's status as JSON, for browsers whose event stream broke."""
    pending = PendingLogin.load(request)
    if pending is None:
        return JSONResponse(
            {"error": "not_found", "message": "no sign-in is waiting"}, status_code=404
        )
    try:
        status = await runtime_of(request).login.get_status(pending.transaction_id)
    except NotFoundError:
        return JSONResponse({"status": "missing", "final": True})
    return JSONResponse({"status": status.status, "final": status.final})


@router.post("/login/code")
async def submit_code(request: Request) -> Response:
    """Complete a code-mode transaction with the code the phone showed."""
    pending = PendingLogin.load(request)
    if pending is None:
        return _see_other("/login")
    _ = translator(request)
    form = await read_form(request)
    code = "".join(form.text("code", 32).split())

    error = None
    if not (code.isascii() and code.isdigit()):
        error = _("Type the digits your phone shows.")
    else:
        try:
            status = await runtime_of(request).login.submit_code(pending.transaction_id, code)
        except RequestError as exc:
            if exc.code == "code_not_issued":
                error = _("Approve the sign-in on your phone first; it then shows the code.")
            else:
                error = _("Type the digits your phone shows.")
        except NotFoundError:
            PendingLogin.clear(request)
            return _see_other(pending.retry_url)
        else:
            if status.final:
                return _see_other("/login/done")
            error = _("That code is wrong. Check your phone and type it again.")

    return render(
        request,
        "login/wait.html",
        {
            "pending": pending,
            "expires_at": datetime.fromisoformat(pending.expires_at),
            "code_error": error,
        },
        status=400,
    )


@router.post("/login/cancel")
async def cancel(request: Request) -> Response:
    pending = PendingLogin.load(request)
    if pending is None:
        return _see_other("/login")
    with contextlib.suppress(NotFoundError):
        await runtime_of(request).login.cancel(pending.transaction_id)
    PendingLogin.clear(request)
    return _see_other(pending.retry_url)


@router.get("/login/done")
async def done(request: Request) -> Response:
    pending = PendingLogin.load(request)
    if pending is None:
        return _see_other("/login")
    runtime = runtime_of(request)
    try:
        status = await runtime.login.get_status(pending.transaction_id)
    except NotFoundError:
        PendingLogin.clear(request)
        return _see_other(pending.retry_url)
    if status.status == PENDING:
        return _see_other("/login/wait")

    PendingLogin.clear(request)
    if status.status == APPROVED:
        row = await consume_approved(runtime, pending)
        completion = _completions.get(pending.purpose)
        if row is not None and completion is not None:
            return await completion(request, runtime, pending, row)
        log.info(
            "approved transaction not completed transaction=%s purpose=%s",
            pending.transaction_id,
            pending.purpose,
        )

    _ = translator(request)
    message = status_message(_, status.status, status.reason)
    if status.status == APPROVED:
        message = _("This sign-in was already used. Sign in again.")
    return render(
        request,
        "login/result.html",
        {
            "status": status.status,
            "message": message,
            "retry_url": pending.retry_url,
            "application": pending.application,
        },
    )
