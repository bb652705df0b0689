"""The per-request logic of the RADIUS front door: an authenticated request in, a reply out.

No sockets here: the flow calls the `LoginPort` and returns a `RadiusReply` for the server to
encode. The three verification modes map onto RADIUS like this:

- `tap`: the request is held until the transaction is final; Access-Accept only on approval.
- `number`: Access-Challenge at once, its Reply-Message showing the number to type on the phone
  and its State bound to the login. The user's next request with that State is held until the
  decision.
- `code`: the push is sent and Access-Challenge prompts for the code the phone shows after
  approval. The next request with the State carries that code.

Every wait ends at the client's response time budget: past it the transaction is canceled and
the NAS gets Access-Reject with a message, before the NAS gives up on its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from tapgate.clock import Clock, SystemClock
from tapgate.errors import DirectoryUnavailable, NotFoundError, RequestError, TapgateError
from tapgate.push import ports
from tapgate.push.ports import LoginPort, LoginStatus
from tapgate.radius import messages
from tapgate.radius.budget import BudgetedLogin
from tapgate.radius.clients import RadiusClient
from tapgate.radius.codec import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    RadiusReply,
    RadiusRequest,
)
from tapgate.radius.login_request import to_login_request
from tapgate.radius.state import ChallengeStates, PendingChallenge, TooManyChallenges
from tapgate.secret import Secret

log = logging.getLogger(__name__)

# How long a request waits for a decision when its client sets no budget. The login service
# expires transactions well before this; the bound only guards against a wait that never ends.
DEFAULT_MAX_HOLD = 600.0


class RadiusFlow:
    """Turns authenticated requests into logins and logins into replies."""

    def __init__(
        self,
        login: LoginPort,
        *,
        states: ChallengeStates | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Clock | None = None,
        max_hold: float = DEFAULT_MAX_HOLD,
    ) -> None:
        self._login = login
        self._budget = BudgetedLogin(login, clock)
        self._clock = clock
        self._wall_clock = wall_clock or SystemClock()
        self._states = states or ChallengeStates(clock)
        self._max_hold = max_hold

    async def handle(
        self, client: RadiusClient, request: RadiusRequest, received_at: float | None = None
    ) -> RadiusReply:
        """Return the reply to one Access-Request. The response budget starts at `received_at`
        (monotonic seconds), or now."""
        start = self._clock() if received_at is None else received_at
        deadline = start + (client.timeout or self._max_hold)
        try:
            if request.state is not None:
                return await self._continue_login(client, request, deadline)
            return await self._start_login(client, request, deadline)
        except DirectoryUnavailable as error:
            log.warning("radius directory unavailable client=%s error=%s", client.name, error)
            return self._reject(client, messages.BY_REASON["directory_unavailable"])
        except NotFoundError as error:
            log.warning("radius transaction missing client=%s error=%s", client.name, error)
            return self._reject(client, messages.REJECTED)
        except TapgateError as error:
            log.warning("radius login failed client=%s error=%s", client.name, error)
            return self._reject(client, messages.SERVER_ERROR)

    async def _start_login(
        self, client: RadiusClient, request: RadiusRequest, deadline: float
    ) -> RadiusReply:
        if request.password is None:
            log.info(
                "radius request not PAP client=%s credentials=%s",
                client.name,
                request.other_credentials,
            )
            return self._reject(client, messages.PAP_ONLY)
        if not request.user_name:
            return self._reject(client, messages.INVALID_CREDENTIALS)

        # NOTE: LoginRequest has no field for the password keyword yet. "push" is the only
        # keyword and push the only method there is, so splitting it off is all it takes now.
        login_request, _keyword = to_login_request(client, request, request.password)
        status = await self._budget.start_within(login_request, deadline)
        if status is None:
            log.info("radius budget exceeded client=%s step=start_login", client.name)
            return self._reject(client, messages.TIMED_OUT)
        if status.final or status.transaction_id is None:
            return self._final_reply(client, status)

        transaction_id = status.transaction_id
        verification = status.verification or "tap"
        if verification == "tap":
            return await self._hold(client, transaction_id, deadline)

        if not client.challenge or verification not in ("number", "code"):
            # NOTE: a NAS without challenge support needs the login service to start a
            # tap-mode transaction; LoginRequest cannot ask for one yet.
            log.warning(
                "radius challenge unavailable client=%s transaction=%s verification=%s",
                client.name,
                transaction_id,
                verification,
            )
            await self._login.cancel(transaction_id)
            return self._reject(client, messages.CHALLENGE_UNAVAILABLE)

        if verification == "number" and not status.number:
            log.error("radius number missing client=%s transaction=%s", client.name, transaction_id)
            await self._login.cancel(transaction_id)
            return self._reject(client, messages.SERVER_ERROR)

        return await self._challenge(client, request.user_name, status, verification)

    async def _challenge(
        self, client: RadiusClient, username: str, status: LoginStatus, verification: str
    ) -> RadiusReply:
        assert status.transaction_id is not None
        lifetime = None
        if status.expires_at is not None:
            lifetime = (status.expires_at - self._wall_clock.now()).total_seconds()
        try:
            state, challenge = self._states.issue(
                transaction_id=status.transaction_id,
                client_name=client.name,
                username=username,
                verification=verification,
                lifetime=lifetime,
            )
        except TooManyChallenges as error:
            log.warning("radius challenge failed client=%s error=%s", client.name, error)
            await self._login.cancel(status.transaction_id)
            return self._reject(client, messages.SERVER_ERROR)

        if verification == "number":
            text = messages.translate(
                client.language, messages.NUMBER_CHALLENGE, number=status.number or ""
            )
        else:
            text = messages.translate(client.language, messages.CODE_CHALLENGE)
        seconds = max(1, math.floor(challenge.expires_at - self._clock()))
        return RadiusReply(ACCESS_CHALLENGE, message=text, state=state, session_timeout=seconds)

    async def _continue_login(
        self, client: RadiusClient, request: RadiusRequest, deadline: float
    ) -> RadiusReply:
        assert request.state is not None
        challenge = self._states.redeem(
            request.state, client_name=client.name, username=request.user_name or ""
        )
        if challenge is None:
            log.info("radius state invalid client=%s id=%d", client.name, request.identifier)
            return self._reject(client, messages.STATE_INVALID)

        if challenge.verification == "number":
            return await self._hold(client, challenge.transaction_id, deadline)
        return await self._submit_code(client, challenge, request.password)

    async def _submit_code(
        self, client: RadiusClient, challenge: PendingChallenge, code: Secret | None
    ) -> RadiusReply:
        """Complete a code-mode login. The State is spent, so any failure ends the login."""
        transaction_id = challenge.transaction_id
        typed = code.reveal().strip() if code is not None else ""
        if not typed:
            await self._budget.cancel_quietly(transaction_id)
            return self._reject(client, messages.CODE_INVALID)

        try:
            status = await self._login.submit_code(transaction_id, typed)
        except RequestError as error:
            # A code that is not digits, or one typed before the phone approved.
            log.info(
                "radius code rejected client=%s transaction=%s error=%s",
                client.name,
                transaction_id,
                error.code,
            )
            await self._budget.cancel_quietly(transaction_id)
            return self._reject(client, messages.CODE_INVALID)

        if status.status == ports.APPROVED:
            return self._final_reply(client, status)
        if not status.final:
            await self._budget.cancel_quietly(transaction_id)
            return self._reject(client, messages.CODE_INVALID)

        # A final status without a reason is the phone's own decision or the expiry, and a
        # rejection with a known reason (rate_limited) explains itself. Anything else is about
        # the code.
        phone_decided = status.reason is None and status.status in messages.BY_STATUS
        explained = status.status == ports.REJECTED and status.reason in messages.BY_REASON
        if phone_decided or explained:
            return self._final_reply(client, status)
        return self._reject(client, messages.CODE_INVALID)

    async def _hold(
        self, client: RadiusClient, transaction_id: str, deadline: float
    ) -> RadiusReply:
        """Wait until the transaction is final or the budget is spent, then build the reply."""
        status = await self._budget.wait_until_final(transaction_id, deadline)
        if status is None:
            log.info("radius budget exceeded client=%s transaction=%s", client.name, transaction_id)
            return self._reject(client, messages.TIMED_OUT)
        return self._final_reply(client, status)

    def _final_reply(self, client: RadiusClient, status: LoginStatus) -> RadiusReply:
        log.info(
            "radius login finished client=%s transaction=%s status=%s reason=%s",
            client.name,
            status.transaction_id,
            status.status,
            status.reason,
        )
        if status.status == ports.APPROVED:
            return RadiusReply(ACCESS_ACCEPT)
        text = messages.for_status(
            client.language, status.status, status.reason, status.retry_after
        )
        return RadiusReply(ACCESS_REJECT, message=text)

    def _reject(self, client: RadiusClient, message: str) -> RadiusReply:
        return RadiusReply(ACCESS_REJECT, message=messages.translate(client.language, message))
