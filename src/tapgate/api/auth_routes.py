"""The Auth API: OAuth 2.0 token, start a login, read or await its status, submit a code."""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tapgate import jsondepth
from tapgate.api.clients import application_for_token, issue_token
from tapgate.api.errors import duplicate_key_error, error_response
from tapgate.errors import NotFoundError, RequestError
from tapgate.i18n import pick_language
from tapgate.identifiers import is_identifier
from tapgate.push.ports import LoginRequest, LoginStatus
from tapgate.runtime import Runtime
from tapgate.secret import Secret

log = logging.getLogger(__name__)
router = APIRouter()
MAX_WAIT_SECONDS = 120


async def runtime(request: Request) -> Runtime:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread
    # hand-off on every request for one attribute read.
    value: Runtime = request.app.state.runtime
    return value


RuntimeDep = Annotated[Runtime, Depends(runtime)]


class AuthStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=256)
    password: str | None = Field(default=None, max_length=1024)
    client_ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=1024)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not value.isprintable():
            for character in value:
                if ord(character) < 0x20 or ord(character) == 0x7F:
                    raise ValueError(
                        f"username contains the control character U+{ord(character):04X}; "
                        "send the name as the user types it"
                    )
        return value

    @field_validator("client_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
        # One spelling per address, so rate limits and the audit log count it once: IPv4-mapped
        # IPv6 becomes IPv4 and a zone index (fe80::1%eth0) is dropped.
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Address(address.packed))
        return str(address)


class CodeSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=16)


def status_body(status: LoginStatus, *, include_number: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"transaction_id": status.transaction_id, "status": status.status}
    if status.reason:
        body["reason"] = status.reason
    if status.retry_after is not None:
        body["retry_after"] = status.retry_after
    if status.expires_at and status.status == "pending":
        body["expires_at"] = status.expires_at.isoformat()
        body["delivered"] = status.delivered
    if include_number and status.number is not None:
        body["number"] = status.number
    return body


async def application_for_header(rt: Runtime, header: str | None) -> str:
    """Return the application named by an `Authorization: Bearer` header, or raise 401."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestError(
            "missing bearer token; get one from POST /oauth/token", "invalid_token", 401
        )
    application = await application_for_token(
        rt.database, rt.keyring, rt.tokens, token.strip(), rt.clock.now()
    )
    if application is None:
        raise RequestError(
            "bearer token is invalid or expired; request a new one", "invalid_token", 401
        )
    return application


async def bearer_application(request: Request, rt: RuntimeDep) -> str:
    return await application_for_header(rt, request.headers.get("authorization"))


ApplicationDep = Annotated[str, Depends(bearer_application)]


# The shape of the ids `tapgate client add` issues ("tg_" and 16 base64url characters).
_CLIENT_ID = re.compile(r"tg_[A-Za-z0-9_-]{16}")


def _loggable_client_id(client_id: str) -> str:
    """Return the client id for the log, unless it does not look like one.

    A client that swaps its id and secret sends the secret as the id, and a secret must never
    reach the log."""
    if _CLIENT_ID.fullmatch(client_id):
        return repr(client_id)
    return f"(not a client id, {len(client_id)} characters)"


@router.post("/oauth/token", tags=["oauth"])
async def token(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Issue a bearer token for client credentials given by HTTP Basic or in the form body."""
    raw = (await request.body()).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    if form.get("grant_type") != "client_credentials":
        return error_response(
            400, "unsupported_grant_type", "grant_type must be client_credentials"
        )
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return error_response(401, "invalid_client", "malformed Basic credentials")
        user, _, password = decoded.partition(":")
        client_id, client_secret = unquote(user), unquote(password)
    if not client_id or not client_secret:
        return error_response(
            401, "invalid_client", "client credentials missing", {"WWW-Authenticate": "Basic"}
        )
    issued = None
    if is_identifier(client_id):
        async with rt.database.write() as session:
            issued = await issue_token(
                session, rt.keyring, client_id, client_secret, rt.clock.now()
            )
    if issued is None:
        log.info("token request rejected client_id=%s", _loggable_client_id(client_id))
        return error_response(
            401, "invalid_client", "unknown client or wrong secret", {"WWW-Authenticate": "Basic"}
        )
    access_token, lifetime = issued
    return JSONResponse(
        {"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime},
        headers={"Cache-Control": "no-store"},
    )


@router.post("/api/v1/auth", tags=["auth"])
async def start_auth(
    body: AuthStart, request: Request, rt: RuntimeDep, application: ApplicationDep
) -> JSONResponse:
    """Start a login; 202 with a pending transaction, or 200 with a final status at once."""
    # FastAPI's parser keeps the last of two equal keys; this route takes neither, as the hot
    # path in front of it does.
    try:
        jsondepth.loads(await request.body())
    except jsondepth.DuplicateKey as exc:
        raise duplicate_key_error(exc) from exc
    except ValueError:
        pass  # FastAPI has parsed the body already
    return await start_login_response(rt, application, body, request.headers.get("accept-language"))


async def start_login_response(
    rt: Runtime, application: str, body: AuthStart, accept_language: str | None
) -> JSONResponse:
    login_request = LoginRequest(
        application=application,
        username=body.username,
        password=Secret(body.password) if body.password is not None else None,
        client_ip=body.client_ip,
        user_agent=body.user_agent,
        source=f"api:{application}",
        language=pick_language(accept_language),
    )
    status = await rt.login.start_login(login_request)
    return JSONResponse(
        status_body(status, include_number=True),
        status_code=202 if status.status == "pending" else 200,
    )


async def _owned_status(rt: Runtime, application: str, transaction_id: str) -> LoginStatus:
    status = await rt.login.get_status(transaction_id)
    if status.application != application:
        raise NotFoundError(f"transaction {transaction_id!r} not found")
    return status


TransactionId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/api/v1/auth/{transaction_id}", tags=["auth"])
async def auth_status(
    transaction_id: TransactionId,
    rt: RuntimeDep,
    application: ApplicationDep,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> JSONResponse:
    """Return the status; with `wait`, hold the request until it changes or the seconds pass."""
    return await status_response(rt, application, transaction_id, wait)


async def status_response(
    rt: Runtime, application: str, transaction_id: str, wait: float
) -> JSONResponse:
    if wait:
        status = await rt.login.wait_for_status(
            transaction_id, wait, application=application, end_on_shutdown=True
        )
    else:
        status = await _owned_status(rt, application, transaction_id)
    return JSONResponse(status_body(status))


@router.post("/api/v1/auth/{transaction_id}/code", tags=["auth"])
async def auth_code(
    transaction_id: TransactionId, body: CodeSubmission, rt: RuntimeDep, application: ApplicationDep
) -> JSONResponse:
    """Complete a code-mode transaction with the code the phone showed the user."""
    await _owned_status(rt, application, transaction_id)
    status = await rt.login.submit_code(transaction_id, body.code)
    return JSONResponse(status_body(status))


@router.delete("/api/v1/auth/{transaction_id}", tags=["auth"])
async def auth_cancel(
    transaction_id: TransactionId, rt: RuntimeDep, application: ApplicationDep
) -> JSONResponse:
    """Cancel a pending login (the user closed the login page)."""
    await _owned_status(rt, application, transaction_id)
    await rt.login.cancel(transaction_id)
    return JSONResponse(status_body(await rt.login.get_status(transaction_id)))
