"""The push login's hot path (`tapgate.api.hotpath.HotPaths`) compared with FastAPI's routing.

The running server serves `POST /api/v1/auth`, `GET /api/v1/auth/{id}` and
`POST /device/v1/answer` through HotPaths. The reference is the same application built in this
process without HotPaths, over the server's settings, database and key file. A request that the
hot path passes on to FastAPI must get exactly the status and body FastAPI gives it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from tapgate.api.app import create_app, create_server_app
from tapgate.api.hotpath import HotPaths
from tapgate.api.limits import MAX_BODY_BYTES
from tapgate.authenticator.device import fetch_challenges, send_answer
from tapgate.runtime import Runtime
from tapgate.settings import load_settings
from tapgate.store import database as database_module
from tapgate.web.security import security_headers
from tests.e2e.conftest import PASSWORD, enroll_device
from tests.support import Api, Server

AUTH_PATH = "/api/v1/auth"
ANSWER_PATH = "/device/v1/answer"
SECURITY_HEADERS = {name.decode(): value.decode() for name, value in security_headers(https=False)}
OVER_LIMIT = b'{"username": "ayse", "password": "' + b"p" * MAX_BODY_BYTES + b'"}'
# 100 levels: deeper than tapgate's own JSON limit (32), shallower than the parser's recursion.
NESTED_100 = '{"username": "ayşe", "ek": '.encode() + b"[" * 100 + b"]" * 100 + b"}"


@pytest.fixture
def api(server: Server) -> Api:
    return Api(server, "portal")


@pytest.fixture
def transaction_id(api: Api) -> str:
    """Return a finished transaction: berk has no device, so the login is rejected at once."""
    started = api.login("berk", PASSWORD)
    assert started.json()["reason"] == "no_device"
    return str(started.json()["transaction_id"])


@pytest.fixture
async def runtime(server: Server) -> AsyncIterator[Runtime]:
    """Yield a runtime in this process over the running server's settings and database."""
    built = Runtime.build(load_settings(str(server.config), env={}))
    yield built
    await built.close()


def without_hot_paths(runtime: Runtime) -> FastAPI:
    """Return tapgate's application with FastAPI's routing serving every request."""
    return create_app(runtime)


@dataclass
class Pair:
    """The running server, which has HotPaths, and the in-process reference without them."""

    hot: httpx.AsyncClient
    fastapi: httpx.AsyncClient

    async def send(
        self, method: str, path: str, **options: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        hot = await self.hot.request(method, path, **options)
        fastapi = await self.fastapi.request(method, path, **options)
        return hot, fastapi


@pytest.fixture
async def pair(server: Server, runtime: Runtime) -> AsyncIterator[Pair]:
    reference = httpx.ASGITransport(app=without_hot_paths(runtime))
    async with (
        httpx.AsyncClient(base_url=server.base, timeout=30) as hot,
        httpx.AsyncClient(transport=reference, base_url=server.base) as fastapi,
    ):
        yield Pair(hot, fastapi)


def bearer(api: Api) -> dict[str, str]:
    return dict(api.headers)


def split_headers(options: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Return a case's extra headers and its other request options, leaving the case as it is."""
    rest = {key: value for key, value in options.items() if key != "headers"}
    return dict(options.get("headers", {})), rest


# Each case: method, path ({tx} is a finished transaction), request options, status, error code.
FALL_THROUGH = [
    pytest.param(
        "POST",
        AUTH_PATH,
        {"content": '{"username": "ayşe"}'.encode(), "headers": {"Content-Type": "text/plain"}},
        400,
        "invalid_request",
        id="text-plain",
    ),
    pytest.param("POST", AUTH_PATH, {"json": {}}, 400, "invalid_request", id="missing-username"),
    pytest.param(
        "POST",
        AUTH_PATH,
        {"json": {"username": "İsmail", "telefon": "05554443322"}},
        400,
        "invalid_request",
        id="extra-field",
    ),
    pytest.param(
        "POST",
        AUTH_PATH,
        {"content": b'{"username": ', "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_request",
        id="invalid-json",
    ),
    pytest.param(
        "POST",
        AUTH_PATH,
        {"content": NESTED_100, "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_request",
        id="nested-100",
    ),
    pytest.param(
        "POST",
        AUTH_PATH,
        {"content": OVER_LIMIT, "headers": {"Content-Type": "application/json"}},
        413,
        "too_large",
        id="over-limit-content-length",
    ),
    pytest.param("GET", AUTH_PATH + "/{tx}?dil=tr", {}, 200, None, id="unknown-query"),
    pytest.param("GET", AUTH_PATH + "/{tx}?wait=500", {}, 400, "invalid_request", id="wait-500"),
    pytest.param("GET", AUTH_PATH + "/{tx}?wait=", {}, 400, "invalid_request", id="wait-empty"),
    pytest.param("GET", AUTH_PATH + "/abc.def", {}, 400, "invalid_request", id="id-with-dot"),
    pytest.param("GET", AUTH_PATH + "/%2e%2e", {}, 400, "invalid_request", id="id-encoded-dots"),
    pytest.param("GET", AUTH_PATH + "/" + "a" * 65, {}, 400, "invalid_request", id="id-65-chars"),
]


@pytest.mark.parametrize(("method", "path", "options", "status", "error"), FALL_THROUGH)
async def test_fall_through_matches_fastapi(
    pair: Pair,
    api: Api,
    transaction_id: str,
    method: str,
    path: str,
    options: dict[str, Any],
    status: int,
    error: str | None,
) -> None:
    headers, rest = split_headers(options)
    url = path.replace("{tx}", transaction_id)

    hot, fastapi = await pair.send(method, url, headers={**bearer(api), **headers}, **rest)

    assert hot.status_code == status
    assert hot.json().get("error") == error
    assert fastapi.status_code == hot.status_code
    assert fastapi.json() == hot.json()


@pytest.mark.parametrize("path", [AUTH_PATH, ANSWER_PATH])
async def test_over_limit_without_content_length(pair: Pair, api: Api, path: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield OVER_LIMIT[: len(OVER_LIMIT) // 2]
        yield OVER_LIMIT[len(OVER_LIMIT) // 2 :]

    response = await pair.hot.post(
        path, content=chunks(), headers={**bearer(api), "Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


TOKEN_FIRST = [
    pytest.param("POST", AUTH_PATH, {"json": {}}, id="missing-username"),
    pytest.param("POST", AUTH_PATH, {"json": {"username": "ayşe", "ek": 1}}, id="extra-field"),
    pytest.param(
        "POST",
        AUTH_PATH,
        {"content": b'{"username": "ayse"}', "headers": {"Content-Type": "text/plain"}},
        id="text-plain",
    ),
    pytest.param("POST", AUTH_PATH, {"json": {"username": "İsmail"}}, id="valid-body"),
    pytest.param("GET", AUTH_PATH + "/abc.def", {}, id="id-with-dot"),
    pytest.param("GET", AUTH_PATH + "/abc?wait=500", {}, id="wait-500"),
    pytest.param("GET", AUTH_PATH + "/abc?wait=1", {}, id="status"),
]


# No header, a token the server never issued, and another scheme.
BAD_AUTHORIZATION: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer gecersiz-jeton"},
    {"Authorization": "Basic YXlzZTp4"},
]


@pytest.mark.parametrize(("method", "path", "options"), TOKEN_FIRST)
async def test_bad_token_rejected_before_body(
    pair: Pair, method: str, path: str, options: dict[str, Any]
) -> None:
    headers, rest = split_headers(options)
    for authorization in BAD_AUTHORIZATION:
        hot, fastapi = await pair.send(method, path, headers={**headers, **authorization}, **rest)

        assert hot.status_code == 401, authorization
        assert hot.json()["error"] == "invalid_token", authorization
        assert fastapi.status_code == 401, authorization
        assert fastapi.json() == hot.json(), authorization


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"",
        b"[]",
        b'{"message": 1}',
        b'{"message": {}, "signature": "x"}',
        b'{"message": {"device_id": "\\ud800"}, "signature": "x"}',
        b'{"message": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"message": ' + b"[" * 40 + b"]" * 40 + b', "signature": "x"}',
    ],
    ids=["text", "empty", "list", "message-int", "no-device-id", "surrogate", "deep", "nested"],
)
async def test_garbage_answer_invalid_request(pair: Pair, body: bytes) -> None:
    hot, fastapi = await pair.send(
        "POST", ANSWER_PATH, content=body, headers={"Content-Type": "application/json"}
    )

    assert hot.status_code == 400
    assert hot.json()["error"] == "invalid_request"
    assert fastapi.status_code == 400
    assert fastapi.json() == hot.json()


async def test_unknown_device_answer_matches_fastapi(pair: Pair) -> None:
    body = {"message": {"device_id": "ayşenin-telefonu", "transaction_id": "x"}, "signature": "x"}

    hot, fastapi = await pair.send("POST", ANSWER_PATH, json=body)

    assert hot.status_code == 401
    assert hot.json()["error"] == "device_auth_failed"
    assert fastapi.status_code == 401
    assert fastapi.json() == hot.json()


async def hot_responses(pair: Pair, api: Api, transaction_id: str) -> dict[str, httpx.Response]:
    """Return one response of each kind the hot path builds itself."""
    return {
        "start": await pair.hot.post(
            AUTH_PATH, json={"username": "berk", "password": PASSWORD}, headers=bearer(api)
        ),
        "status": await pair.hot.get(f"{AUTH_PATH}/{transaction_id}", headers=bearer(api)),
        "status-wait": await pair.hot.get(
            f"{AUTH_PATH}/{transaction_id}?wait=0.5", headers=bearer(api)
        ),
        "not-found": await pair.hot.get(f"{AUTH_PATH}/yok", headers=bearer(api)),
        "no-token": await pair.hot.get(f"{AUTH_PATH}/{transaction_id}"),
        "answer": await pair.hot.post(ANSWER_PATH, content=b"garbage"),
    }


async def test_hot_responses_carry_security_headers(
    pair: Pair, api: Api, transaction_id: str
) -> None:
    responses = await hot_responses(pair, api, transaction_id)

    assert [r.status_code for r in responses.values()] == [200, 200, 200, 404, 401, 400]
    for kind, response in responses.items():
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get_list(name) == [value], (kind, name)
        assert "strict-transport-security" not in response.headers, kind
        assert response.headers["content-type"] == "application/json", kind


async def test_hot_headers_match_fastapi(pair: Pair, api: Api, transaction_id: str) -> None:
    url = f"{AUTH_PATH}/{transaction_id}"

    hot, fastapi = await pair.send("GET", url, headers=bearer(api))

    assert hot.status_code == 200
    assert hot.json() == fastapi.json()
    ignored = {"date", "server"}
    assert {k: v for k, v in hot.headers.items() if k not in ignored} == dict(fastapi.headers)


async def test_login_through_hot_path(server: Server, pair: Pair, api: Api) -> None:
    phone = await asyncio.to_thread(enroll_device, server, "ayşe")

    started = await pair.hot.post(
        AUTH_PATH,
        json={"username": "ayşe", "password": PASSWORD, "client_ip": "::ffff:10.0.0.7"},
        headers={**bearer(api), "Accept-Language": "tr-TR,tr;q=0.9"},
    )
    assert started.status_code == 202
    transaction_id = started.json()["transaction_id"]
    assert started.json()["status"] == "pending"

    status = await pair.hot.get(f"{AUTH_PATH}/{transaction_id}", headers=bearer(api))
    assert status.status_code == 200
    assert status.json()["status"] == "pending"

    # The hot path keeps this long poll open until the phone's approval wakes it.
    began = time.monotonic()
    waiting = asyncio.ensure_future(
        pair.hot.get(f"{AUTH_PATH}/{transaction_id}?wait=20", headers=bearer(api))
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    challenge = (await asyncio.to_thread(fetch_challenges, phone))[0]
    assert challenge["transaction_id"] == transaction_id
    answer = await asyncio.to_thread(
        functools.partial(send_answer, phone, challenge, "approve", number=None, uv=False)
    )
    assert answer["accepted"] is True
    assert answer["status"] == "approved"

    finished = await waiting
    assert finished.status_code == 200
    assert finished.json()["status"] == "approved"
    assert time.monotonic() - began < 15


@dataclass
class Recorder:
    """An ASGI app in FastAPI's place that records what HotPaths passed on to it."""

    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"passed on"})


def recording_client(
    runtime: Runtime, recorder: Recorder, root_path: str = ""
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=HotPaths(recorder, runtime=runtime), root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


SERVED = [
    pytest.param("POST", AUTH_PATH, {"json": {"username": "berk"}}, id="start"),
    pytest.param(
        "POST",
        AUTH_PATH,
        {
            "content": b'{"username": "berk"}',
            "headers": {"Content-Type": "Application/JSON; charset=utf-8"},
        },
        id="start-json-charset",
    ),
    pytest.param("GET", AUTH_PATH + "/{tx}", {}, id="status"),
    pytest.param("GET", AUTH_PATH + "/{tx}?wait=0.25", {}, id="status-wait"),
    pytest.param("POST", ANSWER_PATH, {"content": b"garbage"}, id="answer"),
]


@pytest.mark.parametrize(("method", "path", "options"), SERVED)
async def test_well_formed_requests_stay_on_hot_path(
    runtime: Runtime,
    api: Api,
    transaction_id: str,
    method: str,
    path: str,
    options: dict[str, Any],
) -> None:
    recorder = Recorder()
    headers, rest = split_headers(options)

    async with recording_client(runtime, recorder) as client:
        response = await client.request(
            method, path.replace("{tx}", transaction_id), headers={**bearer(api), **headers}, **rest
        )

    assert response.status_code != 418
    assert recorder.bodies == []


PASSED_ON = [
    pytest.param(
        "POST",
        AUTH_PATH,
        {"content": b'{"username": "berk"}', "headers": {"Content-Type": "text/plain"}},
        id="text-plain",
    ),
    pytest.param("POST", AUTH_PATH, {"content": b"{}"}, id="missing-username"),
    pytest.param("POST", AUTH_PATH, {"content": b'{"username": "berk", "a": 1}'}, id="extra"),
    pytest.param("POST", AUTH_PATH, {"content": b'{"username": '}, id="invalid-json"),
    pytest.param("POST", AUTH_PATH, {"content": NESTED_100}, id="nested-100"),
    pytest.param("GET", AUTH_PATH + "/{tx}?dil=tr", {}, id="unknown-query"),
    pytest.param("GET", AUTH_PATH + "/{tx}?wait=500", {}, id="wait-500"),
    pytest.param("GET", AUTH_PATH + "/{tx}?wait=1e1", {}, id="wait-exponent"),
    pytest.param("GET", AUTH_PATH + "/abc.def", {}, id="id-with-dot"),
    pytest.param("DELETE", AUTH_PATH + "/{tx}", {}, id="other-method"),
]


@pytest.mark.parametrize(("method", "path", "options"), PASSED_ON)
async def test_unusual_requests_reach_fastapi(
    runtime: Runtime,
    api: Api,
    transaction_id: str,
    method: str,
    path: str,
    options: dict[str, Any],
) -> None:
    recorder = Recorder()
    headers, rest = split_headers(options)
    body = options.get("content", b"")

    async with recording_client(runtime, recorder) as client:
        response = await client.request(
            method, path.replace("{tx}", transaction_id), headers={**bearer(api), **headers}, **rest
        )

    assert response.status_code == 418
    assert recorder.bodies == [body]


async def test_root_path_reaches_fastapi(runtime: Runtime, api: Api) -> None:
    recorder = Recorder()
    body = '{"username": "ayşe"}'.encode()

    async with recording_client(runtime, recorder, root_path="/tapgate") as client:
        response = await client.post(
            "/tapgate" + AUTH_PATH,
            content=body,
            headers={**bearer(api), "Content-Type": "application/json"},
        )

    assert response.status_code == 418
    assert recorder.bodies == [body]


async def test_locked_database_503(
    server: Server,
    runtime: Runtime,
    api: Api,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A write that cannot get SQLite's lock gets 503 on both paths and one log line each."""
    if not db_url.startswith("sqlite"):
        pytest.skip("needs SQLite's file lock")
    monkeypatch.setattr(database_module, "_BUSY_TIMEOUT_MS", 100)
    body = {"username": "İsmail", "password": PASSWORD}
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.WARNING, logger="tapgate.api.errors"):
            async with (
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=create_server_app(runtime)),
                    base_url=server.base,
                ) as hot,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=without_hot_paths(runtime)),
                    base_url=server.base,
                ) as fastapi,
            ):
                hot_response = await hot.post(AUTH_PATH, json=body, headers=bearer(api))
                fastapi_response = await fastapi.post(AUTH_PATH, json=body, headers=bearer(api))
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert hot_response.status_code == 503
    assert hot_response.json()["error"] == "database_unavailable"
    assert hot_response.headers["retry-after"] == "1"
    assert hot_response.headers["x-frame-options"] == "DENY"
    assert fastapi_response.status_code == 503
    assert fastapi_response.json() == hot_response.json()
    unavailable = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(unavailable) == 2
    assert f"path='{AUTH_PATH}'" in unavailable[0].getMessage()


# Requests the hot path once served differently from FastAPI.


async def test_missing_content_type_matches_fastapi(pair: Pair, api: Api) -> None:
    body = '{"username": "İsmail", "password": "yanlış"}'.encode()

    hot, fastapi = await pair.send("POST", AUTH_PATH, content=body, headers=bearer(api))

    # Whether FastAPI accepts a body without a content type depends on its version, so only
    # the agreement is checked.
    assert hot.status_code == fastapi.status_code
    assert hot.json() == fastapi.json()


@pytest.mark.parametrize(
    "body",
    [b'{"username": ', b'{"username": "\xff"}', b"[" * 5000 + b"]" * 5000],
    ids=["truncated", "not-utf8", "deeper-than-parser"],
)
async def test_unparsable_body_without_token_matches_fastapi(pair: Pair, body: bytes) -> None:
    hot, fastapi = await pair.send(
        "POST", AUTH_PATH, content=body, headers={"Content-Type": "application/json"}
    )

    assert fastapi.status_code == 400
    assert hot.status_code == fastapi.status_code
    assert hot.json() == fastapi.json()


@pytest.mark.parametrize("path", [AUTH_PATH, ANSWER_PATH])
async def test_stalled_body_408_closes_connection(runtime: Runtime, path: str) -> None:
    """Over real sockets: a body shorter than its Content-Length gets 408, and the connection
    closes, so the late rest of the body is never read as a request of its own."""
    app = HotPaths(create_app(runtime), runtime=runtime, body_timeout=0.3)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        writer.write(head.encode() + b"Content-Length: 100\r\n\r\n" + '{"username": "ş'.encode())
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 5)  # read() returns at the close
        writer.close()
        status_line, _, rest = reply.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout"
        assert b"connection: close" in rest.lower()
        assert b"x-content-type-options: nosniff" in rest.lower()
        assert b'"request_timeout"' in rest
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def test_status_with_oversized_body_413(pair: Pair, api: Api, transaction_id: str) -> None:
    url = f"{AUTH_PATH}/{transaction_id}"

    hot, fastapi = await pair.send(
        "GET", url, content=b"x" * (MAX_BODY_BYTES + 1), headers=bearer(api)
    )

    assert fastapi.status_code == 413
    assert hot.status_code == 413
    assert hot.json() == fastapi.json()
    assert hot.headers["x-content-type-options"] == "nosniff"
    assert fastapi.headers["x-content-type-options"] == "nosniff"


# Routes FastAPI serves: the same limit and the same codes as the hot path.


async def test_chunked_body_over_limit_on_code_route_413(
    pair: Pair, api: Api, transaction_id: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"code": "'
        yield b"1" * (MAX_BODY_BYTES + 1)
        yield b'"}'

    response = await pair.hot.post(
        f"{AUTH_PATH}/{transaction_id}/code",
        content=chunks(),
        headers={**bearer(api), "Content-Type": "application/json"},
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_root_redirects_to_registration(server: Server) -> None:
    response = httpx.get(server.base + "/", follow_redirects=False, timeout=10)
    assert response.status_code == 303
    assert response.headers["location"] == "/register"
