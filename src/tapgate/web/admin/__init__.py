"""The admin console: one module per page group, all behind a console sign-in with push."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import APIRouter


def console_routers() -> list[APIRouter]:
    """Return every router of the console, the sign-in and enrollment pages first."""
    from tapgate.web.admin import (
        admins,
        applications,
        audit,
        auth_profiles,
        devices,
        overview,
        policies,
        push_profiles,
        radius_clients,
        sign_in,
        users,
    )

    return [
        sign_in.router,
        overview.router,
        auth_profiles.router,
        push_profiles.router,
        policies.router,
        applications.router,
        radius_clients.router,
        users.router,
        devices.router,
        audit.router,
        admins.router,
    ]
