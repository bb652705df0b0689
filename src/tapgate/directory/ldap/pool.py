"""Reused connections bound as the service account (`bind_dn`), which every search runs on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ldap3 import Connection
from ldap3.core.exceptions import LDAPException

from tapgate.directory.ldap.connection import (
    Connector,
    ServerFailed,
    close_quietly,
    describe_error,
)
from tapgate.errors import DirectoryUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Directories close idle connections, Active Directory after 900 s by default (MaxConnIdleTime).
# A connection idle for longer than this is closed instead of reused, so searches rarely fail.
_MAX_IDLE_SECONDS = 240.0
_MAX_IDLE_CONNECTIONS = 4


class ServiceConnections:
    """A small thread-safe pool of service connections that rebinds when one drops."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self.settings = connector.settings
        self._idle: list[tuple[Connection, str, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def run(self, operation: Callable[[Connection], T], deadline: float) -> T:
        """Run `operation` on a bound service connection and return its result.

        `operation` raises `ServerFailed` when the server, not the request, failed. A reused
        connection that fails is replaced by a new one, together with the other idle connections
        to its server. When a new one fails, the next attempt goes to the next server. Raises
        `DirectoryUnavailable` when no attempt succeeds before `deadline`.
        """
        failures: list[str] = []
        for _ in range(len(self.settings.servers) + 1):
            if time.monotonic() >= deadline:
                break
            connection, url, reused = self._take(deadline)
            connection.socket.settimeout(self._operation_timeout(deadline))
            try:
                result = operation(connection)
            except (ServerFailed, LDAPException, OSError) as error:
                close_quietly(connection)
                reason = str(error) if isinstance(error, ServerFailed) else describe_error(error)
                failures.append(f"{url}: {reason}")
                if reused:
                    # The other idle connections to this server most likely broke the same way.
                    self._discard_idle(url)
                    logger.info(
                        "auth profile %s: server %s: reused connection failed (%s); reconnecting",
                        self.settings.name,
                        url,
                        reason,
                    )
                else:
                    self._connector.mark_down(url, reason)
                continue
            self._give_back(connection, url)
            return result

        detail = "; ".join(failures) or "time budget used up"
        raise DirectoryUnavailable(
            f"auth profile {self.settings.name!r}: directory request failed ({detail})"
        )

    def close(self) -> None:
        """Close the idle connections. Connections in use are closed when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _, _ in idle:
            close_quietly(connection)

    def _discard_idle(self, url: str) -> None:
        with self._lock:
            discarded = [entry for entry in self._idle if entry[1] == url]
            self._idle = [entry for entry in self._idle if entry[1] != url]
        for connection, _, _ in discarded:
            close_quietly(connection)

    def _operation_timeout(self, deadline: float) -> float:
        return max(0.1, min(self.settings.operation_timeout, deadline - time.monotonic()))

    def _take(self, deadline: float) -> tuple[Connection, str, bool]:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                connection, url, since = self._idle.pop()
                if not connection.closed and now - since < _MAX_IDLE_SECONDS:
                    return connection, url, True
                close_quietly(connection)
        connection, url = self._connector.bind(
            self.settings.bind_dn, self.settings.bind_password, deadline
        )
        if not connection.bound:
            description = connection.result.get("description")
            answer = connection.result.get("message") or description
            close_quietly(connection)
            logger.error(
                "auth profile %s: server %s rejected the service bind as %s (server message: %s); "
                "check bind_dn and the bind password",
                self.settings.name,
                url,
                self.settings.bind_dn,
                answer,
            )
            raise DirectoryUnavailable(
                f"auth profile {self.settings.name!r}: the service bind was rejected "
                f"({description}); check bind_dn and the bind password"
            )
        return connection, url, False

    def _give_back(self, connection: Connection, url: str) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE_CONNECTIONS:
                self._idle.append((connection, url, time.monotonic()))
                return
        close_quietly(connection)
