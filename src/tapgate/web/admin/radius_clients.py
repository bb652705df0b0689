"""Console pages for RADIUS clients: list, create and edit, delete.

The shared secret is stored encrypted and never shown. A new client gets the secret typed, or a
random one shown once; an edit with an empty secret field keeps the stored secret.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from tapgate.errors import NotFoundError, ObjectError
from tapgate.i18n import LANGUAGES
from tapgate.objects.document import parse_document
from tapgate.objects.repository import bump_object_version
from tapgate.objects.specs import RadiusClientSpec
from tapgate.radius.clients import CLIENT_IP_ATTRIBUTES
from tapgate.store.models import RadiusClientRow
from tapgate.web.admin.changes import delete_object, record_change, save_objects
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import AdminDep, AdminIdentity
from tapgate.web.forms import Form, read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.waiting import runtime_of

router = console_router()

GENERATED_SECRET_BYTES = 24
MAX_SECRET = 128


@router.get("/admin/radius-clients")
async def list_page(request: Request, admin: AdminDep) -> Response:
    snapshot = await runtime_of(request).objects.current()
    return render_admin(
        request,
        admin,
        "admin/radius_clients.html",
        "applications",
        {
            "clients": list(snapshot.objects.radius_clients.values()),
        },
    )


def _values(spec: RadiusClientSpec | None, application: str = "") -> dict[str, Any]:
    if spec is None:
        return {
            "name": "",
            "address": "",
            "application": application,
            "require_message_authenticator": True,
            "client_ip_attribute": CLIENT_IP_ATTRIBUTES[0],
            "timeout": "",
            "language": "en",
        }
    options = dict(spec.options)
    return {
        "name": spec.name,
        "address": spec.address,
        "application": spec.application,
        "require_message_authenticator": bool(options.get("require_message_authenticator", True)),
        "client_ip_attribute": str(options.get("client_ip_attribute", CLIENT_IP_ATTRIBUTES[0])),
        "timeout": "" if options.get("timeout") is None else str(options["timeout"]),
        "language": str(options.get("language", "en")),
    }


async def _edit_page(
    request: Request,
    admin: AdminIdentity,
    values: dict[str, Any],
    *,
    existing: bool,
    error: str | None = None,
    status: int = 200,
    generated_secret: str | None = None,
) -> Response:
    snapshot = await runtime_of(request).objects.current()
    radius_applications = [
        name for name, app in snapshot.objects.applications.items() if app.kind == "radius"
    ]
    return render_admin(
        request,
        admin,
        "admin/radius_client_form.html",
        "applications",
        {
            "values": values,
            "existing": existing,
            "error": error,
            "applications": radius_applications,
            "client_ip_attributes": CLIENT_IP_ATTRIBUTES,
            "message_languages": LANGUAGES,
            "generated_secret": generated_secret,
        },
        status=status,
    )


@router.get("/admin/radius-clients/new")
async def new_form(request: Request, admin: AdminDep) -> Response:
    application = request.query_params.get("application", "")[:64]
    return await _edit_page(request, admin, _values(None, application), existing=False)


@router.get("/admin/radius-clients/{name}")
async def edit_form(request: Request, name: str, admin: AdminDep) -> Response:
    spec = (await runtime_of(request).objects.current()).objects.radius_clients.get(name)
    if spec is None:
        _ = translator(request)
        flash(request, "error", _("That RADIUS client does not exist."))
        return see_other("/admin/radius-clients")
    return await _edit_page(request, admin, _values(spec), existing=True)


def _submitted(form: Form) -> dict[str, Any]:
    return {
        "name": form.text("name", 64),
        "address": form.text("address", 64),
        "application": form.text("application", 64),
        "require_message_authenticator": form.checked("require_message_authenticator"),
        "client_ip_attribute": form.text("client_ip_attribute", 32),
        "timeout": form.text("timeout", 16),
        "language": form.text("language", 8),
    }


async def _stored_secret(request: Request, name: str) -> dict[str, str]:
    """Return the stored secret of a client as an entry fragment ({"secret"} or {"secret_file"})."""
    runtime = runtime_of(request)
    async with runtime.database.read() as session:
        row = (
            await session.scalars(select(RadiusClientRow).where(RadiusClientRow.name == name))
        ).first()
    if row is None:
        return {}
    secret_file = row.config.get("secret_file")
    if isinstance(secret_file, str) and secret_file:
        return {"secret_file": secret_file}
    if row.secret:
        return {"secret": runtime.keyring.decrypt(row.secret, f"radius_client:{name}").reveal()}
    return {}


def _timeout(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


@router.post("/admin/radius-clients")
async def save(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    existing = form.checked("existing")
    values = _submitted(form)
    stored = (await runtime.objects.current()).objects.radius_clients
    if not existing and values["name"] in stored:
        return await _edit_page(
            request,
            admin,
            values,
            existing=False,
            status=400,
            error=_("A RADIUS client with this name already exists."),
        )

    secret = form.raw("secret")
    generated = None
    stored_secret: dict[str, str] = {}
    if not secret and existing:
        stored_secret = await _stored_secret(request, values["name"])
    if not secret and not stored_secret:
        generated = secrets.token_urlsafe(GENERATED_SECRET_BYTES)
        secret = generated
    if len(secret) > MAX_SECRET:
        return await _edit_page(
            request,
            admin,
            values,
            existing=existing,
            status=400,
            error=_("The shared secret may have at most %(count)d characters.")
            % {"count": MAX_SECRET},
        )

    entry: dict[str, Any] = {
        "name": values["name"],
        "address": values["address"],
        "application": values["application"],
        "require_message_authenticator": values["require_message_authenticator"],
        "client_ip_attribute": values["client_ip_attribute"],
        "language": values["language"],
        **(stored_secret or {"secret": secret}),
    }
    if values["timeout"]:
        entry["timeout"] = _timeout(values["timeout"])
    try:
        changes = await save_objects(runtime, admin, parse_document({"radius_clients": [entry]}))
    except ObjectError as exc:
        return await _edit_page(
            request, admin, values, existing=existing, error=str(exc), status=400
        )
    if not changes and not stored_secret:
        # apply_objects stores a new secret of an otherwise unchanged client without reporting a
        # change, so record it and bump the version here: every node must load the new secret.
        async with runtime.database.write() as session:
            await bump_object_version(session)
            await record_change(
                session, admin, f"replaced the shared secret of radius client {values['name']}"
            )

    if generated is not None:
        # Rendered directly so the secret never passes through the session cookie.
        return await _edit_page(request, admin, values, existing=True, generated_secret=generated)
    flash(
        request,
        "success",
        _("Saved.") if stored_secret else _("Saved. The shared secret was replaced."),
    )
    return see_other(f"/admin/radius-clients/{values['name']}")


@router.post("/admin/radius-clients/{name}/delete")
async def delete(request: Request, name: str, admin: AdminDep) -> Response:
    _ = translator(request)
    try:
        await delete_object(runtime_of(request), admin, "radius_clients", name)
    except NotFoundError:
        flash(request, "error", _("That RADIUS client does not exist."))
    except ObjectError as exc:
        flash(request, "error", _("Not deleted: %(reason)s") % {"reason": exc})
        return see_other(f"/admin/radius-clients/{name}")
    else:
        flash(request, "success", _("RADIUS client %(name)s deleted.") % {"name": name})
    return see_other("/admin/radius-clients")
