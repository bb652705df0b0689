"""The request body limit and timeout, driven as a bare ASGI middleware."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from tapgate.api.errors import install_error_handlers
from tapgate.api.limits import MAX_BODY_BYTES, BodyLimit, log_slow_body

LIMIT = 1024


class Code(BaseModel):
    code: str


class EchoApp:
    """An ASGI app that reads the whole body and responds 200 with its length."""

    def __init__(self) -> None:
        self.called = False
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        payload = str(len(self.body)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": payload})


async def post(
    app: Any, chunks: list[bytes], content_length: int | None = None, limit: int = LIMIT
) -> list[Message]:
    """Send one POST with `chunks` as the body through BodyLimit and return the messages sent."""
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "method": "POST", "path": "/api/v1/auth", "headers": headers}
    pending = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await BodyLimit(app, limit=limit)(scope, receive, send)
    return sent


def status(sent: list[Message]) -> int:
    return int(sent[0]["status"])


def body(sent: list[Message]) -> bytes:
    return b"".join(message.get("body", b"") for message in sent[1:])


async def test_declared_over_limit_413() -> None:
    sent = await post(EchoApp(), [b"{}"], content_length=LIMIT + 1)
    assert status(sent) == 413


async def test_declared_over_limit_json() -> None:
    sent = await post(EchoApp(), [b"{}"], content_length=LIMIT + 1)
    assert json.loads(body(sent))["error"] == "too_large"


async def test_declared_over_limit_content_type() -> None:
    sent = await post(EchoApp(), [b"{}"], content_length=LIMIT + 1)
    assert (b"content-type", b"application/json") in sent[0]["headers"]


async def test_declared_over_limit_skips_app() -> None:
    app = EchoApp()
    await post(app, [b"{}"], content_length=LIMIT + 1)
    assert app.called is False


async def test_chunked_over_limit_413() -> None:
    chunks = [b"x" * 400] * 3
    sent = await post(EchoApp(), chunks)
    assert status(sent) == 413


async def test_chunked_over_limit_json() -> None:
    sent = await post(EchoApp(), [b"x" * 400] * 3)
    assert json.loads(body(sent))["error"] == "too_large"


async def test_understated_length_413() -> None:
    sent = await post(EchoApp(), [b"x" * 600, b"x" * 600], content_length=10)
    assert status(sent) == 413


async def test_under_limit_passes() -> None:
    payload = '{"username": "ayşe"}'.encode()
    sent = await post(EchoApp(), [payload], content_length=len(payload))
    assert (status(sent), body(sent)) == (200, str(len(payload)).encode())


async def test_exact_limit_passes() -> None:
    sent = await post(EchoApp(), [b"x" * 512, b"x" * 512])
    assert (status(sent), body(sent)) == (200, str(LIMIT).encode())


async def test_chunks_reach_app() -> None:
    app = EchoApp()
    await post(app, [b'{"username": ', b'"ismail"}'])
    assert app.body == b'{"username": "ismail"}'


async def test_default_limit_64_kib() -> None:
    sent = await post(EchoApp(), [b"{}"], content_length=MAX_BODY_BYTES + 1, limit=MAX_BODY_BYTES)
    assert status(sent) == 413


async def test_lifespan_passes_through() -> None:
    app = EchoApp()

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await BodyLimit(app, limit=LIMIT)({"type": "lifespan"}, receive, send)
    assert app.called is True


async def stalled_post(
    app: Any, first: bytes, timeout: float, path: str = "/api/v1/auth"
) -> tuple[list[Message], int]:
    """Send the first chunk of a body announced as longer, then nothing. Return the messages
    sent and how many times the app called `receive`."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "headers": headers,
    }
    reads = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        if reads == 1:
            return {"type": "http.request", "body": first, "more_body": True}
        await asyncio.Event().wait()  # the client never sends the rest
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    limited = app if isinstance(app, FastAPI) else BodyLimit(app, limit=LIMIT, timeout=timeout)
    await asyncio.wait_for(limited(scope, receive, send), 5)
    return sent, reads


async def test_stalled_body_408() -> None:
    app = EchoApp()
    sent, reads = await stalled_post(app, '{"username": "ış'.encode(), timeout=0.05)
    assert status(sent) == 408
    assert reads == 2
    assert (b"connection", b"close") in sent[0]["headers"]
    document = json.loads(body(sent))
    assert document["error"] == "request_timeout"
    assert "Content-Length" in document["message"]


async def test_body_timeout_from_first_read() -> None:
    """A body sent a byte at a time, each just inside the timeout, still runs out of time."""
    headers = [(b"content-type", b"application/json")]
    scope = {"type": "http", "method": "POST", "path": "/api/v1/auth", "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(0.03)
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(BodyLimit(EchoApp(), limit=LIMIT, timeout=0.1)(scope, receive, send), 5)
    assert status(sent) == 408


def body_then_disconnect(first: bytes, more_body: bool) -> Receive:
    """Return a `receive` that gives `first`, then reports a disconnect 0.2 s later."""
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        if reads == 1:
            return {"type": "http.request", "body": first, "more_body": more_body}
        await asyncio.sleep(0.2)
        return {"type": "http.disconnect"}

    return receive


async def test_no_timeout_after_body() -> None:
    """Once the body is in, `receive` waits for a disconnect as long as the app wants."""
    scope = {"type": "http", "method": "GET", "path": "/device/v1/stream", "headers": []}
    receive = body_then_disconnect(b"", more_body=False)

    async def holding_app(scope: Scope, inner: Receive, send: Send) -> None:
        await inner()
        assert (await inner())["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await BodyLimit(holding_app, limit=LIMIT, timeout=0.05)(scope, receive, send)
    assert status(sent) == 200


async def test_started_stream_ignores_body_deadline() -> None:
    """A streaming response watches for the disconnect through `receive`, even while an
    unread body is still announced. The body's deadline must not cut the stream."""
    headers = [(b"content-length", b"10")]
    scope = {"type": "http", "method": "GET", "path": "/login/events", "headers": headers}
    receive = body_then_disconnect(b"ab", more_body=True)

    async def streaming_app(scope: Scope, inner: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        while (await inner())["type"] != "http.disconnect":
            pass
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await BodyLimit(streaming_app, limit=LIMIT, timeout=0.05)(scope, receive, send)
    assert status(sent) == 200
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_stalled_model_body_408_not_400() -> None:
    """FastAPI turns an error while it reads a model's body into 400, but a timeout stays 408."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/api/v1/auth/{transaction_id}/code")
    async def submit(transaction_id: str, body: Code) -> dict[str, str]:
        return {"code": body.code}

    app.add_middleware(BodyLimit, limit=LIMIT, timeout=0.05)
    sent, _ = await stalled_post(app, b'{"code": "12', timeout=5, path="/api/v1/auth/tx-ş/code")
    assert status(sent) == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(body(sent))["error"] == "request_timeout"


def test_slow_body_log_escapes_path(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tapgate.api.limits")
    log_slow_body("/register/devices/x\nFORGED LINE", "127.0.0.1", 30)
    assert "\n" not in caplog.records[0].getMessage()
    assert "x\\nFORGED LINE" in caplog.records[0].getMessage()
