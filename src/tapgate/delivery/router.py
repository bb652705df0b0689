"""The delivery router: tries each device's providers in the push profile's order of preference.

`dispatch` returns at once, and the work runs in background tasks, one per device. So a slow or
failing push service never delays the login start, and one device's failure never touches
another's. For each device the router walks the push profile's `delivery` list:

- `direct` counts as delivered when the device held a stream on this node when the challenge
  was published (the fanout sends it there itself);
- any other provider is used when it is configured, the device registered an address for it,
  and that address is not marked stale. Throttling and server errors are retried with
  exponential backoff (honoring Retry-After) while the challenge lives; a stale answer marks the
  address in `DeviceRow.delivery["stale"]` so the next login skips it, and the router moves on.

A challenge no provider delivered stays available to the device's signed polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tapgate.clock import Clock, SystemClock
from tapgate.delivery.base import DeliveryProvider, DeliveryResult, DeliveryTarget, Outcome
from tapgate.delivery.config import ProviderSettings, load_provider_settings
from tapgate.delivery.metrics import SEND_ATTEMPTS, SEND_DURATION
from tapgate.delivery.sealing import SealError, seal
from tapgate.errors import ConfigError
from tapgate.keys import KeyRing
from tapgate.push.publish import signed_challenge
from tapgate.store.database import Database
from tapgate.store.models import (
    ChallengeDeliveryRow,
    DeviceRow,
    ObjectVersionRow,
    TransactionRow,
)

if TYPE_CHECKING:
    from tapgate.push.service import LoginService

log = logging.getLogger(__name__)

DIRECT = "direct"
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
# A retry is not started when less than this remains of the challenge's lifetime.
MIN_TTL_SECONDS = 1
REFRESH_SECONDS = 5.0

# (kind, address of a device request) -> (HTTP status, body); set by `attach`.
DeviceRequestHandler = Callable[[str, str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


def build_provider(
    settings: ProviderSettings, on_device_request: DeviceRequestHandler | None
) -> DeliveryProvider:
    if settings.kind == "fcm":
        from tapgate.delivery.fcm import FcmProvider

        return FcmProvider(settings)
    if settings.kind == "apns":
        from tapgate.delivery.apns import ApnsProvider

        return ApnsProvider(settings)
    if settings.kind == "webpush":
        from tapgate.delivery.webpush import WebPushProvider

        return WebPushProvider(settings)
    if settings.kind == "relay":
        from tapgate.delivery.relay import RelayProvider

        return RelayProvider(settings, on_device_request)
    raise ConfigError(f"unknown delivery provider {settings.kind!r}")


def stale_providers(device: DeviceRow) -> Mapping[str, Any]:
    stale = (device.delivery or {}).get("stale")
    return stale if isinstance(stale, dict) else {}


def delivery_target(device: DeviceRow, provider: str, transaction_id: str) -> DeliveryTarget | None:
    """Return the device's address for `provider`, or None when it has none usable."""
    address = (device.delivery or {}).get(provider)
    if not isinstance(address, dict) or provider in stale_providers(device):
        return None
    registered_at = device.created_at
    with contextlib.suppress(KeyError, TypeError, ValueError):
        registered_at = datetime.fromisoformat(str(address["registered_at"]))
    if registered_at.tzinfo is None:
        registered_at = registered_at.replace(tzinfo=UTC)
    return DeliveryTarget(device.id, transaction_id, address, registered_at, device.agreement_key)


class DeliveryRouter:
    def __init__(
        self,
        database: Database,
        keyring: KeyRing,
        public_url: str,
        clock: Clock | None = None,
    ) -> None:
        self.database = database
        self.keyring = keyring
        self.public_url = public_url
        self.clock = clock or SystemClock()
        self.providers: dict[str, DeliveryProvider] = {}
        self._settings: dict[str, ProviderSettings] = {}
        self._version: int | None = None
        self._refresh_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._on_device_request: DeviceRequestHandler | None = None

    def attach(self, service: LoginService) -> None:
        """Use the login service's clock, and let it handle the answers and receipts that
        devices send through a relay."""
        from tapgate.delivery.inbound import handle_relayed_request

        self.clock = service.clock
        self._on_device_request = functools.partial(handle_relayed_request, service)

    # ---- provider settings --------------------------------------------------------------------

    def start(self) -> None:
        """Load the providers now and keep them current, so a relay link is up before the first
        challenge and receives answers for challenges other nodes sent."""
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="delivery-refresh")

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database outage or a bad credential must not stop it
                log.warning("delivery providers not loaded error=%s", exc)
            await asyncio.sleep(REFRESH_SECONDS)

    async def refresh(self) -> None:
        """Rebuild the providers whose settings changed since the object version last seen."""
        async with self.database.read() as session:
            version = (
                await session.scalars(
                    select(ObjectVersionRow.version).where(ObjectVersionRow.id == 1)
                )
            ).first() or 0
        if version == self._version:
            return
        async with self._refresh_lock:
            if version == self._version:
                return
            async with self.database.read() as session:
                settings = await load_provider_settings(session, self.keyring)
            for kind in [k for k in self.providers if settings.get(k) != self._settings.get(k)]:
                await self.providers.pop(kind).close()
                log.info("delivery provider removed provider=%s", kind)
            for kind, value in settings.items():
                if kind in self.providers:
                    continue
                try:
                    provider = build_provider(value, self._on_device_request)
                except ConfigError as exc:
                    log.warning("delivery provider not usable provider=%s error=%s", kind, exc)
                    continue
                self.providers[kind] = provider
                log.info("delivery provider loaded provider=%s", kind)
            self._settings = settings
            self._version = version

    # ---- dispatch -----------------------------------------------------------------------------

    def dispatch(
        self,
        row: TransactionRow,
        device_ids: Sequence[str],
        preference: Sequence[str],
        connected: Sequence[str] = (),
    ) -> None:
        """Start delivering the challenge of `row` to each device in the background.

        `connected` lists the devices whose direct stream on this node took the challenge.
        """
        if not any(name != DIRECT for name in preference):
            return
        task = asyncio.create_task(
            self._deliver_all(row, list(device_ids), tuple(preference), set(connected)),
            name=f"deliver-{row.id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_all(
        self,
        row: TransactionRow,
        device_ids: list[str],
        preference: tuple[str, ...],
        connected: set[str],
    ) -> None:
        try:
            await self.refresh()
            envelope = signed_challenge(self.keyring, self.public_url, row)
            async with self.database.read() as session:
                devices = (
                    await session.scalars(select(DeviceRow).where(DeviceRow.id.in_(device_ids)))
                ).all()
        except Exception as exc:  # the challenge stays available to polling
            log.warning("delivery not started transaction=%s error=%s", row.id, exc)
            return
        await asyncio.gather(
            *(
                self._deliver_one(row, device, envelope, preference, device.id in connected)
                for device in devices
            ),
            return_exceptions=True,
        )

    async def _deliver_one(
        self,
        row: TransactionRow,
        device: DeviceRow,
        envelope: dict[str, Any],
        preference: tuple[str, ...],
        connected: bool,
    ) -> None:
        try:
            provider_used = await self._walk_providers(row, device, envelope, preference, connected)
        except Exception as exc:  # one device's failure must not reach the others
            log.warning("delivery failed transaction=%s device=%s error=%s", row.id, device.id, exc)
            provider_used = None
        if provider_used is None:
            log.info(
                "challenge not pushed, left to polling transaction=%s device=%s",
                row.id,
                device.id,
            )
        await self._record(row.id, device.id, provider_used)

    async def _walk_providers(
        self,
        row: TransactionRow,
        device: DeviceRow,
        envelope: dict[str, Any],
        preference: tuple[str, ...],
        connected: bool,
    ) -> str | None:
        for name in preference:
            if name == DIRECT:
                # NOTE: only streams on this node are known here, so on a cluster a device
                # streaming to another node also gets the next provider's push.
                if connected:
                    return DIRECT
                continue
            provider = self.providers.get(name)
            target = delivery_target(device, name, row.id)
            if provider is None or target is None:
                continue
            try:
                sealed = seal(envelope, device.agreement_key, row.id, device.id)
            except SealError as exc:
                log.warning("challenge not sealed device=%s error=%s", device.id, exc)
                return None
            result = await self._send_with_retry(provider, target, sealed, row)
            if result.outcome == Outcome.DELIVERED:
                log.info(
                    "challenge pushed transaction=%s device=%s provider=%s message_id=%s",
                    row.id,
                    device.id,
                    name,
                    result.message_id,
                )
                return name
            if result.outcome == Outcome.STALE:
                await self._mark_stale(device.id, name, result)
            else:
                log.warning(
                    "push failed, trying the next provider transaction=%s device=%s provider=%s "
                    "outcome=%s detail=%s",
                    row.id,
                    device.id,
                    name,
                    result.outcome,
                    result.detail,
                )
        return None

    async def _send_with_retry(
        self,
        provider: DeliveryProvider,
        target: DeliveryTarget,
        sealed: dict[str, Any],
        row: TransactionRow,
    ) -> DeliveryResult:
        delay = FIRST_BACKOFF_SECONDS
        while True:
            remaining = int((row.expires_at - self.clock.now()).total_seconds())
            started = time.monotonic()
            result = await provider.send(target, sealed, remaining)
            SEND_DURATION.labels(provider.name).observe(time.monotonic() - started)
            SEND_ATTEMPTS.labels(provider.name, str(result.outcome)).inc()
            if result.outcome != Outcome.RETRY:
                return result
            wait = max(result.retry_after or 0.0, delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            remaining_after = (row.expires_at - self.clock.now()).total_seconds() - wait
            if remaining_after < MIN_TTL_SECONDS or not await self._still_pending(row.id):
                return result
            log.info(
                "push retry transaction=%s device=%s provider=%s in_seconds=%.1f detail=%s",
                row.id,
                target.device_id,
                provider.name,
                wait,
                result.detail,
            )
            await asyncio.sleep(wait)

    async def _still_pending(self, transaction_id: str) -> bool:
        async with self.database.read() as session:
            row = await session.get(TransactionRow, transaction_id)
        return row is not None and row.status == "pending" and row.code_hash is None

    async def _mark_stale(self, device_id: str, provider: str, result: DeliveryResult) -> None:
        now = self.clock.now()
        async with self.database.write() as session:
            device = await session.get(DeviceRow, device_id)
            if device is not None:
                delivery = dict(device.delivery or {})
                delivery["stale"] = {**stale_providers(device), provider: now.isoformat()}
                device.delivery = delivery
        log.warning(
            "push address stale, skipped from now on device=%s provider=%s detail=%s",
            device_id,
            provider,
            result.detail,
        )

    async def _record(self, transaction_id: str, device_id: str, provider: str | None) -> None:
        now = self.clock.now()
        outcome = "sent" if provider else "undelivered"
        for _ in range(2):
            try:
                async with self.database.write() as session:
                    row = await session.get(ChallengeDeliveryRow, (transaction_id, device_id))
                    if row is None:
                        session.add(
                            ChallengeDeliveryRow(
                                transaction_id=transaction_id,
                                device_id=device_id,
                                provider=provider,
                                outcome=outcome,
                                sent_at=now if provider else None,
                            )
                        )
                    else:
                        row.provider, row.outcome = provider, outcome
                        row.sent_at = now if provider else None
                return
            except IntegrityError:
                continue  # a receipt inserted the row at the same moment; update it instead
            except Exception as exc:  # the record is informational; delivery already happened
                log.warning(
                    "delivery record not written transaction=%s device=%s error=%s",
                    transaction_id,
                    device_id,
                    exc,
                )
                return

    async def wait_idle(self) -> None:
        """Wait for every delivery started so far (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._refresher] if self._refresher else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._refresher = None
        for provider in self.providers.values():
            await provider.close()
        self.providers.clear()
        self._version = None
