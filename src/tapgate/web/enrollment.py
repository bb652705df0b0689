"""Enrolling a phone from a web page: the QR code, waiting for the device, and its confirmation.

The registration panel and an administrator's first console sign-in share these steps. The
page issues an enrollment, shows it as a QR code and a same-phone link, polls until the device
has registered, and then prompts for the code the device shows (see
`tapgate.devices.confirmation`). Existing devices of the user are told about the new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import segno
from markupsafe import Markup
from sqlalchemy import select

from tapgate.devices.confirmation import (
    CONFIRMED,
    FAILED,
    PENDING,
    ConfirmationResult,
    confirm_device,
    confirmation_state,
    is_awaiting_confirmation,
)
from tapgate.devices.enrollment import issue_enrollment
from tapgate.directory.base import DirectoryUser
from tapgate.runtime import Runtime
from tapgate.store.models import DeviceRow, EnrollmentRow

log = logging.getLogger(__name__)

# Progress states the page shows.
WAITING = "waiting"
REGISTERED = "registered"
DONE = "confirmed"
FAILED_STATE = "failed"
EXPIRED = "expired"
MISSING = "missing"


@dataclass(frozen=True)
class Owner:
    """The user (or administrator) an enrollment belongs to."""

    auth_profile: str
    user_id: str
    username: str

    def as_directory_user(self) -> DirectoryUser:
        return DirectoryUser(
            auth_profile=self.auth_profile, user_id=self.user_id, username=self.username
        )


@dataclass(frozen=True)
class StartedEnrollment:
    enrollment_id: str
    url: str
    expires_at: datetime
    qr_svg: Markup


@dataclass(frozen=True)
class EnrollmentProgress:
    state: str
    device: DeviceRow | None = None


def qr_svg(url: str, title: str) -> Markup:
    """Return the QR code of `url` as inline SVG, which the content security policy allows."""
    code = segno.make(url, error="m")
    svg: str = code.svg_inline(
        scale=6, border=4, omitsize=True, title=title, svgclass="qr-code", dark="#000", light="#fff"
    )
    return Markup(svg)  # noqa: S704 - segno escapes the title and the rest is generated markup


async def start_enrollment(
    runtime: Runtime,
    owner: Owner,
    issued_by: str,
    source_ip: str | None,
    title: str,
) -> StartedEnrollment:
    """Issue an enrollment for `owner`, voiding any unused earlier one."""
    now = runtime.clock.now()
    async with runtime.database.write() as session:
        issued = await issue_enrollment(
            session,
            runtime.keyring,
            runtime.settings.public_url,
            owner.as_directory_user(),
            now,
            issued_by=issued_by,
            source_ip=source_ip,
        )
        token_hash = runtime.keyring.hash_token(issued.token)
        enrollment_id = (
            await session.scalars(
                select(EnrollmentRow.id).where(EnrollmentRow.token_hash == token_hash)
            )
        ).one()
    return StartedEnrollment(
        enrollment_id, issued.url, issued.expires_at, qr_svg(issued.url, title)
    )


async def _owned_enrollment(
    runtime: Runtime, enrollment_id: str, owner: Owner
) -> EnrollmentRow | None:
    async with runtime.database.read() as session:
        row = await session.get(EnrollmentRow, enrollment_id)
    if row is None or (row.auth_profile, row.user_id) != (owner.auth_profile, owner.user_id):
        return None
    return row


async def enrollment_progress(
    runtime: Runtime, enrollment_id: str, owner: Owner
) -> EnrollmentProgress:
    """Return how far the enrollment has come: waiting, registered, confirmed, failed, expired."""
    now = runtime.clock.now()
    row = await _owned_enrollment(runtime, enrollment_id, owner)
    if row is None:
        return EnrollmentProgress(MISSING)
    if row.device_id is None:
        return EnrollmentProgress(EXPIRED if row.expires_at <= now else WAITING)

    async with runtime.database.read() as session:
        device = await session.get(DeviceRow, row.device_id)
    if device is None:
        return EnrollmentProgress(MISSING)
    state = confirmation_state(device)
    if state is None and device.revoked_at is None:
        return EnrollmentProgress(DONE, device)
    if state == PENDING and is_awaiting_confirmation(device, now):
        return EnrollmentProgress(REGISTERED, device)
    return EnrollmentProgress(FAILED_STATE, device)


async def confirm_enrollment(
    runtime: Runtime,
    enrollment_id: str,
    owner: Owner,
    code: str,
    source_ip: str | None,
) -> tuple[ConfirmationResult, DeviceRow | None]:
    """Check the code typed for the enrollment's device; on success tell the other devices."""
    now = runtime.clock.now()
    row = await _owned_enrollment(runtime, enrollment_id, owner)
    if row is None or row.device_id is None:
        return ConfirmationResult(FAILED), None

    async with runtime.database.write() as session:
        device = await session.get(DeviceRow, row.device_id)
        if device is None:
            return ConfirmationResult(FAILED), None
        result = await confirm_device(session, runtime.keyring, device, code, now, source_ip)
    if result.outcome == CONFIRMED:
        await notify_devices(
            runtime,
            owner,
            {
                "notice": "device_enrolled",
                "device_name": device.name,
                "platform": device.platform,
                "time": now.isoformat(),
            },
            skip=device.id,
        )
    return result, device


async def notify_devices(
    runtime: Runtime, owner: Owner, notice: dict[str, Any], skip: str | None = None
) -> int:
    """Send a notice event to every connected active device of `owner`; return how many took it."""
    async with runtime.database.read() as session:
        device_ids = (
            await session.scalars(
                select(DeviceRow.id).where(
                    DeviceRow.auth_profile == owner.auth_profile,
                    DeviceRow.user_id == owner.user_id,
                    DeviceRow.revoked_at.is_(None),
                )
            )
        ).all()
    sent = 0
    for device_id in device_ids:
        if device_id != skip and runtime.hub.send(device_id, {"event": "notice", **notice}):
            sent += 1
    log.info(
        "device notice sent user=%r notice=%s devices=%d",
        owner.username,
        notice.get("notice"),
        sent,
    )
    return sent
