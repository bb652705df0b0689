"""The three requests of every push login and the device stream, served in front of FastAPI.

A push login is `POST /api/v1/auth`, `GET /api/v1/auth/{id}?wait=` and the device's
`POST /device/v1/answer`. Through FastAPI each of them paid for route matching over every page,
dependency solving and six middleware wrappers, which was about a third of the server's CPU per
login in the benchmark (docs/benchmarks.md). A device's `GET /device/v1/stream` is held open
for hours. Through FastAPI and Starlette's streaming response each held stream kept about 33
coroutines and a task group alive. Every full garbage collection walks them all, and with 1,000
streams a collection stopped the event loop for 60 ms or more.

This application serves those requests itself when they are well formed. It calls the same
functions as the FastAPI routes and maps errors through the same `error_for`, so a request gets
the same response either way. A request it does not take at once (a body that fails
validation, an unusual query string, another content type) goes on to FastAPI unchanged with
its body replayed, so FastAPI's validation messages stay the only ones.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tapgate import jsondepth
from tapgate.api.auth_routes import (
    MAX_WAIT_SECONDS,
    AuthStart,
    application_for_header,
    start_login_response,
    status_response,
)
from tapgate.api.device_routes import (
    STREAM_HEADERS,
    answer_response,
    connect_stream,
    signed_device_of,
    stream_events,
)
from tapgate.api.errors import duplicate_key_error, error_for, error_response
from tapgate.api.limits import (
    BODY_TIMEOUT_SECONDS,
    MAX_BODY_BYTES,
    reject_slow_body,
    reject_too_large,
)
from tapgate.delivery.direct import StreamQueue
from tapgate.runtime import Runtime
from tapgate.web.security import security_headers

AUTH_PATH = "/api/v1/auth"
_STATUS_PREFIX = AUTH_PATH + "/"
ANSWER_PATH = "/device/v1/answer"
STREAM_PATH = "/device/v1/stream"
_STREAM_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in STREAM_HEADERS
]
# The same rule as the FastAPI route's path parameter, anchored at both ends.
_TRANSACTION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The one query string the login's status request sends. FastAPI parses any other.
_WAIT_QUERY = re.compile(rb"wait=([0-9]{1,3}(?:\.[0-9]{1,6})?)")


# No route takes NUL in its path or query, and PostgreSQL rejects it in text parameters, so
# such an address is refused before any route reads it into a query.
_NUL_IN_ADDRESS = error_response(
    400, "invalid_request", "the address contains a NUL character (%00); remove it"
)


class HotPaths:
    """The server's outermost ASGI application (see `api.app.create_server_app`): it serves the
    push login's requests and passes every other one on to FastAPI."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        runtime: Runtime,
        limit: int = MAX_BODY_BYTES,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.limit = limit
        self.body_timeout = body_timeout
        self.extra_headers = security_headers(
            https=runtime.settings.public_url.startswith("https://")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A mount prefix (root_path) changes what FastAPI matches, so FastAPI serves those requests.
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == AUTH_PATH:
                handler = self._start
            elif method == "GET" and path.startswith(_STATUS_PREFIX):
                handler = self._status
            elif method == "POST" and path == ANSWER_PATH:
                handler = self._answer
            elif method == "GET" and path == STREAM_PATH:
                handler = self._stream
            else:
                if "\x00" in path or b"%00" in scope["query_string"]:
                    await self._send(send, _NUL_IN_ADDRESS)
                    return
                await self.app(scope, receive, send)
                return
            # The same check as BodyLimit's, on any method: the last Content-Length header.
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                await reject_too_large(send, self.limit, self.extra_headers)
                return
            await handler(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _start(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await self._read_body(scope, receive, send)
        if raw is None:
            return
        # FastAPI reads the body before it checks the bearer token, so a body that is not JSON
        # goes to FastAPI first, and one that fails validation only after the token check.
        try:
            document = _json_document(_header(scope, b"content-type"), raw)
        except jsondepth.DuplicateKey as exc:
            await self._send(send, _expected(duplicate_key_error(exc), scope))
            return
        if document is None:
            await self.app(scope, _replay(raw, receive), send)
            return
        try:
            application = await application_for_header(
                self.runtime, _header(scope, b"authorization")
            )
        except Exception as exc:
            await self._send(send, _expected(exc, scope))
            return
        body = _auth_start(document)
        if body is None:
            await self.app(scope, _replay(raw, receive), send)
            return
        try:
            response = await start_login_response(
                self.runtime, application, body, _header(scope, b"accept-language")
            )
        except Exception as exc:
            response = _expected(exc, scope)
        await self._send(send, response)

    async def _status(self, scope: Scope, receive: Receive, send: Send) -> None:
        transaction_id = scope["path"][len(_STATUS_PREFIX) :]
        wait = _wait_seconds(scope["query_string"])
        if wait is None or not _TRANSACTION_ID.fullmatch(transaction_id):
            await self.app(scope, receive, send)
            return
        try:
            application = await application_for_header(
                self.runtime, _header(scope, b"authorization")
            )
            response = await status_response(self.runtime, application, transaction_id, wait)
        except Exception as exc:
            response = _expected(exc, scope)
        await self._send(send, response)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await self._read_body(scope, receive, send)
        if raw is None:
            return
        try:
            response = await answer_response(self.runtime, raw)
        except Exception as exc:
            response = _expected(exc, scope)
        await self._send(send, response)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        try:
            device = await signed_device_of(
                runtime, _header(scope, b"authorization"), "GET", STREAM_PATH
            )
        except Exception as exc:
            await self._send(send, _expected(exc, scope))
            return
        queue, backlog = await connect_stream(runtime, device)
        # The stream lives for hours, so it keeps only the device's id.
        device_id = device.id
        del device
        events = stream_events(runtime, device_id, queue, backlog)

        # uvicorn drops writes to a closed connection silently, so only `receive` reports the
        # disconnect.
        # NOTE: a client that stays connected but stops reading keeps its stream until TCP
        # gives up. Once the socket buffers are full this task waits in `send`, so it never
        # reads the end marker that a full queue gets.
        listener = asyncio.ensure_future(_end_on_disconnect(receive, queue))

        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": _STREAM_HEADERS + self.extra_headers,
                }
            )
            async for chunk in events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            listener.cancel()
            await events.aclose()

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """Return the whole body, or None once a 413 or 408 is sent or the client has gone."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        await reject_too_large(send, self.limit, self.extra_headers)
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            await reject_slow_body(send, self.body_timeout, scope, self.extra_headers)
            return None

    async def _send(self, send: Send, response: JSONResponse) -> None:
        # The response is built here, not by another middleware, so none of the security
        # headers can be present already.
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers + self.extra_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})


async def _end_on_disconnect(receive: Receive, queue: StreamQueue) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    queue.end()


def _expected(exc: Exception, scope: Scope) -> JSONResponse:
    response = error_for(exc, scope["path"])
    if response is None:
        # Not an expected error: uvicorn logs it and returns 500, as for the routes behind.
        raise exc
    return response


def _header(scope: Scope, name: bytes) -> str | None:
    """Return the first value of header `name` (lower case), as Starlette's `Headers.get` does."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _json_document(content_type: str | None, raw: bytes) -> dict[str, Any] | None:
    """Return the body's JSON object, or None when FastAPI should judge the body."""
    # Only a JSON content type: without one, FastAPI versions differ (recent ones reject it).
    if content_type is None:
        return None
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        value = jsondepth.loads(raw)
    except jsondepth.DuplicateKey:
        raise  # FastAPI's parser would keep the last value silently
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _auth_start(document: dict[str, Any]) -> AuthStart | None:
    """Return the login's body, or None when it is invalid and FastAPI should reject it."""
    try:
        return AuthStart.model_validate(document)
    except ValidationError:
        return None


def _wait_seconds(query: bytes) -> float | None:
    """Return the `wait` of a status request, or None when FastAPI should parse the query."""
    if not query:
        return 0.0
    match = _WAIT_QUERY.fullmatch(query)
    if match is None:
        return None
    seconds = float(match.group(1))
    return seconds if seconds <= MAX_WAIT_SECONDS else None


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a `receive` that hands FastAPI the body already read, then the client's events."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
