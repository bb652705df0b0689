"""A push to a user whom the caller has already identified, with push settings the caller chooses.

The console signs administrators in this way: it checks the password itself, because
administrators are not users of any auth profile, and then needs the same transaction, challenge,
rate limit and audit trail that `LoginService` gives every other login.
"""

from __future__ import annotations

from tapgate.directory.base import DirectoryUser
from tapgate.objects.specs import PushProfileSpec
from tapgate.push.ports import LoginRequest, LoginStatus
from tapgate.push.service import LoginService


async def push_to_user(
    service: LoginService,
    request: LoginRequest,
    user: DirectoryUser,
    profile: PushProfileSpec,
    decided_by: str,
) -> LoginStatus:
    """Create a transaction for `user` and push it to the user's devices under `profile`.

    The first factor and method selection are skipped: the caller has done both, and
    `decided_by` names what chose `profile` in the audit record. The result is `pending`, or
    `rejected` with `no_device` or `rate_limited`, exactly as from `LoginService.start_login`.
    """
    return await service._send_push(request, user, profile, decided_by)
