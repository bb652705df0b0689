"""Administrator accounts: the rules for names and passwords, and creating one.

`tapgate admin create` and the console's Administrators page both use these.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.directory.passwords import hash_password
from tapgate.errors import ObjectError
from tapgate.objects.specs import NAME_PATTERN
from tapgate.secret import Secret
from tapgate.store.models import AdminRow

# Administrators are not users of an auth profile. Their devices are stored with this auth
# profile name, which no real auth profile can have because names cannot contain "@".
ADMIN_AUTH_PROFILE = "@admin"
# The application name of console sign-ins in transactions and audit records.
CONSOLE_APPLICATION = "@console"
MIN_ADMIN_PASSWORD = 10
MAX_ADMIN_PASSWORD = 1024


def check_admin_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ObjectError(
            f"invalid administrator name {name!r}; use 1-64 ASCII letters (a-z, A-Z), digits, "
            "'.', '_' or '-'"
        )
    return name


def check_admin_password(password: str) -> None:
    if len(password) < MIN_ADMIN_PASSWORD:
        raise ObjectError(
            f"the administrator password must have at least {MIN_ADMIN_PASSWORD} characters"
        )
    if len(password) > MAX_ADMIN_PASSWORD:
        raise ObjectError(
            f"the administrator password may have at most {MAX_ADMIN_PASSWORD} characters"
        )


async def create_admin(
    session: AsyncSession, name: str, password: Secret, now: datetime, actor: str
) -> AdminRow:
    """Add an administrator; raise ObjectError for a bad name or password or a taken name."""
    check_admin_name(name)
    check_admin_password(password.reveal())
    # Hash before the first statement: on SQLite it takes the write lock for the whole hash.
    password_hash = await hash_password(password)
    taken = (await session.scalars(select(AdminRow.id).where(AdminRow.name == name))).first()
    if taken is not None:
        raise ObjectError(f"administrator {name!r} already exists")
    row = AdminRow(
        id=str(uuid.uuid4()),
        name=name,
        password_hash=password_hash,
        created_at=now,
        disabled=False,
    )
    session.add(row)
    await record_audit(
        session,
        "admin_change",
        actor=actor,
        outcome="applied",
        details={"change": f"created administrator {name}"},
    )
    return row
