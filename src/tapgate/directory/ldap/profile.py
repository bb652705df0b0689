"""The `ldap` auth profile: first factor against LDAP or Active Directory."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from ldap3 import Connection

from tapgate.directory.base import INVALID_CREDENTIALS, DirectoryUser
from tapgate.directory.ldap import account, diagnostics
from tapgate.directory.ldap.connection import Connector, close_quietly
from tapgate.directory.ldap.groups import is_active_directory, merge_groups, nested_groups
from tapgate.directory.ldap.pool import ServiceConnections
from tapgate.directory.ldap.search import (
    DN_ATTRIBUTE,
    Entry,
    entry_to_user,
    login_name,
    search_entries,
    user_filter,
)
from tapgate.directory.ldap.settings import LdapSettings
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ldap3 blocks, so every directory call runs in this pool, shared by all ldap auth profiles.
# Its size caps the directory work in flight. Further calls wait for a free thread, and that
# wait counts against their time budget.
_WORKERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tapgate-ldap")
# Extra seconds the event loop waits beyond the budget, since the worker enforces the budget.
_GRACE_SECONDS = 1.0


class LdapAuthProfile:
    """An auth profile backed by one or more LDAP servers with the same directory."""

    kind = "ldap"

    def __init__(self, settings: LdapSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self._connector = Connector(settings)
        self._service = ServiceConnections(self._connector)
        self._active_directory: bool | None = None
        self._nobody_bind_reported = False
        plain = [url for url in settings.servers if url.startswith("ldap://")]
        if plain and not settings.start_tls:
            logger.warning(
                "auth profile %s: start_tls is false, so passwords reach %s unencrypted",
                self.name,
                ", ".join(plain),
            )

    async def find_user(self, username: str) -> DirectoryUser | None:
        """Return the one user whose entry matches `username`, else None.

        A name that matches several entries is rejected as if unknown, and logged.
        """
        name = login_name(username)
        if name is None:
            return None
        return await self._run(self._find_user, name)

    async def verify_password(self, user: DirectoryUser, password: Secret) -> str | None:
        """Bind as the user on a separate connection, and return None or a rejection reason."""
        if not password:
            # An empty password would make an unauthenticated bind, which servers accept.
            return INVALID_CREDENTIALS
        dns = user.attribute(DN_ATTRIBUTE)
        if not dns:
            found = await self.find_user(user.username)
            if found is None or found.user_id != user.user_id:
                return INVALID_CREDENTIALS
            dns = found.attribute(DN_ATTRIBUTE)
        return await self._run(self._verify_password, dns[0], password)

    async def check_unknown_user(self, password: Secret) -> None:
        """Bind with `password` as an entry that does not exist, as a wrong password would bind.

        A known user's wrong password costs one bind, a round trip to the directory. Hashing
        here instead, as the local auth profile does, would take far longer with the production
        hash and so tell which names exist.
        """
        if password:
            await self._run(self._bind_as_nobody, password)

    async def account_problem(self, user: DirectoryUser, now: datetime) -> str | None:
        """Return account_disabled, account_locked or account_expired from the entry, or None."""
        return account.account_problem(user, now)

    async def close(self) -> None:
        """Close the pooled service connections."""
        await asyncio.get_running_loop().run_in_executor(_WORKERS, self._service.close)

    async def test_connection(self, username: str | None = None) -> list[str]:
        """Return diagnostic lines: each server's connection and bind, the base DN, counts.

        With `username`, also whether that user is found and how.
        """
        budget = self.settings.time_budget * len(self.settings.servers) + self.settings.time_budget
        deadline = time.monotonic() + budget
        call = functools.partial(
            diagnostics.describe_directory, self._connector, self._service, deadline
        )
        try:
            lines = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(_WORKERS, call), budget + _GRACE_SECONDS
            )
        except TimeoutError:
            lines = [f"directory diagnostics timed out after {budget:.1f} s"]
        if username is not None:
            try:
                user = await self.find_user(username)
            except DirectoryUnavailable as error:
                lines.append(f"user {username!r}: search failed: {error}")
            else:
                lines.append(diagnostics.describe_user(username, user))
        return lines

    async def suggest_values(self, attribute: str, prefix: str, limit: int = 20) -> list[str]:
        """Return up to `limit` stored values of `attribute` that start with `prefix`.

        For memberOf the values are group DNs whose CN starts with `prefix`.
        """
        return await self._run(diagnostics.suggest_values, self._service, attribute, prefix, limit)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking function in a worker with a deadline as its last argument."""
        budget = self.settings.time_budget
        deadline = time.monotonic() + budget
        future = asyncio.get_running_loop().run_in_executor(
            _WORKERS, functools.partial(function, *args, deadline)
        )
        try:
            return await asyncio.wait_for(future, budget + _GRACE_SECONDS)
        except TimeoutError:
            logger.warning(
                "auth profile %s: directory call timed out after %.1f s", self.name, budget
            )
            raise DirectoryUnavailable(
                f"auth profile {self.name!r}: directory call timed out after {budget:.1f} s"
            ) from None

    def _find_user(self, name: str, deadline: float) -> DirectoryUser | None:
        search_filter = user_filter(self.settings, name)

        def operation(connection: Connection) -> DirectoryUser | None:
            entries, truncated = search_entries(connection, self.settings, search_filter, limit=2)
            if truncated or len(entries) > 1:
                logger.warning(
                    "auth profile %s: login name %r matches more than one entry (%s); rejected",
                    self.name,
                    name,
                    "; ".join(entry.dn for entry in entries),
                )
                return None
            if not entries:
                return None
            user = entry_to_user(self.settings, entries[0], name)
            if self.settings.nested_groups:
                user = self._with_nested_groups(connection, user, entries[0])
            return user

        return self._service.run(operation, deadline)

    def _with_nested_groups(
        self, connection: Connection, user: DirectoryUser, entry: Entry
    ) -> DirectoryUser:
        if self._active_directory is None:
            self._active_directory = is_active_directory(connection)
        nested = nested_groups(connection, self.settings, entry.dn, self._active_directory)
        groups = merge_groups(user.attribute("memberof"), nested)
        return dataclasses.replace(user, attributes={**user.attributes, "memberof": groups})

    def _bind_as_nobody(self, password: Secret, deadline: float) -> None:
        # A random name, so that no entry, and so no account lockout counter, can match it.
        dn = f"cn=tapgate-no-such-user-{uuid.uuid4().hex},{self.settings.base_dn}"
        connection, url = self._connector.bind(dn, password, deadline)
        result = dict(connection.result)
        close_quietly(connection)
        if account.bind_rejection(result) is None and not self._nobody_bind_reported:
            # Once a profile: the server replies to every unknown name's bind the same way.
            self._nobody_bind_reported = True
            logger.warning(
                "auth profile %s: server %s accepted a bind as the entry %s, which should not "
                "exist; unauthenticated binds may be allowed there",
                self.name,
                url,
                dn,
            )

    def _verify_password(self, dn: str, password: Secret, deadline: float) -> str | None:
        controls = [(account.PPOLICY_CONTROL, False, None)]
        connection, url = self._connector.bind(dn, password, deadline, controls)
        result = dict(connection.result)
        close_quietly(connection)

        reason = account.bind_rejection(result)
        if reason is not None:
            answer = result.get("message") or result.get("description")
            logger.info(
                "auth profile %s: server %s rejected the bind as %s: %s (server message: %s)",
                self.name,
                url,
                dn,
                reason,
                answer,
            )
        return reason
