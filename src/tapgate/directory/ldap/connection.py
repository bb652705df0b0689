"""Opening and binding LDAP connections, with TLS verification and failover between servers.

ldap3 is synchronous: everything here blocks and runs in the profile's worker threads. Every
call takes a `deadline` (a `time.monotonic()` value), so the socket timeouts of all servers tried
together stay within the profile's time budget.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ldap3 import ANONYMOUS, NONE, SIMPLE, SYNC, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from tapgate.directory.ldap.settings import LdapSettings
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret

logger = logging.getLogger(__name__)

# A server that failed is tried after the others for this long, so each login does not wait
# for the same dead server's connect timeout.
_RETRY_DOWN_SERVER_AFTER = 30.0
# Result codes that blame the server, not the request (RFC 4511 appendix A).
SERVER_FAILURE_CODES = frozenset({51, 52, 80})  # busy, unavailable, other
# ldap3's wording of connection failures, replaced by what an administrator looks for.
_ERROR_PREFIXES = {
    "wrap socket error: ": "TLS handshake failed: ",
    "socket ssl wrapping error: ": "TLS handshake failed: ",
    "socket connection error while opening: ": "",
}


class ServerFailed(Exception):
    """One server did not complete a request, but the next server may."""


class _VerifiedTls(Tls):  # type: ignore[misc]
    """ldap3 TLS settings that wrap sockets with one shared, verifying `ssl.SSLContext`.

    ldap3 2.9.1 builds a context per connection and checks the host name itself with
    `ssl.match_hostname`, which Python 3.12 removed. This context has OpenSSL check the
    chain and the host name (or IP address) during the handshake instead.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        # Without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold back the small writes of
        # the TLS handshake. Each user bind took about 40 ms longer, against slapd 2.5 on loopback.
        connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Build a client context that always verifies, against `ca_file` or the system store."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class Connector:
    """Opens bound connections to the first server of an auth profile that responds."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._tls = _VerifiedTls(tls_context(settings.ca_file))
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def servers_in_order(self) -> list[str]:
        """Return the server URLs in the order to try them, servers that recently failed last."""
        now = time.monotonic()
        with self._lock:
            healthy = [url for url in self.settings.servers if self._down_until.get(url, 0) <= now]
        return healthy + [url for url in self.settings.servers if url not in healthy]

    def bind(
        self,
        user: str | None,
        password: Secret | None,
        deadline: float,
        controls: Sequence[tuple[str, bool, bytes | None]] | None = None,
    ) -> tuple[Connection, str]:
        """Open a connection, bind, and return it with its server URL, whatever the bind result.

        A server that cannot be reached, fails TLS or is busy is skipped. Raises
        `DirectoryUnavailable` when no server responds before `deadline`.
        """
        failures: list[str] = []
        for url in self.servers_in_order():
            if time.monotonic() >= deadline:
                failures.append(f"{url}: not tried, time budget used up")
                continue
            try:
                connection = self.bind_server(url, user, password, deadline, controls)
            except ServerFailed as error:
                self.mark_down(url, str(error))
                failures.append(f"{url}: {error}")
                continue
            with self._lock:
                was_down = self._down_until.pop(url, None) is not None
            if was_down:
                logger.info("auth profile %s: server %s responds again", self.settings.name, url)
            return connection, url
        raise DirectoryUnavailable(
            f"auth profile {self.settings.name!r}: no LDAP server responded ({'; '.join(failures)})"
        )

    def mark_down(self, url: str, reason: str) -> None:
        """Log a failed server and try it after the others for a while.

        While a server stays down, its repeated failures are logged at debug level only.
        """
        now = time.monotonic()
        with self._lock:
            already_down = self._down_until.get(url, 0) > now
            self._down_until[url] = now + _RETRY_DOWN_SERVER_AFTER
        level = logging.DEBUG if already_down else logging.WARNING
        logger.log(level, "auth profile %s: server %s failed: %s", self.settings.name, url, reason)

    def bind_server(
        self,
        url: str,
        user: str | None,
        password: Secret | None,
        deadline: float,
        controls: Sequence[tuple[str, bool, bytes | None]] | None = None,
    ) -> Connection:
        """Open a connection to one server and bind. Raises `ServerFailed` if it cannot respond."""
        parts = urlsplit(url)
        secure = parts.scheme == "ldaps"
        # ldap3 treats a connect timeout of 0 as none at all, so keep a small positive floor.
        remaining = max(0.1, deadline - time.monotonic())
        server = Server(
            parts.hostname,
            port=parts.port or (636 if secure else 389),
            use_ssl=secure,
            tls=self._tls,
            get_info=NONE,
            connect_timeout=min(self.settings.connect_timeout, remaining),
        )
        # ldap3 packs the receive timeout into a C long for SO_RCVTIMEO, so it must be an int.
        # Once the socket is open, its timeout is set to the exact remaining time.
        receive_timeout = max(1, math.ceil(min(self.settings.operation_timeout, remaining)))
        connection = Connection(
            server,
            user=user,
            password=password.reveal() if password is not None else None,
            authentication=SIMPLE if user else ANONYMOUS,
            client_strategy=SYNC,
            read_only=True,
            receive_timeout=receive_timeout,
            check_names=False,
            raise_exceptions=False,
            auto_referrals=self.settings.follow_referrals,
            return_empty_attributes=False,
        )
        try:
            connection.open()
            connection.socket.settimeout(min(self.settings.operation_timeout, remaining))
            if not secure and self.settings.start_tls and not connection.start_tls():
                raise ServerFailed(f"StartTLS rejected: {connection.result.get('description')}")
            connection.bind(controls=list(controls) if controls else None)
        except ServerFailed:
            close_quietly(connection)
            raise
        except (LDAPException, OSError) as error:
            close_quietly(connection)
            raise ServerFailed(describe_error(error)) from None
        finally:
            # ldap3 keeps the password for automatic rebinds, which tapgate never uses.
            connection.password = None

        if connection.result.get("result") in SERVER_FAILURE_CODES:
            description = connection.result.get("description")
            close_quietly(connection)
            raise ServerFailed(f"bind failed with {description}")
        return connection


def describe_error(error: BaseException) -> str:
    """Return a one-line description of an ldap3 or socket error, without a traceback."""
    text = str(error.args[0]) if error.args else type(error).__name__
    # ldap3 sometimes puts the repr of a one-element tuple around its message.
    if text.startswith(("('", '("')) and text.endswith(("',)", '",)')):
        text = text[2:-3]
    for prefix, replacement in _ERROR_PREFIXES.items():
        if text.startswith(prefix):
            return replacement + text.removeprefix(prefix)
    return text


def close_quietly(connection: Connection) -> None:
    """Unbind and close the connection, without an error if it is already broken."""
    with contextlib.suppress(LDAPException, OSError):
        connection.unbind()
    # ldap3 leaves the socket open when connecting or the TLS handshake failed.
    raw_socket = getattr(connection, "socket", None)
    if raw_socket is not None:
        with contextlib.suppress(OSError):
            raw_socket.close()
