"""The objects the embedded default creates on a new database, so `tapgate serve` works alone."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from tapgate.objects.document import parse_document
from tapgate.objects.repository import apply_objects
from tapgate.runtime import Runtime
from tapgate.store.models import AuthProfileRow

log = logging.getLogger(__name__)

EMBEDDED_OBJECTS = {
    "auth_profiles": [{"name": "local", "type": "local"}],
    "push_profiles": [{"name": "default", "fallback_auth_profiles": ["local"], "default": True}],
    "applications": [
        {"name": "default", "type": "api", "methods": ["push"]},
        {"name": "registration", "type": "registration", "methods": ["push"]},
    ],
}


async def create_embedded_defaults(runtime: Runtime) -> None:
    async with runtime.database.write() as session:
        count = (
            await session.execute(select(func.count()).select_from(AuthProfileRow))
        ).scalar_one()
        if count:
            return
        changes = await apply_objects(
            session,
            runtime.keyring,
            parse_document(EMBEDDED_OBJECTS),
            prune=False,
            actor="tapgate serve (embedded default)",
        )
    log.info("embedded default objects created changes=%d", len(changes))
