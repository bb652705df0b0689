"""Object changes made from the console, validated and audited like `tapgate apply`.

Creating and updating go through `apply_objects` with only the changed objects, so the console
and the YAML file share one set of rules. Deleting checks that no other object still refers to
the deleted one. Every change bumps the object version, so every node uses it on its next
request, and leaves an `admin_change` record with the administrator's name as the actor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.errors import NotFoundError, ObjectError
from tapgate.objects.document import ObjectSet, check_references
from tapgate.objects.repository import apply_objects, bump_object_version, load_objects
from tapgate.runtime import Runtime
from tapgate.store.models import (
    ApplicationRow,
    AuthProfileRow,
    LocalUserRow,
    ObjectVersionRow,
    PushProfileRow,
    RadiusClientRow,
)
from tapgate.web.admin.session import AdminIdentity

_ROWS: dict[str, Any] = {
    "auth_profiles": AuthProfileRow,
    "push_profiles": PushProfileRow,
    "applications": ApplicationRow,
    "radius_clients": RadiusClientRow,
}
_LABELS = {
    "auth_profiles": "auth profile",
    "push_profiles": "push profile",
    "applications": "application",
    "radius_clients": "radius client",
}


async def save_objects(runtime: Runtime, admin: AdminIdentity, incoming: ObjectSet) -> list[str]:
    """Create or update the objects in `incoming`; return one line per change.

    Raises ObjectError, naming the key and the fix, when the result would be invalid.
    """
    async with runtime.database.write() as session:
        return await apply_objects(
            session, runtime.keyring, incoming, prune=False, actor=admin.name, move_default=True
        )


async def delete_object(runtime: Runtime, admin: AdminIdentity, kind: str, name: str) -> None:
    """Delete one named object; raise ObjectError when something still refers to it."""
    async with runtime.database.write() as session:
        stored = await load_objects(session)
        section: dict[str, Any] = getattr(stored, kind)
        if name not in section:
            raise NotFoundError(f"{_LABELS[kind]} {name!r} does not exist")
        del section[name]
        check_references(stored)
        if kind == "auth_profiles":
            await _refuse_profile_with_users(session, name)

        model = _ROWS[kind]
        row = (await session.scalars(select(model).where(model.name == name))).one()
        await session.delete(row)
        await bump_object_version(session)
        await record_change(session, admin, f"deleted {_LABELS[kind]} {name}")


async def _refuse_profile_with_users(session: AsyncSession, name: str) -> None:
    count = await session.scalar(
        select(func.count())
        .select_from(LocalUserRow)
        .join(AuthProfileRow, AuthProfileRow.id == LocalUserRow.auth_profile_id)
        .where(AuthProfileRow.name == name)
    )
    if count:
        raise ObjectError(
            f"auth profile {name!r} still has {count} local users; disable them instead, or "
            "delete the profile with tapgate apply --prune"
        )


async def record_change(
    session: AsyncSession,
    admin: AdminIdentity,
    change: str,
    **fields: Any,
) -> None:
    """Add the `admin_change` audit record of one console change to `session`'s transaction."""
    await record_audit(
        session,
        "admin_change",
        actor=admin.name,
        outcome="applied",
        details={"change": change, "source": "console"},
        **fields,
    )


async def object_version(runtime: Runtime) -> int:
    """Return the stored object version, which forms send back to detect concurrent edits."""
    async with runtime.database.read() as session:
        version = await session.scalar(
            select(ObjectVersionRow.version).where(ObjectVersionRow.id == 1)
        )
    return int(version or 0)
