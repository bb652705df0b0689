"""Device answers and codes: the only ways a pending transaction is approved."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from tapgate.audit import record_audit
from tapgate.errors import NotFoundError, RequestError
from tapgate.identifiers import is_identifier
from tapgate.push.challenge import DecisionCheck, DeviceView, check_decision, new_digits
from tapgate.push.ports import PENDING, LoginStatus
from tapgate.push.publish import transaction_view
from tapgate.store.models import DeviceRow, TransactionRow
from tapgate.store.prepared import Prepared, Statements
from tapgate.store.tables import DEVICES, TRANSACTIONS, USER_LOCKS

if TYPE_CHECKING:
    from tapgate.push.service import LoginService

log = logging.getLogger(__name__)

# Built once: every answer runs them.
_TRANSACTIONS = TRANSACTIONS.c
_TRANSACTION = Prepared(select(TRANSACTIONS).where(_TRANSACTIONS.id == bindparam("id")))
# What checking an answer needs of the device; its delivery settings are JSON left unread.
_DEVICE = Prepared(
    select(
        DEVICES.c.id,
        DEVICES.c.auth_profile,
        DEVICES.c.user_id,
        DEVICES.c.username,
        DEVICES.c.signing_key,
        DEVICES.c.revoked_at,
    ).where(DEVICES.c.id == bindparam("id"))
)
_STILL_OPEN = (
    _TRANSACTIONS.id == bindparam("id"),
    _TRANSACTIONS.status == PENDING,
    _TRANSACTIONS.code_hash.is_(None),
    _TRANSACTIONS.expires_at > bindparam("now"),
)
_RESOLVE = Prepared(
    update(TRANSACTIONS)
    .where(*_STILL_OPEN)
    .values(
        device_id=bindparam("device_id"),
        status=bindparam("status"),
        resolved_at=bindparam("now"),
        reason=bindparam("reason"),
    )
)
_ISSUE_CODE = Prepared(
    update(TRANSACTIONS)
    .where(*_STILL_OPEN)
    .values(device_id=bindparam("device_id"), code_hash=bindparam("code_hash"))
)
_USER_LOCK = Prepared(
    select(USER_LOCKS.c.reason).where(
        USER_LOCKS.c.auth_profile == bindparam("auth_profile"),
        USER_LOCKS.c.user_id == bindparam("user_id"),
    )
)
_ADD_USER_LOCK = Prepared(
    insert(USER_LOCKS), ("auth_profile", "user_id", "username", "reason", "created_at")
)
_USER_DEVICES = Prepared(
    select(DEVICES.c.id).where(
        DEVICES.c.auth_profile == bindparam("auth_profile"),
        DEVICES.c.user_id == bindparam("user_id"),
    )
)


@dataclass(frozen=True)
class AnswerResult:
    """What the device is told: the final status, or why its answer changed nothing."""

    accepted: bool
    status: str
    code: str | None = None


class UnknownDevice(Exception):
    """A device id in an answer that matches no enrolled device."""


def device_view(row: DeviceRow) -> DeviceView:
    return DeviceView(
        row.id, row.auth_profile, row.user_id, row.signing_key, row.revoked_at is not None
    )


async def record_answer(
    service: LoginService,
    device: DeviceRow | str,
    message: Any,
    signature: Any,
) -> AnswerResult:
    """Check a signed answer and resolve the transaction exactly once.

    `device` is the answering device's row, or its id to be read in the same database
    transaction as everything else. An id that matches no device raises `UnknownDevice`. One
    transaction reads the rows, checks the answer and writes the outcome, because separate read
    and write transactions cost two more statements and a second connection.
    """
    transaction_id = message.get("transaction_id") if isinstance(message, dict) else None
    if not is_identifier(transaction_id):
        raise RequestError(
            "message.transaction_id is missing or invalid; it must be the challenge's "
            "transaction id, a string of 1 to 64 characters without NUL",
            "invalid_request",
            400,
        )
    now = service.clock.now()
    async with service.database.write_rows() as rows:
        # The row read here has the model's attribute names but only the columns read below.
        answering: Any = device
        if isinstance(device, str):
            answering = await rows.first(_DEVICE, {"id": device})
            if answering is None:
                raise UnknownDevice
        row = await rows.first(_TRANSACTION, {"id": transaction_id})
        if row is None or row.verification == "none":
            raise NotFoundError(f"transaction {transaction_id!r} not found")
        check = check_decision(
            message,
            signature,
            transaction_view(row),
            device_view(answering),
            audience=service.public_url,
            now=now,
            hash_number=service.keyring.hash_token,
        )
        if check.accepted:
            outcome = await _resolve(service, rows, row, answering, message, check, now)
        else:
            await record_audit(
                rows,
                "answer_rejected",
                username=row.username,
                auth_profile=row.auth_profile,
                application=row.application,
                transaction_id=row.id,
                device_id=answering.id,
                outcome="ignored",
                reason=check.problem,
            )
    if not check.accepted:
        # The audit record's own log line names the transaction, device and problem.
        return AnswerResult(
            False, row.status if row.status != PENDING or now < row.expires_at else "expired"
        )
    return await _after_resolve(service, row, answering, check, outcome)


@dataclass(frozen=True)
class _Outcome:
    won: bool
    final_status: str
    code: str | None
    device_ids: list[str]


async def _resolve(
    service: LoginService,
    rows: Statements,
    row: Any,
    device: Any,
    message: dict[str, Any],
    check: DecisionCheck,
    now: datetime,
) -> _Outcome:
    """Write an accepted answer's outcome in the caller's transaction."""
    assert check.status is not None
    code: str | None = None
    values: dict[str, Any] = {"id": row.id, "now": now, "device_id": device.id}
    if check.status == "approved" and row.verification == "code":
        # Code mode: the phone shows a code and the transaction waits for the application to
        # submit it, so approval needs the person at the login screen too.
        code = new_digits(int(row.context.get("code_digits", 6)))
        values.update(code_hash=service.keyring.hash_token(code))
        final_status = PENDING
        update_row = _ISSUE_CODE
    else:
        values.update(status=check.status, reason=check.problem)
        final_status = check.status
        update_row = _RESOLVE

    owner = {"auth_profile": row.auth_profile, "user_id": row.user_id}
    won = await rows.run(update_row, values) == 1
    await record_audit(
        rows,
        "decision",
        username=row.username,
        auth_profile=row.auth_profile,
        application=row.application,
        transaction_id=row.id,
        device_id=device.id,
        # The outcome is what the answer did (approved, denied, fraud; pending while a code is
        # awaited), so a wrong number shows as denied; the device's own choice is kept in the
        # details.
        outcome=(final_status if won else "ignored"),
        reason=check.problem if won else "transaction already resolved",
        details={"uv": message.get("uv"), "decision": message.get("decision")},
    )
    if won and check.status == "fraud":
        if await rows.first(_USER_LOCK, owner) is None:
            await rows.run(
                _ADD_USER_LOCK,
                {
                    "auth_profile": row.auth_profile or "",
                    "user_id": row.user_id or "",
                    "username": row.username,
                    "reason": "fraud",
                    "created_at": now,
                },
            )
        await record_audit(
            rows,
            "fraud_alert",
            username=row.username,
            auth_profile=row.auth_profile,
            application=row.application,
            transaction_id=row.id,
            device_id=device.id,
            outcome="locked",
            reason="fraud reported by the user",
        )
    device_ids = await rows.scalars(_USER_DEVICES, owner)
    if won and final_status != PENDING:
        # Woken from inside the commit, the waiting application hears of the decision one turn
        # of the event loop sooner than from `_after_resolve`. `final` is the status a read
        # would now return. Its `delivered` comes from the row read before the resolve, which
        # is harmless because only a pending status reports it.
        final = LoginStatus.of_row(row, final_status, check.problem)
        others = [d for d in device_ids if d != device.id]
        rows.after_commit(lambda: service.fanout.close_locally(row.id, final_status, others, final))
    return _Outcome(won, final_status, code, device_ids)


async def _after_resolve(
    service: LoginService, row: Any, device: Any, check: DecisionCheck, outcome: _Outcome
) -> AnswerResult:
    """Tell the waiting requests and the user's other devices, once the outcome has committed."""
    if not outcome.won:
        current = await service.get_status(row.id)
        return AnswerResult(False, current.status)
    if check.status == "fraud":
        log.warning(
            "fraud reported transaction=%s user=%r device=%s", row.id, row.username, device.id
        )
    final_status = outcome.final_status
    if final_status == PENDING:
        await service.fanout.transaction_changed(row.id)
    else:
        # This node's waiters and streams heard at the commit (`_resolve`).
        await service.fanout.announce_closed(
            row.id, final_status, [d for d in outcome.device_ids if d != device.id]
        )
    return AnswerResult(True, final_status, outcome.code)


async def submit_code(service: LoginService, transaction_id: str, code: str) -> LoginStatus:
    """Approve a code-mode transaction when `code` matches the one the phone showed."""
    # ASCII only: str.isdigit() also accepts other scripts' digits ("١٢٣") and superscripts,
    # which can never match and would each cost the login one of its attempts.
    if not isinstance(code, str) or not code.isascii() or not code.isdigit() or len(code) > 16:
        raise RequestError(
            "code must be the digits 0-9 that the phone shows, at most 16 of them",
            "invalid_code",
            400,
        )
    now = service.clock.now()
    async with service.database.read() as session:
        row = await session.get(TransactionRow, transaction_id)
    if row is None:
        raise NotFoundError(f"transaction {transaction_id!r} not found")
    if row.verification != "code":
        raise RequestError(
            f"transaction {transaction_id} is not in code mode", "not_code_mode", 409
        )
    if row.status != PENDING or now >= row.expires_at:
        return await service.get_status(transaction_id)
    if row.code_hash is None:
        raise RequestError(
            "the device has not approved yet; ask the user to approve on the phone first",
            "code_not_issued",
            409,
        )

    matches = hmac.compare_digest(service.keyring.hash_token(code), row.code_hash)
    limit = service_max_attempts()
    async with service.database.write() as session:
        # Each statement re-checks the attempt count in the row itself, so codes sent at the
        # same instant cannot all be tried against a count read before any of them.
        if matches:
            result = await session.execute(
                update(TransactionRow)
                .where(
                    TransactionRow.id == row.id,
                    TransactionRow.status == PENDING,
                    TransactionRow.code_attempts < limit,
                )
                .values(status="approved", resolved_at=now)
            )
            outcome = "approved" if getattr(result, "rowcount", 0) == 1 else "ignored"
        else:
            await session.execute(
                update(TransactionRow)
                .where(TransactionRow.id == row.id, TransactionRow.status == PENDING)
                .values(code_attempts=TransactionRow.code_attempts + 1)
            )
            await session.execute(
                update(TransactionRow)
                .where(
                    TransactionRow.id == row.id,
                    TransactionRow.status == PENDING,
                    TransactionRow.code_attempts >= limit,
                )
                .values(status="denied", reason="too_many_code_attempts", resolved_at=now)
            )
            outcome = "wrong_code"
        await record_audit(
            session,
            "code_entered",
            username=row.username,
            auth_profile=row.auth_profile,
            application=row.application,
            transaction_id=row.id,
            outcome=outcome,
        )
    await service.fanout.transaction_changed(row.id)
    return await service.get_status(transaction_id)


def service_max_attempts() -> int:
    from tapgate.push.service import MAX_CODE_ATTEMPTS

    return MAX_CODE_ATTEMPTS


async def open_challenges(service: LoginService, device: DeviceRow) -> list[TransactionRow]:
    """Return the pending, unexpired transactions a device may answer (for polling and reconnects)."""
    now = service.clock.now()
    async with service.database.read() as session:
        rows = (
            await session.scalars(
                select(TransactionRow)
                .where(
                    TransactionRow.auth_profile == device.auth_profile,
                    TransactionRow.user_id == device.user_id,
                    TransactionRow.status == PENDING,
                    TransactionRow.expires_at > now,
                    TransactionRow.code_hash.is_(None),
                )
                .order_by(TransactionRow.created_at)
            )
        ).all()
    return list(rows)
