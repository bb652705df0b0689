"""The relay's HTTP and WebSocket endpoints (see `tapgate.relay.protocol` for the wire format).

Every route is thin: mailbox ownership, rate limits and size limits are checked here, and the
hub does the routing. Log lines carry server ids, mailbox address prefixes and transaction ids,
never a payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tapgate import jsondepth
from tapgate.delivery.base import DeliveryProvider
from tapgate.relay import protocol
from tapgate.relay.config import RelayServer, RelaySettings
from tapgate.relay.hub import RelayHub, ServerLink
from tapgate.relay.mailboxes import Mailbox, MailboxStore
from tapgate.relay.ratelimit import TokenBuckets

log = logging.getLogger("tapgate.relay")

HEARTBEAT_SECONDS = 15.0
MAX_BODY_BYTES = 16 * 1024
MAX_WAKE_BYTES = 2048


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _limited(wait: float) -> JSONResponse:
    return _error(
        429, "rate_limited", "too many requests; retry later", {"Retry-After": str(int(wait) + 1)}
    )


class Relay:
    def __init__(
        self, settings: RelaySettings, wake: dict[str, DeliveryProvider] | None = None
    ) -> None:
        self.settings = settings
        self.store = MailboxStore(settings.state_file)
        self.hub = RelayHub(wake)
        self.buckets = TokenBuckets()
        self._by_url = {server.public_url: server for server in settings.servers.values()}
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- helpers ------------------------------------------------------------------------------

    def _source(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def _device_limit(self, request: Request) -> float:
        return self.buckets.take(f"device:{self._source(request)}", self.settings.device_rate_limit)

    def _mailbox(self, request: Request) -> Mailbox | None:
        """Return the mailbox of the path when the request carries its token."""
        mailbox = self.store.mailboxes.get(request.path_params["address"])
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if mailbox is None or scheme.lower() != "bearer" or not mailbox.token_matches(token):
            return None
        return mailbox

    async def _json(self, request: Request) -> dict[str, Any] | None:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return None
        try:
            data = jsondepth.loads(body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def authenticate_server(self, header: str | None) -> RelayServer | None:
        scheme, _, credential = (header or "").partition(" ")
        server_id, _, key = credential.partition(":")
        server = self.settings.servers.get(server_id)
        if scheme.lower() != "bearer" or server is None or not key:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        return server if hmac.compare_digest(digest, server.key_sha256) else None

    # ---- device endpoints ---------------------------------------------------------------------

    async def create_mailbox(self, request: Request) -> Response:
        wait = self._device_limit(request)
        if wait:
            return _limited(wait)
        body = await self._json(request)
        if body is None or not isinstance(body.get("server"), str):
            return _error(400, "invalid_request", 'body must be {"server": PUBLIC_URL}')
        server = self._by_url.get(str(body["server"]).rstrip("/"))
        if server is None:
            return _error(404, "unknown_server", "this relay does not serve that tapgate server")
        wake = body.get("wake") or {}
        if not isinstance(wake, dict) or len(json.dumps(wake)) > MAX_WAKE_BYTES:
            return _error(400, "invalid_request", "wake must be an object of at most 2048 bytes")
        try:
            mailbox, token = self.store.create(server.id, wake)
        except OverflowError as exc:
            return _error(503, "full", str(exc))
        log.info("mailbox created address=%s server_id=%s", mailbox.address[:8], server.id)
        return JSONResponse({"address": mailbox.address, "token": token}, status_code=201)

    async def delete_mailbox(self, request: Request) -> Response:
        mailbox = self._mailbox(request)
        if mailbox is None:
            return _error(401, "unauthorized", "unknown mailbox or wrong token")
        self.store.delete(mailbox.address)
        log.info("mailbox deleted address=%s", mailbox.address[:8])
        return Response(status_code=204)

    async def stream(self, request: Request) -> Response:
        wait = self._device_limit(request)
        if wait:
            return _limited(wait)
        mailbox = self._mailbox(request)
        if mailbox is None:
            return _error(401, "unauthorized", "unknown mailbox or wrong token")
        queue = self.hub.connect(mailbox.address)
        log.info("device stream opened address=%s", mailbox.address[:8])

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while True:
                    try:
                        sealed = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                        continue
                    data = json.dumps({"sealed": sealed}, separators=(",", ":"))
                    yield f"event: sealed\ndata: {data}\n\n".encode()
            finally:
                self.hub.disconnect(mailbox.address, queue)
                log.info("device stream closed address=%s", mailbox.address[:8])

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def messages(self, request: Request) -> Response:
        wait = self._device_limit(request)
        if wait:
            return _limited(wait)
        mailbox = self._mailbox(request)
        if mailbox is None:
            return _error(401, "unauthorized", "unknown mailbox or wrong token")
        return JSONResponse({"sealed": self.hub.take_queued(mailbox.address)})

    async def device_request(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in protocol.DEVICE_REQUEST_KINDS:
            return _error(404, "not_found", "unknown device request")
        wait = self._device_limit(request)
        if wait:
            return _limited(wait)
        mailbox = self._mailbox(request)
        if mailbox is None:
            return _error(401, "unauthorized", "unknown mailbox or wrong token")
        body = await self._json(request)
        if body is None:
            return _error(400, "invalid_request", "body must be a JSON object of at most 16 KiB")
        status, reply = await self.hub.forward(mailbox, kind, body)
        log.info(
            "device request forwarded address=%s server_id=%s kind=%s status=%d",
            mailbox.address[:8],
            mailbox.server_id,
            kind,
            status,
        )
        return JSONResponse(reply, status_code=status)

    # ---- server link --------------------------------------------------------------------------

    async def link(self, websocket: WebSocket) -> None:
        server = self.authenticate_server(websocket.headers.get("authorization"))
        if server is None:
            log.warning(
                "server link rejected source=%s",
                websocket.client.host if websocket.client else "unknown",
            )
            await websocket.close(code=1008)
            return
        await websocket.accept()

        async def send(frame: dict[str, Any]) -> None:
            await websocket.send_text(json.dumps(frame, separators=(",", ":")))

        link = ServerLink(server.id, send)
        self.hub.add_link(link)
        log.info("server link up server_id=%s", server.id)
        try:
            while True:
                raw = await websocket.receive_text()
                if len(raw) > protocol.MAX_FRAME_BYTES:
                    break
                await self._server_frame(server, link, raw)
        except WebSocketDisconnect:
            pass
        finally:
            self.hub.remove_link(link)
            log.info("server link down server_id=%s", server.id)

    async def _server_frame(self, server: RelayServer, link: ServerLink, raw: str) -> None:
        try:
            frame = jsondepth.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            log.warning("server sent a malformed frame server_id=%s", server.id)
            return
        if frame.get("type") == "reply":
            future = link.replies.pop(frame.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        if frame.get("type") == "deliver":
            # A wake-up through a push service can take seconds: the link keeps reading meanwhile.
            task = asyncio.create_task(self._deliver_and_ack(server, link, frame))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver_and_ack(
        self, server: RelayServer, link: ServerLink, frame: dict[str, Any]
    ) -> None:
        result, retry_after = await self._deliver(server, frame)
        ack: dict[str, Any] = {"type": "ack", "id": frame.get("id"), "result": result}
        if retry_after:
            ack["retry_after"] = round(retry_after, 3)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await link.send(ack)

    async def _deliver(self, server: RelayServer, frame: dict[str, Any]) -> tuple[str, float]:
        wait = self.buckets.take(f"server:{server.id}", server.rate_limit)
        if wait:
            log.warning("server rate-limited server_id=%s retry_after=%.2f", server.id, wait)
            return protocol.RATE_LIMITED, wait
        sealed, ttl = frame.get("sealed"), frame.get("ttl")
        mailbox = self.store.mailboxes.get(str(frame.get("address")))
        if not isinstance(sealed, dict) or not isinstance(ttl, int):
            return protocol.INVALID, 0.0
        if mailbox is None or mailbox.server_id != server.id:
            # A mailbox of another server gets the same result as a missing one, so a server
            # learns nothing about other servers' devices.
            log.info("deliver to unknown address server_id=%s", server.id)
            return protocol.UNKNOWN_ADDRESS, 0.0
        result = await self.hub.deliver(mailbox, ttl, sealed)
        log.info(
            "challenge relayed server_id=%s address=%s transaction=%s result=%s",
            server.id,
            mailbox.address[:8],
            sealed.get("transaction_id"),
            result,
        )
        return result, 0.0


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_relay_app(relay: Relay) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("relay started servers=%s", sorted(relay.settings.servers))
        try:
            yield
        finally:
            for provider in relay.hub.wake.values():
                await provider.close()
            log.info("relay stopped")

    base = protocol.MAILBOX_PATH
    routes = [
        Route("/healthz", health),
        Route(base, relay.create_mailbox, methods=["POST"]),
        Route(base + "/{address}", relay.delete_mailbox, methods=["DELETE"]),
        Route(base + "/{address}/stream", relay.stream, methods=["GET"]),
        Route(base + "/{address}/messages", relay.messages, methods=["GET"]),
        Route(base + "/{address}/{kind}", relay.device_request, methods=["POST"]),
        WebSocketRoute(protocol.LINK_PATH, relay.link),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
