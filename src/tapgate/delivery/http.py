"""The HTTP client every push provider uses: HTTP/2, bounded timeouts, an optional private CA."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import httpx

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def new_client(options: Mapping[str, Any], *, http1: bool = True) -> httpx.AsyncClient:
    """Return a client with its own TLS context, since httpx changes the ALPN list of a context
    it is given, so two clients must not share one. `ca_file` trusts a private CA instead of
    the system store; `http1=False` speaks only HTTP/2 (APNs accepts nothing else)."""
    context = ssl.create_default_context(cafile=options.get("ca_file") or None)
    return httpx.AsyncClient(http1=http1, http2=True, verify=context, timeout=TIMEOUT)


def error_detail(response: httpx.Response, limit: int = 200) -> str:
    """Return the start of an error response body, for the log line of a failed send."""
    return response.text[:limit].replace("\n", " ")
