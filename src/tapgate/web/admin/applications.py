"""Console pages for applications and their API clients (the secret is shown once)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from tapgate.api import clients as api_clients
from tapgate.errors import NotFoundError, ObjectError
from tapgate.objects.document import parse_document
from tapgate.objects.specs import APPLICATION_TYPES, ROUTING_METHOD, ApplicationSpec
from tapgate.store.models import ApiClientRow
from tapgate.web.admin.changes import delete_object, record_change, save_objects
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import AdminDep, AdminIdentity
from tapgate.web.forms import read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.waiting import runtime_of

router = console_router()

# Types whose applications call the Auth API, so they need API clients.
API_CLIENT_TYPES = ("api", "sso")


@router.get("/admin/applications")
async def list_page(request: Request, admin: AdminDep) -> Response:
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    async with runtime.database.read() as session:
        clients = (
            await session.scalars(select(ApiClientRow).where(ApiClientRow.revoked_at.is_(None)))
        ).all()
    counts: dict[str, int] = {}
    for client in clients:
        counts[client.application] = counts.get(client.application, 0) + 1
    radius_counts: dict[str, int] = {}
    for radius_client in snapshot.objects.radius_clients.values():
        radius_counts[radius_client.application] = (
            radius_counts.get(radius_client.application, 0) + 1
        )
    return render_admin(
        request,
        admin,
        "admin/applications.html",
        "applications",
        {
            "applications": list(snapshot.objects.applications.values()),
            "client_counts": counts,
            "radius_counts": radius_counts,
        },
    )


def _values(spec: ApplicationSpec | None) -> dict[str, Any]:
    if spec is None:
        return {"name": "", "type": "api", "methods": ROUTING_METHOD, "require_password": True}
    return {
        "name": spec.name,
        "type": spec.kind,
        "methods": ", ".join(spec.methods),
        "require_password": spec.require_password,
    }


async def _edit_page(
    request: Request,
    admin: AdminIdentity,
    values: dict[str, Any],
    *,
    existing: bool,
    error: str | None = None,
    status: int = 200,
    new_client: dict[str, str] | None = None,
) -> Response:
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    clients: list[ApiClientRow] = []
    if existing:
        async with runtime.database.read() as session:
            clients = list(
                (
                    await session.scalars(
                        select(ApiClientRow)
                        .where(ApiClientRow.application == values["name"])
                        .order_by(ApiClientRow.created_at.desc())
                    )
                ).all()
            )
    radius_clients = [
        client
        for client in snapshot.objects.radius_clients.values()
        if client.application == values["name"]
    ]
    return render_admin(
        request,
        admin,
        "admin/application_form.html",
        "applications",
        {
            "values": values,
            "existing": existing,
            "error": error,
            "types": APPLICATION_TYPES,
            "method_names": [ROUTING_METHOD, *snapshot.objects.push_profiles],
            "clients": clients,
            "radius_clients": radius_clients,
            "new_client": new_client,
            "api_client_types": API_CLIENT_TYPES,
        },
        status=status,
    )


@router.get("/admin/applications/new")
async def new_form(request: Request, admin: AdminDep) -> Response:
    return await _edit_page(request, admin, _values(None), existing=False)


@router.get("/admin/applications/{name}")
async def edit_form(request: Request, name: str, admin: AdminDep) -> Response:
    spec = (await runtime_of(request).objects.current()).objects.applications.get(name)
    if spec is None:
        _ = translator(request)
        flash(request, "error", _("That application does not exist."))
        return see_other("/admin/applications")
    return await _edit_page(request, admin, _values(spec), existing=True)


@router.post("/admin/applications")
async def save(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    existing = form.checked("existing")
    values = {
        "name": form.text("name", 64),
        "type": form.text("type", 16),
        "methods": ", ".join(form.items("methods", 1024)),
        "require_password": form.checked("require_password"),
    }
    stored = (await runtime.objects.current()).objects.applications
    if existing and values["name"] not in stored:
        flash(request, "error", _("That application does not exist."))
        return see_other("/admin/applications")
    if not existing and values["name"] in stored:
        return await _edit_page(
            request,
            admin,
            values,
            existing=False,
            status=400,
            error=_("An application with this name already exists."),
        )

    entry = {
        "name": values["name"],
        "type": values["type"],
        "methods": form.items("methods", 1024),
        "require_password": values["require_password"],
    }
    try:
        changes = await save_objects(runtime, admin, parse_document({"applications": [entry]}))
    except ObjectError as exc:
        return await _edit_page(
            request, admin, values, existing=existing, error=str(exc), status=400
        )
    flash(request, "success", _("Saved.") if changes else _("Nothing changed."))
    return see_other(f"/admin/applications/{values['name']}")


@router.post("/admin/applications/{name}/delete")
async def delete(request: Request, name: str, admin: AdminDep) -> Response:
    _ = translator(request)
    try:
        await delete_object(runtime_of(request), admin, "applications", name)
    except NotFoundError:
        flash(request, "error", _("That application does not exist."))
    except ObjectError as exc:
        flash(request, "error", _("Not deleted: %(reason)s") % {"reason": exc})
        return see_other(f"/admin/applications/{name}")
    else:
        flash(request, "success", _("Application %(name)s deleted.") % {"name": name})
    return see_other("/admin/applications")


@router.post("/admin/applications/{name}/clients")
async def create_client(request: Request, name: str, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    spec = (await runtime.objects.current()).objects.applications.get(name)
    if spec is None:
        flash(request, "error", _("That application does not exist."))
        return see_other("/admin/applications")
    try:
        async with runtime.database.write() as session:
            created = await api_clients.add_client(
                session, runtime.keyring, name, runtime.clock.now(), admin.name
            )
    except NotFoundError:
        flash(request, "error", _("That application does not exist."))
        return see_other("/admin/applications")
    # Rendered directly, never redirected: the secret must not pass through the session cookie.
    return await _edit_page(
        request,
        admin,
        _values(spec),
        existing=True,
        new_client={"client_id": created.client_id, "client_secret": created.client_secret},
    )


@router.post("/admin/applications/{name}/clients/{client_id}/revoke")
async def revoke_client(request: Request, name: str, client_id: str, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    async with runtime.database.write() as session:
        client = await api_clients.revoke_client(session, client_id, runtime.clock.now(), name)
        if client is not None:
            await record_change(
                session, admin, f"revoked API client {client.client_id}", application=name
            )
    if client is None:
        flash(request, "error", _("That API client does not exist or is already revoked."))
    else:
        flash(request, "success", _("API client %(client)s revoked.") % {"client": client_id})
    return see_other(f"/admin/applications/{name}")
