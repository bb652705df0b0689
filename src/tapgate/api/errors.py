"""Map tapgate's errors to JSON `{"error": CODE, "message": TEXT}` responses; never a 500 for
bad input."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from tapgate import jsondepth
from tapgate.api.limits import (
    MAX_BODY_BYTES,
    BodyTimeout,
    BodyTooLarge,
    log_slow_body,
    slow_body_message,
)
from tapgate.errors import DeviceAuthError, NotFoundError, ObjectError, RequestError

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError, content_type: str | None) -> str:
    parts = []
    json_sent = (content_type or "").partition(";")[0].strip().lower() == "application/json"
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            return "request body is not valid JSON"
        if not location and not json_sent:
            # FastAPI parses a body as JSON only with this content type. Without it the body
            # fails the model with a message that never names the header.
            return (
                f"request body must be a JSON object sent with Content-Type: application/json "
                f"(got {content_type or 'no Content-Type'!r})"
            )
        if not location:
            return "request body must be a JSON object"
        where = error.get("loc", ("body",))[0]
        value = error.get("input")
        if where in ("query", "path") and isinstance(value, str):
            # Only the address's own parts are echoed: a body field may be a password.
            message = f"{message} (got {value[:40]!r})"
        parts.append(f"{location or 'body'}: {message}")
    return "; ".join(parts) or "invalid request"


def error_for(exc: Exception, path: str) -> JSONResponse | None:
    """Return the response for one of tapgate's expected errors, or None for any other error.

    FastAPI's exception handlers and the login's hot path (`tapgate.api.hotpath`) both answer
    through this, so a route gives the same error whichever of them served it.
    """
    if isinstance(exc, RequestError):
        return error_response(exc.status, exc.code, str(exc))
    if isinstance(exc, NotFoundError):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, ObjectError):
        return error_response(400, exc.code, str(exc))
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is unreachable, as during a restart or a failover. That is an expected
        # failure: fail closed with a status that balancers and applications retry, and log one
        # line instead of a traceback.
        detail = (str(exc.orig).strip().splitlines() or [""])[0]
        log.warning("database unavailable path=%r error=%s", path, detail)
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; retry shortly",
            {"Retry-After": "1"},
        )
    if isinstance(exc, DeviceAuthError):
        log.info("device request rejected path=%r detail=%s", path, exc.detail)
        return error_response(401, "device_auth_failed", "device request rejected")
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            400,
            "invalid_request",
            _describe_validation(exc, request.headers.get("content-type")),
        )

    @app.exception_handler(RequestError)
    @app.exception_handler(NotFoundError)
    @app.exception_handler(ObjectError)
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(DeviceAuthError)
    async def _expected(request: Request, exc: Exception) -> JSONResponse:
        response = error_for(exc, request.url.path)
        if response is None:  # only the classes above reach this handler
            raise exc
        return response

    @app.exception_handler(ClientDisconnect)
    async def _disconnect(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client went away while sending its body; no response can reach it.
        log.info("client disconnected during the request body path=%r", request.url.path)
        return error_response(400, "invalid_request", "the client disconnected")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI returns 400 when it cannot parse a body for a model. That includes a body sent
        # without Content-Length that BodyLimit stopped, which gets the limit's 413 instead.
        if exc.status_code == 400 and isinstance(exc.__cause__, BodyTooLarge):
            return error_response(413, "too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
        if exc.status_code == 400 and isinstance(exc.__cause__, BodyTimeout):
            seconds = exc.__cause__.seconds
            client = request.client.host if request.client else "-"
            log_slow_body(request.scope["path"], client, seconds)
            return error_response(
                408,
                "request_timeout",
                slow_body_message(seconds),
                headers={"Connection": "close"},
            )
        # FastAPI's message for these two is only "There was an error parsing the body".
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            return error_response(
                400, "invalid_request", "request body is not valid JSON: it nests too deep"
            )
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeError):
            return error_response(
                400, "invalid_request", "request body is not valid JSON: it is not UTF-8 text"
            )
        codes = {
            400: "invalid_request",
            401: "unauthorized",
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
        }
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )


def duplicate_key_error(exc: jsondepth.DuplicateKey) -> RequestError:
    """Return the 400 for a request body whose object names one key twice."""
    return RequestError(
        f"request body names the key {exc.key!r} twice in one object; send each key once",
        "invalid_request",
        400,
    )
