"""Console pages for auth profiles: list, create and edit (local or LDAP), delete, test connection."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import func, select

from tapgate.errors import ConfigError, DirectoryUnavailable, NotFoundError, ObjectError
from tapgate.objects.document import parse_document
from tapgate.store.models import AuthProfileRow, LocalUserRow
from tapgate.web.admin.changes import delete_object, save_objects
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import AdminDep, AdminIdentity
from tapgate.web.forms import Form, read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.waiting import runtime_of

log = logging.getLogger(__name__)

router = console_router()

LDAP_SCOPES = ("sub", "one", "base")
# A test waits at most this long; the LDAP profile bounds each server attempt itself.
TEST_SECONDS = 60.0
_TEXT_OPTIONS = ("base_dn", "bind_dn", "bind_password_file", "user_filter", "ca_file")
_FLAG_OPTIONS = {"start_tls": True, "nested_groups": False, "follow_referrals": False}


def _user_counts() -> Any:
    """Return the query for the number of local users of each auth profile."""
    return (
        select(AuthProfileRow.name, func.count(LocalUserRow.id))
        .join(LocalUserRow, LocalUserRow.auth_profile_id == AuthProfileRow.id)
        .group_by(AuthProfileRow.name)
    )


@router.get("/admin/auth-profiles")
async def list_page(request: Request, admin: AdminDep) -> Response:
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    async with runtime.database.read() as session:
        counts = {name: count for name, count in (await session.execute(_user_counts())).all()}
    return render_admin(
        request,
        admin,
        "admin/auth_profiles.html",
        "auth_profiles",
        {
            "profiles": list(snapshot.objects.auth_profiles.values()),
            "user_counts": counts,
        },
    )


def _form_values(kind: str, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return the fields of the edit form for a stored or submitted profile."""
    values: dict[str, Any] = {"name": name, "type": kind}
    if kind != "ldap":
        return values
    values["servers"] = "\n".join(str(server) for server in options.get("servers", []) or [])
    for key in _TEXT_OPTIONS:
        values[key] = str(options.get(key) or "")
    values["scope"] = str(options.get("scope") or "sub")
    values["login_attributes"] = ", ".join(options.get("login_attributes", []) or [])
    values["attributes"] = ", ".join(options.get("attributes", []) or [])
    for key, default in _FLAG_OPTIONS.items():
        values[key] = bool(options.get(key, default))
    for key in ("connect_timeout", "operation_timeout"):
        values[key] = "" if options.get(key) is None else str(options[key])
    return values


def _edit_page(
    request: Request,
    admin: AdminIdentity,
    values: dict[str, Any],
    *,
    existing: bool,
    has_secret: bool = False,
    error: str | None = None,
    test_lines: list[str] | None = None,
    test_username: str = "",
    status: int = 200,
) -> Response:
    return render_admin(
        request,
        admin,
        "admin/auth_profile_form.html",
        "auth_profiles",
        {
            "values": values,
            "existing": existing,
            "has_secret": has_secret,
            "error": error,
            "scopes": LDAP_SCOPES,
            "test_lines": test_lines,
            "test_username": test_username,
        },
        status=status,
    )


@router.get("/admin/auth-profiles/new")
async def new_form(request: Request, admin: AdminDep) -> Response:
    kind = "ldap" if request.query_params.get("type") == "ldap" else "local"
    return _edit_page(request, admin, _form_values(kind, "", {"start_tls": True}), existing=False)


async def _stored(
    request: Request, name: str
) -> tuple[AuthProfileRow | None, dict[str, Any] | None]:
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    spec = snapshot.objects.auth_profiles.get(name)
    if spec is None:
        return None, None
    async with runtime.database.read() as session:
        row = (
            await session.scalars(select(AuthProfileRow).where(AuthProfileRow.name == name))
        ).first()
    return row, _form_values(spec.kind, spec.name, dict(spec.options))


@router.get("/admin/auth-profiles/{name}")
async def edit_form(request: Request, name: str, admin: AdminDep) -> Response:
    row, values = await _stored(request, name)
    if row is None or values is None:
        _ = translator(request)
        flash(request, "error", _("That auth profile does not exist."))
        return see_other("/admin/auth-profiles")
    return _edit_page(request, admin, values, existing=True, has_secret=bool(row.secret))


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _document_entry(form: Form, kind: str) -> dict[str, Any]:
    """Return the auth profile mapping the form describes, in the form `tapgate apply` reads."""
    entry: dict[str, Any] = {"name": form.text("name", 64), "type": kind}
    if kind != "ldap":
        return entry
    entry["servers"] = form.lines("servers")
    for key in _TEXT_OPTIONS:
        value = form.text(key, 1024)
        if value:
            entry[key] = value
    scope = form.text("scope", 8)
    if scope and scope != "sub":
        entry["scope"] = scope
    for key in ("login_attributes", "attributes"):
        items = form.items(key)
        if items:
            entry[key] = items
    for key, default in _FLAG_OPTIONS.items():
        flag = form.checked(key)
        if flag != default:
            entry[key] = flag
    for key in ("connect_timeout", "operation_timeout"):
        value = form.text(key, 16)
        if value:
            entry[key] = _number_or_text(value)
    password = form.raw("bind_password")
    if password:
        entry["bind_password"] = password
    return entry


@router.post("/admin/auth-profiles")
async def save(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    runtime = runtime_of(request)
    form = await read_form(request)
    existing = form.checked("existing")
    kind = "ldap" if form.text("type", 8) == "ldap" else "local"
    entry = _document_entry(form, kind)
    name = entry["name"]

    has_secret = False
    if existing:
        row, stored_values = await _stored(request, name)
        if row is None or stored_values is None:
            flash(request, "error", _("That auth profile does not exist."))
            return see_other("/admin/auth-profiles")
        kind = stored_values["type"]
        has_secret = bool(row.secret)
        keeps_stored_password = (
            kind == "ldap"
            and "bind_password" not in entry
            and "bind_password_file" not in entry
            and "bind_dn" in entry
        )
        if keeps_stored_password and row.secret:
            # An empty password field keeps the stored password; apply encrypts it again.
            entry["bind_password"] = runtime.keyring.decrypt(
                row.secret, f"auth_profile:{name}"
            ).reveal()
    elif name in (await runtime.objects.current()).objects.auth_profiles:
        values = _form_values(kind, name, entry)
        return _edit_page(
            request,
            admin,
            values,
            existing=False,
            status=400,
            error=_("An auth profile with this name already exists."),
        )

    try:
        changes = await save_objects(runtime, admin, parse_document({"auth_profiles": [entry]}))
    except (ObjectError, ConfigError) as exc:
        values = _form_values(kind, name, entry)
        return _edit_page(
            request,
            admin,
            values,
            existing=existing,
            has_secret=has_secret,
            error=str(exc),
            status=400,
        )
    flash(request, "success", _("Saved.") if changes else _("Nothing changed."))
    return see_other(f"/admin/auth-profiles/{name}")


@router.post("/admin/auth-profiles/{name}/delete")
async def delete(request: Request, name: str, admin: AdminDep) -> Response:
    _ = translator(request)
    try:
        await delete_object(runtime_of(request), admin, "auth_profiles", name)
    except NotFoundError:
        flash(request, "error", _("That auth profile does not exist."))
    except ObjectError as exc:
        flash(request, "error", _("Not deleted: %(reason)s") % {"reason": exc})
        return see_other(f"/admin/auth-profiles/{name}")
    else:
        flash(request, "success", _("Auth profile %(name)s deleted.") % {"name": name})
    return see_other("/admin/auth-profiles")


async def _test_lines(request: Request, name: str, username: str) -> list[str]:
    """Run the profile's diagnostics (and look up `username`); return lines to show."""
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    profile = snapshot.auth_profiles.get(name)
    if profile is None:
        return [f"auth profile {name!r} does not exist"]

    lines = [f"auth profile {name} (type {profile.kind})"]
    tester = getattr(profile, "test_connection", None)
    if tester is not None:
        lines.extend(await tester(username or None))
        return lines
    if not username:
        lines.append("users are stored in tapgate's database; type a username to look one up")
        return lines
    user = await profile.find_user(username)
    if user is None:
        lines.append(f"user {username!r}: not found")
        return lines
    lines.append(f"user {user.username!r}: found, id {user.user_id}")
    for key, attribute_values in sorted(user.attributes.items()):
        lines.append(f"  {key}: {', '.join(attribute_values)}")
    problem = await profile.account_problem(user, runtime.clock.now())
    lines.append(f"account state: {problem or 'ok'}")
    return lines


@router.post("/admin/auth-profiles/{name}/test")
async def test_connection(request: Request, name: str, admin: AdminDep) -> Response:
    _ = translator(request)
    row, values = await _stored(request, name)
    if row is None or values is None:
        flash(request, "error", _("That auth profile does not exist."))
        return see_other("/admin/auth-profiles")
    form = await read_form(request)
    username = form.text("username", 256)
    try:
        lines = await asyncio.wait_for(_test_lines(request, name, username), TEST_SECONDS)
    except TimeoutError:
        lines = [f"the test did not finish within {TEST_SECONDS:.0f} s"]
    except DirectoryUnavailable as exc:
        lines = [f"directory unavailable: {exc}"]
    log.info("auth profile tested auth_profile=%s admin=%s", name, admin.name)
    return _edit_page(
        request,
        admin,
        values,
        existing=True,
        has_secret=bool(row.secret),
        test_lines=lines,
        test_username=username,
    )
