"""Device rows as the pages show them, and the changes users and administrators make to them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tapgate.audit import record_audit
from tapgate.devices.confirmation import (
    FAILED,
    PENDING,
    confirmation_state,
    is_awaiting_confirmation,
)
from tapgate.runtime import Runtime
from tapgate.store.models import DeviceRow

log = logging.getLogger(__name__)

MAX_DEVICE_NAME = 64
# States of a device row, as the pages label them.
ACTIVE = "active"
AWAITING = "awaiting_confirmation"
UNCONFIRMED = "unconfirmed"
REVOKED = "revoked"


@dataclass(frozen=True)
class DeviceView:
    id: str
    name: str
    platform: str
    username: str
    auth_profile: str
    created_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None
    enrolled_ip: str | None
    state: str
    connected: bool


def device_state(device: DeviceRow, now: datetime) -> str:
    hold = confirmation_state(device)
    if hold == PENDING and is_awaiting_confirmation(device, now):
        return AWAITING
    if hold in (PENDING, FAILED):
        return UNCONFIRMED
    return REVOKED if device.revoked_at is not None else ACTIVE


def view(runtime: Runtime, device: DeviceRow) -> DeviceView:
    return DeviceView(
        id=device.id,
        name=device.name,
        platform=device.platform,
        username=device.username,
        auth_profile=device.auth_profile,
        created_at=device.created_at,
        last_seen_at=device.last_seen_at,
        revoked_at=device.revoked_at,
        enrolled_ip=device.enrolled_ip,
        state=device_state(device, runtime.clock.now()),
        connected=runtime.hub.is_connected(device.id),
    )


async def user_devices(
    runtime: Runtime,
    auth_profile: str,
    user_id: str,
    *,
    include_revoked: bool = False,
) -> list[DeviceView]:
    """Return the user's devices, newest first; revoked and unconfirmed ones only on request."""
    async with runtime.database.read() as session:
        rows = (
            await session.scalars(
                select(DeviceRow)
                .where(DeviceRow.auth_profile == auth_profile, DeviceRow.user_id == user_id)
                .order_by(DeviceRow.created_at.desc())
            )
        ).all()
    views = [view(runtime, row) for row in rows]
    if include_revoked:
        return views
    return [item for item in views if item.state in (ACTIVE, AWAITING)]


def valid_device_name(name: str) -> bool:
    return 0 < len(name) <= MAX_DEVICE_NAME and all(ord(character) >= 32 for character in name)


async def rename_device(
    runtime: Runtime,
    device_id: str,
    owner: tuple[str, str] | None,
    name: str,
    actor: str,
    source_ip: str | None,
) -> DeviceRow | None:
    """Rename a device; with `owner` (auth profile, user id) only a device of that user."""
    async with runtime.database.write() as session:
        device = await session.get(DeviceRow, device_id)
        if device is None or (owner is not None and (device.auth_profile, device.user_id) != owner):
            return None
        old_name = device.name
        device.name = name
        await record_audit(
            session,
            "device_changed",
            username=device.username,
            auth_profile=device.auth_profile,
            device_id=device.id,
            outcome="renamed",
            actor=actor,
            source_ip=source_ip,
            details={"old_name": old_name, "new_name": name},
        )
    return device


async def revoke_device(
    runtime: Runtime,
    device_id: str,
    owner: tuple[str, str] | None,
    actor: str,
    reason: str,
    source_ip: str | None,
) -> DeviceRow | None:
    """Revoke a device at once: it can no longer poll, hold a stream or answer a challenge.

    With `owner` (auth profile, user id) only a device of that user is revoked. Returns the
    device, or None when it does not exist, belongs to someone else or was already revoked.
    """
    now = runtime.clock.now()
    async with runtime.database.write() as session:
        device = await session.get(DeviceRow, device_id)
        if device is None or (owner is not None and (device.auth_profile, device.user_id) != owner):
            return None
        if device.revoked_at is not None and confirmation_state(device) is None:
            return None
        device.revoked_at = now
        if confirmation_state(device) is not None:
            device.delivery = {**device.delivery, "confirmation": {"state": FAILED}}
        await record_audit(
            session,
            "device_revoked",
            username=device.username,
            auth_profile=device.auth_profile,
            device_id=device.id,
            outcome="revoked",
            reason=reason,
            actor=actor,
            source_ip=source_ip,
            details={"device_name": device.name},
        )
    runtime.hub.close_device(device.id)
    log.info("device revoked device=%s user=%r actor=%s", device.id, device.username, actor)
    return device
