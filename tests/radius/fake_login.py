"""An in-memory LoginPort for the RADIUS front door's own tests, plus packet helpers.

The fake keeps one record per transaction and lets a test decide it, as the phone would.
End-to-end tests with the real login service live elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyrad.packet import AccessRequest, AuthPacket

from tapgate.errors import NotFoundError, RequestError
from tapgate.push.ports import (
    APPROVED,
    CANCELED,
    DENIED,
    FINAL_STATUSES,
    PENDING,
    LoginRequest,
    LoginStatus,
)
from tapgate.radius.clients import RadiusClient
from tapgate.radius.codec import dictionary
from tapgate.radius.pap import hide_password
from tapgate.secret import Secret

SECRET = "testing-secret-123"


@dataclass
class FakeTransaction:
    id: str
    status: str = PENDING
    reason: str | None = None
    # Code mode: the phone approved and showed `code`; the login completes when it is typed.
    phone_approved: bool = False
    code_attempts: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class FakeLogin:
    """A LoginPort whose transactions a test resolves by hand."""

    def __init__(
        self,
        *,
        verification: str = "tap",
        number: str | None = None,
        code: str = "492817",
        immediate: LoginStatus | None = None,
        start_delay: float = 0.0,
        lifetime: float = 60.0,
        max_code_attempts: int = 5,
    ) -> None:
        self.verification = verification
        self.number = number
        self.code = code
        self.immediate = immediate
        self.start_delay = start_delay
        self.lifetime = lifetime
        self.max_code_attempts = max_code_attempts
        self.requests: list[LoginRequest] = []
        self.canceled: list[str] = []
        self.submitted: list[tuple[str, str]] = []
        self.transactions: dict[str, FakeTransaction] = {}
        self.started = asyncio.Event()
        # Set once a caller waits for a decision.
        self.waiting = asyncio.Event()
        # Set to make cancel lose a race against an approval that arrives at the same moment.
        self.approve_on_cancel = False

    async def start_login(self, request: LoginRequest) -> LoginStatus:
        self.requests.append(request)
        if self.start_delay:
            await asyncio.sleep(self.start_delay)
        self.started.set()
        if self.immediate is not None:
            return self.immediate

        transaction = FakeTransaction(id=f"tx-{len(self.requests)}")
        self.transactions[transaction.id] = transaction
        return LoginStatus(
            transaction.id,
            PENDING,
            number=self.number,
            verification=self.verification,
            expires_at=datetime.now(UTC) + timedelta(seconds=self.lifetime),
            username=request.username,
        )

    async def wait_for_status(self, transaction_id: str, timeout: float) -> LoginStatus:
        transaction = self._find(transaction_id)
        self.waiting.set()
        if transaction.status not in FINAL_STATUSES and timeout > 0:
            transaction.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(transaction.changed.wait(), timeout)
        return self._status(transaction)

    async def submit_code(self, transaction_id: str, code: str) -> LoginStatus:
        # Mirrors the login service: RequestError for a code that is not digits or that comes
        # before the phone approved, and a denial after too many wrong codes.
        transaction = self._find(transaction_id)
        self.submitted.append((transaction_id, code))
        if not code.isdigit():
            raise RequestError("code must be a string of digits", "invalid_code", 400)
        if transaction.status != PENDING:
            return self._status(transaction)
        if not transaction.phone_approved:
            raise RequestError("the device has not approved yet", "code_not_issued", 409)
        if code == self.code:
            self._resolve(transaction, APPROVED)
        else:
            transaction.code_attempts += 1
            if transaction.code_attempts >= self.max_code_attempts:
                self._resolve(transaction, DENIED, "too_many_code_attempts")
        return self._status(transaction)

    async def cancel(self, transaction_id: str) -> None:
        self.canceled.append(transaction_id)
        transaction = self._find(transaction_id)
        if transaction.status == PENDING:
            self._resolve(transaction, APPROVED if self.approve_on_cancel else CANCELED)

    def decide(self, status: str = APPROVED, reason: str | None = None, index: int = -1) -> str:
        """Resolve a transaction (the latest by default) as the phone would; returns its id."""
        transaction = list(self.transactions.values())[index]
        if self.verification == "code" and status == APPROVED:
            transaction.phone_approved = True
        else:
            self._resolve(transaction, status, reason)
        return transaction.id

    def _resolve(
        self, transaction: FakeTransaction, status: str, reason: str | None = None
    ) -> None:
        transaction.status = status
        transaction.reason = reason
        transaction.changed.set()

    def _find(self, transaction_id: str) -> FakeTransaction:
        transaction = self.transactions.get(transaction_id)
        if transaction is None:
            raise NotFoundError(f"transaction {transaction_id} not found")
        return transaction

    @staticmethod
    def _status(transaction: FakeTransaction) -> LoginStatus:
        return LoginStatus(transaction.id, transaction.status, reason=transaction.reason)


def make_client(**changes: object) -> RadiusClient:
    settings: dict[str, object] = {
        "name": "fw1",
        "networks": (ipaddress.ip_network("127.0.0.1/32"),),
        "secret": Secret(SECRET),
        "application": "vpn",
    }
    settings.update(changes)
    return RadiusClient(**settings)  # type: ignore[arg-type]


def build_request(
    *,
    secret: str = SECRET,
    with_message_authenticator: bool = True,
    identifier: int = 7,
    code: int = AccessRequest,
    password: str | None = "Vpn,Parola-1",
    attributes: dict[str, object] | None = None,
    raw: dict[int, list[bytes]] | None = None,
) -> bytes:
    """Encode a request as a NAS would, with pyrad's client-side code path."""
    packet = AuthPacket(
        code=code,
        id=identifier,
        secret=secret.encode(),
        authenticator=os.urandom(16),
        dict=dictionary(),
    )
    if with_message_authenticator:
        packet.add_message_authenticator()
    for name, value in (attributes or {"User-Name": "selin"}).items():
        packet[name] = value if isinstance(value, list) else [value]
    if password is not None:
        packet["User-Password"] = [hide_password(password, secret.encode(), packet.authenticator)]
    for number, values in (raw or {}).items():
        packet[number] = values
    return bytes(packet.RequestPacket())
