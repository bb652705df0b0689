"""The login service: first factor, method selection and the push, behind `LoginPort`.

Front doors call `start_login`, then `wait_for_status`; devices' answers arrive through
`tapgate.push.answers`. Every step leaves an audit record in the same database transaction.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from tapgate.audit import record_audit
from tapgate.clock import Clock
from tapgate.delivery.direct import DirectHub
from tapgate.directory.base import (
    DIRECTORY_UNAVAILABLE,
    INVALID_CREDENTIALS,
    DirectoryUser,
    escape_control_characters,
    normalize_username,
)
from tapgate.directory.passwords import password_checks_stopped, verify_password
from tapgate.errors import DirectoryUnavailable, NotFoundError
from tapgate.geo import Locator
from tapgate.keys import KeyRing
from tapgate.objects.runtime import ObjectCache, Snapshot
from tapgate.objects.specs import PushProfileSpec
from tapgate.policy.selection import auth_profile_order, select_method
from tapgate.push import joins, pending, ratelimit
from tapgate.push.challenge import new_digits, new_nonce
from tapgate.push.events import EventBus
from tapgate.push.fanout import Fanout
from tapgate.push.ports import PENDING, REJECTED, LoginRequest, LoginStatus
from tapgate.secret import Secret
from tapgate.store.database import Database
from tapgate.store.group_commit import PendingCommits
from tapgate.store.models import DeviceRow, TransactionRow
from tapgate.store.prepared import Prepared, Statements
from tapgate.store.tables import TRANSACTIONS, USER_LOCKS

log = logging.getLogger(__name__)

# How often a waiting request re-reads its transaction even without a wake-up.
RECHECK_SECONDS = 1.0
MAX_CODE_ATTEMPTS = 5


@dataclass
class Rejection:
    reason: str
    user: DirectoryUser | None = None
    # For `rate_limited`: the limits that may have been reached, to tell when to retry.
    limits: tuple[tuple[str, str, ratelimit.Limit], ...] = ()


@dataclass
class FirstFactorPassed:
    """A user whose first factor passed, and what its record still needs written.

    The audit record, the lock check and the release of the password attempt's counters are
    written in the transaction that creates the push, which saves a write transaction a login.
    """

    user: DirectoryUser
    require_password: bool
    reservation: list[int]
    user_key: str
    source_ip: str | None


# Built once: building a statement and its cache key costs about as much as running it.
_TRANSACTIONS = TRANSACTIONS.c
_STATUS = Prepared(
    select(
        _TRANSACTIONS.id,
        _TRANSACTIONS.status,
        _TRANSACTIONS.reason,
        _TRANSACTIONS.verification,
        _TRANSACTIONS.expires_at,
        _TRANSACTIONS.username,
        _TRANSACTIONS.delivered_at,
        _TRANSACTIONS.application,
    ).where(_TRANSACTIONS.id == bindparam("id"))
)
_CREATE_COLUMNS = (
    "id",
    "application",
    "auth_profile",
    "user_id",
    "username",
    "push_profile",
    "status",
    "reason",
    "verification",
    "nonce",
    "number_hash",
    "number_digits",
    "code_hash",
    "code_attempts",
    "require_user_verification",
    "context",
    "created_at",
    "expires_at",
    "resolved_at",
    "device_id",
    "delivered_at",
)
_CREATE = Prepared(insert(TRANSACTIONS), _CREATE_COLUMNS)
_LOCK = Prepared(
    select(USER_LOCKS.c.reason).where(
        USER_LOCKS.c.auth_profile == bindparam("auth_profile"),
        USER_LOCKS.c.user_id == bindparam("user_id"),
    )
)


class LoginService:
    def __init__(
        self,
        database: Database,
        objects: ObjectCache,
        keyring: KeyRing,
        clock: Clock,
        bus: EventBus,
        hub: DirectHub,
        locator: Locator,
        public_url: str,
    ) -> None:
        self.database = database
        self.objects = objects
        self.keyring = keyring
        self.clock = clock
        self.bus = bus
        self.hub = hub
        self.locator = locator
        self.public_url = public_url
        self.fanout = Fanout(database, keyring, public_url, bus, hub)
        self.fanout.router.attach(self)

    # ---- start ----------------------------------------------------------------------------

    async def start_login(self, request: LoginRequest) -> LoginStatus:
        if request.request_key is None:
            return await self._start_login(request)
        if not await joins.claim(self, request.request_key):
            joined = await joins.joined_status(self, request.request_key)
            if joined is not None:
                return joined
            return LoginStatus(None, REJECTED, reason="rate_limited")
        status = await self._start_login(request)
        await joins.settle(self, request.request_key, status)
        return status

    async def _start_login(self, request: LoginRequest) -> LoginStatus:
        # The first factor's blocks do not wait for their commits, so the login's last block
        # usually shares their commit. The status goes out only once all have committed.
        pending = PendingCommits()
        status = await self._decide_start(request, pending)
        await pending.wait()
        return status

    async def _decide_start(self, request: LoginRequest, pending: PendingCommits) -> LoginStatus:
        escaped_username = escape_control_characters(request.username)
        if escaped_username != request.username:
            log.warning(
                "login rejected application=%s user=%r reason=control character in the username",
                request.application,
                escaped_username,
            )
            return await self._reject(
                replace(request, username=escaped_username), Rejection(INVALID_CREDENTIALS)
            )
        snapshot = await self.objects.current()
        application = snapshot.application(request.application)
        outcome = await self._first_factor(
            snapshot, request, application.require_password, application.methods, pending
        )
        if isinstance(outcome, Rejection):
            return await self._reject(request, outcome)

        selection = select_method(
            application.methods,
            outcome.user,
            snapshot.routes,
            snapshot.policies,
            snapshot.policy_index,
        )
        profile = (
            snapshot.push_profile(selection.push_profile)
            if selection.push_profile is not None
            else None
        )
        try:
            return await self._send_push(
                request, outcome.user, profile, selection.decided_by, outcome
            )
        except Exception:
            await self._release_after_failure(outcome)
            raise

    async def _first_factor(
        self,
        snapshot: Snapshot,
        request: LoginRequest,
        require_password: bool,
        methods: tuple[str, ...],
        pending: PendingCommits,
    ) -> FirstFactorPassed | Rejection:
        now = self.clock.now()
        source_key = request.client_ip or request.source
        async with self.database.write_rows(pending) as rows:
            await record_audit(
                rows,
                "login_started",
                username=request.username,
                application=request.application,
                transaction_id=request.transaction_id,
                source_ip=request.client_ip,
                details={"source": request.source},
            )
            if await ratelimit.over_limit(
                rows, ratelimit.FAILED_SOURCE, source_key, ratelimit.SOURCE_FAILURES, now
            ):
                return Rejection(
                    "rate_limited",
                    limits=((ratelimit.FAILED_SOURCE, source_key, ratelimit.SOURCE_FAILURES),),
                )

        order = auth_profile_order(methods, snapshot.routes, list(snapshot.auth_profiles))
        user: DirectoryUser | None = None
        try:
            for name in order:
                profile = snapshot.auth_profiles.get(name)
                if profile is None:
                    continue
                user = await profile.find_user(request.username)
                if user is not None:
                    break
        except DirectoryUnavailable as exc:
            log.warning("directory unavailable application=%s error=%s", request.application, exc)
            return Rejection(DIRECTORY_UNAVAILABLE)

        user_key = (
            ratelimit.user_key(user.auth_profile, user.user_id)
            if user is not None
            else ratelimit.unknown_user_key(normalize_username(request.username))
        )
        reservation: list[int] | None = []
        if require_password:
            checks = (
                (ratelimit.FAILED_SOURCE, source_key, ratelimit.SOURCE_FAILURES),
                (ratelimit.FAILED_USER, user_key, ratelimit.USER_FAILURES),
            )
            async with self.database.write_rows(pending) as rows:
                reservation = await ratelimit.reserve(rows, list(checks), now)
            if reservation is None:
                return Rejection("rate_limited", user, limits=checks)
            if password_checks_stopped():
                # From the first signal of a shutdown on, no auth profile checks a password, so
                # known and unknown names, local or LDAP, get the same reply.
                await self._release(reservation)
                log.warning(
                    "directory unavailable application=%s user=%r error=the server is shutting "
                    "down; the password was not checked",
                    request.application,
                    request.username,
                )
                return Rejection(DIRECTORY_UNAVAILABLE, user)

        if user is None:
            if require_password:
                # Spend the time of a wrong password in the first auth profile of the chain,
                # so that timing does not reveal the name.
                try:
                    await self._check_unknown_user(snapshot, order, request.password)
                except DirectoryUnavailable as exc:
                    # The directory is down, or the shutdown began while this check waited for
                    # a hashing slot. A known name gets the same reply in both cases.
                    await self._release(reservation)
                    log.warning(
                        "directory unavailable application=%s error=%s", request.application, exc
                    )
                    return Rejection(DIRECTORY_UNAVAILABLE)
                except asyncio.CancelledError:
                    log.info("password check cancelled user=%r", request.username)
                    await self._release_quietly(reservation, request.username)
                    raise
            else:
                await self._count_failure(source_key, None)
            return Rejection(INVALID_CREDENTIALS)
        if user.locked:
            await self._release(reservation)
            return Rejection("account_locked", user)

        profile = snapshot.auth_profiles[user.auth_profile]
        try:
            if require_password:
                reason = await profile.verify_password(user, request.password or Secret(""))
                if reason is not None:
                    # Only a wrong password stays counted; the other reasons mean the directory
                    # accepted the password.
                    if reason != INVALID_CREDENTIALS:
                        await self._release(reservation)
                    return Rejection(reason, user)
            reason = await profile.account_problem(user, now)
        except DirectoryUnavailable as exc:
            await self._release(reservation)
            log.warning(
                "directory unavailable auth_profile=%s user=%r error=%s",
                user.auth_profile,
                user.username,
                exc,
            )
            return Rejection(DIRECTORY_UNAVAILABLE, user)
        except asyncio.CancelledError:
            # A shutdown that outlasts its grace period cancels the check. It was not a wrong
            # password, so it must not stay counted against the user and the address.
            log.info("password check cancelled user=%r", user.username)
            await self._release_quietly(reservation, user.username)
            raise
        if reason is not None:
            await self._release(reservation)
            return Rejection(reason, user)

        return FirstFactorPassed(
            user, require_password, reservation or [], user_key, request.client_ip
        )

    async def _check_unknown_user(
        self, snapshot: Snapshot, order: list[str], password: Secret | None
    ) -> None:
        for name in order:
            profile = snapshot.auth_profiles.get(name)
            if profile is not None:
                await profile.check_unknown_user(password or Secret(""))
                return
        await verify_password(None, password or Secret(""))

    async def _record_first_factor(
        self, rows: Statements, request: LoginRequest, passed: FirstFactorPassed
    ) -> bool:
        """Write a passed first factor's record; return whether a fraud lock stops the login."""
        user = passed.user
        if passed.require_password:
            await ratelimit.release(rows, passed.reservation)
            await ratelimit.clear_failures(rows, passed.user_key)
        await record_audit(
            rows,
            "first_factor",
            username=user.username,
            auth_profile=user.auth_profile,
            application=request.application,
            transaction_id=request.transaction_id,
            outcome="success",
            source_ip=passed.source_ip,
            details={"password_checked": passed.require_password},
        )
        lock = await rows.first(_LOCK, {"auth_profile": user.auth_profile, "user_id": user.user_id})
        return lock is not None

    async def _release_after_failure(self, passed: FirstFactorPassed) -> None:
        """Release the counters of a right password whose login failed afterwards (a database error).

        The transaction that would have released the counters did not commit. Releasing twice
        is harmless: the counters are deleted by id.
        """
        await self._release_quietly(passed.reservation, passed.user.username)

    async def _release_quietly(self, reservation: list[int] | None, username: str) -> None:
        if not reservation:
            return
        try:
            await self._release(reservation)
        except Exception as exc:  # the database may still be failing; the window expires them
            log.warning(
                "releasing password attempt counters failed user=%r error=%s", username, exc
            )

    async def _release(self, reservation: list[int] | None) -> None:
        if reservation:
            # Shielded: a shutdown that cancels the login here must not leave the unchecked or
            # accepted attempt counted as a wrong password.
            await asyncio.shield(self._write_release(reservation))

    async def _write_release(self, reservation: list[int]) -> None:
        async with self.database.write_rows() as rows:
            await ratelimit.release(rows, reservation)

    async def _count_failure(self, source_key: str, user_key: str | None) -> None:
        now = self.clock.now()
        async with self.database.write() as session:
            ratelimit.add_event(session, ratelimit.FAILED_SOURCE, source_key, now)
            if user_key is not None:
                ratelimit.add_event(session, ratelimit.FAILED_USER, user_key, now)

    async def _reject(
        self, request: LoginRequest, rejection: Rejection, decided_by: str | None = None
    ) -> LoginStatus:
        now = self.clock.now()
        user = rejection.user
        transaction_id = request.transaction_id
        async with self.database.write() as session:
            session.add(
                TransactionRow(
                    id=transaction_id,
                    application=request.application,
                    auth_profile=user.auth_profile if user else None,
                    user_id=user.user_id if user else None,
                    username=user.username if user else request.username,
                    status=REJECTED,
                    reason=rejection.reason,
                    verification="none",
                    nonce="",
                    context=self._context(request, now),
                    created_at=now,
                    expires_at=now,
                    resolved_at=now,
                )
            )
            # A rejection decided after the first factor passed (a method, a device, the push
            # limit) is the login's, not the first factor's.
            await record_audit(
                session,
                "first_factor"
                if decided_by is None
                and rejection.reason not in ("no_method", "no_device", "fraud_locked")
                else "login_rejected",
                username=user.username if user else request.username,
                auth_profile=user.auth_profile if user else None,
                application=request.application,
                transaction_id=transaction_id,
                outcome="rejected",
                reason=rejection.reason,
                source_ip=request.client_ip,
                details=_rejection_details(rejection.reason, decided_by),
            )
        log.info(
            "login rejected transaction=%s application=%s reason=%s",
            transaction_id,
            request.application,
            rejection.reason,
        )
        retry_after = await self._retry_after(rejection.limits, transaction_id)
        return LoginStatus(
            transaction_id, REJECTED, reason=rejection.reason, retry_after=retry_after
        )

    async def _retry_after(
        self, limits: tuple[tuple[str, str, ratelimit.Limit], ...], transaction_id: str
    ) -> int | None:
        """Return whole seconds until the reached limits among `limits` admit an attempt."""
        if not limits:
            return None
        try:
            async with self.database.read() as session:
                wait = await ratelimit.wait_for_room(session, list(limits), self.clock.now())
        except SQLAlchemyError as exc:  # the rejection is still sent, without its retry time
            log.warning("retry time unavailable transaction=%s error=%s", transaction_id, exc)
            return None
        if wait is None:
            return None
        return max(1, math.ceil(wait.total_seconds()))

    def _context(self, request: LoginRequest, now: Any) -> dict[str, Any]:
        return {
            "application": request.application,
            "client_ip": request.client_ip,
            "location": self.locator.locate(request.client_ip),
            "user_agent": (request.user_agent or "")[:256] or None,
            "created_at": now.isoformat(),
            "language": request.language,
        }

    async def _no_push(
        self,
        request: LoginRequest,
        user: DirectoryUser,
        decided_by: str,
        passed: FirstFactorPassed | None,
    ) -> LoginStatus:
        """Reject a login that no method admits, after writing its first factor's record."""
        locked = False
        if passed is not None:
            async with self.database.write_rows() as rows:
                locked = await self._record_first_factor(rows, request, passed)
        if locked:
            return await self._reject(request, Rejection("fraud_locked", user))
        return await self._reject(request, Rejection("no_method", user), decided_by=decided_by)

    def _replace_on_devices(
        self, canceled: list[str], transaction: TransactionRow, device_ids: list[str]
    ) -> int:
        """Close the canceled logins on this node, then send the new challenge, and return how
        many streams took it. In that order a device never has both open at once."""
        for old_id in canceled:
            self.fanout.close_locally(old_id, "canceled", device_ids)
        return self.fanout.deliver_challenge(transaction, device_ids)

    async def _send_push(
        self,
        request: LoginRequest,
        user: DirectoryUser,
        profile: PushProfileSpec | None,
        decided_by: str,
        passed: FirstFactorPassed | None = None,
    ) -> LoginStatus:
        """Create the transaction and push it, or reject the login.

        `passed` is the first factor whose record this transaction also writes. `profile` is
        None when no method admits the user, which rejects the login with `no_method` once
        that record is written.
        """
        if profile is None:
            return await self._no_push(request, user, decided_by, passed)
        now = self.clock.now()
        user_key = ratelimit.user_key(user.auth_profile, user.user_id)
        number = new_digits(profile.number_digits) if profile.verification == "number" else None
        values: dict[str, Any] = {
            "id": request.transaction_id,
            "application": request.application,
            "auth_profile": user.auth_profile,
            "user_id": user.user_id,
            "username": user.username,
            "push_profile": profile.name,
            "status": PENDING,
            "reason": None,
            "verification": profile.verification,
            "nonce": new_nonce(),
            "number_hash": self.keyring.hash_token(number) if number else None,
            "number_digits": profile.number_digits if number else 0,
            "code_hash": None,
            "code_attempts": 0,
            "require_user_verification": profile.require_user_verification,
            "context": {**self._context(request, now), "code_digits": profile.code_digits},
            "created_at": now,
            "expires_at": now + timedelta(seconds=profile.timeout),
            "resolved_at": None,
            "device_id": None,
            "delivered_at": None,
        }
        push_limit = ratelimit.Limit(
            profile.rate_limit_count, timedelta(seconds=profile.rate_limit_window)
        )
        device_ids: list[str] = []
        canceled: list[str] = []
        rejection: str | None = None
        # The row as inserted, for the challenge sent to the devices. A plain object with the
        # model's attributes: building an ORM instance cost more than the insert itself.
        transaction = cast(TransactionRow, SimpleNamespace(**values))
        delivered: list[int] = []
        # One write transaction finds the devices, counts the push and creates it. The count is
        # checked and taken under a lock in the transaction that creates the push, so
        # simultaneous logins cannot all pass the check before any of them is counted.
        async with self.database.write_rows() as rows:
            if passed is not None and await self._record_first_factor(rows, request, passed):
                rejection = "fraud_locked"
            elif not (device_ids := await pending.active_device_ids(rows, user)):
                rejection = "no_device"
            elif (
                await ratelimit.reserve(rows, [(ratelimit.PUSH_SENT, user_key, push_limit)], now)
                is None
            ):
                rejection = "rate_limited"
            else:
                canceled = await pending.cancel_older(rows, user, profile.max_pending, now)
                await rows.run(_CREATE, values)
                await record_audit(
                    rows,
                    "push_sent",
                    username=user.username,
                    auth_profile=user.auth_profile,
                    application=request.application,
                    transaction_id=values["id"],
                    outcome="pending",
                    source_ip=request.client_ip,
                    details={
                        "push_profile": profile.name,
                        "decided_by": decided_by,
                        "devices": len(device_ids),
                        "verification": profile.verification,
                    },
                )
                # Sent from inside the commit, so the challenge reaches the streams one turn of
                # the event loop before this coroutine resumes. Never before the commit: a
                # device must not answer a transaction that a failed commit then loses.
                rows.after_commit(
                    lambda: delivered.append(
                        self._replace_on_devices(canceled, transaction, device_ids)
                    )
                )
        if rejection == "fraud_locked":
            return await self._reject(request, Rejection(rejection, user))
        if rejection is not None:
            limits = (
                ((ratelimit.PUSH_SENT, user_key, push_limit),)
                if rejection == "rate_limited"
                else ()
            )
            return await self._reject(request, Rejection(rejection, user, limits), decided_by)

        for old_id in canceled:
            if delivered:
                await self.fanout.announce_closed(old_id, "canceled", device_ids)
            else:
                await self.fanout.transaction_closed(old_id, "canceled", device_ids)
        streams = await self.fanout.challenge_created(
            transaction, device_ids, profile.delivery, delivered[0] if delivered else None
        )
        log.info(
            "push sent transaction=%s user=%r devices=%d delivered=%d",
            transaction.id,
            user.username,
            len(device_ids),
            streams,
        )
        return LoginStatus(
            transaction.id,
            PENDING,
            number=number,
            verification=profile.verification,
            expires_at=transaction.expires_at,
            username=user.username,
            delivered=streams > 0,
        )

    # ---- status -------------------------------------------------------------------------------

    async def get_status(self, transaction_id: str) -> LoginStatus:
        row = await self.database.read_first(_STATUS, {"id": transaction_id})
        if row is None:
            raise NotFoundError(f"transaction {transaction_id!r} not found")
        if row.status == PENDING and self.clock.now() >= row.expires_at:
            await self.expire(row.id)
            return await self.get_status(transaction_id)
        return LoginStatus.of_row(row, row.status, row.reason)

    async def wait_for_status(
        self,
        transaction_id: str,
        timeout: float,
        *,
        application: str | None = None,
        end_on_shutdown: bool = False,
    ) -> LoginStatus:
        """Return the status once it is final or `timeout` seconds pass.

        With `application`, raise NotFoundError unless the transaction belongs to it, checked on
        the first read, so that a caller needs no read of its own before waiting. With
        `end_on_shutdown`, return the current status as soon as the server begins to shut down,
        so an application holding the request can ask again elsewhere.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        wakeup = self.bus.subscribe(transaction_id)
        status: LoginStatus | None = None
        outage = False
        try:
            while True:
                # Clear before reading: a wake-up that arrives while the row is being read
                # must survive to the wait below, or the waiter sleeps until its re-check.
                wakeup.clear()
                try:
                    status = await self.get_status(transaction_id)
                except (OperationalError, InterfaceError) as exc:
                    # Ride out a database restart or failover shorter than the wait, since the
                    # row is still the truth afterwards. The first read must succeed, and a
                    # re-check that fails after the deadline fails the request.
                    if status is None or loop.time() >= deadline:
                        raise
                    if not outage:
                        log.warning(
                            "status re-check failed, retrying transaction=%s error=%s",
                            transaction_id,
                            (str(exc.orig).strip().splitlines() or [""])[0],
                        )
                    outage = True
                if application is not None and status.application != application:
                    raise NotFoundError(f"transaction {transaction_id!r} not found")
                remaining = deadline - loop.time()
                if status.final or remaining <= 0:
                    return status
                if end_on_shutdown and self.bus.closed:
                    log.info("status wait ended by shutdown transaction=%s", transaction_id)
                    return status
                await wakeup.wait(min(remaining, RECHECK_SECONDS))
                if wakeup.final is not None:
                    return wakeup.final
        finally:
            self.bus.unsubscribe(transaction_id, wakeup)

    async def expire(self, transaction_id: str) -> bool:
        """Mark one overdue pending transaction expired; return whether this call did it."""
        now = self.clock.now()
        async with self.database.write() as session:
            result = await session.execute(
                update(TransactionRow)
                .where(
                    TransactionRow.id == transaction_id,
                    TransactionRow.status == PENDING,
                    TransactionRow.expires_at <= now,
                )
                .values(status="expired", resolved_at=now)
            )
            done = getattr(result, "rowcount", 0) == 1
            if done:
                row = await session.get(TransactionRow, transaction_id)
                assert row is not None
                await record_audit(
                    session,
                    "expired",
                    username=row.username,
                    auth_profile=row.auth_profile,
                    application=row.application,
                    transaction_id=row.id,
                    outcome="expired",
                )
        if done:
            await self._close_on_devices(transaction_id, "expired")
        return done

    async def expire_due(self) -> int:
        """Expire every overdue pending transaction (the sweeper calls this)."""
        now = self.clock.now()
        async with self.database.read() as session:
            due = (
                await session.scalars(
                    select(TransactionRow.id)
                    .where(TransactionRow.status == PENDING, TransactionRow.expires_at <= now)
                    .limit(500)
                )
            ).all()
        count = 0
        for transaction_id in due:
            count += await self.expire(transaction_id)
        return count

    async def _close_on_devices(self, transaction_id: str, status: str) -> None:
        """Wake waiters on every node and tell the user's devices the transaction closed."""
        device_ids: list[str] | None = None
        async with self.database.read() as session:
            row = await session.get(TransactionRow, transaction_id)
            if row is not None and row.user_id is not None:
                device_ids = list(
                    (
                        await session.scalars(
                            select(DeviceRow.id).where(
                                DeviceRow.auth_profile == row.auth_profile,
                                DeviceRow.user_id == row.user_id,
                            )
                        )
                    ).all()
                )
        # Notified after the read session ends: the notification takes a pooled connection of
        # its own, and holding two at once can exhaust a full pool.
        if device_ids is None:
            await self.fanout.transaction_changed(transaction_id)
        else:
            await self.fanout.transaction_closed(transaction_id, status, device_ids)

    async def cancel(self, transaction_id: str) -> None:
        now = self.clock.now()
        async with self.database.write() as session:
            result = await session.execute(
                update(TransactionRow)
                .where(TransactionRow.id == transaction_id, TransactionRow.status == PENDING)
                .values(status="canceled", reason="canceled_by_application", resolved_at=now)
            )
            done = getattr(result, "rowcount", 0) == 1
            if done:
                await record_audit(
                    session,
                    "canceled",
                    transaction_id=transaction_id,
                    outcome="canceled",
                    reason="canceled_by_application",
                )
        if done:
            await self._close_on_devices(transaction_id, "canceled")

    async def submit_code(self, transaction_id: str, code: str) -> LoginStatus:
        from tapgate.push.answers import submit_code

        return await submit_code(self, transaction_id, code)


def _rejection_details(reason: str, decided_by: str | None) -> dict[str, str] | None:
    """Return the audit details of a rejection.

    After the first factor, `rate_limited` can only be the push profile's limit on pushes. The
    details record that, because `tapgate user unlock` does not lift that limit.
    """
    if decided_by is None:
        return None
    details = {"decided_by": decided_by}
    if reason == "rate_limited":
        details["limit"] = "push_rate_limit"
    return details
