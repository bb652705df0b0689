"""A right password is not left counted as a failure when the login fails after the check."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from tapgate.directory import passwords
from tapgate.directory.base import DIRECTORY_UNAVAILABLE
from tapgate.push.ports import LoginRequest
from tapgate.push.ratelimit import FAILED_USER
from tapgate.runtime import Runtime
from tapgate.secret import Secret
from tapgate.settings import load_settings
from tapgate.web.admin.sign_in import _check_password
from tests.e2e.conftest import PASSWORD, enroll_device
from tests.support import Server


@pytest.fixture
def enrolled(server: Server) -> None:
    enroll_device(server, "ayşe")


@pytest.fixture
async def runtime(server: Server, enrolled: None) -> AsyncIterator[Runtime]:
    built = Runtime.build(load_settings(str(server.config), env={}))
    yield built
    await built.close()


def _login(client_ip: str) -> LoginRequest:
    return LoginRequest(
        application="portal",
        username="ayşe",
        password=Secret(PASSWORD),
        client_ip=client_ip,
        user_agent="Firefox",
        source="api:portal",
        language="tr",
    )


def _failed_password_counters(server: Server) -> int:
    if not server.database.startswith("sqlite"):
        pytest.skip("counts rows through sqlite3")
    path = server.database.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        row = connection.execute(
            "SELECT count(*) FROM rate_events WHERE kind = ?", (FAILED_USER,)
        ).fetchone()
    return int(row[0])


async def test_db_failure_uncounts_password(
    server: Server, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_push(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT", None, Exception("disk I/O error"))

    monkeypatch.setattr(runtime.login, "_send_push", failing_push)
    request = _login("85.105.1.7")
    with pytest.raises(OperationalError):
        await runtime.login.start_login(request)
    assert _failed_password_counters(server) == 0


async def test_cancelled_check_uncounts_password(
    server: Server, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown that cancels a password check in progress leaves nothing counted."""
    # Also skips on PostgreSQL before the login starts, so no task outlives the test.
    assert _failed_password_counters(server) == 0
    checking = asyncio.Event()

    async def endless_check(*_args: Any, **_kwargs: Any) -> str | None:
        checking.set()
        await asyncio.Event().wait()
        return None

    snapshot = await runtime.objects.current()
    for profile in snapshot.auth_profiles.values():
        monkeypatch.setattr(profile, "verify_password", endless_check)
    request = _login("85.105.1.8")
    login = asyncio.create_task(runtime.login.start_login(request))
    await asyncio.wait_for(checking.wait(), 10)
    assert _failed_password_counters(server) == 1
    login.cancel()
    with pytest.raises(asyncio.CancelledError):
        await login
    assert _failed_password_counters(server) == 0


async def test_checks_rejected_at_shutdown(
    server: Server, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the server stops checking passwords, logins and console sign-ins end as
    directory_unavailable, audited, with no failure counted."""
    monkeypatch.setattr(passwords, "_stopping", True)
    known = await runtime.login.start_login(_login("85.105.1.9"))
    unknown = await runtime.login.start_login(
        replace(_login("85.105.1.10"), username="bilinmeyen-ğüş")
    )
    assert (known.status, known.reason) == ("rejected", DIRECTORY_UNAVAILABLE)
    assert (unknown.status, unknown.reason) == ("rejected", DIRECTORY_UNAVAILABLE)

    check = await _check_password(
        runtime, "yönetici", Secret("Yönetici-Parola-2026"), "85.105.1.11"
    )
    assert (check.admin, check.reason) == (None, DIRECTORY_UNAVAILABLE)
    # In its own process: the CLI runs an event loop of its own.
    listing = server.cli(
        "audit", "--user", "yönetici", "--event", "first_factor", "--json", process=True
    )
    records = json.loads(listing.stdout)
    assert [(r["outcome"], r["reason"]) for r in records] == [("rejected", DIRECTORY_UNAVAILABLE)]
    assert _failed_password_counters(server) == 0


async def test_console_limit_hides_names(server: Server, runtime: Runtime) -> None:
    """Wrong passwords reach rate_limited after the same count for a real administrator and
    for a name that does not exist, so the reply does not tell which names exist."""
    # In its own process: the CLI runs an event loop of its own.
    server.cli(
        "admin",
        "create",
        "yonetici",
        "--password-stdin",
        stdin="Yönetici-Parola-2026\n",
        process=True,
    )
    replies: dict[str, list[str | None]] = {}
    waits: dict[str, list[int | None]] = {}
    for index, name in enumerate(("yonetici", "böyle-yönetici-yok")):
        replies[name] = []
        waits[name] = []
        for attempt in range(7):
            check = await _check_password(
                runtime, name, Secret(f"yanlış-{attempt}"), f"85.105.2.{index}"
            )
            replies[name].append(check.reason)
            waits[name].append(check.retry_after)

    expected = ["invalid_credentials"] * 5 + ["rate_limited"] * 2
    assert replies["yonetici"] == expected
    assert replies["böyle-yönetici-yok"] == expected
    # A rate-limited reply names the wait: the first failure leaves the 15-minute window then.
    for name in replies:
        assert waits[name][:5] == [None] * 5
        for wait in waits[name][5:]:
            assert wait is not None
            assert 14 * 60 < wait <= 15 * 60


async def test_control_character_name_rejected(server: Server, runtime: Runtime) -> None:
    """A name with a NUL, which PostgreSQL cannot store, from a front door that does not
    check it (RADIUS, the hosted login) is rejected and recorded with the NUL escaped."""
    status = await runtime.login.start_login(
        replace(_login("85.105.3.1"), username="ayşe\x00yönetici")
    )

    assert (status.status, status.reason) == ("rejected", "invalid_credentials")
    # In its own process: the CLI runs an event loop of its own.
    listing = server.cli("audit", "--event", "first_factor", "--json", process=True)
    records = [
        r for r in json.loads(listing.stdout) if r["transaction_id"] == status.transaction_id
    ]
    assert [r["username"] for r in records] == ["ayşe\\x00yönetici"]
