"""The device API: enrollment, signed polling, the direct stream, and signed answers."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from sqlalchemy import bindparam, select

from tapgate import jsondepth
from tapgate.api.auth_routes import RuntimeDep
from tapgate.api.errors import duplicate_key_error, error_response
from tapgate.audit import record_audit
from tapgate.crypto.signing import public_key_to_text
from tapgate.delivery.direct import StreamQueue
from tapgate.delivery.receipts import record_receipt
from tapgate.devices.confirmation import hold_for_confirmation
from tapgate.devices.enrollment import EnrollmentRejected, complete_enrollment
from tapgate.devices.requests import authenticate_device
from tapgate.errors import RequestError
from tapgate.identifiers import is_identifier
from tapgate.push.answers import UnknownDevice, open_challenges, record_answer
from tapgate.push.publish import signed_challenge
from tapgate.runtime import Runtime
from tapgate.store.models import DeviceRow, TransactionRow
from tapgate.store.prepared import Prepared
from tapgate.store.tables import DEVICES

log = logging.getLogger(__name__)
router = APIRouter(prefix="/device/v1", tags=["device"])
HEARTBEAT_SECONDS = 15.0


async def _json_body(request: Request) -> dict[str, Any]:
    return parse_json_object(await request.body())


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object, or raise RequestError (400)."""
    try:
        body = jsondepth.loads(raw)
    except jsondepth.TooDeep as exc:
        raise RequestError(f"request body {exc}", "invalid_request", 400) from exc
    except jsondepth.DuplicateKey as exc:
        raise duplicate_key_error(exc) from exc
    except jsondepth.NotUtf8 as exc:
        raise RequestError(
            "request body is not UTF-8; send JSON as UTF-8", "invalid_request", 400
        ) from exc
    except ValueError as exc:
        raise RequestError("request body is not valid JSON", "invalid_request", 400) from exc
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object", "invalid_request", 400)
    # The body is UTF-8 (jsondepth refuses others), so a lone surrogate can only come from a
    # \u escape.
    if b"\\u" in raw:
        reject_lone_surrogates(body)
    return body


def reject_lone_surrogates(body: Any) -> None:
    """Raise RequestError when a JSON string contains a lone UTF-16 surrogate (`"\\ud800"`).

    JSON allows such escapes, but they are not text: no database can store them.
    """
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            "request body contains an invalid Unicode escape", "invalid_request", 400
        ) from exc


def _client_ip(request: Request) -> str | None:
    from tapgate.web.security import client_ip

    runtime: Runtime = request.app.state.runtime
    return client_ip(request, runtime.settings)


async def signed_device(request: Request, rt: RuntimeDep) -> DeviceRow:
    return await signed_device_of(
        rt, request.headers.get("authorization"), request.method, request.url.path
    )


async def signed_device_of(rt: Runtime, header: str | None, method: str, path: str) -> DeviceRow:
    """Return the device that signed a request for `method` and `path`, or raise
    DeviceAuthError."""
    return await authenticate_device(
        rt.database,
        header,
        audience=rt.settings.public_url,
        method=method,
        path=path,
        now=rt.clock.now(),
    )


DeviceDep = Annotated[DeviceRow, Depends(signed_device)]


def server_key_text(rt: Runtime) -> str:
    return public_key_to_text(rt.keyring.server_signing_key().public_key())


@router.post("/enroll")
async def enroll(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Register a device with a one-time enrollment token; returns the server key to pin."""
    body = await _json_body(request)
    try:
        async with rt.database.write() as session:
            device = await complete_enrollment(
                session,
                rt.keyring,
                rt.settings.public_url,
                body,
                rt.clock.now(),
                _client_ip(request),
            )
            # A web page that issued the enrollment waits for this code; the device stays on
            # hold until the person there types it.
            confirmation = await hold_for_confirmation(session, rt.keyring, device, rt.clock.now())
    except EnrollmentRejected as exc:
        async with rt.database.write() as session:
            await record_audit(
                session,
                "enrollment",
                username=exc.username,
                auth_profile=exc.auth_profile,
                outcome="rejected",
                reason=exc.detail,
                source_ip=_client_ip(request),
            )
        return error_response(
            401,
            "enrollment_rejected",
            "this enrollment link is invalid, already used or expired; issue a new one",
        )
    log.info("device enrolled device=%s user=%r", device.id, device.username)
    response: dict[str, Any] = {
        "device_id": device.id,
        "username": device.username,
        "auth_profile": device.auth_profile,
        "server_signing_key": server_key_text(rt),
        "public_url": rt.settings.public_url,
    }
    if confirmation is not None:
        response["confirmation_code"] = confirmation
    return JSONResponse(response, status_code=201)


@router.get("/challenges")
async def challenges(rt: RuntimeDep, device: DeviceDep) -> JSONResponse:
    """Return every open challenge of the device's user (signed polling)."""
    rows = await open_challenges(rt.login, device)
    return JSONResponse(
        {"challenges": [signed_challenge(rt.keyring, rt.settings.public_url, r) for r in rows]}
    )


STREAM_HEADERS = (("Cache-Control", "no-store"), ("X-Accel-Buffering", "no"))


@router.get("/stream")
async def stream(request: Request, rt: RuntimeDep, device: DeviceDep) -> StreamingResponse:
    """Hold a server-sent-events stream: open challenges first, then each new one live.

    `tapgate.api.hotpath` serves this path itself; this route serves it under a mount prefix.
    """
    queue, backlog = await connect_stream(rt, device)
    return StreamingResponse(
        stream_events(rt, device.id, queue, backlog),
        media_type="text/event-stream",
        headers=dict(STREAM_HEADERS),
    )


async def connect_stream(
    rt: Runtime, device: DeviceRow
) -> tuple[StreamQueue, list[TransactionRow]]:
    """Connect a device's stream to the hub; return its queue and the challenges still open."""
    queue = rt.hub.connect(device.id)
    try:
        backlog = await open_challenges(rt.login, device)
    except BaseException:
        rt.hub.disconnect(device.id, queue)
        raise
    return queue, backlog


async def stream_events(
    rt: Runtime, device_id: str, queue: StreamQueue, backlog: list[TransactionRow]
) -> AsyncGenerator[bytes, None]:
    """Yield a connected device's stream; disconnect its queue from the hub when it ends."""
    try:
        yield b": connected\n\n"
        for row in backlog:
            envelope = {
                "event": "challenge",
                **signed_challenge(rt.keyring, rt.settings.public_url, row),
            }
            yield _sse(envelope)
        while True:
            try:
                event = await queue.get(HEARTBEAT_SECONDS)
            except TimeoutError:
                # A device revoked by another process (the CLI, another node) is noticed
                # here, at the latest one heartbeat after the revocation.
                if await _revoked(rt, device_id):
                    log.info("stream closed for revoked device device=%s", device_id)
                    return
                yield b": heartbeat\n\n"
                continue
            if event is None:
                return
            yield _sse(event)
    finally:
        rt.hub.disconnect(device_id, queue)


# Every held stream runs this at each heartbeat: with 10,000 streams, about 670 reads a second.
_REVOKED_AT = Prepared(select(DEVICES.c.revoked_at).where(DEVICES.c.id == bindparam("id")))


async def _revoked(rt: Runtime, device_id: str) -> bool:
    async with rt.database.read_rows() as rows:
        row = await rows.first(_REVOKED_AT, {"id": device_id})
    return row is None or row.revoked_at is not None


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['event']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


@router.post("/answer")
async def answer(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Record a signed decision; the signature identifies and authenticates the device."""
    return await answer_response(rt, await request.body())


async def answer_response(rt: Runtime, raw: bytes) -> JSONResponse:
    body = parse_json_object(raw)
    message, signature = body.get("message"), body.get("signature")
    if not isinstance(message, dict) or not isinstance(signature, str):
        raise RequestError(
            'body must be {"message": {...}, "signature": "..."}', "invalid_request", 400
        )
    device_id = message.get("device_id")
    if not is_identifier(device_id):
        raise RequestError(
            "message.device_id is missing or invalid; it must be the device's id, a string of "
            "1 to 64 characters without NUL",
            "invalid_request",
            400,
        )
    try:
        result = await record_answer(rt.login, device_id, message, signature)
    except UnknownDevice:
        log.info("answer rejected device=%r problem=unknown device", device_id)
        raise RequestError("device unknown", "device_auth_failed", 401) from None
    body_out: dict[str, Any] = {"accepted": result.accepted, "status": result.status}
    if result.code is not None:
        body_out["code"] = result.code
    return JSONResponse(body_out, status_code=200 if result.accepted else 409)


@router.post("/receipt")
async def receipt(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Record a signed delivery receipt: the device got the challenge."""
    body = await _json_body(request)
    result = await record_receipt(
        rt.database,
        rt.settings.public_url,
        rt.clock.now(),
        body.get("message"),
        body.get("signature"),
    )
    return JSONResponse({"recorded": True, "first": result.first})


enrollment_router = APIRouter()


@enrollment_router.get("/e/{token}", response_class=HTMLResponse, include_in_schema=False)
async def enrollment_landing(token: str) -> HTMLResponse:
    """Tell a person who opened the enrollment link in a browser how to use it."""
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>tapgate enrollment</title>"
        "<p>Scan this link's QR code with the tapgate authenticator, or run "
        "<code>tapgate authenticator enroll URL</code>.</p>"
    )
