"""The objects in force: reloaded from the database when any node changed them.

Each request reads one integer (the object version); only when it changed are the objects loaded
again and auth profiles rebuilt, so changes take effect on the next request without a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from tapgate.clock import Clock
from tapgate.directory.base import AuthProfile
from tapgate.directory.local import LocalAuthProfile
from tapgate.errors import NotFoundError
from tapgate.keys import KeyRing
from tapgate.objects.document import ObjectSet
from tapgate.objects.repository import load_objects
from tapgate.objects.specs import ApplicationSpec, PushProfileSpec
from tapgate.policy.index import PolicyIndex
from tapgate.policy.model import Policy, PushProfileRoute
from tapgate.store.database import Database
from tapgate.store.models import AuthProfileRow
from tapgate.store.prepared import Prepared
from tapgate.store.tables import OBJECT_VERSION

log = logging.getLogger(__name__)
# Built once, because every login runs it.
_VERSION = Prepared(select(OBJECT_VERSION.c.version).where(OBJECT_VERSION.c.id == 1))


@dataclass
class Snapshot:
    version: int
    objects: ObjectSet
    auth_profiles: dict[str, AuthProfile] = field(default_factory=dict)

    # Cached because every login reads them and a snapshot's objects never change.
    @functools.cached_property
    def policies(self) -> tuple[Policy, ...]:
        return tuple(
            Policy(i, p.push_profile, p.auth_profile, p.attribute, p.values)
            for i, p in enumerate(self.objects.policies or [], start=1)
        )

    @functools.cached_property
    def policy_index(self) -> PolicyIndex:
        return PolicyIndex(self.policies)

    @functools.cached_property
    def routes(self) -> dict[str, PushProfileRoute]:
        return {
            name: PushProfileRoute(name, spec.fallback_auth_profiles, spec.default)
            for name, spec in self.objects.push_profiles.items()
        }

    def application(self, name: str) -> ApplicationSpec:
        application = self.objects.applications.get(name)
        if application is None:
            raise NotFoundError(f"application {name!r} does not exist")
        return application

    def push_profile(self, name: str) -> PushProfileSpec:
        return self.objects.push_profiles[name]


def _compile_policies(snapshot: Snapshot) -> None:
    from tapgate.errors import PolicyValueError
    from tapgate.policy.matching import compile_value

    for policy in snapshot.objects.policies or []:
        for value in policy.values:
            try:
                compile_value(value)
            except PolicyValueError as exc:
                log.warning(
                    "stored policy value does not compile value=%r error=%s", value[:80], exc
                )
    _ = snapshot.policy_index


class ObjectCache:
    def __init__(self, database: Database, keyring: KeyRing, clock: Clock) -> None:
        self._database = database
        self._keyring = keyring
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()
        # The database's change stamp when the version was last read (see Database.change_stamp).
        self._checked_at_stamp: int | None = None

    async def current(self) -> Snapshot:
        """Return the objects in force, reloading them if another change was committed."""
        # Objects change only through sessions and other processes, which move the stamp, so
        # an unchanged stamp spares a login the version read.
        stamp = self._database.change_stamp()
        if stamp is not None and self._snapshot is not None and stamp == self._checked_at_stamp:
            return self._snapshot
        async with self._database.read_rows() as rows:
            version = await rows.scalar(_VERSION) or 0
        if self._snapshot is not None and self._snapshot.version == version:
            self._checked_at_stamp = stamp
            return self._snapshot
        async with self._lock:
            if self._snapshot is not None and self._snapshot.version == version:
                return self._snapshot
            old = self._snapshot
            self._snapshot = await self._load(version)
            self._checked_at_stamp = stamp
            log.info(
                "objects loaded version=%s auth_profiles=%s",
                version,
                list(self._snapshot.auth_profiles),
            )
        if old is not None:
            for profile in old.auth_profiles.values():
                await profile.close()
        return self._snapshot

    async def _load(self, version: int) -> Snapshot:
        async with self._database.read() as session:
            objects = await load_objects(session)
            secrets = {
                row.name: row.secret
                for row in (await session.scalars(select(AuthProfileRow))).all()
            }
        snapshot = Snapshot(version=version, objects=objects)
        # Compile every policy value and the index now, off the event loop, so no login waits
        # for a compile.
        await asyncio.to_thread(_compile_policies, snapshot)
        for name, spec in objects.auth_profiles.items():
            if spec.kind == "local":
                snapshot.auth_profiles[name] = LocalAuthProfile(name, self._database, self._clock)
            else:
                snapshot.auth_profiles[name] = self._build_ldap(
                    name, dict(spec.options), secrets.get(name)
                )
        return snapshot

    def _build_ldap(
        self, name: str, options: dict[str, object], stored_secret: str | None
    ) -> AuthProfile:
        from tapgate.directory.ldap import LdapAuthProfile, LdapSettings

        password = (
            self._keyring.decrypt(stored_secret, f"auth_profile:{name}") if stored_secret else None
        )
        options.pop("bind_password", None)
        settings = LdapSettings.from_mapping(name, options, password)
        profile: AuthProfile = LdapAuthProfile(settings)
        return profile

    async def close(self) -> None:
        if self._snapshot is not None:
            for profile in self._snapshot.auth_profiles.values():
                await profile.close()
