"""The interface front doors (Auth API, RADIUS, hosted login) use to run a login.

Front doors translate their protocol into a `LoginRequest` and a `LoginStatus` back into their
protocol; they never touch storage or policies themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tapgate.push.challenge import new_transaction_id
from tapgate.secret import Secret

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
FRAUD = "fraud"
EXPIRED = "expired"
CANCELED = "canceled"
REJECTED = "rejected"
FINAL_STATUSES = frozenset({APPROVED, DENIED, FRAUD, EXPIRED, CANCELED, REJECTED})


@dataclass(frozen=True)
class LoginRequest:
    """A login attempt as a front door reports it."""

    application: str
    username: str
    password: Secret | None
    client_ip: str | None = None
    user_agent: str | None = None
    # Who sent the request (API client id, RADIUS client name): the rate-limit source when the
    # end user's address is unknown.
    source: str = ""
    language: str = "en"
    # Set by front doors whose clients retransmit (RADIUS): the same key on any node joins the
    # login the first copy started instead of starting another.
    request_key: str | None = None
    # The id of the transaction this attempt creates, known from the start so that every audit
    # record of the attempt carries it, `login_started` included.
    transaction_id: str = field(default_factory=new_transaction_id)


@dataclass(frozen=True)
class LoginStatus:
    """Where a transaction stands; `number` is set only for the login screen in `number` mode."""

    transaction_id: str | None
    status: str
    reason: str | None = None
    number: str | None = None
    verification: str | None = None
    expires_at: datetime | None = None
    username: str | None = None
    delivered: bool = False
    # The application the transaction belongs to, so an API client sees only its own.
    application: str | None = None
    # With reason `rate_limited`: whole seconds until the limit that was reached admits a
    # new attempt.
    retry_after: int | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def of_row(cls, row: Any, status: str, reason: str | None) -> LoginStatus:
        """Build the status of a transaction row (a `TransactionRow` or a row with its columns),
        with `status` and `reason` given separately."""
        return cls(
            row.id,
            status,
            reason=reason,
            verification=row.verification,
            expires_at=row.expires_at,
            username=row.username,
            delivered=row.delivered_at is not None,
            application=row.application,
        )


class LoginPort(Protocol):
    async def start_login(self, request: LoginRequest) -> LoginStatus:
        """Check the first factor, select the method and send the push; never raises for a
        failed login (that is a `rejected` status with a reason)."""
        ...

    async def wait_for_status(self, transaction_id: str, timeout: float) -> LoginStatus:
        """Return the status once it is final or `timeout` seconds pass; raises NotFoundError."""
        ...

    async def submit_code(self, transaction_id: str, code: str) -> LoginStatus:
        """Complete a `code`-mode transaction with the code the user typed."""
        ...

    async def cancel(self, transaction_id: str) -> None: ...
