"""Run an ASGI app under hypercorn with a trustme certificate, in a thread with its own loop.

The mocks of the push services run this way, so a test, the providers in its own loop and a
`tapgate serve` process can all reach them over real TLS (HTTP/2 negotiated by ALPN).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.support import free_port


class TlsServer:
    def __init__(
        self, app: Any, ca: trustme.CA, workdir: Path, *, alpn: tuple[str, ...] = ("h2", "http/1.1")
    ) -> None:
        self.app = app
        self.port = free_port()
        certificate = ca.issue_cert("127.0.0.1", "localhost")
        self.cert_path = workdir / f"server-{self.port}.pem"
        certificate.private_key_and_cert_chain_pem.write_to_path(str(self.cert_path))
        self.config = Config()
        self.config.bind = [f"127.0.0.1:{self.port}"]
        self.config.certfile = str(self.cert_path)
        self.config.keyfile = str(self.cert_path)
        self.config.alpn_protocols = list(alpn)
        self.config.accesslog = None
        self.config.errorlog = None
        # Connections from finished server processes are cut at once instead of after 3 s.
        self.config.graceful_timeout = 0.2
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await serve(self.app, self.config, shutdown_trigger=self._stop.wait)

        asyncio.run(main())

    def start(self) -> TlsServer:
        self._thread.start()
        self._ready.wait(5)
        import socket
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        raise RuntimeError("mock server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            # Clients that vanish mid-shutdown make hypercorn's TLS and HTTP/2 teardown raise in
            # callbacks; after the tests those errors say nothing, so they are not printed.
            self._loop.call_soon_threadsafe(self._loop.set_exception_handler, _ignore)
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _ignore(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    return None
