"""uvicorn's httptools protocol with a deadline for each request's headers.

uvicorn closes a connection that stays idle between requests (`timeout_keep_alive`). It sets no
timer while it waits for a request's headers, though. A client that connects and sends nothing,
or stops halfway through a header line, keeps its connection and file descriptor for good, and
a few thousand such clients would exhaust the server's descriptors. nginx closes such connections
after `client_header_timeout` (60 s by default). This protocol does the same after
`HEADER_TIMEOUT_SECONDS`, without a response, because no complete request arrived to reply to.

The timer is set when a connection opens and when a request's headers end up split over
several reads. A request that arrives whole in one read, as the login's small requests do,
costs no timer. The body has its own deadline (tapgate.api.limits).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 30.0


def header_deadline_protocol(timeout: float = HEADER_TIMEOUT_SECONDS) -> type[HttpToolsProtocol]:
    """Return the protocol class for `uvicorn.Config(http=...)` with a `timeout` in seconds."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_deadline: asyncio.TimerHandle | None = None
            # True from a request's first byte until its headers are complete.
            self._reading_headers = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._reading_headers and not self.transport.is_closing():
                self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_headers = True

        def on_headers_complete(self) -> None:
            self._reading_headers = False
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            if self._header_deadline is None:
                self._header_deadline = self.loop.call_later(timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _expire(self) -> None:
            self._header_deadline = None
            if self.transport.is_closing():
                return
            client = self.client[0] if self.client else "-"
            log.info(
                "connection closed: no complete request headers within %.0f s client=%s",
                timeout,
                client,
            )
            self.transport.close()

    return HeaderDeadlineProtocol
