"""The delivery provider interface and the value types providers exchange with the router.

A provider takes one sealed challenge for one device and reports the result its service
returned. The router decides what to do next (retry, mark the address stale, try the next provider).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class Outcome(enum.StrEnum):
    """The result a push service returned for one message."""

    DELIVERED = "delivered"  # the service accepted the message for the device
    STALE = "stale"  # the push address is no longer valid; skip it from now on
    RETRY = "retry"  # throttled or a server error; the same message may succeed later
    FAILED = "failed"  # rejected for a reason a retry does not fix (bad request, credentials)


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    provider: str
    device_id: str
    # The service's id for the accepted message (FCM message name, apns-id), when it gives one.
    message_id: str | None = None
    # Seconds the service requested before a retry (its Retry-After header), when given.
    retry_after: float | None = None
    # The service's error code or reason, for the log and the audit trail.
    detail: str = ""


@dataclass(frozen=True)
class DeliveryTarget:
    """One device as a provider needs it: its push address for that provider and its keys."""

    device_id: str
    transaction_id: str
    # The provider's entry of DeviceRow.delivery, e.g. {"token": ...} for FCM.
    address: Mapping[str, Any]
    # When the device registered this address (the address's `registered_at`, else enrollment).
    registered_at: datetime
    agreement_key: str = field(repr=False, default="")


class DeliveryProvider(Protocol):
    """A way to reach a device: `relay`, `fcm`, `apns` or `webpush`.

    `envelope` is the sealed challenge (see `delivery.sealing`), never the plain login context.
    `ttl` is the challenge's remaining lifetime in whole seconds; a service should drop the
    message after it.
    """

    name: str

    async def send(
        self, device: DeliveryTarget, envelope: dict[str, Any], ttl: int
    ) -> DeliveryResult: ...

    async def close(self) -> None: ...


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header given in seconds; HTTP dates are ignored (backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
