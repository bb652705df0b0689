"""Join a repeated front-door request to the login it already started, on any node.

RADIUS retransmissions carry the same Identifier and Request Authenticator. Each node keeps an
in-memory duplicate cache (RFC 5080), but behind a load balancer a retransmission can reach
another node. This table makes that node wait for the first login and return it, instead of
starting a second push.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from tapgate.push.ports import LoginStatus
from tapgate.secret import Secret
from tapgate.store.models import LoginRequestRow

if TYPE_CHECKING:
    from tapgate.push.service import LoginService

log = logging.getLogger(__name__)

# How long a node waits for the node that claimed the same request to create its login.
JOIN_WAIT_SECONDS = 10.0
KEEP_FOR = timedelta(hours=1)


async def claim(service: LoginService, key: str) -> bool:
    """Record `key` as started here; return False when another caller already claimed it."""
    try:
        async with service.database.write() as session:
            session.add(LoginRequestRow(key=key, created_at=service.clock.now()))
        return True
    except IntegrityError:
        return False


async def settle(service: LoginService, key: str, status: LoginStatus) -> None:
    number = (
        service.keyring.encrypt(Secret(status.number), f"login_request:{key}")
        if status.number
        else None
    )
    async with service.database.write() as session:
        await session.execute(
            update(LoginRequestRow)
            .where(LoginRequestRow.key == key)
            .values(transaction_id=status.transaction_id, number=number)
        )


async def joined_status(service: LoginService, key: str) -> LoginStatus | None:
    """Wait for the login started under `key` and return its status, with its number."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOIN_WAIT_SECONDS
    while loop.time() < deadline:
        async with service.database.read() as session:
            row = await session.get(LoginRequestRow, key)
        if row is not None and row.transaction_id is not None:
            status = await service.get_status(row.transaction_id)
            number = None
            if row.number and status.status == "pending":
                number = service.keyring.decrypt(row.number, f"login_request:{key}").reveal()
            log.info("request joined an existing login transaction=%s", row.transaction_id)
            return LoginStatus(
                status.transaction_id,
                status.status,
                reason=status.reason,
                number=number,
                verification=status.verification,
                expires_at=status.expires_at,
                username=status.username,
                delivered=status.delivered,
                application=status.application,
            )
        await asyncio.sleep(0.1)
    log.warning("repeated request found no login to join within %.0f s", JOIN_WAIT_SECONDS)
    return None


async def prune(service: LoginService) -> None:
    async with service.database.write() as session:
        await session.execute(
            delete(LoginRequestRow).where(
                LoginRequestRow.created_at < service.clock.now() - KEEP_FOR
            )
        )
