"""Logins through the RADIUS front door: each worker is a NAS with one Access-Request outstanding.

The benchmark's RADIUS application uses a push profile in `tap` mode, so tapgate replies to each
Access-Request only after the device decides, with Access-Accept on approval. In number mode the
first reply would be an Access-Challenge, and the decision would go in the reply to the user's
second request. The device approves as soon as the challenge arrives. The application side never
learns the transaction id, so the worker registers an expected slot for the user's device before
it sends the request, and the device's next challenge takes it (see `Rendezvous.expect`).

Each user reports its own Calling-Station-Id, the same address the Auth API workers report as
`client_ip`, so the per-source limit on failed first factors does not throttle the run.
"""

from __future__ import annotations

import time

from tapgate.bench.devices import Rendezvous
from tapgate.bench.driver import LevelPlan, LevelRun, LoginWorker, client_ip_for
from tapgate.bench.provision import PASSWORD
from tapgate.bench.radius_client import RadiusClientError, RadiusNas
from tapgate.bench.stats import LoginSample
from tapgate.radius.codec import ACCESS_ACCEPT

# How long a NAS waits for the reply. The RADIUS client's `timeout` in the benchmark objects
# (55 s) is shorter, so tapgate replies with Access-Reject before the NAS gives up.
REPLY_SECONDS = 60.0


def radius_worker(host: str, port: int, secret: str, rendezvous: Rendezvous) -> LoginWorker:
    """Return a level worker that logs in through the RADIUS server at `host`:`port`."""

    async def work(index: int, plan: LevelPlan, run: LevelRun) -> None:
        # One socket per worker, as one NAS per worker, so Identifiers never run out.
        nas = await RadiusNas.open(host, port, secret)
        position = index
        try:
            while time.monotonic() < run.deadline:
                user = plan.users[position % len(plan.users)]
                position += plan.concurrency
                slot = rendezvous.expect(user.device_id)
                started = time.monotonic()
                try:
                    code = await nas.authenticate(
                        user.username, PASSWORD, client_ip_for(user.index), REPLY_SECONDS
                    )
                except (RadiusClientError, OSError) as exc:
                    run.failures[f"radius {type(exc).__name__}"] += 1
                    continue
                finally:
                    finished = time.monotonic()
                    rendezvous.forget(user.device_id, slot)
                if code != ACCESS_ACCEPT:
                    run.failures[f"radius reply code {code}"] += 1
                    continue
                if run.measure_from <= finished <= run.deadline:
                    run.samples.append(
                        LoginSample(
                            started,
                            finished,
                            slot.challenge_at,
                            slot.answer_sent_at,
                            slot.think_seconds,
                        )
                    )
        finally:
            nas.close()

    return work
