"""Map tapgate's errors to JSON `{"error": CODE, "message": TEXT}` responses; never a 500 for
bad input."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tapgate.errors import DeviceAuthError, NotFoundError, ObjectError, RequestError

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            return "request body is not valid JSON"
        parts.append(f"{location or 'body'}: {message}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid_request", _describe_validation(exc))

    @app.exception_handler(RequestError)
    async def _request(request: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.code, str(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(ObjectError)
    async def _object(request: Request, exc: ObjectError) -> JSONResponse:
        return error_response(400, exc.code, str(exc))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # The database is unreachable, as during a restart or a failover. That is an expected
        # failure: fail closed with a status that balancers and applications retry, and log one
        # line instead of a traceback.
        detail = (str(exc.orig).strip().splitlines() or [""])[0]
        log.warning("database unavailable path=%s error=%s", request.url.path, detail)
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; retry shortly",
            {"Retry-After": "1"},
        )

    @app.exception_handler(DeviceAuthError)
    async def _device(request: Request, exc: DeviceAuthError) -> JSONResponse:
        log.info("device request rejected path=%s detail=%s", request.url.path, exc.detail)
        return error_response(401, "device_auth_failed", "device request rejected")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 400 comes from FastAPI when a body it parses for a model is not JSON or not UTF-8.
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
