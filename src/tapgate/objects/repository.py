"""Store and load administrative objects: `apply` merges a document, `export` prints it back.

`apply` runs in one write transaction: it validates the merged state first and writes nothing when
any object is invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.delivery.config import (
    export_delivery_providers,
    load_provider_specs,
    write_delivery_providers,
)
from tapgate.errors import ObjectError
from tapgate.keys import KeyRing
from tapgate.objects.document import ObjectSet, check_references
from tapgate.objects.specs import (
    ApplicationSpec,
    AuthProfileSpec,
    PolicySpec,
    PushProfileSpec,
    RadiusClientSpec,
)
from tapgate.secret import Secret
from tapgate.store.models import (
    ApplicationRow,
    AuthProfileRow,
    ObjectVersionRow,
    PolicyRow,
    PushProfileRow,
    RadiusClientRow,
)


def push_profile_from_row(row: PushProfileRow) -> PushProfileSpec:
    config = row.config
    rate = config.get("rate_limit", {})
    return PushProfileSpec(
        name=row.name,
        fallback_auth_profiles=tuple(config["fallback_auth_profiles"]),
        timeout=config.get("timeout", 60),
        verification=config.get("verification", "number"),
        number_digits=config.get("number_digits", 2),
        code_digits=config.get("code_digits", 6),
        require_user_verification=config.get("require_user_verification", False),
        default=row.is_default,
        max_pending=config.get("max_pending", 1),
        rate_limit_count=rate.get("count", 10),
        rate_limit_window=rate.get("window", 600),
        delivery=tuple(config.get("delivery", ["direct"])),
    )


async def load_objects(session: AsyncSession) -> ObjectSet:
    """Load every stored object, in declaration and priority order."""
    objects = ObjectSet(policies=[])
    for auth_row in (
        await session.scalars(select(AuthProfileRow).order_by(AuthProfileRow.position))
    ).all():
        objects.auth_profiles[auth_row.name] = AuthProfileSpec(
            auth_row.name, auth_row.kind, dict(auth_row.config)
        )
    for push_row in (
        await session.scalars(select(PushProfileRow).order_by(PushProfileRow.position))
    ).all():
        objects.push_profiles[push_row.name] = push_profile_from_row(push_row)
    for app_row in (
        await session.scalars(select(ApplicationRow).order_by(ApplicationRow.id))
    ).all():
        objects.applications[app_row.name] = ApplicationSpec(
            app_row.name, app_row.kind, tuple(app_row.methods), app_row.require_password
        )
    objects.delivery_providers = await load_provider_specs(session)
    for radius_row in (
        await session.scalars(select(RadiusClientRow).order_by(RadiusClientRow.id))
    ).all():
        config = dict(radius_row.config)
        objects.radius_clients[radius_row.name] = RadiusClientSpec(
            name=radius_row.name,
            address=config.pop("address"),
            application=config.pop("application"),
            secret_file=config.pop("secret_file", None),
            options=config,
        )
    assert objects.policies is not None
    for policy_row in (await session.scalars(select(PolicyRow).order_by(PolicyRow.position))).all():
        objects.policies.append(
            PolicySpec(
                policy_row.push_profile,
                policy_row.auth_profile,
                policy_row.attribute,
                tuple(policy_row.match_values),
            )
        )
    return objects


def _read_secret_file(where: str, path_text: str) -> Secret:
    try:
        value = Path(path_text).read_text(encoding="utf-8").strip("\r\n")
    except OSError as exc:
        raise ObjectError(f"{where}: cannot read secret file {path_text}: {exc.strerror}") from exc
    if not value:
        raise ObjectError(f"{where}: secret file {path_text} is empty")
    return Secret(value)


def _validate_ldap(spec: AuthProfileSpec) -> None:
    from tapgate.directory.ldap import LdapSettings

    options = dict(spec.options)
    password: Secret | None = None
    if "bind_password" in options:
        password = Secret(str(options["bind_password"]))
    LdapSettings.from_mapping(spec.name, options, password)


async def bump_object_version(session: AsyncSession) -> None:
    row = await session.get(ObjectVersionRow, 1)
    if row is None:
        session.add(ObjectVersionRow(id=1, version=1))
    else:
        await session.execute(
            update(ObjectVersionRow)
            .where(ObjectVersionRow.id == 1)
            .values(version=ObjectVersionRow.version + 1)
        )


async def apply_objects(
    session: AsyncSession,
    keyring: KeyRing,
    incoming: ObjectSet,
    *,
    prune: bool,
    actor: str,
    move_default: bool = False,
) -> list[str]:
    """Merge `incoming` into the stored objects; return one line per change."""
    stored = await load_objects(session)
    merged = ObjectSet(
        auth_profiles=({} if prune else dict(stored.auth_profiles)) | incoming.auth_profiles,
        push_profiles=({} if prune else dict(stored.push_profiles)) | incoming.push_profiles,
        applications=({} if prune else dict(stored.applications)) | incoming.applications,
        radius_clients=({} if prune else dict(stored.radius_clients)) | incoming.radius_clients,
        policies=incoming.policies
        if incoming.policies is not None
        else ([] if prune else stored.policies),
        delivery_providers=({} if prune else dict(stored.delivery_providers))
        | incoming.delivery_providers,
    )
    # A file may not silently take the default from a stored push profile (that is "a second
    # default: true"); the console's "make default" passes move_default.
    if move_default and any(p.default for p in incoming.push_profiles.values()):
        for name, profile in list(merged.push_profiles.items()):
            if profile.default and name not in incoming.push_profiles:
                merged.push_profiles[name] = PushProfileSpec(
                    **{**asdict(profile), "default": False}
                )
    for spec in incoming.auth_profiles.values():
        if spec.kind == "ldap":
            _validate_ldap(spec)
    check_references(merged)

    secrets: dict[tuple[str, str], str] = {}
    for spec in incoming.auth_profiles.values():
        if spec.kind == "ldap" and "bind_password_file" in spec.options:
            secret = _read_secret_file(
                f"auth profile {spec.name!r}", str(spec.options["bind_password_file"])
            )
            secrets[("auth", spec.name)] = keyring.encrypt(secret, f"auth_profile:{spec.name}")
        elif spec.kind == "ldap" and "bind_password" in spec.options:
            secret = Secret(str(spec.options["bind_password"]))
            secrets[("auth", spec.name)] = keyring.encrypt(secret, f"auth_profile:{spec.name}")
    for client in incoming.radius_clients.values():
        secret = (
            Secret(client.secret)
            if client.secret is not None
            else _read_secret_file(f"radius client {client.name!r}", str(client.secret_file))
        )
        secrets[("radius", client.name)] = keyring.encrypt(secret, f"radius_client:{client.name}")

    changes: list[str] = []
    changes += await _write_auth_profiles(session, stored, merged, secrets)
    changes += await _write_push_profiles(session, stored, merged)
    changes += await _write_applications(session, stored, merged)
    changes += await _write_radius_clients(session, keyring, merged, secrets)
    changes += await write_delivery_providers(
        session, keyring, merged.delivery_providers, incoming.delivery_providers
    )
    if merged.policies != stored.policies:
        await session.execute(delete(PolicyRow))
        for position, policy in enumerate(merged.policies or [], start=1):
            session.add(
                PolicyRow(
                    position=position,
                    push_profile=policy.push_profile,
                    auth_profile=policy.auth_profile,
                    attribute=policy.attribute,
                    match_values=list(policy.values),
                )
            )
        changes.append(f"replaced policies ({len(merged.policies or [])} in order)")
    if changes:
        await bump_object_version(session)
        for change in changes:
            await record_audit(
                session, "admin_change", actor=actor, outcome="applied", details={"change": change}
            )
    return changes


def _public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "bind_password"}


async def _write_auth_profiles(
    session: AsyncSession, stored: ObjectSet, merged: ObjectSet, secrets: dict[tuple[str, str], str]
) -> list[str]:
    changes = []
    rows = {r.name: r for r in (await session.scalars(select(AuthProfileRow))).all()}
    for name in [n for n in rows if n not in merged.auth_profiles]:
        await session.delete(rows.pop(name))
        changes.append(f"deleted auth profile {name}")
    next_position = max((r.position for r in rows.values()), default=0) + 1
    for name, spec in merged.auth_profiles.items():
        options = _public_options(spec.options)
        secret = secrets.get(("auth", name))
        row = rows.get(name)
        if row is None:
            session.add(
                AuthProfileRow(
                    name=name, kind=spec.kind, position=next_position, config=options, secret=secret
                )
            )
            next_position += 1
            changes.append(f"created auth profile {name}")
        elif (
            row.kind != spec.kind
            or row.config != options
            or (secret is not None and secret != row.secret and stored.auth_profiles[name] != spec)
        ):
            row.kind, row.config = spec.kind, options
            if secret is not None:
                row.secret = secret
            changes.append(f"updated auth profile {name}")
        elif secret is not None:
            row.secret = secret
    return changes


async def _write_push_profiles(
    session: AsyncSession, stored: ObjectSet, merged: ObjectSet
) -> list[str]:
    changes = []
    rows = {r.name: r for r in (await session.scalars(select(PushProfileRow))).all()}
    for name in [n for n in rows if n not in merged.push_profiles]:
        await session.delete(rows.pop(name))
        changes.append(f"deleted push profile {name}")
    next_position = max((r.position for r in rows.values()), default=0) + 1
    for name, spec in merged.push_profiles.items():
        row = rows.get(name)
        if row is None:
            session.add(
                PushProfileRow(
                    name=name,
                    position=next_position,
                    config=spec.to_config(),
                    is_default=spec.default,
                )
            )
            next_position += 1
            changes.append(f"created push profile {name}")
        elif stored.push_profiles.get(name) != spec:
            row.config, row.is_default = spec.to_config(), spec.default
            changes.append(f"updated push profile {name}")
    return changes


async def _write_applications(
    session: AsyncSession, stored: ObjectSet, merged: ObjectSet
) -> list[str]:
    changes = []
    rows = {r.name: r for r in (await session.scalars(select(ApplicationRow))).all()}
    for name in [n for n in rows if n not in merged.applications]:
        await session.delete(rows.pop(name))
        changes.append(f"deleted application {name}")
    for name, spec in merged.applications.items():
        row = rows.get(name)
        if row is None:
            session.add(
                ApplicationRow(
                    name=name,
                    kind=spec.kind,
                    methods=list(spec.methods),
                    require_password=spec.require_password,
                )
            )
            changes.append(f"created application {name}")
        elif stored.applications.get(name) != spec:
            row.kind, row.methods, row.require_password = (
                spec.kind,
                list(spec.methods),
                spec.require_password,
            )
            changes.append(f"updated application {name}")
    return changes


async def _write_radius_clients(
    session: AsyncSession,
    keyring: KeyRing,
    merged: ObjectSet,
    secrets: dict[tuple[str, str], str],
) -> list[str]:
    changes = []
    rows = {r.name: r for r in (await session.scalars(select(RadiusClientRow))).all()}
    for name in [n for n in rows if n not in merged.radius_clients]:
        await session.delete(rows.pop(name))
        changes.append(f"deleted radius client {name}")
    for name, spec in merged.radius_clients.items():
        config: dict[str, Any] = {
            "address": spec.address,
            "application": spec.application,
            **spec.options,
        }
        if spec.secret_file:
            config["secret_file"] = spec.secret_file
        row = rows.get(name)
        secret = secrets.get(("radius", name))
        if row is None:
            session.add(RadiusClientRow(name=name, config=config, secret=secret))
            changes.append(f"created radius client {name}")
        elif row.config != config:
            row.config = config
            if secret is not None:
                row.secret = secret
            changes.append(f"updated radius client {name}")
        elif secret is not None:
            context = f"radius_client:{name}"
            if row.secret is None or keyring.decrypt(row.secret, context) != keyring.decrypt(
                secret, context
            ):
                changes.append(f"updated radius client {name} (new shared secret)")
            row.secret = secret
    return changes


def export_document(objects: ObjectSet) -> dict[str, Any]:
    """Return the objects as an apply-able mapping, in a stable order with no timestamps."""
    document: dict[str, Any] = {}
    document["auth_profiles"] = [
        {"name": s.name, "type": s.kind, **dict(sorted(s.options.items()))}
        for s in objects.auth_profiles.values()
    ]
    document["push_profiles"] = []
    for spec in objects.push_profiles.values():
        item: dict[str, Any] = {"name": spec.name, **spec.to_config()}
        item["rate_limit"] = dict(sorted(item["rate_limit"].items()))
        item["default"] = spec.default
        document["push_profiles"].append(item)
    document["policies"] = [
        {
            "push_profile": p.push_profile,
            "auth_profile": p.auth_profile,
            "attribute": p.attribute,
            "values": list(p.values),
        }
        for p in objects.policies or []
    ]
    document["applications"] = [
        {
            "name": a.name,
            "type": a.kind,
            "methods": list(a.methods),
            "require_password": a.require_password,
        }
        for a in objects.applications.values()
    ]
    document["radius_clients"] = []
    for client in objects.radius_clients.values():
        entry: dict[str, Any] = {
            "name": client.name,
            "address": client.address,
            "application": client.application,
        }
        if client.secret_file:
            entry["secret_file"] = client.secret_file
        entry.update(dict(sorted(client.options.items())))
        document["radius_clients"].append(entry)
    if objects.delivery_providers:
        document["delivery_providers"] = export_delivery_providers(objects.delivery_providers)
    return document
