"""Console pages for push profiles: list, create and edit, delete."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from tapgate.errors import NotFoundError, ObjectError
from tapgate.objects.document import parse_document
from tapgate.objects.specs import DELIVERY_PROVIDERS, VERIFICATION_MODES, PushProfileSpec
from tapgate.web.admin.changes import delete_object, save_objects
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import AdminDep, AdminIdentity
from tapgate.web.forms import Form, integer_or_text, read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.waiting import runtime_of

router = console_router()

_NUMBERS = (
    "timeout",
    "number_digits",
    "code_digits",
    "max_pending",
    "rate_limit_count",
    "rate_limit_window",
)


@router.get("/admin/push-profiles")
async def list_page(request: Request, admin: AdminDep) -> Response:
    snapshot = await runtime_of(request).objects.current()
    return render_admin(
        request,
        admin,
        "admin/push_profiles.html",
        "push_profiles",
        {
            "profiles": list(snapshot.objects.push_profiles.values()),
        },
    )


def _values(spec: PushProfileSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "fallback_auth_profiles": ", ".join(spec.fallback_auth_profiles),
        "timeout": str(spec.timeout),
        "verification": spec.verification,
        "number_digits": str(spec.number_digits),
        "code_digits": str(spec.code_digits),
        "require_user_verification": spec.require_user_verification,
        "default": spec.default,
        "max_pending": str(spec.max_pending),
        "rate_limit_count": str(spec.rate_limit_count),
        "rate_limit_window": str(spec.rate_limit_window),
        "delivery": list(spec.delivery),
    }


def _submitted_values(form: Form) -> dict[str, Any]:
    values: dict[str, Any] = {key: form.text(key, 32) for key in _NUMBERS}
    values.update(
        name=form.text("name", 64),
        fallback_auth_profiles=form.text("fallback_auth_profiles", 1024),
        verification=form.text("verification", 16),
        require_user_verification=form.checked("require_user_verification"),
        default=form.checked("default"),
        delivery=form.all("delivery"),
    )
    return values


def _entry(values: dict[str, Any]) -> dict[str, Any]:
    """Return the push profile mapping `tapgate apply` would read for these form values."""
    fallback = [
        item.strip() for item in values["fallback_auth_profiles"].split(",") if item.strip()
    ]
    return {
        "name": values["name"],
        "fallback_auth_profiles": fallback,
        "timeout": integer_or_text(values["timeout"]),
        "verification": values["verification"],
        "number_digits": integer_or_text(values["number_digits"]),
        "code_digits": integer_or_text(values["code_digits"]),
        "require_user_verification": values["require_user_verification"],
        "default": values["default"],
        "max_pending": integer_or_text(values["max_pending"]),
        "rate_limit": {
            "count": integer_or_text(values["rate_limit_count"]),
            "window": integer_or_text(values["rate_limit_window"]),
        },
        "delivery": values["delivery"],
    }


async def _edit_page(
    request: Request,
    admin: AdminIdentity,
    values: dict[str, Any],
    *,
    existing: bool,
    error: str | None = None,
    status: int = 200,
) -> Response:
    snapshot = await runtime_of(request).objects.current()
    return render_admin(
        request,
        admin,
        "admin/push_profile_form.html",
        "push_profiles",
        {
            "values": values,
            "existing": existing,
            "error": error,
            "auth_profile_names": list(snapshot.objects.auth_profiles),
            "verification_modes": VERIFICATION_MODES,
            "delivery_providers": DELIVERY_PROVIDERS,
        },
        status=status,
    )


@router.get("/admin/push-profiles/new")
async def new_form(request: Request, admin: AdminDep) -> Response:
    snapshot = await runtime_of(request).objects.current()
    first_profile = next(iter(snapshot.objects.auth_profiles), "")
    defaults = _values(
        PushProfileSpec(name="", fallback_auth_profiles=(first_profile,) if first_profile else ())
    )
    return await _edit_page(request, admin, defaults, existing=False)


@router.get("/admin/push-profiles/{name}")
async def edit_form(request: Request, name: str, admin: AdminDep) -> Response:
    snapshot = await runtime_of(request).objects.current()
    spec = snapshot.objects.push_profiles.get(name)
    if spec is None:
        _ = translator(request)
        flash(request, "error", _("That push profile does not exist."))
        return see_other("/admin/push-profiles")
    return await _edit_page(request, admin, _values(spec), existing=True)


@router.post("/admin/push-profiles")
async def save(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    existing = form.checked("existing")
    values = _submitted_values(form)
    stored = (await runtime.objects.current()).objects.push_profiles
    if existing and values["name"] not in stored:
        flash(request, "error", _("That push profile does not exist."))
        return see_other("/admin/push-profiles")
    if not existing and values["name"] in stored:
        return await _edit_page(
            request,
            admin,
            values,
            existing=False,
            status=400,
            error=_("A push profile with this name already exists."),
        )

    try:
        changes = await save_objects(
            runtime, admin, parse_document({"push_profiles": [_entry(values)]})
        )
    except ObjectError as exc:
        return await _edit_page(
            request, admin, values, existing=existing, error=str(exc), status=400
        )
    flash(request, "success", _("Saved.") if changes else _("Nothing changed."))
    return see_other(f"/admin/push-profiles/{values['name']}")


@router.post("/admin/push-profiles/{name}/delete")
async def delete(request: Request, name: str, admin: AdminDep) -> Response:
    _ = translator(request)
    try:
        await delete_object(runtime_of(request), admin, "push_profiles", name)
    except NotFoundError:
        flash(request, "error", _("That push profile does not exist."))
    except ObjectError as exc:
        flash(request, "error", _("Not deleted: %(reason)s") % {"reason": exc})
        return see_other(f"/admin/push-profiles/{name}")
    else:
        flash(request, "success", _("Push profile %(name)s deleted.") % {"name": name})
    return see_other("/admin/push-profiles")
