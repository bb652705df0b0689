"""The parts every console page shares: router settings and the page frame with navigation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tapgate.web.admin.session import AdminIdentity
from tapgate.web.rendering import render
from tapgate.web.security import require_csrf


def console_router() -> APIRouter:
    """Return a router whose POST routes all require the CSRF token."""
    return APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)


def render_admin(
    request: Request,
    admin: AdminIdentity,
    template: str,
    section: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Render a console page; `section` marks the current entry of the navigation."""
    return render(
        request,
        template,
        {"signed_in_admin": admin, "section": section, **(context or {})},
        status=status,
    )


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
