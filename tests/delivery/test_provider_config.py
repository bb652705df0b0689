"""The `delivery_providers` objects section: validation, encrypted storage and export."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tapgate.delivery.config import load_provider_settings
from tapgate.errors import ObjectError
from tapgate.keys import KeyRing
from tapgate.objects.document import parse_document
from tapgate.objects.repository import apply_objects, export_document, load_objects
from tapgate.store.database import Database
from tapgate.store.migrate import upgrade
from tapgate.store.models import DeliveryProviderRow

SERVICE_ACCOUNT = (
    '{"client_email": "a@b.iam.gserviceaccount.com", "private_key": "k", "project_id": "p"}'
)


def document(tmp_path: Path, **fcm: Any) -> dict[str, Any]:
    credential = tmp_path / "fcm.json"
    credential.write_text(SERVICE_ACCOUNT)
    return {
        "delivery_providers": [
            {"type": "fcm", "service_account_file": str(credential), **fcm},
        ]
    }


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        pytest.param({"type": "pigeon"}, "type must be one of", id="unknown-type"),
        pytest.param({"type": "fcm"}, "missing key 'service_account_file'", id="missing-key"),
        pytest.param(
            {"type": "fcm", "service_account_file": "x", "colour": "red"},
            "unknown key 'colour'",
            id="unknown-key",
        ),
        pytest.param(
            {"type": "fcm", "service_account_file": "x", "send_url": "http://fcm.example.com"},
            "not encrypted",
            id="plain-http",
        ),
        pytest.param(
            {
                "type": "webpush",
                "vapid_private_key_file": "x",
                "subject": "s",
                "allowed_endpoint_hosts": "*",
            },
            "allowed_endpoint_hosts must be a list",
            id="hosts-not-list",
        ),
    ],
)
def test_provider_entry_invalid(entry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ObjectError, match=fragment):
        parse_document({"delivery_providers": [entry]})


def test_provider_type_twice_rejected() -> None:
    entry = {"type": "fcm", "service_account_file": "x"}
    with pytest.raises(ObjectError, match="appears twice"):
        parse_document({"delivery_providers": [entry, entry]})


async def test_credential_stored_encrypted(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    database = Database(db_url)
    keyring = KeyRing(secrets.token_bytes(32))
    try:
        async with database.write() as session:
            changes = await apply_objects(
                session, keyring, parse_document(document(tmp_path)), prune=False, actor="test"
            )
        assert changes == ["created delivery provider fcm"]

        async with database.read() as session:
            row = (await session.scalars(select(DeliveryProviderRow))).one()
            settings = await load_provider_settings(session, keyring)
            exported = export_document(await load_objects(session))
        assert row.secret is not None
        assert "client_email" not in row.secret
        assert settings["fcm"].credential.reveal() == SERVICE_ACCOUNT
        assert exported["delivery_providers"] == [
            {"type": "fcm", "service_account_file": str(tmp_path / "fcm.json")}
        ]
    finally:
        await database.close()


async def test_provider_apply_idempotent(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    database = Database(db_url)
    keyring = KeyRing(secrets.token_bytes(32))
    try:
        for expected in (["created delivery provider fcm"], []):
            async with database.write() as session:
                changes = await apply_objects(
                    session, keyring, parse_document(document(tmp_path)), prune=False, actor="t"
                )
            assert changes == expected
        (tmp_path / "fcm.json").write_text(SERVICE_ACCOUNT.replace('"p"', '"q"'))
        async with database.write() as session:
            changes = await apply_objects(
                session,
                keyring,
                parse_document(
                    {
                        "delivery_providers": [
                            {"type": "fcm", "service_account_file": str(tmp_path / "fcm.json")}
                        ]
                    }
                ),
                prune=False,
                actor="t",
            )
        assert changes == ["updated delivery provider fcm"]
    finally:
        await database.close()


async def test_missing_credential_file_named(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    database = Database(db_url)
    keyring = KeyRing(secrets.token_bytes(32))
    incoming = parse_document(
        {
            "delivery_providers": [
                {"type": "fcm", "service_account_file": str(tmp_path / "none.json")}
            ]
        }
    )
    try:
        with pytest.raises(ObjectError, match="none.json"):
            async with database.write() as session:
                await apply_objects(session, keyring, incoming, prune=False, actor="t")
    finally:
        await database.close()
