"""An ASGI middleware that rejects request bodies over a size limit with 413, and bodies that
do not arrive in time with 408.

uvicorn has no timeout for a request body. A client that announces more bytes in
Content-Length than it sends would keep its request, and the task serving it, until it
disconnects. nginx returns 408 when a client sends nothing for `client_body_timeout` (60 s by
default, counted between two reads). The bodies here are at most 64 KiB, so the whole body
gets one deadline instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# Extra response headers, such as the security headers on the hot path.
Headers = Sequence[tuple[bytes, bytes]]
# From the first read of the body to its last byte. A push login's body is a few hundred bytes.
BODY_TIMEOUT_SECONDS = 30.0


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"request body timed out after {seconds:g} seconds")
        self.seconds = seconds


class BodyLimit:
    def __init__(
        self, app: ASGIApp, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT_SECONDS
    ) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await reject_too_large(send, self.limit)
            return
        received = 0
        started = False
        complete = False
        deadline: float | None = None

        async def limited_receive() -> Message:
            nonlocal received, complete, deadline
            if complete or started:
                # After the body, or once a response streams, `receive` only waits for the
                # client to disconnect, however long that takes.
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge()
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await reject_too_large(send, self.limit)
        except BodyTimeout:
            if not started:
                await reject_slow_body(send, self.timeout, scope)


async def reject_too_large(send: Send, limit: int, extra: Headers = ()) -> None:
    body: dict[str, Any] = {"error": "too_large", "message": f"request body exceeds {limit} bytes"}
    await _reject(send, 413, body, extra)


async def reject_slow_body(send: Send, timeout: float, scope: Scope, extra: Headers = ()) -> None:
    """Send 408 and close the connection, because the rest of the body may still arrive and
    must not be read as the next request."""
    client = scope.get("client") or ("-", 0)
    log_slow_body(scope["path"], str(client[0]), timeout)
    body: dict[str, Any] = {"error": "request_timeout", "message": slow_body_message(timeout)}
    await _reject(send, 408, body, [(b"connection", b"close"), *extra])


def log_slow_body(path: str, client: str, timeout: float) -> None:
    # %r, because the path is percent-decoded and may carry a newline.
    log.info("request body timed out path=%r client=%s seconds=%g", path, client, timeout)


def slow_body_message(timeout: float) -> str:
    return (
        f"request body timed out after {timeout:g} seconds; send as many bytes as "
        "Content-Length announces"
    )


async def _reject(send: Send, status: int, body: dict[str, Any], extra: Headers = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
