"""A minimal HTTP/1.1 client on asyncio streams, for the load generator only.

The load generator shares the machine with the server under test, so every microsecond it
spends parsing is taken from the server. On the machine of docs/benchmarks.md a `GET /healthz`
cost httpx's AsyncClient 888 µs of CPU and this client 63 µs. It writes the request by hand and
reads a `Content-Length` or chunked body, which is all tapgate's API and device stream need.
No TLS, no redirects and no proxies, because the benchmark runs on loopback only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

_STREAM_LIMIT = 1 << 20


class HttpError(Exception):
    """The server closed the connection or sent a response this client cannot parse."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive connection to `host:port`, used for one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=_STREAM_LIMIT
            )
        return self._reader, self._writer

    def _head(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """Send one request and read the whole response; reconnects once if the server had
        closed an idle connection."""
        for attempt in (1, 2):
            reader, writer = await self._open()
            writer.write(self._head(method, path, headers or {}, body) + (body or b""))
            try:
                status, response_headers = await _read_head(reader)
            except (HttpError, ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
                continue
            payload = await _read_body(reader, response_headers)
            if response_headers.get("connection", "").lower() == "close":
                self.close()
            return Response(status, response_headers, payload)
        raise AssertionError("unreachable")

    async def post_json(
        self, path: str, document: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Response:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return await self.request("POST", path, all_headers, json.dumps(document).encode())

    async def open_stream(
        self, path: str, headers: dict[str, str]
    ) -> tuple[int, AsyncIterator[bytes]]:
        """Send a GET and return the status and an iterator over the chunks of its body."""
        reader, writer = await self._open()
        writer.write(self._head("GET", path, headers, None))
        status, response_headers = await _read_head(reader)
        return status, _chunks(reader, response_headers)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = None
        self._writer = None


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise HttpError("connection closed before the response head") from exc
    status_line, *header_lines = raw.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HttpError(f"invalid status line {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return b"".join([chunk async for chunk in _chunks(reader, headers)])
    return await reader.read()


async def _chunks(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    if headers.get("transfer-encoding", "").lower() != "chunked":
        while data := await reader.read(65536):
            yield data
        return
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


class Pool:
    """Connections handed out one request at a time, opened on demand up to `size`."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host = host
        self.port = port
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._slots = asyncio.Semaphore(size)
        self._all: list[Connection] = []

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        async with self._slots:
            connection = self._idle.get_nowait() if not self._idle.empty() else None
            if connection is None:
                connection = Connection(self.host, self.port)
                self._all.append(connection)
            try:
                return await connection.request(method, path, headers, body)
            finally:
                self._idle.put_nowait(connection)

    async def post_json(
        self, path: str, document: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Response:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return await self.request("POST", path, all_headers, json.dumps(document).encode())

    def close(self) -> None:
        for connection in self._all:
            connection.close()
