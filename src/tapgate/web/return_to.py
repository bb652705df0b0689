"""Redirect targets after a sign-in, checked so that `/login` is never an open redirect.

A `return_to` value is accepted when it is a path on this server, or an absolute http(s) URL
whose origin is the origin of `public_url` or one of the origins of the setting
`server.return_to_origins` (or the environment variable TAPGATE_RETURN_TO_ORIGINS,
comma-separated, such as `https://intranet.example.com`).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

RETURN_TO_ORIGINS_ENV = "TAPGATE_RETURN_TO_ORIGINS"
MAX_RETURN_TO = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """Return `scheme://host[:port]` in a comparable form, or None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def allowed_origins(public_url: str, environ: dict[str, str] | None = None) -> frozenset[str]:
    """Return the origins `return_to` may point at: public_url's and the configured ones."""
    environ = dict(os.environ) if environ is None else environ
    origins = {origin_of(public_url)}
    for item in environ.get(RETURN_TO_ORIGINS_ENV, "").split(","):
        if item.strip():
            origins.add(origin_of(item))
    return frozenset(origin for origin in origins if origin is not None)


def safe_return_to(value: str | None, origins: frozenset[str]) -> str | None:
    """Return `value` if it may be redirected to, else None.

    Local paths must start with a single "/". Control characters and backslashes are refused,
    because browsers read `/\\host` and `/\\thost` as another host.
    """
    if not value or len(value) > MAX_RETURN_TO:
        return None
    if any(ord(character) < 32 or character == "\\" for character in value):
        return None

    if value.startswith("/") and not value.startswith("//"):
        parts = urlsplit(value)
        return urlunsplit(("", "", parts.path, parts.query, ""))

    if origin_of(value) not in origins:
        return None
    parts = urlsplit(value)
    if parts.username or parts.password:
        return None
    return value


def local_path(value: str | None, default: str) -> str:
    """Return `value` when it is a path on this server, else `default`."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return default
    if any(ord(character) < 32 or character == "\\" for character in value):
        return default
    return value[:MAX_RETURN_TO]
