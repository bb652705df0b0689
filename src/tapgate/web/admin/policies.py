"""Console pages for policies: the ordered list, add and edit, move up and down, delete, the
"explain for a user" panel, and two JSON helpers for the form (value check and suggestions).

Forms that change the list carry the object version they were rendered with. A change made in
the meantime (another administrator, `tapgate apply`) makes the submission fail with a message
instead of moving or replacing the wrong policy.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from tapgate.errors import DirectoryUnavailable, NotFoundError, ObjectError, PolicyValueError
from tapgate.objects.document import POLICY_ATTRIBUTES, ObjectSet
from tapgate.objects.explaining import explain_login
from tapgate.objects.runtime import Snapshot
from tapgate.objects.specs import PolicySpec, parse_policy
from tapgate.policy.matching import MAX_VALUE_LENGTH, compile_value
from tapgate.store.models import AuthProfileRow, LocalUserRow
from tapgate.web.admin.changes import object_version, save_objects
from tapgate.web.admin.layout import console_router, render_admin, see_other
from tapgate.web.admin.session import AdminDep, AdminIdentity
from tapgate.web.forms import Form, read_form
from tapgate.web.rendering import flash, translator
from tapgate.web.waiting import runtime_of

log = logging.getLogger(__name__)

router = console_router()

MAX_CHECKED_VALUES = 50
MAX_SUGGESTIONS = 20
# Local users scanned for suggestions; enough for any local profile kept by hand.
MAX_SCANNED_USERS = 5000
SUGGEST_SECONDS = 10.0


def _policies(snapshot: Snapshot) -> list[PolicySpec]:
    return list(snapshot.objects.policies or [])


async def _explain(
    request: Request,
    snapshot: Snapshot,
    username: str,
    application_name: str,
) -> tuple[dict[str, Any] | None, str | None, int]:
    """Return the explanation for the user, the message when no outcome can be given, and
    the HTTP status that fits."""
    _ = translator(request)
    try:
        result = await explain_login(snapshot, username, application_name or None)
    except NotFoundError:
        return None, _("That application does not exist."), 404
    except DirectoryUnavailable as exc:
        return None, _("The directory could not be reached: %(error)s") % {"error": exc}, 503
    if result["auth_profile"] is None:
        message = _("No auth profile of these methods knows the user %(name)s.") % {
            "name": username
        }
        return result, message, 404
    return result, None, 200


@router.get("/admin/policies")
async def list_page(request: Request, admin: AdminDep) -> Response:
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    username = request.query_params.get("username", "").strip()[:256]
    application = request.query_params.get("application", "").strip()[:64]
    explanation, explain_error = None, None
    if username:
        explanation, explain_error, _status = await _explain(
            request, snapshot, username, application
        )
    return render_admin(
        request,
        admin,
        "admin/policies.html",
        "policies",
        {
            "policies": _policies(snapshot),
            "version": await object_version(runtime),
            "applications": list(snapshot.objects.applications),
            "explain_username": username,
            "explain_application": application,
            "explanation": explanation,
            "explain_error": explain_error,
        },
    )


async def _edit_page(
    request: Request,
    admin: AdminIdentity,
    values: dict[str, Any],
    position: int | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    snapshot = await runtime.objects.current()
    return render_admin(
        request,
        admin,
        "admin/policy_form.html",
        "policies",
        {
            "values": values,
            "position": position,
            "version": await object_version(runtime),
            "push_profiles": {
                name: list(spec.fallback_auth_profiles)
                for name, spec in snapshot.objects.push_profiles.items()
            },
            "auth_profile_names": list(snapshot.objects.auth_profiles),
            "attributes": POLICY_ATTRIBUTES,
            "error": error,
        },
        status=status,
    )


def _values(policy: PolicySpec | None) -> dict[str, Any]:
    if policy is None:
        return {"push_profile": "", "auth_profile": "", "attribute": "department", "values": ""}
    return {
        "push_profile": policy.push_profile,
        "auth_profile": policy.auth_profile,
        "attribute": policy.attribute,
        "values": "\n".join(policy.values),
    }


def _position(text: str, count: int) -> int | None:
    """Return a 1-based position within the list, or None."""
    # Only ASCII digits: `isdigit` also accepts characters such as '²' that `int` rejects.
    if not (text.isascii() and text.isdigit()):
        return None
    position = int(text)
    return position if 1 <= position <= count else None


@router.get("/admin/policies/new")
async def new_form(request: Request, admin: AdminDep) -> Response:
    return await _edit_page(request, admin, _values(None), None)


@router.get("/admin/policies/check")
async def check_values(request: Request, admin: AdminDep) -> JSONResponse:
    """Check policy values as they are typed: `value` may repeat; `attribute` is optional."""
    _ = translator(request)
    is_member_of = request.query_params.get("attribute", "").lower() == "memberof"
    results = []
    for value in request.query_params.getlist("value")[:MAX_CHECKED_VALUES]:
        value = value.strip()
        if not value:
            continue
        entry: dict[str, Any] = {"value": value[:MAX_VALUE_LENGTH]}
        try:
            matcher = compile_value(value)
        except PolicyValueError as exc:
            entry.update(valid=False, message=str(exc), position=exc.position)
        else:
            entry.update(valid=True, kind=matcher.kind)
            if is_member_of and matcher.dn_error is not None:
                entry.update(
                    valid=False,
                    message=_("This looks like a DN but does not parse: %(error)s")
                    % {"error": matcher.dn_error},
                )
        results.append(entry)
    return JSONResponse({"results": results})


async def _local_suggestions(
    request: Request, profile: str, attribute: str, prefix: str
) -> list[str]:
    """Return values of `attribute` among the users of a local auth profile."""
    runtime = runtime_of(request)
    async with runtime.database.read() as session:
        rows = (
            await session.scalars(
                select(LocalUserRow)
                .join(AuthProfileRow, AuthProfileRow.id == LocalUserRow.auth_profile_id)
                .where(AuthProfileRow.name == profile)
                .limit(MAX_SCANNED_USERS)
            )
        ).all()
    field = {
        "group_name": "groups",
        "memberof": "groups",
        "username": "username",
        "email": "email",
        "mail": "email",
        "mobile": "mobile",
    }.get(attribute.lower())
    if field is None:
        return []
    found: set[str] = set()
    folded_prefix = prefix.casefold()
    for row in rows:
        value = getattr(row, field)
        candidates = value if isinstance(value, list) else [value]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate.casefold().startswith(folded_prefix):
                found.add(candidate)
    return sorted(found, key=str.casefold)[:MAX_SUGGESTIONS]


@router.get("/admin/policies/suggest")
async def suggest(request: Request, admin: AdminDep) -> JSONResponse:
    """Return stored values of an attribute in an auth profile that start with `prefix`."""
    profile_name = request.query_params.get("auth_profile", "")[:64]
    attribute = request.query_params.get("attribute", "")[:64]
    prefix = request.query_params.get("prefix", "")[:128]
    snapshot = await runtime_of(request).objects.current()
    profile = snapshot.auth_profiles.get(profile_name)
    if profile is None or not attribute:
        return JSONResponse({"values": []})

    suggester = getattr(profile, "suggest_values", None)
    try:
        if suggester is not None:
            values = await asyncio.wait_for(
                suggester(attribute, prefix, MAX_SUGGESTIONS), SUGGEST_SECONDS
            )
        else:
            values = await _local_suggestions(request, profile_name, attribute, prefix)
    except (DirectoryUnavailable, ObjectError, TimeoutError) as exc:
        log.info("value suggestions failed auth_profile=%s error=%s", profile_name, exc)
        return JSONResponse({"values": [], "error": str(exc)[:200]})
    return JSONResponse({"values": [str(value) for value in values][:MAX_SUGGESTIONS]})


@router.get("/admin/policies/explain")
async def explain_json(request: Request, admin: AdminDep) -> JSONResponse:
    """Explain as JSON which method and push profile `username` gets for `application`
    (default: the method push), in the form of `tapgate policy explain --json`."""
    _ = translator(request)
    username = request.query_params.get("username", "").strip()[:256]
    application = request.query_params.get("application", "").strip()[:64]
    if not username:
        return JSONResponse(
            {"error": _("Give the user's login name as the username parameter.")}, status_code=400
        )
    snapshot = await runtime_of(request).objects.current()
    explanation, error, status = await _explain(request, snapshot, username, application)
    if error is None:
        return JSONResponse(explanation)
    return JSONResponse({**(explanation or {}), "error": error}, status_code=status)


@router.get("/admin/policies/{position}")
async def edit_form(request: Request, position: str, admin: AdminDep) -> Response:
    policies = _policies(await runtime_of(request).objects.current())
    index = _position(position, len(policies))
    if index is None:
        _ = translator(request)
        flash(request, "error", _("That policy does not exist."))
        return see_other("/admin/policies")
    return await _edit_page(request, admin, _values(policies[index - 1]), index)


def _submitted(form: Form) -> dict[str, Any]:
    return {
        "push_profile": form.text("push_profile", 64),
        "auth_profile": form.text("auth_profile", 64),
        "attribute": form.text("attribute", 64),
        "values": "\n".join(form.lines("values")),
    }


async def _stale(request: Request, form: Form) -> bool:
    """Return whether the objects changed since the submitted form was rendered."""
    return form.text("version", 16) != str(await object_version(runtime_of(request)))


async def _replace_policies(
    request: Request, admin: AdminIdentity, policies: list[PolicySpec]
) -> None:
    await save_objects(runtime_of(request), admin, ObjectSet(policies=policies))


@router.post("/admin/policies")
async def save(request: Request, admin: AdminDep) -> Response:
    _ = translator(request)
    form = await read_form(request)
    values = _submitted(form)
    policies = _policies(await runtime_of(request).objects.current())
    position_text = form.text("position", 8)
    position = _position(position_text, len(policies)) if position_text else None
    if position_text and position is None:
        flash(request, "error", _("That policy does not exist."))
        return see_other("/admin/policies")
    if await _stale(request, form):
        return await _edit_page(
            request,
            admin,
            values,
            position,
            status=409,
            error=_(
                "The settings changed while you were editing. Check the policies, then save again."
            ),
        )

    try:
        policy = parse_policy(
            {
                "push_profile": values["push_profile"],
                "auth_profile": values["auth_profile"],
                "attribute": values["attribute"],
                "values": values["values"].split("\n"),
            },
            (position or len(policies) + 1) - 1,
        )
        if position is None:
            policies.append(policy)
        else:
            policies[position - 1] = policy
        await _replace_policies(request, admin, policies)
    except ObjectError as exc:
        return await _edit_page(request, admin, values, position, error=str(exc), status=400)
    flash(request, "success", _("Policy saved."))
    return see_other("/admin/policies")


@router.post("/admin/policies/{position}/move")
async def move(request: Request, position: str, admin: AdminDep) -> Response:
    _ = translator(request)
    form = await read_form(request)
    policies = _policies(await runtime_of(request).objects.current())
    index = _position(position, len(policies))
    direction = form.text("direction", 8)
    if index is None or direction not in ("up", "down"):
        flash(request, "error", _("That policy does not exist."))
        return see_other("/admin/policies")
    if await _stale(request, form):
        flash(
            request,
            "error",
            _("The settings changed in the meantime. Check the list and try again."),
        )
        return see_other("/admin/policies")

    other = index - 1 if direction == "up" else index + 1
    if 1 <= other <= len(policies):
        policies[index - 1], policies[other - 1] = policies[other - 1], policies[index - 1]
        try:
            await _replace_policies(request, admin, policies)
        except ObjectError as exc:
            flash(request, "error", _("Not saved: %(reason)s") % {"reason": exc})
            return see_other("/admin/policies")
        flash(request, "success", _("Policy moved to position %(position)d.") % {"position": other})
    return see_other("/admin/policies")


@router.post("/admin/policies/{position}/delete")
async def delete(request: Request, position: str, admin: AdminDep) -> Response:
    _ = translator(request)
    form = await read_form(request)
    policies = _policies(await runtime_of(request).objects.current())
    index = _position(position, len(policies))
    if index is None:
        flash(request, "error", _("That policy does not exist."))
        return see_other("/admin/policies")
    if await _stale(request, form):
        flash(
            request,
            "error",
            _("The settings changed in the meantime. Check the list and try again."),
        )
        return see_other("/admin/policies")
    del policies[index - 1]
    try:
        await _replace_policies(request, admin, policies)
    except (ObjectError, NotFoundError) as exc:
        flash(request, "error", _("Not saved: %(reason)s") % {"reason": exc})
        return see_other("/admin/policies")
    flash(request, "success", _("Policy deleted."))
    return see_other("/admin/policies")
